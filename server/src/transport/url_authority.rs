//! Accepts the HTTP/2 `:authority` that etcd 3.4's Go client sends when it is given a URL.
//!
//! etcdctl 3.4 dials every endpoint of `endpoint status`, `defrag`, `hashkv` and `snapshot
//! save` (and etcd's own e2e tests dial every endpoint) as the gRPC target
//! `passthrough:///http://host:port`, so the request's `:authority` is `http://host:port`.
//! Go's HTTP/2 server takes it; Rust's `h2` refuses the request as malformed (RST_STREAM
//! PROTOCOL_ERROR). [`UrlAuthority`] sits between a connection and hyper and rewrites such an
//! authority to `host:port`, which is what etcd itself makes of it.
//!
//! It owns the client-to-server bytes of HTTP/2 connections only: HTTP/1.1 connections and
//! every frame but HEADERS and CONTINUATION pass through as they are. The first header block
//! of a connection decides: a plain authority (every client but a URL-dialled Go one) turns
//! the filter into a plain pass-through for the rest of the connection, reading straight into
//! hyper's buffer. After a URL-shaped one, every block is decoded (following the client's
//! HPACK dynamic table) and re-encoded as literals without indexing, so that `h2`'s decoder
//! never needs an entry of the client's table. It never looks at a header other than
//! `:authority` and never answers the client: anything it cannot parse is passed on untouched
//! for `h2` to judge.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame every HTTP/2 peer must accept (the default SETTINGS_MAX_FRAME_SIZE):
/// re-encoded blocks are cut into frames of at most this.
const MIN_MAX_FRAME: usize = 16_384;
/// A header frame longer than this is not buffered: the connection is passed through as is
/// (h2 refuses frames above its own limit anyway).
const MAX_BUFFERED_FRAME: usize = 1 << 20;

enum Mode {
    /// Matching the client preface; `usize` bytes matched so far.
    Preface(usize),
    Frames,
    /// Not HTTP/2 with prior knowledge, or not understood: bytes flow untouched.
    Passthrough,
}

/// A header block being assembled from a HEADERS frame and its CONTINUATIONs.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as received, to forward unchanged.
    raw: Vec<u8>,
}

/// A connection whose incoming HTTP/2 header blocks get a URL-shaped `:authority` fixed.
pub struct UrlAuthority<IO> {
    io: IO,
    mode: Mode,
    /// Bytes read from `io`; those before `in_at` are done with.
    input: Vec<u8>,
    in_at: usize,
    /// Bytes ready for the reader, from `out_at` on.
    out: Vec<u8>,
    out_at: usize,
    /// Payload bytes of the current pass-through frame still to forward.
    passing: usize,
    block: Option<Block>,
    decoder: fluke_hpack::Decoder<'static>,
    reencode: bool,
    /// A decoded block's names and values, back to back (reused).
    decoded: Vec<u8>,
    /// (name length, value length) of each header in `decoded`.
    fields: Vec<(usize, usize)>,
    eof: bool,
}

impl<IO> UrlAuthority<IO> {
    pub fn new(io: IO) -> Self {
        UrlAuthority {
            io,
            mode: Mode::Preface(0),
            input: Vec::new(),
            in_at: 0,
            out: Vec::new(),
            out_at: 0,
            passing: 0,
            block: None,
            decoder: fluke_hpack::Decoder::new(),
            reencode: false,
            decoded: Vec::new(),
            fields: Vec::new(),
            eof: false,
        }
    }

    /// The bytes read and not yet looked at.
    fn pending(&self) -> &[u8] {
        &self.input[self.in_at..]
    }

    /// Forwards the next `n` pending bytes as they are.
    fn forward(&mut self, n: usize) {
        self.out
            .extend_from_slice(&self.input[self.in_at..self.in_at + n]);
        self.in_at += n;
    }

    /// Moves what can be decided from `input` to `out`.
    fn process(&mut self) {
        self.decide();
        if self.in_at == self.input.len() {
            self.input.clear();
            self.in_at = 0;
        }
    }

