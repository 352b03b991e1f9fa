//! Running upstream etcd 3.4's own end-to-end suite (`tests/e2e`, compiled to
//! a test binary by `scripts/setup-test-deps`) against a server binary.
//!
//! The suite starts "etcd" from `-bin-dir`; we hand it a temp dir where
//! `etcd` is a symlink to the binary under test (synod, or upstream etcd when
//! `E2E_TARGET=etcd`, to validate the runner) and `etcdctl` is upstream's.
//!
//! The suite uses fixed ports (localhost:20000 and up), so runs are
//! serialised process-wide by [`run_e2e`].

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bins::{etcd_bin, etcdctl_bin, synod_bin};

/// Root of etcd 3.4's Go sources as packaged by Debian's golang-etcd-server-dev.
pub const ETCD_SRC: &str = "/usr/share/gocode/src/go.etcd.io/etcd";

/// The suite's own `-test.timeout`.
pub const E2E_GO_TIMEOUT: &str = "20m";
/// Our hard wall-clock limit on one run (the whole process group is killed).
pub const E2E_WALL_LIMIT: Duration = Duration::from_secs(25 * 60);

static SERIAL: Mutex<()> = Mutex::new(());

/// The compiled e2e suite: `$E2E_TEST_BIN`, else
/// `${SYNOD_CACHE:-$HOME/.cache/synod}/e2e.test`. Panics if missing.
pub fn e2e_test_bin() -> PathBuf {
    let path = match std::env::var_os("E2E_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => cache_dir().join("e2e.test"),
    };
    if !path.is_file() {
        panic!(
            "etcd e2e test binary not found at {} — build it with scripts/setup-test-deps \
             (needs golang-go and golang-etcd-server-dev), or set $E2E_TEST_BIN",
            path.display()
        );
    }
    path
}

/// `${SYNOD_CACHE:-$HOME/.cache/synod}`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("SYNOD_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/synod"),
    }
}

/// Which server the suite runs: `E2E_TARGET=etcd` → upstream etcd (to
/// validate the runner and the expected lists), anything else → synod.
pub fn e2e_target() -> (String, PathBuf) {
    match std::env::var("E2E_TARGET").as_deref() {
        Ok("etcd") => ("etcd".into(), etcd_bin()),
        Ok("") | Ok("synod") | Err(_) => ("synod".into(), synod_bin()),
        Ok(other) => panic!("E2E_TARGET must be 'synod' or 'etcd', got {other:?}"),
    }
}

/// What one run produced.
pub struct E2eOutcome {
    pub passed: BTreeSet<String>,
    pub failed: BTreeSet<String>,
    pub output: String,
    pub exit: Option<i32>,
    pub elapsed: Duration,
}

