//! Differential ZooKeeper test: one seeded random workload
//! (`compat-tests/zk/differential.py`, a single-threaded kazoo driver: six
//! sessions and more later, ≥1,000 random operations of every opcode on a
//! small colliding path space, watches of all kinds, session close, resume
//! and two expiries, container/TTL reaping, raw-socket protocol probes) is
//! run against upstream ZooKeeper 3.8 (the reference) and against Synod's
//! ZooKeeper gateway. The driver writes a normalized JSON-lines transcript
//! (zxids as first-seen labels plus their global order, times as relations,
//! session ids as driver session labels, children sorted; see the driver's
//! docstring); two correct servers give byte-identical transcripts, and the
//! test asserts exactly that.
//!
//! * `zookeeper_and_synod_give_identical_transcripts_for_a_seeded_random_workload`:
//!   the gateway embedded in `synod` (`--zk-listen-addr`).
//! * `synod_zk_in_front_of_etcd_matches_zookeeper`: the standalone `synod-zk`
//!   binary in front of upstream etcd 3.4.
//!
//! Environment:
//! * `ZK_DIFF_SEED=<u64>` replays another workload (the seed is printed);
//! * `ZK_DIFF_OPS=<n>`    number of random operations (default 1000);
//! * `SYNOD_ZK_BIN`        the `synod-zk` binary (default: next to `synod`);
//! * `SYNOD_ZK_SECOND_TARGET=zookeeper` runs the candidate side against a
//!   second fresh ZooKeeper instead: validates the driver's determinism;
//! * `SYNOD_PYTHON`        a python3 that can import kazoo.
//!
//! On a mismatch the test fails with the seed, the first differing lines
//! (with context) and the paths of both transcripts, kept under
//! `CARGO_TARGET_TMPDIR/zk-differential/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use compat_tests::differential::env_parse;
use compat_tests::zookeeper::{
    four_letter_word, kazoo_dir, kazoo_python, line_diff, second_flavor, SynodZk, ZkFlavor,
    ZkServer, ZkTarget,
};
use compat_tests::{free_port, synod_bin, Flavor, Server, READY_TIMEOUT};

const DEFAULT_SEED: u64 = 0x2B_5EED;
const DEFAULT_OPS: usize = 1000;
/// The driver bounds every wait itself (its whole run stays within ~7
/// minutes even against a server that hangs); this is the backstop.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(600);
/// How many differing lines the failure message shows.
const SHOWN_DIFFERENCES: usize = 20;
/// Same as ZooKeeper's `znode.container.checkIntervalMs` in the harness.
const CONTAINER_CHECK_INTERVAL_MS: u64 = 1000;

fn seed() -> u64 {
    env_parse("ZK_DIFF_SEED").unwrap_or(DEFAULT_SEED)
}

fn ops() -> usize {
    env_parse("ZK_DIFF_OPS").unwrap_or(DEFAULT_OPS)
}

/// Where the transcripts of a run are kept.
fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zk-differential");
    std::fs::create_dir_all(&d).expect("create transcript dir");
    d
}

/// One driver run: the transcript, the driver's stderr, how it ended.
struct Run {
    transcript: String,
    path: PathBuf,
    stderr: String,
    status: Option<ExitStatus>,
    elapsed: Duration,
}

/// Runs the driver against `target` and returns its transcript; `tag`
/// names the transcript file.
fn run_driver(target: &dyn ZkTarget, seed: u64, ops: usize, tag: &str) -> Run {
    let driver = kazoo_dir().join("differential.py");
    assert!(driver.is_file(), "driver missing: {}", driver.display());
    let dir = out_dir();
    let path = dir.join(format!("seed{seed}-{tag}.jsonl"));
    let err_path = dir.join(format!("seed{seed}-{tag}.stderr"));
    let err_file = std::fs::File::create(&err_path).expect("create driver stderr file");
    let t0 = Instant::now();
    let mut child = Command::new(kazoo_python())
        .arg("-u")
        .arg(&driver)
        .arg(target.connect_string())
        .args([
            "--seed",
            &seed.to_string(),
            "--ops",
            &ops.to_string(),
            "--out",
        ])
        .arg(&path)
        .current_dir(kazoo_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err_file))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn the differential driver: {e}"));
    let status = wait_bounded(&mut child, DRIVER_TIMEOUT);
    let elapsed = t0.elapsed();
    let mut transcript = std::fs::read_to_string(&path).unwrap_or_default();
    if status.is_none() {
        transcript.push_str(&format!(
            "{{\"harness\":\"driver killed after {}s\"}}\n",
            DRIVER_TIMEOUT.as_secs()
        ));
    }
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    eprintln!(
        "differential driver against {} ({tag}): seed {seed}, {ops} ops, {} lines, {:.1} s, {}",
        target.name(),
        transcript.lines().count(),
        elapsed.as_secs_f64(),
        match status {
            Some(s) => s.to_string(),
            None => "killed (timeout)".into(),
        }
    );
    Run {
        transcript,
        path,
        stderr,
        status,
        elapsed,
    }
}

