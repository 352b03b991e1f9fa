//! End-to-end tests of `parse_from`; expected texts were checked against
//! the real etcd 3.4.23 binary.

use super::*;

fn parse(args: &[&str]) -> Result<ParsedConfig, ConfigError> {
    parse_from(args.iter().copied(), &[])
}

fn parse_env(args: &[&str], env: &[(&str, &str)]) -> Result<ParsedConfig, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_from(args.iter().copied(), &env)
}

fn cfg(args: &[&str]) -> Config {
    parse(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .config
}

fn err(args: &[&str]) -> String {
    parse(args).expect_err("expected an error").to_string()
}

fn urls(v: &[ListenUrl]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

#[test]
fn defaults_are_etcds() {
    let p = parse(&[]).unwrap();
    assert_eq!(p.action, Action::Run);
    assert!(p.unhonoured_flags.is_empty());
    let c = p.config;
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(c.wal_dir, None);
    assert_eq!(urls(&c.listen_client_urls), ["http://localhost:2379"]);
    assert_eq!(urls(&c.advertise_client_urls), ["http://localhost:2379"]);
    assert_eq!(urls(&c.listen_peer_urls), ["http://localhost:2380"]);
    assert_eq!(
        urls(&c.initial_advertise_peer_urls),
        ["http://localhost:2380"]
    );
    assert!(c.listen_metrics_urls.is_empty());
    assert_eq!(c.initial_cluster, "default=http://localhost:2380");
    assert_eq!(c.initial_cluster_members.len(), 1);
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert!(!c.force_new_cluster);
    assert_eq!(
        (c.heartbeat_interval_ms, c.election_timeout_ms),
        (100, 1000)
    );
    assert_eq!(c.election_ticks(), 10);
    assert_eq!(c.snapshot_count, 100_000);
    assert_eq!(c.quota_backend_bytes, 0);
    assert_eq!(c.auto_compaction_mode, "periodic");
    assert_eq!(c.auto_compaction_retention, "0");
    assert_eq!(c.auto_compaction, AutoCompaction::Disabled);
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.client_tls, TlsConfig::default());
    assert_eq!(c.peer_tls, TlsConfig::default());
    assert_eq!(
        (c.logger.as_str(), c.log_level.as_str()),
        ("capnslog", "info")
    );
    assert_eq!(c.log_outputs, ["default"]);
    assert!(!c.enable_pprof);
    assert_eq!(c.metrics, "basic");
    assert_eq!(c.config_file, None);
    assert_eq!(
        c.experimental_watch_progress_notify_interval,
        Duration::ZERO
    );
    assert_eq!(c.watch_progress_notify_interval(), Duration::from_secs(600));
    assert_eq!(c.zk_listen_addr, Some("127.0.0.1:2181".parse().unwrap()));
    assert_eq!(c.local_member_id(), Some(0x8e9e05c52164694d));
    assert_eq!(c.initial_cluster_id(), 0xcdf818194e3a8c32);
    assert_eq!(c, Config::default());
    assert_eq!(
        p.warnings,
        ["no data-dir provided, using default data-dir ./default.etcd"]
    );
}

#[test]
fn both_dash_styles_and_equals() {
    for args in [
        &["-name", "n1"][..],
        &["--name", "n1"],
        &["-name=n1"],
        &["--name=n1"],
    ] {
        assert_eq!(cfg(args).name, "n1", "{args:?}");
    }
    let c = cfg(&[
        "-data-dir=/tmp/d",
        "--wal-dir",
        "/tmp/w",
        "-snapshot-count=5",
        "--max-request-bytes=0x100",
    ]);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
    assert_eq!(c.wal_dir, Some(PathBuf::from("/tmp/w")));
    assert_eq!(c.snapshot_count, 5);
    assert_eq!(c.max_request_bytes, 256);
}

#[test]
fn bool_forms() {
    assert!(cfg(&["--force-new-cluster"]).force_new_cluster);
    assert!(cfg(&["-force-new-cluster=true"]).force_new_cluster);
    assert!(cfg(&["--force-new-cluster=T"]).force_new_cluster);
    assert!(cfg(&["--force-new-cluster=1"]).force_new_cluster);
    assert!(!cfg(&["--force-new-cluster=false"]).force_new_cluster);
    assert!(!cfg(&["--force-new-cluster", "--force-new-cluster=0"]).force_new_cluster);
    // A bare bool does not take the next argument: it becomes positional.
    assert_eq!(
        err(&["--force-new-cluster", "false"]),
        "'false' is not a valid flag"
    );
    assert_eq!(
        err(&["--client-cert-auth=yes"]),
        "invalid boolean value \"yes\" for -client-cert-auth: parse error"
    );
    let c = cfg(&["--client-cert-auth", "--peer-auto-tls", "--enable-pprof"]);
    assert!(c.client_tls.client_cert_auth && c.peer_tls.auto_tls && c.enable_pprof);
}

#[test]
fn unknown_flag_like_go() {
    let e = parse(&["--foo"]).unwrap_err();
    assert_eq!(e.to_string(), "flag provided but not defined: -foo");
    assert_eq!(e.exit_code(), 2);
    assert!(e.prints_usage());
    assert_eq!(err(&["-foo", "1"]), "flag provided but not defined: -foo");
    assert_eq!(err(&["--name"]), "flag needs an argument: -name");
    let e = parse(&["stray"]).unwrap_err();
    assert_eq!(e.to_string(), "'stray' is not a valid flag");
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.log_line(),
        "error verifying flags, 'stray' is not a valid flag. See 'etcd --help'."
    );
}

