//! The log on disk: one sled tree, written only by the sequencer.
//!
//! Keys are prefixed by what they hold, so that a whole batch — leaves, subtree hashes and
//! indexes — is one atomic `apply_batch`:
//!
//! | key | value |
//! |---|---|
//! | `L` ‖ index (u64 BE) | leaf record bytes |
//! | `N` ‖ level (u8) ‖ index (u64 BE) | hash of the complete subtree `(level, index)` |
//! | `H` ‖ leaf hash | index (u64 BE) |
//! | `E` ‖ content digest (SHA-256 of the PAE) | index (u64 BE) |
//! | `R` ‖ index (u64 BE) | empty: entry `index` is a registry entry |
//! | `P` ‖ policy name ‖ 0x00 ‖ version (u64 BE) | index (u64 BE) of that policy version |
//! | `S` ‖ algorithm ‖ 0x00 ‖ digest ‖ 0x00 ‖ index (u64 BE) | empty: attestation `index` is about that subject |
//! | `V` ‖ release name ‖ 0x00 ‖ version ‖ 0x00 ‖ index (u64 BE) | empty: attestation `index` declares that release |
//! | `M` ‖ `checkpoint` | the latest signed checkpoint (note text) |
//! | `M` ‖ `genesis` | the genesis administrators and threshold (JSON), fixed at first start |
//!
//! Durability: sled 0.34's `flush()` ends in `sync_file_range` on Linux, which does not
//! persist file metadata or survive power loss. [`Store::append`] therefore follows it with
//! `fdatasync` of sled's log file, and `fsync` of every new file and of the folders whenever
//! the set of files changed.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use evident_core::Hash;
use evident_core::merkle::{Node, SubtreeSource};
use evident_core::record::EntryKind;

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
    /// A file operation (fsync) failed.
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
}

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

const LEAF: u8 = b'L';
const NODE: u8 = b'N';
const BY_LEAF_HASH: u8 = b'H';
const BY_CONTENT: u8 = b'E';
const BY_KIND_REGISTRY: u8 = b'R';
const BY_POLICY: u8 = b'P';
const BY_SUBJECT: u8 = b'S';
const BY_RELEASE: u8 = b'V';
const META_CHECKPOINT: &[u8] = b"Mcheckpoint";
const META_GENESIS: &[u8] = b"Mgenesis";

fn leaf_key(index: u64) -> [u8; 9] {
    let mut k = [LEAF; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut k = [NODE; 10];
    k[1] = u8::try_from(level).expect("a tree of at most 2^64 leaves has fewer than 256 levels");
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn kind_key(prefix: u8, index: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn hash_key(prefix: u8, hash: &Hash) -> [u8; 33] {
    let mut k = [prefix; 33];
    k[1..].copy_from_slice(hash.as_bytes());
    k
}

fn decode_index(bytes: &[u8]) -> Result<u64, StoreError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("index value of {} bytes", bytes.len())))?;
    Ok(u64::from_be_bytes(raw))
}

/// One entry for [`Store::append`].
#[derive(Debug)]
pub struct NewEntry {
    /// The entry's index.
    pub index: u64,
    /// Its encoded leaf record.
    pub record: Vec<u8>,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// The digest of its signed content (`record::content_digest`).
    pub content_digest: Hash,
    /// Secondary index keys (and values) of the entry, from [`secondary_keys`].
    pub secondary: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What an entry adds to the secondary indexes: registry entries to `R`, policy versions to
/// `P`, attestations to `S` (one key per subject digest).
#[derive(Debug, Clone, Default)]
pub struct Indexed {
    /// `(algorithm, value)` of each subject digest of an attestation.
    pub subjects: Vec<(String, String)>,
    /// `(name, version)` of a policy entry.
    pub policy: Option<(String, u64)>,
    /// `(name, version)` a release v0.1 attestation declares.
    pub release: Option<(String, String)>,
}

/// The secondary index keys of entry `index` of `kind`.
pub fn secondary_keys(index: u64, kind: EntryKind, indexed: &Indexed) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut keys = Vec::new();
    if kind == EntryKind::Registry {
        keys.push((kind_key(BY_KIND_REGISTRY, index).to_vec(), Vec::new()));
    }
    if let Some((name, version)) = &indexed.policy {
        keys.push((policy_key(name, *version), index.to_be_bytes().to_vec()));
    }
    if let Some((name, version)) = &indexed.release {
        let mut k = release_prefix(name, version);
        k.extend_from_slice(&index.to_be_bytes());
        keys.push((k, Vec::new()));
    }
    for (alg, value) in &indexed.subjects {
        let mut k = subject_prefix(alg, value);
        k.extend_from_slice(&index.to_be_bytes());
        keys.push((k, Vec::new()));
    }
    keys
}

