//! The auditor's commands: `query`, `releases`, `audit` and `monitor`.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::anyhow;
use evident_client::gate::{PolicyRef, read_genesis};
use evident_client::output::{
    AuditOutput, AuditSummary, CheckpointRef, QueryHitOutput, QueryOutput, ReleaseRow,
    ReleasesOutput, VerificationResult,
};
use evident_client::report::escape_terminal;
use evident_client::time_text;
use evident_client::{CheckpointState, Client, Hit, Query};
use evident_core::audit::Replay;
use evident_core::merkle;
use evident_core::note::{Checkpoint, Verifier};
use evident_core::predicates;
use evident_core::record::EntryKind;
use evident_core::statement::Statement;

use crate::{
    Cli, Format, GenesisArg, VerificationFailed, connect, print_json, require_log_key, state_path,
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

/// Reads a time argument: RFC 3339, or a date `YYYY-MM-DD` (its first or last nanosecond).
pub fn parse_time(flag: &str, text: &str, end_of_day: bool) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t
            .timestamp_nanos_opt()
            .ok_or_else(|| anyhow!("--{flag} {text:?} is out of range"));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow!(
            "--{flag} {text:?} is neither RFC 3339 (2026-11-27T10:00:00Z) nor a date (2026-11-27)"
        )
    })?;
    let time = if end_of_day {
        date.and_hms_nano_opt(23, 59, 59, 999_999_999)
    } else {
        date.and_hms_opt(0, 0, 0)
    }
    .expect("a valid time of day");
    time.and_utc()
        .timestamp_nanos_opt()
        .ok_or_else(|| anyhow!("--{flag} {text:?} is out of range"))
}

pub(crate) fn period(
    since: &Option<String>,
    until: &Option<String>,
) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    let since = since
        .as_deref()
        .map(|t| parse_time("since", t, false))
        .transpose()?;
    let until = until
        .as_deref()
        .map(|t| parse_time("until", t, true))
        .transpose()?;
    Ok((since, until))
}

fn kind_name(kind: EntryKind) -> &'static str {
    kind.as_str()
}

/// A CSV cell that a spreadsheet cannot take for a formula: a cell starting with `=`, `+`,
/// `-`, `@`, tab or carriage return gets a leading `'` (OWASP's advice against CSV
/// injection), so `=HYPERLINK(…)` from an attestation shows as text.
fn neutralized(cell: &str) -> std::borrow::Cow<'_, str> {
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

