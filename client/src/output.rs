//! What the `evident` commands write with `--format json`: one type per command, so a
//! pipeline linking this library reads the CLI's JSON with the same types the CLI wrote
//! it with (`serde_json::from_str::<GateOutput>(…)`).
//!
//! Every name is snake_case; every field a program branches on is a fixed enum value, never
//! words for people (fields that are prose, such as a control's `reason`, say so). Times are
//! RFC 3339 text in UTC with nanoseconds, as [`crate::time_text`] writes them; hashes and keys
//! are lowercase hex. The JSON Schema of each command's output, generated from these types by
//! [`schemas`], is committed in `docs/schemas/` and checked against them by a test.
//!
//! This module describes output; it must never fetch, verify or print.

use std::collections::BTreeMap;
use std::path::PathBuf;

use evident_core::note::Checkpoint;
use evident_core::record::EntryKind;
use evident_core::registry::{Admin, Credential, Event, SignerKey};
use evident_core::statement::Statement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::time_text;

/// An entry's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A signed attestation from a pipeline.
    Attestation,
    /// A change to the trust registry, signed by administrators.
    Registry,
    /// A version of a release policy, signed by administrators.
    Policy,
}

impl From<EntryKind> for Kind {
    fn from(kind: EntryKind) -> Kind {
        match kind {
            EntryKind::Attestation => Kind::Attestation,
            EntryKind::Registry => Kind::Registry,
            EntryKind::Policy => Kind::Policy,
            // `EntryKind` is non-exhaustive for other crates; a kind added to the ledger
            // gets its name here in the same change (the workspace builds them together).
            other => unreachable!("entry kind {} has no output name", other.as_str()),
        }
    }
}

/// A subject of a Statement: its name and digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectOutput {
    /// The subject's name (may be empty).
    pub name: String,
    /// Its digests, `ALGORITHM:HEX`.
    pub digests: Vec<String>,
}

/// The subjects of a Statement.
pub fn subjects_of(statement: &Statement) -> Vec<SubjectOutput> {
    statement
        .subjects
        .iter()
        .map(|s| SubjectOutput {
            name: s.name.clone(),
            digests: s
                .digests
                .iter()
                .map(|(a, v)| format!("{}:{v}", a.as_str()))
                .collect(),
        })
        .collect()
}

/// `evident keygen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeygenOutput {
    /// The private key file (mode 0600).
    pub private_key: PathBuf,
    /// The public key file, `FILE.pub`.
    pub public_key_file: PathBuf,
    /// The public key (64 hex digits).
    pub public_key: String,
    /// The key's id (hex SHA-256 of the public key).
    pub key_id: String,
}

/// `evident submit`: one element per envelope file, in the order given.
pub type SubmitOutput = Vec<SubmittedFile>;

/// What became of one envelope file of `evident submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SubmittedFile {
    /// The envelope is in the log and its receipt was written.
    Logged {
        /// The envelope file.
        envelope: PathBuf,
        /// The entry's index.
        index: u64,
        /// Whether the envelope was already in the log.
        duplicate: bool,
        /// The entry's leaf hash.
        leaf_hash: String,
        /// The size of the tree the receipt's checkpoint signs.
        tree_size: u64,
        /// Where the receipt was written.
        receipt: PathBuf,
        /// Whether the receipt was verified (a log key was given).
        verified: bool,
    },
    /// The envelope was refused, or its answer did not verify.
    Failed {
        /// The envelope file.
        envelope: PathBuf,
        /// Whether the failure is a failed verification (the command then exits 1) rather
        /// than a refusal or an error.
        verification_failed: bool,
        /// The server's machine-readable reason (`docs/ERRORS.md`, e.g. `UNKNOWN_KEY`),
        /// when it gave one.
        reason: Option<String>,
        /// What went wrong, for people.
        error: String,
    },
}

/// `evident entry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryOutput {
    /// The entry's index.
    pub index: u64,
    /// When it was integrated.
    pub integrated_time: String,
    /// When it was integrated, in nanoseconds since the Unix epoch.
    pub integrated_time_nanos: i64,
    /// What it holds.
    pub kind: Kind,
    /// Its leaf hash.
    pub leaf_hash: String,
    /// The leaf hash of the entry before it (the chain link).
    pub previous_leaf_hash: String,
    /// The Statement's predicate type, for an attestation.
    pub predicate_type: Option<String>,
    /// The Statement's subjects, for an attestation (empty otherwise).
    pub subjects: Vec<SubjectOutput>,
    /// The DSSE envelope as logged.
    pub envelope: serde_json::Value,
    /// For an envelope that came in a Sigstore bundle: the bundle, rebuilt from the logged
    /// envelope and material (docs/FORMAT.md 2.1), for any Sigstore client to verify again;
    /// null otherwise.
    pub sigstore_bundle: Option<serde_json::Value>,
    /// With `--proof`: the size of the verified checkpoint the entry was proven in.
    pub inclusion_proven_at_tree_size: Option<u64>,
}

