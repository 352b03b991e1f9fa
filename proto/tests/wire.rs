//! Proves that synod-proto is wire-identical to upstream etcd.
//!
//! Three layers of evidence:
//! 1. Descriptor comparison: our compiled `FILE_DESCRIPTOR_SET` against etcd's own, unmodified
//!    `.proto` files (the copy shipped inside the `etcd-client` crate), compiled here with
//!    protox. Every message, field (name, number, label, type, type name, oneof, JSON name),
//!    enum value, service and method in the five etcd packages must match, in both directions.
//! 2. Cross-decoding: representative messages encoded with our types decode with etcd-client's
//!    generated types into the same value, re-encode to the same bytes, and come back.
//! 3. JSON: the grpc-gateway conventions (proto field names, 64-bit ints as strings, base64
//!    bytes, enum names, defaults omitted).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;

use prost::Message;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
};
use synod_proto::{authpb, etcdserverpb as pb, mvccpb, v3electionpb, v3lockpb};

/// The etcd packages whose definitions must match upstream exactly.
const ETCD_PACKAGES: &[&str] = &[
    "mvccpb",
    "authpb",
    "etcdserverpb",
    "v3electionpb",
    "v3lockpb",
];

/// Upstream files (relative to etcd-client's `proto/` directory) defining those packages.
const UPSTREAM_FILES: &[&str] = &[
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
];

// -----------------------------------------------------------------------------------------
// Locating the reference protos
// -----------------------------------------------------------------------------------------

/// Finds etcd-client's `proto/` directory: `$SYNOD_ETCD_PROTO_DIR` if set, otherwise the
/// newest `etcd-client-0.21.*` in the cargo registry sources. Panics (never skips) when the
/// reference cannot be found.
fn upstream_proto_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SYNOD_ETCD_PROTO_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join(UPSTREAM_FILES[2]).is_file(),
            "SYNOD_ETCD_PROTO_DIR={} does not contain {}",
            dir.display(),
            UPSTREAM_FILES[2]
        );
        return dir;
    }

    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set; set SYNOD_ETCD_PROTO_DIR");
    let registry_src = cargo_home.join("registry").join("src");

    let mut candidates: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    for index in std::fs::read_dir(&registry_src).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; set SYNOD_ETCD_PROTO_DIR",
            registry_src.display()
        )
    }) {
        let index = index.unwrap().path();
        let Ok(crates) = std::fs::read_dir(&index) else {
            continue;
        };
        for krate in crates {
            let path = krate.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix("etcd-client-0.21.") else {
                continue;
            };
            let Ok(patch) = version.parse::<u64>() else {
                continue;
            };
            let proto = path.join("proto");
            if proto.join(UPSTREAM_FILES[2]).is_file() {
                candidates.push((vec![0, 21, patch], proto));
            }
        }
    }
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).unwrap_or_else(|| {
        panic!(
            "etcd's reference protos not found: no etcd-client-0.21.*/proto under {} \
             (it is a dev-dependency, so `cargo fetch` should place it there); \
             or set SYNOD_ETCD_PROTO_DIR",
            registry_src.display()
        )
    })
}

fn upstream_descriptors() -> FileDescriptorSet {
    let dir = upstream_proto_dir();
    protox::compile(UPSTREAM_FILES, [&dir])
        .unwrap_or_else(|e| panic!("compiling upstream protos in {}: {e:?}", dir.display()))
}

fn our_descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(synod_proto::FILE_DESCRIPTOR_SET)
        .expect("FILE_DESCRIPTOR_SET decodes")
}

// -----------------------------------------------------------------------------------------
// Descriptor comparison
// -----------------------------------------------------------------------------------------

