//! Every rejection: the right status code, a message a pipeline author can act on, and the
//! log unchanged.

use evident_client::{ClientError, Selector};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, Signature};
use evident_tests::{Server, cli, envelope, key, statement, stderr, write_config};
use tonic::Code;

const SHA: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";

fn signed(payload_type: &str, payload: Vec<u8>) -> Envelope {
    Envelope::sign(payload_type, payload, &[&key(1)])
}

async fn expect_refused(server: &Server, envelope: Envelope, code: Code, says: &str) {
    let before = server.size().await;
    let err = server.client().await.submit(&envelope).await.unwrap_err();
    match err {
        ClientError::Status {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(message.contains(says), "{message:?} should say {says:?}");
        }
        other => panic!("expected a status, got {other}"),
    }
    assert_eq!(
        server.size().await,
        before,
        "a refused submission changed the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_submission_gets_its_status_and_the_log_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    server
        .client()
        .await
        .submit(&envelope(&key(1), 0))
        .await
        .unwrap();

    let legacy_link = br#"{"_type":"link","name":"build","materials":{},"products":{}}"#.to_vec();
    expect_refused(
        &server,
        signed(IN_TOTO_PAYLOAD_TYPE, legacy_link),
        Code::InvalidArgument,
        "legacy in-toto link",
    )
    .await;

    let no_digest = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app"}],
        "predicateType": "https://example.com/p"
    }))
    .unwrap();
    expect_refused(
        &server,
        signed(IN_TOTO_PAYLOAD_TYPE, no_digest),
        Code::InvalidArgument,
        "subject[0].digest",
    )
    .await;

    let bad_digest = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "ABC"}}],
        "predicateType": "https://example.com/p"
    }))
    .unwrap();
    expect_refused(
        &server,
        signed(IN_TOTO_PAYLOAD_TYPE, bad_digest),
        Code::InvalidArgument,
        "subject[0].digest.sha256",
    )
    .await;

    expect_refused(
        &server,
        signed(IN_TOTO_PAYLOAD_TYPE, b"not json".to_vec()),
        Code::InvalidArgument,
        "not JSON",
    )
    .await;
    expect_refused(
        &server,
        signed("application/json", statement("a", SHA, 1)),
        Code::InvalidArgument,
        "payloadType",
    )
    .await;
    expect_refused(
        &server,
        signed("", statement("a", SHA, 1)),
        Code::InvalidArgument,
        "payloadType is empty",
    )
    .await;

    let mut big = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": SHA}}],
        "predicateType": "https://example.com/p",
        "predicate": {"blob": "x".repeat(70_000)}
    });
    let oversize = signed(IN_TOTO_PAYLOAD_TYPE, serde_json::to_vec(&big).unwrap());
    expect_refused(
        &server,
        oversize,
        Code::ResourceExhausted,
        "over the 65536-byte limit (max_envelope_bytes)",
    )
    .await;
    big["predicate"]["blob"] = "x".repeat(60_000).into();
    // Just under the limit is accepted.
    server
        .client()
        .await
        .submit(&signed(
            IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&big).unwrap(),
        ))
        .await
        .unwrap();

    expect_refused(
        &server,
        envelope(&key(2), 1),
        Code::PermissionDenied,
        "registered signer key",
    )
    .await;

    let mut unsigned = envelope(&key(1), 2);
    unsigned.signatures.clear();
    expect_refused(&server, unsigned, Code::Unauthenticated, "no signatures").await;

    let mut tampered = envelope(&key(1), 3);
    tampered.payload = statement("payments-api", SHA, 4);
    expect_refused(
        &server,
        tampered,
        Code::PermissionDenied,
        "registered signer key",
    )
    .await;

    let mut crowded = envelope(&key(1), 6);
    crowded.signatures = vec![crowded.signatures[0].clone(); 9];
    expect_refused(&server, crowded, Code::InvalidArgument, "at most 8").await;

    let mut garbage_sig = envelope(&key(1), 5);
    garbage_sig.signatures = vec![Signature {
        sig: vec![1, 2, 3],
        keyid: "x".into(),
    }];
    expect_refused(
        &server,
        garbage_sig,
        Code::PermissionDenied,
        "registered signer key",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_envelope_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut raw = evident_proto::v1::ledger_client::LedgerClient::connect(server.url.clone())
        .await
        .unwrap();
    let status = raw
        .submit(evident_proto::v1::SubmitRequest {
            envelope: None,
            sigstore_bundle: Vec::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("no envelope"),
        "{}",
        status.message()
    );
    assert_eq!(server.size().await, 1, "only the registry entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_outside_the_log_are_refused_with_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    client.submit(&envelope(&key(1), 0)).await.unwrap();
    let code = |e: ClientError| match e {
        ClientError::Status { code, message, .. } => {
            assert!(!message.is_empty());
            code
        }
        other => panic!("expected a status, got {other}"),
    };
    assert_eq!(
        code(client.entry(Selector::Index(2), None).await.unwrap_err()),
        Code::NotFound
    );
    assert_eq!(
        code(
            client
                .entry(Selector::LeafHash(evident_core::Hash([5; 32])), None)
                .await
                .unwrap_err()
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            client
                .inclusion_proof(Selector::Index(0), 3)
                .await
                .unwrap_err()
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(client.consistency_proof(0, 1).await.unwrap_err()),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(client.consistency_proof(1, 9).await.unwrap_err()),
        Code::FailedPrecondition
    );
}

#[test]
fn the_cli_refuses_bad_base64_naming_the_field_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let config = write_config(d, &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&envelope(&key(1), 0).to_json()).unwrap();
    json["signatures"][0]["sig"] = "%%%not-base64%%%".into();
    std::fs::write(d.join("bad.json"), json.to_string()).unwrap();
    std::fs::write(d.join("good.json"), envelope(&key(1), 1).to_json()).unwrap();
    let out = cli(d, Some(&server), &["submit", "good.json", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("signatures[0].sig"),
        "{}",
        stderr(&out)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        rt.block_on(server.size()),
        1,
        "nothing is sent when one file is bad"
    );

    std::fs::write(d.join("notdsse.json"), "{\"hello\": 1}").unwrap();
    let out = cli(d, Some(&server), &["submit", "notdsse.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not valid DSSE JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_config_with_an_unknown_field_fails_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "max_envelope_byte = 10");
    let err = Server::start(&config, &data).unwrap_err();
    assert!(err.contains("max_envelope_byte"), "{err}");
}

/// The `google.rpc.ErrorInfo` of a refusal: its reason, domain and metadata.
fn error_info(
    status: &tonic::Status,
) -> (String, String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt as _;
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    (
        info.reason.clone(),
        info.domain.clone(),
        info.metadata.clone(),
    )
}

fn to_proto(envelope: &Envelope) -> evident_proto::v1::Envelope {
    evident_proto::v1::Envelope {
        payload: envelope.payload.clone(),
        payload_type: envelope.payload_type.clone(),
        signatures: envelope
            .signatures
            .iter()
            .map(|s| evident_proto::v1::Signature {
                sig: s.sig.clone(),
                keyid: s.keyid.clone(),
            })
            .collect(),
        sigstore_material: envelope.sigstore.clone().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_a_machine_readable_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "max_envelope_bytes = 4096");
    let server = Server::start(&config, &data).unwrap();
    let url = server.url.clone();
    let submit = async |envelope: &Envelope| {
        evident_proto::v1::ledger_client::LedgerClient::connect(url.clone())
            .await
            .unwrap()
            .submit(evident_proto::v1::SubmitRequest {
                envelope: Some(to_proto(envelope)),
                sigstore_bundle: Vec::new(),
                ..Default::default()
            })
            .await
            .unwrap_err()
    };
    // Signed by a key the registry does not know.
    let status = submit(&envelope(&key(9), 1)).await;
    assert_eq!(status.code(), Code::PermissionDenied);
    let (reason, domain, metadata) = error_info(&status);
    assert_eq!(
        (reason.as_str(), domain.as_str()),
        ("UNKNOWN_KEY", "evident.dev")
    );
    assert!(metadata.contains_key("keyid_hints"), "{metadata:?}");
    // Not signed at all.
    let mut unsigned = envelope(&key(1), 2);
    unsigned.signatures.clear();
    let status = submit(&unsigned).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_info(&status).0, "NO_SIGNATURES");
    // Larger than the server takes.
    let big = signed(
        IN_TOTO_PAYLOAD_TYPE,
        statement("x".repeat(5000).as_str(), SHA, 3),
    );
    let status = submit(&big).await;
    assert_eq!(status.code(), Code::ResourceExhausted);
    let (reason, _, metadata) = error_info(&status);
    assert_eq!(reason, "TOO_LARGE");
    assert_eq!(metadata["limit"], "max_envelope_bytes");
    // The message is still the explanation a person reads; the log is unchanged.
    assert!(
        status.message().contains("max_envelope_bytes"),
        "{}",
        status.message()
    );
    assert_eq!(server.size().await, 1, "only the registry entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_exposes_the_reason_alone_and_in_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let mut client = server.client().await;
    let reason_of = |error: &ClientError| match error {
        ClientError::Status { reason, .. } => reason.clone(),
        other => panic!("not a refusal: {other}"),
    };
    let alone = client.submit(&envelope(&key(9), 1)).await.unwrap_err();
    assert_eq!(reason_of(&alone).as_deref(), Some("UNKNOWN_KEY"));
    // In a batch, each envelope's refusal carries its own reason; the others are appended.
    let answers = client
        .submit_batch(&[envelope(&key(1), 2), envelope(&key(9), 3)])
        .await
        .unwrap();
    assert!(answers[0].is_ok());
    let refused = answers[1].as_ref().unwrap_err();
    assert_eq!(reason_of(refused).as_deref(), Some("UNKNOWN_KEY"));
    // A refusal with nothing machine-readable to say has no reason.
    let mut bad = envelope(&key(1), 4);
    bad.payload_type = String::new();
    let plain = client.submit(&bad).await.unwrap_err();
    assert_eq!(reason_of(&plain), None);
    assert_eq!(
        server.size().await,
        2,
        "the registry entry and the one good envelope"
    );
}

/// A key id longer than a leaf record can hold (possible only when `max_envelope_bytes`
/// is raised above 64 KiB): the envelope is refused on submit, and the server goes on
/// taking entries — it never reaches the sequencer, which would stop on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_id_too_long_for_a_leaf_record_is_refused_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "max_envelope_bytes = 262144");
    let server = Server::start(&config, &data).unwrap();
    let mut padded = envelope(&key(1), 1);
    padded.signatures.push(Signature {
        sig: vec![7; 64],
        keyid: "k".repeat(70_000),
    });
    expect_refused(
        &server,
        padded,
        Code::InvalidArgument,
        "the envelope cannot be logged: signature keyid",
    )
    .await;
    let (receipt, _) = server
        .client()
        .await
        .submit(&envelope(&key(1), 2))
        .await
        .unwrap();
    assert_eq!(receipt.index + 1, server.size().await);
}
