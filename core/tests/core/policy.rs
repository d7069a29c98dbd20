//! Release policies: parsing refuses bad documents with their line, and evaluation passes
//! a complete release and denies each way a release can fall short, with the reason.

use evident_core::bundle::BundleRequest;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::memlog::MemoryLog;
use evident_core::policy::{Policy, PolicyError, Status};
use evident_core::predicates::{APPROVAL_V1, SLSA_PROVENANCE_V1, TEST_RESULT_V0_1, VULNS_V0_2};
use evident_core::record::EntryKind;
use evident_core::registry::{Admin, Change, GenesisDocument, Registry, parse_time, sign_change};
use evident_core::{PublicKey, SigningKey};
use serde_json::{Value, json};

const ARTIFACT: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
pub(crate) const ARTIFACT_DIGEST: &str = ARTIFACT;
pub(crate) const COMMIT: &str = "4f2a9c1e0d5b7a3c9e8f1a2b3c4d5e6f7a8b9c0d";
const OTHER_COMMIT: &str = "0000000000000000000000000000000000000001";
const DAY: i64 = 86_400_000_000_000;

pub(crate) const POLICY: &str = r#"
name = "payments-prod"
version = 1

[[control]]
id = "provenance"
predicate_type = "https://slsa.dev/provenance/v1"
signers = ["role:ci"]

[[control]]
id = "unit-tests"
predicate_type = "https://in-toto.io/attestation/test-result/v0.1"
signers = ["role:ci"]
subject = "source-commit"
require = 'predicate.result == "PASSED"'

[[control]]
id = "vulnerability-scan"
predicate_type = "https://in-toto.io/attestation/vulns/v0.2"
signers = ["role:scanner"]
max_age = "7d"
max_severity = "HIGH"
allow = [{ id = "CVE-2024-0002", reason = "not reachable from the payment path" }]

[[control]]
id = "two-person-review"
predicate_type = "https://evident.dev/attestation/approval/v1"
signers = ["role:reviewer"]
review_systems = ["role:scm"]
subject = "source-commit"
min_distinct_signers = 2
min_approvals = 2
separation_of_duties = true
no_changes_requested = true
reviewed_commit_is_built = true
"#;

pub(crate) fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub(crate) fn t0() -> i64 {
    parse_time("t", "2026-11-20T00:00:00Z").unwrap()
}

/// The signers: ci (1), scanner (2), reviewers alice (3), bob (4, also ci), carol (5), the
/// author dave (6, also a reviewer), the code-review system (7), the release job (8), and a
/// key allowed for every predicate type with no role the policy names (9).
pub(crate) const SIGNERS: [(u8, &str, &str); 9] = [
    (1, "ci@payments", "ci"),
    (2, "scanner@sec", "scanner"),
    (3, "alice@example.com", "reviewer"),
    (4, "bob@example.com", "reviewer,ci"),
    (5, "carol@example.com", "reviewer"),
    (6, "dave@example.com", "reviewer"),
    (7, "scm@git.example.com", "scm"),
    (8, "release@payments", "release"),
    (9, "anyone@example.com", "other"),
];

fn admin() -> Admin {
    Admin {
        identity: "admin".into(),
        key: PublicKey::from_signing_key(&key(100)),
    }
}

/// The registry entries that register [`SIGNERS`].
pub(crate) fn registry_changes() -> Vec<Envelope> {
    SIGNERS
        .iter()
        .map(|(n, who, roles)| {
            let change = Change::AddSigner {
                identity: (*who).into(),
                public_key: PublicKey::from_signing_key(&key(*n)).to_hex(),
                roles: roles.split(',').map(String::from).collect(),
                predicate_types: vec!["*".into()],
                not_before: None,
                not_after: None,
            };
            sign_change(&change, &[&key(100)])
        })
        .collect()
}

/// The registry after [`registry_changes`].
fn registry() -> Registry {
    let mut reg = Registry::genesis(vec![admin()], 1).unwrap();
    for (i, env) in registry_changes().iter().enumerate() {
        reg.apply(i as u64, t0() - DAY * 30, env).unwrap();
    }
    reg
}

