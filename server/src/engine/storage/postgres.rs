//! The PostgreSQL log backend: leaf records, the Merkle tree's complete subtree hashes, the
//! genesis and the latest checkpoint in PostgreSQL tables, so that the log lives in the
//! database an operations team already runs, replicates and backs up.
//!
//! ```text
//! evident_schema  (version)                       migrations applied
//! evident_entries (idx bigint pk, record bytea)   the leaf records (the truth)
//! evident_nodes   (level, idx, hash)              complete subtree hashes (derived)
//! evident_meta    (key text pk, value bytea)      genesis, checkpoint
//! ```
//!
//! Durability: each [`LogStore::append`] is one transaction (records and nodes), committed
//! before it returns; with PostgreSQL's `synchronous_commit = on` (its default) a commit is
//! on disk, and with a synchronous standby on two machines, before the server answers.
//!
//! The storage traits are synchronous and are called from any thread, async workers
//! included, where a client that runs its own runtime may not block. The connections
//! therefore live on the store's own threads: each call is a job sent to one, and the
//! caller waits for the answer, as it would wait for a disk read. Reads share four
//! connections; the sequencer's batches, the checkpoint, the lease and a follower's
//! queueing have a fifth, so that a batch never waits behind reads. A round trip costs
//! more than the statement it carries: a batch is one statement, and a proof, a batch's
//! dedupe look-ups and a follower's receipts read their rows in one request each.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use evident_core::Hash;
use evident_core::merkle::Node;

use super::{Census, IndexStore, Indexed, LogStore, Outcome, Posting, StoreError};

/// The schema migrations, in order: the first `n` are applied when `evident_schema` says
/// version `n`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE evident_entries (idx bigint PRIMARY KEY, record bytea NOT NULL);
    CREATE TABLE evident_nodes (
        level integer NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL,
        PRIMARY KEY (level, idx));
    CREATE TABLE evident_meta (key text PRIMARY KEY, value bytea NOT NULL);
    ",
    "
    CREATE TABLE evident_indexed (one boolean PRIMARY KEY DEFAULT true CHECK (one),
        indexed bigint NOT NULL);
    INSERT INTO evident_indexed (indexed) VALUES (0);
    CREATE TABLE evident_leaf (hash bytea PRIMARY KEY, idx bigint NOT NULL);
    CREATE TABLE evident_content (key bytea PRIMARY KEY, idx bigint NOT NULL);
    CREATE TABLE evident_postings (list bytea NOT NULL, idx bigint NOT NULL,
        PRIMARY KEY (list, idx));
    CREATE TABLE evident_signers (idx bigint PRIMARY KEY, signers text[] NOT NULL);
    CREATE TABLE evident_policies (name text NOT NULL, version bigint NOT NULL,
        idx bigint NOT NULL, PRIMARY KEY (name, version));
    ",
    "
    CREATE TABLE evident_lease (one boolean PRIMARY KEY DEFAULT true CHECK (one),
        term bigint NOT NULL, holder text NOT NULL, expires timestamptz NOT NULL);
    INSERT INTO evident_lease (term, holder, expires) VALUES (0, '', '-infinity');
    ",
    "
    CREATE TABLE evident_checkpoint (one boolean PRIMARY KEY DEFAULT true CHECK (one),
        size bigint NOT NULL, note bytea NOT NULL);
    INSERT INTO evident_checkpoint (size, note)
        SELECT 0, value FROM evident_meta WHERE key = 'checkpoint';
    DELETE FROM evident_meta WHERE key = 'checkpoint';
    CREATE TABLE evident_queue (id bigserial PRIMARY KEY, envelope bytea NOT NULL,
        queued_by text NOT NULL, queued timestamptz NOT NULL DEFAULT now(), taken bigint);
    CREATE TABLE evident_outcomes (id bigint PRIMARY KEY, idx bigint, duplicate boolean,
        code integer, message text, details bytea,
        done timestamptz NOT NULL DEFAULT now());
    ",
    "
    CREATE TABLE evident_index_keys (first bigint PRIMARY KEY, frame bytea NOT NULL);
    ",
];

/// How long PostgreSQL keeps a session that is idle inside a transaction, in milliseconds:
/// a batch's transaction is never idle that long unless its client is gone.
const IDLE_IN_TRANSACTION_MS: u64 = 5_000;
/// The longest a statement may run, in milliseconds.
const STATEMENT_MS: u64 = 60_000;
/// How long taking the lease waits for the lease row's lock, in milliseconds.
const LEASE_LOCK_MS: u64 = 1_000;

/// The channel on which the sequencer announces each checkpoint it stores (its size).
pub const CHECKPOINT_CHANNEL: &str = "evident_checkpoint";
/// The channel on which an instance announces a submission it queued for the sequencer.
pub const QUEUE_CHANNEL: &str = "evident_queue";

/// A job for a connection's thread: given the connection, or why there is none. Returns
/// whether it succeeded (after a failure the thread forgets its prepared statements).
type Job = Box<dyn FnOnce(Result<&mut postgres::Client, StoreError>) -> bool + Send>;

/// Connections on their own threads: each call is a job sent to whichever is free, its
/// answer waited for. A connection that breaks (PostgreSQL restarted, the network cut) is
/// dropped and made again for the next job, so the store recovers on its own when the
/// database comes back.
///
/// Reads share [`CONNECTIONS`] connections; the sequencer's batches, the checkpoint and
/// the lease have one of their own, so that a batch never waits behind the reads of many
/// clients.
struct Conn {
    jobs: Mutex<mpsc::Sender<Job>>,
    writes: Mutex<mpsc::Sender<Job>>,
}

/// Connections per store for reads: reads of one instance run this many at a time.
const CONNECTIONS: usize = 4;

thread_local! {
    /// The statements prepared on this connection thread's connection, by their text.
    static PREPARED: std::cell::RefCell<std::collections::HashMap<&'static str, postgres::Statement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `sql` prepared once on the current connection thread's connection: a later call binds
/// and executes in one round trip instead of two. Only for the connections of [`Conn`],
/// each of which lives on its own thread and forgets its statements when it is made again.
fn prepared<C: postgres::GenericClient>(
    c: &mut C,
    sql: &'static str,
) -> Result<postgres::Statement, postgres::Error> {
    if let Some(statement) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
        return Ok(statement);
    }
    let statement = c.prepare(sql)?;
    PREPARED.with(|p| p.borrow_mut().insert(sql, statement.clone()));
    Ok(statement)
}

/// The queries of [`Conn`]'s jobs, with their statements prepared once per connection.
trait Cached: postgres::GenericClient + Sized {
    fn query_cached(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = prepared(self, sql)?;
        self.query(&statement, params)
    }

    fn query_one_cached(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<postgres::Row, postgres::Error> {
        let statement = prepared(self, sql)?;
        self.query_one(&statement, params)
    }

    fn query_opt_cached(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, postgres::Error> {
        let statement = prepared(self, sql)?;
        self.query_opt(&statement, params)
    }

    fn execute_cached(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = prepared(self, sql)?;
        self.execute(&statement, params)
    }
}

impl<C: postgres::GenericClient> Cached for C {}

/// How to reach the database: its connection string and, for TLS, the CA that signed its
/// certificate (the system's trusted roots when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// A libpq connection string or URL. Its `sslmode` decides TLS: `disable` never,
    /// `prefer` (libpq's default) when the server offers it, `require` always.
    pub url: String,
    /// A PEM file of CA certificates to verify the server with.
    pub ca: Option<std::path::PathBuf>,
}

impl PgTarget {
    /// A target of `url`, verified with the system's roots if it uses TLS.
    pub fn new(url: &str) -> PgTarget {
        PgTarget {
            url: url.to_owned(),
            ca: None,
        }
    }

    /// Connects, with TLS unless the connection string says `sslmode=disable`. The
    /// server's certificate is always verified (chain and name): libpq's `require` does
    /// not, but a store that trusts any certificate would trust anyone on the path.
    fn connect(&self) -> Result<postgres::Client, StoreError> {
        let mut client = self.open_connection()?;
        // A session its client abandoned mid-transaction (a machine lost, a process frozen)
        // must not hold the lease row's lock for long: PostgreSQL ends it after this.
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}; \
                 SET statement_timeout = {STATEMENT_MS}"
            ))
            .map_err(pg("setting up the session"))?;
        Ok(client)
    }

    fn open_connection(&self) -> Result<postgres::Client, StoreError> {
        let mut config: postgres::Config = self.url.parse().map_err(pg("reading the store url"))?;
        // A dead peer is found in seconds, not in TCP's hours: connecting, sending and idle.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        config
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(5))
            .keepalives_interval(std::time::Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(std::time::Duration::from_secs(15));
        if config.get_ssl_mode() == postgres::config::SslMode::Disable {
            return config
                .connect(postgres::NoTls)
                .map_err(pg("connecting to PostgreSQL"));
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| StoreError::Io {
                    op: "reading the PostgreSQL CA",
                    path: path.clone(),
                    source,
                })?;
                use rustls::pki_types::pem::PemObject as _;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| StoreError::Database {
                        op: "reading the PostgreSQL CA",
                        message: e.to_string(),
                    })?;
                    roots.add(cert).map_err(|e| StoreError::Database {
                        op: "reading the PostgreSQL CA",
                        message: e.to_string(),
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Database {
                op: "setting up TLS to PostgreSQL",
                message: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .map_err(pg("connecting to PostgreSQL"))
    }
}

impl Conn {
    /// Connects to `target`, applies the migrations this build knows, and starts the
    /// connections' threads.
    fn open(target: &PgTarget) -> Result<Conn, StoreError> {
        let mut first = target.connect()?;
        migrate(&mut first)?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let inbox = std::sync::Arc::new(Mutex::new(inbox));
        let mut first = Some(first);
        for n in 0..CONNECTIONS {
            let name = format!("evident-postgres-{n}");
            spawn_connection(name, std::sync::Arc::clone(&inbox), target, first.take())?;
        }
        let (writes, inbox) = mpsc::channel::<Job>();
        let inbox = std::sync::Arc::new(Mutex::new(inbox));
        spawn_connection("evident-postgres-w".into(), inbox, target, None)?;
        Ok(Conn {
            jobs: Mutex::new(jobs),
            writes: Mutex::new(writes),
        })
    }

    /// Runs `f` on a reading connection's thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        Conn::send(&self.jobs, f)
    }

    /// Runs `f` on the writing connection's thread and waits for its answer.
    fn run_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        Conn::send(&self.writes, f)
    }

    fn send<T: Send + 'static>(
        to: &Mutex<mpsc::Sender<Job>>,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            let result = client.and_then(f);
            let ok = result.is_ok();
            let _ = reply.send(result);
            ok
        });
        to.lock()
            .map_err(|_| StoreError::Poisoned("a PostgreSQL caller panicked".into()))?
            .send(job)
            .map_err(|_| StoreError::Poisoned("the PostgreSQL threads stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Poisoned("the PostgreSQL threads stopped".into()))?
    }
}

