//! `evident report`: the auditor's report of one release. Fetches the release's evidence
//! bundle and verifies it exactly as the gate does (`evident gate`), evaluates the policy,
//! and writes `evident-report.html` and `evident-report.md` (`docs/REPORT.md`).
//!
//! A denied release is still reported (exit 0): the report documents the denial. A bundle
//! that does not verify is never reported (exit 1): nothing in it could be trusted.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use evident_client::audit::{self, ReportScope, Reported, SignerSpec};
use evident_client::gate::{PolicyRef, read_genesis, target};
use evident_client::now_nanos;
use evident_client::oscal::assessment_results;
use evident_client::output::{Decision, PopulationOutput, ReportOutput};
use evident_client::report::{render_html, render_markdown};

use crate::{Cli, GenesisArg, connect, print_json, require_log_key, state_path};

/// The HTML report's file name in `--out`.
const HTML_FILE: &str = "evident-report.html";
/// The Markdown report's file name in `--out`.
const MARKDOWN_FILE: &str = "evident-report.md";
/// The OSCAL assessment-results document's file name in `--out`.
const OSCAL_FILE: &str = "evident-report.oscal.json";
/// The population, one CSV row per release, in `--out`.
const POPULATION_CSV: &str = "evident-report.population.csv";
/// The population as JSON ([`PopulationOutput`]) in `--out`.
const POPULATION_JSON: &str = "evident-report.population.json";

/// `evident report --format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    /// Lines for people: each release's verdict and the files written.
    #[default]
    Human,
    /// One JSON document naming the files written and the verdicts.
    Json,
    /// The OSCAL 1.1.2 assessment-results document itself.
    Oscal,
}

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
    /// Whose verification summaries are a release's recorded deploy verdict, a signer
    /// identity or `role:NAME` (repeatable), as `evident releases` counts them.
    #[arg(long = "verdict-signer", value_name = "ID|role:NAME", default_values_t = [String::from("role:deploy")])]
    verdict_signers: Vec<String>,
    #[command(flatten)]
    genesis: GenesisArg,
    /// The folder to write evident-report.html, evident-report.md and
    /// evident-report.oscal.json into (created if missing; existing reports there are
    /// replaced).
    #[arg(long)]
    out: PathBuf,
    /// Re-perform the decisions as of a past time (RFC 3339, or a date: its end): with the
    /// trust registry, the latest policy versions and the evidence the log held then. A
    /// period's releases are those declared by then.
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// A framework catalogue file that extends the built-in one (docs/FRAMEWORKS.md).
    #[arg(long, value_name = "FILE", env = "EVIDENT_CATALOGUE")]
    catalogue: Option<PathBuf>,
    /// Output format: human, json, or oscal (the OSCAL document on standard output too).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: ReportFormat,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
}

/// Runs `evident report`. Exit 0 when the report is written, whatever the verdicts; 1 when
/// a bundle does not verify; 2 on any other error.
pub(crate) async fn report(cli: &Cli, args: &ReportArgs) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let genesis = read_genesis(&args.genesis.genesis)?;
    let policy_ref = PolicyRef::parse(&args.policy)?;
    let scope = if args.artifact.is_some() || args.release.is_some() {
        ReportScope::One(target(args.artifact.as_deref(), args.release.as_deref()))
    } else {
        ReportScope::Period {
            since: args.since.clone(),
            until: args.until.clone(),
            release_signers: SignerSpec::parse_all("release-signer", &args.release_signers)?,
        }
    };
    let catalogue = crate::cmd::frameworks::catalogue(args.catalogue.as_deref())?;
    let as_of = crate::cmd::gate::as_of(args.as_of.as_deref())?;
    let verdict_signers = SignerSpec::parse_all("verdict-signer", &args.verdict_signers)?;
    let mut client = connect(cli).await?;
    let Reported { document, releases } = audit::report(
        &mut client,
        &key,
        &genesis,
        &state_path(cli),
        audit::ReportRequest {
            policy: &policy_ref,
            scope: &scope,
            now: now_nanos(),
            as_of,
            catalogue: &catalogue,
            verdict_signers: &verdict_signers,
        },
    )
    .await?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the report folder {}", args.out.display()))?;
    let html = args.out.join(HTML_FILE);
    let markdown = args.out.join(MARKDOWN_FILE);
    write(&html, &render_html(&document))?;
    write(&markdown, &render_markdown(&document))?;
    let oscal = args.out.join(OSCAL_FILE);
    let oscal_document = assessment_results(&document);
    let oscal_text =
        serde_json::to_string_pretty(&oscal_document).expect("an OSCAL document serializes");
    write(&oscal, &format!("{oscal_text}\n"))?;
    let population = PopulationOutput::of(&document);
    let population_json = args.out.join(POPULATION_JSON);
    let population_text =
        serde_json::to_string_pretty(&population).expect("a population serializes");
    write(&population_json, &format!("{population_text}\n"))?;
    let population_csv = args.out.join(POPULATION_CSV);
    write(&population_csv, &population_csv_text(&population)?)?;
    let tree_size = document.checkpoint.size;

    if args.format == ReportFormat::Oscal {
        println!("{oscal_text}");
    } else if args.format == ReportFormat::Human {
        for r in &releases {
            let verdict = match r.decision {
                Decision::Allowed => "ALLOWED",
                Decision::Denied => "DENIED",
            };
            println!(
                "{}: {verdict} under {} (checkpoint of {tree_size} entries)",
                r.release, r.policy
            );
        }
        if releases.is_empty() {
            println!("no release in the period");
        }
        println!("{}", html.display());
        println!("{}", markdown.display());
        println!("{}", oscal.display());
        println!("{}", population_csv.display());
        println!("{}", population_json.display());
    } else {
        print_json(&ReportOutput {
            html,
            markdown,
            oscal,
            population_csv,
            population_json,
            as_of: document.as_of.clone(),
            releases,
            tree_size,
        });
    }
    Ok(())
}

/// The population as CSV: a header, then one row per release. Lists are `;`-separated;
/// a cell a spreadsheet would read as a formula is neutralized, as `evident query` does.
fn population_csv_text(population: &PopulationOutput) -> anyhow::Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "release",
        "decision",
        "policy",
        "controls_passed",
        "controls_total",
        "failed_controls",
        "exceptions",
        "artifacts",
        "declared_index",
        "declared_by",
        "recorded_verdict",
        "recorded_verdict_index",
        "recorded_verdict_time",
        "recorded_verdict_signer",
        "as_of",
        "tree_size",
    ])?;
    let number = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    for r in &population.releases {
        let row = [
            r.release.clone(),
            match r.decision {
                Decision::Allowed => "allowed".to_owned(),
                Decision::Denied => "denied".to_owned(),
            },
            r.policy.clone(),
            r.controls_passed.to_string(),
            r.controls_total.to_string(),
            r.failed_controls.join(";"),
            r.exceptions.join(";"),
            r.artifacts.join(";"),
            number(r.declared_index),
            r.declared_by.join(";"),
            r.recorded_verdict.clone().unwrap_or_default(),
            number(r.recorded_verdict_index),
            r.recorded_verdict_time.clone().unwrap_or_default(),
            r.recorded_verdict_signer.join(";"),
            population.as_of.clone().unwrap_or_default(),
            population.tree_size.to_string(),
        ];
        out.write_record(
            row.iter()
                .map(|cell| crate::cmd::auditor::neutralized(cell).into_owned()),
        )?;
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing the report {}", path.display()))
}
