//! The Evident client library: what a pipeline or release tool links to talk to the ledger,
//! and to check its answers offline with `evident-core`.
//!
//! - [`Client`]: submit envelopes, read entries, checkpoints and proofs over gRPC.
//! - [`CheckpointState`]: the last checkpoint this client verified; every newer one must be
//!   proven consistent with it, so a forked or rolled-back log is caught.
//! - Receipts are verified with [`evident_core::receipt::Receipt::verify`].
//! - [`gate`]: the release gate (may this artifact or release ship under this policy?) and
//!   the recording of its verdict in the ledger.
//! - [`submit`]: submission of signed envelopes, of files in batches, and of trust-registry
//!   changes, with their receipts verified.
//! - [`keyfile`]: signing key files (made, read) and the check on files holding secrets.
//! - [`attest`]: in-toto Statements signed into DSSE envelopes.
//! - [`audit`]: the auditor's queries (proven on request), the releases of a period with
//!   their recorded verdicts, and the replay of the whole log from its genesis.
//! - [`bundle`]: evidence bundles exported, with their attestations in the in-toto form.
//! - [`signers`]: how a registered signer key's status is described to people.
//! - [`output`]: the types of the CLI's `--format json` output, to read it back.
//! - [`report`]: the auditor's report of verified releases, as HTML and Markdown.
//! - [`oscal`]: the same report as an OSCAL 1.1.2 assessment-results document.
//! - [`reader`]: where a log is read from ([`reader::LogReader`]): the gRPC API, or
//!   [`tiles`], the log's C2SP tlog-tiles over HTTP or from a folder.

pub mod attest;
pub mod audit;
pub mod bundle;
pub mod gate;
pub mod keyfile;
pub mod oscal;
pub mod output;
pub mod reader;
pub mod report;
pub mod signers;
pub mod submit;
pub mod tiles;

use std::path::{Path, PathBuf};

use evident_core::cosign::{Cosigned, WitnessPolicy};
use evident_core::merkle;
use evident_core::note::{Checkpoint, Note, Verifier};
use evident_core::receipt::Receipt;
use serde::{Deserialize, Serialize};

use crate::reader::LogReader;

// The typed gRPC client is `evident-api`'s, shared with `evidentd backup`; these are the
// paths this library has always offered.
pub use evident_api::{
    Bearer, Client, ClientError, ConnectOptions, Credentials, Entry, Hit,
    MAX_ENVELOPES_PER_REQUEST, PolicyDocument, Query, QueryPage, Release, RetryPolicy, Selector,
    SignerHistory, SignerListing, SubmitAnswer, SubmitStream, is_retryable,
};