/// Everything a descriptor set declares in the etcd packages, keyed by full name.
#[derive(Default)]
struct Index {
    messages: BTreeMap<String, DescriptorProto>,
    enums: BTreeMap<String, EnumDescriptorProto>,
    services: BTreeMap<String, ServiceDescriptorProto>,
    /// Syntax of the file declaring each package ("proto3" decides packing of repeated scalars).
    syntax: BTreeMap<String, BTreeSet<String>>,
}

impl Index {
    fn new(fds: &FileDescriptorSet) -> Self {
        let mut index = Index::default();
        for file in &fds.file {
            let package = file.package().to_owned();
            if !ETCD_PACKAGES.contains(&package.as_str()) {
                continue;
            }
            index
                .syntax
                .entry(package.clone())
                .or_default()
                .insert(file.syntax().to_owned());
            let prefix = format!(".{package}");
            for message in &file.message_type {
                index.add_message(&prefix, message);
            }
            for e in &file.enum_type {
                index
                    .enums
                    .insert(format!("{prefix}.{}", e.name()), e.clone());
            }
            for s in &file.service {
                index
                    .services
                    .insert(format!("{prefix}.{}", s.name()), s.clone());
            }
        }
        index
    }

    fn add_message(&mut self, prefix: &str, message: &DescriptorProto) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for e in &message.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e.clone());
        }
        self.messages.insert(name, message.clone());
    }
}

/// The wire-relevant description of one field.
fn describe_field(message: &DescriptorProto, field: &FieldDescriptorProto) -> String {
    let oneof = field
        .oneof_index
        .map(|i| message.oneof_decl[i as usize].name().to_owned());
    let packed = field.options.as_ref().and_then(|o| o.packed);
    format!(
        "name={} label={:?} type={:?} type_name={:?} oneof={:?} json_name={:?} \
         proto3_optional={:?} packed={:?} default={:?} extendee={:?}",
        field.name(),
        field.label(),
        field.r#type(),
        field.type_name,
        oneof,
        field.json_name,
        field.proto3_optional,
        packed,
        field.default_value,
        field.extendee,
    )
}

fn compare_keys<V>(
    what: &str,
    ours: &BTreeMap<String, V>,
    upstream: &BTreeMap<String, V>,
    diffs: &mut Vec<String>,
) {
    for name in upstream.keys().filter(|k| !ours.contains_key(*k)) {
        diffs.push(format!(
            "{what} {name}: in upstream, missing from synod-proto"
        ));
    }
    for name in ours.keys().filter(|k| !upstream.contains_key(*k)) {
        diffs.push(format!("{what} {name}: in synod-proto, not in upstream"));
    }
}

fn compare_message(
    name: &str,
    ours: &DescriptorProto,
    up: &DescriptorProto,
    diffs: &mut Vec<String>,
) {
    let fields = |m: &DescriptorProto| -> BTreeMap<i32, String> {
        let mut by_number = BTreeMap::new();
        for f in &m.field {
            assert!(
                by_number.insert(f.number(), describe_field(m, f)).is_none(),
                "{name}: duplicate field number {}",
                f.number()
            );
        }
        by_number
    };
    let (of, uf) = (fields(ours), fields(up));
    for number in of.keys().chain(uf.keys()).collect::<BTreeSet<_>>() {
        match (of.get(number), uf.get(number)) {
            (Some(o), Some(u)) if o == u => {}
            (o, u) => diffs.push(format!(
                "message {name} field #{number}:\n    synod:    {o:?}\n    upstream: {u:?}"
            )),
        }
    }

    let oneofs = |m: &DescriptorProto| {
        m.oneof_decl
            .iter()
            .map(|o| o.name().to_owned())
            .collect::<Vec<_>>()
    };
    if oneofs(ours) != oneofs(up) {
        diffs.push(format!(
            "message {name}: oneofs {:?} vs upstream {:?}",
            oneofs(ours),
            oneofs(up)
        ));
    }
    let nested = |m: &DescriptorProto| {
        let mut v: Vec<_> = m.nested_type.iter().map(|n| n.name().to_owned()).collect();
        v.extend(m.enum_type.iter().map(|e| format!("enum {}", e.name())));
        v.sort();
        v
    };
    if nested(ours) != nested(up) {
        diffs.push(format!(
            "message {name}: nested {:?} vs upstream {:?}",
            nested(ours),
            nested(up)
        ));
    }
    let ranges = |m: &DescriptorProto| {
        (
            m.extension_range
                .iter()
                .map(|r| (r.start, r.end))
                .collect::<Vec<_>>(),
            m.reserved_range
                .iter()
                .map(|r| (r.start, r.end))
                .collect::<Vec<_>>(),
            m.reserved_name.clone(),
            m.options.as_ref().and_then(|o| o.map_entry),
        )
    };
    if ranges(ours) != ranges(up) {
        diffs.push(format!(
            "message {name}: extension/reserved/map_entry {:?} vs upstream {:?}",
            ranges(ours),
            ranges(up)
        ));
    }
}