/// Starts a connection's thread: it takes jobs from `inbox` one at a time, on `client` or,
/// when there is none or it broke, on a connection made again.
fn spawn_connection(
    name: String,
    inbox: std::sync::Arc<Mutex<mpsc::Receiver<Job>>>,
    target: &PgTarget,
    mut client: Option<postgres::Client>,
) -> Result<(), StoreError> {
    let target = target.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            loop {
                let job = {
                    let Ok(inbox) = inbox.lock() else { return };
                    match inbox.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                };
                if client.as_ref().is_some_and(postgres::Client::is_closed) {
                    client = None;
                }
                if client.is_none() {
                    PREPARED.with(|p| p.borrow_mut().clear());
                    match target.connect() {
                        Ok(c) => client = Some(c),
                        Err(e) => {
                            job(Err(e));
                            continue;
                        }
                    }
                }
                if let Some(c) = client.as_mut() {
                    if !job(Ok(c)) {
                        // A statement may have failed because the schema changed under
                        // it (an upgrade's migration): prepare afresh.
                        PREPARED.with(|p| p.borrow_mut().clear());
                    }
                }
            }
        })
        .map(drop)
        .map_err(|e| StoreError::Database {
            op: "starting the PostgreSQL threads",
            message: e.to_string(),
        })
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

/// The log in PostgreSQL.
pub struct PgLog {
    conn: std::sync::Arc<Conn>,
    size: AtomicU64,
    poisoned: Mutex<Option<String>>,
    /// The sequencing lease this instance holds, `(term, holder)`, when several instances
    /// share the database: every append checks it inside its own transaction.
    lease: Mutex<Option<(i64, String)>>,
}

/// A sequencing lease this instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Its fencing term: one more than every earlier holder's.
    pub term: u64,
    /// The log's size when it was taken (what this holder appends after).
    pub size: u64,
}

impl fmt::Debug for PgLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLog")
            .field("size", &self.size.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |e| {
        // The causes too: "error performing TLS handshake" alone does not say why.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if is_outage(&e) {
            StoreError::Unreachable { op, message }
        } else {
            StoreError::Database { op, message }
        }
    }
}

/// Whether an error says the database cannot be reached (refused, gone, shutting down,
/// starting up) rather than that it refused the statement.
fn is_outage(e: &postgres::Error) -> bool {
    match e.code() {
        // Class 08: connection exception; 57P01-57P03: shutting down, crashed, starting.
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        None => {
            e.is_closed()
                || std::error::Error::source(e)
                    .is_some_and(|cause| cause.downcast_ref::<std::io::Error>().is_some())
        }
    }
}

impl PgLog {
    /// Connects to `url` (a libpq connection string or URL), applies the migrations this
    /// build knows, and reads the log's size.
    pub fn open(target: &PgTarget) -> Result<PgLog, StoreError> {
        PgLog::on(std::sync::Arc::new(Conn::open(target)?))
    }

    /// The log and the indexes of the database at `target`, sharing its connections.
    pub fn open_with_index(target: &PgTarget) -> Result<(PgLog, PgIndex), StoreError> {
        let conn = std::sync::Arc::new(Conn::open(target)?);
        Ok((PgLog::on(std::sync::Arc::clone(&conn))?, PgIndex { conn }))
    }

    fn on(conn: std::sync::Arc<Conn>) -> Result<PgLog, StoreError> {
        let size: i64 = conn.run(|c| {
            c.query_one_cached("SELECT coalesce(max(idx) + 1, 0) FROM evident_entries", &[])
                .map(|r| r.get(0))
                .map_err(pg("reading the log's size"))
        })?;
        Ok(PgLog {
            conn,
            size: AtomicU64::new(u64::try_from(size).unwrap_or(0)),
            poisoned: Mutex::new(None),
            lease: Mutex::new(None),
        })
    }

