//! The witness proper: the rules of `add-checkpoint` (c2sp.org/tlog-witness), in the order
//! the specification states them, and the latest cosigned checkpoint of each log.
//!
//! The check of the old size and the update of the stored checkpoint happen under one
//! lock per log, held until the new checkpoint is durable: two requests for the same log
//! never interleave, so a smaller checkpoint can never replace a larger one (the
//! specification's rollback race). Everything here is synchronous and may block on
//! fsync; the HTTP layer runs it on the blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use evident_core::cosign::{CosignError, Cosigner, CosignerKey};
use evident_core::merkle::{empty_root, verify_consistency};
use evident_core::note::{NoteError, Verifier};

use crate::config::Config;
use crate::request::{AddCheckpoint, Malformed};
use crate::state::{StateError, Store, Stored, origin_hash};

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The key file could not be read.
    #[error("reading witness key {path}: {source}")]
    ReadKey {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file does not hold a witness private key.
    #[error("witness key {path}: {source}")]
    Key {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: CosignError,
    },
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why an `add-checkpoint` request was refused; each maps to one HTTP status
/// ([`AddError::status`]), and its message is the one-line body the log operator reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The body breaks the request format (400).
    #[error("malformed request: {0}")]
    Malformed(#[from] Malformed),
    /// The checkpoint's origin is not a log this witness follows (404).
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// No trusted key signed the checkpoint, or a trusted key's line does not verify (403).
    #[error("checkpoint for {origin:?} is not validly signed by a trusted log key: {source}")]
    Unverified {
        /// The origin.
        origin: String,
        /// What the note verification said.
        source: NoteError,
    },
    /// The old size is above the checkpoint's size (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldAboveSize {
        /// The old size.
        old: u64,
        /// The checkpoint size.
        size: u64,
    },
    /// The old size is not the size the witness holds (409, with that size).
    #[error("old size {old} does not match the latest cosigned size {stored}")]
    Conflict {
        /// The old size given.
        old: u64,
        /// The size the witness holds.
        stored: u64,
    },
    /// A checkpoint of size 0 with another root than the empty tree's (422).
    #[error("a checkpoint of size 0 must have the empty tree's root {}", empty_root().to_base64())]
    EmptyRoot,
    /// A consistency proof sent with an old size of 0 (422).
    #[error("old size is 0, so the consistency proof must be empty, got {0} line(s)")]
    ProofFromZero(usize),
    /// The consistency proof does not verify against the stored root (422).
    #[error("consistency proof from size {old} to {size} does not verify: {why}")]
    Inconsistent {
        /// The old size.
        old: u64,
        /// The checkpoint size.
        size: u64,
        /// What the verification said.
        why: String,
    },
    /// A checkpoint of the size the witness holds with another root: a fork (422).
    #[error(
        "fork: checkpoint of size {size} has root {submitted}, the witness cosigned root {held} \
         at that size"
    )]
    Fork {
        /// The size.
        size: u64,
        /// The root the witness holds, base64.
        held: String,
        /// The root submitted, base64.
        submitted: String,
    },
    /// The new checkpoint could not be made durable (500).
    #[error("storing the checkpoint failed")]
    State(#[source] StateError),
    /// The cosignature could not be made (500).
    #[error("cosigning failed")]
    Cosign(#[source] CosignError),
}

impl AddError {
    /// The HTTP status code the specification assigns.
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed(_) | AddError::OldAboveSize { .. } => 400,
            AddError::Unverified { .. } => 403,
            AddError::UnknownOrigin(_) => 404,
            AddError::Conflict { .. } => 409,
            AddError::EmptyRoot
            | AddError::ProofFromZero(_)
            | AddError::Inconsistent { .. }
            | AddError::Fork { .. } => 422,
            AddError::State(_) | AddError::Cosign(_) => 500,
        }
    }
}

/// One followed log: the keys trusted for it and the latest checkpoint cosigned.
#[derive(Debug)]
struct Log {
    keys: Vec<Verifier>,
    /// Held from the old-size check until the new checkpoint is durable.
    latest: Mutex<Option<Stored>>,
}

