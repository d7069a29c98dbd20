//! `evident receipt verify` (formerly `evident verify-receipt`, still accepted): a receipt,
//! or a portable proof (C2SP tlog-proof) exported from one, checked offline against the
//! pinned log key; and `evident receipt export`, which writes that portable proof.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use evident_client::CheckpointState;
use evident_client::output::{CheckpointRef, ReceiptOutput};
use evident_client::reader::prove_still_included;
use evident_client::time_text;
use evident_core::note::{Checkpoint, Verifier};
use evident_core::receipt::Receipt;
use evident_core::record::LeafRecord;
use evident_core::statement::Statement;
use evident_core::tlog_proof::{self, TlogProof, TlogProofError};

use crate::{Cli, Format, VerificationFailed, print_json, require_log_key, state_path};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ReceiptCommand {
    /// Verify a receipt, or a tlog-proof file written by `receipt export`, offline against
    /// the pinned log key (and the witnesses required).
    Verify(Args),
    /// Verify a receipt, then write it as a portable proof (C2SP tlog-proof) that carries
    /// the entry's leaf record and the checkpoint with its witness cosignatures.
    Export(ExportArgs),
}

/// `evident receipt verify` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The receipt file written by `evident submit`, or a tlog-proof file written by
    /// `evident receipt export` (told apart by content).
    pub(crate) receipt: PathBuf,
    /// Also prove the entry still included in the log's latest checkpoint, read from the
    /// log's tiles (a URL, or a folder written by `evidentd export-tiles`): that checkpoint
    /// is verified, proven consistent with the receipt's and with the one seen before, and
    /// the entry's inclusion in it computed from the hash tiles.
    #[command(flatten)]
    pub(crate) tiles: crate::TilesArg,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
    #[command(flatten)]
    pub(crate) output: crate::DocOutput,
}

/// The file formats `evident receipt export` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// C2SP tlog-proof (c2sp.org/tlog-proof@v1), with the leaf record as its `extra` data.
    #[default]
    TlogProof,
}

/// `evident receipt export` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The receipt file written by `evident submit`.
    pub(crate) receipt: PathBuf,
    /// The format of the file written.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: ExportFormat,
    /// Where to write the proof (default: RECEIPT.tlog-proof); `-` for standard output.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) log: crate::LogArgs,
}

/// A receipt or tlog proof that verified: the entry's leaf record and the checkpoint it is
/// proven in.
struct Proven {
    record: LeafRecord,
    checkpoint: Checkpoint,
}

pub(crate) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let path = &args.receipt;
    let key = require_log_key(cli)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let proven = if is_tlog_proof(&bytes) {
        verify_tlog_proof(cli, &key, path, &bytes)?
    } else {
        let receipt = Receipt::from_json(&bytes).with_context(|| format!("{}", path.display()))?;
        verify_receipt(cli, &key, path, &receipt)?
    };
    let record = &proven.record;
    let latest = match args.tiles.open()? {
        Some(mut tiles) => {
            let state_file = state_path(cli);
            let mut state = CheckpointState::load(&state_file)?;
            let latest = prove_still_included(
                &mut tiles,
                &mut state,
                &key,
                &crate::witness_policy(cli)?,
                record.index(),
                &record.leaf_hash(),
                &proven.checkpoint,
            )
            .await;
            // The log's latest checkpoint, once verified and proven consistent with the one
            // seen before, is kept even when the receipt then fails against it (a fork's
            // receipt): the next look is checked against this view.
            state.save(&state_file)?;
            let latest = latest.map_err(|e| {
                if e.is_verification_failure() {
                    anyhow::Error::from(VerificationFailed(format!(
                        "{}: {e} (read from {})",
                        path.display(),
                        tiles.describe()
                    )))
                } else {
                    anyhow::Error::from(e)
                        .context(format!("reading the log's tiles at {}", tiles.describe()))
                }
            })?;
            Some(latest)
        }
        None => None,
    };
    let statement = Statement::from_envelope(record.envelope()).ok();
    let cp = &proven.checkpoint;
    match cli.format {
        Format::Json | Format::Jsonl | Format::Csv => print_json(&ReceiptOutput {
            verified: true,
            index: record.index(),
            integrated_time: time_text(record.integrated_time_nanos()),
            kind: record.kind().into(),
            leaf_hash: record.leaf_hash().to_hex(),
            predicate_type: statement.map(|s| s.predicate_type),
            origin: cp.origin.clone(),
            tree_size: cp.size,
            root_hash: cp.root.to_hex(),
            still_included_in: latest.as_ref().map(CheckpointRef::from),
        }),
        Format::Human => println!(
            "verified: entry {} of {} ({}), integrated {}, included in the signed tree of {} entries",
            record.index(),
            cp.origin,
            statement
                .map(|s| s.predicate_type)
                .unwrap_or_else(|| record.kind().to_string()),
            time_text(record.integrated_time_nanos()),
            cp.size
        ),
    }
    if let (Format::Human, Some(latest)) = (cli.format, &latest) {
        println!(
            "still included in the log's latest checkpoint of {} entries, read from its tiles",
            latest.size
        );
    }
    Ok(())
}

/// Verifies a receipt under the log key, against the checkpoint state, and with the
/// cosignatures of the witnesses required.
fn verify_receipt(
    cli: &Cli,
    key: &Verifier,
    path: &Path,
    receipt: &Receipt,
) -> anyhow::Result<Proven> {
    let verified = receipt
        .verify(key)
        .map_err(|e| VerificationFailed(format!("{}: {e}", path.display())))?;
    // Offline, a receipt can still be compared with a checkpoint of the same size seen before.
    CheckpointState::load(&state_path(cli))?.check_receipt(key, &verified.checkpoint)?;
    // And it must carry the cosignatures of the witnesses the client requires.
    evident_client::check_witnesses(
        &crate::witness_policy(cli)?,
        &receipt.checkpoint,
        &verified.checkpoint,
    )?;
    Ok(Proven {
        record: verified.record,
        checkpoint: verified.checkpoint,
    })
}

