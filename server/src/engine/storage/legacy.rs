//! The data-folder layout before the log moved to its own files: everything in one sled
//! tree in `DATA_DIR/db`. `evidentd migrate` reads the log from it ([`SledLog`]) and writes
//! the current layout; the server refuses to start on it.
//!
//! The log's keys in that tree: `L` ‖ index (u64 BE) → leaf record; `N` ‖ level (u8) ‖
//! index (u64 BE) → complete-subtree hash; `Mcheckpoint` → the latest signed checkpoint;
//! `Mgenesis` → the genesis (JSON). The other prefixes held the indexes, which the new
//! layout rebuilds from the entries.

use std::path::Path;
use std::sync::Mutex;

use evident_core::Hash;
use evident_core::merkle::Node;

use super::{LogStore, StoreError};

const LEAF: u8 = b'L';
const NODE: u8 = b'N';
const META_CHECKPOINT: &[u8] = b"Mcheckpoint";
const META_GENESIS: &[u8] = b"Mgenesis";

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

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

/// Whether `data_dir` holds a store of the old layout.
pub fn is_legacy(data_dir: &Path) -> bool {
    data_dir.join("db").join("db").is_file() || data_dir.join("db").join("conf").is_file()
}

/// The log half of an old-layout store.
#[derive(Debug)]
pub struct SledLog {
    db: sled::Db,
    size: Mutex<u64>,
}

impl SledLog {
    /// Opens the old store in `data_dir/db`.
    pub fn open(data_dir: &Path) -> Result<SledLog, StoreError> {
        let db = sled::Config::new()
            .path(data_dir.join("db"))
            .cache_capacity(64 << 20)
            .open()
            .map_err(sled_err("opening the old store"))?;
        let size = match db
            .scan_prefix([LEAF])
            .next_back()
            .transpose()
            .map_err(sled_err("reading the last entry"))?
        {
            None => 0,
            Some((key, _)) => {
                let raw: [u8; 8] = key[1..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("an entry key is malformed".into()))?;
                u64::from_be_bytes(raw) + 1
            }
        };
        Ok(SledLog {
            db,
            size: Mutex::new(size),
        })
    }

    fn get(&self, key: &[u8], op: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(sled_err(op))?.map(|v| v.to_vec()))
    }
}

impl LogStore for SledLog {
    fn size(&self) -> u64 {
        *self.size.lock().expect("never poisoned")
    }

    fn append(&self, records: &[Vec<u8>], nodes: &[Node]) -> Result<(), StoreError> {
        let mut size = self.size.lock().expect("never poisoned");
        let mut batch = sled::Batch::default();
        for (n, record) in records.iter().enumerate() {
            batch.insert(&leaf_key(*size + n as u64)[..], record.as_slice());
        }
        for node in nodes {
            batch.insert(&node_key(node.level, node.index)[..], node.hash.as_bytes());
        }
        self.db.apply_batch(batch).map_err(sled_err("writing"))?;
        self.db.flush().map_err(sled_err("flushing"))?;
        *size += records.len() as u64;
        Ok(())
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if index >= self.size() {
            return Ok(None);
        }
        self.get(&leaf_key(index), "reading an entry")
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = end.min(self.size());
        if start >= end {
            return Ok(Vec::new());
        }
        self.db
            .range(leaf_key(start)..leaf_key(end))
            .map(|item| {
                item.map(|(_, v)| v.to_vec())
                    .map_err(sled_err("reading entries"))
            })
            .collect()
    }

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let value = self
            .get(&node_key(level, index), "reading a tree node")?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "tree node (level {level}, index {index}) is missing"
                ))
            })?;
        Hash::from_slice(&value).map_err(|e| {
            StoreError::Corrupt(format!("tree node (level {level}, index {index}): {e}"))
        })
    }

    fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.get(META_CHECKPOINT, "reading the checkpoint")?
            .map(|v| {
                String::from_utf8(v)
                    .map_err(|_| StoreError::Corrupt("stored checkpoint is not UTF-8".into()))
            })
            .transpose()
    }

    fn set_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.db
            .insert(META_CHECKPOINT, note.as_bytes())
            .map_err(sled_err("writing the checkpoint"))?;
        Ok(())
    }

    fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(META_GENESIS, "reading the genesis")
    }

    fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError> {
        self.db
            .insert(META_GENESIS, json)
            .map_err(sled_err("writing the genesis"))?;
        self.db.flush().map_err(sled_err("flushing"))?;
        Ok(())
    }
}
