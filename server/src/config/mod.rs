//! etcd-compatible command-line flags, `ETCD_*` environment variables
//! and `--config-file`.
//!
//! The specification is etcd 3.4's `etcdmain/config.go`, `embed/config.go`
//! and `pkg/flags`: the same flag names and defaults, Go `flag` syntax,
//! the same validation and the same error texts, so that scripts, unit
//! files and manifests written for `etcd` work unchanged.
//!
//! Entry points: [`parse_from`] (pure: arguments and environment are
//! passed in) and [`from_process`].  Both return a [`ParsedConfig`]; the
//! caller acts on its [`Action`], installs logging from the [`Config`],
//! then calls [`ParsedConfig::emit_warnings`].
//!
//! Every etcd flag is accepted.  Flags Synod does not act on yet are
//! parsed and validated like etcd does, and when set they are listed in
//! [`ParsedConfig::unhonoured_flags`] and warned about.
//!
//! Module map: `flags` (flag table, Go-style parser), `env` (`ETCD_*`),
//! `file` (YAML config file), `urls` (URL parsing), `cluster` (member /
//! cluster IDs, bootstrap checks), `go` (Go number/duration/quote rules).

mod cluster;
mod env;
mod file;
mod flags;
mod go;
mod urls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use cluster::{cluster_id, member_id};
pub use env::env_name;
pub use flags::{FlagSpec, Kind as FlagKind, Section as FlagSection, FLAGS};
pub use go::{format_duration as format_go_duration, parse_duration as parse_go_duration};
pub use urls::{
    format_cluster, parse_initial_cluster, parse_url, parse_url_list, ListenUrl, Scheme,
};

use flags::{FlagSet, Parsed};
use go::quote;

/// The etcd release whose command line Synod implements.
pub const ETCD_VERSION: &str = "3.4.23";
/// Synod's own version.
pub const SYNOD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// `--initial-cluster` default (`default=<default advertise peer URL>`).
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
/// `--name` default.
pub const DEFAULT_NAME: &str = "default";
/// etcd's maximum `--election-timeout` in milliseconds.
pub const MAX_ELECTION_MS: u64 = 50_000;
/// Watch progress interval used when the flag is 0 (etcd's default).
pub const DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// etcd clamps a positive watch progress interval to at least this.
pub const MIN_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_millis(100);

/// Error from configuration.  `Display` is etcd's exact message;
/// [`log_line`](Self::log_line) is the full line etcd prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Command-line syntax error (Go `flag` text, e.g. `flag provided but
    /// not defined: -foo`).  etcd prints it and the usage to stderr and
    /// exits 2.
    #[error("{0}")]
    Flag(String),
    /// A flag given both on the command line and as `ETCD_*` variable.
    #[error("conflicting environment variable {} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)", quote(.0))]
    EnvConflict(String),
    /// Flag verification failure (bad value, failed validation, config
    /// file error).  etcd logs `error verifying flags, <msg>. See 'etcd --help'.`
    #[error("{0}")]
    Invalid(String),
    /// etcd's `ErrUnsetAdvertiseClientURLsFlag` (a verification failure
    /// with an extra hint line).
    #[error("--advertise-client-urls is required when --listen-client-urls is set explicitly")]
    UnsetAdvertiseClientUrls,
    /// A problem etcd detects while starting the server (initial cluster,
    /// compaction retention, bootstrap checks); etcd logs it fatally.
    #[error("{0}")]
    Startup(String),
}

impl ConfigError {
    /// Process exit status etcd uses: 2 for command-line syntax errors
    /// (Go's `flag.ExitOnError` convention), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Flag(_) => 2,
            _ => 1,
        }
    }

    /// Whether etcd prints the usage text after the message (to stderr).
    pub fn prints_usage(&self) -> bool {
        matches!(self, ConfigError::Flag(_))
    }

    /// The line(s) etcd prints for this error (without its log prefix).
    pub fn log_line(&self) -> String {
        match self {
            ConfigError::Invalid(m) => format!("error verifying flags, {m}. See 'etcd --help'."),
            ConfigError::UnsetAdvertiseClientUrls => format!(
                "error verifying flags, {self}. See 'etcd --help'.\n\
                 When listening on specific address(es), this etcd process must advertise accessible url(s) to each connected client."
            ),
            other => other.to_string(),
        }
    }
}

