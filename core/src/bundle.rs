//! Evidence bundles: everything needed to decide a release offline, trusting only the log's
//! public key and the pinned genesis administrators.
//!
//! A bundle holds one signed checkpoint and, each with an inclusion proof at that
//! checkpoint's size, the leaf records of: every registry entry of the log up to the
//! checkpoint, the policy versions asked for, and the attestations about the release's
//! artifacts and the source commits its provenance names. Verifying a bundle checks the
//! checkpoint signature, every proof, every administrator and signer signature against the
//! registry rebuilt from the bundle's own registry entries, and then evaluates the policy.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::merkle;
use crate::note::{Checkpoint, Verifier};
use crate::policy::{self, Evidence, Policy, ReleaseSubject, Report};
use crate::record::{EntryKind, LeafRecord};
use crate::registry::{GenesisDocument, Registry, RegistryDigest};
use crate::statement::Statement;

/// The media type of a bundle file.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.evident.bundle.v1+json";

/// An evidence bundle, as exchanged in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    /// [`BUNDLE_MEDIA_TYPE`].
    pub media_type: String,
    /// The signed checkpoint every proof leads to.
    pub checkpoint: String,
    /// The genesis the server says the log started from; verifiers compare it with theirs.
    pub genesis: GenesisDocument,
    /// The release's artifact digests, `alg:hex`.
    pub artifacts: Vec<String>,
    /// The entries, in log order.
    pub entries: Vec<BundleEntry>,
}

/// One entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleEntry {
    /// The leaf record, base64.
    pub leaf_record: String,
    /// Its inclusion proof at the checkpoint's size, base64 hashes from the leaf up.
    pub inclusion_proof: Vec<String>,
}

impl BundleEntry {
    /// An entry from its record bytes and proof.
    pub fn new(record: &[u8], proof: &[Hash]) -> BundleEntry {
        BundleEntry {
            leaf_record: STANDARD.encode(record),
            inclusion_proof: proof.iter().map(Hash::to_base64).collect(),
        }
    }
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not bundle JSON.
    #[error("bundle is not valid bundle JSON: {0}")]
    Json(String),
    /// The checkpoint does not verify under the pinned log key.
    #[error("bundle checkpoint: {0}")]
    Checkpoint(String),
    /// The bundle's genesis is not the pinned one.
    #[error("the bundle's genesis ({bundle}) is not the pinned genesis ({pinned})")]
    Genesis {
        /// What the bundle says.
        bundle: String,
        /// What the verifier pinned.
        pinned: String,
    },
    /// An entry is malformed, not proven, or not authorized.
    #[error("bundle entry {position} (log index {index}): {reason}")]
    Entry {
        /// Position in the bundle.
        position: usize,
        /// The entry's log index, when known.
        index: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry entries do not form the log's registry (a gap, a change that does not apply).
    #[error("bundle registry: {0}")]
    Registry(String),
    /// The policy asked for is not in the bundle, or does not verify.
    #[error("bundle policy: {0}")]
    Policy(String),
}

/// A verified bundle: what its proofs and signatures establish.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The attestations, each authorized at its integrated time.
    pub evidence: Vec<Evidence>,
    /// Policy versions, each signed by enough administrators as of its entry: by name, then
    /// version.
    pub policies: BTreeMap<String, BTreeMap<u64, (u64, Policy)>>,
    /// The registry after the last entry of the bundle.
    pub registry: Registry,
}

