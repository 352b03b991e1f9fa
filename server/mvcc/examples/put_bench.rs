//! Write-path micro-benchmark: applies puts the way the raft state machine does (one
//! `WriteBatch` per batch of entries, `apply_with_lease_table` per put, a `set_meta` of the
//! applied index, `commit(false)`) and prints puts per second.
//!
//! `cargo run --release -p synod-mvcc --example put_bench [puts] [batch] [rounds]`
//! (defaults: 200000 puts of 256-byte values to 8-byte keys drawn from 1000, batches of 20,
//! 3 rounds, each on a fresh store).

use std::time::{Duration, Instant};

use synod_mvcc::MvccStore;
use synod_proto::etcdserverpb::PutRequest;
use synod_proto::peerpb::{internal_request, InternalRequest};

const KEY_SPACE: u64 = 1000;
const VALUE_LEN: usize = 256;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (SplitMix64), so every run writes the same keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn run(puts: usize, batch: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = MvccStore::open(&dir.path().join("bench.redb"))?;
    let mut rng = Rng(42);
    let value = vec![b'v'; VALUE_LEN];
    // Build the requests up front: only the store is timed.
    let reqs: Vec<InternalRequest> = (0..puts)
        .map(|_| {
            let key = format!("{:08}", rng.next() % KEY_SPACE).into_bytes();
            InternalRequest {
                request: Some(internal_request::Request::Put(PutRequest {
                    key,
                    value: value.clone(),
                    ..Default::default()
                })),
            }
        })
        .collect();
    let start = Instant::now();
    let mut applied = 0u64;
    for chunk in reqs.chunks(batch.max(1)) {
        let mut wb = store.write()?;
        for req in chunk {
            wb.apply_with_lease_table(req)?;
            applied += 1;
        }
        wb.set_meta("applied", &applied.to_be_bytes())?;
        let events = wb.take_events();
        std::hint::black_box(events);
        wb.commit(false)?;
    }
    let elapsed = start.elapsed();
    let view = store.read()?;
    let expected = i64::try_from(puts)? + 1;
    if view.current_revision() != expected {
        return Err(format!(
            "store ended at revision {}, expected {expected}",
            view.current_revision()
        )
        .into());
    }
    Ok(elapsed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let puts = arg(1, 200_000);
    let batch = arg(2, 20);
    let rounds = arg(3, 3);
    println!(
        "put_bench: {puts} puts, {VALUE_LEN}-byte values, {KEY_SPACE} keys, batches of {batch}, {rounds} rounds"
    );
    let mut rates = Vec::new();
    for round in 1..=rounds {
        let elapsed = run(puts, batch)?;
        let rate = puts as f64 / elapsed.as_secs_f64();
        println!(
            "round {round}: {:.3} s, {rate:.0} puts/s",
            elapsed.as_secs_f64()
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    if let Some(median) = rates.get(rates.len() / 2) {
        println!("median: {median:.0} puts/s");
    }
    Ok(())
}
