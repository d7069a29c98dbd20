//! Release policies: which controls a release must pass, and the evaluation of a policy over
//! verified evidence into a report (pass / fail / missing per control, with reasons and the
//! entries used).
//!
//! A policy is a TOML document (`docs/POLICY.md`). Parsing compiles every CEL condition, so
//! a policy that would fail at gate time is refused when it is submitted, with its line.
//! Evaluation is pure: the caller passes the evidence (already verified and authorized
//! against the registry as of each entry) and the gate's time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::hash::Hash;
use crate::predicates::{self, Decision, Severity};
use crate::registry::{Authorized, Registry};
use crate::statement::Statement;

/// The payload type of policy entries.
pub const POLICY_PAYLOAD_TYPE: &str = "application/vnd.evident.policy+toml";

/// Why a policy document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not valid TOML for a policy; the message has the line and column.
    #[error("policy does not parse: {0}")]
    Parse(String),
    /// A value is wrong; names the control, the field and the line.
    #[error("policy control {control:?}, line {line}: {problem}")]
    Control {
        /// The control id.
        control: String,
        /// 1-based line of the offending value.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The document as a whole is wrong (no name, no controls, duplicate ids).
    #[error("policy: {0}")]
    Document(String),
}

/// Which subject a control's evidence must be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    /// The release's artifacts (default).
    Artifact,
    /// The source commits the artifacts were built from (via SLSA provenance).
    SourceCommit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    version: u64,
    #[serde(default)]
    description: String,
    #[serde(rename = "control", default)]
    controls: Vec<toml::Spanned<RawControl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    id: String,
    predicate_type: String,
    #[serde(default)]
    signers: Vec<String>,
    #[serde(default)]
    subject: Option<SubjectKind>,
    #[serde(default)]
    min_distinct_signers: Option<usize>,
    #[serde(default)]
    require: Option<toml::Spanned<String>>,
    #[serde(default)]
    separation_of_duties: bool,
    #[serde(default)]
    min_approvals: Option<usize>,
    #[serde(default)]
    no_changes_requested: bool,
    #[serde(default)]
    reviewed_commit_is_built: bool,
    #[serde(default)]
    max_age: Option<toml::Spanned<String>>,
    #[serde(default)]
    max_severity: Option<toml::Spanned<String>>,
    #[serde(default)]
    allow: Vec<Allowed>,
}

/// A finding that a `max_severity` rule lets through, with the reason an auditor will read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowed {
    /// The finding's id, e.g. `CVE-2024-0001`.
    pub id: String,
    /// Why it is accepted.
    pub reason: String,
}

/// Who may satisfy a control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerRule {
    /// A registered identity.
    Identity(String),
    /// Any registered signer with this role.
    Role(String),
}

impl fmt::Display for SignerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerRule::Identity(i) => f.write_str(i),
            SignerRule::Role(r) => write!(f, "role:{r}"),
        }
    }
}

/// One control of a policy, checked.
#[derive(Debug, Clone)]
pub struct Control {
    /// Its id, unique in the policy.
    pub id: String,
    /// The predicate type of its evidence.
    pub predicate_type: String,
    /// Who may satisfy it; empty means any registered signer.
    pub signers: Vec<SignerRule>,
    /// What the evidence must be about.
    pub subject: SubjectKind,
    /// Distinct signers needed among passing entries (at least 1).
    pub min_distinct_signers: usize,
    /// The CEL condition on the Statement, with its source text.
    pub require: Option<(String, Arc<cel::Program>)>,
    /// No approver is the change author, nor a signer of the artifact's provenance.
    pub separation_of_duties: bool,
    /// Distinct approvers needed (approval evidence only).
    pub min_approvals: Option<usize>,
    /// No reviewer's latest decision is CHANGES_REQUESTED.
    pub no_changes_requested: bool,
    /// The approval's reviewed commit is a commit the artifact was built from.
    pub reviewed_commit_is_built: bool,
    /// Evidence older than this (nanoseconds before the gate) does not count.
    pub max_age_nanos: Option<i64>,
    /// Findings at or above this severity fail the control unless allowed.
    pub max_severity: Option<Severity>,
    /// Findings accepted despite `max_severity`.
    pub allow: Vec<Allowed>,
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name, e.g. `payments-prod`.
    pub name: String,
    /// Its version; each version is a separate entry in the log.
    pub version: u64,
    /// Free text.
    pub description: String,
    /// The controls. Invariant: not empty, ids unique.
    pub controls: Vec<Control>,
    /// The document as written.
    pub source: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a duration such as `7d`, `24h`, `30m` or `90s` into nanoseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (last, _) = text.char_indices().last()?;
    let (number, unit) = text.split_at(last);
    let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return None,
    };
    n.checked_mul(seconds)?.checked_mul(1_000_000_000)
}

