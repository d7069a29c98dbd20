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
    #[serde(default)]
    release_signers: Option<toml::Spanned<Vec<String>>>,
    #[serde(rename = "control", default)]
    controls: Vec<toml::Spanned<RawControl>>,
    #[serde(default)]
    witnesses: Option<toml::Spanned<RawWitnesses>>,
}

/// `[witnesses]`: the witnesses whose cosignatures the evidence's checkpoint must carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitnesses {
    threshold: usize,
    keys: Vec<String>,
}

/// The id under which a verdict reports the policy's `[witnesses]` requirement.
pub const WITNESSES_CONTROL: &str = "witnesses";

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
    review_systems: Vec<String>,
    #[serde(default)]
    evidences: Vec<String>,
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
    /// A keyless signer whose certificate GitHub Actions issued to this workflow:
    /// `ORG/REPO/PATH@REF`, a pattern as in [`crate::registry::pattern_matches`] (`*` for
    /// any run of characters other than `/` and `@`). Written `workflow:ORG/REPO/PATH@REF`.
    Workflow(String),
}

/// GitHub Actions' OIDC issuer: the only issuer a `workflow:` rule accepts.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

impl fmt::Display for SignerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerRule::Identity(i) => f.write_str(i),
            SignerRule::Role(r) => write!(f, "role:{r}"),
            SignerRule::Workflow(w) => write!(f, "workflow:{w}"),
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
    /// Code-review systems whose approval attestations are trusted for the change author and
    /// for every reviewer's decision (approval evidence only). Anyone else's approval counts
    /// only for its own signer's decisions.
    pub review_systems: Vec<SignerRule>,
    /// What the evidence must be about.
    pub subject: SubjectKind,
    /// Distinct signers needed among passing entries (at least 1).
    pub min_distinct_signers: usize,
    /// The CEL condition on the Statement, with its source text.
    pub require: Option<(String, Arc<cel::Program>)>,
    /// No approver is the change author (as a review system records it), nor a signer of the
    /// artifact's provenance. Invariant: `review_systems` is not empty when set.
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
    /// The framework controls this control evidences, as the policy names them
    /// (`evidences = ["soc2:CC8.1"]`); the catalogue's mappings add to them
    /// ([`crate::frameworks::Catalogue::evidenced_by`]). They inform reports only, never a
    /// verdict.
    pub evidences: Vec<crate::frameworks::ControlRef>,
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
    /// Who may declare a release (`name@version` → artifacts) with a release attestation;
    /// empty means the policy cannot be asked about a release by name.
    pub release_signers: Vec<SignerRule>,
    /// The controls. Invariant: not empty, ids unique.
    pub controls: Vec<Control>,
    /// The witnesses whose cosignatures the evidence's checkpoint must carry (at least
    /// their threshold), if the policy asks for any: a verdict on evidence proven at a
    /// checkpoint they did not cosign is a denial.
    pub witnesses: Option<crate::cosign::WitnessPolicy>,
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