/// `evident checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointOutput {
    /// The log's origin line.
    pub origin: String,
    /// The number of entries the checkpoint signs.
    pub tree_size: u64,
    /// The Merkle root.
    pub root_hash: String,
    /// The tree size of the checkpoint seen before, which this one was proven consistent
    /// with; none when this is the first one seen from this log.
    pub previous_tree_size: Option<u64>,
    /// The state file that remembers it.
    pub state_file: PathBuf,
    /// The signed note, as the server sent it.
    pub note: String,
}

/// `evident receipt verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiptOutput {
    /// Always true: a receipt that does not verify fails the command (exit 1).
    pub verified: bool,
    /// The entry's index.
    pub index: u64,
    /// When it was integrated.
    pub integrated_time: String,
    /// What the entry holds.
    pub kind: Kind,
    /// The entry's leaf hash.
    pub leaf_hash: String,
    /// The Statement's predicate type, for an attestation.
    pub predicate_type: Option<String>,
    /// The log's origin line.
    pub origin: String,
    /// The size of the signed tree the entry is proven in.
    pub tree_size: u64,
    /// That tree's root.
    pub root_hash: String,
    /// With `--tiles`: the log's latest checkpoint, read from its tiles, in which the entry
    /// is proven still included (and the receipt's checkpoint consistent with it); null
    /// without `--tiles`.
    pub still_included_in: Option<CheckpointRef>,
}

/// `evident frameworks`: the framework catalogue, and what a policy's controls evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FrameworksOutput {
    /// The frameworks, built-in then added by `--catalogue`.
    pub frameworks: Vec<FrameworkOutput>,
    /// What each kind of evidence evidences.
    pub mappings: Vec<MappingOutput>,
    /// With `--policy-file`: each control of the policy and what it evidences; else null.
    pub policy: Option<PolicyFrameworksOutput>,
}

impl FrameworksOutput {
    /// The catalogue, and with `policy` what each of its controls evidences.
    pub fn new(
        catalogue: &evident_core::frameworks::Catalogue,
        policy: Option<&evident_core::policy::Policy>,
    ) -> FrameworksOutput {
        FrameworksOutput {
            frameworks: catalogue
                .frameworks()
                .iter()
                .map(|f| FrameworkOutput {
                    id: f.id.clone(),
                    name: f.name.clone(),
                    source: f.source.clone(),
                    url: f.url.clone(),
                    licence: f.licence.clone(),
                    quote_titles: f.quote_titles,
                    controls: f
                        .controls
                        .iter()
                        .map(|c| FrameworkControlOutput {
                            id: c.id.clone(),
                            title: c.title.clone(),
                            section: c.section.clone(),
                        })
                        .collect(),
                })
                .collect(),
            mappings: catalogue
                .mappings()
                .iter()
                .map(|m| MappingOutput {
                    predicate_type: m.predicate_type.clone(),
                    features: m.features.iter().map(|f| f.as_str().to_owned()).collect(),
                    evidences: m.evidences.iter().map(ToString::to_string).collect(),
                    rationale: m.rationale.clone(),
                })
                .collect(),
            policy: policy.map(|p| PolicyFrameworksOutput {
                name: p.name.clone(),
                version: p.version,
                controls: p
                    .controls
                    .iter()
                    .map(|c| PolicyControlFrameworks {
                        id: c.id.clone(),
                        predicate_type: c.predicate_type.clone(),
                        evidences: crate::report::framework_links(catalogue, c)
                            .into_iter()
                            .map(|link| EvidencedOutput {
                                reference: link.reference(),
                                known: link.known,
                                title: link.title,
                                named_by_policy: link.named_by_policy,
                                mapped_because: link.mapped_because,
                            })
                            .collect(),
                    })
                    .collect(),
            }),
        }
    }
}

/// A framework of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FrameworkOutput {
    /// Its id, the `FRAMEWORK` of `FRAMEWORK:CONTROL`.
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// The document its controls come from.
    pub source: String,
    /// Where that document is published.
    pub url: Option<String>,
    /// What the source's licence allows the catalogue to reproduce (words).
    pub licence: String,
    /// Whether control titles are quoted.
    pub quote_titles: bool,
    /// Its controls.
    pub controls: Vec<FrameworkControlOutput>,
}

/// A control of a framework.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FrameworkControlOutput {
    /// Its identifier in the framework.
    pub id: String,
    /// Its title, where the licence allows quoting it; else null.
    pub title: Option<String>,
    /// The section of the source it comes from (words).
    pub section: String,
}