/// Now, in nanoseconds since the Unix epoch (the ledger's time unit).
pub fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A time in nanoseconds as RFC 3339 text (UTC, nanosecond precision), as the CLI and
/// the ledger's JSON show it.
pub fn time_text(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Checks that a checkpoint note the log signed (`checkpoint` is what it says) carries the
/// cosignatures `witnesses` requires; with no witnesses required, nothing is checked.
///
/// A checkpoint that enough independent witnesses cosigned is one they all saw as an
/// extension of every earlier checkpoint of the log: a fork shown to this client alone has
/// no such cosignatures, even to a client with no saved state.
pub fn check_witnesses(
    witnesses: &WitnessPolicy,
    note: &str,
    checkpoint: &Checkpoint,
) -> Result<Vec<Cosigned>, ClientError> {
    if witnesses.threshold() == 0 {
        return Ok(Vec::new());
    }
    let parsed =
        Note::parse(note).map_err(|e| ClientError::Verification(format!("checkpoint: {e}")))?;
    witnesses.check(&parsed, checkpoint).map_err(|e| {
        ClientError::Verification(format!(
            "{e}: without the witnesses' word this checkpoint may be a view of the log shown \
             only to this client (a fork); retry once the witnesses have cosigned, or check \
             that the witnesses are up"
        ))
    })
}

/// `receipt` again, proven against the log's latest witnessed checkpoint once one covers
/// it: waits up to `wait`, asking every half second. The result is not yet verified.
pub async fn witnessed_receipt(
    client: &mut Client,
    receipt: Receipt,
    wait: std::time::Duration,
) -> Result<Receipt, ClientError> {
    let deadline = tokio::time::Instant::now() + wait;
    let index = receipt.index;
    loop {
        let seen = match client.checkpoint_at(true).await {
            Ok(note) => Some(note),
            // None cosigned yet.
            Err(ClientError::Status {
                code: tonic::Code::Unavailable,
                ..
            }) => None,
            Err(e) => return Err(e),
        };
        if let Some(note) = seen {
            let size = Note::parse(&note)
                .ok()
                .and_then(|n| Checkpoint::parse_body(&n.text).ok())
                .map(|c| c.size)
                .ok_or_else(|| {
                    ClientError::Response("the witnessed checkpoint does not parse".into())
                })?;
            if size > index {
                let (tree_size, proof, _, _) =
                    client.inclusion_proof(Selector::Index(index), size).await?;
                return Ok(Receipt {
                    tree_size,
                    proof,
                    checkpoint: note,
                    ..receipt
                });
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Verification(format!(
                "entry {index} is logged, but no witnessed checkpoint covered it within {} s: \
                 the witnesses are slow or down; the receipt without their cosignatures was \
                 not accepted",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// What [`CheckpointState::refresh`] found.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The latest checkpoint, verified and proven consistent with the last one seen.
    pub checkpoint: Checkpoint,
    /// The tree size of the last checkpoint seen before, if any.
    pub previous: Option<u64>,
    /// The checkpoint's signed note, as the server sent it.
    pub note: String,
}

/// The last checkpoint a client verified, per log, kept in a small JSON file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Verifier key text → the last verified checkpoint note.
    logs: std::collections::BTreeMap<String, String>,
}

impl CheckpointState {
    /// Where the state is kept when no file is named: `$XDG_STATE_HOME/evident/checkpoints.json`,
    /// else `$HOME/.local/state/evident/checkpoints.json`, else `./evident/checkpoints.json`.
    pub fn default_path() -> PathBuf {
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("evident").join("checkpoints.json")
    }

    /// Fetches the latest checkpoint from `client`, verifies it under `log_key`, proves it
    /// consistent with the last one kept in `path` and saves it there.
    ///
    /// With witnesses required, the latest witnessed checkpoint is fetched instead, and
    /// refused without their cosignatures.
    pub async fn refresh<R: LogReader>(
        client: &mut R,
        log_key: &Verifier,
        witnesses: &WitnessPolicy,
        path: &Path,
    ) -> Result<Refreshed, ClientError> {
        let note = client.read_checkpoint(witnesses.threshold() > 0).await?;
        let mut state = CheckpointState::load(path)?;
        let previous = state.last(log_key)?.map(|c| c.size);
        let checkpoint = state
            .advance_witnessed(client, log_key, witnesses, &note)
            .await?;
        state.save(path)?;
        Ok(Refreshed {
            checkpoint,
            previous,
            note,
        })
    }

    /// Compares the checkpoint of a bundle verified offline with the last one seen from its
    /// log: an older one hides whatever was logged since (a request for changes, a failing
    /// scan, a revocation, a stricter policy version) and is refused, as online; the same
    /// size with another root is a fork.
    pub fn check_bundle(
        &self,
        log_key: &Verifier,
        checkpoint: &Checkpoint,
    ) -> Result<(), ClientError> {
        let Some(seen) = self.last(log_key)? else {
            return Ok(());
        };
        if seen.size > checkpoint.size {
            return Err(ClientError::Verification(format!(
                "the bundle's checkpoint of {} entries is older than the checkpoint of {} \
                 entries this machine verified before: fetch a current bundle",
                checkpoint.size, seen.size
            )));
        }
        if seen.size == checkpoint.size && seen.root != checkpoint.root {
            return Err(ClientError::Verification(format!(
                "fork: the bundle's checkpoint of {} entries has another root than the one seen before",
                seen.size
            )));
        }
        Ok(())
    }

    /// Compares the checkpoint of a receipt verified offline with the last one seen from its
    /// log: the same size with another root is a fork.
    pub fn check_receipt(
        &self,
        log_key: &Verifier,
        checkpoint: &Checkpoint,
    ) -> Result<(), ClientError> {
        if let Some(seen) = self.last(log_key)? {
            if seen.size == checkpoint.size && seen.root != checkpoint.root {
                return Err(ClientError::Verification(format!(
                    "fork: the receipt's checkpoint of {} entries has root {}, the one seen before has {}",
                    seen.size, checkpoint.root, seen.root
                )));
            }
        }
        Ok(())
    }

    /// Verifies the inclusion proof sent with `entry` (asked for with a proof): its
    /// checkpoint is verified under `log_key` and proven consistent with the last one seen
    /// (advancing this state; saving it is the caller's), and the entry's leaf is proven
    /// included in that tree. Returns the tree size it is proven in.
    pub async fn prove_inclusion<R: LogReader>(
        &mut self,
        client: &mut R,
        log_key: &Verifier,
        entry: &Entry,
    ) -> Result<u64, ClientError> {
        let (size, hashes) = entry
            .proof
            .clone()
            .ok_or_else(|| ClientError::Invalid("the server sent no inclusion proof".into()))?;
        let note = entry.checkpoint.clone().ok_or_else(|| {
            ClientError::Invalid("the server sent no checkpoint with the proof".into())
        })?;
        let checkpoint = self.advance(client, log_key, &note).await?;
        if checkpoint.size != size {
            return Err(ClientError::Verification(format!(
                "the proof is for tree size {size}, the checkpoint for {}",
                checkpoint.size
            )));
        }
        merkle::verify_inclusion(
            entry.record.index(),
            size,
            &entry.leaf_hash,
            &hashes,
            &checkpoint.root,
        )
        .map_err(|e| ClientError::Verification(format!("inclusion proof: {e}")))?;
        Ok(size)
    }

    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<CheckpointState, ClientError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ClientError::State {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CheckpointState::default()),
            Err(e) => Err(ClientError::State {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes the state file atomically (write, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let err = |e: std::io::Error| ClientError::State {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        // A name of our own, so two processes never write the same temporary file.
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).expect("a map of strings serializes");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(text.as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// The last verified checkpoint of the log with this key. A stored note that no longer
    /// verifies is an error, never "nothing seen yet": that would disable rollback detection.
    pub fn last(&self, log_key: &Verifier) -> Result<Option<Checkpoint>, ClientError> {
        match self.logs.get(&log_key.to_string()) {
            None => Ok(None),
            Some(note) => Checkpoint::verify(note, log_key).map(Some).map_err(|e| {
                ClientError::Inconsistent(format!(
                    "the checkpoint stored for this log no longer verifies ({e}): the state file \
                     was edited; remove it only if you trust the log again"
                ))
            }),
        }
    }

    /// [`CheckpointState::advance`], after checking that `note` carries the cosignatures
    /// `witnesses` requires.
    pub async fn advance_witnessed<R: LogReader>(
        &mut self,
        client: &mut R,
        log_key: &Verifier,
        witnesses: &WitnessPolicy,
        note: &str,
    ) -> Result<Checkpoint, ClientError> {
        let checkpoint = Checkpoint::verify(note, log_key)?;
        check_witnesses(witnesses, note, &checkpoint)?;
        self.advance(client, log_key, note).await
    }

    /// Verifies `note` under `log_key` and proves it consistent with the last checkpoint
    /// seen (reading the proof from `client`: the gRPC API or the log's tiles), then
    /// remembers it if it is newer.
    ///
    /// Fails on a bad signature, on a smaller tree than seen before (a rollback), on the
    /// same size with another root, or on a consistency proof that does not verify (a fork).
    pub async fn advance<R: LogReader>(
        &mut self,
        client: &mut R,
        log_key: &Verifier,
        note: &str,
    ) -> Result<Checkpoint, ClientError> {
        let new = Checkpoint::verify(note, log_key)?;
        if let Some(old) = self.last(log_key)? {
            if new.size < old.size && client.may_lag() {
                return Err(ClientError::Invalid(format!(
                    "stale: the source serves a checkpoint of {} entries, older than the one of \
                     {} entries this client verified before (a mirror or cache that lags, \
                     witnesses behind the log, or a log rolled back); nothing older is \
                     accepted: retry later, or read the log itself",
                    new.size, old.size
                )));
            }
            if new.size < old.size {
                return Err(ClientError::Inconsistent(format!(
                    "rollback: the log presents a checkpoint of {} entries, but this client \
                     already verified one of {} entries",
                    new.size, old.size
                )));
            }
            // What a checkpoint signs beside its root (the registry and policy digests, the
            // verifiable index root) is derived from the same entries: two notes of one size
            // must sign the same lines, and a log that signed its index once keeps doing so.
            // The only change allowed is the index line appearing (a server upgraded).
            let index_line = |c: &Checkpoint| {
                c.extensions
                    .iter()
                    .find(|l| l.starts_with("evident-index "))
                    .cloned()
            };
            if index_line(&old).is_some() && index_line(&new).is_none() {
                return Err(ClientError::Inconsistent(format!(
                    "the log signed a verifiable index root up to its checkpoint of {} entries, \
                     and its checkpoint of {} entries signs none: a log does not stop \
                     committing its index",
                    old.size, new.size
                )));
            }
            if new.size == old.size {
                if new.root != old.root {
                    return Err(ClientError::Inconsistent(format!(
                        "fork: two checkpoints of {} entries with different roots ({} and {})",
                        new.size, old.root, new.root
                    )));
                }
                let mut without_index = new.extensions.clone();
                if index_line(&old).is_none() {
                    without_index.retain(|l| !l.starts_with("evident-index "));
                }
                if without_index != old.extensions {
                    return Err(ClientError::Inconsistent(format!(
                        "fork: two checkpoints of {} entries with the same root sign different \
                         lines ({:?} and {:?}): the log shows different index or registry \
                         commitments for one log",
                        new.size, old.extensions, new.extensions
                    )));
                }
                if index_line(&old).is_none() && index_line(&new).is_some() {
                    self.logs.insert(log_key.to_string(), note.to_owned());
                }
                return Ok(new);
            }
            if old.size > 0 {
                let proof = client.read_consistency_proof(old.size, new.size).await?;
                merkle::verify_consistency(old.size, new.size, &proof, &old.root, &new.root)
                    .map_err(|e| {
                        ClientError::Inconsistent(format!(
                            "fork: the checkpoint of {} entries is not consistent with the \
                             one of {} entries verified before: {e}",
                            new.size, old.size
                        ))
                    })?;
            }
        }
        self.logs.insert(log_key.to_string(), note.to_owned());
        Ok(new)
    }
}
