//! The start-up check: the server refuses to serve a store that is shorter than, or
//! inconsistent with, what it has signed, and names the first entry that is wrong; and it
//! brings the indexes up to the log before any submission is taken.
//!
//! What a crash can damage is the log's tail (the log recovers it when it opens) and the
//! indexes' tail (a run is written every few thousand entries). So the check replays the last
//! `startup_tail_entries` entries — chain, times, signatures against the registry of their
//! time, every tree node they complete, the signed root — holds every index entry of those
//! already indexed against them, and indexes the rest. `startup_check = "full"` does the
//! same from entry 0.

use evident_core::Hash;
use evident_core::audit::Replay;
use evident_core::merkle::{Frontier, SubtreeSource};
use evident_core::note::{Checkpoint, Verifier};
use evident_core::record::EntryKind;
use evident_core::registry::Registry;

use crate::config::StartupCheck;
use crate::store::{Indexed, Store, StoreError};

/// Entries read and indexed per step of the check.
const CHUNK: u64 = 4_096;

/// Why the store may not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Reading failed.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    /// The stored checkpoint is not signed by this log's key or does not parse.
    #[error("the stored checkpoint does not verify under this log's key: {0}")]
    Checkpoint(String),
    /// Fewer entries than the last signed checkpoint covers.
    #[error(
        "the store holds {stored} entries but this log signed a checkpoint of {signed}: \
         entries {stored}..{signed} are missing (a truncated or rolled-back data folder)"
    )]
    Truncated {
        /// Entries in the store.
        stored: u64,
        /// Size of the last signed checkpoint.
        signed: u64,
    },
    /// An entry is missing, does not decode, breaks the chain, or does not match the tree.
    #[error("entry {index}: {problem}")]
    Entry {
        /// The first bad entry.
        index: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// The indexes cover entries the log does not have.
    #[error(
        "the indexes cover {indexed} entries but the log holds {size}: the indexes belong to \
         another log or a later state of this one (stop the server and run `evidentd reindex`)"
    )]
    IndexAhead {
        /// Entries the indexes cover.
        indexed: u64,
        /// Entries in the log.
        size: u64,
    },
    /// The registry could not be rebuilt.
    #[error("rebuilding the registry: {0}")]
    Registry(String),
    /// The tree does not have the signed root.
    #[error(
        "the tree of the first {size} entries has root {computed}, the signed checkpoint says {signed}"
    )]
    Root {
        /// The checkpoint size.
        size: u64,
        /// The root computed from the store.
        computed: Hash,
        /// The signed root.
        signed: Hash,
    },
}

/// What the sequencer needs to continue the log.
#[derive(Debug)]
pub struct Tail {
    /// The tree's right edge.
    pub frontier: Frontier,
    /// The leaf hash of the last entry (zeros for an empty log).
    pub last_leaf_hash: Hash,
    /// The integrated time of the last entry.
    pub last_time_nanos: i64,
}

/// What the start-up check established.
#[derive(Debug)]
pub struct Checked {
    /// Where the log ends.
    pub tail: Tail,
    /// The registry after the last entry.
    pub registry: Registry,
}

fn entry_error(index: u64, problem: impl Into<String>) -> CheckError {
    CheckError::Entry {
        index,
        problem: problem.into(),
    }
}

