//! etcdctl 3.4's watch, lease, lock and elect commands against a server, as
//! a black box: each test is a specification written as the terminal session
//! a user would see.
//!
//! Every test runs its scenario first against upstream etcd 3.4 (which proves
//! the expected transcript is right) and then against synod; both must
//! produce exactly the expected transcript after normalisation: ports, and
//! the ids of leases (`<lease1>`, `<lease2>`, ... in order of first
//! appearance), cluster/member ids and raft terms in JSON, remaining lease
//! TTLs (checked to be within the granted TTL, then masked). Revisions are
//! NOT normalised: a fresh server starts at revision 1 and every write bumps
//! it by one, in etcd as in synod.
//!
//! Transcript format: `$ etcdctl <args>` then stdout; stderr lines (minus the
//! client's JSON retry logs) prefixed with `! `; `[exit N]` when non-zero.
//! Long-running commands (`watch`, `lock`, `elect`) run in the background:
//! `$ etcdctl <args> &  # [N]`, their output lines appear as `[N] line` at
//! the point where the test waited for them, `$ kill -TERM %N` (or `-KILL`)
//! stops one, `[N] exit C` / `[N] killed by SIGx` is how it ended (`[N] ! ...` its
//! stderr). Every wait is bounded; every process a test starts is stopped by
//! the test (and killed on drop if the test fails half-way).
//!
//! lock and elect in etcdctl are client-side recipes (clientv3 concurrency):
//! they exercise leases, keep-alive, transactions and watches, not the
//! Lock/Election gRPC services.

use std::process::{ExitStatus, Output};
use std::time::{Duration, Instant};

use compat_tests::{canonical_json, etcdctl, transcript_on_both, BgEtcdctl, Server};
use serde_json::Value;

/// Upper bound for waiting for a background command's output or exit.
const BG_WAIT: Duration = Duration::from_secs(20);

/// How long a background command that must be blocked is watched for output.
const STILL_BLOCKED: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------
// Scenario runner
// ---------------------------------------------------------------------------

/// One scenario run against one server, recording a normalised transcript.
struct Run<'a> {
    srv: &'a Server,
    transcript: String,
    /// Lease ids in order of first appearance (`<lease1>` is `leases[0]`).
    leases: Vec<u64>,
    /// Key prefixes (`mylock/`) followed by a lease id in hex (no padding).
    lease_prefixes: Vec<String>,
    /// Background commands: job `[N]` is `jobs[N - 1]`.
    jobs: Vec<Job>,
}

/// A background etcdctl of the scenario.
struct Job {
    bg: BgEtcdctl,
    /// Bytes of its stdout already written to the transcript.
    recorded: usize,
}

impl<'a> Run<'a> {
    fn new(srv: &'a Server) -> Run<'a> {
        Run {
            srv,
            transcript: String::new(),
            leases: Vec::new(),
            lease_prefixes: Vec::new(),
            jobs: Vec::new(),
        }
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.srv.endpoint()]
    }

    /// Keys starting with `prefix` end in a lease id in hex: mask it.
    fn lease_keys_under(&mut self, prefix: &str) {
        self.lease_prefixes.push(prefix.to_string());
    }

    /// Run etcdctl, record the normalised exchange, return the raw output.
    fn ctl(&mut self, args: &[&str]) -> Output {
        let out = etcdctl(&self.endpoints(), args);
        self.record_command(args, "");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in self.normalise(&stdout).lines() {
            self.transcript.push_str(line.trim_end());
            self.transcript.push('\n');
        }
        self.record_stderr("", &String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            let s = exit_text(out.status);
            self.transcript.push_str(&format!("[{s}]\n"));
        }
        out
    }