fn compare_enum(
    name: &str,
    ours: &EnumDescriptorProto,
    up: &EnumDescriptorProto,
    diffs: &mut Vec<String>,
) {
    // Order matters only for the first value (the proto3 default), but keep it strict.
    let values = |e: &EnumDescriptorProto| {
        e.value
            .iter()
            .map(|v| (v.name().to_owned(), v.number()))
            .collect::<Vec<_>>()
    };
    if values(ours) != values(up) {
        diffs.push(format!(
            "enum {name}: {:?} vs upstream {:?}",
            values(ours),
            values(up)
        ));
    }
    let allow_alias = |e: &EnumDescriptorProto| e.options.as_ref().and_then(|o| o.allow_alias);
    if allow_alias(ours) != allow_alias(up) {
        diffs.push(format!("enum {name}: allow_alias differs"));
    }
}

fn compare_service(
    name: &str,
    ours: &ServiceDescriptorProto,
    up: &ServiceDescriptorProto,
    diffs: &mut Vec<String>,
) {
    let methods = |s: &ServiceDescriptorProto| {
        s.method
            .iter()
            .map(|m| {
                let signature = format!(
                    "({}{}) returns ({}{})",
                    if m.client_streaming() { "stream " } else { "" },
                    m.input_type(),
                    if m.server_streaming() { "stream " } else { "" },
                    m.output_type(),
                );
                (m.name().to_owned(), signature)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (om, um) = (methods(ours), methods(up));
    for method in om.keys().chain(um.keys()).collect::<BTreeSet<_>>() {
        match (om.get(method), um.get(method)) {
            (Some(o), Some(u)) if o == u => {}
            (o, u) => diffs.push(format!(
                "service {name} rpc {method}:\n    synod:    {o:?}\n    upstream: {u:?}"
            )),
        }
    }
}

#[test]
fn descriptors_match_upstream_etcd() {
    let ours = Index::new(&our_descriptors());
    let upstream = Index::new(&upstream_descriptors());

    // Guard against a vacuous comparison (e.g. a package filter that matched nothing).
    for index in [&ours, &upstream] {
        assert_eq!(
            index
                .syntax
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
            ETCD_PACKAGES.iter().copied().collect::<BTreeSet<_>>()
        );
        assert!(
            index.messages.len() > 100,
            "only {} messages indexed",
            index.messages.len()
        );
        assert_eq!(
            index.services.len(),
            8,
            "KV Watch Lease Cluster Maintenance Auth Election Lock"
        );
    }

    let mut diffs = Vec::new();
    for (package, syntax) in &ours.syntax {
        if Some(syntax) != upstream.syntax.get(package) {
            diffs.push(format!(
                "package {package}: syntax {syntax:?} vs upstream {:?}",
                upstream.syntax.get(package)
            ));
        }
    }
    compare_keys("message", &ours.messages, &upstream.messages, &mut diffs);
    compare_keys("enum", &ours.enums, &upstream.enums, &mut diffs);
    compare_keys("service", &ours.services, &upstream.services, &mut diffs);
    for (name, m) in &ours.messages {
        if let Some(u) = upstream.messages.get(name) {
            compare_message(name, m, u, &mut diffs);
        }
    }
    for (name, e) in &ours.enums {
        if let Some(u) = upstream.enums.get(name) {
            compare_enum(name, e, u, &mut diffs);
        }
    }
    for (name, s) in &ours.services {
        if let Some(u) = upstream.services.get(name) {
            compare_service(name, s, u, &mut diffs);
        }
    }

    assert!(
        diffs.is_empty(),
        "synod-proto differs from upstream etcd in {} place(s):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn descriptor_set_is_complete() {
    let fds = our_descriptors();
    let packages: BTreeSet<_> = fds.file.iter().map(|f| f.package().to_owned()).collect();
    for package in ETCD_PACKAGES.iter().chain(&["synodpeer"]) {
        assert!(
            packages.contains(*package),
            "FILE_DESCRIPTOR_SET lacks package {package}"
        );
    }
    // The etcdserverpb import path that peer.proto relies on.
    assert!(fds
        .file
        .iter()
        .any(|f| f.name() == "etcdserverpb/rpc.proto"));
}

// -----------------------------------------------------------------------------------------
// Cross-decoding with etcd-client's generated types
// -----------------------------------------------------------------------------------------

/// Encodes `ours`, decodes the bytes as upstream's type, and checks that nothing was lost or
/// reinterpreted: same Debug rendering (same field names and values), identical re-encoding,
/// and a clean trip back into our type.
fn assert_wire_identical<Ours, Theirs>(ours: &Ours)
where
    Ours: Message + Default + Debug + PartialEq,
    Theirs: Message + Default + Debug,
{
    let their_bytes = assert_wire_compatible::<Ours, Theirs>(ours);
    assert_eq!(
        their_bytes,
        ours.encode_to_vec(),
        "upstream re-encoding differs"
    );
}

/// Like [`assert_wire_identical`] minus the byte-equality check; returns the bytes produced by
/// upstream's type.
fn assert_wire_compatible<Ours, Theirs>(ours: &Ours) -> Vec<u8>
where
    Ours: Message + Default + Debug + PartialEq,
    Theirs: Message + Default + Debug,
{
    let bytes = ours.encode_to_vec();
    let theirs = Theirs::decode(bytes.as_slice()).expect("upstream type decodes our bytes");
    assert_eq!(
        format!("{ours:#?}"),
        format!("{theirs:#?}"),
        "decoded values differ"
    );
    let their_bytes = theirs.encode_to_vec();
    let back = Ours::decode(their_bytes.as_slice()).expect("our type decodes upstream bytes");
    assert_eq!(&back, ours);
    their_bytes
}

fn header() -> pb::ResponseHeader {
    pb::ResponseHeader {
        cluster_id: u64::MAX - 7,
        member_id: 0x8e9e_05c5_2164_694d,
        revision: 42,
        raft_term: 9,
    }
}

fn kv(key: &str, value: &str, rev: i64) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: rev - 1,
        mod_revision: rev,
        version: 2,
        value: value.as_bytes().to_vec(),
        lease: 0x694d_7b3a_1f2e_0001,
    }
}

fn range_request() -> pb::RangeRequest {
    pb::RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 10,
        revision: 7,
        sort_order: pb::range_request::SortOrder::Descend as i32,
        sort_target: pb::range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    }
}

#[test]
fn range_request_all_fields() {
    assert_wire_identical::<_, etcd_client::proto::PbRangeRequest>(&range_request());
}

#[test]
fn txn_request_nested() {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    use pb::request_op::Request;

    let txn = pb::TxnRequest {
        compare: vec![
            pb::Compare {
                result: CompareResult::NotEqual as i32,
                target: CompareTarget::Mod as i32,
                key: b"k".to_vec(),
                range_end: b"l".to_vec(), // field 64: a two-byte tag
                target_union: Some(TargetUnion::ModRevision(5)),
            },
            pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: b"v".to_vec(),
                range_end: vec![],
                target_union: Some(TargetUnion::Value(b"x".to_vec())),
            },
            pb::Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Lease as i32,
                key: b"l".to_vec(),
                range_end: vec![0],
                target_union: Some(TargetUnion::Lease(0)), // explicit zero in a oneof is kept
            },
        ],
        success: vec![
            pb::RequestOp {
                request: Some(Request::RequestRange(range_request())),
            },
            pb::RequestOp {
                request: Some(Request::RequestPut(pb::PutRequest {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    lease: 3,
                    prev_kv: true,
                    ignore_value: false,
                    ignore_lease: true,
                })),
            },
            pb::RequestOp {
                request: Some(Request::RequestTxn(pb::TxnRequest {
                    compare: vec![],
                    success: vec![pb::RequestOp {
                        request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                            key: b"d".to_vec(),
                            range_end: b"e".to_vec(),
                            prev_kv: true,
                        })),
                    }],
                    failure: vec![],
                })),
            },
        ],
        failure: vec![pb::RequestOp {
            request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: b"x".to_vec(),
                range_end: vec![],
                prev_kv: false,
            })),
        }],
    };
    assert_wire_identical::<_, etcd_client::proto::PbTxnRequest>(&txn);

    // Compare.range_end really is tag 64: key (64 << 3 | 2) = 514 = varint 0x82 0x04.
    let only_range_end = pb::Compare {
        range_end: b"e".to_vec(),
        ..Default::default()
    };
    assert_eq!(only_range_end.encode_to_vec(), [0x82, 0x04, 0x01, b'e']);
}

