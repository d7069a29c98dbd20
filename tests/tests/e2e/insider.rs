//! One insider against the gate, end to end: a reviewer, the change author, a pipeline key
//! allowed for every predicate type, and whoever holds a bundle file try to make `evident
//! verify` say ALLOWED. Each attempt fails, and the reason names what was wrong.

use evident_tests::{Server, cli, stderr, stdout};
use serde_json::{Value, json};

use crate::gate::{Flaw, SCM, attest, release, team_log};

const APPROVAL: &str = "https://evident.dev/attestation/approval/v1";
const RELEASE: &str = "https://in-toto.io/attestation/release/v0.1";

fn gate(dir: &std::path::Path, server: &Server, args: &[&str]) -> std::process::Output {
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let mut all = vec!["gate", "--policy", "payments-prod", "--genesis", &genesis];
    all.extend_from_slice(args);
    tokio::task::block_in_place(|| cli(dir, Some(server), &all))
}

fn review(who: &str, decision: &str, author: &str, commit: &str) -> Value {
    json!({
        "author": author,
        "changeRef": "https://git.example.com/payments/pull/1",
        "reviewedCommit": commit,
        "reviewers": [{"identity": who, "decision": decision, "time": "2026-11-20T10:00:00Z"}],
    })
}

fn src(commit: &str) -> Value {
    json!({"name": "payments", "digest": {"gitCommit": commit}})
}

/// The control's line of a human gate report.
fn line_of(out: &std::process::Output, control: &str) -> String {
    stdout(out)
        .lines()
        .find(|l| l.contains(&format!(" {control}:")))
        .unwrap_or_default()
        .to_owned()
}

