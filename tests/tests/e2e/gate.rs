//! The deploy gate end to end: a team's evidence goes in through the ledger, `evident
//! verify` decides from a bundle it checks itself, and each way a release falls short is
//! denied with its reason.

use evident_core::Hash;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_tests::{Server, cli, key, stderr, stdout, write_config};
use serde_json::{Value, json};

/// The team's release policy: the one every test and benchmark of the gate uses.
use evident_core::fixtures::PAYMENTS_PROD as POLICY;

const AUTHOR: &str = "signer-6@test";
/// The code-review system, trusted by the policy for the change author and for reviewers'
/// decisions.
pub(crate) const SCM: u8 = 9;

/// What a scenario changes from the complete release.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    None,
    FailedTest,
    HighFinding,
    /// The scan reports CVE-2024-0002 at HIGH, which the policy's allowlist accepts.
    AllowlistedFinding,
    OneApprover,
    SelfApproval,
    OtherCommit,
    /// The scan's finding has a severity the gate cannot read: a bare string (0), an
    /// object (1), or none at all (2).
    UnreadableSeverity(u8),
}

pub(crate) struct Release {
    pub(crate) artifact: String,
    /// The source commit its provenance names (hex).
    pub(crate) commit: String,
}

fn statement(subject: Value, predicate_type: &str, predicate: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [subject],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

pub(crate) async fn attest(
    server: &Server,
    signer: u8,
    subject: Value,
    predicate_type: &str,
    predicate: Value,
) {
    let env = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        statement(subject, predicate_type, predicate),
        &[&key(signer)],
    );
    server.client().await.submit(&env).await.unwrap();
}

/// Puts a release's evidence in the log, as the team's pipeline would.
pub(crate) async fn release(server: &Server, name: &str, flaw: Flaw) -> Release {
    let artifact = Hash::sha256(format!("artifact {name}").as_bytes()).to_hex();
    let commit = Hash::sha256(format!("commit {name}").as_bytes()).to_hex()[..40].to_owned();
    let art = json!({"name": "payments-api", "digest": {"sha256": artifact}});
    let src = json!({"name": "payments", "digest": {"gitCommit": commit}});
    attest(
        server,
        1,
        art.clone(),
        "https://slsa.dev/provenance/v1",
        json!({
            "buildDefinition": {"buildType": "https://ci.example.com/v1", "resolvedDependencies": [
                {"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": commit}}]},
            "runDetails": {"builder": {"id": "https://ci.example.com"}}
        }),
    )
    .await;
    let result = if flaw == Flaw::FailedTest {
        "FAILED"
    } else {
        "PASSED"
    };
    attest(
        server,
        1,
        src.clone(),
        "https://in-toto.io/attestation/test-result/v0.1",
        json!({
            "result": result,
            "configuration": [{"name": "unit"}, {"name": "integration"}],
            "passedTests": ["ledger::posts", "ledger::balances"],
            "failedTests": if flaw == Flaw::FailedTest { json!(["ledger::refunds"]) } else { json!([]) },
        }),
    )
    .await;
    let severity = if matches!(flaw, Flaw::HighFinding | Flaw::AllowlistedFinding) {
        "HIGH"
    } else {
        "LOW"
    };
    let id = if flaw == Flaw::AllowlistedFinding {
        "CVE-2024-0002"
    } else {
        "CVE-2025-0042"
    };
    let mut finding = json!({"id": id, "severity": [{"method": "nvd", "score": severity}]});
    match flaw {
        Flaw::UnreadableSeverity(0) => finding["severity"] = json!("CRITICAL"),
        Flaw::UnreadableSeverity(1) => finding["severity"] = json!({"score": "LOW"}),
        Flaw::UnreadableSeverity(_) => {
            finding.as_object_mut().unwrap().remove("severity");
        }
        _ => {}
    }
    attest(
        server,
        2,
        art.clone(),
        "https://in-toto.io/attestation/vulns/v0.2",
        json!({
            "scanner": {"uri": "pkg:generic/trivy@0.50.0", "result": [finding]}
        }),
    )
    .await;
    let approval = |who: &str, reviewed: &str| {
        json!({
            "author": AUTHOR, "changeRef": format!("https://git.example.com/payments/pull/{name}"),
            "reviewedCommit": reviewed,
            "reviewers": [{"identity": who, "decision": "APPROVED", "time": "2026-11-20T10:00:00Z"}],
        })
    };
    let approval_type = "https://evident.dev/attestation/approval/v1";
    // The code-review system records the change and its author.
    attest(
        server,
        SCM,
        src.clone(),
        approval_type,
        json!({"author": AUTHOR, "changeRef": format!("https://git.example.com/payments/pull/{name}"),
               "reviewedCommit": commit, "reviewers": []}),
    )
    .await;
    attest(
        server,
        3,
        src.clone(),
        approval_type,
        approval("signer-3@test", &commit),
    )
    .await;
    match flaw {
        Flaw::OneApprover => {}
        Flaw::SelfApproval => {
            attest(
                server,
                6,
                src.clone(),
                approval_type,
                approval(AUTHOR, &commit),
            )
            .await
        }
        Flaw::OtherCommit => {
            attest(
                server,
                4,
                src.clone(),
                approval_type,
                approval("signer-4@test", &"0".repeat(40)),
            )
            .await
        }
        _ => {
            attest(
                server,
                4,
                src.clone(),
                approval_type,
                approval("signer-4@test", &commit),
            )
            .await
        }
    }
    Release {
        artifact: format!("sha256:{artifact}"),
        commit,
    }
}

