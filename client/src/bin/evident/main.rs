//! `evident`, the command-line client: keys, attestations, submission, and offline checks.
//!
//! Exit codes: 0 success, 1 a verification failed, 2 any other error.

mod auditor;
mod report_command;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use evident_client::report::escape_terminal;
use evident_client::{CheckpointState, Client, ClientError, Release, Selector};
use evident_core::bundle::{Bundle, BundleError, BundleRequest};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::note::{Checkpoint, Verifier};
use evident_core::receipt::Receipt;
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::{AuthError, Change, GenesisDocument, SignerKey, sign_change};
use evident_core::statement::Statement;
use evident_core::{Hash, PublicKey, SigningKey, merkle};
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
    command: Command,
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an Ed25519 signing key (FILE, mode 0600) and its public key (FILE.pub).
    Keygen {
        /// Where to write the private key.
        #[arg(long, default_value = "evident-signing.key")]
        out: PathBuf,
    },
    /// Build an in-toto Statement, sign it, and write the DSSE envelope (JSON).
    Attest {
        /// A subject as NAME=ALGORITHM:HEX, e.g. app=sha256:4f2a… (repeatable).
        #[arg(long = "subject")]
        subjects: Vec<String>,
        /// A file whose SHA-256 is a subject, named by its file name (repeatable).
        #[arg(long = "subject-file")]
        subject_files: Vec<PathBuf>,
        /// The predicate type URI.
        #[arg(long)]
        predicate_type: String,
        /// A JSON file holding the predicate object (default: `{}`).
        #[arg(long)]
        predicate: Option<PathBuf>,
        /// The signing key file (from `evident keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the envelope (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Submit DSSE envelopes (JSON files); write each receipt beside it as FILE.receipt.json.
    ///
    /// Several files are sent in batches and each gets its line (its entry, or why it
    /// failed); the command fails if any did.
    Submit {
        /// Envelope files.
        #[arg(required = true)]
        envelopes: Vec<PathBuf>,
        /// Write receipts into this folder instead.
        #[arg(long)]
        receipt_dir: Option<PathBuf>,
    },
    /// Show one entry of the log.
    Entry {
        /// The entry's index.
        #[arg(
            long,
            conflicts_with = "leaf_hash",
            required_unless_present = "leaf_hash"
        )]
        index: Option<u64>,
        /// The entry's leaf hash (hex).
        #[arg(long)]
        leaf_hash: Option<String>,
        /// Also fetch and verify its inclusion proof against the latest checkpoint.
        #[arg(long)]
        proof: bool,
    },
    /// Fetch the latest checkpoint, verify it and prove it consistent with the last one seen.
    Checkpoint,
    /// Verify a receipt offline against the pinned log key.
    VerifyReceipt {
        /// The receipt file written by `evident submit`.
        receipt: PathBuf,
    },
    /// Signers in the trust registry: who may attest what, and when.
    Signer {
        #[command(subcommand)]
        command: SignerCommand,
    },
    /// Administrators of the trust registry.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Release policies, each version an administrator-signed entry in the log.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The deploy gate: may this artifact ship under this policy? Exit 0 allowed, 1 denied,
    /// 2 could not decide.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["artifact", "release"])))]
    Verify {
        /// The artifact, ALGORITHM:HEX (e.g. sha256:4f2a…).
        #[arg(long)]
        artifact: Option<String>,
        /// Or the release, NAME@VERSION, as a release attestation declares it.
        #[arg(long)]
        release: Option<String>,
        /// The policy: NAME or NAME@VERSION (default: the latest in the bundle).
        #[arg(long)]
        policy: String,
        /// Decide from this bundle file, offline, instead of fetching one.
        #[arg(long)]
        bundle: Option<PathBuf>,
        #[command(flatten)]
        genesis: GenesisArg,
        /// Record the verdict in the ledger as a signed SLSA verification summary (the
        /// deploy record), signed with --key.
        #[arg(long, requires = "key")]
        record: bool,
        /// The signing key of the deploy job, for --record (registered for
        /// https://slsa.dev/verification_summary/v1).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Entries matching filters, from the ledger's indexes: subject, predicate type, signer,
    /// role, kind, time range, release. Combine them; page with --cursor.
    Query(auditor::QueryArgs),
    /// The releases in a period (release attestations), each with its recorded gate verdict:
    /// the population an auditor samples from.
    Releases(auditor::ReleasesArgs),
    /// Download and replay the whole log from the pinned genesis: every chain link,
    /// signature, registry and policy entry, and the root against the latest checkpoint.
    /// Exit 0 when all holds, 1 at the first problem (named by entry index).
    Audit(auditor::AuditArgs),
    /// Follow the log: verify each new checkpoint against the last one with a consistency
    /// proof, and replay the new entries. Exit 1 with an ALERT on a fork, a rollback or an
    /// invalid entry.
    Monitor(auditor::MonitorArgs),
    /// Evidence bundles: export one, or verify one offline.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// The auditor's report of a release: verify its evidence as the gate does and write
    /// evident-report.html and evident-report.md. Exit 0 written (allowed or denied), 1 the
    /// evidence does not verify, 2 error.
    Report(report_command::ReportArgs),
}

