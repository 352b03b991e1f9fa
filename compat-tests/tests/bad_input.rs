//! Bad input gets a clear error of the upstream kind: never a panic, a hang or a wedged server.
//!
//! Start-up failures (bad flags, a port in use, an unusable or corrupt data directory) are
//! checked against upstream etcd 3.4 where it has the same failure; request-level garbage
//! (malformed frames, JSON and protobuf) must leave the server serving everyone else.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::{block_on, client, etcd_bin, free_port, synod_bin, Flavor, Server};

/// How long a server that must refuse to start may take to exit.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

/// Runs `bin` with `args` until it exits (killing it after [`EXIT_LIMIT`], which fails the
/// test as a hang). Returns the exit code and everything it printed.
fn run_to_exit(bin: &Path, args: &[String]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let deadline = Instant::now() + EXIT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {:?} did not exit within {EXIT_LIMIT:?}; output:\n{}",
                bin.display(),
                args,
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status.code().unwrap_or(-1), text)
}

fn assert_clean_failure(code: i32, output: &str, what: &str) {
    assert_ne!(
        code, 0,
        "{what}: expected a non-zero exit; output:\n{output}"
    );
    assert!(
        !output.contains("panicked"),
        "{what}: the server panicked:\n{output}"
    );
}

fn member_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        "m0".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("m0={peer}"),
    ]
}

#[test]
fn an_unknown_flag_is_refused_with_gos_flag_error_and_exit_code_2_like_etcd() {
    let args = vec!["--no-such-flag".to_string()];
    let (synod_code, synod_out) = run_to_exit(&synod_bin(), &args);
    let (etcd_code, etcd_out) = run_to_exit(&etcd_bin(), &args);
    assert_eq!(
        synod_code, etcd_code,
        "exit codes differ: synod\n{synod_out}\netcd\n{etcd_out}"
    );
    assert_eq!(synod_code, 2);
    let line = "flag provided but not defined: -no-such-flag";
    assert!(
        etcd_out.contains(line),
        "upstream changed its text: {etcd_out}"
    );
    assert!(synod_out.contains(line), "synod said:\n{synod_out}");
}

#[test]
fn a_flag_also_set_in_the_environment_is_refused_with_etcds_conflict_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("d").display().to_string();
    let expected = "conflicting environment variable \"ETCD_DATA_DIR\" is shadowed by corresponding command-line flag";
    for bin in [synod_bin(), etcd_bin()] {
        let out = Command::new(&bin)
            .args(["--data-dir", &data])
            .env("ETCD_DATA_DIR", &data)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean_failure(
            out.status.code().unwrap_or(-1),
            &text,
            &bin.display().to_string(),
        );
        assert!(text.contains(expected), "{}:\n{text}", bin.display());
    }
}

#[test]
fn a_client_port_in_use_is_refused_with_the_bind_error_like_etcd() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    for bin in [synod_bin(), etcd_bin()] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (code, out) = run_to_exit(
            &bin,
            &member_args(&dir.path().join("data"), port, free_port()),
        );
        assert_clean_failure(code, &out, &bin.display().to_string());
        let text = format!("listen tcp 127.0.0.1:{port}: bind: address already in use");
        assert!(
            out.contains(&text),
            "{} did not say {text:?}:\n{out}",
            bin.display()
        );
    }
    drop(busy);
}

#[test]
fn a_data_dir_that_cannot_be_created_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A regular file where a directory must go: not even root can create a directory under it.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let (code, out) = run_to_exit(
        &synod_bin(),
        &member_args(&file.join("data"), free_port(), free_port()),
    );
    assert_clean_failure(code, &out, "synod");
    assert!(
        out.contains("cannot access data directory"),
        "synod said:\n{out}"
    );
    assert!(
        out.contains("Not a directory"),
        "the OS reason is missing:\n{out}"
    );
}

#[test]
fn a_corrupt_state_file_is_a_clear_startup_error_and_is_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let member = data.join("member");
    std::fs::create_dir_all(&member).expect("mkdir");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let state = member.join("state.redb");
    std::fs::write(&state, &garbage).expect("write garbage");
    let (code, out) = run_to_exit(&synod_bin(), &member_args(&data, free_port(), free_port()));
    assert_clean_failure(code, &out, "synod");
    assert!(
        out.contains("state.redb"),
        "the error does not name the file:\n{out}"
    );
    assert_eq!(
        std::fs::read(&state).expect("read back"),
        garbage,
        "the corrupt file was modified"
    );
}

