//! Gathering witness cosignatures (C2SP tlog-witness): after the log publishes a checkpoint,
//! every configured witness is sent it with a consistency proof from the size it cosigned
//! last, and the cosignatures that come back are added to the note. Once at least the
//! threshold of witnesses cosigned one checkpoint, it is published as the witnessed
//! checkpoint (`Ledger::set_witnessed`), which readers and tiles serve.
//!
//! Ingest never waits for witnesses: a witness that is down or slow only makes the
//! witnessed checkpoint lag the log, which `evident_witnessed_tree_size` shows. Rounds run
//! one at a time, every witness asked concurrently for the same checkpoint (so that K of
//! them sign one note), at most one round per `interval`.

use std::sync::Arc;
use std::time::Duration;

use evident_core::cosign::{CosignerKey, WitnessPolicy, add_signature_lines};
use evident_core::hash::Hash;
use evident_core::note::{Checkpoint, Note};

use crate::config::WitnessConfig;
use crate::ledger::{Ledger, Published, Witnessed};
use crate::metrics::METRICS;

/// The most bytes read from a witness's answer: a few signature lines.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where the consistency proofs sent to witnesses come from: the ledger, or a store being
/// exported. Called on a blocking thread.
type Prover = Arc<dyn Fn(u64, u64) -> Result<Vec<Hash>, String> + Send + Sync>;

/// One witness, and what the log knows of it.
struct Witness {
    key: CosignerKey,
    /// `<submission prefix>/add-checkpoint`.
    url: String,
    /// The size of the latest checkpoint the witness cosigned for this log, as far as the
    /// log knows (learned from a 409 when it does not).
    size: u64,
}

/// Why one witness brought no cosignature this round.
#[derive(Debug, thiserror::Error)]
enum WitnessError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("has cosigned size {0}, beyond this log's checkpoint")]
    Ahead(u64),
    #[error("answered 409 twice in a row (sizes {0} then {1})")]
    Conflict(u64, u64),
    #[error("the consistency proof could not be read: {0}")]
    Proof(String),
    #[error("answered with no valid cosignature by its key: {0}")]
    BadAnswer(String),
}

/// The cosigning task: runs until the ledger's checkpoints stop (shutdown).
pub async fn run(
    ledger: Ledger,
    configs: Vec<WitnessConfig>,
    policy: WitnessPolicy,
    interval: Duration,
    timeout: Duration,
) {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("evidentd/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot make an HTTP client: no witness will be asked");
            return;
        }
    };
    let mut witnesses = witnesses_of(&configs, &policy);
    let prover: Prover = {
        let ledger = ledger.clone();
        Arc::new(move |old, new| {
            ledger
                .consistency_proof(old, new)
                .map_err(|e| e.to_string())
        })
    };
    let mut sizes = ledger.published_sizes();
    let mut done = 0u64;
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(interval).await;
        }
        first = false;
        // A new checkpoint to witness (the empty log too, once).
        let wait = sizes.wait_for(|size| *size > done || (done == 0 && *size == 0));
        if wait.await.is_err() {
            return;
        }
        let published = ledger.published();
        if published.note.is_empty() {
            continue;
        }
        let size = published.checkpoint.size;
        let cosigned = round(
            &prover,
            &client,
            &mut witnesses,
            &published.note,
            &published.checkpoint,
        )
        .await
        .lines;
        if cosigned.len() >= policy.threshold().max(1) {
            publish(&ledger, &policy, &published, &cosigned);
            done = size.max(1);
        } else {
            // Not enough this round: try again after the interval, with this checkpoint or
            // a newer one.
            tracing::debug!(
                size,
                cosigned = cosigned.len(),
                threshold = policy.threshold(),
                "checkpoint not witnessed this round"
            );
        }
    }
}

/// The witnesses of the config, each not yet known to have cosigned anything.
fn witnesses_of(configs: &[WitnessConfig], policy: &WitnessPolicy) -> Vec<Witness> {
    configs
        .iter()
        .zip(policy.witnesses())
        .map(|(config, key)| Witness {
            key: key.clone(),
            url: format!("{}/add-checkpoint", config.url.trim_end_matches('/')),
            size: 0,
        })
        .collect()
}

/// What one round brought.
struct Round {
    /// The signature lines that verified, one group per witness that cosigned.
    lines: Vec<String>,
    /// The largest size a witness has cosigned beyond the checkpoint asked about.
    ahead: Option<u64>,
}

