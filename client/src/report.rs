//! Auditor's reports of releases: the verdict, the controls, who signed what and when, the
//! chain from source commit to deploy, and the proofs behind it, as one self-contained HTML
//! page and as GitHub-flavoured Markdown (`docs/REPORT.md`).
//!
//! The model ([`Document`], holding one [`ReleaseReport`] per release) is built from a bundle
//! that was already verified and from the policy's evaluation over it; nothing here verifies
//! or decides anything. Every string taken from the evidence (identities, predicate types,
//! subject names, reasons) is attacker-influenced: the renderers escape all of it, and the
//! HTML page must never load anything (no scripts, no external styles, fonts or images).

use std::collections::BTreeSet;

use evident_core::bundle::VerifiedBundle;
use evident_core::note::{Checkpoint, Verifier};
use evident_core::policy::{self, Evidence, Policy, Status, UsedEntry};
use evident_core::registry::time_text;
use evident_core::{Hash, predicates};
use serde::Serialize;

/// A report: one or more releases, decided against one log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The heading, e.g. `Evident release report: payments-api@1.4.2`.
    pub title: String,
    /// When the report was made (RFC 3339, UTC): also the time the policies were evaluated
    /// at, so evidence integrated later did not count.
    pub generated_at: String,
    /// The log's origin, e.g. `evident.example.com/prod`.
    pub log_origin: String,
    /// The pinned log verifier key (`name+id+base64`) every checkpoint was verified under.
    pub log_key: String,
    /// The newest checkpoint the report's bundles were verified against.
    pub checkpoint: CheckpointRef,
    /// The releases, in the order given.
    pub releases: Vec<ReleaseReport>,
}

impl Document {
    /// An empty report against `checkpoint`, verified under `log_key`, made at
    /// `generated_at` (nanoseconds since the Unix epoch; the time the policies are evaluated
    /// at). Add releases with [`Document::releases`].
    pub fn new(
        title: impl Into<String>,
        generated_at: i64,
        log_key: &Verifier,
        checkpoint: &Checkpoint,
    ) -> Document {
        Document {
            title: title.into(),
            generated_at: time_text(generated_at),
            log_origin: checkpoint.origin.clone(),
            log_key: log_key.to_string(),
            checkpoint: CheckpointRef::from(checkpoint),
            releases: Vec::new(),
        }
    }
}

/// A checkpoint, as a report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointRef {
    /// The log's origin line.
    pub origin: String,
    /// The number of entries the root covers.
    pub size: u64,
    /// The root hash, lowercase hex.
    pub root_hex: String,
    /// The root hash, standard base64 (as the signed checkpoint spells it).
    pub root_base64: String,
}

impl From<&Checkpoint> for CheckpointRef {
    fn from(c: &Checkpoint) -> CheckpointRef {
        CheckpointRef {
            origin: c.origin.clone(),
            size: c.size,
            root_hex: c.root.to_hex(),
            root_base64: c.root.to_base64(),
        }
    }
}

/// The verdict on a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Every control passed.
    Allowed,
    /// At least one control failed or had no evidence.
    Denied,
}

impl Verdict {
    /// `ALLOWED` or `DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "ALLOWED",
            Verdict::Denied => "DENIED",
        }
    }
}

/// The label of a control outcome in reports: `PASS`, `FAIL` or `MISSING`.
pub fn status_label(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Missing => "MISSING",
    }
}

/// Everything a report says about one release.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReport {
    /// What was asked about: `NAME@VERSION` or an artifact digest.
    pub label: String,
    /// Allowed or denied.
    pub verdict: Verdict,
    /// The policy version it was decided under.
    pub policy: PolicyRef,
    /// The artifacts evaluated (`alg:hex`).
    pub artifacts: Vec<String>,
    /// The source commits the evaluation followed, through provenance the policy trusts.
    pub source_commits: Vec<String>,
    /// One row per control (per control and artifact, for a release of several artifacts).
    pub controls: Vec<ControlRow>,
    /// Every attestation in the bundle about the artifacts or their source commits, in log
    /// order.
    pub attestations: Vec<AttestationRow>,
    /// Attestations in the bundle about neither (shown as a count only).
    pub other_attestations: usize,
    /// Source commit → build → artifact → release → deploy.
    pub traceability: Traceability,
    /// What was proven, against which checkpoint.
    pub proof: ProofStatus,
}

/// A policy version, as a report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The log entry holding this version, when the bundle has it.
    pub index: Option<u64>,
    /// SHA-256 (hex) of the policy document as signed.
    pub sha256: String,
    /// The policy's own description.
    pub description: String,
}

/// One control's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlRow {
    /// The policy's control id.
    pub id: String,
    /// The artifact (`alg:hex`) this row is about, when the release has several: each
    /// artifact must pass every control on its own evidence.
    pub artifact: Option<String>,
    /// The predicate type of its evidence, from the policy.
    pub predicate_type: Option<String>,
    /// Pass, fail or missing.
    pub status: Status,
    /// Why, in words.
    pub reason: String,
    /// The log entries that satisfied it (on pass) or were examined (otherwise).
    pub entries: Vec<UsedEntry>,
}

/// One attestation, with who signed it and when it was integrated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationRow {
    /// Its log index.
    pub index: u64,
    /// Its leaf hash (hex).
    pub leaf_hash: String,
    /// When the log integrated it (RFC 3339, UTC).
    pub integrated_time: String,
    /// The Statement's predicate type.
    pub predicate_type: String,
    /// The signers the registry authorized for it, as of its integrated time.
    pub signers: Vec<SignerRef>,
    /// Signatures withdrawn by a later, backdated revocation, in words.
    pub withdrawn: Vec<String>,
    /// The Statement's subjects.
    pub subjects: Vec<SubjectRef>,
}

