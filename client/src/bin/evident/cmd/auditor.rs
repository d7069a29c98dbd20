//! The auditor's commands: `query`, `releases`, `audit` and `monitor`.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::anyhow;
use evident_client::audit::{self, SignerSpec};
use evident_client::gate::read_genesis;
use evident_client::output::{
    AuditOutput, AuditSummary, CheckpointRef, QueryHitOutput, QueryOutput, ReleaseRow,
    ReleasesOutput,
};
use evident_client::reader::LogReader;
use evident_client::report::escape_terminal;
use evident_client::time_text;
use evident_client::{Hit, Query};
use evident_core::note::Verifier;
use evident_core::record::EntryKind;
use evident_core::registry::Registry;

use crate::{
    Cli, Format, GenesisArg, connect, print_json, require_log_key, state_path, witness_policy,
};

/// Filters of `evident query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// A subject digest, ALGORITHM:HEX (e.g. sha256:4f2a…, gitCommit:9c1e…).
    #[arg(long)]
    subject: Option<String>,
    /// A subject name, exactly.
    #[arg(long)]
    subject_name: Option<String>,
    /// A predicate type URI.
    #[arg(long)]
    predicate_type: Option<String>,
    /// A signer identity (administrators for registry and policy entries).
    #[arg(long)]
    signer: Option<String>,
    /// A role the signer had at the entry's time.
    #[arg(long)]
    role: Option<String>,
    /// An entry kind.
    #[arg(long, value_parser = ["attestation", "registry", "policy"])]
    kind: Option<String>,
    /// Integrated at or after: RFC 3339, or a date (from its start, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Integrated at or before: RFC 3339, or a date (to its end, UTC).
    #[arg(long)]
    until: Option<String>,
    /// A release, NAME or NAME@VERSION.
    #[arg(long)]
    release: Option<String>,
    /// The evidence a policy control looks at: POLICY[@VERSION]:CONTROL filters by the
    /// control's predicate type, and by its signer when it names exactly one identity or
    /// role.
    #[arg(long)]
    control: Option<String>,
    /// Newest entries first.
    #[arg(long)]
    newest_first: bool,
    /// Most results to print (the rest can be fetched with the printed cursor).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Continue a previous query (same filters) from its cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Fetch every result's entry and inclusion proof and verify them against a checkpoint
    /// signed by the pinned log key (EVIDENT_LOG_KEY), consistent with the last one seen.
    #[arg(long, conflicts_with = "cursor")]
    verify: bool,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::TableOutput,
}

/// The period of `evident releases`.
#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// From: RFC 3339, or a date (from its start, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Until: RFC 3339, or a date (to its end, UTC).
    #[arg(long)]
    until: Option<String>,
    /// Only releases of this name.
    #[arg(long)]
    name: Option<String>,
    /// Whose release attestations are releases: a signer identity, or `role:NAME` for any
    /// key that held the role at the entry's time (repeatable). Others are listed apart as
    /// not by a release signer.
    #[arg(long = "release-signer", value_name = "ID|role:NAME", default_values_t = [String::from("role:release")])]
    release_signers: Vec<String>,
    /// Whose verification summaries are a release's verdict: a signer identity, or
    /// `role:NAME` (repeatable). Summaries by anyone else are ignored.
    #[arg(long = "verdict-signer", value_name = "ID|role:NAME", default_values_t = [String::from("role:deploy")])]
    verdict_signers: Vec<String>,
    /// Prove every release attestation's entry in a checkpoint signed by the pinned log key
    /// (EVIDENT_LOG_KEY), and that the list holds every release attestation of the period
    /// (with --name, of that name).
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::TableOutput,
}

/// Options of `evident audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    genesis: GenesisArg,
    #[command(flatten)]
    tiles: crate::TilesArg,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

/// Options of `evident monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    genesis: GenesisArg,
    #[command(flatten)]
    tiles: crate::TilesArg,
    /// Seconds between polls.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Stop after this many polls (default: run until stopped or alerted).
    #[arg(long)]
    polls: Option<u64>,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
}

fn kind_name(kind: EntryKind) -> &'static str {
    kind.as_str()
}

/// A CSV cell that a spreadsheet cannot take for a formula: a cell starting with `=`, `+`,
/// `-`, `@`, tab or carriage return gets a leading `'` (OWASP's advice against CSV
/// injection), so `=HYPERLINK(…)` from an attestation shows as text.
pub(crate) fn neutralized(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Writes a CSV table to standard output: the `csv` crate quotes (RFC 4180), and every cell
/// is [`neutralized`].
fn write_csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(header)?;
    for row in rows {
        out.write_record(row.iter().map(|cell| neutralized(cell).into_owned()))?;
    }
    out.flush()?;
    Ok(())
}

