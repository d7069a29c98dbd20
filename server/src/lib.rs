//! `evidentd`: the I/O around `evident-core`, in three layers — the API (`api`: the gRPC
//! service, authentication, limits, TLS), the log engine (`engine`: the sequencer that is
//! the log's only writer, the store, queries, the start-up check) and the operator's tools
//! (`ops`: backup, verify-store, reindex, migrate).
//!
//! [`run`] is the whole server: `main` parses flags and calls it, and tests call it (or the
//! binary) on `127.0.0.1:0`.

pub mod api;
pub mod config;
pub mod engine;
#[cfg(test)]
mod faults;
pub mod metrics;
pub mod ops;

pub use api::{auth, tls};
pub use engine::{query, storage, store};
pub use ops::{backup, maintenance};

pub(crate) use api::{accept, limits, service};
pub(crate) use engine::{check, cluster, genesis, ledger, logkey, verify, witnessing};

use std::future::Future;
use std::sync::Arc;

use evident_core::note::Verifier;
use evident_proto::v1::ledger_server::LedgerServer;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::ledger::{BatchLimits, Ledger};
use crate::store::Store;

/// The largest answer the server sends: the largest the client accepts.
pub const MAX_ANSWER_BYTES: usize = evident_api::MAX_ANSWER_BYTES;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The log key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] logkey::KeyFileError),
    /// The store could not be opened.
    // The inner errors are in the message, and not sources: a report that prints the
    // chain of sources would repeat them.
    #[error("opening the store in {dir}: {error}")]
    Store {
        /// The data folder.
        dir: std::path::PathBuf,
        /// What failed.
        error: store::StoreError,
    },
    /// The store failed its start-up check; the server refuses to serve it.
    #[error("refusing to serve the store in {dir}: {error}")]
    Check {
        /// The data folder.
        dir: std::path::PathBuf,
        /// The first problem found.
        error: check::CheckError,
    },
    /// Transport security could not be set up.
    #[error("transport security: {0}")]
    Tls(#[from] tls::TlsError),
    /// No client is configured and the server would listen beyond loopback.
    #[error(
        "no clients are configured ([[token]] or [[client]] in the config), so every client \
         would have every role: that is only allowed on loopback, not on {0}"
    )]
    OpenAccess(std::net::SocketAddr),
    /// The genesis or the registry could not be set up.
    #[error("trust registry: {0}")]
    Genesis(#[from] genesis::GenesisError),
    /// The sequencer could not start.
    #[error("starting the ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    /// The gRPC server failed.
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The tiles listener could not be bound.
    #[error("binding the tiles listener on {addr}: {source}")]
    Tiles {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("binding the metrics listener on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// Checks settings as `prepare` would, without touching the data folder: every field, the
/// clients and tokens, and the TLS files (present, keys mode 0600). Returns a summary.
pub fn check_settings(config: &Config) -> Result<Vec<String>, RunError> {
    config.check()?;
    let auth = auth::Auth::new(&config.clients, &config.tokens).map_err(|e| {
        RunError::Config(config::ConfigError::Invalid {
            field: e.field,
            problem: e.problem,
        })
    })?;
    let exists = |path: &std::path::PathBuf| {
        std::fs::metadata(path)
            .map(drop)
            .map_err(|source| tls::TlsError::File {
                what: "reading",
                path: path.clone(),
                source,
            })
    };
    let mut summary = vec![format!("listen {}", config.listen)];
    if config.tls.plaintext {
        if !config.listen.ip().is_loopback() && !config.insecure_allow_plaintext {
            return Err(tls::TlsError::PlaintextOffLoopback(config.listen).into());
        }
        summary.push("transport: PLAINTEXT".into());
    } else {
        match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => {
                exists(cert)?;
                exists(key)?;
                tls::check_private(key)?;
                summary.push(format!("transport: TLS with {}", cert.display()));
            }
            _ => summary.push("transport: TLS with a certificate evidentd makes".into()),
        }
        if let Some(ca) = &config.tls.client_ca {
            exists(ca)?;
            summary.push(format!("mutual TLS against {}", ca.display()));
        }
    }
    if auth.is_open() {
        if !config.listen.ip().is_loopback() {
            return Err(RunError::OpenAccess(config.listen));
        }
        summary.push("clients: open (none configured; loopback only)".into());
    } else {
        summary.push(format!(
            "clients: {} by certificate, {} by token",
            config.clients.len(),
            config.tokens.len()
        ));
    }
    Ok(summary)
}

/// The front of the server, set up before the store is opened: transport security, the
/// clients and limits, the metrics listener.
#[derive(Debug)]
pub struct Front {
    config: Config,
    tls: Option<tonic::transport::ServerTlsConfig>,
    transport: tls::Mode,
    auth: Arc<auth::Auth>,
    metrics: Option<std::net::TcpListener>,
    tiles: Option<std::net::TcpListener>,
    /// The tiles listener's HTTPS settings; `None` for plain HTTP.
    tiles_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Front {
    /// How clients connect (TLS, mutual TLS, plaintext), for the start-up banner.
    pub fn transport(&self) -> &tls::Mode {
        &self.transport
    }

    /// Whether every client has every role (no clients configured; loopback only).
    pub fn open_access(&self) -> bool {
        self.auth.is_open()
    }

    /// The bound address of the metrics listener, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound address of the tiles listener, when `[tiles] listen` is set.
    pub fn tiles_addr(&self) -> Option<std::net::SocketAddr> {
        self.tiles.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The tiles listener's URL scheme: `https` when it serves TLS, else `http`.
    pub fn tiles_scheme(&self) -> &'static str {
        if self.tiles_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Checks the settings and sets up the front: TLS (making a certificate on first start),
/// clients, the metrics listener.
pub fn front(config: &Config) -> Result<Front, RunError> {
    config.check()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| RunError::Store {
        dir: config.data_dir.clone(),
        error: store::StoreError::Io {
            op: "creating",
            path: config.data_dir.clone(),
            source: e,
        },
    })?;
    let (tls, transport) = tls::server_tls(
        &config.tls,
        &config.data_dir,
        config.listen,
        config.insecure_allow_plaintext,
    )?;
    // A peer that connects and says nothing holds a connection slot only this long.
    let tls = tls.map(|tls| {
        tls.timeout(std::time::Duration::from_millis(
            config.limits.handshake_timeout_ms,
        ))
    });
    let auth = auth::Auth::new(&config.clients, &config.tokens).map_err(|e| {
        RunError::Config(config::ConfigError::Invalid {
            field: e.field,
            problem: e.problem,
        })
    })?;
    if auth.is_open() && !config.listen.ip().is_loopback() {
        return Err(RunError::OpenAccess(config.listen));
    }
    let metrics = config
        .metrics_listen
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| RunError::Metrics { addr, source })
        })
        .transpose()?;
    let tiles = config
        .tiles
        .listen
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| RunError::Tiles { addr, source })
        })
        .transpose()?;
    // HTTPS on the tiles listener with the gRPC listener's certificate, unless the server
    // serves plaintext or the tiles are put behind a TLS-terminating proxy.
    let tiles_tls = match &tiles {
        Some(_) if !config.tiles.plaintext => tls::https(&config.tls, &config.data_dir)?,
        _ => None,
    };
    Ok(Front {
        tiles,
        tiles_tls,
        config: config.clone(),
        tls,
        transport,
        auth: Arc::new(auth),
        metrics,
    })
}