/// A log holding the registry, and the attestations a test adds; `evidence` lists the
/// attestations the bundle will hold (a test drops one by removing its index).
pub(crate) struct Scenario {
    pub(crate) log: MemoryLog,
    pub(crate) evidence: Vec<u64>,
}

impl Scenario {
    pub(crate) fn new() -> Scenario {
        let mut log = MemoryLog::new(
            "evident.test/log",
            key(200),
            GenesisDocument::of(&[admin()], 1),
        )
        .unwrap();
        for env in registry_changes() {
            log.append(EntryKind::Registry, t0() - DAY * 30, env)
                .unwrap();
        }
        Scenario {
            log,
            evidence: Vec::new(),
        }
    }

    /// Signs a Statement with key `signer`, appends it at `time`, and adds it.
    pub(crate) fn attest(
        &mut self,
        signer: u8,
        predicate_type: &str,
        subject: Value,
        predicate: Value,
        time: i64,
    ) -> u64 {
        self.attest_by(&[signer], predicate_type, subject, predicate, time)
    }

    /// [`Scenario::attest`], signed by several keys.
    pub(crate) fn attest_by(
        &mut self,
        signers: &[u8],
        predicate_type: &str,
        subject: Value,
        predicate: Value,
        time: i64,
    ) -> u64 {
        let payload = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [subject],
            "predicateType": predicate_type,
            "predicate": predicate,
        }))
        .unwrap();
        let keys: Vec<SigningKey> = signers.iter().map(|n| key(*n)).collect();
        let env = Envelope::sign(
            IN_TOTO_PAYLOAD_TYPE,
            payload,
            &keys.iter().collect::<Vec<_>>(),
        );
        let index = self.log.append(EntryKind::Attestation, time, env).unwrap();
        self.evidence.push(index);
        index
    }

    /// Appends a policy version signed by the administrator.
    pub(crate) fn add_policy(&mut self, text: &str) {
        let env = Envelope::sign(
            evident_core::policy::POLICY_PAYLOAD_TYPE,
            text.as_bytes().to_vec(),
            &[&key(100)],
        );
        self.log.append(EntryKind::Policy, t0(), env).unwrap();
    }

    /// The bundle of the artifact, as the server would send it.
    pub(crate) fn bundle(&self) -> evident_core::bundle::Bundle {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        self.log.bundle(request, self.evidence.iter().copied())
    }

    /// The gate's report, or `None` when the bundle does not verify or decide.
    pub(crate) fn verified_report(&self, policy: &Policy) -> Option<evident_core::policy::Report> {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        self.bundle()
            .verify(self.log.verifier(), self.log.genesis())
            .ok()?
            .decide(&request, policy, t0() + DAY)
            .ok()
    }

    /// The verified bundle of the artifact, as a gate would receive it.
    pub(crate) fn verified(&self, request: &BundleRequest) -> evident_core::bundle::VerifiedBundle {
        self.log
            .bundle(request.clone(), self.evidence.iter().copied())
            .verify(self.log.verifier(), self.log.genesis())
            .unwrap()
    }

    pub(crate) fn report(&self, policy: &Policy, gate: i64) -> evident_core::policy::Report {
        let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
        self.verified(&request)
            .decide(&request, policy, gate)
            .unwrap()
    }
}

pub(crate) fn artifact() -> Value {
    json!({"name": "payments-api", "digest": {"sha256": ARTIFACT}})
}

pub(crate) fn commit() -> Value {
    json!({"name": "payments", "digest": {"gitCommit": COMMIT}})
}

pub(crate) fn approval(author: &str, reviewers: &[(&str, &str)], reviewed: &str) -> Value {
    json!({
        "author": author,
        "changeRef": "https://git.example.com/payments/pull/812",
        "reviewedCommit": reviewed,
        "reviewers": reviewers.iter().map(|(who, d)| json!({"identity": who, "decision": d, "time": "2026-11-19T10:00:00Z"})).collect::<Vec<_>>(),
    })
}

