//! The read side's policies and evidence bundles: what a gate fetches, assembled from the
//! indexes and proven at the latest checkpoint, with a manifest signed with the log key.

use evident_core::bundle::{BUNDLE_MEDIA_TYPE, Bundle, BundleEntry, BundleRequest, Manifest};
use evident_core::predicates;
use evident_core::statement::Statement;

use super::{Ledger, LedgerError, failure_of, read_record};

impl Ledger {
    /// Every policy version covered by the latest checkpoint: `(name, version, index)`.
    pub fn policies(&self) -> Result<Vec<(String, u64, u64)>, LedgerError> {
        self.policies_below(self.published().checkpoint.size)
    }

    /// Every policy version among the first `size` entries: `(name, version, index)`.
    fn policies_below(&self, size: u64) -> Result<Vec<(String, u64, u64)>, LedgerError> {
        Ok(self
            .store
            .policies()?
            .into_iter()
            .filter(|(_, _, index)| *index < size)
            .collect())
    }

    /// The evidence bundle answering `request`, whose artifacts (`alg`, `hex`) are
    /// `artifacts`: every registry entry, every policy version, the attestations about the
    /// artifacts and about the source commits its provenance names, each proven at the latest
    /// checkpoint, and a manifest naming them signed with the log key.
    pub fn release_bundle(
        &self,
        request: BundleRequest,
        artifacts: &[(String, String)],
    ) -> Result<Bundle, LedgerError> {
        self.release_bundle_at(request, artifacts, None)
    }

    /// [`Ledger::release_bundle`], proven at the checkpoint `at` (its note and what it
    /// says: one this log signed, such as the latest witnessed one) instead of the latest.
    pub fn release_bundle_at(
        &self,
        request: BundleRequest,
        artifacts: &[(String, String)],
        at: Option<(String, evident_core::note::Checkpoint)>,
    ) -> Result<Bundle, LedgerError> {
        let (note, checkpoint) = match at {
            Some(at) => at,
            None => {
                let published = self.published();
                (published.note.clone(), published.checkpoint.clone())
            }
        };
        let size = checkpoint.size;
        let mut indexes: std::collections::BTreeSet<u64> =
            self.store.registry_entries(0, size)?.into_iter().collect();
        // Every policy version: the checkpoint signs their running hash, and a verifier
        // refuses a bundle that leaves one out.
        for (_, _, index) in self.policies_below(size)? {
            indexes.insert(index);
        }
        let mut about_artifact = Vec::new();
        for (alg, hex) in artifacts {
            about_artifact.extend(self.store.entries_about(alg, hex, size)?);
        }
        let mut commits = std::collections::BTreeSet::new();
        for &index in &about_artifact {
            let record = read_record(&self.store, index)?;
            if let Ok(statement) = Statement::from_envelope(record.envelope()) {
                if statement.predicate_type == predicates::SLSA_PROVENANCE_V1 {
                    commits.extend(predicates::provenance_source_commits(&statement.predicate));
                }
            }
        }
        indexes.extend(about_artifact);
        for commit in &commits {
            for alg in ["gitCommit", "sha1"] {
                indexes.extend(self.store.entries_about(alg, commit, size)?);
            }
        }
        let mut leaf_hashes = Vec::with_capacity(indexes.len());
        let entries = indexes
            .into_iter()
            .map(|index| {
                let bytes = self
                    .store
                    .entry(index)?
                    .ok_or_else(|| LedgerError::Missing(index))?;
                let proof = self.inclusion_proof(index, size)?;
                leaf_hashes.push(evident_core::merkle::leaf_hash(&bytes));
                Ok(BundleEntry::new(&bytes, &proof))
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        let manifest = Manifest::new(&checkpoint, request, &leaf_hashes)
            .sign(&self.signer)
            .map_err(|e| failure_of("signing the bundle manifest", e))?;
        Ok(Bundle {
            media_type: BUNDLE_MEDIA_TYPE.to_owned(),
            checkpoint: note,
            manifest,
            genesis: (*self.genesis_document).clone(),
            entries,
        })
    }

    /// The artifacts (`alg`, `hex`) that the release attestations of `name@version` declare
    /// (their subjects).
    pub fn release_artifacts(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let size = self.published().checkpoint.size;
        let mut artifacts = std::collections::BTreeSet::new();
        for index in self.store.releases(name, version, size)? {
            let record = read_record(&self.store, index)?;
            if let Ok(statement) = Statement::from_envelope(record.envelope()) {
                artifacts.extend(
                    statement
                        .digests()
                        .map(|(a, v)| (a.as_str().to_owned(), v.to_owned())),
                );
            }
        }
        if artifacts.is_empty() {
            return Err(LedgerError::NoRelease {
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        Ok(artifacts.into_iter().collect())
    }
}