/// The store, checked, and the log key; what `evidentd` prints at start comes from this.
#[derive(Debug)]
pub struct Prepared {
    store: Arc<Store>,
    signer: evident_core::note::Signer,
    genesis: genesis::Genesis,
    registry: evident_core::registry::Registry,
    start: Start,
    /// On PostgreSQL: the log (the lease, the queue) and the database.
    shared: Option<(Arc<storage::postgres::PgLog>, storage::postgres::PgTarget)>,
}

/// How this instance starts.
#[derive(Debug)]
enum Start {
    /// It sequences, from this checked tail (under this lease term, on PostgreSQL).
    Sequence {
        tail: check::Tail,
        term: Option<u64>,
    },
    /// Another instance sequences: it follows from this stored checkpoint.
    Follow {
        note: String,
        checkpoint: evident_core::note::Checkpoint,
    },
}

impl Prepared {
    /// The log's verifier key, as clients pin it.
    pub fn verifier(&self) -> &Verifier {
        self.signer.verifier()
    }

    /// Entries in the log.
    pub fn size(&self) -> u64 {
        match &self.start {
            Start::Sequence { tail, .. } => tail.frontier.size(),
            Start::Follow { checkpoint, .. } => checkpoint.size,
        }
    }

    /// Whether this instance sequences (on PostgreSQL: it took the lease at start).
    pub fn sequences(&self) -> bool {
        matches!(self.start, Start::Sequence { .. })
    }

