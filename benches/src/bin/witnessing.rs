//! What witnesses and tiles cost: a real `evidentd` (files backend) under the load
//! generator's unary load, first alone, then asking two real `evident-witness` processes
//! (Ed25519, then ML-DSA-44) to cosign every checkpoint; and its tiles listener read by many
//! concurrent clients.
//!
//! Reported per phase: receipts per second; how long a `Submit` that waits for a witnessed
//! receipt takes, next to a plain one (probes while the load runs); how far the witnessed
//! checkpoint trails the log (sampled); then full tiles and entry bundles served per second,
//! and an auditor's replay of the whole log over gRPC and from the tiles.
//! Run it in one command with `../shared/bench/pg_baseline.sh` so that the ingest figures can
//! be read as a ratio to the same machine's PostgreSQL.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use evident_benches::load::{bench_settings, percentile, register, sign_pool, unary_client};
use evident_benches::start_evidentd;
use evident_client::{Client, Credentials};
use evident_core::cosign::WitnessPolicy;
use evident_core::note::{Checkpoint, Verifier};

#[derive(Debug, Parser)]
#[command(about = "The cost of witnessing and of serving tiles")]
struct Args {
    /// The server binary.
    #[arg(long, default_value = "target/release/evidentd")]
    evidentd: PathBuf,
    /// The witness binary.
    #[arg(long, default_value = "target/release/evident-witness")]
    witness: PathBuf,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of load per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Envelopes signed in advance (enough for every phase).
    #[arg(long, default_value_t = 300_000)]
    envelopes: usize,
    /// Concurrent tile readers.
    #[arg(long, default_value_t = 32)]
    readers: usize,
}

