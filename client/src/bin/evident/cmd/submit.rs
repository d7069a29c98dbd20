//! `evident submit`: envelope files into the log, in batches, each receipt beside its file.

use std::path::{Path, PathBuf};

use crate::{Cli, VerificationFailed, connect, format_is_human, log_key, print_json, state_path};
use anyhow::Context as _;
use evident_client::report::escape_terminal;
use evident_client::{CheckpointState, Client, ClientError};
use evident_core::dsse::Envelope;
use evident_core::note::Verifier;
use evident_core::receipt::Receipt;
use serde_json::json;

// `evident submit` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Envelope files.
    #[arg(required = true)]
    pub(crate) envelopes: Vec<PathBuf>,
    /// Write receipts into this folder instead.
    #[arg(long)]
    pub(crate) receipt_dir: Option<PathBuf>,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    submit(cli, &args.envelopes, args.receipt_dir.as_deref()).await
}

async fn submit(cli: &Cli, files: &[PathBuf], receipt_dir: Option<&Path>) -> anyhow::Result<()> {
    // Read and decode everything first: a bad file stops before anything is sent.
    let mut envelopes = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let envelope =
            Envelope::from_json(&bytes).with_context(|| format!("{}", path.display()))?;
        envelopes.push((path.as_path(), envelope));
    }
    let key = log_key(cli)?;
    let state_file = state_path(cli);
    let mut state = CheckpointState::load(&state_file)?;
    let mut client = connect(cli).await?;
    let mut results = Vec::new();
    let mut submitted = Submitted {
        cli,
        key: key.as_ref(),
        receipt_dir,
        state: &mut state,
        client: &mut client,
        seen: None,
    };
    let mut failed = (0, false);
    if let [(path, envelope)] = envelopes.as_slice() {
        // One file: its error is the command's.
        let (receipt, duplicate) = submitted
            .client
            .submit(envelope)
            .await
            .with_context(|| format!("submitting {}", path.display()))?;
        results.push(submitted.finish(path, envelope, receipt, duplicate).await?);
    } else {
        // Many: in batches, one line per file, and every file is answered.
        for batch in batches(&envelopes) {
            let sent: Vec<Envelope> = batch.iter().map(|(_, e)| e.clone()).collect();
            let answers = match submitted.client.submit_batch(&sent).await {
                Ok(answers) => answers,
                Err(refused) => {
                    let text = refused.to_string();
                    sent.iter()
                        .map(|_| {
                            Err(ClientError::Status {
                                code: tonic::Code::Unknown,
                                message: text.clone(),
                            })
                        })
                        .collect()
                }
            };
            // The answers of a batch carry checkpoints in the order the log signed them,
            // not the files' order: the state advances through them by tree size.
            submitted.seen = Some(Vec::new());
            for ((path, envelope), answer) in batch.iter().zip(answers) {
                let outcome = match answer {
                    Ok((receipt, duplicate)) => {
                        submitted.finish(path, envelope, receipt, duplicate).await
                    }
                    Err(refused) => Err(anyhow::Error::from(refused)),
                };
                match outcome {
                    Ok(result) => results.push(result),
                    Err(e) => {
                        failed.0 += 1;
                        failed.1 |= e.downcast_ref::<VerificationFailed>().is_some()
                            || e.downcast_ref::<ClientError>()
                                .is_some_and(ClientError::is_verification_failure);
                        let message = format!("{e:#}");
                        let text: Vec<_> = message.lines().map(escape_terminal).collect();
                        let text = text.join(" ");
                        if format_is_human(cli) {
                            println!("{}: failed: {text}", path.display());
                        }
                        results.push(json!({"envelope": path, "error": format!("{e:#}")}));
                    }
                }
            }
            let mut seen = submitted.seen.take().unwrap_or_default();
            seen.sort();
            seen.dedup_by_key(|(size, _)| *size);
            if let Some(key) = key.as_ref() {
                for (_, note) in seen {
                    submitted
                        .state
                        .advance(submitted.client, key, &note)
                        .await?;
                }
            }
        }
    }
    if key.is_some() {
        state.save(&state_file)?;
    }
    if !format_is_human(cli) {
        print_json(&serde_json::Value::Array(results));
    }
    match failed {
        (0, _) => Ok(()),
        (n, true) => {
            Err(VerificationFailed(format!("{n} of {} envelopes failed", files.len())).into())
        }
        (n, false) => Err(anyhow::anyhow!("{n} of {} envelopes failed", files.len())),
    }
}

