//! `evident report`: the auditor's report of one release. Fetches the release's evidence
//! bundle and verifies it exactly as the gate does (`evident gate`), evaluates the policy,
//! and writes `evident-report.html` and `evident-report.md` (`docs/REPORT.md`).
//!
//! A denied release is still reported (exit 0): the report documents the denial. A bundle
//! that does not verify is never reported (exit 1): nothing in it could be trusted.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use evident_client::gate::{PolicyRef, decide, read_genesis, target};
use evident_client::output::{Decision, ReportOutput, ReportedRelease};
use evident_client::report::{Document, ReleaseReport, render_html, render_markdown};
use evident_client::{CheckpointState, Release, now_nanos};
use evident_core::registry::GenesisDocument;

use crate::{
    Cli, Format, GenesisArg, VerificationFailed, connect, print_json, require_log_key, state_path,
};

/// The HTML report's file name in `--out`.
const HTML_FILE: &str = "evident-report.html";
/// The Markdown report's file name in `--out`.
const MARKDOWN_FILE: &str = "evident-report.md";

/// `evident report` flags.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["artifact", "release", "since", "until"])))]
pub(crate) struct ReportArgs {
    /// The artifact, ALGORITHM:HEX (e.g. sha256:4f2a…).
    #[arg(long, conflicts_with_all = ["release", "since", "until"])]
    artifact: Option<String>,
    /// Or the release, NAME@VERSION, as a release attestation declares it.
    #[arg(long, conflicts_with_all = ["since", "until"])]
    release: Option<String>,
    /// Or every release attested in a period from this time (RFC 3339, or a date).
    #[arg(long)]
    since: Option<String>,
    /// ...until this time (RFC 3339, or a date: to its end).
    #[arg(long)]
    until: Option<String>,
    /// The policy: NAME or NAME@VERSION (default: the latest in the bundle).
    #[arg(long)]
    policy: String,
    /// With --since/--until: whose release attestations declare the period's releases, a
    /// signer identity or `role:NAME` (repeatable), as `evident releases` counts them.
    #[arg(long = "release-signer", value_name = "ID|role:NAME", default_values_t = [String::from("role:release")])]
    release_signers: Vec<String>,
    #[command(flatten)]
    genesis: GenesisArg,
    /// The folder to write evident-report.html and evident-report.md into (created if
    /// missing; existing reports there are replaced).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

/// Runs `evident report`. Exit 0 when the report is written, whatever the verdicts; 1 when
/// a bundle does not verify; 2 on any other error.
pub(crate) async fn report(cli: &Cli, args: &ReportArgs) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let genesis = read_genesis(&args.genesis.genesis)?;
    let policy_ref = PolicyRef::parse(&args.policy)?;
    let mut client = connect(cli).await?;
    let (title, releases) = if args.artifact.is_some() || args.release.is_some() {
        let release = target(args.artifact.as_deref(), args.release.as_deref());
        let label = match &release {
            Release::Artifact(a) | Release::Named(a) => a.clone(),
        };
        (format!("Evident release report: {label}"), vec![release])
    } else {
        let (since, until) = super::auditor::period(&args.since, &args.until)?;
        let names =
            super::auditor::release_names(&mut client, since, until, &args.release_signers).await?;
        let period = format!(
            "{} to {}",
            args.since.as_deref().unwrap_or("the start"),
            args.until.as_deref().unwrap_or("now")
        );
        (
            format!(
                "Evident release report: {} release(s), {period}",
                names.len()
            ),
            names.into_iter().map(Release::Named).collect(),
        )
    };
    let now = now_nanos();
    let state_file = state_path(cli);
    let mut sections = Vec::new();
    let mut summary = Vec::new();
    let mut latest = None;
    for release in &releases {
        let (label, verified) =
            verified_bundle(&mut client, &key, &genesis, &state_file, release).await?;
        let policy = verified
            .policy(&policy_ref.name, policy_ref.version)
            .map_err(|e| anyhow!("{label}: {e}"))?;
        let evaluation = decide(&verified, release, policy, now)?;
        summary.push(ReportedRelease {
            release: label.clone(),
            policy: evaluation.policy.clone(),
            decision: Decision::from_allowed(evaluation.allowed),
        });
        sections.push(ReleaseReport::new(&label, &verified, policy, &evaluation));
        latest = Some(verified.checkpoint().clone());
    }
    let checkpoint = match latest {
        Some(c) => c,
        // No release in the period: the report says so, against the latest checkpoint.
        None => {
            let mut state = CheckpointState::load(&state_file)?;
            let note = client.checkpoint().await?;
            let c = state.advance(&mut client, &key, &note).await?;
            state.save(&state_file)?;
            c
        }
    };
    let mut document = Document::new(title, now, &key, &checkpoint);
    document.releases = sections;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the report folder {}", args.out.display()))?;
    let html = args.out.join(HTML_FILE);
    let markdown = args.out.join(MARKDOWN_FILE);
    write(&html, &render_html(&document))?;
    write(&markdown, &render_markdown(&document))?;

    if cli.format == Format::Human {
        for r in &summary {
            let verdict = match r.decision {
                Decision::Allowed => "ALLOWED",
                Decision::Denied => "DENIED",
            };
            println!(
                "{}: {verdict} under {} (checkpoint of {} entries)",
                r.release, r.policy, checkpoint.size
            );
        }
        if summary.is_empty() {
            println!("no release in the period");
        }
        println!("{}", html.display());
        println!("{}", markdown.display());
    } else {
        print_json(&ReportOutput {
            html,
            markdown,
            releases: summary,
            tree_size: checkpoint.size,
        });
    }
    Ok(())
}

/// Fetches a release's bundle, proves its checkpoint consistent with the last one seen,
/// and verifies it under the pinned key and genesis, as the gate does.
async fn verified_bundle(
    client: &mut evident_client::Client,
    key: &evident_core::note::Verifier,
    genesis: &GenesisDocument,
    state_file: &Path,
    release: &Release,
) -> anyhow::Result<(String, evident_core::bundle::VerifiedBundle)> {
    let mut state = CheckpointState::load(state_file)?;
    let bundle = match client.release_bundle(release).await {
        Ok(bundle) => bundle,
        // A release nobody declared has no evidence to verify: a finding about the release
        // (exit 1), not an outage.
        Err(evident_client::ClientError::Status {
            code: tonic::Code::NotFound,
            message,
            ..
        }) if matches!(release, Release::Named(_)) => {
            return Err(VerificationFailed(format!(
                "release {}: {message}: no report was written; check the name and version, \
                 or list the declared releases with `evident releases`",
                release_label(release)
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    // The bundle's checkpoint must extend every checkpoint this machine saw before, so a
    // forked or rolled-back log is refused here as at the gate.
    state.advance(client, key, &bundle.checkpoint).await?;
    state.save(state_file)?;
    let verified = bundle
        .verify(key, genesis)
        .map_err(|e| VerificationFailed(e.to_string()))?;
    Ok((release_label(release), verified))
}

/// How a report names a release: `NAME@VERSION`, or the artifact's digest.
fn release_label(release: &Release) -> String {
    match release {
        Release::Artifact(a) => a.to_ascii_lowercase(),
        Release::Named(n) => n.clone(),
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing the report {}", path.display()))
}