/// A signer, as the registry knew it when it signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignerRef {
    /// The registered identity.
    pub identity: String,
    /// Its roles at the time.
    pub roles: Vec<String>,
    /// Evident's key id of the key that signed (hex SHA-256 of the public key).
    pub key_id: String,
}

/// A Statement subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRef {
    /// Its name.
    pub name: String,
    /// Its digests, `alg:value`.
    pub digests: Vec<String>,
}

/// The chain from source to production. Only attestations with a signature the registry
/// still stands by count; an empty step is "not recorded".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Traceability {
    /// The source commits the builds name.
    pub source_commits: Vec<String>,
    /// SLSA provenance about the artifacts.
    pub builds: Vec<BuildStep>,
    /// The artifacts (`alg:hex`).
    pub artifacts: Vec<String>,
    /// Release attestations declaring the artifacts.
    pub releases: Vec<ReleaseStep>,
    /// Recorded gate verdicts (SLSA verification summaries) about the artifacts.
    pub deploys: Vec<DeployStep>,
}

/// A build: one SLSA provenance attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildStep {
    /// Its log index.
    pub index: u64,
    /// `runDetails.builder.id`, when given.
    pub builder: Option<String>,
    /// The source commits it names.
    pub source_commits: Vec<String>,
    /// Who signed it.
    pub signers: Vec<String>,
}

/// A release declaration: one release attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStep {
    /// Its log index.
    pub index: u64,
    /// `NAME@VERSION`, from its `purl` or `releaseId`.
    pub release: String,
    /// Who signed it.
    pub signers: Vec<String>,
}

/// A recorded gate verdict: one SLSA verification summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployStep {
    /// Its log index.
    pub index: u64,
    /// When the log integrated it (RFC 3339, UTC).
    pub integrated_time: String,
    /// `verificationResult` (`PASSED`, `FAILED`), when given.
    pub result: Option<String>,
    /// `policy.uri`, when given.
    pub policy: Option<String>,
    /// Who signed it.
    pub signers: Vec<String>,
}

/// What the bundle's verification proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofStatus {
    /// The checkpoint every inclusion proof was verified against.
    pub checkpoint: CheckpointRef,
    /// Attestations proven.
    pub attestations: usize,
    /// Policy versions proven.
    pub policy_versions: usize,
    /// Registry entries proven (all of them up to the checkpoint, which signs their count).
    pub registry_entries: usize,
}

impl ProofStatus {
    /// Every entry of the bundle, each with a verified inclusion proof.
    pub fn entries(&self) -> usize {
        self.attestations + self.policy_versions + self.registry_entries
    }
}

