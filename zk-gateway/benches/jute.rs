//! Micro-benchmarks of the ZooKeeper gateway's jute codec, on the messages a ZooKeeper
//! workload is made of.
//!
//! * `decode/*`: [`decode_request`] / [`decode_connect`] of a frame body (the 4-byte length
//!   already stripped, as `connection.rs` hands it over): connect, create, setData, getData,
//!   getChildren, and a multi of 10 creates (a typical atomic batch).
//! * `encode/*`: the gateway's answers, each into a fresh `Vec` as `connection.rs` does:
//!   getData reply (Stat + 256 B of data), create reply (the path), getChildren reply of 100
//!   names, a watcher event, the connect response; plus [`encode_request`] of a create (what
//!   the load generator and the tests send).
//! * `layout/*`: the znode key encoding every read and write of the gateway goes through:
//!   a data-record key, a whole-znode range, and parsing a key back (what the watch fan-out
//!   does for every event).
//!
//! Sizes: paths of ~30 bytes (`/app/service/members/node-0000000042`-like), 256-byte data
//! (a typical configuration or member record; ZooKeeper's default limit is 1 MB but real
//! znodes are small), the open ACL `world:anyone` with all permissions (what most clients
//! send), 100 children (a busy service-discovery or queue parent).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use zk_gateway::jute::{
    decode_connect, decode_request, encode_connect_request, encode_connect_response,
    encode_notification, encode_reply, encode_request, Acl, ConnectRequest, ConnectResponse,
    CreateRequest, Id, MultiOp, ReplyHeader, Request, RequestHeader, Response, SetDataRequest,
    Stat, WatcherEvent,
};
use zk_gateway::layout::{Layout, Part};
use zk_gateway::path::ZnodePath;
use zk_gateway::proto::{event, op, perms, state};

const DATA_LEN: usize = 256;
const PARENT: &str = "/app/service/members";

fn child_name(i: usize) -> String {
    format!("node-{i:010}")
}

fn child_path(i: usize) -> String {
    format!("{PARENT}/{}", child_name(i))
}

fn data() -> Vec<u8> {
    (0..DATA_LEN).map(|i| (i * 31 % 251) as u8).collect()
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn create(i: usize) -> CreateRequest {
    CreateRequest {
        path: child_path(i),
        data: Some(data()),
        acl: open_acl(),
        flags: 0,
        ttl: None,
    }
}

fn stat() -> Stat {
    Stat {
        czxid: 1_000_123,
        mzxid: 1_000_456,
        ctime: 1_760_000_000_000,
        mtime: 1_760_000_123_456,
        version: 7,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: DATA_LEN as i32,
        num_children: 0,
        pzxid: 1_000_123,
    }
}

/// A request frame body, as `decode_request` receives it (without the length prefix).
fn request_body(op: i32, req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, &RequestHeader { xid: 42, op }, req);
    out.split_off(4)
}

fn connect_request() -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    }
}

fn decode_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");

    let mut connect = Vec::new();
    encode_connect_request(&mut connect, &connect_request());
    let connect = connect.split_off(4);
    group.bench_function("connect", |b| {
        b.iter(|| decode_connect(black_box(&connect)).expect("decode"))
    });

    let requests: Vec<(&str, i32, Request)> = vec![
        (
            "create",
            op::CREATE,
            Request::Create {
                op: op::CREATE,
                req: create(42),
            },
        ),
        (
            "set_data",
            op::SET_DATA,
            Request::SetData(SetDataRequest {
                path: child_path(42),
                data: Some(data()),
                version: -1,
            }),
        ),
        (
            "get_data",
            op::GET_DATA,
            Request::GetData {
                path: child_path(42),
                watch: true,
            },
        ),
        (
            "get_children",
            op::GET_CHILDREN,
            Request::GetChildren {
                path: PARENT.into(),
                watch: true,
            },
        ),
        (
            "multi_10_creates",
            op::MULTI,
            Request::Multi(
                (0..10)
                    .map(|i| MultiOp::Create {
                        op: op::CREATE,
                        req: create(i),
                    })
                    .collect(),
            ),
        ),
    ];
    for (name, code, req) in &requests {
        let body = request_body(*code, req);
        // The benchmark measures what it claims to: the body decodes back to the request.
        assert_eq!(decode_request(&body).expect("decode").1, *req);
        group.bench_function(*name, |b| {
            b.iter(|| decode_request(black_box(&body)).expect("decode"))
        });
    }
    group.finish();
}

fn encode_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let header = ReplyHeader {
        xid: 42,
        zxid: 1_000_456,
        err: 0,
    };

    let replies: Vec<(&str, Response)> = vec![
        (
            "get_data_reply",
            Response::GetData {
                data: Some(data()),
                stat: stat(),
            },
        ),
        (
            "create_reply",
            Response::Create {
                path: child_path(42),
            },
        ),
        (
            "get_children_reply_100",
            Response::GetChildren {
                children: (0..100).map(child_name).collect(),
            },
        ),
    ];
    for (name, body) in &replies {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut out = Vec::new();
                encode_reply(&mut out, black_box(&header), black_box(body));
                out
            })
        });
    }

    let ev = WatcherEvent {
        event_type: event::NODE_DATA_CHANGED,
        state: state::SYNC_CONNECTED,
        path: child_path(42),
    };
    group.bench_function("watcher_event", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            encode_notification(&mut out, -1, black_box(&ev));
            out
        })
    });

    let connected = ConnectResponse {
        protocol_version: 0,
        time_out: 30_000,
        session_id: 0x0123_4567_89ab_cdef,
        passwd: vec![0x5a; 16],
        read_only: Some(false),
    };
    group.bench_function("connect_response", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            encode_connect_response(&mut out, black_box(&connected));
            out
        })
    });

    let create_req = Request::Create {
        op: op::CREATE,
        req: create(42),
    };
    let create_header = RequestHeader {
        xid: 42,
        op: op::CREATE,
    };
    group.bench_function("create_request", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            encode_request(&mut out, black_box(&create_header), black_box(&create_req));
            out
        })
    });
    group.finish();
}

fn layout_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("layout");
    let layout = Layout::new("/zk/");
    let path = ZnodePath::parse(&child_path(42)).expect("valid path");
    group.bench_function("node_key", |b| {
        b.iter(|| layout.node_key(black_box(&path), Part::Data))
    });
    group.bench_function("node_range", |b| {
        b.iter(|| layout.node_range(black_box(&path)))
    });
    let key = layout.node_key(&path, Part::Data);
    group.bench_function("parse_node_key", |b| {
        b.iter(|| layout.parse(black_box(&key)))
    });
    group.finish();
}

criterion_group!(benches, decode_benches, encode_benches, layout_benches);
criterion_main!(benches);