    /// The administrator key file this start created, on a new store without configured
    /// administrators.
    pub fn created_admin_key(&self) -> Option<&std::path::Path> {
        self.genesis.created_admin_key.as_deref()
    }

    /// The registry's current administrators and threshold.
    pub fn registry(&self) -> &evident_core::registry::Registry {
        &self.registry
    }
}

/// Loads or creates the log key, opens the store and checks it (the start-up check). On
/// PostgreSQL, only the instance that takes the sequencing lease checks the store; the
/// others follow the checkpoint the sequencer stored.
pub fn prepare(config: &Config) -> Result<Prepared, RunError> {
    let signer = logkey::load_or_create(&config.data_dir, &config.origin)?;
    let store_error = |error| RunError::Store {
        dir: config.data_dir.clone(),
        error,
    };
    let (store, shared) = match (config.store.backend, &config.store.url) {
        (config::Backend::Files, _) => (Store::open(&config.data_dir).map_err(store_error)?, None),
        (config::Backend::Postgres, Some(url)) => {
            let target = storage::postgres::PgTarget {
                url: url.clone(),
                ca: config.store.ca.clone(),
            };
            let (mut store, log) = Store::open_postgres_log(&target).map_err(store_error)?;
            // One process per data folder here too: the lease holder's name is made of it.
            store.hold_lock(&config.data_dir).map_err(store_error)?;
            let ours = signer.verifier().to_string();
            let recorded = log.record_log_key(&ours).map_err(store_error)?;
            if recorded != ours {
                return Err(store_error(store::StoreError::Layout(format!(
                    "this database holds a log signed by {recorded}, but {} holds the key of \
                     {ours}: every instance of a log signs with its one key; copy log.key \
                     from an instance of this log into the data folder",
                    config.data_dir.join(logkey::KEY_FILE).display()
                ))));
            }
            (store, Some((log, target)))
        }
        (config::Backend::Postgres, None) => {
            return Err(store_error(crate::storage::StoreError::Layout(
                "[store] backend = \"postgres\" needs url = \"postgres://…\" (or \
                 EVIDENT_STORE_URL)"
                    .into(),
            )));
        }
    };
    let genesis = genesis::resolve(config, &store)?;
    let lease = match &shared {
        None => None,
        Some((log, _)) => {
            let lease = log
                .acquire_lease(
                    &config.store.lease_holder(&config.data_dir),
                    std::time::Duration::from_millis(config.store.lease_ms),
                )
                .map_err(store_error)?;
            if lease.is_none() {
                return prepared_follower(config, store, signer, genesis, shared);
            }
            lease
        }
    };
    // On PostgreSQL a batch and its index rows are one transaction: the indexes cannot lag
    // the log, and a crash leaves no torn tail. The tail check there covers the last
    // batches (what a takeover checks), not `startup_tail_entries`, each entry of which
    // costs round trips to the database.
    let tail_entries = match shared {
        Some(_) => config.startup_tail_entries.min(cluster::TAKEOVER_TAIL),
        None => config.startup_tail_entries,
    };
    let check = || {
        check::check_store(
            &store,
            signer.verifier(),
            config.startup_check,
            tail_entries,
            &genesis.registry,
        )
    };
    // On PostgreSQL the check may outlast the lease (a full check of a long log): it is
    // renewed meanwhile; if it was lost all the same, another instance sequences and this
    // one follows.
    let (checked, kept) = match &shared {
        Some((log, _)) => log.with_lease_renewed(
            std::time::Duration::from_millis(config.store.lease_ms),
            check,
        ),
        None => (check(), true),
    };
    let checked = checked.map_err(|error| RunError::Check {
        dir: config.data_dir.clone(),
        error,
    })?;
    if !kept {
        if let Some((log, _)) = &shared {
            log.drop_lease();
        }
        return prepared_follower(config, store, signer, genesis, shared);
    }
    let check::Checked { tail, registry, .. } = checked;
    write_genesis(config, &genesis)?;
    Ok(Prepared {
        store: Arc::new(store),
        signer,
        genesis,
        registry,
        start: Start::Sequence {
            tail,
            term: lease.map(|l| l.term),
        },
        shared,
    })
}

