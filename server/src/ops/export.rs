//! `evidentd export-tiles DIR`: the log written as a static C2SP tlog-tiles tree — the
//! files a web server or an object store can serve as they are, with the same paths and
//! bytes as the tiles listener (`api/tiles.rs`, docs/FORMAT.md section 8).
//!
//! The store's checkpoint is verified under the log key before anything is written. A
//! folder that already holds an export is extended, never rewritten: its `checkpoint` must
//! verify under the same key and its tree must be a prefix of the store's (the store's root
//! at the old size equals the old checkpoint's root), and only the tiles and entry bundles
//! that the larger tree adds are written ([`resources_new_between`]) — full tiles already
//! there are never touched. The `checkpoint` file is written last, atomically (a temporary
//! file, fsync, rename), so a reader of the folder never sees a checkpoint whose tiles are
//! not all there. With witnesses configured, `evidentd` passes in the store's checkpoint
//! with their cosignatures (`engine::witnessing::cosign_store_checkpoint`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use evident_core::merkle;
use evident_core::note::{Checkpoint, Verifier};
use evident_core::tiles::{BundleError, BundleId, Resource, TileId, encode_bundle};

use crate::store::{Store, StoreError};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The tree size of the checkpoint exported before, if the folder held one.
    pub previous: Option<u64>,
    /// The tree size of the checkpoint exported now.
    pub size: u64,
    /// Hash tiles written.
    pub tiles: u64,
    /// Entry bundles written.
    pub bundles: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The store's checkpoint or the folder's earlier export does not verify, or is not
    /// this log's: nothing was written.
    #[error("{0}")]
    Verification(String),
    /// An entry cannot be carried by an entry bundle.
    #[error(
        "entry {index} is a leaf record of {len} bytes: a tlog-tiles entry bundle cannot carry \
         a record over 65535 bytes, so this log cannot be exported as tiles"
    )]
    TooLarge {
        /// The entry's index.
        index: u64,
        /// Its leaf record's length.
        len: usize,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Something else is wrong (no checkpoint, a short store).
    #[error("{0}")]
    Setup(String),
}

