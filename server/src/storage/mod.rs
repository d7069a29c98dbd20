//! The storage seam: the two halves of a store, as traits over typed facts.
//!
//! - [`LogStore`], the log: leaf records in index order, the Merkle tree's hashes, the
//!   genesis and the latest checkpoint. The source of truth; everything else is derived.
//! - The indexes (look-ups by leaf hash and by dedupe key, posting lists, each entry's
//!   signers, policy versions): derived from the log and rebuildable from it.
//!
//! Nothing outside a backend knows its key or file layout. Each method states its
//! durability contract; the sequencer relies on exactly these contracts:
//!
//! 1. `LogStore::append` returns only when the batch survives power loss.
//! 2. Only then is a checkpoint signed over it and receipts answered.
//! 3. The indexes may lag the log after a crash; at start they are caught up from the
//!    log's tail before any submission is taken, so dedupe stays exact.

pub mod files;
pub mod vfs;

#[cfg(test)]
mod crashsim;

use std::fmt::Debug;
use std::path::PathBuf;

use evident_core::Hash;
use evident_core::merkle::{Node, SubtreeSource};

/// A storage failure. The message names the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed.
    #[error("{op}: {source}")]
    Sled {
        /// What was being done.
        op: &'static str,
        /// sled's error.
        source: sled::Error,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Stored bytes are not what the ledger wrote.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// An earlier write or sync failed: the store refuses every further write until the
    /// server restarts and recovers from what is durable. A failed `fsync` cannot be
    /// retried safely (the kernel may already have dropped the dirty pages).
    #[error("the store stopped after an earlier write failure ({0}); restart evidentd")]
    Poisoned(String),
}

/// The log: leaf records and the Merkle tree, append-only.
///
/// Written by one thread (the sequencer); read by any number at once. Reads see only
/// entries below [`LogStore::size`].
pub trait LogStore: Send + Sync + Debug {
    /// Number of entries in the log. After [`LogStore::append`] returns `Ok`, this
    /// includes the batch.
    fn size(&self) -> u64;

    /// Appends the leaf records of entries `size()..size() + records.len()`, in order, with
    /// the complete subtree hashes the appends made (`merkle::Frontier::append`'s nodes,
    /// leaves included).
    ///
    /// Durability: when this returns `Ok`, the records are durable — they survive a crash
    /// or power loss — and so is everything needed to serve the tree over them (stored, or
    /// rebuilt from the records when the log is opened). On `Err` nothing of the batch may
    /// be assumed durable, and the store is poisoned: every later `append` fails with
    /// [`StoreError::Poisoned`].
    fn append(&self, records: &[Vec<u8>], nodes: &[Node]) -> Result<(), StoreError>;

    /// The leaf record bytes of entry `index`, or `None` at or beyond the size.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The leaf records of entries `start..end` (clamped to the size), in order.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The hash of the complete subtree of `2^level` leaves that starts at leaf
    /// `index << level`; the subtree lies wholly below the size.
    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError>;

    /// The latest stored checkpoint (signed note text), if any.
    fn checkpoint(&self) -> Result<Option<String>, StoreError>;

    /// Stores a signed checkpoint over entries that are already durable.
    ///
    /// Durability: none of its own. A checkpoint lost or torn in a crash is re-signed from
    /// the durable entries at start; one that covers more entries than are durable cannot
    /// exist, because it is signed only after the entries' append returned.
    fn set_checkpoint(&self, note: &str) -> Result<(), StoreError>;

    /// The genesis recorded at first start (JSON), if any.
    fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records the genesis. Durable when it returns `Ok`. Called once, before any entry.
    fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError>;
}

impl SubtreeSource for dyn LogStore {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        LogStore::subtree_hash(self, level, index)
    }
}
