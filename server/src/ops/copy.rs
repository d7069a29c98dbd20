//! `evidentd copy`: a verified log moved from one store to another — a data folder's files
//! or a PostgreSQL database, in either direction.
//!
//! Nothing is copied blindly, and nothing is written before the source verified. The source's
//! stored checkpoint must verify under the pinned log key; every entry it covers is replayed
//! from the source's recorded genesis with [`evident_core::audit::Replay`] (chain, times,
//! signatures against the registry of the time, registry and policy entries) and the
//! replayed tree is held against the checkpoint ([`Replay::check_checkpoint`]). Only then is
//! the destination opened for writing and the source read a second time, replayed again
//! and written through [`Batches`] — the same [`Store::append`] path a backup takes: leaf
//! records, the tree nodes [`Frontier::append`](evident_core::merkle::Frontier::append)
//! completes and the indexes from the replay's facts — then the recorded genesis and the
//! same signed checkpoint note. Last, the destination is opened afresh and its size, root,
//! genesis and checkpoint are held against what was verified.
//!
//! It must never write into a destination that holds a log: a data folder must be absent or
//! empty, a database must hold no entries, genesis or checkpoint. A source that does not
//! verify leaves the destination as it was. `docs/BACKUP.md` is the operator's guide.

use std::path::{Path, PathBuf};

use evident_core::audit::Replay;
use evident_core::note::{Checkpoint, Verifier};
use evident_core::registry::GenesisDocument;

use crate::backup::{
    Batches, check_empty_folder, private_log_key_in, remove_partial, verifier_of,
    write_folder_files,
};
use crate::storage::postgres::PgTarget;
use crate::store::{Store, StoreError};

/// Entries read from the source at a time.
const READ_ENTRIES: u64 = 1_000;

/// The options of `evidentd copy`.
#[derive(Debug, Clone, clap::Args)]
pub struct CopyArgs {
    /// The store to copy: a stopped server's data folder, or a PostgreSQL connection string
    /// or URL (its server may be running: the copy covers the checkpoint read at the start).
    #[arg(long, value_name = "SRC")]
    pub from: String,
    /// The store to write: a new or empty folder, or an empty PostgreSQL database.
    #[arg(long, value_name = "DST")]
    pub to: String,
    /// The CA certificates (PEM) that signed a PostgreSQL SRC's certificate [default: the
    /// system's trusted roots].
    #[arg(long, value_name = "FILE")]
    pub from_ca: Option<PathBuf>,
    /// The CA certificates (PEM) that signed a PostgreSQL DST's certificate [default: the
    /// system's trusted roots].
    #[arg(long, value_name = "FILE")]
    pub to_ca: Option<PathBuf>,
    /// The log's verifier key (`name+id+base64`, or a file holding it) [default: log.pub in
    /// a folder SRC, else in --data-dir].
    #[arg(long, env = "EVIDENT_LOG_KEY")]
    pub log_key: Option<String>,
    /// For a PostgreSQL SRC, the server's data folder (read only): the default log key
    /// (log.pub) and the private log.key that a folder DST receives.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Where a log is kept: the `--from` or `--to` of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A data folder's files.
    Folder(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgTarget),
}

impl Location {
    /// Reads `text`, the value of `flag`: a PostgreSQL connection string or URL (it starts
    /// with `postgres://` or `postgresql://`, or names `host=` or `dbname=`), else a folder.
    /// `ca` is for PostgreSQL only.
    pub fn parse(text: &str, ca: Option<&Path>, flag: &str) -> Result<Location, CopyError> {
        let postgres = text.starts_with("postgres://")
            || text.starts_with("postgresql://")
            || text.contains("host=")
            || text.contains("dbname=");
        if !postgres {
            if ca.is_some() {
                return Err(CopyError::Setup(format!(
                    "{flag}-ca is for a PostgreSQL {flag}, and {text} is a folder"
                )));
            }
            return Ok(Location::Folder(PathBuf::from(text)));
        }
        // Checked now, so that a typo fails before anything is read; the error never
        // echoes the string, which may hold a password.
        text.parse::<postgres::Config>().map_err(|e| {
            CopyError::Setup(format!(
                "{flag} is not a PostgreSQL connection string or URL: {e}"
            ))
        })?;
        Ok(Location::Postgres(PgTarget {
            url: text.to_owned(),
            ca: ca.map(Path::to_owned),
        }))
    }