/// A witness process.
struct Witness {
    child: Child,
    key: String,
    url: String,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn witness(
    bin: &Path,
    dir: &Path,
    name: &str,
    ml_dsa: bool,
    log: &Verifier,
) -> anyhow::Result<Witness> {
    std::fs::create_dir_all(dir)?;
    let mut keygen = Command::new(bin);
    keygen
        .args(["keygen", "--name", name, "--out"])
        .arg(dir.join("key"));
    if ml_dsa {
        keygen.arg("--ml-dsa");
    }
    let out = keygen.output().context("running evident-witness keygen")?;
    if !out.status.success() {
        bail!("keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(name))
        .context("keygen printed no key")?
        .trim()
        .to_owned();
    std::fs::write(
        dir.join("witness.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nkey_file = \"key\"\nstate_dir = \"state\"\n[[log]]\norigin = \"{}\"\nkey = \"{log}\"\n",
            log.name()
        ),
    )?;
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("witness.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting evident-witness")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = lines.next().context("the witness said nothing")??;
    let addr = line
        .strip_prefix("listening on ")
        .context("the witness did not say where it listens")?
        .trim()
        .trim_start_matches("http://")
        .to_owned();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(Witness {
        child,
        key,
        url: format!("http://{addr}"),
    })
}

/// One phase's figures.
struct Phase {
    name: &'static str,
    rate: f64,
    plain: Vec<Duration>,
    witnessed: Vec<Duration>,
    lag: Vec<u64>,
}

async fn size_of(client: &mut Client, witnessed: bool, key: &Verifier) -> Option<u64> {
    let note = client.checkpoint_at(witnessed).await.ok()?;
    Checkpoint::verify(&note, key).ok().map(|c| c.size)
}

/// Runs the unary load for `seconds`, with probes (a plain and a witnessed submission in
/// turn, four a second) and lag samples when `witnesses`.
async fn phase(
    name: &'static str,
    url: &str,
    args: &Args,
    pool: &Arc<Vec<evident_core::dsse::Envelope>>,
    next: &Arc<AtomicUsize>,
    key: &Verifier,
    witnesses: bool,
) -> anyhow::Result<Phase> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let client = Client::connect_with(url, &Credentials::default()).await?;
        tasks.push(tokio::spawn(unary_client(
            client,
            pool.clone(),
            next.clone(),
            deadline,
        )));
    }
    let probes = {
        let (url, pool, next, key) = (url.to_owned(), pool.clone(), next.clone(), key.clone());
        tokio::spawn(async move {
            let mut client = Client::connect_with(&url, &Credentials::default()).await?;
            let (mut plain, mut witnessed, mut lag) = (Vec::new(), Vec::new(), Vec::new());
            while Instant::now() < deadline {
                let Some(envelope) = pool.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let t = Instant::now();
                client.submit_with(envelope, witnesses).await?;
                if witnesses {
                    witnessed.push(t.elapsed());
                    if let (Some(all), Some(seen)) = (
                        size_of(&mut client, false, &key).await,
                        size_of(&mut client, true, &key).await,
                    ) {
                        lag.push(all.saturating_sub(seen));
                    }
                } else {
                    plain.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            anyhow::Ok((plain, witnessed, lag))
        })
    };
    let begin = Instant::now();
    let mut receipts = 0;
    for t in tasks {
        receipts += t.await?.latencies.len();
    }
    let rate = receipts as f64 / begin.elapsed().as_secs_f64();
    let (mut plain, mut witnessed, mut lag) = probes.await??;
    plain.sort();
    witnessed.sort();
    lag.sort();
    Ok(Phase {
        name,
        rate,
        plain,
        witnessed,
        lag,
    })
}

/// Reads full tiles and entry bundles of the first `size` entries with `readers`
/// concurrent clients for `seconds`; returns (requests, bytes) per second.
async fn read_tiles(
    tiles: &str,
    size: u64,
    readers: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    let full = size / 256;
    anyhow::ensure!(full > 0, "the log has no full tile to read");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let (http, tiles) = (http.clone(), tiles.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut requests, mut bytes) = (0u64, 0u64);
            let mut n = reader as u64;
            while Instant::now() < deadline {
                let index = n % full;
                let id = evident_core::tiles::TileId::new(0, index, 256)?;
                let path = if n % 2 == 0 {
                    id.path()
                } else {
                    evident_core::tiles::BundleId::new(index, 256)?.path()
                };
                let body = http
                    .get(format!("{tiles}/{path}"))
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                requests += 1;
                bytes += body.len() as u64;
                n += readers as u64;
            }
            anyhow::Ok((requests, bytes))
        }));
    }
    let begin = Instant::now();
    let (mut requests, mut bytes) = (0, 0);
    for t in tasks {
        let (r, b) = t.await??;
        requests += r;
        bytes += b;
    }
    let secs = begin.elapsed().as_secs_f64();
    Ok((requests as f64 / secs, bytes as f64 / secs))
}