/// Asks every witness to cosign `note` (which says `checkpoint`) concurrently; returns the
/// signature lines that verified.
async fn round(
    prover: &Prover,
    client: &reqwest::Client,
    witnesses: &mut Vec<Witness>,
    note: &str,
    checkpoint: &Checkpoint,
) -> Round {
    let mut asks = tokio::task::JoinSet::new();
    let shared = Arc::new((note.to_owned(), checkpoint.clone()));
    for mut witness in witnesses.drain(..) {
        let (prover, client, shared) = (prover.clone(), client.clone(), shared.clone());
        asks.spawn(async move {
            let line = ask(&prover, &client, &mut witness, &shared.0, &shared.1).await;
            (witness, line)
        });
    }
    let mut done = Round {
        lines: Vec::new(),
        ahead: None,
    };
    while let Some(joined) = asks.join_next().await {
        let (witness, answer) = joined.expect("asking a witness does not panic");
        witnesses.push(witness);
        match answer {
            Ok(line) => done.lines.push(line),
            Err(Some(theirs)) => done.ahead = done.ahead.max(Some(theirs)),
            Err(None) => {}
        }
    }
    done
}

/// One witness's cosignature line for `note`; else the size it has cosigned when that is
/// beyond the checkpoint, or `None` (logged and counted).
async fn ask(
    prover: &Prover,
    client: &reqwest::Client,
    witness: &mut Witness,
    note: &str,
    checkpoint: &Checkpoint,
) -> Result<String, Option<u64>> {
    match cosign(prover, client, witness, note, checkpoint).await {
        Ok(line) => {
            METRICS.witness_cosigned(witness.key.name(), witness.size);
            Ok(line)
        }
        Err(WitnessError::Ahead(theirs)) => {
            // Another instance on the same database, or this one before a restart, had it
            // cosign a newer checkpoint: this instance's view catches up shortly.
            tracing::debug!(
                witness = witness.key.name(),
                theirs,
                size = checkpoint.size,
                "witness has cosigned a newer checkpoint than this instance publishes"
            );
            Err(Some(theirs))
        }
        Err(e) => {
            METRICS.witness_failed(witness.key.name());
            tracing::warn!(
                witness = witness.key.name(),
                url = %witness.url,
                size = checkpoint.size,
                error = %e,
                "witness did not cosign"
            );
            Err(None)
        }
    }
}

async fn cosign(
    prover: &Prover,
    client: &reqwest::Client,
    witness: &mut Witness,
    note: &str,
    checkpoint: &Checkpoint,
) -> Result<String, WitnessError> {
    let size = checkpoint.size;
    let mut conflicts = Vec::new();
    loop {
        let old = witness.size;
        if old > size {
            return Err(WitnessError::Ahead(old));
        }
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            let prover = prover.clone();
            tokio::task::spawn_blocking(move || prover(old, size))
                .await
                .map_err(|e| WitnessError::Proof(e.to_string()))?
                .map_err(WitnessError::Proof)?
        };
        let mut body = format!("old {old}\n");
        for hash in &proof {
            body.push_str(&hash.to_base64());
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let answer = client.post(&witness.url).body(body).send().await?;
        let status = answer.status();
        let text = read_limited(answer).await?;
        match status.as_u16() {
            200 => {
                let lines = check_answer(&witness.key, note, checkpoint, &text)?;
                witness.size = size;
                return Ok(lines);
            }
            409 => {
                let theirs = text
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| WitnessError::Refused {
                        status: 409,
                        body: one_line(&text),
                    })?;
                conflicts.push(theirs);
                if conflicts.len() > 1 {
                    return Err(WitnessError::Conflict(conflicts[0], theirs));
                }
                witness.size = theirs;
            }
            code => {
                return Err(WitnessError::Refused {
                    status: code,
                    body: one_line(&text),
                });
            }
        }
    }
}