    /// The location for messages: a folder's path, or a database's name, host and port
    /// (never its password).
    pub fn describe(&self) -> String {
        match self {
            Location::Folder(dir) => dir.display().to_string(),
            Location::Postgres(target) => match target.url.parse::<postgres::Config>() {
                Ok(config) => {
                    let hosts = config
                        .get_hosts()
                        .iter()
                        .map(|host| match host {
                            postgres::config::Host::Tcp(name) => name.clone(),
                            #[cfg(unix)]
                            postgres::config::Host::Unix(path) => path.display().to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(",");
                    let port = config
                        .get_ports()
                        .first()
                        .map_or(String::new(), |p| format!(":{p}"));
                    format!(
                        "PostgreSQL database {} on {hosts}{port}",
                        config.get_dbname().unwrap_or("(default)")
                    )
                }
                Err(_) => "a PostgreSQL database".to_owned(),
            },
        }
    }

    /// Opens the store here (a folder's store is created if absent).
    fn open(&self) -> Result<Store, StoreError> {
        match self {
            Location::Folder(dir) => Store::open(dir),
            Location::Postgres(target) => Store::open_postgres(target),
        }
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// An option or an input file is unusable. Nothing was written.
    #[error("{0}")]
    Setup(String),
    /// The destination holds a log already, or cannot take one. It was left unchanged.
    #[error("{0}")]
    Destination(String),
    /// The source could not be opened or read. Nothing was written.
    #[error("reading {from}: {source}")]
    Source {
        /// The source, described.
        from: String,
        /// What failed.
        source: StoreError,
    },
    /// The source log does not verify: its checkpoint under the log key, an entry in the
    /// replay (named by index), or the replayed tree against the checkpoint.
    #[error("the source log does not verify: {problem}; {left}")]
    Verification {
        /// What is wrong.
        problem: String,
        /// What the destination holds now.
        left: String,
    },
    /// Writing the destination failed.
    #[error("writing {to}: {source}; {left}")]
    Write {
        /// The destination, described.
        to: String,
        /// What failed.
        source: StoreError,
        /// What the destination holds now.
        left: String,
    },
    /// The written destination does not hold what was verified.
    #[error("the copy in {to} does not match the source: {problem}; do not use it")]
    Check {
        /// The destination, described.
        to: String,
        /// What differs.
        problem: String,
    },
}

impl CopyError {
    /// Whether the source failed verification (exit 1) rather than the copy failing for
    /// another reason (exit 2).
    pub fn is_verification_failure(&self) -> bool {
        matches!(self, CopyError::Verification { .. })
    }
}

/// What a finished copy holds.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The source, described.
    pub from: String,
    /// The destination, described.
    pub to: String,
    /// The verified checkpoint the copy covers (stored in it as the same signed note).
    pub checkpoint: Checkpoint,
    /// Entries of a PostgreSQL source after its checkpoint, not copied (it was running, or
    /// stopped before it signed them).
    pub not_copied: u64,
    /// For a folder destination: the private log key's path when it was copied, `Err` with
    /// why not. `None` for a database.
    pub log_key: Option<Result<PathBuf, String>>,
}

/// A source opened and read up to its verified checkpoint.
struct Source {
    location: Location,
    store: Store,
    /// The stored checkpoint note, as signed.
    note: String,
    checkpoint: Checkpoint,
    /// The recorded genesis, as stored.
    genesis_json: Vec<u8>,
    genesis: GenesisDocument,
}

impl Source {
    /// A new replay over the recorded genesis (checked when the source was opened).
    fn replay(&self) -> Replay {
        Replay::new(
            self.genesis
                .to_registry()
                .expect("the recorded genesis was checked when the source was opened"),
        )
    }

    /// Calls `each` with every entry the checkpoint covers, in order. A record the store
    /// cannot return intact fails verification.
    fn each_entry(
        &self,
        mut each: impl FnMut(Vec<u8>) -> Result<(), CopyError>,
    ) -> Result<(), CopyError> {
        let size = self.checkpoint.size;
        let mut at = 0;
        while at < size {
            let end = (at + READ_ENTRIES).min(size);
            let records = self.store.entries(at, end).map_err(|e| match e {
                StoreError::Corrupt(problem) => nothing_written(problem),
                source => CopyError::Source {
                    from: self.location.describe(),
                    source,
                },
            })?;
            if records.len() as u64 != end - at {
                return Err(nothing_written(format!(
                    "entry {} is missing",
                    at + records.len() as u64
                )));
            }
            for record in records {
                each(record)?;
            }
            at = end;
        }
        Ok(())
    }
}

/// A verification failure found before anything was written.
fn nothing_written(problem: String) -> CopyError {
    CopyError::Verification {
        problem,
        left: "nothing was written to the destination".to_owned(),
    }
}

/// What `evidentd copy` runs: makes the copy and prints what it holds.
pub fn command(args: &CopyArgs) -> Result<Copied, CopyError> {
    let started = std::time::Instant::now();
    let copied = copy(args)?;
    let cp = &copied.checkpoint;
    println!(
        "copy checked against the signed checkpoint of {} entries, root {}",
        cp.size, cp.root
    );
    println!(
        "copied {} entries from {} to {} ({:.1?})",
        cp.size,
        copied.from,
        copied.to,
        started.elapsed()
    );
    if copied.not_copied > 0 {
        println!(
            "{} entries after the checkpoint were NOT copied: the source signed no checkpoint \
             over them yet; copy again once its server has signed them to include them",
            copied.not_copied
        );
    }
    match &copied.log_key {
        Some(Ok(path)) => println!(
            "private log key: INCLUDED ({}, mode 0600): keep the folder as a secret",
            path.display()
        ),
        Some(Err(why)) => println!(
            "private log key: NOT included ({why}); a server on the folder needs it: put the \
             log's {} there before starting it",
            crate::logkey::KEY_FILE
        ),
        None => {}
    }
    Ok(copied)
}

/// Copies the log of `args.from` to `args.to`: see the module documentation.
pub fn copy(args: &CopyArgs) -> Result<Copied, CopyError> {
    let from = Location::parse(&args.from, args.from_ca.as_deref(), "--from")?;
    let to = Location::parse(&args.to, args.to_ca.as_deref(), "--to")?;
    if same_store(&from, &to) {
        return Err(CopyError::Setup(format!(
            "--from and --to are the same store ({})",
            from.describe()
        )));
    }
    // Where the log's public and private keys are: a folder source's own, else --data-dir.
    let key_folder = match &from {
        Location::Folder(dir) => Some(dir.clone()),
        Location::Postgres(_) => args.data_dir.clone(),
    };
    let key_folder = key_folder.as_deref();
    let verifier = verifier_of(args.log_key.as_deref(), key_folder).map_err(CopyError::Setup)?;
    // Refused before the source is read: a destination that holds a log is never touched.
    check_destination(&to)?;
    let source = open_source(from, &verifier)?;
    verify(&source)?;
    // Checked against the log key once the log verified under it: a wrong key is named as
    // the key the checkpoint does not verify under, not as a mismatched log.key.
    let private_key = match (&to, key_folder) {
        (Location::Postgres(_), _) => None,
        (Location::Folder(_), None) => Some(Err("no --data-dir given".to_owned())),
        (Location::Folder(_), Some(folder)) => {
            Some(private_log_key_in(folder, &verifier).map_err(CopyError::Setup)?)
        }
    };
    let not_copied = source
        .store
        .size()
        .map_err(|source_error| CopyError::Source {
            from: source.location.describe(),
            source: source_error,
        })?
        .saturating_sub(source.checkpoint.size);
    let log_key = write(&source, &to, &verifier, private_key)?;
    let from = source.location.describe();
    let checkpoint = check_copy(&to, &source)?;
    Ok(Copied {
        from,
        to: to.describe(),
        checkpoint,
        not_copied,
        log_key,
    })
}

/// Whether `a` and `b` name the same store (a folder by its canonical path).
fn same_store(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Folder(a), Location::Folder(b)) => {
            a == b
                || matches!(
                    (a.canonicalize(), b.canonicalize()),
                    (Ok(a), Ok(b)) if a == b
                )
        }
        (Location::Postgres(a), Location::Postgres(b)) => a.url == b.url,
        _ => false,
    }
}

