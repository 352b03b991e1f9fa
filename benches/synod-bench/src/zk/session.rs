//! One ZooKeeper client session of a run: a TCP connection after a successful handshake,
//! writing requests with the gateway's jute encoder and reading length-prefixed replies and
//! watch notifications.
//!
//! It owns the wire: framing, xids, reply headers, notifications. It must never trust a
//! server's bytes: every frame is length-checked (a short or oversized one is an error, never
//! a panic), and no read waits longer than `--request-timeout`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use zk_gateway::jute::{
    encode_connect_request, encode_request, Acl, ConnectRequest, Id, Request, RequestHeader,
};
use zk_gateway::proto::{op, perms};

use super::{err, BoxError, Result};

/// Largest reply frame accepted (a getData of a 256-byte value is ~100 bytes of header + data).
const MAX_FRAME: usize = 16 << 20;

/// Big-endian `int` at `at`, if the buffer holds it.
pub fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Big-endian `long` at `at`, if the buffer holds it.
pub fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// `ReplyHeader {int xid; long zxid; int err}`
#[derive(Debug, Clone, Copy)]
pub struct ReplyHeader {
    pub xid: i32,
    pub err: i32,
}

/// A frame read from the server: a reply, or a watch notification (xid -1), whose
/// `WatcherEvent {int type; int state; ustring path}` follows the reply header.
#[derive(Debug, Clone, Copy)]
pub enum Frame {
    Reply(ReplyHeader),
    Notification { kind: i32, state: i32 },
}

pub struct Session {
    pub id: usize,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_xid: i32,
    out: Vec<u8>,
    /// The last frame read (its body follows the 16-byte reply header).
    pub frame: Vec<u8>,
    request_timeout: Duration,
}

impl Session {
    pub async fn connect(
        id: usize,
        addr: &str,
        session_timeout: i32,
        request_timeout: Duration,
    ) -> Result<Session> {
        let stream = tokio::time::timeout(request_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("session {id}: connect to {addr} timed out"))?
            .map_err(|e| format!("session {id}: connect to {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut s = Session {
            id,
            reader: BufReader::with_capacity(64 << 10, r),
            writer: w,
            next_xid: 1,
            out: Vec::with_capacity(1024),
            frame: Vec::with_capacity(1024),
            request_timeout,
        };
        encode_connect_request(
            &mut s.out,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                time_out: session_timeout,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            },
        );
        s.writer.write_all(&s.out).await?;
        s.read_frame()
            .await
            .map_err(|e| format!("session {id}: handshake with {addr}: {e}"))?;
        // ConnectResponse {int protocolVersion; int timeOut; long sessionId; buffer passwd} [bool readOnly]
        let b = &s.frame;
        let (Some(time_out), Some(session_id)) = (be_i32(b, 4), be_i64(b, 8)) else {
            return err(format!(
                "session {id}: short ConnectResponse ({} bytes) from {addr}",
                b.len()
            ));
        };
        if time_out <= 0 || session_id == 0 {
            return err(format!(
                "session {id}: {addr} refused the session (timeOut {time_out})"
            ));
        }
        Ok(s)
    }

    /// Reads one length-prefixed frame into `self.frame`, within the request timeout.
    async fn read_frame(&mut self) -> Result<()> {
        let reader = &mut self.reader;
        let frame = &mut self.frame;
        let read = async {
            let len = reader.read_i32().await?;
            if len < 0 || len as usize > MAX_FRAME {
                return err(format!("bad frame length {len}"));
            }
            frame.resize(len as usize, 0);
            reader.read_exact(frame).await?;
            Ok(())
        };
        match tokio::time::timeout(self.request_timeout, read).await {
            Ok(r) => r.map_err(|e| -> BoxError {
                if e.downcast_ref::<std::io::Error>().map(|e| e.kind())
                    == Some(std::io::ErrorKind::UnexpectedEof)
                {
                    "connection closed by the server".into()
                } else {
                    e
                }
            }),
            Err(_) => err(format!("no reply within {:?}", self.request_timeout)),
        }
    }

    /// Reads the next frame: a reply or a notification.
    pub async fn read_any(&mut self) -> Result<Frame> {
        self.read_frame().await?;
        let b = &self.frame;
        let (Some(xid), Some(e)) = (be_i32(b, 0), be_i32(b, 12)) else {
            return err(format!("short reply ({} bytes)", b.len()));
        };
        if xid != zk_gateway::proto::xid::NOTIFICATION {
            return Ok(Frame::Reply(ReplyHeader { xid, err: e }));
        }
        match (be_i32(b, 16), be_i32(b, 20)) {
            (Some(kind), Some(state)) => Ok(Frame::Notification { kind, state }),
            _ => err(format!("short watch notification ({} bytes)", b.len())),
        }
    }

    /// Reads the next reply's header, skipping watch notifications (for sessions that set no
    /// watches).
    pub async fn read_reply(&mut self) -> Result<ReplyHeader> {
        loop {
            if let Frame::Reply(h) = self.read_any().await? {
                return Ok(h);
            }
        }
    }

    /// Encodes and writes one request; returns its xid.
    pub async fn send(&mut self, opcode: i32, req: &Request) -> Result<i32> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        self.out.clear();
        encode_request(&mut self.out, &RequestHeader { xid, op: opcode }, req);
        self.writer.write_all(&self.out).await?;
        Ok(xid)
    }

    /// One synchronous request; returns the reply's err.
    pub async fn call(&mut self, opcode: i32, req: &Request) -> Result<i32> {
        let xid = self.send(opcode, req).await?;
        let h = self.read_reply().await?;
        self.check_xid(h, xid)?;
        Ok(h.err)
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub fn check_xid(&self, h: ReplyHeader, xid: i32) -> Result<()> {
        if h.xid != xid {
            return err(format!(
                "session {}: reply xid {} where {xid} was expected",
                self.id, h.xid
            ));
        }
        Ok(())
    }

    /// closeSession, best effort (the run's result does not depend on it).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.call(op::CLOSE_SESSION, &Request::CloseSession),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_are_none() {
        assert_eq!(be_i32(&[0, 0, 0, 7], 0), Some(7));
        assert_eq!(be_i32(&[0, 0, 7], 0), None);
        assert_eq!(be_i32(&[0, 0, 0, 7], usize::MAX), None);
        assert_eq!(be_i64(&[0; 8], 1), None);
    }
}
