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
//! | `E` ‖ dedupe key (`record::dedupe_key`: the PAE's SHA-256 and the signers' keys) | index (u64 BE) |
//! | `P` ‖ policy name ‖ 0x00 ‖ version (u64 BE) | index (u64 BE) of that policy version |
//! | `F` ‖ index (u64 BE) | the entry's signer identities (JSON list of strings) |
//! | `K` ‖ kind code ‖ index | empty: entry `index` is of that kind |
//! | `T` ‖ predicate type ‖ 0x00 ‖ index | empty: attestation of that predicate type |
//! | `I` ‖ identity ‖ 0x00 ‖ index | empty: signed by that identity (administrators for registry and policy entries) |
//! | `O` ‖ role ‖ 0x00 ‖ index | empty: signed by a key with that role at the entry's time |
//! | `S` ‖ algorithm ‖ 0x00 ‖ digest ‖ 0x00 ‖ index | empty: attestation about that subject digest |
//! | `A` ‖ subject name ‖ 0x00 ‖ index | empty: attestation with a subject of that name |
//! | `V` ‖ release name ‖ 0x00 ‖ version ‖ 0x00 ‖ index | empty: release attestation of that release |
//! | `W` ‖ release name ‖ 0x00 ‖ index | empty: release attestation of that name, any version |
//! | `M` ‖ `checkpoint` | the latest signed checkpoint (note text) |
//! | `M` ‖ `genesis` | the genesis administrators and threshold (JSON), fixed at first start |
//!
//! Every key but `L`, `N` and `M` is derived from the entries (`evidentd reindex` rebuilds
//! them). The posting lists (`K` to `W`) end in the entry's index, so each list reads in log
//! order and [`Store::seek`] jumps to any index.
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
use evident_core::audit::Facts;
use evident_core::merkle::{Node, SubtreeSource};
use evident_core::record::EntryKind;

pub use crate::storage::StoreError;

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

const LEAF: u8 = b'L';
const NODE: u8 = b'N';
const BY_LEAF_HASH: u8 = b'H';
const BY_CONTENT: u8 = b'E';
const BY_KIND: u8 = b'K';
const BY_PREDICATE_TYPE: u8 = b'T';
const BY_SIGNER: u8 = b'I';
const BY_ROLE: u8 = b'O';
const BY_POLICY: u8 = b'P';
const BY_SUBJECT: u8 = b'S';
const BY_SUBJECT_NAME: u8 = b'A';
const BY_RELEASE: u8 = b'V';
const BY_RELEASE_NAME: u8 = b'W';
const SIGNERS: u8 = b'F';
/// The registry index of stores written before `K`; removed by `reindex`.
const LEGACY_REGISTRY: u8 = b'R';
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
    /// Its dedupe key: signed content and signer keys (`record::dedupe_key`).
    pub content_digest: Hash,
    /// Secondary index keys (and values) of the entry, from [`secondary_keys`].
    pub secondary: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The secondary index keys (and values) of entry `index` of `kind` with these facts.
///
/// Posting lists (`K`, `T`, `I`, `O`, `S`, `A`, `V`, `W`) end in the entry's index, so a
/// prefix scan reads them in log order and a seek jumps to any index. A string holding a
/// NUL byte is not indexed: NUL separates the parts of a key.
pub fn secondary_keys(index: u64, kind: EntryKind, facts: &Facts) -> Vec<(Vec<u8>, Vec<u8>)> {
    let at = index.to_be_bytes();
    let mut keys = Vec::new();
    let mut posting = |posting: Posting| {
        if let Some(mut k) = posting.prefix() {
            k.extend_from_slice(&at);
            keys.push((k, Vec::new()));
        }
    };
    posting(Posting::Kind(kind));
    if let Some(p) = &facts.predicate_type {
        posting(Posting::PredicateType(p.clone()));
    }
    for signer in &facts.signers {
        posting(Posting::Signer(signer.clone()));
    }
    for role in &facts.roles {
        posting(Posting::Role(role.clone()));
    }
    for (alg, value) in &facts.subjects {
        posting(Posting::Subject(alg.clone(), value.clone()));
    }
    for name in &facts.subject_names {
        posting(Posting::SubjectName(name.clone()));
    }
    if let Some((name, version)) = &facts.release {
        posting(Posting::Release(name.clone(), Some(version.clone())));
        posting(Posting::Release(name.clone(), None));
    }
    if let Some((name, version)) = &facts.policy {
        if !name.contains('\0') {
            keys.push((policy_key(name, *version), at.to_vec()));
        }
    }
    keys.push((
        kind_key(SIGNERS, index).to_vec(),
        serde_json::to_vec(&facts.signers).expect("strings serialize"),
    ));
    keys
}

