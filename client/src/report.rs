//! Auditor's reports of releases: the verdict, the controls, who signed what and when, the
//! chain from source commit to deploy, and the proofs behind it, as one self-contained HTML
//! page and as GitHub-flavoured Markdown (`docs/REPORT.md`).
//!
//! The model ([`Document`], holding one [`ReleaseReport`] per release) is built from a bundle
//! that was already verified and from the policy's evaluation over it; nothing here verifies
//! or decides anything. Every string taken from the evidence (identities, predicate types,
//! subject names, reasons) is attacker-influenced: the renderers escape all of it, and the
//! HTML page must never load anything (no scripts, no external styles, fonts or images).

use std::borrow::Cow;
use std::collections::BTreeSet;

use evident_core::bundle::VerifiedBundle;
use evident_core::frameworks::{Catalogue, Source};
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
    /// The past time the decisions were re-performed as of (RFC 3339, UTC), with the
    /// registry, policies and evidence of that moment; `None` when evaluated at
    /// `generated_at`.
    pub as_of: Option<String>,
    /// The releases, in the order given.
    pub releases: Vec<ReleaseReport>,
    /// For a period's report: what the log proves about the population (every release
    /// attestation integrated in the period).
    pub population: Option<PopulationProof>,
}

/// What a period report's population rests on: the release attestations of the period, as
/// the log's verifiable index proves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PopulationProof {
    /// Whether the list of release attestations is proven complete.
    pub complete: bool,
    /// How many release attestations the period holds (when proven).
    pub release_attestations: Option<u64>,
    /// The size of the checkpoint the list was proven against.
    pub checkpoint_size: Option<u64>,
    /// What was proven, in words.
    pub text: String,
    /// The release attestations of the period the report does not cover, because no
    /// release signer signed them by the server's signer lists: `NAME@VERSION (entry N)`.
    pub not_reported: Vec<String>,
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
            as_of: None,
            releases: Vec::new(),
            population: None,
        }
    }

    /// When the policies were evaluated: `as_of`, or else `generated_at`.
    pub fn evaluated_at(&self) -> &str {
        self.as_of.as_deref().unwrap_or(&self.generated_at)
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
    /// What each artifact is called, by the release and build attestations trusted for it.
    pub artifact_names: Vec<ArtifactRef>,
    /// One row per control (per control and artifact, for a release of several artifacts).
    pub controls: Vec<ControlRow>,
    /// Findings at or above a control's severity limit that the policy's allowlist let
    /// through, with the policy's reason and who approved that policy version.
    pub exceptions: Vec<ExceptionRow>,
    /// For each control that reads reviews: the change, its author, and every reviewer's
    /// decision in order, counted or not and why.
    pub reviews: Vec<ReviewSection>,
    /// The test runs in the attestations, with their suites and counts.
    pub tests: Vec<TestRow>,
    /// Registry changes recorded after an attestation of this release about one of its
    /// signers (a key revoked after signing, say), and whether each withdrew a signature.
    pub later_events: Vec<LaterEvent>,
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

impl ReleaseReport {
    /// The release's declaration by one of the policy's release signers (the first).
    pub fn declaration(&self) -> Option<&ReleaseStep> {
        self.traceability.releases.iter().find(|r| r.trusted)
    }

    /// The latest deploy verdict recorded by a trusted verdict signer, `PASSED` or
    /// `FAILED`.
    pub fn recorded_verdict(&self) -> Option<&DeployStep> {
        self.traceability.deploys.iter().rev().find(|d| d.trusted)
    }
}

/// An artifact and the name trusted attestations give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRef {
    /// `alg:hex`.
    pub digest: String,
    /// The subject name of the release or build attestation that declares it, when one
    /// with a standing signature names it.
    pub name: Option<String>,
}

/// An allowlisted finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRow {
    /// The control whose allowlist accepted it.
    pub control: String,
    /// The artifact of the control's row, for a release of several artifacts.
    pub artifact: Option<String>,
    /// The scan entry that reported it.
    pub index: u64,
    /// The finding, e.g. `CVE-2024-0002`.
    pub finding: String,
    /// Its severity.
    pub severity: String,
    /// The policy's reason for accepting it.
    pub reason: String,
    /// The administrators whose signatures made the policy version (and its allowlist)
    /// count.
    pub approved_by: Vec<String>,
}

/// The reviews a control read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewSection {
    /// The control.
    pub control: String,
    /// Its outcome.
    pub status: Status,
    /// The artifacts whose rows read exactly these reviews (empty for a release of one).
    pub artifacts: Vec<String>,
    /// The changes review systems recorded, with their authors.
    pub changes: Vec<ChangeRow>,
    /// Every reviewer's decision, in the order the control read them.
    pub decisions: Vec<DecisionRow>,
}

/// A change, as a review system recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRow {
    /// The approval entry.
    pub index: u64,
    /// The change (pull or merge request).
    pub change_ref: String,
    /// The commit the reviewers saw.
    pub reviewed_commit: String,
    /// Its author, empty when the entry names none.
    pub author: String,
    /// The review systems that signed the entry.
    pub recorded_by: Vec<String>,
}

/// One reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRow {
    /// The approval entry.
    pub index: u64,
    /// The reviewer.
    pub reviewer: String,
    /// `APPROVED`, `CHANGES_REQUESTED` or `OTHER`.
    pub decision: String,
    /// When, as the entry says it (RFC 3339).
    pub time: String,
    /// Who signed the entry.
    pub signed_by: Vec<String>,
    /// Whether it stands in the verdict.
    pub counted: bool,
    /// Why it counts or not.
    pub note: String,
}

/// A test run: one test-result attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRow {
    /// Its entry.
    pub index: u64,
    /// `PASSED`, `WARNED`, `FAILED`, or empty when it says none.
    pub result: String,
    /// The configurations (suites) it ran.
    pub suites: Vec<String>,
    /// How many tests passed, warned and failed.
    pub passed: usize,
    /// Tests that warned.
    pub warned: usize,
    /// Tests that failed.
    pub failed: usize,
    /// The names of the tests that failed.
    pub failed_tests: Vec<String>,
    /// Where the run is published.
    pub url: Option<String>,
    /// Who signed it (signatures that stand).
    pub signers: Vec<String>,
    /// Signatures a later, backdated revocation withdrew, in words: a run no signature
    /// stands for proves nothing.
    pub withdrawn: Vec<String>,
}

/// A registry change about a signer, recorded after the signer attested for this release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LaterEvent {
    /// The registry entry.
    pub index: u64,
    /// When it was integrated (RFC 3339, UTC).
    pub integrated_time: String,
    /// The signer it is about.
    pub identity: String,
    /// What changed, in words.
    pub summary: String,
    /// The release's entries the signer had signed before it.
    pub after_entries: Vec<u64>,
    /// Of those, the ones whose signature by this signer the registry, as it stands at the
    /// report's checkpoint (or `--as-of` time), withdraws — a revocation dated back to or
    /// before them, by this event or another: that signature counts for nothing.
    pub withdrawn_now: Vec<u64>,
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
    /// When that entry was integrated (RFC 3339, UTC).
    pub integrated_time: Option<String>,
    /// The administrators whose signatures made it count.
    pub approved_by: Vec<String>,
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
    /// The framework controls it evidences (`docs/FRAMEWORKS.md`): what the policy names,
    /// then what the catalogue maps.
    pub frameworks: Vec<FrameworkLink>,
}

/// The framework controls `control` evidences, resolved against `catalogue`.
pub fn framework_links(catalogue: &Catalogue, control: &policy::Control) -> Vec<FrameworkLink> {
    catalogue
        .evidenced_by(control)
        .into_iter()
        .map(|e| FrameworkLink {
            title: catalogue
                .control(&e.reference)
                .and_then(|(_, c)| c.title.clone()),
            known: e.known,
            named_by_policy: e.sources.contains(&Source::Policy),
            mapped_because: e
                .sources
                .into_iter()
                .filter_map(|s| match s {
                    Source::Mapping(why) => Some(why),
                    Source::Policy => None,
                })
                .collect(),
            framework: e.reference.framework,
            control: e.reference.control,
        })
        .collect()
}

/// A framework control a policy control evidences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkLink {
    /// The framework's id in the catalogue, e.g. `soc2`.
    pub framework: String,
    /// The control's id in the framework, e.g. `CC8.1`.
    pub control: String,
    /// Its title, where the catalogue lists it and its licence allows quoting it.
    pub title: Option<String>,
    /// Whether the catalogue lists it.
    pub known: bool,
    /// Whether the policy names it (`evidences`).
    pub named_by_policy: bool,
    /// The rationales of the catalogue's mappings that link it.
    pub mapped_because: Vec<String>,
}

