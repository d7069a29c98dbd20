//! The background verification of the whole store, at a bounded rate, while the server
//! serves: what the start-up check leaves out because it would take minutes.
//!
//! A pass reads every entry up to the latest signed checkpoint (each record's checksum is
//! checked by the read), holds each record's index and previous-leaf link, recomputes every
//! tree node and holds it against the stored tiles, and the root against the signed
//! checkpoint; then it reads every block of the indexes and checks its checksum. A record
//! or tile edited behind the server's back, even with its checksums rewritten, changes the
//! root, which the log's key signed. Signatures and index contents against the entries are
//! `evidentd verify-store`'s (on a stopped server).
//!
//! It reports through metrics (`evident_store_verifications_total` by result,
//! `evident_store_verified_entries`, `evident_store_verified_timestamp_seconds`) and, when a
//! pass fails, turns health NOT_SERVING: a store that no longer matches what the log signed
//! needs an operator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evident_core::Hash;
use evident_core::merkle::{Frontier, SubtreeSource as _};
use evident_core::note::{Checkpoint, Verifier};
use evident_core::record::LeafRecord;

use crate::metrics::METRICS;
use crate::store::Store;

/// Entries read at a time.
const CHUNK: u64 = 1_024;
/// Bytes of the indexes read per entry of the rate: a few times what an entry's records
/// take, so the indexes' part of a pass takes less time than the log's.
const BYTES_PER_ENTRY: u64 = 1_024;

/// How often and how fast the store is verified in the background.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Time from the end of one pass (or from start) to the next pass.
    pub every: Duration,
    /// At most this many entries a second.
    pub entries_per_second: u64,
}

/// The background verification thread; stopped and joined when dropped.
#[derive(Debug)]
pub struct Verification {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Verification {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts verifying `store` on `schedule`; a failed pass is sent on `failed`.
pub fn start(
    store: Arc<Store>,
    verifier: Verifier,
    schedule: Schedule,
    failed: tokio::sync::watch::Sender<Option<String>>,
) -> std::io::Result<Verification> {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("evident-verify".into())
            .spawn(move || {
                while pause(&stop, schedule.every) {
                    let started = Instant::now();
                    match pass(&store, &verifier, schedule.entries_per_second, &stop) {
                        Ok(Some(size)) => {
                            METRICS.verification(true);
                            tracing::info!(
                                entries = size,
                                seconds = started.elapsed().as_secs(),
                                "verified the store in the background"
                            );
                        }
                        Ok(None) => return,
                        Err(problem) if problem.starts_with(OUTAGE) => {
                            // Not damage: the database is away; the next pass tries again.
                            tracing::warn!(%problem, "the background verification was interrupted");
                        }
                        Err(problem) => {
                            METRICS.verification(false);
                            tracing::error!(
                                %problem,
                                "the background verification of the store failed: stop the \
                                 server and run `evidentd verify-store`"
                            );
                            let _ = failed.send(Some(problem));
                            return;
                        }
                    }
                }
            })?
    };
    Ok(Verification {
        stop,
        thread: Some(thread),
    })
}

/// Sleeps `time` unless stopped first; whether to go on.
fn pause(stop: &AtomicBool, time: Duration) -> bool {
    let until = Instant::now() + time;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    false
}

/// How a pass's error starts when the store could not be reached (PostgreSQL away), which
/// is no finding about the store.
const OUTAGE: &str = "the store could not be reached: ";

/// A read's failure in words: an outage, or what is wrong with the store.
fn problem(what: String, e: crate::store::StoreError) -> String {
    if matches!(e, crate::store::StoreError::Unreachable { .. }) {
        format!("{OUTAGE}{what}: {e}")
    } else {
        format!("{what}: {e}")
    }
}

/// One pass: `Ok(Some(size))` verified, `Ok(None)` stopped, `Err` what is wrong.
fn pass(
    store: &Store,
    verifier: &Verifier,
    rate: u64,
    stop: &AtomicBool,
) -> Result<Option<u64>, String> {
    let Some(note) = store
        .checkpoint()
        .map_err(|e| problem("reading the checkpoint".into(), e))?
    else {
        return Ok(Some(0));
    };
    let checkpoint = Checkpoint::verify(&note, verifier)
        .map_err(|e| format!("the stored checkpoint does not verify: {e}"))?;
    let size = checkpoint.size;
    // Another instance's sequencer may have stored it (PostgreSQL): its entries are there.
    store.log().observe_size(size);
    let started = Instant::now();
    let mut tree = Frontier::new();
    let mut previous = Hash::ZERO;
    let mut at = 0;
    METRICS.verified_entries(0);
    while at < size {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let end = (at + CHUNK).min(size);
        let records = store
            .entries(at, end)
            .map_err(|e| problem(format!("reading entries {at}..{end}"), e))?;
        if records.len() as u64 != end - at {
            return Err(format!("entries {at}..{end} are missing"));
        }
        for bytes in records {
            let index = at;
            at += 1;
            let record = LeafRecord::decode(&bytes).map_err(|e| format!("entry {index}: {e}"))?;
            if record.index() != index || record.previous_leaf_hash() != previous {
                return Err(format!(
                    "entry {index}: its index or previous-leaf link does not chain"
                ));
            }
            previous = evident_core::merkle::leaf_hash(&bytes);
            for node in tree.append(previous) {
                let stored = store
                    .subtree_hash(node.level, node.index)
                    .map_err(|e| problem(format!("entry {index}"), e))?;
                if stored != node.hash {
                    return Err(format!(
                        "entry {index}: the tree node (level {}, index {}) is {stored}, the \
                         entries give {}",
                        node.level, node.index, node.hash
                    ));
                }
            }
        }
        METRICS.verified_entries(at);
        // Bounded rate: no faster than `rate` entries a second on average.
        if rate > 0 {
            let due = Duration::from_secs_f64(at as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                if !pause(stop, ahead) {
                    return Ok(None);
                }
            }
        }
    }
    if tree.root() != checkpoint.root {
        return Err(format!(
            "the tree of the first {size} entries has root {}, the signed checkpoint says {}",
            tree.root(),
            checkpoint.root
        ));
    }
    // The indexes, at about as many bytes a second as the entries' rate reads of the log.
    let bytes_per_second = rate.saturating_mul(BYTES_PER_ENTRY) as f64;
    let started = Instant::now();
    let mut stopped = false;
    store
        .index()
        .verify_files(&mut |bytes| {
            let due = Duration::from_secs_f64(bytes as f64 / bytes_per_second);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                stopped = !pause(stop, ahead);
            }
            !stopped && !stop.load(Ordering::Relaxed)
        })
        .map_err(|e| problem("the indexes".into(), e))?;
    if stopped || stop.load(Ordering::Relaxed) {
        return Ok(None);
    }
    Ok(Some(size))
}
