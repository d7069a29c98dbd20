//! Prometheus metrics on their own HTTP listener: what a scrape of the real server shows
//! after an accepted, a repeated and a refused submission, and that connections which
//! idle or stall cannot starve a scrape.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evident_client::ClientError;
use evident_tests::{Server, envelope, key, write_config};
use tonic::Code;

/// One request to the metrics listener: the status line, the headers and the body.
fn get(metrics_url: &str, path: &str) -> (String, String, String) {
    let addr = metrics_addr(metrics_url);
    let mut stream = TcpStream::connect(addr).unwrap();
    // A client that gives up rather than hang: the test fails instead of blocking.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Read to the end below, so ask the server to close after its answer.
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

/// The `host:port` of a metrics URL.
fn metrics_addr(metrics_url: &str) -> &str {
    metrics_url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected metrics URL {metrics_url}"))
}

/// Whether `name` is a valid metric or label name.
fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks the text exposition format and returns every series (`name{labels}` as written)
/// with its value. Panics on a line that is neither `# HELP`/`# TYPE` nor
/// `name{label="value",...} value`, or on a sample before its family's `# TYPE`.
fn parse(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut types = HashMap::new();
    let mut series = HashMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name, rest) = (words.next(), words.next(), words.next());
            let name = name.unwrap_or_else(|| panic!("comment without a name: {line:?}"));
            assert!(valid_name(name), "{line:?}");
            match kind {
                Some("HELP") => assert!(rest.is_some_and(|h| !h.is_empty()), "{line:?}"),
                Some("TYPE") => {
                    let kind = rest.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line:?}"
                    );
                    types.insert(name.to_owned(), kind.to_owned());
                }
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match key.split_once('{') {
            Some((name, labels)) => (
                name,
                Some(
                    labels
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line:?}")),
                ),
            ),
            None => (key, None),
        };
        assert!(valid_name(name), "{line:?}");
        if let Some(labels) = labels {
            // label="value" pairs; values here never hold a comma or an escaped quote.
            for pair in labels.split(',') {
                let (label, quoted) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("label without a value: {line:?}"));
                assert!(valid_name(label), "{line:?}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "unquoted label value: {line:?}"
                );
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before its # TYPE: {line:?}"
        );
        assert!(
            series.insert(key.to_owned(), value).is_none(),
            "repeated series {key}"
        );
    }
    series
}

fn value(series: &HashMap<String, f64>, key: &str) -> f64 {
    series.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_submissions_batches_and_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "metrics_listen = \"127.0.0.1:0\"");
    let server = Server::start(&config, &data).unwrap();
    let url = server
        .metrics_url
        .clone()
        .expect("evidentd prints `metrics on http://ADDR/metrics`");
    assert!(
        !url.ends_with(":0/metrics"),
        "the bound port is printed: {url}"
    );
    // Registering the signer at start already submitted a registry entry.
    let (_, _, before) = get(&url, "/metrics");
    let before = parse(&before);

    let appended = "evident_submissions_total{result=\"appended\",code=\"OK\"}";
    let duplicate = "evident_submissions_total{result=\"duplicate\",code=\"OK\"}";
    let denied = "evident_submissions_total{result=\"refused\",code=\"PERMISSION_DENIED\"}";
    let bad_signature = "evident_verification_failures_total{reason=\"signature\"}";

    let mut client = server.client().await;
    let accepted = envelope(&key(1), 1);
    let (_, repeated) = client.submit(&accepted).await.unwrap();
    assert!(!repeated);
    let (_, repeated) = client.submit(&accepted).await.unwrap();
    assert!(repeated);
    // Signed by a key the registry does not know.
    match client.submit(&envelope(&key(9), 2)).await.unwrap_err() {
        ClientError::Status { code, .. } => assert_eq!(code, Code::PermissionDenied),
        other => panic!("expected PERMISSION_DENIED, got {other}"),
    }

    let (status, headers, text) = get(&url, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let after = parse(&text);
    assert_eq!(
        value(&after, appended),
        value(&before, appended) + 1.0,
        "{text}"
    );
    assert_eq!(
        value(&after, duplicate),
        value(&before, duplicate) + 1.0,
        "{text}"
    );
    assert_eq!(value(&before, denied), 0.0);
    assert!(
        text.lines()
            .any(|l| l == format!("{denied} 1") || l == format!("{denied} 1.0")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("{appended} {}", value(&after, appended))),
        "{text}"
    );
    assert_eq!(
        value(&after, bad_signature),
        value(&before, bad_signature) + 1.0,
        "{text}"
    );
    for count in [
        "evident_batch_entries_count",
        "evident_batch_commit_seconds_count",
    ] {
        assert!(value(&after, count) >= 2.0, "{count} in\n{text}");
        assert!(value(&after, count) > value(&before, count), "{count}");
    }
    assert!(
        value(&after, "evident_fsync_seconds_count") >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(&after, "evident_batch_entries_bucket{le=\"+Inf\"}"),
        value(&after, "evident_batch_entries_count")
    );
    assert_eq!(
        value(&after, "evident_tree_size"),
        server.size().await as f64,
        "{text}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let signed = value(&after, "evident_checkpoint_timestamp_seconds");
    assert!(
        (now - signed).abs() < 300.0,
        "checkpoint signed at {signed}, now {now}"
    );
    assert!(
        after
            .iter()
            .any(|(k, v)| k.starts_with("evident_build_info{version=\"") && *v == 1.0),
        "{text}"
    );
    assert!(after.contains_key("evident_rate_limited_total"), "{text}");

    let (status, _, _) = get(&url, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

/// Reads until the server closes `stream` (end of stream or reset), failing after `limit`.
fn wait_closed(stream: &mut TcpStream, limit: Duration) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server kept the connection open: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_stalled_connections_do_not_starve_a_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "metrics_listen = \"127.0.0.1:0\"");
    let server = Server::start(&config, &data).unwrap();
    let url = server.metrics_url.clone().expect("metrics are configured");
    let addr = metrics_addr(&url);
    let size = server.size().await;

    // 64 connections that never send a byte, then 16 that send half a request head and
    // stall. Before, 32 such connections blocked every scrape for as long as they lasted.
    let mut idle: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut stalled: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: evident\r\n")
                .unwrap();
            stream
        })
        .collect();
    let stalled_since = Instant::now();

    let (status, _, text) = get(&url, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let series = parse(&text);
    assert_eq!(value(&series, "evident_tree_size"), size as f64, "{text}");
    // And again, while they are all still held.
    let (status, _, _) = get(&url, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");

    // A request head has 5 s to arrive: the stalled connections are closed then (not
    // before: they are the newest, so no newer connection displaced them), and so is every
    // idle one still open.
    for stream in &mut stalled {
        wait_closed(stream, Duration::from_secs(20));
    }
    assert!(
        stalled_since.elapsed() >= Duration::from_secs(4),
        "closed after {:?}",
        stalled_since.elapsed()
    );
    for stream in &mut idle {
        wait_closed(stream, Duration::from_secs(20));
    }
    // Serving metrics changed nothing in the log.
    assert_eq!(server.size().await, size);
}
