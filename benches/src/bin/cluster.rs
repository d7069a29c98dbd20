//! The cluster bench: several `evidentd` instances on one PostgreSQL database, measured
//! for ingest through every instance, for failover when the sequencer is killed, and for
//! reads spread over the instances.
//!
//! It starts its own PostgreSQL (a temporary folder, a free loopback port, synchronous
//! commit: the settings of `pg_baseline.sh`, so the two are comparable) and `--instances`
//! instances of `--evidentd` sharing the first one's log key, registers the load key through
//! the genesis administrator, then:
//!
//! 1. **ingest**: for each `--mode`, clients spread round-robin over the instances submit
//!    envelopes signed in advance for `--seconds`;
//! 2. **reads**: `GetInclusionProof` for random indexes of a log of at least
//!    `--read-entries`, `--read-clients` clients on one instance, then spread over all;
//! 3. **failover** (two instances or more): with `--failover-clients` submitting through
//!    every instance, the sequencer is killed (SIGKILL) `--kills` times; each time the bench
//!    takes the time until another instance says it sequences and until the first receipt
//!    for an entry integrated after the kill, then starts the killed one again as a follower.
//!
//! Last, every receipt acknowledged in any phase is looked for at its index in the final
//! log; one missing prints `LOST` and the bench exits with status 1. Results are one line
//! each, `phase key=value …`. The bench never retries a submission on its own: a refusal or
//! a broken connection is an error in the counts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use evident_benches::load::{
    Mode, Outcome, SEED, bench_settings, envelope, percentile, register, sign_pool, stream_client,
    unary_client,
};
use evident_benches::spawn_evidentd;
use evident_client::{Client, Credentials, Selector};
use evident_core::{Hash, SigningKey, merkle};

#[derive(Debug, Parser)]
#[command(about = "Several evidentd instances on one PostgreSQL: ingest, reads, failover")]
struct Args {
    /// The evidentd binary to start.
    #[arg(long, default_value = "target/release/evidentd")]
    evidentd: PathBuf,
    /// Instances on the one database.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Seconds per ingest mode and per read measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Ingest modes, comma-separated (none: no ingest measurement).
    #[arg(long, value_delimiter = ',', default_value = "unary,stream")]
    mode: Vec<Mode>,
    /// Clients for `--mode unary`.
    #[arg(long, default_value_t = 64)]
    unary_clients: usize,
    /// Clients for `--mode stream`.
    #[arg(long, default_value_t = 8)]
    stream_clients: usize,
    /// Envelopes per stream message, at most 256.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Envelopes signed in advance (each is submitted once).
    #[arg(long, default_value_t = 300_000)]
    envelopes: usize,
    /// The log size reads pick random indexes from (filled up first if smaller); 0: no
    /// read measurement.
    #[arg(long, default_value_t = 20_000)]
    read_entries: u64,
    /// Concurrent readers.
    #[arg(long, default_value_t = 32)]
    read_clients: usize,
    /// Times the sequencer is killed (0: no failover measurement).
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Clients submitting during the failover measurement, spread over the instances.
    #[arg(long, default_value_t = 12)]
    failover_clients: usize,
    /// The instances' `[store] lease_ms`.
    #[arg(long, default_value_t = 3_000)]
    lease_ms: u64,
    /// RUST_LOG of the instances; their logs are `evident-N.log` in the bench's folder.
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Extra TOML tables for every instance's config (e.g. "[batch]\nmax_entries = 2048").
    #[arg(long, default_value = "")]
    server_config: String,
    /// Keep the bench's folder (instance configs and logs) after the run; it is always
    /// kept when a receipt is lost.
    #[arg(long)]
    keep: bool,
}

/// The longest a unary call may take in the failover phase before it counts as an error:
/// more than a follower's wait for an outcome (30 s), so the server's answer is seen.
const CALL_TIMEOUT: Duration = Duration::from_secs(40);
/// The longest a takeover may take before the round counts as failed.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(60);

/// A PostgreSQL server of the bench's own, stopped at once when dropped.
#[derive(Debug)]
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    url: String,
}

