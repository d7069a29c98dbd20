//! `evident`, the command-line client: keys, attestations, submission, and offline checks.
//!
//! Exit codes: 0 success, 1 a verification failed, 2 any other error.

mod cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, ValueEnum};
use evident_client::report::escape_terminal;
use evident_client::{CheckpointState, Client, ClientError, Release};
use evident_core::bundle::{BundleError, BundleRequest};
use evident_core::dsse::Envelope;
use evident_core::note::Verifier;
use evident_core::receipt::Receipt;
use evident_core::registry::{Change, GenesisDocument, sign_change};
use evident_core::{PublicKey, SigningKey};
use serde_json::json;

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

/// A public key given as hex or as a file holding hex.
fn public_key_arg(flag: &str, value: &str) -> anyhow::Result<String> {
    let text = if Path::new(value).is_file() {
        std::fs::read_to_string(value).with_context(|| format!("{flag}: reading {value}"))?
    } else {
        value.to_owned()
    };
    let key = PublicKey::from_hex(text.trim()).with_context(|| format!("{flag} {value:?}"))?;
    Ok(key.to_hex())
}

/// The gate: verify a bundle (fetched, or from a file) under the pinned log key and genesis,
/// then evaluate the policy locally. Exit 0 allowed, 1 denied or not verified, 2 error.
/// The release a command names: `--artifact` or `--release` (clap requires one).
fn target(artifact: &Option<String>, release: &Option<String>) -> Release {
    match (artifact, release) {
        (Some(a), _) => Release::Artifact(a.clone()),
        (None, Some(r)) => Release::Named(r.clone()),
        (None, None) => Release::Named(String::new()),
    }
}

/// Reads the pinned genesis document.
fn read_genesis(path: &Path) -> anyhow::Result<GenesisDocument> {
    serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a genesis document", path.display()))
}

/// Parses a policy argument, `NAME` or `NAME@VERSION`.
fn policy_arg(text: &str) -> anyhow::Result<(&str, Option<u64>)> {
    match text.split_once('@') {
        Some((name, v)) => {
            let version = v
                .parse::<u64>()
                .with_context(|| format!("policy version {v:?} is not a number"))?;
            Ok((name, Some(version)))
        }
        None => Ok((text, None)),
    }
}

/// The request a bundle must answer: the artifact or the release a command names.
fn asked(release: &Release) -> anyhow::Result<BundleRequest> {
    match release {
        Release::Artifact(a) => Ok(BundleRequest::artifact(a)),
        Release::Named(n) => {
            BundleRequest::release(n).ok_or_else(|| anyhow!("release {n:?} is not NAME@VERSION"))
        }
    }
}

/// The gate's decision over a verified bundle (`VerifiedBundle::decide`): what is
/// evaluated comes from the request and from release attestations by the policy's release
/// signers, never from the bundle's unsigned data. A bundle that answers another request, or
/// a release nobody trusted declared, is a verification failure (exit 1); a policy that
/// cannot be asked about a release by name is an error (exit 2).
fn decide(
    verified: &evident_core::bundle::VerifiedBundle,
    release: &Release,
    policy: &evident_core::policy::Policy,
    now: i64,
) -> anyhow::Result<evident_core::policy::Report> {
    verified
        .decide(&asked(release)?, policy, now)
        .map_err(|e| match e {
            BundleError::Policy(_) => anyhow!("{e}"),
            e => VerificationFailed(e.to_string()).into(),
        })
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

fn read_admin_keys(admins: &AdminKeys) -> anyhow::Result<Vec<SigningKey>> {
    admins
        .admin_keys
        .iter()
        .map(|p| read_signing_key(p))
        .collect()
}

/// Submits a signed envelope; verifies the receipt and advances the checkpoint state when
/// the log key is pinned.
async fn submit_signed(cli: &Cli, envelope: &Envelope) -> anyhow::Result<(Receipt, bool)> {
    let key = log_key(cli)?;
    let mut client = connect(cli).await?;
    let (receipt, duplicate) = client.submit(envelope).await?;
    if let Some(key) = &key {
        receipt
            .verify(key)
            .map_err(|e| VerificationFailed(format!("receipt: {e}")))?;
        let state_file = state_path(cli);
        let mut state = CheckpointState::load(&state_file)?;
        state.advance(&mut client, key, &receipt.checkpoint).await?;
        state.save(&state_file)?;
    }
    Ok((receipt, duplicate))
}

async fn submit_change(cli: &Cli, change: &Change, admins: &AdminKeys) -> anyhow::Result<()> {
    let keys = read_admin_keys(admins)?;
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let envelope = sign_change(change, &refs);
    let (receipt, duplicate) = submit_signed(cli, &envelope).await?;
    let verified = cli.log_key.is_some();
    let op = serde_json::to_value(change).expect("a change serializes")["op"].clone();
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "index": receipt.index, "op": op, "duplicate": duplicate,
            "leafHash": receipt.leaf_hash.to_hex(), "verified": verified,
        })),
        Format::Human => println!(
            "registry entry {}: {}{}",
            receipt.index,
            op.as_str().unwrap_or_default(),
            if duplicate {
                " (already in the log)"
            } else {
                ""
            }
        ),
    }
    Ok(())
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

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

fn require_log_key(cli: &Cli) -> anyhow::Result<Verifier> {
    log_key(cli)?.ok_or_else(|| {
        anyhow!("pin the log's verifier key with --log-key or EVIDENT_LOG_KEY (evidentd prints it at start and writes it to DATA_DIR/log.pub)")
    })
}

fn state_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.state {
        return p.clone();
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("evident").join("checkpoints.json")
}

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

/// A secret in a file (a token, a TLS key) must be readable by its owner only.
fn check_private_file(flag: &str, path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("{flag}: reading {}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{flag}: {} has mode {mode:o}; a secret must be readable by its owner only \
                 (chmod 600 {})",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value serializes")
    );
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading signing key {}", path.display()))?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            anyhow!(
                "{} is not a signing key: expected 64 hex digits (made by `evident keygen`)",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

fn format_is_human(cli: &Cli) -> bool {
    cli.format == Format::Human
}

fn time_text(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
