//! The key-value scenarios: put, range and txn-put, one unary KV request per operation (and
//! the puts of the watch scenario).
//!
//! It owns what each request of these scenarios looks like. It must never touch a key outside
//! the configured key space (puts) or the configured range (range), and never look at a
//! response beyond what the record needs (a range's kv count, a put's revision).

use std::sync::{Arc, OnceLock};

use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;

use super::keys::{KeyPicker, KeySpace};
use super::load::{Failure, Worker};
use super::watch::PutTimes;

/// The request every client of a run sends.
pub enum KvOp {
    Put,
    /// One Txn with no compares and one put in success (etcd benchmark's `txn-put --txn-ops 1`).
    TxnPut,
    Range(RangeRequest),
}

/// What the clients of one run share.
pub struct Shared {
    pub op: KvOp,
    pub keys: KeySpace,
    pub sequential: bool,
    pub value: Vec<u8>,
    /// range: the number of kvs in the first successful response.
    pub first_kvs: OnceLock<usize>,
    /// watch: where puts note when their revision's response came back.
    pub put_times: Option<Arc<PutTimes>>,
}

pub struct KvWorker {
    client: KvClient<Channel>,
    picker: KeyPicker,
    shared: Arc<Shared>,
}

impl KvWorker {
    pub fn new(channel: Channel, shared: Arc<Shared>) -> KvWorker {
        KvWorker {
            client: KvClient::new(channel),
            picker: KeyPicker::new(&shared.keys, shared.sequential),
            shared,
        }
    }

    fn put_request(&mut self, n: u64) -> PutRequest {
        PutRequest {
            key: self.shared.keys.key(self.picker.index(n)),
            value: self.shared.value.clone(),
            ..Default::default()
        }
    }
}

impl Worker for KvWorker {
    async fn call(&mut self, n: u64) -> Result<(), Failure> {
        match &self.shared.op {
            KvOp::Put => {
                let req = self.put_request(n);
                let resp = self.client.put(req).await?.into_inner();
                if let Some(times) = &self.shared.put_times {
                    times.mark(resp.header.map_or(0, |h| h.revision));
                }
            }
            KvOp::TxnPut => {
                let put = self.put_request(n);
                let req = TxnRequest {
                    compare: Vec::new(),
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(put)),
                    }],
                    failure: Vec::new(),
                };
                let resp = self.client.txn(req).await?.into_inner();
                if !resp.succeeded {
                    // Cannot happen with no compares; a server that says so is wrong.
                    return Err(Failure::new(
                        "txn-not-succeeded",
                        "a Txn without compares failed",
                    ));
                }
            }
            KvOp::Range(req) => {
                let resp = self.client.range(req.clone()).await?.into_inner();
                let _ = self.shared.first_kvs.set(resp.kvs.len());
            }
        }
        Ok(())
    }
}