impl Postgres {
    /// `initdb` and `pg_ctl start` with `pg_baseline.sh`'s settings, as the `postgres`
    /// user when the bench runs as root (PostgreSQL refuses root).
    fn start() -> anyhow::Result<Postgres> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed under /usr/lib/postgresql")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        found.sort();
        let bin = found
            .pop()
            .context("no initdb under /usr/lib/postgresql/*/bin")?;
        let dir = tempfile::tempdir()?;
        if is_root() {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(chown.success(), "chown postgres {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let pg = Postgres {
            url: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            bin,
            dir,
        };
        let data = pg.data();
        let initdb = pg
            .tool("initdb")
            .args(["-D", &data, "-A", "trust", "-U", "postgres"])
            .status()?;
        anyhow::ensure!(initdb.success(), "initdb failed");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=on -c synchronous_commit=on -c shared_buffers=1GB -c max_wal_size=8GB \
             -c max_connections=200",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("server.log").display().to_string();
        let started = pg
            .tool("pg_ctl")
            .args(["-D", &data, "-l", &log, "-w", "-o", &options, "start"])
            .status()?;
        anyhow::ensure!(started.success(), "pg_ctl start failed: see {log}");
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn tool(&self, tool: &str) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        command.stdout(Stdio::null());
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// One `evidentd` instance: its config and data folder, and the process while it runs.
#[derive(Debug)]
struct Instance {
    name: String,
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
    running: Option<evident_benches::Spawned>,
}

impl Instance {
    fn new(root: &Path, n: usize, args: &Args, pg_url: &str) -> anyhow::Result<Instance> {
        let name = format!("evident-{n}");
        let data = root.join(&name);
        let config = root.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmetrics_listen = \"127.0.0.1:0\"\n\
                 [store]\nbackend = \"postgres\"\nurl = \"{pg_url}\"\nlease_ms = {}\n\
                 instance = \"{name}\"\n{}\n",
                data.display().to_string(),
                args.lease_ms,
                bench_settings(&args.server_config, false),
            ),
        )?;
        Ok(Instance {
            log: root.join(format!("{name}.log")),
            name,
            config,
            data,
            running: None,
        })
    }

    /// Starts the instance (again), its standard error appended to its log.
    fn start(&mut self, args: &Args) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let spawned = spawn_evidentd(&args.evidentd, &self.config, &args.server_log, log.into())
            .with_context(|| format!("starting {}: see {}", self.name, self.log.display()))?;
        anyhow::ensure!(
            spawned.metrics_url.is_some(),
            "{} printed no metrics address",
            self.name
        );
        self.running = Some(spawned);
        Ok(())
    }

    fn url(&self) -> Option<String> {
        self.running.as_ref().map(|r| r.url.clone())
    }

    /// Whether the instance says it sequences (`evident_sequencer 1` in its metrics).
    fn sequences(&self) -> bool {
        self.running
            .as_ref()
            .and_then(|r| r.metrics_url.as_deref())
            .is_some_and(|m| scrape(m).lines().any(|l| l == "evident_sequencer 1"))
    }

    /// Kills the instance as a crash would (SIGKILL).
    fn kill(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &running.child.id().to_string()])
                .status();
            let _ = running.child.wait();
        }
    }
}

/// The metrics text at `http://ADDR/metrics` (empty when it cannot be read).
fn scrape(metrics_url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Some(addr) = metrics_url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
    else {
        return String::new();
    };
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// The instances that say they sequence.
fn sequencers(instances: &[Instance]) -> Vec<usize> {
    (0..instances.len())
        .filter(|&i| instances[i].sequences())
        .collect()
}

/// The one instance that sequences, waited for up to `within`; two at once is an error.
fn sequencer(instances: &[Instance], within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        match sequencers(instances)[..] {
            [one] => return Ok(one),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            [] => bail!("no instance sequences after {within:?}"),
            ref more => bail!("several instances say they sequence: {more:?}"),
        }
    }
}

/// The tree size of an instance's latest checkpoint.
async fn tree_size(url: &str) -> anyhow::Result<u64> {
    let mut client = Client::connect(url).await?;
    let note = client.checkpoint().await?;
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .context("a checkpoint without a size line")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// How the clients of one ingest measurement submit.
#[derive(Debug, Clone, Copy)]
struct Load {
    mode: Mode,
    clients: usize,
    seconds: u64,
    /// Envelopes per stream message.
    batch: usize,
}

/// Clients submitting from `pool` for `seconds`, client `c` through `urls[c % len]`;
/// returns their outcome and the seconds it took.
async fn ingest(
    urls: &[String],
    load: Load,
    pool: &Arc<Vec<evident_core::dsse::Envelope>>,
    next: &Arc<AtomicUsize>,
) -> anyhow::Result<(Outcome, f64)> {
    let Load {
        mode,
        clients,
        seconds,
        batch,
    } = load;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = Client::connect(&urls[c % urls.len()]).await?;
        let (pool, next) = (pool.clone(), next.clone());
        tasks.push(match mode {
            Mode::Unary => tokio::spawn(unary_client(client, pool, next, deadline)),
            Mode::Stream => tokio::spawn(stream_client(client, pool, next, deadline, batch)),
        });
    }
    let begin = Instant::now();
    let mut all = Outcome::default();
    for task in tasks {
        all.merge(task.await?);
    }
    let elapsed = begin.elapsed().as_secs_f64();
    if next.load(Ordering::Relaxed) >= pool.len() {
        eprintln!("the pool of signed envelopes ran out: raise --envelopes");
    }
    Ok((all, elapsed))
}