/// The keys that find entry `index` by its leaf hash and by its dedupe key.
pub fn lookup_keys(index: u64, leaf_hash: &Hash, content_digest: &Hash) -> [(Vec<u8>, Vec<u8>); 2] {
    let at = index.to_be_bytes().to_vec();
    [
        (hash_key(BY_LEAF_HASH, leaf_hash).to_vec(), at.clone()),
        (hash_key(BY_CONTENT, content_digest).to_vec(), at),
    ]
}

/// One posting list: the entries that have one property, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The key prefix of the list (followed by the index in each key); `None` when a part
    /// holds a NUL byte, which no indexed value has.
    pub fn prefix(&self) -> Option<Vec<u8>> {
        fn text(tag: u8, parts: &[&str]) -> Option<Vec<u8>> {
            let mut k = vec![tag];
            for part in parts {
                if part.contains('\0') {
                    return None;
                }
                k.extend_from_slice(part.as_bytes());
                k.push(0);
            }
            Some(k)
        }
        match self {
            Posting::All => Some(vec![LEAF]),
            Posting::Kind(kind) => Some(vec![BY_KIND, kind.code()]),
            Posting::PredicateType(p) => text(BY_PREDICATE_TYPE, &[p]),
            Posting::Signer(s) => text(BY_SIGNER, &[s]),
            Posting::Role(r) => text(BY_ROLE, &[r]),
            Posting::Subject(alg, value) => text(BY_SUBJECT, &[alg, value]),
            Posting::SubjectName(n) => text(BY_SUBJECT_NAME, &[n]),
            Posting::Release(n, Some(v)) => text(BY_RELEASE, &[n, v]),
            Posting::Release(n, None) => text(BY_RELEASE_NAME, &[n]),
        }
    }
}

/// Key prefixes of everything derived from the entries (what `reindex` rebuilds).
pub const DERIVED_PREFIXES: &[u8] = &[
    BY_LEAF_HASH,
    BY_CONTENT,
    BY_KIND,
    BY_PREDICATE_TYPE,
    BY_SIGNER,
    BY_ROLE,
    BY_SUBJECT,
    BY_SUBJECT_NAME,
    BY_RELEASE,
    BY_RELEASE_NAME,
    BY_POLICY,
    SIGNERS,
    LEGACY_REGISTRY,
];

fn policy_key(name: &str, version: u64) -> Vec<u8> {
    let mut k = vec![BY_POLICY];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// sled's own default page cache.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// The sled-backed log store.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    /// What the last sync covered.
    synced: Mutex<SyncState>,
}

impl Store {
    /// Opens (or creates) the store under `dir` with sled's default page cache (1 GiB).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store under `dir` with a page cache of `cache_bytes`. sled's
    /// resident memory grows to several times its cache while it writes, so this is what
    /// bounds the server's memory.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
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