/// A mapping of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MappingOutput {
    /// The predicate type of a policy control's evidence.
    pub predicate_type: String,
    /// What the control must also check (`separation_of_duties`, `max_severity`, …).
    pub features: Vec<String>,
    /// The framework controls it evidences, `FRAMEWORK:CONTROL`.
    pub evidences: Vec<String>,
    /// Why (words).
    pub rationale: String,
}

/// A policy's controls and what each evidences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyFrameworksOutput {
    /// The policy's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Its controls, in order.
    pub controls: Vec<PolicyControlFrameworks>,
}

/// One policy control and the framework controls it evidences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyControlFrameworks {
    /// The control's id.
    pub id: String,
    /// The predicate type of its evidence.
    pub predicate_type: String,
    /// The framework controls it evidences, each once.
    pub evidences: Vec<EvidencedOutput>,
}

/// A framework control a policy control evidences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EvidencedOutput {
    /// `FRAMEWORK:CONTROL`.
    pub reference: String,
    /// Whether the catalogue lists it.
    pub known: bool,
    /// Its title, where known and quotable; else null.
    pub title: Option<String>,
    /// Whether the policy names it (`evidences`).
    pub named_by_policy: bool,
    /// The rationales of the catalogue mappings that link it (words); empty when only the
    /// policy names it.
    pub mapped_because: Vec<String>,
}

/// A checkpoint: origin, size and root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointRef {
    /// The log's origin line.
    pub origin: String,
    /// The number of entries it signs.
    pub tree_size: u64,
    /// The Merkle root.
    pub root_hash: String,
}

impl From<&Checkpoint> for CheckpointRef {
    fn from(c: &Checkpoint) -> CheckpointRef {
        CheckpointRef {
            origin: c.origin.clone(),
            tree_size: c.size,
            root_hash: c.root.to_hex(),
        }
    }
}

/// A trust-registry operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistryOp {
    /// `evident signer add`.
    AddSigner,
    /// `evident signer rotate`.
    RotateSigner,
    /// `evident signer revoke --public-key`.
    RevokeKey,
    /// `evident signer revoke --identity`.
    RevokeSigner,
    /// `evident sigstore trust`.
    TrustSigstore,
    /// `evident sigstore distrust`.
    DistrustSigstore,
    /// `evident admin add`.
    AddAdmin,
    /// `evident admin remove`.
    RemoveAdmin,
}

/// `evident signer add|rotate|revoke` and `evident admin add|remove`: the change's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryChangeOutput {
    /// The entry's index.
    pub index: u64,
    /// The operation.
    pub op: RegistryOp,
    /// Whether the same change was already in the log.
    pub duplicate: bool,
    /// The entry's leaf hash.
    pub leaf_hash: String,
    /// Whether the receipt was verified (a log key was given).
    pub verified: bool,
}

/// A signer key's state at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// It may sign (for its predicate types).
    Valid,
    /// Revoked from `revoked_from`.
    Revoked,
    /// Past its `not_after`.
    Expired,
    /// Before its `not_before`.
    NotYetValid,
}

impl KeyStatus {
    /// The status of `key` at `time` (nanoseconds), by the rules of
    /// [`SignerKey::check`]: revocation first, then expiry, then the start.
    pub fn of(key: &SignerKey, time: i64) -> KeyStatus {
        if key.revoked.as_ref().is_some_and(|(from, _)| *from <= time) {
            KeyStatus::Revoked
        } else if key.not_after.is_some_and(|end| end <= time) {
            KeyStatus::Expired
        } else if key.not_before.is_some_and(|start| time < start) {
            KeyStatus::NotYetValid
        } else {
            KeyStatus::Valid
        }
    }
}

/// A registered signer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignerKeyOutput {
    /// The signer.
    pub identity: String,
    /// What the signer signs with: `ed25519`, `ecdsa-p256`, `ecdsa-p384`, or
    /// `certificate` (keyless).
    pub kind: String,
    /// The public key: 64 hex digits (Ed25519) or PEM (ECDSA); empty for a keyless signer.
    pub public_key: String,
    /// The key's id (for a keyless signer, of its certificate rule).
    pub key_id: String,
    /// A keyless signer's certificate rule (null for a key).
    pub certificate: Option<CertificateRuleOutput>,
    /// Its roles.
    pub roles: Vec<String>,
    /// The predicate types it may attest (`*` for any).
    pub predicate_types: Vec<String>,
    /// Not valid before.
    pub not_before: Option<String>,
    /// Not valid from.
    pub not_after: Option<String>,
    /// Revoked from.
    pub revoked_from: Option<String>,
    /// Why it was revoked, as the administrators wrote it.
    pub revoked_reason: Option<String>,
    /// The index of the registry entry that added it.
    pub added_at_index: u64,
    /// Its status at the time asked about (now, or `--as-of-time`).
    pub status: KeyStatus,
}