fn verify(
    dir: &std::path::Path,
    server: &Server,
    artifact: &str,
    extra: &[&str],
) -> std::process::Output {
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let mut args = vec![
        "gate",
        "--artifact",
        artifact,
        "--policy",
        "payments-prod",
        "--genesis",
        &genesis,
    ];
    args.extend_from_slice(extra);
    tokio::task::block_in_place(|| cli(dir, Some(server), &args))
}

pub(crate) async fn team_log(dir: &std::path::Path) -> Server {
    team_log_in(dir, &dir.join("data")).await
}

/// A log with the team's signers and policy, its data in `data`.
pub(crate) async fn team_log_in(dir: &std::path::Path, data: &std::path::Path) -> Server {
    let server = Server::start(&write_config(dir, data, &[], ""), data).unwrap();
    tokio::task::block_in_place(|| {
        server.register(1, &["ci"], &["*"]);
        server.register(
            2,
            &["scanner"],
            &["https://in-toto.io/attestation/vulns/v0.2"],
        );
        for reviewer in [3, 4, 6] {
            server.register(
                reviewer,
                &["reviewer"],
                &["https://evident.dev/attestation/approval/v1"],
            );
        }
        server.register(
            SCM,
            &["scm"],
            &["https://evident.dev/attestation/approval/v1"],
        );
        server.register(
            8,
            &["release"],
            &["https://in-toto.io/attestation/release/v0.1"],
        );
        std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
        let out = cli(
            dir,
            Some(&server),
            &[
                "policy",
                "submit",
                "policy.toml",
                "--admin-key",
                "admin.key",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_allows_a_complete_release_and_denies_each_flaw_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;

    let good = release(&server, "good", Flaw::None).await;
    let out = verify(d, &server, &good.artifact, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("ALLOWED"), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("PASS").count(), 4, "{}", stdout(&out));
    let out = verify(d, &server, &good.artifact, &["--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["allowed"], true);
    // The server's own verdict agrees.
    let (allowed, _) = server
        .client()
        .await
        .verify_release(
            &evident_client::Release::Artifact(good.artifact.clone()),
            "payments-prod",
        )
        .await
        .unwrap();
    assert!(allowed);
    // The release job declares the release; the gate can then be asked by name.
    let digest = good.artifact.strip_prefix("sha256:").unwrap();
    attest(
        &server,
        8,
        json!({"name": "payments-api", "digest": {"sha256": digest}}),
        "https://in-toto.io/attestation/release/v0.1",
        json!({"purl": "pkg:oci/payments-api@1.4.2", "releaseId": "payments-api@1.4.2"}),
    )
    .await;
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "verify",
                "--release",
                "payments-api@1.4.2",
                "--policy",
                "payments-prod",
                "--genesis",
                &genesis,
            ],
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("ALLOWED {}", good.artifact)),
        "{}",
        stdout(&out)
    );
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "verify",
                "--release",
                "payments-api@9.9.9",
                "--policy",
                "payments-prod",
                "--genesis",
                &genesis,
            ],
        )
    });
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown release cannot be decided"
    );
    assert!(
        stderr(&out).contains("no release attestation declares payments-api@9.9.9"),
        "{}",
        stderr(&out)
    );

    // The deploy job records its verdict: a signed verification summary in the log.
    tokio::task::block_in_place(|| {
        server.register(
            7,
            &["release"],
            &["https://slsa.dev/verification_summary/v1"],
        );
    });
    evident_tests::write_private(
        &d.join("deploy.key"),
        &format!("{}\n", hex::encode([7u8; 32])),
    );
    let out = verify(
        d,
        &server,
        &good.artifact,
        &["--record", "--key", "deploy.key"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let index: u64 = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("verdict recorded as entry "))
        .expect("the verdict's entry is printed")
        .parse()
        .unwrap();
    let entry = server
        .client()
        .await
        .entry(evident_client::Selector::Index(index), None)
        .await
        .unwrap();
    let vsa = evident_core::statement::Statement::from_envelope(entry.record.envelope()).unwrap();
    assert_eq!(
        vsa.predicate_type,
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(vsa.predicate["verificationResult"], "PASSED");
    assert_eq!(
        vsa.predicate["policy"]["uri"],
        "evident:policy/payments-prod@1"
    );

    for (name, flaw, control, says) in [
        (
            "failed-test",
            Flaw::FailedTest,
            "unit-tests",
            r#"`predicate.result == "PASSED"` is false"#,
        ),
        (
            "high-finding",
            Flaw::HighFinding,
            "vulnerability-scan",
            "CVE-2025-0042 (HIGH)",
        ),
        (
            "one-approver",
            Flaw::OneApprover,
            "two-person-review",
            "1 distinct signer(s)",
        ),
        (
            "self-approval",
            Flaw::SelfApproval,
            "two-person-review",
            "signer-6@test, the change author, approved their own change",
        ),
        (
            "other-commit",
            Flaw::OtherCommit,
            "two-person-review",
            "is not a commit the artifact was built from",
        ),
    ] {
        let r = release(&server, name, flaw).await;
        let out = verify(d, &server, &r.artifact, &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let line = stdout(&out)
            .lines()
            .find(|l| l.contains(&format!(" {control}:")))
            .unwrap_or_default()
            .to_owned();
        assert!(line.starts_with("FAIL"), "{name}: {}", stdout(&out));
        assert!(line.contains(says), "{name}: {line:?} should say {says:?}");
        assert!(stdout(&out).contains("DENIED"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_signer_and_tampered_or_foreign_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let good = release(&server, "good", Flaw::None).await;
    let genesis = server.data_dir.join("genesis.json").display().to_string();

    // An exported bundle verifies offline, with no server.
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "bundle",
                "export",
                "--artifact",
                &good.artifact,
                "--out",
                "good.bundle.json",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let offline = |file: &str, log_key: &str| {
        tokio::task::block_in_place(|| {
            cli(
                d,
                None,
                &[
                    "bundle",
                    "verify",
                    file,
                    "--artifact",
                    &good.artifact,
                    "--policy",
                    "payments-prod",
                    "--genesis",
                    &genesis,
                    "--log-key",
                    log_key,
                ],
            )
        })
    };
    let log_key = server.log_key.to_string();
    let out = offline("good.bundle.json", &log_key);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // Altered bundles: each is refused as a failed verification, naming why.
    let refused = |file: &str, alter: &dyn Fn(&mut Vec<Value>), says: &str| {
        let mut bundle: Value =
            serde_json::from_slice(&std::fs::read(d.join("good.bundle.json")).unwrap()).unwrap();
        alter(bundle["entries"].as_array_mut().unwrap());
        std::fs::write(d.join(file), bundle.to_string()).unwrap();
        let out = offline(file, &log_key);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stderr(&out).contains(says), "{file}: {}", stderr(&out));
    };
    let kind_of = |e: &Value| {
        let record = base64_decode(e["leafRecord"].as_str().unwrap());
        evident_core::record::LeafRecord::decode(&record)
            .unwrap()
            .kind()
    };
    // One byte of an entry changed.
    refused(
        "tampered.json",
        &|entries| {
            let last = entries.last_mut().unwrap();
            let mut record = base64_decode(last["leafRecord"].as_str().unwrap());
            let n = record.len() - 100;
            record[n] ^= 1;
            last["leafRecord"] = base64_encode(&record).into();
        },
        "not proven in the checkpoint",
    );
    // A policy version left out, to fall back to a laxer one.
    refused(
        "no-policy.json",
        &|entries| entries.retain(|e| kind_of(e) != evident_core::record::EntryKind::Policy),
        "policy versions are missing",
    );
    // A registry entry left out (it could be a revocation).
    refused(
        "incomplete.json",
        &|entries| {
            entries.remove(1);
        },
        "registry entries are missing",
    );

    // The checkpoint is not signed by the pinned key.
    let other = evident_core::note::Signer::new("evident.test/log", key(77)).unwrap();
    let out = offline("good.bundle.json", &other.verifier().to_string());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bundle checkpoint"),
        "{}",
        stderr(&out)
    );

    // A revoked signer: a revocation dated back before the scan withdraws its signature.
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "signer",
                "revoke",
                "--public-key",
                &evident_tests::public(2).to_hex(),
                "--reason",
                "scanner host compromised",
                "--admin-key",
                "admin.key",
                "--from",
                "2020-01-01T00:00:00Z",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verify(d, &server, &good.artifact, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains(" vulnerability-scan:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.starts_with("FAIL")
            && line.contains("revoked from 2020-01-01T00:00:00Z (scanner host compromised)"),
        "{line}"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_scan_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = team_log(d).await;
    let r = release(&server, "stale", Flaw::None).await;
    // A stricter version of the policy: scans are good for two seconds.
    std::fs::write(
        d.join("policy2.toml"),
        POLICY
            .replace("version = 1", "version = 2")
            .replace("\"7d\"", "\"2s\""),
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "policy",
                "submit",
                "policy2.toml",
                "--admin-key",
                "admin.key",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let out = verify(d, &server, &r.artifact, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains(" vulnerability-scan:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.starts_with("FAIL") && line.contains("older than the 2 s allowed"),
        "{line}"
    );
    // Version 1, with a week's allowance, still allows it.
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "verify",
                "--artifact",
                &r.artifact,
                "--policy",
                "payments-prod@1",
                "--genesis",
                &genesis,
            ],
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_from_a_fork_of_the_log_is_refused() {
    // Log A, and the gate's memory of its checkpoint.
    let a = tempfile::tempdir().unwrap();
    let server_a = team_log(a.path()).await;
    let out = tokio::task::block_in_place(|| cli(a.path(), Some(&server_a), &["checkpoint"]));
    assert!(out.status.success(), "{}", stderr(&out));

    // Log B: the same log key and genesis, other entries: a fork.
    let b = tempfile::tempdir().unwrap();
    let data_b = b.path().join("data");
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::copy(server_a.data_dir.join("log.key"), data_b.join("log.key")).unwrap();
    let server_b = team_log_in(b.path(), &data_b).await;
    assert_eq!(server_b.log_key, server_a.log_key);
    let r = release(&server_b, "forked", Flaw::None).await;
    std::fs::copy(a.path().join("state.json"), b.path().join("state.json")).unwrap();
    let out = verify(b.path(), &server_b, &r.artifact, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("fork"), "{}", stderr(&out));
}
