//! Ledger integrity (issue 11): who signed is part of what dedupe recognises, a caller with
//! bogus signatures learns nothing, names that the indexes, logs and outputs cannot carry
//! are refused, and untrusted strings never forge a log line.

use evident_client::ClientError;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, Signature};
use evident_tests::{Server, cli, envelope, key, public, stderr, stdout, write_config};
use tonic::Code;

/// Submits and expects a refusal with `code` whose message says `says`; the log is unchanged.
async fn expect_refused(server: &Server, envelope: &Envelope, code: Code, says: &str) -> String {
    let before = server.size().await;
    let err = server.client().await.submit(envelope).await.unwrap_err();
    let message = match err {
        ClientError::Status {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(message.contains(says), "{message:?} should say {says:?}");
            message
        }
        other => panic!("expected a status, got {other}"),
    };
    assert_eq!(
        server.size().await,
        before,
        "a refused submission changed the log"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_signing_the_same_payload_does_not_capture_the_ci_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1, 2], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    // `evident attest` is deterministic: signer 2 can compute the CI's payload and log it
    // first under its own signature.
    let ci = envelope(&key(1), 42);
    let squatter = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, ci.payload.clone(), &[&key(2)]);
    let (squatted, duplicate) = client.submit(&squatter).await.unwrap();
    assert!(!duplicate);
    let size = server.size().await;

    // The CI's own submission is its own entry, carrying its own signature.
    let path = d.join("ci.dsse.json");
    std::fs::write(&path, ci.to_json()).unwrap();
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["submit", "ci.dsse.json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("already in the log"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        server.size().await,
        size + 1,
        "both signers' entries are logged"
    );
    let (retry, duplicate) = client.submit(&ci).await.unwrap();
    assert!(duplicate, "an honest retry of the same bytes is idempotent");
    assert_ne!(retry.index, squatted.index);
    assert_eq!(
        retry.envelope, ci,
        "the logged envelope carries the CI's signature"
    );
    assert_eq!(server.size().await, size + 1);

    // The squatter's retry is its own entry too, never the CI's.
    let (again, duplicate) = client.submit(&squatter).await.unwrap();
    assert!(duplicate);
    assert_eq!(again.index, squatted.index);

    // A cosigned envelope is new evidence (signer 2 did not sign the CI's entry).
    let both = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        ci.payload.clone(),
        &[&key(1), &key(2)],
    );
    let (cosigned, duplicate) = client.submit(&both).await.unwrap();
    assert!(!duplicate);
    assert_eq!(cosigned.envelope, both);
    assert_eq!(server.size().await, size + 2);

    // The audit replays the log with the same dedupe rule.
    let genesis = server.data_dir.join("genesis.json").display().to_string();
    let out =
        tokio::task::block_in_place(|| cli(d, Some(&server), &["audit", "--genesis", &genesis]));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_fails_when_the_logged_envelope_lacks_its_own_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let ci = envelope(&key(1), 43);
    server.client().await.submit(&ci).await.unwrap();
    let size = server.size().await;
    // The same evidence with a signature the log does not hold: the server answers with
    // the logged entry (the extra signature does not verify), which does not carry it.
    let mut extra = ci.clone();
    extra.signatures.push(Signature {
        sig: vec![7; 64],
        keyid: String::new(),
    });
    std::fs::write(d.join("extra.dsse.json"), extra.to_json()).unwrap();
    let out = tokio::task::block_in_place(|| cli(d, Some(&server), &["submit", "extra.dsse.json"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not carry this envelope's signature 1"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("verified"), "{}", stdout(&out));
    assert_eq!(server.size().await, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_payload_with_a_bogus_signature_reads_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let logged = envelope(&key(1), 44);
    server.client().await.submit(&logged).await.unwrap();
    let signature = hex::encode(&logged.signatures[0].sig);

    // The payload with a junk signature naming the CI's key, with no signature, and signed
    // by an unregistered key: each is refused, and no answer holds the logged signature.
    let mut bogus = logged.clone();
    bogus.signatures = vec![Signature {
        sig: vec![0; 64],
        keyid: public(1).key_id(),
    }];
    let message = expect_refused(&server, &bogus, Code::PermissionDenied, "").await;
    assert!(!message.contains(&signature), "{message}");
    let mut unsigned = logged.clone();
    unsigned.signatures.clear();
    expect_refused(&server, &unsigned, Code::Unauthenticated, "no signatures").await;
    let stranger = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, logged.payload.clone(), &[&key(9)]);
    expect_refused(&server, &stranger, Code::PermissionDenied, "").await;
}

/// The characters that indexes, logs or terminals cannot carry, as a test writes them.
const BAD: [(&str, &str); 4] = [
    ("NUL", "\u{0}"),
    ("newline", "\n"),
    ("ESC[31m", "\u{1b}[31m"),
    ("bidi override", "\u{202e}"),
];

fn statement_with(
    predicate_type: &str,
    subject_name: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject_name, "digest": {"sha256": SHA}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap()
}

const SHA: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";

fn attest(payload: Vec<u8>) -> Envelope {
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key(1)])
}

