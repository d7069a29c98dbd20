//! `evidentd`, the Evident ledger server: parse flags, set up logs, bind, [`evident_server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use evident_server::config::Config;

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
    /// The log's origin (checkpoint first line and key name) [default: evident.local/log].
    #[arg(long, env = "EVIDENT_ORIGIN")]
    origin: Option<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match serve(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evidentd: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn serve(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(origin) = args.origin {
        config.origin = origin;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let prepared = evident_server::prepare(config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        // Install the handlers before announcing the address: a SIGTERM that arrives right
        // after must stop the server cleanly, not kill it.
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        println!("log verifier key: {}", prepared.verifier());
        if let Some(path) = prepared.created_admin_key() {
            println!(
                "first administrator key: {} (sign registry changes with it; keep it safe)",
                path.display()
            );
        }
        let registry = prepared.registry();
        println!(
            "administrators: {} (threshold {}); registered signer keys: {}",
            registry
                .admins()
                .iter()
                .map(|a| a.identity.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            registry.threshold(),
            registry.signer_keys().len()
        );
        println!("entries: {}", prepared.size());
        println!("listening on {addr}");
        evident_server::run(listener, prepared, shutdown).await?;
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