#[derive(Debug, clap::Args)]
struct GenesisArg {
    /// The log's genesis (genesis.json, written by evidentd beside log.pub): the
    /// administrators the trust registry starts from.
    #[arg(long, env = "EVIDENT_GENESIS")]
    genesis: PathBuf,
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Fetch the evidence bundle of an artifact and write it to a file.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["artifact", "release"])))]
    Export {
        /// The artifact, ALGORITHM:HEX.
        #[arg(long)]
        artifact: Option<String>,
        /// Or the release, NAME@VERSION.
        #[arg(long)]
        release: Option<String>,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the attestations as an in-toto bundle (JSON Lines, one DSSE
        /// envelope per line) [default: OUT with `.intoto.jsonl` in place of `.json`].
        #[arg(long)]
        intoto: Option<PathBuf>,
    },
    /// Verify a bundle offline and evaluate a policy over it, for the artifact or release
    /// asked: the bundle's signed manifest must say it answers exactly that.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["artifact", "release"])))]
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// The artifact to decide about, ALGORITHM:HEX.
        #[arg(long)]
        artifact: Option<String>,
        /// Or the release, NAME@VERSION, as the policy's release signers declare it.
        #[arg(long)]
        release: Option<String>,
        /// The policy: NAME or NAME@VERSION.
        #[arg(long)]
        policy: String,
        #[command(flatten)]
        genesis: GenesisArg,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check a policy document (TOML) locally, sign it and submit it as a new version.
    Submit {
        /// The policy file.
        file: PathBuf,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Show a policy version: NAME or NAME@VERSION (default: the latest).
    Show {
        /// NAME or NAME@VERSION.
        policy: String,
    },
    /// List every policy version in the log.
    List,
}

#[derive(Debug, clap::Args)]
struct AdminKeys {
    /// An administrator's signing key file (repeat to meet a threshold).
    #[arg(long = "admin-key", required = true)]
    admin_keys: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SignerCommand {
    /// Register a signer: a key and the identity it stands for.
    Add {
        /// Who holds the key, e.g. ci@payments-pipeline.
        #[arg(long)]
        identity: String,
        /// The public key (64 hex digits) or a file holding it (e.g. ci.key.pub).
        #[arg(long)]
        public_key: String,
        /// A role, e.g. ci, scanner, reviewer, release (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A predicate type the key may attest, or * for any (repeatable).
        #[arg(long = "predicate-type", required = true)]
        predicate_types: Vec<String>,
        /// RFC 3339: not valid before.
        #[arg(long)]
        not_before: Option<String>,
        /// RFC 3339: not valid from.
        #[arg(long)]
        not_after: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Give a signer a new key; the old key ends now (or at --old-key-not-after).
    Rotate {
        /// The signer.
        #[arg(long)]
        identity: String,
        /// The new public key (64 hex digits) or a file holding it.
        #[arg(long)]
        new_public_key: String,
        /// RFC 3339: when the old key stops being valid.
        #[arg(long)]
        old_key_not_after: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Revoke a signer key from a time on (default: when the change is integrated).
    Revoke {
        /// The public key (64 hex digits) or a file holding it.
        #[arg(long)]
        public_key: String,
        /// Why, for auditors.
        #[arg(long)]
        reason: String,
        /// RFC 3339: revoked from.
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// List administrators and signer keys, now, as of an entry index, or as of a time.
    List {
        /// The registry as it was before this entry.
        #[arg(long, conflicts_with = "as_of_time")]
        as_of_index: Option<u64>,
        /// RFC 3339: the registry after every entry integrated at or before this time.
        #[arg(long)]
        as_of_time: Option<String>,
    },
    /// One signer's keys and history.
    Show {
        /// The signer.
        identity: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Add an administrator.
    Add {
        /// Who holds the key.
        #[arg(long)]
        identity: String,
        /// The public key (64 hex digits) or a file holding it.
        #[arg(long)]
        public_key: String,
        /// The new threshold of administrator signatures.
        #[arg(long)]
        threshold: Option<usize>,
        #[command(flatten)]
        admins: AdminKeys,
    },
    /// Remove an administrator.
    Remove {
        /// The administrator's public key (64 hex digits) or a file holding it.
        #[arg(long)]
        public_key: String,
        /// The new threshold of administrator signatures.
        #[arg(long)]
        threshold: Option<usize>,
        #[command(flatten)]
        admins: AdminKeys,
    },
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<Denied>().is_some() {
                return ExitCode::from(1);
            }
            if let Some(alert) = e.downcast_ref::<auditor::Alert>() {
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    let format = cli.format;
    match &cli.command {
        Command::Keygen { out } => keygen(out, format),
        Command::Attest {
            subjects,
            subject_files,
            predicate_type,
            predicate,
            key,
            out,
        } => attest(
            subjects,
            subject_files,
            predicate_type,
            predicate.as_deref(),
            key,
            out.as_deref(),
        ),
        Command::Submit {
            envelopes,
            receipt_dir,
        } => submit(&cli, envelopes, receipt_dir.as_deref()).await,
        Command::Entry {
            index,
            leaf_hash,
            proof,
        } => entry(&cli, *index, leaf_hash.as_deref(), *proof).await,
        Command::Checkpoint => checkpoint(&cli).await,
        Command::VerifyReceipt { receipt } => verify_receipt(&cli, receipt),
        Command::Signer { command } => signer(&cli, command).await,
        Command::Admin { command } => admin(&cli, command).await,
        Command::Policy { command } => policy(&cli, command).await,
        Command::Verify {
            artifact,
            release,
            policy,
            bundle,
            genesis,
            record,
            key,
        } => {
            let record_with = if *record { key.as_deref() } else { None };
            gate(
                &cli,
                &target(artifact, release),
                policy,
                bundle.as_deref(),
                &genesis.genesis,
                record_with,
            )
            .await
        }
        Command::Report(args) => report_command::report(&cli, args).await,
        Command::Query(args) => auditor::query(&cli, args).await,
        Command::Releases(args) => auditor::releases(&cli, args).await,
        Command::Audit(args) => auditor::audit(&cli, args).await,
        Command::Monitor(args) => auditor::monitor(&cli, args).await,
        Command::Bundle { command } => match command {
            BundleCommand::Export {
                artifact,
                release,
                out,
                intoto,
            } => export_bundle(&cli, &target(artifact, release), out, intoto.as_deref()).await,
            BundleCommand::Verify {
                file,
                artifact,
                release,
                policy,
                genesis,
            } => {
                let release = target(artifact, release);
                gate(&cli, &release, policy, Some(file), &genesis.genesis, None).await
            }
        },
    }
}

/// `evident bundle export`: the evidence bundle of a release or artifact, and its
/// attestations in the in-toto bundle form (`.intoto.jsonl`) for other tools. With a pinned
/// log key, the bundle's checkpoint is verified and proven consistent with the last one seen.
async fn export_bundle(
    cli: &Cli,
    release: &Release,
    out: &Path,
    intoto: Option<&Path>,
) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let bundle = client.release_bundle(release).await?;
    let verified = match log_key(cli)? {
        Some(key) => {
            let file = state_path(cli);
            let mut state = CheckpointState::load(&file)?;
            let checkpoint = state.advance(&mut client, &key, &bundle.checkpoint).await?;
            state.save(&file)?;
            format!("the checkpoint of {} entries", checkpoint.size)
        }
        None => "the bundle's checkpoint (not checked: no log key pinned)".to_owned(),
    };
    let mut lines = String::new();
    let mut attestations = 0;
    for entry in &bundle.entries {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&entry.leaf_record)
            .context("the server's bundle holds a leaf record that is not base64")?;
        let record = LeafRecord::decode(&bytes)
            .map_err(|e| anyhow!("the server's bundle holds a bad leaf record: {e}"))?;
        if record.kind() == EntryKind::Attestation {
            lines.push_str(&record.envelope().to_json());
            lines.push('\n');
            attestations += 1;
        }
    }
    let intoto = intoto.map(Path::to_path_buf).unwrap_or_else(|| {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        out.with_file_name(format!("{stem}.intoto.jsonl"))
    });
    std::fs::write(out, bundle.to_json() + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&intoto, lines).with_context(|| format!("writing {}", intoto.display()))?;
    println!(
        "{}: {} entries proven at {verified}",
        out.display(),
        bundle.entries.len(),
    );
    println!(
        "{}: {attestations} attestation envelopes (in-toto bundle)",
        intoto.display()
    );
    Ok(())
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

async fn signer(cli: &Cli, command: &SignerCommand) -> anyhow::Result<()> {
    let (change, admins) = match command {
        SignerCommand::Add {
            identity,
            public_key,
            roles,
            predicate_types,
            not_before,
            not_after,
            admins,
        } => (
            Change::AddSigner {
                identity: identity.clone(),
                public_key: public_key_arg("--public-key", public_key)?,
                roles: roles.clone(),
                predicate_types: predicate_types.clone(),
                not_before: not_before.clone(),
                not_after: not_after.clone(),
            },
            admins,
        ),
        SignerCommand::Rotate {
            identity,
            new_public_key,
            old_key_not_after,
            admins,
        } => (
            Change::RotateSigner {
                identity: identity.clone(),
                new_public_key: public_key_arg("--new-public-key", new_public_key)?,
                old_key_not_after: old_key_not_after.clone(),
            },
            admins,
        ),
        SignerCommand::Revoke {
            public_key,
            reason,
            from,
            admins,
        } => (
            Change::RevokeKey {
                public_key: public_key_arg("--public-key", public_key)?,
                from: from.clone(),
                reason: reason.clone(),
            },
            admins,
        ),
        SignerCommand::List {
            as_of_index,
            as_of_time,
        } => return list_signers(cli, *as_of_index, as_of_time.as_deref()).await,
        SignerCommand::Show { identity } => return show_signer(cli, identity).await,
    };
    submit_change(cli, &change, admins).await
}

async fn admin(cli: &Cli, command: &AdminCommand) -> anyhow::Result<()> {
    let (change, admins) = match command {
        AdminCommand::Add {
            identity,
            public_key,
            threshold,
            admins,
        } => (
            Change::AddAdmin {
                identity: identity.clone(),
                public_key: public_key_arg("--public-key", public_key)?,
                threshold: *threshold,
            },
            admins,
        ),
        AdminCommand::Remove {
            public_key,
            threshold,
            admins,
        } => (
            Change::RemoveAdmin {
                public_key: public_key_arg("--public-key", public_key)?,
                threshold: *threshold,
            },
            admins,
        ),
    };
    submit_change(cli, &change, admins).await
}

async fn policy(cli: &Cli, command: &PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Submit { file, admins } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Refuse locally what the ledger would refuse, with the same line numbers.
            let policy = evident_core::policy::Policy::parse(&text)
                .with_context(|| format!("{}", file.display()))?;
            let keys = read_admin_keys(admins)?;
            let refs: Vec<&SigningKey> = keys.iter().collect();
            let envelope = Envelope::sign(
                evident_core::policy::POLICY_PAYLOAD_TYPE,
                text.into_bytes(),
                &refs,
            );
            let (receipt, _) = submit_signed(cli, &envelope).await?;
            match cli.format {
                Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
                    "index": receipt.index, "policy": policy.name, "version": policy.version,
                    "leafHash": receipt.leaf_hash.to_hex(),
                })),
                Format::Human => println!(
                    "policy {}@{} is entry {}",
                    policy.name, policy.version, receipt.index
                ),
            }
            Ok(())
        }
        PolicyCommand::Show { policy } => {
            let (name, version) = match policy.split_once('@') {
                Some((n, v)) => (
                    n,
                    Some(
                        v.parse::<u64>()
                            .with_context(|| format!("version {v:?} is not a number"))?,
                    ),
                ),
                None => (policy.as_str(), None),
            };
            let mut client = connect(cli).await?;
            let doc = client.get_policy(name, version).await?;
            match cli.format {
                Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
                    "name": doc.name, "version": doc.version, "index": doc.index,
                    "integratedTime": time_text(doc.integrated_time_nanos),
                    "signedBy": doc.signed_by, "document": doc.document,
                })),
                Format::Human => {
                    println!(
                        "# policy {}@{}: entry {}, integrated {}, signed by {}",
                        escape_terminal(&doc.name),
                        doc.version,
                        doc.index,
                        time_text(doc.integrated_time_nanos),
                        escape_terminal(&doc.signed_by.join(", "))
                    );
                    // Line by line, so the document keeps its lines and nothing else
                    // reaches the terminal unescaped.
                    for line in doc.document.lines() {
                        println!("{}", escape_terminal(line));
                    }
                }
            }
            Ok(())
        }
        PolicyCommand::List => {
            let mut client = connect(cli).await?;
            let list = client.list_policies().await?;
            match cli.format {
                Format::Json | Format::Jsonl | Format::Csv => print_json(&json!(
                    list.iter()
                        .map(|(n, v, i)| json!({"name": n, "version": v, "index": i}))
                        .collect::<Vec<_>>()
                )),
                Format::Human => {
                    for (n, v, i) in &list {
                        println!("{}@{v}  entry {i}", escape_terminal(n));
                    }
                }
            }
            Ok(())
        }
    }
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