impl SignerKeyOutput {
    /// `key` as output, with its status at `time` (nanoseconds).
    pub fn new(key: &SignerKey, time: i64) -> SignerKeyOutput {
        let kind = match &key.credential {
            Credential::Ed25519(_) => "ed25519".to_owned(),
            Credential::Ecdsa(k) => {
                format!("ecdsa-{}", k.curve().name().to_lowercase().replace('-', ""))
            }
            Credential::Certificate(_) => "certificate".to_owned(),
        };
        SignerKeyOutput {
            identity: key.identity.clone(),
            kind,
            public_key: key.credential.key_text().unwrap_or_default(),
            key_id: key.credential.key_id(),
            certificate: match &key.credential {
                Credential::Certificate(rule) => Some(CertificateRuleOutput {
                    issuer: rule.issuer.clone(),
                    subject: rule.subject.clone(),
                    extensions: rule.extensions.clone(),
                    trusted_root: rule.trusted_root.clone(),
                }),
                _ => None,
            },
            roles: key.roles.iter().cloned().collect(),
            predicate_types: key.predicate_types.iter().cloned().collect(),
            not_before: key.not_before.map(time_text),
            not_after: key.not_after.map(time_text),
            revoked_from: key.revoked.as_ref().map(|(t, _)| time_text(*t)),
            revoked_reason: key.revoked.as_ref().map(|(_, r)| r.clone()),
            added_at_index: key.added_at,
            status: KeyStatus::of(key, time),
        }
    }
}

/// Which Sigstore certificates stand for a keyless signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateRuleOutput {
    /// The OIDC issuer.
    pub issuer: String,
    /// The certificate subject, exact or a pattern.
    pub subject: String,
    /// Fulcio extensions that must match, by name.
    pub extensions: std::collections::BTreeMap<String, String>,
    /// The trusted root the certificate must chain to (null: any trusted root).
    pub trusted_root: Option<String>,
}

/// An administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdminOutput {
    /// Who holds the key.
    pub identity: String,
    /// The public key (64 hex digits).
    pub public_key: String,
    /// The key's id.
    pub key_id: String,
}

impl From<&Admin> for AdminOutput {
    fn from(a: &Admin) -> AdminOutput {
        AdminOutput {
            identity: a.identity.clone(),
            public_key: a.key.to_hex(),
            key_id: a.key.key_id(),
        }
    }
}

/// `evident signer list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignerListOutput {
    /// The number of entries the listing covers.
    pub as_of_index: u64,
    /// How many administrators must sign a registry change.
    pub threshold: usize,
    /// The administrators.
    pub admins: Vec<AdminOutput>,
    /// Every signer key ever registered, in order, with its status at the time asked about.
    pub signers: Vec<SignerKeyOutput>,
    /// The Sigstore trusted roots keyless signers' certificates may chain to.
    pub sigstore_roots: Vec<SigstoreRootOutput>,
}

/// A Sigstore trusted root of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SigstoreRootOutput {
    /// The name certificate rules use.
    pub name: String,
    /// Hex SHA-256 of the trusted root document as the registry entry carries it.
    pub sha256: String,
}

/// A registry entry that touched a signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignerEventOutput {
    /// The registry entry's index.
    pub index: u64,
    /// When it was integrated.
    pub integrated_time: String,
    /// What happened, for people.
    pub summary: String,
}

impl From<&Event> for SignerEventOutput {
    fn from(e: &Event) -> SignerEventOutput {
        SignerEventOutput {
            index: e.index,
            integrated_time: time_text(e.time),
            summary: e.summary.clone(),
        }
    }
}

/// `evident signer show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignerShowOutput {
    /// The signer.
    pub identity: String,
    /// Its keys, with their status now.
    pub keys: Vec<SignerKeyOutput>,
    /// The registry entries that touched it, in log order.
    pub history: Vec<SignerEventOutput>,
}

/// `evident policy submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicySubmitOutput {
    /// The entry's index.
    pub index: u64,
    /// The policy's name.
    pub policy: String,
    /// Its version.
    pub version: u64,
    /// The entry's leaf hash.
    pub leaf_hash: String,
    /// Whether the same document was already in the log.
    pub duplicate: bool,
    /// Whether the receipt was verified (a log key was given).
    pub verified: bool,
}

/// `evident policy show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyShowOutput {
    /// The policy's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The entry that holds it.
    pub index: u64,
    /// When it was integrated.
    pub integrated_time: String,
    /// The administrators who signed it.
    pub signed_by: Vec<String>,
    /// The TOML document as signed.
    pub document: String,
}

/// A policy version in `evident policy list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyVersionOutput {
    /// The policy's name.
    pub name: String,
    /// The version.
    pub version: u64,
    /// The entry that holds it.
    pub index: u64,
}

