//! Malformed gRPC messages: bytes that are not a valid protobuf for the method. A typed client
//! cannot send them, so this test speaks raw gRPC. Upstream etcd answers `Internal` (grpc-go
//! fails to unmarshal); Synod must answer with the same code, keep the connection usable for
//! the next request, and keep serving everyone else.

use bytes::{Buf, BufMut};
use compat_tests::{block_on, client, Flavor, Server};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Endpoint;
use tonic::Code;

/// A codec that sends and receives message bodies as raw bytes.
#[derive(Default, Clone)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(
    endpoint: &str,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// Field 1 (key) announced as 100 bytes long with only 3 present; then a field with wire type 7.
const TRUNCATED: &[u8] = &[0x0a, 0x64, b'a', b'b', b'c'];
const BAD_WIRE_TYPE: &[u8] = &[0x0f, 0x01];

#[test]
fn a_malformed_protobuf_gets_internal_like_etcd_and_the_server_keeps_serving() {
    let synod = Server::start(Flavor::Synod);
    let etcd = Server::start(Flavor::Etcd);
    block_on(async {
        for (path, body) in [
            ("/etcdserverpb.KV/Put", TRUNCATED),
            ("/etcdserverpb.KV/Range", BAD_WIRE_TYPE),
            ("/etcdserverpb.KV/Txn", TRUNCATED),
        ] {
            let from_etcd = raw_call(&etcd.endpoint(), path, body.to_vec()).await;
            let from_synod = raw_call(&synod.endpoint(), path, body.to_vec()).await;
            let etcd_code = from_etcd.as_ref().err().map(|s| s.code());
            let synod_code = from_synod.as_ref().err().map(|s| s.code());
            assert_eq!(
                etcd_code,
                Some(Code::Internal),
                "{path}: upstream answered {from_etcd:?}"
            );
            assert_eq!(
                synod_code, etcd_code,
                "{path}: synod answered {from_synod:?}"
            );
        }
        let mut c = client(&synod).await;
        c.put("after", "malformed", None)
            .await
            .expect("synod still serves");
        let got = c.get("after", None).await.expect("get");
        assert_eq!(got.kvs()[0].value(), b"malformed");
    });
}
