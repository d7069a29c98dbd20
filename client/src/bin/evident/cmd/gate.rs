//! `evident gate` (formerly `evident verify`, still accepted): the deploy gate, and the
//! recording of its verdict.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use evident_client::Release;
use evident_client::gate::{
    Evidence, Gate, PolicyRef, Verdict, read_bundle, read_genesis, record_verdict, target,
};
use evident_client::keyfile::read_signing_key;
use evident_client::output::GateOutput;
use evident_client::report::escape_terminal;

use crate::{
    Cli, Denied, Format, GenesisArg, connect, log_key, print_json, require_log_key, state_path,
};

// `evident gate` flags.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["artifact", "release"])))]
pub(crate) struct Args {
    /// The artifact, ALGORITHM:HEX (e.g. sha256:4f2a…).
    #[arg(long)]
    pub(crate) artifact: Option<String>,
    /// Or the release, NAME@VERSION, as a release attestation declares it.
    #[arg(long)]
    pub(crate) release: Option<String>,
    /// The policy: NAME or NAME@VERSION (default: the latest in the bundle).
    #[arg(long)]
    pub(crate) policy: String,
    /// Decide from this bundle file, offline, instead of fetching one.
    #[arg(long)]
    pub(crate) bundle: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) genesis: GenesisArg,
    /// Record the verdict in the ledger as a signed SLSA verification summary (the
    /// deploy record), signed with --key.
    #[arg(long, requires = "key")]
    pub(crate) record: bool,
    /// The signing key of the deploy job, for --record (registered for
    /// https://slsa.dev/verification_summary/v1).
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// Re-perform the decision as of a past time (RFC 3339, or a date: its end), such as a
    /// deploy's: with the trust registry, the latest policy version and the evidence the
    /// log held then. Not with --record.
    #[arg(long, value_name = "TIME", conflicts_with = "record")]
    pub(crate) as_of: Option<String>,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let record_with = if args.record {
        args.key.as_deref()
    } else {
        None
    };
    let as_of = as_of(args.as_of.as_deref())?;
    gate(
        cli,
        &target(args.artifact.as_deref(), args.release.as_deref()),
        &args.policy,
        args.bundle.as_deref(),
        &args.genesis.genesis,
        record_with,
        as_of,
    )
    .await
}

/// `--as-of`: RFC 3339, or a date meaning its end — today's end being now, since a time to
/// come is refused.
pub(crate) fn as_of(text: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let end = evident_client::audit::parse_time("as-of", text, true)?;
    let start = evident_client::audit::parse_time("as-of", text, false)?;
    let now = evident_client::now_nanos();
    // Today: its end is still to come, so now. (For RFC 3339, start == end.)
    Ok(Some(if start <= now && now < end { now } else { end }))
}

/// The gate: verify a bundle (fetched, or from a file) under the pinned log key and
/// genesis, then evaluate the policy locally and print the verdict; with `record_with`,
/// record it in the ledger. Exit 0 allowed, 1 denied or not verified, 2 error.
pub(crate) async fn gate(
    cli: &Cli,
    release: &Release,
    policy: &str,
    bundle_file: Option<&Path>,
    genesis_file: &Path,
    record_with: Option<&Path>,
    as_of: Option<i64>,
) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let genesis = read_genesis(genesis_file)?;
    let policy = PolicyRef::parse(policy)?;
    let state_file = state_path(cli);
    let witnesses = crate::witness_policy(cli)?;
    let gate = Gate {
        log_key: &key,
        genesis: &genesis,
        state_file: &state_file,
        witnesses: &witnesses,
    };
    let verdict = match bundle_file {
        Some(path) => {
            let bundle = read_bundle(path)?;
            gate.decide_as_of(Evidence::Offline(bundle), release, &policy, as_of)
                .await?
        }
        None => {
            let mut client = connect(cli).await?;
            gate.decide_as_of(Evidence::Online(&mut client), release, &policy, as_of)
                .await?
        }
    };
    let report = &verdict.report;
    let mut output = GateOutput::new(report, verdict.checkpoint.size);
    output.as_of = as_of.map(evident_client::time_text);
    if cli.format == Format::Human {
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
        let when = match &output.as_of {
            Some(t) => format!(", re-performed as of {t}"),
            None => String::new(),
        };
        println!(
            "{} {} under {} (checkpoint of {} entries{when})",
            if report.allowed { "ALLOWED" } else { "DENIED" },
            escape_terminal(&report.artifacts.join(", ")),
            escape_terminal(&report.policy),
            verdict.checkpoint.size
        );
    }
    // The JSON document is written once the verdict is recorded, so it can name the entry;
    // it is written even when recording fails, so the verdict is never lost.
    let mut failed = None;
    if let Some(key_file) = record_with {
        match record(cli, &verdict, key_file).await {
            Ok(index) => {
                output.recorded_index = Some(index);
                if cli.format == Format::Human {
                    println!("verdict recorded as entry {index}")
                }
            }
            // A denial stays a denial (exit 1) even when recording it failed.
            Err(e) if !report.allowed => {
                output.record_error = Some(format!("{e:#}"));
                eprintln!("evident: recording the verdict failed: {e:#}")
            }
            Err(e) => {
                output.record_error = Some(format!("{e:#}"));
                failed = Some(e)
            }
        }
    }
    if cli.format != Format::Human {
        print_json(&output);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if !report.allowed {
        return Err(Denied.into());
    }
    Ok(())
}

/// Records the verdict in the ledger, signed with the deploy job's key; returns its entry.
async fn record(cli: &Cli, verdict: &Verdict, key_file: &Path) -> anyhow::Result<u64> {
    let key = read_signing_key(key_file)?;
    let receipt = async {
        let log_key = log_key(cli)?;
        let mut client = connect(cli).await?;
        let receipt = record_verdict(
            &mut client,
            log_key.as_ref(),
            &state_path(cli),
            verdict,
            &key,
        )
        .await?;
        anyhow::Ok(receipt)
    }
    .await
    .context("recording the verdict")?;
    Ok(receipt.index)
}
