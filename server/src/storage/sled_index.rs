//! The embedded indexes: one sled tree in `DATA_DIR/index`, written by the sequencer in
//! one atomic batch per log batch, and made durable at most once a second (or on demand):
//! they are derived from the log, so after a crash they are caught up from the log's tail.
//!
//! | key | value |
//! |---|---|
//! | `H` ‖ leaf hash | index (u64 BE) |
//! | `E` ‖ dedupe key (`record::dedupe_key`) | index (u64 BE) |
//! | `F` ‖ index (u64 BE) | the entry's signer identities (JSON list of strings) |
//! | `P` ‖ policy name ‖ 0x00 ‖ version (u64 BE) | index (u64 BE) of that policy version |
//! | `B` ‖ list name ([`Posting::prefix`]) ‖ first index (u64 BE) | a block of the list |
//! | `Mindexed` | u64 BE: entries `0..n` are indexed |
//!
//! A posting list is stored as blocks of up to [`BLOCK`] indexes: the key names the
//! block's first index, the value holds the gaps between consecutive indexes as LEB128
//! varints (the first gap, from the key's index, is 0). A list of a million entries is
//! four thousand keys, a seek reads one or two blocks, and appending rewrites only the
//! list's last block. `Mindexed` is written in the same atomic batch as the entries it
//! counts, so after a crash the indexes are exactly the first `n` entries' for some `n`.

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use evident_core::Hash;

use super::{Census, IndexStore, Indexed, Posting, StoreError};

/// Indexes per posting-list block.
pub const BLOCK: usize = 64;
/// sled's page cache when none is configured.
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

const BY_LEAF_HASH: u8 = b'H';
const BY_CONTENT: u8 = b'E';
const SIGNERS: u8 = b'F';
const BY_POLICY: u8 = b'P';
const BLOCKS: u8 = b'B';
const META_INDEXED: &[u8] = b"Mindexed";

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

fn hash_key(prefix: u8, hash: &Hash) -> [u8; 33] {
    let mut k = [prefix; 33];
    k[1..].copy_from_slice(hash.as_bytes());
    k
}

fn signers_key(index: u64) -> [u8; 9] {
    let mut k = [SIGNERS; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn policy_key(name: &str, version: u64) -> Vec<u8> {
    let mut k = vec![BY_POLICY];
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn block_key(list: &[u8], first: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + list.len() + 8);
    k.push(BLOCKS);
    k.extend_from_slice(list);
    k.extend_from_slice(&first.to_be_bytes());
    k
}

fn decode_index(bytes: &[u8]) -> Result<u64, StoreError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("index value of {} bytes", bytes.len())))?;
    Ok(u64::from_be_bytes(raw))
}

/// The first index a block key names.
fn block_first(key: &[u8]) -> Result<u64, StoreError> {
    let at = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::Corrupt("a posting block key is too short".into()))?;
    decode_index(&key[at..])
}

fn encode_block(first: u64, indexes: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(indexes.len() * 2);
    let mut previous = first;
    for &index in indexes {
        let mut gap = index - previous;
        loop {
            let byte = (gap & 0x7f) as u8;
            gap >>= 7;
            if gap == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        previous = index;
    }
    out
}

fn decode_block(first: u64, bytes: &[u8]) -> Result<Vec<u64>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("the posting block at {first} is malformed"));
    let mut out = Vec::new();
    let mut previous = first;
    let mut gap = 0u64;
    let mut shift = 0u32;
    for &byte in bytes {
        if shift > 63 {
            return Err(corrupt());
        }
        gap |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            previous = previous.checked_add(gap).ok_or_else(corrupt)?;
            if !out.is_empty() && gap == 0 {
                return Err(corrupt());
            }
            out.push(previous);
            gap = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift != 0 || out.first() != Some(&first) {
        return Err(corrupt());
    }
    Ok(out)
}

/// The sled-backed indexes.
#[derive(Debug)]
pub struct SledIndex {
    db: sled::Db,
    dir: PathBuf,
    synced: Mutex<SyncState>,
}