#[test]
fn txn_response_nested() {
    use pb::response_op::Response;
    let resp = pb::TxnResponse {
        header: Some(header()),
        succeeded: true,
        responses: vec![
            pb::ResponseOp {
                response: Some(Response::ResponseRange(pb::RangeResponse {
                    header: Some(header()),
                    kvs: vec![kv("a", "1", 3), kv("b", "2", 4)],
                    more: true,
                    count: 2,
                })),
            },
            pb::ResponseOp {
                response: Some(Response::ResponsePut(pb::PutResponse {
                    header: Some(header()),
                    prev_kv: Some(kv("a", "0", 2)),
                })),
            },
            pb::ResponseOp {
                response: Some(Response::ResponseDeleteRange(pb::DeleteRangeResponse {
                    header: Some(header()),
                    deleted: 1,
                    prev_kvs: vec![kv("c", "3", 5)],
                })),
            },
            pb::ResponseOp {
                response: Some(Response::ResponseTxn(pb::TxnResponse {
                    header: Some(header()),
                    succeeded: false,
                    responses: vec![],
                })),
            },
        ],
    };
    assert_wire_identical::<_, etcd_client::proto::PbTxnResponse>(&resp);
}

#[test]
fn put_request_and_response() {
    let req = pb::PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        lease: 0x1234,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    assert_wire_identical::<_, etcd_client::proto::PbPutRequest>(&req);

    let resp = pb::PutResponse {
        header: Some(header()),
        prev_kv: Some(kv("foo", "old", 11)),
    };
    assert_wire_identical::<_, etcd_client::proto::PbPutResponse>(&resp);
}