/// The complete release: provenance, passing tests, a clean scan, the code-review system's
/// record of the change (author dave), and two approvals signed by their reviewers.
pub(crate) fn good_release() -> Scenario {
    let mut s = Scenario::new();
    let t = t0();
    s.attest(1, SLSA_PROVENANCE_V1, artifact(), json!({"buildDefinition": {"buildType": "https://example.com/ci", "resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}}]}}), t);
    s.attest(
        1,
        TEST_RESULT_V0_1,
        commit(),
        json!({"result": "PASSED", "passedTests": ["unit"]}),
        t,
    );
    s.attest(2, VULNS_V0_2, artifact(), json!({"scanner": {"uri": "pkg:generic/trivy@0.50.0", "result": [{"id": "CVE-2024-0001", "severity": [{"method": "nvd", "score": "MEDIUM"}]}, {"id": "CVE-2024-0002", "severity": [{"method": "nvd", "score": "9.8"}]}]}}), t);
    s.attest(
        7,
        APPROVAL_V1,
        commit(),
        approval("dave@example.com", &[], COMMIT),
        t,
    );
    s.attest(
        3,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("alice@example.com", "APPROVED")],
            COMMIT,
        ),
        t,
    );
    s.attest(
        4,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("bob@example.com", "APPROVED")],
            COMMIT,
        ),
        t,
    );
    s
}

fn status_of<'a>(
    report: &'a evident_core::policy::Report,
    id: &str,
) -> &'a evident_core::policy::ControlReport {
    report.controls.iter().find(|c| c.id == id).unwrap()
}

#[test]
fn a_complete_release_is_allowed_with_the_entries_named() {
    let policy = Policy::parse(POLICY).unwrap();
    policy.check_roles(&registry()).unwrap();
    let report = good_release().report(&policy, t0() + DAY);
    assert!(report.allowed, "{report:#?}");
    assert_eq!(report.source_commits, vec![COMMIT.to_owned()]);
    let review = status_of(&report, "two-person-review");
    assert_eq!(review.entries.len(), 3);
    assert!(
        review.reason.contains("alice@example.com") && review.reason.contains("bob@example.com")
    );
}

fn denied(s: &Scenario, gate: i64, control: &str, status: Status, says: &str) {
    let policy = Policy::parse(POLICY).unwrap();
    let report = s.report(&policy, gate);
    assert!(!report.allowed);
    let c = status_of(&report, control);
    assert_eq!(c.status, status, "{c:#?}");
    assert!(
        c.reason.contains(says),
        "{:?} should say {says:?}",
        c.reason
    );
    for other in report.controls.iter().filter(|c| c.id != control) {
        assert_eq!(
            other.status,
            Status::Pass,
            "only {control} should fail: {other:#?}"
        );
    }
}

#[test]
fn a_failed_test_run_denies_the_release() {
    let mut s = good_release();
    s.evidence.remove(1);
    s.attest(
        1,
        TEST_RESULT_V0_1,
        commit(),
        json!({"result": "FAILED"}),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "unit-tests",
        Status::Fail,
        "predicate.result == \"PASSED\"` is false",
    );
}

#[test]
fn a_high_finding_over_the_threshold_denies_unless_allowed() {
    let mut s = good_release();
    s.evidence.remove(2);
    s.attest(2, VULNS_V0_2, artifact(), json!({"scanner": {"result": [{"id": "CVE-2025-1111", "severity": [{"method": "nvd", "score": "HIGH"}]}]}}), t0());
    denied(
        &s,
        t0() + DAY,
        "vulnerability-scan",
        Status::Fail,
        "CVE-2025-1111 (HIGH)",
    );
}

#[test]
fn a_stale_scan_denies_the_release() {
    let s = good_release();
    denied(
        &s,
        t0() + 8 * DAY,
        "vulnerability-scan",
        Status::Fail,
        "older than the 7.0 days allowed",
    );
}

