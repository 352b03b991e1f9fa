//! Jute decoding (nom) of what clients send: ConnectRequest and requests; never panics on input.

use nom::bytes::complete::take;
use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{be_i32, be_i64, u8 as byte};
use nom::{IResult, Parser};

use super::records::*;
use crate::proto::op;

/// Why a frame body could not be decoded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the record did.
    #[error("jute: input truncated")]
    Truncated,
    /// A value no client may send (a negative length other than -1, an unknown multi op type).
    #[error("jute: invalid input: {0}")]
    Invalid(&'static str),
    /// The RequestHeader decoded but its opcode is unknown: reply Unimplemented to `xid`.
    #[error("jute: unknown opcode {op} (xid {xid})")]
    UnknownOp { xid: i32, op: i32 },
}

/// nom's own failures here are all "ran out of input" (complete parsers over a slice).
impl<I> ParseError<I> for DecodeError {
    fn from_error_kind(_input: I, _kind: ErrorKind) -> Self {
        DecodeError::Truncated
    }
    fn append(_input: I, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type In<'a> = &'a [u8];
type PResult<'a, T> = IResult<In<'a>, T, DecodeError>;

fn fail<T>(e: DecodeError) -> Result<T, nom::Err<DecodeError>> {
    Err(nom::Err::Failure(e))
}

fn unwrap_err(e: nom::Err<DecodeError>) -> DecodeError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => DecodeError::Truncated,
    }
}

// ---- primitives -------------------------------------------------------------------------

