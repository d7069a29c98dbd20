//! The embedded indexes: sorted runs of fixed-size records in `DATA_DIR/indexes`, in the
//! manner of a log-structured merge tree, written off the sequencer's path.
//!
//! Every fact the indexes hold is a 24-byte record `(key, value)`: a 16-byte key whose
//! first byte says what it is, and a u64. Records sort by key, then value, so a posting
//! list is one contiguous range of records in index order.
//!
//! | key | value |
//! |---|---|
//! | `H` ‖ the leaf hash's first 15 bytes | the entry's index |
//! | `E` ‖ the dedupe key's first 15 bytes | the entry's index |
//! | `F` ‖ the entry's index (u64 BE) ‖ 7 zero bytes | the id of its signer set in the catalog |
//! | `L` ‖ the first 15 bytes of SHA-256 of the list's name ([`Posting::prefix`]) | an index on the list |
//!
//! The sequencer adds a batch's records to an in-memory table (a sorted set). When the
//! table covers [`FLUSH_ENTRIES`] entries or holds [`FLUSH_RECORDS`] records, it is frozen
//! and a background thread writes it as an immutable *run* file covering entries `lo..hi`,
//! synced and renamed into place, and merges runs of similar size, four at a time, so that
//! a look-up reads a bounded number of files (a few per factor of four in the log's size).
//! Runs partition the entries: each entry's records are in exactly one run or table.
//!
//! The list records hold truncated hashes, enough to find a list but not to commit to it;
//! the *key log* (`keys`) holds, for each batch added, every entry's verifiable-index keys
//! ([`evident_core::vindex::IndexKey::hash`], 32 bytes each, once per batch) so that the
//! server rebuilds the index commitment from it at start. It is appended as batches are
//! added and synced before any run that covers them is installed; at open it is cut back
//! to the runs' entries.
//!
//! The small, rarely written facts — the distinct signer sets and the policy versions —
//! live in the `catalog` file, loaded whole at open and synced before any run that refers
//! to it.
//!
//! Durability: the indexes are derived from the log. After a crash they hold exactly the
//! entries `0..n` of the runs written before it; the server indexes the rest from the
//! log's tail at start. Every 4 KiB block of a run carries a CRC-32 that is checked on
//! every read, and the run's fence table and trailer carry one checked at open, so a
//! flipped byte is an error, never a silently missing key. docs/FORMAT.md gives the
//! format byte by byte.
//!
//! Keys are truncated hashes: two distinct leaf hashes, dedupe keys or list names share a
//! key only by a 120-bit collision, which takes about 2^60 work to find for two values an
//! attacker chooses both of and 2^120 to match a given one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use evident_core::Hash;

use super::vfs::{OpenMode, Vfs, VfsFile};
use super::{
    Census, EntryKeys, IndexStore, Indexed, KeyBatch, Posting, StoreError, decode_key_body,
    key_frame,
};

/// Bytes in one block of a run.
pub const BLOCK_BYTES: usize = 4096;
/// Bytes in one record.
pub const RECORD_BYTES: usize = 24;
/// Records in one block at most: a 2-byte count, the records, and a 4-byte CRC at the end.
pub const BLOCK_RECORDS: usize = (BLOCK_BYTES - 2 - 4) / RECORD_BYTES;
/// The in-memory table is written out once it covers this many entries…
pub const FLUSH_ENTRIES: u64 = 8_192;
/// …or holds this many records.
pub const FLUSH_RECORDS: usize = 96 * 1024;
/// Tables waiting to be written beyond which `add` writes them itself.
const MAX_FROZEN: usize = 3;
/// Runs merged at once, and the size ratio between tiers.
pub const FANOUT: usize = 4;
/// Bytes at the end of a run after its fence table.
const TRAILER_BYTES: usize = 48;
const MAGIC: &[u8; 8] = b"EVIDRUN1";
const CATALOG: &str = "catalog";
/// The key log: every entry's verifiable-index keys in full, for rebuilding the index
/// commitment at start.
pub const KEY_LOG: &str = "keys";

const TAG_LEAF: u8 = b'H';
const TAG_CONTENT: u8 = b'E';
const TAG_SIGNERS: u8 = b'F';
const TAG_LIST: u8 = b'L';

/// One record: a key and a value, ordered by key then value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rec {
    key: [u8; 16],
    value: u64,
}

impl Rec {
    fn encode(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.key);
        out[16..24].copy_from_slice(&self.value.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Rec {
        let mut key = [0; 16];
        key.copy_from_slice(&bytes[..16]);
        let mut value = [0; 8];
        value.copy_from_slice(&bytes[16..24]);
        Rec {
            key,
            value: u64::from_be_bytes(value),
        }
    }
}

fn hash_key(tag: u8, hash: &Hash) -> [u8; 16] {
    let mut key = [tag; 16];
    key[1..].copy_from_slice(&hash.as_bytes()[..15]);
    key
}

fn signers_key(index: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[0] = TAG_SIGNERS;
    key[1..9].copy_from_slice(&index.to_be_bytes());
    key
}

fn list_key(posting: &Posting) -> Option<[u8; 16]> {
    let name = posting.prefix()?;
    let digest = Sha256::digest(&name);
    let mut key = [TAG_LIST; 16];
    key[1..].copy_from_slice(&digest[..15]);
    Some(key)
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn run_name(lo: u64, hi: u64) -> String {
    format!("run-{lo:020}-{hi:020}")
}

fn parse_run_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("run-")?;
    let (lo, hi) = rest.split_once('-')?;
    if lo.len() != 20 || hi.len() != 20 {
        return None;
    }
    Some((lo.parse().ok()?, hi.parse().ok()?))
}

// ---------------------------------------------------------------------------------------
// The catalog: signer sets and policy versions.

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum CatalogItem {
    Signers {
        set: u64,
        signers: Vec<String>,
    },
    Policy {
        policy: String,
        version: u64,
        index: u64,
    },
}

#[derive(Debug, Default)]
struct Catalog {
    sets: Vec<Vec<String>>,
    set_ids: HashMap<Vec<String>, u64>,
    policies: BTreeMap<(String, u64), u64>,
    /// Items made since open, in order, the first `written` of them in the file.
    items: Vec<CatalogItem>,
    written: usize,
}

impl Catalog {
    fn set_id(&mut self, signers: &[String]) -> u64 {
        if let Some(&id) = self.set_ids.get(signers) {
            return id;
        }
        let id = self.sets.len() as u64;
        self.sets.push(signers.to_vec());
        self.set_ids.insert(signers.to_vec(), id);
        self.items.push(CatalogItem::Signers {
            set: id,
            signers: signers.to_vec(),
        });
        id
    }

    fn add_policy(&mut self, name: &str, version: u64, index: u64) {
        let key = (name.to_owned(), version);
        if self.policies.get(&key) == Some(&index) {
            return;
        }
        self.policies.insert(key, index);
        self.items.push(CatalogItem::Policy {
            policy: name.to_owned(),
            version,
            index,
        });
    }
}

fn frame(item: &CatalogItem) -> Vec<u8> {
    let body = serde_json::to_vec(item).expect("catalog items serialize");
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads the catalog's complete frames; returns them and the length they span (a torn
/// or unreadable tail beyond it is dropped: the catalog is derived, like the runs).
fn read_catalog(file: &dyn VfsFile) -> io::Result<(Vec<CatalogItem>, u64)> {
    let len = file.byte_len()?;
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    let mut items = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let n = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(at + 8..at + 8 + n) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(item) = serde_json::from_slice(body) else {
            break;
        };
        items.push(item);
        at += 8 + n;
    }
    Ok((items, at as u64))
}

// ---------------------------------------------------------------------------------------
// The key log.

/// Reads the key log's whole, contiguous batches from entry 0; returns each batch's end
/// (the entry after it) and byte offset after it, and calls `visit` with each batch.
fn read_key_log(
    file: &dyn VfsFile,
    mut visit: impl FnMut(&KeyBatch) -> Result<(), StoreError>,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let len = file
        .byte_len()
        .map_err(|e| StoreError::Corrupt(format!("reading the index key log: {e}")))?;
    let mut ends = Vec::new();
    let mut offset = 0u64;
    let mut next = 0u64;
    let mut header = [0u8; 8];
    while offset + 8 <= len {
        if file.read_exact_at(&mut header, offset).is_err() {
            break;
        }
        let n = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
        if offset + 8 + n > len {
            break;
        }
        let mut body = vec![0u8; n as usize];
        if file.read_exact_at(&mut body, offset + 8).is_err() || crc32fast::hash(&body) != crc {
            break;
        }
        let Some(batch) = decode_key_body(&body) else {
            break;
        };
        if batch.first != next {
            break;
        }
        visit(&batch)?;
        next += batch.entries.len() as u64;
        offset += 8 + n;
        ends.push((next, offset));
    }
    Ok(ends)
}

// ---------------------------------------------------------------------------------------
// Runs.

/// An immutable run file covering entries `lo..hi`.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    file: Box<dyn VfsFile>,
    lo: u64,
    hi: u64,
    records: u64,
    /// The catalog's length in bytes when the run was written: the signer sets its
    /// records name are in that prefix.
    catalog_len: u64,
    /// The first record of each block.
    fences: Vec<Rec>,
}