#[test]
fn one_approver_is_not_enough() {
    let mut s = good_release();
    s.evidence.pop();
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "1 distinct signer(s) (alice@example.com), 2 required",
    );
}

#[test]
fn the_author_approving_their_own_change_is_refused() {
    let mut s = good_release();
    s.evidence.pop();
    s.attest(
        6,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("dave@example.com", "APPROVED")],
            COMMIT,
        ),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "dave@example.com, the change author, approved their own change",
    );
}

#[test]
fn an_approval_of_a_different_commit_does_not_count() {
    let mut s = good_release();
    s.evidence.pop();
    // About the built commit, but the reviewers saw another one.
    s.attest(
        4,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("bob@example.com", "APPROVED")],
            OTHER_COMMIT,
        ),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "is not a commit the artifact was built from",
    );
}

#[test]
fn outstanding_changes_requested_deny_the_release_across_attestations() {
    // Carol's request for changes, in an attestation of her own, blocks the release...
    let mut s = good_release();
    s.attest(
        5,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("carol@example.com", "CHANGES_REQUESTED")],
            COMMIT,
        ),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "carol@example.com requested changes and has not approved since",
    );
    // ...until she approves later.
    s.attest(
        5,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("carol@example.com", "APPROVED")],
            COMMIT,
        ),
        t0(),
    );
    let policy = Policy::parse(POLICY).unwrap();
    assert!(s.report(&policy, t0() + DAY).allowed);
    // An approval withdrawn later no longer counts, even from another attestation.
    let mut s = good_release();
    s.attest(
        4,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("bob@example.com", "CHANGES_REQUESTED")],
            COMMIT,
        ),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "bob@example.com requested changes",
    );
}

#[test]
fn min_approvals_counts_approvers_not_signers() {
    // Two distinct signers, but one of them only commented: one approver.
    let mut s = good_release();
    s.evidence.pop();
    s.attest(
        4,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("bob@example.com", "COMMENTED")],
            COMMIT,
        ),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "1 distinct approver(s) (alice@example.com), 2 required",
    );
}

#[test]
fn unreadable_severities_and_empty_scans_fail_a_threshold() {
    for (predicate, says) in [
        (
            json!({"scanner": {"result": [{"id": "CVE-1", "severity": [{"method": "cvss", "score": "CVSS:3.1/AV:N/AC:L"}]}]}}),
            "unreadable severity",
        ),
        (
            json!({"scanner": {"result": [{"id": "CVE-2", "severity": [{"method": "nvd", "score": 9.8}]}]}}),
            "CVE-2 (CRITICAL)",
        ),
        (
            json!({"scanner": {"uri": "pkg:generic/trivy"}}),
            "no scanner.result list",
        ),
    ] {
        let mut s = good_release();
        s.evidence.remove(2);
        s.attest(2, VULNS_V0_2, artifact(), predicate, t0());
        denied(&s, t0() + DAY, "vulnerability-scan", Status::Fail, says);
    }
}

#[test]
fn evidence_after_the_gate_does_not_count_and_a_missing_control_is_named() {
    let s = good_release();
    let policy = Policy::parse(POLICY).unwrap();
    let report = s.report(&policy, t0() - 1);
    assert!(!report.allowed);
    // Evidence about the artifact exists but came too late; without provenance from before
    // the gate, no source commit is known, so commit evidence is missing.
    assert_eq!(status_of(&report, "provenance").status, Status::Fail);
    assert!(
        status_of(&report, "provenance")
            .reason
            .contains("integrated after the gate ran")
    );
    assert_eq!(
        status_of(&report, "vulnerability-scan").status,
        Status::Fail
    );
    assert_eq!(status_of(&report, "unit-tests").status, Status::Missing);
    assert!(report.source_commits.is_empty());
    let mut s = good_release();
    s.evidence.remove(0);
    let report = s.report(&policy, t0() + DAY);
    let provenance = status_of(&report, "provenance");
    assert_eq!(provenance.status, Status::Missing);
    assert!(
        provenance
            .reason
            .contains("signed by role:ci about the artifact"),
        "{}",
        provenance.reason
    );
}

