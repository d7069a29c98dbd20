//! Denial of service at the front door: credentials checked before a body is read, one
//! size limit with one status, connection caps, the TLS handshake timeout, and the budget
//! of refused requests per peer with sampled log lines. Each attack fails and leaves the
//! log as it was.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use evident_client::{ClientError, Credentials};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_tests::{Server, evidentd_bin, half_sent_call, key, stderr, stdout, write_config};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;

const SHA: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";

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

/// A plaintext loopback server with clients configured (one token, submitter and auditor)
/// and `limits` (a `[limits]` table's lines). Returns the server and the token.
fn guarded(dir: &Path, limits: &str) -> (Server, String) {
    let (token, entry) = new_token("ci", "submitter");
    let entry = entry.replace(
        "roles = [\"submitter\"]",
        "roles = [\"submitter\", \"auditor\"]",
    );
    let data = dir.join("data");
    let extra = format!("[limits]\n{limits}\n\n{entry}\n");
    let config = write_config(dir, &data, &[], &extra);
    (Server::start(&config, &data).unwrap(), token)
}

/// The tree size, read with `token`.
async fn size(server: &Server, token: &str) -> u64 {
    let credentials = Credentials {
        token: Some(token.to_owned()),
        ..Credentials::default()
    };
    let mut client = evident_client::Client::connect_with(&server.url, &credentials)
        .await
        .unwrap();
    let note = client.checkpoint().await.unwrap();
    evident_core::note::Checkpoint::verify(&note, &server.log_key)
        .unwrap()
        .size
}

/// Waits up to `wait` for the peer to close `stream`: true when it did.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // The server may say something (an HTTP/2 SETTINGS frame) before it closes.
            Ok(Ok(_)) => continue,
        }
    }
}

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(server: &Server, from: &str) -> TcpStream {
    let to: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_submit_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = guarded(dir.path(), "");
    let before = size(&server, &token).await;

    // A Submit without credentials whose message announces 60 KiB (within every limit)
    // but sends 16 KiB and then nothing: a server that reads the body before checking
    // credentials never answers.
    let (status, frames) = half_sent_call(&server.url, "Submit").await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("no credentials"), "{status:?}");
    // Only now does the client give up on the body.
    drop(frames);
    assert_eq!(size(&server, &token).await, before, "the log is unchanged");
}