impl Run {
    fn open(vfs: &dyn Vfs, path: &Path, lo: u64, hi: u64) -> Result<Run, StoreError> {
        let file = vfs
            .open(path, OpenMode::Existing)
            .map_err(io_err("opening an index run", path))?;
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "the index run {}: {what} (stop the server and run `evidentd reindex`)",
                path.display()
            ))
        };
        let len = file
            .byte_len()
            .map_err(io_err("reading an index run", path))?;
        if len < TRAILER_BYTES as u64 {
            return Err(corrupt("too short"));
        }
        let mut trailer = [0u8; TRAILER_BYTES];
        file.read_exact_at(&mut trailer, len - TRAILER_BYTES as u64)
            .map_err(io_err("reading an index run", path))?;
        let word = |at: usize| u64::from_be_bytes(trailer[at..at + 8].try_into().expect("8"));
        if &trailer[..8] != MAGIC {
            return Err(corrupt("no trailer"));
        }
        let (t_lo, t_hi, records, blocks) = (word(8), word(16), word(24), word(32));
        if (t_lo, t_hi) != (lo, hi) {
            return Err(corrupt(
                "its trailer names other entries than its file name",
            ));
        }
        let fence_bytes = blocks
            .checked_mul(RECORD_BYTES as u64)
            .ok_or_else(|| corrupt("a malformed trailer"))?;
        let expected = blocks
            .checked_mul(BLOCK_BYTES as u64)
            .and_then(|b| b.checked_add(fence_bytes))
            .and_then(|b| b.checked_add(TRAILER_BYTES as u64));
        if expected != Some(len)
            || records > blocks * BLOCK_RECORDS as u64
            || records < blocks.saturating_sub(1) * BLOCK_RECORDS as u64
        {
            return Err(corrupt("its length does not match its trailer"));
        }
        let mut tail = vec![0u8; fence_bytes as usize + 44];
        file.read_exact_at(&mut tail, blocks * BLOCK_BYTES as u64)
            .map_err(io_err("reading an index run", path))?;
        let catalog_len = u64::from(u32::from_be_bytes(trailer[40..44].try_into().expect("4")));
        let crc = u32::from_be_bytes(trailer[44..48].try_into().expect("4"));
        if crc32fast::hash(&tail) != crc {
            return Err(corrupt("its fence table or trailer fails its checksum"));
        }
        let fences = tail[..fence_bytes as usize]
            .chunks_exact(RECORD_BYTES)
            .map(Rec::decode)
            .collect();
        Ok(Run {
            path: path.to_owned(),
            file,
            lo,
            hi,
            records,
            catalog_len,
            fences,
        })
    }

    /// Reads block `n` into `buf` and checks it; returns its record count.
    fn block(&self, n: usize, buf: &mut [u8; BLOCK_BYTES]) -> Result<usize, StoreError> {
        self.file
            .read_exact_at(buf, (n * BLOCK_BYTES) as u64)
            .map_err(io_err("reading an index run", &self.path))?;
        block_count(buf).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "block {n} of the index run {} fails its checksum (stop the server and run \
                 `evidentd reindex`)",
                self.path.display()
            ))
        })
    }

    /// The first record at or after `target`.
    fn first_at_or_after(&self, target: Rec) -> Result<Option<Rec>, StoreError> {
        let after = self.fences.partition_point(|f| *f <= target);
        if after == 0 {
            return Ok(self.fences.first().copied());
        }
        let mut buf = [0u8; BLOCK_BYTES];
        let count = self.block(after - 1, &mut buf)?;
        let at = partition(&buf, count, |r| r < target);
        if at < count {
            return Ok(Some(record_at(&buf, at)));
        }
        Ok(self.fences.get(after).copied())
    }

    /// The last record at or before `target`.
    fn last_at_or_before(&self, target: Rec) -> Result<Option<Rec>, StoreError> {
        let after = self.fences.partition_point(|f| *f <= target);
        if after == 0 {
            return Ok(None);
        }
        let mut buf = [0u8; BLOCK_BYTES];
        let count = self.block(after - 1, &mut buf)?;
        let at = partition(&buf, count, |r| r <= target);
        Ok(at.checked_sub(1).map(|i| record_at(&buf, i)))
    }

    /// Every record, in order, read a few hundred kilobytes at a time.
    fn scan(&self) -> RunScan<'_> {
        RunScan {
            run: self,
            next_block: 0,
            buffered: Vec::new(),
            at: 0,
        }
    }
}

/// A block's record count, if its checksum and count are right.
fn block_count(buf: &[u8]) -> Option<usize> {
    let crc = u32::from_be_bytes(buf[BLOCK_BYTES - 4..].try_into().expect("4"));
    if crc32fast::hash(&buf[..BLOCK_BYTES - 4]) != crc {
        return None;
    }
    let count = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    (1..=BLOCK_RECORDS).contains(&count).then_some(count)
}

fn record_at(buf: &[u8], i: usize) -> Rec {
    Rec::decode(&buf[2 + i * RECORD_BYTES..2 + (i + 1) * RECORD_BYTES])
}

/// The number of leading records of a checked block for which `before` holds (records
/// are sorted, so `before` is true then false).
fn partition(buf: &[u8], count: usize, before: impl Fn(Rec) -> bool) -> usize {
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if before(record_at(buf, mid)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn decode_block(buf: &[u8]) -> Option<Vec<Rec>> {
    let count = block_count(buf)?;
    Some((0..count).map(|i| record_at(buf, i)).collect())
}

/// Reads a run's records in order.
struct RunScan<'a> {
    run: &'a Run,
    next_block: usize,
    buffered: Vec<Rec>,
    at: usize,
}

const SCAN_BLOCKS: usize = 64;

impl RunScan<'_> {
    fn next(&mut self) -> Result<Option<Rec>, StoreError> {
        if self.at == self.buffered.len() {
            let blocks = self.run.fences.len();
            if self.next_block >= blocks {
                return Ok(None);
            }
            let n = SCAN_BLOCKS.min(blocks - self.next_block);
            let mut buf = vec![0u8; n * BLOCK_BYTES];
            self.run
                .file
                .read_exact_at(&mut buf, (self.next_block * BLOCK_BYTES) as u64)
                .map_err(io_err("reading an index run", &self.run.path))?;
            self.buffered.clear();
            self.at = 0;
            for (i, block) in buf.chunks_exact(BLOCK_BYTES).enumerate() {
                let recs = decode_block(block).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "block {} of the index run {} fails its checksum (stop the server and \
                         run `evidentd reindex`)",
                        self.next_block + i,
                        self.run.path.display()
                    ))
                })?;
                self.buffered.extend(recs);
            }
            self.next_block += n;
        }
        let rec = self.buffered[self.at];
        self.at += 1;
        Ok(Some(rec))
    }
}

/// Writes records, in order, as a run file: blocks, then the fence table and the trailer.
struct RunWriter {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    block: Vec<u8>,
    in_block: usize,
    fences: Vec<Rec>,
    records: u64,
    last: Option<Rec>,
}

impl RunWriter {
    fn create(vfs: &dyn Vfs, path: &Path) -> Result<RunWriter, StoreError> {
        let file = vfs
            .open(path, OpenMode::Truncate)
            .map_err(io_err("creating an index run", path))?;
        Ok(RunWriter {
            file,
            path: path.to_owned(),
            offset: 0,
            pending: Vec::with_capacity(SCAN_BLOCKS * BLOCK_BYTES),
            block: vec![0; BLOCK_BYTES],
            in_block: 0,
            fences: Vec::new(),
            records: 0,
            last: None,
        })
    }

    fn push(&mut self, rec: Rec) -> Result<(), StoreError> {
        debug_assert!(self.last.is_none_or(|l| l < rec), "records out of order");
        self.last = Some(rec);
        if self.in_block == BLOCK_RECORDS {
            self.end_block()?;
        }
        if self.in_block == 0 {
            self.fences.push(rec);
        }
        let at = 2 + self.in_block * RECORD_BYTES;
        rec.encode(&mut self.block[at..at + RECORD_BYTES]);
        self.in_block += 1;
        self.records += 1;
        Ok(())
    }

