//! `evidentd backup`: a verified copy of a running server's log in a new data folder.
//!
//! A live server holds its data folder's lock and writes its files, so the copy is not made
//! from the files: it is
//! downloaded from the running server over gRPC (`GetCheckpoint`, then `GetEntries` up to
//! that checkpoint's size), which also makes it consistent by construction — the entries a
//! signed checkpoint covers never change. Nothing is copied blindly: the checkpoint must
//! verify under the pinned log key, and the entries are replayed from the genesis with
//! [`evident_core::audit::Replay`] (chain, times, signatures against the registry of the
//! time, registry and policy entries) and held against the checkpoint
//! ([`Replay::check_checkpoint`]) before the backup is finished.
//!
//! The backup is written as a new store through the same [`Store::append`] the sequencer
//! uses: each leaf record, the tree nodes [`Frontier::append`] completes, and the indexes
//! over the [`Facts`](evident_core::audit::Facts) the replay returns. Then the genesis, the verified checkpoint note, `log.pub`, `genesis.json` and —
//! when the server's data folder is given and readable — the private `log.key`. A server
//! started on the folder passes its start-up check, because the folder holds exactly the
//! entries the checkpoint covers. `docs/BACKUP.md` is the operator's guide.
//!
//! It speaks gRPC through `evident-api`'s typed [`Client`], the one the `evident` CLI uses
//! (TLS, the bearer token never sent in plaintext off this machine, paging): it sees no
//! `evident-proto` type (`server` never depends on `client`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use evident_api::{Client, ClientError, ConnectOptions, Credentials, RetryPolicy};
use evident_core::audit::{AuditError, Replay};
use evident_core::merkle::{Frontier, Node};
use evident_core::note::{Checkpoint, Signer, Verifier};
use evident_core::registry::GenesisDocument;

use crate::logkey::{KEY_FILE, PUB_FILE, write_private};
use crate::store::{Indexed, NewEntry, Store, StoreError};

/// File name of the genesis document in a data folder (written by `evidentd` at start).
pub const GENESIS_FILE: &str = "genesis.json";

/// Entries written per [`Store::append`] (one atomic batch and one fsync each).
const BATCH_ENTRIES: usize = 10_000;
/// Leaf-record bytes written per [`Store::append`], at most (plus one page).
const BATCH_BYTES: usize = 16 << 20;
/// Pages of entries downloaded ahead of the replay.
const PAGES_AHEAD: usize = 4;

/// The options of `evidentd backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// The running server, `http://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The folder to write the backup into: it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The server's data folder, read only (its store is not opened): the default log key
    /// (log.pub) and genesis (genesis.json), and the private log.key to include.
    #[arg(long, value_name = "SRC")]
    pub data_dir: Option<PathBuf>,
    /// The log's verifier key (`name+id+base64`, or a file holding it) [default:
    /// SRC/log.pub].
    #[arg(long, env = "EVIDENT_LOG_KEY")]
    pub log_key: Option<String>,
    /// The log's genesis document (JSON) [default: SRC/genesis.json].
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// The CA certificate (PEM) of an `https://` server (for a certificate it made:
    /// SRC/tls/ca.pem) [default: the system's trusted roots].
    #[arg(long, env = "EVIDENT_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// A bearer token with the auditor role, or a file holding one (mode 0600).
    #[arg(long, env = "EVIDENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Why a backup failed. Nothing is left in the output folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// An option, an input file or the output folder is unusable.
    #[error("{0}")]
    Setup(String),
    /// The server could not be reached, or answered a call with an error.
    #[error("{0}")]
    Server(String),
    /// The served log does not verify: its checkpoint under the log key, an entry in the
    /// replay, or the replayed tree against the checkpoint. Nothing was kept.
    #[error("the served log does not verify: {0}")]
    Verification(String),
    /// Writing the backup failed.
    #[error("writing the backup in {dir}: {source}")]
    Write {
        /// The output folder.
        dir: PathBuf,
        /// What failed.
        source: StoreError,
    },
}

impl BackupError {
    /// Whether the served log failed verification (exit 1) rather than the backup failing
    /// for another reason (exit 2).
    pub fn is_verification_failure(&self) -> bool {
        matches!(self, BackupError::Verification(_))
    }
}

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The output folder.
    pub dir: PathBuf,
    /// Entries copied: exactly the checkpoint's size.
    pub entries: u64,
    /// The verified checkpoint the backup covers (stored in it as the signed note).
    pub checkpoint: Checkpoint,
    /// Whether the private log key was copied into the backup; `Err` says why not.
    pub log_key: Result<PathBuf, String>,
    /// An administrator key found in the source folder, which the backup leaves out.
    pub admin_key_left_out: Option<PathBuf>,
}

