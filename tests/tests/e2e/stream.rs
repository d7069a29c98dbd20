//! SubmitBatch and SubmitStream: many envelopes per call, each answered as `Submit` would
//! answer it alone; the bounds on envelopes per request, unanswered envelopes and idle
//! streams; credentials before the body; `evident submit FILE…`.

use std::path::Path;
use std::time::Duration;

use evident_client::{Client, ClientError, Credentials, SubmitAnswer};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::registry::{Change, sign_change};
use evident_proto::v1 as pb;
use evident_tests::{
    ADMIN, Server, cli, envelope, evidentd_bin, half_sent_call, key, public, stderr, stdout,
    write_config,
};
use tonic::Code;

const SHA: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";

/// A plaintext loopback server with signer 1 registered and no clients configured.
fn open_server(dir: &Path, extra: &str) -> Server {
    let data = dir.join("data");
    let config = write_config(dir, &data, &[1], extra);
    Server::start(&config, &data).unwrap()
}

/// A token for `role` from `evidentd token`: (the token, its `[[token]]` entry).
fn new_token(name: &str, role: &str) -> (String, String) {
    let out = std::process::Command::new(evidentd_bin())
        .args(["token", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text
        .lines()
        .find_map(|l| l.split(": ").nth(1).filter(|t| t.starts_with("evt_")))
        .expect("the token is printed")
        .to_owned();
    let entry = text[text.find("[[token]]").unwrap()..].to_owned();
    (token, entry)
}

/// A server with an admin token and a submitter token (the submitter also audits), signer
/// 1 registered with the admin token, and `max_envelope_bytes` set. Returns the server and
/// the (admin, submitter) tokens.
fn guarded(dir: &Path, max_envelope_bytes: usize) -> (Server, String, String) {
    let (admin, admin_entry) = new_token("admins", "admin");
    let (submitter, submitter_entry) = new_token("ci", "submitter");
    let submitter_entry = submitter_entry.replace(
        "roles = [\"submitter\"]",
        "roles = [\"submitter\", \"auditor\"]",
    );
    let data = dir.join("data");
    let extra =
        format!("max_envelope_bytes = {max_envelope_bytes}\n\n{admin_entry}\n{submitter_entry}\n");
    let config = write_config(dir, &data, &[], &extra);
    let server = Server::start(&config, &data).unwrap();
    let out = cli(
        dir,
        Some(&server),
        &[
            "signer",
            "add",
            "--identity",
            "signer-1@test",
            "--public-key",
            &public(1).to_hex(),
            "--role",
            "ci",
            "--predicate-type",
            "*",
            "--admin-key",
            "admin.key",
            "--token",
            &admin,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    (server, admin, submitter)
}

async fn client_with(server: &Server, token: Option<&str>) -> Client {
    let credentials = Credentials {
        token: token.map(str::to_owned),
        ..Credentials::default()
    };
    Client::connect_with(&server.url, &credentials)
        .await
        .unwrap()
}

/// The tree size, from a checkpoint verified under the log key.
async fn size_with(server: &Server, token: Option<&str>) -> u64 {
    let note = client_with(server, token).await.checkpoint().await.unwrap();
    evident_core::note::Checkpoint::verify(&note, &server.log_key)
        .unwrap()
        .size
}

/// The receipt of an answer, verified under the log key; with its duplicate flag.
fn verified(server: &Server, answer: SubmitAnswer) -> (u64, bool) {
    let (receipt, duplicate) = answer.unwrap();
    receipt.verify(&server.log_key).unwrap();
    (receipt.index, duplicate)
}

/// The code and message of a refused answer.
fn refusal<T: std::fmt::Debug>(answer: Result<T, ClientError>) -> (Code, String) {
    match answer {
        Err(ClientError::Status { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// An attestation by key 1 whose encoded envelope is about `bytes` long.
fn attestation_of_about(bytes: usize) -> Envelope {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": SHA}}],
        "predicateType": "https://example.com/p",
        "predicate": {"blob": "x".repeat(bytes.saturating_sub(400))}
    });
    Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&statement).unwrap(),
        &[&key(1)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_valid_envelopes_gets_a_verifying_receipt_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    let before = server.size().await;
    let envelopes: Vec<Envelope> = (0..100).map(|n| envelope(&key(1), n)).collect();
    let answers = server
        .client()
        .await
        .submit_batch(&envelopes)
        .await
        .unwrap();
    assert_eq!(answers.len(), 100);
    let mut indexes: Vec<u64> = answers
        .into_iter()
        .map(|answer| {
            let (index, duplicate) = verified(&server, answer);
            assert!(!duplicate);
            index
        })
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 100, "one entry each");
    assert_eq!(server.size().await, before + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_answers_each_envelope_as_submit_would_and_appends_only_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin, submitter) = guarded(dir.path(), 8192);
    let mut client = client_with(&server, Some(&submitter)).await;

    let mut bad_signature = envelope(&key(1), 2);
    bad_signature.signatures[0].sig[5] ^= 0x40;
    let unknown_key = envelope(&key(7), 3);
    let malformed = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{not json".to_vec(), &[&key(1)]);
    let oversize = attestation_of_about(8600);
    assert!(evident_core::record::encoded_envelope_len(&oversize) > 8192);
    let admin_entry = sign_change(
        &Change::AddSigner {
            identity: "signer-9@test".into(),
            public_key: Some(public(9).to_hex()),
            roles: vec!["ci".into()],
            predicate_types: vec!["*".into()],
            not_before: None,
            not_after: None,
            certificate: None,
        },
        &[&key(ADMIN)],
    );
    let bad = [
        (
            bad_signature,
            Code::PermissionDenied,
            "no signature verifies",
        ),
        (unknown_key, Code::PermissionDenied, "no signature verifies"),
        (
            malformed,
            Code::InvalidArgument,
            "not an in-toto Statement v1",
        ),
        (oversize, Code::ResourceExhausted, "max_envelope_bytes"),
        (admin_entry, Code::PermissionDenied, "needs the admin role"),
    ];
    // What Submit answers for each alone (and appends nothing).
    let before = size_with(&server, Some(&submitter)).await;
    let mut alone = Vec::new();
    for (envelope, code, says) in &bad {
        let (got, message) = refusal(client.submit(envelope).await);
        assert_eq!(got, *code, "{message}");
        assert!(message.contains(says), "{message:?} should say {says:?}");
        alone.push((got, message));
    }
    assert_eq!(size_with(&server, Some(&submitter)).await, before);

    // The batch: a good envelope first and last, the bad ones between.
    let mut batch = vec![envelope(&key(1), 1)];
    batch.extend(bad.iter().map(|(e, _, _)| e.clone()));
    batch.push(envelope(&key(1), 4));
    let mut answers = client.submit_batch(&batch).await.unwrap().into_iter();
    let (first, _) = verified(&server, answers.next().unwrap());
    for expected in &alone {
        assert_eq!(&refusal(answers.next().unwrap()), expected);
    }
    let (last, _) = verified(&server, answers.next().unwrap());
    assert!(answers.next().is_none());
    assert_ne!(first, last);
    assert_eq!(
        size_with(&server, Some(&submitter)).await,
        before + 2,
        "exactly the good envelopes are appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_envelope_of_a_batch_needs_its_own_role() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin, submitter) = guarded(dir.path(), 65536);
    let before = size_with(&server, Some(&submitter)).await;
    let change = sign_change(
        &Change::AddSigner {
            identity: "signer-9@test".into(),
            public_key: Some(public(9).to_hex()),
            roles: vec!["ci".into()],
            predicate_types: vec!["*".into()],
            not_before: None,
            not_after: None,
            certificate: None,
        },
        &[&key(ADMIN)],
    );
    let attestation = envelope(&key(1), 5);
    // The admin token (no submitter role): its registry change is appended, its
    // attestation refused as Submit would refuse it.
    let mut client = client_with(&server, Some(&admin)).await;
    let alone = refusal(client.submit(&attestation).await);
    assert_eq!(alone.0, Code::PermissionDenied);
    assert!(alone.1.contains("needs the submitter role"), "{alone:?}");
    let mut answers = client
        .submit_batch(&[attestation, change])
        .await
        .unwrap()
        .into_iter();
    assert_eq!(refusal(answers.next().unwrap()), alone);
    verified(&server, answers.next().unwrap());
    assert_eq!(size_with(&server, Some(&submitter)).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_in_one_batch_get_one_entry_and_duplicate_flags() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    let before = server.size().await;
    let same = envelope(&key(1), 42);
    let other = envelope(&key(1), 43);
    let batch = vec![same.clone(), other, same.clone(), same];
    let answers: Vec<(u64, bool)> = server
        .client()
        .await
        .submit_batch(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(|a| verified(&server, a))
        .collect();
    let copies: Vec<&(u64, bool)> = [0, 2, 3].iter().map(|&i| &answers[i]).collect();
    assert!(
        copies.iter().all(|(index, _)| *index == copies[0].0),
        "{answers:?}"
    );
    assert_eq!(
        copies.iter().filter(|(_, duplicate)| !duplicate).count(),
        1,
        "one copy is the new entry, the others duplicates: {answers:?}"
    );
    assert_ne!(answers[1].0, copies[0].0);
    assert_eq!(server.size().await, before + 2);
    // A later batch of the same is all duplicates.
    let again = server
        .client()
        .await
        .submit_batch(&[envelope(&key(1), 42)])
        .await
        .unwrap();
    let (index, duplicate) = verified(&server, again.into_iter().next().unwrap());
    assert_eq!((index, duplicate), (copies[0].0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answers_every_envelope_in_order_with_verifying_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    let before = server.size().await;
    let count = 600u64;
    // One unknown-key envelope among them fails alone.
    let envelopes: Vec<Envelope> = (0..count)
        .map(|n| envelope(&key(if n == 300 { 7 } else { 1 }), n))
        .collect();
    let mut client = server.client().await;
    let mut answers = client
        .submit_stream(tokio_stream::iter(envelopes), 16)
        .await
        .unwrap();
    let mut next = 0;
    while let Some(answer) = answers.next().await {
        let (sequence, answer) = answer.unwrap();
        assert_eq!(sequence, next, "answers come in the order sent");
        if sequence == 300 {
            assert_eq!(refusal(answer).0, Code::PermissionDenied);
        } else {
            verified(&server, answer);
        }
        next += 1;
    }
    assert_eq!(next, count, "every envelope is answered");
    assert_eq!(server.size().await, before + count - 1);
}

/// A raw SubmitStream call with these messages (the client library splits messages
/// itself), then the stream kept open until `hold` is dropped.
async fn raw_stream(
    server: &Server,
    messages: Vec<pb::SubmitStreamRequest>,
) -> (
    tonic::Streaming<pb::SubmitStreamResponse>,
    tokio::sync::mpsc::Sender<pb::SubmitStreamRequest>,
) {
    let mut raw = pb::ledger_client::LedgerClient::connect(server.url.clone())
        .await
        .unwrap();
    let (hold, rx) = tokio::sync::mpsc::channel(8);
    for message in messages {
        hold.send(message).await.unwrap();
    }
    let answers = raw
        .submit_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (answers, hold)
}

fn to_proto(envelope: &Envelope) -> pb::Envelope {
    pb::Envelope {
        payload: envelope.payload.clone(),
        payload_type: envelope.payload_type.clone(),
        signatures: envelope
            .signatures
            .iter()
            .map(|s| pb::Signature {
                sig: s.sig.clone(),
                keyid: s.keyid.clone(),
            })
            .collect(),
        sigstore_material: envelope.sigstore.clone().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_envelopes_in_one_request_are_refused_whole_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    let before = server.size().await;
    let envelopes: Vec<Envelope> = (0..257).map(|n| envelope(&key(1), n)).collect();
    let (code, message) = refusal(server.client().await.submit_batch(&envelopes).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(
        message.contains("257 envelopes, at most 256"),
        "{message:?}"
    );
    assert_eq!(server.size().await, before);

    // In a stream: the message is refused and ends the stream.
    let message = pb::SubmitStreamRequest {
        sequence: 0,
        envelopes: envelopes.iter().map(to_proto).collect(),
    };
    let (mut answers, _hold) = raw_stream(&server, vec![message]).await;
    let refused = answers.message().await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("at most 256"), "{refused:?}");
    assert_eq!(server.size().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_message_over_the_size_limit_is_refused_and_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    let before = server.size().await;
    let first = pb::SubmitStreamRequest {
        sequence: 0,
        envelopes: vec![to_proto(&envelope(&key(1), 1))],
    };
    // 70 envelopes of 60 KiB: each within max_envelope_bytes, the message over 4 MiB.
    let big = attestation_of_about(60 * 1024);
    let second = pb::SubmitStreamRequest {
        sequence: 1,
        envelopes: vec![to_proto(&big); 70],
    };
    let (mut answers, _hold) = raw_stream(&server, vec![first, second]).await;
    let mut refused = None;
    let mut receipts = 0;
    while refused.is_none() {
        match answers.message().await {
            Ok(Some(answer)) => {
                assert_eq!(answer.sequence, 0);
                receipts += 1;
            }
            Ok(None) => break,
            Err(status) => refused = Some(status),
        }
    }
    let refused = refused.expect("the stream ends with a refusal");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("batch message"), "{refused:?}");
    assert!(receipts <= 1);
    assert!(
        server.size().await <= before + 1,
        "nothing of the oversize message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_is_cut_off_after_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "[limits]\nrequest_timeout_ms = 1000\n");
    let first = pb::SubmitStreamRequest {
        sequence: 10,
        envelopes: vec![to_proto(&envelope(&key(1), 1))],
    };
    // One message answered, then nothing sent while the stream stays open.
    let (mut answers, hold) = raw_stream(&server, vec![first]).await;
    let answer = answers.message().await.unwrap().unwrap();
    assert_eq!(answer.sequence, 10);
    assert!(matches!(
        answer.result.and_then(|r| r.result),
        Some(pb::submit_result::Result::Receipt(_))
    ));
    let ended = tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .expect("the server ends an idle stream")
        .unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    assert!(
        ended.message().contains("limits.request_timeout_ms"),
        "{ended:?}"
    );
    drop(hold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_stream_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin, submitter) = guarded(dir.path(), 65536);
    let before = size_with(&server, Some(&submitter)).await;

    // Without credentials, a stream whose first message announces 60 KiB and sends 16 KiB
    // of it, then nothing: a server that read the body first would never answer.
    let (status, frames) = half_sent_call(&server.url, "SubmitStream").await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("no credentials"), "{status:?}");
    drop(frames);

    // Through the client library: the stream and the batch are refused as a whole.
    let mut anonymous = client_with(&server, None).await;
    let refused = match anonymous
        .submit_stream(tokio_stream::iter(vec![envelope(&key(1), 1)]), 8)
        .await
    {
        Ok(mut answers) => answers.next().await.unwrap().unwrap_err(),
        Err(refused) => refused,
    };
    assert!(
        matches!(
            refused,
            ClientError::Status {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{refused:?}"
    );
    let refused = anonymous
        .submit_batch(&[envelope(&key(1), 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Status {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(size_with(&server, Some(&submitter)).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_envelope_of_a_batch_counts_against_the_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(
        dir.path(),
        "[limits]\nrate_per_client = 0.001\nburst_per_client = 30\n",
    );
    let before = server.size().await;
    let envelopes: Vec<Envelope> = (0..40).map(|n| envelope(&key(1), n)).collect();
    let answers = server
        .client()
        .await
        .submit_batch(&envelopes)
        .await
        .unwrap();
    let mut appended = 0;
    let mut limited = 0;
    for answer in answers {
        match answer {
            Ok(_) => appended += 1,
            Err(ClientError::Status { code, message, .. }) => {
                assert_eq!(code, Code::ResourceExhausted, "{message}");
                assert!(message.contains("limits.rate_per_client"), "{message}");
                limited += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    // The registration and the checkpoint read took some of the 30 tokens.
    assert!(appended > 0 && appended < 30, "{appended} appended");
    assert_eq!(appended + limited, 40);
    // A restart refills the buckets: the log grew by exactly the envelopes admitted.
    let mut server = server;
    server.terminate();
    let server = Server::start(&server.config, &server.data_dir).unwrap();
    assert_eq!(server.size().await, before + appended);
}

#[test]
fn the_cli_submits_many_files_and_prints_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = open_server(d, "");
    std::fs::write(d.join("a.json"), envelope(&key(1), 1).to_json()).unwrap();
    std::fs::write(d.join("b.json"), envelope(&key(1), 2).to_json()).unwrap();
    std::fs::write(d.join("bad.json"), envelope(&key(7), 3).to_json()).unwrap();

    let out = cli(d, Some(&server), &["submit", "a.json", "b.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("a.json: entry "), "{text}");
    assert!(lines[1].starts_with("b.json: entry "), "{text}");
    assert!(lines.iter().all(|l| l.ends_with(", verified")), "{text}");
    assert!(d.join("a.json.receipt.json").exists());
    assert!(d.join("b.json.receipt.json").exists());

    // One bad file: every file still gets its line, and the command fails.
    std::fs::write(d.join("c.json"), envelope(&key(1), 4).to_json()).unwrap();
    let out = cli(
        d,
        Some(&server),
        &["submit", "bad.json", "c.json", "a.json"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("bad.json: failed: "), "{text}");
    assert!(lines[0].contains("PermissionDenied"), "{text}");
    assert!(lines[1].starts_with("c.json: entry "), "{text}");
    assert!(lines[2].contains("(already in the log)"), "{text}");
    assert!(
        stderr(&out).contains("1 of 3 envelopes failed"),
        "{}",
        stderr(&out)
    );

    // One file behaves as before: its error is the command's.
    let out = cli(d, Some(&server), &["submit", "bad.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("submitting bad.json"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_message_without_envelopes_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    let before = server.size().await;
    let good = pb::SubmitStreamRequest {
        sequence: 0,
        envelopes: vec![to_proto(&envelope(&key(1), 1))],
    };
    let empty = pb::SubmitStreamRequest {
        sequence: 1,
        envelopes: Vec::new(),
    };
    let (mut answers, _hold) = raw_stream(&server, vec![good, empty]).await;
    let mut receipts = 0;
    let refused = loop {
        match answers.message().await {
            Ok(Some(answer)) => {
                assert_eq!(answer.sequence, 0);
                receipts += 1;
            }
            Ok(None) => panic!("the stream ends with a refusal"),
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("carries no envelope"),
        "{refused:?}"
    );
    assert_eq!(receipts, 1, "the message before it is answered");
    assert_eq!(server.size().await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holds_at_most_sixteen_batch_or_stream_calls_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_server(dir.path(), "");
    // Sixteen streams held open, sending nothing.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(raw_stream(&server, Vec::new()).await);
    }
    let mut raw = pb::ledger_client::LedgerClient::connect(server.url.clone())
        .await
        .unwrap();
    let (_hold, rx) = tokio::sync::mpsc::channel(1);
    let refused = raw
        .submit_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("already has 16 SubmitBatch or SubmitStream calls open"),
        "{refused:?}"
    );
    // So is a batch, before its body is read.
    let refused = raw
        .submit_batch(pb::SubmitBatchRequest {
            envelopes: vec![to_proto(&envelope(&key(1), 7))],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Other calls are not held to it, and a closed stream frees its place.
    assert_eq!(server.size().await, 1);
    drop(held.pop());
    let mut client = server.client().await;
    let mut answers = None;
    for _ in 0..100 {
        match client.submit_batch(&[envelope(&key(1), 8)]).await {
            Ok(a) => {
                answers = Some(a);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let answers = answers.expect("a freed place is given to the next call");
    assert!(answers[0].is_ok(), "{answers:?}");
}
