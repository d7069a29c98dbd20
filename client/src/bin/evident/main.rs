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
use evident_core::cosign::{CosignerKey, WitnessPolicy};
use evident_core::note::Verifier;

#[derive(Debug, Parser)]
#[command(
    name = "evident",
    version,
    about = "The Evident client: attest, submit, and verify offline"
)]
struct Evident {
    #[command(subcommand)]
    command: cmd::Command,
}

/// How to reach the server: the flags of the commands that connect, shown under
/// "Connection" in their help. (`global`: on a command group such as `signer`, they apply
/// to each of its subcommands.)
#[derive(Debug, Clone, clap::Args)]
struct Connection {
    /// Server address: https:// (TLS, the default) or http:// (a plaintext server).
    #[arg(
        long,
        global = true,
        env = "EVIDENT_SERVER",
        default_value = "https://127.0.0.1:50051",
        help_heading = "Connection"
    )]
    server: String,
    /// The CA certificate (PEM) that signed the server's certificate; for a server that
    /// made its own, DATA_DIR/tls/ca.pem. Without it, the system's trusted roots.
    #[arg(long, global = true, env = "EVIDENT_CA", help_heading = "Connection")]
    ca: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS.
    #[arg(long, global = true, env = "EVIDENT_CERT", help_heading = "Connection")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600). (`--key` names signing keys.)
    #[arg(
        long,
        global = true,
        env = "EVIDENT_CERT_KEY",
        help_heading = "Connection"
    )]
    cert_key: Option<PathBuf>,
    /// A bearer token, or a file holding one (mode 0600).
    #[arg(
        long,
        global = true,
        env = "EVIDENT_TOKEN",
        hide_env_values = true,
        help_heading = "Connection"
    )]
    token: Option<String>,
    /// Seconds to wait for the connection, and for each attempt of each call.
    #[arg(
        long,
        global = true,
        env = "EVIDENT_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Connection"
    )]
    timeout: u64,
    /// Retries, with exponential backoff and jitter, when the server cannot be reached or
    /// answers UNAVAILABLE or RESOURCE_EXHAUSTED (submissions and reads are idempotent).
    #[arg(
        long,
        global = true,
        env = "EVIDENT_RETRIES",
        value_name = "N",
        default_value_t = 3,
        help_heading = "Connection"
    )]
    retries: u32,
}

/// The pinned log key and the checkpoint state file: the flags of the commands that verify
/// the log's checkpoints, online or offline.
#[derive(Debug, Clone, Default, clap::Args)]
struct LogArgs {
    /// The log's verifier key (`name+id+base64`), or a file holding it.
    #[arg(long, global = true, env = "EVIDENT_LOG_KEY", help_heading = "Log")]
    log_key: Option<String>,
    /// File keeping the last verified checkpoint of each log.
    #[arg(long, global = true, env = "EVIDENT_STATE", help_heading = "Log")]
    state: Option<PathBuf>,
    /// A witness whose cosignature the log's checkpoints must carry: its verifier key
    /// (`name+id+base64`), or a file holding it. Repeat for each witness (or separate them
    /// with commas in EVIDENT_WITNESSES); see --witness-threshold.
    #[arg(
        long = "witness",
        global = true,
        env = "EVIDENT_WITNESSES",
        value_delimiter = ',',
        help_heading = "Log"
    )]
    witnesses: Vec<String>,
    /// How many of the witnesses must have cosigned a checkpoint for it to be accepted
    /// (default: every witness named).
    #[arg(
        long,
        global = true,
        env = "EVIDENT_WITNESS_THRESHOLD",
        help_heading = "Log"
    )]
    witness_threshold: Option<usize>,
    /// A trust file (TOML) naming the log key and the witnesses: `log_key = "…"`,
    /// `witnesses = ["…", …]`, `witness_threshold = K`. Flags given as well take precedence.
    #[arg(long, global = true, env = "EVIDENT_TRUST", help_heading = "Log")]
    trust: Option<PathBuf>,
}

/// The trust file of `--trust`: what a client trusts about one log.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    /// The log's verifier key text.
    log_key: Option<String>,
    /// The witnesses' verifier key texts.
    #[serde(default)]
    witnesses: Vec<String>,
    /// How many must have cosigned (default: all).
    witness_threshold: Option<usize>,
}