/// Connects to `--from`: `https://` with the CA of `--ca` (else the system's trusted
/// roots), or plaintext `http://`; with the bearer token of `--token` on every call, which
/// is refused over plaintext to another machine.
pub async fn connect(args: &BackupArgs) -> Result<Client, BackupError> {
    let ca = match &args.ca {
        Some(ca) => Some(
            std::fs::read(ca)
                .map_err(|e| BackupError::Setup(format!("--ca: reading {}: {e}", ca.display())))?,
        ),
        None => None,
    };
    let token = match &args.token {
        Some(t) if Path::new(t).is_file() => {
            crate::tls::check_private(Path::new(t))
                .map_err(|e| BackupError::Setup(format!("--token: {e}")))?;
            Some(
                std::fs::read_to_string(t)
                    .map_err(|e| BackupError::Setup(format!("--token: reading {t}: {e}")))?
                    .trim()
                    .to_owned(),
            )
        }
        other => other.clone(),
    };
    let credentials = Credentials {
        ca,
        identity: None,
        token,
    };
    // A backup is one long read: no deadline per call, and a failure ends it (nothing is
    // kept), so it is not retried.
    let options = ConnectOptions {
        timeout: None,
        retry: RetryPolicy::NONE,
    };
    Client::connect_with_options(&args.from, &credentials, &options)
        .await
        .map_err(|e| BackupError::Server(e.to_string()))
}

/// What `evidentd backup` runs: connects to `--from`, makes the backup and prints what it
/// holds.
pub fn command(args: &BackupArgs) -> Result<Completed, BackupError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BackupError::Setup(format!("starting the async runtime: {e}")))?;
    let started = std::time::Instant::now();
    let completed = runtime.block_on(async {
        // Refuse a non-empty folder before touching the network.
        check_out_dir(&args.out)?;
        let client = connect(args).await?;
        backup(client, args).await
    })?;
    println!(
        "backup of {} entries at checkpoint {} {} in {} ({:.1?})",
        completed.entries,
        completed.checkpoint.size,
        completed.checkpoint.root,
        completed.dir.display(),
        started.elapsed()
    );
    match &completed.log_key {
        Ok(path) => println!(
            "private log key: INCLUDED ({}, mode 0600): store the backup as a secret",
            path.display()
        ),
        Err(why) => println!(
            "private log key: NOT included ({why}); a restored server needs it: put the log's \
             {KEY_FILE} from your secret store into the folder before starting it"
        ),
    }
    if let Some(path) = &completed.admin_key_left_out {
        println!(
            "administrator key {} was not copied: keep administrator keys apart from backups",
            path.display()
        );
    }
    Ok(completed)
}

/// Makes a verified backup of the server behind `channel` into `args.out`: see the module
/// documentation. On any error, whatever was written into the output folder is removed.
pub async fn backup(client: Client, args: &BackupArgs) -> Result<Completed, BackupError> {
    let out = args.out.clone();
    check_out_dir(&out)?;
    let verifier = log_verifier(args)?;
    let (genesis_path, genesis) = genesis_document(args)?;
    let registry = genesis.to_registry().map_err(|e| {
        BackupError::Setup(format!(
            "the genesis in {} is invalid: {e}",
            genesis_path.display()
        ))
    })?;
    let private_key = private_log_key(args.data_dir.as_deref(), &verifier)?;

    let mut client = client;
    let note = client
        .checkpoint()
        .await
        .map_err(|e| server_error("GetCheckpoint", e))?;
    let checkpoint = Checkpoint::verify(&note, &verifier).map_err(|e| {
        BackupError::Verification(format!(
            "the server's checkpoint does not verify under the log key {verifier}: {e}"
        ))
    })?;

    let created_dir = !out.exists();
    std::fs::create_dir_all(&out).map_err(|e| {
        BackupError::Setup(format!("creating the backup folder {}: {e}", out.display()))
    })?;
    let written = write_backup(
        client,
        &out,
        &note,
        &checkpoint,
        Replay::new(registry),
        &genesis,
        &verifier,
        private_key.as_ref().ok(),
    )
    .await;
    match written {
        Ok(log_key) => Ok(Completed {
            dir: out.clone(),
            entries: checkpoint.size,
            checkpoint,
            log_key: match (log_key, private_key) {
                (Some(path), _) => Ok(path),
                (None, Err(why)) => Err(why),
                (None, Ok(_)) => Err("it was not written".to_owned()),
            },
            admin_key_left_out: args
                .data_dir
                .as_ref()
                .map(|src| src.join(crate::genesis::ADMIN_KEY_FILE))
                .filter(|p| p.exists()),
        }),
        Err(e) => {
            remove_partial(&out, created_dir);
            Err(e)
        }
    }
}