    fn decide(&mut self) {
        loop {
            match self.mode {
                Mode::Passthrough => {
                    self.give_up();
                    return;
                }
                Mode::Preface(matched) => {
                    let want = &PREFACE[matched..];
                    let n = want.len().min(self.pending().len());
                    if self.pending()[..n] != want[..n] {
                        self.mode = Mode::Passthrough;
                        continue;
                    }
                    self.forward(n);
                    if matched + n == PREFACE.len() {
                        self.mode = Mode::Frames;
                    } else {
                        self.mode = Mode::Preface(matched + n);
                        return;
                    }
                }
                Mode::Frames => {
                    if self.passing > 0 {
                        let n = self.passing.min(self.pending().len());
                        self.forward(n);
                        self.passing -= n;
                        if self.passing > 0 {
                            return;
                        }
                    }
                    let head = self.pending();
                    if head.len() < FRAME_HEADER {
                        return;
                    }
                    let len = usize::from(head[0]) << 16
                        | usize::from(head[1]) << 8
                        | usize::from(head[2]);
                    let kind = head[3];
                    if kind != HEADERS && kind != CONTINUATION {
                        if self.block.is_some() {
                            // A frame inside a header block: a protocol error for h2 to see.
                            self.mode = Mode::Passthrough;
                            continue;
                        }
                        self.forward(FRAME_HEADER);
                        self.passing = len;
                        continue;
                    }
                    if len > MAX_BUFFERED_FRAME {
                        self.mode = Mode::Passthrough;
                        continue;
                    }
                    if head.len() < FRAME_HEADER + len {
                        return;
                    }
                    if self.header_frame(FRAME_HEADER + len) {
                        self.in_at += FRAME_HEADER + len;
                    } else {
                        self.mode = Mode::Passthrough;
                    }
                }
            }
        }
    }

    /// Everything buffered goes out untouched, from now on.
    fn give_up(&mut self) {
        if let Some(block) = self.block.take() {
            self.out.extend_from_slice(&block.raw);
        }
        self.out.extend_from_slice(&self.input[self.in_at..]);
        self.input.clear();
        self.in_at = 0;
    }

    /// Takes the whole HEADERS or CONTINUATION frame of `total` bytes at the front of the
    /// pending input; false if it cannot be understood (it is then left where it is).
    fn header_frame(&mut self, total: usize) -> bool {
        let frame = &self.input[self.in_at..self.in_at + total];
        let kind = frame[3];
        let flags = frame[4];
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        if kind == HEADERS {
            let (None, Some((priority, fragment))) =
                (&self.block, headers_fragment(flags, payload))
            else {
                return false;
            };
            self.block = Some(Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                fragment: fragment.to_vec(),
                raw: frame.to_vec(),
            });
        } else {
            match &mut self.block {
                Some(b) if b.stream == stream => {
                    b.fragment.extend_from_slice(payload);
                    b.raw.extend_from_slice(frame);
                }
                _ => return false,
            }
        }
        if flags & END_HEADERS != 0 {
            if let Some(block) = self.block.take() {
                self.finish_block(block);
            }
        }
        true
    }

    fn finish_block(&mut self, block: Block) {
        self.decoded.clear();
        self.fields.clear();
        let (decoded, fields) = (&mut self.decoded, &mut self.fields);
        let mut rewrite = false;
        let result = self.decoder.decode_with_cb(&block.fragment, |name, value| {
            decoded.extend_from_slice(&name);
            let host = match name.as_ref() {
                b":authority" => host_of_url(&value),
                _ => None,
            };
            let kept = match host {
                Some(host) => {
                    rewrite = true;
                    host
                }
                None => value.as_ref(),
            };
            decoded.extend_from_slice(kept);
            fields.push((name.len(), kept.len()));
        });
        if result.is_err() {
            // h2 will find the same fault; nothing after it can be followed.
            self.out.extend_from_slice(&block.raw);
            self.mode = Mode::Passthrough;
            return;
        }
        self.reencode |= rewrite;
        if !self.reencode {
            // A gRPC client keeps one authority for the life of its connection: one that
            // starts with a plain one needs nothing more from this filter.
            self.out.extend_from_slice(&block.raw);
            self.mode = Mode::Passthrough;
            return;
        }
        let mut encoded = Vec::with_capacity(self.decoded.len() + 4 * self.fields.len());
        let mut at = 0;
        for &(name_len, value_len) in &self.fields {
            let name = &self.decoded[at..at + name_len];
            let value = &self.decoded[at + name_len..at + name_len + value_len];
            at += name_len + value_len;
            // Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2).
            encoded.push(0);
            encoded.extend(fluke_hpack::encoder::encode_integer(name.len(), 7));
            encoded.extend_from_slice(name);
            encoded.extend(fluke_hpack::encoder::encode_integer(value.len(), 7));
            encoded.extend_from_slice(value);
        }
        self.emit_block(&block, &encoded);
    }

    fn emit_block(&mut self, block: &Block, encoded: &[u8]) {
        let priority_len = if block.priority.is_some() { 5 } else { 0 };
        let first = encoded.len().min(MIN_MAX_FRAME - priority_len);
        let mut flags = 0;
        if block.end_stream {
            flags |= END_STREAM;
        }
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        if first == encoded.len() {
            flags |= END_HEADERS;
        }
        self.frame_header(first + priority_len, HEADERS, flags, block.stream);
        if let Some(p) = block.priority {
            self.out.extend_from_slice(&p);
        }
        self.out.extend_from_slice(&encoded[..first]);
        let mut at = first;
        while at < encoded.len() {
            let n = (encoded.len() - at).min(MIN_MAX_FRAME);
            let flags = if at + n == encoded.len() {
                END_HEADERS
            } else {
                0
            };
            self.frame_header(n, CONTINUATION, flags, block.stream);
            self.out.extend_from_slice(&encoded[at..at + n]);
            at += n;
        }
    }

    fn frame_header(&mut self, len: usize, kind: u8, flags: u8, stream: u32) {
        self.out
            .extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        self.out.extend_from_slice(&stream.to_be_bytes());
    }
}