impl Bundle {
    /// Reads a bundle file.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))?;
        if bundle.media_type != BUNDLE_MEDIA_TYPE {
            return Err(BundleError::Json(format!(
                "mediaType is {:?}, expected {BUNDLE_MEDIA_TYPE:?}",
                bundle.media_type
            )));
        }
        Ok(bundle)
    }

    /// The bundle as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bundle serializes")
    }

    /// Verifies the bundle under the pinned log key and genesis.
    pub fn verify(
        &self,
        log_key: &Verifier,
        genesis: &GenesisDocument,
    ) -> Result<VerifiedBundle, BundleError> {
        if self.genesis != *genesis {
            return Err(BundleError::Genesis {
                bundle: self.genesis.describe(),
                pinned: genesis.describe(),
            });
        }
        let checkpoint = Checkpoint::verify(&self.checkpoint, log_key)
            .map_err(|e| BundleError::Checkpoint(e.to_string()))?;
        let mut registry = genesis
            .to_registry()
            .map_err(|e| BundleError::Registry(format!("the genesis is invalid: {e}")))?;
        let mut evidence = Vec::new();
        let mut policies: BTreeMap<String, BTreeMap<u64, (u64, Policy)>> = BTreeMap::new();
        let mut previous: Option<u64> = None;
        let mut registry_digest = RegistryDigest::default();
        let mut policy_digest = RegistryDigest::default();
        // First every entry's proof, and the completeness of the registry entries.
        let mut proven = Vec::with_capacity(self.entries.len());
        for (position, entry) in self.entries.iter().enumerate() {
            let fail = |index: String, reason: String| BundleError::Entry {
                position,
                index,
                reason,
            };
            let bytes = STANDARD
                .decode(&entry.leaf_record)
                .map_err(|e| fail("?".into(), format!("leafRecord is not base64: {e}")))?;
            let record = LeafRecord::decode(&bytes).map_err(|e| fail("?".into(), e.to_string()))?;
            let index = record.index();
            let at = || index.to_string();
            if previous.is_some_and(|p| p >= index) {
                return Err(fail(at(), "entries are not in increasing log order".into()));
            }
            previous = Some(index);
            let proof = entry
                .inclusion_proof
                .iter()
                .map(|h| Hash::from_base64(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(at(), format!("inclusion proof: {e}")))?;
            merkle::verify_inclusion(
                index,
                checkpoint.size,
                &merkle::leaf_hash(&bytes),
                &proof,
                &checkpoint.root,
            )
            .map_err(|e| fail(at(), format!("not proven in the checkpoint: {e}")))?;
            if record.kind() == EntryKind::Registry {
                registry_digest.add(&merkle::leaf_hash(&bytes));
            }
            if record.kind() == EntryKind::Policy {
                policy_digest.add(&merkle::leaf_hash(&bytes));
            }
            proven.push((position, bytes, record));
        }
        // The checkpoint signs the running hash of all registry entries: the bundle must
        // hold every one of them, or a left-out revocation could go unnoticed.
        let signed = RegistryDigest::from_extensions(&checkpoint.extensions).ok_or_else(|| {
            BundleError::Registry("the checkpoint carries no registry digest".into())
        })?;
        if signed != registry_digest {
            return Err(BundleError::Registry(format!(
                "the bundle holds {} registry entries hashing to {}, the checkpoint signs {} \
                 hashing to {}: registry entries are missing or altered",
                registry_digest.count, registry_digest.hash, signed.count, signed.hash
            )));
        }
        let signed = RegistryDigest::from_policy_extensions(&checkpoint.extensions)
            .ok_or_else(|| BundleError::Policy("the checkpoint carries no policy digest".into()))?;
        if signed != policy_digest {
            return Err(BundleError::Policy(format!(
                "the bundle holds {} policy versions, the checkpoint signs {}: policy versions \
                 are missing or altered",
                policy_digest.count, signed.count
            )));
        }
        // Then the replay, in log order, from the genesis.
        for (position, bytes, record) in proven {
            let fail = |index: String, reason: String| BundleError::Entry {
                position,
                index,
                reason,
            };
            let index = record.index();
            let at = || index.to_string();
            let time = record.integrated_time_nanos();
            match record.kind() {
                EntryKind::Registry => {
                    registry
                        .apply(index, time, record.envelope())
                        .map_err(|e| BundleError::Registry(format!("entry {index}: {e}")))?;
                }
                EntryKind::Policy => {
                    registry
                        .check_admin_signatures(record.envelope())
                        .map_err(|e| {
                            fail(at(), format!("policy not signed by administrators: {e}"))
                        })?;
                    let text = std::str::from_utf8(&record.envelope().payload)
                        .map_err(|_| fail(at(), "policy is not UTF-8".into()))?;
                    let policy = Policy::parse(text).map_err(|e| fail(at(), e.to_string()))?;
                    policies
                        .entry(policy.name.clone())
                        .or_default()
                        .insert(policy.version, (index, policy));
                }
                EntryKind::Attestation => {
                    let statement = Statement::from_envelope(record.envelope())
                        .map_err(|e| fail(at(), e.to_string()))?;
                    let signers = registry
                        .authorize_envelope(record.envelope(), &statement.predicate_type, time)
                        .map_err(|e| fail(at(), format!("not authorized by the registry: {e}")))?;
                    evidence.push(Evidence {
                        index,
                        leaf_hash: merkle::leaf_hash(&bytes),
                        integrated_time: time,
                        statement,
                        signers,
                        withdrawn: Vec::new(),
                    });
                }
            }
        }
        // A revocation recorded later but dated back to or before an entry withdraws that
        // signature: the registry's final word is that the key was not to be trusted then.
        for e in &mut evidence {
            let time = e.integrated_time;
            let mut withdrawn = Vec::new();
            e.signers.retain(|signer| {
                let record = registry.signer_keys().iter().find(|k| k.key == signer.key);
                match record.and_then(|k| k.revoked.as_ref().map(|r| (k, r))) {
                    Some((k, (from, reason))) if *from <= time => {
                        withdrawn.push(format!(
                            "the key of {} that signed it was revoked from {} ({reason})",
                            k.identity,
                            crate::registry::time_text(*from)
                        ));
                        false
                    }
                    _ => true,
                }
            });
            e.withdrawn = withdrawn;
        }
        Ok(VerifiedBundle {
            checkpoint,
            evidence,
            policies,
            registry,
        })
    }
}

