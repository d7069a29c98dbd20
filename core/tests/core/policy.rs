//! Release policies: parsing refuses bad documents with their line, and evaluation passes
//! a complete release and denies each way a release can fall short, with the reason.

use evident_core::fixtures::{
    COMMIT, DAY, OTHER_COMMIT, PAYMENTS_PROD as POLICY, Scenario, approval, artifact, commit,
    good_release, registry, t0,
};
use evident_core::policy::{Policy, PolicyError, Status};
use evident_core::predicates::{APPROVAL_V1, SLSA_PROVENANCE_V1, TEST_RESULT_V0_1, VULNS_V0_2};
use serde_json::json;

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
    assert_eq!(at, 16, "{why}");
    assert!(why.contains("does not compile"), "{why}");
    let (at, why) = line(Policy::parse(&POLICY.replace("\"7d\"", "\"a week\"")).unwrap_err());
    assert_eq!(at, 22);
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
    assert_eq!(at, 21);
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

#[test]
fn the_evaluation_records_the_exceptions_and_every_reviewers_decision_with_why_it_counts() {
    use evident_core::policy::Detail;
    use evident_core::predicates::{Decision, Severity};
    let policy = Policy::parse(POLICY).unwrap();
    let mut s = good_release();
    let t = t0();
    // alice asked for changes after approving, then approved again (her own entries);
    // bob's entry claims carol approved, which bob is not trusted to say; dave, the
    // author, approved.
    for (n, who, decision) in [
        (3, "alice@example.com", "CHANGES_REQUESTED"),
        (3, "alice@example.com", "APPROVED"),
        (4, "carol@example.com", "APPROVED"),
        (6, "dave@example.com", "APPROVED"),
    ] {
        // Each a new review, at its own time: the same signed approval logged again would
        // count where it first appeared.
        let mut predicate = approval("dave@example.com", &[(who, decision)], COMMIT);
        predicate["reviewers"][0]["time"] = json!(format!("2026-11-20T0{n}:00:00Z"));
        s.attest(n, APPROVAL_V1, commit(), predicate, t + 1);
    }
    let report = s.report(&policy, t0() + DAY);
    // The allowlisted CVE-2024-0002 (CVSS 9.8) is the scan's exception, with the
    // policy's reason; CVE-2024-0001 is below the limit and is none.
    let scan = status_of(&report, "vulnerability-scan");
    assert_eq!(scan.status, Status::Pass);
    assert_eq!(scan.detail.exceptions.len(), 1, "{:#?}", scan.detail);
    let e = &scan.detail.exceptions[0];
    assert_eq!(
        (e.id.as_str(), e.severity, e.reason.as_str(), e.index),
        (
            "CVE-2024-0002",
            Severity::Critical,
            "not reachable from the payment path",
            scan.entries[0].index
        )
    );
    assert_eq!(status_of(&report, "provenance").detail, Detail::default());

    // The author approving fails the control; the trail shows why, and everyone else.
    let review = status_of(&report, "two-person-review");
    assert_eq!(review.status, Status::Fail);
    assert!(
        review.reason.contains("approved their own change"),
        "{}",
        review.reason
    );
    let trail = review.detail.review.as_ref().unwrap();
    assert_eq!(trail.changes.len(), 1);
    assert_eq!(trail.changes[0].author, "dave@example.com");
    assert_eq!(trail.changes[0].recorded_by, ["scm@git.example.com"]);
    assert_eq!(
        trail.changes[0].change_ref,
        "https://git.example.com/payments/pull/812"
    );
    let rows: Vec<(&str, Decision, bool)> = trail
        .decisions
        .iter()
        .map(|d| (d.reviewer.as_str(), d.decision, d.counted))
        .collect();
    assert_eq!(
        rows,
        [
            ("alice@example.com", Decision::Approved, false),
            ("bob@example.com", Decision::Approved, true),
            ("alice@example.com", Decision::ChangesRequested, false),
            ("alice@example.com", Decision::Approved, true),
            ("carol@example.com", Decision::Approved, false),
            ("dave@example.com", Decision::Approved, false),
        ]
    );
    let note = |who: &str, counted: bool| {
        trail
            .decisions
            .iter()
            .find(|d| d.reviewer == who && d.counted == counted)
            .unwrap()
            .note
            .clone()
    };
    assert!(note("alice@example.com", false).contains("superseded"));
    assert!(note("carol@example.com", false).contains("signed by bob@example.com, neither"));
    assert!(note("dave@example.com", false).contains("separation-of-duties finding"));
    assert_eq!(trail.decisions[3].signed_by, ["alice@example.com"]);
    assert_eq!(trail.decisions[3].time, "2026-11-20T03:00:00Z");
}

