//! Where a client reads a log from: the gRPC API ([`crate::Client`]) or the log's C2SP
//! tlog-tiles ([`crate::tiles::Tiles`], over HTTP or from an exported folder).
//!
//! Every check a client makes — a checkpoint's signature and cosignatures, its consistency
//! with the last one seen, an entry's inclusion, the replay of the whole log — needs only
//! what [`LogReader`] gives, and trusts none of it: each answer is checked against a
//! checkpoint verified under the pinned log key.

use std::future::Future;

use evident_core::cosign::WitnessPolicy;
use evident_core::hash::Hash;
use evident_core::merkle;
use evident_core::note::{Checkpoint, Verifier};

use crate::{CheckpointState, Client, ClientError, Selector};

/// A source of a log's checkpoints, proofs and entries. Nothing it returns is trusted.
pub trait LogReader {
    /// The latest checkpoint note; with `witnessed`, the latest one the log's witnesses
    /// cosigned, where the source tells them apart.
    fn read_checkpoint(
        &mut self,
        witnessed: bool,
    ) -> impl Future<Output = Result<String, ClientError>> + Send;

    /// The consistency proof from the tree of `old` entries to the tree of `new`.
    fn read_consistency_proof(
        &mut self,
        old: u64,
        new: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, ClientError>> + Send;

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    fn read_inclusion_proof(
        &mut self,
        index: u64,
        size: u64,
    ) -> impl Future<Output = Result<Vec<Hash>, ClientError>> + Send;

    /// Leaf records from `start`, in order, of the tree of `end` entries: at least one and at
    /// most `end - start` when `start < end`.
    fn read_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, ClientError>> + Send;

    /// Whether the source may serve a checkpoint older than one seen before with nothing
    /// wrong with the log: a mirror or a cache that lags, or one that serves the witnessed
    /// checkpoint where this client saw the latest. Such a checkpoint is refused as stale
    /// (an error), not reported as a rollback (a failed verification).
    fn may_lag(&self) -> bool {
        false
    }
}

impl LogReader for Client {
    async fn read_checkpoint(&mut self, witnessed: bool) -> Result<String, ClientError> {
        self.checkpoint_at(witnessed).await
    }

    async fn read_consistency_proof(
        &mut self,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, ClientError> {
        self.consistency_proof(old, new).await
    }

    async fn read_inclusion_proof(
        &mut self,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, ClientError> {
        let (tree_size, proof, _, _) = self.inclusion_proof(Selector::Index(index), size).await?;
        if tree_size != size {
            return Err(ClientError::Response(format!(
                "asked for a proof in the tree of {size} entries, got one for {tree_size}"
            )));
        }
        Ok(proof)
    }

    async fn read_entries(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        self.entries(start, end).await
    }
}

/// Proves that entry `index`, whose leaf hash is `leaf_hash`, from evidence already verified
/// offline against its own checkpoint `proven`, is still in the log as `reader` serves it
/// now: the latest checkpoint (witnessed, with witnesses required) is verified under
/// `log_key`, carries the cosignatures `witnesses` requires and is consistent with the last
/// one `state` saw (advancing it; saving it is the caller's); `proven` is consistent with it
/// (the same root at the same size, else a consistency proof); and the entry is included in
/// it. Returns the latest checkpoint. Once the latest checkpoint is verified, `state` holds
/// it even when a later check fails, so that the caller can keep the view it was checked
/// against.
///
/// A fork (another root, a proof that fails) or a leaf that is not included is a failed
/// verification. A latest checkpoint older than `proven` cannot show either way — the
/// source lags behind the evidence, or the log was rolled back — and is an error that is
/// not a failed verification.
pub async fn prove_still_included<R: LogReader>(
    reader: &mut R,
    state: &mut CheckpointState,
    log_key: &Verifier,
    witnesses: &WitnessPolicy,
    index: u64,
    leaf_hash: &Hash,
    proven: &Checkpoint,
) -> Result<Checkpoint, ClientError> {
    let note = reader.read_checkpoint(witnesses.threshold() > 0).await?;
    let current = state
        .advance_witnessed(reader, log_key, witnesses, &note)
        .await?;
    if current.size < proven.size {
        return Err(ClientError::Invalid(format!(
            "the log's latest checkpoint has {} entries, fewer than the {} of the evidence's \
             checkpoint: the source lags behind (a mirror not yet updated, witnesses not yet \
             caught up) or the log was rolled back; retry later",
            current.size, proven.size
        )));
    }
    if current.size == proven.size {
        if current.root != proven.root {
            return Err(ClientError::Inconsistent(format!(
                "fork: the evidence's checkpoint of {} entries has root {}, the log's latest \
                 of the same size has {}",
                proven.size, proven.root, current.root
            )));
        }
    } else if proven.size > 0 {
        let proof = reader
            .read_consistency_proof(proven.size, current.size)
            .await?;
        merkle::verify_consistency(
            proven.size,
            current.size,
            &proof,
            &proven.root,
            &current.root,
        )
        .map_err(|e| {
            ClientError::Inconsistent(format!(
                "fork: the evidence's checkpoint of {} entries is not consistent with the \
                 log's latest of {} entries: {e}",
                proven.size, current.size
            ))
        })?;
    }
    let proof = reader.read_inclusion_proof(index, current.size).await?;
    merkle::verify_inclusion(index, current.size, leaf_hash, &proof, &current.root).map_err(
        |e| {
            ClientError::Verification(format!(
                "entry {index} is not included in the log's latest checkpoint of {} entries: {e}",
                current.size
            ))
        },
    )?;
    Ok(current)
}
