//! `evidentd`, the Evident ledger server: parse flags, set up logs, bind, [`evident_server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use evident_server::config::Config;

/// mimalloc instead of the C library's allocator: the server allocates and frees many
/// small buffers per request on every worker, and glibc's allocator took about a sixth of
/// the CPU under load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Evident ledger server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file; flags override it.
    #[arg(long, env = "EVIDENT_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "EVIDENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data folder [default: ./evident-data].
    #[arg(long, env = "EVIDENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the log and the indexes in this PostgreSQL database (a libpq connection string
    /// or URL) instead of files in the data folder: `[store] backend = "postgres"`.
    #[arg(long, env = "EVIDENT_STORE_URL")]
    store_url: Option<String>,
    /// The log's origin (checkpoint first line and key name) [default: evident.local/log].
    #[arg(long, env = "EVIDENT_ORIGIN")]
    origin: Option<String>,
    /// Prometheus metrics listen address (plain HTTP, `GET /metrics`) [default: none].
    #[arg(long, env = "EVIDENT_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// The log as C2SP tlog-tiles over HTTP (`/checkpoint`, `/tile/…`) on this address
    /// [default: none].
    #[arg(long, env = "EVIDENT_TILES_LISTEN")]
    tiles_listen: Option<SocketAddr>,
    /// Log lines for people (`human`) or one JSON object per line (`json`).
    #[arg(long, env = "EVIDENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Allow `[tls] plaintext = true` on an address other than loopback.
    #[arg(long, env = "EVIDENT_INSECURE_ALLOW_PLAINTEXT")]
    insecure_allow_plaintext: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Offline work on a data folder; without a command, `evidentd` serves.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check a stopped server's data folder: replay every entry from the genesis (chain,
    /// signatures against the registry of the time, registry and policy entries), every
    /// tree node, the signed checkpoint, and every index key. Exit 0 when all holds, 1 at
    /// the first problem (named by entry index).
    VerifyStore {
        /// The log's verifier key (`name+id+base64`, or a file holding it) [default: the
        /// folder's log.pub].
        #[arg(long, env = "EVIDENT_LOG_KEY")]
        log_key: Option<String>,
    },
    /// Write the log as a static C2SP tlog-tiles tree into DIR (`DIR/tile/…`, then
    /// `DIR/checkpoint`), for any web server or object store to serve: a stopped server's
    /// data folder, or a PostgreSQL store. The store's checkpoint is verified under the log
    /// key first. A DIR holding an earlier export is extended: its checkpoint must be this
    /// log's and a prefix of it, and only the tiles and bundles added since are written.
    /// With `[[witness]]` in the config, the checkpoint is first sent to the witnesses and
    /// exported with their cosignatures, and nothing is written unless the threshold of
    /// them cosigned (`--unwitnessed` exports the log's signature alone).
    /// Exit 1 when a check fails, 2 on other errors (docs/FORMAT.md section 8).
    ExportTiles {
        /// The folder to write (made if missing).
        dir: PathBuf,
        /// The log's verifier key (`name+id+base64`, or a file holding it) [default: the
        /// data folder's log.pub].
        #[arg(long, env = "EVIDENT_LOG_KEY")]
        log_key: Option<String>,
        /// Export the checkpoint without asking the configured witnesses: clients that
        /// require their cosignatures will refuse the export.
        #[arg(long)]
        unwitnessed: bool,
    },
    /// Rebuild every index of a stopped server's data folder from its entries.
    Reindex,
    /// Move a stopped server's data folder of the old layout (everything in sled, in db/)
    /// to the current one: every entry is replayed and verified, then written to the log
    /// files and indexed; the old store is kept as db.pre-migration. With `[store] backend
    /// = "postgres"`: apply the database's schema migrations and print what it holds.
    Migrate,
    /// Back up a running server into a new data folder, over gRPC: the latest checkpoint
    /// and every entry it covers, verified (replayed from the genesis and held against the
    /// checkpoint) before the copy is kept. Exit 1 when the served log does not verify, 2 on
    /// other errors (docs/BACKUP.md).
    Backup(evident_server::backup::BackupArgs),
    /// Copy a verified log between stores — a data folder (its server stopped) and a
    /// PostgreSQL database (its server may run: the copy covers the checkpoint read at the
    /// start) — into an empty destination. The source is replayed from its genesis and held
    /// against its signed checkpoint before anything is written. Exit 1 when the source does
    /// not verify (the destination is left as it was), 2 on other errors (docs/BACKUP.md).
    Copy(evident_server::ops::copy::CopyArgs),
    /// Check a config file (default: --config) without starting: every field, the TLS
    /// files and their modes, the clients and tokens. Exit 0 when it would start, 1 naming
    /// the first problem.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Make a bearer token for a client: prints the token (once) and the `[[token]]` entry
    /// for the config, which holds only its SHA-256.
    Token {
        /// A name for the client, shown in logs.
        #[arg(long)]
        name: String,
        /// Its roles: submitter, auditor, admin (repeat the flag).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
}