/// What [`SledIndex::sync`] has made durable so far.
#[derive(Debug)]
struct SyncState {
    /// sled's log file, kept open.
    log: Option<File>,
    /// Every file and folder (path, is a folder) under the store at the last sync.
    known: Vec<(PathBuf, bool)>,
    /// When the last sync ended.
    last: Instant,
}

impl SledIndex {
    /// Opens (or creates) the indexes in `dir` with a page cache of `cache_bytes`. sled's
    /// resident memory grows to a few times its cache while it writes: this is what bounds
    /// the indexes' memory.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledIndex, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            // Synced by `sync`, from the sequencer, at most once a second.
            .flush_every_ms(None)
            .open()
            .map_err(sled_err("opening the indexes"))?;
        if let Some(parent) = dir.parent() {
            File::open(parent)
                .and_then(|f| f.sync_all())
                .map_err(|source| StoreError::Io {
                    op: "fsync",
                    path: parent.to_owned(),
                    source,
                })?;
        }
        Ok(SledIndex {
            db,
            dir: dir.to_owned(),
            synced: Mutex::new(SyncState {
                log: None,
                known: Vec::new(),
                last: Instant::now(),
            }),
        })
    }

    /// Syncs if the last sync is older than `every`.
    pub fn sync_if_older(&self, every: Duration) -> Result<(), StoreError> {
        let due = self
            .synced
            .lock()
            .map(|s| s.last.elapsed() >= every)
            .unwrap_or(true);
        if due { self.sync() } else { Ok(()) }
    }

    fn lookup(&self, prefix: u8, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.db
            .get(hash_key(prefix, hash))
            .map_err(sled_err("reading an index"))?
            .map(|v| decode_index(&v))
            .transpose()
    }

    /// The last block of a list: its key's first index and its indexes.
    fn last_block(&self, list: &[u8]) -> Result<Option<(u64, Vec<u64>)>, StoreError> {
        let last = self
            .db
            .range(block_key(list, 0)..=block_key(list, u64::MAX))
            .next_back()
            .transpose()
            .map_err(sled_err("reading a posting list"))?;
        match last {
            None => Ok(None),
            Some((key, value)) => {
                let first = block_first(&key)?;
                Ok(Some((first, decode_block(first, &value)?)))
            }
        }
    }

    /// One step of a seek: the block at or before `at` (`before`) or after it.
    fn block_near(
        &self,
        list: &[u8],
        at: u64,
        before: bool,
    ) -> Result<Option<(u64, Vec<u64>)>, StoreError> {
        let item = if before {
            self.db
                .range(block_key(list, 0)..=block_key(list, at))
                .next_back()
        } else {
            self.db
                .range((
                    Bound::Excluded(block_key(list, at)),
                    Bound::Included(block_key(list, u64::MAX)),
                ))
                .next()
        };
        match item
            .transpose()
            .map_err(sled_err("reading a posting list"))?
        {
            None => Ok(None),
            Some((key, value)) => {
                let first = block_first(&key)?;
                Ok(Some((first, decode_block(first, &value)?)))
            }
        }
    }

    fn sync_files(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err("flushing the indexes"))?;
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
        // sled writes snapshots and blobs as new files and never rewrites them in place:
        // each new file, and the folders when the set of files changed, are synced once.
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
        state.last = Instant::now();
        Ok(())
    }
}

impl IndexStore for SledIndex {
    fn indexed(&self) -> Result<u64, StoreError> {
        self.db
            .get(META_INDEXED)
            .map_err(sled_err("reading the indexes' size"))?
            .map_or(Ok(0), |v| decode_index(&v))
    }

