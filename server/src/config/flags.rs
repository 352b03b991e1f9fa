//! The etcd 3.4 flag table and a Go-`flag`-compatible command-line parser.
//!
//! Why not clap: etcd's command line follows Go's `flag` package, which
//! differs from GNU/clap conventions in ways scripts depend on: long
//! names take one *or* two dashes (`-name x` == `--name x`), a boolean is
//! only ever `--flag` or `--flag=value` (a bare bool never consumes the
//! next argument, so `--force-new-cluster false` leaves `false` as a
//! positional), parsing stops at the first non-flag, `-h`/`-help` are
//! special only when undefined, and the error texts (`flag provided but
//! not defined: -foo`, ...) are part of the observable interface.  A
//! table plus ~80 lines of parser reproduces that exactly.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};

use super::go::{self, quote, NumError};
use super::urls::{parse_url_list, ListenUrl};

/// How a flag's value is parsed (and which Go type backs it, for the
/// config-file error texts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Go `bool`; `--flag` alone means true.
    Bool,
    /// Go `string`.
    Str,
    /// Go `uint` / `uint64` (base-0 `strconv.ParseUint`, 64 bits).
    Uint,
    /// etcd's `uint32Value` (raw strconv error text).
    Uint32,
    /// Go `int` / `int64` (base-0 `strconv.ParseInt`, 64 bits).
    Int,
    /// Go `time.Duration` in `time.ParseDuration` syntax ("10s", "100ms").
    Duration,
    /// etcd `UniqueURLs` with the empty string as allowed exception:
    /// comma-separated URL list; an empty value leaves the list as is.
    Urls,
    /// etcd `UniqueURLs` with `*` as allowed exception (`--cors`).
    Cors,
    /// etcd `UniqueStringsValue`: comma list, de-duplicated and sorted.
    UniqueStrings,
    /// etcd `StringsValue`: comma list as given.
    Strings,
    /// etcd `SelectiveStringValue`: one of a fixed set.
    Choice(&'static [&'static str]),
    /// Synod: a `host:port` socket address, or empty for "disabled".
    SocketAddr,
    /// etcd `IgnoredFlag`: boolean-style, any value, logs a warning.
    Ignored,
}

/// One row of the flag table.
#[derive(Debug)]
pub struct FlagSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Default, in the flag's own syntax.
    pub default: &'static str,
    /// Whether Synod acts on the value.  Unhonoured flags are accepted,
    /// parsed and validated, and reported when set.
    pub honoured: bool,
    /// Help section.
    pub section: Section,
    pub help: &'static str,
    /// Go type name as etcd's config-file decoder reports it, or `None`
    /// when the key cannot be set from a config file.
    pub file_type: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Member,
    Clustering,
    Security,
    Auth,
    Profiling,
    Logging,
    Proxy,
    Experimental,
    Unsafe,
    Deprecated,
    Synod,
    Hidden,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Member => "Member",
            Section::Clustering => "Clustering",
            Section::Security => "Security",
            Section::Auth => "Auth",
            Section::Profiling => "Profiling and Monitoring",
            Section::Logging => "Logging",
            Section::Proxy => "v2 Proxy (accepted, not supported by Synod)",
            Section::Experimental => "Experimental feature",
            Section::Unsafe => "Unsafe feature",
            Section::Deprecated => "TO BE DEPRECATED",
            Section::Synod => "Synod",
            Section::Hidden => "",
        }
    }
}

pub const CLUSTER_STATES: &[&str] = &["new", "existing"];
pub const FALLBACKS: &[&str] = &["proxy", "exit"];
pub const PROXY_MODES: &[&str] = &["off", "readonly", "on"];

macro_rules! flag {
    ($name:literal, $kind:expr, $default:literal, $honoured:literal, $section:ident, $ft:expr, $help:literal) => {
        FlagSpec {
            name: $name,
            kind: $kind,
            default: $default,
            honoured: $honoured,
            section: Section::$section,
            help: $help,
            file_type: $ft,
        }
    };
}

use Kind::*;
const S: Option<&str> = Some("string");
const B: Option<&str> = Some("bool");
const U: Option<&str> = Some("uint");
const D: Option<&str> = Some("time.Duration");
const L: Option<&str> = Some("[]string");
const NO: Option<&str> = None;

