//! Offline work on a data folder, with the server stopped: `evidentd verify-store` replays
//! the whole log and holds every index against it; `evidentd reindex` rebuilds the indexes
//! from the entries.
//!
//! Both replay the log from its recorded genesis with [`evident_core::audit::Replay`] — the
//! same checks as `evident audit` over gRPC — so a signature, a registry change or a policy
//! version that the registry did not allow at its time is found here too.

use std::path::Path;

use evident_core::audit::{Replay, Summary};
use evident_core::merkle::{Frontier, SubtreeSource};
use evident_core::note::{Checkpoint, Verifier};
use evident_core::registry::GenesisDocument;

use crate::store::{Census, Indexed, Store, StoreError};

/// Why a data folder failed a check, or could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// The folder could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Something other than an entry is wrong: the key, the checkpoint, the genesis.
    #[error("{0}")]
    Setup(String),
    /// The first entry that is wrong.
    #[error("entry {index}: {problem}")]
    Entry {
        /// Its index.
        index: u64,
        /// What is wrong.
        problem: String,
    },
    /// Index keys that no entry accounts for.
    #[error("{0}")]
    Index(String),
}

/// What a verified store holds.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The replay's summary.
    pub summary: Summary,
    /// The signed checkpoint the entries were held against.
    pub checkpoint: Option<Checkpoint>,
    /// Index keys checked.
    pub index_keys: u64,
}

fn entry(index: u64, problem: impl Into<String>) -> MaintenanceError {
    MaintenanceError::Entry {
        index,
        problem: problem.into(),
    }
}

/// Opens a stopped server's store; a running server holds the store's lock. Indexes too
/// damaged to open do not stop it: `verify-store` reports them, `reindex` replaces them.
pub fn open(dir: &Path) -> Result<Store, MaintenanceError> {
    if !dir.join(crate::store::LOG_FOLDER).exists() && !crate::storage::legacy::is_legacy(dir) {
        return Err(MaintenanceError::Setup(format!(
            "{} holds no Evident store (no log folder)",
            dir.display()
        )));
    }
    Store::open_lenient(dir).map_err(|e| {
        MaintenanceError::Setup(format!(
            "opening the store in {}: {e} (stop evidentd first: it holds the store's lock)",
            dir.display()
        ))
    })
}

/// The log's verifier key: `pinned` (text or a file holding it), else the folder's log.pub.
pub fn verifier(dir: &Path, pinned: Option<&str>) -> Result<Verifier, MaintenanceError> {
    let text = match pinned {
        Some(p) if Path::new(p).is_file() => std::fs::read_to_string(p)
            .map_err(|e| MaintenanceError::Setup(format!("reading {p}: {e}")))?,
        Some(p) => p.to_owned(),
        None => {
            let path = dir.join(crate::logkey::PUB_FILE);
            std::fs::read_to_string(&path).map_err(|e| {
                MaintenanceError::Setup(format!(
                    "reading {}: {e} (or pin the key with --log-key)",
                    path.display()
                ))
            })?
        }
    };
    Verifier::parse(text.trim())
        .map_err(|e| MaintenanceError::Setup(format!("the log key does not parse: {e}")))
}

fn genesis(store: &Store) -> Result<evident_core::registry::Registry, MaintenanceError> {
    let json = store
        .genesis()?
        .ok_or_else(|| MaintenanceError::Setup("the store has no recorded genesis".to_owned()))?;
    let document: GenesisDocument = serde_json::from_slice(&json)
        .map_err(|e| MaintenanceError::Setup(format!("the recorded genesis is malformed: {e}")))?;
    document
        .to_registry()
        .map_err(|e| MaintenanceError::Setup(format!("the recorded genesis is invalid: {e}")))
}

