//! Running upstream etcdctl (v3 API) against servers.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

fn run(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
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
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
