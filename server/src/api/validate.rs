//! Request validation that etcd performs before a request reaches Raft (`v3rpc/key.go`).
//!
//! Pure functions over request messages: no I/O, no state. The order of checks is upstream's,
//! because when a request breaks two rules the client must see the same error as from etcd.

use std::collections::HashSet;

use synod_proto::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use super::errors::RequestError;

pub fn check_range(r: &RangeRequest) -> Result<(), RequestError> {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    // etcd rejects enum values it does not know when it sorts (`invalid sort option`).
    if !(0..=2).contains(&r.sort_order) || !(0..=4).contains(&r.sort_target) {
        return Err(RequestError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), RequestError> {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(RequestError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), RequestError> {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest` followed by its duplicate-key check on both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), RequestError> {
    check_txn_ops(r, max_txn_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_txn_ops: usize) -> Result<(), RequestError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_txn_ops {
        return Err(RequestError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(RequestError::EmptyKey);
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        check_op(op, max_txn_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), RequestError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => check_range_in_txn(r),
        Some(request_op::Request::RequestPut(r)) => check_put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => check_delete(r),
        Some(request_op::Request::RequestTxn(t)) => check_txn_ops(t, max_txn_ops),
        None => Err(RequestError::KeyNotFound),
    }
}

/// Inside a txn etcd only checks the key of a range (the sort check happens when applying).
fn check_range_in_txn(r: &RangeRequest) -> Result<(), RequestError> {
    if r.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    Ok(())
}

/// A deleted interval `[key, end)`; `end == None` is the single key.
struct Deleted {
    key: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Deleted {
    fn covers(&self, k: &[u8]) -> bool {
        match &self.end {
            None => self.key == k,
            Some(end) => self.key.as_slice() <= k && k < end.as_slice(),
        }
    }
}

fn intersects(dels: &[Deleted], k: &[u8]) -> bool {
    dels.iter().any(|d| d.covers(k))
}

/// etcd's `checkIntervals`: no put may overlap another put or a delete within one branch,
/// nested txns included (a key put in both arms of one nested txn is fine: only one runs).
fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Deleted>), RequestError> {
    let mut dels: Vec<Deleted> = reqs
        .iter()
        .filter_map(|r| match &r.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Deleted {
                key: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for r in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &r.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || intersects(&dels, k) {
                return Err(RequestError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in puts_else {
            if (puts.contains(&k) && !puts_then.contains(&k)) || intersects(&dels, &k) {
                return Err(RequestError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for r in reqs {
        let Some(request_op::Request::RequestPut(p)) = &r.request else {
            continue;
        };
        if puts.contains(&p.key) || intersects(&dels, &p.key) {
            return Err(RequestError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: k.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success,
                failure,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn two_puts_of_one_key_are_a_duplicate() {
        let t = TxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        };
        assert_eq!(check_txn(&t, 128), Err(RequestError::DuplicateKey));
    }

    #[test]
    fn put_inside_a_deleted_range_is_a_duplicate() {
        let t = TxnRequest {
            success: vec![del("a", "c"), put("b")],
            ..Default::default()
        };
        assert_eq!(check_txn(&t, 128), Err(RequestError::DuplicateKey));
    }

    #[test]
    fn the_same_key_in_both_arms_of_a_nested_txn_is_allowed() {
        let t = TxnRequest {
            success: vec![txn(vec![put("a")], vec![put("a")])],
            ..Default::default()
        };
        assert_eq!(check_txn(&t, 128), Ok(()));
    }

    #[test]
    fn a_nested_put_clashing_with_an_outer_put_is_a_duplicate() {
        let t = TxnRequest {
            success: vec![txn(vec![put("a")], vec![]), put("a")],
            ..Default::default()
        };
        assert_eq!(check_txn(&t, 128), Err(RequestError::DuplicateKey));
    }

    #[test]
    fn more_ops_than_the_limit_are_refused() {
        let t = TxnRequest {
            success: (0..129).map(|i| put(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        assert_eq!(check_txn(&t, 128), Err(RequestError::TooManyOps));
    }

    #[test]
    fn an_empty_op_reads_as_key_not_found() {
        let t = TxnRequest {
            success: vec![RequestOp { request: None }],
            ..Default::default()
        };
        assert_eq!(check_txn(&t, 128), Err(RequestError::KeyNotFound));
    }
}
