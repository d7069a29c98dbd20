//! The auditor's work, for the CLI's `query`, `releases`, `audit`, `monitor` and `report`
//! and for any pipeline: queries of the ledger's indexes (their results optionally proven
//! against a verified checkpoint), the releases of a period with their recorded verdicts,
//! the replay of the whole log from its pinned genesis, and the verified evidence that an
//! auditor's report renders.
//!
//! Nothing here prints: results are values, progress is a callback, and a finding (a fork,
//! a rollback, an entry that does not replay or is not what was asked for) is a
//! [`ClientError`] for which [`ClientError::is_verification_failure`] holds.

use std::collections::BTreeSet;
use std::path::Path;

use evident_core::audit::{Replay, Summary};
use evident_core::cosign::WitnessPolicy;
use evident_core::merkle;
use evident_core::note::{Checkpoint, Verifier};
use evident_core::predicates;
use evident_core::record::EntryKind;
use evident_core::registry::Registry;
use evident_core::statement::Statement;
use evident_core::vindex;

use evident_core::bundle::VerifiedBundle;
use evident_core::registry::GenesisDocument;

use crate::gate::PolicyRef;
use crate::output::{Decision, ReleaseRow, ReportedRelease, VerificationResult};
use crate::reader::LogReader;
use crate::report::{Document, ReleaseReport};
use crate::{CheckpointState, Client, ClientError, Hit, Query, Release, time_text};

/// Reads a time argument of `--FLAG`: RFC 3339, or a date `YYYY-MM-DD` (its first or, with
/// `end_of_day`, its last nanosecond, UTC).
pub fn parse_time(flag: &str, text: &str, end_of_day: bool) -> Result<i64, ClientError> {
    let out_of_range = || ClientError::Invalid(format!("--{flag} {text:?} is out of range"));
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t.timestamp_nanos_opt().ok_or_else(out_of_range);
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ClientError::Invalid(format!(
            "--{flag} {text:?} is neither RFC 3339 (2026-11-27T10:00:00Z) nor a date (2026-11-27)"
        ))
    })?;
    let time = if end_of_day {
        date.and_hms_nano_opt(23, 59, 59, 999_999_999)
    } else {
        date.and_hms_opt(0, 0, 0)
    }
    .expect("a valid time of day");
    time.and_utc()
        .timestamp_nanos_opt()
        .ok_or_else(out_of_range)
}

/// A period from `--since` (from its start) and `--until` (to its end), in nanoseconds.
pub fn period(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), ClientError> {
    let since = since.map(|t| parse_time("since", t, false)).transpose()?;
    let until = until.map(|t| parse_time("until", t, true)).transpose()?;
    Ok((since, until))
}

/// Who may sign what `releases` counts: a signer identity, or any key that held a role at
/// the entry's time (`role:NAME`). Both are decided by the server's indexes of the
/// signatures the registry accepted, never by a field of the attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerSpec {
    /// A signer identity.
    Identity(String),
    /// Any holder of a role.
    Role(String),
}

impl SignerSpec {
    /// Reads `ID` or `role:NAME`, given as `--FLAG`.
    pub fn parse(flag: &str, text: &str) -> Result<SignerSpec, ClientError> {
        let spec = match text.strip_prefix("role:") {
            Some(role) => SignerSpec::Role(role.to_owned()),
            None => SignerSpec::Identity(text.to_owned()),
        };
        match &spec {
            SignerSpec::Identity(s) | SignerSpec::Role(s) if s.trim().is_empty() => {
                Err(ClientError::Invalid(format!(
                    "--{flag} {text:?} names nobody: give a signer identity or role:NAME"
                )))
            }
            _ => Ok(spec),
        }
    }

    /// The policy rule naming the same signers.
    pub fn rule(&self) -> evident_core::policy::SignerRule {
        match self {
            SignerSpec::Identity(i) => evident_core::policy::SignerRule::Identity(i.clone()),
            SignerSpec::Role(r) => evident_core::policy::SignerRule::Role(r.clone()),
        }
    }

    /// Reads several, given as `--FLAG`.
    pub fn parse_all(flag: &str, texts: &[String]) -> Result<Vec<SignerSpec>, ClientError> {
        texts.iter().map(|t| SignerSpec::parse(flag, t)).collect()
    }