/// Why too few cosignatures matter, as the library says it for receipts and checkpoints.
const WITNESS_HINT: &str = "without the witnesses' word this checkpoint may be a view of the \
     log shown only to this client (a fork); export the receipt again once it is proven at a \
     witnessed checkpoint (`evident submit` with the witnesses required)";

/// Whether a file is a tlog proof rather than a receipt: by its first line.
fn is_tlog_proof(bytes: &[u8]) -> bool {
    bytes.starts_with(format!("{}\n", tlog_proof::HEADER).as_bytes())
}

/// Verifies a tlog proof written by `evident receipt export`: its `extra` data must be the
/// leaf record of the entry at the proof's index, and that record's leaf hash must be proven
/// included in a checkpoint signed by the log and cosigned by the witnesses required, and
/// that checkpoint must agree with the checkpoint state.
fn verify_tlog_proof(
    cli: &Cli,
    key: &Verifier,
    path: &Path,
    bytes: &[u8],
) -> anyhow::Result<Proven> {
    let failed = |why: String| VerificationFailed(format!("{}: {why}", path.display()));
    let text = std::str::from_utf8(bytes)
        .with_context(|| format!("{}: a tlog proof is UTF-8 text", path.display()))?;
    let proof = TlogProof::parse(text).with_context(|| format!("{}", path.display()))?;
    let extra = proof.extra.as_deref().ok_or_else(|| {
        failed(
            "the tlog proof carries no leaf record (no extra line), so Evident cannot tell \
             which entry it proves; export the receipt with `evident receipt export`"
                .into(),
        )
    })?;
    // The `extra` bytes are not authenticated by themselves: anyone can write any record
    // there. They are trusted only because their leaf hash is what the inclusion proof below
    // proves to be at this index under the signed root, so nothing from the record may be
    // used before that proof verifies.
    let record = LeafRecord::decode(extra)
        .map_err(|e| failed(format!("the extra data is not an Evident leaf record: {e}")))?;
    if record.index() != proof.index {
        return Err(failed(format!(
            "the leaf record is entry {}, the proof is for index {}",
            record.index(),
            proof.index
        ))
        .into());
    }
    let verified = proof
        .verify(&record.leaf_hash(), key, &crate::witness_policy(cli)?)
        .map_err(|e| match e {
            TlogProofError::Witnesses(_) => failed(format!("{e}: {WITNESS_HINT}")),
            e => failed(e.to_string()),
        })?;
    CheckpointState::load(&state_path(cli))?.check_receipt(key, &verified.checkpoint)?;
    Ok(Proven {
        record,
        checkpoint: verified.checkpoint,
    })
}

/// `evident receipt export`: verifies the receipt as `receipt verify` does, then writes it
/// as a tlog proof.
pub(crate) async fn export(cli: &Cli, args: &ExportArgs) -> anyhow::Result<()> {
    let path = &args.receipt;
    let key = require_log_key(cli)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let receipt = Receipt::from_json(&bytes).with_context(|| format!("{}", path.display()))?;
    // A receipt that does not hold is never passed on in another format.
    let proven = verify_receipt(cli, &key, path, &receipt)?;
    let text = match args.format {
        ExportFormat::TlogProof => TlogProof {
            extra: Some(proven.record.encode()),
            index: receipt.index,
            proof: receipt.proof.clone(),
            checkpoint: receipt.checkpoint.clone(),
        }
        .to_text(),
    };
    let out = args.out.clone().unwrap_or_else(|| default_out(path));
    if out == Path::new("-") {
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the proof to standard output")?;
        return Ok(());
    }
    write_replacing(&out, text.as_bytes())?;
    println!(
        "exported: entry {} of {} as a tlog-proof to {} (signed tree of {} entries)",
        receipt.index,
        proven.checkpoint.origin,
        out.display(),
        proven.checkpoint.size
    );
    Ok(())
}

/// `RECEIPT.tlog-proof`, beside the receipt.
fn default_out(receipt: &Path) -> PathBuf {
    let mut name = receipt.as_os_str().to_owned();
    name.push(".tlog-proof");
    PathBuf::from(name)
}

/// Writes `bytes` to a temporary file beside `out`, then renames it over `out`: a reader
/// sees the old file or the whole new one, never half a proof.
fn write_replacing(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp_name = out
        .file_name()
        .with_context(|| format!("--out {} names no file", out.display()))?
        .to_owned();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, out) {
        // Best effort: the rename's error is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tlog_proof_is_told_from_a_receipt_by_its_first_line() {
        assert!(is_tlog_proof(b"c2sp.org/tlog-proof@v1\nindex 0\n"));
        assert!(!is_tlog_proof(b"c2sp.org/tlog-proof@v1"));
        assert!(!is_tlog_proof(b"c2sp.org/tlog-proof@v2\nindex 0\n"));
        assert!(!is_tlog_proof(b"{\"index\": 0}"));
    }

    #[test]
    fn the_proof_is_written_beside_the_receipt_by_default() {
        assert_eq!(
            default_out(Path::new("dir/e.json.receipt.json")),
            Path::new("dir/e.json.receipt.json.tlog-proof")
        );
    }
}
