//! The Raft log's files: a directory of preallocated segments holding checksummed records.
//!
//! This module owns bytes on disk and nothing else: how a record is framed, how a segment is
//! created, scanned after a crash and cut back to its valid end, and how segments are named
//! and removed. It never decides what to write or when an append may be acknowledged
//! (`log_store` does both) and knows nothing of openraft beyond opaque record bodies.
//!
//! # Files
//!
//! `member/raft-wal/<seq>.wal`, `seq` being 16 lower-case hex digits, increasing by one per
//! segment. A segment is preallocated to [`SEGMENT_BYTES`] when it is created, so an append
//! never changes the file's size and `fdatasync` has only data to flush (a growing file makes
//! every sync a metadata journal commit too). The preallocated space reads as zeros. A group
//! larger than what is left of a segment goes to a new segment; a single group larger than a
//! whole segment is written anyway and grows the file.
//!
//! # Records
//!
//! ```text
//! record := len: u32 LE ‖ crc: u32 LE ‖ kind: u8 ‖ body: len - 1 bytes
//! ```
//!
//! `len` counts `kind ‖ body`; `crc` is the CRC-32 (IEEE) of `kind ‖ body`. A `len` of zero
//! ends the segment (the zeros of the preallocated tail). Kinds:
//!
//! | kind | body |
//! |---|---|
//! | 1 header | `b"SYNODWAL"` ‖ format `u32 LE` (= 1) ‖ seq `u64 LE`; the first record of every segment |
//! | 2 entry | log index `u64 LE` ‖ postcard openraft `Entry` |
//! | 3 truncate | `0` (drop every entry) or `1 ‖ u64 LE` (drop the entries after that index) |
//! | 4 purge | postcard `LogId`: every entry up to it is gone (it is in the state machine) |
//! | 5 vote | postcard `Vote` |
//! | 6 committed | postcard `Option<LogId>` (a hint; openraft re-learns it if it is lost) |
//!
//! Replaying every record of every segment in order gives the log: entries are appended,
//! truncated and purged as written; the last vote, purge and committed records win. Every new
//! segment starts with its header followed by the current vote, purge and committed records,
//! so a segment whose entries are all purged can be deleted without losing them.
//!
//! # Crashes
//!
//! A group of records is written with one `pwrite` and made durable with one `fdatasync`
//! before any of it is acknowledged. A crash during that write leaves the last segment with a
//! torn tail: a record cut short or with a wrong checksum, possibly followed by stale bytes.
//! Scanning stops at the first such record; [`Segment::open`] then cuts the file there and
//! preallocates it again, so no stale byte can ever be read as a record after later appends.
//! Only the last segment can have a torn tail (a new segment is started after the previous
//! one's last group was synced): a bad record in any other segment is corruption and the
//! member refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The size a segment is preallocated to (tests use smaller ones).
pub const SEGMENT_BYTES: u64 = 64 << 20;
const MAGIC: &[u8; 8] = b"SYNODWAL";
const FORMAT: u32 = 1;
/// `len ‖ crc`.
pub const FRAME_BYTES: usize = 8;
/// The longest record body accepted when scanning: far above any entry openraft can hand us
/// (etcd's request limit is 1.5 MiB by default), low enough that a corrupt length cannot make
/// the scan allocate without bound.
const MAX_RECORD: u32 = 256 << 20;

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Header = 1,
    Entry = 2,
    Truncate = 3,
    Purge = 4,
    Vote = 5,
    Committed = 6,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Header,
            2 => Kind::Entry,
            3 => Kind::Truncate,
            4 => Kind::Purge,
            5 => Kind::Vote,
            6 => Kind::Committed,
            _ => return None,
        })
    }
}

/// Appends one framed record to `out`; returns the record's offset in `out`.
pub fn push_record(out: &mut Vec<u8>, kind: Kind, body: &[&[u8]]) -> usize {
    let at = out.len();
    let len = 1 + body.iter().map(|b| b.len()).sum::<usize>();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind as u8);
    for part in body {
        out.extend_from_slice(part);
    }
    let crc = crc32fast::hash(&out[at + FRAME_BYTES..]);
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    at
}

/// Checks a whole framed record read back from disk and returns its kind and body.
pub fn parse_record(bytes: &[u8]) -> io::Result<(Kind, &[u8])> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("raft log: {what}"));
    if bytes.len() < FRAME_BYTES + 1 {
        return Err(bad("record too short"));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len != bytes.len() - FRAME_BYTES {
        return Err(bad("record length does not match its frame"));
    }
    let payload = &bytes[FRAME_BYTES..];
    if crc32fast::hash(payload) != crc {
        return Err(bad("record checksum mismatch"));
    }
    let kind = Kind::from_byte(payload[0]).ok_or_else(|| bad("unknown record kind"))?;
    Ok((kind, &payload[1..]))
}

