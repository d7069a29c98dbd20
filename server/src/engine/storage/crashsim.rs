//! Crash simulation for [`FileLog`]: a workload over [`SimFs`] (200 appends of 1 to 60
//! records of varying sizes, small segments so that rolls and watermark moves are frequent,
//! a signed checkpoint stored after each acknowledged batch) that, at every sync it makes,
//! builds the states a power cut at that moment could leave, opens the log on each and
//! checks that nothing acknowledged was lost or changed, and that the log goes on.
//!
//! The states of one sync point: (a) every unsynced write and folder operation lost; every
//! one kept; (b) the newest write torn, a prefix kept with maybe a junk byte in it, the
//! other writes kept or lost; (c) twice, each file keeping all, none or a random subset of
//! its unsynced writes, with a random prefix of the folder operations; (d) the writes kept
//! but no folder operation, or only some. Then a crash of the process alone (the page
//! cache survives), a restart, and a power cut after it; at every 16th sync point, also a
//! power cut at each sync of that restart's recovery.
//!
//! Also the helpers the log's other tests share: a deterministic generator of chained
//! leaf records.

#![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use evident_core::dsse::{Envelope, Signature};
use evident_core::merkle::{self, Frontier, MemoryTree, Node};
use evident_core::note::{Checkpoint, Signer, Verifier};
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::{Hash, SigningKey};

use super::LogStore;
use super::files::{FileLog, FileLogOptions};
use super::vfs::{Fate, PendingInfo, SimFs, SimState};

/// A small deterministic random number generator (SplitMix64).
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Makes the leaf records of a log, in order, each chained to the one before.
#[derive(Debug, Clone)]
pub(super) struct Records {
    rng: Rng,
    previous: Option<(u64, Hash)>,
}

impl Records {
    pub(super) fn new(seed: u64) -> Records {
        Records {
            rng: Rng::new(seed),
            previous: None,
        }
    }

    /// Continues after `record` (the log's last entry).
    pub(super) fn after(seed: u64, record: &[u8]) -> Records {
        let decoded = LeafRecord::decode(record).unwrap();
        Records {
            rng: Rng::new(seed),
            previous: Some((decoded.index(), merkle::leaf_hash(record))),
        }
    }

    /// The next record, with a payload of `payload` bytes.
    pub(super) fn next(&mut self, payload: usize) -> Vec<u8> {
        let index = self.previous.map_or(0, |(i, _)| i + 1);
        let previous = self.previous.map_or(Hash::ZERO, |(_, h)| h);
        let body: Vec<u8> = (0..payload).map(|_| self.rng.next() as u8).collect();
        let envelope = Envelope {
            payload: body,
            payload_type: "application/vnd.in-toto+json".into(),
            signatures: vec![Signature {
                sig: vec![7; 64],
                keyid: String::new(),
            }],
            sigstore: None,
        };
        let record = LeafRecord::new(
            index,
            1_700_000_000_000_000_000 + index as i64,
            previous,
            EntryKind::Attestation,
            envelope,
        )
        .unwrap()
        .encode();
        self.previous = Some((index, merkle::leaf_hash(&record)));
        record
    }

    /// `n` records with payloads of `lo..hi` bytes.
    pub(super) fn batch(&mut self, n: usize, lo: u64, hi: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let len = self.rng.range(lo, hi) as usize;
                self.next(len)
            })
            .collect()
    }
}

/// The tree nodes appending `records` to `frontier` makes.
pub(super) fn nodes_for(frontier: &mut Frontier, records: &[Vec<u8>]) -> Vec<Node> {
    records
        .iter()
        .flat_map(|r| frontier.append(merkle::leaf_hash(r)))
        .collect()
}

/// What the workload has done so far, as the crash checks see it.
#[derive(Debug, Default)]
struct Progress {
    /// Every record handed to `append`, acknowledged or not, in log order.
    attempted: Vec<Vec<u8>>,
    /// The tree over `attempted`.
    tree: MemoryTree,
    /// (size, root) of each acknowledged batch.
    acked: Vec<(u64, Hash)>,
    /// The genesis, once `set_genesis` returned.
    genesis: Option<Vec<u8>>,
}