#[test]
fn watch_request_and_response() {
    use pb::watch_request::RequestUnion;

    let create = pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            start_revision: 100,
            progress_notify: true,
            filters: vec![
                pb::watch_create_request::FilterType::Noput as i32,
                pb::watch_create_request::FilterType::Nodelete as i32,
            ],
            prev_kv: true,
            watch_id: 77,
            fragment: true,
        })),
    };
    // `filters` is the one field where etcd-client's *encoding* differs from etcd's: proto3
    // packs repeated enums, and etcd's Go code does (`protobuf:"varint,5,rep,packed,..."`), but
    // prost-build 0.14 emits `packed = "false"` for any repeated scalar that carries field
    // options, and upstream's .proto annotates `filters` with `etcd_version_field`. Every
    // protobuf decoder must accept both forms, so the two stay wire-compatible; we encode
    // packed, like etcd itself.
    let their_bytes = assert_wire_compatible::<_, etcd_client::proto::PbWatchRequest>(&create);
    let ours = create.encode_to_vec();
    let packed = [0x2a, 0x02, 0x00, 0x01]; // field 5, length-delimited, [NOPUT, NODELETE]
    let unpacked = [0x28, 0x00, 0x28, 0x01]; // field 5 varint, twice
    assert!(ours.windows(4).any(|w| w == packed), "{ours:?}");
    assert!(
        their_bytes.windows(4).any(|w| w == unpacked),
        "{their_bytes:?}"
    );
    // Without filters the encodings coincide.
    let mut plain = create.clone();
    if let Some(RequestUnion::CreateRequest(c)) = plain.request_union.as_mut() {
        c.filters.clear();
    }
    assert_wire_identical::<_, etcd_client::proto::PbWatchRequest>(&plain);

    let cancel = pb::WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id: 77,
        })),
    };
    assert_wire_identical::<_, etcd_client::proto::PbWatchRequest>(&cancel);
    let progress = pb::WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
    };
    assert_wire_identical::<_, etcd_client::proto::PbWatchRequest>(&progress);
    assert_eq!(progress.encode_to_vec(), [0x1a, 0x00]);

    let resp = pb::WatchResponse {
        header: Some(header()),
        watch_id: 77,
        created: true,
        canceled: true,
        compact_revision: 12,
        cancel_reason: "compacted".into(),
        fragment: true,
        events: vec![
            mvccpb::Event {
                r#type: mvccpb::event::EventType::Put as i32,
                kv: Some(kv("a", "1", 13)),
                prev_kv: Some(kv("a", "0", 12)),
            },
            mvccpb::Event {
                r#type: mvccpb::event::EventType::Delete as i32,
                kv: Some(mvccpb::KeyValue {
                    key: b"b".to_vec(),
                    mod_revision: 14,
                    ..Default::default()
                }),
                prev_kv: None,
            },
        ],
    };
    assert_wire_identical::<_, etcd_client::proto::PbWatchResponse>(&resp);
}