#[test]
fn a_signer_without_the_role_does_not_satisfy_a_control() {
    let mut s = good_release();
    s.evidence.remove(1);
    // The scanner signs a passing test result: it is not role:ci.
    s.attest(
        2,
        TEST_RESULT_V0_1,
        commit(),
        json!({"result": "PASSED"}),
        t0(),
    );
    denied(
        &s,
        t0() + DAY,
        "unit-tests",
        Status::Missing,
        "no https://in-toto.io/attestation/test-result/v0.1 attestation signed by role:ci",
    );
}

#[test]
fn bad_policies_are_refused_with_the_line_and_reason() {
    let line = |e: PolicyError| match e {
        PolicyError::Control { line, problem, .. } => (line, problem),
        other => panic!("{other}"),
    };
    let bad_cel = POLICY.replace(
        r#"require = 'predicate.result == "PASSED"'"#,
        "require = 'predicate.result =='",
    );
    let (at, why) = line(Policy::parse(&bad_cel).unwrap_err());
    assert_eq!(at, 15, "{why}");
    assert!(why.contains("does not compile"), "{why}");
    let (at, why) = line(Policy::parse(&POLICY.replace("\"7d\"", "\"a week\"")).unwrap_err());
    assert_eq!(at, 21);
    assert!(why.contains("max_age"), "{why}");
    let (_, why) = line(Policy::parse(&POLICY.replace("\"HIGH\"", "\"SEVERE\"")).unwrap_err());
    assert!(why.contains("max_severity"), "{why}");
    assert!(matches!(
        Policy::parse("name = \"x\"\nversion = 1\n"),
        Err(PolicyError::Document(_))
    ));
    let err = Policy::parse("name = \"x\"\nversion = 1\nbogus = 2\n").unwrap_err();
    assert!(
        matches!(&err, PolicyError::Parse(m) if m.contains("bogus") && m.contains("line 3")),
        "{err}"
    );
    let dup = format!("{POLICY}\n[[control]]\nid = \"provenance\"\npredicate_type = \"x\"\n");
    assert!(line(Policy::parse(&dup).unwrap_err()).1.contains("same id"));
    let unknown_role = Policy::parse(&POLICY.replace("role:scanner", "role:scaner")).unwrap();
    let (at, why) = line(unknown_role.check_roles(&registry()).unwrap_err());
    assert_eq!(at, 20);
    assert!(
        why.contains("\"scaner\" is held by no registered signer"),
        "{why}"
    );
}