/// Counts of what the checks did.
#[derive(Debug, Default)]
struct Tally {
    sync_points: u64,
    states: u64,
    torn_tails: u64,
    extra_entries: u64,
    /// The size the last check found after recovery.
    last_size: u64,
    /// States of a power cut during a recovery.
    during_recovery: u64,
}

const DIR: &str = "/data/log";

fn options() -> FileLogOptions {
    FileLogOptions {
        segment_bytes: 12 << 10,
        watermark_entries: 40,
        tile_cache: 4,
        open_segments: 3,
    }
}

/// The crash states of one sync point, each with a description.
pub(super) fn crash_states(state: &SimState, rng: &mut Rng) -> Vec<(String, SimFs)> {
    let pending = state.pending();
    let dir_ops = state.pending_dir_ops();
    let mut out = Vec::new();
    // (a) every unsynced write and folder operation lost.
    out.push((
        "all unsynced lost".to_owned(),
        state.materialise(&mut |_| Fate::Drop, 0),
    ));
    if pending.is_empty() && dir_ops == 0 {
        return out;
    }
    // Everything reached the disk, though nothing was synced.
    out.push((
        "all unsynced kept".to_owned(),
        state.materialise(&mut |_| Fate::Keep, dir_ops),
    ));
    // (b) the last write torn: a prefix kept, maybe with junk inside it; the other writes
    // kept, or lost.
    if let Some(last) = pending.iter().rev().find(|p| p.len > 0) {
        for others in [Fate::Keep, Fate::Drop] {
            let len = rng.range(0, last.len as u64) as usize;
            let garbage = (len > 0 && rng.chance(50)).then(|| rng.range(0, len as u64) as usize);
            let torn = Fate::Torn { len, garbage };
            let seq = last.seq;
            let fs = state.materialise(
                &mut |p: &PendingInfo| if p.seq == seq { torn } else { others },
                dir_ops,
            );
            out.push((
                format!("last write torn at {len} ({garbage:?}), others {others:?}"),
                fs,
            ));
        }
    }
    // (c) writes to different files reordered: each file keeps all, none, or a random
    // subset of its pending writes; a random prefix of the folder operations survives.
    for _ in 0..2 {
        let mut choice = std::collections::HashMap::new();
        let mut rng2 = Rng::new(rng.next());
        let fs = state.materialise(
            &mut |p: &PendingInfo| {
                let mode = *choice.entry(p.inode).or_insert_with(|| rng2.range(0, 3));
                match mode {
                    0 => Fate::Keep,
                    1 => Fate::Drop,
                    _ if rng2.chance(50) => Fate::Keep,
                    _ => Fate::Drop,
                }
            },
            rng.range(0, dir_ops as u64 + 1) as usize,
        );
        out.push(("writes reordered across files".to_owned(), fs));
    }
    // (d) the data reached the disk, the creates and renames did not (or only some).
    if dir_ops > 0 {
        out.push((
            "no folder operation persisted".to_owned(),
            state.materialise(&mut |_| Fate::Keep, 0),
        ));
        if dir_ops > 1 {
            let k = rng.range(1, dir_ops as u64) as usize;
            out.push((
                format!("{k} of {dir_ops} folder operations persisted"),
                state.materialise(&mut |_| Fate::Keep, k),
            ));
        }
    }
    out
}