/// What the binary should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the server.
    Run,
    /// Print [`version_text`] to stdout and exit 0.
    PrintVersion,
    /// `-h`/`--help`: print the text to stdout and exit 0.
    PrintHelp(String),
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// `--auto-compaction-mode` + `--auto-compaction-retention`, interpreted
/// as etcd does at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention 0 (the default) or empty mode.
    Disabled,
    /// Keep this much history (bare integers are hours).
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// TLS settings of one listener family (client or peer): the `--cert-file`, `--key-file`,
/// `--trusted-ca-file`, `--client-cert-auth`, `--client-crl-file`, `--auto-tls` flags and their
/// `--peer-*` twins. The transport layer's own type, so the flags reach it without a copy.
pub use crate::transport::tls::TlsSettings as TlsConfig;

/// The configuration Synod acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--name` (default `default`).
    pub name: String,
    /// `--data-dir`; `<name>.etcd` when not given or empty.
    pub data_dir: PathBuf,
    /// `--wal-dir` (None: `<data-dir>/member/wal`).
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls`, sorted (default `http://localhost:2379`).
    pub listen_client_urls: Vec<ListenUrl>,
    /// `--advertise-client-urls`, sorted (default `http://localhost:2379`).
    pub advertise_client_urls: Vec<ListenUrl>,
    /// `--listen-peer-urls`, sorted (default `http://localhost:2380`).
    pub listen_peer_urls: Vec<ListenUrl>,
    /// `--initial-advertise-peer-urls`, sorted (default `http://localhost:2380`).
    pub initial_advertise_peer_urls: Vec<ListenUrl>,
    /// `--listen-metrics-urls` (default none).
    pub listen_metrics_urls: Vec<ListenUrl>,
    /// Effective `--initial-cluster` string: as given, or derived as
    /// `<name>=<initial-advertise-peer-urls>` when only `--name` was
    /// changed, or empty when discovery flags replace it.
    pub initial_cluster: String,
    /// `initial_cluster` parsed: members in first-appearance order, each
    /// with its sorted peer URLs.
    pub initial_cluster_members: Vec<(String, Vec<ListenUrl>)>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token` (default `etcd-cluster`).
    pub initial_cluster_token: String,
    /// True when `--discovery` or `--discovery-srv` is set (Synod does not
    /// implement discovery; [`Config::verify_bootstrap`] rejects it).
    pub discovery_configured: bool,
    /// `--force-new-cluster`.
    pub force_new_cluster: bool,
    /// `--heartbeat-interval` in ms (default 100).
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout` in ms (default 1000).
    pub election_timeout_ms: u64,
    /// `--snapshot-count` (default 100000).
    pub snapshot_count: u64,
    /// `--quota-backend-bytes` (0: etcd's default quota of 2 GiB).
    pub quota_backend_bytes: i64,
    /// `--auto-compaction-mode` as given (`periodic` default, `revision`).
    pub auto_compaction_mode: String,
    /// `--auto-compaction-retention` as given (default `0`).
    pub auto_compaction_retention: String,
    /// The two above, interpreted.
    pub auto_compaction: AutoCompaction,
    /// `--max-request-bytes` (default 1572864).
    pub max_request_bytes: u64,
    /// `--max-txn-ops` (default 128).
    pub max_txn_ops: u64,
    /// Client TLS (`--cert-file`, `--key-file`, `--trusted-ca-file`,
    /// `--client-cert-auth`, `--client-crl-file`, `--auto-tls`).
    pub client_tls: TlsConfig,
    /// Peer TLS (`--peer-*` equivalents).
    pub peer_tls: TlsConfig,
    /// `--logger` (`capnslog` default, or `zap`).
    pub logger: String,
    /// `--log-level`: one of debug, info, warn, error, dpanic, panic, fatal.
    pub log_level: String,
    /// Effective `--log-outputs`: `default` (stderr), `stderr`, `stdout`,
    /// `systemd/journal`, or file paths (zap only).
    pub log_outputs: Vec<String>,
    /// `--enable-pprof`.
    pub enable_pprof: bool,
    /// `--metrics` (`basic` default, or `extensive`).
    pub metrics: String,
    /// `--config-file`, when the configuration came from a file.
    pub config_file: Option<PathBuf>,
    /// `--experimental-watch-progress-notify-interval` as given; zero
    /// means "etcd default" (see [`Config::watch_progress_notify_interval`]).
    pub experimental_watch_progress_notify_interval: Duration,
    /// Synod's `--zk-listen-addr` (default `127.0.0.1:2181`; empty: None,
    /// ZooKeeper listener disabled).
    pub zk_listen_addr: Option<SocketAddr>,
    /// Whether `--zk-listen-addr` was given (flag, environment or file) rather than defaulted:
    /// a defaulted address that is taken is skipped with a warning, so that an etcd command
    /// line for several members on one host still works; a given one fails fast.
    pub zk_listen_addr_given: bool,
    /// The ZooKeeper gateway's `--zk-*` settings.
    pub zk: ZkSettings,
}