/// Every flag etcd 3.4's `etcd` server accepts (etcdmain/config.go
/// `newConfig`), plus Synod's own.  Order is help order.
pub static FLAGS: &[FlagSpec] = &[
    // Member
    flag!("name", Str, "default", true, Member, S, "Human-readable name for this member."),
    flag!("data-dir", Str, "", true, Member, S, "Path to the data directory (default '${name}.etcd')."),
    flag!("wal-dir", Str, "", true, Member, S, "Path to the dedicated wal directory."),
    flag!("snapshot-count", Uint, "100000", true, Member, Some("uint64"), "Number of committed transactions to trigger a snapshot to disk."),
    flag!("heartbeat-interval", Uint, "100", true, Member, U, "Time (in milliseconds) of a heartbeat interval."),
    flag!("election-timeout", Uint, "1000", true, Member, U, "Time (in milliseconds) for an election to timeout."),
    flag!("initial-election-tick-advance", Bool, "true", false, Member, B, "Whether to fast-forward initial election ticks on boot for faster election."),
    flag!("listen-peer-urls", Urls, "http://localhost:2380", true, Member, S, "List of URLs to listen on for peer traffic."),
    flag!("listen-client-urls", Urls, "http://localhost:2379", true, Member, S, "List of URLs to listen on for client traffic."),
    flag!("max-snapshots", Uint, "5", false, Member, U, "Maximum number of snapshot files to retain (0 is unlimited)."),
    flag!("max-wals", Uint, "5", false, Member, U, "Maximum number of wal files to retain (0 is unlimited)."),
    flag!("quota-backend-bytes", Int, "0", true, Member, Some("int64"), "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota)."),
    flag!("backend-batch-interval", Duration, "0s", false, Member, D, "Maximum time before committing the backend transaction."),
    flag!("backend-batch-limit", Int, "0", false, Member, Some("int"), "Maximum operations before committing the backend transaction."),
    flag!("max-txn-ops", Uint, "128", true, Member, U, "Maximum number of operations permitted in a transaction."),
    flag!("max-request-bytes", Uint, "1572864", true, Member, U, "Maximum client request size in bytes the server will accept."),
    flag!("max-concurrent-streams", Uint32, "4294967295", false, Member, Some("uint32"), "Maximum concurrent streams that each client can open at a time."),
    flag!("grpc-keepalive-min-time", Duration, "5s", false, Member, D, "Minimum duration interval that a client should wait before pinging server."),
    flag!("grpc-keepalive-interval", Duration, "2h", false, Member, D, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."),
    flag!("grpc-keepalive-timeout", Duration, "20s", false, Member, D, "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    // Clustering
    flag!("initial-advertise-peer-urls", Urls, "http://localhost:2380", true, Clustering, S, "List of this member's peer URLs to advertise to the rest of the cluster."),
    flag!("initial-cluster", Str, "default=http://localhost:2380", true, Clustering, S, "Initial cluster configuration for bootstrapping."),
    flag!("initial-cluster-state", Choice(CLUSTER_STATES), "new", true, Clustering, S, "Initial cluster state ('new' or 'existing')."),
    flag!("initial-cluster-token", Str, "etcd-cluster", true, Clustering, S, "Initial cluster token for the etcd cluster during bootstrap."),
    flag!("advertise-client-urls", Urls, "http://localhost:2379", true, Clustering, S, "List of this member's client URLs to advertise to the public."),
    flag!("discovery", Str, "", false, Clustering, S, "Discovery URL used to bootstrap the cluster."),
    flag!("discovery-fallback", Choice(FALLBACKS), "proxy", false, Clustering, S, "Expected behavior ('exit' or 'proxy') when discovery services fails."),
    flag!("discovery-proxy", Str, "", false, Clustering, S, "HTTP proxy to use for traffic to discovery service."),
    flag!("discovery-srv", Str, "", false, Clustering, S, "DNS srv domain used to bootstrap the cluster."),
    flag!("discovery-srv-name", Str, "", false, Clustering, S, "Suffix to the dns srv name queried when bootstrapping."),
    flag!("strict-reconfig-check", Bool, "true", false, Clustering, B, "Reject reconfiguration requests that would cause quorum loss."),
    flag!("pre-vote", Bool, "false", false, Clustering, B, "Enable to run an additional Raft election phase."),
    flag!("auto-compaction-retention", Str, "0", true, Clustering, S, "Auto compaction retention length. 0 means disable auto compaction."),
    flag!("auto-compaction-mode", Str, "periodic", true, Clustering, S, "Interpret 'auto-compaction-retention' one of: periodic|revision."),
    flag!("enable-v2", Bool, "false", false, Clustering, B, "Accept etcd V2 client requests."),
    // Security
    flag!("cert-file", Str, "", true, Security, NO, "Path to the client server TLS cert file."),
    flag!("key-file", Str, "", true, Security, NO, "Path to the client server TLS key file."),
    flag!("client-cert-auth", Bool, "false", true, Security, NO, "Enable client cert authentication."),
    flag!("client-crl-file", Str, "", true, Security, NO, "Path to the client certificate revocation list file."),
    flag!("client-cert-allowed-hostname", Str, "", false, Security, NO, "Allowed TLS hostname for client cert authentication."),
    flag!("trusted-ca-file", Str, "", true, Security, NO, "Path to the client server TLS trusted CA cert file."),
    flag!("auto-tls", Bool, "false", true, Security, NO, "Client TLS using generated certificates."),
    flag!("peer-cert-file", Str, "", true, Security, NO, "Path to the peer server TLS cert file."),
    flag!("peer-key-file", Str, "", true, Security, NO, "Path to the peer server TLS key file."),
    flag!("peer-client-cert-auth", Bool, "false", true, Security, NO, "Enable peer client cert authentication."),
    flag!("peer-trusted-ca-file", Str, "", true, Security, NO, "Path to the peer server TLS trusted CA file."),
    flag!("peer-cert-allowed-cn", Str, "", false, Security, NO, "Required CN for client certs connecting to the peer endpoint."),
    flag!("peer-cert-allowed-hostname", Str, "", false, Security, NO, "Allowed TLS hostname for inter peer authentication."),
    flag!("peer-auto-tls", Bool, "false", true, Security, NO, "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided."),
    flag!("peer-crl-file", Str, "", true, Security, NO, "Path to the peer certificate revocation list file."),
    flag!("cipher-suites", Strings, "", false, Security, L, "Comma-separated list of supported TLS cipher suites between client/server and peers."),
    flag!("cors", Cors, "*", false, Security, S, "Comma-separated whitelist of origins for CORS (empty or * means allow all)."),
    flag!("host-whitelist", UniqueStrings, "*", false, Security, S, "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all)."),
    flag!("experimental-peer-skip-client-san-verification", Bool, "false", false, Security, B, "Skip verification of SAN field in client certificate for peer connections."),
    // Auth
    flag!("auth-token", Str, "simple", false, Auth, S, "Specify a v3 authentication token type and its options ('simple' or 'jwt')."),
    flag!("bcrypt-cost", Uint, "10", false, Auth, U, "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords."),
    flag!("auth-token-ttl", Uint, "300", false, Auth, U, "Time (in seconds) of the auth-token-ttl."),
    // Profiling and monitoring
    flag!("enable-pprof", Bool, "false", true, Profiling, B, "Enable runtime profiling data via HTTP server."),
    flag!("metrics", Str, "basic", true, Profiling, S, "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics."),
    flag!("listen-metrics-urls", Urls, "", true, Profiling, S, "List of URLs to listen on for the metrics and health endpoints."),
    flag!("enable-grpc-gateway", Bool, "true", false, Profiling, B, "Enable GRPC gateway."),
    // Logging
    flag!("logger", Str, "capnslog", true, Logging, S, "Specify 'zap' for structured logging or 'capnslog'."),
    flag!("log-outputs", UniqueStrings, "default", true, Logging, L, "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets."),
    flag!("log-level", Str, "info", true, Logging, S, "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    // v2 proxy
    flag!("proxy", Choice(PROXY_MODES), "off", false, Proxy, S, "Proxy mode setting ('off', 'readonly' or 'on')."),
    flag!("proxy-failure-wait", Uint, "5000", false, Proxy, U, "Time (in milliseconds) an endpoint will be held in a failed state."),
    flag!("proxy-refresh-interval", Uint, "30000", false, Proxy, U, "Time (in milliseconds) of the endpoints refresh interval."),
    flag!("proxy-dial-timeout", Uint, "1000", false, Proxy, U, "Time (in milliseconds) for a dial to timeout."),
    flag!("proxy-write-timeout", Uint, "5000", false, Proxy, U, "Time (in milliseconds) for a write to timeout."),
    flag!("proxy-read-timeout", Uint, "0", false, Proxy, U, "Time (in milliseconds) for a read to timeout."),
    // Experimental
    flag!("experimental-initial-corrupt-check", Bool, "false", false, Experimental, B, "Enable to check data corruption before serving any client/peer traffic."),
    flag!("experimental-corrupt-check-time", Duration, "0s", false, Experimental, D, "Duration of time between cluster corruption check passes."),
    flag!("experimental-enable-v2v3", Str, "", false, Experimental, S, "Serve v2 requests through the v3 backend under a given prefix."),
    flag!("experimental-backend-bbolt-freelist-type", Str, "", false, Experimental, S, "Type of freelist the boltdb backend uses (array and map are supported)."),
    flag!("experimental-enable-lease-checkpoint", Bool, "false", false, Experimental, B, "Enable the primary lessor to checkpoint lease remaining TTLs."),
    flag!("experimental-enable-lease-checkpoint-persist", Bool, "false", false, Experimental, B, "Enable persisting remainingTTL (requires experimental-enable-lease-checkpoint)."),
    flag!("experimental-compaction-batch-limit", Int, "0", false, Experimental, Some("int"), "Sets the maximum revisions deleted in each compaction batch."),
    flag!("experimental-watch-progress-notify-interval", Duration, "0s", true, Experimental, D, "Duration of periodic watch progress notifications (0 means the 10m default)."),
    flag!("experimental-warning-apply-duration", Duration, "100ms", false, Experimental, D, "Warning is generated if requests take more than this duration."),
    // Unsafe
    flag!("unsafe-no-fsync", Bool, "false", false, Unsafe, B, "Disables fsync, unsafe, will cause data loss."),
    flag!("force-new-cluster", Bool, "false", true, Unsafe, B, "Force to create a new one-member cluster."),
    // Deprecated
    flag!("debug", Bool, "false", false, Deprecated, B, "Enable debug-level logging for etcd. Use '--log-level=debug' instead."),
    flag!("log-package-levels", Str, "", false, Deprecated, S, "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG')."),
    flag!("log-output", UniqueStrings, "default", true, Deprecated, L, "Use '--log-outputs'."),
    // Not listed in the help sections.
    flag!("config-file", Str, "", true, Hidden, NO, "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored."),
    flag!("version", Bool, "false", true, Hidden, NO, "Print the version and exit."),
    // Synod
    flag!("zk-listen-addr", SocketAddr, "127.0.0.1:2181", true, Synod, S, "Address for the ZooKeeper protocol listener (empty disables it)."),
    flag!("zk-tick-time", Uint, "2000", true, Synod, U, "ZooKeeper tickTime in milliseconds (session timeouts default to 2x..20x of it)."),
    flag!("zk-min-session-timeout", Uint, "0", true, Synod, U, "ZooKeeper minSessionTimeout in milliseconds (0: 2 x tick time)."),
    flag!("zk-max-session-timeout", Uint, "0", true, Synod, U, "ZooKeeper maxSessionTimeout in milliseconds (0: 20 x tick time)."),
    flag!("zk-container-check-interval", Uint, "60000", true, Synod, U, "Milliseconds between deletions of empty ZooKeeper containers and expired TTL nodes."),
    flag!("zk-4lw-whitelist", Str, "*", true, Synod, S, "ZooKeeper four-letter words allowed, comma-separated ('*' for all)."),
    flag!("zk-super-digest", Str, "", true, Synod, S, "ZooKeeper super user digest, 'super:<base64 sha1>'."),
    flag!("zk-prefix", Str, "/zk/", true, Synod, S, "Key prefix under which ZooKeeper znodes and sessions are stored."),
    // Flags etcd accepts and ignores (IgnoredFlag).
    flag!("cluster-active-size", Ignored, "", true, Hidden, NO, ""),
    flag!("cluster-remove-delay", Ignored, "", true, Hidden, NO, ""),
    flag!("cluster-sync-interval", Ignored, "", true, Hidden, NO, ""),
    flag!("config", Ignored, "", true, Hidden, NO, ""),
    flag!("force", Ignored, "", true, Hidden, NO, ""),
    flag!("max-result-buffer", Ignored, "", true, Hidden, NO, ""),
    flag!("max-retry-attempts", Ignored, "", true, Hidden, NO, ""),
    flag!("peer-heartbeat-interval", Ignored, "", true, Hidden, NO, ""),
    flag!("peer-election-timeout", Ignored, "", true, Hidden, NO, ""),
    flag!("retry-interval", Ignored, "", true, Hidden, NO, ""),
    flag!("snapshot", Ignored, "", true, Hidden, NO, ""),
    flag!("v", Ignored, "", true, Hidden, NO, ""),
    flag!("vv", Ignored, "", true, Hidden, NO, ""),
    flag!("test.coverprofile", Ignored, "", true, Hidden, NO, ""),
    flag!("test.outputdir", Ignored, "", true, Hidden, NO, ""),
];

pub fn index_of(name: &str) -> Option<usize> {
    FLAGS.iter().position(|f| f.name == name)
}

/// A parsed flag value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Str(String),
    Uint(u64),
    Int(i64),
    /// Nanoseconds (Go `time.Duration`).
    Duration(i64),
    /// etcd `UniqueURLs`: the URL list plus the set of accepted strings.
    Urls {
        urls: Vec<ListenUrl>,
        seen: BTreeSet<String>,
    },
    List(Vec<String>),
    Sock(Option<SocketAddr>),
    Ignored,
}

/// Values of every flag, and where they were set from.
#[derive(Clone, Debug)]
pub struct FlagSet {
    pub values: Vec<Value>,
    /// Set on the command line (Go's `fs.Visit` before env processing).
    pub on_cmdline: Vec<bool>,
    /// Set by any source (command line, environment, config file).
    pub set: Vec<bool>,
    /// Warnings produced while setting values (ignored flags).
    pub warnings: Vec<String>,
}

/// Result of command-line parsing.
pub enum Parsed {
    /// `-h` / `-help`.
    Help,
    /// Flags parsed; the remaining (positional) arguments.
    Done(Vec<String>),
}

impl Default for FlagSet {
    fn default() -> Self {
        Self::new()
    }
}

impl FlagSet {
    /// All flags at their defaults.
    pub fn new() -> Self {
        let mut fs = FlagSet {
            values: Vec::with_capacity(FLAGS.len()),
            on_cmdline: vec![false; FLAGS.len()],
            set: vec![false; FLAGS.len()],
            warnings: Vec::new(),
        };
        for f in FLAGS {
            let v = match f.kind {
                Kind::Ignored => Value::Ignored,
                Kind::Urls if f.default.is_empty() => Value::Urls {
                    urls: vec![],
                    seen: BTreeSet::new(),
                },
                Kind::Strings | Kind::UniqueStrings | Kind::Cors if f.default.is_empty() => {
                    Value::List(vec![])
                }
                _ => {
                    let mut tmp = Value::Str(String::new());
                    set_value(f, &mut tmp, f.default, &mut Vec::new())
                        .unwrap_or_else(|e| panic!("bad default for {}: {e}", f.name));
                    tmp
                }
            };
            fs.values.push(v);
        }
        fs
    }

    pub fn get(&self, name: &str) -> &Value {
        &self.values[index_of(name).expect("flag in table")]
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.set[index_of(name).expect("flag in table")]
    }

    pub fn str(&self, name: &str) -> String {
        match self.get(name) {
            Value::Str(s) => s.clone(),
            v => panic!("flag {name} is not a string: {v:?}"),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.get(name) {
            Value::Bool(b) => *b,
            v => panic!("flag {name} is not a bool: {v:?}"),
        }
    }

    pub fn uint(&self, name: &str) -> u64 {
        match self.get(name) {
            Value::Uint(u) => *u,
            v => panic!("flag {name} is not a uint: {v:?}"),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Value::Int(i) => *i,
            v => panic!("flag {name} is not an int: {v:?}"),
        }
    }

    pub fn duration(&self, name: &str) -> i64 {
        match self.get(name) {
            Value::Duration(d) => *d,
            v => panic!("flag {name} is not a duration: {v:?}"),
        }
    }

    pub fn urls(&self, name: &str) -> Vec<ListenUrl> {
        match self.get(name) {
            Value::Urls { urls, .. } => urls.clone(),
            v => panic!("flag {name} is not a URL list: {v:?}"),
        }
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Value::List(l) => l.clone(),
            v => panic!("flag {name} is not a list: {v:?}"),
        }
    }

    pub fn sock(&self, name: &str) -> Option<SocketAddr> {
        match self.get(name) {
            Value::Sock(s) => *s,
            v => panic!("flag {name} is not a socket address: {v:?}"),
        }
    }

    /// Go's `flag.Value.Set` for flag `idx`; marks it set.  The error is
    /// the bare `Set` error (callers add the "invalid value" wrapping).
    pub fn set_str(&mut self, idx: usize, raw: &str) -> Result<(), String> {
        set_value(&FLAGS[idx], &mut self.values[idx], raw, &mut self.warnings)?;
        self.set[idx] = true;
        Ok(())
    }

    /// Store an already-typed value (config file); marks it set.
    pub fn put(&mut self, idx: usize, v: Value) {
        self.values[idx] = v;
        self.set[idx] = true;
    }

    /// Parse command-line arguments (without argv[0]) with Go `flag`
    /// semantics.  Errors are the `flag` package's messages.
    pub fn parse_args(&mut self, args: &[String]) -> Result<Parsed, String> {
        let mut i = 0;
        while i < args.len() {
            let s = &args[i];
            if s.len() < 2 || !s.starts_with('-') {
                break;
            }
            let mut minuses = 1;
            if s.as_bytes()[1] == b'-' {
                minuses = 2;
                if s.len() == 2 {
                    i += 1; // "--" terminates the flags
                    break;
                }
            }
            let body = &s[minuses..];
            if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
                return Err(format!("bad flag syntax: {s}"));
            }
            i += 1;
            // '=' cannot be the first character of the name.
            let (name, value) = match body.bytes().skip(1).position(|b| b == b'=') {
                Some(p) => (&body[..p + 1], Some(&body[p + 2..])),
                None => (body, None),
            };
            let Some(idx) = index_of(name) else {
                if name == "help" || name == "h" {
                    return Ok(Parsed::Help);
                }
                return Err(format!("flag provided but not defined: -{name}"));
            };
            let spec = &FLAGS[idx];
            if matches!(spec.kind, Kind::Bool | Kind::Ignored) {
                let v = value.unwrap_or("true");
                if let Err(e) = self.set_str(idx, v) {
                    return Err(match value {
                        Some(v) => format!("invalid boolean value {} for -{name}: {e}", quote(v)),
                        None => format!("invalid boolean flag {name}: {e}"),
                    });
                }
            } else {
                let v = match value {
                    Some(v) => v,
                    None if i < args.len() => {
                        i += 1;
                        args[i - 1].as_str()
                    }
                    None => return Err(format!("flag needs an argument: -{name}")),
                };
                if let Err(e) = self.set_str(idx, v) {
                    return Err(format!("invalid value {} for flag -{name}: {e}", quote(v)));
                }
            }
            self.on_cmdline[idx] = true;
        }
        Ok(Parsed::Done(args[i..].to_vec()))
    }
}

/// Go `flag.Value.Set` for one flag kind.
fn set_value(
    spec: &FlagSpec,
    slot: &mut Value,
    raw: &str,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    *slot = match spec.kind {
        Kind::Bool => Value::Bool(go::parse_bool(raw).ok_or("parse error")?),
        Kind::Str => Value::Str(raw.to_string()),
        Kind::Uint => Value::Uint(go::parse_uint(raw, 64).map_err(NumError::flag_text)?),
        Kind::Uint32 => {
            Value::Uint(go::parse_uint(raw, 32).map_err(|e| e.strconv_text("ParseUint", raw))?)
        }
        Kind::Int => Value::Int(go::parse_int(raw, 64).map_err(NumError::flag_text)?),
        Kind::Duration => Value::Duration(go::parse_duration(raw).map_err(|_| "parse error")?),
        Kind::Urls | Kind::Cors => {
            let exception = if spec.kind == Kind::Cors { "*" } else { "" };
            let (mut urls, mut seen) = match std::mem::replace(slot, Value::Ignored) {
                Value::Urls { urls, seen } => (urls, seen),
                Value::List(l) => (vec![], l.into_iter().collect()),
                _ => (vec![], BTreeSet::new()),
            };
            if seen.contains(raw) {
                // UniqueURLs.Set: a value already present is a no-op.
            } else if raw == exception {
                seen.insert(raw.to_string());
            } else {
                urls = parse_url_list(raw)?;
                seen = urls.iter().map(|u| u.to_string()).collect();
            }
            if spec.kind == Kind::Cors {
                Value::List(seen.into_iter().collect())
            } else {
                Value::Urls { urls, seen }
            }
        }
        Kind::UniqueStrings => {
            let set: BTreeSet<String> = raw.split(',').map(str::to_string).collect();
            Value::List(set.into_iter().collect())
        }
        Kind::Strings => Value::List(raw.split(',').map(str::to_string).collect()),
        Kind::Choice(valid) => {
            if !valid.contains(&raw) {
                return Err("invalid value".into());
            }
            Value::Str(raw.to_string())
        }
        Kind::SocketAddr => Value::Sock(parse_sock(raw)?),
        Kind::Ignored => {
            warnings.push(format!(
                "flag \"-{}\" is no longer supported - ignoring.",
                spec.name
            ));
            Value::Ignored
        }
    };
    Ok(())
}

/// `ip:port`, `[ip6]:port` or `localhost:port`; empty means disabled.
fn parse_sock(raw: &str) -> Result<Option<SocketAddr>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(a) = raw.parse::<SocketAddr>() {
        return Ok(Some(a));
    }
    if let Some(port) = raw.strip_prefix("localhost:") {
        if let Ok(p) = port.parse::<u16>() {
            return Ok(Some(SocketAddr::from(([127, 0, 0, 1], p))));
        }
    }
    let bad = || format!("address {raw} is not of the form host:port");
    if !raw.contains(':') {
        return Err(bad());
    }
    // A host name: resolved once, here.
    raw.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table_is_consistent() {
        let mut names = BTreeSet::new();
        for f in FLAGS {
            assert!(names.insert(f.name), "duplicate flag {}", f.name);
        }
        let fs = FlagSet::new();
        assert_eq!(fs.str("name"), "default");
        assert_eq!(fs.uint("max-concurrent-streams"), u32::MAX as u64);
        assert_eq!(fs.duration("grpc-keepalive-interval"), 7_200_000_000_000);
        assert_eq!(fs.list("cors"), ["*"]);
        assert_eq!(fs.list("cipher-suites"), Vec::<String>::new());
        assert!(fs.urls("listen-metrics-urls").is_empty());
        assert_eq!(
            fs.sock("zk-listen-addr"),
            Some("127.0.0.1:2181".parse().unwrap())
        );
    }

    #[test]
    fn go_flag_forms() {
        let mut fs = FlagSet::new();
        let rest = fs
            .parse_args(&args(&[
                "-name",
                "a",
                "--data-dir=/d",
                "-wal-dir=/w",
                "--max-txn-ops",
                "7",
                "--force-new-cluster",
                "x",
            ]))
            .unwrap();
        assert!(matches!(rest, Parsed::Done(ref r) if r == &["x"]));
        assert_eq!(fs.str("name"), "a");
        assert_eq!(fs.str("data-dir"), "/d");
        assert_eq!(fs.str("wal-dir"), "/w");
        assert_eq!(fs.uint("max-txn-ops"), 7);
        assert!(fs.bool("force-new-cluster"));
    }

    #[test]
    fn double_dash_ends_flags() {
        let mut fs = FlagSet::new();
        let rest = fs
            .parse_args(&args(&["--name", "a", "--", "--name", "b"]))
            .unwrap();
        assert!(matches!(rest, Parsed::Done(ref r) if r == &["--name", "b"]));
        assert_eq!(fs.str("name"), "a");
    }

    #[test]
    fn error_texts() {
        let cases: &[(&[&str], &str)] = &[
            (&["--foo"], "flag provided but not defined: -foo"),
            (&["-foo=1"], "flag provided but not defined: -foo"),
            (&["---x"], "bad flag syntax: ---x"),
            (&["-=x"], "bad flag syntax: -=x"),
            (&["--name"], "flag needs an argument: -name"),
            (&["--heartbeat-interval", "abc"], "invalid value \"abc\" for flag -heartbeat-interval: parse error"),
            (&["--snapshot-count", "99999999999999999999"], "invalid value \"99999999999999999999\" for flag -snapshot-count: value out of range"),
            (&["--force-new-cluster=x"], "invalid boolean value \"x\" for -force-new-cluster: parse error"),
            (&["--max-concurrent-streams", "x"], "invalid value \"x\" for flag -max-concurrent-streams: strconv.ParseUint: parsing \"x\": invalid syntax"),
            (&["--initial-cluster-state", "bad"], "invalid value \"bad\" for flag -initial-cluster-state: invalid value"),
            (&["--experimental-watch-progress-notify-interval", "10"], "invalid value \"10\" for flag -experimental-watch-progress-notify-interval: parse error"),
        ];
        for (a, want) in cases {
            let mut fs = FlagSet::new();
            assert_eq!(
                fs.parse_args(&args(a)).err().as_deref(),
                Some(*want),
                "{a:?}"
            );
        }
    }

    #[test]
    fn help_only_when_undefined() {
        for h in ["-h", "--help", "-help=false", "--h"] {
            let mut fs = FlagSet::new();
            assert!(
                matches!(fs.parse_args(&args(&[h])), Ok(Parsed::Help)),
                "{h}"
            );
        }
    }

    #[test]
    fn ignored_flags_are_bool_like() {
        let mut fs = FlagSet::new();
        let rest = fs.parse_args(&args(&["-v", "next"])).unwrap();
        assert!(matches!(rest, Parsed::Done(ref r) if r == &["next"]));
        assert_eq!(
            fs.warnings,
            ["flag \"-v\" is no longer supported - ignoring."]
        );
    }

    #[test]
    fn unique_urls_quirks() {
        let mut fs = FlagSet::new();
        fs.parse_args(&args(&[
            "--listen-client-urls",
            "http://127.0.0.1:1,http://127.0.0.1:2",
        ]))
        .unwrap();
        // A value already in the set is a no-op, as with etcd.
        fs.parse_args(&args(&["--listen-client-urls", "http://127.0.0.1:1"]))
            .unwrap();
        assert_eq!(fs.urls("listen-client-urls").len(), 2);
        // The empty exception leaves the list unchanged.
        fs.parse_args(&args(&["--listen-client-urls="])).unwrap();
        assert_eq!(fs.urls("listen-client-urls").len(), 2);
        fs.parse_args(&args(&["--cors", "*"])).unwrap();
        assert!(fs.parse_args(&args(&["--cors", "http://a"])).is_err());
    }

    #[test]
    fn zk_listen_addr() {
        let mut fs = FlagSet::new();
        fs.parse_args(&args(&["--zk-listen-addr="])).unwrap();
        assert_eq!(fs.sock("zk-listen-addr"), None);
        fs.parse_args(&args(&["--zk-listen-addr", "localhost:2182"]))
            .unwrap();
        assert_eq!(
            fs.sock("zk-listen-addr"),
            Some("127.0.0.1:2182".parse().unwrap())
        );
        fs.parse_args(&args(&["--zk-listen-addr", "[::1]:2181"]))
            .unwrap();
        assert_eq!(
            fs.sock("zk-listen-addr"),
            Some("[::1]:2181".parse().unwrap())
        );
        assert!(fs
            .parse_args(&args(&["--zk-listen-addr", "nonsense"]))
            .is_err());
    }
}