/// Opens the log on a crash state and checks everything the contract promises.
fn check_state(
    what: &str,
    fs: SimFs,
    progress: &Progress,
    verifier: &Verifier,
    rng: &mut Rng,
    tally: &mut Tally,
) {
    let log = FileLog::open_with(Arc::new(fs), Path::new(DIR), options())
        .unwrap_or_else(|e| panic!("{what}: opening failed: {e}"));
    let n = log.size();
    tally.last_size = n;
    let acked = progress.acked.last().map_or(0, |a| a.0);
    assert!(
        n >= acked,
        "{what}: {n} entries after the crash, {acked} were acknowledged"
    );
    assert!(
        n <= progress.attempted.len() as u64,
        "{what}: {n} entries, more than were written"
    );
    if n > acked {
        tally.extra_entries += 1;
    }
    // Every entry byte for byte (so every acknowledged one is there, unchanged), in a
    // chain: each record's index is its position; the last ones decoded and chained.
    let entries = log.entries(0, n).unwrap();
    assert_eq!(entries.len() as u64, n, "{what}");
    for (i, e) in entries.iter().enumerate() {
        assert!(
            e == &progress.attempted[i],
            "{what}: entry {i} differs from what was written"
        );
    }
    let tail = n.saturating_sub(8);
    let mut previous = tail
        .checked_sub(1)
        .map(|p| (p, merkle::leaf_hash(&progress.attempted[p as usize])));
    for (i, e) in entries.iter().enumerate().skip(tail as usize) {
        let record = LeafRecord::decode(e).unwrap();
        record
            .check_follows(previous)
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        previous = Some((i as u64, merkle::leaf_hash(e)));
    }
    // The tree: the root at the recovered size, and at acknowledged sizes the root that
    // was signed then (each size's root computed once).
    let mut roots = std::collections::HashMap::new();
    let mut root_at = |size: u64| {
        *roots
            .entry(size)
            .or_insert_with(|| merkle::root(&log, size).unwrap())
    };
    let root = root_at(n);
    assert_eq!(
        root,
        merkle::root(&progress.tree, n).unwrap(),
        "{what}: root at {n}"
    );
    let mut sizes: Vec<usize> = Vec::new();
    if !progress.acked.is_empty() {
        sizes.push(progress.acked.len() - 1);
        sizes.push(rng.range(0, progress.acked.len() as u64) as usize);
    }
    for k in sizes {
        let (size, signed) = progress.acked[k];
        assert_eq!(
            root_at(size),
            signed,
            "{what}: root at acknowledged size {size}"
        );
    }
    // The inclusion proof of an acknowledged entry (the newest or, as often, any) against
    // the recovered size.
    if acked > 0 {
        let index = if rng.chance(50) {
            acked - 1
        } else {
            rng.range(0, acked)
        };
        let proof = merkle::inclusion_proof(&log, index, n).unwrap();
        let leaf = merkle::leaf_hash(&entries[index as usize]);
        merkle::verify_inclusion(index, n, &leaf, &proof, &root)
            .unwrap_or_else(|e| panic!("{what}: inclusion of {index} in {n}: {e}"));
    }
    // The stored checkpoint, if readable, is one that was signed, over entries present.
    if let Some(note) = log.checkpoint().unwrap() {
        let cp = Checkpoint::verify(&note, verifier)
            .unwrap_or_else(|e| panic!("{what}: stored checkpoint: {e}"));
        assert!(
            cp.size <= n,
            "{what}: checkpoint covers {} entries, {n} present",
            cp.size
        );
        assert_eq!(cp.root, root_at(cp.size), "{what}: checkpoint root");
    }
    if let Some(genesis) = &progress.genesis {
        assert_eq!(
            log.genesis().unwrap().as_ref(),
            Some(genesis),
            "{what}: genesis"
        );
    }
    // Appending after recovery works.
    let mut frontier = Frontier::from_source(&log, n).unwrap();
    let mut more = match n {
        0 => Records::new(99),
        _ => Records::after(99, &entries[n as usize - 1]),
    };
    let batch = more.batch(3, 0, 300);
    let nodes = nodes_for(&mut frontier, &batch);
    log.append(&batch, &nodes)
        .unwrap_or_else(|e| panic!("{what}: appending after recovery: {e}"));
    assert_eq!(log.size(), n + 3);
    assert_eq!(log.entries(n, n + 3).unwrap(), batch, "{what}");
    assert_eq!(
        merkle::root(&log, n + 3).unwrap(),
        frontier.root(),
        "{what}"
    );
    tally.states += 1;
}