/// The priority fields and the header block fragment of a HEADERS frame's payload.
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        let (&p, r) = rest.split_first()?;
        pad = usize::from(p);
        rest = r;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let p: [u8; 5] = rest.get(..5)?.try_into().ok()?;
        priority = Some(p);
        rest = &rest[5..];
    }
    let end = rest.len().checked_sub(pad)?;
    Some((priority, &rest[..end]))
}

/// `host:port` of an authority written as a URL (`http://host:port`, `https://host:port/`);
/// `None` for a plain authority.
fn host_of_url(value: &[u8]) -> Option<&[u8]> {
    let start = value.windows(3).position(|w| w == b"://")? + 3;
    let rest = &value[start..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

impl<IO: AsyncRead + Unpin> AsyncRead for UrlAuthority<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if matches!(this.mode, Mode::Passthrough)
                && this.out_at == this.out.len()
                && this.pending().is_empty()
                && !this.eof
            {
                // Nothing held back: read straight into the caller's buffer.
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            if this.out_at < this.out.len() {
                let n = (this.out.len() - this.out_at).min(buf.remaining());
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                if this.out_at == this.out.len() {
                    this.out.clear();
                    this.out_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Whatever is left undecided goes out as it is, then end of stream.
                this.give_up();
                if this.out.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    if filled.is_empty() {
                        this.eof = true;
                    } else if matches!(this.mode, Mode::Passthrough) && this.pending().is_empty() {
                        this.out.extend_from_slice(filled);
                    } else {
                        this.input.extend_from_slice(filled);
                        this.process();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for UrlAuthority<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `input` through the filter and returns what hyper would read.
    async fn filtered(input: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&input).await.unwrap();
        drop(client);
        let mut out = Vec::new();
        UrlAuthority::new(server)
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    /// The header blocks of a filtered HTTP/2 stream, decoded as h2 would.
    fn blocks(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        assert!(bytes.starts_with(PREFACE));
        let mut at = PREFACE.len();
        let mut decoder = fluke_hpack::Decoder::new();
        let mut out = Vec::new();
        let mut fragment = Vec::new();
        while at + FRAME_HEADER <= bytes.len() {
            let len = usize::from(bytes[at]) << 16
                | usize::from(bytes[at + 1]) << 8
                | usize::from(bytes[at + 2]);
            let (kind, flags) = (bytes[at + 3], bytes[at + 4]);
            let payload = &bytes[at + FRAME_HEADER..at + FRAME_HEADER + len];
            if kind == HEADERS {
                fragment = headers_fragment(flags, payload).unwrap().1.to_vec();
            } else if kind == CONTINUATION {
                fragment.extend_from_slice(payload);
            }
            if (kind == HEADERS || kind == CONTINUATION) && flags & END_HEADERS != 0 {
                out.push(decoder.decode(&fragment).unwrap());
            }
            at += FRAME_HEADER + len;
        }
        out
    }

    fn request(authority: &str) -> Vec<(&'static [u8], Vec<u8>)> {
        vec![
            (b":method", b"POST".to_vec()),
            (b":scheme", b"http".to_vec()),
            (b":path", b"/etcdserverpb.Maintenance/Defragment".to_vec()),
            (b":authority", authority.as_bytes().to_vec()),
            (b"content-type", b"application/grpc".to_vec()),
        ]
    }

    fn encode(encoder: &mut fluke_hpack::Encoder<'_>, headers: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(n, v)| (*n, v.as_slice())))
    }

    #[tokio::test]
    async fn a_url_authority_becomes_host_and_port_in_this_and_every_later_block() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let first = encode(&mut enc, &request("http://localhost:20000"));
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0")); // DATA
                                                                // The second request leans on the client's dynamic table.
        let second = encode(&mut enc, &request("http://localhost:20000"));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &second));
        let out = filtered(input).await;
        let seen = blocks(&out);
        assert_eq!(seen.len(), 2);
        for block in seen {
            let authority = block.iter().find(|(n, _)| n.as_slice() == b":authority");
            assert_eq!(
                authority.map(|(_, v)| v.as_slice()),
                Some(&b"localhost:20000"[..])
            );
            assert_eq!(block.len(), 5);
        }
        assert!(out.windows(5).any(|w| w == b"\0\0\0\0\0"), "DATA kept");
    }

    #[tokio::test]
    async fn a_connection_that_starts_with_a_plain_authority_passes_through_byte_for_byte() {
        let mut enc = fluke_hpack::Encoder::new();
        let block = encode(&mut enc, &request("127.0.0.1:2379"));
        let mut input = PREFACE.to_vec();
        let (a, b) = block.split_at(block.len() / 2);
        // PADDED | PRIORITY on the HEADERS frame: pad length 3, 5 priority bytes.
        let mut payload = vec![3];
        payload.extend_from_slice(&[0, 0, 0, 0, 15]);
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &payload));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        // Once a connection has started with a plain authority, later blocks are not looked
        // at (gRPC clients never change it).
        let later = encode(&mut enc, &request("http://elsewhere:1"));
        input.extend(frame(HEADERS, END_HEADERS, 3, &later));
        assert_eq!(filtered(input.clone()).await, input);
    }

    #[tokio::test]
    async fn http1_and_garbage_pass_through_unchanged() {
        let http1 = b"POST /v3/kv/range HTTP/1.1\r\nHost: http://x\r\n\r\n{}".to_vec();
        assert_eq!(filtered(http1.clone()).await, http1);
        let mut broken = PREFACE.to_vec();
        broken.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff]));
        broken.extend_from_slice(b"trailing");
        assert_eq!(filtered(broken.clone()).await, broken);
        let cut = PREFACE[..10].to_vec();
        assert_eq!(filtered(cut.clone()).await, cut);
    }

    #[test]
    fn only_url_shaped_authorities_are_rewritten() {
        assert_eq!(
            host_of_url(b"http://localhost:2379"),
            Some(&b"localhost:2379"[..])
        );
        assert_eq!(
            host_of_url(b"https://10.0.0.1:2379/"),
            Some(&b"10.0.0.1:2379"[..])
        );
        assert_eq!(host_of_url(b"localhost:2379"), None);
        assert_eq!(host_of_url(b"http://"), None);
    }
}