/// Checks the store against its last signed checkpoint, as deep as `mode` says (`tail`: the
/// last `tail_entries` entries, and at least every entry the indexes lack), and indexes the
/// entries the indexes lack. `genesis` is the registry before entry 0.
pub fn check_store(
    store: &Store,
    verifier: &Verifier,
    mode: StartupCheck,
    tail_entries: u64,
    genesis: &Registry,
) -> Result<Checked, CheckError> {
    let size = store.size()?;
    let signed = match store.checkpoint()? {
        Some(note) => Some(
            Checkpoint::verify(&note, verifier)
                .map_err(|e| CheckError::Checkpoint(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(cp) = &signed {
        if cp.size > size {
            return Err(CheckError::Truncated {
                stored: size,
                signed: cp.size,
            });
        }
    }
    let indexed = store.index().indexed()?;
    if indexed > size {
        return Err(CheckError::IndexAhead { indexed, size });
    }
    let start = match mode {
        StartupCheck::Full => 0,
        StartupCheck::Tail => size.saturating_sub(tail_entries).min(indexed),
    };
    // The registry before `start`, from the indexes' registry entries (all indexed).
    let registry = crate::genesis::replay(store, genesis, start)
        .map_err(|e| CheckError::Registry(e.to_string()))?;
    let frontier = if start == 0 {
        Frontier::new()
    } else {
        Frontier::from_source(store, start).map_err(|e| entry_error(start, e.to_string()))?
    };
    let previous = match start {
        0 => None,
        s => Some(store.subtree_hash(0, s - 1)?),
    };
    let last_time = match start {
        0 => i64::MIN,
        s => store.time_of(s - 1)?,
    };
    let mut tree = frontier.clone();
    let mut replay = Replay::resume(registry, frontier, previous, last_time);
    let mut registry_entries = Vec::new();
    let mut pending: Vec<Indexed> = Vec::new();
    let mut caught_up = 0;
    let mut at = start;
    while at < size {
        let records = store.entries(at, (at + CHUNK).min(size))?;
        if records.is_empty() {
            return Err(entry_error(at, "is missing"));
        }
        for bytes in records {
            let index = at;
            at += 1;
            let (record, leaf_hash, facts) = replay
                .push(&bytes)
                .map_err(|e| entry_error(e.index, e.problem))?;
            if record.kind() == EntryKind::Registry {
                registry_entries.push(index);
            }
            check_nodes(store, &mut tree, index, leaf_hash)?;
            if let Some(cp) = &signed {
                if tree.size() == cp.size && tree.root() != cp.root {
                    return Err(CheckError::Root {
                        size: cp.size,
                        computed: tree.root(),
                        signed: cp.root,
                    });
                }
            }
            let entry = Indexed {
                index,
                leaf_hash,
                dedupe_key: facts.dedupe_key(record.envelope()),
                kind: record.kind(),
                facts,
            };
            if index < indexed {
                if let Some(problem) = store.index().check(&entry)? {
                    return Err(entry_error(
                        index,
                        format!(
                            "{problem} in the indexes (an edited or lost index: stop the \
                             server and run `evidentd reindex`)"
                        ),
                    ));
                }
            } else {
                pending.push(entry);
            }
        }
        if !pending.is_empty() {
            caught_up += pending.len() as u64;
            store.index().add(&std::mem::take(&mut pending))?;
        }
    }
    if caught_up > 0 {
        store.sync()?;
        tracing::info!(
            entries = caught_up,
            "indexed the log's tail that the indexes lacked after a crash"
        );
    }
    // The registry is rebuilt from the kind index: it must list exactly the registry entries.
    let listed: std::collections::BTreeSet<u64> =
        store.registry_entries(start, size)?.into_iter().collect();
    let found: std::collections::BTreeSet<u64> = registry_entries.into_iter().collect();
    if let Some(&first) = listed.symmetric_difference(&found).next() {
        return Err(entry_error(
            first,
            "the registry index does not match the entries' kinds (an edited index)",
        ));
    }
    if let Some(cp) = &signed {
        // In a tail check the signed size can lie before the entries read above.
        let root = evident_core::merkle::root(store, cp.size)
            .map_err(|e| entry_error(cp.size.saturating_sub(1), e.to_string()))?;
        if root != cp.root {
            return Err(CheckError::Root {
                size: cp.size,
                computed: root,
                signed: cp.root,
            });
        }
    }
    Ok(Checked {
        tail: Tail {
            last_leaf_hash: match size {
                0 => Hash::ZERO,
                s => store.subtree_hash(0, s - 1)?,
            },
            last_time_nanos: if size == 0 {
                0
            } else {
                store.time_of(size - 1)?
            },
            frontier: tree,
        },
        registry: replay.registry().clone(),
    })
}

/// Appends `leaf_hash` to `tree` and holds every node that completes against the store.
fn check_nodes(
    store: &Store,
    tree: &mut Frontier,
    index: u64,
    leaf_hash: Hash,
) -> Result<(), CheckError> {
    for node in tree.append(leaf_hash) {
        let stored = store
            .subtree_hash(node.level, node.index)
            .map_err(|e| entry_error(index, e.to_string()))?;
        if stored != node.hash {
            return Err(entry_error(
                index,
                if node.level == 0 {
                    format!(
                        "leaf record hashes to {}, the tree holds {stored}",
                        node.hash
                    )
                } else {
                    format!(
                        "tree node (level {}, index {}) is {stored}, the entries give {}",
                        node.level, node.index, node.hash
                    )
                },
            ));
        }
    }
    Ok(())
}