/// `evident policy list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyListOutput {
    /// Every policy version in the log.
    pub policies: Vec<PolicyVersionOutput>,
}

/// Whether a release may ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Every control passed.
    Allowed,
    /// A control failed or had no evidence.
    Denied,
}

impl Decision {
    /// `Allowed` when `allowed`.
    pub fn from_allowed(allowed: bool) -> Decision {
        if allowed {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }
}

/// A control's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    /// The evidence satisfies the control.
    Pass,
    /// There is evidence, and it does not satisfy the control.
    Fail,
    /// No evidence of this kind, from these signers, about this subject.
    Missing,
}

/// An entry a control looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EntryRef {
    /// The log index.
    pub index: u64,
    /// The leaf hash.
    pub leaf_hash: String,
}

/// One control's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ControlOutput {
    /// The control's id in the policy.
    pub id: String,
    /// Its outcome.
    pub status: ControlStatus,
    /// Why, for people.
    pub reason: String,
    /// The entries that satisfied the control (on pass) or were examined (otherwise).
    pub entries: Vec<EntryRef>,
}

/// `evident gate` and `evident bundle verify`: the verdict on a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GateOutput {
    /// Whether the release may ship (exit 0) or not (exit 1).
    pub decision: Decision,
    /// True when every control passed (the same as `decision` being `allowed`).
    pub allowed: bool,
    /// `NAME@VERSION` of the policy.
    pub policy: String,
    /// The artifact digests the release is (`ALGORITHM:HEX`).
    pub artifacts: Vec<String>,
    /// The source commits found through trusted provenance.
    pub source_commits: Vec<String>,
    /// Every control, in policy order.
    pub controls: Vec<ControlOutput>,
    /// The size of the verified checkpoint the evidence was proven against.
    pub tree_size: u64,
    /// With `--as-of`: the past time the decision was re-performed as of (RFC 3339, UTC).
    pub as_of: Option<String>,
    /// With `--record`: the entry that records the verdict, once it is in the log.
    pub recorded_index: Option<u64>,
    /// With `--record`: why the verdict could not be recorded. An allowed release whose
    /// verdict was not recorded exits 2: it must not ship on this answer.
    pub record_error: Option<String>,
}

impl GateOutput {
    /// The output of a gate's `report`, decided against a checkpoint of `tree_size`.
    pub fn new(report: &evident_core::policy::Report, tree_size: u64) -> GateOutput {
        use evident_core::policy::Status;
        GateOutput {
            decision: Decision::from_allowed(report.allowed),
            allowed: report.allowed,
            policy: report.policy.clone(),
            artifacts: report.artifacts.clone(),
            source_commits: report.source_commits.clone(),
            controls: report
                .controls
                .iter()
                .map(|c| ControlOutput {
                    id: c.id.clone(),
                    status: match c.status {
                        Status::Pass => ControlStatus::Pass,
                        Status::Fail => ControlStatus::Fail,
                        Status::Missing => ControlStatus::Missing,
                    },
                    reason: c.reason.clone(),
                    entries: c
                        .entries
                        .iter()
                        .map(|e| EntryRef {
                            index: e.index,
                            leaf_hash: e.leaf_hash.clone(),
                        })
                        .collect(),
                })
                .collect(),
            tree_size,
            as_of: None,
            recorded_index: None,
            record_error: None,
        }
    }
}

/// One result of `evident query` (also one line of `--format jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueryHitOutput {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: String,
    /// When it was integrated.
    pub integrated_time: String,
    /// What it holds.
    pub kind: Kind,
    /// The predicate type, for an attestation.
    pub predicate_type: Option<String>,
    /// Who signed it (identities; administrators for registry and policy entries).
    pub signers: Vec<String>,
    /// Its subjects.
    pub subjects: Vec<SubjectOutput>,
}

impl From<&crate::Hit> for QueryHitOutput {
    fn from(hit: &crate::Hit) -> QueryHitOutput {
        QueryHitOutput {
            index: hit.index,
            leaf_hash: hit.leaf_hash.to_hex(),
            integrated_time: time_text(hit.integrated_time_nanos),
            kind: hit.kind.into(),
            predicate_type: (!hit.predicate_type.is_empty()).then(|| hit.predicate_type.clone()),
            signers: hit.signers.clone(),
            subjects: hit
                .subjects
                .iter()
                .map(|(name, digests)| SubjectOutput {
                    name: name.clone(),
                    digests: digests.clone(),
                })
                .collect(),
        }
    }
}