    /// Narrows a query to entries this signer (or a holder of this role) signed.
    pub fn narrow(&self, mut query: Query) -> Query {
        match self {
            SignerSpec::Identity(i) => query.signer = Some(i.clone()),
            SignerSpec::Role(r) => query.role = Some(r.clone()),
        }
        query
    }
}

/// Narrows a query to the evidence a policy control looks at (`POLICY[@V]:CONTROL`): the
/// control's predicate type, and its signer when it names exactly one identity or role.
pub async fn control_filters(
    client: &mut Client,
    control: &str,
    query: &mut Query,
) -> Result<(), ClientError> {
    let (policy, id) = control.rsplit_once(':').ok_or_else(|| {
        ClientError::Invalid(format!(
            "--control {control:?} is not POLICY[@VERSION]:CONTROL"
        ))
    })?;
    let PolicyRef { name, version } = PolicyRef::parse(policy)?;
    let document = client.get_policy(&name, version).await?;
    let policy = evident_core::policy::Policy::parse(&document.document)
        .map_err(|e| ClientError::Invalid(format!("policy {name}: {e}")))?;
    let found = policy.controls.iter().find(|c| c.id == id).ok_or_else(|| {
        let ids: Vec<&str> = policy.controls.iter().map(|c| c.id.as_str()).collect();
        ClientError::Invalid(format!(
            "policy {}@{} has no control {id:?}; its controls: {}",
            policy.name,
            policy.version,
            ids.join(", ")
        ))
    })?;
    let conflict =
        |flag: &str| ClientError::Invalid(format!("--control sets {flag}: give one or the other"));
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

/// Proving query results: the pinned log key and the checkpoint state file.
#[derive(Debug, Clone, Copy)]
pub struct Proving<'a> {
    /// The log's key.
    pub log_key: &'a Verifier,
    /// The checkpoint state file.
    pub state_file: &'a Path,
}

/// What [`query`] found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The results, at most the limit asked.
    pub hits: Vec<Hit>,
    /// The tree size the server answered at.
    pub tree_size: u64,
    /// The cursor to continue from, when there are more results.
    pub next_cursor: Option<String>,
    /// Whether the answer is proven complete.
    pub completeness: Completeness,
}

/// Whether a query's answer is proven to hold every matching entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    /// Not asked for (the results were not verified).
    NotAsked,
    /// Proven against the verifiable index the checkpoint of `size` entries signs: the
    /// answer has exactly `total` entries, and the results are the first of them in order.
    Proven {
        /// The checkpoint's size.
        size: u64,
        /// How many entries the whole answer has.
        total: u64,
    },
    /// Each result is proven, but the answer's completeness is not (why).
    NotProven(String),
}

impl Completeness {
    /// One line for people.
    pub fn text(&self) -> String {
        match self {
            Completeness::NotAsked => "completeness not checked".into(),
            Completeness::Proven { size, .. } => {
                format!("complete: proven against the checkpoint of {size} entries")
            }
            Completeness::NotProven(why) => format!("completeness not proven: {why}"),
        }
    }
}