fn admin_signed(payload_type: &str, payload: Vec<u8>) -> Envelope {
    Envelope::sign(payload_type, payload, &[&key(evident_tests::ADMIN)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_log_cannot_carry_are_refused_naming_the_field() {
    use evident_core::policy::POLICY_PAYLOAD_TYPE;
    use evident_core::registry::{Change, REGISTRY_PAYLOAD_TYPE};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    for (what, bad) in BAD {
        let tainted = format!("https://example.com/{bad}x");
        expect_refused(
            &server,
            &attest(statement_with(&tainted, "app", serde_json::json!({}))),
            Code::InvalidArgument,
            "predicateType holds",
        )
        .await;
        expect_refused(
            &server,
            &attest(statement_with(
                TEST_RESULT,
                &format!("app{bad}"),
                serde_json::json!({}),
            )),
            Code::InvalidArgument,
            "subject[0].name holds",
        )
        .await;
        let release = serde_json::json!({"purl": format!("pkg:generic/app{bad}@1.0")});
        expect_refused(
            &server,
            &attest(statement_with(
                evident_core::predicates::RELEASE_V0_1,
                "app",
                release,
            )),
            Code::InvalidArgument,
            "release name holds",
        )
        .await;
        let release = serde_json::json!({"purl": format!("pkg:generic/app@1.{bad}0")});
        expect_refused(
            &server,
            &attest(statement_with(
                evident_core::predicates::RELEASE_V0_1,
                "app",
                release,
            )),
            Code::InvalidArgument,
            "release version holds",
        )
        .await;
        let add = |identity: &str, role: &str, predicate_type: &str| Change::AddSigner {
            identity: identity.into(),
            public_key: Some(public(5).to_hex()),
            roles: vec![role.into()],
            predicate_types: vec![predicate_type.into()],
            not_before: None,
            not_after: None,
            certificate: None,
        };
        for (change, field) in [
            (add(&format!("ci{bad}@x"), "ci", "*"), "identity holds"),
            (add("ci@x", &format!("ci{bad}"), "*"), "roles[0] holds"),
            (add("ci@x", "ci", &tainted), "predicate_types[0] holds"),
        ] {
            expect_refused(
                &server,
                &admin_signed(REGISTRY_PAYLOAD_TYPE, change.to_payload()),
                Code::InvalidArgument,
                field,
            )
            .await;
        }
        let escaped: String = bad
            .chars()
            .map(|c| format!("\\u{:04X}", u32::from(c)))
            .collect();
        let policy = format!(
            "name = \"pay{escaped}ments\"\nversion = 1\n\n[[control]]\nid = \"unit-tests\"\n\
             predicate_type = \"{TEST_RESULT}\"\nsigners = [\"role:ci\"]\nrequire = 'true'\n"
        );
        let message = expect_refused(
            &server,
            &admin_signed(POLICY_PAYLOAD_TYPE, policy.into_bytes()),
            Code::InvalidArgument,
            "policy name holds",
        )
        .await;
        assert!(
            !message.contains(bad),
            "{what}: the refusal echoes it raw: {message:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_json_keys_in_a_statement_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let subject = format!(r#"[{{"name":"app","digest":{{"sha256":"{SHA}"}}}}]"#);
    let other = format!(
        r#"[{{"name":"evil","digest":{{"sha256":"{}"}}}}]"#,
        "ab".repeat(32)
    );
    let cases = [
        (
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":{subject},"subject":{other},"predicateType":"{TEST_RESULT}","predicate":{{}}}}"#
            ),
            "\"subject\" appears twice",
        ),
        (
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":{subject},"predicateType":"{TEST_RESULT}","predicateType":"https://example.com/other","predicate":{{}}}}"#
            ),
            "\"predicateType\" appears twice",
        ),
        (
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":{subject},"predicateType":"{TEST_RESULT}","predicate":{{"result":"FAILED","result":"PASSED"}}}}"#
            ),
            "\"predicate.result\" appears twice",
        ),
    ];
    for (payload, says) in cases {
        expect_refused(
            &server,
            &attest(payload.into_bytes()),
            Code::InvalidArgument,
            says,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_strings_never_forge_a_server_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let forged = "FORGED entry submitted index=0";
    // Refused at submit, and the refusal logs nothing raw.
    let tainted = format!("https://example.com/p\n{forged}");
    expect_refused(
        &server,
        &attest(statement_with(&tainted, "app", serde_json::json!({}))),
        Code::InvalidArgument,
        "predicateType holds",
    )
    .await;
    // An accepted predicate type with characters a log must escape (quotes, backslashes).
    let quoted = "https://example.com/\"q\"\\p";
    server
        .client()
        .await
        .submit(&attest(statement_with(
            quoted,
            "app",
            serde_json::json!({}),
        )))
        .await
        .unwrap();
    let log = server.stderr();
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED")),
        "a forged line in the server log:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape in the server log");
    assert!(
        log.contains(r#"https://example.com/\"q\"\\p"#),
        "the predicate type is logged escaped:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_as_of_answers_are_the_same_from_snapshots_as_from_a_full_replay() {
    use evident_core::registry::{Change, sign_change};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    // More registry entries than two snapshot intervals (64 each).
    let admin = key(evident_tests::ADMIN);
    let mut times = Vec::new();
    for n in 0..140u32 {
        let mut seed = [3u8; 32];
        seed[..4].copy_from_slice(&n.to_be_bytes());
        let signer =
            evident_core::PublicKey::from_signing_key(&evident_core::SigningKey::from_bytes(&seed));
        let change = Change::AddSigner {
            identity: format!("signer-{n}@test"),
            public_key: Some(signer.to_hex()),
            roles: vec!["ci".into()],
            predicate_types: vec!["*".into()],
            not_before: None,
            not_after: None,
            certificate: None,
        };
        let (receipt, _) = client
            .submit(&sign_change(&change, &[&admin]))
            .await
            .unwrap();
        assert_eq!(receipt.index, u64::from(n));
        times.push(receipt.integrated_time_nanos);
    }
    // Each point twice: the first may replay and keep snapshots, the second reads them.
    for index in [0u64, 1, 63, 64, 65, 127, 128, 129, 139, 140] {
        for _ in 0..2 {
            let listing = client.list_signers(Some(index)).await.unwrap();
            assert_eq!(listing.as_of_index, index);
            assert_eq!(listing.signers.len() as u64, index, "as of index {index}");
            if index > 0 {
                let last = &listing.signers[index as usize - 1];
                assert_eq!(last.identity, format!("signer-{}@test", index - 1));
            }
        }
    }
    for n in [0usize, 63, 64, 100, 139] {
        let listing = client.list_signers_at(None, Some(times[n])).await.unwrap();
        assert_eq!(listing.signers.len(), n + 1, "as of the time of entry {n}");
    }
    let now = client.list_signers(None).await.unwrap();
    assert_eq!(now.signers.len(), 140);
}