/// The output folder must not exist, or be an empty folder.
fn check_out_dir(out: &Path) -> Result<(), BackupError> {
    check_empty_folder(out, "backup folder").map_err(BackupError::Setup)
}

/// `folder` (described as `what`) must not exist, or be an empty folder: what a new store
/// and its files are written into.
pub(crate) fn check_empty_folder(folder: &Path, what: &str) -> Result<(), String> {
    match std::fs::read_dir(folder) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "the {what} {} is not empty: give a new or empty folder (nothing was \
                     changed)",
                    folder.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "the {what} {} cannot be used: {e}",
            folder.display()
        )),
    }
}

/// The log key: `--log-key` (text or a file), else SRC/log.pub.
fn log_verifier(args: &BackupArgs) -> Result<Verifier, BackupError> {
    verifier_of(args.log_key.as_deref(), args.data_dir.as_deref()).map_err(BackupError::Setup)
}

/// A log's verifier key: `pinned` (the key's text, or a file holding it), else `folder`'s
/// log.pub. `Err` says what is missing or wrong, naming the option.
pub(crate) fn verifier_of(pinned: Option<&str>, folder: Option<&Path>) -> Result<Verifier, String> {
    let (text, from) = match (pinned, folder) {
        (Some(k), _) if Path::new(k).is_file() => (
            std::fs::read_to_string(k).map_err(|e| format!("reading the log key {k}: {e}"))?,
            format!("the log key in {k}"),
        ),
        (Some(k), _) => (k.to_owned(), "--log-key".to_owned()),
        (None, Some(src)) => {
            let path = src.join(PUB_FILE);
            (
                std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "reading {}: {e} (or pin the key with --log-key)",
                        path.display()
                    )
                })?,
                path.display().to_string(),
            )
        }
        (None, None) => {
            return Err(
                "no log key: give --log-key, or --data-dir with the server's data \
                        folder (its log.pub)"
                    .to_owned(),
            );
        }
    };
    Verifier::parse(text.trim()).map_err(|e| format!("{from} is not a log verifier key: {e}"))
}

/// The genesis document: `--genesis`, else SRC/genesis.json.
fn genesis_document(args: &BackupArgs) -> Result<(PathBuf, GenesisDocument), BackupError> {
    let path = match (&args.genesis, &args.data_dir) {
        (Some(path), _) => path.clone(),
        (None, Some(src)) => src.join(GENESIS_FILE),
        (None, None) => {
            return Err(BackupError::Setup(
                "no genesis: give --genesis FILE, or --data-dir with the server's data folder \
                 (its genesis.json)"
                    .to_owned(),
            ));
        }
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| BackupError::Setup(format!("reading the genesis {}: {e}", path.display())))?;
    let document = serde_json::from_slice(&bytes).map_err(|e| {
        BackupError::Setup(format!(
            "the genesis {} is not a genesis document: {e}",
            path.display()
        ))
    })?;
    Ok((path, document))
}

/// The private log key's text from SRC/log.key: `Err` (with the reason) when there is no
/// SRC or the file cannot be read; a readable key of another log is an error.
fn private_log_key(
    src: Option<&Path>,
    verifier: &Verifier,
) -> Result<Result<String, String>, BackupError> {
    match src {
        Some(src) => private_log_key_in(src, verifier).map_err(BackupError::Setup),
        None => Ok(Err("no --data-dir given".to_owned())),
    }
}

/// The private log key's text from `folder`/log.key: `Ok(Err(why))` when the file cannot
/// be read; `Err` when it is not a log key, or the key of another log than `verifier`'s.
pub(crate) fn private_log_key_in(
    folder: &Path,
    verifier: &Verifier,
) -> Result<Result<String, String>, String> {
    let path = folder.join(KEY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => return Ok(Err(format!("{} is not readable: {e}", path.display()))),
    };
    // Never echo the text: it is the secret key.
    let signer = Signer::parse_private(&text)
        .map_err(|e| format!("{} is not a log key: {e}", path.display()))?;
    if signer.verifier() != verifier {
        return Err(format!(
            "{} is the key of {}, not of the log being copied ({verifier}): is {} this \
             server's data folder?",
            path.display(),
            signer.verifier(),
            folder.display()
        ));
    }
    Ok(Ok(text.trim_end().to_owned()))
}