/// Runs `query`, page after page, until `limit` results or the last page. With `proving`,
/// every result's entry and inclusion proof are fetched and verified against a checkpoint
/// proven consistent with the last one seen, and its fields are replaced by what its
/// proven record says; a result that is not proven or does not match the filters is a
/// failed verification.
pub async fn query(
    client: &mut Client,
    mut query: Query,
    limit: usize,
    proving: Option<Proving<'_>>,
) -> Result<Found, ClientError> {
    query.page_size = limit.clamp(1, 1000) as u32;
    query.include_entries = proving.is_some();
    query.include_proofs = proving.is_some();
    let keys = query.keys()?;
    let mut completeness = match (proving.is_some(), keys.as_slice()) {
        (false, _) => Completeness::NotAsked,
        (true, [_]) => {
            query.prove_complete = true;
            Completeness::NotProven("the server sent no proof".into())
        }
        (true, []) => Completeness::NotProven(
            "a query needs one filter (subject, subject name, predicate type, signer, role, \
             kind or release) for its completeness to be proven"
                .into(),
        ),
        (true, more) => Completeness::NotProven(format!(
            "completeness is proven for one filter and a period; this query has {}",
            more.len()
        )),
    };
    // The whole answer as the proof gives it, in the order asked.
    let mut expected: Option<Vec<vindex::Element>> = None;
    let mut hits = Vec::new();
    let mut tree_size;
    let mut verified_at: Option<Checkpoint> = None;
    let next = loop {
        let page = match client.query(&query).await {
            // The server cannot prove this answer (too large, or an instance that does not
            // keep the index): each result is still proven, completeness is not claimed.
            Err(ClientError::Status {
                code: tonic::Code::FailedPrecondition,
                message,
                ..
            }) if query.prove_complete && query.cursor.is_none() => {
                completeness = Completeness::NotProven(format!("the server says: {message}"));
                query.prove_complete = false;
                continue;
            }
            page => page?,
        };
        tree_size = page.tree_size;
        if let Some(proving) = proving {
            let checkpoint = match &verified_at {
                Some(c) => c.clone(),
                None => {
                    let mut state = CheckpointState::load(proving.state_file)?;
                    let c = state
                        .advance(client, proving.log_key, &page.checkpoint)
                        .await?;
                    state.save(proving.state_file)?;
                    if c.size != page.tree_size {
                        return Err(ClientError::Invalid(format!(
                            "the server answered at tree size {} with a checkpoint of {}: retry",
                            page.tree_size, c.size
                        )));
                    }
                    verified_at = Some(c.clone());
                    let signs_index = vindex::root_from_extensions(&c.extensions)
                        .map_err(|e| ClientError::Verification(e.to_string()))?
                        .is_some();
                    if query.prove_complete && page.index_proof.is_none() && !signs_index {
                        // A log that does not commit an index (a server of an earlier
                        // version) cannot prove completeness; it is not claimed.
                        completeness = Completeness::NotProven(
                            "the log's checkpoints sign no verifiable index".into(),
                        );
                        query.prove_complete = false;
                    }
                    if query.prove_complete {
                        let proof = page.index_proof.as_ref().ok_or_else(|| {
                            ClientError::Verification(
                                "the server sent no proof that the answer is complete, though \
                                 its checkpoint signs a verifiable index"
                                    .into(),
                            )
                        })?;
                        let mut elements = proof
                            .verify(&c, &keys[0], query.since, query.until)
                            .map_err(|e| {
                                ClientError::Verification(format!(
                                    "the answer is not proven complete: {e}"
                                ))
                            })?;
                        if query.newest_first {
                            elements.reverse();
                        }
                        completeness = Completeness::Proven {
                            size: c.size,
                            total: elements.len() as u64,
                        };
                        expected = Some(elements);
                    }
                    c
                }
            };
            for hit in &page.hits {
                let proof = hit.proof.as_ref().ok_or_else(|| {
                    ClientError::Invalid(format!(
                        "the server sent no proof for entry {}",
                        hit.index
                    ))
                })?;
                merkle::verify_inclusion(
                    hit.index,
                    checkpoint.size,
                    &hit.leaf_hash,
                    proof,
                    &checkpoint.root,
                )
                .map_err(|e| {
                    ClientError::Verification(format!(
                        "entry {} is not proven in the checkpoint of {} entries: {e}",
                        hit.index, checkpoint.size
                    ))
                })?;
            }
        }
        let mut page_hits = page.hits;
        if proving.is_some() {
            for hit in &mut page_hits {
                from_record(hit, &query).map_err(ClientError::Verification)?;
            }
        }
        hits.extend(page_hits);
        if let Some(expected) = &expected {
            if hits.len() > expected.len() {
                check_complete(&hits, expected, false)?;
            }
        }
        if page.next_cursor.is_some() && page.next_cursor == query.cursor {
            return Err(ClientError::Response(
                "the server answered a page with the cursor it was asked with: it would page \
                 forever"
                    .into(),
            ));
        }
        match page.next_cursor {
            Some(cursor) if hits.len() < limit => {
                query.page_size = (limit - hits.len()).clamp(1, 1000) as u32;
                query.cursor = Some(cursor);
            }
            next => break next,
        }
    };
    hits.truncate(limit);
    if let Some(expected) = &expected {
        check_complete(&hits, expected, next.is_some())?;
    }
    Ok(Found {
        hits,
        tree_size,
        next_cursor: next,
        completeness,
    })
}