#[test]
fn lease_messages() {
    let grant = pb::LeaseGrantRequest {
        ttl: 60,
        id: 0x7fff_0000_0000_0001,
    };
    assert_wire_identical::<_, etcd_client::proto::PbLeaseGrantRequest>(&grant);
    let granted = pb::LeaseGrantResponse {
        header: Some(header()),
        id: 5,
        ttl: 60,
        error: "e".into(),
    };
    assert_wire_identical::<_, etcd_client::proto::PbLeaseGrantResponse>(&granted);
    let ttl = pb::LeaseTimeToLiveResponse {
        header: Some(header()),
        id: 5,
        ttl: -1,
        granted_ttl: 60,
        keys: vec![b"k1".to_vec(), b"k2".to_vec()],
    };
    assert_wire_identical::<_, etcd_client::proto::PbLeaseTimeToLiveResponse>(&ttl);
    let leases = pb::LeaseLeasesResponse {
        header: Some(header()),
        leases: vec![pb::LeaseStatus { id: 1 }, pb::LeaseStatus { id: 2 }],
    };
    assert_wire_identical::<_, etcd_client::proto::PbLeaseLeasesResponse>(&leases);
}

#[test]
fn maintenance_messages() {
    let status = pb::StatusResponse {
        header: Some(header()),
        version: "3.6.0".into(),
        db_size: 1 << 20,
        leader: 0x8e9e_05c5_2164_694d,
        raft_index: 100,
        raft_term: 3,
        raft_applied_index: 99,
        errors: vec!["NOSPACE".into()],
        db_size_in_use: 1 << 19,
        is_learner: true,
        storage_version: "3.6.0".into(),
        db_size_quota: 2 << 30,
        downgrade_info: Some(pb::DowngradeInfo {
            enabled: true,
            target_version: "3.5.0".into(),
        }),
    };
    assert_wire_identical::<_, etcd_client::proto::PbStatusResponse>(&status);

    let hash = pb::HashKvResponse {
        header: Some(header()),
        hash: u32::MAX,
        compact_revision: 3,
        hash_revision: 9,
    };
    assert_wire_identical::<_, etcd_client::proto::PbHashKvResponse>(&hash);

    let alarm = pb::AlarmResponse {
        header: Some(header()),
        alarms: vec![pb::AlarmMember {
            member_id: 1,
            alarm: pb::AlarmType::Corrupt as i32,
        }],
    };
    assert_wire_identical::<_, etcd_client::proto::PbAlarmResponse>(&alarm);

    let snap = pb::SnapshotResponse {
        header: Some(header()),
        remaining_bytes: 10,
        blob: vec![1, 2, 3],
        version: "3.6.0".into(),
    };
    assert_wire_identical::<_, etcd_client::proto::PbSnapshotResponse>(&snap);

    let downgrade = pb::DowngradeRequest {
        action: pb::downgrade_request::DowngradeAction::Enable as i32,
        version: "3.5".into(),
    };
    assert_wire_identical::<_, etcd_client::proto::PbDowngradeRequest>(&downgrade);
}

