//! The gRPC services. The only module that sees `evident-proto` types: requests are
//! converted into checked `evident-core` values here, once, and answers are converted back.

use evident_core::PublicKey;
use evident_core::dsse::{DsseError, Envelope, Signature};
use evident_core::receipt::Receipt;
use evident_core::record::{self, EntryKind, LeafRecord};
use evident_core::statement::Statement;
use evident_core::{Hash, merkle};
use evident_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::ledger::{Ledger, LedgerError};

/// `evident.v1.Ledger`.
#[derive(Debug, Clone)]
pub struct LedgerService {
    ledger: Ledger,
    trusted: std::sync::Arc<Vec<(String, PublicKey)>>,
    max_envelope_bytes: usize,
}

impl LedgerService {
    /// A service over a running ledger, accepting attestations signed by `trusted` keys.
    pub fn new(
        ledger: Ledger,
        trusted: Vec<(String, PublicKey)>,
        max_envelope_bytes: usize,
    ) -> Self {
        LedgerService {
            ledger,
            trusted: std::sync::Arc::new(trusted),
            max_envelope_bytes,
        }
    }
}

fn status(e: LedgerError) -> Status {
    match e {
        LedgerError::Storage(_) | LedgerError::ShuttingDown => Status::unavailable(e.to_string()),
        LedgerError::NotFound(_) => Status::not_found(e.to_string()),
        LedgerError::Precondition(_) => Status::failed_precondition(e.to_string()),
    }
}

/// Converts the wire envelope into the core type; the checks that need no key.
fn envelope_from_proto(envelope: Option<pb::Envelope>) -> Result<Envelope, Status> {
    let envelope = envelope.ok_or_else(|| {
        Status::invalid_argument("the request has no envelope: send a DSSE envelope in `envelope`")
    })?;
    if envelope.payload_type.is_empty() {
        return Err(Status::invalid_argument(
            "envelope payloadType is empty: attestations use \"application/vnd.in-toto+json\"",
        ));
    }
    Ok(Envelope {
        payload: envelope.payload,
        payload_type: envelope.payload_type,
        signatures: envelope
            .signatures
            .into_iter()
            .map(|s| Signature {
                sig: s.sig,
                keyid: s.keyid,
            })
            .collect(),
    })
}

fn envelope_to_proto(envelope: Envelope) -> pb::Envelope {
    pb::Envelope {
        payload: envelope.payload,
        payload_type: envelope.payload_type,
        signatures: envelope
            .signatures
            .into_iter()
            .map(|s| pb::Signature {
                sig: s.sig,
                keyid: s.keyid,
            })
            .collect(),
    }
}

fn kind_to_proto(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Attestation => pb::EntryKind::Attestation,
        EntryKind::Registry => pb::EntryKind::Registry,
        EntryKind::Policy => pb::EntryKind::Policy,
        _ => pb::EntryKind::Unspecified,
    }
}

fn hashes_to_proto(hashes: &[Hash]) -> Vec<Vec<u8>> {
    hashes.iter().map(|h| h.as_bytes().to_vec()).collect()
}

fn receipt_to_proto(receipt: Receipt, duplicate: bool) -> pb::Receipt {
    pb::Receipt {
        index: receipt.index,
        integrated_time_nanos: receipt.integrated_time_nanos,
        leaf_hash: receipt.leaf_hash.as_bytes().to_vec(),
        inclusion_proof: Some(pb::InclusionProof {
            leaf_index: receipt.index,
            tree_size: receipt.tree_size,
            hashes: hashes_to_proto(&receipt.proof),
        }),
        checkpoint: receipt.checkpoint,
        duplicate,
        previous_leaf_hash: receipt.previous_leaf_hash.as_bytes().to_vec(),
        kind: kind_to_proto(receipt.kind) as i32,
    }
}