/// Holds the results against the proven answer: the same entries (index and leaf hash) in
/// the same order, every one of them unless the results stop at the limit (`more`), and
/// then a prefix.
fn check_complete(
    hits: &[Hit],
    expected: &[vindex::Element],
    more: bool,
) -> Result<(), ClientError> {
    for (n, hit) in hits.iter().enumerate() {
        match expected.get(n) {
            Some(e) if e.index == hit.index && e.leaf_hash == hit.leaf_hash => {}
            Some(e) => {
                return Err(ClientError::Verification(format!(
                    "the answer is not the proven one: result {} is entry {}, where the proof \
                     of the whole answer has entry {} (an entry was left out, added or moved)",
                    n + 1,
                    hit.index,
                    e.index
                )));
            }
            None => {
                return Err(ClientError::Verification(format!(
                    "the answer has more results than the proof of the whole answer: entry {} \
                     is not on the proven list",
                    hit.index
                )));
            }
        }
    }
    if !more && hits.len() < expected.len() {
        return Err(ClientError::Verification(format!(
            "the answer is not the proven one: it ends after {} result(s), the proof of the \
             whole answer has {} (entry {} was left out)",
            hits.len(),
            expected.len(),
            expected[hits.len()].index
        )));
    }
    Ok(())
}

/// Replaces a result's fields with what its proven leaf record says, and checks the record
/// against every filter that the record alone decides (all but signer and role, which
/// depend on the registry of the entry's time: [`audit`] checks those).
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
pub async fn query_all(client: &mut Client, mut query: Query) -> Result<Vec<Hit>, ClientError> {
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
/// signed by one of `release_signers` declare, in log order, each once: the population of
/// [`releases`].
pub async fn release_names(
    client: &mut Client,
    since: Option<i64>,
    until: Option<i64>,
    release_signers: &[SignerSpec],
) -> Result<Vec<String>, ClientError> {
    let query = Query {
        predicate_type: Some(predicates::RELEASE_V0_1.to_owned()),
        kind: Some(EntryKind::Attestation),
        since,
        until,
        include_entries: true,
        ..Query::default()
    };
    let mut found = Vec::new();
    for signer in release_signers {
        found.extend(query_all(client, signer.narrow(query.clone())).await?);
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

/// A verdict a deploy identity recorded: `(index, result, policy, signers)`.
type RecordedVerdict = (u64, VerificationResult, String, Vec<String>);

/// The newest verification summary about every one of `artifacts` that `signer` signed,
/// whatever it states: one whose result is neither PASSED nor FAILED is `UNKNOWN`, never
/// skipped for an older one.
async fn newest_verdict(
    client: &mut Client,
    artifacts: &[String],
    signer: &SignerSpec,
) -> Result<Option<RecordedVerdict>, ClientError> {
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
            let result = VerificationResult::parse(p["verificationResult"].as_str());
            let policy = p["policy"]["uri"].as_str().unwrap_or("").to_owned();
            return Ok(Some((h.index, result, policy, h.signers.clone())));
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(None),
        }
    }
}

/// What [`releases`] lists.
#[derive(Debug, Clone, Default)]
pub struct ReleasesQuery {
    /// Integrated at or after (nanoseconds).
    pub since: Option<i64>,
    /// Integrated at or before.
    pub until: Option<i64>,
    /// Only releases of this name.
    pub name: Option<String>,
    /// Whose release attestations are releases; others are listed as not trusted.
    pub release_signers: Vec<SignerSpec>,
    /// Whose verification summaries are a release's verdict; others are ignored.
    pub verdict_signers: Vec<SignerSpec>,
}

/// The release attestations of a period, in log order, each with the newest verdict a
/// verdict signer recorded about all its artifacts (only for trusted ones): the population
/// an auditor samples from.
pub async fn releases(
    client: &mut Client,
    asked: &ReleasesQuery,
) -> Result<Vec<ReleaseRow>, ClientError> {
    Ok(releases_checked(client, asked, None).await?.0)
}

/// [`releases`], and with `proving` the population proven: every release attestation's
/// entry proven in a verified checkpoint, and the list of them proven complete for the
/// period against the verifiable index it signs (by the release name's list with a name,
/// by the release predicate type's without).
pub async fn releases_checked(
    client: &mut Client,
    asked: &ReleasesQuery,
    proving: Option<Proving<'_>>,
) -> Result<(Vec<ReleaseRow>, Completeness), ClientError> {
    let releases = Query {
        predicate_type: Some(predicates::RELEASE_V0_1.to_owned()),
        kind: Some(EntryKind::Attestation),
        release: asked.name.clone(),
        since: asked.since,
        until: asked.until,
        ..Query::default()
    };
    let (found, completeness) = match proving {
        None => (
            query_all(
                client,
                Query {
                    include_entries: true,
                    ..releases.clone()
                },
            )
            .await?,
            Completeness::NotAsked,
        ),
        Some(proving) => {
            // One list, so that the answer is proven complete: the release name's, or the
            // release predicate type's (which only attestations have).
            let population = match &asked.name {
                Some(name) => Query {
                    release: Some(name.clone()),
                    since: asked.since,
                    until: asked.until,
                    ..Query::default()
                },
                None => Query {
                    predicate_type: Some(predicates::RELEASE_V0_1.to_owned()),
                    since: asked.since,
                    until: asked.until,
                    ..Query::default()
                },
            };
            let found = query(client, population, usize::MAX, Some(proving)).await?;
            if found.next_cursor.is_some() {
                return Err(ClientError::Invalid(
                    "the population is larger than one listing: narrow the period".into(),
                ));
            }
            (found.hits, found.completeness)
        }
    };
    // The release attestations a release signer signed, by the server's signer and role
    // indexes. Asked after `found`: the log only grows, so every entry found is seen here.
    let mut trusted = BTreeSet::new();
    for signer in &asked.release_signers {
        let hits = query_all(client, signer.narrow(releases.clone())).await?;
        trusted.extend(hits.iter().map(|h| h.index));
    }
    let mut rows = Vec::new();
    for hit in found {
        let Some(record) = &hit.record else {
            return Err(ClientError::Invalid(format!(
                "the server sent no entry for {}",
                hit.index
            )));
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
        let mut verdict: Option<RecordedVerdict> = None;
        if is_trusted {
            for signer in &asked.verdict_signers {
                let found = newest_verdict(client, &artifacts, signer).await?;
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
    Ok((rows, completeness))
}

/// The latest checkpoint, verified and proven consistent with the last one seen (and then
/// remembered in `state_file`).
///
/// With witnesses required, it is the latest witnessed checkpoint, refused without their
/// cosignatures.
pub async fn latest<R: LogReader>(
    client: &mut R,
    log_key: &Verifier,
    witnesses: &WitnessPolicy,
    state_file: &Path,
) -> Result<Checkpoint, ClientError> {
    let mut state = CheckpointState::load(state_file)?;
    let note = client.read_checkpoint(witnesses.threshold() > 0).await?;
    let checkpoint = state
        .advance_witnessed(client, log_key, witnesses, &note)
        .await?;
    state.save(state_file)?;
    Ok(checkpoint)
}

/// Downloads and replays entries until the replay covers `checkpoint`, then holds it
/// against the checkpoint; `progress(done, total)` is told after each batch. A problem is a
/// failed verification naming the entry.
pub async fn replay_to<R: LogReader>(
    client: &mut R,
    replay: &mut Replay,
    checkpoint: &Checkpoint,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), ClientError> {
    let total = checkpoint.size;
    while replay.size() < total {
        let at = replay.size();
        let records = match client.read_entries(at, total).await {
            Ok(records) => records,
            // The server says it lost data it signed: that is a finding, not an outage.
            Err(ClientError::Status {
                code: tonic::Code::DataLoss,
                message,
                ..
            }) => {
                return Err(ClientError::Verification(format!(
                    "entry {at}: the log signed a checkpoint of {total} entries but could not \
                     return this one: {message}"
                )));
            }
            // The tiles of a signed checkpoint that lack an entry: a finding too.
            Err(e) if e.is_verification_failure() => {
                return Err(ClientError::Verification(format!("entry {at}: {e}")));
            }
            Err(e) => return Err(ClientError::input(format!("fetching entry {at}"), e)),
        };
        if records.is_empty() {
            return Err(ClientError::Verification(format!(
                "entry {at}: the server returned no entries below {total}"
            )));
        }
        for bytes in &records {
            replay
                .push(bytes)
                .map_err(|e| ClientError::Verification(e.to_string()))?;
        }
        progress(replay.size(), total);
    }
    replay
        .check_checkpoint(checkpoint)
        .map_err(|e| ClientError::Verification(e.to_string()))
}

/// The pinned genesis as the registry a replay starts from.
pub fn genesis_registry(
    genesis: &evident_core::registry::GenesisDocument,
) -> Result<Registry, ClientError> {
    genesis
        .to_registry()
        .map_err(|e| ClientError::Invalid(format!("the pinned genesis is invalid: {e}")))
}

/// What [`audit`] found: the whole log replays.
#[derive(Debug, Clone)]
pub struct Audited {
    /// The latest checkpoint, whose root the replay matched.
    pub checkpoint: Checkpoint,
    /// What the log holds.
    pub summary: Summary,
}

/// Replays the whole log from the pinned genesis: every chain link, signature, registry and
/// policy entry, and the root against the latest checkpoint (proven consistent with the
/// last one seen). After a fork or rollback, the served log is replayed up to the size
/// verified before, to say where it departs from it.
pub async fn audit<R: LogReader>(
    client: &mut R,
    log_key: &Verifier,
    witnesses: &WitnessPolicy,
    registry: Registry,
    state_file: &Path,
    progress: impl FnMut(u64, u64),
) -> Result<Audited, ClientError> {
    let seen = CheckpointState::load(state_file)?.last(log_key)?;
    let checkpoint = match latest(client, log_key, witnesses, state_file).await {
        Ok(c) => c,
        Err(e) if e.is_verification_failure() => {
            return Err(match seen {
                Some(old) => locate_fork(client, log_key, registry, &old, e).await,
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    let mut replay = Replay::new(registry);
    replay_to(client, &mut replay, &checkpoint, progress).await?;
    Ok(Audited {
        checkpoint,
        summary: replay.summary().clone(),
    })
}

/// After a fork or rollback: replays the served log up to the size verified before, to say
/// where it departs from it. Returns `found`, with that added when it can be said.
async fn locate_fork<R: LogReader>(
    client: &mut R,
    key: &Verifier,
    registry: Registry,
    old: &Checkpoint,
    found: ClientError,
) -> ClientError {
    let Ok(note) = client.read_checkpoint(false).await else {
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
        let Ok(records) = client.read_entries(replay.size(), old.size).await else {
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
    ClientError::Verification(format!("{found}; {detail}"))
}

/// A follower of the log, for `monitor`: each [`Monitor::poll`] verifies the latest
/// checkpoint against the last one seen and replays the new entries.
#[derive(Debug)]
pub struct Monitor {
    replay: Replay,
}

/// What one [`Monitor::poll`] saw.
#[derive(Debug, Clone)]
pub struct Polled {
    /// The latest checkpoint, verified and replayed to.
    pub checkpoint: Checkpoint,
    /// How many entries this poll replayed.
    pub new_entries: u64,
}

impl Monitor {
    /// A monitor that replays from the pinned genesis.
    pub fn new(registry: Registry) -> Monitor {
        Monitor {
            replay: Replay::new(registry),
        }
    }

    /// Verifies the latest checkpoint and replays up to it. A fork, a rollback or an invalid
    /// entry is a failed verification; any other error (the server away) leaves what was
    /// replayed before, so the next poll goes on from there.
    pub async fn poll<R: LogReader>(
        &mut self,
        client: &mut R,
        log_key: &Verifier,
        witnesses: &WitnessPolicy,
        state_file: &Path,
    ) -> Result<Polled, ClientError> {
        let before = self.replay.size();
        let checkpoint = latest(client, log_key, witnesses, state_file).await?;
        replay_to(client, &mut self.replay, &checkpoint, |_, _| {}).await?;
        Ok(Polled {
            checkpoint,
            new_entries: self.replay.size() - before,
        })
    }
}

/// What an auditor's report covers.
#[derive(Debug, Clone)]
pub enum ReportScope {
    /// One artifact or release.
    One(Release),
    /// Every release that release attestations of a period declare.
    Period {
        /// From (RFC 3339, or a date: from its start).
        since: Option<String>,
        /// Until (RFC 3339, or a date: to its end).
        until: Option<String>,
        /// Whose release attestations declare the period's releases, as [`releases`]
        /// counts them.
        release_signers: Vec<SignerSpec>,
    },
}

/// What [`report`] found: the report to render, and each release's verdict.
#[derive(Debug, Clone)]
pub struct Reported {
    /// The report ([`crate::report::render_html`], [`crate::report::render_markdown`]).
    pub document: Document,
    /// Each release, with the policy applied and its verdict, in the report's order.
    pub releases: Vec<ReportedRelease>,
}

/// What a report is of, and how it is made.
#[derive(Debug, Clone, Copy)]
pub struct ReportRequest<'a> {
    /// The policy to evaluate.
    pub policy: &'a PolicyRef,
    /// One release, or a period's.
    pub scope: &'a ReportScope,
    /// The time the report is made, in nanoseconds since the Unix epoch: the time the
    /// policies are evaluated at, unless `as_of` is given.
    pub now: i64,
    /// Re-perform the decisions as of this past time (nanoseconds): each bundle is verified
    /// whole, then replayed only to this time (`Bundle::verify_as_of`), so the registry,
    /// the latest policy version and the evidence are those of that moment. A period's
    /// releases are those declared by then.
    pub as_of: Option<i64>,
    /// The framework catalogue the controls are linked through (`docs/FRAMEWORKS.md`).
    pub catalogue: &'a evident_core::frameworks::Catalogue,
    /// Whose verification summaries are a release's recorded deploy verdict, as
    /// [`releases`] counts them; anyone else's are shown but never taken as the verdict.
    pub verdict_signers: &'a [SignerSpec],
}

/// The auditor's report of releases: fetches each release's evidence bundle, proves its
/// checkpoint consistent with the last one seen, verifies it under the pinned key and
/// genesis and evaluates the policy as of `request.now`, exactly as the gate does. A denied
/// release is reported; a bundle that does not verify, or a release nobody declared, is a
/// failed verification and nothing is reported.
pub async fn report(
    client: &mut Client,
    log_key: &Verifier,
    genesis: &GenesisDocument,
    state_file: &Path,
    request: ReportRequest<'_>,
) -> Result<Reported, ClientError> {
    let ReportRequest {
        policy,
        scope,
        now,
        as_of,
        catalogue,
        verdict_signers,
    } = request;
    let verdict_rules: Vec<_> = verdict_signers.iter().map(SignerSpec::rule).collect();
    if as_of.is_some_and(|t| t > now) {
        return Err(ClientError::Invalid(format!(
            "the time to re-perform the decisions as of ({}) is in the future: give a past \
             time, such as the deploy's",
            time_text(as_of.unwrap_or_default())
        )));
    }
    let evaluated_at = as_of.unwrap_or(now);
    let mut population = None;
    let (title, targets) = match scope {
        ReportScope::One(release) => {
            let label = match release {
                Release::Artifact(a) | Release::Named(a) => a.clone(),
            };
            (
                format!("Evident release report: {label}"),
                vec![release.clone()],
            )
        }
        ReportScope::Period {
            since: since_text,
            until: until_text,
            release_signers,
        } => {
            let (since, until) = period(since_text.as_deref(), until_text.as_deref())?;
            // As of a past time, the releases declared by then.
            let until = match (until, as_of) {
                (Some(u), Some(t)) => Some(u.min(t)),
                (u, t) => u.or(t),
            };
            let names = release_names(client, since, until, release_signers).await?;
            // The population the names come from, proven complete: every release
            // attestation integrated in the period.
            let found = query(
                client,
                Query {
                    predicate_type: Some(predicates::RELEASE_V0_1.to_owned()),
                    since,
                    until,
                    ..Query::default()
                },
                usize::MAX,
                Some(Proving {
                    log_key,
                    state_file,
                }),
            )
            .await?;
            // Every proven release attestation is either reported (a release signer
            // declared its release, by the server's signer lists) or named as not: none is
            // dropped silently, whatever those lists say.
            let mut not_reported = Vec::new();
            for hit in &found.hits {
                let declared = hit
                    .record
                    .as_ref()
                    .and_then(|r| Statement::from_envelope(r.envelope()).ok())
                    .and_then(|s| predicates::release_name_version(&s.predicate));
                let label = match declared {
                    Some((name, version)) => format!("{name}@{version}"),
                    None => "(no release name)".to_owned(),
                };
                if !names.contains(&label) {
                    not_reported.push(format!("{label} (entry {})", hit.index));
                }
            }
            population = Some(match found.completeness {
                Completeness::Proven { size, total } => crate::report::PopulationProof {
                    complete: true,
                    release_attestations: Some(total),
                    checkpoint_size: Some(size),
                    text: Completeness::Proven { size, total }.text(),
                    not_reported,
                },
                other => crate::report::PopulationProof {
                    complete: false,
                    release_attestations: None,
                    checkpoint_size: None,
                    text: other.text(),
                    not_reported,
                },
            });
            let period = format!(
                "{} to {}",
                since_text.as_deref().unwrap_or("the start"),
                until_text.as_deref().unwrap_or("now")
            );
            (
                format!(
                    "Evident release report: {} release(s), {period}",
                    names.len()
                ),
                names.into_iter().map(Release::Named).collect(),
            )
        }
    };
    let mut sections = Vec::new();
    let mut releases = Vec::new();
    let mut latest_seen = None;
    for release in &targets {
        let (label, verified) =
            verified_bundle(client, log_key, genesis, state_file, release, as_of).await?;
        let applied = verified.policy(&policy.name, policy.version).map_err(|e| {
            let when = as_of.map_or(String::new(), |t| format!(" as of {}", time_text(t)));
            ClientError::Invalid(format!("{label}{when}: {e}"))
        })?;
        let evaluation = crate::gate::decide(&verified, release, applied, evaluated_at)?;
        releases.push(ReportedRelease {
            release: label.clone(),
            policy: evaluation.policy.clone(),
            decision: Decision::from_allowed(evaluation.allowed),
        });
        sections.push(ReleaseReport::new(
            &label,
            &verified,
            applied,
            &evaluation,
            catalogue,
            &verdict_rules,
        ));
        latest_seen = Some(verified.checkpoint().clone());
    }
    let checkpoint = match latest_seen {
        Some(c) => c,
        // No release in the period: the report says so, against the latest checkpoint.
        None => latest(client, log_key, &WitnessPolicy::none(), state_file).await?,
    };
    let mut document = Document::new(title, now, log_key, &checkpoint);
    document.as_of = as_of.map(time_text);
    document.releases = sections;
    document.population = population;
    Ok(Reported { document, releases })
}

/// Fetches a release's bundle, proves its checkpoint consistent with the last one seen,
/// and verifies it under the pinned key and genesis, as the gate does.
async fn verified_bundle(
    client: &mut Client,
    log_key: &Verifier,
    genesis: &GenesisDocument,
    state_file: &Path,
    release: &Release,
    as_of: Option<i64>,
) -> Result<(String, VerifiedBundle), ClientError> {
    let mut state = CheckpointState::load(state_file)?;
    let bundle = match client.release_bundle(release).await {
        Ok(bundle) => bundle,
        // A release nobody declared has no evidence to verify: a finding about the release,
        // not an outage.
        Err(ClientError::Status {
            code: tonic::Code::NotFound,
            message,
            ..
        }) if matches!(release, Release::Named(_)) => {
            return Err(ClientError::Verification(format!(
                "release {}: {message}: no report was written; check the name and version, \
                 or list the declared releases with `evident releases`",
                release_label(release)
            )));
        }
        Err(e) => return Err(e),
    };
    // The bundle's checkpoint must extend every checkpoint this machine saw before, so a
    // forked or rolled-back log is refused here as at the gate.
    state.advance(client, log_key, &bundle.checkpoint).await?;
    state.save(state_file)?;
    let verified = bundle
        .verify_as_of(log_key, genesis, as_of)
        .map_err(|e| ClientError::Verification(e.to_string()))?;
    Ok((release_label(release), verified))
}

/// How a report names a release: `NAME@VERSION`, or the artifact's digest.
fn release_label(release: &Release) -> String {
    match release {
        Release::Artifact(a) => a.to_ascii_lowercase(),
        Release::Named(n) => n.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

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

    #[test]
    fn a_date_is_its_whole_day() {
        let start = parse_time("since", "2026-11-27", false).unwrap();
        let end = parse_time("until", "2026-11-27", true).unwrap();
        assert_eq!(end - start, 86_400_000_000_000 - 1);
        assert_eq!(
            parse_time("since", "2026-11-27T00:00:00Z", false).unwrap(),
            start
        );
        let err = parse_time("since", "yesterday", false).unwrap_err();
        assert!(err.to_string().contains("neither RFC 3339"), "{err}");
    }
}
