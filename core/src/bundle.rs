//! Evidence bundles: everything needed to decide a release offline, trusting only the log's
//! public key and the pinned genesis administrators.
//!
//! A bundle holds one signed checkpoint and, each with an inclusion proof at that
//! checkpoint's size, the leaf records of: every registry entry of the log up to the
//! checkpoint, the policy versions asked for, and the attestations about the release's
//! artifacts and the source commits its provenance names. Verifying a bundle checks the
//! checkpoint signature, every proof, every administrator and signer signature against the
//! registry rebuilt from the bundle's own registry entries, and then evaluates the policy.
//!
//! A bundle also carries a manifest, a note signed with the log key: what the bundle was
//! asked for (an artifact or a release) and the exact list of its entries. Dropping,
//! duplicating, reordering or adding an entry, or presenting the bundle as the answer to
//! another question, fails verification. Nothing a verdict depends on comes from an unsigned
//! field of the bundle.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::merkle;
use crate::note::{Checkpoint, Note, NoteError, Signer, Verifier};
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
    /// The manifest: a note signed with the log key naming the request and the entries.
    pub manifest: String,
    /// The genesis the server says the log started from; verifiers compare it with theirs.
    pub genesis: GenesisDocument,
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
    /// The manifest is missing, not signed by the log key, or does not match the entries.
    #[error("bundle manifest: {0}")]
    Manifest(String),
    /// The bundle answers another request than the one the verifier asked.
    #[error("the bundle is about {found}, not {asked}")]
    Request {
        /// What the signed manifest says.
        found: String,
        /// What the verifier asked for.
        asked: String,
    },
    /// A release is asked for by name and nothing trusted declares it.
    #[error("release {release}: {reason}")]
    Release {
        /// `name@version`.
        release: String,
        /// Why no artifacts could be taken from the bundle.
        reason: String,
    },
}

/// What a bundle answers: the evidence of one artifact, or of a release by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleRequest {
    /// An artifact digest, `alg:hex` in lowercase.
    Artifact(String),
    /// A release, `name` and `version`.
    Release {
        /// The release name.
        name: String,
        /// Its version.
        version: String,
    },
}

impl BundleRequest {
    /// An artifact request; the digest is compared in lowercase.
    pub fn artifact(digest: &str) -> BundleRequest {
        BundleRequest::Artifact(digest.to_ascii_lowercase())
    }

    /// A release request from `NAME@VERSION`.
    pub fn release(text: &str) -> Option<BundleRequest> {
        let (name, version) = text.rsplit_once('@')?;
        (!name.is_empty() && !version.is_empty()).then(|| BundleRequest::Release {
            name: name.to_owned(),
            version: version.to_owned(),
        })
    }

    fn parse(line: &str) -> Option<BundleRequest> {
        match line.split_once(' ')? {
            ("artifact", digest) if digest.contains(':') => Some(BundleRequest::artifact(digest)),
            ("release", release) => BundleRequest::release(release),
            _ => None,
        }
    }
}

impl std::fmt::Display for BundleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleRequest::Artifact(d) => write!(f, "artifact {d}"),
            BundleRequest::Release { name, version } => write!(f, "release {name}@{version}"),
        }
    }
}

/// The first line of a manifest note. It holds spaces, which no key name (and so no
/// checkpoint origin) can: a manifest can never be taken for a checkpoint, nor the reverse.
const MANIFEST_HEADER: &str = "evident bundle manifest v1";

/// A bundle's manifest (`docs/BUNDLE.md`): the checkpoint it is proven in, the request it
/// answers, and the running count and hash of its entries' leaf hashes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The checkpoint's origin.
    pub origin: String,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The checkpoint's root.
    pub root: Hash,
    /// What the bundle answers.
    pub request: BundleRequest,
    /// How many entries the bundle holds.
    pub count: u64,
    /// `SHA-256` of the entries' leaf hashes, concatenated in bundle order.
    pub entries_hash: Hash,
}