/// A failed call: a log that signed entries it cannot return fails verification.
fn server_error(call: &str, e: ClientError) -> BackupError {
    let text = format!("{call}: {e}");
    match e {
        ClientError::Status {
            code: tonic::Code::DataLoss,
            ..
        }
        | ClientError::Verification(_) => BackupError::Verification(text),
        _ => BackupError::Server(text),
    }
}

/// Downloads, replays and writes the store, then the files beside it. Returns the path of
/// the private log key when it was written.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every value distinct"
)]
async fn write_backup(
    client: Client,
    out: &Path,
    note: &str,
    checkpoint: &Checkpoint,
    replay: Replay,
    genesis: &GenesisDocument,
    verifier: &Verifier,
    private_key: Option<&String>,
) -> Result<Option<PathBuf>, BackupError> {
    let write_err = |source| BackupError::Write {
        dir: out.to_owned(),
        source,
    };
    let size = checkpoint.size;
    let store = Store::open(out).map_err(write_err)?;
    let mut pages = client.entry_pages(0, size, PAGES_AHEAD);
    let mut batches = Batches::new(replay);
    while batches.size() < size {
        let (_, page) = pages
            .next()
            .await
            .ok_or_else(|| {
                BackupError::Server(format!(
                    "the download stopped at entry {} of {size}",
                    batches.size()
                ))
            })?
            // Pages come in order, each replayed before the next is read: a failed one
            // starts where the replay is.
            .map_err(|e| server_error(&format!("GetEntries from entry {}", batches.size()), e))?;
        for leaf in page {
            batches
                .push(leaf)
                .map_err(|e| BackupError::Verification(e.to_string()))?;
            if batches.size() % 10_000 == 1 {
                tracing::info!(done = batches.size() - 1, total = size, "backing up");
            }
        }
        if batches.is_full() {
            batches.write(&store).map_err(write_err)?;
        }
    }
    // Held against the checkpoint before the genesis, the checkpoint and the files are
    // written; on failure the caller removes the entries written so far.
    batches
        .check_checkpoint(checkpoint)
        .map_err(|e| BackupError::Verification(e.to_string()))?;
    let genesis_json = serde_json::to_vec(genesis)
        .map_err(|e| BackupError::Setup(format!("encoding the genesis: {e}")))?;
    batches
        .finish(&store, &genesis_json, note)
        .map_err(write_err)?;
    drop(store);
    write_folder_files(out, verifier, genesis, private_key).map_err(|(path, e)| {
        BackupError::Write {
            dir: out.to_owned(),
            source: StoreError::Io {
                op: "writing",
                path,
                source: e,
            },
        }
    })
}

/// A log's leaf records, replayed in order from the genesis and gathered — with the tree
/// nodes they complete ([`Frontier::append`]) and their index keys (the replay's facts) —
/// into batches for [`Store::append`]: how a backup and a copy write a verified log into a
/// new store. Only replayed entries are ever queued, so a store written from it holds a
/// prefix of a log that replayed cleanly.
pub(crate) struct Batches {
    replay: Replay,
    frontier: Frontier,
    entries: Vec<NewEntry>,
    nodes: Vec<Node>,
    /// Leaf-record bytes queued in `entries`.
    bytes: usize,
}

impl Batches {
    /// Batches of a log replayed with `replay` (new, over the log's genesis).
    pub(crate) fn new(replay: Replay) -> Batches {
        Batches {
            replay,
            frontier: Frontier::new(),
            entries: Vec::new(),
            nodes: Vec::new(),
            bytes: 0,
        }
    }

    /// Entries replayed so far.
    pub(crate) fn size(&self) -> u64 {
        self.replay.size()
    }

    /// Replays the next entry and queues it; the error names the entry.
    pub(crate) fn push(&mut self, leaf: Vec<u8>) -> Result<(), AuditError> {
        let (rec, leaf_hash, facts) = self.replay.push(&leaf)?;
        self.nodes.extend(self.frontier.append(leaf_hash));
        self.bytes += leaf.len();
        self.entries.push(NewEntry {
            indexed: Indexed {
                index: rec.index(),
                leaf_hash,
                dedupe_key: facts.dedupe_key(rec.envelope()),
                kind: rec.kind(),
                facts,
            },
            record: leaf,
        });
        Ok(())
    }