    /// `lease grant <ttl>`, returning the granted lease id in hex as etcdctl
    /// prints it.
    fn grant(&mut self, ttl: &str) -> String {
        let out = self.ctl(&["lease", "grant", ttl]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .split_whitespace()
            .nth(1)
            .filter(|_| stdout.starts_with("lease "))
            .unwrap_or_else(|| panic!("unexpected lease grant output: {stdout:?}"))
            .to_string()
    }

    fn record_command(&mut self, args: &[&str], suffix: &str) {
        let mut t = String::from("$ etcdctl");
        for a in args {
            t.push(' ');
            if a.is_empty() || a.contains(' ') || a.contains('"') || a.contains('$') {
                t.push_str(&format!("'{a}'"));
            } else {
                t.push_str(a);
            }
        }
        let t = self.normalise(&t);
        self.transcript.push_str(t.trim_end());
        self.transcript.push_str(suffix);
        self.transcript.push('\n');
    }

    fn record_stderr(&mut self, prefix: &str, stderr: &str) {
        for line in stderr.lines() {
            // The Go client logs its retries as JSON with random ids: noise.
            if line.starts_with("{\"level\":") || line.trim().is_empty() {
                continue;
            }
            let line = self.normalise(line);
            self.transcript
                .push_str(&format!("{prefix}! {}\n", line.trim_end()));
        }
    }

    /// Start `etcdctl <args>` in the background; returns its job number.
    fn bg(&mut self, args: &[&str]) -> usize {
        let job = self.jobs.len() + 1;
        let bg = BgEtcdctl::spawn(&self.endpoints(), args);
        self.jobs.push(Job { bg, recorded: 0 });
        self.record_command(args, &format!(" &  # [{job}]"));
        job
    }

    /// Wait (bounded) until job `job` has printed `n` more complete lines and
    /// record exactly those.
    fn lines(&mut self, job: usize, n: usize) {
        let deadline = Instant::now() + BG_WAIT;
        let text = loop {
            let Job { bg, recorded } = &mut self.jobs[job - 1];
            let out = bg.stdout();
            let fresh = &out[*recorded..];
            let complete: Vec<&str> = fresh
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .collect();
            if complete.len() >= n {
                let text: String = complete[..n].concat();
                *recorded += text.len();
                break text;
            }
            // Exited and all its output read: no more lines will come.
            let gone = bg.exited() && bg.drained() && bg.stdout().len() == out.len();
            if Instant::now() >= deadline || gone {
                let exited = bg.exited();
                panic!(
                    "job [{job}] (etcdctl {:?}) printed {} of the {n} lines awaited ({}) \
                     \n--- its unrecorded stdout ---\n{fresh}--- its stderr ---\n{}--- transcript so far ---\n{}",
                    bg.args(),
                    complete.len(),
                    if exited { "it exited" } else { "timed out" },
                    bg.stderr(),
                    self.transcript
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = self.normalise(&text);
        for line in text.lines() {
            self.transcript
                .push_str(format!("[{job}] {line}").trim_end());
            self.transcript.push('\n');
        }
    }

    /// Job `job` must print nothing more (and keep running) for
    /// [`STILL_BLOCKED`]; `why` says what it waits for.
    fn quiet(&mut self, job: usize, why: &str) {
        std::thread::sleep(STILL_BLOCKED);
        let Job { bg, recorded } = &mut self.jobs[job - 1];
        let out = bg.stdout();
        assert!(
            out.len() == *recorded && !bg.exited(),
            "job [{job}] (etcdctl {:?}) must still be waiting ({why}), but printed {:?} (exited: {:?}); stderr: {}",
            bg.args(),
            &out[*recorded..],
            bg.status(),
            bg.stderr()
        );
    }

    /// Send `sig` to job `job`, wait for it to exit and record how it ended
    /// (any remaining stdout, its stderr, its exit).
    fn stop(&mut self, job: usize, sig: libc::c_int) {
        let name = match sig {
            libc::SIGTERM => "TERM",
            libc::SIGINT => "INT",
            libc::SIGKILL => "KILL",
            _ => "?",
        };
        self.transcript
            .push_str(&format!("$ kill -{name} %{job}\n"));
        self.jobs[job - 1].bg.signal(sig);
        self.finish(job);
    }

    /// Wait for job `job` to exit by itself and record how it ended.
    fn finish(&mut self, job: usize) {
        let Job { bg, recorded } = &mut self.jobs[job - 1];
        let status = bg.wait_exit(BG_WAIT);
        let rest = bg.stdout()[*recorded..].to_string();
        let stderr = bg.stderr();
        *recorded += rest.len();
        for line in self.normalise(&rest).lines() {
            self.transcript
                .push_str(format!("[{job}] {line}").trim_end());
            self.transcript.push('\n');
        }
        self.record_stderr(&format!("[{job}] "), &stderr);
        let ended = match (status.code(), status_signal(status)) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(libc::SIGKILL)) => "killed by SIGKILL".to_string(),
            (None, Some(libc::SIGTERM)) => "killed by SIGTERM".to_string(),
            (None, Some(libc::SIGINT)) => "killed by SIGINT".to_string(),
            (None, _) => exit_text(status),
        };
        self.transcript.push_str(&format!("[{job}] {ended}\n"));
    }

    /// Replace what legitimately differs between two servers / two runs.
    fn normalise(&mut self, text: &str) -> String {
        let s = text
            .replace(&self.srv.client_url, "<client_url>")
            .replace(&self.srv.endpoint(), "<endpoint>");
        let mut out = String::new();
        for line in s.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            let trimmed = body.trim();
            if trimmed.starts_with('{') {
                if let Ok(mut v) = serde_json::from_str::<Value>(trimmed) {
                    normalise_json(&mut v);
                    out.push_str(&canonical_json(&v));
                    out.push_str(nl);
                    continue;
                }
            }
            let body = self.mask_leases(body);
            let body = mask_remaining_ttl(&body);
            let body = sort_attached_keys(&body);
            out.push_str(&body);
            out.push_str(nl);
        }
        out
    }

    fn lease_placeholder(&mut self, id: u64) -> String {
        let n = match self.leases.iter().position(|&l| l == id) {
            Some(i) => i + 1,
            None => {
                self.leases.push(id);
                self.leases.len()
            }
        };
        format!("<lease{n}>")
    }

    /// 16-hex-digit words (etcdctl prints lease ids as `%016x`) and the hex
    /// suffix of keys under a lease prefix become `<leaseN>`.
    fn mask_leases(&mut self, line: &str) -> String {
        let bytes = line.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let after_prefix = self
                .lease_prefixes
                .iter()
                .any(|p| line[..i].ends_with(p.as_str()));
            let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
            if bytes[i].is_ascii_hexdigit() && (word_start || after_prefix) {
                let mut j = i;
                while j < bytes.len() && matches!(bytes[j], b'0'..=b'9' | b'a'..=b'f') {
                    j += 1;
                }
                let word_end = j == bytes.len() || !bytes[j].is_ascii_alphanumeric();
                if word_end && (after_prefix || j - i == 16) {
                    if let Ok(id) = u64::from_str_radix(&line[i..j], 16) {
                        let p = self.lease_placeholder(id);
                        out.push_str(&p);
                        i = j;
                        continue;
                    }
                }
            }
            let ch = line[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }
}

fn exit_text(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit {c}"),
        None => format!("{status}"),
    }
}

fn status_signal(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// `remaining(57s)` after `granted with TTL(60s)`: checked to be within
/// (0, granted], then masked as `remaining(<ttl>)`.
fn mask_remaining_ttl(line: &str) -> String {
    let Some(r) = line.find("remaining(") else {
        return line.to_string();
    };
    let num_start = r + "remaining(".len();
    let Some(num_len) = line[num_start..].find("s)") else {
        return line.to_string();
    };
    let remaining: i64 = match line[num_start..num_start + num_len].parse() {
        Ok(v) => v,
        Err(_) => return line.to_string(),
    };
    let granted: Option<i64> = line
        .find("TTL(")
        .and_then(|g| {
            let s = &line[g + 4..];
            s.find("s)").map(|e| &s[..e])
        })
        .and_then(|v| v.parse().ok());
    match granted {
        Some(g) if remaining > 0 && remaining <= g => format!(
            "{}<ttl>{}",
            &line[..num_start],
            &line[num_start + num_len..]
        ),
        // leave it visible: the diff will show it
        _ => line.to_string(),
    }
}

/// `attached keys([b a])`: etcd lists a lease's keys in no particular order.
fn sort_attached_keys(line: &str) -> String {
    let Some(start) = line.find("attached keys([") else {
        return line.to_string();
    };
    let list_start = start + "attached keys([".len();
    let Some(len) = line[list_start..].find("])") else {
        return line.to_string();
    };
    let mut keys: Vec<&str> = line[list_start..list_start + len].split(' ').collect();
    keys.sort();
    format!(
        "{}{}{}",
        &line[..list_start],
        keys.join(" "),
        &line[list_start + len..]
    )
}

/// Ids and raft terms differ between implementations and runs. Zero stays
/// zero (a zero id is a bug worth seeing).
fn normalise_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let placeholder = match k.as_str() {
                    "cluster_id" | "member_id" | "ID" => Some("<id>"),
                    "raft_term" => Some("<term>"),
                    _ => None,
                };
                match placeholder {
                    Some(p) if !(val.is_number() && val.as_u64() == Some(0)) => {
                        *val = Value::String(p.to_string())
                    }
                    _ => normalise_json(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_json),
        _ => {}
    }
}

/// Run `scenario` against upstream etcd, then synod; each must produce
/// `expected` exactly, and stop every background command it started.
fn spec(expected: &str, scenario: impl Fn(&mut Run)) {
    transcript_on_both(expected, |srv| {
        let mut run = Run::new(srv);
        scenario(&mut run);
        for (i, Job { bg, .. }) in run.jobs.iter_mut().enumerate() {
            assert!(
                bg.exited(),
                "the scenario left job [{}] (etcdctl {:?}) running: stop every background command",
                i + 1,
                bg.args()
            );
        }
        run.transcript
    });
}

// ---------------------------------------------------------------------------
// watch
// ---------------------------------------------------------------------------

#[test]
fn watch_prints_each_event_as_type_key_value_lines() {
    // --rev=2 (the first write's revision) so that no event can be missed
    // while the watch is being set up.
    spec(
        r#"
$ etcdctl watch foo --rev=2 &  # [1]
$ etcdctl put foo bar
OK
$ etcdctl put food other
OK
$ etcdctl put foo 'two words'
OK
$ etcdctl del foo
1
$ etcdctl put foo ''
OK
[1] PUT
[1] foo
[1] bar
[1] PUT
[1] foo
[1] two words
[1] DELETE
[1] foo
[1]
[1] PUT
[1] foo
[1]
$ kill -TERM %1
[1] killed by SIGTERM
"#,
        |r| {
            let w = r.bg(&["watch", "foo", "--rev=2"]);
            r.ctl(&["put", "foo", "bar"]);
            r.ctl(&["put", "food", "other"]);
            r.ctl(&["put", "foo", "two words"]);
            r.ctl(&["del", "foo"]);
            r.ctl(&["put", "foo", ""]);
            r.lines(w, 12);
            r.stop(w, libc::SIGTERM);
        },
    );
}

#[test]
fn watch_prefix_with_prev_kv_prints_the_previous_pair_before_the_new_one() {
    spec(
        r#"
$ etcdctl watch --prefix w/ --prev-kv --rev=2 &  # [1]
$ etcdctl put w/a 1
OK
$ etcdctl put w 'not under w/'
OK
$ etcdctl put w/a 2
OK
$ etcdctl put w/b/c 3
OK
$ etcdctl del --prefix w/
2
[1] PUT
[1] w/a
[1] 1
[1] PUT
[1] w/a
[1] 1
[1] w/a
[1] 2
[1] PUT
[1] w/b/c
[1] 3
[1] DELETE
[1] w/a
[1] 2
[1] w/a
[1]
[1] DELETE
[1] w/b/c
[1] 3
[1] w/b/c
[1]
$ kill -INT %1
[1] killed by SIGINT
"#,
        |r| {
            let w = r.bg(&["watch", "--prefix", "w/", "--prev-kv", "--rev=2"]);
            r.ctl(&["put", "w/a", "1"]);
            r.ctl(&["put", "w", "not under w/"]);
            r.ctl(&["put", "w/a", "2"]);
            r.ctl(&["put", "w/b/c", "3"]);
            r.ctl(&["del", "--prefix", "w/"]);
            r.lines(w, 21);
            r.stop(w, libc::SIGINT);
        },
    );
}

#[test]
fn watch_from_an_old_revision_replays_the_history_then_follows_live_writes() {
    spec(
        r#"
$ etcdctl put h 1
OK
$ etcdctl put h 2
OK
$ etcdctl put other x
OK
$ etcdctl del h
1
$ etcdctl watch h --rev=3 &  # [1]
[1] PUT
[1] h
[1] 2
[1] DELETE
[1] h
[1]
$ etcdctl put h 3
OK
[1] PUT
[1] h
[1] 3
$ etcdctl watch h --rev=1 -w json &  # [2]
[2] {"Canceled":false,"CompactRevision":0,"Created":false,"Events":[{"kv":{"create_revision":2,"key":"aA==","mod_revision":2,"value":"MQ==","version":1}},{"kv":{"create_revision":2,"key":"aA==","mod_revision":3,"value":"Mg==","version":2}},{"kv":{"key":"aA==","mod_revision":5},"type":1},{"kv":{"create_revision":6,"key":"aA==","mod_revision":6,"value":"Mw==","version":1}}],"Header":{"cluster_id":"<id>","member_id":"<id>","raft_term":"<term>","revision":6}}
$ kill -TERM %1
[1] killed by SIGTERM
$ kill -TERM %2
[2] killed by SIGTERM
"#,
        |r| {
            r.ctl(&["put", "h", "1"]);
            r.ctl(&["put", "h", "2"]);
            r.ctl(&["put", "other", "x"]);
            r.ctl(&["del", "h"]);
            let w = r.bg(&["watch", "h", "--rev=3"]);
            r.lines(w, 6);
            r.ctl(&["put", "h", "3"]);
            r.lines(w, 3);
            // the whole history in one response whose header has the current revision
            let j = r.bg(&["watch", "h", "--rev=1", "-w", "json"]);
            r.lines(j, 1);
            r.stop(w, libc::SIGTERM);
            r.stop(j, libc::SIGTERM);
        },
    );
}

#[test]
fn watch_from_a_compacted_revision_reports_the_cancellation_and_exits_5() {
    spec(
        r#"
$ etcdctl put k 1
OK
$ etcdctl put k 2
OK
$ etcdctl put k 3
OK
$ etcdctl compaction 3
compacted revision 3
$ etcdctl watch k --rev=2
! watch was canceled (etcdserver: mvcc: required revision has been compacted)
! Error: watch is canceled by the server
[exit 5]
$ etcdctl watch k --rev=3 &  # [1]
[1] PUT
[1] k
[1] 2
[1] PUT
[1] k
[1] 3
$ kill -TERM %1
[1] killed by SIGTERM
"#,
        |r| {
            for v in ["1", "2", "3"] {
                r.ctl(&["put", "k", v]);
            }
            r.ctl(&["compaction", "3"]);
            r.ctl(&["watch", "k", "--rev=2"]);
            // the compaction revision itself is still there
            let w = r.bg(&["watch", "k", "--rev=3"]);
            r.lines(w, 6);
            r.stop(w, libc::SIGTERM);
        },
    );
}

// ---------------------------------------------------------------------------
// lease
// ---------------------------------------------------------------------------

#[test]
fn lease_grant_put_timetolive_keep_alive_list_and_revoke() {
    spec(
        r#"
$ etcdctl lease grant 100
lease <lease1> granted with TTL(100s)
$ etcdctl lease grant 200
lease <lease2> granted with TTL(200s)
$ etcdctl put --lease=<lease1> k1 v1
OK
$ etcdctl put --lease=<lease1> k2 v2
OK
$ etcdctl put --lease=<lease2> k3 v3
OK
$ etcdctl get k1 -w json
{"count":1,"header":{"cluster_id":"<id>","member_id":"<id>","raft_term":"<term>","revision":4},"kvs":[{"create_revision":2,"key":"azE=","lease":"<lease1>","mod_revision":2,"value":"djE=","version":1}]}
$ etcdctl lease timetolive <lease1>
lease <lease1> granted with TTL(100s), remaining(<ttl>s)
$ etcdctl lease timetolive --keys <lease1>
lease <lease1> granted with TTL(100s), remaining(<ttl>s), attached keys([k1 k2])
$ etcdctl lease keep-alive --once <lease1>
lease <lease1> keepalived with TTL(100)
$ etcdctl lease list
found 2 leases
<lease1>
<lease2>
$ etcdctl lease revoke <lease1>
lease <lease1> revoked
$ etcdctl get --prefix k
k3
v3
$ etcdctl lease list
found 1 leases
<lease2>
$ etcdctl lease timetolive <lease1>
lease <lease1> already expired
$ etcdctl lease revoke <lease1>
! Error: failed to revoke lease (etcdserver: requested lease not found)
[exit 1]
$ etcdctl lease keep-alive --once <lease1>
! Error: etcdserver: requested lease not found
[exit 2]
$ etcdctl put --lease=<lease1> k1 again
! Error: etcdserver: requested lease not found
[exit 1]
$ etcdctl lease timetolive 4d2 -w json
{"cluster_id":"<id>","granted-ttl":0,"id":1234,"keys":null,"member_id":"<id>","raft_term":"<term>","revision":5,"ttl":-1}
"#,
        |r| {
            let l1 = r.grant("100");
            let l2 = r.grant("200");
            r.ctl(&["put", &format!("--lease={l1}"), "k1", "v1"]);
            r.ctl(&["put", &format!("--lease={l1}"), "k2", "v2"]);
            r.ctl(&["put", &format!("--lease={l2}"), "k3", "v3"]);
            // the kv's lease, in decimal in JSON
            let out = r.ctl(&["get", "k1", "-w", "json"]);
            let v: Value = serde_json::from_slice(&out.stdout).expect("json");
            let lease = v["kvs"][0]["lease"].as_u64().expect("a lease in the kv");
            assert_eq!(format!("{lease:016x}"), l1);
            r.transcript = r
                .transcript
                .replace(&format!("\"lease\":{lease}"), "\"lease\":\"<lease1>\"");
            r.ctl(&["lease", "timetolive", &l1]);
            r.ctl(&["lease", "timetolive", "--keys", &l1]);
            r.ctl(&["lease", "keep-alive", "--once", &l1]);
            // listed by expiry: the shorter lease first
            r.ctl(&["lease", "list"]);
            r.ctl(&["lease", "revoke", &l1]);
            r.ctl(&["get", "--prefix", "k"]);
            r.ctl(&["lease", "list"]);
            r.ctl(&["lease", "timetolive", &l1]);
            r.ctl(&["lease", "revoke", &l1]);
            r.ctl(&["lease", "keep-alive", "--once", &l1]);
            r.ctl(&["put", &format!("--lease={l1}"), "k1", "again"]);
            r.ctl(&["lease", "timetolive", "4d2", "-w", "json"]);
        },
    );
}

#[test]
fn lease_grant_raises_small_ttls_to_the_minimum_and_refuses_huge_ones() {
    spec(
        r#"
$ etcdctl lease grant 0
lease <lease1> granted with TTL(2s)
$ etcdctl lease grant 1
lease <lease2> granted with TTL(2s)
$ etcdctl lease grant 9000000000
lease <lease3> granted with TTL(9000000000s)
$ etcdctl lease grant 9000000001
! Error: failed to grant lease (etcdserver: too large lease TTL)
[exit 1]
$ etcdctl lease revoke zz
! Error: bad lease ID arg (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex
[exit 128]
$ etcdctl lease grant 60 -w json
{"Error":"","ID":"<id>","TTL":60,"cluster_id":"<id>","member_id":"<id>","raft_term":"<term>","revision":1}
"#,
        |r| {
            r.grant("0");
            r.grant("1");
            r.grant("9000000000");
            r.ctl(&["lease", "grant", "9000000001"]);
            r.ctl(&["lease", "revoke", "zz"]);
            r.ctl(&["lease", "grant", "60", "-w", "json"]);
        },
    );
}

#[test]
fn an_expiring_lease_takes_its_keys_with_it() {
    spec(
        r#"
$ etcdctl lease grant 2
lease <lease1> granted with TTL(2s)
$ etcdctl put --lease=<lease1> short-lived v
OK
$ etcdctl watch short-lived --rev=2 &  # [1]
[1] PUT
[1] short-lived
[1] v
[1] DELETE
[1] short-lived
[1]
$ etcdctl get short-lived
$ etcdctl lease timetolive <lease1>
lease <lease1> already expired
$ kill -TERM %1
[1] killed by SIGTERM
"#,
        |r| {
            let l = r.grant("2");
            r.ctl(&["put", &format!("--lease={l}"), "short-lived", "v"]);
            let w = r.bg(&["watch", "short-lived", "--rev=2"]);
            // the DELETE arrives once the lease has expired
            r.lines(w, 6);
            r.ctl(&["get", "short-lived"]);
            r.ctl(&["lease", "timetolive", &l]);
            r.stop(w, libc::SIGTERM);
        },
    );
}

// ---------------------------------------------------------------------------
// lock
// ---------------------------------------------------------------------------

#[test]
fn lock_prints_its_key_while_held_and_a_second_lock_waits_until_the_first_exits() {
    spec(
        r#"
$ etcdctl lock mylock &  # [1]
[1] mylock/<lease1>
[1]
$ etcdctl lock mylock &  # [2]
$ etcdctl get --prefix mylock/ --sort-by=CREATE --keys-only
mylock/<lease1>

mylock/<lease2>

$ kill -TERM %1
[1] exit 0
[2] mylock/<lease2>
[2]
$ etcdctl get --prefix mylock/ --keys-only
mylock/<lease2>

$ kill -INT %2
[2] exit 0
$ etcdctl get --prefix mylock/
"#,
        |r| {
            r.lease_keys_under("mylock/");
            let first = r.bg(&["lock", "mylock"]);
            r.lines(first, 2);
            let second = r.bg(&["lock", "mylock"]);
            // the second waits with its own key, created after the holder's
            r.quiet(second, "the lock is held by [1]");
            // (a waiter's key appears once its session is set up)
            wait_for_keys(r, "mylock/", 2);
            r.ctl(&[
                "get",
                "--prefix",
                "mylock/",
                "--sort-by=CREATE",
                "--keys-only",
            ]);
            r.quiet(second, "the lock is held by [1]");
            // a graceful exit unlocks
            r.stop(first, libc::SIGTERM);
            r.lines(second, 2);
            r.ctl(&["get", "--prefix", "mylock/", "--keys-only"]);
            r.stop(second, libc::SIGINT);
            r.ctl(&["get", "--prefix", "mylock/"]);
        },
    );
}

#[test]
fn a_lock_whose_holder_is_killed_is_taken_over_once_the_holders_lease_expires() {
    spec(
        r#"
$ etcdctl lock --ttl=2 ttllock &  # [1]
[1] ttllock/<lease1>
[1]
$ etcdctl lock ttllock &  # [2]
$ kill -KILL %1
[1] killed by SIGKILL
[2] ttllock/<lease2>
[2]
$ etcdctl lease timetolive <lease1>
lease <lease1> already expired
$ kill -TERM %2
[2] exit 0
$ etcdctl get --prefix ttllock/
"#,
        |r| {
            r.lease_keys_under("ttllock/");
            let first = r.bg(&["lock", "--ttl=2", "ttllock"]);
            r.lines(first, 2);
            let second = r.bg(&["lock", "ttllock"]);
            r.quiet(second, "the lock is held by [1]");
            // killed: no unlock; the key goes when its 2 s lease expires
            r.stop(first, libc::SIGKILL);
            r.lines(second, 2);
            let l1 = format!("{:016x}", r.leases[0]);
            r.ctl(&["lease", "timetolive", &l1]);
            r.stop(second, libc::SIGTERM);
            r.ctl(&["get", "--prefix", "ttllock/"]);
        },
    );
}

#[test]
fn lock_with_a_command_runs_it_holding_the_lock_then_unlocks() {
    spec(
        r#"
$ etcdctl lock cmdlock -- sh -c 'echo key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV'
key=cmdlock/<lease1> rev=2
$ etcdctl get --prefix cmdlock/
$ etcdctl lock cmdlock echo hello
hello
$ etcdctl lock cmdlock -- sh -c 'exit 3'
! Error: exit status 3
[exit 1]
$ etcdctl get --prefix cmdlock/
"#,
        |r| {
            r.lease_keys_under("cmdlock/");
            r.ctl(&[
                "lock",
                "cmdlock",
                "--",
                "sh",
                "-c",
                "echo key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV",
            ]);
            r.ctl(&["get", "--prefix", "cmdlock/"]);
            r.ctl(&["lock", "cmdlock", "echo", "hello"]);
            r.ctl(&["lock", "cmdlock", "--", "sh", "-c", "exit 3"]);
            r.ctl(&["get", "--prefix", "cmdlock/"]);
        },
    );
}

/// Waits (bounded) until `prefix` holds `n` keys; records nothing.
fn wait_for_keys(r: &mut Run, prefix: &str, n: usize) {
    let deadline = Instant::now() + BG_WAIT;
    loop {
        let out = etcdctl(&r.endpoints(), &["get", "--prefix", prefix, "--keys-only"]);
        let count = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .count();
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix} still holds {count} keys, not {n}, after {BG_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// elect
// ---------------------------------------------------------------------------

#[test]
fn elect_prints_the_leader_and_the_observer_follows_each_leader() {
    spec(
        r#"
$ etcdctl elect -l myelection &  # [1]
$ etcdctl elect myelection p1 &  # [2]
[2] myelection/<lease1>
[2] p1
[1] myelection/<lease1>
[1] p1
$ etcdctl elect myelection p2 &  # [3]
$ etcdctl get --prefix myelection/ --sort-by=CREATE
myelection/<lease1>
p1
myelection/<lease2>
p2
$ kill -INT %2
[2] exit 0
[3] myelection/<lease2>
[3] p2
[1] myelection/<lease2>
[1] p2
$ kill -INT %3
[3] exit 0
$ etcdctl get --prefix myelection/
$ kill -INT %1
[1] exit 0
"#,
        |r| {
            r.lease_keys_under("myelection/");
            let observer = r.bg(&["elect", "-l", "myelection"]);
            r.quiet(observer, "there is no leader yet");
            let first = r.bg(&["elect", "myelection", "p1"]);
            r.lines(first, 2);
            r.lines(observer, 2);
            let second = r.bg(&["elect", "myelection", "p2"]);
            r.quiet(second, "[2] leads");
            wait_for_keys(r, "myelection/", 2);
            r.ctl(&["get", "--prefix", "myelection/", "--sort-by=CREATE"]);
            r.quiet(second, "[2] leads");
            // an interrupted leader resigns; the next candidate wins
            r.stop(first, libc::SIGINT);
            r.lines(second, 2);
            r.lines(observer, 2);
            r.stop(second, libc::SIGINT);
            r.ctl(&["get", "--prefix", "myelection/"]);
            r.stop(observer, libc::SIGINT);
        },
    );
}

#[test]
fn elect_needs_a_proposal_unless_listening() {
    spec(
        r#"
$ etcdctl elect myelection
! Error: no proposal argument but -l not set
[exit 128]
$ etcdctl elect -l myelection p
! Error: proposal given but -l is set
[exit 128]
$ etcdctl elect
! Error: elect takes one election name argument and an optional proposal argument
[exit 128]
$ etcdctl lock
! Error: lock takes a lock name argument and an optional command to execute
[exit 128]
"#,
        |r| {
            r.ctl(&["elect", "myelection"]);
            r.ctl(&["elect", "-l", "myelection", "p"]);
            r.ctl(&["elect"]);
            r.ctl(&["lock"]);
        },
    );
}
