//! The kinds of log entry, one module each, behind one trait.
//!
//! Every entry the ledger takes goes through the same five steps, and each kind decides
//! what they mean for it:
//!
//! 1. **check**, on submit, against the registry as it is now: what needs no sequencing
//!    (the payload parses, the signatures verify under the right keys). Refusals here cost
//!    the log nothing.
//! 2. **trial**, on submit, once the entry is known to be new: its effect tried on a copy
//!    of the state (a registry change that does not fit is refused before it queues).
//! 3. **authorize**, at integration, against the [`LogState`] after every earlier entry
//!    and at the entry's integrated time: who signed it, as that state sees them. The
//!    signers are part of the dedupe key.
//! 4. **apply**, once the entry is known to be new: its effect on the state (a registry
//!    change, a policy's latest version). On a refusal the state is unchanged.
//! 5. **record**, once the entry has its leaf hash: the running [`Digests`] checkpoints
//!    sign.
//!
//! The sequencer runs 3–5 for each submission; [`crate::audit::Replay`] runs 3–5 for each
//! leaf record (with no check from submit, so it verifies every signature itself), which
//! is how `evident audit`, `evidentd verify-store` and the indexes rebuilt after a crash
//! see exactly what the sequencer saw. A new kind is a new module here, a variant of
//! [`EntryKind`] and its line in [`of`] and [`for_payload_type`].

use std::collections::HashMap;

use crate::audit::Facts;
use crate::dsse::Envelope;
use crate::hash::Hash;
use crate::policy::PolicyError;
use crate::record::EntryKind;
use crate::registry::{AuthError, Registry, RegistryDigest, RegistryError, SignedBy};

mod attestation;
mod policy_version;
mod registry_change;

pub use attestation::{Attestation, check_verified};
pub use policy_version::PolicyVersion;
pub use registry_change::RegistryChange;

/// The state entries are authorized against and change: the trust registry, the latest
/// version of each policy, and the running digests every checkpoint signs.
#[derive(Debug, Clone)]
pub struct LogState {
    /// The trust registry after the entries so far.
    pub registry: Registry,
    /// The latest version of each policy.
    pub policies: HashMap<String, u64>,
    /// The running digests checkpoints sign.
    pub digests: Digests,
}

/// The running hashes every checkpoint signs, each over the leaf hashes of one kind of
/// entry: a bundle must hold every registry entry and every policy version, or a left-out
/// revocation or a laxer old policy could go unnoticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// The registry entries (the `evident-registry` line).
    pub registry: RegistryDigest,
    /// The policy versions (the `evident-policies` line).
    pub policy: RegistryDigest,
}

impl Digests {
    /// Adds an appended entry of `kind` by its leaf hash ([`Kind::record`]).
    pub fn add(&mut self, kind: EntryKind, leaf_hash: &Hash) {
        of(kind).record(self, leaf_hash);
    }

    /// The extension lines of a checkpoint.
    pub fn extensions(&self) -> Vec<String> {
        vec![self.registry.extension(), self.policy.policy_extension()]
    }
}

impl LogState {
    /// The state of an empty log whose registry starts at `genesis`.
    pub fn new(genesis: Registry) -> LogState {
        LogState {
            registry: genesis,
            policies: HashMap::new(),
            digests: Digests::default(),
        }
    }
}

/// An entry as checked on submit: what the sequencer needs to place it. Only a kind's
/// [`Kind::check`] makes one, and it is bound to the envelope it checked: given another
/// envelope, [`Kind::authorize`] ignores it and verifies everything itself.
#[derive(Debug, Clone)]
pub struct Checked {
    kind: EntryKind,
    facts: Facts,
    keys: Vec<SignedBy>,
    registry_changes: usize,
    what: String,
    envelope: Hash,
}