/// A follower's start: the stored checkpoint, and the registry as of it.
fn prepared_follower(
    config: &Config,
    store: Store,
    signer: evident_core::note::Signer,
    genesis: genesis::Genesis,
    shared: Option<(Arc<storage::postgres::PgLog>, storage::postgres::PgTarget)>,
) -> Result<Prepared, RunError> {
    let (note, checkpoint) = follow_from(config, &store, &signer)?;
    let registry = ledger::advance_registry(&store, &genesis.registry, 0, checkpoint.size)?
        .unwrap_or_else(|| genesis.registry.clone());
    write_genesis(config, &genesis)?;
    Ok(Prepared {
        store: Arc::new(store),
        signer,
        genesis,
        registry,
        start: Start::Follow { note, checkpoint },
        shared,
    })
}

/// How long a starting follower waits for the sequencer's first checkpoint.
const FIRST_CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The checkpoint a starting follower serves first: the latest the sequencer stored,
/// verified under the log key (waited for, on a database whose first sequencer is still
/// starting).
fn follow_from(
    config: &Config,
    store: &Store,
    signer: &evident_core::note::Signer,
) -> Result<(String, evident_core::note::Checkpoint), RunError> {
    let started = std::time::Instant::now();
    loop {
        let stored = store.checkpoint().map_err(|error| RunError::Store {
            dir: config.data_dir.clone(),
            error,
        })?;
        if let Some(note) = stored {
            let checkpoint = evident_core::note::Checkpoint::verify(&note, signer.verifier())
                .map_err(|e| RunError::Check {
                    dir: config.data_dir.clone(),
                    error: check::CheckError::Checkpoint(e.to_string()),
                })?;
            store.log().observe_size(checkpoint.size);
            return Ok((note, checkpoint));
        }
        if started.elapsed() > FIRST_CHECKPOINT_WAIT {
            return Err(RunError::Store {
                dir: config.data_dir.clone(),
                error: store::StoreError::Layout(format!(
                    "another instance holds the sequencing lease but stored no checkpoint \
                     within {} s",
                    FIRST_CHECKPOINT_WAIT.as_secs()
                )),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Publishes the genesis beside log.pub: what verifiers pin to rebuild the registry offline.
fn write_genesis(config: &Config, genesis: &genesis::Genesis) -> Result<(), RunError> {
    let genesis_file = config.data_dir.join("genesis.json");
    std::fs::write(
        &genesis_file,
        serde_json::to_string_pretty(&genesis.document).expect("the genesis serializes") + "\n",
    )
    .map_err(|e| RunError::Store {
        dir: config.data_dir.clone(),
        error: store::StoreError::Io {
            op: "writing",
            path: genesis_file,
            source: e,
        },
    })
}

/// What a started server announces.
#[derive(Debug, Clone)]
pub struct Started {
    /// The log's verifier key, as clients pin it.
    pub verifier: Verifier,
    /// The administrator key file this start created, if any.
    pub created_admin_key: Option<std::path::PathBuf>,
    /// The administrators' identities.
    pub admins: Vec<String>,
    /// How many must sign a registry change.
    pub threshold: usize,
    /// Registered signer keys.
    pub signer_keys: usize,
    /// Entries in the log.
    pub entries: u64,
}

impl Prepared {
    /// What the server announces once it serves.
    pub fn started(&self) -> Started {
        Started {
            verifier: self.verifier().clone(),
            created_admin_key: self.created_admin_key().map(std::path::Path::to_path_buf),
            admins: self
                .registry
                .admins()
                .iter()
                .map(|a| a.identity.clone())
                .collect(),
            threshold: self.registry.threshold(),
            signer_keys: self.registry.signer_keys().len(),
            entries: self.size(),
        }
    }
}

/// Serves on `listener` from the start: health says NOT_SERVING and the ledger answers
/// UNAVAILABLE while `prepare` checks the store; then the ledger starts, health says
/// SERVING, and `announce` is told what started. When `shutdown` completes, health says
/// NOT_SERVING again, the batch in progress is finished and answered, and this returns.
pub async fn run(
    listener: TcpListener,
    front: Front,
    announce: impl FnOnce(&Started) + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let Front {
        config,
        tls,
        auth,
        metrics,
        tiles,
        tiles_tls,
        ..
    } = front;
    // Prometheus metrics on their own listener, bound in `front`.
    let metrics = match (metrics, config.metrics_listen) {
        (Some(listener), Some(addr)) => {
            let listener = TcpListener::from_std(listener)
                .map_err(|source| RunError::Metrics { addr, source })?;
            Some(tokio::spawn(metrics::serve(listener)))
        }
        _ => None,
    };
    let gate = Arc::new(std::sync::OnceLock::new());
    // The log as tlog-tiles on its own listener, bound in `front`; 503 until the store is
    // checked.
    let tiles = match (tiles, config.tiles.listen) {
        (Some(listener), Some(addr)) => {
            let listener = TcpListener::from_std(listener)
                .map_err(|source| RunError::Tiles { addr, source })?;
            Some(tokio::spawn(api::tiles::serve(
                listener,
                tiles_tls,
                gate.clone(),
            )))
        }
        _ => None,
    };
    let refusals = Arc::new(limits::Refusals::new(&config.limits));
    // Credentials and roles are checked in front of the services, before a body is read.
    let front_door =
        auth::FrontDoor::new(auth.clone(), refusals.clone(), config.max_envelope_bytes);
    let summaries = tokio::spawn(async move {
        let mut every = tokio::time::interval(limits::REFUSAL_LOG_INTERVAL);
        every.tick().await;
        loop {
            every.tick().await;
            refusals.summarize();
        }
    });
    let service = service::LedgerService::new(
        gate.clone(),
        config.max_envelope_bytes,
        auth,
        Arc::new(limits::Limiter::new(&config.limits)),
    );
    // A Submit waiting for a witnessed receipt gives up a little before the request
    // timeout, so that it can say why.
    let service = if config.witnesses.is_empty() {
        service
    } else {
        service.with_witnesses(std::time::Duration::from_millis(
            config.limits.request_timeout_ms * 9 / 10,
        ))
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<LedgerServer<service::LedgerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(evident_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    // Requests: the front door refuses a message over its call's limit before it arrives
    // (`max_envelope_bytes` plus framing; a batch or stream message up to this larger
    // limit); tonic's own limit is this, as a backstop. Answers: pages of entries stop at about 2 MiB plus
    // one envelope; bundles carry every registry entry and policy version, so they get
    // more room.
    let max_message = limits::max_request_bytes(config.max_envelope_bytes);
    let ledger_server = LedgerServer::new(service)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(MAX_ANSWER_BYTES.max(4 * max_message));
    let reporter = health_reporter.clone();
    let ms = std::time::Duration::from_millis;
    let l = &config.limits;
    let incoming =
        accept::Incoming::new(listener, accept::Caps::new(l), ms(l.handshake_timeout_ms));
    let mut builder = tonic::transport::Server::builder()
        .timeout(ms(l.request_timeout_ms))
        .trace_fn(request_span)
        // Streams per connection are bounded before any authentication runs.
        .max_concurrent_streams(l.max_streams_per_connection)
        // Dead peers are found by HTTP/2 pings; every connection is renewed now and then,
        // with its requests in flight given the request timeout to finish.
        .http2_keepalive_interval(Some(ms(l.keepalive_interval_ms)))
        .http2_keepalive_timeout(Some(ms(l.keepalive_timeout_ms)))
        .max_connection_age(ms(l.max_connection_age_ms))
        .max_connection_age_grace(ms(l.request_timeout_ms));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let mut builder = builder.layer(front_door);
    let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(
        builder
            .add_service(health)
            .add_service(reflection)
            .add_service(ledger_server)
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                let _ = stopped_tx.send(true);
                reporter
                    .set_not_serving::<LedgerServer<service::LedgerService>>()
                    .await;
                tracing::info!("shutting down: finishing the batch in progress");
            }),
    );
    // The start-up check, while health says NOT_SERVING.
    let checked = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || prepare(&config))
    };
    let prepared = tokio::select! {
        checked = checked => checked.expect("the start-up check does not panic")?,
        served = &mut server => {
            // Stopped (or failed) before the check finished.
            summaries.abort();
            return Ok(served.expect("the server task does not panic")?);
        }
    };
    let announced = prepared.started();
    let Prepared {
        store,
        signer,
        genesis,
        registry,
        start,
        shared,
    } = prepared;
    let limits = BatchLimits {
        max_entries: config.batch.max_entries,
        max_delay: config.max_delay(),
        queue_depth: config.batch.queue_depth,
    };
    let verifier = signer.verifier().clone();
    let genesis_registry = genesis.registry.clone();
    // On PostgreSQL, one forwarder for the instance's life: whenever it follows, its
    // submissions go through it, and the cluster task hands it the outcomes.
    let forwarder = shared.as_ref().map(|(log, _)| {
        Arc::new(cluster::Forwarder::new(
            log.clone(),
            &config.store.instance_name(),
        ))
    });
    let (ledger, sequencer) = match start {
        Start::Sequence { tail, term } => {
            let (ledger, sequencer) = Ledger::start(
                store.clone(),
                signer,
                tail,
                genesis,
                registry,
                limits,
                tokio::runtime::Handle::current(),
            )?;
            (ledger, Some((sequencer, term.unwrap_or(0))))
        }
        Start::Follow { note, checkpoint } => {
            let forwarder = forwarder
                .clone()
                .expect("only an instance on PostgreSQL follows");
            let published = ledger::Published {
                note,
                checkpoint,
                registry: Arc::new(registry),
                index: None,
            };
            let ledger = Ledger::follower(store.clone(), signer, genesis, published, forwarder);
            (ledger, None)
        }
    };
    let _ = gate.set(ledger.clone());
    drop(gate);
    // Witness cosignatures, gathered in the background; ingest never waits for them.
    let witnessing = if config.witnesses.is_empty() {
        None
    } else {
        let policy = config.witness_policy()?;
        Some(tokio::spawn(witnessing::run(
            ledger.clone(),
            config.witnesses.clone(),
            policy,
            std::time::Duration::from_millis(config.witnessing.interval_ms),
            std::time::Duration::from_millis(config.witnessing.timeout_ms),
        )))
    };
    if !*stopped.borrow() {
        health_reporter
            .set_serving::<LedgerServer<service::LedgerService>>()
            .await;
    }
    // Set once the background verification finds damage: health stays NOT_SERVING.
    let damaged = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // On PostgreSQL, the instance's part among several: the lease, following, health.
    let (cluster_stop, cluster_stopped) = tokio::sync::watch::channel(false);
    let (cluster, sequencer) = match shared {
        Some((log, target)) => {
            let forwarder = forwarder.expect("made for an instance on PostgreSQL");
            let parts = cluster::Parts {
                store: store.clone(),
                log,
                ledger: ledger.clone(),
                forwarder,
                genesis: genesis_registry,
            };
            let settings = cluster::Settings {
                instance: config.store.lease_holder(&config.data_dir),
                lease: std::time::Duration::from_millis(config.store.lease_ms),
                limits,
                tail_entries: config.startup_tail_entries,
                target,
            };
            let reporter = health_reporter.clone();
            let (stopping, damaged) = (stopped.clone(), damaged.clone());
            let serving: cluster::Serving = Box::new(move |on| {
                let reporter = reporter.clone();
                // Stopping, or damage found: NOT_SERVING stays, whatever the database does.
                let on = on
                    && !*stopping.borrow()
                    && !damaged.load(std::sync::atomic::Ordering::Acquire);
                Box::pin(async move {
                    if on {
                        reporter
                            .set_serving::<LedgerServer<service::LedgerService>>()
                            .await;
                    } else {
                        reporter
                            .set_not_serving::<LedgerServer<service::LedgerService>>()
                            .await;
                    }
                })
            });
            let task = tokio::spawn(cluster::run(
                parts,
                settings,
                sequencer,
                serving,
                cluster_stopped,
            ));
            (Some(task), None)
        }
        None => {
            crate::metrics::METRICS.sequencing(true, 0);
            (None, sequencer.map(|(handle, _)| handle))
        }
    };
    // The service (and, on PostgreSQL, the cluster task) hold the ledger from here on: when
    // they are gone at shutdown, so is the last sender to the sequencer, which then drains
    // its queue and exits.
    drop(ledger);
    // A storage failure stops the sequencer of a store of its own for good: say so to load
    // balancers. Started after SERVING is set, and it looks at the failure as it is now
    // first, so a failure before this point is not overwritten.
    let mut failure = sequencer.as_ref().map(ledger::SequencerHandle::failure);
    // The background verification of the whole store; a failed pass is reported the same
    // way.
    let (damage_tx, mut damage) = tokio::sync::watch::channel(None);
    let verification = if config.verify_every_seconds > 0 {
        Some(
            verify::start(
                store.clone(),
                verifier,
                verify::Schedule {
                    every: std::time::Duration::from_secs(config.verify_every_seconds),
                    entries_per_second: config.verify_entries_per_second,
                },
                damage_tx,
            )
            .map_err(|source| RunError::Store {
                dir: config.data_dir.clone(),
                error: store::StoreError::Io {
                    op: "starting the background verification",
                    path: config.data_dir.clone(),
                    source,
                },
            })?,
        )
    } else {
        None
    };
    let reporter = health_reporter.clone();
    let damage_flag = damaged.clone();
    let watchdog = tokio::spawn(async move {
        // A sender gone (the verification thread ended) is not a failure: keep watching
        // the other.
        let failed = async {
            let stopped = match failure.as_mut() {
                Some(failure) => failure.wait_for(Option::is_some).await.is_ok(),
                None => false,
            };
            if !stopped {
                std::future::pending::<()>().await;
            }
        };
        let found = async {
            if damage.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = failed => {}
            () = found => damage_flag.store(true, std::sync::atomic::Ordering::Release),
        }
        reporter
            .set_not_serving::<LedgerServer<service::LedgerService>>()
            .await;
    });
    announce(&announced);
    let result = server.await.expect("the server task does not panic");
    // The server and with it every queue sender is gone: the sequencer drains and exits.
    if let Some(task) = metrics {
        task.abort();
    }
    summaries.abort();
    watchdog.abort();
    if let Some(task) = witnessing {
        task.abort();
    }
    if let Some(task) = tiles {
        task.abort();
    }
    // Several instances: the sequencer steps down and gives up the lease, so that another
    // instance takes over at once.
    let _ = cluster_stop.send(true);
    if let Some(task) = cluster {
        let _ = task.await;
    }
    tokio::task::spawn_blocking(move || {
        drop(verification);
        if let Some(sequencer) = sequencer {
            sequencer.join();
        }
    })
    .await
    .expect("joining the sequencer does not panic");
    if let Err(e) = store.sync() {
        tracing::error!(error = %e, "final sync failed");
    }
    tracing::info!("stopped");
    Ok(result?)
}

/// Every request's log lines carry its id (the client's `x-request-id`, or one made here)
/// and method.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            // Only characters that cannot forge other fields of a log line.
            v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("r{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    tracing::info_span!("request", id = %id, method = %request.uri().path())
}