/// An attestation whose encoded envelope is about `bytes` long.
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
async fn oversize_envelopes_get_one_status_and_one_message_whatever_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let before = server.size().await;
    let advice = "-byte limit (max_envelope_bytes): reference large evidence (SBOM, SARIF) by \
                  digest in the predicate instead";
    // Just over the limit (the handler measures the envelope), well over it and far over
    // it (the front door refuses the request from its announced size).
    for bytes in [65_800, 70 * 1024, 200 * 1024] {
        let err = server
            .client()
            .await
            .submit(&attestation_of_about(bytes))
            .await
            .unwrap_err();
        let ClientError::Status { code, message, .. } = err else {
            panic!("{bytes} bytes: expected a refusal, got {err}");
        };
        assert_eq!(code, Code::ResourceExhausted, "{bytes} bytes: {message}");
        assert!(
            message.starts_with("envelope of "),
            "{bytes} bytes: {message}"
        );
        assert!(
            message.contains(&format!(" bytes is over the 65536{advice}")),
            "{bytes} bytes: {message}"
        );
    }
    assert_eq!(server.size().await, before, "the log is unchanged");
    // Within the limit still goes in.
    server
        .client()
        .await
        .submit(&attestation_of_about(60_000))
        .await
        .unwrap();
    assert_eq!(server.size().await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_closed_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = guarded(
        dir.path(),
        // Held connections send nothing: give them time before the handshake timeout.
        "max_connections = 4\nmax_connections_per_ip = 3\nhandshake_timeout_ms = 120000",
    );
    let credentials = Credentials {
        token: Some(token.clone()),
        ..Credentials::default()
    };
    // An authenticated client holds one connection from 127.0.0.1.
    let mut client = evident_client::Client::connect_with(&server.url, &credentials)
        .await
        .unwrap();
    client.checkpoint().await.unwrap();
    // Two more from 127.0.0.1 reach its cap of 3; the fourth is closed.
    let mut held = vec![
        connect_from(&server, "127.0.0.1").await,
        connect_from(&server, "127.0.0.1").await,
    ];
    let mut over_ip = connect_from(&server, "127.0.0.1").await;
    assert!(
        closed_within(&mut over_ip, Duration::from_secs(15)).await,
        "a connection over the per-address cap is closed"
    );
    // Another address still gets in, up to the total cap of 4.
    held.push(connect_from(&server, "127.0.0.2").await);
    let mut over_total = connect_from(&server, "127.0.0.3").await;
    assert!(
        closed_within(&mut over_total, Duration::from_secs(15)).await,
        "a connection over the total cap is closed"
    );
    for stream in &mut held {
        assert!(
            !closed_within(stream, Duration::from_millis(500)).await,
            "connections within the caps stay open"
        );
    }
    // The client already connected keeps working.
    let note = client.checkpoint().await.unwrap();
    assert!(note.contains("evident.test/log"), "{note}");
    // A closed connection frees its slot.
    drop(held.pop());
    let mut reopened = None;
    for _ in 0..50 {
        let mut stream = connect_from(&server, "127.0.0.3").await;
        if !closed_within(&mut stream, Duration::from_millis(300)).await {
            reopened = Some(stream);
            break;
        }
    }
    assert!(
        reopened.is_some(),
        "a freed slot is given to the next connection"
    );
    drop(held);
    drop(reopened);
    // Read through the connection already held: a new one could race the
    // server's noticing that the dropped ones closed, and be refused.
    let note = client.checkpoint().await.unwrap();
    let size = evident_core::note::Checkpoint::verify(&note, &server.log_key)
        .unwrap()
        .size;
    assert_eq!(size, 0, "the log is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_tls_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // TLS with a certificate the server makes; a one-second handshake timeout.
    let config = write_config(
        dir.path(),
        &data,
        &[],
        "[limits]\nhandshake_timeout_ms = 1000\n[tls]",
    );
    let server = Server::start(&config, &data).unwrap();
    // Connects and never sends a ClientHello.
    let mut silent = connect_from(&server, "127.0.0.1").await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(20)).await,
        "the server closes a connection that does not finish its handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_plaintext_connection_is_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &data,
        &[],
        "[limits]\nhandshake_timeout_ms = 1000",
    );
    let server = Server::start(&config, &data).unwrap();
    // Connects and never sends the HTTP/2 preface.
    let mut silent = connect_from(&server, "127.0.0.1").await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(20)).await,
        "the server closes a connection that sends nothing"
    );
    // A client that talks is served.
    server.client().await.checkpoint().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_requests_is_cut_off_and_logged_by_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = guarded(
        dir.path(),
        "refused_rate_per_ip = 1.0\nrefused_burst_per_ip = 20.0",
    );
    let lines_before = server.stderr().lines().count();
    // The flood comes from 127.0.0.2, without credentials.
    let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .local_address(Some("127.0.0.2".parse::<IpAddr>().unwrap()))
        .connect()
        .await
        .unwrap();
    let mut flood = evident_proto::v1::ledger_client::LedgerClient::new(channel);
    let (mut unauthenticated, mut exhausted) = (0, 0);
    let mut budget_message = String::new();
    for _ in 0..2_000 {
        let refused = flood
            .get_checkpoint(evident_proto::v1::GetCheckpointRequest::default())
            .await
            .unwrap_err();
        match refused.code() {
            Code::Unauthenticated => unauthenticated += 1,
            Code::ResourceExhausted => {
                exhausted += 1;
                budget_message = refused.message().to_owned();
            }
            other => panic!("unexpected {other:?}: {}", refused.message()),
        }
    }
    assert!(
        (20..100).contains(&unauthenticated),
        "the burst of 20 refusals, and about one a second after it: {unauthenticated}"
    );
    assert_eq!(unauthenticated + exhausted, 2_000);
    assert!(
        budget_message.contains("127.0.0.2 is over its budget of refused requests")
            && budget_message.contains("limits.refused_rate_per_ip"),
        "{budget_message}"
    );
    // Another address, with credentials, is served meanwhile.
    assert_eq!(size(&server, &token).await, 0, "the log is unchanged");
    let log = server.stderr();
    let added = log.lines().count() - lines_before;
    assert!(
        added < 20,
        "2,000 refusals must not write a line each: {added} lines\n{log}"
    );
    assert!(
        log.contains("unauthenticated request refused") && log.contains("127.0.0.2"),
        "the first refusal is logged with its peer: {log}"
    );
}