impl Manifest {
    /// The manifest of `leaf_hashes` (in bundle order), answering `request` at `checkpoint`.
    pub fn new(checkpoint: &Checkpoint, request: BundleRequest, leaf_hashes: &[Hash]) -> Manifest {
        Manifest {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: checkpoint.root,
            request,
            count: leaf_hashes.len() as u64,
            entries_hash: entries_hash(leaf_hashes),
        }
    }

    /// The note body.
    pub fn to_body(&self) -> String {
        format!(
            "{MANIFEST_HEADER}\n{}\n{}\n{}\n{}\n{} {}\n",
            self.origin,
            self.size,
            self.root.to_base64(),
            self.request,
            self.count,
            self.entries_hash.to_base64()
        )
    }

    /// Signs the manifest with the log key.
    pub fn sign(&self, signer: &Signer) -> Result<String, NoteError> {
        signer.sign(&self.to_body())
    }

    /// Verifies a manifest note under the log key and parses it.
    pub fn verify(note: &str, log_key: &Verifier) -> Result<Manifest, BundleError> {
        let bad = |why: String| BundleError::Manifest(why);
        let note = Note::parse(note).map_err(|e| bad(e.to_string()))?;
        note.verify(log_key).map_err(|e| bad(e.to_string()))?;
        let lines: Vec<&str> = note
            .text
            .strip_suffix('\n')
            .unwrap_or_default()
            .split('\n')
            .collect();
        let [header, origin, size, root, request, entries] = lines[..] else {
            return Err(bad(format!("{} lines, expected 6", lines.len())));
        };
        if header != MANIFEST_HEADER {
            return Err(bad(format!(
                "first line {header:?} is not {MANIFEST_HEADER:?}"
            )));
        }
        let size = size
            .parse()
            .map_err(|_| bad(format!("tree size {size:?} is not a number")))?;
        let root = Hash::from_base64(root).map_err(|e| bad(format!("root: {e}")))?;
        let request = BundleRequest::parse(request)
            .ok_or_else(|| bad(format!("request {request:?} is not understood")))?;
        let (count, hash) = entries
            .split_once(' ')
            .ok_or_else(|| bad(format!("entries line {entries:?} is malformed")))?;
        Ok(Manifest {
            origin: origin.to_owned(),
            size,
            root,
            request,
            count: count
                .parse()
                .map_err(|_| bad(format!("entry count {count:?} is not a number")))?,
            entries_hash: Hash::from_base64(hash).map_err(|e| bad(format!("entries: {e}")))?,
        })
    }
}

fn entries_hash(leaf_hashes: &[Hash]) -> Hash {
    let mut data = Vec::with_capacity(leaf_hashes.len() * 32);
    for h in leaf_hashes {
        data.extend_from_slice(h.as_bytes());
    }
    Hash::sha256(&data)
}

/// A verified bundle: what its proofs and signatures establish.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    checkpoint: Checkpoint,
    /// The checkpoint's note as the bundle carries it, with any witness cosignatures.
    note: Note,
    request: BundleRequest,
    evidence: Vec<Evidence>,
    /// The same attestations as each earlier registry state saw them, one view per
    /// distinct set of withdrawn signatures (the first withdraws none). A control must pass
    /// in every view: a later revocation withdraws evidence, it never excuses a failure.
    earlier_views: Vec<Vec<Evidence>>,
    policies: BTreeMap<String, BTreeMap<u64, (u64, Policy)>>,
    /// Who approved each policy version, by name and version.
    policy_approvals: BTreeMap<(String, u64), PolicyApproval>,
    registry: Registry,
    /// The time the bundle was replayed to, when not its end.
    as_of: Option<i64>,
}

/// A policy version's entry: when it was logged, and the administrators whose signatures
/// made it count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyApproval {
    /// Its log index.
    pub index: u64,
    /// Its integrated time (nanoseconds).
    pub integrated_time: i64,
    /// The administrators who signed it, as the registry knew them then.
    pub approvers: Vec<String>,
}

