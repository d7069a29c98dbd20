//! The soak benchmark: a long ingest into one `evidentd`, its memory and disk recorded as
//! the log grows, then a restart timed until the server answers.
//!
//! Starts the release `evidentd` on a fresh data folder (plaintext, loopback), registers the
//! generator's key, and has `--clients` clients submit `--entries` attestations of about
//! 1.5 KiB with `SubmitBatch` (`--batch` envelopes per request, signed as they go). Every
//! `--every` entries it prints the server's resident memory (`VmRSS`), the data folder's
//! allocated bytes per entry, and the rate since the last line. At the end it stops the
//! server (SIGTERM, or SIGKILL with `--kill`), starts it again on the same folder, and
//! prints how long it took until `GetCheckpoint` answered (the start-up check), and the
//! memory after.
//!
//! ```sh
//! cargo build --release -p evident-server -p evident-benches --bins
//! target/release/soak --entries 2000000 --every 250000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use evident_benches::dir_size;
use evident_client::{Client, Credentials};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::registry::{Change, sign_change};
use evident_core::{PublicKey, SigningKey};

#[derive(Debug, Parser)]
#[command(about = "Long ingest into one evidentd: memory, disk and restart time")]
struct Args {
    /// The evidentd binary to start.
    #[arg(long, default_value = "target/release/evidentd")]
    evidentd: std::path::PathBuf,
    /// Attestations to submit.
    #[arg(long, default_value_t = 2_000_000)]
    entries: u64,
    /// Print a line every this many entries.
    #[arg(long, default_value_t = 250_000)]
    every: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Envelopes per SubmitBatch request.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Extra TOML for the server's config.
    #[arg(long, default_value = "")]
    server_config: String,
    /// Stop the server with SIGKILL, as a crash would, instead of SIGTERM: the restart then
    /// indexes what the indexes had not written yet.
    #[arg(long)]
    kill: bool,
}

const SEED: u8 = 42;
const ADMIN_SEED: u8 = 43;

/// A ~1.5 KiB signed in-toto Statement, unique per `n`.
fn envelope(key: &SigningKey, n: u64) -> Envelope {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("service-{}", n % 500), "digest": {
            "sha256": format!("{:064x}", n),
        }}],
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {
            "result": "PASSED",
            "configuration": [{"name": "ci.yaml", "digest": {"sha256": "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195"}}],
            "passedTests": (0..24).map(|i| format!("suite/test_case_{i:03}")).collect::<Vec<_>>(),
            "failedTests": [],
            "run": n,
        }
    });
    let payload = serde_json::to_vec(&statement).expect("JSON serializes");
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[key])
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn settings(extra: &str) -> String {
    format!(
        "{extra}\n[genesis]\n[[genesis.admin]]\nidentity = \"admin@bench\"\npublic_key = \"{}\"\n\
         [tls]\nplaintext = true\n\
         [limits]\nrate_per_client = 1e12\nburst_per_client = 1e12\nrate_global = 1e12\n\
         burst_global = 1e12\nmax_concurrent_per_client = 1000000\n",
        PublicKey::from_signing_key(&SigningKey::from_bytes(&[ADMIN_SEED; 32])).to_hex()
    )
}

async fn client_task(
    url: String,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    total: u64,
    batch: u64,
) -> anyhow::Result<u64> {
    let key = SigningKey::from_bytes(&[SEED; 32]);
    let mut client = Client::connect_with(&url, &Credentials::default()).await?;
    let mut errors = 0;
    loop {
        let start = next.fetch_add(batch, Ordering::Relaxed);
        if start >= total {
            return Ok(errors);
        }
        let envelopes: Vec<Envelope> = (start..(start + batch).min(total))
            .map(|n| envelope(&key, n))
            .collect();
        match client.submit_batch(&envelopes).await {
            Ok(answers) => {
                let ok = answers.iter().filter(|a| a.is_ok()).count() as u64;
                errors += answers.len() as u64 - ok;
                done.fetch_add(ok, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("a batch failed: {e}");
                errors += envelopes.len() as u64;
            }
        }
    }
}

/// Waits until the server answers `GetCheckpoint`; returns its tree size.
async fn answered(url: &str) -> u64 {
    loop {
        if let Ok(mut client) = Client::connect_with(url, &Credentials::default()).await {
            if let Ok(note) = client.checkpoint().await {
                return note
                    .lines()
                    .nth(1)
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut server = evident_benches::start_evidentd(
        &args.evidentd,
        &settings(&args.server_config),
        "warn",
        false,
    )?;
    let change = Change::AddSigner {
        identity: "soak@bench".into(),
        public_key: Some(
            PublicKey::from_signing_key(&SigningKey::from_bytes(&[SEED; 32])).to_hex(),
        ),
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
        certificate: None,
    };
    answered(&server.url).await;
    Client::connect_with(&server.url, &Credentials::default())
        .await?
        .submit(&sign_change(
            &change,
            &[&SigningKey::from_bytes(&[ADMIN_SEED; 32])],
        ))
        .await?;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            tokio::spawn(client_task(
                server.url.clone(),
                next.clone(),
                done.clone(),
                args.entries,
                args.batch as u64,
            ))
        })
        .collect();
    println!(
        "| entries | submissions/s since the last line | evidentd RSS MiB | data folder MiB | bytes per entry |"
    );
    println!("|---|---|---|---|---|");
    let began = Instant::now();
    let (mut mark, mut mark_time) = (0u64, Instant::now());
    let mut line = args.every;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = done.load(Ordering::Relaxed);
        if now >= line || tasks.iter().all(|t| t.is_finished()) {
            let bytes = dir_size(&server.data_dir());
            println!(
                "| {now} | {:.0} | {:.0} | {:.0} | {:.0} |",
                (now - mark) as f64 / mark_time.elapsed().as_secs_f64(),
                rss_kib(server.pid()) as f64 / 1024.0,
                bytes as f64 / (1 << 20) as f64,
                bytes as f64 / now.max(1) as f64
            );
            (mark, mark_time) = (now, Instant::now());
            while line <= now {
                line += args.every;
            }
        }
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await??;
    }
    let total = done.load(Ordering::Relaxed);
    println!(
        "{total} receipts in {:.0} s ({:.0}/s), {errors} errors",
        began.elapsed().as_secs_f64(),
        total as f64 / began.elapsed().as_secs_f64()
    );
    let stopped = Instant::now();
    let restarted = server.restart_after(args.kill)?;
    let size = answered(&server.url).await;
    let startup = restarted.elapsed();
    let rss = rss_kib(server.pid()) as f64 / 1024.0;
    println!(
        "restart: {} in {:.2} s; answering {:.2} s after its start, at {size} entries; RSS {rss:.0} MiB",
        if args.kill { "killed" } else { "stopped" },
        (restarted - stopped).as_secs_f64(),
        startup.as_secs_f64(),
    );
    println!(
        "soak entries={total} errors={errors} restart_s={:.2} rss_after_restart_mib={rss:.0} bytes/entry={:.0}",
        startup.as_secs_f64(),
        dir_size(&server.data_dir()) as f64 / size.max(1) as f64
    );
    Ok(())
}