    fn end_block(&mut self) -> Result<(), StoreError> {
        if self.in_block == 0 {
            return Ok(());
        }
        self.block[..2].copy_from_slice(&(self.in_block as u16).to_be_bytes());
        let used = 2 + self.in_block * RECORD_BYTES;
        self.block[used..BLOCK_BYTES - 4].fill(0);
        let crc = crc32fast::hash(&self.block[..BLOCK_BYTES - 4]);
        self.block[BLOCK_BYTES - 4..].copy_from_slice(&crc.to_be_bytes());
        self.pending.extend_from_slice(&self.block);
        self.in_block = 0;
        if self.pending.len() >= SCAN_BLOCKS * BLOCK_BYTES {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), StoreError> {
        self.file
            .write_all_at(&self.pending, self.offset)
            .map_err(io_err("writing an index run", &self.path))?;
        self.offset += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes the fence table and trailer and syncs the file.
    fn finish(mut self, lo: u64, hi: u64, catalog_len: u64) -> Result<u64, StoreError> {
        self.end_block()?;
        let blocks = self.fences.len() as u64;
        let start = self.pending.len();
        let mut rec = [0u8; RECORD_BYTES];
        for fence in &self.fences {
            fence.encode(&mut rec);
            self.pending.extend_from_slice(&rec);
        }
        self.pending.extend_from_slice(MAGIC);
        for word in [lo, hi, self.records, blocks] {
            self.pending.extend_from_slice(&word.to_be_bytes());
        }
        let catalog_len = u32::try_from(catalog_len)
            .map_err(|_| StoreError::Corrupt("the index catalog has grown past 4 GiB".into()))?;
        self.pending.extend_from_slice(&catalog_len.to_be_bytes());
        // Over the fence table and the trailer's first 44 bytes.
        let crc = crc32fast::hash(&self.pending[start..]);
        self.pending.extend_from_slice(&crc.to_be_bytes());
        self.write_pending()?;
        self.file
            .sync_data()
            .map_err(io_err("syncing an index run", &self.path))?;
        Ok(self.records)
    }
}

// ---------------------------------------------------------------------------------------
// Tables in memory.

#[derive(Debug, Default)]
struct Table {
    lo: u64,
    hi: u64,
    records: BTreeSet<Rec>,
    /// Catalog items made up to the end of this table.
    catalog_len: usize,
}

impl Table {
    fn first_at_or_after(&self, target: Rec) -> Option<Rec> {
        self.records.range(target..).next().copied()
    }

    fn last_at_or_before(&self, target: Rec) -> Option<Rec> {
        self.records.range(..=target).next_back().copied()
    }
}

/// Where an entry's records are: a table in memory or a run.
#[derive(Debug, Clone)]
enum Source {
    Table(Arc<Table>),
    Run(Arc<Run>),
}

impl Source {
    fn range(&self) -> (u64, u64) {
        match self {
            Source::Table(t) => (t.lo, t.hi),
            Source::Run(r) => (r.lo, r.hi),
        }
    }

    fn first_at_or_after(&self, target: Rec) -> Result<Option<Rec>, StoreError> {
        match self {
            Source::Table(t) => Ok(t.first_at_or_after(target)),
            Source::Run(r) => r.first_at_or_after(target),
        }
    }

    fn last_at_or_before(&self, target: Rec) -> Result<Option<Rec>, StoreError> {
        match self {
            Source::Table(t) => Ok(t.last_at_or_before(target)),
            Source::Run(r) => r.last_at_or_before(target),
        }
    }

    fn get(&self, key: [u8; 16]) -> Result<Option<u64>, StoreError> {
        Ok(self
            .first_at_or_after(Rec { key, value: 0 })?
            .filter(|r| r.key == key)
            .map(|r| r.value))
    }
}

#[derive(Debug, Default)]
struct State {
    /// Runs, by entry range, contiguous from 0.
    runs: Vec<Arc<Run>>,
    /// Tables frozen and waiting to be written, oldest first.
    frozen: Vec<Arc<Table>>,
    /// The table the sequencer adds to.
    active: Table,
    catalog: Catalog,
    /// The catalog file's length: every frame before it is synced.
    catalog_len: u64,
    /// The key log's length: its batches cover exactly the entries added.
    keys_len: u64,
    /// Why the indexes on disk could not be opened (a lenient open, for `reindex` and
    /// `verify-store`): every read that needs them fails with it.
    damaged: Option<String>,
    /// Bumped by `clear`: a merge started before it is not installed.
    generation: u64,
    /// The first background failure: every later write fails with it.
    failed: Option<String>,
}

impl State {
    /// The runs and frozen tables, oldest first (the active table is read under the lock).
    fn sources(&self) -> Vec<Source> {
        let mut out: Vec<Source> = self.runs.iter().cloned().map(Source::Run).collect();
        out.extend(self.frozen.iter().cloned().map(Source::Table));
        out
    }

    fn damaged(&self) -> Result<(), StoreError> {
        match &self.damaged {
            Some(why) => Err(StoreError::Corrupt(why.clone())),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Shared {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    state: RwLock<State>,
    /// Serialises run writes, installs and `clear`.
    writing: Mutex<()>,
    /// Wakes the writer (a table was frozen).
    flush: Signal,
    /// Wakes the merger (a run was installed).
    merge: Signal,
}

/// A wake-up flag and a stop flag under a lock, with a condition variable.
#[derive(Debug, Default)]
struct Signal {
    flags: Mutex<Wake>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct Wake {
    pending: bool,
    stop: bool,
}

impl Signal {
    fn raise(&self) {
        let mut wake = self
            .flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        wake.pending = true;
        self.cond.notify_one();
    }

    fn stop(&self) {
        let mut wake = self
            .flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        wake.stop = true;
        self.cond.notify_one();
    }

    /// Waits for a wake-up; `false` once stopped with nothing pending.
    fn wait(&self) -> bool {
        let mut wake = self
            .flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !wake.pending && !wake.stop {
            wake = self
                .cond
                .wait(wake)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if wake.stop && !wake.pending {
            return false;
        }
        wake.pending = false;
        true
    }
}

/// The sorted-run indexes.
#[derive(Debug)]
pub struct RunIndex {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    flush_entries: u64,
    flush_records: usize,
}

/// What [`load`] found in the index folder.
struct Loaded {
    runs: Vec<Arc<Run>>,
    catalog: Catalog,
    catalog_len: u64,
    next: u64,
    keys_len: u64,
}

/// Opens the runs and the catalog in `dir`, removing leftovers of an interrupted write or
/// merge; the runs cover entries `0..next`.
fn load(vfs: &dyn Vfs, dir: &Path) -> Result<Loaded, StoreError> {
    let names = vfs
        .list(dir)
        .map_err(io_err("listing the index folder", dir))?;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut removed = false;
    for name in &names {
        if let Some(range) = parse_run_name(name) {
            ranges.push(range);
        } else if name.ends_with(".tmp") {
            let path = dir.join(name);
            vfs.remove(&path)
                .map_err(io_err("removing an unfinished index run", &path))?;
            removed = true;
        }
    }
    // Longest first among equal starts: a merge's output supersedes its inputs.
    ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut runs = Vec::new();
    let mut next = 0u64;
    for (lo, hi) in ranges {
        let path = dir.join(run_name(lo, hi));
        if lo == next && hi > lo {
            runs.push(Arc::new(Run::open(vfs, &path, lo, hi)?));
            next = hi;
        } else {
            // Inside a run already taken (an input of a finished merge), or beyond a gap:
            // not part of the indexes.
            vfs.remove(&path)
                .map_err(io_err("removing a superseded index run", &path))?;
            removed = true;
        }
    }
    if removed {
        vfs.sync_dir(dir)
            .map_err(io_err("syncing the index folder", dir))?;
    }
    let path = dir.join(CATALOG);
    let file = vfs
        .open(&path, OpenMode::Create)
        .map_err(io_err("opening the index catalog", &path))?;
    let (items, valid) =
        read_catalog(&*file).map_err(io_err("reading the index catalog", &path))?;
    // The runs name signer sets in the catalog's first `needed` bytes, which were synced
    // before them: a frame there that does not read is damage, not a torn tail.
    let needed = runs.iter().map(|r| r.catalog_len).max().unwrap_or(0);
    if valid < needed {
        return Err(StoreError::Corrupt(format!(
            "the index catalog {} is damaged at byte {valid}, before the {needed} bytes the \
             runs rely on (stop the server and run `evidentd reindex`)",
            path.display()
        )));
    }
    let mut catalog = Catalog::default();
    for item in items {
        match item {
            CatalogItem::Signers { set, signers } => {
                if set != catalog.sets.len() as u64 {
                    return Err(StoreError::Corrupt(format!(
                        "the index catalog {} numbers a signer set {set} where {} comes next \
                         (stop the server and run `evidentd reindex`)",
                        path.display(),
                        catalog.sets.len()
                    )));
                }
                catalog.set_ids.insert(signers.clone(), set);
                catalog.sets.push(signers);
            }
            CatalogItem::Policy {
                policy,
                version,
                index,
            } => {
                if index < next {
                    catalog.policies.insert((policy, version), index);
                }
            }
        }
    }
    cut_to(
        &*file,
        valid,
        &path,
        "cutting the index catalog's torn tail",
    )?;
    let path = dir.join(KEY_LOG);
    let mut valid = valid;
    if next > 0 && !vfs.exists(&path).map_err(io_err("looking for", &path))? {
        // Indexes of a version before the key log: removed, and rebuilt from the log (with
        // the key log) before the server takes submissions.
        tracing::warn!(
            folder = %dir.display(),
            "the indexes have no key log (an earlier version wrote them): removing them; \
             they are rebuilt from the log before the server takes submissions"
        );
        runs.clear();
        remove_all(vfs, dir)?;
        catalog = Catalog::default();
        next = 0;
        valid = 0;
    }
    let file = vfs
        .open(&path, OpenMode::Create)
        .map_err(io_err("opening the index key log", &path))?;
    let ends = read_key_log(&*file, |_| Ok(()))?;
    let keys_len = if next == 0 {
        0
    } else {
        match ends.iter().find(|(end, _)| *end == next) {
            Some(&(_, offset)) => offset,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "the index key log {} covers {} entries, not the {next} the runs hold \
                     (stop the server and run `evidentd reindex`)",
                    path.display(),
                    ends.last().map_or(0, |(end, _)| *end)
                )));
            }
        }
    };
    cut_to(
        &*file,
        keys_len,
        &path,
        "cutting the index key log back to the runs",
    )?;
    Ok(Loaded {
        runs,
        catalog,
        catalog_len: valid,
        next,
        keys_len,
    })
}

/// Cuts a file longer than `len` bytes back to `len`, durably (`what` names the cut).
fn cut_to(file: &dyn VfsFile, len: u64, path: &Path, what: &'static str) -> Result<(), StoreError> {
    let now = file.byte_len().map_err(io_err(what, path))?;
    if len < now {
        file.set_len(len).map_err(io_err(what, path))?;
        file.sync_all().map_err(io_err(what, path))?;
    }
    Ok(())
}

/// Removes every run file in `dir` (also those a damaged folder could not open), the newest
/// first so that a crash leaves a prefix of the indexes at worst, and empties the catalog
/// and the key log.
fn remove_all(vfs: &dyn Vfs, dir: &Path) -> Result<(), StoreError> {
    let mut names: Vec<(u64, u64)> = vfs
        .list(dir)
        .map_err(io_err("listing the index folder", dir))?
        .iter()
        .filter_map(|n| parse_run_name(n))
        .collect();
    names.sort();
    for (lo, hi) in names.into_iter().rev() {
        let path = dir.join(run_name(lo, hi));
        vfs.remove(&path)
            .map_err(io_err("removing an index run", &path))?;
    }
    vfs.sync_dir(dir)
        .map_err(io_err("syncing the index folder", dir))?;
    for (name, what) in [
        (CATALOG, "clearing the index catalog"),
        (KEY_LOG, "clearing the index key log"),
    ] {
        let path = dir.join(name);
        vfs.open(&path, OpenMode::Truncate)
            .and_then(|f| f.sync_all())
            .map_err(io_err(what, &path))?;
    }
    Ok(())
}

impl RunIndex {
    /// Opens (or creates) the indexes in `dir`. Leftovers of an interrupted write or merge
    /// are removed; the runs that remain cover entries `0..indexed()`.
    pub fn open(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<RunIndex, StoreError> {
        RunIndex::open_with(vfs, dir, FLUSH_ENTRIES, FLUSH_RECORDS, false)
    }

    /// Opens the indexes even when what is on disk is damaged (for `evidentd reindex` and
    /// `verify-store`): then they hold nothing, every read that needs them reports the
    /// damage, and [`IndexStore::clear`] removes every file of the folder.
    pub fn open_lenient(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<RunIndex, StoreError> {
        RunIndex::open_with(vfs, dir, FLUSH_ENTRIES, FLUSH_RECORDS, true)
    }

    /// [`RunIndex::open`], the in-memory table written out at `flush_entries` entries or
    /// `flush_records` records.
    pub fn open_with(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        flush_entries: u64,
        flush_records: usize,
        lenient: bool,
    ) -> Result<RunIndex, StoreError> {
        // Folders created here are durable only once their parents are synced.
        let mut created = Vec::new();
        for d in dir.ancestors() {
            if d.as_os_str().is_empty() || vfs.exists(d).map_err(io_err("looking for", d))? {
                break;
            }
            created.push(d.to_owned());
        }
        vfs.create_dir_all(dir)
            .map_err(io_err("creating the index folder", dir))?;
        for d in created.iter().rev() {
            let parent = match d.parent() {
                Some(p) if p.as_os_str().is_empty() => Path::new("."),
                Some(p) => p,
                None => continue,
            };
            vfs.sync_dir(parent)
                .map_err(io_err("syncing a folder", parent))?;
        }
        let (loaded, damaged) = match load(&*vfs, dir) {
            Ok(loaded) => (loaded, None),
            Err(e @ StoreError::Corrupt(_)) if lenient => (
                Loaded {
                    runs: Vec::new(),
                    catalog: Catalog::default(),
                    catalog_len: 0,
                    next: 0,
                    keys_len: 0,
                },
                Some(e.to_string()),
            ),
            Err(e) => return Err(e),
        };
        let shared = Arc::new(Shared {
            vfs,
            dir: dir.to_owned(),
            state: RwLock::new(State {
                runs: loaded.runs,
                frozen: Vec::new(),
                active: Table {
                    lo: loaded.next,
                    hi: loaded.next,
                    ..Table::default()
                },
                catalog: loaded.catalog,
                catalog_len: loaded.catalog_len,
                keys_len: loaded.keys_len,
                damaged,
                generation: 0,
                failed: None,
            }),
            writing: Mutex::new(()),
            flush: Signal::default(),
            merge: Signal::default(),
        });
        let mut threads = Vec::new();
        for (name, merging) in [("evident-indexer", false), ("evident-merger", true)] {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        if merging {
                            while shared.merge.wait() {
                                let _ = shared.merge_runs();
                            }
                        } else {
                            while shared.flush.wait() {
                                if shared.flush_frozen().is_ok() {
                                    shared.merge.raise();
                                }
                            }
                        }
                    })
                    .map_err(io_err("starting the index writer", dir))?,
            );
        }
        Ok(RunIndex {
            shared,
            threads: Mutex::new(threads),
            flush_entries,
            flush_records,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.read()
    }

    fn exact(&self, key: [u8; 16]) -> Result<Option<u64>, StoreError> {
        let (sources, active) = {
            let state = self.read();
            state.damaged()?;
            let hit = state
                .active
                .first_at_or_after(Rec { key, value: 0 })
                .filter(|r| r.key == key)
                .map(|r| r.value);
            (state.sources(), hit)
        };
        if active.is_some() {
            return Ok(active);
        }
        for source in sources.iter().rev() {
            if let Some(found) = source.get(key)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Number of runs on disk (for tests and metrics).
    pub fn runs(&self) -> usize {
        self.read().runs.len()
    }

    fn failed(state: &State) -> Result<(), StoreError> {
        match &state.failed {
            Some(e) => Err(StoreError::Poisoned(e.clone())),
            None => Ok(()),
        }
    }

    /// Freezes the active table if it holds anything.
    fn freeze(state: &mut State) {
        if state.active.hi > state.active.lo {
            let next = Table {
                lo: state.active.hi,
                hi: state.active.hi,
                records: BTreeSet::new(),
                catalog_len: state.active.catalog_len,
            };
            let full = std::mem::replace(&mut state.active, next);
            state.frozen.push(Arc::new(full));
        }
    }
}

impl Drop for RunIndex {
    fn drop(&mut self) {
        self.shared.flush.stop();
        self.shared.merge.stop();
        let threads = std::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn writing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a write failure (the first one wins): every later write fails with it.
    /// Called with the `writing` lock held, so no other write starts after a failed sync.
    fn fail(&self, e: &StoreError) {
        tracing::error!(error = %e, "writing the indexes failed; the store stops");
        self.write().failed.get_or_insert(e.to_string());
    }

    /// Writes every frozen table as a run, oldest first.
    fn flush_frozen(&self) -> Result<(), StoreError> {
        let _writing = self.writing();
        let result = self.flush_locked();
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn flush_locked(&self) -> Result<(), StoreError> {
        loop {
            let (table, items, catalog_len) = {
                let state = self.read();
                RunIndex::failed(&state)?;
                let Some(table) = state.frozen.first().cloned() else {
                    return Ok(());
                };
                let items = state.catalog.items[state.catalog.written..table.catalog_len].to_vec();
                (table, items, state.catalog_len)
            };
            let catalog_len = self.write_catalog(&items, catalog_len)?;
            let tmp = self.write_tmp(
                table.lo,
                table.hi,
                catalog_len,
                table.records.iter().copied().map(Ok),
            )?;
            // The key log covers the run's entries before the run is in place.
            let keys = self.dir.join(KEY_LOG);
            self.vfs
                .open(&keys, OpenMode::Create)
                .and_then(|f| f.sync_data())
                .map_err(io_err("syncing the index key log", &keys))?;
            let run = self.install_file(&tmp, table.lo, table.hi)?;
            let mut state = self.write();
            state.catalog.written += items.len();
            state.catalog_len = catalog_len;
            state.frozen.remove(0);
            state.runs.push(Arc::new(run));
        }
    }

    /// Appends `items` to the catalog, which is `len` bytes long, and syncs it; returns
    /// its new length.
    fn write_catalog(&self, items: &[CatalogItem], len: u64) -> Result<u64, StoreError> {
        if items.is_empty() {
            return Ok(len);
        }
        let path = self.dir.join(CATALOG);
        let file = self
            .vfs
            .open(&path, OpenMode::Create)
            .map_err(io_err("opening the index catalog", &path))?;
        let mut bytes = Vec::new();
        for item in items {
            bytes.extend_from_slice(&frame(item));
        }
        file.write_all_at(&bytes, len)
            .map_err(io_err("writing the index catalog", &path))?;
        file.sync_data()
            .map_err(io_err("syncing the index catalog", &path))?;
        Ok(len + bytes.len() as u64)
    }

    /// Writes a run of `records` (in order) for entries `lo..hi` to a temporary file,
    /// synced; returns its path.
    fn write_tmp(
        &self,
        lo: u64,
        hi: u64,
        catalog_len: u64,
        records: impl Iterator<Item = Result<Rec, StoreError>>,
    ) -> Result<PathBuf, StoreError> {
        let tmp = self.dir.join(format!("{}.tmp", run_name(lo, hi)));
        let mut writer = RunWriter::create(&*self.vfs, &tmp)?;
        for rec in records {
            writer.push(rec?)?;
        }
        writer.finish(lo, hi, catalog_len)?;
        Ok(tmp)
    }

    /// Renames a written run into place, durably, and opens it.
    fn install_file(&self, tmp: &Path, lo: u64, hi: u64) -> Result<Run, StoreError> {
        let path = self.dir.join(run_name(lo, hi));
        self.vfs
            .rename(tmp, &path)
            .map_err(io_err("installing an index run", &path))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(io_err("syncing the index folder", &self.dir))?;
        Run::open(&*self.vfs, &path, lo, hi)
    }

    /// Merges the newest [`FANOUT`] runs while the oldest of them is at most twice the
    /// size of the smallest: runs of one size merge into one four times larger, so run
    /// sizes grow geometrically and a look-up reads a few runs per factor of four in the
    /// log's size. Runs on its own thread, so tables are written while it merges.
    fn merge_runs(&self) -> Result<(), StoreError> {
        loop {
            let (inputs, generation) = {
                let state = self.read();
                if state.failed.is_some() || state.runs.len() < FANOUT {
                    return Ok(());
                }
                let tail = &state.runs[state.runs.len() - FANOUT..];
                let smallest = tail[1..].iter().map(|r| r.records).min().unwrap_or(0);
                if tail[0].records > 2 * smallest {
                    return Ok(());
                }
                (tail.to_vec(), state.generation)
            };
            let lo = inputs[0].lo;
            let hi = inputs[FANOUT - 1].hi;
            let catalog_len = inputs.iter().map(|r| r.catalog_len).max().unwrap_or(0);
            let mut scans: Vec<_> = inputs.iter().map(|r| r.scan()).collect();
            let mut heads: Vec<Option<Rec>> = Vec::with_capacity(FANOUT);
            for scan in &mut scans {
                heads.push(scan.next()?);
            }
            let merged = std::iter::from_fn(|| {
                let (at, rec) = heads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| h.map(|r| (i, r)))
                    .min_by_key(|(_, r)| *r)?;
                match scans[at].next() {
                    Ok(next) => heads[at] = next,
                    Err(e) => {
                        heads[at] = None;
                        return Some(Err(e));
                    }
                }
                Some(Ok(rec))
            });
            let tmp = match self.write_tmp(lo, hi, catalog_len, merged) {
                Ok(tmp) => tmp,
                Err(e) => {
                    let _writing = self.writing();
                    self.fail(&e);
                    return Err(e);
                }
            };
            {
                let _writing = self.writing();
                let installed = {
                    let state = self.read();
                    state.generation == generation
                        && state
                            .runs
                            .iter()
                            .position(|r| Arc::ptr_eq(r, &inputs[0]))
                            .is_some_and(|at| {
                                state.runs.len() >= at + FANOUT
                                    && (0..FANOUT)
                                        .all(|k| Arc::ptr_eq(&state.runs[at + k], &inputs[k]))
                            })
                };
                if !installed {
                    // Cleared while it merged: the output is stale.
                    let _ = self.vfs.remove(&tmp);
                    return Ok(());
                }
                let run = match self.install_file(&tmp, lo, hi) {
                    Ok(run) => run,
                    Err(e) => {
                        self.fail(&e);
                        return Err(e);
                    }
                };
                let mut state = self.write();
                let at = state
                    .runs
                    .iter()
                    .position(|r| Arc::ptr_eq(r, &inputs[0]))
                    .unwrap_or(0);
                state.runs.splice(at..at + FANOUT, [Arc::new(run)]);
            }
            for input in &inputs {
                match self.vfs.remove(&input.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io_err("removing a merged index run", &input.path)(e));
                    }
                }
            }
            self.vfs
                .sync_dir(&self.dir)
                .map_err(io_err("syncing the index folder", &self.dir))?;
        }
    }
}

impl IndexStore for RunIndex {
    fn indexed(&self) -> Result<u64, StoreError> {
        Ok(self.read().active.hi)
    }

    fn add(&self, entries: &[Indexed]) -> Result<(), StoreError> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let (freeze, waiting) = {
            let mut state = self.shared.write();
            RunIndex::failed(&state)?;
            let expected = state.active.hi;
            for (n, entry) in entries.iter().enumerate() {
                if entry.index != expected + n as u64 {
                    return Err(StoreError::Corrupt(format!(
                        "indexing entry {} where entry {} comes next",
                        entry.index,
                        expected + n as u64
                    )));
                }
            }
            let frame = key_frame(entries);
            let path = self.shared.dir.join(KEY_LOG);
            self.shared
                .vfs
                .open(&path, OpenMode::Create)
                .and_then(|f| f.write_all_at(&frame, state.keys_len))
                .map_err(io_err("writing the index key log", &path))?;
            state.keys_len += frame.len() as u64;
            let State {
                active, catalog, ..
            } = &mut *state;
            for entry in entries {
                let index = entry.index;
                active.records.insert(Rec {
                    key: hash_key(TAG_LEAF, &entry.leaf_hash),
                    value: index,
                });
                active.records.insert(Rec {
                    key: hash_key(TAG_CONTENT, &entry.dedupe_key),
                    value: index,
                });
                active.records.insert(Rec {
                    key: signers_key(index),
                    value: catalog.set_id(&entry.facts.signers),
                });
                if let Some((name, version)) = &entry.facts.policy {
                    if !name.contains('\0') {
                        catalog.add_policy(name, *version, index);
                    }
                }
                for posting in entry.postings() {
                    if let Some(key) = list_key(&posting) {
                        active.records.insert(Rec { key, value: index });
                    }
                }
            }
            active.hi = last.index + 1;
            active.catalog_len = catalog.items.len();
            let full = active.hi - active.lo >= self.flush_entries
                || active.records.len() >= self.flush_records;
            if full {
                RunIndex::freeze(&mut state);
            }
            (full, state.frozen.len())
        };
        if freeze {
            self.shared.flush.raise();
            // Memory stays bounded when the disk is slower than the log: past a few tables
            // waiting to be written, the sequencer writes them itself (and so slows down).
            if waiting > MAX_FROZEN {
                self.shared.flush_frozen()?;
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        {
            let mut state = self.shared.write();
            RunIndex::failed(&state)?;
            RunIndex::freeze(&mut state);
        }
        self.shared.flush_frozen()?;
        self.shared.merge.raise();
        Ok(())
    }

    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.exact(hash_key(TAG_LEAF, leaf_hash))
    }

    fn index_of_content(&self, dedupe_key: &Hash) -> Result<Option<u64>, StoreError> {
        self.exact(hash_key(TAG_CONTENT, dedupe_key))
    }

    fn seek(
        &self,
        posting: &Posting,
        from: u64,
        forward: bool,
        lo: u64,
        hi: u64,
    ) -> Result<Option<u64>, StoreError> {
        if super::seek_is_empty(from, forward, lo, hi) {
            return Ok(None);
        }
        let Some(key) = list_key(posting) else {
            return Ok(None);
        };
        let (sources, active_hit) = {
            let state = self.read();
            state.damaged()?;
            let hit = if forward {
                state
                    .active
                    .first_at_or_after(Rec {
                        key,
                        value: from.max(lo),
                    })
                    .filter(|r| r.key == key)
            } else {
                state
                    .active
                    .last_at_or_before(Rec {
                        key,
                        value: from.min(hi - 1),
                    })
                    .filter(|r| r.key == key)
            };
            (state.sources(), hit.map(|r| r.value))
        };
        let within = |i: u64| (lo..hi).contains(&i);
        if forward {
            let first = from.max(lo);
            for source in &sources {
                let (s_lo, s_hi) = source.range();
                if s_hi <= first || s_lo >= hi {
                    continue;
                }
                let found = source
                    .first_at_or_after(Rec { key, value: first })?
                    .filter(|r| r.key == key)
                    .map(|r| r.value);
                if let Some(found) = found {
                    return Ok(within(found).then_some(found));
                }
            }
            Ok(active_hit.filter(|&i| within(i)))
        } else {
            if let Some(found) = active_hit {
                return Ok(within(found).then_some(found));
            }
            let last = from.min(hi - 1);
            for source in sources.iter().rev() {
                let (s_lo, s_hi) = source.range();
                if s_lo > last || s_hi <= lo {
                    continue;
                }
                let found = source
                    .last_at_or_before(Rec { key, value: last })?
                    .filter(|r| r.key == key)
                    .map(|r| r.value);
                if let Some(found) = found {
                    return Ok(within(found).then_some(found));
                }
            }
            Ok(None)
        }
    }

    fn signers_of(&self, index: u64) -> Result<Option<Vec<String>>, StoreError> {
        let Some(set) = self.exact(signers_key(index))? else {
            return Ok(None);
        };
        let state = self.read();
        state
            .catalog
            .sets
            .get(set as usize)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "entry {index} names signer set {set}, which the index catalog lacks"
                ))
            })
    }

    fn policies(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let state = self.read();
        state.damaged()?;
        Ok(state
            .catalog
            .policies
            .iter()
            .map(|((name, version), index)| (name.clone(), *version, *index))
            .collect())
    }

    fn check(&self, entry: &Indexed) -> Result<Option<String>, StoreError> {
        let index = entry.index;
        // The one source that holds this entry's records.
        let (source, set, policy) = {
            let state = self.read();
            state.damaged()?;
            let set = state.catalog.set_ids.get(&entry.facts.signers).copied();
            let policy = entry
                .facts
                .policy
                .as_ref()
                .filter(|(name, _)| !name.contains('\0'))
                .map(|(name, version)| {
                    (
                        name.clone(),
                        *version,
                        state
                            .catalog
                            .policies
                            .get(&(name.clone(), *version))
                            .copied(),
                    )
                });
            let source = if (state.active.lo..state.active.hi).contains(&index) {
                Source::Table(Arc::new(Table {
                    lo: state.active.lo,
                    hi: state.active.hi,
                    records: state
                        .active
                        .records
                        .iter()
                        .filter(|r| r.value == index || r.key == signers_key(index))
                        .copied()
                        .collect(),
                    catalog_len: 0,
                }))
            } else {
                match state
                    .sources()
                    .into_iter()
                    .find(|s| (s.range().0..s.range().1).contains(&index))
                {
                    Some(s) => s,
                    None => return Ok(Some("no run covers it".into())),
                }
            };
            (source, set, policy)
        };
        let has = |key: [u8; 16], value: u64| -> Result<bool, StoreError> {
            let target = Rec { key, value };
            Ok(source.first_at_or_after(target)? == Some(target))
        };
        if !has(hash_key(TAG_LEAF, &entry.leaf_hash), index)? {
            return Ok(Some("its leaf-hash look-up is missing or wrong".into()));
        }
        if !has(hash_key(TAG_CONTENT, &entry.dedupe_key), index)? {
            return Ok(Some("its dedupe look-up is missing or wrong".into()));
        }
        let signers_ok = match set {
            Some(set) => source.get(signers_key(index))? == Some(set),
            None => false,
        };
        if !signers_ok {
            return Ok(Some("its signer record is missing or wrong".into()));
        }
        if let Some((name, version, stored)) = policy {
            if stored != Some(index) {
                return Ok(Some(format!(
                    "its policy version look-up ({name} version {version}) is missing or wrong"
                )));
            }
        }
        for posting in entry.postings() {
            if let Some(key) = list_key(&posting) {
                if !has(key, index)? {
                    return Ok(Some(format!(
                        "it is missing from the posting list {posting:?}"
                    )));
                }
            }
        }
        Ok(None)
    }

    fn census(&self) -> Result<Census, StoreError> {
        let (sources, active, policies) = {
            let state = self.read();
            state.damaged()?;
            (
                state.sources(),
                state.active.records.iter().copied().collect::<Vec<_>>(),
                state.catalog.policies.len() as u64,
            )
        };
        let mut census = Census {
            policy_versions: policies,
            ..Census::default()
        };
        let mut count = |rec: Rec| match rec.key[0] {
            TAG_LEAF => census.leaf_hashes += 1,
            TAG_CONTENT => census.dedupe_keys += 1,
            TAG_SIGNERS => census.signer_records += 1,
            _ => census.postings += 1,
        };
        for source in &sources {
            match source {
                Source::Table(t) => t.records.iter().copied().for_each(&mut count),
                Source::Run(r) => {
                    let mut scan = r.scan();
                    while let Some(rec) = scan.next()? {
                        count(rec);
                    }
                }
            }
        }
        active.into_iter().for_each(count);
        Ok(census)
    }

    fn verify_files(&self, pace: &mut dyn FnMut(u64) -> bool) -> Result<u64, StoreError> {
        let runs = {
            let state = self.read();
            state.damaged()?;
            state.runs.clone()
        };
        let path = self.shared.dir.join(CATALOG);
        let file = self
            .shared
            .vfs
            .open(&path, OpenMode::Create)
            .map_err(io_err("opening the index catalog", &path))?;
        let (_, valid) =
            read_catalog(&*file).map_err(io_err("reading the index catalog", &path))?;
        let needed = runs.iter().map(|r| r.catalog_len).max().unwrap_or(0);
        if valid < needed {
            return Err(StoreError::Corrupt(format!(
                "the index catalog {} is damaged at byte {valid}, before the {needed} bytes \
                 the runs rely on",
                path.display()
            )));
        }
        let mut bytes = valid;
        for run in runs {
            let mut scan = run.scan();
            let mut last = 0;
            while scan.next()?.is_some() {
                if scan.next_block != last {
                    bytes += ((scan.next_block - last) * BLOCK_BYTES) as u64;
                    last = scan.next_block;
                    if !pace(bytes) {
                        return Ok(bytes);
                    }
                }
            }
        }
        Ok(bytes)
    }

    fn list_keys(
        &self,
        end: u64,
        visit: &mut dyn FnMut(&Hash, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let (indexed, keys_len) = {
            let state = self.read();
            state.damaged()?;
            (state.active.hi, state.keys_len)
        };
        let path = self.shared.dir.join(KEY_LOG);
        let file = self
            .shared
            .vfs
            .open(&path, OpenMode::Create)
            .map_err(io_err("opening the index key log", &path))?;
        if end > indexed {
            return Err(StoreError::Corrupt(format!(
                "asked for the key lists of {end} entries; the indexes hold {indexed}"
            )));
        }
        let wanted = end;
        let mut covered = 0u64;
        let ends = read_key_log(&*file, |batch| {
            for (n, keys) in batch.entries.iter().enumerate() {
                let index = batch.first + n as u64;
                if index >= wanted {
                    break;
                }
                for key in keys {
                    visit(key, index)?;
                }
                covered = index + 1;
            }
            Ok(())
        })?;
        let read_to = ends.last().map_or(0, |(_, offset)| *offset);
        if covered < wanted || read_to < keys_len {
            return Err(StoreError::Corrupt(format!(
                "the index key log {} covers {covered} entries, not the {wanted} asked for \
                 (stop the server and run `evidentd reindex`)",
                path.display()
            )));
        }
        Ok(())
    }

    fn keys_between(
        &self,
        start: u64,
        end: u64,
        visit: &mut EntryKeys<'_>,
    ) -> Result<(), StoreError> {
        let indexed = {
            let state = self.read();
            state.damaged()?;
            state.active.hi
        };
        if end > indexed {
            return Err(StoreError::Corrupt(format!(
                "asked for the keys of entries up to {end}; the indexes hold {indexed}"
            )));
        }
        let path = self.shared.dir.join(KEY_LOG);
        let file = self
            .shared
            .vfs
            .open(&path, OpenMode::Create)
            .map_err(io_err("opening the index key log", &path))?;
        let mut next = start;
        read_key_log(&*file, |batch| {
            for (n, keys) in batch.entries.iter().enumerate() {
                let index = batch.first + n as u64;
                if index >= start && index < end {
                    visit(index, keys)?;
                    next = index + 1;
                }
            }
            Ok(())
        })?;
        if next < end {
            return Err(StoreError::Corrupt(format!(
                "the index key log lacks entry {next}"
            )));
        }
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        let _writing = self.shared.writing();
        let mut state = self.shared.write();
        remove_all(&*self.shared.vfs, &self.shared.dir)?;
        let generation = state.generation + 1;
        *state = State {
            generation,
            ..State::default()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use crate::storage::crashsim::{Rng, crash_states};
    use crate::storage::vfs::{OsFs, SimFs};
    use evident_core::audit::Facts;
    use evident_core::record::EntryKind;

    const SIGNERS: [&str; 3] = ["ci", "scanner", "release-bot"];

    /// A deterministic entry: a few signers, subjects and names from small pools, so lists
    /// of every length occur; every fifth entry a registry or policy entry.
    fn entry(index: u64) -> Indexed {
        let mut rng = Rng::new(index);
        let h = |tag: u8| Hash::sha256(&[&[tag][..], &index.to_be_bytes()].concat());
        let (leaf_hash, dedupe_key) = (h(1), h(2));
        let kind = match index % 5 {
            3 => EntryKind::Registry,
            4 => EntryKind::Policy,
            _ => EntryKind::Attestation,
        };
        let mut facts = Facts::default();
        let mut signers: Vec<String> = SIGNERS
            .iter()
            .filter(|_| rng.chance(50))
            .map(|s| (*s).to_owned())
            .collect();
        signers.sort();
        facts.signers = signers;
        match kind {
            EntryKind::Policy => {
                facts.policy = Some((format!("policy-{}", rng.range(0, 3)), index));
            }
            EntryKind::Registry => {}
            _ => {
                facts.predicate_type = Some(format!("https://example.com/p/{}", rng.range(0, 4)));
                facts.roles = vec![format!("role-{}", rng.range(0, 2))];
                facts.subjects = vec![("sha256".into(), format!("{:064x}", rng.range(0, 40)))];
                facts.subject_names = vec![format!("app-{}", rng.range(0, 7))];
                if rng.chance(20) {
                    facts.release = Some(("app".into(), format!("1.{}", rng.range(0, 3))));
                }
            }
        }
        Indexed {
            index,
            leaf_hash,
            dedupe_key,
            kind,
            facts,
        }
    }

    /// Every posting list the first `n` entries are on.
    fn lists(n: u64) -> Vec<Posting> {
        let mut out: Vec<Posting> = (0..n).flat_map(|i| entry(i).postings()).collect();
        out.sort_by_key(|p| p.prefix());
        out.dedup();
        out.push(Posting::SubjectName("nobody".into()));
        out
    }

    /// Checks every look-up of `index` against the first `n` entries.
    fn check_against_model(index: &RunIndex, n: u64, rng: &mut Rng) {
        assert_eq!(index.indexed().unwrap(), n);
        for i in 0..n {
            let e = entry(i);
            assert_eq!(index.index_of_leaf(&e.leaf_hash).unwrap(), Some(i));
            assert_eq!(index.index_of_content(&e.dedupe_key).unwrap(), Some(i));
            assert_eq!(index.signers_of(i).unwrap(), Some(e.facts.signers.clone()));
            assert_eq!(index.check(&e).unwrap(), None, "entry {i}");
        }
        let absent = entry(n + 1_000);
        assert_eq!(index.index_of_leaf(&absent.leaf_hash).unwrap(), None);
        assert_eq!(index.index_of_content(&absent.dedupe_key).unwrap(), None);
        assert_eq!(index.signers_of(n).unwrap(), None);
        let members: Vec<(Posting, Vec<u64>)> = lists(n)
            .into_iter()
            .map(|p| {
                let on: Vec<u64> = (0..n)
                    .filter(|&i| entry(i).postings().contains(&p))
                    .collect();
                (p, on)
            })
            .collect();
        for (posting, on) in &members {
            for _ in 0..20 {
                let lo = rng.range(0, n + 2);
                let hi = rng.range(lo, n + 3);
                let from = rng.range(0, n + 3);
                let fwd = on.iter().copied().find(|&i| i >= from.max(lo) && i < hi);
                let back = on
                    .iter()
                    .copied()
                    .rev()
                    .find(|&i| i <= from && i >= lo && i < hi);
                assert_eq!(index.seek(posting, from, true, lo, hi).unwrap(), fwd);
                assert_eq!(index.seek(posting, from, false, lo, hi).unwrap(), back);
            }
        }
        let mut policies: BTreeMap<(String, u64), u64> = BTreeMap::new();
        let mut census = Census::default();
        for i in 0..n {
            let e = entry(i);
            census.add(&e);
            if let Some((name, version)) = e.facts.policy {
                policies.insert((name, version), i);
            }
        }
        let listed: Vec<(String, u64, u64)> =
            policies.into_iter().map(|((n, v), i)| (n, v, i)).collect();
        assert_eq!(index.policies().unwrap(), listed);
        assert_eq!(index.census().unwrap(), census);
        // The key log gives every entry's keys in full, in order, and nothing more.
        let mut logged: Vec<(Hash, u64)> = Vec::new();
        index
            .list_keys(n, &mut |k, i| {
                logged.push((*k, i));
                Ok(())
            })
            .unwrap();
        let want: Vec<(Hash, u64)> = (0..n)
            .flat_map(|i| {
                let e = entry(i);
                evident_core::vindex::IndexKey::of_entry(e.kind, &e.facts)
                    .into_iter()
                    .filter_map(move |k| k.hash().map(|h| (h, i)))
            })
            .collect();
        assert_eq!(logged, want);
    }

    /// Waits (up to 30 s) until the merger has brought the runs below `bound`; the merges
    /// run on their own thread after each flush.
    fn wait_for_merges(index: &RunIndex, bound: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while index.runs() >= bound && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn look_ups_and_seeks_agree_with_a_model_across_runs_merges_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let vfs: Arc<dyn Vfs> = Arc::new(OsFs);
        let mut rng = Rng::new(7);
        let mut n = 0;
        {
            let index =
                RunIndex::open_with(Arc::clone(&vfs), dir.path(), 9, 1 << 20, false).unwrap();
            for _ in 0..60 {
                let batch: Vec<Indexed> = (n..n + rng.range(1, 12)).map(entry).collect();
                n += batch.len() as u64;
                index.add(&batch).unwrap();
                if rng.chance(10) {
                    index.sync().unwrap();
                }
                if rng.chance(15) {
                    check_against_model(&index, n, &mut rng);
                }
            }
            check_against_model(&index, n, &mut rng);
            index.sync().unwrap();
            wait_for_merges(&index, 25);
            assert!(
                index.runs() < 25,
                "{} runs: merges keep the count down",
                index.runs()
            );
            check_against_model(&index, n, &mut rng);
            // Entries added after the last sync are not durable: gone after reopening
            // unless a flush wrote them.
            index.add(&[entry(n)]).unwrap();
        }
        let index = RunIndex::open_with(Arc::clone(&vfs), dir.path(), 9, 1 << 20, false).unwrap();
        let reopened = index.indexed().unwrap();
        assert!(reopened == n || reopened == n + 1);
        check_against_model(&index, reopened, &mut rng);
        // Catching up goes on from there.
        let more: Vec<Indexed> = (reopened..reopened + 30).map(entry).collect();
        index.add(&more).unwrap();
        check_against_model(&index, reopened + 30, &mut rng);
        index.clear().unwrap();
        assert_eq!(index.indexed().unwrap(), 0);
        assert_eq!(index.census().unwrap(), Census::default());
        drop(index);
        let index = RunIndex::open(vfs, dir.path()).unwrap();
        assert_eq!(index.indexed().unwrap(), 0);
    }

    #[test]
    fn an_entry_out_of_order_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let index = RunIndex::open(Arc::new(OsFs), dir.path()).unwrap();
        index.add(&[entry(0)]).unwrap();
        let err = index.add(&[entry(2)]).unwrap_err();
        assert!(
            err.to_string().contains("indexing entry 2 where entry 1"),
            "{err}"
        );
        assert_eq!(index.indexed().unwrap(), 1);
    }

    #[test]
    fn indexes_without_a_key_log_are_removed_to_be_rebuilt_and_a_cut_key_log_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        {
            let index = RunIndex::open(Arc::new(OsFs), dir.path()).unwrap();
            let entries: Vec<Indexed> = (0..100).map(entry).collect();
            index.add(&entries).unwrap();
            index.sync().unwrap();
            assert_eq!(index.runs(), 1);
        }
        // A key log cut short of the runs: damage, with what to do.
        let keys = dir.path().join(KEY_LOG);
        let full = std::fs::read(&keys).unwrap();
        std::fs::write(&keys, &full[..full.len() / 2]).unwrap();
        let err = RunIndex::open(Arc::new(OsFs), dir.path()).unwrap_err();
        assert!(err.to_string().contains("run `evidentd reindex`"), "{err}");
        // No key log at all (an earlier version's indexes): removed, to be rebuilt.
        std::fs::remove_file(&keys).unwrap();
        let index = RunIndex::open(Arc::new(OsFs), dir.path()).unwrap();
        assert_eq!(index.indexed().unwrap(), 0);
        assert_eq!(index.runs(), 0);
        index.add(&(0..10).map(entry).collect::<Vec<_>>()).unwrap();
        check_against_model(&index, 10, &mut Rng::new(7));
    }

    #[test]
    fn a_flipped_byte_in_a_run_is_an_error_never_a_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let vfs: Arc<dyn Vfs> = Arc::new(OsFs);
        let n = 400;
        {
            let index = RunIndex::open(Arc::clone(&vfs), dir.path()).unwrap();
            index.add(&(0..n).map(entry).collect::<Vec<_>>()).unwrap();
            index.sync().unwrap();
        }
        let run = dir.path().join(run_name(0, n));
        let clean = std::fs::read(&run).unwrap();
        // A byte inside the first block: every look-up that reads the block fails.
        let mut bytes = clean.clone();
        bytes[100] ^= 0x40;
        std::fs::write(&run, &bytes).unwrap();
        let index = RunIndex::open(Arc::clone(&vfs), dir.path()).unwrap();
        let mut failed = 0;
        for i in 0..n {
            let e = entry(i);
            match index.index_of_content(&e.dedupe_key) {
                Ok(found) => assert_eq!(found, Some(i)),
                Err(err) => {
                    assert!(err.to_string().contains("fails its checksum"), "{err}");
                    failed += 1;
                }
            }
        }
        assert!(failed > 0);
        assert!(index.verify_files(&mut |_| true).is_err());
        assert!(index.census().is_err());
        drop(index);
        // A byte in the fence table or the trailer: the run does not open.
        for at in [clean.len() - 30, clean.len() - TRAILER_BYTES - 5] {
            let mut bytes = clean.clone();
            bytes[at] ^= 1;
            std::fs::write(&run, &bytes).unwrap();
            let err = RunIndex::open(Arc::clone(&vfs), dir.path()).unwrap_err();
            assert!(err.to_string().contains("evidentd reindex"), "{err}");
        }
    }

    #[test]
    fn a_damaged_catalog_is_an_error_and_a_lenient_open_can_clear_it() {
        let dir = tempfile::tempdir().unwrap();
        let vfs: Arc<dyn Vfs> = Arc::new(OsFs);
        let n = 50;
        {
            let index = RunIndex::open(Arc::clone(&vfs), dir.path()).unwrap();
            index.add(&(0..n).map(entry).collect::<Vec<_>>()).unwrap();
            index.sync().unwrap();
        }
        // One byte of the catalog's first frame: the runs rely on it, so it is damage,
        // not a torn tail, and nothing is cut.
        let catalog = dir.path().join(CATALOG);
        let clean = std::fs::read(&catalog).unwrap();
        let mut bytes = clean.clone();
        bytes[12] ^= 0x01;
        std::fs::write(&catalog, &bytes).unwrap();
        let err = RunIndex::open(Arc::clone(&vfs), dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("index catalog") && err.to_string().contains("reindex"),
            "{err}"
        );
        assert_eq!(std::fs::read(&catalog).unwrap(), bytes, "nothing was cut");
        // A run whose trailer fails its checksum does not open either.
        std::fs::write(&catalog, &clean).unwrap();
        let run = dir.path().join(run_name(0, n));
        let mut run_bytes = std::fs::read(&run).unwrap();
        let at = run_bytes.len() - 10;
        run_bytes[at] ^= 0x01;
        std::fs::write(&run, &run_bytes).unwrap();
        assert!(RunIndex::open(Arc::clone(&vfs), dir.path()).is_err());
        // The lenient open (reindex, verify-store) reports the damage on every read that
        // needs the indexes, and clear removes it.
        let index = RunIndex::open_lenient(Arc::clone(&vfs), dir.path()).unwrap();
        assert!(index.census().unwrap_err().to_string().contains("trailer"));
        assert!(index.index_of_content(&entry(1).dedupe_key).is_err());
        assert!(index.verify_files(&mut |_| true).is_err());
        index.clear().unwrap();
        index.add(&(0..n).map(entry).collect::<Vec<_>>()).unwrap();
        index.sync().unwrap();
        drop(index);
        let index = RunIndex::open(Arc::clone(&vfs), dir.path()).unwrap();
        check_against_model(&index, n, &mut Rng::new(3));
        assert!(index.verify_files(&mut |_| true).unwrap() > 0);
    }

    /// A power cut at every sync the indexes make, during writes and merges: the runs that
    /// open hold exactly the first `k` entries, `k` at least what the last finished `sync`
    /// covered, and every look-up over them is right.
    #[test]
    fn every_crash_state_opens_to_a_correct_prefix() {
        let fs = SimFs::new();
        let dir = Path::new("/data/indexes");
        let synced = Arc::new(Mutex::new(0u64));
        let states: Arc<Mutex<Vec<(u64, crate::storage::vfs::SimState)>>> = Arc::default();
        {
            let synced = Arc::clone(&synced);
            let states = Arc::clone(&states);
            fs.set_sync_hook(Some(Box::new(move |state| {
                let floor = *synced.lock().unwrap();
                states.lock().unwrap().push((floor, state.clone()));
            })));
        }
        let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
        let mut rng = Rng::new(11);
        let mut n = 0;
        {
            let index = RunIndex::open_with(Arc::clone(&vfs), dir, 5, 1 << 20, false).unwrap();
            for _ in 0..40 {
                let batch: Vec<Indexed> = (n..n + rng.range(1, 8)).map(entry).collect();
                n += batch.len() as u64;
                index.add(&batch).unwrap();
                if rng.chance(30) {
                    index.sync().unwrap();
                    *synced.lock().unwrap() = n;
                }
            }
            index.sync().unwrap();
            *synced.lock().unwrap() = n;
        }
        fs.set_sync_hook(None);
        let states = std::mem::take(&mut *states.lock().unwrap());
        assert!(states.len() > 30, "{} sync points", states.len());
        let mut opened = 0;
        for (point, (floor, state)) in states.iter().enumerate() {
            for (what, crashed) in crash_states(state, &mut rng) {
                let index = RunIndex::open_with(Arc::new(crashed), dir, 5, 1 << 20, false)
                    .unwrap_or_else(|e| panic!("sync point {point}, {what}: {e}"));
                let k = index.indexed().unwrap();
                assert!(
                    k >= *floor && k <= n,
                    "sync point {point}, {what}: {k} < {floor}"
                );
                for i in (0..k).step_by(3) {
                    assert_eq!(index.check(&entry(i)).unwrap(), None, "{point} {what} {i}");
                }
                assert_eq!(index.index_of_leaf(&entry(k).leaf_hash).unwrap(), None);
                let mut census = Census::default();
                (0..k).for_each(|i| census.add(&entry(i)));
                let found = index.census().unwrap();
                assert_eq!(found, census, "sync point {point}, {what}");
                opened += 1;
            }
        }
        assert!(opened > 100, "{opened} crash states");
    }
}