fn int(i: In<'_>) -> PResult<'_, i32> {
    be_i32(i)
}

fn long(i: In<'_>) -> PResult<'_, i64> {
    be_i64(i)
}

/// Java's `readBoolean`: any non-zero byte is true.
fn boolean(i: In<'_>) -> PResult<'_, bool> {
    byte.map(|b: u8| b != 0).parse(i)
}

/// A length or count: -1 is null (`None`), any other negative value is invalid.
fn length(i: In<'_>) -> PResult<'_, Option<usize>> {
    let (i, n) = int(i)?;
    match usize::try_from(n) {
        Ok(n) => Ok((i, Some(n))),
        Err(_) if n == -1 => Ok((i, None)),
        Err(_) => fail(DecodeError::Invalid("negative length")),
    }
}

/// The bytes of a buffer or ustring, borrowed; `take` fails on a short input before anything
/// is allocated.
fn raw(i: In<'_>) -> PResult<'_, Option<&[u8]>> {
    match length(i)? {
        (i, None) => Ok((i, None)),
        (i, Some(n)) => take(n).map(Some).parse(i),
    }
}

/// `buffer`: null is `None`.
fn buffer(i: In<'_>) -> PResult<'_, Option<Vec<u8>>> {
    raw.map(|b| b.map(<[u8]>::to_vec)).parse(i)
}

/// `buffer` where null and empty mean the same.
fn bytes(i: In<'_>) -> PResult<'_, Vec<u8>> {
    raw.map(|b| b.unwrap_or_default().to_vec()).parse(i)
}

/// `ustring`: null is the empty string, invalid UTF-8 is replaced.
fn ustring(i: In<'_>) -> PResult<'_, String> {
    raw.map(|b| String::from_utf8_lossy(b.unwrap_or_default()).into_owned())
        .parse(i)
}

/// `vector<T>`: null is empty. Grows one element at a time: every element consumes at least
/// one byte, so a huge count in a short frame ends in `Truncated` after few iterations.
fn vector<'a, T>(
    mut elem: impl Parser<In<'a>, Output = T, Error = DecodeError>,
) -> impl FnMut(In<'a>) -> PResult<'a, Vec<T>> {
    move |i| {
        let (mut i, n) = length(i)?;
        let mut v = Vec::new();
        for _ in 0..n.unwrap_or(0) {
            let (rest, x) = elem.parse(i)?;
            v.push(x);
            i = rest;
        }
        Ok((i, v))
    }
}

// ---- records ----------------------------------------------------------------------------

fn acl(i: In<'_>) -> PResult<'_, Acl> {
    (int, ustring, ustring)
        .map(|(perms, scheme, id)| Acl {
            perms,
            id: Id { scheme, id },
        })
        .parse(i)
}

/// `CreateRequest`, or `CreateTTLRequest` when `ttl`.
fn create(ttl: bool) -> impl Fn(In<'_>) -> PResult<'_, CreateRequest> {
    move |i| {
        let (i, (path, data, acl, flags)) = (ustring, buffer, vector(acl), int).parse(i)?;
        let (i, ttl) = if ttl {
            long.map(Some).parse(i)?
        } else {
            (i, None)
        };
        Ok((
            i,
            CreateRequest {
                path,
                data,
                acl,
                flags,
                ttl,
            },
        ))
    }
}

fn delete(i: In<'_>) -> PResult<'_, DeleteRequest> {
    (ustring, int)
        .map(|(path, version)| DeleteRequest { path, version })
        .parse(i)
}

fn set_data(i: In<'_>) -> PResult<'_, SetDataRequest> {
    (ustring, buffer, int)
        .map(|(path, data, version)| SetDataRequest {
            path,
            data,
            version,
        })
        .parse(i)
}

/// `{ustring path; boolean watch}` (Exists, GetData, GetChildren, GetChildren2 requests).
fn path_watch(i: In<'_>) -> PResult<'_, (String, bool)> {
    (ustring, boolean).parse(i)
}

/// `{ustring path; int n}` (CheckVersion, CheckWatches, RemoveWatches, AddWatch requests).
fn path_int(i: In<'_>) -> PResult<'_, (String, i32)> {
    (ustring, int).parse(i)
}

fn create_op(code: i32) -> bool {
    matches!(
        code,
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL
    )
}

/// One op record of a multi, by its MultiHeader type.
fn multi_op(ty: i32) -> impl Fn(In<'_>) -> PResult<'_, MultiOp> {
    move |i| match ty {
        t if create_op(t) => create(t == op::CREATE_TTL)
            .map(|req| MultiOp::Create { op: t, req })
            .parse(i),
        op::DELETE => delete.map(MultiOp::Delete).parse(i),
        op::SET_DATA => set_data.map(MultiOp::SetData).parse(i),
        op::CHECK => path_int
            .map(|(path, version)| MultiOp::Check { path, version })
            .parse(i),
        op::GET_DATA => path_watch
            .map(|(path, _)| MultiOp::GetData { path })
            .parse(i),
        op::GET_CHILDREN => path_watch
            .map(|(path, _)| MultiOp::GetChildren { path })
            .parse(i),
        _ => fail(DecodeError::Invalid("unknown op type in multi")),
    }
}

/// `MultiOperationRecord`: MultiHeader + op record, repeated until a header with done set.
/// Each round consumes at least the 9-byte header, so the loop is bounded by the input.
fn multi(mut i: In<'_>) -> PResult<'_, Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let (rest, (ty, done, _err)) = (int, boolean, int).parse(i)?;
        if done {
            return Ok((rest, ops));
        }
        let (rest, o) = multi_op(ty)(rest)?;
        ops.push(o);
        i = rest;
    }
}

/// `SetWatches`, or `SetWatches2` (with the two persistent vectors) when `v2`.
fn set_watches(v2: bool) -> impl Fn(In<'_>) -> PResult<'_, SetWatches> {
    move |i| {
        let (i, (relative_zxid, data_watches, exist_watches, child_watches)) =
            (long, vector(ustring), vector(ustring), vector(ustring)).parse(i)?;
        let (i, (persistent_watches, persistent_recursive_watches)) = if v2 {
            (vector(ustring), vector(ustring)).parse(i)?
        } else {
            (i, Default::default())
        };
        Ok((
            i,
            SetWatches {
                relative_zxid,
                data_watches,
                exist_watches,
                child_watches,
                persistent_watches,
                persistent_recursive_watches,
            },
        ))
    }
}

/// The request record that follows a RequestHeader, by opcode.
fn request(h: RequestHeader) -> impl Fn(In<'_>) -> PResult<'_, Request> {
    move |i| {
        let none = |r: Request| Ok((i, r));
        match h.op {
            o if create_op(o) => create(o == op::CREATE_TTL)
                .map(|req| Request::Create { op: o, req })
                .parse(i),
            op::DELETE => delete.map(Request::Delete).parse(i),
            op::EXISTS => path_watch
                .map(|(path, watch)| Request::Exists { path, watch })
                .parse(i),
            op::GET_DATA => path_watch
                .map(|(path, watch)| Request::GetData { path, watch })
                .parse(i),
            op::SET_DATA => set_data.map(Request::SetData).parse(i),
            op::GET_ACL => ustring.map(|path| Request::GetAcl { path }).parse(i),
            op::SET_ACL => (ustring, vector(acl), int)
                .map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version }))
                .parse(i),
            op::GET_CHILDREN => path_watch
                .map(|(path, watch)| Request::GetChildren { path, watch })
                .parse(i),
            op::GET_CHILDREN2 => path_watch
                .map(|(path, watch)| Request::GetChildren2 { path, watch })
                .parse(i),
            op::SYNC => ustring.map(|path| Request::Sync { path }).parse(i),
            op::PING => none(Request::Ping),
            op::CHECK => path_int
                .map(|(path, version)| Request::Check { path, version })
                .parse(i),
            op::MULTI => multi.map(Request::Multi).parse(i),
            op::MULTI_READ => multi.map(Request::MultiRead).parse(i),
            // Answered ReconfigDisabled whatever it asks: the body is not looked at.
            op::RECONFIG => Ok((&[][..], Request::Reconfig)),
            op::CHECK_WATCHES => path_int
                .map(|(path, watcher_type)| Request::CheckWatches { path, watcher_type })
                .parse(i),
            op::REMOVE_WATCHES => path_int
                .map(|(path, watcher_type)| Request::RemoveWatches { path, watcher_type })
                .parse(i),
            op::DELETE_CONTAINER => ustring
                .map(|path| Request::DeleteContainer { path })
                .parse(i),
            op::AUTH => (int, ustring, bytes)
                .map(|(auth_type, scheme, auth)| Request::Auth {
                    auth_type,
                    scheme,
                    auth,
                })
                .parse(i),
            op::SET_WATCHES => set_watches(false).map(Request::SetWatches).parse(i),
            op::SET_WATCHES2 => set_watches(true).map(Request::SetWatches).parse(i),
            // Answered as a server without SASL: the token is not looked at.
            op::SASL => Ok((&[][..], Request::Sasl)),
            op::GET_EPHEMERALS => ustring
                .map(|prefix| Request::GetEphemerals { prefix })
                .parse(i),
            op::GET_ALL_CHILDREN_NUMBER => ustring
                .map(|path| Request::GetAllChildrenNumber { path })
                .parse(i),
            op::ADD_WATCH => path_int
                .map(|(path, mode)| Request::AddWatch { path, mode })
                .parse(i),
            op::WHO_AM_I => none(Request::WhoAmI),
            op::CLOSE_SESSION => none(Request::CloseSession),
            _ => fail(DecodeError::UnknownOp {
                xid: h.xid,
                op: h.op,
            }),
        }
    }
}

// ---- entry points -----------------------------------------------------------------------

/// Decodes a ConnectRequest frame body (without its length prefix): 44 bytes for a 16-byte
/// password, plus the optional readOnly byte (`read_only` is `Some` only if it is present).
pub fn decode_connect(body: &[u8]) -> Result<ConnectRequest, DecodeError> {
    let (rest, (protocol_version, last_zxid_seen, time_out, session_id, passwd)) =
        (int, long, int, long, bytes)
            .parse(body)
            .map_err(unwrap_err)?;
    let read_only = rest.first().map(|&b| b != 0);
    Ok(ConnectRequest {
        protocol_version,
        last_zxid_seen,
        time_out,
        session_id,
        passwd,
        read_only,
    })
}

/// Decodes a request frame body (without its length prefix): the RequestHeader, then the
/// record its opcode calls for. An unknown opcode is `UnknownOp` with the header's xid.
pub fn decode_request(body: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let (rest, (xid, op)) = (int, int).parse(body).map_err(unwrap_err)?;
    let header = RequestHeader { xid, op };
    // Trailing bytes after the record are ignored, as upstream's jute does.
    let (_trailing, req) = request(header)(rest).map_err(unwrap_err)?;
    Ok((header, req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::encode::{encode_connect_request, encode_request};
    use crate::proto::xid;

    /// Hex digits to bytes; spaces and `|` are ignored.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// The body of a frame, after checking its length prefix.
    fn body(frame: &[u8]) -> &[u8] {
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(len as usize, frame.len() - 4, "length prefix");
        &frame[4..]
    }

    fn request_frame(h: RequestHeader, r: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(&mut out, &h, r);
        out
    }

    fn acls() -> Vec<Acl> {
        vec![
            Acl {
                perms: 31,
                id: Id {
                    scheme: "world".into(),
                    id: "anyone".into(),
                },
            },
            Acl {
                perms: 1,
                id: Id {
                    scheme: "digest".into(),
                    id: "u:Zm9vYmFy".into(),
                },
            },
        ]
    }

    fn create_req(ttl: Option<i64>) -> CreateRequest {
        CreateRequest {
            path: "/a/b".into(),
            data: Some(b"hello".to_vec()),
            acl: acls(),
            flags: 3,
            ttl,
        }
    }

    fn all_multi_ops() -> Vec<MultiOp> {
        vec![
            MultiOp::Create {
                op: op::CREATE,
                req: create_req(None),
            },
            MultiOp::Create {
                op: op::CREATE2,
                req: CreateRequest {
                    data: None,
                    acl: vec![],
                    ..create_req(None)
                },
            },
            MultiOp::Create {
                op: op::CREATE_CONTAINER,
                req: create_req(None),
            },
            MultiOp::Create {
                op: op::CREATE_TTL,
                req: create_req(Some(60_000)),
            },
            MultiOp::Delete(DeleteRequest {
                path: "/d".into(),
                version: -1,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/s".into(),
                data: Some(vec![0, 1, 255]),
                version: 7,
            }),
            MultiOp::Check {
                path: "/c".into(),
                version: 3,
            },
            MultiOp::GetData { path: "/g".into() },
            MultiOp::GetChildren { path: "/".into() },
        ]
    }

    /// One request of every `Request` variant (and every opcode that maps to one).
    fn all_requests() -> Vec<(RequestHeader, Request)> {
        let h = |xid, op| RequestHeader { xid, op };
        let watches = SetWatches {
            relative_zxid: 0x1_0000_0005,
            data_watches: vec!["/a".into(), "/b".into()],
            exist_watches: vec!["/e".into()],
            child_watches: vec![],
            ..Default::default()
        };
        vec![
            (
                h(1, op::CREATE),
                Request::Create {
                    op: op::CREATE,
                    req: create_req(None),
                },
            ),
            (
                h(2, op::CREATE2),
                Request::Create {
                    op: op::CREATE2,
                    req: create_req(None),
                },
            ),
            (
                h(3, op::CREATE_CONTAINER),
                Request::Create {
                    op: op::CREATE_CONTAINER,
                    req: create_req(None),
                },
            ),
            (
                h(4, op::CREATE_TTL),
                Request::Create {
                    op: op::CREATE_TTL,
                    req: create_req(Some(-5)),
                },
            ),
            (
                h(5, op::DELETE),
                Request::Delete(DeleteRequest {
                    path: "/x".into(),
                    version: 4,
                }),
            ),
            (
                h(6, op::EXISTS),
                Request::Exists {
                    path: "/x".into(),
                    watch: true,
                },
            ),
            (
                h(7, op::GET_DATA),
                Request::GetData {
                    path: "/x".into(),
                    watch: false,
                },
            ),
            (
                h(8, op::SET_DATA),
                Request::SetData(SetDataRequest {
                    path: "/x".into(),
                    data: None,
                    version: -1,
                }),
            ),
            (h(9, op::GET_ACL), Request::GetAcl { path: "/x".into() }),
            (
                h(10, op::SET_ACL),
                Request::SetAcl(SetAclRequest {
                    path: "/x".into(),
                    acl: acls(),
                    version: 2,
                }),
            ),
            (
                h(11, op::GET_CHILDREN),
                Request::GetChildren {
                    path: "/".into(),
                    watch: true,
                },
            ),
            (
                h(12, op::GET_CHILDREN2),
                Request::GetChildren2 {
                    path: "/".into(),
                    watch: false,
                },
            ),
            (h(13, op::SYNC), Request::Sync { path: "/".into() }),
            (h(xid::PING, op::PING), Request::Ping),
            (
                h(14, op::CHECK),
                Request::Check {
                    path: "/x".into(),
                    version: 9,
                },
            ),
            (h(15, op::MULTI), Request::Multi(all_multi_ops())),
            (h(16, op::MULTI), Request::Multi(vec![])),
            (
                h(17, op::MULTI_READ),
                Request::MultiRead(all_multi_ops()[7..].to_vec()),
            ),
            (h(18, op::RECONFIG), Request::Reconfig),
            (
                h(19, op::CHECK_WATCHES),
                Request::CheckWatches {
                    path: "/x".into(),
                    watcher_type: 3,
                },
            ),
            (
                h(20, op::REMOVE_WATCHES),
                Request::RemoveWatches {
                    path: "/x".into(),
                    watcher_type: 1,
                },
            ),
            (
                h(21, op::DELETE_CONTAINER),
                Request::DeleteContainer { path: "/x".into() },
            ),
            (
                h(xid::AUTH, op::AUTH),
                Request::Auth {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: b"u:p".to_vec(),
                },
            ),
            (
                h(xid::SET_WATCHES, op::SET_WATCHES),
                Request::SetWatches(watches.clone()),
            ),
            (
                h(xid::SET_WATCHES, op::SET_WATCHES2),
                Request::SetWatches(SetWatches {
                    persistent_watches: vec!["/p".into()],
                    persistent_recursive_watches: vec!["/r".into(), "/r2".into()],
                    ..watches
                }),
            ),
            (h(22, op::SASL), Request::Sasl),
            (
                h(23, op::GET_EPHEMERALS),
                Request::GetEphemerals {
                    prefix: "/e".into(),
                },
            ),
            (
                h(24, op::GET_ALL_CHILDREN_NUMBER),
                Request::GetAllChildrenNumber { path: "/".into() },
            ),
            (
                h(25, op::ADD_WATCH),
                Request::AddWatch {
                    path: "/w".into(),
                    mode: 1,
                },
            ),
            (h(26, op::WHO_AM_I), Request::WhoAmI),
            (h(27, op::CLOSE_SESSION), Request::CloseSession),
            (
                h(28, op::GET_DATA),
                Request::GetData {
                    path: "/ünïcødé/☃".into(),
                    watch: true,
                },
            ),
        ]
    }

    fn connect_44() -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 30_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: None,
        }
    }

    fn connect_45() -> ConnectRequest {
        ConnectRequest {
            last_zxid_seen: 0x1_0000_0002,
            session_id: 0x0100_0000_0000_0001,
            passwd: (1..=16).collect(),
            read_only: Some(false),
            ..connect_44()
        }
    }

    #[test]
    fn every_request_variant_round_trips() {
        let requests = all_requests();
        // Every Request variant is covered (the match fails to compile when one is added).
        for (_, r) in &requests {
            match r {
                Request::Create { .. }
                | Request::Delete(_)
                | Request::Exists { .. }
                | Request::GetData { .. }
                | Request::SetData(_)
                | Request::GetAcl { .. }
                | Request::SetAcl(_)
                | Request::GetChildren { .. }
                | Request::GetChildren2 { .. }
                | Request::Sync { .. }
                | Request::Ping
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::MultiRead(_)
                | Request::Reconfig
                | Request::CheckWatches { .. }
                | Request::RemoveWatches { .. }
                | Request::DeleteContainer { .. }
                | Request::Auth { .. }
                | Request::SetWatches(_)
                | Request::Sasl
                | Request::GetEphemerals { .. }
                | Request::GetAllChildrenNumber { .. }
                | Request::AddWatch { .. }
                | Request::WhoAmI
                | Request::CloseSession => {}
            }
        }
        for (h, r) in requests {
            let frame = request_frame(h, &r);
            assert_eq!(decode_request(body(&frame)), Ok((h, r.clone())), "{r:?}");
        }
    }

    #[test]
    fn connect_round_trips_44_and_45_bytes() {
        for (c, len) in [
            (connect_44(), 44),
            (connect_45(), 45),
            (
                ConnectRequest {
                    read_only: Some(true),
                    ..connect_44()
                },
                45,
            ),
        ] {
            let mut out = Vec::new();
            encode_connect_request(&mut out, &c);
            assert_eq!(body(&out).len(), len);
            assert_eq!(decode_connect(body(&out)), Ok(c));
        }
    }

    #[test]
    fn connect_exact_bytes() {
        let b44 = hex(
            "0000002c | 00000000 | 0000000000000000 | 00007530 | 0000000000000000 | 00000010 \
             00000000000000000000000000000000",
        );
        let mut out = Vec::new();
        encode_connect_request(&mut out, &connect_44());
        assert_eq!(out, b44);
        assert_eq!(decode_connect(&b44[4..]), Ok(connect_44()));

        let b45 = hex(
            "0000002d | 00000000 | 0000000100000002 | 00007530 | 0100000000000001 | 00000010 \
             0102030405060708090a0b0c0d0e0f10 | 00",
        );
        let mut out = Vec::new();
        encode_connect_request(&mut out, &connect_45());
        assert_eq!(out, b45);
        assert_eq!(decode_connect(&b45[4..]), Ok(connect_45()));

        // Java's readBoolean: any non-zero byte is true; bytes after readOnly are ignored.
        let mut odd = b45[4..].to_vec();
        *odd.last_mut().unwrap() = 0x7f;
        odd.extend_from_slice(b"junk");
        assert_eq!(decode_connect(&odd).unwrap().read_only, Some(true));
        // A null password reads as empty.
        let null_pw = hex("00000000 0000000000000000 00001388 0000000000000000 ffffffff");
        assert_eq!(decode_connect(&null_pw).unwrap().passwd, Vec::<u8>::new());
    }

    #[test]
    fn ping_exact_bytes() {
        let ping = hex("00000008 fffffffe 0000000b");
        let h = RequestHeader { xid: -2, op: 11 };
        assert_eq!(request_frame(h, &Request::Ping), ping);
        assert_eq!(decode_request(&ping[4..]), Ok((h, Request::Ping)));
    }

    #[test]
    fn known_request_bytes() {
        // getData("/a", watch) with xid 1, and a create of "/n" with world:anyone ALL.
        let get = hex("00000001 00000004 | 00000002 2f61 | 01");
        assert_eq!(
            decode_request(&get),
            Ok((
                RequestHeader { xid: 1, op: 4 },
                Request::GetData {
                    path: "/a".into(),
                    watch: true
                }
            ))
        );
        let create = hex(
            "00000002 00000001 | 00000002 2f6e | 00000001 78 | 00000001 0000001f 00000005 776f726c64 \
             00000006 616e796f6e65 | 00000000",
        );
        let want = Request::Create {
            op: 1,
            req: CreateRequest {
                path: "/n".into(),
                data: Some(b"x".to_vec()),
                acl: vec![Acl {
                    perms: 31,
                    id: Id {
                        scheme: "world".into(),
                        id: "anyone".into(),
                    },
                }],
                flags: 0,
                ttl: None,
            },
        };
        assert_eq!(
            decode_request(&create),
            Ok((RequestHeader { xid: 2, op: 1 }, want.clone()))
        );
        assert_eq!(
            body(&request_frame(RequestHeader { xid: 2, op: 1 }, &want)),
            &create[..]
        );
    }

    #[test]
    fn every_strict_prefix_is_truncated() {
        for (h, r) in all_requests() {
            let frame = request_frame(h, &r);
            let full = body(&frame);
            for n in 0..full.len() {
                let got = decode_request(&full[..n]);
                if n >= 8 && matches!(r, Request::Reconfig | Request::Sasl) {
                    // Bodies not looked at.
                    assert_eq!(got, Ok((h, r.clone())));
                } else {
                    assert_eq!(got, Err(DecodeError::Truncated), "{r:?} cut at {n}");
                }
            }
        }
        for c in [connect_44(), connect_45()] {
            let mut out = Vec::new();
            encode_connect_request(&mut out, &c);
            let full = body(&out);
            for n in 0..44 {
                assert_eq!(
                    decode_connect(&full[..n]),
                    Err(DecodeError::Truncated),
                    "cut at {n}"
                );
            }
            assert_eq!(
                decode_connect(&full[..44]),
                Ok(ConnectRequest {
                    read_only: None,
                    ..c
                })
            );
        }
    }

    #[test]
    fn huge_counts_fail_fast_without_allocating() {
        // setWatches whose dataWatches count is i32::MAX, in a 20-byte frame.
        let sw = hex("fffffff8 00000065 | 0000000000000000 | 7fffffff");
        assert_eq!(sw.len(), 20);
        assert_eq!(decode_request(&sw), Err(DecodeError::Truncated));
        // A path, a data buffer and an ACL vector each claiming 2^31 - 1 bytes/elements.
        for b in [
            hex("00000001 00000004 | 7fffffff 2f"),
            hex("00000001 00000005 | 00000001 2f | 7fffffff 00"),
            hex("00000001 00000001 | 00000001 2f | ffffffff | 7fffffff 0000001f"),
        ] {
            assert_eq!(decode_request(&b), Err(DecodeError::Truncated));
        }
        assert_eq!(
            decode_connect(&hex(
                "00000000 0000000000000000 00001388 0000000000000000 7fffffff"
            )),
            Err(DecodeError::Truncated)
        );
        // A 1 MB frame of empty strings under a huge count: linear, then Truncated.
        let mut big = hex("fffffff8 00000065 | 0000000000000000 | 7fffffff");
        big.resize(1 << 20, 0);
        let t = std::time::Instant::now();
        assert_eq!(decode_request(&big), Err(DecodeError::Truncated));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn unknown_opcodes_keep_the_xid() {
        for code in [
            op::NOTIFICATION,
            10,
            23,
            99,
            108,
            500,
            op::CREATE_SESSION,
            op::ERROR,
            i32::MIN,
            i32::MAX,
        ] {
            let b = [&42i32.to_be_bytes()[..], &code.to_be_bytes(), b"whatever"].concat();
            assert_eq!(
                decode_request(&b),
                Err(DecodeError::UnknownOp { xid: 42, op: code })
            );
            assert_eq!(
                decode_request(&b[..8]),
                Err(DecodeError::UnknownOp { xid: 42, op: code })
            );
        }
        assert_eq!(
            decode_request(&hex("0000002a 000000")),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn nulls_negative_lengths_and_booleans() {
        // Null path reads as "", null data as None, null ACL vector as empty.
        let b = hex("00000001 00000001 | ffffffff | ffffffff | ffffffff | 00000000");
        let want = CreateRequest {
            path: String::new(),
            data: None,
            acl: vec![],
            flags: 0,
            ttl: None,
        };
        assert_eq!(
            decode_request(&b),
            Ok((
                RequestHeader { xid: 1, op: 1 },
                Request::Create { op: 1, req: want }
            ))
        );
        // Any other negative length is invalid, for strings, buffers and vectors alike.
        for b in [
            hex("00000001 00000004 | fffffffe 01"),
            hex("00000001 00000005 | 00000000 | 80000000 | 00000000"),
            hex("00000001 00000007 | 00000000 | fffffff0 | 00000000"),
        ] {
            assert_eq!(
                decode_request(&b),
                Err(DecodeError::Invalid("negative length"))
            );
        }
        // Any non-zero byte is true.
        let b = hex("00000001 00000003 | 00000001 2f | 80");
        assert_eq!(
            decode_request(&b).unwrap().1,
            Request::Exists {
                path: "/".into(),
                watch: true
            }
        );
        // Invalid UTF-8 is replaced, not rejected.
        let b = hex("00000001 00000009 | 00000002 2fff");
        assert_eq!(
            decode_request(&b).unwrap().1,
            Request::Sync {
                path: "/\u{fffd}".into()
            }
        );
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        for (h, r) in all_requests() {
            let mut b = body(&request_frame(h, &r)).to_vec();
            b.extend_from_slice(&[0xff; 7]);
            assert_eq!(decode_request(&b), Ok((h, r)));
        }
    }

    #[test]
    fn multi_details() {
        // An op type a multi cannot carry.
        let b = hex(
            "00000001 0000000e | 00000003 00 ffffffff | 00000002 2f61 00 | ffffffff 01 ffffffff",
        );
        assert_eq!(
            decode_request(&b),
            Err(DecodeError::Invalid("unknown op type in multi"))
        );
        // The terminating header is recognised by done alone; the watch flag of reads is dropped.
        let b = hex(
            "00000001 00000016 | 00000004 00 ffffffff | 00000002 2f61 01 | 00000000 7f 00000000",
        );
        assert_eq!(
            decode_request(&b).unwrap().1,
            Request::MultiRead(vec![MultiOp::GetData { path: "/a".into() }])
        );
        // A multi missing its terminating header is truncated.
        let b = hex("00000001 0000000e | 00000002 00 ffffffff | 00000002 2f61 00000000");
        assert_eq!(decode_request(&b), Err(DecodeError::Truncated));
        // The bytes of a two-op multi as a Java client writes them.
        let ops = vec![
            MultiOp::Create {
                op: 1,
                req: CreateRequest {
                    path: "/a".into(),
                    data: Some(vec![]),
                    acl: vec![],
                    flags: 0,
                    ttl: None,
                },
            },
            MultiOp::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1,
            }),
        ];
        let want = hex(
            "00000005 0000000e | 00000001 00 ffffffff | 00000002 2f61 00000000 00000000 00000000 | \
             00000002 00 ffffffff | 00000002 2f61 ffffffff | ffffffff 01 ffffffff",
        );
        let h = RequestHeader {
            xid: 5,
            op: op::MULTI,
        };
        assert_eq!(
            body(&request_frame(h, &Request::Multi(ops.clone()))),
            &want[..]
        );
        assert_eq!(decode_request(&want), Ok((h, Request::Multi(ops))));
    }

    #[test]
    fn set_watches_versions() {
        // setWatches (101) has three vectors, setWatches2 (105) five.
        let b = hex(
            "fffffff8 00000065 | 0000000000000007 | 00000001 00000002 2f61 | ffffffff | 00000000",
        );
        let want = SetWatches {
            relative_zxid: 7,
            data_watches: vec!["/a".into()],
            ..Default::default()
        };
        assert_eq!(
            decode_request(&b).unwrap().1,
            Request::SetWatches(want.clone())
        );
        let mut b2 = b.clone();
        b2[7] = 105;
        assert_eq!(decode_request(&b2), Err(DecodeError::Truncated));
        b2.extend_from_slice(&hex("00000000 00000001 00000002 2f62"));
        let want2 = SetWatches {
            persistent_recursive_watches: vec!["/b".into()],
            ..want
        };
        assert_eq!(decode_request(&b2).unwrap().1, Request::SetWatches(want2));
    }

    /// Client frames captured through a recording proxy in front of ZooKeeper 3.8.0: zkCli 3.8.0
    /// (connect, create, create -e, getEphemerals, getAllChildrenNumber, addWatch -m
    /// PERSISTENT_RECURSIVE, whoami, removewatches -a, get -w, set, ls -s, deleteall, quit),
    /// then kazoo (connect, digest auth, create, create -e -s, exists/get with watches, set,
    /// getACL, setACL, getChildren(2), sync, two transactions, recursive delete, close).
    const CAPTURED_CONNECTS: &[&str] = &[
        "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000",
        "0000002d000000000000000000000000000027100000000000000000000000100000000000000000000000000000000000",
    ];
    const CAPTURED_REQUESTS: &[&str] = &[
        "000000360000000100000001000000022f6a0000000568656c6c6f000000010000001f00000005776f726c6400000006616e796f6e6500000000",
        "000000360000000200000001000000062f6a2f6570680000000178000000010000001f00000005776f726c6400000006616e796f6e6500000001",
        "0000000e0000000300000067000000022f6a",
        "0000000d0000000400000068000000012f",
        "00000012000000050000006a000000022f6a00000001",
        "00000008000000060000006b",
        "000000120000000700000012000000022f6a00000003",
        "0000000f0000000800000004000000022f6a01",
        "000000180000000900000005000000022f6a000000027632ffffffff",
        "0000000f0000000a0000000c000000022f6a00",
        "0000000f0000000b00000008000000022f6a00",
        "000000130000000c00000008000000062f6a2f65706800",
        "0000003b0000000d0000000e0000000200ffffffff000000062f6a2f657068ffffffff0000000200ffffffff000000022f6affffffffffffffff01ffffffff",
        "000000080000000efffffff5",
        "0000001dfffffffc00000064000000000000000664696765737400000003753a70",
        "000000360000000100000001000000022f610000000568656c6c6f000000010000001f00000005776f726c6400000006616e796f6e6500000000",
        "000000330000000200000001000000042f612f6500000000000000010000001f00000005776f726c6400000006616e796f6e6500000003",
        "0000000f0000000300000003000000022f6101",
        "0000000f0000000400000004000000022f6101",
        "000000180000000500000005000000022f6100000002763200000000",
        "0000000e0000000600000006000000022f61",
        "0000005d0000000700000007000000022f61000000020000001f000000066469676573740000001e753a4a7137774d79412f7732566435574944414b6475344f49494645513d0000001f00000005776f726c6400000006616e796f6e65ffffffff",
        "0000000f0000000800000008000000022f6101",
        "0000000f000000090000000c000000022f6100",
        "0000000e0000000a00000009000000022f61",
        "000000880000000b0000000e0000000100ffffffff000000042f612f740000000178000000010000001f00000005776f726c6400000006616e796f6e65000000000000000d00ffffffff000000022f61000000010000000500ffffffff000000042f612f740000000179ffffffff0000000200ffffffff000000042f612f74ffffffffffffffff01ffffffff",
        "000000630000000c0000000e0000000100ffffffff000000042f612f750000000178000000010000001f00000005776f726c6400000006616e796f6e65000000000000000200ffffffff0000000c2f6e6f6e6578697374656e74ffffffffffffffff01ffffffff",
        "0000000f0000000d00000008000000022f6100",
        "0000001b0000000e000000080000000e2f612f653030303030303030303000",
        "0000001e0000000f000000020000000e2f612f6530303030303030303030ffffffff",
        "000000120000001000000002000000022f61ffffffff",
        "0000000800000011fffffff5",
    ];

    #[test]
    fn captured_client_frames_decode_and_reencode_identically() {
        for f in CAPTURED_CONNECTS.iter().map(|h| hex(h)) {
            let c = decode_connect(body(&f)).unwrap();
            assert_eq!(c.read_only, Some(false));
            let mut out = Vec::new();
            encode_connect_request(&mut out, &c);
            assert_eq!(out, f);
        }
        let mut decoded = Vec::new();
        for f in CAPTURED_REQUESTS.iter().map(|h| hex(h)) {
            let (h, r) = decode_request(body(&f)).unwrap();
            assert_eq!(request_frame(h, &r), f, "{r:?}");
            decoded.push(r);
        }
        assert_eq!(
            decoded[4],
            Request::AddWatch {
                path: "/j".into(),
                mode: 1
            }
        );
        assert_eq!(decoded[5], Request::WhoAmI);
        assert_eq!(
            decoded[6],
            Request::RemoveWatches {
                path: "/j".into(),
                watcher_type: 3
            }
        );
        assert_eq!(
            decoded[14],
            Request::Auth {
                auth_type: 0,
                scheme: "digest".into(),
                auth: b"u:p".to_vec()
            }
        );
        assert_eq!(
            decoded[25],
            Request::Multi(vec![
                MultiOp::Create {
                    op: 1,
                    req: CreateRequest {
                        path: "/a/t".into(),
                        data: Some(b"x".to_vec()),
                        acl: vec![Acl {
                            perms: 31,
                            id: Id {
                                scheme: "world".into(),
                                id: "anyone".into()
                            }
                        }],
                        flags: 0,
                        ttl: None,
                    },
                },
                MultiOp::Check {
                    path: "/a".into(),
                    version: 1
                },
                MultiOp::SetData(SetDataRequest {
                    path: "/a/t".into(),
                    data: Some(b"y".to_vec()),
                    version: -1
                }),
                MultiOp::Delete(DeleteRequest {
                    path: "/a/t".into(),
                    version: -1
                }),
            ])
        );
        assert_eq!(decoded.last(), Some(&Request::CloseSession));
    }
}