/// Replays every entry of the store from its genesis: chain, signatures against the
/// registry of the time, registry and policy entries, every tree node, the signed
/// checkpoint, and every index key in both directions. Calls `progress(done, total)`.
pub fn verify_store(
    store: &Store,
    verifier: &Verifier,
    mut progress: impl FnMut(u64, u64),
) -> Result<Verified, MaintenanceError> {
    let checkpoint = store
        .checkpoint()?
        .map(|note| {
            Checkpoint::verify(&note, verifier).map_err(|e| {
                MaintenanceError::Setup(format!(
                    "the stored checkpoint does not verify under the log key: {e}"
                ))
            })
        })
        .transpose()?;
    let size = store.size()?;
    if let Some(cp) = &checkpoint {
        if cp.size > size {
            return Err(MaintenanceError::Setup(format!(
                "the store holds {size} entries but the log signed a checkpoint of {}: \
                 entries {size}..{} are missing",
                cp.size, cp.size
            )));
        }
    }
    let mut replay = Replay::new(genesis(store)?);
    let mut frontier = Frontier::new();
    let mut census = Census::default();
    let mut leaves = Vec::with_capacity(size as usize);
    for index in 0..size {
        let bytes = store
            .entry(index)?
            .ok_or_else(|| entry(index, "is missing"))?;
        let (record, leaf_hash, facts) =
            replay.push(&bytes).map_err(|e| entry(e.index, e.problem))?;
        leaves.push(leaf_hash);
        for node in frontier.append(leaf_hash) {
            let stored = store
                .subtree_hash(node.level, node.index)
                .map_err(|e| entry(index, e.to_string()))?;
            if stored != node.hash {
                return Err(entry(
                    index,
                    format!(
                        "tree node (level {}, index {}) is {stored}, the entries give {}",
                        node.level, node.index, node.hash
                    ),
                ));
            }
        }
        let indexed = Indexed {
            index,
            leaf_hash,
            dedupe_key: facts.dedupe_key(record.envelope()),
            kind: record.kind(),
            facts,
        };
        if let Some(problem) = store.index().check(&indexed)? {
            return Err(entry(
                index,
                format!("{problem} in the indexes (run `evidentd reindex`)"),
            ));
        }
        census.add(&indexed);
        if let Some(cp) = &checkpoint {
            if cp.size == index + 1 {
                replay
                    .check_checkpoint(cp)
                    .map_err(|e| entry(e.index, e.problem))?;
            }
        }
        if index % 10_000 == 0 {
            progress(index, size);
        }
    }
    progress(size, size);
    // Everything the entries need is there (checked above); anything more points nowhere.
    let stored = store.index().census()?;
    if stored != census {
        return Err(MaintenanceError::Index(format!(
            "the indexes hold {stored:?}, the entries account for {census:?}: some index \
             entries point to entries that do not have them (run `evidentd reindex`)"
        )));
    }
    // The verifiable index the server rebuilds at start, from the indexes' key lists, is
    // the one the entries give.
    let mut stored_index = evident_core::vindex::IndexBuilder::new();
    store.index().list_keys(size, &mut |key, index| {
        let leaf_hash = leaves.get(index as usize).copied().ok_or_else(|| {
            StoreError::Corrupt(format!("the key lists name entry {index}, beyond the log"))
        })?;
        stored_index
            .insert(*key, evident_core::vindex::Element { index, leaf_hash })
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    })?;
    stored_index.set_size(size);
    let (stored_root, replayed_root) = (stored_index.root(), replay.index_root());
    if Some(stored_root) != replayed_root {
        return Err(MaintenanceError::Index(format!(
            "the indexes' key lists give verifiable index root {stored_root}, the entries \
             {}: the lists were edited or lost (run `evidentd reindex`)",
            replayed_root.map(|r| r.to_string()).unwrap_or_default()
        )));
    }
    let index_keys = census.leaf_hashes
        + census.dedupe_keys
        + census.postings
        + census.signer_records
        + census.policy_versions;
    Ok(Verified {
        summary: replay.summary().clone(),
        checkpoint,
        index_keys,
    })
}