/// Synod's `--zk-*` flags (see `zk_gateway::Config` for their meaning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkSettings {
    pub tick_ms: u64,
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    pub container_check_interval_ms: u64,
    pub four_letter_words: String,
    pub super_digest: String,
    pub prefix: String,
}

impl Default for Config {
    /// etcd's defaults (what running with no flags gives).
    fn default() -> Self {
        parse_from(std::iter::empty::<String>(), &[])
            .expect("defaults are valid")
            .config
    }
}

impl Config {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms)
    }

    /// etcd's `ElectionTicks()`: election timeout in heartbeat ticks.
    pub fn election_ticks(&self) -> u64 {
        self.election_timeout_ms / self.heartbeat_interval_ms.max(1)
    }

    pub fn is_new_cluster(&self) -> bool {
        self.initial_cluster_state == ClusterState::New
    }

    /// WAL directory: `--wal-dir` or `<data-dir>/member/wal`.
    pub fn wal_dir_or_default(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("member").join("wal"))
    }

    /// Interval of watch progress notifications as etcd applies it:
    /// 0 (or negative) means 10 minutes; below 100ms is raised to 100ms.
    pub fn watch_progress_notify_interval(&self) -> Duration {
        let d = self.experimental_watch_progress_notify_interval;
        if d.is_zero() {
            DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL
        } else {
            d.max(MIN_WATCH_PROGRESS_NOTIFY_INTERVAL)
        }
    }

    /// IDs of the initial members, computed as etcd does at bootstrap.
    pub fn initial_member_ids(&self) -> Vec<(String, u64)> {
        self.initial_cluster_members
            .iter()
            .map(|(n, us)| {
                let urls: Vec<String> = us.iter().map(|u| u.to_string()).collect();
                (
                    n.clone(),
                    member_id(&urls, &self.initial_cluster_token, None),
                )
            })
            .collect()
    }

    /// This member's ID in the initial cluster, if it is listed.
    pub fn local_member_id(&self) -> Option<u64> {
        self.initial_member_ids()
            .into_iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, id)| id)
    }

    /// Cluster ID of the initial cluster (only meaningful for a new
    /// cluster; members joining an existing one learn it from peers).
    pub fn initial_cluster_id(&self) -> u64 {
        let ids: Vec<u64> = self
            .initial_member_ids()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        cluster_id(&ids)
    }

    /// etcd's bootstrap checks for a member without data that creates a
    /// new cluster (`VerifyBootstrap` plus member-ID sanity).  Call only
    /// when the data directory holds no member data: like etcd, an
    /// initialized member ignores the initial cluster.
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        self.check_discovery()?;
        cluster::verify_bootstrap(
            &self.name,
            &self.initial_advertise_peer_urls,
            &self.initial_cluster_members,
            false,
        )
        .map_err(ConfigError::Startup)?;
        self.check_member_ids()
    }

    /// etcd's checks for a member without data joining an existing
    /// cluster (`--initial-cluster-state existing`, `VerifyJoinExisting`).
    pub fn verify_join_existing(&self) -> Result<(), ConfigError> {
        self.check_discovery()?;
        cluster::verify_join_existing(&self.name, &self.initial_cluster_members, false)
            .map_err(ConfigError::Startup)
    }

    fn check_discovery(&self) -> Result<(), ConfigError> {
        if self.discovery_configured {
            return Err(ConfigError::Startup(
                "discovery (--discovery, --discovery-srv) is not supported by Synod; bootstrap with --initial-cluster".into(),
            ));
        }
        Ok(())
    }

    fn check_member_ids(&self) -> Result<(), ConfigError> {
        let ids = self.initial_member_ids();
        for (i, (name, id)) in ids.iter().enumerate() {
            if *id == 0 {
                return Err(ConfigError::Startup("cannot use 0 as member id".into()));
            }
            if ids[..i].iter().any(|(_, other)| other == id) {
                return Err(ConfigError::Startup(format!(
                    "member exists with identical ID {id:x} (name {})",
                    quote(name)
                )));
            }
        }
        Ok(())
    }
}