    /// Takes the sequencing lease for `holder` for `ttl` if it is free (expired, or never
    /// taken) or already `holder`'s, renewing it then. A newly taken lease gets the next
    /// fencing term, and from then on every append of this instance is refused unless the
    /// lease row still names this term and holder and has not expired: an old holder that
    /// was paused or cut off can never append after another took over. `None` when
    /// another instance holds it.
    pub fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let holder = holder.to_owned();
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let held = self.lease_held()?;
        let taken = self.conn.run_write(move |c| {
            let mut tx = c.transaction().map_err(pg("taking the lease"))?;
            tx.batch_execute(&format!("SET LOCAL lock_timeout = {LEASE_LOCK_MS}"))
                .map_err(pg("taking the lease"))?;
            let row = tx
                .query_one_cached(
                    "SELECT term, holder, expires > now() FROM evident_lease FOR UPDATE",
                    &[],
                )
                .map_err(pg("taking the lease"))?;
            let (term, current, live): (i64, String, bool) = (row.get(0), row.get(1), row.get(2));
            let renew = held
                .as_ref()
                .is_some_and(|(t, h)| *t == term && *h == current)
                && live;
            // A live lease of another holder is theirs. This instance's own, under a term
            // it no longer holds (its sequencer stopped), is taken again under a new term.
            if live && !renew && current != holder {
                return Ok(None);
            }
            let term = if renew { term } else { term + 1 };
            tx.execute_cached(
                "UPDATE evident_lease SET term = $1, holder = $2, \
                 expires = now() + make_interval(secs => $3::bigint / 1000.0)",
                &[&term, &holder, &millis],
            )
            .map_err(pg("taking the lease"))?;
            let size: i64 = tx
                .query_one_cached("SELECT coalesce(max(idx) + 1, 0) FROM evident_entries", &[])
                .map_err(pg("reading the log's size"))?
                .get(0);
            tx.commit().map_err(pg("taking the lease"))?;
            Ok(Some((term, holder, size)))
        })?;
        let Some((term, holder, size)) = taken else {
            return Ok(None);
        };
        let size = u64::try_from(size).unwrap_or(0);
        let renewed = held_term(&self.lease_held()?) == Some(term);
        if !renewed {
            // A new holder appends after whatever the log holds now, which settles whatever
            // an earlier failed append of this instance left unknown.
            self.size.store(size, Ordering::Release);
            *self
                .poisoned
                .lock()
                .map_err(|_| StoreError::Poisoned("a writer panicked".into()))? = None;
        }
        *self
            .lease
            .lock()
            .map_err(|_| StoreError::Poisoned("a lease holder panicked".into()))? =
            Some((term, holder));
        Ok(Some(Lease {
            term: u64::try_from(term).unwrap_or(0),
            size,
        }))
    }

    /// Runs `work` while a thread renews this instance's lease every third of `ttl`: for
    /// work that must finish under the lease and may outlast it (the check before a new
    /// sequencer starts). Returns `work`'s result, and whether the lease was held, under
    /// its term, from start to end.
    pub fn with_lease_renewed<T>(
        &self,
        ttl: std::time::Duration,
        work: impl FnOnce() -> T,
    ) -> (T, bool) {
        let held = held_term(&self.lease_held().unwrap_or(None)).is_some_and(|t| t >= 0);
        let done = std::sync::atomic::AtomicBool::new(false);
        let kept = std::sync::atomic::AtomicBool::new(held);
        let result = std::thread::scope(|scope| {
            let renewer = scope.spawn(|| {
                while !done.load(Ordering::Acquire) && kept.load(Ordering::Acquire) {
                    std::thread::park_timeout(ttl / 3);
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    if !self.renew_lease(ttl).unwrap_or(false) {
                        kept.store(false, Ordering::Release);
                    }
                }
            });
            let result = work();
            done.store(true, Ordering::Release);
            renewer.thread().unpark();
            result
        });
        let kept = kept.load(Ordering::Acquire) && self.renew_lease(ttl).unwrap_or(false);
        (result, kept)
    }

    /// Extends the lease this instance holds, under its term: `false` when it holds none,
    /// or the lease expired or was taken (then this instance must stop sequencing). Never
    /// takes a new term: a sequencer whose lease lapsed stops, and starts again only
    /// through [`PgLog::acquire_lease`] and the takeover's check.
    pub fn renew_lease(&self, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let Some((term, holder)) = self.lease_held()? else {
            return Ok(false);
        };
        if term < 0 {
            return Ok(false);
        }
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.conn.run_write(move |c| {
            let mut tx = c.transaction().map_err(pg("renewing the lease"))?;
            tx.batch_execute(&format!("SET LOCAL lock_timeout = {LEASE_LOCK_MS}"))
                .map_err(pg("renewing the lease"))?;
            let renewed = tx
                .execute_cached(
                    "UPDATE evident_lease SET expires = now() + make_interval(secs => $3::bigint / 1000.0) \
                     WHERE term = $1 AND holder = $2 AND expires > now()",
                    &[&term, &holder, &millis],
                )
                .map_err(pg("renewing the lease"))?;
            tx.commit().map_err(pg("renewing the lease"))?;
            Ok(renewed == 1)
        })
    }

    /// Gives up the lease if this instance holds it (at a clean stop), so that another
    /// takes over at once instead of after the lease expires. Appends are refused after.
    pub fn release_lease(&self) -> Result<(), StoreError> {
        let Some((term, holder)) = self.lease_held()? else {
            return Ok(());
        };
        self.drop_lease();
        if term < 0 {
            return Ok(());
        }
        self.conn.run_write(move |c| {
            c.execute_cached(
                "UPDATE evident_lease SET expires = '-infinity' WHERE term = $1 AND holder = $2",
                &[&term, &holder],
            )
            .map(drop)
            .map_err(pg("releasing the lease"))
        })
    }

    /// Forgets the lease without touching the database: appends are refused from now on
    /// (their fencing check would refuse them anyway once another instance takes over).
    pub fn drop_lease(&self) {
        if let Ok(mut lease) = self.lease.lock() {
            if let Some((term, _)) = lease.as_mut() {
                // No term is negative: the fencing check refuses every append.
                *term = -1;
            }
        }
    }

    /// Removes outcomes older than `keep` that nobody collected (their submitter stopped
    /// waiting, or stopped).
    pub fn sweep_outcomes(&self, keep: std::time::Duration) -> Result<u64, StoreError> {
        let secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        self.run(move |c| {
            c.execute_cached(
                "DELETE FROM evident_outcomes WHERE done < now() - make_interval(secs => $1::bigint)",
                &[&secs],
            )
            .map_err(pg("sweeping outcomes"))
        })
    }

    /// Records the log's verifier key (`name+id+base64`) in the database if none is; returns
    /// the one recorded. Every instance of a log signs with one key.
    pub fn record_log_key(&self, verifier: &str) -> Result<String, StoreError> {
        let value = verifier.as_bytes().to_vec();
        let recorded: Vec<u8> = self.run(move |c| {
            c.execute_cached(
                "INSERT INTO evident_meta (key, value) VALUES ('log_key', $1) \
                 ON CONFLICT (key) DO NOTHING",
                &[&value],
            )
            .map_err(pg("recording the log key"))?;
            c.query_one_cached("SELECT value FROM evident_meta WHERE key = 'log_key'", &[])
                .map(|r| r.get(0))
                .map_err(pg("reading the log key"))
        })?;
        String::from_utf8(recorded)
            .map_err(|_| StoreError::Corrupt("the recorded log key is not UTF-8".into()))
    }

    /// Queues a checked envelope (its record encoding) for the sequencer and wakes it;
    /// returns its place in the queue. Not durable on its own, and need not be: nothing is
    /// acknowledged until the sequencer's batch commits with the envelope's outcome.
    pub fn enqueue(&self, envelope: Vec<u8>, by: &str) -> Result<u64, StoreError> {
        let by = by.to_owned();
        let id: i64 = self.run(move |c| {
            let mut tx = c.transaction().map_err(pg("queueing a submission"))?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .map_err(pg("queueing a submission"))?;
            let id: i64 = tx
                .query_one_cached(
                    "INSERT INTO evident_queue (envelope, queued_by) VALUES ($1, $2) RETURNING id",
                    &[&envelope, &by],
                )
                .map_err(pg("queueing a submission"))?
                .get(0);
            tx.execute_cached("SELECT pg_notify($1, '')", &[&QUEUE_CHANNEL])
                .map_err(pg("queueing a submission"))?;
            tx.commit().map_err(pg("queueing a submission"))?;
            Ok(id)
        })?;
        Ok(u64::try_from(id).unwrap_or(0))
    }

    /// Queues several checked envelopes in one transaction, as [`PgLog::enqueue`] queues
    /// one; returns their places, in the order given.
    pub fn enqueue_all(&self, envelopes: Vec<Vec<u8>>, by: &str) -> Result<Vec<u64>, StoreError> {
        if envelopes.is_empty() {
            return Ok(Vec::new());
        }
        let by = by.to_owned();
        let count = envelopes.len();
        let mut ids: Vec<i64> = self.conn.run_write(move |c| {
            // Not durable on its own, and need not be (see `enqueue`): no wait for the
            // disk; the transaction begins and is so set in one round trip. The places are
            // drawn in the order of the rows, which is the order given; the sequencer is
            // woken when the transaction commits.
            let rows = c
                .batch_execute("BEGIN; SET LOCAL synchronous_commit = off")
                .and_then(|()| {
                    c.query_cached(
                        "WITH q AS (INSERT INTO evident_queue (envelope, queued_by) \
                         SELECT e, $2 FROM unnest($1::bytea[]) WITH ORDINALITY AS u(e, n) \
                         ORDER BY n RETURNING id), \
                         w AS (SELECT pg_notify('evident_queue', '') AS woken) \
                         SELECT q.id FROM q CROSS JOIN w",
                        &[&envelopes, &by],
                    )
                })
                .and_then(|rows| c.batch_execute("COMMIT").map(|()| rows));
            match rows {
                Ok(rows) => Ok(rows.into_iter().map(|r| r.get(0)).collect()),
                Err(e) => {
                    // Nothing queued; the connection is left outside any transaction.
                    let _ = c.batch_execute("ROLLBACK");
                    Err(pg("queueing submissions")(e))
                }
            }
        })?;
        if ids.len() != count {
            return Err(StoreError::Database {
                op: "queueing submissions",
                message: format!("{count} queued, {} places returned", ids.len()),
            });
        }
        ids.sort_unstable();
        Ok(ids
            .into_iter()
            .map(|id| u64::try_from(id).unwrap_or(0))
            .collect())
    }

    /// Takes up to `limit` queued submissions after place `after`, in order, for the
    /// sequencer of lease term `term`: each is marked taken, so that its submitter can no
    /// longer withdraw it. Submissions a sequencer of an earlier term took but never
    /// settled are taken again.
    pub fn take_queued(
        &self,
        term: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let (term, after) = (to_i64(term), to_i64(after));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.run(move |c| {
            c.query_cached(
                "UPDATE evident_queue SET taken = $1 WHERE id IN (SELECT id FROM evident_queue \
                 WHERE id > $2 AND (taken IS NULL OR taken < $1) ORDER BY id LIMIT $3) \
                 RETURNING id, envelope",
                &[&term, &after, &limit],
            )
            .map_err(pg("taking queued submissions"))
        })?;
        let mut taken: Vec<(u64, Vec<u8>)> = rows
            .into_iter()
            .map(|r| (u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), r.get(1)))
            .collect();
        taken.sort_unstable_by_key(|(id, _)| *id);
        Ok(taken)
    }

    /// Takes back a queued submission no sequencer has taken: `true` when it was still
    /// waiting (it will never be logged), `false` when a sequencer took it (its outcome is,
    /// or will be, recorded).
    pub fn withdraw(&self, id: u64) -> Result<bool, StoreError> {
        let id = to_i64(id);
        self.conn.run_write(move |c| {
            c.execute_cached(
                "DELETE FROM evident_queue WHERE id = $1 AND taken IS NULL",
                &[&id],
            )
            .map(|n| n == 1)
            .map_err(pg("withdrawing a queued submission"))
        })
    }

    /// The recorded outcomes of these queued submissions (those that have one), removed
    /// from the table as they are read.
    pub fn take_outcomes(&self, ids: &[u64]) -> Result<Vec<(u64, Outcome)>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|i| to_i64(*i)).collect();
        let rows = self.conn.run_write(move |c| {
            c.query_cached(
                "DELETE FROM evident_outcomes WHERE id = ANY($1) \
                 RETURNING id, idx, duplicate, code, message, details",
                &[&ids],
            )
            .map_err(pg("reading outcomes"))
        })?;
        let mut outcomes: Vec<(u64, Outcome)> = rows
            .into_iter()
            .map(|r| {
                let id = u64::try_from(r.get::<_, i64>(0)).unwrap_or(0);
                let outcome = match r.get::<_, Option<i64>>(1) {
                    Some(index) => Outcome::Logged {
                        index: u64::try_from(index).unwrap_or(0),
                        duplicate: r.get::<_, Option<bool>>(2).unwrap_or(false),
                    },
                    None => Outcome::Refused {
                        code: r.get::<_, Option<i32>>(3).unwrap_or(2),
                        message: r.get::<_, Option<String>>(4).unwrap_or_default(),
                        details: r.get::<_, Option<Vec<u8>>>(5).unwrap_or_default(),
                    },
                };
                (id, outcome)
            })
            .collect();
        outcomes.sort_unstable_by_key(|(id, _)| *id);
        Ok(outcomes)
    }

    /// The latest checkpoint any sequencer stored, read from the database (not this
    /// instance's memory): what a follower refreshes from.
    pub fn stored_checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.checkpoint()
    }

    fn lease_held(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .lease
            .lock()
            .map_err(|_| StoreError::Poisoned("a lease holder panicked".into()))?
            .clone())
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.conn.run(f)
    }

    /// One batch, one transaction: the fencing check, the records, the tree nodes, the
    /// index rows (when given), the outcomes of the queued submissions it settles and the
    /// checkpoint over the log with the batch (when given; announced on
    /// [`CHECKPOINT_CHANNEL`] at the commit). When the batch has no entries (every queued
    /// submission refused or already logged), the transaction holds just the outcomes and
    /// the checkpoint.
    fn write_batch(
        &self,
        records: &[Vec<u8>],
        nodes: &[Node],
        indexed: Option<&[Indexed]>,
        outcomes: &[(u64, Outcome)],
        checkpoint: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut poisoned = self
            .poisoned
            .lock()
            .map_err(|_| StoreError::Poisoned("a writer panicked".into()))?;
        if let Some(why) = poisoned.as_ref() {
            return Err(StoreError::Poisoned(why.clone()));
        }
        if records.is_empty() && outcomes.is_empty() {
            return Ok(());
        }
        let start = self.size();
        let indexes: Vec<i64> = (0..records.len() as u64)
            .map(|i| to_i64(start + i))
            .collect();
        let records = records.to_vec();
        let levels: Vec<i32> = nodes
            .iter()
            .map(|n| i32::try_from(n.level).unwrap_or(i32::MAX))
            .collect();
        let node_indexes: Vec<i64> = nodes.iter().map(|n| to_i64(n.index)).collect();
        let hashes: Vec<Vec<u8>> = nodes.iter().map(|n| n.hash.as_bytes().to_vec()).collect();
        let rows = indexed.filter(|e| !e.is_empty()).map(IndexRows::of);
        let settled = OutcomeRows::of(outcomes);
        let checkpoint = checkpoint.map(checkpoint_row).transpose()?;
        let count = records.len() as u64;
        let lease = self.lease_held()?;
        let result = self.conn.run_write(move |c| {
            let mut tx = c.transaction().map_err(pg("appending entries"))?;
            // Fencing: inside the batch's own transaction, so that no commit can follow a
            // takeover. With it, the indexes' end, locked against a concurrent reindex.
            let row = tx
                .query_one_cached(
                    "SELECT l.term, l.holder, l.expires > now(), i.indexed \
                     FROM evident_lease l CROSS JOIN evident_indexed i \
                     FOR SHARE OF l FOR UPDATE OF i",
                    &[],
                )
                .map_err(pg("checking the lease"))?;
            let (now_term, now_holder, live, at): (i64, String, bool, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if let Some((term, holder)) = lease {
                if now_term != term || now_holder != holder || !live {
                    return Err(StoreError::Fenced {
                        term,
                        current: now_term,
                        holder: now_holder,
                    });
                }
            }
            let rows = rows.unwrap_or_else(IndexRows::none);
            if rows.next > rows.first && at != rows.first {
                return Err(StoreError::Corrupt(format!(
                    "the indexes go to entry {at}, asked to add from entry {}",
                    rows.first
                )));
            }
            let (size, note) = match checkpoint {
                Some((size, note)) => (Some(size), Some(note)),
                None => (None, None),
            };
            // One statement, one round trip: every row of the batch, and the checkpoint
            // announced on `evident_checkpoint` (CHECKPOINT_CHANNEL) at the commit — its
            // note itself, which followers verify, unless it is too long for a
            // notification (8,000 bytes), then its size.
            let row = tx
                .query_one_cached(
                    "WITH \
                     e AS (INSERT INTO evident_entries (idx, record) \
                           SELECT * FROM unnest($1::bigint[], $2::bytea[])), \
                     n AS (INSERT INTO evident_nodes (level, idx, hash) \
                           SELECT * FROM unnest($3::integer[], $4::bigint[], $5::bytea[])), \
                     lf AS (INSERT INTO evident_leaf (hash, idx) \
                           SELECT * FROM unnest($6::bytea[], $7::bigint[])), \
                     ct AS (INSERT INTO evident_content (key, idx) \
                           SELECT * FROM unnest($8::bytea[], $9::bigint[])), \
                     po AS (INSERT INTO evident_postings (list, idx) \
                           SELECT * FROM unnest($10::bytea[], $11::bigint[]) ON CONFLICT DO NOTHING), \
                     si AS (INSERT INTO evident_signers (idx, signers) \
                           SELECT i, CASE WHEN s = '' THEN '{}'::text[] \
                                     ELSE string_to_array(s, chr(31)) END \
                           FROM unnest($12::bigint[], $13::text[]) AS u(i, s)), \
                     pv AS (INSERT INTO evident_policies (name, version, idx) \
                           SELECT * FROM unnest($14::text[], $15::bigint[], $16::bigint[]) \
                           ON CONFLICT DO NOTHING), \
                     ix AS (UPDATE evident_indexed SET indexed = $17::bigint WHERE $17::bigint > $18::bigint), \
                     dq AS (DELETE FROM evident_queue WHERE id = ANY($19::bigint[]) RETURNING id), \
                     oc AS (INSERT INTO evident_outcomes (id, idx, duplicate, code, message, details) \
                           SELECT * FROM unnest($19::bigint[], $20::bigint[], $21::boolean[], \
                                                $22::integer[], $23::text[], $24::bytea[])), \
                     ik AS (INSERT INTO evident_index_keys (first, frame) \
                           SELECT $18::bigint, $27::bytea WHERE $27::bytea IS NOT NULL \
                           AND $17::bigint > $18::bigint ON CONFLICT DO NOTHING), \
                     cp AS (INSERT INTO evident_checkpoint (size, note) \
                           SELECT $25::bigint, $26::bytea WHERE $26::bytea IS NOT NULL \
                           ON CONFLICT (one) DO UPDATE SET size = excluded.size, note = excluded.note \
                           WHERE evident_checkpoint.size <= excluded.size) \
                     SELECT (SELECT count(*) FROM dq), \
                            CASE WHEN $26::bytea IS NOT NULL \
                                 THEN pg_notify('evident_checkpoint', \
                                      CASE WHEN octet_length($26::bytea) <= 7000 \
                                           THEN convert_from($26::bytea, 'UTF8') \
                                           ELSE $25::bigint::text END) END IS NULL",
                    &[
                        &indexes,
                        &records,
                        &levels,
                        &node_indexes,
                        &hashes,
                        &rows.leaf.0,
                        &rows.leaf.1,
                        &rows.content.0,
                        &rows.content.1,
                        &rows.postings.0,
                        &rows.postings.1,
                        &rows.signers.0,
                        &rows.signers.1,
                        &rows.policies.0,
                        &rows.policies.1,
                        &rows.policies.2,
                        &rows.next,
                        &rows.first,
                        &settled.ids,
                        &settled.indexes,
                        &settled.duplicates,
                        &settled.codes,
                        &settled.messages,
                        &settled.details,
                        &size,
                        &note,
                        &rows.keys,
                    ],
                )
                .map_err(pg("appending entries"))?;
            let taken: i64 = row.get(0);
            if taken != settled.ids.len() as i64 {
                return Err(StoreError::Corrupt(
                    "a queued submission this sequencer took is no longer queued".into(),
                ));
            }
            tx.commit().map_err(pg("committing a batch"))
        });
        match result {
            Ok(()) => {
                self.size.store(start + count, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Whether the commit reached the disk is unknown: the store stops, and a
                // restart (or a new lease) reads back what is there.
                *poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn meta(&self, key: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(move |c| {
            c.query_opt_cached("SELECT value FROM evident_meta WHERE key = $1", &[&key])
                .map(|row| row.map(|r| r.get(0)))
                .map_err(pg("reading log metadata"))
        })
    }
}

fn held_term(held: &Option<(i64, String)>) -> Option<i64> {
    held.as_ref().map(|(term, _)| *term)
}

/// Applies the migrations not yet applied, each in its own transaction.
fn migrate(client: &mut postgres::Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "SET client_min_messages TO warning; \
             CREATE TABLE IF NOT EXISTS evident_schema (version integer NOT NULL)",
        )
        .map_err(pg("creating the schema table"))?;
    let mut tx = client.transaction().map_err(pg("migrating the schema"))?;
    // One migrator at a time, whichever instance starts first.
    tx.batch_execute("LOCK TABLE evident_schema IN EXCLUSIVE MODE")
        .map_err(pg("locking the schema table"))?;
    let applied: i64 = tx
        .query_one("SELECT count(*) FROM evident_schema", &[])
        .map_err(pg("reading the schema version"))?
        .get(0);
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Layout(format!(
            "the database's schema is at version {applied}, newer than this evidentd knows \
             ({}): upgrade evidentd",
            MIGRATIONS.len()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).map_err(pg("applying a migration"))?;
        tx.execute(
            "INSERT INTO evident_schema (version) VALUES ($1)",
            &[&i32::try_from(version + 1).unwrap_or(i32::MAX)],
        )
        .map_err(pg("recording a migration"))?;
    }
    tx.commit().map_err(pg("committing the migrations"))
}

/// A checkpoint note as its row: its size (from its second line) and its bytes.
fn checkpoint_row(note: &str) -> Result<(i64, Vec<u8>), StoreError> {
    let size = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| StoreError::Corrupt("a checkpoint note without a size line".into()))?;
    Ok((to_i64(size), note.as_bytes().to_vec()))
}

/// Stores a checkpoint in `tx` unless one of a larger log is stored (a sequencer that lost
/// its lease may still store one over what it committed, which the new sequencer's already
/// covers), and announces its size on [`CHECKPOINT_CHANNEL`] when `tx` commits.
fn store_checkpoint(
    tx: &mut postgres::Transaction<'_>,
    size: i64,
    note: &[u8],
) -> Result<(), StoreError> {
    tx.execute_cached(
        "INSERT INTO evident_checkpoint (size, note) VALUES ($1, $2) \
         ON CONFLICT (one) DO UPDATE SET size = excluded.size, note = excluded.note \
         WHERE evident_checkpoint.size <= excluded.size",
        &[&size, &note],
    )
    .map_err(pg("storing the checkpoint"))?;
    tx.execute_cached(
        "SELECT pg_notify($1, $2)",
        &[&CHECKPOINT_CHANNEL, &size.to_string()],
    )
    .map_err(pg("storing the checkpoint"))?;
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl LogStore for PgLog {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn append(&self, records: &[Vec<u8>], nodes: &[Node]) -> Result<(), StoreError> {
        self.write_batch(records, nodes, None, &[], None)
    }

    fn observe_size(&self, size: u64) {
        self.size.fetch_max(size, Ordering::AcqRel);
    }

    fn append_batch(
        &self,
        records: &[Vec<u8>],
        nodes: &[Node],
        indexed: &[Indexed],
        outcomes: &[(u64, Outcome)],
        checkpoint: Option<&str>,
    ) -> Result<super::Wrote, StoreError> {
        self.write_batch(records, nodes, Some(indexed), outcomes, checkpoint)
            .map(|()| super::Wrote {
                indexed: true,
                checkpoint: checkpoint.is_some(),
            })
    }

    fn entries_at(&self, indexes: &[u64]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let size = self.size();
        let wanted: Vec<i64> = indexes
            .iter()
            .filter(|&&i| i < size)
            .map(|&i| to_i64(i))
            .collect();
        if wanted.is_empty() {
            return Ok(vec![None; indexes.len()]);
        }
        let rows = self.run(move |c| {
            c.query_cached(
                "SELECT e.idx, e.record FROM unnest($1::bigint[]) AS w(idx) \
                 JOIN evident_entries e ON e.idx = w.idx",
                &[&wanted],
            )
            .map_err(pg("reading entries"))
        })?;
        let found: std::collections::HashMap<i64, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(indexes
            .iter()
            .map(|&i| found.get(&to_i64(i)).cloned())
            .collect())
    }

    fn subtree_hashes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Hash>, StoreError> {
        let size = self.size();
        for &(level, index) in wanted {
            super::check_complete(level, index, size)?;
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let levels: Vec<i32> = wanted
            .iter()
            .map(|(l, _)| i32::try_from(*l).unwrap_or(i32::MAX))
            .collect();
        let indexes: Vec<i64> = wanted.iter().map(|(_, i)| to_i64(*i)).collect();
        let rows = self.run(move |c| {
            c.query_cached(
                "SELECT n.level, n.idx, n.hash FROM evident_nodes n \
                 JOIN unnest($1::integer[], $2::bigint[]) AS w(level, idx) \
                 ON n.level = w.level AND n.idx = w.idx",
                &[&levels, &indexes],
            )
            .map_err(pg("reading tree nodes"))
        })?;
        let mut found: std::collections::HashMap<(u32, u64), Hash> =
            std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let (level, index, bytes): (i32, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
            let (level, index) = (
                u32::try_from(level).unwrap_or(u32::MAX),
                u64::try_from(index).unwrap_or(u64::MAX),
            );
            let raw: [u8; 32] = bytes.try_into().map_err(|_| {
                StoreError::Corrupt(format!(
                    "tree node (level {level}, index {index}) is not 32 bytes"
                ))
            })?;
            found.insert((level, index), Hash(raw));
        }
        wanted
            .iter()
            .map(|&(level, index)| {
                found.get(&(level, index)).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "tree node (level {level}, index {index}) is missing"
                    ))
                })
            })
            .collect()
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if index >= self.size() {
            return Ok(None);
        }
        let index = to_i64(index);
        self.run(move |c| {
            c.query_opt_cached(
                "SELECT record FROM evident_entries WHERE idx = $1",
                &[&index],
            )
            .map(|row| row.map(|r| r.get(0)))
            .map_err(pg("reading an entry"))
        })
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = end.min(self.size());
        if start >= end {
            return Ok(Vec::new());
        }
        let (start, end) = (to_i64(start), to_i64(end));
        let rows = self.run(move |c| {
            c.query_cached(
                "SELECT idx, record FROM evident_entries WHERE idx >= $1 AND idx < $2 \
                 ORDER BY idx",
                &[&start, &end],
            )
            .map_err(pg("reading entries"))
            .map(|rows| {
                rows.into_iter()
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
                    .collect::<Vec<_>>()
            })
        })?;
        // Every index of the range, in order: a hole is a damaged store, not a short answer.
        for (expected, (idx, _)) in (start..end).zip(&rows) {
            if *idx != expected {
                return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
            }
        }
        if rows.len() as i64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end}: {} found",
                rows.len()
            )));
        }
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let size = self.size();
        super::check_complete(level, index, size)?;
        let (lvl, idx) = (i32::try_from(level).unwrap_or(i32::MAX), to_i64(index));
        let bytes: Option<Vec<u8>> = self.run(move |c| {
            c.query_opt_cached(
                "SELECT hash FROM evident_nodes WHERE level = $1 AND idx = $2",
                &[&lvl, &idx],
            )
            .map(|row| row.map(|r| r.get(0)))
            .map_err(pg("reading a tree node"))
        })?;
        let bytes = bytes.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "tree node (level {level}, index {index}) is missing"
            ))
        })?;
        let raw: [u8; 32] = bytes.try_into().map_err(|_| {
            StoreError::Corrupt(format!(
                "tree node (level {level}, index {index}) is not 32 bytes"
            ))
        })?;
        Ok(Hash(raw))
    }

    fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.run(|c| {
            c.query_opt_cached("SELECT note FROM evident_checkpoint", &[])
                .map(|row| row.map(|r| r.get::<_, Vec<u8>>(0)))
                .map_err(pg("reading the checkpoint"))
        })?
        .map(|b| {
            String::from_utf8(b)
                .map_err(|_| StoreError::Corrupt("the stored checkpoint is not UTF-8".into()))
        })
        .transpose()
    }

    /// Never replaces a checkpoint of a larger log: a sequencer that lost its lease may
    /// still store one over what it committed, which the new sequencer's already covers.
    /// Announces the size on [`CHECKPOINT_CHANNEL`].
    fn set_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        let (size, note) = checkpoint_row(note)?;
        self.conn.run_write(move |c| {
            let mut tx = c.transaction().map_err(pg("storing the checkpoint"))?;
            store_checkpoint(&mut tx, size, &note)?;
            tx.commit().map_err(pg("storing the checkpoint"))
        })
    }

    fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.meta("genesis")
    }

    /// The first genesis recorded stays: instances starting together on an empty database
    /// each try, and all read back the one that won.
    fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError> {
        let value = json.to_vec();
        self.run(move |c| {
            c.execute_cached(
                "INSERT INTO evident_meta (key, value) VALUES ('genesis', $1) \
                 ON CONFLICT (key) DO NOTHING",
                &[&value],
            )
            .map(drop)
            .map_err(pg("recording the genesis"))
        })
    }
}