/// Rebuilds every index from the entries: replays the whole log first (a damaged log
/// changes nothing and the error names the entry), then removes the derived keys, writes
/// each entry's keys again and makes the store durable. Returns the number of entries.
pub fn reindex(store: &Store, mut progress: impl FnMut(u64, u64)) -> Result<u64, MaintenanceError> {
    let size = store.size()?;
    let genesis = genesis(store)?;
    let mut replay = Replay::new(genesis.clone());
    for index in 0..size {
        let bytes = store
            .entry(index)?
            .ok_or_else(|| entry(index, "is missing: the log itself is damaged"))?;
        replay
            .push(&bytes)
            .map_err(|e| entry(e.index, format!("{} (nothing was changed)", e.problem)))?;
        if index % 10_000 == 0 {
            progress(index, 2 * size);
        }
    }
    store.index().clear()?;
    tracing::info!("old indexes removed");
    let mut replay = Replay::new(genesis);
    let mut batch = Vec::new();
    for index in 0..size {
        let bytes = store
            .entry(index)?
            .ok_or_else(|| entry(index, "disappeared during the reindex"))?;
        let (record, leaf_hash, facts) =
            replay.push(&bytes).map_err(|e| entry(e.index, e.problem))?;
        batch.push(Indexed {
            index,
            leaf_hash,
            dedupe_key: facts.dedupe_key(record.envelope()),
            kind: record.kind(),
            facts,
        });
        if batch.len() >= 10_000 {
            store.index().add(&std::mem::take(&mut batch))?;
            progress(size + index + 1, 2 * size);
        }
    }
    store.index().add(&batch)?;
    store.sync()?;
    progress(2 * size, 2 * size);
    Ok(size)
}

/// Moves a data folder of the layout before the log's own files (everything in sled, in
/// `db/`) to the current one: every entry is replayed from the genesis — chain, times,
/// signatures against the registry of their time, registry and policy entries — and held
/// against the signed checkpoint, then written to the log files and indexed. The old
/// folder is kept as `db.pre-migration` until the operator removes it. Returns the number
/// of entries.
pub fn migrate(dir: &Path, progress: impl FnMut(u64, u64)) -> Result<u64, MaintenanceError> {
    let created = !crate::store::FOLDERS.iter().any(|f| dir.join(f).exists());
    let size = match migrate_into(dir, progress) {
        Ok(size) => size,
        Err(e) => {
            if created {
                // Nothing half-migrated is left: the old store in db/ was only read.
                for folder in crate::store::FOLDERS {
                    let _ = std::fs::remove_dir_all(dir.join(folder));
                }
            }
            return Err(e);
        }
    };
    // The new store is complete and durable: from here on it is the store, whatever happens
    // to the old one's name.
    let kept = dir.join("db.pre-migration");
    std::fs::rename(dir.join("db"), &kept)
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| {
            MaintenanceError::Setup(format!(
                "the store is migrated, but moving the old one aside failed ({e}): rename {} to \
                 {} by hand before starting evidentd",
                dir.join("db").display(),
                kept.display()
            ))
        })?;
    Ok(size)
}

