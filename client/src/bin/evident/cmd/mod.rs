//! The `evident` commands, one module each: its flags (a clap struct or subcommand enum)
//! and `run`, which calls the `evident-client` library and prints the result.

pub(crate) mod admin;
pub(crate) mod attest;
pub(crate) mod auditor;
pub(crate) mod bundle;
pub(crate) mod checkpoint;
pub(crate) mod entry;
pub(crate) mod frameworks;
pub(crate) mod gate;
pub(crate) mod keygen;
pub(crate) mod policy;
pub(crate) mod receipt;
pub(crate) mod report;
pub(crate) mod signer;
pub(crate) mod sigstore;
pub(crate) mod submit;

use anyhow::Context as _;
use clap::Subcommand;

use crate::{Cli, Connection, Format, LogArgs};

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
    /// The framework catalogue (SOC 2, PCI DSS, NIST SP 800-53, SSDF, ISO/IEC 27001
    /// controls), and what a policy's controls evidence; offline.
    Frameworks(frameworks::Args),
    /// Fetch the latest checkpoint, verify it and prove it consistent with the last one seen.
    Checkpoint(checkpoint::Args),
    /// Receipts: verify one offline against the pinned log key, or export it as a portable
    /// proof (C2SP tlog-proof).
    Receipt {
        #[command(subcommand)]
        command: receipt::ReceiptCommand,
    },
    /// The old name of `receipt verify`, kept for one release.
    #[command(hide = true)]
    VerifyReceipt(receipt::Args),
    /// Signers in the trust registry: who may attest what, and when.
    Signer {
        #[command(subcommand)]
        command: signer::SignerCommand,
        #[command(flatten)]
        flags: GroupFlags,
    },
    /// Sigstore instances keyless signers' certificates may chain to (trusted roots).
    Sigstore {
        #[command(subcommand)]
        command: sigstore::SigstoreCommand,
        #[command(flatten)]
        flags: GroupFlags,
    },
    /// Administrators of the trust registry.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        #[command(flatten)]
        flags: GroupFlags,
    },
    /// Release policies, each version an administrator-signed entry in the log.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
        #[command(flatten)]
        flags: GroupFlags,
    },
    /// The deploy gate: may this artifact ship under this policy? Exit 0 allowed, 1 denied,
    /// 2 could not decide.
    ///
    /// (`evident verify`, its old name, is accepted for one release.)
    #[command(alias = "verify")]
    Gate(gate::Args),
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
    /// Print a shell completion script (e.g. `evident completion bash >
    /// /etc/bash_completion.d/evident`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The flags of the command groups that change or read the ledger's registry and policies
/// (`signer`, `admin`, `policy`): declared once, and `global`, so they may come before or
/// after the subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct GroupFlags {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    output: crate::DocOutput,
}

impl Command {
    /// The flags the helpers of main.rs need: connection (for a command that connects),
    /// log key and state, and output format.
    pub(crate) fn context(&self) -> Cli {
        use bundle::BundleCommand as B;
        let none = (None, None, Format::Human);
        let (connection, log, format): (Option<&Connection>, Option<&LogArgs>, Format) = match self
        {
            Command::Keygen(a) => (None, None, a.output.format.into()),
            Command::Frameworks(a) => (None, None, a.output.format.into()),
            Command::Attest(_) | Command::Completion { .. } => none,
            Command::Submit(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Entry(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Checkpoint(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Receipt {
                command: receipt::ReceiptCommand::Verify(a),
            }
            | Command::VerifyReceipt(a) => (None, Some(&a.log), a.output.format.into()),
            Command::Receipt {
                command: receipt::ReceiptCommand::Export(a),
            } => (None, Some(&a.log), Format::Human),
            Command::Signer { flags, .. }
            | Command::Sigstore { flags, .. }
            | Command::Admin { flags, .. }
            | Command::Policy { flags, .. } => (
                Some(&flags.connection),
                Some(&flags.log),
                flags.output.format.into(),
            ),
            Command::Gate(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Query(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Releases(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Audit(a) => (Some(&a.connection), Some(&a.log), a.output.format.into()),
            Command::Monitor(a) => (Some(&a.connection), Some(&a.log), Format::Human),
            Command::Report(a) => (
                Some(&a.connection),
                Some(&a.log),
                match a.format {
                    report::ReportFormat::Human => Format::Human,
                    report::ReportFormat::Json | report::ReportFormat::Oscal => Format::Json,
                },
            ),
            Command::Bundle {
                command: B::Export {
                    connection, log, ..
                },
            } => (Some(connection), Some(log), Format::Human),
            Command::Bundle {
                command: B::Verify { log, output, .. },
            } => (None, Some(log), output.format.into()),
        };
        Cli {
            connection: connection.cloned(),
            log: log.cloned().unwrap_or_default(),
            format,
        }
    }
}

/// Runs the command `cli` names.
pub(crate) async fn run(cli: &Cli, command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Keygen(args) => keygen::run(cli, args).await,
        Command::Frameworks(args) => frameworks::run(cli, args).await,
        Command::Attest(args) => attest::run(cli, args).await,
        Command::Submit(args) => submit::run(cli, args).await,
        Command::Entry(args) => entry::run(cli, args).await,
        Command::Checkpoint(_) => checkpoint::run(cli).await,
        Command::Receipt {
            command: receipt::ReceiptCommand::Verify(args),
        }
        | Command::VerifyReceipt(args) => receipt::run(cli, args).await,
        Command::Receipt {
            command: receipt::ReceiptCommand::Export(args),
        } => receipt::export(cli, args).await,
        Command::Signer { command, .. } => signer::run(cli, command).await,
        Command::Sigstore { command, .. } => sigstore::run(cli, command).await,
        Command::Admin { command, .. } => admin::run(cli, command).await,
        Command::Policy { command, .. } => policy::run(cli, command).await,
        Command::Gate(args) => gate::run(cli, args).await,
        Command::Query(args) => auditor::query(cli, args).await,
        Command::Releases(args) => auditor::releases(cli, args).await,
        Command::Audit(args) => auditor::audit(cli, args).await,
        Command::Monitor(args) => auditor::monitor(cli, args).await,
        Command::Report(args) => report::report(cli, args).await,
        Command::Bundle { command } => bundle::run(cli, command).await,
        Command::Completion { shell } => {
            use clap::CommandFactory as _;
            use std::io::Write as _;
            let mut script = Vec::new();
            clap_complete::generate(
                *shell,
                &mut crate::Evident::command(),
                "evident",
                &mut script,
            );
            std::io::stdout()
                .write_all(&script)
                .context("writing the completion script")?;
            Ok(())
        }
    }
}