    /// The index of the entry with this dedupe key (`record::dedupe_key`).
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
        self.postings(&Posting::Kind(EntryKind::Registry), start, end)
    }

    /// Every index in `start..end` on a posting list, in order.
    pub fn postings(
        &self,
        posting: &Posting,
        start: u64,
        end: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let mut at = start;
        while let Some(index) = self.seek(posting, at, true, start, end)? {
            out.push(index);
            at = index + 1;
        }
        Ok(out)
    }

    /// On a posting list, the first index at or after `from` (`forward`), or the last at or
    /// before it, within `lo..hi`. One sled range read.
    pub fn seek(
        &self,
        posting: &Posting,
        from: u64,
        forward: bool,
        lo: u64,
        hi: u64,
    ) -> Result<Option<u64>, StoreError> {
        if lo >= hi || (forward && from >= hi) || (!forward && from < lo) {
            return Ok(None);
        }
        let Some(prefix) = posting.prefix() else {
            return Ok(None);
        };
        let key = |index: u64| {
            let mut k = prefix.clone();
            k.extend_from_slice(&index.to_be_bytes());
            k
        };
        let (first, last) = if forward {
            (from.max(lo), hi - 1)
        } else {
            (lo, from.min(hi - 1))
        };
        let mut range = self.db.range(key(first)..=key(last));
        loop {
            let item = if forward {
                range.next()
            } else {
                range.next_back()
            };
            let Some(item) = item else {
                return Ok(None);
            };
            let (k, _) = item.map_err(sled_err("reading an index"))?;
            // Keys of a longer value that shares the prefix are not on this list.
            if k.len() == prefix.len() + 8 {
                return decode_index(&k[prefix.len()..]).map(Some);
            }
        }
    }

    /// The signer identities recorded for entry `index` when it was indexed.
    pub fn signers_of(&self, index: u64) -> Result<Vec<String>, StoreError> {
        let value = self
            .db
            .get(kind_key(SIGNERS, index))
            .map_err(sled_err("reading an index"))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "entry {index} has no signer index (run `evidentd reindex`)"
                ))
            })?;
        serde_json::from_slice(&value).map_err(|_| {
            StoreError::Corrupt(format!("the signer index of entry {index} is malformed"))
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

    /// The number of keys under each derived prefix (for `verify-store`).
    pub fn count_prefix(&self, prefix: u8) -> Result<u64, StoreError> {
        let mut n = 0;
        for item in self.db.scan_prefix([prefix]) {
            item.map_err(sled_err("reading an index"))?;
            n += 1;
        }
        Ok(n)
    }

    /// The value stored under a key, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(key)
            .map_err(sled_err("reading an index"))?
            .map(|v| v.to_vec()))
    }

    /// Removes every key under the derived prefixes (for `reindex`); not synced.
    pub fn clear_derived(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        for &prefix in DERIVED_PREFIXES {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in self.db.scan_prefix([prefix]) {
                let (k, _) = item.map_err(sled_err("reading an index"))?;
                batch.remove(k);
                n += 1;
                if n % 100_000 == 0 {
                    self.db
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(sled_err("clearing an index"))?;
                }
            }
            self.db
                .apply_batch(batch)
                .map_err(sled_err("clearing an index"))?;
            removed += n;
        }
        Ok(removed)
    }

    /// Writes derived keys (for `reindex`); not synced.
    pub fn put_derived(&self, keys: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in keys {
            batch.insert(k.as_slice(), v.as_slice());
        }
        self.db
            .apply_batch(batch)
            .map_err(sled_err("writing an index"))
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
            for (key, value) in lookup_keys(e.index, &e.leaf_hash, &e.content_digest)
                .iter()
                .chain(&e.secondary)
            {
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
    /// never rewrites them in place). Its duration is `evident_fsync_seconds`.
    pub fn sync(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let synced = self.sync_files();
        if synced.is_ok() {
            crate::metrics::METRICS.fsync(started.elapsed());
        }
        synced
    }

    /// [`Store::sync`]'s work.
    fn sync_files(&self) -> Result<(), StoreError> {
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
