//! `evident-witness`: `keygen` makes a witness key; `serve` runs the witness.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use evident_witness::{Config, Witness, http, keygen};
use tracing_subscriber::EnvFilter;

/// A C2SP tlog-witness for Evident logs.
#[derive(Debug, Parser)]
#[command(name = "evident-witness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Makes a witness key: writes the private key to FILE (mode 0600, never overwritten)
    /// and prints the verifier key to give to log operators and clients.
    Keygen {
        /// The witness's name, e.g. `witness.audit-firm.example/evident-1`.
        #[arg(long)]
        name: String,
        /// An ML-DSA-44 key (post-quantum) instead of Ed25519.
        #[arg(long)]
        ml_dsa: bool,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serves the witness.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, env = "EVIDENT_WITNESS_CONFIG")]
        config: PathBuf,
        /// Overrides the configuration's `listen` address.
        #[arg(long, env = "EVIDENT_WITNESS_LISTEN")]
        listen: Option<SocketAddr>,
        /// Log lines as JSON.
        #[arg(long, env = "EVIDENT_WITNESS_LOG_JSON")]
        log_json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen { name, ml_dsa, out } => keygen_command(&name, ml_dsa, &out),
        Command::Serve {
            config,
            listen,
            log_json,
        } => serve_command(&config, listen, log_json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evident-witness: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn keygen_command(name: &str, ml_dsa: bool, out: &std::path::Path) -> anyhow::Result<()> {
    let cosigner = keygen::generate(name, ml_dsa)?;
    keygen::write_private(&cosigner, out)?;
    println!("{}", cosigner.key());
    Ok(())
}

fn serve_command(
    path: &std::path::Path,
    listen: Option<SocketAddr>,
    log_json: bool,
) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: none in the journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let config = Config::load(path)?;
    let witness = Witness::open(&config)?;
    let listen = listen.unwrap_or(config.listen);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        // The first line on stdout: scripts and tests read the port from it.
        println!("listening on {bound}");
        tracing::info!(
            %bound,
            witness = %witness.key(),
            logs = config.logs.len(),
            "witness serving"
        );
        http::serve(listener, Arc::new(witness), shutdown_signal()).await;
        tracing::info!("witness stopped");
        anyhow::Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