fn policy_key(name: &str, version: u64) -> Vec<u8> {
    let mut k = vec![BY_POLICY];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn release_prefix(name: &str, version: &str) -> Vec<u8> {
    let mut k = vec![BY_RELEASE];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(version.as_bytes());
    k.push(0);
    k
}

fn subject_prefix(alg: &str, value: &str) -> Vec<u8> {
    let mut k = vec![BY_SUBJECT];
    k.extend_from_slice(alg.as_bytes());
    k.push(0);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

/// The sled-backed log store.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    /// What the last sync covered.
    synced: Mutex<SyncState>,
}

impl Store {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            // The sequencer flushes and fsyncs every batch itself.
            .flush_every_ms(None)
            .open()
            .map_err(sled_err("opening the sled store"))?;
        // Make the store's own folder entry durable in the data folder.
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|source| StoreError::Io {
                op: "fsync",
                path: dir.to_owned(),
                source,
            })?;
        Ok(Store {
            db,
            dir: dir.join("db"),
            synced: Mutex::new(SyncState::default()),
        })
    }

    /// Number of entries stored: one more than the last leaf's index.
    pub fn size(&self) -> Result<u64, StoreError> {
        let last = self
            .db
            .scan_prefix([LEAF])
            .next_back()
            .transpose()
            .map_err(sled_err("reading the last entry"))?;
        match last {
            None => Ok(0),
            Some((key, _)) => Ok(decode_index(&key[1..])? + 1),
        }
    }

    /// The leaf record bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(leaf_key(index))
            .map_err(sled_err("reading an entry"))?
            .map(|v| v.to_vec()))
    }

    /// The index of the entry with this leaf hash.
    pub fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.lookup(BY_LEAF_HASH, leaf_hash)
    }

    /// The index of the entry with this content digest.
    pub fn index_of_content(&self, digest: &Hash) -> Result<Option<u64>, StoreError> {
        self.lookup(BY_CONTENT, digest)
    }

    fn lookup(&self, prefix: u8, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.db
            .get(hash_key(prefix, hash))
            .map_err(sled_err("reading an index"))?
            .map(|v| decode_index(&v))
            .transpose()
    }

    /// The latest signed checkpoint, if one was ever stored.
    pub fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.db
            .get(META_CHECKPOINT)
            .map_err(sled_err("reading the checkpoint"))?
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| StoreError::Corrupt("stored checkpoint is not UTF-8".into()))
            })
            .transpose()
    }

    /// The indexes of the registry entries in `start..end`, in order.
    pub fn registry_entries(&self, start: u64, end: u64) -> Result<Vec<u64>, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        self.db
            .range(kind_key(BY_KIND_REGISTRY, start)..kind_key(BY_KIND_REGISTRY, end))
            .map(|item| {
                let (key, _) = item.map_err(sled_err("reading the registry index"))?;
                decode_index(&key[1..])
            })
            .collect()
    }

    /// Whether a secondary index key is present (for the start-up check).
    pub fn has_key(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.db
            .contains_key(key)
            .map_err(sled_err("reading an index"))
    }

    /// Every policy version: `(name, version, index)`, by name then version.
    pub fn policies(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        self.db
            .scan_prefix([BY_POLICY])
            .map(|item| {
                let (key, value) = item.map_err(sled_err("reading the policy index"))?;
                let body = &key[1..];
                let corrupt = || StoreError::Corrupt("a policy index key is malformed".into());
                let split = body.len().checked_sub(9).ok_or_else(corrupt)?;
                if body[split] != 0 {
                    return Err(corrupt());
                }
                let name = String::from_utf8(body[..split].to_vec()).map_err(|_| corrupt())?;
                let version = decode_index(&body[split + 1..])?;
                Ok((name, version, decode_index(&value)?))
            })
            .collect()
    }

    /// Indexes of the release attestations that declare `name@version`, below `end`.
    pub fn releases(&self, name: &str, version: &str, end: u64) -> Result<Vec<u64>, StoreError> {
        let prefix = release_prefix(name, version);
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (key, _) = item.map_err(sled_err("reading the release index"))?;
            let index = decode_index(&key[prefix.len()..])?;
            if index < end {
                out.push(index);
            }
        }
        Ok(out)
    }

    /// Indexes of the attestations with subject digest `alg:value`, below `end`, in order.
    pub fn entries_about(&self, alg: &str, value: &str, end: u64) -> Result<Vec<u64>, StoreError> {
        let prefix = subject_prefix(alg, value);
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (key, _) = item.map_err(sled_err("reading the subject index"))?;
            let index = decode_index(&key[prefix.len()..])?;
            if index >= end {
                break;
            }
            out.push(index);
        }
        Ok(out)
    }

    /// The genesis recorded at first start (JSON), if any.
    pub fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(META_GENESIS)
            .map_err(sled_err("reading the genesis"))?
            .map(|v| v.to_vec()))
    }

    /// Records the genesis and makes it durable.
    pub fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError> {
        self.db
            .insert(META_GENESIS, json)
            .map_err(sled_err("writing the genesis"))?;
        self.sync()
    }

    /// Stores a signed checkpoint. Not synced by itself: it becomes durable with the next
    /// [`Store::append`] or [`Store::sync`]; a checkpoint lost in a crash is re-signed from
    /// the durable entries at start.
    pub fn set_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.db
            .insert(META_CHECKPOINT, note.as_bytes())
            .map_err(sled_err("writing the checkpoint"))?;
        Ok(())
    }

    /// Writes entries, their tree nodes and indexes in one atomic batch, then makes them
    /// durable. When this returns `Ok`, the entries survive a crash or power loss.
    pub fn append(&self, entries: &[NewEntry], nodes: &[Node]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for e in entries {
            batch.insert(&leaf_key(e.index), e.record.as_slice());
            let index = e.index.to_be_bytes();
            batch.insert(&hash_key(BY_LEAF_HASH, &e.leaf_hash)[..], &index);
            batch.insert(&hash_key(BY_CONTENT, &e.content_digest)[..], &index);
            for (key, value) in &e.secondary {
                batch.insert(key.as_slice(), value.as_slice());
            }
        }
        for n in nodes {
            batch.insert(&node_key(n.level, n.index), n.hash.as_bytes());
        }
        self.db
            .apply_batch(batch)
            .map_err(sled_err("writing a batch"))?;
        self.sync()
    }

    /// `flush()`, then `fdatasync` of sled's log file, then `fsync` of every file and folder
    /// that appeared since the last sync (sled writes snapshots and blobs as new files and
    /// never rewrites them in place).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err("flushing"))?;
        let io = |op: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { op, path, source }
        };
        let mut state = self
            .synced
            .lock()
            .map_err(|_| StoreError::Corrupt("fsync state poisoned by a panic".into()))?;
        let log_file = self.dir.join("db");
        if state.log.is_none() {
            state.log = Some(File::open(&log_file).map_err(io("opening", &log_file))?);
        }
        state
            .log
            .as_ref()
            .expect("opened just above")
            .sync_data()
            .map_err(io("fdatasync", &log_file))?;
        let mut listing = Vec::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(io("listing", &dir))? {
                let entry = entry.map_err(io("listing", &dir))?;
                let is_dir = entry.file_type().map_err(io("listing", &dir))?.is_dir();
                if is_dir {
                    dirs.push(entry.path());
                }
                listing.push((entry.path(), is_dir));
            }
        }
        listing.sort();
        if listing != state.known {
            for (path, is_dir) in &listing {
                if !is_dir && !state.known.contains(&(path.clone(), false)) {
                    match File::open(path) {
                        Ok(f) => f.sync_all().map_err(io("fsync", path))?,
                        // sled removes old snapshot files as it goes.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io("opening", path)(e)),
                    }
                }
            }
            let folders = std::iter::once(self.dir.clone())
                .chain(listing.iter().filter(|(_, d)| *d).map(|(p, _)| p.clone()));
            for dir in folders {
                File::open(&dir)
                    .and_then(|f| f.sync_all())
                    .map_err(io("fsync", &dir))?;
            }
            state.known = listing;
        }
        Ok(())
    }
}

/// What [`Store::sync`] has made durable so far.
#[derive(Debug, Default)]
struct SyncState {
    /// sled's log file, kept open.
    log: Option<File>,
    /// Every file and folder (path, is a folder) under the store at the last sync.
    known: Vec<(PathBuf, bool)>,
}

impl SubtreeSource for Store {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let value = self
            .db
            .get(node_key(level, index))
            .map_err(sled_err("reading a tree node"))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "tree node (level {level}, index {index}) is missing"
                ))
            })?;
        Hash::from_slice(&value).map_err(|e| {
            StoreError::Corrupt(format!("tree node (level {level}, index {index}): {e}"))
        })
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
