//! The `evident` commands, one module each: its flags (a clap struct or subcommand enum)
//! and `run`, which calls the `evident-client` library and prints the result.

pub(crate) mod admin;
pub(crate) mod attest;
pub(crate) mod auditor;
pub(crate) mod bundle;
pub(crate) mod checkpoint;
pub(crate) mod entry;
pub(crate) mod keygen;
pub(crate) mod policy;
pub(crate) mod report;
pub(crate) mod signer;
pub(crate) mod submit;
pub(crate) mod verify;
pub(crate) mod verify_receipt;

use clap::Subcommand;

use crate::Cli;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an Ed25519 signing key (FILE, mode 0600) and its public key (FILE.pub).
    Keygen(keygen::Args),
    /// Build an in-toto Statement, sign it, and write the DSSE envelope (JSON).
    Attest(attest::Args),
    /// Submit DSSE envelopes (JSON files); write each receipt beside it as FILE.receipt.json.
    ///
    /// Several files are sent in batches and each gets its line (its entry, or why it
    /// failed); the command fails if any did.
    Submit(submit::Args),
    /// Show one entry of the log.
    Entry(entry::Args),
    /// Fetch the latest checkpoint, verify it and prove it consistent with the last one seen.
    Checkpoint,
    /// Verify a receipt offline against the pinned log key.
    VerifyReceipt(verify_receipt::Args),
    /// Signers in the trust registry: who may attest what, and when.
    Signer {
        #[command(subcommand)]
        command: signer::SignerCommand,
    },
    /// Administrators of the trust registry.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Release policies, each version an administrator-signed entry in the log.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// The deploy gate: may this artifact ship under this policy? Exit 0 allowed, 1 denied,
    /// 2 could not decide.
    Verify(verify::Args),
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
    /// The auditor's report of a release: verify its evidence as the gate does and write
    /// evident-report.html and evident-report.md. Exit 0 written (allowed or denied), 1 the
    /// evidence does not verify, 2 error.
    Report(report::ReportArgs),
    /// Evidence bundles: export one, or verify one offline.
    Bundle {
        #[command(subcommand)]
        command: bundle::BundleCommand,
    },
}

/// Runs the command `cli` names.
pub(crate) async fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Keygen(args) => keygen::run(cli, args).await,
        Command::Attest(args) => attest::run(cli, args).await,
        Command::Submit(args) => submit::run(cli, args).await,
        Command::Entry(args) => entry::run(cli, args).await,
        Command::Checkpoint => checkpoint::run(cli).await,
        Command::VerifyReceipt(args) => verify_receipt::run(cli, args).await,
        Command::Signer { command } => signer::run(cli, command).await,
        Command::Admin { command } => admin::run(cli, command).await,
        Command::Policy { command } => policy::run(cli, command).await,
        Command::Verify(args) => verify::run(cli, args).await,
        Command::Query(args) => auditor::query(cli, args).await,
        Command::Releases(args) => auditor::releases(cli, args).await,
        Command::Audit(args) => auditor::audit(cli, args).await,
        Command::Monitor(args) => auditor::monitor(cli, args).await,
        Command::Report(args) => report::report(cli, args).await,
        Command::Bundle { command } => bundle::run(cli, command).await,
    }
}
