//! What the load generators share: the load key and its registration, ~1 KiB envelopes
//! signed in advance, the server settings that keep per-client limits out of the
//! measurement, and the clients that submit (`Submit` one at a time, or `SubmitStream`).
//! Nothing here decides what is measured or prints a result: the binaries do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use evident_client::{Client, Credentials};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::registry::{Change, sign_change};
use evident_core::{Hash, PublicKey, SigningKey};

/// How clients submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One `Submit` per envelope.
    Unary,
    /// One `SubmitStream` per client, envelopes in messages of a batch.
    Stream,
}

impl Mode {
    /// The mode's name on the command line and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Unary => "unary",
            Mode::Stream => "stream",
        }
    }
}

/// What a client's task returns.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Each receipt's latency.
    pub latencies: Vec<Duration>,
    /// Submissions not answered with a new receipt.
    pub errors: usize,
    /// Each receipt's index and leaf hash, to look for in the final log.
    pub acknowledged: Vec<(u64, Hash)>,
}

impl Outcome {
    /// Adds another client's outcome to this one.
    pub fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.acknowledged.extend(other.acknowledged);
    }
}

/// The seed byte of the load key: every byte of its 32-byte seed.
pub const SEED: u8 = 42;
/// The seed byte of the genesis administrator's key.
pub const ADMIN_SEED: u8 = 43;

/// Registers the generator's key (any predicate type), signed by the genesis administrator.
pub async fn register(url: &str, credentials: &Credentials) -> anyhow::Result<()> {
    let change = Change::AddSigner {
        identity: "loadgen@bench".into(),
        public_key: Some(
            PublicKey::from_signing_key(&SigningKey::from_bytes(&[SEED; 32])).to_hex(),
        ),
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
        certificate: None,
    };
    let admin = SigningKey::from_bytes(&[ADMIN_SEED; 32]);
    let mut client = Client::connect_with(url, credentials).await?;
    client.submit(&sign_change(&change, &[&admin])).await?;
    Ok(())
}

/// A ~1 KiB in-toto Statement, unique per `n`.
pub fn envelope(key: &SigningKey, n: usize) -> Envelope {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "payments-api", "digest": {
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

/// `count` envelopes, signed in advance on every core (`envelope(key, 0..count)`).
pub fn sign_pool(count: usize) -> Vec<Envelope> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = count.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let key = SigningKey::from_bytes(&[SEED; 32]);
                (t * per..((t + 1) * per).min(count))
                    .map(|n| envelope(&key, n))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("signing thread"))
        .collect()
}

/// The server settings after a load generator's own (`server_config`, TOML tables or
/// top-level keys): the genesis administrator ([`ADMIN_SEED`]), TLS or plaintext, and
/// unless `server_config` sets `[limits]`, limits far above any load.
pub fn bench_settings(server_config: &str, tls: bool) -> String {
    format!(
        "{}\n[genesis]\n[[genesis.admin]]\nidentity = \"admin@bench\"\npublic_key = \"{}\"\n[tls]\n{}{}",
        server_config,
        PublicKey::from_signing_key(&SigningKey::from_bytes(&[ADMIN_SEED; 32])).to_hex(),
        // With TLS the server makes a certificate for localhost on first start.
        if tls { "" } else { "plaintext = true\n" },
        // Every load client is the same (open) client, each on its own connection from
        // loopback: the measurement is the server's, not the per-client limits'.
        if server_config.contains("[limits]") {
            ""
        } else {
            "[limits]\nrate_per_client = 1e12\nburst_per_client = 1e12\nrate_global = 1e12\nburst_global = 1e12\nmax_concurrent_per_client = 1000000\n\
             max_connections = 100000\nmax_connections_per_ip = 100000\n"
        }
    )
}

/// The `p`th percentile of sorted durations (zero for none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One client submitting with `Submit`, one envelope at a time, until `deadline`.
pub async fn unary_client(
    mut client: Client,
    pool: Arc<Vec<Envelope>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    while Instant::now() < deadline {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(envelope) = pool.get(n) else { break };
        let t = Instant::now();
        match client.submit(envelope).await {
            Ok((receipt, duplicate)) if !duplicate && receipt.tree_size > receipt.index => {
                outcome.latencies.push(t.elapsed());
                outcome
                    .acknowledged
                    .push((receipt.index, receipt.leaf_hash));
            }
            _ => outcome.errors += 1,
        }
    }
    outcome
}

/// One client keeping a `SubmitStream` open until `deadline`, sending envelopes in
/// messages of `batch`; an envelope's latency runs from when the stream took it to its
/// answer.
pub async fn stream_client(
    mut client: Client,
    pool: Arc<Vec<Envelope>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
    batch: usize,
) -> Outcome {
    let sent: Arc<std::sync::Mutex<std::collections::VecDeque<Instant>>> = Arc::default();
    let taken = sent.clone();
    let envelopes = std::iter::from_fn(move || {
        if Instant::now() >= deadline {
            return None;
        }
        let envelope = pool.get(next.fetch_add(1, Ordering::Relaxed))?.clone();
        taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(Instant::now());
        Some(envelope)
    });
    let mut outcome = Outcome::default();
    let mut answers = match client
        .submit_stream(tokio_stream::iter(envelopes), batch)
        .await
    {
        Ok(answers) => answers,
        Err(_) => {
            outcome.errors = 1;
            return outcome;
        }
    };
    while let Some(answer) = answers.next().await {
        let took = sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
            .map(|t| t.elapsed());
        match answer {
            Ok((_, Ok((receipt, duplicate))))
                if !duplicate && receipt.tree_size > receipt.index =>
            {
                outcome.latencies.push(took.unwrap_or_default());
                outcome
                    .acknowledged
                    .push((receipt.index, receipt.leaf_hash));
            }
            Ok(_) => outcome.errors += 1,
            Err(_) => {
                outcome.errors += 1;
                break;
            }
        }
    }
    outcome
}