#[test]
fn a_raft_log_segment_damaged_before_the_newest_is_a_clear_startup_error_and_is_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // A member bootstraps (its first Raft records reach the log), then is killed.
    let mut child = Command::new(synod_bin())
        .args(member_args(&data, free_port(), free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synod");
    let wal = data.join("member").join("raft-wal");
    let first = wal.join("0000000000000001.wal");
    // The header record is 29 bytes; wait for the record after it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(&first)
        .map(|b| b.len() < 33 || b[29..33] == [0, 0, 0, 0])
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "synod wrote no Raft record within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    // One flipped bit inside that record, and a newer (empty) segment after it.
    let mut bytes = std::fs::read(&first).expect("read segment");
    bytes[29 + 10] ^= 0x01;
    std::fs::write(&first, &bytes).expect("write segment");
    std::fs::write(wal.join("0000000000000002.wal"), b"").expect("newer segment");
    let (code, out) = run_to_exit(&synod_bin(), &member_args(&data, free_port(), free_port()));
    assert_clean_failure(code, &out, "synod");
    assert!(
        out.contains("0000000000000001.wal") && out.contains("not the newest"),
        "the error does not name the damaged segment:\n{out}"
    );
    assert_eq!(
        std::fs::read(&first).expect("read back"),
        bytes,
        "the damaged segment was modified"
    );
}

#[test]
fn a_raft_log_of_the_earlier_redb_format_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let member = data.join("member");
    std::fs::create_dir_all(&member).expect("mkdir");
    std::fs::write(member.join("raft-log.redb"), b"an old log").expect("write");
    let (code, out) = run_to_exit(&synod_bin(), &member_args(&data, free_port(), free_port()));
    assert_clean_failure(code, &out, "synod");
    assert!(out.contains("raft-log.redb"), "synod said:\n{out}");
}

#[test]
fn a_store_of_the_earlier_kv_history_layout_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let member = data.join("member");
    std::fs::create_dir_all(&member).expect("mkdir");
    {
        // The meta table of a layout-1 store (development builds before the key index).
        let db = redb::Database::create(member.join("state.redb")).expect("create");
        let txn = db.begin_write().expect("begin");
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def).expect("meta");
            meta.insert("mvcc/format", [1u8].as_slice())
                .expect("insert");
            meta.insert("mvcc/current_revision", 5i64.to_be_bytes().as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let (code, out) = run_to_exit(&synod_bin(), &member_args(&data, free_port(), free_port()));
    assert_clean_failure(code, &out, "synod");
    assert!(
        out.contains("state.redb")
            && out.contains("layout 1")
            && out.contains("empty data directory"),
        "synod said:\n{out}"
    );
}

/// Sends `bytes` on a fresh connection and reads until the server closes or 2 s pass.
fn send_raw(endpoint: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(endpoint).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn garbage_on_the_client_port_closes_that_connection_and_others_keep_working() {
    let server = Server::start(Flavor::Synod);
    let endpoint = server.endpoint();
    // Random bytes, a truncated HTTP/2 preface, and an HTTP/2 preface followed by a frame
    // header announcing a huge frame.
    send_raw(
        &endpoint,
        &[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37].repeat(512),
    );
    send_raw(&endpoint, b"PRI * HTTP/2.0\r\n\r\nSM");
    let mut huge = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
    send_raw(&endpoint, &huge);
    block_on(async {
        let mut c = client(&server).await;
        c.put("still", "serving", None)
            .await
            .expect("the server stopped serving after garbage");
        let r = c.get("still", None).await.expect("get");
        assert_eq!(r.kvs()[0].value(), b"serving");
    });
}

/// POSTs `body` to `path` on the JSON gateway with curl; returns (HTTP status, body).
fn post(endpoint: &str, path: &str, body: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .arg(format!("http://{endpoint}{path}"))
        .args(["-d", body])
        .output()
        .expect("curl is required (scripts/setup-test-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (status.to_string(), body.to_string())
}

#[test]
fn malformed_json_on_the_gateway_gets_the_same_error_as_from_etcd() {
    let synod = Server::start(Flavor::Synod);
    let etcd = Server::start(Flavor::Etcd);
    for (path, body) in [
        ("/v3/kv/put", "{not json"),
        ("/v3/kv/put", r#"{"key":"not base64!"}"#),
        ("/v3/kv/range", r#"{"key":""}"#),
        (
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"YmFy","lease":"12345"}"#,
        ),
    ] {
        let (s_status, _s_body) = post(&synod.endpoint(), path, body);
        let (e_status, e_body) = post(&etcd.endpoint(), path, body);
        assert_eq!(
            s_status, e_status,
            "{path} {body}: HTTP status differs (etcd said {e_body})"
        );
    }
    let (status, body) = post(&synod.endpoint(), "/v3/kv/range", r#"{"key":""}"#);
    assert_eq!(status, "400");
    assert!(body.contains("etcdserver: key is not provided"), "{body}");
    block_on(async {
        let mut c = client(&synod).await;
        c.put("after", "garbage", None)
            .await
            .expect("still serving");
    });
}
