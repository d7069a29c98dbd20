//! The store: the log ([`LogStore`]) and the indexes ([`IndexStore`]) of one data folder,
//! composed behind the storage seam (`crate::storage`). The ledger, the start-up check,
//! the maintenance commands, backups and queries use this type or the two traits, never a
//! backend's layout.
//!
//! Writes go log first: [`Store::append`] makes the entries durable in the log, then adds
//! them to the indexes, which write themselves out in the background (a run every few
//! thousand entries). After a crash the indexes may lag the log; [`crate::check`] indexes
//! the tail before the server takes submissions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evident_core::Hash;
use evident_core::merkle::{Node, SubtreeSource};
use evident_core::record::EntryKind;

use crate::storage::files::FileLog;
pub use crate::storage::{Census, IndexStore, Indexed, LogStore, Posting, StoreError};
use crate::storage::{legacy, runs::RunIndex};

/// The log's folder in a data folder.
pub const LOG_FOLDER: &str = "log";
/// The indexes' folder in a data folder.
pub const INDEX_FOLDER: &str = "indexes";
/// Where earlier versions kept the indexes (in sled): removed at open, since the indexes
/// are rebuilt from the log.
const SLED_INDEX_FOLDER: &str = "index";
/// The folders a store occupies in a data folder.
pub const FOLDERS: &[&str] = &[LOG_FOLDER, INDEX_FOLDER];

/// How often the checkpoint is made durable.
const CHECKPOINT_SYNC_EVERY: Duration = Duration::from_secs(1);

/// One new entry for [`Store::append`].
#[derive(Debug)]
pub struct NewEntry {
    /// Its encoded leaf record.
    pub record: Vec<u8>,
    /// What the indexes learn of it.
    pub indexed: Indexed,
}

/// A data folder's log and indexes.
#[derive(Debug)]
pub struct Store {
    log: Arc<dyn LogStore>,
    index: Arc<dyn IndexStore>,
    last_checkpoint_sync: Mutex<Instant>,
    /// The data folder's lock, held while the store is open.
    lock: Option<std::fs::File>,
}

/// The file whose exclusive lock a process holds while it has the store open.
pub const LOCK_FILE: &str = "store.lock";

/// Takes the data folder's exclusive lock, or says who to stop.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Io {
            op: "opening",
            path: path.clone(),
            source,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Layout(format!(
            "{} is in use by another process (a running evidentd, or a maintenance command): \
             stop it first",
            data_dir.display()
        ))),
        Err(errno) => Err(StoreError::Io {
            op: "locking",
            path,
            source: errno.into(),
        }),
    }
}