impl Policy {
    /// Parses and checks a policy document: TOML shape, unique control ids, signer rules,
    /// durations and severities, and compiles every CEL condition.
    pub fn parse(source: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy =
            toml::from_str(source).map_err(|e| PolicyError::Parse(e.to_string()))?;
        crate::names::check_name("policy name", &raw.name)
            .map_err(|e| PolicyError::Document(e.to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(PolicyError::Document("`name` is empty".into()));
        }
        if raw.controls.is_empty() {
            return Err(PolicyError::Document(
                "no controls: add at least one [[control]]".into(),
            ));
        }
        let mut ids = BTreeSet::new();
        let mut controls = Vec::with_capacity(raw.controls.len());
        for spanned in raw.controls {
            let control_line = line_of(source, spanned.span().start);
            let c = spanned.into_inner();
            let err = |line: usize, problem: String| PolicyError::Control {
                control: c.id.clone(),
                line,
                problem,
            };
            if c.id.trim().is_empty() {
                return Err(err(control_line, "`id` is empty".into()));
            }
            if !ids.insert(c.id.clone()) {
                return Err(err(control_line, "another control has the same id".into()));
            }
            if c.predicate_type.trim().is_empty() {
                return Err(err(control_line, "`predicate_type` is empty".into()));
            }
            let signers = c
                .signers
                .iter()
                .map(|s| match s.strip_prefix("role:") {
                    Some("") => Err(err(control_line, format!("signer {s:?} names no role"))),
                    Some(role) => Ok(SignerRule::Role(role.to_owned())),
                    None if s.trim().is_empty() => Err(err(control_line, "an empty signer".into())),
                    None => Ok(SignerRule::Identity(s.clone())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let require = match &c.require {
                None => None,
                Some(spanned) => {
                    let line = line_of(source, spanned.span().start);
                    let program = cel::Program::compile(spanned.get_ref())
                        .map_err(|e| err(line, format!("`require` does not compile: {e}")))?;
                    Some((spanned.get_ref().clone(), Arc::new(program)))
                }
            };
            let max_age_nanos = match &c.max_age {
                None => None,
                Some(spanned) => Some(parse_duration(spanned.get_ref()).ok_or_else(|| {
                    err(
                        line_of(source, spanned.span().start),
                        format!(
                            "`max_age` {:?} is not a duration such as 7d, 24h, 30m",
                            spanned.get_ref()
                        ),
                    )
                })?),
            };
            let max_severity = match &c.max_severity {
                None => None,
                Some(spanned) => Some(
                    Severity::parse(spanned.get_ref())
                        .filter(|s| *s != Severity::None)
                        .ok_or_else(|| {
                            err(
                                line_of(source, spanned.span().start),
                                format!(
                                    "`max_severity` {:?} is not LOW, MEDIUM, HIGH or CRITICAL",
                                    spanned.get_ref()
                                ),
                            )
                        })?,
                ),
            };
            if c.min_distinct_signers == Some(0) || c.min_approvals == Some(0) {
                return Err(err(
                    control_line,
                    "a minimum of 0 would pass with no evidence".into(),
                ));
            }
            controls.push(Control {
                id: c.id.clone(),
                predicate_type: c.predicate_type.clone(),
                signers,
                subject: c.subject.unwrap_or(SubjectKind::Artifact),
                min_distinct_signers: c.min_distinct_signers.unwrap_or(1),
                require,
                separation_of_duties: c.separation_of_duties,
                min_approvals: c.min_approvals,
                no_changes_requested: c.no_changes_requested,
                reviewed_commit_is_built: c.reviewed_commit_is_built,
                max_age_nanos,
                max_severity,
                allow: c.allow.clone(),
            });
        }
        Ok(Policy {
            name: raw.name,
            version: raw.version,
            description: raw.description,
            controls,
            source: source.to_owned(),
        })
    }

    /// Checks that every `role:NAME` the policy names is held by some signer the registry
    /// has ever known, so a typo in a role cannot silently make a control unsatisfiable.
    pub fn check_roles(&self, registry: &Registry) -> Result<(), PolicyError> {
        let known: BTreeSet<&str> = registry
            .signer_keys()
            .iter()
            .flat_map(|k| k.roles.iter().map(String::as_str))
            .collect();
        for control in &self.controls {
            for rule in &control.signers {
                if let SignerRule::Role(role) = rule {
                    if !known.contains(role.as_str()) {
                        let line = self
                            .source
                            .find(&format!("role:{role}"))
                            .map_or(0, |o| line_of(&self.source, o));
                        return Err(PolicyError::Control {
                            control: control.id.clone(),
                            line,
                            problem: format!(
                                "role {role:?} is held by no registered signer (known roles: {})",
                                known.iter().copied().collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// One piece of verified evidence: an attestation in the log, authorized at its integrated
/// time.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Its integrated time (nanoseconds).
    pub integrated_time: i64,
    /// The Statement.
    pub statement: Statement,
    /// The signers the registry authorized for it (identity and roles as of then), less
    /// those whose key was later revoked from a time at or before the entry.
    pub signers: Vec<Authorized>,
    /// Why signers were discounted after the fact (a backdated revocation), in words.
    pub withdrawn: Vec<String>,
}

/// A control's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The evidence satisfies the control.
    Pass,
    /// There is evidence, and it does not satisfy the control.
    Fail,
    /// No evidence of this kind, from these signers, about this subject.
    Missing,
}

/// An entry a control looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsedEntry {
    /// The log index.
    pub index: u64,
    /// The leaf hash (hex).
    pub leaf_hash: String,
}

/// One control's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlReport {
    /// The control id.
    pub id: String,
    /// Pass, fail or missing.
    pub status: Status,
    /// Why, in words.
    pub reason: String,
    /// The entries that satisfied the control (on pass) or were examined (otherwise).
    pub entries: Vec<UsedEntry>,
}

/// The verdict on a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `name@version` of the policy.
    pub policy: String,
    /// The artifact digests the release is (`alg:hex`).
    pub artifacts: Vec<String>,
    /// The source commits found through provenance.
    pub source_commits: Vec<String>,
    /// Every control, in policy order.
    pub controls: Vec<ControlReport>,
    /// True when every control passed.
    pub allowed: bool,
}

/// The subject of a release: its artifact digests and the commits they were built from.
#[derive(Debug, Clone, Default)]
pub struct ReleaseSubject {
    /// `(algorithm, hex)` digests of the artifacts.
    pub artifacts: BTreeSet<(String, String)>,
    /// Source commits (hex), from SLSA provenance about the artifacts.
    pub source_commits: BTreeSet<String>,
    /// Identities that signed provenance about the artifacts.
    pub builders: BTreeSet<String>,
}

impl ReleaseSubject {
    /// The subject of `artifacts`, following provenance in `evidence` to source commits.
    /// Only provenance that could satisfy the policy counts: integrated by the gate, with a
    /// signature not withdrawn, by a signer the policy's provenance controls allow (any
    /// registered signer when the policy has no provenance control). Digests are compared
    /// in lowercase.
    pub fn derive(
        artifacts: &[(String, String)],
        evidence: &[Evidence],
        policy: &Policy,
        gate_time: i64,
    ) -> ReleaseSubject {
        let mut subject = ReleaseSubject {
            artifacts: artifacts
                .iter()
                .map(|(a, v)| (a.to_owned(), v.to_ascii_lowercase()))
                .collect(),
            ..ReleaseSubject::default()
        };
        let rules: Vec<&SignerRule> = policy
            .controls
            .iter()
            .filter(|c| c.predicate_type == predicates::SLSA_PROVENANCE_V1)
            .flat_map(|c| c.signers.iter())
            .collect();
        let trusted = |s: &Authorized| {
            rules.is_empty()
                || rules.iter().any(|rule| match rule {
                    SignerRule::Identity(i) => *i == s.identity,
                    SignerRule::Role(r) => s.roles.contains(r),
                })
        };
        for e in evidence {
            if e.statement.predicate_type == predicates::SLSA_PROVENANCE_V1
                && e.integrated_time <= gate_time
                && e.signers.iter().any(trusted)
                && about(&e.statement, &subject.artifacts)
            {
                subject
                    .source_commits
                    .extend(predicates::provenance_source_commits(
                        &e.statement.predicate,
                    ));
                subject
                    .builders
                    .extend(e.signers.iter().map(|s| s.identity.clone()));
            }
        }
        subject
    }
}

/// Whether any subject digest of the statement is in `digests`.
fn about(statement: &Statement, digests: &BTreeSet<(String, String)>) -> bool {
    statement
        .digests()
        .any(|(alg, value)| digests.contains(&(alg.as_str().to_owned(), value.to_owned())))
}

fn about_commit(statement: &Statement, commits: &BTreeSet<String>) -> bool {
    statement
        .digests()
        .any(|(alg, value)| matches!(alg.as_str(), "gitCommit" | "sha1") && commits.contains(value))
}

fn used(e: &Evidence) -> UsedEntry {
    UsedEntry {
        index: e.index,
        leaf_hash: e.leaf_hash.to_hex(),
    }
}

fn signer_allowed(rules: &[SignerRule], signer: &Authorized) -> bool {
    rules.is_empty()
        || rules.iter().any(|rule| match rule {
            SignerRule::Identity(i) => *i == signer.identity,
            SignerRule::Role(r) => signer.roles.contains(r),
        })
}

/// Evaluates `policy` for the release `subject` over verified `evidence`, as of `gate_time`
/// (nanoseconds): only evidence integrated at or before the gate counts.
pub fn evaluate(
    policy: &Policy,
    subject: &ReleaseSubject,
    evidence: &[Evidence],
    gate_time: i64,
) -> Report {
    let controls: Vec<ControlReport> = policy
        .controls
        .iter()
        .map(|c| evaluate_control(c, subject, evidence, gate_time))
        .collect();
    Report {
        policy: format!("{}@{}", policy.name, policy.version),
        artifacts: subject
            .artifacts
            .iter()
            .map(|(a, v)| format!("{a}:{v}"))
            .collect(),
        source_commits: subject.source_commits.iter().cloned().collect(),
        allowed: controls.iter().all(|c| c.status == Status::Pass),
        controls,
    }
}

fn evaluate_control(
    control: &Control,
    subject: &ReleaseSubject,
    evidence: &[Evidence],
    gate_time: i64,
) -> ControlReport {
    let report = |status, reason: String, entries: Vec<UsedEntry>| ControlReport {
        id: control.id.clone(),
        status,
        reason,
        entries,
    };
    let subject_text = match control.subject {
        SubjectKind::Artifact => "the artifact",
        SubjectKind::SourceCommit => "the source commit",
    };
    // Evidence of the right kind, about the right subject, from allowed signers.
    let candidates: Vec<(&Evidence, Vec<&Authorized>)> = evidence
        .iter()
        .filter(|e| e.statement.predicate_type == control.predicate_type)
        .filter(|e| match control.subject {
            SubjectKind::Artifact => about(&e.statement, &subject.artifacts),
            SubjectKind::SourceCommit => about_commit(&e.statement, &subject.source_commits),
        })
        .map(|e| {
            let allowed = e
                .signers
                .iter()
                .filter(|s| signer_allowed(&control.signers, s))
                .collect::<Vec<_>>();
            (e, allowed)
        })
        .collect();
    // Evidence whose every signature was withdrawn by a later revocation: say so, rather
    // than call the control missing.
    if let Some((e, _)) = candidates
        .iter()
        .find(|(e, signers)| signers.is_empty() && !e.withdrawn.is_empty())
    {
        if candidates.iter().all(|(_, signers)| signers.is_empty()) {
            return report(
                Status::Fail,
                format!("entry {}: {}", e.index, e.withdrawn.join("; ")),
                candidates.iter().map(|(e, _)| used(e)).collect(),
            );
        }
    }
    let candidates: Vec<(&Evidence, Vec<&Authorized>)> = candidates
        .into_iter()
        .filter(|(_, signers)| !signers.is_empty())
        .collect();
    if candidates.is_empty() {
        let from = if control.signers.is_empty() {
            String::new()
        } else {
            format!(
                " signed by {}",
                control
                    .signers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        return report(
            Status::Missing,
            format!(
                "no {} attestation{from} about {subject_text}",
                control.predicate_type
            ),
            vec![],
        );
    }
    let examined: Vec<UsedEntry> = candidates.iter().map(|(e, _)| used(e)).collect();
    let all_candidates: Vec<&Evidence> = candidates
        .iter()
        .map(|(e, _)| *e)
        .filter(|e| e.integrated_time <= gate_time)
        .collect();
    let mut passing: Vec<(&Evidence, Vec<&Authorized>)> = Vec::new();
    let mut first_failure: Option<String> = None;
    for (e, signers) in candidates {
        match check_entry(control, subject, e, gate_time) {
            Ok(()) => passing.push((e, signers)),
            Err(why) => {
                first_failure.get_or_insert(format!("entry {}: {why}", e.index));
            }
        }
    }
    let fail = |reason: String| report(Status::Fail, reason, examined.clone());
    if passing.is_empty() {
        return fail(first_failure.unwrap_or_else(|| "no entry satisfies the control".into()));
    }
    // Controls over several attestations: distinct signers and approvers.
    let distinct: BTreeSet<&str> = passing
        .iter()
        .flat_map(|(_, signers)| signers.iter().map(|s| s.identity.as_str()))
        .collect();
    if distinct.len() < control.min_distinct_signers {
        return fail(format!(
            "{} distinct signer(s) ({}), {} required{}",
            distinct.len(),
            distinct.iter().copied().collect::<Vec<_>>().join(", "),
            control.min_distinct_signers,
            first_failure.map(|f| format!("; {f}")).unwrap_or_default()
        ));
    }
    // Reviews span attestations: each reviewer's latest decision over every approval about
    // this subject, in log order, decides.
    let mut latest: BTreeMap<String, Decision> = BTreeMap::new();
    if control.no_changes_requested || control.min_approvals.is_some() {
        let mut ordered: Vec<&Evidence> = all_candidates.clone();
        ordered.sort_by_key(|e| e.index);
        for e in ordered {
            for review in predicates::approval(&e.statement.predicate).reviewers {
                latest.insert(review.identity, review.decision);
            }
        }
    }
    if control.no_changes_requested {
        if let Some((who, _)) = latest
            .iter()
            .find(|(_, d)| **d == Decision::ChangesRequested)
        {
            return fail(format!(
                "{who} requested changes and has not approved since"
            ));
        }
    }
    if let Some(needed) = control.min_approvals {
        // An approver counts when they signed an approval that lists them as APPROVED, and
        // APPROVED is still their latest decision.
        let approvers: BTreeSet<&str> =
            passing
                .iter()
                .flat_map(|(e, signers)| {
                    let approval = predicates::approval(&e.statement.predicate);
                    signers
                        .iter()
                        .filter(|s| {
                            approval.reviewers.iter().any(|r| {
                                r.identity == s.identity && r.decision == Decision::Approved
                            }) && latest.get(&s.identity) == Some(&Decision::Approved)
                        })
                        .map(|s| s.identity.as_str())
                        .collect::<Vec<_>>()
                })
                .collect();
        if approvers.len() < needed {
            return fail(format!(
                "{} distinct approver(s) ({}), {needed} required{}",
                approvers.len(),
                approvers.iter().copied().collect::<Vec<_>>().join(", "),
                first_failure.map(|f| format!("; {f}")).unwrap_or_default()
            ));
        }
    }
    let entries = passing.iter().map(|(e, _)| used(e)).collect();
    report(
        Status::Pass,
        format!(
            "satisfied by {} entr{} signed by {}",
            passing.len(),
            if passing.len() == 1 { "y" } else { "ies" },
            distinct.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        entries,
    )
}

/// The per-entry rules of a control; `Err` says why the entry does not satisfy it.
fn check_entry(
    control: &Control,
    subject: &ReleaseSubject,
    e: &Evidence,
    gate_time: i64,
) -> Result<(), String> {
    if e.integrated_time > gate_time {
        return Err("integrated after the gate ran".into());
    }
    if let Some(max_age) = control.max_age_nanos {
        let age = gate_time - e.integrated_time;
        if age > max_age {
            return Err(format!(
                "is {} old, older than the {} allowed",
                human_duration(age),
                human_duration(max_age)
            ));
        }
    }
    if let Some((text, program)) = &control.require {
        let mut context = cel::Context::default();
        let statement = statement_value(&e.statement);
        let bind = |context: &mut cel::Context, name: &str, value: Value| {
            context
                .add_variable(name, value)
                .map_err(|err| format!("binding `{name}` for `require`: {err}"))
        };
        bind(&mut context, "predicate", e.statement.predicate.clone())?;
        bind(
            &mut context,
            "predicateType",
            Value::String(e.statement.predicate_type.clone()),
        )?;
        bind(&mut context, "subject", statement["subject"].clone())?;
        bind(&mut context, "statement", statement)?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => return Err(format!("`{text}` is false")),
            Ok(other) => return Err(format!("`{text}` gave {other:?}, not a boolean")),
            Err(err) => return Err(format!("`{text}` could not be evaluated: {err}")),
        }
    }
    if let Some(limit) = control.max_severity {
        let allowed: BTreeMap<&str, &str> = control
            .allow
            .iter()
            .map(|a| (a.id.as_str(), a.reason.as_str()))
            .collect();
        let findings = predicates::scan_findings(&e.statement.predicate)
            .ok_or("the scan has no scanner.result list".to_owned())?;
        let blocking: Vec<String> = findings
            .into_iter()
            .filter(|f| !allowed.contains_key(f.id.as_str()))
            .filter_map(|f| match f.severity {
                Ok(s) if s >= limit => Some(format!("{} ({})", f.id, s.as_str())),
                Ok(_) => None,
                Err(score) => Some(format!("{} (unreadable severity {score})", f.id)),
            })
            .collect();
        if !blocking.is_empty() {
            return Err(format!(
                "finding(s) at or above {}: {}",
                limit.as_str(),
                blocking.join(", ")
            ));
        }
    }
    let is_approval = control.separation_of_duties
        || control.no_changes_requested
        || control.reviewed_commit_is_built;
    if is_approval {
        let approval = predicates::approval(&e.statement.predicate);
        let decisions = approval.latest_decisions();
        if control.separation_of_duties {
            if approval.author.is_empty() {
                return Err("the approval names no change author".into());
            }
            let approvers: Vec<&str> = decisions
                .iter()
                .filter(|(_, d)| *d == Decision::Approved)
                .map(|(who, _)| *who)
                .chain(e.signers.iter().map(|s| s.identity.as_str()))
                .collect();
            if let Some(who) = approvers.iter().find(|who| **who == approval.author) {
                return Err(format!("{who} approved their own change"));
            }
            if let Some(who) = approvers
                .iter()
                .find(|who| subject.builders.contains(**who))
            {
                return Err(format!(
                    "{who} approved and also signed the artifact's provenance"
                ));
            }
        }
        if control.reviewed_commit_is_built
            && !subject.source_commits.contains(&approval.reviewed_commit)
        {
            return Err(format!(
                "reviewed commit {:?} is not a commit the artifact was built from ({})",
                approval.reviewed_commit,
                subject
                    .source_commits
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

fn statement_value(statement: &Statement) -> Value {
    json!({
        "_type": crate::statement::STATEMENT_V1_TYPE,
        "predicateType": statement.predicate_type,
        "predicate": statement.predicate,
        "subject": statement.subjects.iter().map(|s| json!({
            "name": s.name,
            "digest": s.digests.iter().map(|(a, v)| (a.as_str().to_owned(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
    })
}

fn human_duration(nanos: i64) -> String {
    let seconds = nanos / 1_000_000_000;
    match seconds {
        s if s >= 86_400 => format!("{:.1} days", s as f64 / 86_400.0),
        s if s >= 3_600 => format!("{:.1} hours", s as f64 / 3_600.0),
        s => format!("{s} s"),
    }
}