/// Waits for `child` at most `limit`; kills it after that (returns None).
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The reference run must be clean: against ZooKeeper the driver neither
/// crashes nor reports a violation, else the test itself is wrong.
fn check_reference(run: &Run) {
    let bad: Vec<&str> = run
        .transcript
        .lines()
        .filter(|l| {
            l.contains("\"violation\"")
                || l.contains("\"driver_crash\"")
                || l.contains("\"driver_exception\"")
                || l.contains("\"scenario_crash\"")
                || l.contains("\"harness\"")
                || l.contains("\"skipped_rest\"")
        })
        .take(10)
        .collect();
    let complete = run
        .transcript
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("{\"summary\""));
    if !bad.is_empty() || !complete || run.status.is_none_or(|s| !s.success()) {
        panic!(
            "the differential driver misbehaves against ZooKeeper 3.8 (the reference): the TEST is wrong.\n\
             status: {:?}, complete: {complete}\nsuspicious lines:\n{}\n--- driver stderr ---\n{}\n--- transcript: {} ---",
            run.status,
            bad.join("\n"),
            run.stderr,
            run.path.display()
        );
    }
}

/// Panics unless the two transcripts are identical, showing the first
/// [`SHOWN_DIFFERENCES`] differing lines with two lines of context.
fn assert_same(reference: &Run, candidate: &Run, cand_name: &str, seed: u64) {
    if reference.transcript == candidate.transcript {
        eprintln!(
            "identical transcripts ({} lines); ZooKeeper run {:.1} s, {cand_name} run {:.1} s",
            reference.transcript.lines().count(),
            reference.elapsed.as_secs_f64(),
            candidate.elapsed.as_secs_f64()
        );
        return;
    }
    let a: Vec<&str> = reference.transcript.lines().collect();
    let b: Vec<&str> = candidate.transcript.lines().collect();
    let differing = (0..a.len().max(b.len()))
        .filter(|&k| a.get(k) != b.get(k))
        .count();
    let diff = line_diff(
        &reference.transcript,
        &candidate.transcript,
        "zookeeper",
        cand_name,
    );
    let mut shown = String::new();
    let mut changes = 0;
    let mut after_last = 0;
    for line in diff.lines() {
        let is_change = line.starts_with("- ") || line.starts_with("+ ");
        if changes >= SHOWN_DIFFERENCES {
            if is_change || after_last >= 2 {
                shown.push_str("  ... (more differences; see the transcripts)\n");
                break;
            }
            after_last += 1;
        }
        if is_change {
            changes += 1;
        }
        shown.push_str(&truncate(line, 600));
        shown.push('\n');
    }
    panic!(
        "the ZooKeeper and {cand_name} transcripts differ (seed {seed}; replay with ZK_DIFF_SEED={seed}): \
         {differing} of {} positions differ\n{shown}--- transcripts ---\n  zookeeper: {}\n  {cand_name}: {}\n\
         --- {cand_name} driver stderr (tail) ---\n{}",
        a.len().max(b.len()),
        reference.path.display(),
        candidate.path.display(),
        tail(&candidate.stderr, 30),
    );
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The reference transcript: the driver against a fresh ZooKeeper 3.8.
fn reference_run(seed: u64, ops: usize, tag: &str) -> Run {
    let zk = ZkServer::start();
    let run = run_driver(&zk, seed, ops, tag);
    drop(zk);
    check_reference(&run);
    run
}

#[test]
fn zookeeper_and_synod_give_identical_transcripts_for_a_seeded_random_workload() {
    let (seed, ops) = (seed(), ops());
    eprintln!("ZK_DIFF_SEED={seed} ZK_DIFF_OPS={ops}");
    let reference = reference_run(seed, ops, "embedded-zookeeper");
    let (candidate, name) = match second_flavor() {
        ZkFlavor::ZooKeeper => {
            let zk = ZkServer::start();
            (
                run_driver(&zk, seed, ops, "embedded-second-zookeeper"),
                "zookeeper-2",
            )
        }
        ZkFlavor::Synod => {
            let synod = SynodZk::start();
            (run_driver(&synod, seed, ops, "embedded-synod"), "synod")
        }
    };
    assert_same(&reference, &candidate, name, seed);
}

/// `synod-zk`: `$SYNOD_ZK_BIN`, else next to the synod binary.
fn synod_zk_bin() -> PathBuf {
    let (path, origin) = match std::env::var_os("SYNOD_ZK_BIN") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "$SYNOD_ZK_BIN".to_string()),
        _ => {
            let synod = synod_bin();
            let dir = synod
                .parent()
                .expect("synod binary has a directory")
                .to_path_buf();
            (dir.join("synod-zk"), format!("next to {}", synod.display()))
        }
    };
    if !path.is_file() {
        panic!(
            "required binary not found: {} ({origin}).\n\
             build it with the same profile as synod: cargo build --profile <profile> -p synod-zk-gateway --bin synod-zk \
             (or set $SYNOD_ZK_BIN)",
            path.display()
        );
    }
    path
}