/// One record found by a scan.
pub struct Scanned {
    pub kind: Kind,
    /// Offset of the record's frame in the segment.
    pub offset: u64,
    /// Length of the whole framed record.
    pub len: u32,
    pub body: Vec<u8>,
}

/// The name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

/// The segments in `dir`, by sequence number. Other files are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name.strip_suffix(".wal") else {
            continue;
        };
        if hex.len() != 16 {
            continue;
        }
        if let Ok(seq) = u64::from_str_radix(hex, 16) {
            out.push((seq, item.path()));
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// An open segment file.
pub struct Segment {
    pub seq: u64,
    pub file: File,
}

impl Segment {
    /// Creates segment `seq` in `dir`, preallocated to `size` and empty: the caller's first
    /// write to it starts with [`Segment::header`]. The directory is synced so the file
    /// survives a crash once a write to it has been synced.
    pub fn create(dir: &Path, seq: u64, size: u64) -> io::Result<Segment> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        preallocate(&file, size)?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Segment { seq, file })
    }

    /// The header record that must open segment `seq`.
    pub fn header(out: &mut Vec<u8>, seq: u64) {
        push_record(
            out,
            Kind::Header,
            &[MAGIC, &FORMAT.to_le_bytes(), &seq.to_le_bytes()],
        );
    }

    /// Opens an existing segment and scans it. `last` says whether it is the newest segment:
    /// only there is a torn tail expected; it is cut off (and the file preallocated again to
    /// `size`). Returns the records and the offset where the next one goes.
    pub fn open(
        seq: u64,
        path: &Path,
        last: bool,
        size: u64,
    ) -> io::Result<(Segment, Vec<Scanned>, u64)> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let file_len = file.metadata()?.len();
        let (records, end, torn) = scan(&file, file_len)?;
        let corrupt = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("raft log segment {}: {what}", path.display()),
            )
        };
        match records.first() {
            Some(first) if first.kind == Kind::Header => {
                check_header(&first.body, seq).map_err(|e| corrupt(e.to_string()))?
            }
            // An empty (all-zero) last segment: created, never written (a crash right after
            // the roll). It gets its header with the next group.
            None if last && end == 0 => {}
            _ => return Err(corrupt("does not start with a segment header".into())),
        }
        if let Some(offset) = torn {
            if !last {
                return Err(corrupt(format!(
                    "bad record at offset {offset} in a segment that is not the newest"
                )));
            }
            tracing::warn!(
                segment = %path.display(),
                offset,
                "raft log ends with a torn write (an append interrupted by a crash, never acknowledged); cutting it off"
            );
            file.set_len(end)?;
            preallocate(&file, size.max(file_len))?;
            file.sync_all()?;
        }
        Ok((Segment { seq, file }, records, end))
    }

    /// Reads the framed record at `offset` of `len` bytes.
    pub fn read_record(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

fn check_header(body: &[u8], seq: u64) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if body.len() != 20 || &body[..8] != MAGIC {
        return Err(bad("bad segment header"));
    }
    let format = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
    if format != FORMAT {
        return Err(bad(&format!("unknown raft log format {format}")));
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&body[12..20]);
    if u64::from_le_bytes(s) != seq {
        return Err(bad("segment header names another segment"));
    }
    Ok(())
}

/// Reads records from the start of `file` until the zero end marker, the end of the file or
/// a bad record. Returns the records, the offset after the last good one, and the offset of a
/// bad record if that is what stopped the scan.
fn scan(file: &File, size: u64) -> io::Result<(Vec<Scanned>, u64, Option<u64>)> {
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut records = Vec::new();
    let mut offset = 0u64;
    loop {
        if offset + FRAME_BYTES as u64 > size {
            // Not even a frame left: a file cut mid-frame is torn only if it is not all zeros,
            // and a preallocated file never ends there. Either way, the log ends here.
            return Ok((records, offset, None));
        }
        let mut frame = [0u8; FRAME_BYTES];
        reader.read_exact(&mut frame)?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len == 0 {
            let torn = (crc != 0).then_some(offset);
            return Ok((records, offset, torn));
        }
        if len > MAX_RECORD || offset + FRAME_BYTES as u64 + u64::from(len) > size {
            return Ok((records, offset, Some(offset)));
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload)?;
        let kind = Kind::from_byte(payload[0]);
        match kind {
            Some(kind) if crc32fast::hash(&payload) == crc => {
                payload.remove(0);
                records.push(Scanned {
                    kind,
                    offset,
                    len: FRAME_BYTES as u32 + len,
                    body: payload,
                });
                offset += FRAME_BYTES as u64 + u64::from(len);
            }
            _ => return Ok((records, offset, Some(offset))),
        }
    }
}

