//! The unauthenticated flood: starts a real `evidentd` with a client configured (so every
//! request needs credentials), opens `--connections` connections without credentials and
//! keeps `--streams` large `Submit` calls in flight on each for `--seconds`, and prints the
//! server's resident memory (VmRSS from /proc/PID/status) before, at its peak during, at
//! the end of, and two seconds after the flood. Linux only.
//!
//! By default each call sends all of its message but its last byte and then holds the
//! stream open until the flood ends (a slow body); `--complete` sends whole messages in a
//! loop instead.
//!
//! ```sh
//! cargo build --release -p evident-server -p evident-benches
//! target/release/flood --evidentd target/release/evidentd
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use evident_benches::{Started, start_evidentd};
use evident_proto::v1 as pb;

#[derive(Debug, Parser)]
#[command(about = "Unauthenticated flood against evidentd; reports the server's memory")]
struct Args {
    /// The evidentd binary to start.
    #[arg(long, default_value = "target/release/evidentd")]
    evidentd: PathBuf,
    /// Connections opened without credentials.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Calls kept in flight on each connection.
    #[arg(long, default_value_t = 256)]
    streams: usize,
    /// Size of each call's envelope payload, in KiB (under the server's message limit, so
    /// that a server that reads bodies first reads all of it).
    #[arg(long, default_value_t = 120)]
    body_kib: usize,
    /// How long the flood lasts.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Send whole messages in a loop instead of holding one unfinished body per stream.
    #[arg(long)]
    complete: bool,
}

fn start_server(evidentd: &std::path::Path) -> anyhow::Result<Started> {
    // One client, known by a token nobody in this run has: every call is unauthenticated.
    let settings = format!(
        "[tls]\nplaintext = true\n\n[[token]]\nname = \"ci\"\nsha256 = \"{}\"\nroles = [\"submitter\"]\n",
        "00".repeat(32)
    );
    start_evidentd(evidentd, &settings, "error", true)
}

/// One `Submit` call without credentials that sends all of a `message_len`-byte message
/// but its last byte, and holds the stream open until `deadline`. True when the server
/// answered before the body ended.
async fn hold(
    mut channel: tonic::transport::Channel,
    url: &str,
    message_len: usize,
    deadline: Instant,
) -> anyhow::Result<bool> {
    use tonic::client::GrpcService as _;
    type Frames = Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>;
    let (frames, rx) = tokio::sync::mpsc::channel::<Frames>(1);
    let mut first = vec![0u8];
    first.extend_from_slice(&u32::try_from(message_len)?.to_be_bytes());
    first.resize(5 + message_len - 1, b'x');
    frames
        .send(Ok(http_body::Frame::data(first.into())))
        .await
        .map_err(|_| anyhow::anyhow!("the body was dropped"))?;
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let request = http::Request::post(format!("{url}/evident.v1.Ledger/Submit"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)?;
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
    let answer = channel.call(request);
    let answered = tokio::time::timeout_at(deadline.into(), answer)
        .await
        .is_ok();
    tokio::time::sleep_until(deadline.into()).await;
    drop(frames);
    Ok(answered)
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = start_server(&args.evidentd)?;
    let pid = server.pid();
    // Let the start-up finish (store opened, ledger serving).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;

    let request = pb::SubmitRequest {
        envelope: Some(pb::Envelope {
            payload: vec![b'x'; args.body_kib * 1024],
            payload_type: "application/vnd.in-toto+json".into(),
            signatures: vec![pb::Signature {
                keyid: String::new(),
                sig: vec![0; 64],
            }],
            sigstore_material: Vec::new(),
        }),
        sigstore_bundle: Vec::new(),
        wait_for_witnesses: false,
    };
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let channel = tonic::transport::Endpoint::from_shared(server.url.clone())?
            .connect()
            .await
            .context("connecting")?;
        if !args.complete {
            for _ in 0..args.streams {
                let (answered, failed) = (answered.clone(), failed.clone());
                let url = server.url.clone();
                let channel = channel.clone();
                let message_len = args.body_kib * 1024;
                tasks.push(tokio::spawn(async move {
                    match hold(channel, &url, message_len, deadline).await {
                        Ok(true) => answered.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }));
            }
            continue;
        }
        for _ in 0..args.streams {
            let mut client = pb::ledger_client::LedgerClient::new(channel.clone())
                .max_encoding_message_size(usize::MAX);
            let request = request.clone();
            let (answered, failed) = (answered.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    match client.submit(request.clone()).await {
                        Err(status) if status.code() != tonic::Code::Unknown => {
                            answered.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    let mut peak = before;
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid)?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.await.context("a flood task")?;
    }
    let end = rss_kib(pid)?;
    peak = peak.max(end);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    println!(
        "flood ({}): {} connections x {} streams, {} KiB bodies, {} s: {} refusals answered, \
         {} calls unanswered or failed otherwise",
        if args.complete {
            "whole messages"
        } else {
            "held bodies"
        },
        args.connections,
        args.streams,
        args.body_kib,
        args.seconds,
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "evidentd RSS: before {}, peak during {}, at the end {}, 2 s later {}",
        mib(before),
        mib(peak),
        mib(end),
        mib(after)
    );
    Ok(())
}