/// What the database tells the instances of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected (again): listening.
    Up,
    /// The database cannot be reached; the listener tries again about every half second.
    Down(String),
    /// A sequencer stored a checkpoint: its signed note, when the notification carried it
    /// (a note too long for one is read from the table).
    Checkpoint(Option<String>),
    /// An instance queued a submission.
    Queued,
    /// Half a second without news: time to look anyway.
    Tick,
}

/// Listens on [`CHECKPOINT_CHANNEL`] and [`QUEUE_CHANNEL`] on a connection of its own, on a
/// thread of its own, and tells `events` what happens until `events` is closed. A lost
/// connection is reported once as [`Event::Down`] and made again.
pub fn listen(target: &PgTarget, events: tokio::sync::mpsc::UnboundedSender<Event>) {
    let target = target.clone();
    let spawned = std::thread::Builder::new()
        .name("evident-listen".into())
        .spawn(move || {
            let tick = std::time::Duration::from_millis(500);
            let mut down = false;
            while !events.is_closed() {
                let connected = target.connect().and_then(|mut c| {
                    c.batch_execute(&format!(
                        "LISTEN {CHECKPOINT_CHANNEL}; LISTEN {QUEUE_CHANNEL}"
                    ))
                    .map_err(pg("listening for checkpoints"))?;
                    Ok(c)
                });
                let mut client = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        if !down {
                            down = true;
                            let _ = events.send(Event::Down(e.to_string()));
                        }
                        std::thread::sleep(tick);
                        continue;
                    }
                };
                if events.send(Event::Up).is_err() {
                    return;
                }
                loop {
                    let mut broken = None;
                    {
                        let mut notifications = client.notifications();
                        let mut waiting = notifications.timeout_iter(tick);
                        use postgres::fallible_iterator::FallibleIterator as _;
                        loop {
                            match waiting.next() {
                                Ok(Some(n)) => {
                                    let event = if n.channel() == QUEUE_CHANNEL {
                                        Event::Queued
                                    } else {
                                        // A note has lines; a bare size (the table has
                                        // the note) has none.
                                        let note = n.payload().contains('\n');
                                        Event::Checkpoint(note.then(|| n.payload().to_owned()))
                                    };
                                    if events.send(event).is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    broken = Some(pg("listening for checkpoints")(e));
                                    break;
                                }
                            }
                        }
                    }
                    if broken.is_none() && client.is_valid(tick).is_err() {
                        broken = Some(StoreError::Unreachable {
                            op: "listening for checkpoints",
                            message: "the connection stopped answering".into(),
                        });
                    }
                    if let Some(e) = broken {
                        down = true;
                        let _ = events.send(Event::Down(e.to_string()));
                        break;
                    }
                    if events.send(Event::Tick).is_err() {
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "starting the PostgreSQL listener failed");
    }
}

/// The indexes in PostgreSQL: look-ups by leaf hash and dedupe key, posting lists, each
/// entry's signers and the policy versions, each [`IndexStore::add`] one transaction.
pub struct PgIndex {
    conn: std::sync::Arc<Conn>,
}

impl fmt::Debug for PgIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgIndex").finish_non_exhaustive()
    }
}

