//! `evident`, the command-line client: keys, attestations, submission, and offline checks.
//!
//! A thin shell over the `evident-client` library: `cmd/` holds one module per command
//! (its flags, and `run`, which calls the library and prints); this file holds the global
//! flags, what every command shares (connecting, the pinned log key, the checkpoint state
//! file, JSON output) and the exit codes: 0 success, 1 a verification failed, 2 any other
//! error.

mod cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, ValueEnum};
use evident_client::keyfile::check_private_file;
use evident_client::report::escape_terminal;
use evident_client::{CheckpointState, Client, ClientError};
use evident_core::note::Verifier;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The Evident client: attest, submit, and verify offline"
)]
struct Cli {
    /// Server address: https:// (TLS, the default) or http:// (a plaintext server).
    #[arg(
        long,
        global = true,
        env = "EVIDENT_SERVER",
        default_value = "https://127.0.0.1:50051"
    )]
    server: String,
    /// The CA certificate (PEM) that signed the server's certificate; for a server that
    /// made its own, DATA_DIR/tls/ca.pem.
    #[arg(long, global = true, env = "EVIDENT_CA")]
    ca: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, env = "EVIDENT_CERT")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600). (`--key` names signing keys.)
    #[arg(long, global = true, env = "EVIDENT_CERT_KEY")]
    cert_key: Option<PathBuf>,
    /// A bearer token, or a file holding one (mode 0600).
    #[arg(long, global = true, env = "EVIDENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The log's verifier key (`name+id+base64`), or a file holding it.
    #[arg(long, global = true, env = "EVIDENT_LOG_KEY")]
    log_key: Option<String>,
    /// File keeping the last verified checkpoint of each log.
    #[arg(long, global = true, env = "EVIDENT_STATE")]
    state: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    format: Format,
    #[command(subcommand)]
    command: cmd::Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Lines for people.
    Human,
    /// One JSON document.
    Json,
    /// One JSON object per line (`query`, `releases`; other commands print JSON).
    Jsonl,
    /// Comma-separated values with a header (`query`, `releases`; other commands print
    /// JSON).
    Csv,
}

#[derive(Debug, clap::Args)]
struct GenesisArg {
    /// The log's genesis (genesis.json, written by evidentd beside log.pub): the
    /// administrators the trust registry starts from.
    #[arg(long, env = "EVIDENT_GENESIS")]
    genesis: PathBuf,
}

#[derive(Debug, clap::Args)]
struct AdminKeys {
    /// An administrator's signing key file (repeat to meet a threshold).
    #[arg(long = "admin-key", required = true)]
    admin_keys: Vec<PathBuf>,
}

/// A failed verification (exit 1), as opposed to an error (exit 2).
#[derive(Debug)]
struct VerificationFailed(String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerificationFailed {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("evident: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cmd::run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<Denied>().is_some() {
                return ExitCode::from(1);
            }
            if let Some(alert) = e.downcast_ref::<cmd::auditor::Alert>() {
                eprintln!("{alert}");
                return ExitCode::from(1);
            }
            let failed = e.downcast_ref::<VerificationFailed>().is_some()
                || e.downcast_ref::<ClientError>()
                    .is_some_and(ClientError::is_verification_failure);
            // Errors quote the server and the evidence: escaped line by line, so a
            // multi-line message keeps its lines and nothing else reaches the terminal raw.
            let text = format!("{e:#}");
            let text: Vec<_> = text.lines().map(escape_terminal).collect();
            let text = text.join("\n");
            if failed {
                eprintln!("evident: verification failed: {text}");
                ExitCode::from(1)
            } else {
                eprintln!("evident: {text}");
                ExitCode::from(2)
            }
        }
    }
}

/// A release the policy denies (exit 1), already reported on standard output.
#[derive(Debug)]
struct Denied;

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the policy denies this release")
    }
}

impl std::error::Error for Denied {}

/// The log key given with `--log-key` (the key, or a file holding it), if any.
fn log_key(cli: &Cli) -> anyhow::Result<Option<Verifier>> {
    let Some(text) = &cli.log_key else {
        return Ok(None);
    };
    let text = if Path::new(text).is_file() {
        std::fs::read_to_string(text).with_context(|| format!("reading log key file {text}"))?
    } else {
        text.clone()
    };
    Ok(Some(Verifier::parse(&text).context("--log-key")?))
}

/// The log key, which this command cannot do without.
fn require_log_key(cli: &Cli) -> anyhow::Result<Verifier> {
    log_key(cli)?.ok_or_else(|| {
        anyhow!("pin the log's verifier key with --log-key or EVIDENT_LOG_KEY (evidentd prints it at start and writes it to DATA_DIR/log.pub)")
    })
}

/// The checkpoint state file: `--state`, or the library's default.
fn state_path(cli: &Cli) -> PathBuf {
    match &cli.state {
        Some(p) => p.clone(),
        None => CheckpointState::default_path(),
    }
}

/// Connects to `--server` with the credentials the flags name.
async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).with_context(|| format!("{flag}: reading {}", path.display()))
    };
    let ca = cli.ca.as_deref().map(|p| read("--ca", p)).transpose()?;
    let identity = match (&cli.cert, &cli.cert_key) {
        (Some(cert), Some(key)) => {
            check_private_file("--cert-key", key)?;
            Some((read("--cert", cert)?, read("--cert-key", key)?))
        }
        (None, None) => None,
        _ => bail!("--cert and --cert-key go together (a client certificate and its key)"),
    };
    let token = match &cli.token {
        Some(t) if Path::new(t).is_file() => {
            check_private_file("--token", Path::new(t))?;
            Some(
                std::fs::read_to_string(t)
                    .with_context(|| format!("--token: reading {t}"))?
                    .trim()
                    .to_owned(),
            )
        }
        other => other.clone(),
    };
    let credentials = evident_client::Credentials {
        ca,
        identity,
        token,
    };
    Ok(Client::connect_with(&cli.server, &credentials).await?)
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value serializes")
    );
}

fn format_is_human(cli: &Cli) -> bool {
    cli.format == Format::Human
}
