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
        ClientError::Status { code: got, message } => {
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