/// The standalone gateway in front of an etcd endpoint, killed on drop.
struct SynodZkProcess {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SynodZkProcess {
    fn start(etcd_url: &str) -> SynodZkProcess {
        let bin = synod_zk_bin();
        let port = free_port();
        let tmp = tempfile::Builder::new()
            .prefix("compat-synod-zk-")
            .tempdir()
            .expect("create temp dir");
        let log_path = tmp.path().join("synod-zk.log");
        let mut log = std::fs::File::create(&log_path).expect("create synod-zk log");
        let args = [
            "--endpoints".to_string(),
            etcd_url.to_string(),
            "--zk-listen-addr".to_string(),
            format!("127.0.0.1:{port}"),
            "--zk-container-check-interval".to_string(),
            CONTAINER_CHECK_INTERVAL_MS.to_string(),
        ];
        let _ = writeln!(
            log,
            "=== harness: starting {} {}",
            bin.display(),
            args.join(" ")
        );
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut p = SynodZkProcess {
            child: Some(child),
            port,
            log_path,
            _tmp: tmp,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let addr = self.connect_string();
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no probe made");
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!(
                        "synod-zk exited during startup ({status}).\n--- its log ---\n{}",
                        self.log_tail(200)
                    );
                }
            }
            match four_letter_word(&addr, "ruok") {
                Ok(a) if a == "imok" => return,
                Ok(a) => last = format!("ruok answered {a:?}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "synod-zk at {addr} did not answer ruok with imok within {READY_TIMEOUT:?}; last: {last}\n--- its log ---\n{}",
            self.log_tail(200)
        );
    }
}

impl ZkTarget for SynodZkProcess {
    fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn name(&self) -> &'static str {
        "synod-zk"
    }
    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        tail(&log, n)
    }
}

impl Drop for SynodZkProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- log of synod-zk at {} ---\n{}\n--- end of log ---",
                self.connect_string(),
                self.log_tail(60)
            );
        }
    }
}

#[test]
fn synod_zk_in_front_of_etcd_matches_zookeeper() {
    let (seed, ops) = (seed(), ops());
    eprintln!("ZK_DIFF_SEED={seed} ZK_DIFF_OPS={ops}");
    let reference = reference_run(seed, ops, "standalone-zookeeper");
    let (candidate, name) = match second_flavor() {
        ZkFlavor::ZooKeeper => {
            let zk = ZkServer::start();
            (
                run_driver(&zk, seed, ops, "standalone-second-zookeeper"),
                "zookeeper-2",
            )
        }
        ZkFlavor::Synod => {
            let etcd = Server::start(Flavor::Etcd);
            let gateway = SynodZkProcess::start(&etcd.client_url);
            let run = run_driver(&gateway, seed, ops, "standalone-synod-zk-etcd");
            drop(gateway);
            drop(etcd);
            (run, "synod-zk+etcd")
        }
    };
    assert_same(&reference, &candidate, name, seed);
}