async fn gate(
    cli: &Cli,
    release: &Release,
    policy: &str,
    bundle_file: Option<&Path>,
    genesis_file: &Path,
    record_with: Option<&Path>,
) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let genesis = read_genesis(genesis_file)?;
    let (name, version) = policy_arg(policy)?;
    let state_file = state_path(cli);
    let mut state = CheckpointState::load(&state_file)?;
    let bundle = match bundle_file {
        Some(path) => Bundle::from_json(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => {
            let mut client = connect(cli).await?;
            let bundle = client.release_bundle(release).await?;
            // Online: the bundle's checkpoint must extend every checkpoint seen before.
            state.advance(&mut client, &key, &bundle.checkpoint).await?;
            state.save(&state_file)?;
            bundle
        }
    };
    let verified = bundle
        .verify(&key, &genesis)
        .map_err(|e| VerificationFailed(e.to_string()))?;
    // Offline, a bundle can still be compared with the checkpoints seen before.
    if let Some(seen) = state.last(&key)? {
        // An older bundle hides whatever was logged since (a request for changes, a failing
        // scan, a revocation, a stricter policy version): refused, as online.
        if seen.size > verified.checkpoint().size {
            return Err(VerificationFailed(format!(
                "the bundle's checkpoint of {} entries is older than the checkpoint of {} \
                 entries this machine verified before: fetch a current bundle",
                verified.checkpoint().size,
                seen.size
            ))
            .into());
        }
        if seen.size == verified.checkpoint().size && seen.root != verified.checkpoint().root {
            return Err(VerificationFailed(format!(
                "fork: the bundle's checkpoint of {} entries has another root than the one seen before",
                seen.size
            ))
            .into());
        }
    }
    let policy = verified.policy(name, version).map_err(|e| anyhow!("{e}"))?;
    let report = decide(&verified, release, policy, now_nanos())?;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => {
            print_json(&serde_json::to_value(&report).expect("a report serializes"))
        }
        Format::Human => {
            for c in &report.controls {
                let status = match c.status {
                    evident_core::policy::Status::Pass => "PASS   ",
                    evident_core::policy::Status::Fail => "FAIL   ",
                    evident_core::policy::Status::Missing => "MISSING",
                };
                let entries: Vec<String> = c.entries.iter().map(|e| e.index.to_string()).collect();
                // Reasons quote attestation fields: escaped, never raw terminal control.
                println!(
                    "{status} {}: {} [entries {}]",
                    escape_terminal(&c.id),
                    escape_terminal(&c.reason),
                    entries.join(", ")
                );
            }
            println!(
                "{} {} under {} (checkpoint of {} entries)",
                if report.allowed { "ALLOWED" } else { "DENIED" },
                escape_terminal(&report.artifacts.join(", ")),
                escape_terminal(&report.policy),
                verified.checkpoint().size
            );
        }
    }
    if let Some(key_file) = record_with {
        match record_verdict(cli, &report, policy, verified.checkpoint(), key_file).await {
            Ok(index) if cli.format == Format::Human => {
                println!("verdict recorded as entry {index}")
            }
            Ok(_) => {}
            // A denial stays a denial (exit 1) even when recording it failed.
            Err(e) if !report.allowed => eprintln!("evident: recording the verdict failed: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    if !report.allowed {
        return Err(Denied.into());
    }
    Ok(())
}

/// Submits the gate's verdict as an SLSA verification summary about the artifacts: the
/// deploy record auditors find next to the evidence it was based on.
async fn record_verdict(
    cli: &Cli,
    report: &evident_core::policy::Report,
    policy: &evident_core::policy::Policy,
    checkpoint: &Checkpoint,
    key_file: &Path,
) -> anyhow::Result<u64> {
    let key = read_signing_key(key_file)?;
    let subjects: Vec<serde_json::Value> = report
        .artifacts
        .iter()
        .filter_map(|a| a.split_once(':'))
        .map(|(alg, hex)| json!({"digest": {alg: hex}}))
        .collect();
    let statement = json!({
        "_type": evident_core::statement::STATEMENT_V1_TYPE,
        "subject": subjects,
        "predicateType": evident_core::predicates::VERIFICATION_SUMMARY_V1,
        "predicate": {
            "verifier": {"id": format!("evident/{}", env!("CARGO_PKG_VERSION"))},
            "timeVerified": time_text(now_nanos()),
            "resourceUri": report.artifacts.first().cloned().unwrap_or_default(),
            "policy": {
                "uri": format!("evident:policy/{}", report.policy),
                "digest": {"sha256": Hash::sha256(policy.source.as_bytes()).to_hex()},
            },
            "verificationResult": if report.allowed { "PASSED" } else { "FAILED" },
            "verifiedLevels": [],
            "evident": {
                "checkpoint": {"origin": checkpoint.origin, "treeSize": checkpoint.size, "rootHash": checkpoint.root.to_hex()},
                "controls": report.controls,
            },
        },
    });
    let payload = serde_json::to_vec(&statement).expect("a JSON value serializes");
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key]);
    let (receipt, _) = submit_signed(cli, &envelope)
        .await
        .context("recording the verdict")?;
    Ok(receipt.index)
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