/// `evident query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueryOutput {
    /// The tree size the server answered at.
    pub tree_size: u64,
    /// Whether every result was proven in a verified checkpoint (`--verify`).
    pub verified: bool,
    /// The results, in the order asked.
    pub results: Vec<QueryHitOutput>,
    /// Pass to `--cursor` for more results; none when there are no more.
    pub next_cursor: Option<String>,
    /// Whether the answer is proven to hold every matching entry (`--verify`, one filter
    /// and a period): against the verifiable index of the checkpoint of `tree_size`.
    pub complete: bool,
    /// How many entries the whole answer has, when it is proven complete.
    pub total: Option<u64>,
    /// What was proven about completeness, in words.
    pub completeness: String,
}

/// A recorded gate verdict's result, as the SLSA verification summary states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VerificationResult {
    /// The gate allowed the release.
    #[serde(rename = "PASSED")]
    Passed,
    /// The gate denied it.
    #[serde(rename = "FAILED")]
    Failed,
    /// The summary states neither (another word, another case, or nothing): still the
    /// newest verdict, so an older `PASSED` never shows through it.
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl VerificationResult {
    /// The result a verification summary's `verificationResult` states.
    pub fn parse(text: Option<&str>) -> VerificationResult {
        match text {
            Some("PASSED") => VerificationResult::Passed,
            Some("FAILED") => VerificationResult::Failed,
            _ => VerificationResult::Unknown,
        }
    }

    /// `PASSED`, `FAILED` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationResult::Passed => "PASSED",
            VerificationResult::Failed => "FAILED",
            VerificationResult::Unknown => "UNKNOWN",
        }
    }
}

/// One release of `evident releases` (also one line of `--format jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseRow {
    /// The release's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The release attestation's entry.
    pub index: u64,
    /// When it was integrated.
    pub integrated_time: String,
    /// Who signed the release attestation.
    pub signers: Vec<String>,
    /// Whether a `--release-signer` signed it; a release attestation by anyone else is not
    /// presented as a release.
    pub trusted: bool,
    /// The release's artifacts, `ALGORITHM:HEX`.
    pub artifacts: Vec<String>,
    /// The newest verdict a `--verdict-signer` recorded about all the artifacts, if any.
    pub verdict: Option<VerificationResult>,
    /// That verdict's entry.
    pub verdict_index: Option<u64>,
    /// The policy the verdict names (its URI).
    pub verdict_policy: Option<String>,
    /// Who signed that verdict.
    pub verdict_signer: Option<Vec<String>>,
}

/// `evident releases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleasesOutput {
    /// The releases in the period, in log order; untrusted ones too, marked.
    pub releases: Vec<ReleaseRow>,
    /// Whether the list is proven to hold every release attestation of the period
    /// (`--verify`): against the verifiable index of a verified checkpoint.
    pub complete: bool,
    /// What was proven about completeness, in words.
    pub completeness: String,
}

/// What a replayed log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditSummary {
    /// Entries replayed.
    pub entries: u64,
    /// Entries by kind (`attestation`, `registry`, `policy`).
    pub kinds: BTreeMap<String, u64>,
    /// Attestations by signer identity.
    pub signers: BTreeMap<String, u64>,
    /// Attestations by predicate type.
    pub predicate_types: BTreeMap<String, u64>,
    /// When the first entry was integrated.
    pub first_time: Option<String>,
    /// When the last entry was integrated.
    pub last_time: Option<String>,
}

impl From<&evident_core::audit::Summary> for AuditSummary {
    fn from(s: &evident_core::audit::Summary) -> AuditSummary {
        AuditSummary {
            entries: s.entries,
            kinds: s.kinds.clone(),
            signers: s.signers.clone(),
            predicate_types: s.predicate_types.clone(),
            first_time: s.first_time.map(time_text),
            last_time: s.last_time.map(time_text),
        }
    }
}

/// `evident audit`: written only when the whole log replays (otherwise exit 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditOutput {
    /// Always true: a log that does not replay fails the command.
    pub ok: bool,
    /// The name of the log key that signed the checkpoint.
    pub log_key: String,
    /// The latest checkpoint, whose root the replay matched.
    pub checkpoint: CheckpointRef,
    /// What the log holds.
    pub summary: AuditSummary,
}

/// A release in `evident report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportedRelease {
    /// `NAME@VERSION`, or the artifact's digest.
    pub release: String,
    /// `NAME@VERSION` of the policy applied.
    pub policy: String,
    /// The verdict.
    pub decision: Decision,
}

/// `evident report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportOutput {
    /// The HTML report written.
    pub html: PathBuf,
    /// The Markdown report written.
    pub markdown: PathBuf,
    /// The OSCAL 1.1.2 assessment-results document written.
    pub oscal: PathBuf,
    /// The population written as CSV, one row per release, for sampling.
    pub population_csv: PathBuf,
    /// The population written as JSON ([`PopulationOutput`]).
    pub population_json: PathBuf,
    /// The past time the decisions were re-performed as of (`--as-of`), if any.
    pub as_of: Option<String>,
    /// The releases reported, each with its verdict.
    pub releases: Vec<ReportedRelease>,
    /// The size of the checkpoint the report is against.
    pub tree_size: u64,
}

