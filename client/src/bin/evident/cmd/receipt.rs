//! `evident receipt verify` (formerly `evident verify-receipt`, still accepted): a receipt
//! checked offline against the pinned log key.

use std::path::PathBuf;

use anyhow::Context as _;
use evident_client::CheckpointState;
use evident_client::output::ReceiptOutput;
use evident_client::time_text;
use evident_core::note::Checkpoint;
use evident_core::receipt::Receipt;
use evident_core::statement::Statement;

use crate::{Cli, Format, VerificationFailed, print_json, require_log_key, state_path};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ReceiptCommand {
    /// Verify a receipt offline against the pinned log key.
    Verify(Args),
}

/// `evident receipt verify` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The receipt file written by `evident submit`.
    pub(crate) receipt: PathBuf,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let path = &args.receipt;
    let key = require_log_key(cli)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let receipt = Receipt::from_json(&bytes).with_context(|| format!("{}", path.display()))?;
    let verified = receipt
        .verify(&key)
        .map_err(|e| VerificationFailed(format!("{}: {e}", path.display())))?;
    // Offline, a receipt can still be compared with a checkpoint of the same size seen before.
    CheckpointState::load(&state_path(cli))?.check_receipt(&key, &verified.checkpoint)?;
    // And it must carry the cosignatures of the witnesses the client requires.
    evident_client::check_witnesses(
        &crate::witness_policy(cli)?,
        &receipt.checkpoint,
        &verified.checkpoint,
    )?;
    let statement = Statement::from_envelope(&receipt.envelope).ok();
    let cp: &Checkpoint = &verified.checkpoint;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&ReceiptOutput {
            verified: true,
            index: receipt.index,
            integrated_time: time_text(receipt.integrated_time_nanos),
            kind: receipt.kind.into(),
            leaf_hash: receipt.leaf_hash.to_hex(),
            predicate_type: statement.map(|s| s.predicate_type),
            origin: cp.origin.clone(),
            tree_size: cp.size,
            root_hash: cp.root.to_hex(),
        }),
        Format::Human => println!(
            "verified: entry {} of {} ({}), integrated {}, included in the signed tree of {} entries",
            receipt.index,
            cp.origin,
            statement
                .map(|s| s.predicate_type)
                .unwrap_or_else(|| receipt.kind.to_string()),
            time_text(receipt.integrated_time_nanos),
            cp.size
        ),
    }
    Ok(())
}