/// The answer's body, up to [`MAX_ANSWER_BYTES`].
async fn read_limited(mut answer: reqwest::Response) -> Result<String, WitnessError> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(WitnessError::BadAnswer(format!(
                "answer longer than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The first line of a witness's error answer, bounded, for the log line.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

/// Keeps the lines of a witness's 200 answer that are valid cosignatures by its key.
fn check_answer(
    key: &CosignerKey,
    note: &str,
    checkpoint: &Checkpoint,
    text: &str,
) -> Result<String, WitnessError> {
    let with =
        add_signature_lines(note, text).map_err(|e| WitnessError::BadAnswer(e.to_string()))?;
    let parsed = Note::parse(&with).map_err(|e| WitnessError::BadAnswer(e.to_string()))?;
    match key.verify_note(&parsed, checkpoint) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(WitnessError::BadAnswer(
                "no line from the witness's key".into(),
            ));
        }
        Err(e) => return Err(WitnessError::BadAnswer(e.to_string())),
    }
    let prefix = format!("\u{2014} {} ", key.name());
    Ok(text
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .map(|line| format!("{line}\n"))
        .collect())
}

/// Adds the round's cosignatures to the note and publishes it as witnessed.
fn publish(ledger: &Ledger, policy: &WitnessPolicy, published: &Published, lines: &[String]) {
    let note = match add_signature_lines(&published.note, &lines.concat()) {
        Ok(note) => note,
        Err(e) => {
            tracing::error!(error = %e, "cosignatures do not fit the note");
            return;
        }
    };
    let checked = Note::parse(&note)
        .map_err(|e| e.to_string())
        .and_then(|parsed| {
            policy
                .check(&parsed, &published.checkpoint)
                .map_err(|e| e.to_string())
        });
    match checked {
        Ok(cosigned) => {
            let size = published.checkpoint.size;
            if ledger.set_witnessed(Witnessed {
                note,
                checkpoint: published.checkpoint.clone(),
                cosigned,
            }) {
                METRICS.witnessed(size);
                tracing::debug!(size, "witnessed checkpoint published");
            }
        }
        Err(e) => tracing::error!(error = %e, "the witnessed note does not pass the policy"),
    }
}

/// What [`cosign_store_checkpoint`] brought back.
#[derive(Debug, Clone)]
pub struct StoreCosigned {
    /// The store's checkpoint note with every cosignature line that verified.
    pub note: String,
    /// What it says.
    pub checkpoint: Checkpoint,
    /// How many witnesses cosigned it.
    pub cosigned: usize,
}

/// How many rounds [`cosign_store_checkpoint`] makes at most.
const EXPORT_ROUNDS: usize = 3;

/// For `evidentd export-tiles`: asks every witness of the config to cosign the store's
/// latest checkpoint, with consistency proofs read from the store (`verifier` is the log
/// key; the note must verify under it). When fewer than the threshold cosigned and a witness
/// has already cosigned a newer checkpoint — the log went on while the export ran, on
/// PostgreSQL — the store's checkpoint is read again and everyone asked again, up to three
/// rounds, half a second apart. Returns the round with the most cosignatures: whether they
/// are enough is the caller's to say.
pub async fn cosign_store_checkpoint(
    store: Arc<crate::store::Store>,
    configs: &[WitnessConfig],
    policy: &WitnessPolicy,
    verifier: &evident_core::note::Verifier,
    timeout: Duration,
) -> Result<StoreCosigned, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("evidentd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut witnesses = witnesses_of(configs, policy);
    let prover: Prover = {
        let store = store.clone();
        Arc::new(move |old, new| {
            evident_core::merkle::consistency_proof(store.as_ref(), old, new)
                .map_err(|e| e.to_string())
        })
    };
    let threshold = policy.threshold().max(1);
    let mut best: Option<StoreCosigned> = None;
    for attempt in 1..=EXPORT_ROUNDS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let reader = store.clone();
        let note = tokio::task::spawn_blocking(move || reader.checkpoint())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("the store holds no signed checkpoint yet")?;
        let checkpoint = Checkpoint::verify(&note, verifier).map_err(|e| {
            format!("the store's checkpoint does not verify under the log key: {e}")
        })?;
        let round = round(&prover, &client, &mut witnesses, &note, &checkpoint).await;
        let note = add_signature_lines(&note, &round.lines.concat())
            .map_err(|e| format!("the cosignatures do not fit the note: {e}"))?;
        let this = StoreCosigned {
            note,
            checkpoint,
            cosigned: round.lines.len(),
        };
        let enough = this.cosigned >= threshold;
        if best.as_ref().is_none_or(|b| this.cosigned > b.cosigned) {
            best = Some(this);
        }
        match round.ahead {
            Some(theirs) if !enough => tracing::warn!(
                theirs,
                size = best.as_ref().map_or(0, |b| b.checkpoint.size),
                "a witness has cosigned a newer checkpoint than the store's: the log is \
                 running; asking again with the store's latest"
            ),
            _ => break,
        }
    }
    Ok(best.expect("at least one round ran"))
}