/// The destination must hold no log: a folder absent or empty; a database with no entries,
/// genesis or checkpoint (opening it applies the schema migrations, nothing more).
fn check_destination(to: &Location) -> Result<(), CopyError> {
    match to {
        Location::Folder(dir) => {
            check_empty_folder(dir, "destination folder").map_err(CopyError::Destination)
        }
        Location::Postgres(_) => {
            let store = to
                .open()
                .map_err(|e| CopyError::Destination(format!("opening {}: {e}", to.describe())))?;
            database_is_empty(&store, to)
        }
    }
}

/// A database destination holds no entries, genesis or checkpoint.
fn database_is_empty(store: &Store, to: &Location) -> Result<(), CopyError> {
    let read = |e: StoreError| CopyError::Destination(format!("reading {}: {e}", to.describe()));
    let size = store.size().map_err(read)?;
    let genesis = store.genesis().map_err(read)?.is_some();
    let checkpoint = store.checkpoint().map_err(read)?.is_some();
    if size > 0 || genesis || checkpoint {
        return Err(CopyError::Destination(format!(
            "{} already holds a log ({size} entries{}): copy into an empty database (nothing \
             was changed)",
            to.describe(),
            if genesis { ", a genesis" } else { "" }
        )));
    }
    Ok(())
}

