//! One client connection: framing (4-byte length, `jute.maxbuffer` limit), the four-letter
//! words, the handshake (new or resumed session), then the request loop. Requests are handled
//! in arrival order and replies leave in that order; watch notifications share the same
//! outgoing queue, and a reply waits for the watch fence of its zxid, so a client always sees
//! an event before a reply that reflects its change. A malformed frame closes this connection
//! and nothing else.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::acl::{digest, Identity};
use crate::handlers::{handle, Ctx};
use crate::jute::{
    decode_connect, decode_request, encode_connect_response, encode_notification, encode_reply,
    ConnectResponse, DecodeError, Id, ReplyHeader, Request, Response, WatcherEvent,
};
use crate::proto::{err, state, xid};
use crate::server::Shared;
use crate::session::SessionError;
use crate::watches::Outgoing;

enum Frame {
    Body(Vec<u8>),
    FourLetter([u8; 4]),
}

async fn read_frame(
    r: &mut OwnedReadHalf,
    max: usize,
    first: bool,
) -> std::io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if first && crate::four_letter::is_command(&len) {
        return Ok(Some(Frame::FourLetter(len)));
    }
    let n = i32::from_be_bytes(len);
    if n < 0 || n as usize > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("Len error {n}"),
        ));
    }
    let mut body = vec![0u8; n as usize];
    r.read_exact(&mut body).await?;
    Ok(Some(Frame::Body(body)))
}

pub async fn run(shared: Arc<Shared>, socket: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = socket.into_split();
    let max = shared.config.max_buffer;
    let first = match read_frame(&mut rd, max, true).await {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "zk: closing connection before handshake");
            return;
        }
    };
    let body = match first {
        Frame::FourLetter(cmd) => {
            let text = crate::four_letter::answer(&shared, &cmd).await;
            let _ = wr.write_all(text.as_bytes()).await;
            let _ = wr.shutdown().await;
            return;
        }
        Frame::Body(b) => b,
    };
    let Ok(connect) = decode_connect(&body) else {
        tracing::debug!(%peer, "zk: malformed ConnectRequest; closing");
        return;
    };
    shared.counters.received.fetch_add(1, Ordering::Relaxed);

    // A client that has seen more than this server has applied must go elsewhere.
    let current = match shared.store.current_revision().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "zk: store unavailable during handshake");
            return;
        }
    };
    if connect.last_zxid_seen > current {
        tracing::info!(%peer, seen = connect.last_zxid_seen, current,
            "Refusing session request: client has seen a newer zxid; try another server");
        return;
    }

    let conn = shared.next_conn();
    let timeout = shared.config.bounds().negotiate(connect.time_out);
    let session = if connect.session_id == 0 {
        match shared.sessions.create(conn, timeout).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "zk: could not create a session");
                return;
            }
        }
    } else {
        match shared
            .sessions
            .resume(conn, connect.session_id, &connect.passwd, timeout)
            .await
        {
            Ok(()) => Some(connect.session_id),
            Err(SessionError::Expired) => None,
            Err(SessionError::Store(e)) => {
                tracing::warn!(error = %e, "zk: could not resume a session");
                return;
            }
        }
    };
    let mut out = Vec::new();
    let Some(session) = session else {
        // upstream: timeout 0, session 0, a zeroed password, then close; the client says Expired
        encode_connect_response(
            &mut out,
            &ConnectResponse {
                protocol_version: 0,
                time_out: 0,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: connect.read_only.map(|_| false),
            },
        );
        let _ = wr.write_all(&out).await;
        return;
    };
    encode_connect_response(
        &mut out,
        &ConnectResponse {
            protocol_version: 0,
            time_out: timeout,
            session_id: session,
            passwd: shared.sessions.password(session),
            read_only: connect.read_only.map(|_| false),
        },
    );
    // Registered before the client can see the handshake's reply: a client that reconnects
    // at once (with the right password or not) must find this connection to close it, as
    // upstream closes the session's previous connection. Anything sent meanwhile waits in the
    // channel until the writer below starts.
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let identity = Arc::new(std::sync::RwLock::new(Identity::for_peer(peer.ip())));
    shared.watches.connect(conn, tx.clone(), identity.clone());
    if wr.write_all(&out).await.is_err() {
        shared.watches.disconnect(conn);
        shared.sessions.detach(session, conn);
        return;
    }
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);

    let counters_shared = shared.clone();
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            match item {
                Outgoing::Frame(f) => {
                    // Batch whatever else is queued into one write.
                    let mut buf = f;
                    while buf.len() < 64 * 1024 {
                        match rx.try_recv() {
                            Ok(Outgoing::Frame(more)) => buf.extend_from_slice(&more),
                            Ok(Outgoing::Close) => {
                                let _ = wr.write_all(&buf).await;
                                return;
                            }
                            Err(_) => break,
                        }
                    }
                    counters_shared
                        .counters
                        .sent
                        .fetch_add(1, Ordering::Relaxed);
                    if wr.write_all(&buf).await.is_err() {
                        return;
                    }
                }
                Outgoing::Close => return,
            }
        }
    });

    let attached = Attached {
        conn,
        session,
        peer,
        timeout_ms: timeout,
    };
    let closed_by_client = serve_requests(&shared, &mut rd, &tx, attached, &identity).await;
    shared.watches.disconnect(conn);
    if !closed_by_client {
        shared.sessions.detach(session, conn);
    }
    drop(tx);
    let _ = writer.await;
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
}

