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

#[cfg(test)]
mod crashsim;
pub mod files;
pub mod legacy;
pub mod postgres;
pub mod runs;
pub mod vfs;

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;

use evident_core::Hash;
use evident_core::audit::Facts;
use evident_core::merkle::{Node, SubtreeSource};
use evident_core::record::EntryKind;
use evident_core::vindex::IndexKey;

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
    /// PostgreSQL refused or failed an operation.
    #[error("{op}: {message}")]
    Database {
        /// What was being done.
        op: &'static str,
        /// What PostgreSQL said.
        message: String,
    },
    /// PostgreSQL cannot be reached (refused, restarting, the network cut). Connections
    /// are made again at the next call, so this passes when the database is back.
    #[error("PostgreSQL is unreachable ({op}): {message}")]
    Unreachable {
        /// What was being done.
        op: &'static str,
        /// Why it failed.
        message: String,
    },
    /// This instance's sequencing lease is gone: another instance took over (or it
    /// expired). Nothing was written.
    #[error(
        "this instance no longer holds the sequencing lease (its term {term}; the lease is at \
         term {current}, held by {holder:?}): nothing was written"
    )]
    Fenced {
        /// The term this instance held.
        term: i64,
        /// The lease's term now.
        current: i64,
        /// Who holds it now.
        holder: String,
    },
    /// Stored bytes are not what the ledger wrote.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// The data folder holds a store of another layout.
    #[error("{0}")]
    Layout(String),
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

    /// Appends a batch as [`LogStore::append`] does, and with it, where the backend can do
    /// so atomically, the batch's index rows, the outcomes of the queued submissions it
    /// settles and the checkpoint signed over the log with the batch. Says which of the
    /// index rows and the checkpoint it wrote (the caller writes the others). A backend
    /// without a queue takes no outcomes.
    fn append_batch(
        &self,
        records: &[Vec<u8>],
        nodes: &[Node],
        indexed: &[Indexed],
        outcomes: &[(u64, Outcome)],
        checkpoint: Option<&str>,
    ) -> Result<Wrote, StoreError> {
        let _ = (indexed, checkpoint);
        if !outcomes.is_empty() {
            return Err(StoreError::Layout(
                "this store has no queue of submissions from other instances".into(),
            ));
        }
        self.append(records, nodes).map(|()| Wrote::default())
    }

    /// The leaf records of several entries, in the order asked (`None` at or beyond the
    /// size): for a store far away, one request.
    fn entries_at(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        indexes.iter().map(|&index| self.entry(index)).collect()
    }

    /// The hashes of several complete subtrees, in the order asked: for a store far away,
    /// one request for all the subtrees a proof reads
    /// (`merkle::inclusion_proof_reads`).
    fn subtree_hashes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Hash>, StoreError> {
        wanted
            .iter()
            .map(|&(level, index)| self.subtree_hash(level, index))
            .collect()
    }

    /// The log has grown to at least `size` entries, written by another instance's
    /// sequencer (a shared database): reads up to there are served. A store that only this
    /// process writes ignores it.
    fn observe_size(&self, size: u64) {
        let _ = size;
    }

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

    /// Stores a signed checkpoint as [`LogStore::set_checkpoint`] does, and makes it durable:
    /// after a crash, the log never opens shorter than this checkpoint's size without
    /// refusing. The store does this about once a second, so that the floor a recovery
    /// holds the log to is at most a second behind what was acknowledged.
    fn set_checkpoint_durably(&self, note: &str) -> Result<(), StoreError> {
        self.set_checkpoint(note)
    }

    /// The genesis recorded at first start (JSON), if any.
    fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records the genesis. Durable when it returns `Ok`. Called once, before any entry.
    fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError>;
}

/// What [`LogStore::append_batch`] wrote with the batch's records and nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wrote {
    /// The batch's index rows.
    pub indexed: bool,
    /// The checkpoint over the log with the batch.
    pub checkpoint: bool,
}

