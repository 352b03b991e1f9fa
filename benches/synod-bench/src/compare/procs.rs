//! Child processes of a comparison (servers, etcd's benchmark tool, synod-bench's own load
//! runs): spawning them with their output in a file, waiting with a deadline, stopping them
//! (SIGTERM, then SIGKILL), and the last-resort clean-up when compare itself is interrupted.
//!
//! Every child is registered while it may still run, so that a Ctrl-C or SIGTERM to compare
//! kills every one of them and removes the work dir. This module must never leave a child
//! running when compare exits, and never signals a process it did not start.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Pids of the children not yet reaped (so never reused by another process).
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// The work dir, and whether to keep it, for the clean-up on a signal.
static WORK: Mutex<Option<(PathBuf, bool)>> = Mutex::new(None);
/// Set once a signal arrived: the clean-up owns the end of the process from then on.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// After a signal, the main thread must not go on (a killed child would look like a failed
/// run): it waits here for the clean-up to end the process.
pub fn halt_if_interrupted() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub struct Proc {
    child: Child,
    pid: u32,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Proc, String> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Hold the registry lock across the spawn: a signal's clean-up then sees the child.
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let pid = child.id();
        live.insert(pid);
        Ok(Proc {
            child,
            pid,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if it has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                unregister(self.pid);
            }
        }
        self.status
    }

    pub fn alive(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits at most `limit` for the exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            halt_if_interrupted();
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. True if it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if !self.alive() {
            return true;
        }
        signal(self.pid, "TERM");
        if self.wait_for(grace).is_some() {
            return true;
        }
        self.kill();
        false
    }

    pub fn kill(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait().map(|st| self.status = Some(st));
            unregister(self.pid);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

fn unregister(pid: u32) {
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// How a tool run ended.
pub enum Ended {
    Exited(i32),
    TimedOut,
}

/// Runs a tool to completion with its output in `log`; killed after `limit`.
pub fn run(name: &str, cmd: &mut Command, log: &Path, limit: Duration) -> Result<Ended, String> {
    let mut p = Proc::spawn(name, cmd, log)?;
    match p.wait_for(limit) {
        Some(st) => Ok(Ended::Exited(st.code().unwrap_or(-1))),
        None => {
            p.kill();
            Ok(Ended::TimedOut)
        }
    }
}

/// A new directory `<TMPDIR or /tmp>/<prefix>.<unique>`.
pub fn temp_dir(prefix: &str) -> Result<PathBuf, String> {
    let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    for attempt in 0..100u32 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "{prefix}.{}.{:x}{attempt}",
            std::process::id(),
            nanos
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!("cannot create a temp dir under {}", base.display()))
}

/// Records the work dir for the clean-up (removed on a signal unless `keep`).
pub fn set_work_dir(dir: &Path, keep: bool) {
    *WORK.lock().unwrap_or_else(|p| p.into_inner()) = Some((dir.to_path_buf(), keep));
}

/// On SIGINT, SIGTERM or SIGHUP: kill every child, remove the work dir (unless kept), exit 130.
pub fn clean_up_on_signals() {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let got = rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) else {
                    return false;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                true
            });
            if !got {
                return;
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            let pids: Vec<u32> = LIVE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .copied()
                .collect();
            eprintln!(
                "synod-bench compare: interrupted; killing {} child process(es)",
                pids.len()
            );
            for &pid in &pids {
                signal(pid, "KILL");
            }
            // Give them a moment to die, so that none still writes into the work dir.
            std::thread::sleep(Duration::from_millis(300));
            if let Some((dir, keep)) = WORK.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                if keep {
                    eprintln!("synod-bench compare: work dir kept: {}", dir.display());
                } else {
                    for _ in 0..5 {
                        if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            std::process::exit(130);
        });
    if let Err(e) = spawned {
        eprintln!("synod-bench compare: warning: no clean-up on signals ({e})");
    }
}