#[test]
fn an_approver_who_also_signed_the_provenance_breaks_separation_of_duties() {
    let mut s = good_release();
    // Bob (a reviewer who is also a CI signer) also signs provenance for the artifact.
    s.attest(4, SLSA_PROVENANCE_V1, artifact(), json!({"buildDefinition": {"resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}}]}}), t0());
    let policy = Policy::parse(POLICY).unwrap();
    let report = s.report(&policy, t0() + DAY);
    let review = status_of(&report, "two-person-review");
    assert_eq!(review.status, Status::Fail, "{review:#?}");
    assert!(
        review
            .reason
            .contains("bob@example.com approved and also signed the artifact's provenance"),
        "{}",
        review.reason
    );
}

#[test]
fn provenance_from_a_signer_the_policy_does_not_trust_names_no_source_commit() {
    // A reviewer-only key claims the artifact was built from another, reviewed commit.
    let mut s = good_release();
    s.attest(3, SLSA_PROVENANCE_V1, artifact(), json!({"buildDefinition": {"resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": OTHER_COMMIT}}]}}), t0());
    let policy = Policy::parse(POLICY).unwrap();
    let report = s.report(&policy, t0() + DAY);
    assert_eq!(
        report.source_commits,
        vec![COMMIT.to_owned()],
        "only role:ci provenance counts"
    );
}

#[test]
fn a_signed_payload_logged_again_keeps_its_first_place() {
    // Alice approves, then requests changes. The author logs Alice's first approval again,
    // co-signed, to make it her latest decision: her signature counts where it first
    // appeared, and her request for changes stands.
    let mut s = good_release();
    let alice_approves = approval(
        "dave@example.com",
        &[("alice@example.com", "APPROVED")],
        COMMIT,
    );
    s.attest(
        3,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("alice@example.com", "CHANGES_REQUESTED")],
            COMMIT,
        ),
        t0() + 1,
    );
    s.attest_by(&[3, 6], APPROVAL_V1, commit(), alice_approves, t0() + 2);
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Fail,
        "alice@example.com requested changes and has not approved since",
    );
    // The same for a stale scan made fresh by a co-signer.
    let mut s = good_release();
    let clean = json!({"scanner": {"uri": "pkg:generic/trivy@0.50.0", "result": [{"id": "CVE-2024-0001", "severity": [{"method": "nvd", "score": "MEDIUM"}]}, {"id": "CVE-2024-0002", "severity": [{"method": "nvd", "score": "9.8"}]}]}});
    s.attest_by(&[2, 9], VULNS_V0_2, artifact(), clean, t0() + 7 * DAY);
    denied(
        &s,
        t0() + 8 * DAY,
        "vulnerability-scan",
        Status::Fail,
        "older than the 7.0 days allowed",
    );
}

#[test]
fn approvals_of_another_commit_never_stand_in_for_the_built_commits() {
    // Provenance names two commits; only the other one was reviewed. Each commit must pass
    // on its own evidence.
    let mut s = good_release();
    s.evidence.remove(0);
    s.evidence.truncate(2);
    s.attest(
        1,
        SLSA_PROVENANCE_V1,
        artifact(),
        json!({"buildDefinition": {"resolvedDependencies": [
        {"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}},
        {"uri": "git+https://git.example.com/lib", "digest": {"gitCommit": OTHER_COMMIT}}]}}),
        t0(),
    );
    let other = json!({"name": "lib", "digest": {"gitCommit": OTHER_COMMIT}});
    s.attest(
        1,
        TEST_RESULT_V0_1,
        other.clone(),
        json!({"result": "PASSED"}),
        t0(),
    );
    s.attest(
        7,
        APPROVAL_V1,
        other.clone(),
        approval("dave@example.com", &[], OTHER_COMMIT),
        t0(),
    );
    for (n, who) in [(3, "alice@example.com"), (5, "carol@example.com")] {
        s.attest(
            n,
            APPROVAL_V1,
            other.clone(),
            approval("dave@example.com", &[(who, "APPROVED")], OTHER_COMMIT),
            t0(),
        );
    }
    denied(
        &s,
        t0() + DAY,
        "two-person-review",
        Status::Missing,
        &format!("source commit {COMMIT}: no https://evident.dev/attestation/approval/v1"),
    );
}

#[test]
fn a_newer_failing_scan_outweighs_an_older_clean_one() {
    let mut s = good_release();
    s.attest(2, VULNS_V0_2, artifact(), json!({"scanner": {"result": [{"id": "CVE-2026-0001", "severity": [{"method": "nvd", "score": "CRITICAL"}]}]}}), t0() + 1);
    denied(
        &s,
        t0() + DAY,
        "vulnerability-scan",
        Status::Fail,
        "the latest by scanner@sec: finding(s) at or above HIGH: CVE-2026-0001 (CRITICAL)",
    );
}

#[test]
fn source_commit_controls_need_a_provenance_control() {
    let without = POLICY.replace(
        "id = \"provenance\"\npredicate_type = \"https://slsa.dev/provenance/v1\"",
        "id = \"provenance\"\npredicate_type = \"https://example.com/other\"",
    );
    assert_ne!(without, POLICY);
    let err = Policy::parse(&without).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs a control on https://slsa.dev/provenance/v1"),
        "{err}"
    );
}