/// `evidentd config …`.
#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validate a config file.
    Check {
        /// The file [default: --config].
        file: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    let result =
        match args.command.take() {
            None => serve(args),
            Some(Command::Config {
                command: ConfigCommand::Check { file },
            }) => check_config(&args, file),
            Some(Command::Backup(backup)) => evident_server::backup::command(&backup)
                .map(drop)
                .map_err(|e| {
                    if e.is_verification_failure() {
                        StoreFailed(e.to_string()).into()
                    } else {
                        e.into()
                    }
                }),
            Some(Command::Copy(copy)) => evident_server::ops::copy::command(&copy)
                .map(drop)
                .map_err(|e| {
                    if e.is_verification_failure() {
                        StoreFailed(e.to_string()).into()
                    } else {
                        e.into()
                    }
                }),
            Some(command) => offline(args, command),
        };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StoreFailed>().is_some() => {
            eprintln!("evidentd: {e:#}");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("evidentd: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `verify-store` found a problem in the data (exit 1, not 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StoreFailed(String);

fn offline(args: Args, command: Command) -> anyhow::Result<()> {
    let command = match command {
        Command::Token { name, roles } => return new_token(&name, &roles),
        other => other,
    };
    let config = config_of(&args)?;
    let dir = config.data_dir.clone();
    let started = std::time::Instant::now();
    let progress = |done: u64, total: u64| {
        if total > 0 {
            tracing::info!(done, total, "replaying the log");
        }
    };
    if let (Command::Migrate, evident_server::config::Backend::Postgres) =
        (&command, config.store.backend)
    {
        let url = config.store.url.clone().context(
            "[store] backend = \"postgres\" needs url = \"postgres://…\" (or EVIDENT_STORE_URL)",
        )?;
        let target = evident_server::storage::postgres::PgTarget {
            url,
            ca: config.store.ca.clone(),
        };
        let state = evident_server::maintenance::migrate_postgres(&target)
            .map_err(|e| StoreFailed(format!("the PostgreSQL store NOT migrated: {e}")))?;
        println!(
            "PostgreSQL store: schema at this evidentd's version; {} entries, {}, {}",
            state.entries,
            if state.genesis {
                "genesis recorded"
            } else {
                "no genesis yet"
            },
            match state.checkpoint_size {
                Some(size) => format!("signed checkpoint of {size} entries"),
                None => "no checkpoint yet".to_owned(),
            }
        );
        return Ok(());
    }
    if let Command::Migrate = command {
        let entries = evident_server::maintenance::migrate(&dir, progress)
            .map_err(|e| StoreFailed(format!("{} NOT migrated: {e}", dir.display())))?;
        println!(
            "{}: migrated {entries} entries in {:.1?}; the old store is in db.pre-migration \
             (remove it once the server runs)",
            dir.display(),
            started.elapsed()
        );
        return Ok(());
    }
    // On PostgreSQL the store is the database's (verify-store may run while instances
    // serve; reindex wants them stopped); on files, the data folder's.
    let store = match config.store.backend {
        evident_server::config::Backend::Postgres => {
            let url = config.store.url.clone().context(
                "[store] backend = \"postgres\" needs url = \"postgres://…\" (or EVIDENT_STORE_URL)",
            )?;
            evident_server::store::Store::open_postgres(
                &evident_server::storage::postgres::PgTarget {
                    url,
                    ca: config.store.ca.clone(),
                },
            )
            .map_err(|e| StoreFailed(format!("opening the PostgreSQL store: {e}")))?
        }
        evident_server::config::Backend::Files => evident_server::maintenance::open(&dir)?,
    };
    match command {
        Command::VerifyStore { log_key } => {
            let verifier = evident_server::maintenance::verifier(&dir, log_key.as_deref())?;
            let verified = evident_server::maintenance::verify_store(&store, &verifier, progress)
                .map_err(|e| StoreFailed(format!("{} FAILED: {e}", dir.display())))?;
            let s = &verified.summary;
            println!(
                "{}: OK — {} entries ({}), {} index keys, replayed in {:.1?}",
                dir.display(),
                s.entries,
                s.kinds
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                verified.index_keys,
                started.elapsed()
            );
            if let Some(cp) = &verified.checkpoint {
                println!("signed checkpoint: {} entries, root {}", cp.size, cp.root);
            }
            Ok(())
        }
        Command::ExportTiles {
            dir: out,
            log_key,
            unwitnessed,
        } => {
            let verifier = evident_server::maintenance::verifier(&dir, log_key.as_deref())?;
            let failed = |e: evident_server::ops::export::ExportError| {
                if e.is_verification_failure() {
                    anyhow::Error::from(StoreFailed(format!("{} NOT exported: {e}", out.display())))
                } else {
                    anyhow::Error::from(e)
                }
            };
            let (store, cosigned) = if config.witnesses.is_empty() || unwitnessed {
                (std::sync::Arc::new(store), None)
            } else {
                // The store and the folder are checked before any witness is asked.
                evident_server::ops::export::check(&store, &verifier, &out, None)
                    .map_err(failed)?;
                let (store, cosigned) = export_cosigned(store, &config, &verifier, &out)?;
                (store, Some(cosigned))
            };
            let note = cosigned.as_ref().map(|c| c.note.clone());
            let exported = evident_server::ops::export::export_tiles(&store, &verifier, &out, note)
                .map_err(failed)?;
            let since = match exported.previous {
                Some(old) => format!(" (after the export of {old} entries already there)"),
                None => String::new(),
            };
            let witnessed = match &cosigned {
                Some(c) => format!("; cosigned by {} witnesses", c.cosigned),
                None => String::new(),
            };
            println!(
                "{}: exported the checkpoint of {} entries{since}: {} tiles and {} entry bundles written{witnessed}",
                out.display(),
                exported.size,
                exported.tiles,
                exported.bundles
            );
            Ok(())
        }
        Command::Token { .. } | Command::Config { .. } => {
            unreachable!("answered above without a store")
        }
        Command::Backup(_) | Command::Copy(_) => {
            unreachable!("dispatched in main: a backup or a copy reads no config")
        }
        Command::Migrate => unreachable!("answered above"),
        Command::Reindex => {
            let entries = evident_server::maintenance::reindex(&store, progress)?;
            println!(
                "{}: indexes rebuilt for {entries} entries in {:.1?}",
                dir.display(),
                started.elapsed()
            );
            Ok(())
        }
    }
}

/// `evidentd config check`: everything `evidentd` checks about its settings before it
/// touches the store.
fn check_config(args: &Args, file: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(path) = file.or_else(|| args.config.clone()) else {
        anyhow::bail!("name the config file: evidentd config check FILE (or --config FILE)");
    };
    let mut config = Config::from_file(&path).map_err(|e| StoreFailed(e.to_string()))?;
    config.insecure_allow_plaintext = args.insecure_allow_plaintext;
    let summary = evident_server::check_settings(&config)
        .map_err(|e| StoreFailed(format!("{}: {e}", path.display())))?;
    println!("{}: OK", path.display());
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// `evidentd token`: a random bearer token and the config entry that admits it.
fn new_token(name: &str, roles: &[String]) -> anyhow::Result<()> {
    for role in roles {
        if evident_server::auth::Role::parse(role).is_none() {
            anyhow::bail!("--role {role:?} is not a role: use submitter, auditor or admin");
        }
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let token = format!("evt_{}", hex::encode(bytes));
    println!("token (give it to the client; it is not stored anywhere): {token}");
    println!();
    println!("[[token]]");
    println!("name = {name:?}");
    println!("sha256 = \"{}\"", evident_server::auth::token_hash(&token));
    println!(
        "roles = [{}]",
        roles
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn config_of(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &args.store_url {
        config.store.backend = evident_server::config::Backend::Postgres;
        config.store.url = Some(url.clone());
    }
    if let Some(origin) = &args.origin {
        config.origin = origin.clone();
    }
    if let Some(metrics) = args.metrics_listen {
        config.metrics_listen = Some(metrics);
    }
    if let Some(tiles) = args.tiles_listen {
        config.tiles.listen = Some(tiles);
    }
    config.insecure_allow_plaintext = args.insecure_allow_plaintext;
    Ok(config)
}

fn serve(args: Args) -> anyhow::Result<()> {
    let config = config_of(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let front = evident_server::front(&config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        // Install the handlers before announcing the address: a SIGTERM that arrives right
        // after must stop the server cleanly, not kill it.
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        let transport = front.transport().clone();
        let open = front.open_access();
        let metrics = front.metrics_addr();
        let tiles = front.tiles_addr();
        let tiles_scheme = front.tiles_scheme();
        if transport == evident_server::tls::Mode::Plaintext {
            tracing::warn!(
                "serving PLAINTEXT gRPC: submissions and tokens cross the wire unencrypted"
            );
        }
        tracing::info!(%addr, "checking the store; health says NOT_SERVING until done");
        // Printed once the store passed its check and the ledger serves.
        let announce = move |started: &evident_server::Started| {
            println!("log verifier key: {}", started.verifier);
            if let Some(path) = &started.created_admin_key {
                println!(
                    "first administrator key: {} (sign registry changes with it; keep it safe)",
                    path.display()
                );
            }
            println!(
                "administrators: {} (threshold {}); registered signer keys: {}",
                started.admins.join(", "),
                started.threshold,
                started.signer_keys
            );
            println!("entries: {}", started.entries);
            println!("transport: {transport}");
            if open {
                println!(
                    "clients: OPEN — no [[token]] or [[client]] configured, every client on \
                     loopback has every role"
                );
            }
            println!("listening on {addr}");
            if let Some(metrics) = metrics {
                println!("metrics on http://{metrics}/metrics");
            }
            if let Some(tiles) = tiles {
                println!("tiles on {tiles_scheme}://{tiles}");
            }
        };
        evident_server::run(listener, front, announce, shutdown).await?;
        Ok(())
    })
}

/// Installs SIGINT and SIGTERM handlers now; the future completes on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// `export-tiles` with witnesses: the store's checkpoint, cosigned by at least the
/// threshold of the configured witnesses, or an error that writes nothing.
fn export_cosigned(
    store: evident_server::store::Store,
    config: &Config,
    verifier: &evident_core::note::Verifier,
    out: &std::path::Path,
) -> anyhow::Result<(
    std::sync::Arc<evident_server::store::Store>,
    evident_server::engine::witnessing::StoreCosigned,
)> {
    let policy = config.witness_policy().context("[[witness]]")?;
    let store = std::sync::Arc::new(store);
    let timeout = std::time::Duration::from_millis(config.witnessing.timeout_ms.max(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let cosigned = runtime
        .block_on(evident_server::engine::witnessing::cosign_store_checkpoint(
            store.clone(),
            &config.witnesses,
            &policy,
            verifier,
            timeout,
        ))
        .map_err(|e| anyhow::anyhow!("{} NOT exported: {e}", out.display()))?;
    // The witnesses' lines are held to the policy as the server holds them.
    let enough = evident_core::note::Note::parse(&cosigned.note)
        .map_err(|e| e.to_string())
        .and_then(|note| {
            policy
                .check(&note, &cosigned.checkpoint)
                .map_err(|e| e.to_string())
        });
    let threshold = policy.threshold().max(1);
    if enough.is_err() {
        anyhow::bail!(
            "{} NOT exported: the checkpoint of {} entries was cosigned by {} of the {} \
             configured witnesses, {threshold} required (the warnings above say why); the folder \
             is as it was. Retry once the witnesses answer, or pass --unwitnessed to export \
             the log's signature alone",
            out.display(),
            cosigned.checkpoint.size,
            cosigned.cosigned,
            config.witnesses.len()
        );
    }
    Ok((store, cosigned))
}