fn key_status(k: &SignerKey, now: i64) -> String {
    match k.check(evident_core::registry::ANY_PREDICATE, now) {
        Ok(()) => "valid".into(),
        Err(AuthError::PredicateType { .. }) => "valid".into(),
        Err(AuthError::Revoked { at, reason, .. }) => format!("revoked from {at}: {reason}"),
        Err(AuthError::Expired { at, .. }) => format!("expired at {at}"),
        Err(AuthError::NotYetValid { at, .. }) => format!("valid from {at}"),
        Err(other) => other.to_string(),
    }
}

fn signer_json(k: &SignerKey, now: i64) -> serde_json::Value {
    json!({
        "identity": k.identity, "publicKey": k.key.to_hex(), "keyId": k.key.key_id(),
        "roles": k.roles, "predicateTypes": k.predicate_types,
        "notBefore": k.not_before.map(time_text), "notAfter": k.not_after.map(time_text),
        "revokedFrom": k.revoked.as_ref().map(|(t, _)| time_text(*t)),
        "revokedReason": k.revoked.as_ref().map(|(_, r)| r.clone()),
        "addedAtIndex": k.added_at, "status": key_status(k, now),
    })
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

async fn list_signers(
    cli: &Cli,
    as_of_index: Option<u64>,
    as_of_time: Option<&str>,
) -> anyhow::Result<()> {
    let time = as_of_time
        .map(|t| evident_core::registry::parse_time("--as-of-time", t))
        .transpose()?;
    let mut client = connect(cli).await?;
    let listing = client.list_signers_at(as_of_index, time).await?;
    // Key status is shown at the time asked about.
    let now = time.unwrap_or_else(now_nanos);
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "asOfIndex": listing.as_of_index,
            "threshold": listing.threshold,
            "admins": listing.admins.iter().map(|a| json!({"identity": a.identity, "publicKey": a.key.to_hex()})).collect::<Vec<_>>(),
            "signers": listing.signers.iter().map(|k| signer_json(k, now)).collect::<Vec<_>>(),
        })),
        Format::Human => {
            println!(
                "registry after {} entries; administrators ({} must sign):",
                listing.as_of_index, listing.threshold
            );
            for a in &listing.admins {
                println!(
                    "  {}  {}",
                    escape_terminal(&a.identity),
                    &a.key.key_id()[..16]
                );
            }
            println!("signer keys:");
            for k in &listing.signers {
                println!(
                    "  {}  {}  roles [{}]  predicates [{}]  {}",
                    escape_terminal(&k.identity),
                    &k.key.key_id()[..16],
                    escape_terminal(&k.roles.iter().cloned().collect::<Vec<_>>().join(", ")),
                    escape_terminal(
                        &k.predicate_types
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    escape_terminal(&key_status(k, now))
                );
            }
        }
    }
    Ok(())
}