/// `clients` readers asking for inclusion proofs of random indexes below `size` for
/// `seconds`, reader `c` through `urls[c % len]`: proofs/s, p50, p99, errors.
async fn read(
    urls: &[String],
    clients: usize,
    size: u64,
    seconds: u64,
) -> anyhow::Result<(f64, Duration, Duration, usize)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = Client::connect(&urls[c % urls.len()]).await?;
        tasks.push(tokio::spawn(async move {
            // xorshift64, seeded per reader: uniform enough to spread reads over the log.
            let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ ((c as u64 + 1) << 17);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let t = Instant::now();
                match client
                    .inclusion_proof(Selector::Index(state % size), 0)
                    .await
                {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let begin = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = begin.elapsed().as_secs_f64();
    all.sort();
    Ok((
        all.len() as f64 / elapsed,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        errors,
    ))
}

/// What the failover phase's clients share with the bench.
#[derive(Debug, Default)]
struct Failover {
    /// Each instance's current address; `None` while it is down.
    urls: Mutex<Vec<Option<String>>>,
    stop: AtomicBool,
    /// Each receipt since the bench last cleared it: when it came back, and its entry's
    /// integration time.
    recent: Mutex<Vec<(Instant, i64)>>,
    acknowledged: Mutex<Vec<(u64, Hash)>>,
    errors: AtomicUsize,
}

/// A failover-phase client: submits fresh envelopes (numbered from `nonce`) one at a time
/// through instance `i`, whatever its current address, until told to stop.
async fn failover_client(shared: Arc<Failover>, i: usize, mut nonce: usize) {
    let key = SigningKey::from_bytes(&[SEED; 32]);
    let mut connected: Option<(String, Client)> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let url = shared.urls.lock().unwrap_or_else(PoisonError::into_inner)[i].clone();
        let Some(url) = url else {
            connected = None;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        nonce += 1;
        let env = envelope(&key, nonce);
        if connected.as_ref().is_some_and(|(at, _)| *at != url) {
            // The instance was started again, on a new port.
            connected = None;
        }
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            if connected.is_none() {
                connected = Some((url.clone(), Client::connect(&url).await?));
            }
            let (_, client) = connected.as_mut().expect("connected just above");
            client.submit(&env).await
        })
        .await;
        match answer {
            Ok(Ok((receipt, false))) => {
                shared
                    .recent
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), receipt.integrated_time_nanos));
                shared
                    .acknowledged
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((receipt.index, receipt.leaf_hash));
            }
            _ => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                connected = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Kills the sequencer `args.kills` times with clients submitting through every instance;
/// prints each round and the median and max; returns the receipts acknowledged.
async fn failover(instances: &mut [Instance], args: &Args) -> anyhow::Result<Vec<(u64, Hash)>> {
    let shared = Arc::new(Failover {
        urls: Mutex::new(instances.iter().map(Instance::url).collect()),
        ..Failover::default()
    });
    let clients: Vec<_> = (0..args.failover_clients)
        .map(|c| {
            tokio::spawn(failover_client(
                shared.clone(),
                c % instances.len(),
                1_000_000_000 + c * 10_000_000,
            ))
        })
        .collect();
    let acknowledged = |shared: &Failover| {
        shared
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    };
    let (mut to_sequencer, mut to_receipt) = (Vec::new(), Vec::new());
    let mut failed_rounds = 0;
    for round in 1..=args.kills {
        // Steady state first: receipts coming back through every instance.
        let before = acknowledged(&shared);
        let settle = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        while acknowledged(&shared) < before + 10 && settle.elapsed() < TAKEOVER_LIMIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let leader = tokio::task::block_in_place(|| sequencer(instances, TAKEOVER_LIMIT))?;
        shared.urls.lock().unwrap_or_else(PoisonError::into_inner)[leader] = None;
        shared
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let killed = Instant::now();
        instances[leader].kill();
        // Taken once the old sequencer is dead: an entry integrated later than this is the
        // new sequencer's.
        let dead_at = evident_client::now_nanos();
        let mut new_sequencer: Option<(Duration, usize)> = None;
        let mut first_receipt: Option<Duration> = None;
        while (new_sequencer.is_none() || first_receipt.is_none())
            && killed.elapsed() < TAKEOVER_LIMIT
        {
            if new_sequencer.is_none()
                && let [one] = tokio::task::block_in_place(|| sequencers(instances))[..]
            {
                new_sequencer = Some((killed.elapsed(), one));
            }
            if first_receipt.is_none() {
                first_receipt = shared
                    .recent
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .filter(|(_, integrated)| *integrated > dead_at)
                    .map(|(at, _)| at.duration_since(killed))
                    .min();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let show =
            |d: Option<Duration>| d.map_or_else(|| "none".to_owned(), |d| format!("{:.0}", ms(d)));
        println!(
            "failover kill={round} lease_ms={} killed={} new_sequencer={} new_sequencer_ms={} \
             first_receipt_ms={}",
            args.lease_ms,
            instances[leader].name,
            new_sequencer.map_or("none", |(_, i)| instances[i].name.as_str()),
            show(new_sequencer.map(|(d, _)| d)),
            show(first_receipt),
        );
        match (new_sequencer, first_receipt) {
            (Some((s, _)), Some(r)) => {
                to_sequencer.push(ms(s));
                to_receipt.push(ms(r));
            }
            _ => failed_rounds += 1,
        }
        tokio::task::block_in_place(|| instances[leader].start(args))?;
        shared.urls.lock().unwrap_or_else(PoisonError::into_inner)[leader] =
            instances[leader].url();
    }
    shared.stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    let acknowledged = std::mem::take(
        &mut *shared
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    println!(
        "failover kills={} lease_ms={} new_sequencer_ms_median={:.0} new_sequencer_ms_max={:.0} \
         first_receipt_ms_median={:.0} first_receipt_ms_max={:.0} failed_rounds={failed_rounds} \
         receipts={} errors={}",
        args.kills,
        args.lease_ms,
        median(&to_sequencer),
        max(&to_sequencer),
        median(&to_receipt),
        max(&to_receipt),
        acknowledged.len(),
        shared.errors.load(Ordering::Relaxed),
    );
    Ok(acknowledged)
}

/// Looks for every acknowledged receipt at its index in the final log, read through
/// `url`; returns the ones missing or different.
async fn check(url: &str, acknowledged: &[(u64, Hash)]) -> anyhow::Result<(u64, Vec<String>)> {
    let size = tree_size(url).await?;
    let client = Client::connect(url).await?;
    let mut pages = client.entry_pages(0, size, 4);
    let mut leaves = Vec::with_capacity(size as usize);
    while let Some(page) = pages.next().await {
        let (_, records) = page?;
        leaves.extend(records.iter().map(|r| merkle::leaf_hash(r)));
    }
    let lost = acknowledged
        .iter()
        .filter(|(index, leaf)| leaves.get(*index as usize) != Some(leaf))
        .map(|(index, leaf)| match leaves.get(*index as usize) {
            Some(other) => format!("index={index} acknowledged={leaf} in_log={other}"),
            None => format!("index={index} acknowledged={leaf} in_log=none (log size {size})"),
        })
        .collect();
    Ok((size, lost))
}

/// Runs the whole bench; `Ok(false)` when an acknowledged receipt is missing.
async fn run(args: &Args, root: &Path) -> anyhow::Result<bool> {
    eprintln!("signing {} envelopes in advance…", args.envelopes);
    let pool = Arc::new(sign_pool(args.envelopes));
    let next = Arc::new(AtomicUsize::new(0));
    let pg = Postgres::start()?;
    let mut instances = (1..=args.instances)
        .map(|n| Instance::new(root, n, args, &pg.url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    instances[0].start(args)?;
    for other in &instances[1..] {
        use std::os::unix::fs::PermissionsExt as _;
        // Every instance signs checkpoints with the first one's log key.
        std::fs::create_dir_all(&other.data)?;
        let key = other.data.join("log.key");
        std::fs::copy(instances[0].data.join("log.key"), &key)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    }
    for instance in &mut instances[1..] {
        instance.start(args)?;
    }
    let leader = tokio::task::block_in_place(|| sequencer(&instances, TAKEOVER_LIMIT))?;
    let urls: Vec<String> = instances.iter().filter_map(Instance::url).collect();
    register(&urls[leader], &Credentials::default()).await?;
    // Each instance takes the load key once it has seen the registration.
    for url in &urls {
        let deadline = Instant::now() + TAKEOVER_LIMIT;
        let mut client = Client::connect(url).await?;
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            match client.submit(&pool[n]).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => bail!("{url} refuses the load key: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    println!(
        "cluster: {} instances on PostgreSQL, lease_ms {}, {} s per measurement; folder {}",
        args.instances,
        args.lease_ms,
        args.seconds,
        root.display()
    );

    let mut acknowledged = Vec::new();
    for &mode in &args.mode {
        let clients = match mode {
            Mode::Unary => args.unary_clients,
            Mode::Stream => args.stream_clients,
        };
        let load = Load {
            mode,
            clients,
            seconds: args.seconds,
            batch: args.batch,
        };
        let (mut outcome, elapsed) = ingest(&urls, load, &pool, &next).await?;
        outcome.latencies.sort();
        println!(
            "ingest instances={} mode={} clients={clients} batch={} submissions/s={:.0} \
             p50_ms={:.2} p99_ms={:.2} errors={}",
            args.instances,
            mode.as_str(),
            if mode == Mode::Stream { args.batch } else { 1 },
            outcome.latencies.len() as f64 / elapsed,
            ms(percentile(&outcome.latencies, 50.0)),
            ms(percentile(&outcome.latencies, 99.0)),
            outcome.errors,
        );
        acknowledged.extend(outcome.acknowledged);
    }

    if args.read_entries > 0 {
        let mut size = tree_size(&urls[0]).await?;
        while size < args.read_entries {
            let fill = Load {
                mode: Mode::Stream,
                clients: 4,
                seconds: 2,
                batch: 64,
            };
            let (outcome, _) = ingest(&urls, fill, &pool, &next).await?;
            acknowledged.extend(outcome.acknowledged);
            anyhow::ensure!(
                next.load(Ordering::Relaxed) < pool.len(),
                "the pool of signed envelopes ran out filling the log: raise --envelopes"
            );
            size = tree_size(&urls[0]).await?;
        }
        // Every instance's reads are bounded by its own latest checkpoint: pick below the
        // smallest.
        for url in &urls {
            size = size.min(tree_size(url).await?);
        }
        let (one, p50, p99, errors) =
            read(&urls[..1], args.read_clients, size, args.seconds).await?;
        println!(
            "read instances_used=1 clients={} log_size={size} proofs/s={one:.0} p50_ms={:.2} \
             p99_ms={:.2} errors={errors}",
            args.read_clients,
            ms(p50),
            ms(p99),
        );
        if urls.len() > 1 {
            let (all, p50, p99, errors) =
                read(&urls, args.read_clients, size, args.seconds).await?;
            println!(
                "read instances_used={} clients={} log_size={size} proofs/s={all:.0} \
                 p50_ms={:.2} p99_ms={:.2} errors={errors}",
                urls.len(),
                args.read_clients,
                ms(p50),
                ms(p99),
            );
            println!("read ratio_{}_vs_1={:.2}", urls.len(), all / one);
        }
    }

    if args.kills > 0 && instances.len() > 1 {
        acknowledged.extend(failover(&mut instances, args).await?);
    }

    // The final log is the largest checkpoint any instance publishes: a follower may still
    // be one refresh behind the sequencer's last batch.
    let mut url = None;
    let mut largest = 0;
    for candidate in instances.iter().filter_map(Instance::url) {
        if let Ok(size) = tree_size(&candidate).await {
            if url.is_none() || size > largest {
                (url, largest) = (Some(candidate), size);
            }
        }
    }
    let url = url.context("no instance runs")?;
    let (size, lost) = check(&url, &acknowledged).await?;
    println!(
        "check acknowledged={} log_size={size} lost={}",
        acknowledged.len(),
        lost.len()
    );
    for line in lost.iter().take(50) {
        println!("LOST {line}");
    }
    if !lost.is_empty() {
        println!(
            "LOST: {} acknowledged receipts are not in the final log as acknowledged; instance \
             logs in {}",
            lost.len(),
            root.display()
        );
    }
    drop(instances);
    drop(pg);
    Ok(lost.is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.instances >= 1, "--instances must be at least 1");
    anyhow::ensure!(
        (1..=256).contains(&args.batch),
        "--batch must be 1 to 256 envelopes"
    );
    let root = tempfile::Builder::new()
        .prefix("evident-cluster")
        .tempdir()?;
    let whole = run(&args, root.path()).await;
    if args.keep || !matches!(whole, Ok(true)) {
        eprintln!("kept {}", root.keep().display());
    }
    match whole {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(e) => Err(e),
    }
}