#[test]
fn version_and_help() {
    assert_eq!(parse(&["--version"]).unwrap().action, Action::PrintVersion);
    assert_eq!(
        parse(&["-version=true"]).unwrap().action,
        Action::PrintVersion
    );
    assert_eq!(parse(&["--version=false"]).unwrap().action, Action::Run);
    // Flag errors win over --version, as in Go.
    assert!(parse(&["--version", "--nope"]).is_err());
    assert!(version_text().starts_with("etcd Version: 3.4.23\nSynod Version: "));
    for h in ["-h", "--help", "-help"] {
        match parse(&[h]).unwrap().action {
            Action::PrintHelp(text) => {
                assert!(text.contains("--listen-client-urls 'http://localhost:2379'"));
                assert!(text.contains("--zk-listen-addr '127.0.0.1:2181'"));
            }
            other => panic!("{h}: {other:?}"),
        }
    }
}

#[test]
fn env_vars() {
    let p = parse_env(
        &["--name", "n1"],
        &[
            ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:12379"),
            ("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:12379"),
            ("ETCD_CLIENT_CERT_AUTH", "TRUE"),
            ("ETCD_ZK_LISTEN_ADDR", ""),
            ("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "1m30s"),
            ("ETCD_UNKNOWN_THING", "x"),
            ("PATH", "/bin"),
        ],
    )
    .unwrap();
    let c = &p.config;
    assert_eq!(c.name, "n1");
    assert_eq!(urls(&c.listen_client_urls), ["http://127.0.0.1:12379"]);
    assert!(c.client_tls.client_cert_auth);
    // Empty variables are not applied (and are reported as unrecognized).
    assert_eq!(c.zk_listen_addr, Some("127.0.0.1:2181".parse().unwrap()));
    assert_eq!(
        c.experimental_watch_progress_notify_interval,
        Duration::from_secs(90)
    );
    assert_eq!(
        p.unrecognized_env,
        [
            ("ETCD_ZK_LISTEN_ADDR".to_string(), String::new()),
            ("ETCD_UNKNOWN_THING".to_string(), "x".to_string())
        ]
    );
    assert!(p
        .warnings
        .contains(&"unrecognized environment variable ETCD_UNKNOWN_THING=x".to_string()));

    let c = parse_env(&[], &[("ETCD_ZK_LISTEN_ADDR", "0.0.0.0:2182")])
        .unwrap()
        .config;
    assert_eq!(c.zk_listen_addr, Some("0.0.0.0:2182".parse().unwrap()));
    let c = parse_env(&["--zk-listen-addr="], &[]).unwrap().config;
    assert_eq!(c.zk_listen_addr, None);

    let e = parse_env(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error"
    );
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn env_flag_conflict() {
    let e = parse_env(&["--name", "y"], &[("ETCD_NAME", "x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
    );
    assert_eq!(e.exit_code(), 1);
    // Single-dash and '=' forms count as given too.
    assert!(matches!(
        parse_env(&["-name=y"], &[("ETCD_NAME", "")]),
        Err(ConfigError::EnvConflict(_))
    ));
}

#[test]
fn initial_cluster_derivation() {
    let c = cfg(&["--name", "n1"]);
    assert_eq!(c.initial_cluster, "n1=http://localhost:2380");
    assert_eq!(c.data_dir, PathBuf::from("n1.etcd"));
    assert_eq!(c.local_member_id(), Some(0x8e9e05c52164694d));

    let c = cfg(&[
        "--name=n1",
        "--initial-advertise-peer-urls=http://10.0.0.2:2380,http://10.0.0.1:2380",
        "--listen-peer-urls=http://0.0.0.0:2380",
    ]);
    assert_eq!(
        c.initial_cluster,
        "n1=http://10.0.0.1:2380,n1=http://10.0.0.2:2380"
    );
    assert_eq!(c.initial_cluster_members.len(), 1);
    assert_eq!(
        urls(&c.initial_cluster_members[0].1),
        ["http://10.0.0.1:2380", "http://10.0.0.2:2380"]
    );
    assert_eq!(c.verify_bootstrap(), Ok(()));

    // With the default name the default initial cluster stays as it is,
    // and bootstrap then fails exactly like etcd.
    let c = cfg(&["--initial-advertise-peer-urls", "http://127.0.0.1:23800"]);
    assert_eq!(c.initial_cluster, DEFAULT_INITIAL_CLUSTER);
    assert_eq!(
        c.verify_bootstrap().unwrap_err().to_string(),
        "--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls=http://127.0.0.1:23800 (resolved urls: \"http://127.0.0.1:23800\" != \"http://localhost:2380\")"
    );

    // An explicit cluster is kept.
    let c = cfg(&[
        "--name",
        "b",
        "--initial-cluster",
        "a=http://127.0.0.1:1,b=http://localhost:2380",
    ]);
    assert_eq!(
        c.initial_cluster_members
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(c.verify_bootstrap(), Ok(()));
    let ids = c.initial_member_ids();
    assert_eq!(c.initial_cluster_id(), cluster_id(&[ids[0].1, ids[1].1]));

    let c = cfg(&[
        "--name",
        "x",
        "--initial-cluster",
        "y=http://localhost:2380",
    ]);
    assert_eq!(
        c.verify_bootstrap().unwrap_err().to_string(),
        "couldn't find local name \"x\" in the initial cluster configuration"
    );
    assert_eq!(
        err(&["--initial-cluster", "a=localhost:1"]),
        "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: localhost:1"
    );
}

#[test]
fn cluster_state() {
    assert_eq!(
        cfg(&["--initial-cluster-state=existing"]).initial_cluster_state,
        ClusterState::Existing
    );
    assert_eq!(
        err(&["--initial-cluster-state", "bad"]),
        "invalid value \"bad\" for flag -initial-cluster-state: invalid value"
    );
}

#[test]
fn durations() {
    let c = cfg(&["--experimental-watch-progress-notify-interval", "100ms"]);
    assert_eq!(
        c.experimental_watch_progress_notify_interval,
        Duration::from_millis(100)
    );
    let c = cfg(&["--experimental-watch-progress-notify-interval=10s"]);
    assert_eq!(c.watch_progress_notify_interval(), Duration::from_secs(10));
    let c = cfg(&["--experimental-watch-progress-notify-interval=1ms"]);
    assert_eq!(
        c.watch_progress_notify_interval(),
        Duration::from_millis(100)
    );
    assert_eq!(
        err(&["--experimental-watch-progress-notify-interval", "10"]),
        "invalid value \"10\" for flag -experimental-watch-progress-notify-interval: parse error"
    );
    // Unhonoured duration flags are still parsed.
    assert!(parse(&["--grpc-keepalive-timeout", "1x"]).is_err());
    assert_eq!(parse_go_duration("1h2m3.5s"), Ok(3_723_500_000_000));
}

#[test]
fn bad_url_messages() {
    assert_eq!(
        err(&["--listen-client-urls", "http://localhost:2379/"]),
        "invalid value \"http://localhost:2379/\" for flag -listen-client-urls: URL must not contain a path: http://localhost:2379/"
    );
    assert_eq!(
        err(&["--listen-peer-urls", "127.0.0.1:2380"]),
        "invalid value \"127.0.0.1:2380\" for flag -listen-peer-urls: parse \"127.0.0.1:2380\": first path segment in URL cannot contain colon"
    );
    assert_eq!(
        err(&["--advertise-client-urls", "http://a"]),
        "invalid value \"http://a\" for flag -advertise-client-urls: URL address does not have the form \"host:port\": http://a"
    );
    assert_eq!(
        err(&[
            "--listen-client-urls",
            "http://foo:23790",
            "--advertise-client-urls",
            "http://foo:23790"
        ]),
        "expected IP in URL for binding (http://foo:23790)"
    );
    assert_eq!(
        err(&["--initial-advertise-peer-urls", "http://:2380"]),
        "--initial-advertise-peer-urls \"http://:2380\" must be \"host:port\" (unexpected empty host (http://:2380))"
    );
    let e = parse_env(&[], &[("ETCD_LISTEN_PEER_URLS", "http://x:1/p")]).unwrap_err();
    assert_eq!(e.to_string(), "invalid value \"http://x:1/p\" for ETCD_LISTEN_PEER_URLS: URL must not contain a path: http://x:1/p");
}

#[test]
fn validation_like_etcd() {
    assert_eq!(
        err(&["--election-timeout", "400"]),
        "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"
    );
    assert_eq!(
        err(&["--heartbeat-interval", "0"]),
        "--heartbeat-interval must be >0 (set to 0ms)"
    );
    assert_eq!(
        err(&["--election-timeout", "60000"]),
        "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
    );
    let e = parse(&["--listen-client-urls", "http://127.0.0.1:23790"]).unwrap_err();
    assert_eq!(e, ConfigError::UnsetAdvertiseClientUrls);
    assert!(e.log_line().contains("must advertise accessible url(s)"));
    assert!(parse(&[
        "--listen-client-urls",
        "http://127.0.0.1:1",
        "--advertise-client-urls",
        "http://127.0.0.1:1"
    ])
    .is_ok());
    assert_eq!(
        err(&["--auto-compaction-mode", "x"]),
        "unknown auto-compaction-mode \"x\""
    );
    assert_eq!(err(&["--logger", "x"]), "unknown logger option \"x\"");
    assert_eq!(err(&["--log-level", "loud"]), "unknown level \"loud\"");
    assert_eq!(
        err(&["--log-outputs", "stderr,stdout"]),
        "--logger=capnslog supports only 1 value in '--log-outputs', got [\"stderr\" \"stdout\"]"
    );
    assert_eq!(
        cfg(&["--logger=zap", "--log-outputs", "stdout,stderr"]).log_outputs,
        ["stderr", "stdout"]
    );
    assert_eq!(
        err(&["--discovery", "http://d", "--initial-cluster", "a=http://h:1"]),
        "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\""
    );
    assert_eq!(
        err(&["--experimental-enable-lease-checkpoint-persist"]),
        "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint"
    );
}

#[test]
fn auto_compaction() {
    let c = cfg(&["--auto-compaction-retention", "1"]);
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic(Duration::from_secs(3600))
    );
    let c = cfg(&["--auto-compaction-retention", "5m"]);
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic(Duration::from_secs(300))
    );
    let c = cfg(&[
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "1000",
    ]);
    assert_eq!(c.auto_compaction, AutoCompaction::Revision(1000));
    assert_eq!(
        err(&["--auto-compaction-retention", "abc"]),
        "error parsing CompactionRetention: time: invalid duration \"abc\""
    );
}

#[test]
fn tls_and_misc_fields() {
    let c = cfg(&[
        "--cert-file=/c.pem",
        "--key-file=/k.pem",
        "--trusted-ca-file=/ca.pem",
        "--client-crl-file=/crl",
        "--auto-tls",
        "--peer-cert-file=/pc.pem",
        "--peer-key-file=/pk.pem",
        "--peer-trusted-ca-file=/pca.pem",
        "--peer-client-cert-auth",
        "--peer-crl-file=/pcrl",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--metrics=extensive",
        "--quota-backend-bytes=8589934592",
        "--max-txn-ops=1024",
        "--log-level=debug",
    ]);
    assert_eq!(c.client_tls.cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.client_tls.key_file, Some(PathBuf::from("/k.pem")));
    assert_eq!(c.client_tls.trusted_ca_file, Some(PathBuf::from("/ca.pem")));
    assert_eq!(c.client_tls.crl_file, Some(PathBuf::from("/crl")));
    assert!(c.client_tls.auto_tls && !c.client_tls.is_empty());
    assert_eq!(c.peer_tls.cert_file, Some(PathBuf::from("/pc.pem")));
    assert_eq!(c.peer_tls.crl_file, Some(PathBuf::from("/pcrl")));
    assert!(c.peer_tls.client_cert_auth);
    assert_eq!(urls(&c.listen_metrics_urls), ["http://127.0.0.1:2381"]);
    assert_eq!(c.metrics, "extensive");
    assert_eq!(c.quota_backend_bytes, 8_589_934_592);
    assert_eq!(c.max_txn_ops, 1024);
    assert_eq!(c.log_level, "debug");
}

#[test]
fn unhonoured_flags_are_reported() {
    let p = parse_env(
        &["--pre-vote", "--max-snapshots", "3", "-v"],
        &[("ETCD_AUTH_TOKEN", "jwt,pub-key=x"), ("ETCD_NAME", "n")],
    )
    .unwrap();
    assert_eq!(
        p.unhonoured_flags,
        ["max-snapshots", "pre-vote", "auth-token"]
    );
    assert!(p
        .warnings
        .contains(&"flag --pre-vote is accepted but not yet honoured by Synod".to_string()));
    assert!(p
        .warnings
        .contains(&"flag \"-v\" is no longer supported - ignoring.".to_string()));
    // Explicitly set to the default: nothing changes, nothing reported.
    let p = parse(&[
        "--strict-reconfig-check=true",
        "--max-wals",
        "5",
        "--proxy",
        "off",
    ])
    .unwrap();
    assert!(p.unhonoured_flags.is_empty(), "{:?}", p.unhonoured_flags);
    // Every flag in the table is accepted.
    for f in FLAGS {
        let arg = match f.kind {
            FlagKind::Bool | FlagKind::Ignored => format!("--{}", f.name),
            _ if f.name == "config-file" || f.name == "version" => continue,
            _ => format!("--{}={}", f.name, f.default),
        };
        let r = parse(&[arg.as_str()]);
        let accepted = match &r {
            Ok(_) => true,
            // Setting these alone is invalid in etcd too.
            Err(e) => !matches!(e, ConfigError::Flag(_)),
        };
        assert!(accepted, "{arg}: {r:?}");
    }
}

#[test]
fn config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.yml");
    std::fs::write(
        &path,
        "name: 'infra1'\n\
         data-dir: /var/lib/synod\n\
         listen-client-urls: http://127.0.0.1:2379\n\
         advertise-client-urls: http://127.0.0.1:2379\n\
         initial-cluster: infra1=http://localhost:2380\n\
         heartbeat-interval: 50\n\
         election-timeout: 500\n\
         log-outputs: [stderr]\n\
         pre-vote: true\n\
         experimental-watch-progress-notify-interval: 2000000000\n\
         client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n",
    )
    .unwrap();
    let p = parse_env(
        &["--config-file", path.to_str().unwrap()],
        &[("ETCD_NAME", "ignored-in-file-mode")],
    )
    .unwrap();
    let c = &p.config;
    assert_eq!(c.config_file.as_deref(), Some(path.as_path()));
    assert_eq!(c.name, "infra1");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/synod"));
    assert_eq!(urls(&c.listen_client_urls), ["http://127.0.0.1:2379"]);
    assert_eq!((c.heartbeat_interval_ms, c.election_timeout_ms), (50, 500));
    assert_eq!(c.log_outputs, ["stderr"]);
    assert_eq!(
        c.experimental_watch_progress_notify_interval,
        Duration::from_secs(2)
    );
    assert_eq!(c.client_tls.cert_file, Some(PathBuf::from("/c.pem")));
    assert!(c.client_tls.client_cert_auth);
    assert_eq!(p.unhonoured_flags, ["pre-vote"]);
    assert!(p.unrecognized_env.is_empty());

    // ETCD_CONFIG_FILE works too; errors carry etcd's texts.
    let e = parse_env(&[], &[("ETCD_CONFIG_FILE", "/nonexistent/etcd.yml")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "open /nonexistent/etcd.yml: no such file or directory"
    );
    std::fs::write(&path, "election-timeout: 100\n").unwrap();
    assert_eq!(
        err(&["--config-file", path.to_str().unwrap()]),
        "--election-timeout[100ms] should be at least as 5 times as --heartbeat-interval[100ms]"
    );
}

#[test]
fn listen_url_resolution() {
    let c = cfg(&[
        "--listen-client-urls=http://localhost:2379,http://0.0.0.0:12379,https://[::1]:2379",
        "--advertise-client-urls=http://localhost:2379",
    ]);
    let addrs: Vec<SocketAddr> = c
        .listen_client_urls
        .iter()
        .map(|u| u.socket_addr().unwrap())
        .collect();
    assert_eq!(
        addrs,
        [
            "0.0.0.0:12379".parse::<SocketAddr>().unwrap(),
            "127.0.0.1:2379".parse().unwrap(),
            "[::1]:2379".parse().unwrap()
        ]
    );
    assert!(c.listen_client_urls[2].is_tls());
}
