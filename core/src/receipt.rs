//! Receipts: the proof, kept by a submitter, that the log holds its envelope.
//!
//! A receipt carries the envelope and every other field of its leaf record, an inclusion
//! proof and the signed checkpoint the proof leads to. Verifying it needs only the log's
//! verifier key: rebuild the leaf record, hash it, and walk the proof to the signed root.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::dsse::{DsseError, Envelope};
use crate::hash::Hash;
use crate::merkle::{self, ProofError};
use crate::note::{Checkpoint, NoteError, Verifier};
use crate::record::{EntryKind, LeafRecord, RecordError};

/// A receipt for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's index.
    pub index: u64,
    /// Integrated time, nanoseconds since the Unix epoch (UTC).
    pub integrated_time_nanos: i64,
    /// The leaf hash of the entry before.
    pub previous_leaf_hash: Hash,
    /// The entry kind.
    pub kind: EntryKind,
    /// The envelope as the log holds it.
    pub envelope: Envelope,
    /// The entry's leaf hash, as the log reported it.
    pub leaf_hash: Hash,
    /// The tree size the proof is for (the checkpoint's size).
    pub tree_size: u64,
    /// The inclusion proof, leaf upwards.
    pub proof: Vec<Hash>,
    /// The signed checkpoint (note text).
    pub checkpoint: String,
}

/// Why a receipt does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The receipt file is not valid receipt JSON.
    #[error("receipt is not valid receipt JSON: {0}")]
    Json(String),
    /// The envelope inside the receipt does not decode.
    #[error("receipt envelope: {0}")]
    Envelope(#[from] DsseError),
    /// The receipt's fields do not make a leaf record.
    #[error("receipt fields do not make a leaf record: {0}")]
    Record(#[from] RecordError),
    /// The leaf record rebuilt from the receipt does not hash to the receipt's leaf hash.
    #[error(
        "entry {index}: the envelope and fields hash to {computed}, the receipt says {claimed}"
    )]
    LeafHash {
        /// The entry index.
        index: u64,
        /// The leaf hash of the rebuilt record.
        computed: Hash,
        /// The leaf hash in the receipt.
        claimed: Hash,
    },
    /// The checkpoint is not signed by the pinned log key, or malformed.
    #[error("receipt checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The proof's tree size is not the checkpoint's.
    #[error("inclusion proof is for tree size {proof}, the checkpoint is for {checkpoint}")]
    TreeSize {
        /// Size the proof claims.
        proof: u64,
        /// Size the checkpoint signs.
        checkpoint: u64,
    },
    /// The inclusion proof does not lead to the signed root.
    #[error("entry {index} is not proven in the checkpoint: {source}")]
    Proof {
        /// The entry index.
        index: u64,
        /// What the verifier found.
        source: ProofError,
    },
}

/// What a verified receipt proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The rebuilt leaf record.
    pub record: LeafRecord,
    /// The verified checkpoint the entry is included in.
    pub checkpoint: Checkpoint,
}

impl Receipt {
    /// Checks that the receipt's envelope is entry `index` of the log that `log_key` signs.
    pub fn verify(&self, log_key: &Verifier) -> Result<VerifiedReceipt, ReceiptError> {
        let record = LeafRecord::new(
            self.index,
            self.integrated_time_nanos,
            self.previous_leaf_hash,
            self.kind,
            self.envelope.clone(),
        )?;
        let computed = record.leaf_hash();
        if computed != self.leaf_hash {
            return Err(ReceiptError::LeafHash {
                index: self.index,
                computed,
                claimed: self.leaf_hash,
            });
        }
        let checkpoint = Checkpoint::verify(&self.checkpoint, log_key)?;
        if checkpoint.size != self.tree_size {
            return Err(ReceiptError::TreeSize {
                proof: self.tree_size,
                checkpoint: checkpoint.size,
            });
        }
        merkle::verify_inclusion(
            self.index,
            self.tree_size,
            &computed,
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|source| ReceiptError::Proof {
            index: self.index,
            source,
        })?;
        Ok(VerifiedReceipt { record, checkpoint })
    }

    /// The receipt as JSON (the file `evident submit` writes).
    pub fn to_json(&self) -> String {
        let json = ReceiptJson {
            index: self.index,
            integrated_time_nanos: self.integrated_time_nanos,
            previous_leaf_hash: self.previous_leaf_hash.to_hex(),
            kind: self.kind.as_str().to_owned(),
            leaf_hash: self.leaf_hash.to_hex(),
            inclusion_proof: ProofJson {
                tree_size: self.tree_size,
                hashes: self.proof.iter().map(Hash::to_base64).collect(),
            },
            checkpoint: self.checkpoint.clone(),
            envelope: serde_json::from_str(&self.envelope.to_json())
                .expect("an envelope's JSON is JSON"),
        };
        serde_json::to_string_pretty(&json).expect("a receipt serializes")
    }

    /// Reads a receipt written by [`Receipt::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        let json: ReceiptJson =
            serde_json::from_slice(bytes).map_err(|e| ReceiptError::Json(e.to_string()))?;
        let bad = |field: &str, e: &dyn std::fmt::Display| {
            ReceiptError::Json(format!("field `{field}`: {e}"))
        };
        let kind = match json.kind.as_str() {
            "attestation" => EntryKind::Attestation,
            "registry" => EntryKind::Registry,
            "policy" => EntryKind::Policy,
            other => return Err(bad("kind", &format!("unknown entry kind {other:?}"))),
        };
        let proof = json
            .inclusion_proof
            .hashes
            .iter()
            .map(|h| {
                STANDARD
                    .decode(h)
                    .map_err(|e| bad("inclusionProof.hashes", &e))
                    .and_then(|b| {
                        Hash::from_slice(&b).map_err(|e| bad("inclusionProof.hashes", &e))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Receipt {
            index: json.index,
            integrated_time_nanos: json.integrated_time_nanos,
            previous_leaf_hash: Hash::from_hex(&json.previous_leaf_hash)
                .map_err(|e| bad("previousLeafHash", &e))?,
            kind,
            envelope: Envelope::from_json(json.envelope.to_string().as_bytes())?,
            leaf_hash: Hash::from_hex(&json.leaf_hash).map_err(|e| bad("leafHash", &e))?,
            tree_size: json.inclusion_proof.tree_size,
            proof,
            checkpoint: json.checkpoint,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReceiptJson {
    index: u64,
    integrated_time_nanos: i64,
    previous_leaf_hash: String,
    kind: String,
    leaf_hash: String,
    inclusion_proof: ProofJson,
    checkpoint: String,
    envelope: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProofJson {
    tree_size: u64,
    hashes: Vec<String>,
}