impl FrameworkLink {
    /// `FRAMEWORK:CONTROL`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.framework, self.control)
    }
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
    /// Whether a signer the policy's `release_signers` names signed it: only such a
    /// declaration is the release's.
    pub trusted: bool,
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
    /// Whether a verdict signer the report trusts (`--verdict-signer`, by default the
    /// `deploy` role) signed it and it states `PASSED` or `FAILED`: only such a summary is
    /// a recorded deploy verdict.
    pub trusted: bool,
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
        catalogue: &Catalogue,
        verdict_signers: &[policy::SignerRule],
    ) -> ReleaseReport {
        let artifacts: BTreeSet<(String, String)> = report
            .artifacts
            .iter()
            .filter_map(|a| a.split_once(':'))
            .map(|(alg, hex)| (alg.to_ascii_lowercase(), hex.to_ascii_lowercase()))
            .collect();
        let about_artifact = |e: &Evidence| {
            e.statement().digests().any(|(alg, value)| {
                artifacts.contains(&(
                    alg.as_str().to_ascii_lowercase(),
                    value.to_ascii_lowercase(),
                ))
            })
        };
        let is =
            |e: &Evidence, predicate_type: &str| e.statement().predicate_type == predicate_type;
        // Every commit any provenance about the artifacts names, whoever signed it: the
        // attestations about those commits are shown, and the policy's rows say which counted.
        let commits: BTreeSet<String> = verified
            .evidence()
            .iter()
            .filter(|e| is(e, predicates::SLSA_PROVENANCE_V1) && about_artifact(e))
            .flat_map(|e| predicates::provenance_source_commits(&e.statement().predicate))
            .collect();
        let about_commit = |e: &Evidence| {
            e.statement().digests().any(|(alg, value)| {
                matches!(alg.as_str(), "gitCommit" | "sha1")
                    && commits.contains(&value.to_ascii_lowercase())
            })
        };
        let attestations: Vec<AttestationRow> = verified
            .evidence()
            .iter()
            .filter(|e| about_artifact(e) || about_commit(e))
            .map(attestation_row)
            .collect();
        let other_attestations = verified.evidence().len() - attestations.len();

        // A withdrawn signature proves nothing: the chain only follows signed steps.
        let chain: Vec<&Evidence> = verified
            .evidence()
            .iter()
            .filter(|e| !e.signers().is_empty() && about_artifact(e))
            .collect();
        let signers = |e: &Evidence| e.signers().iter().map(|s| s.identity.clone()).collect();
        let text_at = |e: &Evidence, pointer: &str| {
            e.statement()
                .predicate
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let builds: Vec<BuildStep> = chain
            .iter()
            .filter(|e| is(e, predicates::SLSA_PROVENANCE_V1))
            .map(|e| BuildStep {
                index: e.index(),
                builder: text_at(e, "/runDetails/builder/id"),
                source_commits: predicates::provenance_source_commits(&e.statement().predicate),
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
                predicates::release_name_version(&e.statement().predicate).map(|(n, v)| {
                    ReleaseStep {
                        index: e.index(),
                        release: format!("{n}@{v}"),
                        signers: signers(e),
                        trusted: e
                            .signers()
                            .iter()
                            .any(|s| policy::signer_named(&policy.release_signers, s)),
                    }
                })
            })
            .collect();
        let deploys = chain
            .iter()
            .filter(|e| is(e, predicates::VERIFICATION_SUMMARY_V1))
            .map(|e| DeployStep {
                index: e.index(),
                integrated_time: time_text(e.integrated_time()),
                result: text_at(e, "/verificationResult"),
                policy: text_at(e, "/policy/uri"),
                signers: signers(e),
                trusted: e
                    .signers()
                    .iter()
                    .any(|s| policy::signer_named(verdict_signers, s))
                    && matches!(
                        text_at(e, "/verificationResult").as_deref(),
                        Some("PASSED" | "FAILED")
                    ),
            })
            .collect();

        let approval = verified.policy_approval(&policy.name, policy.version);
        let controls = control_rows(policy, report, catalogue);
        let approved_by = approval.map(|a| a.approvers.clone()).unwrap_or_default();
        let exceptions = controls
            .iter()
            .zip(&report.controls)
            .flat_map(|(row, c)| {
                c.detail.exceptions.iter().map(|e| ExceptionRow {
                    control: row.id.clone(),
                    artifact: row.artifact.clone(),
                    index: e.index,
                    finding: e.id.clone(),
                    severity: e.severity.as_str().to_owned(),
                    reason: e.reason.clone(),
                    approved_by: approved_by.clone(),
                })
            })
            .collect();
        let reviews = review_sections(&controls, report);
        let tests = verified
            .evidence()
            .iter()
            .filter(|e| {
                is(e, predicates::TEST_RESULT_V0_1) && (about_artifact(e) || about_commit(e))
            })
            .map(|e| {
                let t = predicates::test_result(&e.statement().predicate);
                TestRow {
                    index: e.index(),
                    result: t.result,
                    suites: t.configuration,
                    passed: t.passed.len(),
                    warned: t.warned.len(),
                    failed: t.failed.len(),
                    failed_tests: t.failed,
                    url: t.url,
                    signers: signers(e),
                    withdrawn: e.withdrawn().to_vec(),
                }
            })
            .collect();
        let shown: Vec<&Evidence> = verified
            .evidence()
            .iter()
            .filter(|e| about_artifact(e) || about_commit(e))
            .collect();
        let later_events = later_events(verified, &shown);
        let artifact_names = report
            .artifacts
            .iter()
            .map(|digest| ArtifactRef {
                name: artifact_name(&chain, policy, digest),
                digest: digest.clone(),
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
                    .policies()
                    .get(&policy.name)
                    .and_then(|versions| versions.get(&policy.version))
                    .map(|(index, _)| *index),
                integrated_time: approval.map(|a| time_text(a.integrated_time)),
                approved_by,
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
            artifact_names,
            controls,
            exceptions,
            reviews,
            tests,
            later_events,
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
                checkpoint: CheckpointRef::from(verified.checkpoint()),
                attestations: verified.evidence().len(),
                policy_versions: verified.policies().values().map(|v| v.len()).sum(),
                registry_entries: verified.registry().events().len(),
            },
        }
    }
}

/// The name the parties trusted for it give `digest` (`alg:hex`): the subject name of a
/// release attestation by one of the policy's release signers, else of provenance by a
/// signer one of its provenance controls allows. Anyone else's name for it is not shown.
fn artifact_name(chain: &[&Evidence], policy: &Policy, digest: &str) -> Option<String> {
    let (alg, hex) = digest.split_once(':')?;
    let trusted = |e: &Evidence, predicate_type: &str| {
        e.signers().iter().any(|s| {
            if predicate_type == predicates::RELEASE_V0_1 {
                return policy::signer_named(&policy.release_signers, s);
            }
            policy.controls.iter().any(|c| {
                c.predicate_type == predicate_type
                    && (c.signers.is_empty() || policy::signer_named(&c.signers, s))
            })
        })
    };
    let named_in = |predicate_type: &str| {
        chain
            .iter()
            .filter(|e| {
                e.statement().predicate_type == predicate_type && trusted(e, predicate_type)
            })
            .flat_map(|e| &e.statement().subjects)
            .find(|s| {
                !s.name.is_empty()
                    && s.digests.iter().any(|(a, v)| {
                        a.as_str().eq_ignore_ascii_case(alg) && v.eq_ignore_ascii_case(hex)
                    })
            })
            .map(|s| s.name.clone())
    };
    named_in(predicates::RELEASE_V0_1).or_else(|| named_in(predicates::SLSA_PROVENANCE_V1))
}

/// The review trails of the report's controls, one per control and distinct trail: a
/// release of several artifacts built from one commit reads the same reviews for each.
fn review_sections(rows: &[ControlRow], report: &policy::Report) -> Vec<ReviewSection> {
    let mut out: Vec<ReviewSection> = Vec::new();
    for (row, c) in rows.iter().zip(&report.controls) {
        let Some(trail) = &c.detail.review else {
            continue;
        };
        let section = ReviewSection {
            control: row.id.clone(),
            status: c.status,
            artifacts: row.artifact.iter().cloned().collect(),
            changes: trail
                .changes
                .iter()
                .map(|ch| ChangeRow {
                    index: ch.index,
                    change_ref: ch.change_ref.clone(),
                    reviewed_commit: ch.reviewed_commit.clone(),
                    author: ch.author.clone(),
                    recorded_by: ch.recorded_by.clone(),
                })
                .collect(),
            decisions: trail
                .decisions
                .iter()
                .map(|d| DecisionRow {
                    index: d.index,
                    reviewer: d.reviewer.clone(),
                    decision: d.decision.as_str().to_owned(),
                    time: d.time.clone(),
                    signed_by: d.signed_by.clone(),
                    counted: d.counted,
                    note: d.note.clone(),
                })
                .collect(),
        };
        match out.iter_mut().find(|s| {
            s.control == section.control
                && s.status == section.status
                && s.changes == section.changes
                && s.decisions == section.decisions
        }) {
            Some(same) => same.artifacts.extend(section.artifacts),
            None => out.push(section),
        }
    }
    out
}

/// Registry events about the signers of `shown` recorded after they signed: each with the
/// entries signed before it, and those whose signature it withdrew.
fn later_events(verified: &VerifiedBundle, shown: &[&Evidence]) -> Vec<LaterEvent> {
    verified
        .registry()
        .events()
        .iter()
        .filter_map(|event| {
            let signed: Vec<&&Evidence> = shown
                .iter()
                .filter(|e| {
                    e.index() < event.index
                        && e.authorized().iter().any(|s| s.identity == event.identity)
                })
                .collect();
            if signed.is_empty() {
                return None;
            }
            Some(LaterEvent {
                index: event.index,
                integrated_time: time_text(event.time),
                identity: event.identity.clone(),
                summary: event.summary.clone(),
                after_entries: signed.iter().map(|e| e.index()).collect(),
                // Authorized when it was logged, gone from the evidence now: withdrawn.
                withdrawn_now: signed
                    .iter()
                    .filter(|e| !e.signers().iter().any(|s| s.identity == event.identity))
                    .map(|e| e.index())
                    .collect(),
            })
        })
        .collect()
}

