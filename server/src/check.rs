//! The start-up check: the server refuses to serve a store that is shorter than, or
//! inconsistent with, what it has signed, and names the first entry that is wrong.

use evident_core::Hash;
use evident_core::merkle::{Frontier, SubtreeSource};
use evident_core::note::{Checkpoint, Verifier};
use evident_core::record::LeafRecord;

use crate::config::StartupCheck;
use evident_core::audit::Facts;

use crate::store::{Store, StoreError, secondary_keys};

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

/// What an entry contributes to the indexes, as far as its record alone says: everything
/// but its signers (which need the registry as of the entry, see `verify-store`).
fn facts_of(record: &LeafRecord) -> Result<Facts, String> {
    use evident_core::record::EntryKind;
    match record.kind() {
        EntryKind::Attestation => {
            let statement = evident_core::statement::Statement::from_envelope(record.envelope())
                .map_err(|e| format!("the attestation does not parse: {e}"))?;
            Ok(Facts::of_attestation(&statement, &[]))
        }
        EntryKind::Policy => {
            let text = std::str::from_utf8(&record.envelope().payload)
                .map_err(|_| "the policy is not UTF-8".to_owned())?;
            let policy = evident_core::policy::Policy::parse(text).map_err(|e| e.to_string())?;
            Ok(Facts::of_admin_entry(
                &[],
                Some((policy.name, policy.version)),
            ))
        }
        _ => Ok(Facts::default()),
    }
}

fn entry_error(index: u64, problem: impl Into<String>) -> CheckError {
    CheckError::Entry {
        index,
        problem: problem.into(),
    }
}

/// Checks the store against its last signed checkpoint, as deep as `mode` says (`tail`: the
/// last `tail_entries` entries).
pub fn check_store(
    store: &Store,
    verifier: &Verifier,
    mode: StartupCheck,
    tail_entries: u64,
) -> Result<Tail, CheckError> {
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
    let start = match mode {
        StartupCheck::Full => 0,
        StartupCheck::Tail => size.saturating_sub(tail_entries),
    };
    let mut frontier = if start == 0 {
        Frontier::new()
    } else {
        Frontier::from_source(store, start).map_err(|e| entry_error(start, e.to_string()))?
    };
    let mut previous = match start {
        0 => None,
        s => Some((s - 1, store.subtree_hash(0, s - 1)?)),
    };
    let mut last_time = 0;
    let mut registry_entries = Vec::new();
    for index in start..size {
        let bytes = store
            .entry(index)?
            .ok_or_else(|| entry_error(index, "is missing"))?;
        let record = LeafRecord::decode(&bytes).map_err(|e| entry_error(index, e.to_string()))?;
        record
            .check_follows(previous)
            .map_err(|e| entry_error(index, e.to_string()))?;
        if record.kind() == evident_core::record::EntryKind::Registry {
            registry_entries.push(index);
        }
        // Every secondary index key the entry should have is there.
        let facts = facts_of(&record).map_err(|e| entry_error(index, e))?;
        for (key, _) in secondary_keys(index, record.kind(), &facts) {
            if !store.has_key(&key)? {
                return Err(entry_error(
                    index,
                    "a secondary index key of the entry is missing (an edited or lost \
                     index: stop the server and run `evidentd reindex`)",
                ));
            }
        }
        let leaf = record.leaf_hash();
        for node in frontier.append(leaf) {
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
        if let Some(cp) = &signed {
            if frontier.size() == cp.size && frontier.root() != cp.root {
                return Err(CheckError::Root {
                    size: cp.size,
                    computed: frontier.root(),
                    signed: cp.root,
                });
            }
        }
        previous = Some((index, leaf));
        last_time = record.integrated_time_nanos();
    }
    // The registry is rebuilt from the `K` index: it must list exactly the registry entries.
    let indexed: std::collections::BTreeSet<u64> =
        store.registry_entries(start, size)?.into_iter().collect();
    let found: std::collections::BTreeSet<u64> = registry_entries.into_iter().collect();
    if let Some(&first) = indexed.symmetric_difference(&found).next() {
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
    Ok(Tail {
        frontier,
        last_leaf_hash: previous.map_or(Hash::ZERO, |(_, h)| h),
        last_time_nanos: last_time,
    })
}