/// Opens the source and reads what the copy will cover: its checkpoint, verified under the
/// log key, and its recorded genesis.
fn open_source(location: Location, verifier: &Verifier) -> Result<Source, CopyError> {
    let from = location.describe();
    let source_err = |source| CopyError::Source {
        from: from.clone(),
        source,
    };
    let open = || {
        match &location {
            // A stopped server's folder: refused while a server holds its lock. Its indexes
            // are not read, so indexes too damaged to open do not stop the copy.
            Location::Folder(dir) => {
                if !dir.join(crate::store::LOG_FOLDER).exists()
                    && !crate::storage::legacy::is_legacy(dir)
                {
                    return Err(CopyError::Setup(format!(
                        "{from} holds no Evident store (no log folder)"
                    )));
                }
                Store::open_lenient(dir)
            }
            Location::Postgres(target) => Store::open_postgres(target),
        }
        .map_err(|e| match e {
            // A log that cannot be read back intact fails verification like a bad entry.
            StoreError::Corrupt(problem) => nothing_written(problem),
            other => source_err(other),
        })
    };
    let mut store = open()?;
    let note = store.checkpoint().map_err(source_err)?.ok_or_else(|| {
        CopyError::Setup(format!(
            "{from} holds no signed checkpoint: nothing to copy (a server signs one at its \
             first start)"
        ))
    })?;
    let checkpoint = Checkpoint::verify(&note, verifier).map_err(|e| {
        nothing_written(format!(
            "its stored checkpoint does not verify under the log key {verifier}: {e}"
        ))
    })?;
    let mut size = store.size().map_err(source_err)?;
    if size < checkpoint.size && matches!(location, Location::Postgres(_)) {
        // A running server appended and signed after the store was opened: the checkpoint
        // covers durable entries, so opening again finds them.
        store = open()?;
        size = store.size().map_err(source_err)?;
    }
    if size < checkpoint.size {
        return Err(nothing_written(format!(
            "it holds {size} entries but the log signed a checkpoint of {}: entries {size}..{} \
             are missing",
            checkpoint.size, checkpoint.size
        )));
    }
    if size > checkpoint.size && matches!(location, Location::Folder(_)) {
        // Entries a client may hold a receipt for; a server started on a copy without them
        // would give their indexes to other entries.
        return Err(CopyError::Setup(format!(
            "{from} holds {size} entries but its latest signed checkpoint covers {}: start \
             evidentd on it once (it signs the entries at start), stop it, and copy again \
             (nothing was written)",
            checkpoint.size
        )));
    }
    let genesis_json = store
        .genesis()
        .map_err(source_err)?
        .ok_or_else(|| nothing_written("it has no recorded genesis".to_owned()))?;
    let genesis: GenesisDocument = serde_json::from_slice(&genesis_json)
        .map_err(|e| nothing_written(format!("its recorded genesis is malformed: {e}")))?;
    genesis
        .to_registry()
        .map_err(|e| nothing_written(format!("its recorded genesis is invalid: {e}")))?;
    Ok(Source {
        location,
        store,
        note,
        checkpoint,
        genesis_json,
        genesis,
    })
}