/// Result of configuration parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedConfig {
    /// The configuration (etcd defaults when `action` is not `Run`).
    pub config: Config,
    /// Every warning, as text, in the order found: ignored legacy flags,
    /// unrecognized `ETCD_*` variables, set-but-unhonoured flags, unknown
    /// config-file keys, deprecations.  Log with [`Self::emit_warnings`].
    pub warnings: Vec<String>,
    pub action: Action,
    /// Names (without dashes) of flags that were set — on the command
    /// line, in the environment or in the config file — to a value other
    /// than their default, but that Synod does not act on yet.
    pub unhonoured_flags: Vec<String>,
    /// `ETCD_*` variables that name no flag (or were empty), as etcd
    /// reports them: `(name, value)`.
    pub unrecognized_env: Vec<(String, String)>,
}

impl ParsedConfig {
    /// Log every warning with `tracing::warn!` (call once logging is set
    /// up).
    pub fn emit_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
    }
}

/// Configuration from this process's arguments and environment.
pub fn from_process() -> Result<ParsedConfig, ConfigError> {
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    parse_from(args, &env)
}

/// Configuration from `args` (without argv[0]) and `env`, as etcd 3.4
/// would read them.  Pure apart from reading `--config-file` and, only
/// when initial-cluster URLs differ textually from advertised ones and
/// use host names, resolving those names (as etcd does).
pub fn parse_from<I, S>(args: I, env: &[(String, String)]) -> Result<ParsedConfig, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut fs = FlagSet::new();
    let rest = match fs.parse_args(&args).map_err(ConfigError::Flag)? {
        Parsed::Help => return Ok(non_run(Action::PrintHelp(help_text()))),
        Parsed::Done(rest) => rest,
    };
    if let Some(first) = rest.first() {
        return Err(ConfigError::Invalid(format!(
            "'{first}' is not a valid flag"
        )));
    }
    if fs.bool("version") {
        return Ok(non_run(Action::PrintVersion));
    }

    let mut warnings = std::mem::take(&mut fs.warnings);
    let mut unrecognized_env = Vec::new();
    let mut config_file = fs.str("config-file");
    if config_file.is_empty() {
        config_file = env::lookup(env, "ETCD_CONFIG_FILE")
            .unwrap_or("")
            .to_string();
    }
    let from_file = !config_file.is_empty();
    if from_file {
        let ignored: Vec<&str> = flags::FLAGS
            .iter()
            .enumerate()
            .filter(|(i, f)| fs.on_cmdline[*i] && f.name != "config-file")
            .map(|(_, f)| f.name)
            .collect();
        if !ignored.is_empty() {
            warnings.push(format!(
                "loaded server configuration from {}; other command line flags and environment variables are ignored (given: --{})",
                quote(&config_file),
                ignored.join(", --")
            ));
        }
        let (file_fs, file_warnings) = file::load(&config_file)?;
        fs = file_fs;
        warnings.extend(file_warnings);
    } else {
        unrecognized_env = env::apply(&mut fs, env)?;
        warnings.extend(std::mem::take(&mut fs.warnings));
        for (k, v) in &unrecognized_env {
            warnings.push(format!("unrecognized environment variable {k}={v}"));
        }
    }

    // Set to a value other than the default: a flag explicitly set to its
    // default changes nothing, so it is not worth a warning.
    let defaults = FlagSet::new();
    let unhonoured_flags: Vec<String> = flags::FLAGS
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            fs.set[*i]
                && !f.honoured
                && f.kind != flags::Kind::Ignored
                && fs.values[*i] != defaults.values[*i]
        })
        .map(|(_, f)| f.name.to_string())
        .collect();
    for name in &unhonoured_flags {
        warnings.push(format!(
            "flag --{name} is accepted but not yet honoured by Synod"
        ));
    }

    let mut config = build(&fs, from_file, &mut warnings)?;
    if from_file {
        config.config_file = Some(PathBuf::from(config_file));
    }
    Ok(ParsedConfig {
        config,
        warnings,
        action: Action::Run,
        unhonoured_flags,
        unrecognized_env,
    })
}