impl PgIndex {
    /// Connects to `url` and applies the migrations this build knows.
    pub fn open(target: &PgTarget) -> Result<PgIndex, StoreError> {
        Ok(PgIndex {
            conn: std::sync::Arc::new(Conn::open(target)?),
        })
    }
}

/// The policy version an entry records, if the indexes keep it.
fn policy_of(entry: &Indexed) -> Option<(String, i64)> {
    entry
        .facts
        .policy
        .as_ref()
        .filter(|(name, _)| !name.contains('\0'))
        .map(|(name, version)| (name.clone(), to_i64(*version)))
}

/// The index rows of consecutive entries, as arrays to bind.
struct IndexRows {
    first: i64,
    next: i64,
    leaf: (Vec<Vec<u8>>, Vec<i64>),
    content: (Vec<Vec<u8>>, Vec<i64>),
    postings: (Vec<Vec<u8>>, Vec<i64>),
    signers: (Vec<i64>, Vec<String>),
    policies: (Vec<String>, Vec<i64>, Vec<i64>),
    /// The batch's verifiable-index keys, as the key log frames them (`storage::key_frame`).
    keys: Option<Vec<u8>>,
}

impl IndexRows {
    /// No rows: a batch written without its index rows.
    fn none() -> IndexRows {
        IndexRows {
            first: 0,
            next: 0,
            leaf: Default::default(),
            content: Default::default(),
            postings: Default::default(),
            signers: Default::default(),
            policies: Default::default(),
            keys: None,
        }
    }

    /// The rows of `entries` (at least one, consecutive).
    fn of(entries: &[Indexed]) -> IndexRows {
        let mut rows = IndexRows {
            first: entries.first().map_or(0, |e| to_i64(e.index)),
            next: entries.last().map_or(0, |e| to_i64(e.index + 1)),
            leaf: Default::default(),
            content: Default::default(),
            postings: Default::default(),
            signers: Default::default(),
            policies: Default::default(),
            keys: Some(super::key_frame(entries)),
        };
        for entry in entries {
            let index = to_i64(entry.index);
            rows.leaf.0.push(entry.leaf_hash.as_bytes().to_vec());
            rows.leaf.1.push(index);
            rows.content.0.push(entry.dedupe_key.as_bytes().to_vec());
            rows.content.1.push(index);
            for list in entry.postings() {
                if let Some(prefix) = list.prefix() {
                    rows.postings.0.push(prefix);
                    rows.postings.1.push(index);
                }
            }
            rows.signers.0.push(index);
            // Arrays of arrays cannot be bound: the identities of an entry joined by the
            // unit separator (U+001F), a control character no identity may hold.
            rows.signers.1.push(entry.facts.signers.join("\u{1f}"));
            if let Some((name, version)) = policy_of(entry) {
                rows.policies.0.push(name);
                rows.policies.1.push(version);
                rows.policies.2.push(index);
            }
        }
        rows
    }

    /// Inserts the rows in `tx`, after checking that the indexes end where they begin.
    fn insert(&self, tx: &mut postgres::Transaction<'_>) -> Result<(), StoreError> {
        let at: i64 = tx
            .query_one_cached("SELECT indexed FROM evident_indexed FOR UPDATE", &[])
            .map_err(pg("indexing entries"))?
            .get(0);
        if at != self.first {
            return Err(StoreError::Corrupt(format!(
                "the indexes go to entry {at}, asked to add from entry {}",
                self.first
            )));
        }
        tx.execute_cached(
            "INSERT INTO evident_leaf (hash, idx) SELECT * FROM unnest($1::bytea[], $2::bigint[])",
            &[&self.leaf.0, &self.leaf.1],
        )
        .map_err(pg("indexing leaf hashes"))?;
        tx.execute_cached(
            // A log never holds two entries with one dedupe key: a repeat is refused.
            "INSERT INTO evident_content (key, idx) SELECT * FROM unnest($1::bytea[], $2::bigint[])",
            &[&self.content.0, &self.content.1],
        )
        .map_err(pg("indexing dedupe keys"))?;
        tx.execute_cached(
            "INSERT INTO evident_postings (list, idx) SELECT * FROM unnest($1::bytea[], $2::bigint[]) \
             ON CONFLICT DO NOTHING",
            &[&self.postings.0, &self.postings.1],
        )
        .map_err(pg("indexing posting lists"))?;
        tx.execute_cached(
            "INSERT INTO evident_signers (idx, signers) \
             SELECT i, CASE WHEN s = '' THEN '{}'::text[] ELSE string_to_array(s, chr(31)) END \
             FROM unnest($1::bigint[], $2::text[]) AS u(i, s)",
            &[&self.signers.0, &self.signers.1],
        )
        .map_err(pg("indexing signers"))?;
        tx.execute_cached(
            "INSERT INTO evident_policies (name, version, idx) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
            &[&self.policies.0, &self.policies.1, &self.policies.2],
        )
        .map_err(pg("indexing policy versions"))?;
        tx.execute_cached(
            "INSERT INTO evident_index_keys (first, frame) SELECT $1, $2 \
             WHERE $2::bytea IS NOT NULL ON CONFLICT DO NOTHING",
            &[&self.first, &self.keys],
        )
        .map_err(pg("indexing the verifiable index's keys"))?;
        tx.execute_cached("UPDATE evident_indexed SET indexed = $1", &[&self.next])
            .map_err(pg("indexing entries"))?;
        Ok(())
    }
}

/// The outcomes a batch settles, as arrays to bind.
struct OutcomeRows {
    ids: Vec<i64>,
    indexes: Vec<Option<i64>>,
    duplicates: Vec<Option<bool>>,
    codes: Vec<Option<i32>>,
    messages: Vec<Option<String>>,
    details: Vec<Option<Vec<u8>>>,
}

impl OutcomeRows {
    fn of(outcomes: &[(u64, Outcome)]) -> OutcomeRows {
        let mut rows = OutcomeRows {
            ids: Vec::new(),
            indexes: Vec::new(),
            duplicates: Vec::new(),
            codes: Vec::new(),
            messages: Vec::new(),
            details: Vec::new(),
        };
        for (id, outcome) in outcomes {
            rows.ids.push(to_i64(*id));
            match outcome {
                Outcome::Logged { index, duplicate } => {
                    rows.indexes.push(Some(to_i64(*index)));
                    rows.duplicates.push(Some(*duplicate));
                    rows.codes.push(None);
                    rows.messages.push(None);
                    rows.details.push(None);
                }
                Outcome::Refused {
                    code,
                    message,
                    details,
                } => {
                    rows.indexes.push(None);
                    rows.duplicates.push(None);
                    rows.codes.push(Some(*code));
                    rows.messages.push(Some(message.clone()));
                    rows.details.push(Some(details.clone()));
                }
            }
        }
        rows
    }
}

