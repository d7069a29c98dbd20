//! Auditor reads against the async workers: starts a real `evidentd` on a fresh data
//! folder, registers `--signers` signers (one registry entry each, signed by the genesis
//! administrator, submitted concurrently) and one policy version, then measures
//! `GetCheckpoint` latency for `--seconds` with no other load, and again while
//! `--auditors` concurrent auditors loop `ListSigners` as of an index, `ListSigners` as of
//! a time, and `GetPolicy` (each a registry replay on the server). Prints both
//! `GetCheckpoint` distributions and the auditor calls' own latencies.
//!
//! The as-of point covers the first `--as-of-entries` registry entries (default 1,983 of
//! 2,000: a server that replays from the genesis replays 1,983 entries, one that keeps a
//! snapshot every 64 registry entries replays 63, its worst case). The policy version
//! follows every registry entry, so `GetPolicy` replays the whole registry.
//!
//! ```sh
//! cargo build --release -p evident-server --bin evidentd
//! cargo build --release -p evident-benches --bin auditors
//! target/release/auditors --evidentd target/release/evidentd
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use evident_benches::{Started, start_evidentd};
use evident_core::dsse::Envelope;
use evident_core::policy::POLICY_PAYLOAD_TYPE;
use evident_core::registry::{Change, sign_change};
use evident_core::{PublicKey, SigningKey};

#[derive(Debug, Parser)]
#[command(about = "GetCheckpoint latency while auditors replay the registry")]
struct Args {
    /// The evidentd binary to start.
    #[arg(long, default_value = "target/release/evidentd")]
    evidentd: PathBuf,
    /// Signers registered (one registry entry each).
    #[arg(long, default_value_t = 2000)]
    signers: usize,
    /// Registry entries in flight while registering.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Registry entries the auditors' as-of point covers.
    #[arg(long, default_value_t = 1983)]
    as_of_entries: usize,
    /// Concurrent auditors in the second measurement.
    #[arg(long, default_value_t = 4)]
    auditors: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// RUST_LOG of the started server.
    #[arg(long, default_value = "warn")]
    server_log: String,
}

const ADMIN_SEED: u8 = 43;
const POLICY_NAME: &str = "auditors-bench";

const POLICY: &str = r#"name = "auditors-bench"
version = 1

[[control]]
id = "unit-tests"
predicate_type = "https://in-toto.io/attestation/test-result/v0.1"
signers = ["role:ci"]
"#;

fn start_server(args: &Args) -> anyhow::Result<Started> {
    // Settings every version of the server since the registry as-of reads knows; the
    // per-client limits lifted, so that the measurement is the server's.
    let settings = format!(
        "[genesis]\n[[genesis.admin]]\nidentity = \"admin@bench\"\npublic_key = \"{}\"\n\
         [tls]\nplaintext = true\n[limits]\nrate_per_client = 1e12\nburst_per_client = 1e12\n\
         rate_global = 1e12\nburst_global = 1e12\nmax_concurrent_per_client = 1000000\n",
        PublicKey::from_signing_key(&SigningKey::from_bytes(&[ADMIN_SEED; 32])).to_hex(),
    );
    start_evidentd(&args.evidentd, &settings, &args.server_log, false)
}