#[test]
fn cluster_messages() {
    let member = |id: u64, learner: bool| pb::Member {
        id,
        name: format!("m{id}"),
        peer_ur_ls: vec![format!("http://10.0.0.{id}:2380")],
        client_ur_ls: vec![
            format!("http://10.0.0.{id}:2379"),
            format!("https://10.0.0.{id}:2379"),
        ],
        is_learner: learner,
    };
    let list = pb::MemberListResponse {
        header: Some(header()),
        members: vec![member(1, false), member(2, true)],
    };
    assert_wire_identical::<_, etcd_client::proto::PbMemberListResponse>(&list);
    let add = pb::MemberAddResponse {
        header: Some(header()),
        member: Some(member(3, true)),
        members: vec![member(1, false), member(3, true)],
    };
    assert_wire_identical::<_, etcd_client::proto::PbMemberAddResponse>(&add);
    let req = pb::MemberListRequest { linearizable: true };
    assert_wire_identical::<_, etcd_client::proto::PbMemberListRequest>(&req);
}

#[test]
fn auth_election_and_lock_messages() {
    let grant = pb::AuthRoleGrantPermissionRequest {
        name: "r".into(),
        perm: Some(authpb::Permission {
            perm_type: authpb::permission::Type::Readwrite as i32,
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        }),
    };
    assert_wire_identical::<_, etcd_client::proto::PbAuthRoleGrantPermissionRequest>(&grant);
    let add = pb::AuthUserAddRequest {
        name: "u".into(),
        password: "p".into(),
        options: Some(authpb::UserAddOptions { no_password: true }),
        hashed_password: "h".into(),
    };
    assert_wire_identical::<_, etcd_client::proto::PbAuthUserAddRequest>(&add);

    let campaign = v3electionpb::CampaignResponse {
        header: Some(header()),
        leader: Some(v3electionpb::LeaderKey {
            name: b"e".to_vec(),
            key: b"e/1".to_vec(),
            rev: 4,
            lease: 5,
        }),
    };
    assert_wire_identical::<_, etcd_client::proto::PbCampaignResponse>(&campaign);
    let leader = v3electionpb::LeaderResponse {
        header: Some(header()),
        kv: Some(kv("e/1", "me", 4)),
    };
    assert_wire_identical::<_, etcd_client::proto::PbLeaderResponse>(&leader);

    let lock = v3lockpb::LockResponse {
        header: Some(header()),
        key: b"l/1".to_vec(),
    };
    assert_wire_identical::<_, etcd_client::proto::PbLockResponse>(&lock);
}

