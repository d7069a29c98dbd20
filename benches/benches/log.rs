//! The log's files at scale: builds a log of `EVIDENT_BENCH_LOG_ENTRIES` entries (default
//! 10,000,000) through the real `FileLog` (segment files, tlog-tiles hash files, one
//! `fdatasync` per batch of 10,000), then measures what a reader waits for:
//!
//! - opening the log (the recovery at start), cold and again;
//! - inclusion proofs for random entries at the full size, one at a time: p50, p99, max;
//! - consistency proofs between random sizes.
//!
//! The log is kept in `target/bench-log/<entries>` (or `EVIDENT_BENCH_LOG_DIR`) and reused
//! when it is already complete. Run: `cargo bench -p evident-benches --bench log`.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark reports failure by panicking"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evident_core::Hash;
use evident_core::dsse::{Envelope, Signature};
use evident_core::merkle::{self, Frontier};
use evident_core::record::{EntryKind, LeafRecord};
use evident_server::storage::LogStore;
use evident_server::storage::files::FileLog;
use evident_server::storage::vfs::{OsFs, Vfs};

const DEFAULT_ENTRIES: u64 = 10_000_000;
const BATCH: u64 = 10_000;
const PROOFS: usize = 100_000;

fn entries() -> u64 {
    std::env::var("EVIDENT_BENCH_LOG_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ENTRIES)
}

fn folder(n: u64) -> PathBuf {
    std::env::var_os("EVIDENT_BENCH_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/bench-log")
                .join(n.to_string())
        })
}

/// A small record (about 170 bytes): the tree's work does not depend on the record's size.
fn record(index: u64, previous: Hash) -> Vec<u8> {
    let envelope = Envelope {
        payload: format!("{{\"entry\":{index}}}").into_bytes(),
        payload_type: "application/vnd.in-toto+json".into(),
        signatures: vec![Signature {
            sig: vec![7; 64],
            keyid: String::new(),
        }],
        sigstore: None,
    };
    LeafRecord::new(
        index,
        1_767_225_600_000_000_000 + index as i64,
        previous,
        EntryKind::Attestation,
        envelope,
    )
    .unwrap()
    .encode()
}

fn open(dir: &std::path::Path) -> (FileLog, Duration) {
    let vfs: Arc<dyn Vfs> = Arc::new(OsFs);
    let started = Instant::now();
    let log = FileLog::open(vfs, dir).unwrap();
    (log, started.elapsed())
}

fn build(dir: &std::path::Path, n: u64) {
    let (log, _) = open(dir);
    let mut at = log.size();
    if at == n {
        return;
    }
    assert!(at < n, "{} holds more than {n} entries", dir.display());
    let mut frontier = Frontier::from_source(&log, at).unwrap();
    let mut previous = if at == 0 {
        Hash::ZERO
    } else {
        log.subtree_hash(0, at - 1).unwrap()
    };
    let started = Instant::now();
    while at < n {
        let end = (at + BATCH).min(n);
        let mut records = Vec::with_capacity((end - at) as usize);
        let mut nodes = Vec::new();
        for index in at..end {
            let bytes = record(index, previous);
            previous = merkle::leaf_hash(&bytes);
            nodes.extend(frontier.append(previous));
            records.push(bytes);
        }
        log.append(&records, &nodes).unwrap();
        at = end;
        if at % 1_000_000 == 0 {
            eprintln!(
                "  built {at} entries ({:.0} entries/s)",
                at as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        samples.last().unwrap().as_secs_f64() * 1e6
    )
}

/// A deterministic stream of numbers below `bound` (xorshift).
struct Numbers(u64);

impl Numbers {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and only builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = entries();
    let dir = folder(n);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("log bench: {n} entries in {}", dir.display());
    build(&dir, n);
    let (log, first) = open(&dir);
    let (log2, second) = open(&dir);
    drop(log2);
    assert_eq!(log.size(), n);
    let root = merkle::root(&log, n).unwrap();
    println!(
        "open a log of {n} entries: {:.1} ms, again {:.1} ms",
        first.as_secs_f64() * 1e3,
        second.as_secs_f64() * 1e3
    );
    let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
    let mut samples = Vec::with_capacity(PROOFS);
    for _ in 0..PROOFS {
        let index = numbers.below(n);
        let started = Instant::now();
        let proof = merkle::inclusion_proof(&log, index, n).unwrap();
        samples.push(started.elapsed());
        let leaf = log.subtree_hash(0, index).unwrap();
        merkle::verify_inclusion(index, n, &leaf, &proof, &root).unwrap();
    }
    println!(
        "inclusion proof at size {n}, {PROOFS} random entries: {}",
        percentiles(samples)
    );
    let mut samples = Vec::with_capacity(PROOFS / 10);
    for _ in 0..PROOFS / 10 {
        let old = 1 + numbers.below(n - 1);
        let started = Instant::now();
        let proof = merkle::consistency_proof(&log, old, n).unwrap();
        samples.push(started.elapsed());
        assert!(!proof.is_empty());
    }
    println!(
        "consistency proof to size {n} from {} random sizes: {}",
        PROOFS / 10,
        percentiles(samples)
    );
}
