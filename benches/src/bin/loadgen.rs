//! The load generator: N concurrent clients submitting ~1 KiB attestations, signed in
//! advance, to a real `evidentd`; counts durable receipts and reports submissions/s and
//! latency percentiles for each concurrency level.
//!
//! Without `--server` it starts `evidentd` itself (from `--evidentd`, default
//! `target/release/evidentd`) on a fresh data folder that trusts the generator's key; with
//! `--tls` over TLS, with the certificate the server makes for itself.
//!
//! `--mode unary` sends one `Submit` per envelope; `--mode stream` keeps one `SubmitStream`
//! open per client and sends envelopes in messages of `--batch`. The last lines are one per
//! mode and client count: `mode=… clients=… tls=… submissions/s=… p50_ms=… p99_ms=…
//! errors=… bytes/entry=…`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use evident_benches::load::{
    Mode, bench_settings, percentile, register, sign_pool, stream_client, unary_client,
};
use evident_benches::{Started, dir_size, start_evidentd};
use evident_client::{Client, Credentials};

#[derive(Debug, Parser)]
#[command(about = "Load generator for evidentd")]
struct Args {
    /// An already running server where the key with seed byte 42 is a registered signer
    /// (else one is started, and the key registered by its genesis administrator).
    #[arg(long)]
    server: Option<String>,
    /// The evidentd binary to start.
    #[arg(long, default_value = "target/release/evidentd")]
    evidentd: PathBuf,
    /// Concurrency levels to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Envelopes signed in advance (each is submitted once).
    #[arg(long, default_value_t = 300_000)]
    envelopes: usize,
    /// RUST_LOG of the started server (`debug` logs every batch with its size and timings).
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// Extra TOML for the started server's config (e.g. "[batch]\nmax_entries = 2048").
    #[arg(long, default_value = "")]
    server_config: String,
    /// How clients submit, comma-separated: `unary` (one Submit per envelope) and/or
    /// `stream` (one SubmitStream per client, envelopes in messages of `--batch`).
    #[arg(long, value_delimiter = ',', default_value = "unary")]
    mode: Vec<Mode>,
    /// Envelopes per stream message (`--mode stream`), at most 256.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Over TLS: the started server makes its own certificate; `--server` then takes an
    /// https:// address and `--ca` the CA that signed its certificate.
    #[arg(long)]
    tls: bool,
    /// The CA of an already running TLS server (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
}

/// One measured level.
#[derive(Debug)]
struct Level {
    mode: Mode,
    clients: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

fn start_server(args: &Args) -> anyhow::Result<Started> {
    let settings = bench_settings(&args.server_config, args.tls);
    start_evidentd(&args.evidentd, &settings, &args.server_log, false)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=256).contains(&args.batch),
        "--batch must be 1 to 256 envelopes"
    );
    eprintln!("signing {} envelopes in advance…", args.envelopes);
    let pool = Arc::new(sign_pool(args.envelopes));
    let size_json = pool[0].to_json().len();
    let started = match &args.server {
        Some(_) => None,
        None => Some(start_server(&args)?),
    };
    let url = args
        .server
        .clone()
        .or_else(|| {
            started
                .as_ref()
                .map(|s| match (args.tls, s.url.rsplit_once(':')) {
                    // The made certificate names localhost and 127.0.0.1.
                    (true, Some((_, port))) => format!("https://127.0.0.1:{port}"),
                    _ => s.url.clone(),
                })
        })
        .expect("a server address");
    let ca = match (&args.ca, &started) {
        (Some(path), _) => Some(std::fs::read(path)?),
        (None, Some(started)) if args.tls => Some(std::fs::read(
            started.data_dir().join("tls").join("ca.pem"),
        )?),
        _ => None,
    };
    let credentials = Credentials {
        ca,
        ..Credentials::default()
    };
    if started.is_some() {
        register(&url, &credentials).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    println!(
        "envelope JSON size: {size_json} bytes; {} s per level; server {url}",
        args.seconds
    );
    let mut levels = Vec::new();
    for &mode in &args.mode {
        println!(
            "mode {}{}, tls {}:",
            mode.as_str(),
            if mode == Mode::Stream {
                format!(" ({} envelopes per message)", args.batch)
            } else {
                String::new()
            },
            args.tls
        );
        println!("| clients | receipts | submissions/s | p50 ms | p99 ms | max ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        for &clients in &args.clients {
            let deadline = Instant::now() + Duration::from_secs(args.seconds);
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let client = Client::connect_with(&url, &credentials).await?;
                let (pool, next) = (pool.clone(), next.clone());
                tasks.push(match mode {
                    Mode::Unary => tokio::spawn(unary_client(client, pool, next, deadline)),
                    Mode::Stream => {
                        tokio::spawn(stream_client(client, pool, next, deadline, args.batch))
                    }
                });
            }
            let begin = Instant::now();
            let mut all = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let outcome = t.await?;
                all.extend(outcome.latencies);
                errors += outcome.errors;
            }
            let elapsed = begin.elapsed().as_secs_f64();
            all.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let level = Level {
                mode,
                clients,
                rate: all.len() as f64 / elapsed,
                p50: percentile(&all, 50.0),
                p99: percentile(&all, 99.0),
                errors,
            };
            println!(
                "| {clients} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {errors} |",
                all.len(),
                level.rate,
                ms(level.p50),
                ms(level.p99),
                ms(all.last().copied().unwrap_or_default()),
            );
            levels.push(level);
            if next.load(Ordering::Relaxed) >= pool.len() {
                eprintln!("the pool of signed envelopes ran out: raise --envelopes");
            }
        }
    }
    let mut per_entry = None;
    if let Some(started) = &started {
        // Report the store's size per entry.
        let mut client = Client::connect_with(&url, &credentials).await?;
        let note = client.checkpoint().await?;
        let size: u64 = note
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let bytes = dir_size(&started.data_dir());
        per_entry = Some(bytes as f64 / size.max(1) as f64);
        let per = |dir: &str| dir_size(&started.data_dir().join(dir)) as f64 / size.max(1) as f64;
        println!(
            "store: {} entries, {:.1} MiB on disk, {:.0} bytes per entry (log {:.0}, indexes \
             {:.0}; envelope JSON {size_json} bytes)",
            size,
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / size.max(1) as f64,
            per("log"),
            per("indexes"),
            size_json = size_json,
        );
    }
    drop(started);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for level in &levels {
        println!(
            "mode={} clients={} tls={} submissions/s={:.0} p50_ms={:.2} p99_ms={:.2} errors={} bytes/entry={}",
            level.mode.as_str(),
            level.clients,
            args.tls,
            level.rate,
            ms(level.p50),
            ms(level.p99),
            level.errors,
            per_entry.map_or_else(|| "unknown".to_owned(), |b| format!("{b:.0}")),
        );
    }
    Ok(())
}