/// `evident query`.
pub async fn query(cli: &Cli, args: &QueryArgs) -> anyhow::Result<()> {
    let (since, until) = period(&args.since, &args.until)?;
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
        page_size: args.limit.clamp(1, 1000) as u32,
        cursor: args.cursor.clone(),
        include_entries: args.verify,
        include_proofs: args.verify,
    };
    let mut client = connect(cli).await?;
    if let Some(control) = &args.control {
        control_filters(&mut client, control, &mut query).await?;
    }
    let mut hits = Vec::new();
    let mut tree_size;
    let mut verified_at: Option<Checkpoint> = None;
    let next = loop {
        let page = client.query(&query).await?;
        tree_size = page.tree_size;
        if args.verify {
            let checkpoint = match &verified_at {
                Some(c) => c.clone(),
                None => {
                    let key = require_log_key(cli)?;
                    let file = state_path(cli);
                    let mut state = CheckpointState::load(&file)?;
                    let c = state.advance(&mut client, &key, &page.checkpoint).await?;
                    state.save(&file)?;
                    if c.size != page.tree_size {
                        return Err(anyhow!(
                            "the server answered at tree size {} with a checkpoint of {}: retry",
                            page.tree_size,
                            c.size
                        ));
                    }
                    verified_at = Some(c.clone());
                    c
                }
            };
            for hit in &page.hits {
                let proof = hit
                    .proof
                    .as_ref()
                    .ok_or_else(|| anyhow!("the server sent no proof for entry {}", hit.index))?;
                merkle::verify_inclusion(
                    hit.index,
                    checkpoint.size,
                    &hit.leaf_hash,
                    proof,
                    &checkpoint.root,
                )
                .map_err(|e| {
                    VerificationFailed(format!(
                        "entry {} is not proven in the checkpoint of {} entries: {e}",
                        hit.index, checkpoint.size
                    ))
                })?;
            }
        }
        let mut page_hits = page.hits;
        if args.verify {
            for hit in &mut page_hits {
                from_record(hit, &query).map_err(VerificationFailed)?;
            }
        }
        hits.extend(page_hits);
        match page.next_cursor {
            Some(cursor) if hits.len() < args.limit => {
                query.page_size = (args.limit - hits.len()).clamp(1, 1000) as u32;
                query.cursor = Some(cursor);
            }
            next => break next,
        }
    };
    hits.truncate(args.limit);
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
            let proven = if args.verify { ", each proven" } else { "" };
            eprintln!(
                "{} result(s) at tree size {tree_size}{proven}{}",
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

/// Narrows a query to the evidence a policy control looks at (`POLICY[@V]:CONTROL`).
async fn control_filters(
    client: &mut Client,
    control: &str,
    query: &mut Query,
) -> anyhow::Result<()> {
    let (policy, id) = control
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--control {control:?} is not POLICY[@VERSION]:CONTROL"))?;
    let PolicyRef { name, version } = PolicyRef::parse(policy)?;
    let document = client.get_policy(&name, version).await?;
    let policy = evident_core::policy::Policy::parse(&document.document)
        .map_err(|e| anyhow!("policy {name}: {e}"))?;
    let found = policy.controls.iter().find(|c| c.id == id).ok_or_else(|| {
        let ids: Vec<&str> = policy.controls.iter().map(|c| c.id.as_str()).collect();
        anyhow!(
            "policy {}@{} has no control {id:?}; its controls: {}",
            policy.name,
            policy.version,
            ids.join(", ")
        )
    })?;
    let conflict = |flag: &str| anyhow!("--control sets {flag}: give one or the other");
    if query.predicate_type.is_some() {
        return Err(conflict("--predicate-type"));
    }
    query.predicate_type = Some(found.predicate_type.clone());
    if let [rule] = found.signers.as_slice() {
        match rule {
            evident_core::policy::SignerRule::Identity(i) if query.signer.is_none() => {
                query.signer = Some(i.clone());
            }
            evident_core::policy::SignerRule::Role(r) if query.role.is_none() => {
                query.role = Some(r.clone());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replaces a result's fields with what its proven leaf record says, and checks the record
/// against every filter that the record alone decides (all but signer and role, which
/// depend on the registry of the entry's time: `evident audit` checks those).
fn from_record(hit: &mut Hit, query: &Query) -> Result<(), String> {
    let record = hit
        .record
        .as_ref()
        .ok_or_else(|| format!("the server sent no entry for result {}", hit.index))?;
    let index = hit.index;
    let mismatch = |filter: &str| {
        format!("entry {index} is not what was asked for: it does not match {filter}")
    };
    hit.integrated_time_nanos = record.integrated_time_nanos();
    hit.kind = record.kind();
    let statement = Statement::from_envelope(record.envelope()).ok();
    hit.predicate_type = statement
        .as_ref()
        .map(|s| s.predicate_type.clone())
        .unwrap_or_default();
    hit.subjects = statement
        .as_ref()
        .map(|s| {
            s.subjects
                .iter()
                .map(|subject| {
                    (
                        subject.name.clone(),
                        subject
                            .digests
                            .iter()
                            .map(|(a, v)| format!("{}:{v}", a.as_str()))
                            .collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(kind) = query.kind {
        if kind != hit.kind {
            return Err(mismatch("--kind"));
        }
    }
    if query.since.is_some_and(|t| hit.integrated_time_nanos < t)
        || query.until.is_some_and(|t| hit.integrated_time_nanos > t)
    {
        return Err(mismatch("the time range"));
    }
    if let Some(p) = &query.predicate_type {
        if *p != hit.predicate_type {
            return Err(mismatch("--predicate-type"));
        }
    }
    if let Some(name) = &query.subject_name {
        if !hit.subjects.iter().any(|(n, _)| n == name) {
            return Err(mismatch("--subject-name"));
        }
    }
    if let Some(wanted) = &query.subject_digest {
        let (alg, value) = wanted.split_once(':').unwrap_or((wanted, ""));
        let alg = evident_core::statement::DigestAlgorithm::parse_any_case(alg);
        let value = if alg.is_known() {
            value.to_ascii_lowercase()
        } else {
            value.to_owned()
        };
        let wanted = format!("{}:{value}", alg.as_str());
        if !hit.subjects.iter().any(|(_, d)| d.contains(&wanted)) {
            return Err(mismatch("--subject"));
        }
    }
    if let Some(release) = &query.release {
        let declared = statement
            .as_ref()
            .and_then(evident_core::audit::release_of)
            .ok_or_else(|| mismatch("--release"))?;
        let matches = match release.rsplit_once('@') {
            Some((name, version)) if !name.is_empty() => {
                declared.0 == name && declared.1 == version
            }
            _ => declared.0 == *release,
        };
        if !matches {
            return Err(mismatch("--release"));
        }
    }
    Ok(())
}

/// Every result of a query, page after page.
async fn all(client: &mut Client, mut query: Query) -> anyhow::Result<Vec<Hit>> {
    query.page_size = 1000;
    let mut hits = Vec::new();
    loop {
        let page = client.query(&query).await?;
        hits.extend(page.hits);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(hits),
        }
    }
}

/// The releases (`NAME@VERSION`) that release attestations integrated in a period and
/// signed by one of `release_signers` (`ID` or `role:NAME`) declare, in log order, each
/// once: the population of `evident releases`.
pub(crate) async fn release_names(
    client: &mut Client,
    since: Option<i64>,
    until: Option<i64>,
    release_signers: &[String],
) -> anyhow::Result<Vec<String>> {
    let query = Query {
        predicate_type: Some(predicates::RELEASE_V0_1.to_owned()),
        kind: Some(EntryKind::Attestation),
        since,
        until,
        include_entries: true,
        ..Query::default()
    };
    let mut found = Vec::new();
    for signer in signer_specs("release-signer", release_signers)? {
        found.extend(all(client, signer.narrow(query.clone())).await?);
    }
    found.sort_by_key(|h| h.index);
    let mut names = Vec::new();
    for hit in found {
        let Some(statement) = hit
            .record
            .as_ref()
            .and_then(|r| Statement::from_envelope(r.envelope()).ok())
        else {
            continue;
        };
        if let Some((name, version)) = predicates::release_name_version(&statement.predicate) {
            let label = format!("{name}@{version}");
            if !names.contains(&label) {
                names.push(label);
            }
        }
    }
    Ok(names)
}

/// Who may sign what `evident releases` counts: a signer identity, or any key that held a
/// role at the entry's time (`role:NAME`). Both are decided by the server's indexes of the
/// signatures the registry accepted, never by a field of the attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SignerSpec {
    Identity(String),
    Role(String),
}

impl SignerSpec {
    fn parse(flag: &str, text: &str) -> anyhow::Result<SignerSpec> {
        let spec = match text.strip_prefix("role:") {
            Some(role) => SignerSpec::Role(role.to_owned()),
            None => SignerSpec::Identity(text.to_owned()),
        };
        match &spec {
            SignerSpec::Identity(s) | SignerSpec::Role(s) if s.trim().is_empty() => Err(anyhow!(
                "--{flag} {text:?} names nobody: give a signer identity or role:NAME"
            )),
            _ => Ok(spec),
        }
    }

    /// Narrows a query to entries this signer (or a holder of this role) signed.
    fn narrow(&self, mut query: Query) -> Query {
        match self {
            SignerSpec::Identity(i) => query.signer = Some(i.clone()),
            SignerSpec::Role(r) => query.role = Some(r.clone()),
        }
        query
    }
}

fn signer_specs(flag: &str, texts: &[String]) -> anyhow::Result<Vec<SignerSpec>> {
    texts.iter().map(|t| SignerSpec::parse(flag, t)).collect()
}

/// The newest verification summary about every one of `artifacts` that `signer` signed:
/// `(index, result, policy, signers)`. A summary whose result is neither PASSED nor FAILED
/// is no verdict.
async fn newest_verdict(
    client: &mut Client,
    artifacts: &[String],
    signer: &SignerSpec,
) -> anyhow::Result<Option<(u64, VerificationResult, String, Vec<String>)>> {
    let Some(first) = artifacts.first() else {
        return Ok(None);
    };
    let mut query = signer.narrow(Query {
        predicate_type: Some(predicates::VERIFICATION_SUMMARY_V1.to_owned()),
        subject_digest: Some(first.clone()),
        kind: Some(EntryKind::Attestation),
        newest_first: true,
        page_size: 100,
        include_entries: true,
        ..Query::default()
    });
    loop {
        let page = client.query(&query).await?;
        for h in &page.hits {
            let Some(statement) = h
                .record
                .as_ref()
                .and_then(|r| Statement::from_envelope(r.envelope()).ok())
            else {
                continue;
            };
            let covered: Vec<String> = statement
                .digests()
                .map(|(a, v)| format!("{}:{v}", a.as_str()))
                .collect();
            // A verdict on only some of the release's artifacts is not the release's.
            if !artifacts.iter().all(|a| covered.contains(a)) {
                continue;
            }
            let p = &statement.predicate;
            let Some(result) = p["verificationResult"]
                .as_str()
                .and_then(VerificationResult::parse)
            else {
                continue;
            };
            let policy = p["policy"]["uri"].as_str().unwrap_or("").to_owned();
            return Ok(Some((h.index, result, policy, h.signers.clone())));
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(None),
        }
    }
}

/// `evident releases`: the population of releases in a period, with the verdicts the
/// deploy identities recorded.
pub async fn releases(cli: &Cli, args: &ReleasesArgs) -> anyhow::Result<()> {
    let (since, until) = period(&args.since, &args.until)?;
    let release_signers = signer_specs("release-signer", &args.release_signers)?;
    let verdict_signers = signer_specs("verdict-signer", &args.verdict_signers)?;
    let mut client = connect(cli).await?;
    let releases = Query {
        predicate_type: Some(predicates::RELEASE_V0_1.to_owned()),
        kind: Some(EntryKind::Attestation),
        release: args.name.clone(),
        since,
        until,
        ..Query::default()
    };
    let found = all(
        &mut client,
        Query {
            include_entries: true,
            ..releases.clone()
        },
    )
    .await?;
    // The release attestations a release signer signed, by the server's signer and role
    // indexes. Asked after `found`: the log only grows, so every entry found is seen here.
    let mut trusted = std::collections::BTreeSet::new();
    for signer in &release_signers {
        let hits = all(&mut client, signer.narrow(releases.clone())).await?;
        trusted.extend(hits.iter().map(|h| h.index));
    }
    let mut rows = Vec::new();
    for hit in found {
        let Some(record) = &hit.record else {
            return Err(anyhow!("the server sent no entry for {}", hit.index));
        };
        let Ok(statement) = Statement::from_envelope(record.envelope()) else {
            continue;
        };
        let Some((name, version)) = predicates::release_name_version(&statement.predicate) else {
            continue;
        };
        let artifacts: Vec<String> = statement
            .digests()
            .map(|(a, v)| format!("{}:{v}", a.as_str()))
            .collect();
        let is_trusted = trusted.contains(&hit.index);
        // The newest verdict any of the verdict signers recorded about all the artifacts.
        let mut verdict: Option<(u64, VerificationResult, String, Vec<String>)> = None;
        if is_trusted {
            for signer in &verdict_signers {
                let found = newest_verdict(&mut client, &artifacts, signer).await?;
                if found.as_ref().map(|f| f.0) > verdict.as_ref().map(|v| v.0) {
                    verdict = found;
                }
            }
        }
        let (verdict, verdict_index, verdict_policy, verdict_signer) = match verdict {
            Some((i, result, policy, signers)) => {
                (Some(result), Some(i), Some(policy), Some(signers))
            }
            None => (None, None, None, None),
        };
        rows.push(ReleaseRow {
            name,
            version,
            index: hit.index,
            integrated_time: time_text(hit.integrated_time_nanos),
            signers: hit.signers.clone(),
            trusted: is_trusted,
            artifacts,
            verdict,
            verdict_index,
            verdict_policy,
            verdict_signer,
        });
    }
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
                "{} release(s); {} release attestation(s) not by a release signer",
                declared.len(),
                others.len()
            );
        }
        Format::Json => print_json(&ReleasesOutput { releases: rows }),
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

/// Downloads and replays entries until the replay covers `checkpoint`, then holds it
/// against the checkpoint. A problem is a [`VerificationFailed`] naming the entry.
async fn replay_to(
    client: &mut Client,
    replay: &mut Replay,
    checkpoint: &Checkpoint,
    show_progress: bool,
) -> anyhow::Result<()> {
    let total = checkpoint.size;
    let started = std::time::Instant::now();
    while replay.size() < total {
        let at = replay.size();
        let records = match client.entries(at, total).await {
            Ok(records) => records,
            // The server says it lost data it signed: that is a finding, not an outage.
            Err(evident_client::ClientError::Status {
                code: tonic::Code::DataLoss,
                message,
                ..
            }) => {
                return Err(VerificationFailed(format!(
                    "entry {at}: the log signed a checkpoint of {total} entries but could not \
                     return this one: {message}"
                ))
                .into());
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("fetching entry {at}"))),
        };
        if records.is_empty() {
            return Err(VerificationFailed(format!(
                "entry {at}: the server returned no entries below {total}"
            ))
            .into());
        }
        for bytes in &records {
            replay
                .push(bytes)
                .map_err(|e| VerificationFailed(e.to_string()))?;
        }
        if show_progress {
            let done = replay.size();
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
    if show_progress {
        eprintln!();
    }
    replay
        .check_checkpoint(checkpoint)
        .map_err(|e| VerificationFailed(e.to_string()))?;
    Ok(())
}

/// The latest checkpoint, verified and proven consistent with the last one seen.
async fn latest(cli: &Cli, client: &mut Client, key: &Verifier) -> anyhow::Result<Checkpoint> {
    let file = state_path(cli);
    let mut state = CheckpointState::load(&file)?;
    let note = client.checkpoint().await?;
    let checkpoint = state.advance(client, key, &note).await?;
    state.save(&file)?;
    Ok(checkpoint)
}

/// `evident audit`: replay the whole log from the pinned genesis.
pub async fn audit(cli: &Cli, args: &AuditArgs) -> anyhow::Result<()> {
    let key = require_log_key(cli)?;
    let genesis = read_genesis(&args.genesis.genesis)?;
    let registry = genesis
        .to_registry()
        .map_err(|e| anyhow!("the pinned genesis is invalid: {e}"))?;
    let mut client = connect(cli).await?;
    let seen = CheckpointState::load(&state_path(cli))?.last(&key)?;
    let checkpoint = match latest(cli, &mut client, &key).await {
        Ok(c) => c,
        Err(e) if is_verification_failure(&e) => {
            return Err(match seen {
                Some(old) => locate_fork(&mut client, &key, registry, &old, e).await,
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    let mut replay = Replay::new(registry);
    let progress = cli.format == Format::Human && std::io::stderr().is_terminal();
    replay_to(&mut client, &mut replay, &checkpoint, progress).await?;
    let s = replay.summary();
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
            summary: AuditSummary::from(s),
        }),
    }
    Ok(())
}

/// After a fork or rollback: replays the served log up to the size verified before, to say
/// where it departs from it. Returns `found`, with that added when it can be said.
async fn locate_fork(
    client: &mut Client,
    key: &Verifier,
    registry: evident_core::registry::Registry,
    old: &Checkpoint,
    found: anyhow::Error,
) -> anyhow::Error {
    let Ok(note) = client.checkpoint().await else {
        return found;
    };
    let Ok(served) = Checkpoint::verify(&note, key) else {
        return found;
    };
    if served.size < old.size {
        return found;
    }
    let mut replay = Replay::new(registry);
    let mut bad = None;
    while replay.size() < old.size {
        let Ok(records) = client.entries(replay.size(), old.size).await else {
            return found;
        };
        if records.is_empty() {
            return found;
        }
        for bytes in &records {
            if let Err(e) = replay.push(bytes) {
                bad = Some(e);
                break;
            }
        }
        if bad.is_some() {
            break;
        }
    }
    let detail = match bad {
        Some(e) => format!("the served log is invalid from {e}"),
        None if replay.root() != old.root => format!(
            "the served log's first {} entries hash to {}, the checkpoint verified before says \
             {}: its history departs at or before entry {}",
            old.size,
            replay.root(),
            old.root,
            old.size - 1
        ),
        None => return found,
    };
    VerificationFailed(format!("{found:#}; {detail}")).into()
}

/// `evident monitor`: follow the log, verifying each new checkpoint and entry.
pub async fn monitor(cli: &Cli, args: &MonitorArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(anyhow!("--interval must be a positive number of seconds"));
    }
    let key = require_log_key(cli)?;
    let genesis = read_genesis(&args.genesis.genesis)?;
    let registry = genesis
        .to_registry()
        .map_err(|e| anyhow!("the pinned genesis is invalid: {e}"))?;
    let mut client = connect(cli).await?;
    let mut replay = Replay::new(registry);
    let mut polls = 0u64;
    loop {
        let before = replay.size();
        let polled = match latest(cli, &mut client, &key).await {
            Ok(checkpoint) => replay_to(&mut client, &mut replay, &checkpoint, false)
                .await
                .map(|()| checkpoint),
            Err(e) => Err(e),
        };
        let checkpoint = match polled {
            Ok(c) => c,
            Err(e) if is_verification_failure(&e) => return Err(alert(format!("{e:#}"))),
            // The server being away is not an attack: say so and poll again. What was
            // replayed before an outage stays replayed.
            Err(e) => {
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
        if replay.size() > before || polls == 0 {
            println!(
                "{}: checkpoint of {} entries verified (+{} entries replayed)",
                time_text(
                    chrono::Utc::now()
                        .timestamp_nanos_opt()
                        .expect("the clock is in range")
                ),
                checkpoint.size,
                replay.size() - before
            );
        }
        polls += 1;
        if args.polls.is_some_and(|n| polls >= n) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
    }
}

fn is_verification_failure(e: &anyhow::Error) -> bool {
    e.downcast_ref::<VerificationFailed>().is_some()
        || e.downcast_ref::<evident_client::ClientError>()
            .is_some_and(evident_client::ClientError::is_verification_failure)
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

    #[test]
    fn signers_are_identities_or_roles_and_never_nobody() {
        assert_eq!(
            SignerSpec::parse("verdict-signer", "role:deploy").unwrap(),
            SignerSpec::Role("deploy".into())
        );
        assert_eq!(
            SignerSpec::parse("verdict-signer", "deployer@ci").unwrap(),
            SignerSpec::Identity("deployer@ci".into())
        );
        for nobody in ["", " ", "role:", "role: "] {
            let err = SignerSpec::parse("verdict-signer", nobody).unwrap_err();
            assert!(err.to_string().contains("names nobody"), "{err}");
        }
        let query = SignerSpec::Role("deploy".into()).narrow(Query::default());
        assert_eq!(
            (query.role.as_deref(), query.signer),
            (Some("deploy"), None)
        );
    }
}
