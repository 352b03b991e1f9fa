//! The jute records of `zookeeper.jute` (3.8/3.9) as plain Rust data, and the decoded forms of
//! a whole request and a whole reply body. No parsing or encoding here (see `decode.rs`,
//! `encode.rs`); names follow upstream's record and field names.

/// `Id {ustring scheme; ustring id}`
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

/// `ACL {int perms; Id id}`
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

/// `Stat`, field for field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// `ConnectRequest`; `read_only` is `Some` only if the client sent the trailing byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

/// `ConnectResponse`; the `read_only` byte is written only when `Some`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

/// `RequestHeader {int xid; int type}`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

/// `ReplyHeader {int xid; long zxid; int err}`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// `CreateRequest` and `CreateTTLRequest` (ttl is `None` for the former).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    pub path: String,
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Vec<Acl>,
    pub version: i32,
}

/// `SetWatches` (xid -8, op 101) and `SetWatches2` (op 105: the last two vectors present).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data_watches: Vec<String>,
    pub exist_watches: Vec<String>,
    pub child_watches: Vec<String>,
    pub persistent_watches: Vec<String>,
    pub persistent_recursive_watches: Vec<String>,
}

/// One operation inside a `multi` (op 14) or `multiRead` (op 22) request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiOp {
    /// op 1, 15, 19 or 21 (`op` says which; TTL only for 21).
    Create {
        op: i32,
        req: CreateRequest,
    },
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check {
        path: String,
        version: i32,
    },
    GetData {
        path: String,
    },
    GetChildren {
        path: String,
    },
}

/// A decoded request body, by opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// create 1, create2 15, createContainer 19, createTTL 21.
    Create {
        op: i32,
        req: CreateRequest,
    },
    Delete(DeleteRequest),
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData(SetDataRequest),
    GetAcl {
        path: String,
    },
    SetAcl(SetAclRequest),
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    /// reconfig 16: decoded only to answer it as a server with reconfig disabled.
    Reconfig,
    CheckWatches {
        path: String,
        watcher_type: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    /// deleteContainer 20 (server-internal upstream; a client sending it gets Unimplemented).
    DeleteContainer {
        path: String,
    },
    Auth {
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    /// setWatches 101 or setWatches2 105.
    SetWatches(SetWatches),
    /// sasl 102: answered as a server without SASL.
    Sasl,
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

/// One result of a `multi`/`multiRead` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    /// type 1 + CreateResponse
    Create { path: String },
    /// type 15 + Create2Response
    Create2 { path: String, stat: Stat },
    /// type 2, no body
    Delete,
    /// type 5 + SetDataResponse
    SetData { stat: Stat },
    /// type 13, no body
    Check,
    /// type 4 + GetDataResponse (multiRead)
    GetData { data: Option<Vec<u8>>, stat: Stat },
    /// type 8 + GetChildrenResponse (multiRead)
    GetChildren { children: Vec<String> },
    /// type -1 + ErrorResponse
    Error { err: i32 },
}

/// `ClientInfo {ustring authScheme; ustring user}`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

/// A reply body (what follows the ReplyHeader when err is 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, setWatches, removeWatches, checkWatches, ping, auth, closeSession,
    /// and every error reply.
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    /// ExistsResponse, SetDataResponse, SetACLResponse, and check (standalone) all carry a Stat.
    Stat(Stat),
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    GetEphemerals {
        ephemerals: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    /// addWatch's body: ErrorResponse(0).
    ErrorResponse {
        err: i32,
    },
    WhoAmI {
        client_info: Vec<ClientInfo>,
    },
}

/// `WatcherEvent {int type; int state; ustring path}`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}