fn non_run(action: Action) -> ParsedConfig {
    ParsedConfig {
        config: Config::default(),
        warnings: vec![],
        action,
        unhonoured_flags: vec![],
        unrecognized_env: vec![],
    }
}

/// Validate and interpret the flag values (etcd's `configFromCmdLine` /
/// `configFromFile`, `Validate`, and the start-up steps that follow).
fn build(fs: &FlagSet, from_file: bool, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    let name = fs.str("name");
    let discovery = fs.str("discovery");
    let discovery_srv = fs.str("discovery-srv");
    let mut initial_cluster = fs.str("initial-cluster");
    let mut advertise_client_urls = fs.urls("advertise-client-urls");
    let listen_client_urls = fs.urls("listen-client-urls");
    let listen_peer_urls = fs.urls("listen-peer-urls");
    let listen_metrics_urls = fs.urls("listen-metrics-urls");
    let initial_advertise_peer_urls = fs.urls("initial-advertise-peer-urls");
    let may_be_proxy = fs.str("proxy") != "off"
        || (!discovery.is_empty() && fs.str("discovery-fallback") == "proxy");

    if from_file {
        if (!discovery.is_empty() || !discovery_srv.is_empty())
            && initial_cluster == DEFAULT_INITIAL_CLUSTER
        {
            initial_cluster.clear();
        }
    } else {
        // Explicit listen-client-urls without advertise-client-urls drops
        // the default advertise URL (and then fails validation).
        if fs.is_set("listen-client-urls") && !fs.is_set("advertise-client-urls") && !may_be_proxy {
            advertise_client_urls.clear();
        }
        let any_discovery = !discovery.is_empty()
            || !discovery_srv.is_empty()
            || !fs.str("discovery-srv-name").is_empty();
        if any_discovery && !fs.is_set("initial-cluster") {
            initial_cluster.clear();
        }
    }

    // --- embed.Config.Validate -------------------------------------------
    let logger = fs.str("logger");
    let log_level = fs.str("log-level");
    let log_outputs = setup_logging(
        &logger,
        &log_level,
        fs.list("log-output"),
        fs.list("log-outputs"),
        warnings,
    )
    .map_err(ConfigError::Invalid)?;
    for urls in [&listen_peer_urls, &listen_client_urls, &listen_metrics_urls] {
        check_bind_urls(urls).map_err(ConfigError::Invalid)?;
    }
    for (flag, urls) in [
        ("initial-advertise-peer-urls", &initial_advertise_peer_urls),
        ("advertise-client-urls", &advertise_client_urls),
    ] {
        if let Some(u) = urls.iter().find(|u| u.host.is_empty()) {
            let all: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
            return Err(ConfigError::Invalid(format!(
                "--{flag} {} must be \"host:port\" (unexpected empty host ({u}))",
                quote(&all.join(","))
            )));
        }
    }
    let state = fs.str("initial-cluster-state");
    let initial_cluster_state = match state.as_str() {
        "new" => ClusterState::New,
        "existing" => ClusterState::Existing,
        other => {
            return Err(ConfigError::Invalid(format!(
                "unexpected clusterState {}",
                quote(other)
            )))
        }
    };
    let n_set = [
        !discovery.is_empty(),
        !initial_cluster.is_empty(),
        !discovery_srv.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n_set > 1 {
        return Err(ConfigError::Invalid(
            "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"".into(),
        ));
    }
    let tick = fs.uint("heartbeat-interval");
    let election = fs.uint("election-timeout");
    if tick == 0 {
        return Err(ConfigError::Invalid(format!(
            "--heartbeat-interval must be >0 (set to {tick}ms)"
        )));
    }
    if election == 0 {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout must be >0 (set to {election}ms)"
        )));
    }
    if tick.checked_mul(5).is_none_or(|t5| t5 > election) {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{tick}ms]"
        )));
    }
    if election > MAX_ELECTION_MS {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout[{election}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
        )));
    }
    if !listen_client_urls.is_empty()
        && advertise_client_urls.is_empty()
        && (from_file || !may_be_proxy)
    {
        return Err(ConfigError::UnsetAdvertiseClientUrls);
    }
    let mode = fs.str("auto-compaction-mode");
    if !matches!(mode.as_str(), "" | "periodic" | "revision") {
        return Err(ConfigError::Invalid(format!(
            "unknown auto-compaction-mode {}",
            quote(&mode)
        )));
    }
    let checkpoint = fs.bool("experimental-enable-lease-checkpoint");
    let persist = fs.bool("experimental-enable-lease-checkpoint-persist");
    if checkpoint && !persist {
        warnings.push("Detected that checkpointing is enabled without persistence. Consider enabling experimental-enable-lease-checkpoint-persist".into());
    }
    if persist && !checkpoint {
        return Err(ConfigError::Invalid(
            "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint".into(),
        ));
    }

    // --- after parsing (startEtcdOrProxyV2) ------------------------------
    // `etcd --name abc` alone bootstraps as `abc=<advertise peer URLs>`.
    if name != DEFAULT_NAME && initial_cluster == DEFAULT_INITIAL_CLUSTER {
        initial_cluster = initial_cluster_from_name(&name, &initial_advertise_peer_urls);
    }
    let mut data_dir = fs.str("data-dir");
    if data_dir.is_empty() {
        data_dir = format!("{name}.etcd");
        warnings.push(format!(
            "no data-dir provided, using default data-dir ./{data_dir}"
        ));
    }

    // --- start-up (embed.StartEtcd) --------------------------------------
    let retention = fs.str("auto-compaction-retention");
    let auto_compaction = parse_compaction(&mode, &retention).map_err(ConfigError::Startup)?;
    let initial_cluster_members = if discovery.is_empty() && discovery_srv.is_empty() {
        parse_initial_cluster(&initial_cluster)
            .map_err(|e| ConfigError::Startup(format!("error setting up initial cluster: {e}")))?
    } else {
        Vec::new()
    };

    let opt_path = |flag: &str| {
        let s = fs.str(flag);
        (!s.is_empty()).then(|| PathBuf::from(s))
    };
    let tls = |prefix: &str, crl: &str| TlsConfig {
        cert_file: opt_path(&format!("{prefix}cert-file")),
        key_file: opt_path(&format!("{prefix}key-file")),
        trusted_ca_file: opt_path(&format!("{prefix}trusted-ca-file")),
        client_cert_auth: fs.bool(&format!("{prefix}client-cert-auth")),
        crl_file: opt_path(crl),
        auto_tls: fs.bool(&format!("{prefix}auto-tls")),
    };
    let watch_ns = fs.duration("experimental-watch-progress-notify-interval");

    Ok(Config {
        data_dir: PathBuf::from(data_dir),
        wal_dir: opt_path("wal-dir"),
        listen_client_urls,
        advertise_client_urls,
        listen_peer_urls,
        initial_advertise_peer_urls,
        listen_metrics_urls,
        initial_cluster,
        initial_cluster_members,
        initial_cluster_state,
        initial_cluster_token: fs.str("initial-cluster-token"),
        discovery_configured: !discovery.is_empty() || !discovery_srv.is_empty(),
        force_new_cluster: fs.bool("force-new-cluster"),
        heartbeat_interval_ms: tick,
        election_timeout_ms: election,
        snapshot_count: fs.uint("snapshot-count"),
        quota_backend_bytes: fs.int("quota-backend-bytes"),
        auto_compaction_mode: mode,
        auto_compaction_retention: retention,
        auto_compaction,
        max_request_bytes: fs.uint("max-request-bytes"),
        max_txn_ops: fs.uint("max-txn-ops"),
        client_tls: tls("", "client-crl-file"),
        peer_tls: tls("peer-", "peer-crl-file"),
        logger,
        log_level,
        log_outputs,
        enable_pprof: fs.bool("enable-pprof"),
        metrics: fs.str("metrics"),
        config_file: None,
        experimental_watch_progress_notify_interval: Duration::from_nanos(watch_ns.max(0) as u64),
        zk_listen_addr: fs.sock("zk-listen-addr"),
        zk_listen_addr_given: fs.is_set("zk-listen-addr"),
        zk: ZkSettings {
            tick_ms: fs.uint("zk-tick-time"),
            min_session_timeout_ms: fs.uint("zk-min-session-timeout"),
            max_session_timeout_ms: fs.uint("zk-max-session-timeout"),
            container_check_interval_ms: fs.uint("zk-container-check-interval"),
            four_letter_words: fs.str("zk-4lw-whitelist"),
            super_digest: fs.str("zk-super-digest"),
            prefix: fs.str("zk-prefix"),
        },
        name,
    })
}