    fn add(&self, entries: &[Indexed]) -> Result<(), StoreError> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let expected = self.indexed()?;
        for (n, entry) in entries.iter().enumerate() {
            if entry.index != expected + n as u64 {
                return Err(StoreError::Corrupt(format!(
                    "indexing entry {} where entry {} comes next",
                    entry.index,
                    expected + n as u64
                )));
            }
        }
        let mut batch = sled::Batch::default();
        let mut lists: std::collections::BTreeMap<Vec<u8>, Vec<u64>> = Default::default();
        for entry in entries {
            let at = entry.index.to_be_bytes();
            batch.insert(&hash_key(BY_LEAF_HASH, &entry.leaf_hash)[..], &at);
            batch.insert(&hash_key(BY_CONTENT, &entry.dedupe_key)[..], &at);
            batch.insert(
                &signers_key(entry.index),
                serde_json::to_vec(&entry.facts.signers).expect("strings serialize"),
            );
            if let Some((name, version)) = &entry.facts.policy {
                if !name.contains('\0') {
                    batch.insert(policy_key(name, *version), &at);
                }
            }
            for posting in entry.postings() {
                if let Some(list) = posting.prefix() {
                    lists.entry(list).or_default().push(entry.index);
                }
            }
        }
        for (list, new) in lists {
            let (mut first, mut block) = match self.last_block(&list)? {
                Some((first, block)) if block.len() < BLOCK => (first, block),
                _ => (new[0], Vec::new()),
            };
            for index in new {
                if block.len() == BLOCK {
                    batch.insert(block_key(&list, first), encode_block(first, &block));
                    first = index;
                    block.clear();
                }
                block.push(index);
            }
            batch.insert(block_key(&list, first), encode_block(first, &block));
        }
        batch.insert(META_INDEXED, &(last.index + 1).to_be_bytes());
        self.db
            .apply_batch(batch)
            .map_err(sled_err("writing the indexes"))
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.sync_files()
    }

    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.lookup(BY_LEAF_HASH, leaf_hash)
    }

    fn index_of_content(&self, dedupe_key: &Hash) -> Result<Option<u64>, StoreError> {
        self.lookup(BY_CONTENT, dedupe_key)
    }

    fn seek(
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
        let Some(list) = posting.prefix() else {
            return Ok(None);
        };
        if forward {
            let first = from.max(lo);
            // The block that may hold `first`, then the one after it.
            if let Some((_, block)) = self.block_near(&list, first, true)? {
                if let Some(&found) = block.iter().find(|&&i| i >= first) {
                    return Ok((found < hi).then_some(found));
                }
            }
            Ok(self
                .block_near(&list, first, false)?
                .and_then(|(start, _)| (start < hi).then_some(start)))
        } else {
            let last = from.min(hi - 1);
            Ok(self
                .block_near(&list, last, true)?
                .and_then(|(_, block)| block.into_iter().rev().find(|&i| i <= last))
                .filter(|&found| found >= lo))
        }
    }

    fn signers_of(&self, index: u64) -> Result<Option<Vec<String>>, StoreError> {
        let Some(value) = self
            .db
            .get(signers_key(index))
            .map_err(sled_err("reading an index"))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&value).map(Some).map_err(|_| {
            StoreError::Corrupt(format!("the signer index of entry {index} is malformed"))
        })
    }

    fn policies(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
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

    fn check(&self, entry: &Indexed) -> Result<Option<String>, StoreError> {
        let index = entry.index;
        if self.index_of_leaf(&entry.leaf_hash)? != Some(index) {
            return Ok(Some("its leaf-hash look-up is missing or wrong".into()));
        }
        if self.index_of_content(&entry.dedupe_key)? != Some(index) {
            return Ok(Some("its dedupe look-up is missing or wrong".into()));
        }
        if self.signers_of(index)?.as_ref() != Some(&entry.facts.signers) {
            return Ok(Some("its signer record is missing or wrong".into()));
        }
        if let Some((name, version)) = &entry.facts.policy {
            let stored = self
                .db
                .get(policy_key(name, *version))
                .map_err(sled_err("reading the policy index"))?;
            if stored.as_deref() != Some(&index.to_be_bytes()[..]) && !name.contains('\0') {
                return Ok(Some(format!(
                    "its policy version look-up ({name} version {version}) is missing or wrong"
                )));
            }
        }
        for posting in entry.postings() {
            if self.seek(&posting, index, true, index, index + 1)? != Some(index) {
                return Ok(Some(format!(
                    "it is missing from the posting list {posting:?}"
                )));
            }
        }
        Ok(None)
    }

    fn census(&self) -> Result<Census, StoreError> {
        let count = |prefix: u8| -> Result<u64, StoreError> {
            let mut n = 0;
            for item in self.db.scan_prefix([prefix]) {
                item.map_err(sled_err("reading an index"))?;
                n += 1;
            }
            Ok(n)
        };
        let mut postings = 0;
        for item in self.db.scan_prefix([BLOCKS]) {
            let (key, value) = item.map_err(sled_err("reading a posting list"))?;
            let first = block_first(&key)?;
            postings += decode_block(first, &value)?.len() as u64;
        }
        Ok(Census {
            leaf_hashes: count(BY_LEAF_HASH)?,
            dedupe_keys: count(BY_CONTENT)?,
            postings,
            signer_records: count(SIGNERS)?,
            policy_versions: count(BY_POLICY)?,
        })
    }

    fn clear(&self) -> Result<(), StoreError> {
        // The count goes first, durably: a crash while clearing leaves indexes that claim
        // nothing, never a count over half-removed lists.
        self.db
            .remove(META_INDEXED)
            .map_err(sled_err("clearing the indexes"))?;
        self.sync()?;
        self.db.clear().map_err(sled_err("clearing the indexes"))?;
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_core::audit::Facts;
    use evident_core::record::EntryKind;

    fn entry(index: u64, signer: &str) -> Indexed {
        Indexed {
            index,
            leaf_hash: Hash::sha256(&index.to_be_bytes()),
            dedupe_key: Hash::sha256(&(index + 1_000_000).to_be_bytes()),
            kind: EntryKind::Attestation,
            facts: Facts {
                signers: vec![signer.to_owned()],
                ..Facts::default()
            },
        }
    }

    #[test]
    fn blocks_round_trip() {
        let list = [5, 6, 200, 70_000, 1 << 40];
        let bytes = encode_block(5, &list);
        assert_eq!(decode_block(5, &bytes).unwrap(), list);
        assert!(decode_block(5, &[1]).is_err(), "the first gap must be 0");
        assert!(
            decode_block(5, &[0, 0]).is_err(),
            "indexes strictly increase"
        );
        assert!(decode_block(5, &[0x80]).is_err(), "a truncated varint");
    }

    /// Seeks over lists of several blocks agree with a plain scan of the same list.
    #[test]
    fn seeks_agree_with_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let index = SledIndex::open(&dir.path().join("index"), 8 << 20).unwrap();
        // Entry i is signed by "a" when i % 3 == 0, else by "b"; added in uneven batches.
        let entries: Vec<Indexed> = (0..2_000)
            .map(|i| entry(i, if i % 3 == 0 { "a" } else { "b" }))
            .collect();
        for chunk in entries.chunks(97) {
            index.add(chunk).unwrap();
        }
        assert_eq!(index.indexed().unwrap(), 2_000);
        let a = Posting::Signer("a".into());
        let on_a: Vec<u64> = (0..2_000).filter(|i| i % 3 == 0).collect();
        for (from, lo, hi) in [
            (0, 0, 2_000),
            (1, 0, 2_000),
            (800, 10, 900),
            (1_999, 0, 2_000),
            (5, 7, 9),
        ] {
            let forward = on_a.iter().copied().find(|&i| i >= from.max(lo) && i < hi);
            assert_eq!(
                index.seek(&a, from, true, lo, hi).unwrap(),
                forward,
                "{from} {lo} {hi}"
            );
            let backward = on_a
                .iter()
                .rev()
                .copied()
                .find(|&i| i <= from.min(hi - 1) && i >= lo);
            assert_eq!(
                index.seek(&a, from, false, lo, hi).unwrap(),
                backward,
                "{from} {lo} {hi}"
            );
        }
        for e in &entries {
            assert_eq!(index.check(e).unwrap(), None);
        }
        let census = index.census().unwrap();
        assert_eq!(
            census.postings, 4_000,
            "one kind and one signer list per entry"
        );
        assert_eq!(census.leaf_hashes, 2_000);
        // Out of order is refused and changes nothing.
        assert!(index.add(&[entry(5, "a")]).is_err());
        assert_eq!(index.indexed().unwrap(), 2_000);
    }
}