/// What became of a submission queued by another instance for the sequencer (PostgreSQL,
/// several instances): recorded in the same transaction as the batch that settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In the log at `index`; `duplicate` when it was there before.
    Logged {
        /// The entry.
        index: u64,
        /// Whether the same content by the same keys was already logged.
        duplicate: bool,
    },
    /// Refused by the sequencer: the gRPC status it answers, to be relayed as it is.
    Refused {
        /// The gRPC status code.
        code: i32,
        /// The status message.
        message: String,
        /// The status details (`google.rpc.Status` with its `ErrorInfo`), encoded.
        details: Vec<u8>,
    },
}

/// Refuses a subtree (`2^level` leaves from leaf `index << level`) that is not complete in a
/// log of `size` entries: what every backend's [`LogStore::subtree_hash`] checks first.
pub(crate) fn check_complete(level: u32, index: u64, size: u64) -> Result<(), StoreError> {
    let inside = level < 64
        && index
            .checked_add(1)
            .and_then(|i| i.checked_mul(1u64 << level))
            .is_some_and(|e| e <= size);
    if inside {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "asked for the subtree (level {level}, index {index}), which is not complete in a log \
         of {size} entries"
    )))
}

/// Whether an [`IndexStore::seek`] can find nothing whatever the list holds: an empty
/// range, or a start outside it in the direction of the seek.
pub(crate) fn seek_is_empty(from: u64, forward: bool, lo: u64, hi: u64) -> bool {
    lo >= hi || (forward && from >= hi) || (!forward && from < lo)
}

impl SubtreeSource for dyn LogStore {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        LogStore::subtree_hash(self, level, index)
    }
}

/// One entry as the indexes see it: what the sequencer (or a replay) knows of it.
#[derive(Debug, Clone)]
pub struct Indexed {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Its dedupe key: signed content and signer keys (`record::dedupe_key`).
    pub dedupe_key: Hash,
    /// Its kind.
    pub kind: EntryKind,
    /// What it says and who signed it, as the registry of its time saw it.
    pub facts: Facts,
}

impl Indexed {
    /// The posting lists the entry is on, in a fixed order (without [`Posting::All`]): the
    /// keys of the verifiable index ([`IndexKey::of_entry`]).
    pub fn postings(&self) -> Vec<Posting> {
        IndexKey::of_entry(self.kind, &self.facts)
            .into_iter()
            .map(Posting::from)
            .collect()
    }
}

/// One batch of the key log: `u32 length ‖ u32 CRC-32 ‖ body`, the body `first index (u64)
/// ‖ entries (u32) ‖ keys (u32) ‖ the keys (32 bytes each) ‖ per entry: a count (u16) and
/// that many key numbers (u32)`, all big-endian.
pub(crate) fn key_frame(entries: &[Indexed]) -> Vec<u8> {
    let mut keys: Vec<Hash> = Vec::new();
    let mut numbers: HashMap<Hash, u32> = HashMap::new();
    let mut per_entry: Vec<Vec<u32>> = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut mine = Vec::new();
        for key in evident_core::vindex::IndexKey::of_entry(entry.kind, &entry.facts) {
            let Some(hash) = key.hash() else { continue };
            let n = *numbers.entry(hash).or_insert_with(|| {
                keys.push(hash);
                (keys.len() - 1) as u32
            });
            mine.push(n);
        }
        per_entry.push(mine);
    }
    let first = entries.first().map_or(0, |e| e.index);
    let mut body = Vec::with_capacity(16 + keys.len() * 32 + entries.len() * 24);
    body.extend_from_slice(&first.to_be_bytes());
    body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    body.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    for k in &keys {
        body.extend_from_slice(k.as_bytes());
    }
    for mine in per_entry {
        body.extend_from_slice(&(mine.len() as u16).to_be_bytes());
        for n in mine {
            body.extend_from_slice(&n.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// One decoded batch of the key log: its first index and each entry's keys.
pub(crate) struct KeyBatch {
    pub(crate) first: u64,
    pub(crate) entries: Vec<Vec<Hash>>,
}

pub(crate) fn decode_key_body(body: &[u8]) -> Option<KeyBatch> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let part = body.get(at..at + n)?;
        at += n;
        Some(part)
    };
    let first = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let count = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let nkeys = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let mut keys = Vec::with_capacity(nkeys.min(body.len() / 32));
    for _ in 0..nkeys {
        keys.push(Hash::from_slice(take(32)?).ok()?);
    }
    let mut entries = Vec::with_capacity(count.min(body.len() / 2));
    for _ in 0..count {
        let n = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        let mut mine = Vec::with_capacity(n);
        for _ in 0..n {
            let k = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
            mine.push(*keys.get(k)?);
        }
        entries.push(mine);
    }
    (at == body.len()).then_some(KeyBatch { first, entries })
}

/// What [`IndexStore::keys_between`] is told of each entry: its index and its list keys'
/// hashes.
pub type EntryKeys<'a> = dyn FnMut(u64, &[Hash]) -> Result<(), StoreError> + 'a;

/// What the indexes hold, counted (for `verify-store`, which holds it against the counts
/// the entries give, so that a key pointing nowhere is found too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Leaf-hash look-ups.
    pub leaf_hashes: u64,
    /// Dedupe-key look-ups.
    pub dedupe_keys: u64,
    /// Entries on posting lists, summed over the lists.
    pub postings: u64,
    /// Per-entry signer records.
    pub signer_records: u64,
    /// Policy versions.
    pub policy_versions: u64,
}