fn assert_denied(out: &std::process::Output, control: &str, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(out), stderr(out));
    let line = line_of(out, control);
    assert!(
        line.starts_with("FAIL") && line.contains(says),
        "{line:?} should fail saying {says:?}\n{}",
        stdout(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_cannot_speak_for_another_reviewer_nor_the_author_for_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;

    // Bob (4) approves, then requests changes. Alice (3) then signs an approval whose
    // reviewer list says Bob approved: Alice is not trusted for Bob's decision.
    let r = release(&server, "cancelled", Flaw::None).await;
    attest(
        &server,
        4,
        src(&r.commit),
        APPROVAL,
        review("signer-4@test", "CHANGES_REQUESTED", "x", &r.commit),
    )
    .await;
    let size = server.size().await;
    attest(
        &server,
        3,
        src(&r.commit),
        APPROVAL,
        json!({
            "author": "signer-6@test", "changeRef": "https://git.example.com/payments/pull/1",
            "reviewedCommit": r.commit,
            "reviewers": [
                {"identity": "signer-3@test", "decision": "APPROVED", "time": "2026-11-20T10:00:00Z"},
                {"identity": "signer-4@test", "decision": "APPROVED", "time": "2026-11-20T11:00:00Z"}],
        }),
    )
    .await;
    assert_eq!(server.size().await, size + 1);
    let out = gate(d, &server, &["--artifact", &r.artifact]);
    assert_denied(
        &out,
        "two-person-review",
        "signer-4@test requested changes and has not approved since",
    );

    // The author (6) signs an approval naming someone else as the author, and approves:
    // the author comes from the code-review system, never from an approver's own claim.
    let r = release(&server, "self", Flaw::OneApprover).await;
    attest(
        &server,
        6,
        src(&r.commit),
        APPROVAL,
        review("signer-6@test", "APPROVED", "signer-5@test", &r.commit),
    )
    .await;
    let out = gate(d, &server, &["--artifact", &r.artifact]);
    assert_denied(
        &out,
        "two-person-review",
        "signer-6@test, the change author, approved their own change",
    );

    // An approval by the author beside two valid approvals fails separation of duties too,
    // as docs/POLICY.md says.
    let r = release(&server, "beside", Flaw::None).await;
    attest(
        &server,
        6,
        src(&r.commit),
        APPROVAL,
        review("signer-6@test", "APPROVED", "signer-6@test", &r.commit),
    )
    .await;
    let out = gate(d, &server, &["--artifact", &r.artifact]);
    assert_denied(&out, "two-person-review", "the change author, approved");

    // Without the code-review system's record, no author is known: separation of duties
    // cannot be shown, whatever the approvals claim.
    let commit = "c0ffee0000000000000000000000000000000001";
    let artifact = evident_core::Hash::sha256(b"no scm").to_hex();
    attest(
        &server,
        1,
        json!({"name": "payments-api", "digest": {"sha256": artifact}}),
        "https://slsa.dev/provenance/v1",
        json!({"buildDefinition": {"resolvedDependencies": [
            {"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": commit}}]}}),
    )
    .await;
    for who in [3, 4] {
        attest(
            &server,
            who,
            src(commit),
            APPROVAL,
            review(
                &format!("signer-{who}@test"),
                "APPROVED",
                "nobody@test",
                commit,
            ),
        )
        .await;
    }
    let out = gate(d, &server, &["--artifact", &format!("sha256:{artifact}")]);
    assert_denied(
        &out,
        "two-person-review",
        "no change author recorded by a review system (role:scm)",
    );
    // The review system's record is what makes it pass.
    attest(
        &server,
        SCM,
        src(commit),
        APPROVAL,
        json!({"author": "signer-6@test", "reviewedCommit": commit, "reviewers": []}),
    )
    .await;
    let out = gate(d, &server, &["--artifact", &format!("sha256:{artifact}")]);
    assert_eq!(
        line_of(&out, "two-person-review").get(..4),
        Some("PASS"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_severities_fail_the_scan_control() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    for (kind, says) in [
        (0, "\"CRITICAL\" is not a list of {method, score} objects"),
        (1, "is not a list of {method, score} objects"),
        (2, "no severity"),
    ] {
        let r = release(
            &server,
            &format!("unreadable-{kind}"),
            Flaw::UnreadableSeverity(kind),
        )
        .await;
        let out = gate(d, &server, &["--artifact", &r.artifact]);
        assert_denied(&out, "vulnerability-scan", says);
        assert!(
            line_of(&out, "vulnerability-scan").contains("CVE-2025-0042 (unreadable severity: ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_release_role_declares_a_release() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let good = release(&server, "good", Flaw::None).await;
    let bad = release(&server, "bad", Flaw::FailedTest).await;
    let declare = |signer: u8, artifact: &str, id: &str| {
        let digest = artifact.strip_prefix("sha256:").unwrap().to_owned();
        let id = id.to_owned();
        let server = &server;
        async move {
            attest(
                server,
                signer,
                json!({"name": "payments-api", "digest": {"sha256": digest}}),
                RELEASE,
                json!({"releaseId": id}),
            )
            .await;
        }
    };
    // The release job (8, role release) declares 1.0; the CI key (1, allowed for every
    // predicate type but not role:release) adds its own artifact to 1.0 and declares 6.6.6.
    declare(8, &good.artifact, "payments-api@1.0").await;
    declare(1, &bad.artifact, "payments-api@1.0").await;
    declare(1, &good.artifact, "payments-api@6.6.6").await;

    let out = gate(d, &server, &["--release", "payments-api@1.0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("ALLOWED {} under", good.artifact))
            && !stdout(&out).contains(&bad.artifact),
        "the squatter's artifact is not part of the release: {}",
        stdout(&out)
    );
    let out = gate(d, &server, &["--release", "payments-api@6.6.6"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("no release attestation in the bundle declares it signed by role:release"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_bundle_never_turns_a_denial_into_an_allowance_for_a_fresh_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let r = release(&server, "denied", Flaw::FailedTest).await;
    let other = release(&server, "other", Flaw::None).await;
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "bundle",
                "export",
                "--artifact",
                &r.artifact,
                "--out",
                "denied.json",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let original: Value =
        serde_json::from_slice(&std::fs::read(d.join("denied.json")).unwrap()).unwrap();
    let log_key = server.log_key.to_string();
    // A fresh machine: no saved checkpoint, only the log key and the genesis.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(&genesis, fresh.path().join("genesis.json")).unwrap();
    let offline = |bundle: &Value, artifact: &str| {
        std::fs::write(fresh.path().join("b.json"), bundle.to_string()).unwrap();
        tokio::task::block_in_place(|| {
            cli(
                fresh.path(),
                None,
                &[
                    "bundle",
                    "verify",
                    "b.json",
                    "--artifact",
                    artifact,
                    "--policy",
                    "payments-prod",
                    "--genesis",
                    "genesis.json",
                    "--log-key",
                    &log_key,
                ],
            )
        })
    };
    let out = offline(&original, &r.artifact);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("DENIED"), "{}", stdout(&out));

    // The failing test result, dropped from the bundle.
    let kind_and_type = |e: &Value| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(e["leafRecord"].as_str().unwrap())
            .unwrap();
        let record = evident_core::record::LeafRecord::decode(&bytes).unwrap();
        let statement = evident_core::statement::Statement::from_envelope(record.envelope()).ok();
        statement.map(|s| s.predicate_type)
    };
    let mut dropped = original.clone();
    dropped["entries"].as_array_mut().unwrap().retain(|e| {
        kind_and_type(e).as_deref() != Some("https://in-toto.io/attestation/test-result/v0.1")
    });
    assert!(
        dropped["entries"].as_array().unwrap().len()
            < original["entries"].as_array().unwrap().len()
    );
    let out = offline(&dropped, &r.artifact);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("bundle manifest") && !stdout(&out).contains("ALLOWED"),
        "{}",
        stderr(&out)
    );

    // An unsigned list of artifacts added, as older bundles had: not a field of a bundle.
    let mut listed = original.clone();
    listed["artifacts"] = json!([other.artifact]);
    let out = offline(&listed, &other.artifact);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));

    // The denied release's bundle presented as the answer about another artifact.
    let out = offline(&original, &other.artifact);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the bundle is about artifact {}, not artifact {}",
            r.artifact, other.artifact
        )),
        "{}",
        stderr(&out)
    );

    // The entries of the other release's bundle under this one's manifest.
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "bundle",
                "export",
                "--artifact",
                &other.artifact,
                "--out",
                "other.json",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs: Value =
        serde_json::from_slice(&std::fs::read(d.join("other.json")).unwrap()).unwrap();
    let mut spliced = theirs.clone();
    spliced["manifest"] = original["manifest"].clone();
    let out = offline(&spliced, &r.artifact);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("bundle manifest"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_without_a_reason_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let size = server.size().await;
    let policy = std::fs::read_to_string(d.join("policy.toml"))
        .unwrap()
        .replace("version = 1", "version = 2")
        .replace(
            "reason = \"not reachable from the payment path\"",
            "reason = \"  \"",
        );
    std::fs::write(d.join("lax.toml"), policy).unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &["policy", "submit", "lax.toml", "--admin-key", "admin.key"],
        )
    });
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("needs an id and a reason"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.size().await, size, "the log is unchanged");
}
