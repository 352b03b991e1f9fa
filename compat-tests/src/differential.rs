//! What the differential tests (`differential_kv`, `differential_watch`)
//! share: their `DIFF_*` environment, the text forms of bytes, headers and
//! errors that both sides' answers are compared in, and the mismatch report.
//!
//! The request model, the generator and what is compared stay with each
//! test.

use std::fmt::Write as _;

use etcd_client::{Error, ResponseHeader};

use crate::server::Flavor;

/// The number in environment variable `name` (decimal, or hex with `0x`),
/// if it is set; panics if it is set to something else.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = if let Some(hex) = v.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| n.to_string().parse().ok())
    } else {
        v.parse().ok()
    };
    Some(parsed.unwrap_or_else(|| panic!("{name}={v:?} is not a number")))
}

/// The candidate that `DIFF_AGAINST` names (`synod`, the default, or `etcd`
/// to validate a test by running upstream against upstream), with its name.
pub fn candidate_from_env() -> (Flavor, &'static str) {
    match std::env::var("DIFF_AGAINST").as_deref() {
        Err(_) | Ok("synod") | Ok("") => (Flavor::Synod, "synod"),
        Ok("etcd") => (Flavor::Etcd, "etcd"),
        Ok(other) => panic!("DIFF_AGAINST={other:?}: expected `synod` or `etcd`"),
    }
}

/// Whether `DIFF_VERBOSE` asks for every request and etcd's answer.
pub fn verbose_from_env() -> bool {
    std::env::var_os("DIFF_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `bytes` as a quoted string, non-printable bytes escaped.
pub fn esc(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        for c in std::ascii::escape_default(b) {
            s.push(c as char);
        }
    }
    s.push('"');
    s
}

fn nz(v: u64) -> &'static str {
    if v == 0 {
        "0"
    } else {
        "set"
    }
}

/// A response header: its revision, and of `cluster_id`, `member_id` and
/// `raft_term` only whether they are zero or not.
pub fn hdr(h: Option<&ResponseHeader>) -> String {
    match h {
        None => "hdr=none".into(),
        Some(h) => format!(
            "hdr(rev={} cluster_id={} member_id={} raft_term={})",
            h.revision(),
            nz(h.cluster_id()),
            nz(h.member_id()),
            nz(h.raft_term())
        ),
    }
}

/// A failed request: the gRPC code and message, or the client's error.
pub fn err_text(e: Error) -> String {
    match e {
        Error::GRpcStatus(st) => format!("ERROR code={:?} message={:?}", st.code(), st.message()),
        other => format!("CLIENT ERROR {other}"),
    }
}

/// A request the two sides answered differently.
pub struct Mismatch {
    /// Its index in the sequence.
    pub index: usize,
    pub request: String,
    /// etcd's answer.
    pub reference: String,
    /// The candidate's answer.
    pub candidate: String,
}

impl Mismatch {
    /// Appends the mismatch to `report`, the request called `what #<index>`
    /// and the candidate's answer labelled `cand_name`.
    pub fn write_to(&self, report: &mut String, what: &str, cand_name: &str) {
        let _ = write!(
            report,
            "\n--- {what} #{}: {}\n    {:<10} {}\n    {:<10} {}\n",
            self.index,
            self.request,
            "etcd:",
            self.reference,
            format!("{cand_name}:"),
            self.candidate
        );
    }
}