fn migrate_into(dir: &Path, mut progress: impl FnMut(u64, u64)) -> Result<u64, MaintenanceError> {
    use crate::storage::LogStore as _;
    use crate::storage::legacy::{self, SledLog};

    if !legacy::is_legacy(dir) {
        return Err(MaintenanceError::Setup(format!(
            "{} holds no store of the old layout (no db folder): nothing to migrate",
            dir.display()
        )));
    }
    for folder in crate::store::FOLDERS {
        let path = dir.join(folder);
        if path.exists() {
            return Err(MaintenanceError::Setup(format!(
                "{} already exists: an earlier migration did not finish. Remove it (the old \
                 store in db/ is untouched) and run `evidentd migrate` again",
                path.display()
            )));
        }
    }
    let old = SledLog::open(dir).map_err(|e| {
        MaintenanceError::Setup(format!(
            "opening the old store in {}: {e} (stop evidentd first: it holds the store's lock)",
            dir.display()
        ))
    })?;
    let genesis_json = old
        .genesis()?
        .ok_or_else(|| MaintenanceError::Setup("the old store has no recorded genesis".into()))?;
    let document: GenesisDocument = serde_json::from_slice(&genesis_json)
        .map_err(|e| MaintenanceError::Setup(format!("the recorded genesis is malformed: {e}")))?;
    let registry = document
        .to_registry()
        .map_err(|e| MaintenanceError::Setup(format!("the recorded genesis is invalid: {e}")))?;
    let note = old.checkpoint()?;
    let checkpoint = match &note {
        Some(note) => Some(
            Checkpoint::verify(note, &verifier(dir, None)?).map_err(|e| {
                MaintenanceError::Setup(format!(
                    "the old store's checkpoint does not verify under the log key: {e}"
                ))
            })?,
        ),
        None => None,
    };
    let size = old.size();
    if let Some(cp) = &checkpoint {
        if cp.size > size {
            return Err(MaintenanceError::Setup(format!(
                "the old store holds {size} entries but the log signed a checkpoint of {}",
                cp.size
            )));
        }
    }
    let new = Store::create(dir)?;
    new.set_genesis(&genesis_json)?;
    let mut replay = Replay::new(registry);
    let mut frontier = Frontier::new();
    let mut at = 0;
    while at < size {
        let records = old.entries(at, (at + 10_000).min(size))?;
        if records.is_empty() {
            return Err(entry(at, "is missing from the old store"));
        }
        let mut batch = Vec::with_capacity(records.len());
        let mut nodes = Vec::new();
        for bytes in records {
            let (record, leaf_hash, facts) = replay
                .push(&bytes)
                .map_err(|e| entry(e.index, format!("{} (nothing was migrated)", e.problem)))?;
            nodes.extend(frontier.append(leaf_hash));
            batch.push(crate::store::NewEntry {
                indexed: Indexed {
                    index: record.index(),
                    leaf_hash,
                    dedupe_key: facts.dedupe_key(record.envelope()),
                    kind: record.kind(),
                    facts,
                },
                record: bytes,
            });
            if let Some(cp) = &checkpoint {
                if cp.size == replay.size() {
                    replay
                        .check_checkpoint(cp)
                        .map_err(|e| entry(e.index, e.problem))?;
                }
            }
        }
        at += batch.len() as u64;
        new.append(batch, &nodes)?;
        progress(at, size);
    }
    if let Some(note) = &note {
        new.set_checkpoint_durably(note)?;
    }
    new.sync()?;
    Ok(size)
}

/// What a PostgreSQL store holds once its schema is this build's.
#[derive(Debug, Clone)]
pub struct PgSchemaState {
    /// Entries in its log.
    pub entries: u64,
    /// Whether a genesis is recorded (a server has started on it).
    pub genesis: bool,
    /// The size of its stored checkpoint, if any.
    pub checkpoint_size: Option<u64>,
}

/// `evidentd migrate` for a store in PostgreSQL: applies the schema migrations this build
/// knows (opening the store does, each in its own transaction, one migrator at a time) and
/// reads what the store holds. Entries are not replayed: `evidentd copy` and the start-up
/// check do that.
pub fn migrate_postgres(
    target: &crate::storage::postgres::PgTarget,
) -> Result<PgSchemaState, MaintenanceError> {
    let store = Store::open_postgres(target)?;
    let checkpoint_size = store
        .checkpoint()?
        .map(|note| {
            // The size line of the note, read without the key: this is a report, not a check.
            note.lines()
                .nth(1)
                .and_then(|line| line.parse::<u64>().ok())
                .ok_or_else(|| {
                    MaintenanceError::Setup("the stored checkpoint is malformed".to_owned())
                })
        })
        .transpose()?;
    Ok(PgSchemaState {
        entries: store.size()?,
        genesis: store.genesis()?.is_some(),
        checkpoint_size,
    })
}
