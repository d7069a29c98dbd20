//! An in-memory log that makes real evidence bundles: leaf records chained as the sequencer
//! chains them, an RFC 6962 tree, checkpoints signed with the registry and policy digests,
//! and bundles with a signed manifest.
//!
//! It is what tests, benchmarks, fuzz targets and examples use to put a verifier in front of
//! the same bytes a server would send. It checks nothing on append (the sequencer's checks
//! are not here): an entry the registry would refuse still lands, and the bundle's
//! verification refuses it, exactly as a verifier would refuse a dishonest server's.

use crate::bundle::{BUNDLE_MEDIA_TYPE, Bundle, BundleEntry, BundleRequest, Manifest};
use crate::dsse::Envelope;
use crate::hash::Hash;
use crate::keys::SigningKey;
use crate::kinds::Digests;
use crate::merkle::{self, MemoryTree};
use crate::note::{Checkpoint, NoteError, Signer, Verifier};
use crate::record::{EntryKind, LeafRecord, RecordError};
use crate::registry::GenesisDocument;

/// An in-memory log (see the module documentation).
#[derive(Debug)]
pub struct MemoryLog {
    signer: Signer,
    genesis: GenesisDocument,
    records: Vec<(EntryKind, Vec<u8>)>,
    tree: MemoryTree,
    last: Hash,
    digests: Digests,
}

impl MemoryLog {
    /// An empty log signing under `origin` with `log_key`, started from `genesis`.
    pub fn new(
        origin: &str,
        log_key: SigningKey,
        genesis: GenesisDocument,
    ) -> Result<MemoryLog, NoteError> {
        Ok(MemoryLog {
            signer: Signer::new(origin, log_key)?,
            genesis,
            records: Vec::new(),
            tree: MemoryTree::new(),
            last: Hash::ZERO,
            digests: Digests::default(),
        })
    }

    /// The log's public key, as verifiers pin it.
    pub fn verifier(&self) -> &Verifier {
        self.signer.verifier()
    }

    /// The genesis the log started from.
    pub fn genesis(&self) -> &GenesisDocument {
        &self.genesis
    }

    /// How many entries the log holds.
    pub fn size(&self) -> u64 {
        self.records.len() as u64
    }

    /// Appends `envelope` as the next entry, integrated at `time` (nanoseconds); returns
    /// its index.
    pub fn append(
        &mut self,
        kind: EntryKind,
        time: i64,
        envelope: Envelope,
    ) -> Result<u64, RecordError> {
        let index = self.size();
        let record = LeafRecord::new(index, time, self.last, kind, envelope)?;
        self.last = record.leaf_hash();
        self.digests.add(kind, &self.last);
        self.tree.push(self.last);
        self.records.push((kind, record.encode()));
        Ok(index)
    }

    /// The checkpoint of the whole log, as the server signs it.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size: self.size(),
            root: self.tree.root(),
            extensions: self.digests.extensions(),
        }
    }

    /// A bundle answering `request` at the current size: every registry and policy entry,
    /// and the attestations at `attestations` (indexes of attestation entries; others and
    /// indexes past the end are skipped), in log order, with a signed manifest.
    pub fn bundle(
        &self,
        request: BundleRequest,
        attestations: impl IntoIterator<Item = u64>,
    ) -> Bundle {
        let mut indexes: std::collections::BTreeSet<u64> = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, (kind, _))| *kind != EntryKind::Attestation)
            .map(|(i, _)| i as u64)
            .collect();
        indexes.extend(attestations.into_iter().filter(|i| *i < self.size()));
        self.bundle_of(request, indexes)
    }

    /// A bundle of exactly the entries at `indexes` (in the order given, repeats kept), with
    /// a manifest naming them: what a dishonest server could sign, for tests of verifiers.
    pub fn bundle_of(
        &self,
        request: BundleRequest,
        indexes: impl IntoIterator<Item = u64>,
    ) -> Bundle {
        let checkpoint = self.checkpoint();
        let note = checkpoint
            .sign(&self.signer)
            .expect("a checkpoint body has no control characters");
        let size = self.size();
        let mut leaf_hashes = Vec::new();
        let entries = indexes
            .into_iter()
            .filter(|i| *i < size)
            .map(|index| {
                let bytes =
                    &self.records[usize::try_from(index).expect("an index below size fits")].1;
                let proof = merkle::inclusion_proof(&self.tree, index, size)
                    .expect("a memory tree proves every index below its size");
                leaf_hashes.push(merkle::leaf_hash(bytes));
                BundleEntry::new(bytes, &proof)
            })
            .collect();
        let manifest = Manifest::new(&checkpoint, request, &leaf_hashes)
            .sign(&self.signer)
            .expect("a bundle request has no control characters");
        Bundle {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            checkpoint: note,
            manifest,
            genesis: self.genesis.clone(),
            entries,
        }
    }
}