fn attestation_row(e: &Evidence) -> AttestationRow {
    AttestationRow {
        index: e.index(),
        leaf_hash: e.leaf_hash().to_hex(),
        integrated_time: time_text(e.integrated_time()),
        predicate_type: e.statement().predicate_type.clone(),
        signers: e
            .signers()
            .iter()
            .map(|s| SignerRef {
                identity: s.identity.clone(),
                roles: s.roles.iter().cloned().collect(),
                key_id: s.key_id.clone(),
            })
            .collect(),
        withdrawn: e.withdrawn().to_vec(),
        subjects: e
            .statement()
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
fn control_rows(
    policy: &Policy,
    report: &policy::Report,
    catalogue: &Catalogue,
) -> Vec<ControlRow> {
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
            let frameworks = policy
                .controls
                .iter()
                .find(|p| p.id == id)
                .map(|p| framework_links(catalogue, p))
                .unwrap_or_default();
            ControlRow {
                id,
                artifact,
                predicate_type,
                status: c.status,
                reason: c.reason.clone(),
                entries: c.entries.clone(),
                frameworks,
            }
        })
        .collect()
}

/// Characters that change how text reads without showing themselves: every control
/// character (C0 including tab and newline, DEL, C1), zero-width characters, and
/// bidirectional overrides ("Trojan Source"). Reports and the CLI's human output show them
/// as `[U+XXXX]`, so evidence cannot make one text look like another, split a value over
/// lines, or send a terminal escape sequence.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Text for a terminal: every [hidden](is_hidden) character becomes a visible `[U+XXXX]`,
/// so a string from an attestation, a registry entry or a policy cannot move the cursor,
/// retitle the window, erase a line or reorder what is shown. Borrowed when nothing needs
/// escaping.
pub fn escape_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            out.push_str(&format!("[U+{:04X}]", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
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
/// `]` `<` `>` `|` `&` `~` `$` `#` `!`) gets a backslash; hidden characters, line breaks
/// included, become visible `[U+XXXX]`, so a cell stays on its line.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '$' | '#' | '!' => {
                out.push('\\');
                out.push(c);
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
td { overflow-wrap: anywhere; }
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

/// `n` passed controls out of all.
fn passed(release: &ReleaseReport) -> String {
    let pass = release
        .controls
        .iter()
        .filter(|c| c.status == Status::Pass)
        .count();
    format!("{pass} of {}", release.controls.len())
}

/// `1 attestation`, `2 attestations`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A status as a report shows it: its label, and the CSS class that colours it in HTML.
#[derive(Debug, Clone, Copy)]
struct Badge {
    /// `PASS`, `DENIED`, `WITHDRAWN`…
    label: &'static str,
    /// `pass`, `fail` or `missing`.
    class: &'static str,
}

impl Badge {
    /// A signature a later, backdated revocation withdrew.
    const WITHDRAWN: Badge = Badge {
        label: "WITHDRAWN",
        class: "fail",
    };

    /// A control's outcome.
    fn status(status: Status) -> Badge {
        let class = match status {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Missing => "missing",
        };
        Badge {
            label: status_label(status),
            class,
        }
    }

    /// A release's verdict.
    fn verdict(verdict: Verdict) -> Badge {
        let class = match verdict {
            Verdict::Allowed => "pass",
            Verdict::Denied => "fail",
        };
        Badge {
            label: verdict.as_str(),
            class,
        }
    }
}

/// A run of inline content. The sink decides how each kind looks and escapes everything
/// but [`Span::Lit`].
#[derive(Debug)]
enum Span<'a> {
    /// The report's own words (and numbers), written as they are: never evidence.
    Lit(Cow<'a, str>),
    /// Text, escaped.
    Text(Cow<'a, str>),
    /// Text kept on one line in HTML.
    Nowrap(&'a str),
    /// A digest, key, URI or the like: monospace in HTML.
    Mono(Cow<'a, str>),
    /// Secondary text: greyed in HTML.
    Muted(Cow<'a, str>),
    /// Stands for something unknown: flagged in HTML.
    Absent(&'static str),
    /// Emphasis: bold in both.
    Strong(&'a str),
    /// A status: a coloured badge in HTML; in Markdown a bold label, bare in a table.
    Badge(Badge),
    /// A link to an anchor of the page; in Markdown only its text.
    Link {
        /// The `id` linked to.
        anchor: String,
        /// What the link reads.
        text: Cow<'a, str>,
    },
    /// Between the parts of one item: a line break in HTML, a space in Markdown.
    Break,
}

/// Text, escaped by the sink.
fn text<'a>(s: impl Into<Cow<'a, str>>) -> Span<'a> {
    Span::Text(s.into())
}

/// The report's own words, as they are.
fn lit<'a>(s: impl Into<Cow<'a, str>>) -> Span<'a> {
    Span::Lit(s.into())
}

/// Monospace text, escaped by the sink.
fn mono<'a>(s: impl Into<Cow<'a, str>>) -> Span<'a> {
    Span::Mono(s.into())
}

/// The anchor of attestation `index` in release `r` (1-based).
fn entry_link<'a>(r: usize, index: u64) -> Span<'a> {
    Span::Link {
        anchor: entry_anchor(r, index),
        text: index.to_string().into(),
    }
}

/// The `id` of attestation `index`'s row in release `r` (1-based).
fn entry_anchor(r: usize, index: u64) -> String {
    format!("r{r}-e{index}")
}

/// The value of a key-value row or a table cell.
#[derive(Debug)]
enum Value<'a> {
    /// Inline content.
    Spans(Vec<Span<'a>>),
    /// One item a line.
    Lines(Lines<'a>),
}

/// Items one a line, then flagged notes about them (e.g. withdrawn signatures).
#[derive(Debug)]
struct Lines<'a> {
    /// The items.
    items: Vec<Vec<Span<'a>>>,
    /// What stands for no items: in HTML even when there are notes, in Markdown only when
    /// there are none.
    empty: &'static str,
    /// Notes after the items: a badge and a text.
    notes: Vec<(Badge, &'a str)>,
}

/// One item a line for each of `items`, or `empty`.
fn lines<'a, T>(
    items: &'a [T],
    item: impl Fn(&'a T) -> Vec<Span<'a>>,
    empty: &'static str,
) -> Value<'a> {
    Value::Lines(Lines {
        items: items.iter().map(item).collect(),
        empty,
        notes: Vec::new(),
    })
}

/// Each of `items` monospace, one a line, or `empty`.
fn mono_lines<'a>(items: &'a [String], empty: &'static str) -> Value<'a> {
    lines(items, |s| vec![mono(s.as_str())], empty)
}

/// A table cell.
#[derive(Debug)]
struct Cell<'a> {
    /// What it holds.
    value: Value<'a>,
    /// Whether HTML keeps it on one line.
    nowrap: bool,
}

impl<'a> From<Vec<Span<'a>>> for Value<'a> {
    fn from(spans: Vec<Span<'a>>) -> Value<'a> {
        Value::Spans(spans)
    }
}

impl<'a> From<Span<'a>> for Value<'a> {
    fn from(span: Span<'a>) -> Value<'a> {
        Value::Spans(vec![span])
    }
}

impl<'a, V: Into<Value<'a>>> From<V> for Cell<'a> {
    fn from(value: V) -> Cell<'a> {
        Cell {
            value: value.into(),
            nowrap: false,
        }
    }
}

/// A table row.
#[derive(Debug)]
struct Row<'a> {
    /// The row's `id` in HTML, for links to it.
    anchor: Option<String>,
    /// Its cells, one per column.
    cells: Vec<Cell<'a>>,
}

/// How a paragraph is set off in HTML (Markdown sets none off).
#[derive(Debug, Clone, Copy)]
enum Para {
    /// Body text.
    Plain,
    /// Secondary text.
    Muted,
    /// A verdict, boxed in its badge's colours.
    Verdict(Badge),
}

/// What a key-value list is.
#[derive(Debug, Clone, Copy)]
enum Pairs {
    /// Facts about one thing.
    Facts,
    /// The steps of the chain from source to deploy.
    Chain,
}