async fn show_signer(cli: &Cli, identity: &str) -> anyhow::Result<()> {
    let mut client = connect(cli).await?;
    let history = client.signer_history(identity).await?;
    let now = now_nanos();
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "identity": identity,
            "keys": history.keys.iter().map(|k| signer_json(k, now)).collect::<Vec<_>>(),
            "history": history.events.iter().map(|e| json!({
                "index": e.index, "integratedTime": time_text(e.time), "summary": e.summary,
            })).collect::<Vec<_>>(),
        })),
        Format::Human => {
            println!("{}", escape_terminal(identity));
            for k in &history.keys {
                println!(
                    "  key {}  {}",
                    &k.key.key_id()[..16],
                    escape_terminal(&key_status(k, now))
                );
            }
            for e in &history.events {
                println!(
                    "  entry {} at {}: {}",
                    e.index,
                    time_text(e.time),
                    escape_terminal(&e.summary)
                );
            }
        }
    }
    Ok(())
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

fn keygen(out: &Path, format: Format) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    let public = PublicKey::from_signing_key(&key);
    write_secret(out, &format!("{}\n", hex::encode(seed)))
        .with_context(|| format!("writing {}", out.display()))?;
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&pub_path, format!("{}\n", public.to_hex()))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    match format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "privateKey": out, "publicKeyFile": pub_path,
            "publicKey": public.to_hex(), "keyId": public.key_id(),
        })),
        Format::Human => {
            println!("private key: {} (mode 0600)", out.display());
            println!("public key:  {}", public.to_hex());
            println!("written to:  {}", pub_path.display());
        }
    }
    Ok(())
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