impl Census {
    /// Adds what one entry contributes.
    pub fn add(&mut self, entry: &Indexed) {
        self.leaf_hashes += 1;
        self.dedupe_keys += 1;
        self.postings += entry.postings().len() as u64;
        self.signer_records += 1;
        if entry
            .facts
            .policy
            .as_ref()
            .is_some_and(|(name, _)| !name.contains('\0'))
        {
            self.policy_versions += 1;
        }
    }
}

/// The indexes: derived from the log, rebuildable from it (`evidentd reindex`).
///
/// Written by one thread (the sequencer, or a maintenance command); read by any number.
pub trait IndexStore: Send + Sync + Debug {
    /// Entries `0..indexed()` are in the indexes. After a crash this may be less than the
    /// log's size (never more); the server indexes the rest from the log before it serves.
    fn indexed(&self) -> Result<u64, StoreError>;

    /// Adds entries `indexed()..indexed() + entries.len()`, in order, atomically: after a
    /// crash either all of them are indexed or none.
    ///
    /// Durability: none of its own; see [`IndexStore::sync`]. Visible to readers at once.
    fn add(&self, entries: &[Indexed]) -> Result<(), StoreError>;

    /// Makes everything added so far durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// The index of the entry with this leaf hash.
    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError>;

    /// The index of the entry with this dedupe key.
    fn index_of_content(&self, dedupe_key: &Hash) -> Result<Option<u64>, StoreError>;

    /// The indexes of the entries with these dedupe keys, in the order asked.
    fn indexes_of_content(&self, keys: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        keys.iter().map(|k| self.index_of_content(k)).collect()
    }

    /// Whether a look-up costs a round trip to a server (PostgreSQL), so that callers with
    /// many to make ask for them together ([`IndexStore::indexes_of_content`]).
    fn remote(&self) -> bool {
        false
    }