impl IndexStore for PgIndex {
    fn indexed(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.run(|c| {
            c.query_one_cached("SELECT indexed FROM evident_indexed", &[])
                .map(|r| r.get(0))
                .map_err(pg("reading how far the indexes go"))
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn add(&self, entries: &[Indexed]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = IndexRows::of(entries);
        self.conn.run(move |c| {
            let mut tx = c.transaction().map_err(pg("indexing entries"))?;
            rows.insert(&mut tx)?;
            tx.commit().map_err(pg("committing index entries"))
        })
    }

    /// Every `add` is a committed transaction: nothing more to make durable.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        let key = leaf_hash.as_bytes().to_vec();
        self.lookup("SELECT idx FROM evident_leaf WHERE hash = $1", key)
    }

    /// Asked by the sequencer for the batch it integrates while the last one is written: on
    /// a reading connection, so that it does not wait behind that write.
    fn indexes_of_content(&self, keys: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let rows = self.conn.run(move |c| {
            c.query_cached(
                "SELECT c.key, c.idx FROM unnest($1::bytea[]) AS w(key) \
                 JOIN evident_content c ON c.key = w.key",
                &[&wanted],
            )
            .map_err(pg("reading an index"))
        })?;
        let found: std::collections::HashMap<Vec<u8>, i64> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(keys
            .iter()
            .map(|k| {
                found
                    .get(k.as_bytes().as_slice())
                    .and_then(|i| u64::try_from(*i).ok())
            })
            .collect())
    }

    fn remote(&self) -> bool {
        true
    }

    fn index_of_content(&self, dedupe_key: &Hash) -> Result<Option<u64>, StoreError> {
        let key = dedupe_key.as_bytes().to_vec();
        self.lookup("SELECT idx FROM evident_content WHERE key = $1", key)
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
        let Some(list) = posting.prefix() else {
            return Ok(None);
        };
        let (sql, a, b) = if forward {
            (
                "SELECT idx FROM evident_postings WHERE list = $1 AND idx >= $2 AND idx < $3 \
                 ORDER BY idx LIMIT 1",
                to_i64(from.max(lo)),
                to_i64(hi),
            )
        } else {
            (
                "SELECT idx FROM evident_postings WHERE list = $1 AND idx <= $2 AND idx >= $3 \
                 ORDER BY idx DESC LIMIT 1",
                to_i64(from.min(hi - 1)),
                to_i64(lo),
            )
        };
        let found: Option<i64> = self.conn.run(move |c| {
            c.query_opt_cached(sql, &[&list, &a, &b])
                .map(|row| row.map(|r| r.get(0)))
                .map_err(pg("reading a posting list"))
        })?;
        Ok(found.and_then(|i| u64::try_from(i).ok()))
    }

    fn read_list(
        &self,
        posting: &Posting,
        from: u64,
        hi: u64,
        count: usize,
    ) -> Result<Vec<u64>, StoreError> {
        if from >= hi || count == 0 {
            return Ok(Vec::new());
        }
        let Some(list) = posting.prefix() else {
            return Ok(Vec::new());
        };
        let (from, hi, count) = (
            to_i64(from),
            to_i64(hi),
            i64::try_from(count).unwrap_or(i64::MAX),
        );
        let found: Vec<i64> = self.conn.run(move |c| {
            c.query_cached(
                "SELECT idx FROM evident_postings WHERE list = $1 AND idx >= $2 AND idx < $3 \
                 ORDER BY idx LIMIT $4",
                &[&list, &from, &hi, &count],
            )
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .map_err(pg("reading a posting list"))
        })?;
        Ok(found
            .into_iter()
            .filter_map(|i| u64::try_from(i).ok())
            .collect())
    }

    fn signers_of(&self, index: u64) -> Result<Option<Vec<String>>, StoreError> {
        let index = to_i64(index);
        self.conn.run(move |c| {
            c.query_opt_cached(
                "SELECT signers FROM evident_signers WHERE idx = $1",
                &[&index],
            )
            .map(|row| row.map(|r| r.get(0)))
            .map_err(pg("reading an entry's signers"))
        })
    }

    fn policies(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        self.conn.run(|c| {
            c.query_cached(
                "SELECT name, version, idx FROM evident_policies ORDER BY name, version",
                &[],
            )
            .map(|rows| {
                rows.into_iter()
                    .map(|r| {
                        let version: i64 = r.get(1);
                        let idx: i64 = r.get(2);
                        (
                            r.get(0),
                            u64::try_from(version).unwrap_or(0),
                            u64::try_from(idx).unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .map_err(pg("reading policy versions"))
        })
    }

    fn check(&self, entry: &Indexed) -> Result<Option<String>, StoreError> {
        let index = entry.index;
        if self.index_of_leaf(&entry.leaf_hash)? != Some(index) {
            return Ok(Some("its leaf hash does not find it".into()));
        }
        if self
            .index_of_content(&entry.dedupe_key)?
            .is_none_or(|i| i > index)
        {
            return Ok(Some("its dedupe key does not find it".into()));
        }
        for list in entry.postings() {
            if self.seek(&list, index, true, index, index + 1)? != Some(index) {
                return Ok(Some(format!("it is missing from the list {list:?}")));
            }
        }
        if self.signers_of(index)?.as_ref() != Some(&entry.facts.signers) {
            return Ok(Some("its signers are not recorded as they are".into()));
        }
        if let Some((name, version)) = policy_of(entry) {
            let found = self
                .policies()?
                .into_iter()
                .any(|(n, v, i)| n == name && to_i64(v) == version && i == index);
            if !found {
                return Ok(Some(format!(
                    "policy {name} version {version} is not recorded"
                )));
            }
        }
        Ok(None)
    }

    fn census(&self) -> Result<Census, StoreError> {
        self.conn.run(|c| {
            let row = c
                .query_one_cached(
                    "SELECT (SELECT count(*) FROM evident_leaf), \
                            (SELECT count(*) FROM evident_content), \
                            (SELECT count(*) FROM evident_postings), \
                            (SELECT count(*) FROM evident_signers), \
                            (SELECT count(*) FROM evident_policies)",
                    &[],
                )
                .map_err(pg("counting the indexes"))?;
            let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            Ok(Census {
                leaf_hashes: n(0),
                dedupe_keys: n(1),
                postings: n(2),
                signer_records: n(3),
                policy_versions: n(4),
            })
        })
    }

    fn list_keys(
        &self,
        end: u64,
        visit: &mut dyn FnMut(&Hash, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const PAGE: i64 = 50_000;
        let indexed = self.indexed()?;
        if end > indexed {
            return Err(StoreError::Corrupt(format!(
                "asked for the key lists of {end} entries; the indexes hold {indexed}"
            )));
        }
        let end = to_i64(end);
        // Keyset pages in primary-key order: each list whole and in order.
        let mut after: (Vec<u8>, i64) = (Vec::new(), -1);
        let mut current: Option<(Vec<u8>, Hash)> = None;
        loop {
            let (list, idx) = after.clone();
            let rows: Vec<(Vec<u8>, i64)> = self.conn.run(move |c| {
                c.query_cached(
                    "SELECT list, idx FROM evident_postings WHERE (list, idx) > ($1, $2) \
                     AND idx < $3 ORDER BY list, idx LIMIT $4",
                    &[&list, &idx, &end, &PAGE],
                )
                .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                .map_err(pg("reading the posting lists"))
            })?;
            let Some(last) = rows.last().cloned() else {
                return Ok(());
            };
            for (list, idx) in rows {
                let key = match &current {
                    Some((name, key)) if *name == list => *key,
                    _ => {
                        let key = Hash::sha256(&list);
                        current = Some((list, key));
                        key
                    }
                };
                let index = u64::try_from(idx).map_err(|_| {
                    StoreError::Corrupt(format!("a posting list holds index {idx}"))
                })?;
                visit(&key, index)?;
            }
            after = last;
        }
    }

    fn keys_between(
        &self,
        start: u64,
        end: u64,
        visit: &mut super::EntryKeys<'_>,
    ) -> Result<(), StoreError> {
        if start >= end {
            return Ok(());
        }
        let (from, to) = (to_i64(start), to_i64(end));
        // The batch holding `start`, and every later one below `end`.
        let frames: Vec<(i64, Vec<u8>)> = self.conn.run(move |c| {
            c.query_cached(
                "SELECT first, frame FROM evident_index_keys WHERE first < $2 AND first >= \
                 coalesce((SELECT max(first) FROM evident_index_keys WHERE first <= $1), $1) \
                 ORDER BY first",
                &[&from, &to],
            )
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .map_err(pg("reading the verifiable index's keys"))
        })?;
        let mut next = start;
        for (_, frame) in frames {
            let batch = frame
                .get(8..)
                .and_then(super::decode_key_body)
                .ok_or_else(|| StoreError::Corrupt("a stored key frame does not decode".into()))?;
            for (n, keys) in batch.entries.iter().enumerate() {
                let index = batch.first + n as u64;
                if index < next || index >= end {
                    continue;
                }
                if index != next {
                    return Err(StoreError::Corrupt(format!(
                        "the stored index keys lack entry {next}"
                    )));
                }
                visit(index, keys)?;
                next += 1;
            }
        }
        if next < end {
            return Err(StoreError::Corrupt(format!(
                "the stored index keys lack entry {next}"
            )));
        }
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.conn.run(|c| {
            c.batch_execute(
                "BEGIN; TRUNCATE evident_leaf, evident_content, evident_postings, \
                 evident_signers, evident_policies, evident_index_keys; \
                 UPDATE evident_indexed SET indexed = 0; COMMIT;",
            )
            .map_err(pg("clearing the indexes"))
        })
    }
}

impl PgIndex {
    fn lookup(&self, sql: &'static str, key: Vec<u8>) -> Result<Option<u64>, StoreError> {
        let found: Option<i64> = self.conn.run(move |c| {
            c.query_opt_cached(sql, &[&key])
                .map(|row| row.map(|r| r.get(0)))
                .map_err(pg("reading an index"))
        })?;
        Ok(found.and_then(|i| u64::try_from(i).ok()))
    }
}

/// A real PostgreSQL server for tests: `initdb` in a temporary folder and `pg_ctl` on a
/// free loopback port (Debian's `postgresql` package; run as the `postgres` user when the
/// tests run as root, as PostgreSQL refuses root). Stopped, immediately, when dropped.
#[cfg(test)]
pub(crate) mod testdb {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A running test server.
    pub(crate) struct TestDb {
        dir: tempfile::TempDir,
        bin: PathBuf,
        /// A libpq connection string for its `postgres` database.
        pub(crate) url: String,
    }

    fn bin_dir() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect(
                "PostgreSQL is installed (Debian's postgresql package; scripts/test installs it)",
            )
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        found.sort();
        found
            .pop()
            .expect("an initdb under /usr/lib/postgresql/*/bin")
    }

    fn as_postgres(bin: &Path, tool: &str, args: &[String]) {
        let root = std::env::var("USER").is_ok_and(|u| u == "root")
            || Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let status = if root {
            let mut line = vec![bin.join(tool).display().to_string()];
            line.extend(args.iter().cloned());
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(&line)
                .stdout(std::process::Stdio::null())
                .status()
        } else {
            Command::new(bin.join(tool))
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
        }
        .expect("running a PostgreSQL tool");
        assert!(status.success(), "{tool} {args:?} failed");
    }

    impl TestDb {
        /// Starts a fresh server.
        pub(crate) fn start() -> TestDb {
            TestDb::start_with(|_| String::new())
        }

        /// Starts a fresh server that also takes TLS connections, with a certificate for
        /// 127.0.0.1 signed by a CA made here; returns the CA's PEM.
        pub(crate) fn start_with_tls() -> (TestDb, String) {
            use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
            let ca_key = KeyPair::generate().unwrap();
            let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
            let issuer = Issuer::new(ca, ca_key);
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            let db = TestDb::start_with(|dir| {
                let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
                std::fs::write(&cert_path, cert.pem()).unwrap();
                std::fs::write(&key_path, key.serialize_pem()).unwrap();
                for path in [&cert_path, &key_path] {
                    let _ = Command::new("chown")
                        .args(["postgres:postgres", &path.display().to_string()])
                        .status();
                    let _ = Command::new("chmod")
                        .args(["600", &path.display().to_string()])
                        .status();
                }
                format!(
                    " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                    cert_path.display(),
                    key_path.display()
                )
            });
            (db, ca_pem)
        }

        fn start_with(options: impl FnOnce(&Path) -> String) -> TestDb {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let _ = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let bin = bin_dir();
            let data = dir.path().join("data").display().to_string();
            as_postgres(
                &bin,
                "initdb",
                &[
                    "-D".into(),
                    data.clone(),
                    "-A".into(),
                    "trust".into(),
                    "-U".into(),
                    "postgres".into(),
                ],
            );
            as_postgres(
                &bin,
                "pg_ctl",
                &[
                    "-D".into(),
                    data,
                    "-l".into(),
                    dir.path().join("server.log").display().to_string(),
                    "-w".into(),
                    "-o".into(),
                    format!(
                        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=on{}",
                        dir.path().display(),
                        options(dir.path())
                    ),
                    "start".into(),
                ],
            );
            TestDb {
                url: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
                dir,
                bin,
            }
        }

        /// Stops the server at once (as a crash would), keeping its data.
        pub(crate) fn kill(&self) {
            as_postgres(
                &self.bin,
                "pg_ctl",
                &[
                    "-D".into(),
                    self.dir.path().join("data").display().to_string(),
                    "-m".into(),
                    "immediate".into(),
                    "stop".into(),
                ],
            );
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.dir.path().join("data").display().to_string()])
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use evident_core::merkle::{self, Frontier, MemoryTree, SubtreeSource as _};

    use super::testdb::TestDb;
    use super::*;
    use crate::engine::storage::crashsim::{Records, nodes_for};

    #[test]
    fn a_log_in_postgres_reads_back_what_was_appended_and_survives_reopening() {
        let db = TestDb::start();
        let log = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        assert_eq!(log.size(), 0);
        assert_eq!(log.genesis().unwrap(), None);
        log.set_genesis(b"{\"threshold\":1}").unwrap();
        let mut records = Records::new(5);
        let mut frontier = Frontier::new();
        let mut tree = MemoryTree::new();
        let mut all = Vec::new();
        for n in [1usize, 7, 64, 3, 200] {
            let batch = records.batch(n, 10, 300);
            let nodes = nodes_for(&mut frontier, &batch);
            log.append(&batch, &nodes).unwrap();
            for r in &batch {
                tree.push(merkle::leaf_hash(r));
            }
            all.extend(batch);
        }
        log.set_checkpoint("evident.test/log\n275\nroot\n").unwrap();
        for log in [log, PgLog::open(&PgTarget::new(&db.url)).unwrap()] {
            let size = all.len() as u64;
            assert_eq!(log.size(), size);
            assert_eq!(log.entries(0, size + 5).unwrap(), all);
            assert_eq!(log.entry(size).unwrap(), None);
            assert_eq!(log.entry(100).unwrap().as_ref(), Some(&all[100]));
            assert_eq!(log.entries(10, 20).unwrap(), &all[10..20]);
            for level in 0..9u32 {
                for index in 0..(size >> level) {
                    assert_eq!(
                        LogStore::subtree_hash(&log, level, index).unwrap(),
                        tree.subtree_hash(level, index).unwrap(),
                        "level {level} index {index}"
                    );
                }
            }
            assert!(LogStore::subtree_hash(&log, 9, 0).is_err());
            assert_eq!(
                log.genesis().unwrap().as_deref(),
                Some(&b"{\"threshold\":1}"[..])
            );
            assert_eq!(
                log.checkpoint().unwrap().as_deref(),
                Some("evident.test/log\n275\nroot\n")
            );
        }
    }

    #[test]
    fn tls_to_postgres_verifies_the_servers_certificate() {
        let (db, ca_pem) = TestDb::start_with_tls();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let url = format!("{} sslmode=require", db.url);
        let log = PgLog::open(&PgTarget {
            url: url.clone(),
            ca: Some(ca),
        })
        .unwrap();
        log.set_genesis(b"{}").unwrap();
        assert_eq!(log.genesis().unwrap().as_deref(), Some(&b"{}"[..]));
        // Without the CA, the server's certificate is refused: nothing is sent to it.
        let err = PgLog::open(&PgTarget::new(&url)).unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
        // Another CA: refused as well.
        let (_other, other_ca) = TestDb::start_with_tls();
        let wrong = dir.path().join("wrong.pem");
        std::fs::write(&wrong, other_ca).unwrap();
        assert!(
            PgLog::open(&PgTarget {
                url,
                ca: Some(wrong)
            })
            .is_err()
        );
    }

    #[test]
    fn a_sequencer_that_lost_its_lease_can_never_append_again() {
        use std::time::Duration;
        let db = TestDb::start();
        let a = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let b = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let ttl = Duration::from_millis(800);
        let first = a.acquire_lease("a", ttl).unwrap().unwrap();
        assert_eq!(first, Lease { term: 1, size: 0 });
        assert_eq!(b.acquire_lease("b", ttl).unwrap(), None, "held by a");
        let mut records = Records::new(3);
        let mut frontier = Frontier::new();
        let batch = records.batch(4, 10, 50);
        a.append(&batch, &nodes_for(&mut frontier, &batch)).unwrap();
        // Renewing keeps the term.
        assert_eq!(a.acquire_lease("a", ttl).unwrap().unwrap().term, 1);
        // a stops renewing (paused, or cut off from the database); b takes over after the
        // lease expires, with the next term, after everything a committed.
        std::thread::sleep(ttl + Duration::from_millis(300));
        let second = b.acquire_lease("b", ttl).unwrap().unwrap();
        assert_eq!(second, Lease { term: 2, size: 4 });
        assert_eq!(a.acquire_lease("a", ttl).unwrap(), None, "held by b");
        // a wakes up and tries to append what it had: refused, nothing written.
        let late = records.clone().batch(2, 10, 50);
        let err = a
            .append(&late, &nodes_for(&mut frontier.clone(), &late))
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Fenced {
                    term: 1,
                    current: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            a.append(&late, &[]).unwrap_err(),
            StoreError::Poisoned(_)
        ));
        // b appends after a's entries; the log holds a's 4 then b's, nothing of a's late
        // batch.
        let next = records.batch(3, 10, 50);
        b.append(&next, &nodes_for(&mut frontier, &next)).unwrap();
        let reader = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        assert_eq!(reader.size(), 7);
        let mut expected = batch.clone();
        expected.extend(next);
        assert_eq!(reader.entries(0, 7).unwrap(), expected);
    }

    /// The race itself: the old holder appends as fast as it can while its lease expires
    /// and the new one takes over. Every batch the old holder saw acknowledged is in the log
    /// at its place, and the new holder appends after all of them.
    #[test]
    fn a_takeover_during_appends_loses_no_acknowledged_batch() {
        use std::time::{Duration, Instant};
        let db = TestDb::start();
        let a = std::sync::Arc::new(PgLog::open(&PgTarget::new(&db.url)).unwrap());
        let b = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let ttl = Duration::from_millis(500);
        a.acquire_lease("a", ttl).unwrap().unwrap();
        let writer = {
            let a = std::sync::Arc::clone(&a);
            std::thread::spawn(move || {
                let mut records = Records::new(21);
                let mut frontier = Frontier::new();
                let mut acknowledged = Vec::new();
                let stop = Instant::now() + Duration::from_secs(3);
                while Instant::now() < stop {
                    let batch = records.batch(2, 10, 40);
                    match a.append(&batch, &nodes_for(&mut frontier.clone(), &batch)) {
                        Ok(()) => {
                            nodes_for(&mut frontier, &batch);
                            acknowledged.extend(batch);
                        }
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        };
        let lease = loop {
            if let Some(lease) = b.acquire_lease("b", ttl).unwrap() {
                break lease;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let acknowledged = writer.join().unwrap();
        assert!(!acknowledged.is_empty());
        assert_eq!(
            lease.size,
            acknowledged.len() as u64,
            "b starts after a's last commit"
        );
        let reader = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        assert_eq!(reader.entries(0, lease.size).unwrap(), acknowledged);
        assert_eq!(
            reader.size(),
            lease.size,
            "nothing of a's after the takeover"
        );
    }

    /// A queued submission is settled exactly once, in the batch's own transaction: taken
    /// by a sequencer it can no longer be withdrawn; one a dead sequencer took is taken
    /// again by the next term; its outcome is read once.
    #[test]
    fn a_queued_submission_is_settled_with_its_batch_or_stays_queued() {
        use std::time::Duration;
        let db = TestDb::start();
        let a = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let b = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let follower = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let ttl = Duration::from_millis(2_000);
        let first = a.acquire_lease("a #1", ttl).unwrap().unwrap();
        let one = follower.enqueue(b"one".to_vec(), "f").unwrap();
        let two = follower.enqueue(b"two".to_vec(), "f").unwrap();
        let three = follower.enqueue(b"three".to_vec(), "f").unwrap();
        // Not taken yet: its submitter may withdraw it.
        assert!(follower.withdraw(three).unwrap());
        let taken = a.take_queued(first.term, 0, 10).unwrap();
        assert_eq!(taken, vec![(one, b"one".to_vec()), (two, b"two".to_vec())]);
        assert!(
            !follower.withdraw(one).unwrap(),
            "taken: no longer withdrawn"
        );
        assert!(
            a.take_queued(first.term, 0, 10).unwrap().is_empty(),
            "taken once"
        );
        // a settles `one` with a batch, then dies before settling `two`.
        let mut records = Records::new(4);
        let mut frontier = Frontier::new();
        let batch = records.batch(1, 10, 50);
        let settled = [(
            one,
            Outcome::Logged {
                index: 0,
                duplicate: false,
            },
        )];
        a.append_batch(
            &batch,
            &nodes_for(&mut frontier, &batch),
            &[],
            &settled,
            None,
        )
        .unwrap();
        std::thread::sleep(ttl + Duration::from_millis(200));
        let second = b.acquire_lease("b #1", ttl).unwrap().unwrap();
        let again = b.take_queued(second.term, 0, 10).unwrap();
        assert_eq!(
            again,
            vec![(two, b"two".to_vec())],
            "only the unsettled one"
        );
        let refused = Outcome::Refused {
            code: 7,
            message: "no".into(),
            details: vec![1],
        };
        b.append_batch(&[], &[], &[], &[(two, refused.clone())], None)
            .unwrap();
        // a wakes up and tries to settle `two` too: fenced, nothing written.
        assert!(matches!(
            a.append_batch(&[], &[], &[], &[(two, refused.clone())], None),
            Err(StoreError::Fenced { .. })
        ));
        let outcomes = follower.take_outcomes(&[one, two, three]).unwrap();
        assert_eq!(
            outcomes,
            vec![
                (
                    one,
                    Outcome::Logged {
                        index: 0,
                        duplicate: false
                    }
                ),
                (two, refused)
            ]
        );
        assert!(
            follower.take_outcomes(&[one, two]).unwrap().is_empty(),
            "read once"
        );
    }

    /// Renewing never takes a new term: a lease that lapsed stays lost to its holder until
    /// it takes the lease again (and checks the log), and a clean stop gives it up at once.
    #[test]
    fn renewing_keeps_the_term_and_releasing_hands_the_lease_over_at_once() {
        use std::time::Duration;
        let db = TestDb::start();
        let a = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let b = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        assert!(
            !a.renew_lease(Duration::from_secs(5)).unwrap(),
            "no lease to renew"
        );
        let short = Duration::from_millis(300);
        let first = a.acquire_lease("a #1", short).unwrap().unwrap();
        assert!(a.renew_lease(short).unwrap());
        std::thread::sleep(short + Duration::from_millis(200));
        assert!(!a.renew_lease(short).unwrap(), "lapsed: not renewed");
        let again = a
            .acquire_lease("a #1", Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert_eq!(again.term, first.term + 1, "taken again under a new term");
        assert_eq!(
            b.acquire_lease("b #1", Duration::from_secs(30)).unwrap(),
            None
        );
        a.release_lease().unwrap();
        let taken = b
            .acquire_lease("b #1", Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert_eq!(taken.term, again.term + 1, "released: taken at once");
        let late = Records::new(5).batch(1, 10, 20);
        assert!(matches!(
            a.append(&late, &[]),
            Err(StoreError::Fenced { .. })
        ));
    }

    #[test]
    fn an_append_that_cannot_commit_poisons_the_log() {
        let db = TestDb::start();
        let log = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let mut records = Records::new(9);
        let mut frontier = Frontier::new();
        let first = records.batch(5, 10, 50);
        log.append(&first, &nodes_for(&mut frontier, &first))
            .unwrap();
        // The database goes away between two batches, as a crash of its machine would.
        db.kill();
        let second = records.batch(3, 10, 50);
        let err = log
            .append(&second, &nodes_for(&mut frontier.clone(), &second))
            .unwrap_err();
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
        assert_eq!(log.size(), 5);
        let again = log.append(&second, &[]).unwrap_err();
        assert!(matches!(again, StoreError::Poisoned(_)), "{again}");
    }
}

#[cfg(test)]
mod index_tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use evident_core::audit::Facts;
    use evident_core::record::EntryKind;

    use super::testdb::TestDb;
    use super::*;

    /// Entry `i` of a made-up log: a few predicate types, signers, roles and subjects, a
    /// policy version every 17 entries.
    fn entry(i: u64) -> Indexed {
        let who = ["ci@a", "scanner@b", "alice@c"];
        let mut facts = Facts {
            signers: vec![who[(i % 3) as usize].to_owned()],
            roles: vec![["ci", "scanner", "reviewer"][(i % 3) as usize].to_owned()],
            predicate_type: Some(format!("https://p/{}", i % 4)),
            subjects: vec![("sha256".into(), format!("{:064x}", i % 5))],
            subject_names: vec![format!("app-{}", i % 2)],
            ..Facts::default()
        };
        if i % 7 == 0 {
            facts.signers.push("bob@d".into());
        }
        if i % 17 == 0 {
            facts.policy = Some(("prod".into(), i / 17 + 1));
        }
        Indexed {
            index: i,
            leaf_hash: Hash::sha256(&i.to_be_bytes()),
            dedupe_key: Hash::sha256(&i.to_le_bytes()),
            kind: if i % 17 == 0 {
                EntryKind::Policy
            } else {
                EntryKind::Attestation
            },
            facts,
        }
    }

    #[test]
    fn indexes_in_postgres_answer_as_the_entries_say() {
        let db = TestDb::start();
        let index = PgIndex::open(&PgTarget::new(&db.url)).unwrap();
        assert_eq!(index.indexed().unwrap(), 0);
        let all: Vec<Indexed> = (0..300).map(entry).collect();
        for chunk in all.chunks(37) {
            index.add(chunk).unwrap();
        }
        index.sync().unwrap();
        // Adding out of order is refused and changes nothing.
        let err = index.add(&[entry(5)]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        // A second entry with an indexed dedupe key is refused, and changes nothing.
        let mut repeat = entry(300);
        repeat.dedupe_key = entry(12).dedupe_key;
        assert!(index.add(&[repeat]).is_err());
        assert_eq!(index.indexed().unwrap(), 300);
        let reopened = PgIndex::open(&PgTarget::new(&db.url)).unwrap();
        let mut census = Census::default();
        for e in &all {
            census.add(e);
            assert_eq!(reopened.check(e).unwrap(), None, "entry {}", e.index);
            assert_eq!(reopened.index_of_leaf(&e.leaf_hash).unwrap(), Some(e.index));
            assert_eq!(
                reopened.index_of_content(&e.dedupe_key).unwrap(),
                Some(e.index)
            );
            assert_eq!(
                reopened.signers_of(e.index).unwrap().as_ref(),
                Some(&e.facts.signers)
            );
        }
        assert_eq!(reopened.census().unwrap(), census);
        // Seeks agree with the entries' own lists, forward and backward, within bounds.
        let lists = [
            Posting::Signer("bob@d".into()),
            Posting::Role("scanner".into()),
            Posting::PredicateType("https://p/3".into()),
            Posting::Kind(EntryKind::Policy),
            Posting::Subject("sha256".into(), format!("{:064x}", 2)),
            Posting::SubjectName("app-1".into()),
            Posting::Signer("nobody".into()),
        ];
        for list in &lists {
            let on: Vec<u64> = all
                .iter()
                .filter(|e| e.postings().contains(list))
                .map(|e| e.index)
                .collect();
            for (from, lo, hi) in [(0, 0, 300), (50, 10, 200), (299, 0, 300), (120, 100, 140)] {
                let forward = on.iter().copied().find(|&i| i >= from.max(lo) && i < hi);
                let backward = on
                    .iter()
                    .rev()
                    .copied()
                    .find(|&i| i <= from && i >= lo && i < hi);
                assert_eq!(reopened.seek(list, from, true, lo, hi).unwrap(), forward);
                assert_eq!(reopened.seek(list, from, false, lo, hi).unwrap(), backward);
            }
        }
        let policies = reopened.policies().unwrap();
        assert_eq!(policies.len(), 18);
        assert_eq!(policies[0], ("prod".to_owned(), 1, 0));
        reopened.clear().unwrap();
        assert_eq!(reopened.indexed().unwrap(), 0);
        assert_eq!(reopened.census().unwrap(), Census::default());
    }

    #[test]
    fn a_batch_writes_its_entries_index_rows_and_checkpoint_together_and_reads_come_back_together()
    {
        use evident_core::merkle::Frontier;
        let db = TestDb::start();
        let target = PgTarget::new(&db.url);
        let (log, index) = PgLog::open_with_index(&target).unwrap();
        let all: Vec<Indexed> = (0..200).map(entry).collect();
        let mut frontier = Frontier::new();
        for chunk in all.chunks(61) {
            let records: Vec<Vec<u8>> = chunk
                .iter()
                .map(|e| format!("record {}", e.index).into_bytes())
                .collect();
            let nodes: Vec<Node> = records
                .iter()
                .flat_map(|r| frontier.append(evident_core::merkle::leaf_hash(r)))
                .collect();
            let note = format!("origin\n{}\nroot\n\nsig\n", frontier.size());
            let wrote = log
                .append_batch(&records, &nodes, chunk, &[], Some(&note))
                .unwrap();
            assert!(wrote.indexed && wrote.checkpoint);
            assert_eq!(log.checkpoint().unwrap().as_deref(), Some(note.as_str()));
        }
        assert_eq!(log.size(), 200);
        assert_eq!(index.indexed().unwrap(), 200);
        let mut census = Census::default();
        for e in &all {
            census.add(e);
            assert_eq!(index.check(e).unwrap(), None, "entry {}", e.index);
        }
        assert_eq!(index.census().unwrap(), census);
        // Reads together answer as reads one by one, in the order asked.
        let keys: Vec<Hash> = [7u64, 3, 199, 0]
            .iter()
            .map(|&i| entry(i).dedupe_key)
            .chain([Hash::sha256(b"not logged")])
            .collect();
        assert_eq!(
            index.indexes_of_content(&keys).unwrap(),
            vec![Some(7), Some(3), Some(199), Some(0), None]
        );
        let at = log.entries_at(&[5, 200, 0, 5]).unwrap();
        assert_eq!(
            at,
            vec![
                Some(b"record 5".to_vec()),
                None,
                Some(b"record 0".to_vec()),
                Some(b"record 5".to_vec())
            ]
        );
        let wanted = evident_core::merkle::inclusion_proof_reads(77, 200);
        let one_by_one: Vec<Hash> = wanted
            .iter()
            .map(|&(l, i)| log.subtree_hash(l, i).unwrap())
            .collect();
        assert_eq!(log.subtree_hashes(&wanted).unwrap(), one_by_one);
        assert!(matches!(
            log.subtree_hashes(&[(8, 0)]),
            Err(StoreError::Corrupt(_))
        ));
        // Index rows that do not start where the indexes end are refused with the batch.
        let (late, _) = PgLog::open_with_index(&target).unwrap();
        let err = late
            .append_batch(&[b"x".to_vec()], &[], &[entry(150)], &[], None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        let (reopened, _) = PgLog::open_with_index(&target).unwrap();
        assert_eq!(
            reopened.size(),
            200,
            "nothing of the refused batch was written"
        );
    }

    #[test]
    fn submissions_queued_together_keep_their_order() {
        let db = TestDb::start();
        let log = PgLog::open(&PgTarget::new(&db.url)).unwrap();
        let first = log.enqueue(b"zero".to_vec(), "f").unwrap();
        let envelopes: Vec<Vec<u8>> = (1..=40).map(|i| format!("env {i}").into_bytes()).collect();
        let ids = log.enqueue_all(envelopes.clone(), "f").unwrap();
        assert_eq!(ids.len(), 40);
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > first);
        let lease = log
            .acquire_lease("s", std::time::Duration::from_secs(30))
            .unwrap()
            .unwrap();
        let taken = log.take_queued(lease.term, first, 100).unwrap();
        assert_eq!(taken, ids.into_iter().zip(envelopes).collect::<Vec<_>>());
    }

    #[test]
    fn followers_hear_of_each_batch_with_its_note_and_of_each_queued_submission() {
        let db = TestDb::start();
        let target = PgTarget::new(&db.url);
        let (events, mut heard) = tokio::sync::mpsc::unbounded_channel();
        listen(&target, events);
        let next = |heard: &mut tokio::sync::mpsc::UnboundedReceiver<Event>| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match heard.try_recv() {
                    Ok(Event::Tick | Event::Up) => {}
                    Ok(event) => return event,
                    Err(_) => {
                        assert!(std::time::Instant::now() < deadline, "nothing heard");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        };
        // Listening before anything is written.
        while !matches!(heard.try_recv(), Ok(Event::Up)) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (log, _) = PgLog::open_with_index(&target).unwrap();
        let note = "origin\n1\nroot\n\nsig\n";
        log.append_batch(&[b"r0".to_vec()], &[], &[entry(0)], &[], Some(note))
            .unwrap();
        assert_eq!(next(&mut heard), Event::Checkpoint(Some(note.to_owned())));
        // A note too long for a notification is announced by its size: read from the table.
        let long = format!("origin\n2\nroot\n{}\n\nsig\n", "x".repeat(9_000));
        log.append_batch(&[b"r1".to_vec()], &[], &[entry(1)], &[], Some(&long))
            .unwrap();
        assert_eq!(next(&mut heard), Event::Checkpoint(None));
        assert_eq!(log.stored_checkpoint().unwrap(), Some(long));
        log.enqueue_all(vec![b"e".to_vec()], "f").unwrap();
        assert_eq!(next(&mut heard), Event::Queued);
    }
}
