//! `evident verify`: the deploy gate, and the recording of its verdict.

use std::path::{Path, PathBuf};

use crate::{
    Cli, Denied, Format, GenesisArg, VerificationFailed, connect, decide, now_nanos, policy_arg,
    print_json, read_genesis, read_signing_key, require_log_key, state_path, submit_signed, target,
    time_text,
};
use anyhow::{Context as _, anyhow};
use evident_client::report::escape_terminal;
use evident_client::{CheckpointState, Release};
use evident_core::Hash;
use evident_core::bundle::Bundle;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::note::Checkpoint;
use serde_json::json;

// `evident verify` flags.
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
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let record_with = if args.record {
        args.key.as_deref()
    } else {
        None
    };
    gate(
        cli,
        &target(&args.artifact, &args.release),
        &args.policy,
        args.bundle.as_deref(),
        &args.genesis.genesis,
        record_with,
    )
    .await
}

pub(crate) async fn gate(
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
