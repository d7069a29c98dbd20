//! The witness's state on disk: for each log, the latest checkpoint it cosigned, one file
//! per origin (`<state_dir>/logs/<hex SHA-256 of the origin>.checkpoint`, the note as the
//! log submitted it with the witness's cosignature appended), and the evidence of every
//! fork it refused (`<state_dir>/forks/`).
//!
//! Durability contract: when [`Store::save`] returns, the new checkpoint survives a crash
//! or power loss — it is written to a temporary file, fsynced, renamed over the old one,
//! and the directory is fsynced. A crash at any point leaves either the old file or the
//! new one, never a mix. This module must never answer a request or decide what to
//! cosign; the witness calls it while holding the log's lock.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use evident_core::Hash;
use evident_core::note::{Checkpoint, Note};

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file or directory could not be read, written or synced.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A state file does not hold a checkpoint the witness could have written.
    #[error("corrupt state file {path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The latest checkpoint cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The note: the log's signatures as submitted, then the witness's cosignature(s).
    pub note: String,
}

/// The lowercase hex SHA-256 of an origin: the name of its state file and of its
/// monitoring path.
pub fn origin_hash(origin: &str) -> String {
    Hash::sha256(origin.as_bytes()).to_hex()
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    logs: PathBuf,
    forks: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        let store = Store {
            logs: dir.join("logs"),
            forks: dir.join("forks"),
        };
        for d in [dir, &store.logs, &store.forks] {
            fs::create_dir_all(d).map_err(|source| StateError::Io {
                what: "creating state directory",
                path: d.to_owned(),
                source,
            })?;
        }
        // The new directories' entries are durable before any checkpoint is written in
        // them.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StateError::Io {
                what: "syncing directory",
                path: dir.to_owned(),
                source,
            })?;
        Ok(store)
    }

    fn path_of(&self, origin: &str) -> PathBuf {
        self.logs
            .join(format!("{}.checkpoint", origin_hash(origin)))
    }

    /// Reads every log's latest checkpoint, by origin. A file that does not parse, or whose
    /// origin does not match its name, is an error naming the file; temporary files of an
    /// interrupted write are removed.
    pub fn load(&self) -> Result<BTreeMap<String, Stored>, StateError> {
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { what, path, source }
        };
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(&self.logs).map_err(io("reading", &self.logs))? {
            let path = entry.map_err(io("reading", &self.logs))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                // A write that never reached its rename: the previous file still stands.
                fs::remove_file(&path).map_err(io("removing", &path))?;
                continue;
            }
            let Some(hash) = name.strip_suffix(".checkpoint") else {
                continue;
            };
            let corrupt = |why: String| StateError::Corrupt {
                path: path.clone(),
                why,
            };
            let text = fs::read_to_string(&path).map_err(|e| corrupt(e.to_string()))?;
            let note = Note::parse(&text).map_err(|e| corrupt(e.to_string()))?;
            let checkpoint =
                Checkpoint::parse_body(&note.text).map_err(|e| corrupt(e.to_string()))?;
            if origin_hash(&checkpoint.origin) != hash {
                return Err(corrupt(format!(
                    "holds origin {:?}, whose file name would be {}.checkpoint",
                    checkpoint.origin,
                    origin_hash(&checkpoint.origin)
                )));
            }
            out.insert(
                checkpoint.origin.clone(),
                Stored {
                    checkpoint,
                    note: text,
                },
            );
        }
        Ok(out)
    }

    /// Durably replaces a log's latest checkpoint (see the module's contract).
    pub fn save(&self, stored: &Stored) -> Result<(), StateError> {
        write_durably(
            &self.logs,
            &self.path_of(&stored.checkpoint.origin),
            stored.note.as_bytes(),
        )
    }

    /// Durably records a refused fork: the checkpoint the witness holds and the one of the
    /// same size with another root, both validly signed by the log. Returns the file.
    pub fn record_fork(
        &self,
        held: &Stored,
        submitted_note: &str,
        submitted: &Checkpoint,
        observed_at: u64,
    ) -> Result<PathBuf, StateError> {
        let path = self.forks.join(format!(
            "{}-{}-{}.txt",
            origin_hash(&held.checkpoint.origin),
            held.checkpoint.size,
            &submitted.root.to_hex()[..16]
        ));
        let text = format!(
            "evident-witness fork evidence: two checkpoints of the same size with different \
             roots, both signed by a trusted log key\n\
             origin: {}\nsize: {}\ncosigned root: {}\nsubmitted root: {}\nobserved at: {}\n\
             \n--- checkpoint cosigned by this witness ---\n{}\
             --- checkpoint submitted, refused ---\n{}",
            held.checkpoint.origin,
            held.checkpoint.size,
            held.checkpoint.root.to_base64(),
            submitted.root.to_base64(),
            observed_at,
            held.note,
            submitted_note
        );
        write_durably(&self.forks, &path, text.as_bytes())?;
        Ok(path)
    }
}

/// Temporary file, write, fsync, rename over `path`, fsync the directory.
fn write_durably(dir: &Path, path: &Path, data: &[u8]) -> Result<(), StateError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Io { what, path, source }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        file.write_all(data).map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io("renaming into place", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))?;
    Ok(())
}
