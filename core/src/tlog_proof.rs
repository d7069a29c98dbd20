//! C2SP tlog-proof (c2sp.org/tlog-proof@v1): an offline-verifiable proof that an entry is
//! in a log, under a checkpoint signed by the log and cosigned by witnesses.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64, optional>
//! index <decimal>
//! <base64 hash, one per line: the inclusion proof>
//!
//! <the checkpoint note, verbatim>
//! ```
//!
//! [`TlogProof::parse`] refuses every other spelling; [`TlogProof::verify`] checks the log's
//! signature, the witness policy and the inclusion proof. The `extra` data is never
//! authenticated: an application that uses it must bind it into the leaf hash it checks.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::cosign::{CosignError, Cosigned, WitnessPolicy};
use crate::hash::Hash;
use crate::merkle::{ProofError, verify_inclusion};
use crate::note::{Checkpoint, Note, NoteError, Verifier};

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The most hashes an inclusion proof in a tree of at most 2^64 - 1 leaves has.
pub const MAX_PROOF_HASHES: usize = 63;

/// Why a tlog proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// A line breaks the format.
    #[error("tlog proof line {line}: {why}")]
    Malformed {
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The checkpoint is malformed, not signed by the log's key, or from another origin.
    #[error("tlog proof checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// Too few trusted witnesses cosigned the checkpoint, or a cosignature does not verify.
    #[error("tlog proof checkpoint witnesses: {0}")]
    Witnesses(#[from] CosignError),
    /// The inclusion proof does not bind the leaf at this index to the signed root.
    #[error(
        "tlog proof of entry {index} in the checkpoint of size {size} does not verify: {error}"
    )]
    Inclusion {
        /// The proof's index.
        index: u64,
        /// The checkpoint's tree size.
        size: u64,
        /// Why the proof fails.
        error: ProofError,
    },
}

/// A parsed tlog proof. Nothing in it is verified until [`TlogProof::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated application data (the `extra` line).
    pub extra: Option<Vec<u8>>,
    /// The entry's index in the log.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up to the root's child (at most 63).
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim (ending in a newline).
    pub checkpoint: String,
}

/// What a verified proof shows: the checkpoint, signed by the log, and the trusted
/// witnesses' cosignatures on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The checkpoint whose root includes the entry.
    pub checkpoint: Checkpoint,
    /// The trusted witnesses' verified cosignatures, in the policy's order.
    pub cosigned: Vec<Cosigned>,
}

/// Takes the next line, without its newline, counting lines from 1: every line before the
/// checkpoint ends in one.
fn take_line<'a>(
    rest: &mut &'a str,
    line_no: &mut usize,
) -> Result<(usize, &'a str), TlogProofError> {
    *line_no += 1;
    let (line, tail) = rest
        .split_once('\n')
        .ok_or_else(|| TlogProofError::Malformed {
            line: *line_no,
            why: "the proof ends before the checkpoint".into(),
        })?;
    *rest = tail;
    Ok((*line_no, line))
}

impl TlogProof {
    /// The proof's text: the header, the optional `extra` line, the `index` line, one line
    /// per proof hash, an empty line and the checkpoint.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a proof, refusing anything but the canonical form: the exact header, an
    /// optional `extra` line of standard base64, `index` in decimal without leading zeros,
    /// at most 63 lines of base64 32-byte hashes, an empty line, then a signed note whose
    /// text is a checkpoint.
    pub fn parse(text: &str) -> Result<TlogProof, TlogProofError> {
        let bad = |line: usize, why: String| TlogProofError::Malformed { line, why };
        let mut rest = text;
        let mut line_no = 0;
        let (n, header) = take_line(&mut rest, &mut line_no)?;
        if header != HEADER {
            return Err(bad(n, format!("expected {HEADER:?}, found {header:?}")));
        }

        let (mut n, mut line) = take_line(&mut rest, &mut line_no)?;
        let mut extra = None;
        if line.starts_with("extra") {
            let data = line
                .strip_prefix("extra ")
                .ok_or_else(|| bad(n, "extra is not followed by a space".into()))?;
            extra = Some(
                STANDARD
                    .decode(data)
                    .map_err(|_| bad(n, "extra data is not standard base64".into()))?,
            );
            (n, line) = take_line(&mut rest, &mut line_no)?;
        }

        let digits = line.strip_prefix("index ").ok_or_else(|| {
            bad(
                n,
                format!("expected \"index <number>\" or an extra line, found {line:?}"),
            )
        })?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return Err(bad(
                n,
                format!("index {digits:?} is not a decimal number without leading zeros"),
            ));
        }
        let index = digits
            .parse::<u64>()
            .map_err(|_| bad(n, format!("index {digits} does not fit in 64 bits")))?;

        let mut proof = Vec::new();
        loop {
            let (n, line) = take_line(&mut rest, &mut line_no)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(bad(
                    n,
                    format!("more than {MAX_PROOF_HASHES} inclusion proof hashes"),
                ));
            }
            let hash = Hash::from_base64(line).map_err(|e| {
                bad(
                    n,
                    format!("inclusion proof hash is not a base64 32-byte hash: {e}"),
                )
            })?;
            // One hash, one spelling: refuse base64 that decodes but is not canonical.
            if hash.to_base64() != line {
                return Err(bad(
                    n,
                    "inclusion proof hash is not canonical base64".into(),
                ));
            }
            proof.push(hash);
        }

        let checkpoint_line = line_no + 1;
        let note = Note::parse(rest).map_err(|e| {
            bad(
                checkpoint_line,
                format!("the checkpoint is not a signed note: {e}"),
            )
        })?;
        Checkpoint::parse_body(&note.text).map_err(|e| {
            bad(
                checkpoint_line,
                format!("the signed note is not a checkpoint: {e}"),
            )
        })?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// Verifies that the entry whose leaf hash is `leaf_hash` is at this proof's index in
    /// the log: the checkpoint is signed by `log_key` (and its origin is the key's name),
    /// at least the policy's threshold of trusted witnesses cosigned it, and the inclusion
    /// proof leads from the leaf to the signed root.
    pub fn verify(
        &self,
        leaf_hash: &Hash,
        log_key: &Verifier,
        witnesses: &WitnessPolicy,
    ) -> Result<VerifiedProof, TlogProofError> {
        let checkpoint = Checkpoint::verify(&self.checkpoint, log_key)?;
        let note = Note::parse(&self.checkpoint)?;
        let cosigned = witnesses.check(&note, &checkpoint)?;
        verify_inclusion(
            self.index,
            checkpoint.size,
            leaf_hash,
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|error| TlogProofError::Inclusion {
            index: self.index,
            size: checkpoint.size,
            error,
        })?;
        Ok(VerifiedProof {
            checkpoint,
            cosigned,
        })
    }
}