fn subjects_text(hit: &Hit) -> String {
    hit.subjects
        .iter()
        .flat_map(|(name, digests)| {
            digests.iter().map(move |d| {
                if name.is_empty() {
                    d.clone()
                } else {
                    format!("{name}@{d}")
                }
            })
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The pinned log key when results are to be verified (`--verify`).
fn log_key_to_verify(cli: &Cli, verify: bool) -> anyhow::Result<Option<Verifier>> {
    verify.then(|| require_log_key(cli)).transpose()
}

/// `evident query`.
pub async fn query(cli: &Cli, args: &QueryArgs) -> anyhow::Result<()> {
    let (since, until) = audit::period(args.since.as_deref(), args.until.as_deref())?;
    let mut query = Query {
        subject_digest: args.subject.clone(),
        subject_name: args.subject_name.clone(),
        predicate_type: args.predicate_type.clone(),
        signer: args.signer.clone(),
        role: args.role.clone(),
        kind: args.kind.as_deref().map(|k| match k {
            "registry" => EntryKind::Registry,
            "policy" => EntryKind::Policy,
            _ => EntryKind::Attestation,
        }),
        since,
        until,
        release: args.release.clone(),
        newest_first: args.newest_first,
        cursor: args.cursor.clone(),
        ..Query::default()
    };
    let mut client = connect(cli).await?;
    if let Some(control) = &args.control {
        audit::control_filters(&mut client, control, &mut query).await?;
    }
    let key = log_key_to_verify(cli, args.verify)?;
    let state_file = state_path(cli);
    let proving = key.as_ref().map(|log_key| audit::Proving {
        log_key,
        state_file: &state_file,
    });
    let audit::Found {
        hits,
        tree_size,
        next_cursor: next,
        completeness,
    } = audit::query(&mut client, query, args.limit, proving).await?;
    let total = match &completeness {
        audit::Completeness::Proven { total, .. } => Some(*total),
        _ => None,
    };
    match cli.format {
        Format::Human => {
            for hit in &hits {
                println!(
                    "{:>8}  {}  {:<11} {}  signed by {}  {}",
                    hit.index,
                    time_text(hit.integrated_time_nanos),
                    kind_name(hit.kind),
                    if hit.predicate_type.is_empty() {
                        "-".into()
                    } else {
                        escape_terminal(&hit.predicate_type)
                    },
                    escape_terminal(&hit.signers.join(", ")),
                    escape_terminal(&subjects_text(hit))
                );
            }
            let proven = if args.verify {
                format!(", each proven; {}", completeness.text())
            } else {
                String::new()
            };
            let of = total
                .filter(|&t| t > hits.len() as u64)
                .map(|t| format!(" of {t}"))
                .unwrap_or_default();
            eprintln!(
                "{} result(s){of} at tree size {tree_size}{proven}{}",
                hits.len(),
                next.as_deref()
                    .map(|c| format!("; more with --cursor {}", escape_terminal(c)))
                    .unwrap_or_default()
            );
        }
        Format::Json => print_json(&QueryOutput {
            tree_size,
            verified: args.verify,
            results: hits.iter().map(QueryHitOutput::from).collect(),
            next_cursor: next,
            complete: total.is_some(),
            total,
            completeness: completeness.text(),
        }),
        Format::Jsonl => {
            for hit in &hits {
                let line = serde_json::to_string(&QueryHitOutput::from(hit))
                    .expect("an output type serializes");
                println!("{line}");
            }
        }
        Format::Csv => write_csv(
            &[
                "index",
                "leaf_hash",
                "integrated_time",
                "kind",
                "predicate_type",
                "signers",
                "subjects",
            ],
            hits.iter().map(|hit| {
                vec![
                    hit.index.to_string(),
                    hit.leaf_hash.to_hex(),
                    time_text(hit.integrated_time_nanos),
                    kind_name(hit.kind).to_owned(),
                    hit.predicate_type.clone(),
                    hit.signers.join(";"),
                    subjects_text(hit),
                ]
            }),
        )?,
    }
    Ok(())
}

/// `evident releases`: the population of releases in a period, with the verdicts the
/// deploy identities recorded.
pub async fn releases(cli: &Cli, args: &ReleasesArgs) -> anyhow::Result<()> {
    let (since, until) = audit::period(args.since.as_deref(), args.until.as_deref())?;
    if let Some(name) = &args.name {
        // NAME@VERSION splits at the last `@` not at the start: a name holding one would be
        // read as another name and a version.
        if name.get(1..).is_some_and(|rest| rest.contains('@')) {
            return Err(evident_client::ClientError::Invalid(format!(
                "--name {name:?} holds an @: a release name is given alone, without a version \
                 (to list one version, use evident query --release NAME@VERSION)"
            ))
            .into());
        }
    }
    let asked = audit::ReleasesQuery {
        since,
        until,
        name: args.name.clone(),
        release_signers: SignerSpec::parse_all("release-signer", &args.release_signers)?,
        verdict_signers: SignerSpec::parse_all("verdict-signer", &args.verdict_signers)?,
    };
    let mut client = connect(cli).await?;
    let key = log_key_to_verify(cli, args.verify)?;
    let state_file = state_path(cli);
    let proving = key.as_ref().map(|log_key| audit::Proving {
        log_key,
        state_file: &state_file,
    });
    let (rows, completeness) = audit::releases_checked(&mut client, &asked, proving).await?;
    match cli.format {
        Format::Human => {
            let line = |r: &ReleaseRow| {
                format!(
                    "{}@{}  entry {}  {}  by {}  {}",
                    r.name,
                    r.version,
                    r.index,
                    r.integrated_time,
                    r.signers.join(", "),
                    r.artifacts.join(" "),
                )
            };
            let (declared, others): (Vec<&ReleaseRow>, Vec<&ReleaseRow>) =
                rows.iter().partition(|r| r.trusted);
            for r in &declared {
                let verdict = match (&r.verdict, r.verdict_index, &r.verdict_policy) {
                    (Some(v), Some(i), Some(p)) => format!(
                        "{} (entry {i}, {p}, signed by {})",
                        v.as_str(),
                        r.verdict_signer.as_deref().unwrap_or_default().join(", ")
                    ),
                    _ => "none recorded".to_owned(),
                };
                println!(
                    "{}",
                    escape_terminal(&format!("{}  verdict: {verdict}", line(r)))
                );
            }
            if !others.is_empty() {
                println!(
                    "not by a release signer ({}):",
                    escape_terminal(&args.release_signers.join(", "))
                );
                for r in &others {
                    println!("  {}", escape_terminal(&line(r)));
                }
            }
            eprintln!(
                "{} release(s); {} release attestation(s) not by a release signer{}",
                declared.len(),
                others.len(),
                if args.verify {
                    format!("; {}", completeness.text())
                } else {
                    String::new()
                }
            );
        }
        Format::Json => print_json(&ReleasesOutput {
            releases: rows,
            complete: matches!(completeness, audit::Completeness::Proven { .. }),
            completeness: completeness.text(),
        }),
        Format::Jsonl => {
            for r in &rows {
                println!("{}", serde_json::to_string(r).expect("a row serializes"));
            }
        }
        Format::Csv => write_csv(
            &[
                "name",
                "version",
                "index",
                "integrated_time",
                "signers",
                "trusted",
                "artifacts",
                "verdict",
                "verdict_index",
                "verdict_policy",
                "verdict_signer",
            ],
            rows.iter().map(|r| {
                vec![
                    r.name.clone(),
                    r.version.clone(),
                    r.index.to_string(),
                    r.integrated_time.clone(),
                    r.signers.join(";"),
                    r.trusted.to_string(),
                    r.artifacts.join(";"),
                    r.verdict.map(|v| v.as_str().to_owned()).unwrap_or_default(),
                    r.verdict_index.map(|i| i.to_string()).unwrap_or_default(),
                    r.verdict_policy.clone().unwrap_or_default(),
                    r.verdict_signer
                        .as_ref()
                        .map(|s| s.join(";"))
                        .unwrap_or_default(),
                ]
            }),
        )?,
    }
    Ok(())
}

/// Draws a progress bar of a replay on standard error.
fn progress_bar(started: std::time::Instant) -> impl FnMut(u64, u64) {
    move |done, total| {
        let width = 30;
        let filled = (done as u128 * width / u128::from(total.max(1))) as usize;
        eprint!(
            "\r[{}{}] {done}/{total} entries, {:.0?}",
            "#".repeat(filled),
            " ".repeat(width as usize - filled),
            started.elapsed()
        );
    }
}

/// `evident audit`: replay the whole log from the pinned genesis.
pub async fn audit(cli: &Cli, args: &AuditArgs) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let registry = audit::genesis_registry(&read_genesis(&args.genesis.genesis)?)?;
    let show_progress = cli.format == Format::Human && std::io::stderr().is_terminal();
    let mut bar = progress_bar(std::time::Instant::now());
    let mut drew = false;
    let mut progress = |done, total| {
        if show_progress {
            bar(done, total);
            drew = true;
        }
    };
    let witnesses = witness_policy(cli)?;
    let state = state_path(cli);
    let audited = match args.tiles.open()? {
        Some(mut tiles) => {
            audit::audit(
                &mut tiles,
                &key,
                &witnesses,
                registry,
                &state,
                &mut progress,
            )
            .await
        }
        None => {
            let mut client = connect(cli).await?;
            audit::audit(
                &mut client,
                &key,
                &witnesses,
                registry,
                &state,
                &mut progress,
            )
            .await
        }
    };
    if drew {
        eprintln!();
    }
    let audit::Audited {
        checkpoint,
        summary: s,
    } = audited?;
    match cli.format {
        Format::Human => {
            println!(
                "OK: {} entries replayed from the genesis; root {} matches the checkpoint signed by {}",
                s.entries,
                checkpoint.root,
                key.name()
            );
            for (kind, n) in &s.kinds {
                println!("  {}: {n}", escape_terminal(kind));
            }
            println!("  signers: {}", s.signers.len());
            for (signer, n) in &s.signers {
                println!("    {}: {n} attestation(s)", escape_terminal(signer));
            }
            if let (Some(first), Some(last)) = (s.first_time, s.last_time) {
                println!("  from {} to {}", time_text(first), time_text(last));
            }
        }
        _ => print_json(&AuditOutput {
            ok: true,
            log_key: key.name().to_owned(),
            checkpoint: CheckpointRef::from(&checkpoint),
            summary: AuditSummary::from(&s),
        }),
    }
    Ok(())
}

/// `evident monitor`: follow the log, verifying each new checkpoint and entry.
pub async fn monitor(cli: &Cli, args: &MonitorArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(anyhow!("--interval must be a positive number of seconds"));
    }
    let key = require_log_key(cli)?;
    let registry = audit::genesis_registry(&read_genesis(&args.genesis.genesis)?)?;
    match args.tiles.open()? {
        Some(mut tiles) => follow(cli, args, &key, registry, &mut tiles).await,
        None => follow(cli, args, &key, registry, &mut connect(cli).await?).await,
    }
}

/// `evident monitor`'s polls, reading the log from `reader`.
async fn follow<R: LogReader>(
    cli: &Cli,
    args: &MonitorArgs,
    key: &Verifier,
    registry: Registry,
    reader: &mut R,
) -> anyhow::Result<()> {
    let state_file = state_path(cli);
    let witnesses = witness_policy(cli)?;
    let mut monitor = audit::Monitor::new(registry);
    let mut polls = 0u64;
    loop {
        let polled = match monitor.poll(reader, key, &witnesses, &state_file).await {
            Ok(p) => p,
            Err(e) if e.is_verification_failure() => {
                return Err(alert(format!("{:#}", anyhow::Error::from(e))));
            }
            // The server being away is not an attack: say so and poll again. What was
            // replayed before an outage stays replayed.
            Err(e) => {
                let e = anyhow::Error::from(e);
                eprintln!(
                    "evident: monitor: {}; retrying",
                    escape_terminal(&format!("{e:#}"))
                );
                polls += 1;
                if args.polls.is_some_and(|n| polls >= n) {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
                continue;
            }
        };
        if polled.new_entries > 0 || polls == 0 {
            println!(
                "{}: checkpoint of {} entries verified (+{} entries replayed)",
                time_text(
                    chrono::Utc::now()
                        .timestamp_nanos_opt()
                        .expect("the clock is in range")
                ),
                polled.checkpoint.size,
                polled.new_entries
            );
        }
        polls += 1;
        if args.polls.is_some_and(|n| polls >= n) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
    }
}

fn alert(message: String) -> anyhow::Error {
    Alert(message).into()
}

/// What ends `evident monitor` with exit 1: a fork, a rollback or an invalid entry. `main`
/// prints it alone on standard error, as one line starting `ALERT:` (control characters
/// escaped), so a log shipper can match it.
#[derive(Debug)]
pub struct Alert(String);

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ALERT: {}",
            evident_client::report::escape_terminal(&self.0)
        )
    }
}

impl std::error::Error for Alert {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn a_cell_a_spreadsheet_would_run_reads_as_text() {
        for cell in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-1+2",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(neutralized(cell), format!("'{cell}"));
        }
        for cell in ["payments", "1.4.0", "sha256:ab", "", "a=b"] {
            assert!(
                matches!(neutralized(cell), std::borrow::Cow::Borrowed(_)),
                "{cell}"
            );
        }
    }
}