// -----------------------------------------------------------------------------------------
// JSON (grpc-gateway conventions)
// -----------------------------------------------------------------------------------------

#[test]
fn json_put_request() {
    let put = pb::PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&put).unwrap(),
        r#"{"key":"Zm9v","value":"YmFy"}"#
    );
    let back: pb::PutRequest = serde_json::from_str(r#"{"key":"Zm9v","value":"YmFy"}"#).unwrap();
    assert_eq!(back, put);
    // Defaults are omitted entirely.
    assert_eq!(
        serde_json::to_string(&pb::PutRequest::default()).unwrap(),
        "{}"
    );
}

#[test]
fn json_range_response() {
    let resp = pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        }),
        kvs: vec![mvccpb::KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 1,
            value: b"bar".to_vec(),
            lease: 0,
        }],
        more: false,
        count: 1,
    };
    let json = serde_json::to_string(&resp).unwrap();
    assert!(json.contains(r#""create_revision":"2""#), "{json}");
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        serde_json::json!({
            "header": {"cluster_id": "1", "member_id": "2", "revision": "3", "raft_term": "4"},
            "kvs": [{"key": "Zm9v", "create_revision": "2", "mod_revision": "3", "version": "1", "value": "YmFy"}],
            "count": "1"
        })
    );
    let back: pb::RangeResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn json_conventions() {
    // Enums by name; upstream's odd-cased field names stay as written in the .proto.
    let range = pb::RangeRequest {
        key: b"a".to_vec(),
        sort_order: pb::range_request::SortOrder::Descend as i32,
        sort_target: pb::range_request::SortTarget::Mod as i32,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&range).unwrap(),
        serde_json::json!({"key": "YQ==", "sort_order": "DESCEND", "sort_target": "MOD"})
    );
    let grant = pb::LeaseGrantResponse {
        id: 5,
        ttl: 60,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&grant).unwrap(),
        serde_json::json!({"ID": "5", "TTL": "60"})
    );
    let member = pb::Member {
        id: 1,
        peer_ur_ls: vec!["http://a:2380".into()],
        is_learner: true,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&member).unwrap(),
        serde_json::json!({"ID": "1", "peerURLs": ["http://a:2380"], "isLearner": true})
    );
    // uint32 is a plain number.
    let hash = pb::HashResponse {
        hash: 7,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(hash).unwrap(),
        serde_json::json!({"hash": 7})
    );
    // Oneof members appear under their own field names.
    let watch = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 3 },
        )),
    };
    assert_eq!(
        serde_json::to_value(&watch).unwrap(),
        serde_json::json!({"cancel_request": {"watch_id": "3"}})
    );

    // Parsing accepts both spellings, numbers or strings for 64-bit ints, enum names or
    // numbers, and ignores unknown fields, as the gateway does.
    let parsed: pb::RangeRequest = serde_json::from_str(
        r#"{"key":"YQ==","rangeEnd":"Yg==","limit":5,"revision":"6","sort_order":2,"sortTarget":"MOD","no_such_field":1}"#,
    )
    .unwrap();
    assert_eq!(parsed.range_end, b"b");
    assert_eq!((parsed.limit, parsed.revision), (5, 6));
    assert_eq!(
        parsed.sort_order,
        pb::range_request::SortOrder::Descend as i32
    );
    assert_eq!(
        parsed.sort_target,
        pb::range_request::SortTarget::Mod as i32
    );
    let kv: mvccpb::KeyValue =
        serde_json::from_str(r#"{"createRevision":"2","mod_revision":3}"#).unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (2, 3));
}