/// Where a report is written: the walk over the model ([`render`]) says what to write, a
/// sink how, owning all escaping and styling.
trait Sink {
    /// Starts the document: its title, and a line under it.
    fn begin(&mut self, title: &str, byline: &[Span<'_>]);
    /// Ends the document.
    fn end(&mut self);
    /// Starts a release's section, with the anchor links to it use.
    fn begin_section(&mut self, anchor: &str);
    /// Ends a release's section.
    fn end_section(&mut self);
    /// A heading of `level` (2 or 3).
    fn heading(&mut self, level: usize, text: &str);
    /// A paragraph.
    fn paragraph(&mut self, style: Para, spans: &[Span<'_>]);
    /// A bulleted list.
    fn list(&mut self, items: &[Vec<Span<'_>>]);
    /// Keys (the report's own words) and their values.
    fn key_values(&mut self, style: Pairs, rows: &[(&str, Value<'_>)]);
    /// A table; in HTML, a table without rows says `empty` when given.
    fn table(&mut self, header: &[&str], rows: &[Row<'_>], empty: Option<&str>);
}

/// Walks the report once, writing it to `sink`.
fn render(doc: &Document, sink: &mut impl Sink) {
    sink.begin(
        &doc.title,
        &[
            lit("Generated "),
            text(&doc.generated_at),
            lit(" from the log "),
            mono(&doc.log_origin),
            lit(format!(
                ", verified against its checkpoint of {} entries. ",
                doc.checkpoint.size
            )),
            match &doc.as_of {
                Some(_) => lit("Decisions were re-performed as of "),
                None => lit("Policies were evaluated as of this time."),
            },
            text(doc.as_of.as_deref().unwrap_or_default()),
            lit(if doc.as_of.is_some() {
                ", with the trust registry, policy versions and evidence the log held then."
            } else {
                ""
            }),
        ],
    );
    summary(sink, doc);
    frameworks(sink, doc);
    for (n, r) in doc.releases.iter().enumerate() {
        release(sink, n + 1, r, doc);
    }
    sink.end();
}

/// `NAME@VERSION` of a policy.
fn policy_spans(policy: &PolicyRef) -> [Span<'_>; 2] {
    [text(&policy.name), lit(format!("@{}", policy.version))]
}

/// The order the summary lists releases in: denials first, then releases with exceptions,
/// then the rest, each group in the report's order.
pub fn population_order(doc: &Document) -> Vec<usize> {
    let rank = |r: &ReleaseReport| match (r.verdict, r.exceptions.is_empty()) {
        (Verdict::Denied, _) => 0,
        (Verdict::Allowed, false) => 1,
        (Verdict::Allowed, true) => 2,
    };
    let mut order: Vec<usize> = (0..doc.releases.len()).collect();
    order.sort_by_key(|n| rank(&doc.releases[*n]));
    order
}

/// The summary: counts, then the table of releases, failures and exceptions first, linking
/// to their sections.
fn summary(sink: &mut impl Sink, doc: &Document) {
    sink.heading(2, "Summary");
    let denied = doc
        .releases
        .iter()
        .filter(|r| r.verdict == Verdict::Denied)
        .count();
    let excepted = doc
        .releases
        .iter()
        .filter(|r| !r.exceptions.is_empty())
        .count();
    sink.paragraph(
        Para::Plain,
        &[lit(format!(
            "{}: {} allowed, {} denied; {} with exceptions. Denials are listed first, then \
             releases with exceptions.",
            count(doc.releases.len(), "release", "releases"),
            doc.releases.len() - denied,
            denied,
            excepted
        ))],
    );
    if let Some(p) = &doc.population {
        let mut line = match (p.complete, p.release_attestations, p.checkpoint_size) {
            (true, Some(n), Some(size)) => format!(
                "Population: {} integrated in the period, complete: proven against the \
                 verifiable index of the checkpoint of {size} entries, so none was left out. \
                 The releases above are those a release signer declared among them.",
                count(n as usize, "release attestation", "release attestations")
            ),
            _ => format!("Population: {}.", p.text),
        };
        if !p.not_reported.is_empty() {
            line.push_str(&format!(
                " Not reported, as not signed by a release signer: {}.",
                p.not_reported.join(", ")
            ));
        }
        sink.paragraph(Para::Plain, &[text(&line)]);
    }
    let rows: Vec<Row> = population_order(doc)
        .into_iter()
        .map(|n| {
            let r = &doc.releases[n];
            let deployed: Vec<Span> = match r.recorded_verdict() {
                Some(d) => {
                    let mut s = vec![
                        text(d.result.as_deref().unwrap_or("(no result)")),
                        lit(", entry "),
                        entry_link(n + 1, d.index),
                    ];
                    s.extend(signed_by(&d.signers));
                    s
                }
                None => vec![Span::Muted("none recorded".into())],
            };
            Row {
                anchor: None,
                cells: vec![
                    Span::Link {
                        anchor: format!("release-{}", n + 1),
                        text: r.label.as_str().into(),
                    }
                    .into(),
                    Span::Badge(Badge::verdict(r.verdict)).into(),
                    Vec::from(policy_spans(&r.policy)).into(),
                    lit(passed(r)).into(),
                    lit(r.exceptions.len().to_string()).into(),
                    deployed.into(),
                ],
            }
        })
        .collect();
    sink.table(
        &[
            "Release",
            "Verdict",
            "Policy",
            "Controls passed",
            "Exceptions",
            "Recorded deploy verdict",
        ],
        &rows,
        Some("no releases"),
    );
}

/// The framework view: each framework control the policy's controls evidence, the Evident
/// controls that evidence it, and the releases whose controls all passed or not.
fn frameworks(sink: &mut impl Sink, doc: &Document) {
    use std::collections::BTreeMap;
    struct Linked<'a> {
        link: &'a FrameworkLink,
        controls: BTreeSet<&'a str>,
        passed: Vec<usize>,
        failed: Vec<usize>,
    }
    let mut by_control: BTreeMap<String, Linked> = BTreeMap::new();
    for (n, r) in doc.releases.iter().enumerate() {
        // This release's verdict on each framework control: every linked row passed.
        let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
        for row in &r.controls {
            for link in &row.frameworks {
                let reference = link.reference();
                let entry = by_control
                    .entry(reference.clone())
                    .or_insert_with(|| Linked {
                        link,
                        controls: BTreeSet::new(),
                        passed: Vec::new(),
                        failed: Vec::new(),
                    });
                entry.controls.insert(row.id.as_str());
                let ok = verdicts.entry(reference).or_insert(true);
                *ok &= row.status == Status::Pass;
            }
        }
        for (reference, ok) in verdicts {
            let entry = by_control.get_mut(&reference).expect("added above");
            if ok {
                entry.passed.push(n);
            } else {
                entry.failed.push(n);
            }
        }
    }
    sink.heading(2, "Frameworks");
    sink.paragraph(
        Para::Muted,
        &[lit(
            "The framework controls the policy's controls evidence, as the policy names them \
             and the framework catalogue maps them (docs/FRAMEWORKS.md). A release counts as \
             passing one when every Evident control linked to it passed; whether the \
             framework control is met is the auditor's judgement over that evidence.",
        )],
    );
    let release_links = |ns: &[usize]| -> Vec<Span<'_>> {
        let mut spans = Vec::new();
        for (i, n) in ns.iter().enumerate() {
            if i > 0 {
                spans.push(Span::Break);
            }
            spans.push(Span::Link {
                anchor: format!("release-{}", n + 1),
                text: doc.releases[*n].label.as_str().into(),
            });
        }
        if spans.is_empty() {
            spans.push(Span::Muted("none".into()));
        }
        spans
    };
    let rows: Vec<Row> = by_control
        .iter()
        .map(|(reference, l)| {
            let mut name = vec![mono(reference.as_str())];
            if let Some(title) = &l.link.title {
                name.push(Span::Break);
                name.push(text(title.as_str()));
            }
            if !l.link.known {
                name.push(Span::Break);
                name.push(Span::Muted("not in the catalogue".into()));
            }
            let controls: Vec<Span> = l
                .controls
                .iter()
                .enumerate()
                .flat_map(|(i, c)| {
                    let mut s = Vec::new();
                    if i > 0 {
                        s.push(Span::Break);
                    }
                    s.push(text(*c));
                    s
                })
                .collect();
            Row {
                anchor: None,
                cells: vec![
                    name.into(),
                    controls.into(),
                    // A release's name on one line, one release a line.
                    Cell {
                        value: release_links(&l.passed).into(),
                        nowrap: true,
                    },
                    Cell {
                        value: release_links(&l.failed).into(),
                        nowrap: true,
                    },
                ],
            }
        })
        .collect();
    sink.table(
        &[
            "Framework control",
            "Evident controls",
            "Releases passing",
            "Releases failing or missing",
        ],
        &rows,
        Some("no framework control is linked to the policy's controls"),
    );
}

/// Release `n` (1-based): its section.
fn release(sink: &mut impl Sink, n: usize, r: &ReleaseReport, doc: &Document) {
    sink.begin_section(&format!("release-{n}"));
    sink.heading(2, &format!("Release {}", r.label));
    verdict(sink, r, doc);
    controls(sink, n, r);
    exceptions(sink, n, r);
    reviews(sink, n, r);
    tests(sink, n, r);
    later_events_section(sink, n, r, doc);
    attestations(sink, n, r);
    traceability(sink, n, &r.traceability);
    proofs(sink, &r.proof, doc);
    sink.end_section();
}

/// An artifact as a report names it: its trusted name, when it has one, and its digest,
/// shortened (the verdict lists the full digests).
fn artifact_spans<'a>(r: &'a ReleaseReport, digest: &'a str) -> Vec<Span<'a>> {
    let short = match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..12]),
        _ => digest.to_owned(),
    };
    let name = r
        .artifact_names
        .iter()
        .find(|a| a.digest.eq_ignore_ascii_case(digest))
        .and_then(|a| a.name.as_deref());
    match name {
        Some(name) => vec![text(name), lit(" "), mono(short)],
        None => vec![mono(short)],
    }
}

/// Entry links, comma-separated, or `none`.
fn entry_links<'a>(n: usize, indexes: impl IntoIterator<Item = u64>) -> Vec<Span<'a>> {
    let mut spans = Vec::new();
    for (i, index) in indexes.into_iter().enumerate() {
        if i > 0 {
            spans.push(lit(", "));
        }
        spans.push(entry_link(n, index));
    }
    if spans.is_empty() {
        spans.push(Span::Muted("none".into()));
    }
    spans
}

/// Items joined by line breaks in HTML (spaces in Markdown).
fn broken<'a>(items: impl IntoIterator<Item = Span<'a>>) -> Vec<Span<'a>> {
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(Span::Break);
        }
        out.push(item);
    }
    out
}

/// 3. Findings the policy's allowlist accepted, with its reasons and approvers.
fn exceptions(sink: &mut impl Sink, n: usize, r: &ReleaseReport) {
    sink.heading(3, "3. Exceptions");
    if r.exceptions.is_empty() {
        sink.paragraph(
            Para::Muted,
            &[lit(
                "None: no finding at or above a control's severity limit was let through by \
                 the policy's allowlist.",
            )],
        );
        return;
    }
    sink.paragraph(
        Para::Muted,
        &[lit(
            "Findings at or above a control's severity limit that passed only because the \
             policy's allowlist accepts them. The allowlist is part of the signed policy \
             version; its approvers are the administrators who signed that version.",
        )],
    );
    let rows: Vec<Row> = r
        .exceptions
        .iter()
        .map(|e| {
            let mut control = vec![Span::Nowrap(&e.control)];
            if let Some(a) = &e.artifact {
                control.push(Span::Break);
                control.extend(artifact_spans(r, a));
            }
            let mut approved = vec![];
            approved.extend(policy_spans(&r.policy));
            if !e.approved_by.is_empty() {
                approved.extend([lit(", signed by "), text(e.approved_by.join(", "))]);
            }
            Row {
                anchor: None,
                cells: vec![
                    control.into(),
                    mono(&e.finding).into(),
                    lit(e.severity.clone()).into(),
                    text(&e.reason).into(),
                    approved.into(),
                    entry_link(n, e.index).into(),
                ],
            }
        })
        .collect();
    sink.table(
        &[
            "Control",
            "Finding",
            "Severity",
            "Accepted because",
            "Allowlist approved in",
            "Scan entry",
        ],
        &rows,
        None,
    );
}

/// Section 4, separation of duties: for each control that reads reviews, the change and its
/// author, then every reviewer's decision in order, counted or not and why.
fn reviews(sink: &mut impl Sink, n: usize, r: &ReleaseReport) {
    sink.heading(3, "4. Reviews and separation of duties");
    if r.reviews.is_empty() {
        sink.paragraph(
            Para::Muted,
            &[lit("No control of the policy reads reviewers' decisions.")],
        );
        return;
    }
    for section in &r.reviews {
        let mut head = vec![
            Span::Strong(&section.control),
            lit(" "),
            Span::Badge(Badge::status(section.status)),
        ];
        for (i, a) in section.artifacts.iter().enumerate() {
            head.push(lit(if i == 0 { " for " } else { ", " }));
            head.extend(artifact_spans(r, a));
        }
        sink.paragraph(Para::Plain, &head);
        let changes: Vec<Vec<Span>> = section
            .changes
            .iter()
            .map(|c| {
                let mut item = vec![lit("Change ")];
                item.push(if c.change_ref.is_empty() {
                    Span::Absent("not named")
                } else {
                    mono(c.change_ref.as_str())
                });
                item.push(lit(" by "));
                item.push(if c.author.is_empty() {
                    Span::Absent("no author named")
                } else {
                    Span::Strong(&c.author)
                });
                item.extend([lit(", reviewed commit "), mono(c.reviewed_commit.as_str())]);
                item.extend([
                    lit(", as recorded by "),
                    text(c.recorded_by.join(", ")),
                    lit(" in entry "),
                    entry_link(n, c.index),
                ]);
                item
            })
            .collect();
        if changes.is_empty() {
            sink.paragraph(
                Para::Plain,
                &[Span::Absent(
                    "no review system the control trusts recorded the change or its author",
                )],
            );
        } else {
            sink.list(&changes);
        }
        let rows: Vec<Row> = section
            .decisions
            .iter()
            .map(|d| {
                let counted = if d.counted {
                    Span::Badge(Badge {
                        label: "COUNTED",
                        class: "pass",
                    })
                } else {
                    Span::Badge(Badge {
                        label: "NOT COUNTED",
                        class: "missing",
                    })
                };
                Row {
                    anchor: None,
                    cells: vec![
                        Cell {
                            value: if d.time.is_empty() {
                                Span::Absent("not given").into()
                            } else {
                                text(&d.time).into()
                            },
                            nowrap: true,
                        },
                        Span::Nowrap(&d.reviewer).into(),
                        lit(d.decision.clone()).into(),
                        text(d.signed_by.join(", ")).into(),
                        entry_link(n, d.index).into(),
                        vec![counted, Span::Break, text(&d.note)].into(),
                    ],
                }
            })
            .collect();
        if rows.is_empty() {
            sink.paragraph(
                Para::Plain,
                &[Span::Absent(
                    "no reviewer's decision in the approvals examined",
                )],
            );
        } else {
            sink.table(
                &[
                    "Time (as recorded)",
                    "Reviewer",
                    "Decision",
                    "Signed by",
                    "Entry",
                    "Counted",
                ],
                &rows,
                None,
            );
        }
    }
}

/// 5. The test runs, with their suites and counts.
fn tests(sink: &mut impl Sink, n: usize, r: &ReleaseReport) {
    sink.heading(3, "5. Tests");
    if r.tests.is_empty() {
        sink.paragraph(
            Para::Muted,
            &[lit(
                "No test-result attestation about the artifacts or their source commits.",
            )],
        );
        return;
    }
    let rows: Vec<Row> = r
        .tests
        .iter()
        .map(|t| {
            let result = match t.result.as_str() {
                "PASSED" => Span::Badge(Badge {
                    label: "PASSED",
                    class: "pass",
                }),
                "FAILED" => Span::Badge(Badge {
                    label: "FAILED",
                    class: "fail",
                }),
                "" => Span::Absent("none given"),
                other => text(other),
            };
            let mut counts = vec![lit(format!(
                "{} passed, {} warned, {} failed",
                t.passed, t.warned, t.failed
            ))];
            if !t.failed_tests.is_empty() {
                counts.extend([
                    Span::Break,
                    lit("failed: "),
                    text(t.failed_tests.join(", ")),
                ]);
            }
            let mut suites = broken(t.suites.iter().map(|s| text(s.as_str())));
            if suites.is_empty() {
                suites.push(Span::Muted("not named".into()));
            }
            if let Some(url) = &t.url {
                suites.extend([Span::Break, mono(url.as_str())]);
            }
            Row {
                anchor: None,
                cells: vec![
                    entry_link(n, t.index).into(),
                    result.into(),
                    suites.into(),
                    counts.into(),
                    Value::Lines(Lines {
                        items: t.signers.iter().map(|s| vec![Span::Nowrap(s)]).collect(),
                        empty: "no signature stands",
                        notes: t
                            .withdrawn
                            .iter()
                            .map(|w| (Badge::WITHDRAWN, w.as_str()))
                            .collect(),
                    })
                    .into(),
                ],
            }
        })
        .collect();
    sink.table(
        &["Entry", "Result", "Suites", "Tests", "Signed by"],
        &rows,
        None,
    );
}

/// 6. Registry changes about the release's signers recorded after they signed.
fn later_events_section(sink: &mut impl Sink, n: usize, r: &ReleaseReport, doc: &Document) {
    sink.heading(3, "6. Key events after the fact");
    let until = match &doc.as_of {
        Some(t) => vec![
            lit(" Re-performed as of "),
            text(t.as_str()),
            lit(": later changes are not shown."),
        ],
        None => Vec::new(),
    };
    if r.later_events.is_empty() {
        let mut none = vec![lit(
            "None: the registry recorded no change about a signer of these attestations after \
             they signed.",
        )];
        none.extend(until);
        sink.paragraph(Para::Muted, &none);
        return;
    }
    sink.paragraph(
        Para::Muted,
        &[lit(
            "Registry changes recorded after a signer attested for this release, and whether \
             the registry as it now stands withdraws the signer's signatures on those \
             entries. A revocation dated back to or before an attestation withdraws its \
             signature, which then counts for nothing; one dated later leaves the signature \
             standing, since the key was trusted when it signed.",
        )]
        .into_iter()
        .chain(until)
        .collect::<Vec<_>>(),
    );
    let rows: Vec<Row> = r
        .later_events
        .iter()
        .map(|e| {
            let effect = if !e.withdrawn_now.is_empty() {
                let mut s = vec![Span::Badge(Badge::WITHDRAWN), lit(" the signature on ")];
                s.extend(entry_links(n, e.withdrawn_now.iter().copied()));
                s
            } else {
                vec![lit("stand")]
            };
            Row {
                anchor: None,
                cells: vec![
                    Cell {
                        value: text(&e.integrated_time).into(),
                        nowrap: true,
                    },
                    lit(e.index.to_string()).into(),
                    Span::Nowrap(&e.identity).into(),
                    text(&e.summary).into(),
                    entry_links(n, e.after_entries.iter().copied()).into(),
                    effect.into(),
                ],
            }
        })
        .collect();
    sink.table(
        &[
            "Recorded (UTC)",
            "Registry entry",
            "Signer",
            "Change",
            "After signing",
            "Their signatures now",
        ],
        &rows,
        None,
    );
}

/// A control's id and the artifact of its row, if any.
fn control_spans(c: &ControlRow) -> Vec<Span<'_>> {
    let mut spans = vec![Span::Nowrap(&c.id)];
    if let Some(a) = &c.artifact {
        spans.extend([lit(" "), mono(format!("[{a}]"))]);
    }
    spans
}

/// 1. The verdict, the controls not passed, and what it was decided on.
fn verdict(sink: &mut impl Sink, r: &ReleaseReport, doc: &Document) {
    sink.heading(3, "1. Verdict");
    sink.paragraph(
        Para::Verdict(Badge::verdict(r.verdict)),
        &[
            Span::Strong(r.verdict.as_str()),
            lit(" under policy "),
            Span::Strong(&r.policy.name),
            lit(format!(" version {}", r.policy.version)),
        ],
    );
    let not_passed: Vec<Vec<Span>> = r
        .controls
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| {
            let mut item = vec![Span::Badge(Badge::status(c.status)), lit(" ")];
            item.extend(control_spans(c));
            item.extend([lit(": "), text(&c.reason)]);
            item
        })
        .collect();
    if !not_passed.is_empty() {
        sink.paragraph(Para::Plain, &[lit("Controls not passed:")]);
        sink.list(&not_passed);
    }
    let mut policy = Vec::from(policy_spans(&r.policy));
    if let Some(i) = r.policy.index {
        policy.push(lit(format!(", log entry {i}")));
    }
    if let Some(t) = &r.policy.integrated_time {
        policy.extend([lit(" of "), text(t.as_str())]);
    }
    if !r.policy.description.is_empty() {
        policy.extend([lit(": "), text(&r.policy.description)]);
    }
    sink.key_values(
        Pairs::Facts,
        &[
            ("Policy", policy.into()),
            (
                "Policy approved by",
                if r.policy.approved_by.is_empty() {
                    Span::Absent("not in the bundle").into()
                } else {
                    text(r.policy.approved_by.join(", ")).into()
                },
            ),
            ("Policy SHA-256", mono(&r.policy.sha256).into()),
            (
                "Artifacts",
                lines(
                    &r.artifact_names,
                    |a| match &a.name {
                        Some(name) => {
                            vec![text(name.as_str()), Span::Break, mono(a.digest.as_str())]
                        }
                        None => vec![mono(a.digest.as_str())],
                    },
                    "none",
                ),
            ),
            (
                "Source commits",
                mono_lines(
                    &r.source_commits,
                    "none through provenance the policy trusts",
                ),
            ),
            (
                "Evaluated as of",
                match &doc.as_of {
                    Some(t) => vec![
                        text(t.as_str()),
                        lit(" (re-performed: the registry, policies and evidence of that moment)"),
                    ]
                    .into(),
                    None => text(&doc.generated_at).into(),
                },
            ),
        ],
    );
}