impl VerifiedBundle {
    /// The policy `name` at `version` (default: the latest in the bundle).
    pub fn policy(&self, name: &str, version: Option<u64>) -> Result<&Policy, BundleError> {
        let versions = self.policies.get(name).ok_or_else(|| {
            BundleError::Policy(format!("no policy named {name:?} in the bundle"))
        })?;
        let found = match version {
            Some(v) => versions.get(&v),
            None => versions.values().next_back(),
        };
        found.map(|(_, p)| p).ok_or_else(|| {
            BundleError::Policy(format!(
                "policy {name}@{} is not in the bundle",
                version.map_or("latest".into(), |v| v.to_string())
            ))
        })
    }

    /// Evaluates `policy` for each of `artifacts` (`alg:hex`) as of `gate_time`: every
    /// artifact must pass every control on its own evidence. With several artifacts, each
    /// control is reported once per artifact, its id followed by the artifact.
    pub fn evaluate(&self, policy: &Policy, artifacts: &[String], gate_time: i64) -> Report {
        let digests: Vec<(String, String)> = artifacts
            .iter()
            .filter_map(|a| a.split_once(':'))
            .map(|(alg, hex)| (alg.to_ascii_lowercase(), hex.to_ascii_lowercase()))
            .collect();
        let mut reports = digests.iter().map(|d| {
            let subject =
                ReleaseSubject::derive(std::slice::from_ref(d), &self.evidence, policy, gate_time);
            policy::evaluate(policy, &subject, &self.evidence, gate_time)
        });
        let Some(mut merged) = reports.next() else {
            return Report {
                policy: format!("{}@{}", policy.name, policy.version),
                artifacts: Vec::new(),
                source_commits: Vec::new(),
                controls: Vec::new(),
                allowed: false,
            };
        };
        let rest: Vec<Report> = reports.collect();
        if !rest.is_empty() {
            let label = |r: &Report| r.artifacts.first().cloned().unwrap_or_default();
            let first = label(&merged);
            for c in &mut merged.controls {
                c.id = format!("{} [{first}]", c.id);
            }
            for r in rest {
                let name = label(&r);
                merged.artifacts.extend(r.artifacts);
                merged.source_commits.extend(r.source_commits);
                merged.allowed &= r.allowed;
                merged.controls.extend(r.controls.into_iter().map(|mut c| {
                    c.id = format!("{} [{name}]", c.id);
                    c
                }));
            }
        }
        merged
    }

    /// The artifacts (`alg:hex`) that verified release v0.1 attestations in the bundle
    /// declare for `name@version`: the bundle's own artifact list is not signed, these are.
    pub fn release_artifacts(&self, name: &str, version: &str) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        for e in &self.evidence {
            if e.statement.predicate_type == crate::predicates::RELEASE_V0_1
                && !e.signers.is_empty()
                && crate::predicates::release_name_version(&e.statement.predicate)
                    .is_some_and(|(n, v)| n == name && v == version)
            {
                out.extend(e.statement.digests().map(|(a, v)| format!("{a}:{v}")));
            }
        }
        out.into_iter().collect()
    }
}