/// What the handshake settled for a connection: who it is, the session it holds and the
/// session timeout it negotiated.
struct Attached {
    conn: u64,
    session: i64,
    peer: SocketAddr,
    timeout_ms: i32,
}

/// The request loop. Returns true if the session was closed by the client (closeSession).
async fn serve_requests(
    shared: &Arc<Shared>,
    rd: &mut OwnedReadHalf,
    tx: &mpsc::UnboundedSender<Outgoing>,
    attached: Attached,
    shared_identity: &Arc<std::sync::RwLock<Identity>>,
) -> bool {
    let Attached {
        conn,
        session,
        peer,
        timeout_ms,
    } = attached;
    let mut identity = Identity::for_peer(peer.ip());
    let mut seen: i64 = 0;
    let idle = Duration::from_millis(timeout_ms.max(1) as u64);
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(idle, read_frame(rd, shared.config.max_buffer, false)) => f,
            _ = tx.closed() => return false,
        };
        let body = match frame {
            Ok(Ok(Some(Frame::Body(b)))) => b,
            Ok(Ok(_)) => return false,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "zk: closing connection");
                return false;
            }
            Err(_) => {
                tracing::debug!(%peer, "zk: session idle past its timeout; closing connection");
                return false;
            }
        };
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (header, req) = match decode_request(&body) {
            Ok(x) => x,
            Err(DecodeError::UnknownOp { xid, .. }) => {
                let mut out = Vec::new();
                encode_reply(
                    &mut out,
                    &ReplyHeader {
                        xid,
                        zxid: -1,
                        err: err::UNIMPLEMENTED,
                    },
                    &Response::Empty,
                );
                let _ = tx.send(Outgoing::Frame(out));
                return false;
            }
            Err(e) if body.len() >= 8 => {
                // upstream: a known opcode whose body does not parse is answered
                // MarshallingError, and the session carries on
                tracing::debug!(%peer, error = %e, "zk: malformed request body");
                let xid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let zxid = shared
                    .store
                    .current_revision()
                    .await
                    .unwrap_or(seen)
                    .max(seen);
                let mut out = Vec::new();
                encode_reply(
                    &mut out,
                    &ReplyHeader {
                        xid,
                        zxid,
                        err: err::MARSHALLING_ERROR,
                    },
                    &Response::Empty,
                );
                if tx.send(Outgoing::Frame(out)).is_err() {
                    return false;
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "zk: request shorter than its header; closing connection");
                return false;
            }
        };
        let processed = shared.watches.processed();
        let mut out = Vec::new();
        match &req {
            Request::Ping => {
                // upstream answers a ping with xid -2 whatever xid it came with
                encode_reply(
                    &mut out,
                    &ReplyHeader {
                        xid: xid::PING,
                        zxid: processed.max(seen),
                        err: 0,
                    },
                    &Response::Empty,
                );
                let _ = tx.send(Outgoing::Frame(out));
                continue;
            }
            Request::Sasl => {
                // a server without SASL: err 0, zxid 0, a null token
                encode_reply(
                    &mut out,
                    &ReplyHeader {
                        xid: header.xid,
                        zxid: 0,
                        err: 0,
                    },
                    &Response::Empty,
                );
                out.extend_from_slice(&(-1i32).to_be_bytes());
                let len = (out.len() - 4) as i32;
                out[..4].copy_from_slice(&len.to_be_bytes());
                let _ = tx.send(Outgoing::Frame(out));
                continue;
            }
            Request::Auth { scheme, auth, .. } => {
                let ok = match scheme.as_str() {
                    "digest" => {
                        let id = digest(&String::from_utf8_lossy(auth));
                        if shared.config.super_digest.as_deref() == Some(id.as_str()) {
                            identity.superuser = true;
                        }
                        let id = Id {
                            scheme: "digest".into(),
                            id,
                        };
                        if !identity.ids.contains(&id) {
                            identity.ids.push(id);
                        }
                        // the dispatcher checks events against who the connection is now
                        if let Ok(mut shared_id) = shared_identity.write() {
                            *shared_id = identity.clone();
                        }
                        true
                    }
                    "ip" => true,
                    _ => false,
                };
                let code = if ok { 0 } else { err::AUTH_FAILED };
                encode_reply(
                    &mut out,
                    &ReplyHeader {
                        xid: xid::AUTH,
                        zxid: 0,
                        err: code,
                    },
                    &Response::Empty,
                );
                let _ = tx.send(Outgoing::Frame(out));
                // upstream: the AuthFailed reply, then the connection closes (the client
                // raises the AuthFailed state itself).
                if !ok {
                    let _ = tx.send(Outgoing::Close);
                    return false;
                }
                continue;
            }
            Request::CloseSession => {
                let rev = match shared.sessions.close(session).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "zk: closeSession failed");
                        return false;
                    }
                };
                if shared.watches.watching(conn) {
                    shared.watches.fence(rev).await;
                }
                encode_reply(
                    &mut out,
                    &ReplyHeader {
                        xid: header.xid,
                        zxid: rev,
                        err: 0,
                    },
                    &Response::Empty,
                );
                let _ = tx.send(Outgoing::Frame(out));
                let _ = tx.send(Outgoing::Close);
                return true;
            }
            _ => {}
        }
        // a reply never shows an older zxid than the session has seen or the gateway has
        // processed (a resumed session starts from the latter)
        seen = seen.max(processed);
        let ctx = Ctx {
            store: &shared.store,
            watches: &shared.watches,
            conn,
            session,
            identity: &identity,
            seen,
        };
        shared.counters.outstanding.fetch_add(1, Ordering::Relaxed);
        let result = handle(&ctx, &req).await;
        shared.counters.outstanding.fetch_sub(1, Ordering::Relaxed);
        let reply = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "zk: store error; closing connection");
                return false;
            }
        };
        for (event_type, path) in &reply.events {
            let mut ev = Vec::new();
            encode_notification(
                &mut ev,
                -1,
                &WatcherEvent {
                    event_type: *event_type,
                    state: state::SYNC_CONNECTED,
                    path: path.clone(),
                },
            );
            let _ = tx.send(Outgoing::Frame(ev));
        }
        if shared.watches.watching(conn) {
            shared.watches.fence(reply.zxid).await;
        }
        seen = seen.max(reply.zxid);
        encode_reply(
            &mut out,
            &ReplyHeader {
                xid: header.xid,
                zxid: reply.zxid,
                err: reply.err,
            },
            if reply.err == 0 {
                &reply.body
            } else {
                &Response::Empty
            },
        );
        shared
            .counters
            .record_latency(started.elapsed().as_micros() as u64);
        if tx.send(Outgoing::Frame(out)).is_err() {
            return false;
        }
    }
}