/// Kills the suite's whole process group (it and every server it started).
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on the process group we created.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// Runs the suite's top-level tests matching `regex` and returns the outcome.
pub fn run_e2e_raw(regex: &str) -> E2eOutcome {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let suite = e2e_test_bin();
    let (target_name, target) = e2e_target();
    let ctl = etcdctl_bin();
    let fixtures = PathBuf::from(ETCD_SRC).join("integration/fixtures");
    assert!(
        fixtures.is_dir(),
        "{} missing: install golang-etcd-server-dev (scripts/setup-test-deps)",
        fixtures.display()
    );
    let curl_found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("curl").is_file()))
        .unwrap_or(false);
    assert!(
        curl_found,
        "curl not on PATH: the e2e suite needs it (scripts/setup-test-deps installs it)"
    );

    let tmp = tempfile::Builder::new()
        .prefix("etcd-e2e-")
        .tempdir()
        .expect("temp dir");
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(&target, bin_dir.join("etcd")).unwrap();
    std::os::unix::fs::symlink(&ctl, bin_dir.join("etcdctl")).unwrap();
    // The suite's defaults are relative to etcd/tests/e2e ("../../bin",
    // "../../integration/fixtures"): mirror that layout so relative paths work.
    let cwd = tmp.path().join("tests/e2e");
    std::fs::create_dir_all(&cwd).unwrap();
    std::os::unix::fs::symlink(
        PathBuf::from(ETCD_SRC).join("integration"),
        tmp.path().join("integration"),
    )
    .unwrap();
    let data_tmp = tmp.path().join("tmp");
    std::fs::create_dir(&data_tmp).unwrap();
    let out_path = tmp.path().join("e2e.out");
    let out = File::create(&out_path).unwrap();

    let mut cmd = Command::new(&suite);
    cmd.current_dir(&cwd)
        .arg("-test.v")
        .arg(format!("-bin-dir={}", bin_dir.display()))
        .arg(format!("-cert-dir={}", fixtures.display()))
        .arg(format!("-test.run={regex}"))
        .arg(format!("-test.timeout={E2E_GO_TIMEOUT}"))
        .env("TMPDIR", &data_tmp) // the members' data dirs go here
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .process_group(0);
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
    }
    eprintln!(
        "e2e: running {} against {target_name} ({}) with -test.run='{regex}'",
        suite.display(),
        target.display()
    );
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", suite.display()));
    let guard = GroupGuard(child.id() as i32);
    let deadline = start + E2E_WALL_LIMIT;
    let status = loop {
        match child.try_wait().expect("wait for e2e suite") {
            Some(st) => break Some(st),
            None if Instant::now() >= deadline => break None,
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    drop(guard); // stragglers: servers the suite failed to stop
    let _ = child.wait();
    let elapsed = start.elapsed();
    let mut output =
        String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned();
    if status.is_none() {
        output.push_str(&format!(
            "\n[harness: e2e suite killed after {E2E_WALL_LIMIT:?}]\n"
        ));
    }

    let mut passed = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for line in output.lines() {
        // top-level results only: subtests are indented
        if let Some(rest) = line.strip_prefix("--- PASS: ") {
            passed.insert(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        } else if let Some(rest) = line.strip_prefix("--- FAIL: ") {
            failed.insert(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    E2eOutcome {
        passed,
        failed,
        output,
        exit: status.and_then(|s| s.code()),
        elapsed,
    }
}

/// Runs the tests matching `regex` and asserts that exactly `expected` ran
/// and passed (no failure, none missing, none unexpected). On failure prints
/// each failing test's output and the tail of the whole run.
pub fn run_e2e(regex: &str, expected: &[&str]) {
    let o = run_e2e_raw(regex);
    eprintln!(
        "e2e: {} passed, {} failed in {:.1}s (exit {:?})",
        o.passed.len(),
        o.failed.len(),
        o.elapsed.as_secs_f64(),
        o.exit
    );
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let missing: Vec<&String> = expected
        .difference(&o.passed)
        .filter(|t| !o.failed.contains(*t))
        .collect();
    let unexpected: Vec<&String> = o.passed.difference(&expected).collect();
    let ok =
        o.failed.is_empty() && missing.is_empty() && unexpected.is_empty() && o.exit == Some(0);
    if ok {
        return;
    }
    let mut report = String::new();
    for t in o.failed.iter().take(8) {
        report.push_str(&format!(
            "\n===== output of failed {t} =====\n{}\n",
            test_block(&o.output, t)
        ));
    }
    if o.failed.len() > 8 {
        report.push_str(&format!(
            "\n[output of {} more failed tests not shown]\n",
            o.failed.len() - 8
        ));
    }
    let lines: Vec<&str> = o.output.lines().collect();
    report.push_str(&format!(
        "\n===== last 80 lines of the run =====\n{}\n",
        lines[lines.len().saturating_sub(80)..].join("\n")
    ));
    panic!(
        "etcd e2e suite: {} passed of {} expected; failed: {:?}; never reported (crash or timeout?): {:?}; \
         passed but not expected (update the list?): {:?}; exit {:?}{report}",
        o.passed.intersection(&expected).count(),
        expected.len(),
        o.failed,
        missing,
        unexpected,
        o.exit
    );
}

/// The lines from `=== RUN   <test>` to its `--- FAIL: <test>` (at most 150).
fn test_block(output: &str, test: &str) -> String {
    let run = format!("=== RUN   {test}");
    let fail = format!("--- FAIL: {test} ");
    let mut block = Vec::new();
    let mut inside = false;
    for line in output.lines() {
        if line == run {
            inside = true;
        }
        if inside {
            block.push(line);
            if line.starts_with(&fail) {
                break;
            }
        }
    }
    if block.len() > 150 {
        let tail = block.split_off(block.len() - 150);
        return format!(
            "[... {} lines elided ...]\n{}",
            block.len(),
            tail.join("\n")
        );
    }
    block.join("\n")
}