/// The population file `evident report` writes (`evident-report.population.json`): every
/// release of the report, denials first, then releases with exceptions, as an auditor
/// samples from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PopulationOutput {
    /// The report's title.
    pub report: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The time the decisions were re-performed as of, if not `generated_at`.
    pub as_of: Option<String>,
    /// The log's origin.
    pub log_origin: String,
    /// The size of the checkpoint the evidence was proven against.
    pub tree_size: u64,
    /// The checkpoint's root hash (hex).
    pub root_hash: String,
    /// One row per release.
    pub releases: Vec<PopulationRow>,
    /// For a period: whether the release attestations of the period are proven complete
    /// against the log's verifiable index (`null` for a report of one release).
    pub complete: Option<bool>,
    /// How many release attestations the period holds, when proven.
    pub release_attestations: Option<u64>,
    /// What was proven about the population, in words.
    pub completeness: Option<String>,
    /// Release attestations of the period not reported, as not signed by a release signer
    /// (by the server's signer lists): `NAME@VERSION (entry N)`.
    pub not_reported: Vec<String>,
}

/// One release of a population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PopulationRow {
    /// `NAME@VERSION`, or the artifact digest.
    pub release: String,
    /// The verdict the report re-performed.
    pub decision: Decision,
    /// `NAME@VERSION` of the policy applied.
    pub policy: String,
    /// Controls passed.
    pub controls_passed: usize,
    /// Controls evaluated (per artifact, for a release of several).
    pub controls_total: usize,
    /// The controls that did not pass.
    pub failed_controls: Vec<String>,
    /// Allowlisted findings, `CONTROL:FINDING`.
    pub exceptions: Vec<String>,
    /// The artifacts (`ALGORITHM:HEX`).
    pub artifacts: Vec<String>,
    /// The release attestation declaring it (a release signer's), when there is one.
    pub declared_index: Option<u64>,
    /// Who signed that declaration.
    pub declared_by: Vec<String>,
    /// The latest gate verdict a trusted verdict signer recorded about it in the log
    /// (`PASSED`, `FAILED`).
    pub recorded_verdict: Option<String>,
    /// That verdict's entry.
    pub recorded_verdict_index: Option<u64>,
    /// When it was integrated (RFC 3339, UTC).
    pub recorded_verdict_time: Option<String>,
    /// Who signed that verdict (the deploy identity).
    pub recorded_verdict_signer: Vec<String>,
}