impl ExportError {
    /// Whether the store or the folder failed a check (exit 1), rather than could not be
    /// read or written (exit 2).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            ExportError::Verification(_) | ExportError::TooLarge { .. }
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The checks an export makes before writing anything: `note` (else the store's latest
/// checkpoint) verifies under the log key, the store holds every entry it covers and its
/// tree has its root, and an export already in `dir` is a prefix of it. Returns the note,
/// what it says, and the size of the export already there.
pub fn check(
    store: &Store,
    verifier: &Verifier,
    dir: &Path,
    note: Option<String>,
) -> Result<(String, Checkpoint, Option<u64>), ExportError> {
    let note = match note {
        Some(note) => note,
        None => store
            .checkpoint()?
            .ok_or_else(|| ExportError::Setup("the store holds no signed checkpoint yet".into()))?,
    };
    let checkpoint = Checkpoint::verify(&note, verifier).map_err(|e| {
        ExportError::Verification(format!(
            "the store's checkpoint does not verify under the log key: {e}"
        ))
    })?;
    let size = checkpoint.size;
    let held = store.size()?;
    if held < size {
        return Err(ExportError::Verification(format!(
            "the store holds {held} entries but the log signed a checkpoint of {size}"
        )));
    }
    let root = merkle::root(store, size)
        .map_err(|e| ExportError::Setup(format!("computing the root of {size} entries: {e}")))?;
    if root != checkpoint.root {
        return Err(ExportError::Verification(format!(
            "the store's tree of {size} entries has root {root}, its signed checkpoint says {}",
            checkpoint.root
        )));
    }
    let previous = previous_export(store, verifier, dir, &checkpoint)?;
    Ok((note, checkpoint, previous))
}

/// Writes the tiles of `store`'s signed checkpoint into `dir` (made if missing), after the
/// checkpoint already there if any; `verifier` is the log key. `note` is the checkpoint to
/// export — the store's, with the witnesses' cosignatures — or `None` for the store's
/// latest as it is. Everything [`check`] checks is checked first. See the module's docs.
pub fn export_tiles(
    store: &Store,
    verifier: &Verifier,
    dir: &Path,
    note: Option<String>,
) -> Result<Exported, ExportError> {
    let (note, checkpoint, previous) = check(store, verifier, dir, note)?;
    let size = checkpoint.size;
    let old = previous.unwrap_or(0);
    let mut exported = Exported {
        previous,
        size,
        tiles: 0,
        bundles: 0,
    };
    for resource in evident_core::tiles::resources_new_between(old, size) {
        let bytes = match resource {
            Resource::Tile(id) => {
                exported.tiles += 1;
                tile(store, id)?
            }
            Resource::Entries(id) => {
                exported.bundles += 1;
                bundle(store, id)?
            }
        };
        write_file(&dir.join(resource.path()), &bytes)?;
    }
    write_file(&dir.join("checkpoint"), note.as_bytes())?;
    Ok(exported)
}

/// The size of the export already in `dir`, checked: it verifies under the log key, is not
/// larger than `checkpoint`, and the store's tree at its size has its root.
fn previous_export(
    store: &Store,
    verifier: &Verifier,
    dir: &Path,
    checkpoint: &Checkpoint,
) -> Result<Option<u64>, ExportError> {
    let path = dir.join("checkpoint");
    let note = match std::fs::read_to_string(&path) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let old = Checkpoint::verify(&note, verifier).map_err(|e| {
        ExportError::Verification(format!(
            "{}: the exported checkpoint does not verify under the log key ({e}): this folder \
             holds another log's tiles; export into an empty folder",
            path.display()
        ))
    })?;
    if old.size > checkpoint.size {
        return Err(ExportError::Verification(format!(
            "{}: the folder holds an export of {} entries, the store's checkpoint has only {}: \
             the store is behind its own export (an old backup?)",
            path.display(),
            old.size,
            checkpoint.size
        )));
    }
    let root = merkle::root(store, old.size).map_err(|e| {
        ExportError::Setup(format!("computing the root of {} entries: {e}", old.size))
    })?;
    if root != old.root {
        return Err(ExportError::Verification(format!(
            "{}: the exported tree of {} entries has root {}, the store's has {root}: the \
             folder's log is not a prefix of this one (a fork)",
            path.display(),
            old.size,
            old.root
        )));
    }
    Ok(Some(old.size))
}

/// The hashes of tile `id`, in one read of the store.
fn tile(store: &Store, id: TileId) -> Result<Vec<u8>, ExportError> {
    let level = 8 * u32::from(id.level());
    let first = id.index() * 256;
    let wanted: Vec<(u32, u64)> = (0..u64::from(id.width()))
        .map(|i| (level, first + i))
        .collect();
    let hashes = store.subtree_hashes(&wanted)?;
    let mut bytes = Vec::with_capacity(id.byte_len());
    for hash in hashes {
        bytes.extend_from_slice(hash.as_bytes());
    }
    Ok(bytes)
}

/// The leaf records of bundle `id`, encoded.
fn bundle(store: &Store, id: BundleId) -> Result<Vec<u8>, ExportError> {
    let first = id.index() * 256;
    let end = first + u64::from(id.width());
    let records = store.entries(first, end)?;
    if records.len() as u64 != end - first {
        return Err(ExportError::Verification(format!(
            "entry {} is missing from the store",
            first + records.len() as u64
        )));
    }
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    encode_bundle(&refs).map_err(|e| match e {
        BundleError::TooLarge { index, len } => ExportError::TooLarge {
            index: first + index as u64,
            len,
        },
        other => ExportError::Setup(format!("{}: {other}", id.path())),
    })
}

/// Writes `bytes` to `path` through a temporary file, synced and renamed into place (and
/// the folder synced), so a reader never sees half a file and the checkpoint, written
/// last, never survives a crash that lost one of its tiles.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let dir = path
        .parent()
        .expect("every exported path is inside the export folder");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .expect("every exported path names a file")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