impl Store {
    /// Opens (or creates) the store of `data_dir`. A data folder of the old layout is
    /// refused with what to do.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        if legacy::is_legacy(data_dir) {
            return Err(StoreError::Layout(format!(
                "{} holds a store of the old layout (everything in sled, in db/). Stop \
                 evidentd and run `evidentd migrate` once: it replays and verifies every \
                 entry and writes the current layout (docs/OPERATIONS.md)",
                data_dir.display()
            )));
        }
        Store::create(data_dir)
    }

    /// Opens (or creates) a store in the PostgreSQL database at `url`: the log and the
    /// indexes in its tables, the schema migrated to this build's.
    pub fn open_postgres(target: &crate::storage::postgres::PgTarget) -> Result<Store, StoreError> {
        Store::open_postgres_log(target).map(|(store, _)| store)
    }

    /// Opens a store in PostgreSQL as [`Store::open_postgres`] does, and returns its log
    /// too: the lease, the queue and the refresh of several instances go through it.
    pub fn open_postgres_log(
        target: &crate::storage::postgres::PgTarget,
    ) -> Result<(Store, Arc<crate::storage::postgres::PgLog>), StoreError> {
        let (log, index) = crate::storage::postgres::PgLog::open_with_index(target)?;
        let log = Arc::new(log);
        let store = Store::from_parts(log.clone(), Arc::new(index));
        Ok((store, log))
    }

    /// Opens the store of `data_dir` for `evidentd reindex` and `verify-store`: indexes too
    /// damaged to open are reported by every read that needs them, and removed whole by
    /// [`IndexStore::clear`], instead of refusing the store.
    pub fn open_lenient(data_dir: &Path) -> Result<Store, StoreError> {
        if legacy::is_legacy(data_dir) {
            return Store::open(data_dir);
        }
        Store::create_with(data_dir, true)
    }

    /// Opens (or creates) the current layout's store in `data_dir`, whatever else the
    /// folder holds (for `evidentd migrate`).
    pub fn create(data_dir: &Path) -> Result<Store, StoreError> {
        Store::create_with(data_dir, false)
    }

    fn create_with(data_dir: &Path, lenient: bool) -> Result<Store, StoreError> {
        // One process at a time: the log's recovery writes (it cuts torn tails and rebuilds
        // derived files), so the lock is taken before the log is opened.
        let lock = lock_data_dir(data_dir)?;
        let sled_index = data_dir.join(SLED_INDEX_FOLDER);
        if sled_index.is_dir() {
            tracing::warn!(
                folder = %sled_index.display(),
                "removing the indexes of an earlier version (in sled); they are rebuilt \
                 from the log before the server takes submissions"
            );
            std::fs::remove_dir_all(&sled_index).map_err(|source| StoreError::Io {
                op: "removing the old indexes",
                path: sled_index.clone(),
                source,
            })?;
        }
        let vfs: Arc<dyn crate::storage::vfs::Vfs> = Arc::new(crate::storage::vfs::OsFs);
        let log = FileLog::open(Arc::clone(&vfs), &data_dir.join(LOG_FOLDER))?;
        let index = if lenient {
            RunIndex::open_lenient(vfs, &data_dir.join(INDEX_FOLDER))?
        } else {
            RunIndex::open(vfs, &data_dir.join(INDEX_FOLDER))?
        };
        let mut store = Store::from_parts(Arc::new(log), Arc::new(index));
        store.lock = Some(lock);
        Ok(store)
    }

    /// Takes `data_dir`'s exclusive lock for as long as the store is open (a store in
    /// PostgreSQL, whose instance keeps its keys there).
    pub fn hold_lock(&mut self, data_dir: &Path) -> Result<(), StoreError> {
        self.lock = Some(lock_data_dir(data_dir)?);
        Ok(())
    }

    /// A store over these halves.
    pub fn from_parts(log: Arc<dyn LogStore>, index: Arc<dyn IndexStore>) -> Store {
        Store {
            log,
            index,
            // The first checkpoint stored is made durable.
            last_checkpoint_sync: Mutex::new(
                Instant::now()
                    .checked_sub(CHECKPOINT_SYNC_EVERY)
                    .unwrap_or_else(Instant::now),
            ),
            lock: None,
        }
    }

    /// The log.
    pub fn log(&self) -> &dyn LogStore {
        &*self.log
    }

    /// The indexes.
    pub fn index(&self) -> &dyn IndexStore {
        &*self.index
    }

    /// Number of entries in the log.
    pub fn size(&self) -> Result<u64, StoreError> {
        Ok(self.log.size())
    }

    /// The leaf record bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.log.entry(index)
    }

    /// The leaf records of entries `start..end`, in order.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.log.entries(start, end)
    }

    /// The index of the entry with this leaf hash.
    pub fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.index.index_of_leaf(leaf_hash)
    }

    /// The index of the entry with this dedupe key (`record::dedupe_key`).
    pub fn index_of_content(&self, digest: &Hash) -> Result<Option<u64>, StoreError> {
        self.index.index_of_content(digest)
    }

    /// The latest signed checkpoint, if one was ever stored.
    pub fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.log.checkpoint()
    }

    /// Stores a signed checkpoint over durable entries. It is made durable itself about
    /// once a second (the floor the log's recovery holds it to); a lost one is re-signed
    /// from the durable entries at start.
    pub fn set_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        let due = self
            .last_checkpoint_sync
            .lock()
            .map(|last| last.elapsed() >= CHECKPOINT_SYNC_EVERY)
            .unwrap_or(true);
        if due {
            self.set_checkpoint_durably(note)
        } else {
            self.log.set_checkpoint(note)
        }
    }

    /// Stores a signed checkpoint and makes it durable.
    pub fn set_checkpoint_durably(&self, note: &str) -> Result<(), StoreError> {
        self.log.set_checkpoint_durably(note)?;
        if let Ok(mut last) = self.last_checkpoint_sync.lock() {
            *last = Instant::now();
        }
        Ok(())
    }

    /// The genesis recorded at first start (JSON), if any.
    pub fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.log.genesis()
    }

    /// Records the genesis and makes it durable.
    pub fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError> {
        self.log.set_genesis(json)
    }

    /// The indexes of the registry entries in `start..end`, in order.
    pub fn registry_entries(&self, start: u64, end: u64) -> Result<Vec<u64>, StoreError> {
        self.postings(&Posting::Kind(EntryKind::Registry), start, end)
    }

    /// Every index in `start..end` on a posting list, in order.
    pub fn postings(
        &self,
        posting: &Posting,
        start: u64,
        end: u64,
    ) -> Result<Vec<u64>, StoreError> {
        if *posting == Posting::All {
            return Ok((start..end.min(self.log.size())).collect());
        }
        self.index.read_list(posting, start, end, usize::MAX)
    }

    /// On a posting list, the first index at or after `from` (`forward`), or the last at or
    /// before it, within `lo..hi`.
    pub fn seek(
        &self,
        posting: &Posting,
        from: u64,
        forward: bool,
        lo: u64,
        hi: u64,
    ) -> Result<Option<u64>, StoreError> {
        if *posting != Posting::All {
            return self.index.seek(posting, from, forward, lo, hi);
        }
        let hi = hi.min(self.log.size());
        if lo >= hi || (forward && from >= hi) || (!forward && from < lo) {
            return Ok(None);
        }
        Ok(Some(if forward {
            from.max(lo)
        } else {
            from.min(hi - 1)
        }))
    }

    /// On a posting list (not [`Posting::All`]), up to `count` indexes at or after `from`
    /// and below `hi`, in order, read together.
    pub fn read_list(
        &self,
        posting: &Posting,
        from: u64,
        hi: u64,
        count: usize,
    ) -> Result<Vec<u64>, StoreError> {
        self.index.read_list(posting, from, hi, count)
    }

    /// The signer identities recorded for entry `index` when it was indexed.
    pub fn signers_of(&self, index: u64) -> Result<Vec<String>, StoreError> {
        self.index.signers_of(index)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "entry {index} has no signer index (run `evidentd reindex`)"
            ))
        })
    }

    /// The integrated time of entry `index`.
    pub fn time_of(&self, index: u64) -> Result<i64, StoreError> {
        let bytes = self
            .entry(index)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {index} is missing")))?;
        evident_core::record::LeafRecord::decode(&bytes)
            .map(|r| r.integrated_time_nanos())
            .map_err(|e| StoreError::Corrupt(format!("entry {index}: {e}")))
    }

    /// Every policy version: `(name, version, index)`, by name then version.
    pub fn policies(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        self.index.policies()
    }

    /// Indexes of the release attestations that declare `name@version`, below `end`.
    pub fn releases(&self, name: &str, version: &str, end: u64) -> Result<Vec<u64>, StoreError> {
        self.postings(
            &Posting::Release(name.to_owned(), Some(version.to_owned())),
            0,
            end,
        )
    }

    /// Indexes of the attestations with subject digest `alg:value`, below `end`, in order.
    pub fn entries_about(&self, alg: &str, value: &str, end: u64) -> Result<Vec<u64>, StoreError> {
        self.postings(&Posting::Subject(alg.to_owned(), value.to_owned()), 0, end)
    }

    /// Appends entries with the tree nodes they complete: durable in the log when this
    /// returns `Ok`; then added to the indexes (written out in the background).
    pub fn append(&self, entries: Vec<NewEntry>, nodes: &[Node]) -> Result<(), StoreError> {
        self.append_settling(entries, nodes, &[], None).map(drop)
    }

    /// Appends as [`Store::append`] does, settling queued submissions of other instances in
    /// the same write, and with it, where the backend can, the checkpoint signed over the
    /// log with the batch (PostgreSQL: one transaction for the entries, their index rows,
    /// the outcomes and the checkpoint). Returns whether the checkpoint was stored; if not,
    /// the caller stores it ([`Store::set_checkpoint`]).
    pub fn append_settling(
        &self,
        entries: Vec<NewEntry>,
        nodes: &[Node],
        outcomes: &[(u64, crate::storage::Outcome)],
        checkpoint: Option<&str>,
    ) -> Result<bool, StoreError> {
        let started = Instant::now();
        let (records, indexed): (Vec<Vec<u8>>, Vec<Indexed>) =
            entries.into_iter().map(|e| (e.record, e.indexed)).unzip();
        let wrote = self
            .log
            .append_batch(&records, nodes, &indexed, outcomes, checkpoint)?;
        crate::metrics::METRICS.fsync(started.elapsed());
        if !wrote.indexed {
            self.index.add(&indexed)?;
        }
        Ok(wrote.checkpoint)
    }

    /// The indexes of the entries with these dedupe keys, in the order asked.
    pub fn indexes_of_content(&self, keys: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        self.index.indexes_of_content(keys)
    }

    /// Whether an index look-up costs a round trip to a database server.
    pub fn remote_index(&self) -> bool {
        self.index.remote()
    }

    /// The leaf records of several entries, in the order asked, read together.
    pub fn entries_at(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.log.entries_at(indexes)
    }

    /// The hashes of several complete subtrees, in the order asked, read together.
    pub fn subtree_hashes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Hash>, StoreError> {
        self.log.subtree_hashes(wanted)
    }

    /// Makes the indexes and the latest checkpoint durable (the log's entries are durable
    /// after every append).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.index.sync()?;
        if let Some(note) = self.log.checkpoint()? {
            self.set_checkpoint_durably(&note)?;
        }
        Ok(())
    }
}