/// Replays every entry the checkpoint covers and holds the tree against it.
fn verify(source: &Source) -> Result<(), CopyError> {
    let size = source.checkpoint.size;
    let mut replay = source.replay();
    source.each_entry(|record| {
        replay
            .push(&record)
            .map_err(|e| nothing_written(e.to_string()))?;
        if replay.size() % 10_000 == 0 {
            tracing::info!(done = replay.size(), total = size, "verifying the source");
        }
        Ok(())
    })?;
    replay
        .check_checkpoint(&source.checkpoint)
        .map_err(|e| nothing_written(e.to_string()))
}

/// Writes the verified log into `to`, and a folder's files beside it. Returns, for a folder,
/// whether the private log key was written.
fn write(
    source: &Source,
    to: &Location,
    verifier: &Verifier,
    private_key: Option<Result<String, String>>,
) -> Result<Option<Result<PathBuf, String>>, CopyError> {
    match to {
        Location::Folder(dir) => {
            let created = !dir.exists();
            let written = std::fs::create_dir_all(dir)
                .map_err(|e| CopyError::Destination(format!("creating {}: {e}", dir.display())))
                .and_then(|()| {
                    let store = to.open().map_err(|e| write_error(to, e))?;
                    write_log(source, &store, to)?;
                    drop(store);
                    let key = private_key.as_ref().and_then(|k| k.as_ref().ok());
                    write_folder_files(dir, verifier, &source.genesis, key).map_err(|(path, e)| {
                        write_error(
                            to,
                            StoreError::Io {
                                op: "writing",
                                path,
                                source: e,
                            },
                        )
                    })
                });
            match written {
                Ok(path) => Ok(Some(match (path, private_key) {
                    (Some(path), _) => Ok(path),
                    (None, Some(Err(why))) => Err(why),
                    (None, _) => Err("it was not written".to_owned()),
                })),
                Err(e) => {
                    remove_partial(dir, created);
                    Err(e.left(format!("what was written to {} was removed", dir.display())))
                }
            }
        }
        Location::Postgres(_) => {
            let store = to.open().map_err(|e| write_error(to, e))?;
            // Checked again: a server may have been started on the database meanwhile.
            database_is_empty(&store, to)?;
            write_log(source, &store, to)
                .map_err(|e| {
                    e.left(format!(
                        "{} holds a partial copy: drop its evident_* tables (or the \
                         database) before copying again",
                        to.describe()
                    ))
                })
                .map(|()| None)
        }
    }
}

impl CopyError {
    /// The error, saying what the destination holds now.
    fn left(self, now: String) -> CopyError {
        match self {
            CopyError::Verification { problem, .. } => {
                CopyError::Verification { problem, left: now }
            }
            CopyError::Write { to, source, .. } => CopyError::Write {
                to,
                source,
                left: now,
            },
            other => other,
        }
    }
}

/// A failed write to `to`, before anything was written (a caller that wrote says what is
/// left with [`CopyError::left`]).
fn write_error(to: &Location, source: StoreError) -> CopyError {
    CopyError::Write {
        to: to.describe(),
        source,
        left: "nothing was written".to_owned(),
    }
}

/// Reads, replays and appends every entry the checkpoint covers, then the genesis and the
/// checkpoint note. The source verified already; the replay runs again because it yields
/// the index keys, and it fails only if the source changed since.
fn write_log(source: &Source, store: &Store, to: &Location) -> Result<(), CopyError> {
    let size = source.checkpoint.size;
    let changed = |e: evident_core::audit::AuditError| CopyError::Verification {
        problem: format!("{e} (the source changed during the copy)"),
        left: "nothing was written".to_owned(),
    };
    let mut batches = Batches::new(source.replay());
    source.each_entry(|record| {
        batches.push(record).map_err(changed)?;
        if batches.is_full() {
            batches.write(store).map_err(|e| write_error(to, e))?;
        }
        if batches.size() % 10_000 == 0 {
            tracing::info!(done = batches.size(), total = size, "copying");
        }
        Ok(())
    })?;
    batches
        .check_checkpoint(&source.checkpoint)
        .map_err(changed)?;
    batches
        .finish(store, &source.genesis_json, &source.note)
        .map_err(|e| write_error(to, e))
}