    /// On a posting list (not [`Posting::All`]), the first index at or after `from`
    /// (`forward`), or the last at or before it, within `lo..hi`.
    fn seek(
        &self,
        posting: &Posting,
        from: u64,
        forward: bool,
        lo: u64,
        hi: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// On a posting list (not [`Posting::All`]), up to `count` indexes at or after `from`
    /// and below `hi`, in order: for a store far away, one request.
    fn read_list(
        &self,
        posting: &Posting,
        from: u64,
        hi: u64,
        count: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::with_capacity(count.min(4096));
        let mut at = from;
        while out.len() < count {
            match self.seek(posting, at, true, 0, hi)? {
                Some(index) => {
                    out.push(index);
                    at = index + 1;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// The signer identities recorded for entry `index`.
    fn signers_of(&self, index: u64) -> Result<Option<Vec<String>>, StoreError>;

    /// Every policy version: `(name, version, index)`, by name then version.
    fn policies(&self) -> Result<Vec<(String, u64, u64)>, StoreError>;

    /// What is missing or wrong in the indexes about `entry`, if anything.
    fn check(&self, entry: &Indexed) -> Result<Option<String>, StoreError>;

    /// Counts of what the indexes hold.
    fn census(&self) -> Result<Census, StoreError>;

    /// For rebuilding the verifiable index: calls `visit(key, index)` for every entry below
    /// `end` on every posting list, `key` being the list's [`IndexKey::hash`]. Each list's
    /// entries come in increasing order; lists may interleave.
    fn list_keys(
        &self,
        end: u64,
        visit: &mut dyn FnMut(&Hash, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// For keeping the verifiable index up to date with a log another instance writes:
    /// calls `visit(index, keys)` for each entry `start..end` in order, with its list keys'
    /// hashes. Fails when the indexes do not hold them (then rebuild from
    /// [`IndexStore::list_keys`]).
    fn keys_between(
        &self,
        start: u64,
        end: u64,
        visit: &mut EntryKeys<'_>,
    ) -> Result<(), StoreError>;

    /// Removes everything (for `reindex`); durable when it returns.
    fn clear(&self) -> Result<(), StoreError>;

    /// Reads everything the indexes keep on disk and checks its checksums (the background
    /// verification); returns the bytes read. `pace` is called with the bytes read so far
    /// as it goes, and may sleep; when it returns `false` the reading stops there.
    fn verify_files(&self, pace: &mut dyn FnMut(u64) -> bool) -> Result<u64, StoreError> {
        let _ = pace;
        Ok(0)
    }
}

/// One posting list: the entries that have one property, in log order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Posting {
    /// Every entry.
    All,
    /// Entries of one kind.
    Kind(EntryKind),
    /// Attestations with this predicate type.
    PredicateType(String),
    /// Entries signed by this identity (signers of attestations, administrators of
    /// registry and policy entries).
    Signer(String),
    /// Attestations signed by a key that had this role at the entry's time.
    Role(String),
    /// Attestations with this subject digest `(algorithm, value)`.
    Subject(String, String),
    /// Attestations with a subject of this name.
    SubjectName(String),
    /// Release attestations of this name (and version).
    Release(String, Option<String>),
}

impl Posting {
    /// The verifiable index's key for the list; `None` for [`Posting::All`].
    pub fn key(&self) -> Option<IndexKey> {
        Some(match self {
            Posting::All => return None,
            Posting::Kind(kind) => IndexKey::Kind(*kind),
            Posting::PredicateType(p) => IndexKey::PredicateType(p.clone()),
            Posting::Signer(s) => IndexKey::Signer(s.clone()),
            Posting::Role(r) => IndexKey::Role(r.clone()),
            Posting::Subject(alg, value) => IndexKey::Subject(alg.clone(), value.clone()),
            Posting::SubjectName(n) => IndexKey::SubjectName(n.clone()),
            Posting::Release(n, v) => IndexKey::Release(n.clone(), v.clone()),
        })
    }

    /// A name for the list that is unique among lists and free of prefixes of another's
    /// ([`IndexKey::bytes`]). `None` for [`Posting::All`], and when a part holds a NUL byte,
    /// which no indexed value has.
    pub fn prefix(&self) -> Option<Vec<u8>> {
        self.key().and_then(|k| k.bytes())
    }
}

impl From<IndexKey> for Posting {
    fn from(key: IndexKey) -> Posting {
        match key {
            IndexKey::Kind(kind) => Posting::Kind(kind),
            IndexKey::PredicateType(p) => Posting::PredicateType(p),
            IndexKey::Signer(s) => Posting::Signer(s),
            IndexKey::Role(r) => Posting::Role(r),
            IndexKey::Subject(alg, value) => Posting::Subject(alg, value),
            IndexKey::SubjectName(n) => Posting::SubjectName(n),
            IndexKey::Release(n, v) => Posting::Release(n, v),
        }
    }
}