fn attest(
    subjects: &[String],
    subject_files: &[PathBuf],
    predicate_type: &str,
    predicate: Option<&Path>,
    key: &Path,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut list = Vec::new();
    for s in subjects {
        let (name, digest) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--subject {s:?}: expected NAME=ALGORITHM:HEX"))?;
        let (alg, value) = digest
            .split_once(':')
            .ok_or_else(|| anyhow!("--subject {s:?}: expected NAME=ALGORITHM:HEX"))?;
        list.push(json!({"name": name, "digest": {alg: value}}));
    }
    for path in subject_files {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading subject {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        list.push(json!({"name": name, "digest": {"sha256": Hash::sha256(&bytes).to_hex()}}));
    }
    if list.is_empty() {
        bail!("name at least one subject with --subject or --subject-file");
    }
    let predicate: serde_json::Value = match predicate {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("reading predicate {}", path.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("predicate {} is not JSON", path.display()))?
        }
        None => json!({}),
    };
    let statement = json!({
        "_type": evident_core::statement::STATEMENT_V1_TYPE,
        "subject": list,
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let payload = serde_json::to_vec(&statement).expect("a JSON value serializes");
    // Refuse to sign what the ledger would refuse.
    Statement::from_json(&payload).context("the statement is not valid")?;
    let key = read_signing_key(key)?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key]);
    let text = envelope.to_json();
    match out {
        Some(path) => std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

async fn submit(cli: &Cli, files: &[PathBuf], receipt_dir: Option<&Path>) -> anyhow::Result<()> {
    // Read and decode everything first: a bad file stops before anything is sent.
    let mut envelopes = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let envelope =
            Envelope::from_json(&bytes).with_context(|| format!("{}", path.display()))?;
        envelopes.push((path.as_path(), envelope));
    }
    let key = log_key(cli)?;
    let state_file = state_path(cli);
    let mut state = CheckpointState::load(&state_file)?;
    let mut client = connect(cli).await?;
    let mut results = Vec::new();
    let mut submitted = Submitted {
        cli,
        key: key.as_ref(),
        receipt_dir,
        state: &mut state,
        client: &mut client,
        seen: None,
    };
    let mut failed = (0, false);
    if let [(path, envelope)] = envelopes.as_slice() {
        // One file: its error is the command's.
        let (receipt, duplicate) = submitted
            .client
            .submit(envelope)
            .await
            .with_context(|| format!("submitting {}", path.display()))?;
        results.push(submitted.finish(path, envelope, receipt, duplicate).await?);
    } else {
        // Many: in batches, one line per file, and every file is answered.
        for batch in batches(&envelopes) {
            let sent: Vec<Envelope> = batch.iter().map(|(_, e)| e.clone()).collect();
            let answers = match submitted.client.submit_batch(&sent).await {
                Ok(answers) => answers,
                Err(refused) => {
                    let text = refused.to_string();
                    sent.iter()
                        .map(|_| {
                            Err(ClientError::Status {
                                code: tonic::Code::Unknown,
                                message: text.clone(),
                            })
                        })
                        .collect()
                }
            };
            // The answers of a batch carry checkpoints in the order the log signed them,
            // not the files' order: the state advances through them by tree size.
            submitted.seen = Some(Vec::new());
            for ((path, envelope), answer) in batch.iter().zip(answers) {
                let outcome = match answer {
                    Ok((receipt, duplicate)) => {
                        submitted.finish(path, envelope, receipt, duplicate).await
                    }
                    Err(refused) => Err(anyhow::Error::from(refused)),
                };
                match outcome {
                    Ok(result) => results.push(result),
                    Err(e) => {
                        failed.0 += 1;
                        failed.1 |= e.downcast_ref::<VerificationFailed>().is_some()
                            || e.downcast_ref::<ClientError>()
                                .is_some_and(ClientError::is_verification_failure);
                        let message = format!("{e:#}");
                        let text: Vec<_> = message.lines().map(escape_terminal).collect();
                        let text = text.join(" ");
                        if format_is_human(cli) {
                            println!("{}: failed: {text}", path.display());
                        }
                        results.push(json!({"envelope": path, "error": format!("{e:#}")}));
                    }
                }
            }
            let mut seen = submitted.seen.take().unwrap_or_default();
            seen.sort();
            seen.dedup_by_key(|(size, _)| *size);
            if let Some(key) = key.as_ref() {
                for (_, note) in seen {
                    submitted
                        .state
                        .advance(submitted.client, key, &note)
                        .await?;
                }
            }
        }
    }
    if key.is_some() {
        state.save(&state_file)?;
    }
    if !format_is_human(cli) {
        print_json(&serde_json::Value::Array(results));
    }
    match failed {
        (0, _) => Ok(()),
        (n, true) => {
            Err(VerificationFailed(format!("{n} of {} envelopes failed", files.len())).into())
        }
        (n, false) => Err(anyhow::anyhow!("{n} of {} envelopes failed", files.len())),
    }
}

/// The envelopes of `evident submit` in batches the server accepts: at most
/// [`evident_client::MAX_ENVELOPES_PER_REQUEST`] envelopes and about 3 MiB each.
fn batches<'a>(envelopes: &'a [(&'a Path, Envelope)]) -> Vec<&'a [(&'a Path, Envelope)]> {
    const BATCH_BYTES: usize = 3 << 20;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, envelope)) in envelopes.iter().enumerate() {
        let size = evident_core::record::encoded_envelope_len(envelope);
        if i > start
            && (i - start == evident_client::MAX_ENVELOPES_PER_REQUEST
                || bytes + size > BATCH_BYTES)
        {
            out.push(&envelopes[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < envelopes.len() {
        out.push(&envelopes[start..]);
    }
    out
}

/// What `evident submit` does with each receipt.
struct Submitted<'a> {
    cli: &'a Cli,
    key: Option<&'a Verifier>,
    receipt_dir: Option<&'a Path>,
    state: &'a mut CheckpointState,
    client: &'a mut Client,
    /// When set, receipts do not advance the checkpoint state one by one: their
    /// checkpoints (tree size and note) are kept here, to advance through in size order.
    seen: Option<Vec<(u64, String)>>,
}

impl Submitted<'_> {
    /// Checks a receipt for `envelope` (from `path`), verifies it when the log key is
    /// pinned, writes it beside the file (or into the receipt folder) and prints its line.
    async fn finish(
        &mut self,
        path: &Path,
        envelope: &Envelope,
        receipt: Receipt,
        duplicate: bool,
    ) -> anyhow::Result<serde_json::Value> {
        // A duplicate is answered with the entry already logged: it must be ours, signed by
        // our signatures, or the gate will not find our evidence.
        if let Some(missing) = envelope
            .signatures
            .iter()
            .position(|own| !receipt.envelope.signatures.iter().any(|s| s.sig == own.sig))
        {
            return Err(VerificationFailed(format!(
                "{}: the log answered with entry {} as a duplicate, but the logged envelope \
                 does not carry this envelope's signature {missing}: it is not your evidence; \
                 do not rely on it",
                path.display(),
                receipt.index
            ))
            .into());
        }
        let verified = match self.key {
            Some(key) => {
                receipt
                    .verify(key)
                    .map_err(|e| VerificationFailed(format!("{}: receipt: {e}", path.display())))?;
                match &mut self.seen {
                    Some(seen) => seen.push((receipt.tree_size, receipt.checkpoint.clone())),
                    None => {
                        self.state
                            .advance(self.client, key, &receipt.checkpoint)
                            .await?;
                    }
                }
                true
            }
            None => false,
        };
        let receipt_path = match self.receipt_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                dir.join(format!(
                    "{}.receipt.json",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ))
            }
            None => PathBuf::from(format!("{}.receipt.json", path.display())),
        };
        std::fs::write(&receipt_path, receipt.to_json())
            .with_context(|| format!("writing {}", receipt_path.display()))?;
        if format_is_human(self.cli) {
            println!(
                "{}: entry {}{}, leaf hash {}, receipt {}{}",
                path.display(),
                receipt.index,
                if duplicate {
                    " (already in the log)"
                } else {
                    ""
                },
                receipt.leaf_hash,
                receipt_path.display(),
                if verified {
                    ", verified"
                } else {
                    ", not verified (no --log-key)"
                }
            );
        }
        Ok(json!({
            "envelope": path, "index": receipt.index, "duplicate": duplicate,
            "leafHash": receipt.leaf_hash.to_hex(), "treeSize": receipt.tree_size,
            "receipt": receipt_path, "verified": verified,
        }))
    }
}

fn format_is_human(cli: &Cli) -> bool {
    cli.format == Format::Human
}

fn time_text(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

async fn entry(
    cli: &Cli,
    index: Option<u64>,
    leaf_hash: Option<&str>,
    proof: bool,
) -> anyhow::Result<()> {
    let selector = match (index, leaf_hash) {
        (Some(i), _) => Selector::Index(i),
        (None, Some(h)) => Selector::LeafHash(Hash::from_hex(h).context("--leaf-hash")?),
        (None, None) => bail!("name the entry with --index or --leaf-hash"),
    };
    let key = if proof {
        Some(require_log_key(cli)?)
    } else {
        None
    };
    let state_file = state_path(cli);
    // Read the state before asking the server, so a newer checkpoint saved meanwhile by
    // another process cannot look like a rollback.
    let mut state = CheckpointState::load(&state_file)?;
    let mut client = connect(cli).await?;
    let entry = client.entry(selector, proof.then_some(0)).await?;
    let mut proven = None;
    if let Some(key) = &key {
        let (size, hashes) = entry
            .proof
            .clone()
            .ok_or_else(|| anyhow!("the server sent no inclusion proof"))?;
        let note = entry
            .checkpoint
            .clone()
            .ok_or_else(|| anyhow!("the server sent no checkpoint with the proof"))?;
        let checkpoint = state.advance(&mut client, key, &note).await?;
        if checkpoint.size != size {
            return Err(VerificationFailed(format!(
                "the proof is for tree size {size}, the checkpoint for {}",
                checkpoint.size
            ))
            .into());
        }
        merkle::verify_inclusion(
            entry.record.index(),
            size,
            &entry.leaf_hash,
            &hashes,
            &checkpoint.root,
        )
        .map_err(|e| VerificationFailed(format!("inclusion proof: {e}")))?;
        state.save(&state_file)?;
        proven = Some(size);
    }
    let record = &entry.record;
    let statement = Statement::from_envelope(record.envelope()).ok();
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "index": record.index(),
            "integratedTime": time_text(record.integrated_time_nanos()),
            "integratedTimeNanos": record.integrated_time_nanos(),
            "kind": record.kind().as_str(),
            "leafHash": entry.leaf_hash.to_hex(),
            "previousLeafHash": record.previous_leaf_hash().to_hex(),
            "predicateType": statement.as_ref().map(|s| s.predicate_type.clone()),
            "envelope": serde_json::from_str::<serde_json::Value>(&record.envelope().to_json()).expect("envelope JSON"),
            "inclusionProvenAtTreeSize": proven,
        })),
        Format::Human => {
            println!("entry {} ({})", record.index(), record.kind());
            println!(
                "integrated:    {}",
                time_text(record.integrated_time_nanos())
            );
            println!("leaf hash:     {}", entry.leaf_hash);
            println!("previous hash: {}", record.previous_leaf_hash());
            if let Some(s) = &statement {
                println!("predicate:     {}", escape_terminal(&s.predicate_type));
                for subject in &s.subjects {
                    let digests: Vec<String> = subject
                        .digests
                        .iter()
                        .map(|(a, v)| format!("{a}:{v}"))
                        .collect();
                    println!(
                        "subject:       {} {}",
                        escape_terminal(&subject.name),
                        escape_terminal(&digests.join(" "))
                    );
                }
            }
            if let Some(size) = proven {
                println!("included:      verified in the signed tree of {size} entries");
            }
        }
    }
    Ok(())
}