    /// Whether enough is queued for one [`Store::append`].
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES
    }

    /// Appends what is queued to `store` (durable when this returns).
    pub(crate) fn write(&mut self, store: &Store) -> Result<(), StoreError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        store.append(std::mem::take(&mut self.entries), &self.nodes)?;
        self.nodes.clear();
        self.bytes = 0;
        Ok(())
    }

    /// Holds the entries replayed so far against the signed checkpoint: its size, its root
    /// and the registry and policy digests it signs.
    pub(crate) fn check_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), AuditError> {
        self.replay.check_checkpoint(checkpoint)
    }

    /// Appends the rest, then records the genesis and the signed checkpoint `note`, and
    /// makes the store durable. Call only after [`Batches::check_checkpoint`] passed: a
    /// store with a checkpoint is one a server starts on.
    pub(crate) fn finish(
        mut self,
        store: &Store,
        genesis_json: &[u8],
        note: &str,
    ) -> Result<(), StoreError> {
        self.write(store)?;
        store.set_genesis(genesis_json)?;
        store.set_checkpoint_durably(note)?;
        store.sync()
    }
}

/// Writes the files a data folder holds beside its store: log.pub, genesis.json and, when
/// given, the private log.key (mode 0600), each new and synced, then the folder itself.
/// Returns the private key's path when it was written; an error names the file.
pub(crate) fn write_folder_files(
    folder: &Path,
    verifier: &Verifier,
    genesis: &GenesisDocument,
    private_key: Option<&String>,
) -> Result<Option<PathBuf>, (PathBuf, std::io::Error)> {
    let pub_path = folder.join(PUB_FILE);
    write_synced(&pub_path, format!("{verifier}\n").as_bytes()).map_err(|e| (pub_path, e))?;
    let genesis_path = folder.join(GENESIS_FILE);
    let pretty = serde_json::to_string_pretty(genesis).expect("a genesis document serializes");
    write_synced(&genesis_path, format!("{pretty}\n").as_bytes()).map_err(|e| (genesis_path, e))?;
    let key_path = match private_key {
        Some(text) => {
            let path = folder.join(KEY_FILE);
            write_private(&path, text).map_err(|e| (path.clone(), e))?;
            Some(path)
        }
        None => None,
    };
    std::fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(|e| (folder.to_owned(), e))?;
    Ok(key_path)
}

/// Writes a new file and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes what a failed backup or copy wrote: the folder was empty or absent before.
pub(crate) fn remove_partial(out: &Path, created_dir: bool) {
    let result = if created_dir {
        std::fs::remove_dir_all(out)
    } else {
        crate::store::FOLDERS
            .iter()
            .chain(&[crate::store::LOCK_FILE, PUB_FILE, GENESIS_FILE, KEY_FILE])
            .map(|name| out.join(name))
            .filter(|path| path.exists())
            .try_for_each(|path| {
                if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                }
            })
    };
    if let Err(e) = result {
        tracing::warn!(
            folder = %out.display(),
            error = %e,
            "could not remove the incomplete copy: delete the folder by hand"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use evident_core::SigningKey;

    fn signer(seed: u8) -> Signer {
        Signer::new("evident.test/log", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn only_an_absent_or_empty_folder_takes_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        check_out_dir(&dir.path().join("new")).unwrap();
        check_out_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("x"), "x").unwrap();
        let err = check_out_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
        let err = check_out_dir(&dir.path().join("x")).unwrap_err();
        assert!(err.to_string().contains("cannot be used"), "{err}");
    }

    #[test]
    fn the_private_key_is_included_only_when_it_is_the_logs() {
        let dir = tempfile::tempdir().unwrap();
        let ours = signer(1);
        let why = private_log_key(None, ours.verifier()).unwrap().unwrap_err();
        assert!(why.contains("no --data-dir"), "{why}");
        let why = private_log_key(Some(dir.path()), ours.verifier())
            .unwrap()
            .unwrap_err();
        assert!(why.contains("log.key is not readable"), "{why}");

        let path = dir.path().join(KEY_FILE);
        write_private(&path, &ours.to_private_text()).unwrap();
        let text = private_log_key(Some(dir.path()), ours.verifier())
            .unwrap()
            .unwrap();
        assert_eq!(text, ours.to_private_text());

        let err = private_log_key(Some(dir.path()), signer(2).verifier()).unwrap_err();
        assert!(
            err.to_string().contains("not of the log being copied"),
            "{err}"
        );
        assert!(
            !err.to_string().contains(&ours.to_private_text()),
            "the secret is never echoed"
        );
    }

    #[test]
    fn a_failed_backup_leaves_an_existing_folder_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        drop(store);
        std::fs::write(dir.path().join(PUB_FILE), "k").unwrap();
        remove_partial(dir.path(), false);
        assert!(dir.path().exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let created = dir.path().join("made");
        std::fs::create_dir(&created).unwrap();
        remove_partial(&created, true);
        assert!(!created.exists());
    }
}