impl PopulationOutput {
    /// The population of `doc`, in [`crate::report::population_order`].
    pub fn of(doc: &crate::report::Document) -> PopulationOutput {
        use crate::report::Verdict;
        use evident_core::policy::Status;
        let releases = crate::report::population_order(doc)
            .into_iter()
            .map(|n| {
                let r = &doc.releases[n];
                let declared = r.declaration();
                let deployed = r.recorded_verdict();
                PopulationRow {
                    release: r.label.clone(),
                    decision: Decision::from_allowed(r.verdict == Verdict::Allowed),
                    policy: format!("{}@{}", r.policy.name, r.policy.version),
                    controls_passed: r
                        .controls
                        .iter()
                        .filter(|c| c.status == Status::Pass)
                        .count(),
                    controls_total: r.controls.len(),
                    failed_controls: r
                        .controls
                        .iter()
                        .filter(|c| c.status != Status::Pass)
                        .map(|c| match &c.artifact {
                            Some(a) => format!("{} [{a}]", c.id),
                            None => c.id.clone(),
                        })
                        .collect(),
                    exceptions: r
                        .exceptions
                        .iter()
                        .map(|e| format!("{}:{}", e.control, e.finding))
                        .collect(),
                    artifacts: r.artifacts.clone(),
                    declared_index: declared.map(|d| d.index),
                    declared_by: declared.map(|d| d.signers.clone()).unwrap_or_default(),
                    recorded_verdict: deployed.and_then(|d| d.result.clone()),
                    recorded_verdict_index: deployed.map(|d| d.index),
                    recorded_verdict_time: deployed.map(|d| d.integrated_time.clone()),
                    recorded_verdict_signer: deployed
                        .map(|d| d.signers.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        PopulationOutput {
            report: doc.title.clone(),
            generated_at: doc.generated_at.clone(),
            as_of: doc.as_of.clone(),
            log_origin: doc.log_origin.clone(),
            tree_size: doc.checkpoint.size,
            root_hash: doc.checkpoint.root_hex.clone(),
            releases,
            complete: doc.population.as_ref().map(|p| p.complete),
            release_attestations: doc.population.as_ref().and_then(|p| p.release_attestations),
            completeness: doc.population.as_ref().map(|p| p.text.clone()),
            not_reported: doc
                .population
                .as_ref()
                .map(|p| p.not_reported.clone())
                .unwrap_or_default(),
        }
    }
}

/// The JSON Schema (draft 2020-12) of every command's `--format json` output, by file stem:
/// `docs/schemas/STEM.schema.json`. Commands that write the same type share its schema
/// under each of their names; `-line` schemas are one line of `--format jsonl`.
///
/// Every property is required, optional ones included: the CLI writes `null` for a value it
/// does not have, never leaves the key out.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn of<T: JsonSchema>() -> serde_json::Value {
        let mut schema =
            serde_json::to_value(schemars::schema_for!(T)).expect("a schema serializes");
        require_every_property(&mut schema);
        schema
    }
    fn require_every_property(schema: &mut serde_json::Value) {
        match schema {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                    let names = properties.keys().cloned().map(serde_json::Value::String);
                    let required = serde_json::Value::Array(names.collect());
                    map.insert("required".to_owned(), required);
                }
                map.values_mut().for_each(require_every_property);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(require_every_property),
            _ => {}
        }
    }
    vec![
        ("keygen", of::<KeygenOutput>()),
        ("submit", of::<SubmitOutput>()),
        ("entry", of::<EntryOutput>()),
        ("checkpoint", of::<CheckpointOutput>()),
        ("receipt-verify", of::<ReceiptOutput>()),
        ("frameworks", of::<FrameworksOutput>()),
        ("signer-add", of::<RegistryChangeOutput>()),
        ("signer-rotate", of::<RegistryChangeOutput>()),
        ("signer-revoke", of::<RegistryChangeOutput>()),
        ("signer-list", of::<SignerListOutput>()),
        ("signer-show", of::<SignerShowOutput>()),
        ("sigstore-trust", of::<RegistryChangeOutput>()),
        ("sigstore-distrust", of::<RegistryChangeOutput>()),
        ("admin-add", of::<RegistryChangeOutput>()),
        ("admin-remove", of::<RegistryChangeOutput>()),
        ("policy-submit", of::<PolicySubmitOutput>()),
        ("policy-show", of::<PolicyShowOutput>()),
        ("policy-list", of::<PolicyListOutput>()),
        ("gate", of::<GateOutput>()),
        ("bundle-verify", of::<GateOutput>()),
        ("query", of::<QueryOutput>()),
        ("query-line", of::<QueryHitOutput>()),
        ("releases", of::<ReleasesOutput>()),
        ("releases-line", of::<ReleaseRow>()),
        ("audit", of::<AuditOutput>()),
        ("report", of::<ReportOutput>()),
        ("report-population", of::<PopulationOutput>()),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    /// The committed schemas in `docs/schemas/` are the ones the types generate. With
    /// `EVIDENT_BLESS=1`, the test writes them instead (after a change to an output type).
    #[test]
    fn the_committed_schemas_are_the_generated_ones() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
        let bless = std::env::var_os("EVIDENT_BLESS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        let generated = schemas();
        for (stem, schema) in &generated {
            let path = dir.join(format!("{stem}.schema.json"));
            let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        // No schema left behind for an output that no longer exists.
        for file in std::fs::read_dir(&dir).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".schema.json").unwrap_or(&name);
            if !generated.iter().any(|(s, _)| *s == stem) {
                stale.push(format!("{name} (no output type)"));
            }
        }
        assert!(
            stale.is_empty(),
            "schemas differ from the output types: {stale:?}; rerun with EVIDENT_BLESS=1 \
             and commit docs/schemas/"
        );
    }

    #[test]
    fn every_schema_is_draft_2020_12_and_snake_case() {
        for (stem, schema) in schemas() {
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{stem}"
            );
            let text = schema.to_string();
            for camel in [
                "leafHash",
                "treeSize",
                "publicKey",
                "integratedTime",
                "keyId",
            ] {
                assert!(!text.contains(camel), "{stem} has {camel}");
            }
        }
    }

    #[test]
    fn outputs_read_back_with_their_types() {
        let failed = SubmittedFile::Failed {
            envelope: "a.json".into(),
            verification_failed: false,
            reason: Some("UNKNOWN_KEY".into()),
            error: "the server refused".into(),
        };
        let text = serde_json::to_string(&failed).unwrap();
        assert!(text.contains(r#""status":"failed""#), "{text}");
        assert_eq!(
            serde_json::from_str::<SubmittedFile>(&text).unwrap(),
            failed
        );
        assert_eq!(
            serde_json::to_value(KeyStatus::NotYetValid).unwrap(),
            "not_yet_valid"
        );
        assert_eq!(
            serde_json::to_value(VerificationResult::Passed).unwrap(),
            "PASSED"
        );
    }
}