/// The entry a selector names, as an index.
fn select(ledger: &Ledger, selector: Option<pb::EntrySelector>) -> Result<u64, Status> {
    match selector.and_then(|s| s.by) {
        Some(pb::entry_selector::By::Index(index)) => Ok(index),
        Some(pb::entry_selector::By::LeafHash(bytes)) => {
            let hash = Hash::from_slice(&bytes)
                .map_err(|e| Status::invalid_argument(format!("leaf_hash: {e}")))?;
            ledger.index_of_leaf(&hash).map_err(status)
        }
        None => Err(Status::invalid_argument(
            "name the entry by `index` or by `leaf_hash`",
        )),
    }
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let envelope = envelope_from_proto(request.into_inner().envelope)?;
        let size = record::encoded_envelope_len(&envelope);
        if size > self.max_envelope_bytes {
            return Err(Status::invalid_argument(format!(
                "envelope is {size} bytes, the limit is {} bytes: keep large evidence (SBOMs, \
                 reports) outside the log and reference it from the Statement by digest",
                self.max_envelope_bytes
            )));
        }
        let statement = Statement::from_envelope(&envelope)
            .map_err(|e| Status::invalid_argument(format!("not an in-toto Statement v1: {e}")))?;
        let keys: Vec<PublicKey> = self.trusted.iter().map(|(_, k)| *k).collect();
        let signers = envelope.verify(&keys).map_err(|e| match e {
            DsseError::NoSignatures => Status::unauthenticated(e.to_string()),
            other => Status::permission_denied(format!(
                "{other}: register the signing key as a trusted signer of this log"
            )),
        })?;
        let digest = record::envelope_digest(&envelope)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (receipt, duplicate) = self
            .ledger
            .submit(envelope, EntryKind::Attestation, digest)
            .await
            .map_err(status)?;
        tracing::info!(
            index = receipt.index,
            duplicate,
            predicate_type = %statement.predicate_type,
            signers = ?signers.iter().map(|&i| self.trusted[i].0.as_str()).collect::<Vec<_>>(),
            "attestation submitted"
        );
        Ok(Response::new(pb::SubmitResponse {
            receipt: Some(receipt_to_proto(receipt, duplicate)),
        }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        let request = request.into_inner();
        let index = select(&self.ledger, request.entry)?;
        let bytes = self.ledger.entry(index).map_err(status)?;
        let record = LeafRecord::decode(&bytes).map_err(|e| {
            Status::unavailable(format!(
                "storage failure: entry {index} does not decode: {e}"
            ))
        })?;
        let leaf_hash = merkle::leaf_hash(&bytes);
        let (proof, checkpoint) = match request.proof_tree_size {
            None => (None, String::new()),
            Some(requested) => {
                let (size, published) = self.ledger.tree_size(requested).map_err(status)?;
                let hashes = self.ledger.inclusion_proof(index, size).map_err(status)?;
                let checkpoint = if size == published.checkpoint.size {
                    published.note.clone()
                } else {
                    String::new()
                };
                (
                    Some(pb::InclusionProof {
                        leaf_index: index,
                        tree_size: size,
                        hashes: hashes_to_proto(&hashes),
                    }),
                    checkpoint,
                )
            }
        };
        Ok(Response::new(pb::GetEntryResponse {
            index,
            integrated_time_nanos: record.integrated_time_nanos(),
            previous_leaf_hash: record.previous_leaf_hash().as_bytes().to_vec(),
            kind: kind_to_proto(record.kind()) as i32,
            leaf_hash: leaf_hash.as_bytes().to_vec(),
            envelope: Some(envelope_to_proto(record.into_envelope())),
            leaf_record: bytes,
            inclusion_proof: proof,
            checkpoint,
        }))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: self.ledger.published().note.clone(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let request = request.into_inner();
        let index = select(&self.ledger, request.entry)?;
        let (size, published) = self.ledger.tree_size(request.tree_size).map_err(status)?;
        let hashes = self.ledger.inclusion_proof(index, size).map_err(status)?;
        let leaf_hash = self.ledger.leaf_hash(index).map_err(status)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            proof: Some(pb::InclusionProof {
                leaf_index: index,
                tree_size: size,
                hashes: hashes_to_proto(&hashes),
            }),
            leaf_hash: leaf_hash.as_bytes().to_vec(),
            checkpoint: published.note.clone(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let (new, published) = self.ledger.tree_size(request.new_size).map_err(status)?;
        let hashes = self
            .ledger
            .consistency_proof(request.old_size, new)
            .map_err(status)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            proof: Some(pb::ConsistencyProof {
                old_size: request.old_size,
                new_size: new,
                hashes: hashes_to_proto(&hashes),
            }),
            checkpoint: published.note.clone(),
        }))
    }
}