#[test]
fn a_reviewers_decision_in_an_entry_that_fails_the_control_is_shown_not_counted() {
    let policy = Policy::parse(POLICY).unwrap();
    let mut s = good_release();
    // carol approved another commit than the one built.
    s.attest(
        5,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("carol@example.com", "APPROVED")],
            OTHER_COMMIT,
        ),
        t0(),
    );
    let report = s.report(&policy, t0() + DAY);
    let review = status_of(&report, "two-person-review");
    assert_eq!(review.status, Status::Pass, "{review:#?}");
    let trail = review.detail.review.as_ref().unwrap();
    let carol = trail
        .decisions
        .iter()
        .find(|d| d.reviewer == "carol@example.com")
        .unwrap();
    assert!(!carol.counted);
    assert!(
        carol.note.contains("does not satisfy the control")
            && carol
                .note
                .contains("not a commit the artifact was built from"),
        "{}",
        carol.note
    );
}

#[test]
fn the_trail_agrees_with_the_verdict_on_requests_for_changes_and_on_builders() {
    let policy = Policy::parse(POLICY).unwrap();
    // carol asks for changes in an entry that fails the control (another commit
    // reviewed): the request still blocks, and the trail counts it.
    let mut s = good_release();
    s.attest(
        5,
        APPROVAL_V1,
        commit(),
        approval(
            "dave@example.com",
            &[("carol@example.com", "CHANGES_REQUESTED")],
            OTHER_COMMIT,
        ),
        t0() + 1,
    );
    let report = s.report(&policy, t0() + DAY);
    let review = status_of(&report, "two-person-review");
    assert!(
        review
            .reason
            .contains("carol@example.com requested changes"),
        "{}",
        review.reason
    );
    let trail = review.detail.review.as_ref().unwrap();
    let carol = trail
        .decisions
        .iter()
        .find(|d| d.reviewer == "carol@example.com")
        .unwrap();
    assert!(
        carol.counted && carol.note.contains("blocks the release"),
        "{carol:#?}"
    );

    // bob also signed the artifact's provenance, approved, then asked for changes: his
    // approval is a separation-of-duties finding however he decides later.
    let mut s = good_release();
    s.attest(4, SLSA_PROVENANCE_V1, artifact(), json!({"buildDefinition": {"resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}}]}}), t0());
    let mut later = approval(
        "dave@example.com",
        &[("bob@example.com", "CHANGES_REQUESTED")],
        COMMIT,
    );
    later["reviewers"][0]["time"] = json!("2026-11-20T12:00:00Z");
    s.attest(4, APPROVAL_V1, commit(), later, t0() + 1);
    let report = s.report(&policy, t0() + DAY);
    let review = status_of(&report, "two-person-review");
    assert_eq!(review.status, Status::Fail);
    let trail = review.detail.review.as_ref().unwrap();
    let bob: Vec<_> = trail
        .decisions
        .iter()
        .filter(|d| d.reviewer == "bob@example.com")
        .collect();
    assert_eq!(bob.len(), 2, "{trail:#?}");
    assert!(
        !bob[0].counted && bob[0].note.contains("signed the artifact's provenance"),
        "{:#?}",
        bob[0]
    );
    assert!(bob[1].counted, "{:#?}", bob[1]);
}
