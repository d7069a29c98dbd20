//! `evident submit`: envelope files into the log, in batches, each receipt beside its file.

use std::path::{Path, PathBuf};

use evident_client::output::{SubmitOutput, SubmittedFile};
use evident_client::report::escape_terminal;
use evident_client::submit::{self, FilesSummary};
use evident_client::{CheckpointState, ClientError};

use crate::{Cli, VerificationFailed, connect, format_is_human, log_key, print_json, state_path};

// `evident submit` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Envelope files.
    #[arg(required = true)]
    pub(crate) envelopes: Vec<PathBuf>,
    /// Write receipts into this folder instead.
    #[arg(long)]
    pub(crate) receipt_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) connection: crate::Connection,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    // Read and decode everything first: a bad file stops before anything is sent.
    let mut envelopes = Vec::new();
    for path in &args.envelopes {
        envelopes.push((path.clone(), submit::read_envelope(path)?));
    }
    let key = log_key(cli)?;
    let state_file = state_path(cli);
    let mut state = CheckpointState::load(&state_file)?;
    let mut client = connect(cli).await?;
    let mut results: SubmitOutput = Vec::new();
    let human = format_is_human(cli);
    let witnesses = crate::witness_policy(cli)?;
    if witnesses.threshold() > 0 && key.is_none() {
        anyhow::bail!(
            "witnesses are required but no log key is pinned: give --log-key (or log_key in \
             the --trust file) so the receipts can be verified"
        );
    }
    let summary = submit::submit_files(
        &mut client,
        key.as_ref(),
        &witnesses,
        &mut state,
        args.receipt_dir.as_deref(),
        &envelopes,
        |path, outcome| results.push(line(human, path, outcome)),
    )
    .await?;
    if key.is_some() {
        state.save(&state_file)?;
    }
    if !human {
        print_json(&results);
    }
    let n = summary.failed;
    let total = args.envelopes.len();
    match summary {
        FilesSummary { failed: 0, .. } => Ok(()),
        FilesSummary {
            verification_failed: true,
            ..
        } => Err(VerificationFailed(format!("{n} of {total} envelopes failed")).into()),
        _ => Err(anyhow::anyhow!("{n} of {total} envelopes failed")),
    }
}

/// Prints a file's line (human output) and returns its JSON.
fn line(human: bool, path: &Path, outcome: Result<submit::Logged, ClientError>) -> SubmittedFile {
    match outcome {
        Ok(logged) => {
            if human {
                println!(
                    "{}: entry {}{}, leaf hash {}, receipt {}{}",
                    path.display(),
                    logged.index,
                    if logged.duplicate {
                        " (already in the log)"
                    } else {
                        ""
                    },
                    logged.leaf_hash,
                    logged.receipt_path.display(),
                    if logged.verified {
                        ", verified"
                    } else {
                        ", not verified (no --log-key)"
                    }
                );
            }
            SubmittedFile::Logged {
                envelope: path.to_owned(),
                index: logged.index,
                duplicate: logged.duplicate,
                leaf_hash: logged.leaf_hash.to_hex(),
                tree_size: logged.tree_size,
                receipt: logged.receipt_path,
                verified: logged.verified,
            }
        }
        Err(e) => {
            let verification_failed = e.is_verification_failure();
            let reason = match &e {
                ClientError::Status { reason, .. } => reason.clone(),
                _ => None,
            };
            let message = format!("{:#}", anyhow::Error::from(e));
            if human {
                let text: Vec<_> = message.lines().map(escape_terminal).collect();
                println!("{}: failed: {}", path.display(), text.join(" "));
            }
            SubmittedFile::Failed {
                envelope: path.to_owned(),
                verification_failed,
                reason,
                error: message,
            }
        }
    }
}