#[test]
fn every_crash_state_keeps_every_acknowledged_entry() {
    // Another workload and other crash states: EVIDENT_CRASHSIM_SEED=<number>.
    let seed: u64 = std::env::var("EVIDENT_CRASHSIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    let fs = SimFs::new();
    let signer = Signer::new("evident.test/log", SigningKey::from_bytes(&[5; 32])).unwrap();
    let verifier = signer.verifier().clone();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    {
        let progress = progress.clone();
        let tally = tally.clone();
        let verifier = verifier.clone();
        let mut rng = Rng::new(seed ^ 7);
        fs.set_sync_hook(Some(Box::new(move |state: &SimState| {
            let progress = progress.lock().unwrap();
            let mut tally = tally.lock().unwrap();
            tally.sync_points += 1;
            if state.pending().iter().any(|p| {
                p.len > 0
                    && p.path
                        .as_ref()
                        .is_some_and(|p| p.extension().is_some_and(|e| e == "seg"))
            }) {
                tally.torn_tails += 1;
            }
            let point = format!(
                "sync point {}, {} acknowledged",
                tally.sync_points,
                progress.acked.len()
            );
            for (what, crashed) in crash_states(state, &mut rng) {
                let what = format!("{point}: {what}");
                check_state(&what, crashed, &progress, &verifier, &mut rng, &mut tally);
            }
            // The process dies (the page cache survives), starts again, and then the
            // machine loses power: what the restart recovered, and may have signed a
            // checkpoint over, must survive.
            let fs = state.process_crash();
            // At some sync points, the power also fails at each sync of that recovery.
            let during: Arc<Mutex<Vec<SimFs>>> = Arc::default();
            if tally.sync_points % 16 == 0 {
                let during = during.clone();
                fs.set_sync_hook(Some(Box::new(move |state: &SimState| {
                    let crashed = state.materialise(&mut |_| Fate::Drop, 0);
                    during.lock().unwrap().push(crashed);
                })));
            }
            let log = FileLog::open_with(Arc::new(fs.clone()), Path::new(DIR), options())
                .unwrap_or_else(|e| panic!("{point}: opening after a process crash: {e}"));
            let recovered = log.size();
            drop(log);
            fs.set_sync_hook(None);
            for (k, crashed) in std::mem::take(&mut *during.lock().unwrap())
                .into_iter()
                .enumerate()
            {
                let what = format!("{point}: process crash, power cut at sync {k} of the restart");
                check_state(&what, crashed, &progress, &verifier, &mut rng, &mut tally);
                tally.during_recovery += 1;
            }
            let crashed = fs.snapshot().materialise(&mut |_| Fate::Drop, 0);
            let what = format!("{point}: process crash, restart, power cut");
            check_state(&what, crashed, &progress, &verifier, &mut rng, &mut tally);
            assert!(
                tally.last_size >= recovered,
                "{what}: {recovered} entries recovered, then {} after the power cut",
                tally.last_size
            );
        })));
    }
    let log = FileLog::open_with(Arc::new(fs.clone()), Path::new(DIR), options()).unwrap();
    log.set_genesis(b"{\"admins\":[]}").unwrap();
    progress.lock().unwrap().genesis = Some(b"{\"admins\":[]}".to_vec());
    let mut records = Records::new(seed ^ 1);
    let mut frontier = Frontier::new();
    let mut rng = Rng::new(seed ^ 3);
    for _ in 0..200 {
        let n = match rng.range(0, 20) {
            0 => rng.range(20, 60),
            1..=7 => 1,
            _ => rng.range(2, 7),
        } as usize;
        let batch = records.batch(n, 0, if rng.chance(20) { 1500 } else { 300 });
        let nodes = nodes_for(&mut frontier, &batch);
        {
            let mut p = progress.lock().unwrap();
            for r in &batch {
                p.tree.push(merkle::leaf_hash(r));
            }
            p.attempted.extend(batch.iter().cloned());
        }
        log.append(&batch, &nodes).unwrap();
        let size = log.size();
        let root = frontier.root();
        progress.lock().unwrap().acked.push((size, root));
        let note = Checkpoint {
            origin: "evident.test/log".into(),
            size,
            root,
            extensions: Vec::new(),
        }
        .sign(&signer)
        .unwrap();
        log.set_checkpoint(&note).unwrap();
    }
    fs.set_sync_hook(None);
    let tally = tally.lock().unwrap();
    let size = log.size();
    eprintln!(
        "seed {seed}: {} entries, {} sync points, {} crash states checked ({} with a segment write in \
         flight, {} cut during a recovery, {} recovering unacknowledged entries) in {:?}",
        size,
        tally.sync_points,
        tally.states,
        tally.torn_tails,
        tally.during_recovery,
        tally.extra_entries,
        started.elapsed()
    );
    assert!(tally.states >= 500, "only {} crash states", tally.states);
    assert!(size > 600);
}