/// Read-only: what verification established cannot be edited before it is decided on.
impl VerifiedBundle {
    /// The verified checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// What the bundle answers, from its signed manifest.
    pub fn request(&self) -> &BundleRequest {
        &self.request
    }

    /// The attestations, each authorized at its integrated time, less the signatures the
    /// final registry's revocations withdraw.
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// Policy versions, each signed by enough administrators as of its entry: by name, then
    /// version, with the entry's index.
    pub fn policies(&self) -> &BTreeMap<String, BTreeMap<u64, (u64, Policy)>> {
        &self.policies
    }

    /// The registry after the last entry of the bundle (of those replayed, for a bundle
    /// verified as of a time).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The entry of policy `name` at `version`, with the administrators who approved it.
    pub fn policy_approval(&self, name: &str, version: u64) -> Option<&PolicyApproval> {
        self.policy_approvals.get(&(name.to_owned(), version))
    }

    /// The time the bundle was verified as of ([`Bundle::verify_as_of`]), if any.
    pub fn as_of(&self) -> Option<i64> {
        self.as_of
    }
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
        self.verify_as_of(log_key, genesis, None)
    }

    /// Verifies the bundle, then keeps what it established as of `as_of` (nanoseconds), to
    /// re-perform a past decision: the registry, the policy versions and the evidence of
    /// that moment, with only the revocations recorded by then. Every proof, digest and
    /// signature is checked over the whole bundle first, and its whole replay must succeed;
    /// the entries integrated after `as_of` are then set aside (the log's order is its time
    /// order, so they are its tail).
    pub fn verify_as_of(
        &self,
        log_key: &Verifier,
        genesis: &GenesisDocument,
        as_of: Option<i64>,
    ) -> Result<VerifiedBundle, BundleError> {
        if self.genesis != *genesis {
            return Err(BundleError::Genesis {
                bundle: self.genesis.describe(),
                pinned: genesis.describe(),
            });
        }
        let checkpoint = Checkpoint::verify(&self.checkpoint, log_key)
            .map_err(|e| BundleError::Checkpoint(e.to_string()))?;
        let note =
            Note::parse(&self.checkpoint).map_err(|e| BundleError::Checkpoint(e.to_string()))?;
        let mut registry = genesis
            .to_registry()
            .map_err(|e| BundleError::Registry(format!("the genesis is invalid: {e}")))?;
        let mut evidence = Vec::new();
        let mut policies: BTreeMap<String, BTreeMap<u64, (u64, Policy)>> = BTreeMap::new();
        let mut policy_approvals: BTreeMap<(String, u64), PolicyApproval> = BTreeMap::new();
        let mut previous: Option<u64> = None;
        let mut digests = crate::kinds::Digests::default();
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
            digests.add(record.kind(), &merkle::leaf_hash(&bytes));
            proven.push((position, bytes, record));
        }
        // The checkpoint signs the running hash of all registry entries: the bundle must
        // hold every one of them, or a left-out revocation could go unnoticed.
        let signed = RegistryDigest::from_extensions(&checkpoint.extensions).ok_or_else(|| {
            BundleError::Registry("the checkpoint carries no registry digest".into())
        })?;
        let registry_digest = &digests.registry;
        if signed != *registry_digest {
            return Err(BundleError::Registry(format!(
                "the bundle holds {} registry entries hashing to {}, the checkpoint signs {} \
                 hashing to {}: registry entries are missing or altered",
                registry_digest.count, registry_digest.hash, signed.count, signed.hash
            )));
        }
        let signed = RegistryDigest::from_policy_extensions(&checkpoint.extensions)
            .ok_or_else(|| BundleError::Policy("the checkpoint carries no policy digest".into()))?;
        if signed != digests.policy {
            return Err(BundleError::Policy(format!(
                "the bundle holds {} policy versions, the checkpoint signs {}: policy versions \
                 are missing or altered",
                digests.policy.count, signed.count
            )));
        }
        // The manifest, signed with the log key, names exactly these entries at this
        // checkpoint: none left out, added, repeated or moved.
        let manifest = Manifest::verify(&self.manifest, log_key)?;
        let leaf_hashes: Vec<Hash> = proven
            .iter()
            .map(|(_, bytes, _)| merkle::leaf_hash(bytes))
            .collect();
        let expected = Manifest::new(&checkpoint, manifest.request.clone(), &leaf_hashes);
        if manifest != expected {
            return Err(BundleError::Manifest(format!(
                "it names {} entries at tree size {}, the bundle holds {} at tree size {} \
                 (or other ones): entries were left out, added or altered",
                manifest.count, manifest.size, expected.count, expected.size
            )));
        }
        // Then the replay, in log order, from the genesis, keeping each distinct state of
        // revocations the registry passes through.
        let mut revocations: Vec<Vec<Revoked>> = vec![Vec::new()];
        // Each signature over a payload counts where it first appears in the log: the same
        // signed payload logged again later (with a new co-signer, say) does not get a new
        // time or position for its first signers.
        let mut signed: std::collections::HashSet<(Hash, [u8; 32])> =
            std::collections::HashSet::new();
        let mut last_time = i64::MIN;
        #[allow(clippy::type_complexity, reason = "one snapshot of the replay's state")]
        let mut cut: Option<(
            Registry,
            Vec<Evidence>,
            BTreeMap<String, BTreeMap<u64, (u64, Policy)>>,
            BTreeMap<(String, u64), PolicyApproval>,
            Vec<Vec<Revoked>>,
        )> = None;
        for (position, bytes, record) in proven {
            let fail = |index: String, reason: String| BundleError::Entry {
                position,
                index,
                reason,
            };
            let index = record.index();
            let at = || index.to_string();
            let time = record.integrated_time_nanos();
            // The sequencer never stamps an entry earlier than the one before it.
            if time < last_time {
                return Err(fail(
                    at(),
                    "its integrated time is earlier than an earlier entry's".into(),
                ));
            }
            last_time = time;
            // The state as of `as_of`, kept when the first later entry comes; the replay
            // goes on to check the rest.
            if as_of.is_some_and(|t| time > t) && cut.is_none() {
                cut = Some((
                    registry.clone(),
                    evidence.clone(),
                    policies.clone(),
                    policy_approvals.clone(),
                    revocations.clone(),
                ));
            }
            match record.kind() {
                EntryKind::Registry => {
                    registry
                        .apply(index, time, record.envelope())
                        .map_err(|e| BundleError::Registry(format!("entry {index}: {e}")))?;
                    let now = Revoked::of(&registry);
                    if revocations.last() != Some(&now) {
                        revocations.push(now);
                    }
                }
                EntryKind::Policy => {
                    let approvers =
                        registry
                            .check_admin_signatures(record.envelope())
                            .map_err(|e| {
                                fail(at(), format!("policy not signed by administrators: {e}"))
                            })?;
                    let text = std::str::from_utf8(&record.envelope().payload)
                        .map_err(|_| fail(at(), "policy is not UTF-8".into()))?;
                    let policy = Policy::parse(text).map_err(|e| fail(at(), e.to_string()))?;
                    policy_approvals.insert(
                        (policy.name.clone(), policy.version),
                        PolicyApproval {
                            index,
                            integrated_time: time,
                            approvers,
                        },
                    );
                    policies
                        .entry(policy.name.clone())
                        .or_default()
                        .insert(policy.version, (index, policy));
                }
                EntryKind::Attestation => {
                    let statement = Statement::from_envelope(record.envelope())
                        .map_err(|e| fail(at(), e.to_string()))?;
                    let mut signers = registry
                        .authorize_envelope(record.envelope(), &statement.predicate_type, time)
                        .map_err(|e| fail(at(), format!("not authorized by the registry: {e}")))?;
                    let payload = Hash::sha256(&record.envelope().pae());
                    signers.retain(|s| signed.insert((payload, s.key)));
                    evidence.push(Evidence::verified(
                        index,
                        merkle::leaf_hash(&bytes),
                        time,
                        statement,
                        signers,
                    ));
                }
            }
        }
        if let Some((r, e, p, a, v)) = cut {
            (registry, evidence, policies, policy_approvals, revocations) = (r, e, p, a, v);
        }
        // A revocation recorded later but dated back to or before an entry withdraws that
        // signature: the registry's final word is that the key was not to be trusted then.
        // Each state of revocations gives a view of the evidence; views that withdraw the
        // same signatures are one.
        let view_of = |revoked: &[Revoked]| -> Vec<Evidence> {
            evidence
                .iter()
                .map(|e| e.view(|signer| Revoked::withdraws(revoked, signer, e.integrated_time())))
                .collect()
        };
        let same = |a: &[Evidence], b: &[Evidence]| {
            a.iter().zip(b).all(|(a, b)| {
                a.signers()
                    .iter()
                    .map(|s| s.key)
                    .eq(b.signers().iter().map(|s| s.key))
            })
        };
        let evidence = view_of(revocations.last().map_or(&[][..], Vec::as_slice));
        let mut views: Vec<Vec<Evidence>> = Vec::new();
        for revoked in &revocations {
            let view = view_of(revoked);
            if !same(&view, &evidence) && !views.iter().any(|v| same(v, &view)) {
                views.push(view);
            }
        }
        Ok(VerifiedBundle {
            checkpoint,
            note,
            request: manifest.request,
            evidence,
            earlier_views: views,
            policies,
            policy_approvals,
            registry,
            as_of,
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
    fn evaluate(
        evidence: &[Evidence],
        policy: &Policy,
        artifacts: &[String],
        gate_time: i64,
    ) -> Report {
        let digests: Vec<(String, String)> = artifacts
            .iter()
            .filter_map(|a| a.split_once(':'))
            .map(|(alg, hex)| (alg.to_ascii_lowercase(), hex.to_ascii_lowercase()))
            .collect();
        let mut reports = digests.iter().map(|d| {
            let subject =
                ReleaseSubject::derive(std::slice::from_ref(d), evidence, policy, gate_time);
            policy::evaluate(policy, &subject, evidence, gate_time)
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

    /// The gate's decision: checks that the bundle answers `asked`, takes the artifacts
    /// from the request or from trusted release attestations, and evaluates `policy` for
    /// each as of `gate_time`. The only way to evaluate a bundle.
    pub fn decide(
        &self,
        asked: &BundleRequest,
        policy: &Policy,
        gate_time: i64,
    ) -> Result<Report, BundleError> {
        self.answers(asked)?;
        let artifacts = self.artifacts_for(asked, policy)?;
        let mut report = VerifiedBundle::evaluate(&self.evidence, policy, &artifacts, gate_time);
        for view in &self.earlier_views {
            let earlier = VerifiedBundle::evaluate(view, policy, &artifacts, gate_time);
            report.allowed &= earlier.allowed;
            for (now, then) in report.controls.iter_mut().zip(earlier.controls) {
                if now.status == policy::Status::Pass && then.status != policy::Status::Pass {
                    *now = policy::ControlReport {
                        reason: format!(
                            "{} (as the registry stood before a later revocation, which \
                             withdraws evidence but never excuses a failure)",
                            then.reason
                        ),
                        ..then
                    };
                }
            }
        }
        if let Some(witnesses) = &policy.witnesses {
            let control = match witnesses.check(&self.note, &self.checkpoint) {
                Ok(cosigned) => policy::ControlReport {
                    id: policy::WITNESSES_CONTROL.to_owned(),
                    status: policy::Status::Pass,
                    reason: format!(
                        "the evidence's checkpoint of {} entries is cosigned by {} ({} of {} \
                         required)",
                        self.checkpoint.size,
                        cosigned
                            .iter()
                            .map(|c| c.witness.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        witnesses.threshold(),
                        witnesses.witnesses().len()
                    ),
                    entries: Vec::new(),
                    detail: policy::Detail::default(),
                },
                Err(e) => policy::ControlReport {
                    id: policy::WITNESSES_CONTROL.to_owned(),
                    status: policy::Status::Fail,
                    reason: format!(
                        "{e}: fetch the evidence proven at a witnessed checkpoint (the gate \
                         does when given the witnesses)"
                    ),
                    entries: Vec::new(),
                    detail: policy::Detail::default(),
                },
            };
            report.allowed &= control.status == policy::Status::Pass;
            report.controls.push(control);
        }
        Ok(report)
    }

    /// The checkpoint's note, with the cosignatures the bundle carries.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// Checks that the bundle answers `asked`: the signed manifest's request.
    pub fn answers(&self, asked: &BundleRequest) -> Result<(), BundleError> {
        if self.request != *asked {
            return Err(BundleError::Request {
                found: self.request.to_string(),
                asked: asked.to_string(),
            });
        }
        Ok(())
    }

    /// The artifacts a gate evaluates for `asked` under `policy`: the artifact itself, or
    /// the subjects of the release attestations for `name@version` signed by a signer the
    /// policy's `release_signers` trust — never the bundle's unsigned data, and never a
    /// release attestation from anyone else (a squatter's artifacts are not the release's).
    /// A declaration whose signature a later revocation withdrew still names its artifacts:
    /// evaluating more artifacts can only deny, and a revocation must never excuse one.
    pub fn artifacts_for(
        &self,
        asked: &BundleRequest,
        policy: &Policy,
    ) -> Result<Vec<String>, BundleError> {
        let (name, version) = match asked {
            BundleRequest::Artifact(digest) => return Ok(vec![digest.clone()]),
            BundleRequest::Release { name, version } => (name, version),
        };
        let release = format!("{name}@{version}");
        if policy.release_signers.is_empty() {
            return Err(BundleError::Policy(format!(
                "policy {}@{} names no release_signers, so it cannot say who may declare \
                 release {release}: add e.g. release_signers = [\"role:release\"], or ask \
                 about the artifact digest",
                policy.name, policy.version
            )));
        }
        let mut out = std::collections::BTreeSet::new();
        for e in &self.evidence {
            if e.statement().predicate_type == crate::predicates::RELEASE_V0_1
                && e.authorized()
                    .iter()
                    .any(|s| policy::signer_named(&policy.release_signers, s))
                && crate::predicates::release_name_version(&e.statement().predicate)
                    .is_some_and(|(n, v)| n == *name && v == *version)
            {
                out.extend(e.statement().digests().map(|(a, v)| format!("{a}:{v}")));
            }
        }
        if out.is_empty() {
            return Err(BundleError::Release {
                release,
                reason: format!(
                    "no release attestation in the bundle declares it signed by {}",
                    policy
                        .release_signers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            });
        }
        Ok(out.into_iter().collect())
    }
}

/// A revoked signer key, as one registry state records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Revoked {
    key: [u8; 32],
    identity: String,
    from: i64,
    reason: String,
}

impl Revoked {
    /// Every revoked signer key of `registry`.
    fn of(registry: &Registry) -> Vec<Revoked> {
        registry
            .signer_keys()
            .iter()
            .filter_map(|k| {
                k.revoked.as_ref().map(|(from, reason)| Revoked {
                    key: k.credential.fingerprint(),
                    identity: k.identity.clone(),
                    from: *from,
                    reason: reason.clone(),
                })
            })
            .collect()
    }

    /// Why `signer`'s signature on an entry integrated at `time` is withdrawn under
    /// `revoked`, if it is.
    fn withdraws(
        revoked: &[Revoked],
        signer: &crate::registry::Authorized,
        time: i64,
    ) -> Option<String> {
        revoked
            .iter()
            .find(|r| r.key == signer.key && r.from <= time)
            .map(|r| {
                format!(
                    "the key of {} that signed it was revoked from {} ({})",
                    r.identity,
                    crate::registry::time_text(r.from),
                    r.reason
                )
            })
    }
}
