//! Helpers shared by the integration tests: a store in a temp dir and request builders.
#![allow(dead_code)]

use std::collections::HashSet;

use synod_mvcc::{MvccError, MvccStore, Revision};
use synod_proto::etcdserverpb::{
    compare, request_op, response_op, CompactionRequest, CompactionResponse, Compare,
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use synod_proto::mvccpb::KeyValue;
use synod_proto::peerpb::{internal_request, internal_response, InternalRequest, InternalResponse};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: MvccStore,
    /// Leases `lease_exists` reports as granted.
    pub leases: HashSet<i64>,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = MvccStore::open(&dir.path().join("mvcc.redb")).unwrap();
        Harness {
            dir,
            store,
            leases: HashSet::new(),
        }
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("mvcc.redb")
    }

    /// Applies one request in its own batch (committed non-durably).
    pub fn apply(&self, req: internal_request::Request) -> Result<InternalResponse, MvccError> {
        let mut batch = self.store.write().unwrap();
        let leases = self.leases.clone();
        let resp = batch.apply(&InternalRequest { request: Some(req) }, &move |l| {
            leases.contains(&l)
        });
        batch.commit(false).unwrap();
        resp
    }

    pub fn try_put(&self, p: PutRequest) -> Result<PutResponse, MvccError> {
        match self.apply(internal_request::Request::Put(p))?.response {
            Some(internal_response::Response::Put(r)) => Ok(r),
            other => panic!("unexpected response {other:?}"),
        }
    }

    pub fn put(&self, key: &str, value: &str) -> PutResponse {
        self.try_put(put_req(key, value)).unwrap()
    }

    pub fn delete(&self, key: &str, end: &str) -> DeleteRangeResponse {
        self.try_delete(DeleteRangeRequest {
            key: key.into(),
            range_end: end.into(),
            prev_kv: false,
        })
        .unwrap()
    }

    pub fn try_delete(&self, d: DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        match self
            .apply(internal_request::Request::DeleteRange(d))?
            .response
        {
            Some(internal_response::Response::DeleteRange(r)) => Ok(r),
            other => panic!("unexpected response {other:?}"),
        }
    }

    pub fn txn(&self, t: TxnRequest) -> Result<TxnResponse, MvccError> {
        match self.apply(internal_request::Request::Txn(t))?.response {
            Some(internal_response::Response::Txn(r)) => Ok(r),
            other => panic!("unexpected response {other:?}"),
        }
    }

    pub fn compact(&self, revision: i64) -> Result<CompactionResponse, MvccError> {
        let c = CompactionRequest {
            revision,
            physical: true,
        };
        match self
            .apply(internal_request::Request::Compaction(c))?
            .response
        {
            Some(internal_response::Response::Compaction(r)) => Ok(r),
            other => panic!("unexpected response {other:?}"),
        }
    }

    pub fn range(&self, r: RangeRequest) -> Result<RangeResponse, MvccError> {
        self.store.read().unwrap().range(&r)
    }

    pub fn get(&self, key: &str) -> Option<KeyValue> {
        let resp = self.range(range_req(key, "")).unwrap();
        assert!(resp.kvs.len() <= 1);
        resp.kvs.into_iter().next()
    }

    pub fn get_at(&self, key: &str, revision: i64) -> Result<Option<KeyValue>, MvccError> {
        let resp = self.range(RangeRequest {
            revision,
            ..range_req(key, "")
        })?;
        Ok(resp.kvs.into_iter().next())
    }

    pub fn rev(&self) -> Revision {
        self.store.read().unwrap().current_revision()
    }
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

pub fn range_req(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

pub fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

pub fn values(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.value.clone()).unwrap())
        .collect()
}

pub fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(key, value))),
    }
}

pub fn put_op_req(p: PutRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(p)),
    }
}

pub fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub fn delete_op(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                prev_kv: false,
            },
        )),
    }
}

pub fn txn_op(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(t)),
    }
}

pub fn cmp(
    key: &str,
    target: compare::CompareTarget,
    result: compare::CompareResult,
    value: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(value),
    }
}

pub fn as_range(op: &ResponseOp) -> &RangeResponse {
    match &op.response {
        Some(response_op::Response::ResponseRange(r)) => r,
        other => panic!("not a range response: {other:?}"),
    }
}

pub fn as_put(op: &ResponseOp) -> &PutResponse {
    match &op.response {
        Some(response_op::Response::ResponsePut(r)) => r,
        other => panic!("not a put response: {other:?}"),
    }
}

pub fn as_delete(op: &ResponseOp) -> &DeleteRangeResponse {
    match &op.response {
        Some(response_op::Response::ResponseDeleteRange(r)) => r,
        other => panic!("not a delete response: {other:?}"),
    }
}

pub fn as_txn(op: &ResponseOp) -> &TxnResponse {
    match &op.response {
        Some(response_op::Response::ResponseTxn(r)) => r,
        other => panic!("not a txn response: {other:?}"),
    }
}

pub fn hdr_rev<T: HasHeader>(r: &T) -> i64 {
    r.header_revision()
}

pub trait HasHeader {
    fn header_revision(&self) -> i64;
}

macro_rules! has_header {
    ($($t:ty),*) => {$(
        impl HasHeader for $t {
            fn header_revision(&self) -> i64 {
                self.header.as_ref().expect("response has a header").revision
            }
        }
    )*};
}
has_header!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse
);