/// The `--trust` file, if one is named.
fn trust_file(cli: &Cli) -> anyhow::Result<TrustFile> {
    let Some(path) = &cli.log.trust else {
        return Ok(TrustFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--trust: reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("--trust: {}", path.display()))
}

/// The witnesses a checkpoint must be cosigned by (from `--witness`, or the `--trust`
/// file), and how many: none unless some are named.
fn witness_policy(cli: &Cli) -> anyhow::Result<WitnessPolicy> {
    let file = trust_file(cli)?;
    let (texts, threshold) = if cli.log.witnesses.is_empty() {
        (
            file.witnesses,
            cli.log.witness_threshold.or(file.witness_threshold),
        )
    } else {
        (cli.log.witnesses.clone(), cli.log.witness_threshold)
    };
    let mut keys = Vec::with_capacity(texts.len());
    for text in &texts {
        let text = if Path::new(text).is_file() {
            std::fs::read_to_string(text).with_context(|| format!("reading witness key {text}"))?
        } else {
            text.clone()
        };
        keys.push(CosignerKey::parse(&text).context("--witness")?);
    }
    let threshold = threshold.unwrap_or(keys.len());
    if threshold == 0 && !keys.is_empty() {
        bail!("--witness-threshold must be at least 1 when witnesses are named");
    }
    WitnessPolicy::new(keys, threshold).context("--witness-threshold")
}

/// `--format` of the commands that print one document: lines for people, or JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum DocFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON document.
    Json,
}

/// `--format` of the commands that print a table (`query`, `releases`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum TableFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
}

/// `--format` of a command that prints one document.
#[derive(Debug, Clone, Copy, clap::Args)]
struct DocOutput {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t)]
    format: DocFormat,
}

/// `--format` of a command that prints a table.
#[derive(Debug, Clone, Copy, clap::Args)]
struct TableOutput {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t)]
    format: TableFormat,
}

/// What a command prints: its `--format`, or `Human` for a command without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Human,
    Json,
    Jsonl,
    Csv,
}

impl From<DocFormat> for Format {
    fn from(format: DocFormat) -> Format {
        match format {
            DocFormat::Human => Format::Human,
            DocFormat::Json => Format::Json,
        }
    }
}

impl From<TableFormat> for Format {
    fn from(format: TableFormat) -> Format {
        match format {
            TableFormat::Human => Format::Human,
            TableFormat::Json => Format::Json,
            TableFormat::Jsonl => Format::Jsonl,
            TableFormat::Csv => Format::Csv,
        }
    }
}

/// What the running command shares with the helpers here: its connection flags (if it
/// connects), its log flags, and its output format.
#[derive(Debug, Clone)]
struct Cli {
    connection: Option<Connection>,
    log: LogArgs,
    format: Format,
}

#[derive(Debug, clap::Args)]
struct GenesisArg {
    /// The log's genesis (genesis.json, written by evidentd beside log.pub): the
    /// administrators the trust registry starts from.
    #[arg(long, env = "EVIDENT_GENESIS")]
    genesis: PathBuf,
}

/// `--tiles`: read the log from its C2SP tlog-tiles instead of the gRPC API.
#[derive(Debug, clap::Args)]
pub(crate) struct TilesArg {
    /// Read the log from its tiles (C2SP tlog-tiles) instead of the server's gRPC API: the
    /// URL under which /checkpoint and /tile/ are served (evidentd's `[tiles] listen`, a
    /// mirror or a CDN), or a folder written by `evidentd export-tiles`. Everything read is
    /// verified against the log key (and the witnesses required), as over gRPC.
    #[arg(long, value_name = "URL|DIR", env = "EVIDENT_TILES")]
    pub(crate) tiles: Option<String>,
    /// A CA certificate (PEM) that an https:// tiles server's certificate chains to, beside
    /// the system's roots; for a server that made its own, DATA_DIR/tls/ca.pem. Read only
    /// with --tiles, so EVIDENT_TILES_CA may be set for every command.
    #[arg(long, value_name = "FILE", env = "EVIDENT_TILES_CA")]
    pub(crate) tiles_ca: Option<PathBuf>,
}

impl TilesArg {
    /// The tiles named, opened; `None` without `--tiles`.
    pub(crate) fn open(&self) -> anyhow::Result<Option<evident_client::tiles::Tiles>> {
        self.tiles
            .as_deref()
            .map(|location| evident_client::tiles::Tiles::open(location, self.tiles_ca.as_deref()))
            .transpose()
            .map_err(anyhow::Error::from)
    }
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
    let args = Evident::parse();
    let cli = args.command.context();
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
    match runtime.block_on(cmd::run(&cli, &args.command)) {
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
    let from_file;
    let text = match &cli.log.log_key {
        Some(text) => text,
        None => match trust_file(cli)?.log_key {
            Some(text) => {
                from_file = text;
                &from_file
            }
            None => return Ok(None),
        },
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
    match &cli.log.state {
        Some(p) => p.clone(),
        None => CheckpointState::default_path(),
    }
}

/// Connects to `--server` with the credentials the flags name, within `--timeout`, and
/// with `--retries` retries of idempotent calls.
async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let Some(cli) = &cli.connection else {
        bail!("this command has no connection flags");
    };
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
    let options = evident_client::ConnectOptions {
        timeout: Some(std::time::Duration::from_secs(cli.timeout)),
        retry: evident_client::RetryPolicy::with_retries(cli.retries),
    };
    Ok(Client::connect_with_options(&cli.server, &credentials, &options).await?)
}

/// Writes a command's `--format json` output (a type of `evident_client::output`).
fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("an output type serializes")
    );
}

fn format_is_human(cli: &Cli) -> bool {
    cli.format == Format::Human
}