async fn checkpoint(cli: &Cli) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let mut client = connect(cli).await?;
    let note = client.checkpoint().await?;
    let state_file = state_path(cli);
    let mut state = CheckpointState::load(&state_file)?;
    let previous = state.last(&key)?.map(|c| c.size);
    let checkpoint = state.advance(&mut client, &key, &note).await?;
    state.save(&state_file)?;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "origin": checkpoint.origin, "treeSize": checkpoint.size,
            "rootHash": checkpoint.root.to_hex(), "previousTreeSize": previous,
            "note": note,
        })),
        Format::Human => {
            println!("origin:    {}", escape_terminal(&checkpoint.origin));
            println!("tree size: {}", checkpoint.size);
            println!("root hash: {}", checkpoint.root);
            match previous {
                Some(p) => println!("consistent with the checkpoint of {p} entries seen before"),
                None => println!(
                    "first checkpoint seen from this log; remembered in {}",
                    state_file.display()
                ),
            }
        }
    }
    Ok(())
}

fn verify_receipt(cli: &Cli, path: &Path) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let receipt = Receipt::from_json(&bytes).with_context(|| format!("{}", path.display()))?;
    let verified = receipt
        .verify(&key)
        .map_err(|e| VerificationFailed(format!("{}: {e}", path.display())))?;
    // Offline, a receipt can still be compared with a checkpoint of the same size seen before.
    let state = CheckpointState::load(&state_path(cli))?;
    if let Some(seen) = state.last(&key)? {
        if seen.size == verified.checkpoint.size && seen.root != verified.checkpoint.root {
            return Err(VerificationFailed(format!(
                "fork: the receipt's checkpoint of {} entries has root {}, the one seen before has {}",
                seen.size, verified.checkpoint.root, seen.root
            ))
            .into());
        }
    }
    let statement = Statement::from_envelope(&receipt.envelope).ok();
    let cp: &Checkpoint = &verified.checkpoint;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&json!({
            "verified": true, "index": receipt.index,
            "integratedTime": time_text(receipt.integrated_time_nanos),
            "leafHash": receipt.leaf_hash.to_hex(), "treeSize": cp.size,
            "rootHash": cp.root.to_hex(), "origin": cp.origin,
            "predicateType": statement.map(|s| s.predicate_type),
        })),
        Format::Human => println!(
            "verified: entry {} of {} ({}), integrated {}, included in the signed tree of {} entries",
            receipt.index,
            cp.origin,
            statement
                .map(|s| s.predicate_type)
                .unwrap_or_else(|| receipt.kind.to_string()),
            time_text(receipt.integrated_time_nanos),
            cp.size
        ),
    }
    Ok(())
}