impl Checked {
    fn new(
        kind: EntryKind,
        envelope: &Envelope,
        facts: Facts,
        keys: Vec<SignedBy>,
        registry: &Registry,
        what: String,
    ) -> Checked {
        Checked {
            kind,
            facts,
            keys,
            registry_changes: registry.events().len(),
            what,
            envelope: envelope_digest(envelope),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// What it is about, and who signed it as the registry of the check saw them.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// What the entry is, for log lines: a predicate type, `registry change`,
    /// `policy NAME@VERSION`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// This check, if it is of `envelope` and by `kind`.
    fn of(&self, kind: EntryKind, envelope: &Envelope) -> Option<&Checked> {
        (self.kind == kind && self.envelope == envelope_digest(envelope)).then_some(self)
    }
}

/// A digest of everything an envelope holds: its signed content (the PAE), each
/// signature with its key id, and its Sigstore material.
fn envelope_digest(envelope: &Envelope) -> Hash {
    let mut bytes = envelope.pae();
    for s in &envelope.signatures {
        for field in [s.keyid.as_bytes(), s.sig.as_slice()] {
            bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
            bytes.extend_from_slice(field);
        }
    }
    if let Some(material) = &envelope.sigstore {
        bytes.extend_from_slice(b"sigstore");
        bytes.extend_from_slice(&(material.len() as u64).to_be_bytes());
        bytes.extend_from_slice(material);
    }
    Hash::sha256(&bytes)
}

/// Why an entry is refused. The server maps each to one gRPC status and reason
/// (`server/src/api/reason.rs`); a replay reports it as the entry's problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No kind of entry has this payload type.
    #[error(
        "payloadType {0:?} is not accepted: attestations use {IN_TOTO:?}, registry changes \
         {REGISTRY:?}, policies {POLICY:?}",
        IN_TOTO = crate::dsse::IN_TOTO_PAYLOAD_TYPE,
        REGISTRY = crate::registry::REGISTRY_PAYLOAD_TYPE,
        POLICY = crate::policy::POLICY_PAYLOAD_TYPE
    )]
    PayloadType(String),
    /// An envelope whose fields are longer than a leaf record can hold.
    #[error("the envelope cannot be logged: {0}")]
    Unencodable(#[source] crate::record::RecordError),
    /// An administrators' entry (registry change, policy version) with no signatures.
    #[error("envelope has no signatures: {0} are signed by administrators")]
    NoAdminSignatures(&'static str),
    /// An attestation whose payload is not an in-toto Statement v1.
    #[error("not an in-toto Statement v1: {0}")]
    Statement(#[source] crate::statement::StatementError),
    /// A release attestation whose name or version the log cannot carry.
    #[error("the release attestation's {0}")]
    Release(#[source] crate::names::NameError),
    /// An attestation's signatures do not authorize it.
    #[error("{0}")]
    Unauthorized(AuthError),
    /// A registry change, or a policy's administrator signatures, refused by the registry.
    #[error("{0}")]
    Registry(RegistryError),
    /// A policy document that does not parse, or names roles no signer holds.
    #[error("{0}")]
    Policy(PolicyError),
    /// A policy document that is not UTF-8.
    #[error("the policy document is not UTF-8")]
    PolicyText,
    /// An administrators' entry that came in a Sigstore bundle.
    #[error(
        "{0} are signed by administrators' Ed25519 keys in a bare DSSE envelope, not in a \
         Sigstore bundle: send the envelope alone"
    )]
    SigstoreNotAccepted(&'static str),
    /// A policy version that is not above the policy's latest.
    #[error("policy {name} is at version {latest}: a new version must be higher than {latest}")]
    PolicyVersion {
        /// The policy.
        name: String,
        /// Its latest version in the log.
        latest: u64,
        /// The version refused.
        version: u64,
    },
}

/// Refuses an administrators' entry (`what`) that carries Sigstore material: only
/// attestations come in bundles, so what a bundle carries is never more than a pipeline's
/// evidence, and an administrators' entry never holds bytes its signatures do not cover.
fn bare(what: &'static str, envelope: &Envelope) -> Result<(), Refusal> {
    match envelope.sigstore {
        Some(_) => Err(Refusal::SigstoreNotAccepted(what)),
        None => Ok(()),
    }
}

/// One kind of log entry: everything the ledger does with it.
pub trait Kind: Send + Sync + std::fmt::Debug {
    /// The kind its leaf records carry.
    fn kind(&self) -> EntryKind;

    /// The DSSE payload type of its envelopes.
    fn payload_type(&self) -> &'static str;

    /// Whether administrators submit it (registry changes, policy versions); pipelines
    /// submit the others.
    fn administrative(&self) -> bool;

    /// On submit: the checks that need no sequencing, against the registry as it is now.
    fn check(&self, registry: &Registry, envelope: &Envelope, now: i64)
    -> Result<Checked, Refusal>;

    /// On submit, after the dedupe lookup found the entry new: a check of its effect on
    /// the state as it is now, thrown away (a registry change that does not fit the
    /// registry is refused before it queues). Most kinds have none.
    fn trial(&self, _registry: &Registry, _envelope: &Envelope, _now: i64) -> Result<(), Refusal> {
        Ok(())
    }

    /// At integration: who signed the entry, as `state` sees them at `time`; the facts
    /// with those signers. `checked` is what the submit-time check of this envelope found,
    /// or `None` (a replay): then every signature is verified here, as it is when `checked`
    /// is of another envelope.
    fn authorize(
        &self,
        state: &LogState,
        envelope: &Envelope,
        checked: Option<&Checked>,
        time: i64,
    ) -> Result<Facts, Refusal>;

    /// Once the entry is known to be new: its effect on `state`, and its final facts. On
    /// a refusal `state` is unchanged.
    fn apply(
        &self,
        _state: &mut LogState,
        _index: u64,
        _time: i64,
        _envelope: &Envelope,
        facts: Facts,
    ) -> Result<Facts, Refusal> {
        Ok(facts)
    }

    /// Once the entry has its leaf hash: the running digest its kind feeds, if any.
    fn record(&self, _digests: &mut Digests, _leaf_hash: &Hash) {}
}

static ATTESTATION: Attestation = Attestation;
static REGISTRY_CHANGE: RegistryChange = RegistryChange;
static POLICY_VERSION: PolicyVersion = PolicyVersion;

/// The rules of a kind.
pub fn of(kind: EntryKind) -> &'static dyn Kind {
    match kind {
        EntryKind::Attestation => &ATTESTATION,
        EntryKind::Registry => &REGISTRY_CHANGE,
        EntryKind::Policy => &POLICY_VERSION,
    }
}

/// The kind whose envelopes have this payload type.
pub fn for_payload_type(payload_type: &str) -> Result<&'static dyn Kind, Refusal> {
    [&ATTESTATION as &dyn Kind, &REGISTRY_CHANGE, &POLICY_VERSION]
        .into_iter()
        .find(|k| k.payload_type() == payload_type)
        .ok_or_else(|| Refusal::PayloadType(payload_type.to_owned()))
}