/// The registry entry adding signer `n`: its own key, role `ci`, any predicate type.
fn registration(admin: &SigningKey, n: usize) -> Envelope {
    let mut seed = [0xa5u8; 32];
    seed[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let change = Change::AddSigner {
        identity: format!("signer-{n:05}@bench"),
        public_key: Some(PublicKey::from_signing_key(&SigningKey::from_bytes(&seed)).to_hex()),
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
        certificate: None,
    };
    sign_change(&change, &[admin])
}

/// Submits `envelopes` with `concurrency` clients; returns each one's (index, integrated
/// time). The server is ready (serving) once a submission succeeds, so the first failures
/// of each client are retried for a while.
async fn submit_all(
    url: &str,
    envelopes: Vec<Envelope>,
    concurrency: usize,
) -> anyhow::Result<Vec<(u64, i64)>> {
    let envelopes = Arc::new(envelopes);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (envelopes, next, url) = (envelopes.clone(), next.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut client = evident_client::Client::connect(&url).await?;
            let mut done = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(envelope) = envelopes.get(n) else {
                    break;
                };
                let mut attempts = 0;
                let receipt = loop {
                    match client.submit(envelope).await {
                        Ok((receipt, _)) => break receipt,
                        Err(e) if attempts < 50 => {
                            attempts += 1;
                            if attempts == 1 {
                                eprintln!("submission {n}: {e}; retrying");
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => return Err(anyhow::anyhow!("submission {n}: {e}")),
                    }
                };
                done.push((receipt.index, receipt.integrated_time_nanos));
            }
            anyhow::Ok(done)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_unstable();
    Ok(all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(what: &str, mut latencies: Vec<Duration>, errors: usize, seconds: f64) {
    latencies.sort_unstable();
    println!(
        "| {what} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {errors} |",
        latencies.len(),
        latencies.len() as f64 / seconds,
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `GetCheckpoint` back to back on one connection until `deadline`.
async fn checkpoints(url: &str, deadline: Instant) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut client = evident_client::Client::connect(url).await?;
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let t = Instant::now();
        match client.checkpoint().await {
            Ok(_) => latencies.push(t.elapsed()),
            Err(_) => errors += 1,
        }
    }
    Ok((latencies, errors))
}

/// The three auditor calls, in the order an auditor loop makes them.
const CALLS: [&str; 3] = [
    "ListSigners as of index",
    "ListSigners as of time",
    "GetPolicy",
];

/// One auditor call of kind `call`; checks that the answer covers the as-of point.
async fn auditor_call(
    client: &mut evident_client::Client,
    call: usize,
    as_of_index: u64,
    as_of_time: i64,
    expected_signers: usize,
) -> anyhow::Result<()> {
    match call {
        0 => {
            let listing = client.list_signers(Some(as_of_index)).await?;
            ensure!(
                listing.signers.len() == expected_signers,
                "{} signers as of index {as_of_index}",
                listing.signers.len()
            );
        }
        1 => {
            let listing = client.list_signers_at(None, Some(as_of_time)).await?;
            ensure!(
                listing.signers.len() >= expected_signers,
                "{} signers as of time {as_of_time}",
                listing.signers.len()
            );
        }
        _ => {
            let policy = client.get_policy(POLICY_NAME, Some(1)).await?;
            ensure!(
                !policy.signed_by.is_empty(),
                "the policy has no administrator signature"
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=args.signers).contains(&args.as_of_entries),
        "--as-of-entries must be between 1 and --signers"
    );
    let server = start_server(&args)?;
    let url = server.url.clone();
    println!("server {} ({url})", args.evidentd.display());
    let admin = SigningKey::from_bytes(&[ADMIN_SEED; 32]);

    let begin = Instant::now();
    let registrations = (0..args.signers).map(|n| registration(&admin, n)).collect();
    let registry = submit_all(&url, registrations, args.concurrency).await?;
    ensure!(
        registry.len() == args.signers,
        "not every signer registered"
    );
    println!(
        "registered {} signers in {:.1} s ({} in flight)",
        registry.len(),
        begin.elapsed().as_secs_f64(),
        args.concurrency
    );
    let policy = Envelope::sign(POLICY_PAYLOAD_TYPE, POLICY.as_bytes().to_vec(), &[&admin]);
    let policy_index = submit_all(&url, vec![policy], 1).await?[0].0;
    let (last_index, as_of_time) = registry[args.as_of_entries - 1];
    let as_of_index = last_index + 1;
    println!(
        "policy {POLICY_NAME}@1 is entry {policy_index}; as of index {as_of_index} and as of \
         time {as_of_time} ({} registry entries)",
        args.as_of_entries
    );

    // First calls: a server that keeps snapshots fills them here.
    let mut client = evident_client::Client::connect(&url).await?;
    for (call, name) in CALLS.iter().enumerate() {
        let t = Instant::now();
        auditor_call(
            &mut client,
            call,
            as_of_index,
            as_of_time,
            args.as_of_entries,
        )
        .await?;
        println!("first {name}: {:.2} ms", ms(t.elapsed()));
    }

    let seconds = Duration::from_secs(args.seconds);
    println!("load average before: {}", load_average());
    println!("| call | calls | calls/s | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    let begin = Instant::now();
    let (quiet, quiet_errors) = checkpoints(&url, begin + seconds).await?;
    row(
        "GetCheckpoint, no other load",
        quiet,
        quiet_errors,
        begin.elapsed().as_secs_f64(),
    );

    let begin = Instant::now();
    let deadline = begin + seconds;
    let mut auditors = Vec::new();
    for _ in 0..args.auditors {
        let url = url.clone();
        let expected = args.as_of_entries;
        auditors.push(tokio::spawn(async move {
            let mut client = evident_client::Client::connect(&url).await?;
            let mut latencies: [Vec<Duration>; 3] = Default::default();
            let mut errors = [0usize; 3];
            'auditor: loop {
                for call in 0..CALLS.len() {
                    if Instant::now() >= deadline {
                        break 'auditor;
                    }
                    let t = Instant::now();
                    match auditor_call(&mut client, call, as_of_index, as_of_time, expected).await {
                        Ok(()) => latencies[call].push(t.elapsed()),
                        Err(e) => {
                            if errors[call] == 0 {
                                eprintln!("{}: {e}", CALLS[call]);
                            }
                            errors[call] += 1;
                        }
                    }
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let (loaded, loaded_errors) = checkpoints(&url, deadline).await?;
    let mut latencies: [Vec<Duration>; 3] = Default::default();
    let mut errors = [0usize; 3];
    for auditor in auditors {
        let (l, e) = auditor.await??;
        for call in 0..CALLS.len() {
            latencies[call].extend_from_slice(&l[call]);
            errors[call] += e[call];
        }
    }
    let elapsed = begin.elapsed().as_secs_f64();
    row(
        &format!("GetCheckpoint, {} auditors looping", args.auditors),
        loaded,
        loaded_errors,
        elapsed,
    );
    for (call, name) in CALLS.iter().enumerate() {
        row(
            &format!("{name} (auditors)"),
            std::mem::take(&mut latencies[call]),
            errors[call],
            elapsed,
        );
    }
    println!("load average after: {}", load_average());
    drop(server);
    Ok(())
}