/// A witness: its key, the logs it follows, and its state.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    /// Invariant: the key set is fixed at start; only each log's `latest` changes.
    logs: BTreeMap<String, Log>,
    /// Origin hash (lowercase hex) → origin, for the monitoring path.
    by_hash: HashMap<String, String>,
    store: Store,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Witness {
    /// Reads the key and the state named by the configuration. A state file for an origin
    /// no longer configured is kept on disk, and not served.
    pub fn open(config: &Config) -> Result<Witness, OpenError> {
        let text =
            std::fs::read_to_string(&config.key_file).map_err(|source| OpenError::ReadKey {
                path: config.key_file.clone(),
                source,
            })?;
        let cosigner = Cosigner::parse_private(&text).map_err(|source| OpenError::Key {
            path: config.key_file.clone(),
            source,
        })?;
        let store = Store::open(&config.state_dir)?;
        let loaded = store.load()?;
        Ok(Witness::new(cosigner, config, store, loaded))
    }

    fn new(
        cosigner: Cosigner,
        config: &Config,
        store: Store,
        mut loaded: BTreeMap<String, Stored>,
    ) -> Witness {
        let mut logs = BTreeMap::new();
        let mut by_hash = HashMap::new();
        for (origin, keys) in &config.logs {
            let latest = loaded.remove(origin);
            if let Some(stored) = &latest {
                tracing::info!(
                    origin = %origin,
                    size = stored.checkpoint.size,
                    root = %stored.checkpoint.root.to_base64(),
                    "loaded latest cosigned checkpoint"
                );
            }
            by_hash.insert(origin_hash(origin), origin.clone());
            logs.insert(
                origin.clone(),
                Log {
                    keys: keys.clone(),
                    latest: Mutex::new(latest),
                },
            );
        }
        for origin in loaded.keys() {
            tracing::warn!(origin = %origin, "state for a log no longer in the configuration: kept on disk, not served");
        }
        Witness {
            cosigner,
            logs,
            by_hash,
            store,
        }
    }

    /// The witness's public key (its verifier key text is `to_string()`).
    pub fn key(&self) -> &CosignerKey {
        self.cosigner.key()
    }

    /// Handles an `add-checkpoint` body; on success returns the cosignature line(s).
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        let request = AddCheckpoint::parse(body)?;
        let checkpoint = &request.checkpoint;
        let log = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| AddError::UnknownOrigin(checkpoint.origin.clone()))?;
        verify_signed(&request, &log.keys)?;
        if request.old > checkpoint.size {
            return Err(AddError::OldAboveSize {
                old: request.old,
                size: checkpoint.size,
            });
        }
        // From here to the durable write, no other request for this log runs. A panic in
        // another holder left no half-written state (the file is replaced atomically).
        let mut latest = log.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let stored_size = latest.as_ref().map_or(0, |s| s.checkpoint.size);
        if request.old != stored_size {
            return Err(AddError::Conflict {
                old: request.old,
                stored: stored_size,
            });
        }
        if checkpoint.size == 0 && checkpoint.root != empty_root() {
            return Err(AddError::EmptyRoot);
        }
        if request.old == 0 && !request.proof.is_empty() {
            return Err(AddError::ProofFromZero(request.proof.len()));
        }
        if let Some(held) = latest.as_ref() {
            self.check_consistent(&request, held)?;
        }
        let timestamp = now();
        let line = self
            .cosigner
            .cosign(&request.note.text, timestamp)
            .map_err(AddError::Cosign)?;
        let stored = Stored {
            checkpoint: checkpoint.clone(),
            note: self.with_own_line(&request, &line),
        };
        self.store.save(&stored).map_err(AddError::State)?;
        tracing::info!(
            origin = %checkpoint.origin,
            old = request.old,
            size = checkpoint.size,
            root = %checkpoint.root.to_base64(),
            "cosigned checkpoint"
        );
        *latest = Some(stored);
        Ok(line)
    }

    /// The checks against the held checkpoint, once the old size matches its size.
    fn check_consistent(&self, request: &AddCheckpoint, held: &Stored) -> Result<(), AddError> {
        let checkpoint = &request.checkpoint;
        if checkpoint.size == held.checkpoint.size {
            if checkpoint.root != held.checkpoint.root {
                return Err(self.fork(request, held));
            }
            if !request.proof.is_empty() {
                return Err(AddError::Inconsistent {
                    old: request.old,
                    size: checkpoint.size,
                    why: "the sizes are equal, so the proof must be empty".into(),
                });
            }
            return Ok(());
        }
        if held.checkpoint.size == 0 {
            // Every tree extends the empty tree; no proof is needed (or allowed, above).
            return Ok(());
        }
        verify_consistency(
            held.checkpoint.size,
            checkpoint.size,
            &request.proof,
            &held.checkpoint.root,
            &checkpoint.root,
        )
        .map_err(|e| {
            tracing::info!(
                origin = %checkpoint.origin,
                old = held.checkpoint.size,
                size = checkpoint.size,
                error = %e,
                "refused a checkpoint whose consistency proof does not verify"
            );
            AddError::Inconsistent {
                old: request.old,
                size: checkpoint.size,
                why: e.to_string(),
            }
        })
    }

    /// Logs and records a fork: evidence that the log signed two trees of one size.
    fn fork(&self, request: &AddCheckpoint, held: &Stored) -> AddError {
        let checkpoint = &request.checkpoint;
        let held_root = held.checkpoint.root.to_base64();
        let submitted_root = checkpoint.root.to_base64();
        match self
            .store
            .record_fork(held, &request.note_text, checkpoint, now())
        {
            Ok(path) => tracing::warn!(
                origin = %checkpoint.origin,
                size = checkpoint.size,
                cosigned_root = %held_root,
                submitted_root = %submitted_root,
                evidence = %path.display(),
                "FORK: the log signed two different trees of the same size"
            ),
            Err(e) => tracing::error!(
                origin = %checkpoint.origin,
                size = checkpoint.size,
                cosigned_root = %held_root,
                submitted_root = %submitted_root,
                error = %e,
                "FORK: the log signed two different trees of the same size, and recording \
                 the evidence failed"
            ),
        }
        AddError::Fork {
            size: checkpoint.size,
            held: held_root,
            submitted: submitted_root,
        }
    }

    /// The submitted note with the witness's own earlier lines dropped and `line` added.
    fn with_own_line(&self, request: &AddCheckpoint, line: &str) -> String {
        let own = format!("\u{2014} {} ", self.key().name());
        let key = self.key();
        let mut note = request.note.text.clone();
        note.push('\n');
        let block = &request.note_text[request.note.text.len() + 1..];
        for (text, sig) in block.lines().zip(&request.note.signatures) {
            if text.starts_with(&own) && sig.id == key.id() {
                continue;
            }
            note.push_str(text);
            note.push('\n');
        }
        note.push_str(line);
        note
    }

    /// The latest cosigned checkpoint of the log whose origin hashes to `hash` (lowercase
    /// hex SHA-256), with the witness's cosignature: what `GET /<hash>/checkpoint` serves.
    pub fn latest(&self, hash: &str) -> Option<String> {
        let origin = self.by_hash.get(hash)?;
        let log = self.logs.get(origin)?;
        let latest = log.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest.as_ref().map(|s| s.note.clone())
    }

    /// The size of the latest cosigned checkpoint of `origin`, if any.
    pub fn latest_size(&self, origin: &str) -> Option<u64> {
        let log = self.logs.get(origin)?;
        let latest = log.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest.as_ref().map(|s| s.checkpoint.size)
    }
}

/// The note must carry a valid signature by at least one trusted key, and no line naming a
/// trusted key may fail to verify.
fn verify_signed(request: &AddCheckpoint, keys: &[Verifier]) -> Result<(), AddError> {
    let unverified = |source| AddError::Unverified {
        origin: request.checkpoint.origin.clone(),
        source,
    };
    let mut verified = false;
    let mut first_missing = None;
    for key in keys {
        match request.note.verify(key) {
            Ok(()) => verified = true,
            Err(e @ NoteError::UnverifiedNote(_)) => {
                first_missing.get_or_insert(e);
            }
            Err(e) => return Err(unverified(e)),
        }
    }
    if verified {
        Ok(())
    } else {
        Err(unverified(first_missing.unwrap_or_else(|| {
            NoteError::UnverifiedNote("any trusted key".into())
        })))
    }
}
