//! Running upstream etcdctl (v3 API) against servers: to completion
//! ([`etcdctl`]), or in the background for the long-running commands
//! (`watch`, `lock`, `elect`: [`BgEtcdctl`]); and [`canonical_json`] for
//! comparing what it prints with `-w json`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::etcdctl_bin;

/// Wall-clock limit for one etcdctl run; past it the process is killed and the
/// returned `Output` has a non-success status (etcdctl's own
/// `--command-timeout` is 5 s, so this only catches hangs).
pub const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `etcdctl --endpoints=<endpoints> <args>` with `ETCDCTL_API=3` and
/// no standard input.
pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
    run(endpoints, args, None)
}

/// Like [`etcdctl`], feeding `stdin` to the process (e.g. `txn -i`).
pub fn etcdctl_with_stdin(endpoints: &[String], args: &[&str], stdin: &str) -> Output {
    run(endpoints, args, Some(stdin))
}

/// stdout of a run that must have succeeded; panics with both streams otherwise.
pub fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "etcdctl failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// `etcdctl --endpoints=<endpoints> --dial-timeout=5s --command-timeout=10s
/// <args>` with `ETCDCTL_API=3` (and none of the `ETCDCTL_*` variables of
/// the test's own environment); stdout and stderr piped. Returns the binary's path (for error messages)
/// and the command, its stdin still to be set.
fn command(endpoints: &[String], args: &[&str]) -> (PathBuf, Command) {
    let bin = etcdctl_bin();
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--dial-timeout=5s", "--command-timeout=10s"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    (bin, cmd)
}

fn run(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
    let (bin, mut cmd) = command(endpoints, args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", bin.display()));

    // Feed stdin and drain the pipes on threads so nothing can block us.
    let feeder = stdin.map(|input| {
        let mut w = child.stdin.take().expect("piped stdin");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = w.write_all(input.as_bytes());
        })
    });
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err_t = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );

    let deadline = Instant::now() + CTL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                break child.wait().expect("wait for killed etcdctl");
            }
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = out_t.join().unwrap_or_default();
    let mut stderr = err_t.join().unwrap_or_default();
    if Instant::now() >= deadline && !status.success() {
        stderr.extend_from_slice(
            format!("\n[harness: etcdctl killed after {CTL_TIMEOUT:?}]\n").as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A long-running etcdctl (watch, lock, elect) with its stdout and stderr
/// captured by reader threads as it runs. Killed and reaped on drop if still
/// running.
pub struct BgEtcdctl {
    args: Vec<String>,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The threads copying stdout and stderr; finished once the pipes close.
    readers: Vec<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl BgEtcdctl {
    /// Starts `etcdctl --endpoints=<endpoints> <args>` (as [`etcdctl`] runs
    /// it, with no standard input) and returns at once.
    pub fn spawn(endpoints: &[String], args: &[&str]) -> BgEtcdctl {
        let (bin, mut cmd) = command(endpoints, args);
        let mut child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", bin.display()));
        let mut readers = Vec::new();
        let mut capture = |r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&buf);
            // Never joined unbounded: a reader ends when the pipe closes.
            readers.push(std::thread::spawn(move || {
                let mut r = r;
                let mut chunk = [0u8; 4096];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            }));
            buf
        };
        let stdout = capture(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = capture(Box::new(child.stderr.take().expect("piped stderr")));
        BgEtcdctl {
            args: args.iter().map(|a| a.to_string()).collect(),
            child,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    /// The arguments it was started with (after the endpoint flags).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Everything it has written to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Everything it has written to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// How it exited, if it has been seen to (by [`BgEtcdctl::exited`]).
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            }
        }
        self.status.is_some()
    }

    /// Sends `sig` to the process, unless it has already exited.
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.exited() {
            // Reaped: its pid may belong to someone else by now.
            return;
        }
        // SAFETY: kill(2) on the pid of our child, which has not been reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Whether everything the process wrote has been captured.
    pub fn drained(&self) -> bool {
        self.readers.iter().all(|r| r.is_finished())
    }

    /// Waits for the process to exit and for its output to be captured;
    /// kills it and panics (with its output) after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while !self.exited() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "etcdctl {:?} did not exit within {limit:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                    self.args,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the reader threads take what the process wrote last.
        while !self.drained() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.status.expect("exited")
    }
}

impl Drop for BgEtcdctl {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `v` as JSON with object keys sorted (independent of serde_json's feature
/// set), so that what etcdctl prints with `-w json` compares as text.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}