/// etcd's `InitialClusterFromName`.
fn initial_cluster_from_name(name: &str, apurls: &[ListenUrl]) -> String {
    let n = if name.is_empty() { DEFAULT_NAME } else { name };
    apurls
        .iter()
        .map(|u| format!("{n}={u}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// etcd's `checkBindURLs`: listen URLs need an IP (or `localhost`).
fn check_bind_urls(urls: &[ListenUrl]) -> Result<(), String> {
    for u in urls {
        if u.scheme.is_unix() || u.host == "localhost" {
            continue;
        }
        if u.host.parse::<IpAddr>().is_err() {
            return Err(format!("expected IP in URL for binding ({u})"));
        }
    }
    Ok(())
}

/// etcd's `setupLogging` checks; returns the effective log outputs.
fn setup_logging(
    logger: &str,
    level: &str,
    log_output: Vec<String>,
    mut log_outputs: Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let (len1, len2) = (log_output.len(), log_outputs.len());
    if len1 != len2 {
        if len1 > len2 {
            warnings.push(
                "'--log-output' flag has been deprecated! Please use '--log-outputs'!".into(),
            );
            log_outputs = log_output;
        }
    } else {
        if len1 > 1 {
            return Err(
                "both '--log-output' and '--log-outputs' are set; only set '--log-outputs'".into(),
            );
        }
        if len1 < 1 {
            return Err("either '--log-output' or '--log-outputs' flag must be set".into());
        }
        if log_output == log_outputs && log_output[0] != "default" {
            return Err(format!(
                "'--log-output={}' and '--log-outputs={}' are incompatible; only set --log-outputs",
                go::quote_list(&log_output),
                go::quote_list(&log_outputs)
            ));
        }
        if log_output != ["default"] {
            warnings.push(format!(
                "Deprecated '--log-output' flag is set to {}; please use '--log-outputs' flag",
                go::quote_list(&log_output)
            ));
        }
    }
    match logger {
        "capnslog" => {
            if log_outputs.len() != 1 {
                return Err(format!(
                    "--logger=capnslog supports only 1 value in '--log-outputs', got {}",
                    go::quote_list(&log_outputs)
                ));
            }
            let out = log_outputs[0].as_str();
            if !matches!(out, "default" | "stderr" | "stdout") {
                return Err(format!(
                    "unknown log-output {} (only supports \"default\", \"stderr\", \"stdout\")",
                    quote(out)
                ));
            }
        }
        "zap" => {
            if log_outputs.is_empty() {
                log_outputs = vec!["default".into()];
            }
            if log_outputs.len() > 1 {
                if log_outputs.iter().any(|o| o == "default") {
                    return Err("multi logoutput for \"default\" is not supported yet".into());
                }
                if log_outputs.iter().any(|o| o == "systemd/journal") {
                    return Err(format!(
                        "running with systemd/journal but other '--log-outputs' values ({}) are configured with 'default'; override 'default' value with something else",
                        go::quote_list(&log_outputs)
                    ));
                }
            }
        }
        other => return Err(format!("unknown logger option {}", quote(other))),
    }
    // etcd panics on an unknown level; Synod reports it.
    if !matches!(
        level,
        "debug" | "info" | "warn" | "error" | "dpanic" | "panic" | "fatal"
    ) {
        return Err(format!("unknown level {}", quote(level)));
    }
    Ok(log_outputs)
}

/// etcd's `parseCompactionRetention` (embed/etcd.go), including its
/// quirk that a duration in `revision` mode counts nanoseconds.
fn parse_compaction(mode: &str, retention: &str) -> Result<AutoCompaction, String> {
    let retention = if retention.is_empty() { "0" } else { retention };
    let atoi = retention
        .strip_prefix('+')
        .unwrap_or(retention)
        .parse::<i64>()
        .ok()
        .filter(|_| {
            retention
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
        });
    let (amount, hours) = match atoi {
        Some(h) if h >= 0 => (h as u64, true),
        _ => {
            let ns = go::parse_duration(retention)
                .map_err(|e| format!("error parsing CompactionRetention: {e}"))?;
            (ns.max(0) as u64, false)
        }
    };
    Ok(match (mode, amount) {
        (_, 0) => AutoCompaction::Disabled,
        ("revision", n) => AutoCompaction::Revision(n),
        ("periodic", n) if hours => {
            AutoCompaction::Periodic(Duration::from_secs(n.saturating_mul(3600)))
        }
        ("periodic", n) => AutoCompaction::Periodic(Duration::from_nanos(n)),
        _ => AutoCompaction::Disabled,
    })
}

/// `--version` output.
pub fn version_text() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "powerpc64le" => "ppc64le",
        other => other,
    };
    format!(
        "etcd Version: {ETCD_VERSION}\nSynod Version: {SYNOD_VERSION}\nGit SHA: {}\nGo Version: n/a (Synod is written in Rust)\nGo OS/Arch: {}/{arch}\n",
        option_env!("SYNOD_GIT_SHA").unwrap_or("Not provided"),
        std::env::consts::OS,
    )
}

/// Usage summary (etcd prints it to stderr after a flag error).
pub fn usage_text() -> String {
    "Usage:

  synod [flags]
    Start a Synod server (a drop-in etcd v3 server).

  synod --version
    Show the version of Synod and of etcd it is compatible with.

  synod -h | --help
    Show the help information about Synod.

  synod --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
"
    .to_string()
}

/// `--help` output: usage plus every flag by section, generated from
/// the flag table.
pub fn help_text() -> String {
    let mut out = usage_text();
    let mut sections: Vec<flags::Section> = FLAGS.iter().map(|f| f.section).collect();
    sections.sort();
    sections.dedup();
    for section in sections {
        if section == flags::Section::Hidden {
            continue;
        }
        out.push_str(&format!("\n{}:\n", section.title()));
        for f in FLAGS.iter().filter(|f| f.section == section) {
            let default = if f.name == "data-dir" {
                "${name}.etcd"
            } else {
                f.default
            };
            out.push_str(&format!("  --{} '{}'\n    {}", f.name, default, f.help));
            if !f.honoured {
                out.push_str(" [accepted; not yet honoured by Synod]");
            }
            out.push('\n');
        }
    }
    out.push_str(
        "\nEvery flag can also be set with an environment variable ETCD_<FLAG_NAME> \
         (upper case, '-' as '_'), e.g. ETCD_LISTEN_CLIENT_URLS or ETCD_ZK_LISTEN_ADDR.\n",
    );
    out
}

#[cfg(test)]
mod tests;