/// The envelopes of `evident submit` in batches the server accepts: at most
/// [`evident_client::MAX_ENVELOPES_PER_REQUEST`] envelopes and about 3 MiB each.
fn batches<'a>(envelopes: &'a [(&'a Path, Envelope)]) -> Vec<&'a [(&'a Path, Envelope)]> {
    const BATCH_BYTES: usize = 3 << 20;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, envelope)) in envelopes.iter().enumerate() {
        let size = evident_core::record::encoded_envelope_len(envelope);
        if i > start
            && (i - start == evident_client::MAX_ENVELOPES_PER_REQUEST
                || bytes + size > BATCH_BYTES)
        {
            out.push(&envelopes[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < envelopes.len() {
        out.push(&envelopes[start..]);
    }
    out
}

/// What `evident submit` does with each receipt.
struct Submitted<'a> {
    cli: &'a Cli,
    key: Option<&'a Verifier>,
    receipt_dir: Option<&'a Path>,
    state: &'a mut CheckpointState,
    client: &'a mut Client,
    /// When set, receipts do not advance the checkpoint state one by one: their
    /// checkpoints (tree size and note) are kept here, to advance through in size order.
    seen: Option<Vec<(u64, String)>>,
}

impl Submitted<'_> {
    /// Checks a receipt for `envelope` (from `path`), verifies it when the log key is
    /// pinned, writes it beside the file (or into the receipt folder) and prints its line.
    async fn finish(
        &mut self,
        path: &Path,
        envelope: &Envelope,
        receipt: Receipt,
        duplicate: bool,
    ) -> anyhow::Result<serde_json::Value> {
        // A duplicate is answered with the entry already logged: it must be ours, signed by
        // our signatures, or the gate will not find our evidence.
        if let Some(missing) = envelope
            .signatures
            .iter()
            .position(|own| !receipt.envelope.signatures.iter().any(|s| s.sig == own.sig))
        {
            return Err(VerificationFailed(format!(
                "{}: the log answered with entry {} as a duplicate, but the logged envelope \
                 does not carry this envelope's signature {missing}: it is not your evidence; \
                 do not rely on it",
                path.display(),
                receipt.index
            ))
            .into());
        }
        let verified = match self.key {
            Some(key) => {
                receipt
                    .verify(key)
                    .map_err(|e| VerificationFailed(format!("{}: receipt: {e}", path.display())))?;
                match &mut self.seen {
                    Some(seen) => seen.push((receipt.tree_size, receipt.checkpoint.clone())),
                    None => {
                        self.state
                            .advance(self.client, key, &receipt.checkpoint)
                            .await?;
                    }
                }
                true
            }
            None => false,
        };
        let receipt_path = match self.receipt_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                dir.join(format!(
                    "{}.receipt.json",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ))
            }
            None => PathBuf::from(format!("{}.receipt.json", path.display())),
        };
        std::fs::write(&receipt_path, receipt.to_json())
            .with_context(|| format!("writing {}", receipt_path.display()))?;
        if format_is_human(self.cli) {
            println!(
                "{}: entry {}{}, leaf hash {}, receipt {}{}",
                path.display(),
                receipt.index,
                if duplicate {
                    " (already in the log)"
                } else {
                    ""
                },
                receipt.leaf_hash,
                receipt_path.display(),
                if verified {
                    ", verified"
                } else {
                    ", not verified (no --log-key)"
                }
            );
        }
        Ok(json!({
            "envelope": path, "index": receipt.index, "duplicate": duplicate,
            "leafHash": receipt.leaf_hash.to_hex(), "treeSize": receipt.tree_size,
            "receipt": receipt_path, "verified": verified,
        }))
    }
}