impl SubtreeSource for Store {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        self.log.subtree_hash(level, index)
    }
}

/// A subtree source that serves the nodes of a batch being answered from memory, and
/// remembers every node it read, so the proofs of one batch read each node once.
#[derive(Debug)]
pub struct CachedSource<'a> {
    store: &'a Store,
    cache: std::cell::RefCell<HashMap<(u32, u64), Hash>>,
}

impl<'a> CachedSource<'a> {
    /// A source over `store` that already knows `nodes`.
    pub fn new(store: &'a Store, nodes: &[Node]) -> CachedSource<'a> {
        let cache = nodes.iter().map(|n| ((n.level, n.index), n.hash)).collect();
        CachedSource {
            store,
            cache: std::cell::RefCell::new(cache),
        }
    }
}

impl CachedSource<'_> {
    /// Reads the subtrees in `wanted` that it does not know yet, together (one request to
    /// a database server), so that the proofs that read them are answered from memory.
    pub fn prefetch(&self, wanted: &[(u32, u64)]) -> Result<(), StoreError> {
        let missing: Vec<(u32, u64)> = {
            let cache = self.cache.borrow();
            let mut seen = std::collections::HashSet::new();
            wanted
                .iter()
                .filter(|key| !cache.contains_key(key) && seen.insert(**key))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let hashes = self.store.subtree_hashes(&missing)?;
        self.cache
            .borrow_mut()
            .extend(missing.into_iter().zip(hashes));
        Ok(())
    }
}

impl SubtreeSource for CachedSource<'_> {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        if let Some(hash) = self.cache.borrow().get(&(level, index)) {
            return Ok(*hash);
        }
        let hash = self.store.subtree_hash(level, index)?;
        self.cache.borrow_mut().insert((level, index), hash);
        Ok(hash)
    }
}
