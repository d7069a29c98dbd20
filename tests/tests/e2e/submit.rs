//! The happy path: a pipeline submits an attestation and verifies its receipt offline.

use evident_client::{CheckpointState, Selector};
use evident_core::merkle;
use evident_core::note::Checkpoint;
use evident_tests::{Server, cli, envelope, key, stderr, stdout, write_config};

#[test]
fn cli_keygen_attest_submit_verify_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = cli(d, None, &["keygen", "--out", "ci.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("ci.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let data = d.join("data");
    let config = write_config(d, &data, &[], "");
    let server = Server::start(&config, &data).unwrap();
    // Register the pipeline's key in the trust registry, signed by the administrator.
    let out = cli(
        d,
        Some(&server),
        &[
            "signer",
            "add",
            "--identity",
            "ci@payments-pipeline",
            "--public-key",
            "ci.key.pub",
            "--role",
            "ci",
            "--predicate-type",
            "https://in-toto.io/attestation/test-result/v0.1",
            "--admin-key",
            "admin.key",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("registry entry 0: add_signer"),
        "{}",
        stdout(&out)
    );

    std::fs::write(
        d.join("predicate.json"),
        r#"{"result":"PASSED","passedTests":["unit"]}"#,
    )
    .unwrap();
    std::fs::write(d.join("app.bin"), b"the artifact").unwrap();
    let out = cli(
        d,
        Some(&server),
        &[
            "attest",
            "--subject",
            "payments-api=gitCommit:4f2a9c1e0d5b7a3c9e8f1a2b3c4d5e6f7a8b9c0d",
            "--subject-file",
            "app.bin",
            "--predicate-type",
            "https://in-toto.io/attestation/test-result/v0.1",
            "--predicate",
            "predicate.json",
            "--key",
            "ci.key",
            "--out",
            "tests.dsse.json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = cli(d, Some(&server), &["submit", "tests.dsse.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("entry 1,"), "{}", stdout(&out));
    assert!(stdout(&out).contains("verified"), "{}", stdout(&out));

    let out = cli(
        d,
        Some(&server),
        &["verify-receipt", "tests.dsse.json.receipt.json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("verified: entry 1"),
        "{}",
        stdout(&out)
    );

    // The receipt is bound to the envelope: change one byte of the payload and it fails.
    let receipt_text = std::fs::read_to_string(d.join("tests.dsse.json.receipt.json")).unwrap();
    let mut receipt: serde_json::Value = serde_json::from_str(&receipt_text).unwrap();
    let payload = receipt["envelope"]["payload"].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = payload.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    receipt["envelope"]["payload"] = chars.into_iter().collect::<String>().into();
    std::fs::write(d.join("forged.json"), receipt.to_string()).unwrap();
    let out = cli(d, Some(&server), &["verify-receipt", "forged.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // A receipt checked against another log's key fails as a verification (exit 1).
    let other = evident_core::note::Signer::new("evident.test/log", key(99)).unwrap();
    let out = evident_tests::cli(
        d,
        None,
        &[
            "verify-receipt",
            "tests.dsse.json.receipt.json",
            "--log-key",
            &other.verifier().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = cli(d, Some(&server), &["checkpoint", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tree_size"], 2);

    let out = cli(d, Some(&server), &["entry", "--index", "1", "--proof"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("subject:       app.bin sha256:"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_submit_get_entry_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let mut state = CheckpointState::default();

    let mut receipts = Vec::new();
    for nonce in 0..5 {
        let (receipt, duplicate) = client.submit(&envelope(&key(1), nonce)).await.unwrap();
        assert!(!duplicate);
        assert_eq!(receipt.index, nonce + 1, "entry 0 registered the signer");
        let verified = receipt.verify(&server.log_key).unwrap();
        state
            .advance(&mut client, &server.log_key, &receipt.checkpoint)
            .await
            .unwrap();
        assert_eq!(verified.record.envelope(), &envelope(&key(1), nonce));
        receipts.push(receipt);
    }
    // Chained: each entry names the leaf hash of the one before.
    for pair in receipts.windows(2) {
        assert_eq!(pair[1].previous_leaf_hash, pair[0].leaf_hash);
        assert!(pair[1].integrated_time_nanos >= pair[0].integrated_time_nanos);
    }

    let entry = client
        .entry(Selector::LeafHash(receipts[2].leaf_hash), Some(0))
        .await
        .unwrap();
    assert_eq!(entry.record.index(), 3);
    let (size, proof) = entry.proof.unwrap();
    let checkpoint = Checkpoint::verify(&entry.checkpoint.unwrap(), &server.log_key).unwrap();
    assert_eq!(size, 6);
    merkle::verify_inclusion(3, 6, &entry.leaf_hash, &proof, &checkpoint.root).unwrap();

    let (size, proof, leaf, _) = client.inclusion_proof(Selector::Index(1), 3).await.unwrap();
    let old = Checkpoint::verify(&receipts[1].checkpoint, &server.log_key).unwrap();
    assert_eq!((size, old.size), (3, 3));
    merkle::verify_inclusion(1, 3, &leaf, &proof, &old.root).unwrap();

    let first = Checkpoint::verify(&receipts[0].checkpoint, &server.log_key).unwrap();
    let proof = client.consistency_proof(2, 6).await.unwrap();
    merkle::verify_consistency(2, 6, &proof, &first.root, &checkpoint.root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmitting_an_envelope_returns_the_original_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let env = envelope(&key(1), 7);
    let (first, dup) = client.submit(&env).await.unwrap();
    assert!(!dup);
    client.submit(&envelope(&key(1), 8)).await.unwrap();
    // Many concurrent retries of the same envelope: one entry, the same index every time.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut c = client.clone();
        let e = env.clone();
        tasks.push(tokio::spawn(async move { c.submit(&e).await.unwrap() }));
    }
    for t in tasks {
        let (again, dup) = t.await.unwrap();
        assert!(dup);
        assert_eq!(again.index, first.index);
        assert_eq!(again.leaf_hash, first.leaf_hash);
        again.verify(&server.log_key).unwrap();
    }
    assert_eq!(
        server.size().await,
        3,
        "the registry entry and two attestations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_of_a_new_envelope_make_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let client = server.client().await;
    let env = envelope(&key(1), 99);
    // All copies are in flight together, so most meet in the same batch or before the first
    // is durable: the sequencer, not the fast path, must dedupe them.
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let mut c = client.clone();
            let e = env.clone();
            tokio::spawn(async move { c.submit(&e).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    let mut indexes = std::collections::BTreeSet::new();
    for t in tasks {
        let (receipt, duplicate) = t.await.unwrap();
        fresh += usize::from(!duplicate);
        indexes.insert(receipt.index);
    }
    assert_eq!(fresh, 1, "exactly one submission created the entry");
    assert_eq!(indexes.len(), 1);
    assert_eq!(server.size().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_other_hints_or_signatures_is_the_same_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1, 2], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let env = envelope(&key(1), 5);
    let (first, _) = client.submit(&env).await.unwrap();
    let mut hint = env.clone();
    hint.signatures[0].keyid = "something-else".into();
    let mut extra = env.clone();
    extra.signatures.push(evident_core::dsse::Signature {
        sig: vec![0; 64],
        keyid: String::new(),
    });
    for replay in [hint, extra] {
        let (again, duplicate) = client.submit(&replay).await.unwrap();
        assert!(duplicate);
        assert_eq!(again.index, first.index);
        assert_eq!(
            again.envelope, env,
            "the receipt holds the envelope as first logged"
        );
    }
    assert_eq!(server.size().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_key_was_revoked_is_refused_like_any_new_submission() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let env = envelope(&key(1), 6);
    let (first, _) = client.submit(&env).await.unwrap();
    let out = tokio::task::block_in_place(|| {
        cli(
            d,
            Some(&server),
            &[
                "signer",
                "revoke",
                "--public-key",
                &evident_tests::public(1).to_hex(),
                "--reason",
                "rotated out",
                "--admin-key",
                "admin.key",
            ],
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    // Signatures are authorized before the dedupe lookup: a revoked key reads nothing back.
    let size = server.size().await;
    let err = client.submit(&env).await.unwrap_err();
    assert!(
        matches!(&err, evident_client::ClientError::Status { code: tonic::Code::PermissionDenied, message, .. } if message.contains("revoked")),
        "{err}"
    );
    assert_eq!(server.size().await, size);
    let entry = client
        .entry(evident_client::Selector::Index(first.index), None)
        .await
        .unwrap();
    assert_eq!(
        entry.leaf_hash, first.leaf_hash,
        "the original entry stays in the log"
    );
}