fn config_path(data_dir: &Path) -> PathBuf {
    data_dir
        .parent()
        .expect("the data folder is in the bench's folder")
        .join("evidentd.toml")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eprintln!("signing {} envelopes in advance…", args.envelopes);
    let pool = Arc::new(sign_pool(args.envelopes));
    let next = Arc::new(AtomicUsize::new(0));
    let settings = bench_settings("[tiles]\nlisten = \"127.0.0.1:0\"\n", false);
    let mut server = start_evidentd(&args.evidentd, &settings, "warn", false)?;
    register(&server.url, &Credentials::default()).await?;
    let data = server.data_dir();
    let key = Verifier::parse(&std::fs::read_to_string(data.join("log.pub"))?)?;
    let base_config = std::fs::read_to_string(config_path(&data))?;
    let work = tempfile::tempdir()?;

    let mut phases = vec![
        phase(
            "no witnesses",
            &server.url,
            &args,
            &pool,
            &next,
            &key,
            false,
        )
        .await?,
    ];
    for (name, ml_dsa) in [
        ("2 Ed25519 witnesses", false),
        ("2 ML-DSA-44 witnesses", true),
    ] {
        let tag = if ml_dsa { "pq" } else { "ed" };
        let w1 = witness(
            &args.witness,
            &work.path().join(format!("{tag}1")),
            &format!("w1.{tag}.bench"),
            ml_dsa,
            &key,
        )?;
        let w2 = witness(
            &args.witness,
            &work.path().join(format!("{tag}2")),
            &format!("w2.{tag}.bench"),
            ml_dsa,
            &key,
        )?;
        std::fs::write(
            config_path(&data),
            format!(
                "{base_config}\n[[witness]]\nkey = \"{}\"\nurl = \"{}\"\n[[witness]]\nkey = \"{}\"\nurl = \"{}\"\n",
                w1.key, w1.url, w2.key, w2.url
            ),
        )?;
        server.restart()?;
        phases.push(phase(name, &server.url, &args, &pool, &next, &key, true).await?);
        drop((w1, w2));
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "unary load, {} clients, {} s per phase:",
        args.clients, args.seconds
    );
    println!(
        "| phase | receipts/s | plain Submit p50 / p99 ms | witnessed Submit p50 / p99 ms | witnessed lag p50 / max entries |"
    );
    println!("|---|---|---|---|---|");
    for p in &phases {
        let plain = if p.plain.is_empty() {
            "–".to_owned()
        } else {
            format!(
                "{:.1} / {:.1}",
                ms(percentile(&p.plain, 50.0)),
                ms(percentile(&p.plain, 99.0))
            )
        };
        let witnessed = if p.witnessed.is_empty() {
            "–".to_owned()
        } else {
            format!(
                "{:.0} / {:.0}",
                ms(percentile(&p.witnessed, 50.0)),
                ms(percentile(&p.witnessed, 99.0))
            )
        };
        let lag = match (p.lag.get(p.lag.len() / 2), p.lag.last()) {
            (Some(mid), Some(max)) => format!("{mid} / {max}"),
            _ => "–".to_owned(),
        };
        println!(
            "| {} | {:.0} | {plain} | {witnessed} | {lag} |",
            p.name, p.rate
        );
    }

    // Tiles: the server's listener, as many readers would use it.
    let tiles = server
        .tiles_url
        .clone()
        .context("the server printed no tiles address")?;
    let mut client = Client::connect(&server.url).await?;
    let size = size_of(&mut client, false, &key)
        .await
        .context("a checkpoint")?;
    let (requests, bytes) = read_tiles(&tiles, size, args.readers, args.seconds).await?;
    println!(
        "tiles: {} readers, full level-0 tiles and entry bundles of a {size}-entry log: {requests:.0} requests/s, {:.1} MB/s",
        args.readers,
        bytes / 1e6
    );

    // An auditor's replay of the whole log from its genesis, as `evident audit` runs it:
    // over gRPC, then from the tiles listener (proofs from hash tiles, entries from bundles).
    let genesis = evident_client::gate::read_genesis(&data.join("genesis.json"))?;
    // Two state files: the tiles' checkpoint is the witnessed one, which may trail.
    let (state, tiles_state) = (
        work.path().join("grpc.json"),
        work.path().join("tiles.json"),
    );
    let begin = Instant::now();
    let over_grpc = evident_client::audit::audit(
        &mut client,
        &key,
        &WitnessPolicy::none(),
        evident_client::audit::genesis_registry(&genesis)?,
        &state,
        |_, _| {},
    )
    .await?;
    let grpc_secs = begin.elapsed().as_secs_f64();
    let mut from_tiles = evident_client::tiles::Tiles::open(&tiles, None)?;
    let begin = Instant::now();
    let over_tiles = evident_client::audit::audit(
        &mut from_tiles,
        &key,
        &WitnessPolicy::none(),
        evident_client::audit::genesis_registry(&genesis)?,
        &tiles_state,
        |_, _| {},
    )
    .await?;
    let tiles_secs = begin.elapsed().as_secs_f64();
    for (how, audited, secs) in [
        ("gRPC", &over_grpc, grpc_secs),
        ("tiles", &over_tiles, tiles_secs),
    ] {
        println!(
            "audit over {how}: {} entries replayed in {secs:.1} s ({:.0} entries/s)",
            audited.summary.entries,
            audited.summary.entries as f64 / secs
        );
    }
    Ok(())
}