/// Section 2: every control's outcome, linking to the entries it used: one row per control, with
/// a line per artifact naming it when the release has several.
fn controls(sink: &mut impl Sink, n: usize, r: &ReleaseReport) {
    sink.heading(3, "2. Controls");
    let mut groups: Vec<Vec<&ControlRow>> = Vec::new();
    for c in &r.controls {
        match groups.iter_mut().find(|g| g[0].id == c.id) {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    let rows: Vec<Row> = groups
        .iter()
        .map(|group| {
            let first = group[0];
            // The row's status: the first that is not a pass, else a pass.
            let status = group
                .iter()
                .map(|c| c.status)
                .find(|s| *s != Status::Pass)
                .unwrap_or(Status::Pass);
            let reason: Value = if group.len() == 1 && first.artifact.is_none() {
                text(&first.reason).into()
            } else {
                Value::Lines(Lines {
                    items: group
                        .iter()
                        .map(|c| {
                            let mut item = Vec::new();
                            if let Some(a) = &c.artifact {
                                item.extend(artifact_spans(r, a));
                                item.push(lit(": "));
                            }
                            item.extend([
                                Span::Badge(Badge::status(c.status)),
                                lit(" "),
                                text(&c.reason),
                            ]);
                            item
                        })
                        .collect(),
                    empty: "none",
                    notes: Vec::new(),
                })
            };
            let mut entries: Vec<u64> = group
                .iter()
                .flat_map(|c| c.entries.iter().map(|u| u.index))
                .collect();
            entries.sort_unstable();
            entries.dedup();
            Row {
                anchor: None,
                cells: vec![
                    Span::Nowrap(&first.id).into(),
                    Span::Badge(Badge::status(status)).into(),
                    first
                        .predicate_type
                        .as_deref()
                        .map_or(Span::Absent("unknown"), mono)
                        .into(),
                    Cell {
                        value: reason,
                        nowrap: false,
                    },
                    entry_links(n, entries).into(),
                ],
            }
        })
        .collect();
    sink.table(
        &["Control", "Status", "Predicate type", "Reason", "Entries"],
        &rows,
        None,
    );
}

/// 7. Who signed what, and when: one row per attestation, the target of entry links.
fn attestations(sink: &mut impl Sink, n: usize, r: &ReleaseReport) {
    sink.heading(3, "7. Attestations: who signed what, and when");
    let mut intro = vec![lit(
        "Every attestation in the bundle about the artifacts or their source commits, with \
         the signers the trust registry authorized at its integrated time.",
    )];
    if r.other_attestations > 0 {
        intro.push(lit(format!(
            " {} other attestation(s) in the bundle are about neither.",
            r.other_attestations
        )));
    }
    sink.paragraph(Para::Muted, &intro);
    let rows: Vec<Row> = r
        .attestations
        .iter()
        .map(|a| {
            let signed = Lines {
                items: a
                    .signers
                    .iter()
                    .map(|s| {
                        let mut item = vec![Span::Nowrap(&s.identity)];
                        if !s.roles.is_empty() {
                            item.extend([
                                lit(" "),
                                Span::Muted(format!("({})", s.roles.join(", ")).into()),
                            ]);
                        }
                        item
                    })
                    .collect(),
                empty: "no signature stands",
                notes: a
                    .withdrawn
                    .iter()
                    .map(|w| (Badge::WITHDRAWN, w.as_str()))
                    .collect(),
            };
            let subjects = lines(
                &a.subjects,
                |s| {
                    let mut item = Vec::new();
                    if !s.name.is_empty() {
                        item.push(text(&s.name));
                    }
                    for d in &s.digests {
                        if !item.is_empty() {
                            item.push(Span::Break);
                        }
                        item.push(mono(d.as_str()));
                    }
                    item
                },
                "none",
            );
            Row {
                anchor: Some(entry_anchor(n, a.index)),
                cells: vec![
                    lit(a.index.to_string()).into(),
                    Cell {
                        value: text(&a.integrated_time).into(),
                        nowrap: true,
                    },
                    mono(&a.predicate_type).into(),
                    Value::Lines(signed).into(),
                    subjects.into(),
                ],
            }
        })
        .collect();
    sink.table(
        &[
            "Entry",
            "Integrated (UTC)",
            "Predicate type",
            "Signed by",
            "Subjects",
        ],
        &rows,
        Some("none"),
    );
}

/// `, signed by A, B`, or nothing when no one did.
fn signed_by(signers: &[String]) -> Vec<Span<'_>> {
    if signers.is_empty() {
        Vec::new()
    } else {
        vec![lit(", signed by "), text(signers.join(", "))]
    }
}

/// 8. Source commit → build → artifact → release → deploy, release `n` (1-based).
fn traceability(sink: &mut impl Sink, n: usize, t: &Traceability) {
    sink.heading(3, "8. Traceability");
    let none = "not recorded";
    let builds = lines(
        &t.builds,
        |b| {
            let mut item = vec![lit("SLSA provenance, entry "), entry_link(n, b.index)];
            if let Some(id) = &b.builder {
                item.extend([lit(", builder "), mono(id.as_str())]);
            }
            item.extend(signed_by(&b.signers));
            item
        },
        none,
    );
    let releases = lines(
        &t.releases,
        |s| {
            let mut item = vec![text(&s.release), lit(", entry "), entry_link(n, s.index)];
            item.extend(signed_by(&s.signers));
            item
        },
        none,
    );
    let deploys = lines(
        &t.deploys,
        |d| {
            let mut item = vec![
                lit("gate verdict "),
                text(d.result.as_deref().unwrap_or("(no result)")),
                lit(" under "),
                text(d.policy.as_deref().unwrap_or("(no policy named)")),
                lit(", entry "),
                entry_link(n, d.index),
                lit(" at "),
                text(&d.integrated_time),
            ];
            item.extend(signed_by(&d.signers));
            item
        },
        none,
    );
    sink.key_values(
        Pairs::Chain,
        &[
            ("Source commit", mono_lines(&t.source_commits, none)),
            ("Build", builds),
            ("Artifact", mono_lines(&t.artifacts, none)),
            ("Release", releases),
            ("Deploy", deploys),
        ],
    );
}

/// 9. What was proven, against which checkpoint and key.
fn proofs(sink: &mut impl Sink, p: &ProofStatus, doc: &Document) {
    sink.heading(3, "9. Proofs");
    sink.paragraph(
        Para::Plain,
        &[lit(format!(
            "All {} of the bundle ({}, {}, {}) have inclusion proofs verified against the \
             checkpoint below, whose signature verified under the pinned log key; every \
             signature was checked against the trust registry replayed from the log's genesis.",
            count(p.entries(), "entry", "entries"),
            count(p.attestations, "attestation", "attestations"),
            count(p.policy_versions, "policy version", "policy versions"),
            count(p.registry_entries, "registry entry", "registry entries")
        ))],
    );
    let c = &p.checkpoint;
    sink.key_values(
        Pairs::Facts,
        &[
            ("Log origin", mono(&c.origin).into()),
            ("Tree size", lit(format!("{} entries", c.size)).into()),
            ("Root hash (hex)", mono(&c.root_hex).into()),
            ("Root hash (base64)", mono(&c.root_base64).into()),
            ("Log key", mono(&doc.log_key).into()),
        ],
    );
}

/// Writes HTML: classes for styling, everything escaped with [`escape_html`].
#[derive(Debug, Default)]
struct Html {
    /// The page so far.
    out: String,
}

impl Html {
    /// Appends `spans`.
    fn spans(&mut self, spans: &[Span<'_>]) {
        for span in spans {
            let styled = |class: &str, s: &str| {
                format!(r#"<span class="{class}">{}</span>"#, escape_html(s))
            };
            let html = match span {
                Span::Lit(s) => s.to_string(),
                Span::Text(s) => escape_html(s),
                Span::Nowrap(s) => styled("nowrap", s),
                Span::Mono(s) => styled("mono", s),
                Span::Muted(s) => styled("muted", s),
                Span::Absent(s) => styled("none", s),
                Span::Strong(s) => format!("<strong>{}</strong>", escape_html(s)),
                Span::Badge(b) => Html::badge(*b),
                Span::Link { anchor, text } => {
                    format!(r##"<a href="#{anchor}">{}</a>"##, escape_html(text))
                }
                Span::Break => "<br>".to_owned(),
            };
            self.out.push_str(&html);
        }
    }

    /// A badge.
    fn badge(b: Badge) -> String {
        format!(r#"<span class="badge {}">{}</span>"#, b.class, b.label)
    }

    /// Appends a value: lines as `<div>`s.
    fn value(&mut self, value: &Value<'_>) {
        match value {
            Value::Spans(spans) => self.spans(spans),
            Value::Lines(lines) => {
                if lines.items.is_empty() {
                    self.spans(&[Span::Absent(lines.empty)]);
                }
                for item in &lines.items {
                    self.out.push_str("<div>");
                    self.spans(item);
                    self.out.push_str("</div>");
                }
                for (badge, note) in &lines.notes {
                    self.out.push_str(&format!(
                        "<div>{} {}</div>",
                        Html::badge(*badge),
                        escape_html(note)
                    ));
                }
            }
        }
    }
}

impl Sink for Html {
    fn begin(&mut self, title: &str, byline: &[Span<'_>]) {
        let title = escape_html(title);
        self.out.push_str(&format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"evident report\">\n<title>{title}</title>\n\
             <style>{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n"
        ));
        self.paragraph(Para::Muted, byline);
        self.out.push_str("</header>\n");
    }

    fn end(&mut self) {
        self.out.push_str("</body>\n</html>\n");
    }

    fn begin_section(&mut self, anchor: &str) {
        self.out
            .push_str(&format!("<section class=\"release\" id=\"{anchor}\">\n"));
    }

    fn end_section(&mut self) {
        self.out.push_str("</section>\n");
    }

    fn heading(&mut self, level: usize, text: &str) {
        self.out
            .push_str(&format!("<h{level}>{}</h{level}>\n", escape_html(text)));
    }

    fn paragraph(&mut self, style: Para, spans: &[Span<'_>]) {
        match style {
            Para::Plain => self.out.push_str("<p>"),
            Para::Muted => self.out.push_str("<p class=\"muted\">"),
            Para::Verdict(b) => self
                .out
                .push_str(&format!("<p class=\"verdict {}\">", b.class)),
        }
        self.spans(spans);
        self.out.push_str("</p>\n");
    }

    fn list(&mut self, items: &[Vec<Span<'_>>]) {
        self.out.push_str("<ul>\n");
        for item in items {
            self.out.push_str("<li>");
            self.spans(item);
            self.out.push_str("</li>\n");
        }
        self.out.push_str("</ul>\n");
    }

    fn key_values(&mut self, style: Pairs, rows: &[(&str, Value<'_>)]) {
        self.out.push_str(match style {
            Pairs::Facts => "<dl class=\"kv\">\n",
            Pairs::Chain => "<dl class=\"kv chain\">\n",
        });
        for (key, value) in rows {
            self.out
                .push_str(&format!("<dt>{}</dt><dd>", escape_html(key)));
            self.value(value);
            self.out.push_str("</dd>\n");
        }
        self.out.push_str("</dl>\n");
    }

    fn table(&mut self, header: &[&str], rows: &[Row<'_>], empty: Option<&str>) {
        self.out
            .push_str("<div class=\"wide\"><table>\n<thead><tr>");
        for h in header {
            self.out.push_str(&format!("<th>{}</th>", escape_html(h)));
        }
        self.out.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            match &row.anchor {
                Some(anchor) => self.out.push_str(&format!("<tr id=\"{anchor}\">")),
                None => self.out.push_str("<tr>"),
            }
            for cell in &row.cells {
                self.out.push_str(if cell.nowrap {
                    "<td class=\"nowrap\">"
                } else {
                    "<td>"
                });
                self.value(&cell.value);
                self.out.push_str("</td>");
            }
            self.out.push_str("</tr>\n");
        }
        if let (true, Some(empty)) = (rows.is_empty(), empty) {
            self.out.push_str(&format!(
                "<tr><td colspan=\"{}\" class=\"none\">{}</td></tr>\n",
                header.len(),
                escape_html(empty)
            ));
        }
        self.out.push_str("</tbody>\n</table></div>\n");
    }
}

/// Writes GitHub-flavoured Markdown: every block a paragraph, list or table, blocks apart
/// by a blank line, everything escaped with [`escape_markdown`].
#[derive(Debug, Default)]
struct Markdown {
    /// The text so far.
    out: String,
}

impl Markdown {
    /// Starts a block: a blank line after the one before.
    fn block(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    /// `spans` as Markdown; a badge is bold unless `in_table`.
    fn spans(spans: &[Span<'_>], in_table: bool) -> String {
        let mut out = String::new();
        for span in spans {
            match span {
                Span::Lit(s) => out.push_str(s),
                Span::Text(s) | Span::Mono(s) | Span::Muted(s) | Span::Link { text: s, .. } => {
                    out.push_str(&escape_markdown(s));
                }
                Span::Nowrap(s) | Span::Absent(s) => out.push_str(&escape_markdown(s)),
                Span::Strong(s) => out.push_str(&format!("**{}**", escape_markdown(s))),
                Span::Badge(b) if in_table => out.push_str(b.label),
                Span::Badge(b) => out.push_str(&format!("**{}**", b.label)),
                Span::Break => out.push(' '),
            }
        }
        out
    }

    /// A value for a table cell: lines joined by `<br>`.
    fn value(value: &Value<'_>) -> String {
        match value {
            Value::Spans(spans) => Markdown::spans(spans, true),
            Value::Lines(lines) => {
                let items = lines.items.iter().map(|i| Markdown::spans(i, true));
                let notes = lines
                    .notes
                    .iter()
                    .map(|(badge, note)| format!("{}: {}", badge.label, escape_markdown(note)));
                let all: Vec<String> = items.chain(notes).collect();
                if all.is_empty() {
                    escape_markdown(lines.empty)
                } else {
                    all.join("<br>")
                }
            }
        }
    }

    /// A table row of `cells`.
    fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.out.push('|');
        for cell in cells {
            self.out.push(' ');
            self.out.push_str(cell.as_ref());
            self.out.push_str(" |");
        }
        self.out.push('\n');
    }
}

impl Sink for Markdown {
    fn begin(&mut self, title: &str, byline: &[Span<'_>]) {
        self.heading(1, title);
        self.paragraph(Para::Plain, byline);
    }

    fn end(&mut self) {}

    fn begin_section(&mut self, _anchor: &str) {}

    fn end_section(&mut self) {}

    fn heading(&mut self, level: usize, text: &str) {
        self.block();
        self.out.push_str(&format!(
            "{} {}\n",
            "#".repeat(level),
            escape_markdown(text)
        ));
    }

    fn paragraph(&mut self, _style: Para, spans: &[Span<'_>]) {
        self.block();
        self.out.push_str(&Markdown::spans(spans, false));
        self.out.push('\n');
    }

    fn list(&mut self, items: &[Vec<Span<'_>>]) {
        self.block();
        for item in items {
            self.out
                .push_str(&format!("- {}\n", Markdown::spans(item, false)));
        }
    }

    fn key_values(&mut self, style: Pairs, rows: &[(&str, Value<'_>)]) {
        self.block();
        self.out.push_str(match style {
            Pairs::Facts => "| | |\n",
            Pairs::Chain => "| Step | Recorded |\n",
        });
        self.out.push_str("|---|---|\n");
        for (key, value) in rows {
            self.row([escape_markdown(key), Markdown::value(value)]);
        }
    }

    fn table(&mut self, header: &[&str], rows: &[Row<'_>], _empty: Option<&str>) {
        self.block();
        self.row(header.iter().map(|h| escape_markdown(h)));
        self.out.push('|');
        self.out.push_str(&"---|".repeat(header.len()));
        self.out.push('\n');
        for row in rows {
            self.row(row.cells.iter().map(|c| Markdown::value(&c.value)));
        }
    }
}

/// Renders the report as one self-contained HTML page: inline CSS, no scripts, no external
/// assets. Every string from the evidence is escaped.
pub fn render_html(doc: &Document) -> String {
    let mut html = Html::default();
    render(doc, &mut html);
    html.out
}

/// Renders the report as GitHub-flavoured Markdown, with the same content as the HTML.
/// Every string from the evidence is escaped.
pub fn render_markdown(doc: &Document) -> String {
    let mut markdown = Markdown::default();
    render(doc, &mut markdown);
    markdown.out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use evident_core::bundle::{BundleRequest, VerifiedBundle};
    use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
    use evident_core::memlog::MemoryLog;
    use evident_core::note::Verifier;
    use evident_core::policy::{POLICY_PAYLOAD_TYPE, Policy};
    use evident_core::record::EntryKind;
    use evident_core::registry::{Admin, Change, GenesisDocument, sign_change};
    use evident_core::{PublicKey, SigningKey};
    use serde_json::{Value, json};

    use super::*;

    const ARTIFACT: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const HOSTILE: &str = "<script>alert(1)</script>";

    const POLICY: &str = r#"name = "payments-prod"
version = 3
release_signers = ["role:ci"]

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

    /// One more attestation: its subject and predicate type, signed by ci@test.
    struct Extra {
        subject: Value,
        predicate_type: &'static str,
        predicate: Value,
    }

    /// A real bundle from an in-memory log, verified as a gate verifies it. Entries 0-3
    /// register the signers (`builder`, ci@test and two more), 4 is the policy, 5 the
    /// provenance by `builder` about the artifact, 6 a test result about its commit, 7 the
    /// `extra` attestation (when given), and 8 an attestation about something else, which
    /// the bundle leaves out.
    fn bundle(builder: &str, test_result: &str, extra: Vec<Extra>) -> (VerifiedBundle, Policy) {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        bundle_for(builder, test_result, extra, request)
    }

    /// [`bundle`], answering the request for `artifact`.
    fn bundle_for(
        builder: &str,
        test_result: &str,
        extra: Vec<Extra>,
        request: BundleRequest,
    ) -> (VerifiedBundle, Policy) {
        let policy = Policy::parse(POLICY).unwrap();
        let admin = SigningKey::from_bytes(&[9; 32]);
        let genesis = GenesisDocument::of(
            &[Admin {
                identity: "admin@test".into(),
                key: public(9),
            }],
            1,
        );
        let mut log = MemoryLog::new(
            "evident.test/log",
            SigningKey::from_bytes(&[200; 32]),
            genesis,
        )
        .unwrap();
        let time = 1_700_000_000_000_000_000;
        let ci_identity = if builder == "ci@test" {
            "ci2@test"
        } else {
            "ci@test"
        };
        for (identity, n) in [
            (builder, 1),
            (ci_identity, 2),
            ("pad-a@test", 3),
            ("pad-b@test", 4),
        ] {
            let change = Change::AddSigner {
                identity: identity.into(),
                public_key: Some(public(n).to_hex()),
                roles: vec!["ci".into()],
                predicate_types: vec!["*".into()],
                not_before: None,
                not_after: None,
                certificate: None,
            };
            log.append(EntryKind::Registry, time, sign_change(&change, &[&admin]))
                .unwrap();
        }
        log.append(
            EntryKind::Policy,
            time,
            Envelope::sign(POLICY_PAYLOAD_TYPE, POLICY.as_bytes().to_vec(), &[&admin]),
        )
        .unwrap();
        let attest =
            |log: &mut MemoryLog, signer: u8, subject: Value, kind: &str, predicate: Value| {
                let statement = json!({
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [subject],
                    "predicateType": kind,
                    "predicate": predicate,
                });
                let key = SigningKey::from_bytes(&[signer; 32]);
                let envelope = Envelope::sign(
                    IN_TOTO_PAYLOAD_TYPE,
                    statement.to_string().into_bytes(),
                    &[&key],
                );
                log.append(EntryKind::Attestation, time + 1, envelope)
                    .unwrap()
            };
        let art = json!({"name": "payments-api", "digest": {"sha256": ARTIFACT}});
        let src = json!({"name": "payments", "digest": {"gitCommit": COMMIT}});
        let mut attestations = vec![
            attest(
                &mut log,
                1,
                art,
                predicates::SLSA_PROVENANCE_V1,
                json!({
                    "buildDefinition": {"resolvedDependencies": [{"digest": {"gitCommit": COMMIT}}]},
                    "runDetails": {"builder": {"id": "https://ci.example.com"}},
                }),
            ),
            attest(
                &mut log,
                2,
                src,
                predicates::TEST_RESULT_V0_1,
                json!({"result": test_result}),
            ),
        ];
        for extra in extra {
            attestations.push(attest(
                &mut log,
                2,
                extra.subject,
                extra.predicate_type,
                extra.predicate,
            ));
        }
        if let BundleRequest::Release { name, version } = &request {
            let statement = json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [
                    {"name": "payments-api", "digest": {"sha256": ARTIFACT}},
                    {"name": "payments-worker", "digest": {"sha256": "ab".repeat(32)}},
                ],
                "predicateType": predicates::RELEASE_V0_1,
                "predicate": {"releaseId": format!("{name}@{version}")},
            });
            let key = SigningKey::from_bytes(&[2; 32]);
            let envelope = Envelope::sign(
                IN_TOTO_PAYLOAD_TYPE,
                statement.to_string().into_bytes(),
                &[&key],
            );
            attestations.push(
                log.append(EntryKind::Attestation, time + 1, envelope)
                    .unwrap(),
            );
        }
        attest(
            &mut log,
            2,
            json!({"name": "other", "digest": {"sha256": "cd".repeat(32)}}),
            predicates::TEST_RESULT_V0_1,
            json!({"result": "PASSED"}),
        );
        let verified = log
            .bundle(request, attestations)
            .verify(log.verifier(), log.genesis())
            .unwrap();
        (verified, policy)
    }

    fn decide(verified: &VerifiedBundle, policy: &Policy) -> evident_core::policy::Report {
        verified
            .decide(verified.request(), policy, i64::MAX)
            .unwrap()
    }

    fn document(verified: &VerifiedBundle, policy: &Policy) -> Document {
        let report = decide(verified, policy);
        let key = Verifier::new("evident.test/log", public(9)).unwrap();
        let mut doc = Document::new("Release report", 0, &key, verified.checkpoint());
        doc.releases.push(ReleaseReport::new(
            "payments-api@1.4.2",
            verified,
            policy,
            &report,
            &Catalogue::builtin(),
            &[],
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
        assert_eq!(r.proof.checkpoint.size, 8);
        // Four registry entries, the policy, the two attestations about the release.
        assert_eq!(r.proof.entries(), 7);
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
        // Names the log indexes cannot hold control or bidi characters (the server and every
        // verifier refuse them); predicate fields can, and the report shows them inert.
        let extra = vec![
            Extra {
                subject: json!({"name": HOSTILE, "digest": {"sha256": ARTIFACT}}),
                predicate_type: hostile_type,
                predicate: json!({}),
            },
            Extra {
                subject: json!({"name": "payments-api", "digest": {"sha256": ARTIFACT}}),
                predicate_type: predicates::SLSA_PROVENANCE_V1,
                predicate: json!({
                    "buildDefinition": {"resolvedDependencies": [{"digest": {"gitCommit": COMMIT}}]},
                    "runDetails": {"builder": {"id": format!("{HOSTILE}\u{202E}gpj.exe")}},
                }),
            },
        ];
        let (verified, policy) = bundle(HOSTILE, "PASSED", extra);
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
            "a\\|b[U+000D][U+000A]c[U+000A]d\\<script\\>\\*x\\*\\_\\[y\\](z)\\`\\&amp;"
        );
        assert_eq!(escape_markdown("e\u{202E}f\u{0}"), "e[U+202E]f[U+0000]");
        let hostile = "evil | FAIL | forged | row |";
        let (verified, policy) = bundle(hostile, "PASSED", vec![]);
        let markdown = render_markdown(&document(&verified, &policy));
        assert!(
            markdown.contains("evil \\| FAIL \\| forged \\| row \\|"),
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
            .skip_while(|l| !l.starts_with("| Entry | Integrated (UTC) |"))
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
        // A line break or a tab in evidence would render as a space: it is shown.
        assert_eq!(escape_html("a\nb\tc\r"), "a[U+000A]b[U+0009]c[U+000D]");
    }

    #[test]
    fn terminal_text_shows_every_escape_and_override() {
        assert_eq!(
            escape_terminal("x\u{1b}]0;pwned\u{7}\u{1b}[2K\u{9b}y\u{202E}z\u{7f}\n"),
            "x[U+001B]]0;pwned[U+0007][U+001B][2K[U+009B]y[U+202E]z[U+007F][U+000A]"
        );
        assert!(matches!(
            escape_terminal("payments-api@1.4.2 sha256:ab"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn controls_of_a_release_with_several_artifacts_keep_their_predicate_types() {
        let release = BundleRequest::release("payments@1.4.2").unwrap();
        let (verified, policy) = bundle_for("ci@test", "PASSED", vec![], release);
        let artifacts = [
            format!("sha256:{ARTIFACT}"),
            format!("sha256:{}", "ab".repeat(32)),
        ];
        let report = decide(&verified, &policy);
        let r = ReleaseReport::new(
            "two",
            &verified,
            &policy,
            &report,
            &Catalogue::builtin(),
            &[],
        );
        assert_eq!(r.controls.len(), 4);
        assert_eq!(r.controls[3].id, "unit-tests");
        assert_eq!(r.controls[3].artifact, Some(artifacts[1].clone()));
        assert_eq!(
            r.controls[3].predicate_type.as_deref(),
            Some(predicates::TEST_RESULT_V0_1)
        );
    }

    #[test]
    fn each_rendering_marks_up_the_same_walk_its_own_way() {
        let (verified, policy) = bundle("ci@test", "FAILED", vec![]);
        let mut doc = document(&verified, &policy);
        let withdrawn = &mut doc.releases[0].attestations[0];
        withdrawn.signers.clear();
        withdrawn.withdrawn = vec!["ci@test: key revoked".into()];
        let html = render_html(&doc);
        let markdown = render_markdown(&doc);
        // With no signature standing, HTML says so before the withdrawn ones; Markdown
        // lists the withdrawn ones alone.
        assert!(
            html.contains(
                "<td><span class=\"none\">no signature stands</span><div><span class=\"badge \
                 fail\">WITHDRAWN</span> ci@test: key revoked</div></td>"
            ),
            "{html}"
        );
        assert!(
            markdown.contains("| WITHDRAWN: ci@test: key revoked |"),
            "{markdown}"
        );
        // A status is a badge in HTML; in Markdown a bold label in prose, bare in a table.
        assert!(html.contains(
            "<li><span class=\"badge fail\">FAIL</span> <span class=\"nowrap\">unit-tests</span>: "
        ));
        assert!(markdown.contains("\n- **FAIL** unit-tests: "), "{markdown}");
        assert!(markdown.contains("| unit-tests | FAIL |"), "{markdown}");
        // A subject's name and digests: one a line in HTML, one line in Markdown.
        assert!(html.contains(&format!(
            "<div>payments-api<br><span class=\"mono\">sha256:{ARTIFACT}</span></div>"
        )));
        assert!(markdown.contains(&format!("| payments-api sha256:{ARTIFACT} |")));
        // Entry links land on the attestation rows.
        assert!(html.contains("<a href=\"#r1-e6\">6</a>") && html.contains("<tr id=\"r1-e6\">"));
    }
}