/// Parses `identity` or `role:NAME` rules; `Err` says which entry is wrong.
fn signer_rules(field: &str, rules: &[String]) -> Result<Vec<SignerRule>, String> {
    rules
        .iter()
        .map(|s| {
            if let Some(workflow) = s.strip_prefix("workflow:") {
                let workflow = workflow.trim_start_matches("https://github.com/");
                let (path, git_ref) = workflow.split_once('@').unwrap_or((workflow, ""));
                let segments: Vec<&str> = path.split('/').collect();
                if segments.len() >= 3 && segments[..2].iter().any(|s| s.contains('*')) {
                    return Err(format!(
                        "{field}: {s:?} has a `*` in its organization or repository: name \
                         them exactly (a pattern there would admit other owners' workflows)"
                    ));
                }
                if segments.len() < 3 || segments.iter().any(|p| p.is_empty()) || git_ref.is_empty()
                {
                    return Err(format!(
                        "{field}: {s:?} is not a workflow: write \
                         workflow:ORG/REPO/PATH@REF, e.g. \
                         workflow:acme/payments/.github/workflows/release.yml@refs/heads/main"
                    ));
                }
                return Ok(SignerRule::Workflow(workflow.to_owned()));
            }
            match s.strip_prefix("role:") {
                Some("") => Err(format!("{field}: {s:?} names no role")),
                Some(role) => Ok(SignerRule::Role(role.to_owned())),
                None if s.trim().is_empty() => Err(format!("{field}: an empty signer")),
                None => Ok(SignerRule::Identity(s.clone())),
            }
        })
        .collect()
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
            let signers =
                signer_rules("`signers`", &c.signers).map_err(|p| err(control_line, p))?;
            let review_systems = signer_rules("`review_systems`", &c.review_systems)
                .map_err(|p| err(control_line, p))?;
            if c.separation_of_duties && review_systems.is_empty() {
                return Err(err(
                    control_line,
                    "`separation_of_duties` needs `review_systems`: the change author is taken \
                     only from approvals signed by a code-review system the policy names (e.g. \
                     review_systems = [\"role:scm\"]), never from an approver's own claim"
                        .into(),
                ));
            }
            if let Some(a) = c
                .allow
                .iter()
                .find(|a| a.id.trim().is_empty() || a.reason.trim().is_empty())
            {
                return Err(err(
                    control_line,
                    format!(
                        "allowlist entry {:?} needs an id and a reason: an exception without a \
                         reason is itself an audit finding",
                        a.id
                    ),
                ));
            }
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
            let mut evidences: Vec<crate::frameworks::ControlRef> = Vec::new();
            for text in &c.evidences {
                let reference = crate::frameworks::ControlRef::parse(text)
                    .map_err(|p| err(control_line, format!("`evidences`: {p}")))?;
                if evidences.contains(&reference) {
                    return Err(err(
                        control_line,
                        format!("`evidences` names {reference} twice"),
                    ));
                }
                evidences.push(reference);
            }
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
                review_systems,
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
                evidences,
            });
        }
        if let Some(c) = controls
            .iter()
            .find(|c| c.subject == SubjectKind::SourceCommit)
        {
            if !controls
                .iter()
                .any(|p| p.predicate_type == predicates::SLSA_PROVENANCE_V1)
            {
                let line = source
                    .find(&format!("\"{}\"", c.id))
                    .map_or(0, |o| line_of(source, o));
                return Err(PolicyError::Control {
                    control: c.id.clone(),
                    line,
                    problem: format!(
                        "`subject = \"source-commit\"` needs a control on {} naming who may say \
                         what an artifact was built from: without one, no provenance is trusted",
                        predicates::SLSA_PROVENANCE_V1
                    ),
                });
            }
        }
        let release_signers = match &raw.release_signers {
            None => Vec::new(),
            Some(spanned) => {
                signer_rules("`release_signers`", spanned.get_ref()).map_err(|problem| {
                    PolicyError::Control {
                        control: "release_signers".into(),
                        line: line_of(source, spanned.span().start),
                        problem,
                    }
                })?
            }
        };
        let witnesses = match &raw.witnesses {
            None => None,
            Some(spanned) => {
                let fail = |problem: String| PolicyError::Control {
                    control: WITNESSES_CONTROL.into(),
                    line: line_of(source, spanned.span().start),
                    problem,
                };
                let raw = spanned.get_ref();
                let keys = raw
                    .keys
                    .iter()
                    .map(|k| crate::cosign::CosignerKey::parse(k).map_err(|e| fail(e.to_string())))
                    .collect::<Result<Vec<_>, _>>()?;
                if raw.threshold == 0 {
                    return Err(fail(
                        "`threshold` must be at least 1 (leave out [witnesses] to require none)"
                            .into(),
                    ));
                }
                if controls.iter().any(|c| c.id == WITNESSES_CONTROL) {
                    return Err(fail(format!(
                        "a control is named `{WITNESSES_CONTROL}`, which [witnesses] reports \
                         under: rename the control"
                    )));
                }
                Some(
                    crate::cosign::WitnessPolicy::new(keys, raw.threshold)
                        .map_err(|e| fail(e.to_string()))?,
                )
            }
        };
        Ok(Policy {
            name: raw.name,
            version: raw.version,
            description: raw.description,
            witnesses,
            release_signers,
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
        let rules = self.release_signers.iter().chain(
            self.controls
                .iter()
                .flat_map(|c| c.signers.iter().chain(&c.review_systems)),
        );
        let control_of = |rule: &SignerRule| {
            self.controls
                .iter()
                .find(|c| c.signers.contains(rule) || c.review_systems.contains(rule))
                .map_or("release_signers".to_owned(), |c| c.id.clone())
        };
        {
            for rule in rules {
                if let SignerRule::Role(role) = rule {
                    if !known.contains(role.as_str()) {
                        let line = self
                            .source
                            .find(&format!("role:{role}"))
                            .map_or(0, |o| line_of(&self.source, o));
                        return Err(PolicyError::Control {
                            control: control_of(rule),
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

/// One piece of verified evidence: an attestation proven in the log and authorized at its
/// integrated time.
///
/// Invariant: an `Evidence` exists only for an entry whose leaf record was proven by an
/// inclusion proof in a checkpoint signed by the log key, whose Statement parsed, and whose
/// signers the registry of that log (replayed from the pinned genesis) authorized for its
/// predicate type at its integrated time. Its fields are private and it has no public
/// constructor: [`crate::bundle::Bundle::verify`] is the only way to get one, so evaluation
/// can see nothing else.
#[derive(Debug, Clone)]
pub struct Evidence {
    index: u64,
    leaf_hash: Hash,
    integrated_time: i64,
    time: i64,
    statement: Statement,
    /// Every signer the registry authorized at the entry's integrated time.
    authorized: Vec<Authorized>,
    /// `authorized` less the signers a later, backdated revocation withdrew.
    signers: Vec<Authorized>,
    withdrawn: Vec<String>,
}

impl Evidence {
    /// Built by bundle verification only (see the invariant).
    pub(crate) fn verified(
        index: u64,
        leaf_hash: Hash,
        integrated_time: i64,
        statement: Statement,
        signers: Vec<Authorized>,
    ) -> Evidence {
        // A keyless signature's proven signing time, when earlier: the evidence is as old
        // as its signature, however late it was logged.
        let time = signers
            .iter()
            .filter_map(|s| s.signed_at)
            .min()
            .map_or(integrated_time, |t| t.min(integrated_time));
        Evidence {
            index,
            leaf_hash,
            integrated_time,
            time,
            statement,
            authorized: signers.clone(),
            signers,
            withdrawn: Vec::new(),
        }
    }

    /// When the evidence was made: the integrated time, or the proven signing time of a
    /// keyless signature when that is earlier. `max_age` and the order of each signer's
    /// words go by it, so an old bundle logged late is not fresh evidence.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// This entry as a registry state sees it: the authorized signers less those `why`
    /// withdraws (a revocation dated at or before the entry), with the reasons.
    pub(crate) fn view(&self, mut why: impl FnMut(&Authorized) -> Option<String>) -> Evidence {
        let mut withdrawn = Vec::new();
        let signers = self
            .authorized
            .iter()
            .filter(|signer| match why(signer) {
                Some(reason) => {
                    withdrawn.push(reason);
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        Evidence {
            signers,
            withdrawn,
            ..self.clone()
        }
    }

    /// Every signer the registry authorized at the entry's integrated time, whether or not
    /// a later revocation withdrew it.
    pub fn authorized(&self) -> &[Authorized] {
        &self.authorized
    }

    /// The entry's log index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Its leaf hash.
    pub fn leaf_hash(&self) -> &Hash {
        &self.leaf_hash
    }

    /// Its integrated time (nanoseconds).
    pub fn integrated_time(&self) -> i64 {
        self.integrated_time
    }

    /// The Statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The signers the registry authorized for it (identity and roles as of then), less
    /// those whose key was later revoked from a time at or before the entry.
    pub fn signers(&self) -> &[Authorized] {
        &self.signers
    }

    /// Why signers were discounted after the fact (a backdated revocation), in words.
    pub fn withdrawn(&self) -> &[String] {
        &self.withdrawn
    }
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
    /// What the evaluation saw beyond its status, for reports. Not serialized: a recorded
    /// verdict keeps its documented form.
    #[serde(skip)]
    pub detail: Detail,
}

/// What an evaluation established beyond a control's status: the facts an auditor
/// re-performs the control with. The pass that decides the control records it, so it shows
/// what the verdict rests on; nothing reads it to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// Findings at or above the control's `max_severity` that its allowlist let through, in
    /// the entries the control examined.
    pub exceptions: Vec<Exception>,
    /// What the approvals established, for a control that reads reviewers' decisions
    /// (`min_approvals`, `no_changes_requested`, `separation_of_duties`).
    pub review: Option<ReviewTrail>,
}

/// A finding a policy's allowlist accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// The scan entry that reported it.
    pub index: u64,
    /// The finding's id, e.g. `CVE-2024-0002`.
    pub id: String,
    /// Its severity, at or above the control's limit.
    pub severity: Severity,
    /// The reason the policy gives for accepting it.
    pub reason: String,
}

/// The change and its reviews, as the control read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewTrail {
    /// The changes review systems the control trusts recorded, with their authors.
    pub changes: Vec<ChangeRecord>,
    /// Every reviewer's decision in the approvals examined, in the order the control reads
    /// them (by time, then log index, then list order), counted or not.
    pub decisions: Vec<DecisionRecord>,
}

/// A change as a review system recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The approval entry.
    pub index: u64,
    /// The change (pull or merge request).
    pub change_ref: String,
    /// The commit the reviewers saw.
    pub reviewed_commit: String,
    /// The change's author, empty when the entry names none.
    pub author: String,
    /// The review systems that signed the entry.
    pub recorded_by: Vec<String>,
}

/// One reviewer's decision in an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The approval entry.
    pub index: u64,
    /// The reviewer.
    pub reviewer: String,
    /// Their decision.
    pub decision: Decision,
    /// When, as the entry says (RFC 3339), empty when it says nothing.
    pub time: String,
    /// Who signed the entry, among the signers the control trusts.
    pub signed_by: Vec<String>,
    /// Whether it stands in the verdict: the reviewer's latest decision, from a source
    /// trusted for it, in an entry that satisfies the control.
    pub counted: bool,
    /// Why it counts or not, in words.
    pub note: String,
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
    /// Only provenance that satisfies one of the policy's provenance controls counts for
    /// source commits: integrated by the gate, signed (signature not withdrawn) by a signer
    /// that control allows, and passing its rules. A policy with no provenance control
    /// trusts no provenance. Every signer of provenance about the artifacts is a builder,
    /// trusted or not (a builder only ever loses the right to approve). Digests are
    /// compared in lowercase.
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
        let provenance_controls: Vec<&Control> = policy
            .controls
            .iter()
            .filter(|c| c.predicate_type == predicates::SLSA_PROVENANCE_V1)
            .collect();
        let mut commits = BTreeSet::new();
        let mut builders = BTreeSet::new();
        for e in evidence {
            if e.statement.predicate_type != predicates::SLSA_PROVENANCE_V1
                || e.integrated_time > gate_time
                || !about(&e.statement, &subject.artifacts)
            {
                continue;
            }
            builders.extend(e.signers.iter().map(|s| s.identity.clone()));
            let trusted = provenance_controls.iter().any(|c| {
                e.signers.iter().any(|s| signer_allowed(&c.signers, s))
                    && check_entry(c, &subject, e, gate_time).is_ok()
            });
            if trusted {
                commits.extend(predicates::provenance_source_commits(
                    &e.statement.predicate,
                ));
            }
        }
        subject.source_commits = commits;
        subject.builders = builders;
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

/// Whether `signer` satisfies `rules`; empty rules allow any registered signer.
fn signer_allowed(rules: &[SignerRule], signer: &Authorized) -> bool {
    rules.is_empty() || signer_named(rules, signer)
}

/// Whether `signer` is named by `rules`; empty rules name nobody.
pub fn signer_named(rules: &[SignerRule], signer: &Authorized) -> bool {
    rules.iter().any(|rule| match rule {
        SignerRule::Identity(i) => *i == signer.identity,
        SignerRule::Role(r) => signer.roles.contains(r),
        SignerRule::Workflow(w) => signer
            .certificate
            .as_ref()
            .is_some_and(|c| github_workflow_matches(w, c)),
    })
}

/// Whether a certificate is GitHub Actions' for a run of workflow `pattern`
/// (`ORG/REPO/PATH@REF`) in its own repository: the issuer is GitHub's, the subject (the
/// workflow that signed) matches, the repository the run was in (`source_repository_uri`,
/// or the older `github_workflow_repository`) is the workflow's, and the run's top-level
/// workflow (`build_config_uri`, when the certificate has it) is this one. A reusable
/// workflow called from another repository signs with its own name as the subject: the
/// repository and top-level checks keep such a run from passing for the workflow's owner.
pub fn github_workflow_matches(pattern: &str, c: &crate::sigstore::CertIdentity) -> bool {
    if c.issuer != GITHUB_ACTIONS_ISSUER {
        return false;
    }
    let Some(workflow) = c.subject.strip_prefix("https://github.com/") else {
        return false;
    };
    if !crate::registry::pattern_matches(pattern, workflow) {
        return false;
    }
    let mut parts = workflow.splitn(3, '/');
    let (Some(org), Some(repo)) = (parts.next(), parts.next()) else {
        return false;
    };
    let repository = format!("https://github.com/{org}/{repo}");
    let ran_in = match c.extensions.get("source_repository_uri") {
        Some(uri) => Some(uri.clone()),
        None => c
            .extensions
            .get("github_workflow_repository")
            .map(|r| format!("https://github.com/{r}")),
    };
    let top_level = c
        .extensions
        .get("build_config_uri")
        .is_none_or(|b| *b == c.subject);
    ran_in.as_deref() == Some(repository.as_str()) && top_level
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

/// One control for the release. A source-commit control is decided for each source commit
/// on that commit's own evidence, and every commit must pass: evidence about one commit
/// (an approval of an older, reviewed commit, say) never stands in for another's.
fn evaluate_control(
    control: &Control,
    subject: &ReleaseSubject,
    evidence: &[Evidence],
    gate_time: i64,
) -> ControlReport {
    if control.subject != SubjectKind::SourceCommit || subject.source_commits.len() < 2 {
        return evaluate_one(control, subject, evidence, gate_time);
    }
    let mut entries = Vec::new();
    let mut reasons = Vec::new();
    let mut detail = Detail::default();
    for commit in &subject.source_commits {
        let one = ReleaseSubject {
            source_commits: BTreeSet::from([commit.clone()]),
            ..subject.clone()
        };
        let r = evaluate_one(control, &one, evidence, gate_time);
        if r.status != Status::Pass {
            return ControlReport {
                reason: format!("source commit {commit}: {}", r.reason),
                ..r
            };
        }
        entries.extend(r.entries);
        reasons.push(format!("{commit}: {}", r.reason));
        detail.exceptions.extend(r.detail.exceptions);
        if let Some(trail) = r.detail.review {
            let merged = detail.review.get_or_insert_with(ReviewTrail::default);
            merged.changes.extend(trail.changes);
            merged.decisions.extend(trail.decisions);
        }
    }
    ControlReport {
        id: control.id.clone(),
        status: Status::Pass,
        reason: format!("every source commit passes ({})", reasons.join("; ")),
        entries,
        detail,
    }
}

fn evaluate_one(
    control: &Control,
    subject: &ReleaseSubject,
    evidence: &[Evidence],
    gate_time: i64,
) -> ControlReport {
    // Filled in as the evaluation learns it, and carried by every outcome below.
    let detail = std::cell::RefCell::new(Detail::default());
    let report = |status, reason: String, entries: Vec<UsedEntry>| ControlReport {
        id: control.id.clone(),
        status,
        reason,
        entries,
        detail: detail.borrow().clone(),
    };
    let subject_text = match control.subject {
        SubjectKind::Artifact => "the artifact",
        SubjectKind::SourceCommit => "the source commit",
    };
    // Evidence of the right kind, about the right subject, with the signers the control
    // trusts: its signers, and for approvals the review systems it names.
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
                .filter(|s| {
                    signer_allowed(&control.signers, s) || signer_named(&control.review_systems, s)
                })
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
                    .chain(&control.review_systems)
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
    let fail = |reason: String| report(Status::Fail, reason, examined.clone());
    let mut passing: Vec<(&Evidence, Vec<&Authorized>)> = Vec::new();
    let mut first_failure: Option<String> = None;
    let mut failures: BTreeMap<u64, String> = BTreeMap::new();
    for (e, signers) in &candidates {
        match check_entry(control, subject, e, gate_time) {
            Ok(()) => passing.push((e, signers.clone())),
            Err(why) => {
                first_failure.get_or_insert(format!("entry {}: {why}", e.index));
                failures.insert(e.index, why);
            }
        }
    }
    // The exceptions of the entries that satisfy the control: the ones its verdict rests on.
    for (e, _) in &passing {
        detail
            .borrow_mut()
            .exceptions
            .extend(exceptions(control, e));
    }
    // Outside reviews, each signer's latest word before the gate decides: an older passing
    // run or scan never outweighs a newer failing one by the same signer.
    if !control.is_review() {
        let mut latest: BTreeMap<&str, &Evidence> = BTreeMap::new();
        for (e, signers) in &candidates {
            if e.integrated_time > gate_time {
                continue;
            }
            for s in signers {
                let slot = latest.entry(s.identity.as_str()).or_insert(e);
                if (e.time, e.index) > (slot.time, slot.index) {
                    *slot = e;
                }
            }
        }
        for (who, e) in latest {
            if let Err(why) = check_entry(control, subject, e, gate_time) {
                return fail(format!("entry {}, the latest by {who}: {why}", e.index));
            }
        }
    }
    let reviews = control
        .is_review()
        .then(|| Reviews::fold(control, &candidates, &passing, gate_time, &subject.builders));
    if let Some(reviews) = &reviews {
        // What the fold could not know: which entries fail the control's per-entry rules.
        // An approval counts only from an entry that passes them; a request for changes
        // blocks wherever it comes from (`changes_requested` reads every latest decision).
        let mut trail = reviews.trail.clone();
        for d in trail.decisions.iter_mut().filter(|d| d.counted) {
            match (d.decision, failures.get(&d.index)) {
                (Decision::Approved, Some(why)) => {
                    d.counted = false;
                    d.note = format!("the entry does not satisfy the control: {why}");
                }
                (Decision::ChangesRequested, _) if control.no_changes_requested => {
                    d.note = "changes requested: blocks the release until they approve \
                              (no_changes_requested)"
                        .into();
                }
                _ => {}
            }
        }
        detail.borrow_mut().review = Some(trail);
        if control.no_changes_requested {
            if let Some(who) = reviews.changes_requested() {
                return fail(format!(
                    "{who} requested changes and has not approved since"
                ));
            }
        }
        if control.separation_of_duties {
            if reviews.authors.is_empty() {
                return fail(format!(
                    "no change author recorded by a review system ({}): separation of duties \
                     cannot be shown",
                    rules_text(&control.review_systems)
                ));
            }
            if let Some(who) = reviews
                .ever_approved
                .iter()
                .find(|a| reviews.authors.contains(*a))
            {
                return fail(format!(
                    "{who}, the change author, approved their own change"
                ));
            }
            if let Some(who) = reviews
                .ever_approved
                .iter()
                .find(|a| subject.builders.contains(*a))
            {
                return fail(format!(
                    "{who} approved and also signed the artifact's provenance"
                ));
            }
        }
    }
    if passing.is_empty() {
        return fail(first_failure.unwrap_or_else(|| "no entry satisfies the control".into()));
    }
    // Distinct signers among passing entries. Under separation of duties the change's
    // authors and builders never count, whatever they signed.
    // Review systems vouch for others' decisions; they are not signers of the control.
    let distinct: BTreeSet<&str> = passing
        .iter()
        .flat_map(|(_, signers)| {
            signers
                .iter()
                .filter(|s| signer_allowed(&control.signers, s))
                .map(|s| s.identity.as_str())
        })
        .filter(|who| {
            let author = reviews.as_ref().is_some_and(|r| r.authors.contains(*who));
            let builder = subject.builders.contains(*who);
            !(control.separation_of_duties && (author || builder))
        })
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
    if let (Some(needed), Some(reviews)) = (control.min_approvals, &reviews) {
        if reviews.approvers.len() < needed {
            return fail(format!(
                "{} distinct approver(s) ({}), {needed} required{}",
                reviews.approvers.len(),
                reviews
                    .approvers
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
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

fn rules_text(rules: &[SignerRule]) -> String {
    if rules.is_empty() {
        return "none named".into();
    }
    rules
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

impl Control {
    /// Whether the control reads reviewers' decisions or the change author.
    fn is_review(&self) -> bool {
        self.min_approvals.is_some() || self.no_changes_requested || self.separation_of_duties
    }
}

/// What the approvals of one subject establish, from trusted sources only.
///
/// The rule: a reviewer's decision comes from that reviewer's own signed approvals (a
/// review entry naming the signer), or from an approval signed by a review system the
/// control names; the change author comes only from a review system's approvals. Anything
/// else an approval says — another reviewer's decision, who the author is — is a claim by
/// someone not trusted for that fact, and is ignored.
#[derive(Debug, Default)]
struct Reviews {
    /// Each reviewer's latest decision, in log order and then in list order, and whether the
    /// entry it comes from satisfies the control's per-entry rules.
    latest: BTreeMap<String, (Decision, bool)>,
    /// Reviewers whose latest decision is APPROVED, from an entry that passes.
    approvers: BTreeSet<String>,
    /// Reviewers who approved at any point: an author's or builder's approval is a finding
    /// that a later decision does not erase.
    ever_approved: BTreeSet<String>,
    /// The change's authors, as review systems recorded them.
    authors: BTreeSet<String>,
    /// What was read, for reports.
    trail: ReviewTrail,
}

impl Reviews {
    fn fold(
        control: &Control,
        candidates: &[(&Evidence, Vec<&Authorized>)],
        passing: &[(&Evidence, Vec<&Authorized>)],
        gate_time: i64,
        builders: &BTreeSet<String>,
    ) -> Reviews {
        let mut ordered: Vec<&(&Evidence, Vec<&Authorized>)> = candidates
            .iter()
            .filter(|(e, _)| e.integrated_time <= gate_time)
            .collect();
        ordered.sort_by_key(|(e, _)| (e.time, e.index));
        let mut out = Reviews::default();
        let from_system = |signers: &[&Authorized]| {
            signers
                .iter()
                .any(|s| signer_named(&control.review_systems, s))
        };
        // The authors first: under separation of duties an author's decisions are not
        // reviews (an approval by them is a finding; nothing else they decide counts).
        let names = |signers: &[&Authorized]| -> Vec<String> {
            signers.iter().map(|s| s.identity.clone()).collect()
        };
        for (e, signers) in &ordered {
            let approval = predicates::approval(&e.statement.predicate);
            if from_system(signers) {
                out.trail.changes.push(ChangeRecord {
                    index: e.index,
                    change_ref: approval.change_ref,
                    reviewed_commit: approval.reviewed_commit,
                    author: approval.author.clone(),
                    recorded_by: signers
                        .iter()
                        .filter(|s| signer_named(&control.review_systems, s))
                        .map(|s| s.identity.clone())
                        .collect(),
                });
                if !approval.author.is_empty() {
                    out.authors.insert(approval.author);
                }
            }
        }
        // Each reviewer's decision that stands so far: its place in the trail.
        let mut standing: BTreeMap<String, usize> = BTreeMap::new();
        for (e, signers) in ordered {
            let passes = passing.iter().any(|(p, _)| p.index == e.index);
            let approval = predicates::approval(&e.statement.predicate);
            let system = from_system(signers);
            for review in &approval.reviewers {
                let own = signers
                    .iter()
                    .any(|s| s.identity == review.identity && signer_allowed(&control.signers, s));
                let mut record = DecisionRecord {
                    index: e.index,
                    reviewer: review.identity.clone(),
                    decision: review.decision,
                    time: review.time.clone(),
                    signed_by: names(signers),
                    counted: false,
                    note: String::new(),
                };
                if !(system || own) {
                    record.note = format!(
                        "signed by {}, neither the reviewer nor a review system the control \
                         trusts ({})",
                        record.signed_by.join(", "),
                        rules_text(&control.review_systems)
                    );
                    out.trail.decisions.push(record);
                    continue;
                }
                if review.decision == Decision::Approved {
                    out.ever_approved.insert(review.identity.clone());
                }
                if control.separation_of_duties && out.authors.contains(&review.identity) {
                    record.note = if review.decision == Decision::Approved {
                        "the change author approving their own change: a separation-of-duties \
                         finding"
                            .into()
                    } else {
                        "the change author's decisions are not reviews".into()
                    };
                    out.trail.decisions.push(record);
                    continue;
                }
                if let Some(earlier) =
                    standing.insert(review.identity.clone(), out.trail.decisions.len())
                {
                    // A finding stays a finding; a counted decision is superseded.
                    let d = &mut out.trail.decisions[earlier];
                    if d.counted {
                        d.counted = false;
                        d.note = format!(
                            "superseded by {}'s later decision in entry {}",
                            d.reviewer, e.index
                        );
                    }
                }
                let builder = control.separation_of_duties
                    && review.decision == Decision::Approved
                    && builders.contains(&review.identity);
                record.counted = !builder;
                record.note = match review.decision {
                    // Under separation of duties a builder's approval never counts: the
                    // control fails on it, whatever they decide later.
                    _ if builder => "also signed the artifact's provenance: a \
                                     separation-of-duties finding"
                        .into(),
                    Decision::Approved => "an approval".into(),
                    Decision::ChangesRequested => "changes requested".into(),
                    Decision::Other => "neither approves nor requests changes".into(),
                };
                out.trail.decisions.push(record);
                out.latest
                    .insert(review.identity.clone(), (review.decision, passes));
            }
        }
        out.approvers = out
            .latest
            .iter()
            .filter(|(_, (d, passes))| *d == Decision::Approved && *passes)
            .map(|(who, _)| who.clone())
            .collect();
        out
    }

    /// A reviewer whose latest decision is CHANGES_REQUESTED.
    fn changes_requested(&self) -> Option<&str> {
        self.latest
            .iter()
            .find(|(_, (d, _))| *d == Decision::ChangesRequested)
            .map(|(who, _)| who.as_str())
    }
}

/// The findings of scan `e` at or above the control's `max_severity` that its allowlist
/// accepts: the ones [`check_entry`] lets through only because of the allowlist.
fn exceptions(control: &Control, e: &Evidence) -> Vec<Exception> {
    let Some(limit) = control.max_severity else {
        return Vec::new();
    };
    let Some(findings) = predicates::scan_findings(&e.statement.predicate) else {
        return Vec::new();
    };
    findings
        .into_iter()
        .filter(|f| f.id != predicates::NO_ID)
        .filter_map(|f| {
            let severity = f.severity.ok().filter(|s| *s >= limit)?;
            let allowed = control.allow.iter().find(|a| a.id == f.id)?;
            Some(Exception {
                index: e.index,
                id: f.id,
                severity,
                reason: allowed.reason.clone(),
            })
        })
        .collect()
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
        // Saturating: a time far in the past is old, never negative.
        let age = gate_time.saturating_sub(e.time);
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
            .filter(|f| f.id == predicates::NO_ID || !allowed.contains_key(f.id.as_str()))
            .filter_map(|f| match f.severity {
                Ok(s) if s >= limit => Some(format!("{} ({})", f.id, s.as_str())),
                Ok(_) => None,
                Err(why) => Some(format!("{} (unreadable severity: {why})", f.id)),
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
    if control.reviewed_commit_is_built {
        let approval = predicates::approval(&e.statement.predicate);
        if !subject.source_commits.contains(&approval.reviewed_commit) {
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
