//! The closed-loop request driver of the etcd scenarios, as etcd's benchmark tool runs its
//! clients: every client has one request outstanding, and all share one counter of `--total`
//! requests, so a faster client does more of them.
//!
//! It owns the request loop, the per-request timeout, the latency histogram of successful
//! requests and the error tally. It must never retry a request or stop at an error: a failed
//! request is counted by its gRPC code and the client goes on with the next one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::latency::Recorder;
use crate::progress::Progress;

/// How long one request may take before it counts as failed ("client-timeout").
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one request failed: a gRPC code name ("Unavailable", ...) or a client-side reason
/// ("client-timeout", "stream-closed", ...), and the first message seen for it.
#[derive(Debug)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Failure {
        Failure {
            code: format!("{:?}", s.code()),
            message: s.message().to_string(),
        }
    }
}

/// Failed requests by code, with the first message of each code (for the summary).
#[derive(Default)]
pub struct ErrorTally {
    by_code: BTreeMap<String, (u64, String)>,
}

impl ErrorTally {
    pub fn add(&mut self, f: Failure) {
        self.by_code.entry(f.code).or_insert((0, f.message)).0 += 1;
    }

    pub fn merge(&mut self, other: ErrorTally) {
        for (code, (n, msg)) in other.by_code {
            self.by_code.entry(code).or_insert((0, msg)).0 += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.by_code.values().map(|(n, _)| n).sum()
    }

    /// `{code: count}`, for the record's params.
    pub fn counts_json(&self) -> serde_json::Value {
        self.by_code
            .iter()
            .map(|(code, (n, _))| (code.clone(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// One summary line per code with its first message.
    pub fn lines(&self) -> Vec<String> {
        self.by_code
            .iter()
            .map(|(code, (n, msg))| format!("  {code} x{n}: first message: {msg}"))
            .collect()
    }
}

/// One client of a scenario: performs request number `n` (numbers are handed out from the
/// shared counter, so a client sees an increasing but gappy sequence).
pub trait Worker: Send + 'static {
    fn call(&mut self, n: u64) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// What a run of the driver measured.
pub struct LoadResult {
    /// From the first request sent to the last reply received.
    pub elapsed: Duration,
    /// Latency of the successful requests.
    pub latency: Recorder,
    pub ok: u64,
    pub errors: ErrorTally,
}

struct ClientTally {
    latency: Recorder,
    ok: u64,
    errors: ErrorTally,
}

/// Runs `total` requests over `workers` (one task each); gives the workers back for cleanup.
/// An error only if a client task died (a bug), never for a failed request.
pub async fn drive<W: Worker>(
    workers: Vec<W>,
    total: u64,
    progress: &Progress,
) -> Result<(LoadResult, Vec<W>), String> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(client_loop(w, next.clone(), total, progress.clone())))
        .collect();
    let mut result = LoadResult {
        elapsed: Duration::ZERO,
        latency: Recorder::new(),
        ok: 0,
        errors: ErrorTally::default(),
    };
    let mut workers = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (w, tally) = t.await.map_err(|e| format!("a client task failed: {e}"))?;
        workers.push(w);
        result.latency.merge(&tally.latency);
        result.ok += tally.ok;
        result.errors.merge(tally.errors);
    }
    result.elapsed = start.elapsed();
    Ok((result, workers))
}

async fn client_loop<W: Worker>(
    mut w: W,
    next: Arc<AtomicU64>,
    total: u64,
    progress: Progress,
) -> (W, ClientTally) {
    let mut tally = ClientTally {
        latency: Recorder::new(),
        ok: 0,
        errors: ErrorTally::default(),
    };
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            break;
        }
        let t0 = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, w.call(n)).await {
            Ok(Ok(())) => {
                tally.latency.record(t0.elapsed());
                tally.ok += 1;
            }
            Ok(Err(f)) => tally.errors.add(f),
            Err(_) => tally.errors.add(Failure::new(
                "client-timeout",
                format!("no reply within {} s", REQUEST_TIMEOUT.as_secs()),
            )),
        }
        progress.inc(1);
    }
    (w, tally)
}