/// Reserves `len` bytes for `file` (unwritten extents, read back as zeros).
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: a plain syscall on a descriptor this function borrows for its duration.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // A file system without fallocate: extend the file instead (reads as zeros too).
        libc::EOPNOTSUPP | libc::EINVAL => {
            if file.metadata()?.len() < len as u64 {
                file.set_len(len as u64)?;
            }
            Ok(())
        }
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Makes the creation or removal of files in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "synod-wal-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_segment(dir: &Path, seq: u64, bodies: &[&[u8]]) -> (Segment, Vec<u8>) {
        let seg = Segment::create(dir, seq, SEGMENT_BYTES).unwrap();
        let mut buf = Vec::new();
        Segment::header(&mut buf, seq);
        for b in bodies {
            push_record(&mut buf, Kind::Entry, &[b]);
        }
        seg.file.write_all_at(&buf, 0).unwrap();
        (seg, buf)
    }

    #[test]
    fn a_record_reads_back_with_its_kind_and_body_and_a_flipped_bit_is_refused() {
        let mut buf = Vec::new();
        let at = push_record(&mut buf, Kind::Vote, &[b"ab", b"cd"]);
        assert_eq!(at, 0);
        let (kind, body) = parse_record(&buf).unwrap();
        assert_eq!((kind, body), (Kind::Vote, &b"abcd"[..]));
        buf[10] ^= 1;
        assert!(parse_record(&buf).is_err());
    }

    #[test]
    fn a_scan_returns_every_record_up_to_the_preallocated_zeros() {
        let dir = temp_dir("scan");
        let (seg, buf) = write_segment(&dir, 7, &[b"one", b"two", b"three"]);
        assert_eq!(seg.file.metadata().unwrap().len(), SEGMENT_BYTES);
        drop(seg);
        let (_, records, end) =
            Segment::open(7, &dir.join(segment_name(7)), true, SEGMENT_BYTES).unwrap();
        assert_eq!(end, buf.len() as u64);
        let bodies: Vec<&[u8]> = records[1..].iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, vec![&b"one"[..], b"two", b"three"]);
        assert_eq!(records[0].kind, Kind::Header);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_stale_bytes_after_it_can_never_be_read_again() {
        let dir = temp_dir("torn");
        let (seg, buf) = write_segment(&dir, 1, &[b"kept", b"torn-away", b"stale"]);
        // The second entry loses its last byte; the third survives as stale bytes.
        let second = buf.len() - (FRAME_BYTES + 6) - (FRAME_BYTES + 10);
        seg.file
            .write_all_at(&[0xEE], (second + FRAME_BYTES + 9) as u64)
            .unwrap();
        drop(seg);
        let path = dir.join(segment_name(1));
        let (seg, records, end) = Segment::open(1, &path, true, SEGMENT_BYTES).unwrap();
        assert_eq!(records.len(), 2, "header and the first entry only");
        assert_eq!(end, second as u64);
        // Everything after the cut reads as zeros now.
        let mut rest = vec![0xAAu8; buf.len() - second];
        seg.file.read_exact_at(&mut rest, end).unwrap();
        assert!(rest.iter().all(|&b| b == 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_record_in_a_segment_that_is_not_the_newest_is_corruption() {
        let dir = temp_dir("corrupt");
        let (seg, buf) = write_segment(&dir, 1, &[b"a", b"b"]);
        seg.file
            .write_all_at(&[0xFF], (buf.len() - 1) as u64)
            .unwrap();
        drop(seg);
        let path = dir.join(segment_name(1));
        let err = Segment::open(1, &path, false, SEGMENT_BYTES).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not the newest"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_segment_whose_header_names_another_sequence_number_is_refused() {
        let dir = temp_dir("header");
        write_segment(&dir, 3, &[b"x"]);
        std::fs::rename(dir.join(segment_name(3)), dir.join(segment_name(4))).unwrap();
        let err = Segment::open(4, &dir.join(segment_name(4)), true, SEGMENT_BYTES)
            .err()
            .unwrap();
        assert!(err.to_string().contains("another segment"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn segments_are_listed_in_sequence_order_and_other_files_ignored() {
        let dir = temp_dir("list");
        for seq in [10u64, 2, 0xab] {
            Segment::create(&dir, seq, SEGMENT_BYTES).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let seqs: Vec<u64> = list_segments(&dir)
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(seqs, vec![2, 10, 0xab]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
