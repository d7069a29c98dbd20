//! The `add-checkpoint` request body (c2sp.org/tlog-witness): an `old <size>` line, at
//! most 63 consistency proof lines, a blank line, then the signed checkpoint. Parsing
//! checks the shape only; nothing here knows which logs are followed or what is stored.

use evident_core::Hash;
use evident_core::note::{Checkpoint, Note};

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// A well-formed `add-checkpoint` request: nothing in it is verified yet.
#[derive(Debug, Clone)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the log says the witness holds.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as submitted.
    pub note_text: String,
    /// The parsed note.
    pub note: Note,
    /// The checkpoint in the note's body.
    pub checkpoint: Checkpoint,
}

/// Why a request body is malformed (always answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl AddCheckpoint {
    /// Parses a request body.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, Malformed> {
        let bad = |why: String| Malformed(why);
        let body =
            std::str::from_utf8(body).map_err(|_| bad("request body is not UTF-8".into()))?;
        let (old_line, mut rest) = body
            .split_once('\n')
            .ok_or_else(|| bad("request body has no old size line".into()))?;
        let old = parse_old(old_line)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or_else(|| {
                bad("request body has no blank line before the checkpoint".into())
            })?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                )));
            }
            let hash = Hash::from_base64(line).map_err(|e| {
                bad(format!(
                    "consistency proof line {} is not a base64 hash: {e}",
                    proof.len() + 1
                ))
            })?;
            proof.push(hash);
        }
        let note = Note::parse(rest).map_err(|e| bad(format!("checkpoint note: {e}")))?;
        let checkpoint = Checkpoint::parse_body(&note.text).map_err(|e| bad(e.to_string()))?;
        Ok(AddCheckpoint {
            old,
            proof,
            note_text: rest.to_owned(),
            note,
            checkpoint,
        })
    }
}

/// `old <decimal>`, no leading zeroes (`0` alone is zero).
fn parse_old(line: &str) -> Result<u64, Malformed> {
    let bad = || {
        Malformed(format!(
            "first line {line:?} is not \"old <size>\" with a decimal size without leading zeroes"
        ))
    };
    let digits = line.strip_prefix("old ").ok_or_else(bad)?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_core::SigningKey;
    use evident_core::note::Signer;

    fn note() -> String {
        let signer = Signer::new("log.example", SigningKey::from_bytes(&[3; 32])).unwrap();
        Checkpoint {
            origin: "log.example".into(),
            size: 4,
            root: Hash::sha256(b"x"),
            extensions: vec![],
        }
        .sign(&signer)
        .unwrap()
    }

    #[test]
    fn a_request_with_a_proof_parses() {
        let h = Hash::sha256(b"p").to_base64();
        let body = format!("old 2\n{h}\n{h}\n\n{}", note());
        let req = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(req.old, 2);
        assert_eq!(req.proof.len(), 2);
        assert_eq!(req.checkpoint.size, 4);
        assert_eq!(req.note_text, note());
    }

    #[test]
    fn old_sizes_with_leading_zeroes_or_signs_are_refused() {
        for line in [
            "old 01", "old +1", "old", "old ", "Old 1", "old 1 ", "old -0",
        ] {
            let body = format!("{line}\n\n{}", note());
            assert!(AddCheckpoint::parse(body.as_bytes()).is_err(), "{line}");
        }
        assert!(AddCheckpoint::parse(format!("old 0\n\n{}", note()).as_bytes()).is_ok());
    }

    #[test]
    fn sixty_four_proof_lines_are_refused() {
        let h = Hash::sha256(b"p").to_base64();
        let lines = |n: usize| format!("{h}\n").repeat(n);
        let ok = format!("old 1\n{}\n{}", lines(63), note());
        assert!(AddCheckpoint::parse(ok.as_bytes()).is_ok());
        let err = AddCheckpoint::parse(format!("old 1\n{}\n{}", lines(64), note()).as_bytes())
            .unwrap_err();
        assert!(err.0.contains("63"), "{err}");
    }

    #[test]
    fn a_missing_blank_line_or_bad_hash_is_refused() {
        assert!(AddCheckpoint::parse(b"old 1\n").is_err());
        assert!(
            AddCheckpoint::parse(format!("old 1\nnot-base64\n\n{}", note()).as_bytes()).is_err()
        );
        assert!(AddCheckpoint::parse(b"old 1\n\nlog.example\n4\n").is_err());
    }
}