/// Opens the written destination afresh and holds it against the verified source: its
/// size, the root of its stored tree, its genesis and its checkpoint note.
fn check_copy(to: &Location, source: &Source) -> Result<Checkpoint, CopyError> {
    let mismatch = |problem: String| CopyError::Check {
        to: to.describe(),
        problem,
    };
    let store = to
        .open()
        .map_err(|e| mismatch(format!("opening it again: {e}")))?;
    let cp = &source.checkpoint;
    let size = store
        .size()
        .map_err(|e| mismatch(format!("reading its size: {e}")))?;
    if size != cp.size {
        return Err(mismatch(format!(
            "it holds {size} entries, the checkpoint covers {}",
            cp.size
        )));
    }
    let root = evident_core::merkle::root(&store, size)
        .map_err(|e| mismatch(format!("reading its tree: {e}")))?;
    if root != cp.root {
        return Err(mismatch(format!(
            "its tree's root is {root}, the signed checkpoint says {}",
            cp.root
        )));
    }
    if store.genesis().ok().flatten().as_deref() != Some(&source.genesis_json[..]) {
        return Err(mismatch("its recorded genesis differs".to_owned()));
    }
    if store.checkpoint().ok().flatten().as_deref() != Some(source.note.as_str()) {
        return Err(mismatch("its checkpoint note differs".to_owned()));
    }
    Ok(cp.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use crate::storage::postgres::testdb::TestDb;
    use evident_core::memlog::MemoryLog;
    use evident_core::note::Signer;
    use evident_core::registry::GenesisAdmin;
    use evident_core::{PublicKey, SigningKey};

    const ORIGIN: &str = "evident.test/log";

    fn signer(seed: u8) -> Signer {
        Signer::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    /// A stopped server's data folder whose log has a genesis and a signed checkpoint of no
    /// entries (the end-to-end tests copy logs with entries): returns its log key.
    fn folder_log(dir: &Path, seed: u8) -> Verifier {
        let genesis = GenesisDocument {
            threshold: 1,
            admins: vec![GenesisAdmin {
                identity: "admin".to_owned(),
                public_key: PublicKey::from_signing_key(&SigningKey::from_bytes(&[9; 32])).to_hex(),
            }],
        };
        let log = MemoryLog::new(ORIGIN, SigningKey::from_bytes(&[seed; 32]), genesis).unwrap();
        let note = log.checkpoint().sign(&signer(seed)).unwrap();
        let store = Store::open(dir).unwrap();
        store
            .set_genesis(&serde_json::to_vec(log.genesis()).unwrap())
            .unwrap();
        store.set_checkpoint_durably(&note).unwrap();
        drop(store);
        std::fs::write(
            dir.join(crate::logkey::PUB_FILE),
            format!("{}\n", log.verifier()),
        )
        .unwrap();
        crate::logkey::write_private(
            &dir.join(crate::logkey::KEY_FILE),
            &signer(seed).to_private_text(),
        )
        .unwrap();
        log.verifier().clone()
    }

    fn args(from: &str, to: &str) -> CopyArgs {
        CopyArgs {
            from: from.to_owned(),
            to: to.to_owned(),
            from_ca: None,
            to_ca: None,
            log_key: None,
            data_dir: None,
        }
    }

    fn text(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    #[test]
    fn a_location_is_a_database_only_when_it_says_so() {
        for url in [
            "postgres://evident:secret@db.example:5433/ledger",
            "postgresql://db.example/ledger",
            "host=db.example dbname=ledger password=secret",
            "dbname=ledger",
        ] {
            let location = Location::parse(url, None, "--to").unwrap();
            assert!(matches!(location, Location::Postgres(_)), "{url}");
            let said = location.describe();
            assert!(said.contains("ledger"), "{said}");
            assert!(
                !said.contains("secret"),
                "a password is never shown: {said}"
            );
        }
        assert_eq!(
            Location::parse("postgres://db.example:5433/ledger", None, "--to")
                .unwrap()
                .describe(),
            "PostgreSQL database ledger on db.example:5433"
        );
        assert_eq!(
            Location::parse("./evident-data", None, "--from").unwrap(),
            Location::Folder(PathBuf::from("./evident-data"))
        );
        let err = Location::parse("./data", Some(Path::new("ca.pem")), "--from").unwrap_err();
        assert!(
            err.to_string().contains("--from-ca is for a PostgreSQL"),
            "{err}"
        );
        let err = Location::parse("postgres://[::1", None, "--to").unwrap_err();
        assert!(
            err.to_string().contains("--to is not a PostgreSQL"),
            "{err}"
        );
    }

    #[test]
    fn a_log_moves_from_files_to_postgres_and_back_with_its_checkpoint_and_keys() {
        let db = TestDb::start();
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let verifier = folder_log(&src, 1);
        let source = Store::open(&src).unwrap();
        let (note, genesis) = (
            source.checkpoint().unwrap().unwrap(),
            source.genesis().unwrap().unwrap(),
        );
        drop(source);

        let copied = copy(&args(text(&src), &db.url)).unwrap();
        assert_eq!(copied.checkpoint.size, 0);
        assert!(copied.log_key.is_none(), "a database holds no keys");
        let target = PgTarget::new(&db.url);
        let stored = Store::open_postgres(&target).unwrap();
        assert_eq!(stored.checkpoint().unwrap().as_deref(), Some(note.as_str()));
        assert_eq!(stored.genesis().unwrap().as_deref(), Some(&genesis[..]));
        drop(stored);

        // Back into a new folder: the keys come from --data-dir.
        let back = dir.path().join("back");
        let mut to_files = args(&db.url, text(&back));
        to_files.data_dir = Some(src.clone());
        let copied = copy(&to_files).unwrap();
        assert_eq!(
            copied.log_key.unwrap().unwrap(),
            back.join(crate::logkey::KEY_FILE)
        );
        let store = Store::open(&back).unwrap();
        assert_eq!(store.checkpoint().unwrap().as_deref(), Some(note.as_str()));
        assert_eq!(store.genesis().unwrap().as_deref(), Some(&genesis[..]));
        assert_eq!(
            std::fs::read_to_string(back.join(crate::logkey::PUB_FILE))
                .unwrap()
                .trim(),
            verifier.to_string()
        );
        assert!(back.join(crate::backup::GENESIS_FILE).exists());
    }

    #[test]
    fn a_destination_that_holds_a_log_is_refused_and_left_unchanged() {
        let db = TestDb::start();
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        folder_log(&src, 1);
        copy(&args(text(&src), &db.url)).unwrap();

        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        folder_log(&other, 2);
        let err = copy(&args(text(&other), &db.url)).unwrap_err();
        assert!(matches!(err, CopyError::Destination(_)), "{err}");
        assert!(err.to_string().contains("already holds a log"), "{err}");
        let kept = Store::open_postgres(&PgTarget::new(&db.url)).unwrap();
        assert!(
            Checkpoint::verify(&kept.checkpoint().unwrap().unwrap(), signer(1).verifier()).is_ok(),
            "the first log's checkpoint is still there"
        );

        let before: Vec<_> = std::fs::read_dir(&other).unwrap().collect();
        let err = copy(&args(text(&src), text(&other))).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
        assert_eq!(std::fs::read_dir(&other).unwrap().count(), before.len());
        let err = copy(&args(text(&src), text(&src))).unwrap_err();
        assert!(err.to_string().contains("the same store"), "{err}");
    }

    #[test]
    fn a_checkpoint_under_another_key_fails_verification_and_writes_nothing() {
        let db = TestDb::start();
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        folder_log(&src, 1);
        let mut wrong = args(text(&src), &db.url);
        wrong.log_key = Some(signer(2).verifier().to_string());
        let err = copy(&wrong).unwrap_err();
        assert!(err.is_verification_failure(), "{err}");
        assert!(
            err.to_string()
                .contains("does not verify under the log key"),
            "{err}"
        );
        assert!(err.to_string().contains("nothing was written"), "{err}");
        let store = Store::open_postgres(&PgTarget::new(&db.url)).unwrap();
        assert_eq!(store.size().unwrap(), 0);
        assert!(store.genesis().unwrap().is_none());
        assert!(store.checkpoint().unwrap().is_none());

        let out = dir.path().join("out");
        let mut wrong = args(text(&src), text(&out));
        wrong.log_key = Some(signer(2).verifier().to_string());
        assert!(copy(&wrong).unwrap_err().is_verification_failure());
        assert!(!out.exists(), "nothing was created");
    }
}