impl ReleaseReport {
    /// The report of the release `label`, decided by `report`: the evaluation of `policy`
    /// over `verified` (`VerifiedBundle::evaluate`). The bundle being verified means every
    /// entry's inclusion proof was checked against its checkpoint.
    pub fn new(
        label: &str,
        verified: &VerifiedBundle,
        policy: &Policy,
        report: &policy::Report,
    ) -> ReleaseReport {
        let artifacts: BTreeSet<(String, String)> = report
            .artifacts
            .iter()
            .filter_map(|a| a.split_once(':'))
            .map(|(alg, hex)| (alg.to_ascii_lowercase(), hex.to_ascii_lowercase()))
            .collect();
        let about_artifact = |e: &Evidence| {
            e.statement.digests().any(|(alg, value)| {
                artifacts.contains(&(
                    alg.as_str().to_ascii_lowercase(),
                    value.to_ascii_lowercase(),
                ))
            })
        };
        let is = |e: &Evidence, predicate_type: &str| e.statement.predicate_type == predicate_type;
        // Every commit any provenance about the artifacts names, whoever signed it: the
        // attestations about those commits are shown, and the policy's rows say which counted.
        let commits: BTreeSet<String> = verified
            .evidence
            .iter()
            .filter(|e| is(e, predicates::SLSA_PROVENANCE_V1) && about_artifact(e))
            .flat_map(|e| predicates::provenance_source_commits(&e.statement.predicate))
            .collect();
        let about_commit = |e: &Evidence| {
            e.statement.digests().any(|(alg, value)| {
                matches!(alg.as_str(), "gitCommit" | "sha1")
                    && commits.contains(&value.to_ascii_lowercase())
            })
        };
        let attestations: Vec<AttestationRow> = verified
            .evidence
            .iter()
            .filter(|e| about_artifact(e) || about_commit(e))
            .map(attestation_row)
            .collect();
        let other_attestations = verified.evidence.len() - attestations.len();

        // A withdrawn signature proves nothing: the chain only follows signed steps.
        let chain: Vec<&Evidence> = verified
            .evidence
            .iter()
            .filter(|e| !e.signers.is_empty() && about_artifact(e))
            .collect();
        let signers = |e: &Evidence| e.signers.iter().map(|s| s.identity.clone()).collect();
        let text_at = |e: &Evidence, pointer: &str| {
            e.statement
                .predicate
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let builds: Vec<BuildStep> = chain
            .iter()
            .filter(|e| is(e, predicates::SLSA_PROVENANCE_V1))
            .map(|e| BuildStep {
                index: e.index,
                builder: text_at(e, "/runDetails/builder/id"),
                source_commits: predicates::provenance_source_commits(&e.statement.predicate),
                signers: signers(e),
            })
            .collect();
        let mut source_commits: Vec<String> = builds
            .iter()
            .flat_map(|b| b.source_commits.iter().cloned())
            .collect();
        source_commits.sort();
        source_commits.dedup();
        let releases = chain
            .iter()
            .filter(|e| is(e, predicates::RELEASE_V0_1))
            .filter_map(|e| {
                predicates::release_name_version(&e.statement.predicate).map(|(n, v)| ReleaseStep {
                    index: e.index,
                    release: format!("{n}@{v}"),
                    signers: signers(e),
                })
            })
            .collect();
        let deploys = chain
            .iter()
            .filter(|e| is(e, predicates::VERIFICATION_SUMMARY_V1))
            .map(|e| DeployStep {
                index: e.index,
                integrated_time: time_text(e.integrated_time),
                result: text_at(e, "/verificationResult"),
                policy: text_at(e, "/policy/uri"),
                signers: signers(e),
            })
            .collect();

        ReleaseReport {
            label: label.to_owned(),
            verdict: if report.allowed {
                Verdict::Allowed
            } else {
                Verdict::Denied
            },
            policy: PolicyRef {
                name: policy.name.clone(),
                version: policy.version,
                index: verified
                    .policies
                    .get(&policy.name)
                    .and_then(|versions| versions.get(&policy.version))
                    .map(|(index, _)| *index),
                sha256: Hash::sha256(policy.source.as_bytes()).to_hex(),
                description: policy.description.clone(),
            },
            artifacts: report.artifacts.clone(),
            source_commits: {
                // With several artifacts the evaluation lists each artifact's commits.
                let mut commits = report.source_commits.clone();
                commits.sort();
                commits.dedup();
                commits
            },
            controls: control_rows(policy, report),
            attestations,
            other_attestations,
            traceability: Traceability {
                source_commits,
                builds,
                artifacts: report.artifacts.clone(),
                releases,
                deploys,
            },
            proof: ProofStatus {
                checkpoint: CheckpointRef::from(&verified.checkpoint),
                attestations: verified.evidence.len(),
                policy_versions: verified.policies.values().map(|v| v.len()).sum(),
                registry_entries: verified.registry.events().len(),
            },
        }
    }
}

fn attestation_row(e: &Evidence) -> AttestationRow {
    AttestationRow {
        index: e.index,
        leaf_hash: e.leaf_hash.to_hex(),
        integrated_time: time_text(e.integrated_time),
        predicate_type: e.statement.predicate_type.clone(),
        signers: e
            .signers
            .iter()
            .map(|s| SignerRef {
                identity: s.identity.clone(),
                roles: s.roles.iter().cloned().collect(),
                key_id: s.key.key_id(),
            })
            .collect(),
        withdrawn: e.withdrawn.clone(),
        subjects: e
            .statement
            .subjects
            .iter()
            .map(|s| SubjectRef {
                name: s.name.clone(),
                digests: s
                    .digests
                    .iter()
                    .map(|(alg, value)| format!("{}:{value}", alg.as_str()))
                    .collect(),
            })
            .collect(),
    }
}

/// The report's controls with their predicate types. `VerifiedBundle::evaluate` lists the
/// policy's controls once per artifact, suffixing ids with ` [alg:hex]` when there are
/// several artifacts; the row keeps the id and the artifact apart.
fn control_rows(policy: &Policy, report: &policy::Report) -> Vec<ControlRow> {
    report
        .controls
        .iter()
        .map(|c| {
            let found = policy.controls.iter().find_map(|p| {
                if c.id == p.id {
                    return Some((p, None));
                }
                let artifact = c.id.strip_prefix(p.id.as_str())?.strip_prefix(" [")?;
                Some((p, Some(artifact.strip_suffix(']')?.to_owned())))
            });
            let (id, artifact, predicate_type) = match found {
                Some((p, artifact)) => (p.id.clone(), artifact, Some(p.predicate_type.clone())),
                // A report from another policy: show it as it is.
                None => (c.id.clone(), None, None),
            };
            ControlRow {
                id,
                artifact,
                predicate_type,
                status: c.status,
                reason: c.reason.clone(),
                entries: c.entries.clone(),
            }
        })
        .collect()
}

/// Characters that change how text reads without showing themselves: controls other than
/// tab and newline, zero-width characters, and bidirectional overrides ("Trojan Source").
/// Reports show them as `[U+XXXX]` so evidence cannot make one text look like another.
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Escapes text for HTML element content and quoted attribute values: `& < > " '` become
/// character references, and hidden characters become visible `[U+XXXX]`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_hidden(c) => out.push_str(&format!("[U+{:04X}]", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown paragraph or a GitHub-flavoured table cell: the punctuation
/// that could start markup, raw HTML, an entity or a cell border (`\` `` ` `` `*` `_` `[`
/// `]` `<` `>` `|` `&` `~` `$` `#` `!`) gets a backslash; a line break becomes `<br>`, so a
/// cell stays on its line; hidden characters become visible `[U+XXXX]`.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '$' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            c if is_hidden(c) => out.push_str(&format!("[U+{:04X}]", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: #1f2328; background: #fff; max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 .4em; }
h2 { font-size: 1.35em; margin: 1.8em 0 .6em; padding-bottom: .2em; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 1.08em; margin: 1.4em 0 .5em; }
p { margin: .4em 0; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: .9em; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 6px; border: 1px solid; border-radius: 4px;
  font-weight: 700; font-size: .9em; white-space: nowrap; }
.pass { background: #dafbe1; color: #116329; border-color: #4ac26b; }
.fail { background: #ffebe9; color: #a40e26; border-color: #ff8182; }
.missing { background: #fff8c5; color: #7d4e00; border-color: #d4a72c; }
.verdict { font-size: 1.15em; padding: 8px 12px; border: 1px solid; border-radius: 6px; margin: .6em 0; }
.muted { color: #59636e; }
.nowrap { white-space: nowrap; }
.none { color: #7d4e00; font-style: italic; }
ul { margin: .3em 0; padding-left: 1.4em; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: .4em 0 1em; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; }
.chain dd div + div { margin-top: 2px; }
.wide { overflow-x: auto; }
@page { margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  section.release + section.release { break-before: page; }
  tr, dl.kv > * { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

fn status_badge(status: Status) -> String {
    let class = match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Missing => "missing",
    };
    format!(
        r#"<span class="badge {class}">{}</span>"#,
        status_label(status)
    )
}

fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allowed => "pass",
        Verdict::Denied => "fail",
    }
}

/// `n` passed controls out of all.
fn passed(release: &ReleaseReport) -> String {
    let pass = release
        .controls
        .iter()
        .filter(|c| c.status == Status::Pass)
        .count();
    format!("{pass} of {}", release.controls.len())
}

fn html_list<T>(items: &[T], item: impl Fn(&T) -> String, empty: &str) -> String {
    if items.is_empty() {
        return format!(r#"<span class="none">{}</span>"#, escape_html(empty));
    }
    items
        .iter()
        .map(|i| format!("<div>{}</div>", item(i)))
        .collect()
}

/// A control's id, kept on one line, and the artifact of its row, if any.
fn control_html(c: &ControlRow) -> String {
    let artifact = c
        .artifact
        .as_deref()
        .map(|a| format!(" {}", mono(&format!("[{a}]"))))
        .unwrap_or_default();
    format!(
        r#"<span class="nowrap">{}</span>{artifact}"#,
        escape_html(&c.id)
    )
}

fn control_markdown(c: &ControlRow) -> String {
    match &c.artifact {
        Some(a) => escape_markdown(&format!("{} [{a}]", c.id)),
        None => escape_markdown(&c.id),
    }
}

/// `1 attestation`, `2 attestations`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn mono(text: &str) -> String {
    format!(r#"<span class="mono">{}</span>"#, escape_html(text))
}

/// A link to an attestation row of release `r` (1-based).
fn entry_link(r: usize, index: u64) -> String {
    format!(r##"<a href="#r{r}-e{index}">{index}</a>"##)
}

/// Renders the report as one self-contained HTML page: inline CSS, no scripts, no external
/// assets. Every string from the evidence is escaped.
pub fn render_html(doc: &Document) -> String {
    let e = escape_html;
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"evident report\">\n",
    );
    out.push_str(&format!("<title>{}</title>\n", e(&doc.title)));
    out.push_str(&format!("<style>{CSS}</style>\n</head>\n<body>\n"));
    out.push_str(&format!("<header>\n<h1>{}</h1>\n", e(&doc.title)));
    out.push_str(&format!(
        "<p class=\"muted\">Generated {} from the log {}, verified against its checkpoint of \
         {} entries. Policies were evaluated as of this time.</p>\n</header>\n",
        e(&doc.generated_at),
        mono(&doc.log_origin),
        doc.checkpoint.size
    ));

    out.push_str(
        "<h2>Summary</h2>\n<div class=\"wide\"><table>\n<thead><tr><th>Release</th>\
         <th>Verdict</th><th>Policy</th><th>Controls passed</th></tr></thead>\n<tbody>\n",
    );
    for (n, r) in doc.releases.iter().enumerate() {
        out.push_str(&format!(
            "<tr><td><a href=\"#release-{}\">{}</a></td><td><span class=\"badge {}\">{}</span>\
             </td><td>{}@{}</td><td>{}</td></tr>\n",
            n + 1,
            e(&r.label),
            verdict_class(r.verdict),
            r.verdict.as_str(),
            e(&r.policy.name),
            r.policy.version,
            passed(r)
        ));
    }
    if doc.releases.is_empty() {
        out.push_str("<tr><td colspan=\"4\" class=\"none\">no releases</td></tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");

    for (n, r) in doc.releases.iter().enumerate() {
        release_html(&mut out, n + 1, r, doc);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn release_html(out: &mut String, n: usize, r: &ReleaseReport, doc: &Document) {
    let e = escape_html;
    out.push_str(&format!(
        "<section class=\"release\" id=\"release-{n}\">\n<h2>Release {}</h2>\n",
        e(&r.label)
    ));

    // 1. Verdict.
    out.push_str("<h3>1. Verdict</h3>\n");
    out.push_str(&format!(
        "<p class=\"verdict {}\"><strong>{}</strong> under policy <strong>{}</strong> version \
         {}</p>\n",
        verdict_class(r.verdict),
        r.verdict.as_str(),
        e(&r.policy.name),
        r.policy.version
    ));
    let not_passed: Vec<&ControlRow> = r
        .controls
        .iter()
        .filter(|c| c.status != Status::Pass)
        .collect();
    if !not_passed.is_empty() {
        out.push_str("<p>Controls not passed:</p>\n<ul>\n");
        for c in not_passed {
            out.push_str(&format!(
                "<li>{} {}: {}</li>\n",
                status_badge(c.status),
                control_html(c),
                e(&c.reason)
            ));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<dl class=\"kv\">\n");
    out.push_str(&format!(
        "<dt>Policy</dt><dd>{}@{}{}{}</dd>\n",
        e(&r.policy.name),
        r.policy.version,
        r.policy
            .index
            .map(|i| format!(", log entry {i}"))
            .unwrap_or_default(),
        if r.policy.description.is_empty() {
            String::new()
        } else {
            format!(": {}", e(&r.policy.description))
        }
    ));
    out.push_str(&format!(
        "<dt>Policy SHA-256</dt><dd>{}</dd>\n",
        mono(&r.policy.sha256)
    ));
    out.push_str(&format!(
        "<dt>Artifacts</dt><dd>{}</dd>\n",
        html_list(&r.artifacts, |a| mono(a), "none")
    ));
    out.push_str(&format!(
        "<dt>Source commits</dt><dd>{}</dd>\n",
        html_list(
            &r.source_commits,
            |c| mono(c),
            "none through provenance the policy trusts"
        )
    ));
    out.push_str(&format!(
        "<dt>Evaluated at</dt><dd>{}</dd>\n</dl>\n",
        e(&doc.generated_at)
    ));

    // 2. Controls.
    out.push_str(
        "<h3>2. Controls</h3>\n<div class=\"wide\"><table>\n<thead><tr><th>Control</th>\
         <th>Status</th><th>Predicate type</th><th>Reason</th><th>Entries</th></tr></thead>\n\
         <tbody>\n",
    );
    for c in &r.controls {
        let entries: Vec<String> = c.entries.iter().map(|u| entry_link(n, u.index)).collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            control_html(c),
            status_badge(c.status),
            c.predicate_type
                .as_deref()
                .map_or_else(|| "<span class=\"none\">unknown</span>".to_owned(), mono),
            e(&c.reason),
            if entries.is_empty() {
                "<span class=\"muted\">none</span>".to_owned()
            } else {
                entries.join(", ")
            }
        ));
    }
    out.push_str("</tbody>\n</table></div>\n");

    // 3. Attestations.
    out.push_str(&format!(
        "<h3>3. Attestations: who signed what, and when</h3>\n<p class=\"muted\">Every \
         attestation in the bundle about the artifacts or their source commits, with the \
         signers the trust registry authorized at its integrated time.{}</p>\n",
        if r.other_attestations > 0 {
            format!(
                " {} other attestation(s) in the bundle are about neither.",
                r.other_attestations
            )
        } else {
            String::new()
        }
    ));
    out.push_str(
        "<div class=\"wide\"><table>\n<thead><tr><th>Entry</th><th>Integrated (UTC)</th>\
         <th>Predicate type</th><th>Signed by</th><th>Subjects</th></tr></thead>\n<tbody>\n",
    );
    for a in &r.attestations {
        let mut signed = html_list(
            &a.signers,
            |s| {
                let roles = if s.roles.is_empty() {
                    String::new()
                } else {
                    format!(" <span class=\"muted\">({})</span>", e(&s.roles.join(", ")))
                };
                format!(r#"<span class="nowrap">{}</span>{roles}"#, e(&s.identity))
            },
            "no signature stands",
        );
        for w in &a.withdrawn {
            signed.push_str(&format!(
                "<div><span class=\"badge fail\">WITHDRAWN</span> {}</div>",
                e(w)
            ));
        }
        let subjects = html_list(
            &a.subjects,
            |s| {
                let mut lines: Vec<String> = s.digests.iter().map(|d| mono(d)).collect();
                if !s.name.is_empty() {
                    lines.insert(0, e(&s.name));
                }
                lines.join("<br>")
            },
            "none",
        );
        out.push_str(&format!(
            "<tr id=\"r{n}-e{}\"><td>{}</td><td class=\"nowrap\">{}</td><td>{}</td><td>{signed}</td>\
             <td>{subjects}</td></tr>\n",
            a.index,
            a.index,
            e(&a.integrated_time),
            mono(&a.predicate_type)
        ));
    }
    if r.attestations.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"none\">none</td></tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");

    // 4. Traceability.
    let t = &r.traceability;
    let signed_by = |signers: &[String]| {
        if signers.is_empty() {
            String::new()
        } else {
            format!(", signed by {}", e(&signers.join(", ")))
        }
    };
    out.push_str("<h3>4. Traceability</h3>\n<dl class=\"kv chain\">\n");
    out.push_str(&format!(
        "<dt>Source commit</dt><dd>{}</dd>\n",
        html_list(&t.source_commits, |c| mono(c), "not recorded")
    ));
    out.push_str(&format!(
        "<dt>Build</dt><dd>{}</dd>\n",
        html_list(
            &t.builds,
            |b| format!(
                "SLSA provenance, entry {}{}{}",
                entry_link(n, b.index),
                b.builder
                    .as_deref()
                    .map(|id| format!(", builder {}", mono(id)))
                    .unwrap_or_default(),
                signed_by(&b.signers)
            ),
            "not recorded"
        )
    ));
    out.push_str(&format!(
        "<dt>Artifact</dt><dd>{}</dd>\n",
        html_list(&t.artifacts, |a| mono(a), "not recorded")
    ));
    out.push_str(&format!(
        "<dt>Release</dt><dd>{}</dd>\n",
        html_list(
            &t.releases,
            |s| format!(
                "{}, entry {}{}",
                e(&s.release),
                entry_link(n, s.index),
                signed_by(&s.signers)
            ),
            "not recorded"
        )
    ));
    out.push_str(&format!(
        "<dt>Deploy</dt><dd>{}</dd>\n</dl>\n",
        html_list(
            &t.deploys,
            |d| format!(
                "gate verdict {} under {}, entry {} at {}{}",
                e(d.result.as_deref().unwrap_or("(no result)")),
                e(d.policy.as_deref().unwrap_or("(no policy named)")),
                entry_link(n, d.index),
                e(&d.integrated_time),
                signed_by(&d.signers)
            ),
            "not recorded"
        )
    ));

    // 5. Proofs.
    let p = &r.proof;
    out.push_str("<h3>5. Proofs</h3>\n");
    out.push_str(&format!(
        "<p>All {} of the bundle ({}, {}, {}) have inclusion proofs verified against the \
         checkpoint below, whose signature verified under the pinned log key; every signature \
         was checked against the trust registry replayed from the log's genesis.</p>\n",
        count(p.entries(), "entry", "entries"),
        count(p.attestations, "attestation", "attestations"),
        count(p.policy_versions, "policy version", "policy versions"),
        count(p.registry_entries, "registry entry", "registry entries")
    ));
    out.push_str(&format!(
        "<dl class=\"kv\">\n<dt>Log origin</dt><dd>{}</dd>\n<dt>Tree size</dt><dd>{} entries\
         </dd>\n<dt>Root hash (hex)</dt><dd>{}</dd>\n<dt>Root hash (base64)</dt><dd>{}</dd>\n\
         <dt>Log key</dt><dd>{}</dd>\n</dl>\n</section>\n",
        mono(&p.checkpoint.origin),
        p.checkpoint.size,
        mono(&p.checkpoint.root_hex),
        mono(&p.checkpoint.root_base64),
        mono(&doc.log_key)
    ));
}

/// Renders the report as GitHub-flavoured Markdown, with the same content as the HTML.
/// Every string from the evidence is escaped.
pub fn render_markdown(doc: &Document) -> String {
    let m = escape_markdown;
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n", m(&doc.title)));
    out.push_str(&format!(
        "Generated {} from the log {}, verified against its checkpoint of {} entries. \
         Policies were evaluated as of this time.\n\n",
        m(&doc.generated_at),
        m(&doc.log_origin),
        doc.checkpoint.size
    ));
    out.push_str(
        "## Summary\n\n| Release | Verdict | Policy | Controls passed |\n|---|---|---|---|\n",
    );
    for r in &doc.releases {
        out.push_str(&format!(
            "| {} | {} | {}@{} | {} |\n",
            m(&r.label),
            r.verdict.as_str(),
            m(&r.policy.name),
            r.policy.version,
            passed(r)
        ));
    }
    for r in &doc.releases {
        release_markdown(&mut out, r, doc);
    }
    out
}

/// Items joined for one Markdown cell, or `empty`.
fn md_items<T>(items: &[T], item: impl Fn(&T) -> String, empty: &str) -> String {
    if items.is_empty() {
        return empty.to_owned();
    }
    items.iter().map(item).collect::<Vec<_>>().join("<br>")
}

fn release_markdown(out: &mut String, r: &ReleaseReport, doc: &Document) {
    let m = escape_markdown;
    out.push_str(&format!(
        "\n## Release {}\n\n### 1. Verdict\n\n",
        m(&r.label)
    ));
    out.push_str(&format!(
        "**{}** under policy **{}** version {}\n\n",
        r.verdict.as_str(),
        m(&r.policy.name),
        r.policy.version
    ));
    let not_passed: Vec<&ControlRow> = r
        .controls
        .iter()
        .filter(|c| c.status != Status::Pass)
        .collect();
    if !not_passed.is_empty() {
        out.push_str("Controls not passed:\n\n");
        for c in not_passed {
            out.push_str(&format!(
                "- **{}** {}: {}\n",
                status_label(c.status),
                control_markdown(c),
                m(&c.reason)
            ));
        }
        out.push('\n');
    }
    out.push_str("| | |\n|---|---|\n");
    out.push_str(&format!(
        "| Policy | {}@{}{}{} |\n",
        m(&r.policy.name),
        r.policy.version,
        r.policy
            .index
            .map(|i| format!(", log entry {i}"))
            .unwrap_or_default(),
        if r.policy.description.is_empty() {
            String::new()
        } else {
            format!(": {}", m(&r.policy.description))
        }
    ));
    out.push_str(&format!("| Policy SHA-256 | {} |\n", r.policy.sha256));
    out.push_str(&format!(
        "| Artifacts | {} |\n",
        md_items(&r.artifacts, |a| m(a), "none")
    ));
    out.push_str(&format!(
        "| Source commits | {} |\n",
        md_items(
            &r.source_commits,
            |c| m(c),
            "none through provenance the policy trusts"
        )
    ));
    out.push_str(&format!("| Evaluated at | {} |\n", m(&doc.generated_at)));

    out.push_str(
        "\n### 2. Controls\n\n| Control | Status | Predicate type | Reason | Entries |\n\
         |---|---|---|---|---|\n",
    );
    for c in &r.controls {
        let entries: Vec<String> = c.entries.iter().map(|u| u.index.to_string()).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            control_markdown(c),
            status_label(c.status),
            c.predicate_type.as_deref().map_or("unknown".to_owned(), m),
            m(&c.reason),
            if entries.is_empty() {
                "none".to_owned()
            } else {
                entries.join(", ")
            }
        ));
    }

    out.push_str(
        "\n### 3. Attestations: who signed what, and when\n\nEvery attestation in the bundle \
         about the artifacts or their source commits, with the signers the trust registry \
         authorized at its integrated time.",
    );
    if r.other_attestations > 0 {
        out.push_str(&format!(
            " {} other attestation(s) in the bundle are about neither.",
            r.other_attestations
        ));
    }
    out.push_str(
        "\n\n| Entry | Integrated (UTC) | Predicate type | Signed by | Subjects |\n\
         |---|---|---|---|---|\n",
    );
    for a in &r.attestations {
        let mut signed: Vec<String> = a
            .signers
            .iter()
            .map(|s| {
                if s.roles.is_empty() {
                    m(&s.identity)
                } else {
                    format!("{} ({})", m(&s.identity), m(&s.roles.join(", ")))
                }
            })
            .collect();
        signed.extend(a.withdrawn.iter().map(|w| format!("WITHDRAWN: {}", m(w))));
        let subjects = md_items(
            &a.subjects,
            |s| {
                let digests = m(&s.digests.join(" "));
                if s.name.is_empty() {
                    digests
                } else {
                    format!("{} {digests}", m(&s.name))
                }
            },
            "none",
        );
        out.push_str(&format!(
            "| {} | {} | {} | {} | {subjects} |\n",
            a.index,
            m(&a.integrated_time),
            m(&a.predicate_type),
            if signed.is_empty() {
                "no signature stands".to_owned()
            } else {
                signed.join("<br>")
            }
        ));
    }

    let t = &r.traceability;
    let signed_by = |signers: &[String]| {
        if signers.is_empty() {
            String::new()
        } else {
            format!(", signed by {}", m(&signers.join(", ")))
        }
    };
    out.push_str("\n### 4. Traceability\n\n| Step | Recorded |\n|---|---|\n");
    out.push_str(&format!(
        "| Source commit | {} |\n",
        md_items(&t.source_commits, |c| m(c), "not recorded")
    ));
    out.push_str(&format!(
        "| Build | {} |\n",
        md_items(
            &t.builds,
            |b| format!(
                "SLSA provenance, entry {}{}{}",
                b.index,
                b.builder
                    .as_deref()
                    .map(|id| format!(", builder {}", m(id)))
                    .unwrap_or_default(),
                signed_by(&b.signers)
            ),
            "not recorded"
        )
    ));
    out.push_str(&format!(
        "| Artifact | {} |\n",
        md_items(&t.artifacts, |a| m(a), "not recorded")
    ));
    out.push_str(&format!(
        "| Release | {} |\n",
        md_items(
            &t.releases,
            |s| format!(
                "{}, entry {}{}",
                m(&s.release),
                s.index,
                signed_by(&s.signers)
            ),
            "not recorded"
        )
    ));
    out.push_str(&format!(
        "| Deploy | {} |\n",
        md_items(
            &t.deploys,
            |d| format!(
                "gate verdict {} under {}, entry {} at {}{}",
                m(d.result.as_deref().unwrap_or("(no result)")),
                m(d.policy.as_deref().unwrap_or("(no policy named)")),
                d.index,
                m(&d.integrated_time),
                signed_by(&d.signers)
            ),
            "not recorded"
        )
    ));

    let p = &r.proof;
    out.push_str(&format!(
        "\n### 5. Proofs\n\nAll {} of the bundle ({}, {}, {}) have inclusion proofs verified \
         against the checkpoint below, whose signature verified under the pinned log key; every \
         signature was checked against the trust registry replayed from the log's genesis.\n\n\
         | | |\n|---|---|\n",
        count(p.entries(), "entry", "entries"),
        count(p.attestations, "attestation", "attestations"),
        count(p.policy_versions, "policy version", "policy versions"),
        count(p.registry_entries, "registry entry", "registry entries")
    ));
    out.push_str(&format!(
        "| Log origin | {} |\n| Tree size | {} entries |\n| Root hash (hex) | {} |\n\
         | Root hash (base64) | {} |\n| Log key | {} |\n",
        m(&p.checkpoint.origin),
        p.checkpoint.size,
        p.checkpoint.root_hex,
        m(&p.checkpoint.root_base64),
        m(&doc.log_key)
    ));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use std::collections::{BTreeMap, BTreeSet};

    use evident_core::bundle::VerifiedBundle;
    use evident_core::note::{Checkpoint, Verifier};
    use evident_core::policy::{Evidence, Policy};
    use evident_core::registry::{Admin, Authorized, Registry};
    use evident_core::statement::Statement;
    use evident_core::{Hash, PublicKey, SigningKey};
    use serde_json::{Value, json};

    use super::*;

    const ARTIFACT: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const HOSTILE: &str = "<script>alert(1)</script>";

    const POLICY: &str = r#"name = "payments-prod"
version = 3

[[control]]
id = "provenance"
predicate_type = "https://slsa.dev/provenance/v1"
signers = ["role:ci"]

[[control]]
id = "unit-tests"
predicate_type = "https://in-toto.io/attestation/test-result/v0.1"
subject = "source-commit"
require = 'predicate.result == "PASSED"'
"#;

    fn public(n: u8) -> PublicKey {
        PublicKey::from_signing_key(&SigningKey::from_bytes(&[n; 32]))
    }

    fn evidence(
        index: u64,
        identity: &str,
        subject: Value,
        kind: &str,
        predicate: Value,
    ) -> Evidence {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [subject],
            "predicateType": kind,
            "predicate": predicate,
        });
        Evidence {
            index,
            leaf_hash: Hash::sha256(&index.to_be_bytes()),
            integrated_time: 1_700_000_000_000_000_000 + i64::try_from(index).unwrap(),
            statement: Statement::from_json(statement.to_string().as_bytes()).unwrap(),
            signers: vec![Authorized {
                identity: identity.to_owned(),
                key: public(1),
                roles: BTreeSet::from(["ci".to_owned()]),
            }],
            withdrawn: Vec::new(),
        }
    }

    /// A verified bundle as `Bundle::verify` would return it, built by hand: provenance by
    /// `builder` about the artifact, a test result about its commit, and `extra`.
    fn bundle(builder: &str, test_result: &str, extra: Vec<Evidence>) -> (VerifiedBundle, Policy) {
        let policy = Policy::parse(POLICY).unwrap();
        let art = json!({"name": "payments-api", "digest": {"sha256": ARTIFACT}});
        let src = json!({"name": "payments", "digest": {"gitCommit": COMMIT}});
        let mut evidence = vec![
            evidence(
                5,
                builder,
                art,
                predicates::SLSA_PROVENANCE_V1,
                json!({
                    "buildDefinition": {"resolvedDependencies": [{"digest": {"gitCommit": COMMIT}}]},
                    "runDetails": {"builder": {"id": "https://ci.example.com"}},
                }),
            ),
            evidence(
                6,
                "ci@test",
                src,
                predicates::TEST_RESULT_V0_1,
                json!({"result": test_result}),
            ),
        ];
        evidence.extend(extra);
        let verified = VerifiedBundle {
            checkpoint: Checkpoint {
                origin: "evident.test/log".into(),
                size: 9,
                root: Hash::sha256(b"root"),
                extensions: Vec::new(),
            },
            evidence,
            policies: BTreeMap::from([(
                policy.name.clone(),
                BTreeMap::from([(policy.version, (4, policy.clone()))]),
            )]),
            registry: Registry::genesis(
                vec![Admin {
                    identity: "admin@test".into(),
                    key: public(9),
                }],
                1,
            )
            .unwrap(),
        };
        (verified, policy)
    }

    fn document(verified: &VerifiedBundle, policy: &Policy) -> Document {
        let artifacts = vec![format!("sha256:{ARTIFACT}")];
        let report = verified.evaluate(policy, &artifacts, i64::MAX);
        let key = Verifier::new("evident.test/log", public(9)).unwrap();
        let mut doc = Document::new("Release report", 0, &key, &verified.checkpoint);
        doc.releases.push(ReleaseReport::new(
            "payments-api@1.4.2",
            verified,
            policy,
            &report,
        ));
        doc
    }

    #[test]
    fn the_model_holds_controls_signers_and_the_chain() {
        let (verified, policy) = bundle("ci@test", "FAILED", vec![]);
        let doc = document(&verified, &policy);
        let r = &doc.releases[0];
        assert_eq!(r.verdict, Verdict::Denied);
        assert_eq!(r.policy.index, Some(4));
        assert_eq!(
            r.controls
                .iter()
                .map(|c| (
                    c.id.as_str(),
                    status_label(c.status),
                    c.predicate_type.as_deref()
                ))
                .collect::<Vec<_>>(),
            [
                ("provenance", "PASS", Some(predicates::SLSA_PROVENANCE_V1)),
                ("unit-tests", "FAIL", Some(predicates::TEST_RESULT_V0_1)),
            ]
        );
        assert_eq!(r.attestations.len(), 2);
        assert_eq!(r.attestations[0].signers[0].identity, "ci@test");
        assert_eq!(r.traceability.source_commits, [COMMIT]);
        assert_eq!(r.traceability.builds[0].index, 5);
        assert_eq!(
            r.traceability.builds[0].builder.as_deref(),
            Some("https://ci.example.com")
        );
        assert!(r.traceability.releases.is_empty());
        assert!(r.traceability.deploys.is_empty());
        assert_eq!(r.proof.checkpoint.size, 9);
        assert_eq!(r.proof.entries(), 3);
        let markdown = render_markdown(&doc);
        assert!(
            markdown.contains("| Release | not recorded |"),
            "{markdown}"
        );
        assert!(markdown.contains("| Deploy | not recorded |"), "{markdown}");
        assert!(markdown.contains("| unit-tests | FAIL |"), "{markdown}");
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["releases"][0]["verdict"], "DENIED");
        assert_eq!(json["releases"][0]["controls"][1]["status"], "fail");
    }

    #[test]
    fn hostile_evidence_is_inert_in_the_html() {
        let hostile_type = "\"><img src=x onerror=alert(1)>";
        let extra = evidence(
            7,
            "ci@test",
            json!({"name": format!("{HOSTILE}\u{202E}gpj.exe"), "digest": {"sha256": ARTIFACT}}),
            hostile_type,
            json!({}),
        );
        let (verified, policy) = bundle(HOSTILE, "PASSED", vec![extra]);
        let html = render_html(&document(&verified, &policy));
        assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
        assert!(!html.to_ascii_lowercase().contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "the identity is shown, escaped"
        );
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        // A bidirectional override is shown, not obeyed.
        assert!(html.contains("[U+202E]gpj.exe") && !html.contains('\u{202E}'));
        // Nothing is loaded from anywhere.
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(!html.contains("@import") && !html.contains("url("));
    }

    #[test]
    fn markdown_escapes_markup_and_keeps_every_cell_on_its_row() {
        assert_eq!(
            escape_markdown("a|b\r\nc\nd<script>*x*_[y](z)`&amp;"),
            "a\\|b<br>c<br>d\\<script\\>\\*x\\*\\_\\[y\\](z)\\`\\&amp;"
        );
        assert_eq!(escape_markdown("e\u{202E}f\u{0}"), "e[U+202E]f[U+0000]");
        let hostile = "evil | FAIL | forged\n| row |";
        let (verified, policy) = bundle(hostile, "PASSED", vec![]);
        let markdown = render_markdown(&document(&verified, &policy));
        assert!(
            markdown.contains("evil \\| FAIL \\| forged<br>\\| row \\|"),
            "{markdown}"
        );
        // Every row of the attestation table has exactly its five cells.
        let unescaped_pipes = |line: &str| {
            let bytes = line.as_bytes();
            (0..bytes.len())
                .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
                .count()
        };
        let table: Vec<&str> = markdown
            .lines()
            .skip_while(|l| !l.starts_with("| Entry |"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(table.len(), 4, "{markdown}");
        assert!(table.iter().all(|l| unescaped_pipes(l) == 6), "{table:#?}");
    }

    #[test]
    fn html_escapes_every_special_character() {
        assert_eq!(
            escape_html("<a href='x'>\"&\u{200B}</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;[U+200B]&lt;/a&gt;"
        );
    }

    #[test]
    fn controls_of_a_release_with_several_artifacts_keep_their_predicate_types() {
        let (verified, policy) = bundle("ci@test", "PASSED", vec![]);
        let artifacts = vec![
            format!("sha256:{ARTIFACT}"),
            format!("sha256:{}", "ab".repeat(32)),
        ];
        let report = verified.evaluate(&policy, &artifacts, i64::MAX);
        let r = ReleaseReport::new("two", &verified, &policy, &report);
        assert_eq!(r.controls.len(), 4);
        assert_eq!(r.controls[3].id, "unit-tests");
        assert_eq!(r.controls[3].artifact, Some(artifacts[1].clone()));
        assert_eq!(
            r.controls[3].predicate_type.as_deref(),
            Some(predicates::TEST_RESULT_V0_1)
        );
    }
}
