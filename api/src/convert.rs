//! Proto ⇄ core conversions, written once for both ends of the wire.
//!
//! The server turns requests into core types and answers into proto messages; the client
//! does the reverse. Both use these functions, so a field means the same thing on both
//! sides and a malformed one is named the same way. A conversion from the wire checks the
//! shape only (lengths, required fields, known enum values): it never verifies a
//! signature or a proof, which is the caller's business.
//!
//! The proto and core types are both foreign to this crate, so these are functions rather
//! than `From`/`TryFrom` implementations.

use evident_core::dsse::{Envelope, Signature};
use evident_core::ecdsa::EcKey;
use evident_core::hash::HashError;
use evident_core::keys::KeyError;
use evident_core::receipt::Receipt;
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::{Admin, CertificateRule, Credential, Event, SignerKey};
use evident_core::vindex;
use evident_core::{Hash, PublicKey};
use evident_proto::v1 as pb;

/// A wire message that does not convert into its core type: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A request that must carry an envelope has none.
    #[error("the request has no envelope: send a DSSE envelope in `envelope`")]
    NoEnvelope,
    /// An envelope without a payload type.
    #[error("envelope payloadType is empty: attestations use \"application/vnd.in-toto+json\"")]
    NoPayloadType,
    /// An entry selector that names no entry.
    #[error("name the entry by `index` or by `leaf_hash`")]
    NoSelector,
    /// A message field that must be set is not.
    #[error("the {message} has no {field}")]
    Missing {
        /// The message, e.g. `receipt`.
        message: &'static str,
        /// The absent field, e.g. `inclusion proof`.
        field: &'static str,
    },
    /// A hash field that is not a SHA-256 hash.
    #[error("{field}: {source}")]
    Hash {
        /// The field, e.g. `leaf_hash`.
        field: &'static str,
        /// Why it is not a hash.
        source: HashError,
    },
    /// A public key field that is not a usable Ed25519 key.
    #[error("{field}: {source}")]
    Key {
        /// The field, e.g. `public key`.
        field: &'static str,
        /// Why it is not a key.
        source: KeyError,
    },
    /// An entry kind this version does not know.
    #[error("unknown entry kind {0}")]
    Kind(i32),
    /// A field whose value cannot be what it claims.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// On the server, a request that does not convert is the caller's mistake.
impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> tonic::Status {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// The envelope of a `Submit` request: its `envelope`, or the DSSE envelope of its
/// `sigstore_bundle` with the bundle's verification material; never both.
pub fn submitted_envelope(
    envelope: Option<pb::Envelope>,
    sigstore_bundle: &[u8],
) -> Result<Option<pb::Envelope>, ConvertError> {
    if sigstore_bundle.is_empty() {
        return Ok(envelope);
    }
    if envelope.is_some() {
        return Err(ConvertError::Invalid {
            field: "sigstore_bundle",
            problem: "is set with envelope: send one of the two".into(),
        });
    }
    let bundle = evident_core::sigstore::Bundle::from_json(sigstore_bundle).map_err(|e| {
        ConvertError::Invalid {
            field: "sigstore_bundle",
            problem: e.to_string(),
        }
    })?;
    let mut inner = bundle.envelope().cloned().ok_or(ConvertError::Invalid {
        field: "sigstore_bundle",
        problem: "carries a message signature over an artifact, not a DSSE envelope: Evident \
                  logs attestations (in-toto Statements in DSSE)"
            .into(),
    })?;
    inner.sigstore = Some(bundle.material_json());
    Ok(Some(envelope_to_proto(inner)))
}

/// The envelope a request must carry, with the checks that need no key (present, a
/// payload type).
pub fn required_envelope(envelope: Option<pb::Envelope>) -> Result<Envelope, ConvertError> {
    envelope_from_proto(envelope.ok_or(ConvertError::NoEnvelope)?)
}

/// A wire envelope as the core type; its payload type must not be empty.
pub fn envelope_from_proto(envelope: pb::Envelope) -> Result<Envelope, ConvertError> {
    if envelope.payload_type.is_empty() {
        return Err(ConvertError::NoPayloadType);
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
        sigstore: (!envelope.sigstore_material.is_empty()).then_some(envelope.sigstore_material),
    })
}

/// An envelope as the wire carries it.
pub fn envelope_to_proto(envelope: Envelope) -> pb::Envelope {
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
        sigstore_material: envelope.sigstore.unwrap_or_default(),
    }
}

/// An entry kind on the wire. A kind the wire does not name yet is `UNSPECIFIED`.
pub fn kind_to_proto(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Attestation => pb::EntryKind::Attestation,
        EntryKind::Registry => pb::EntryKind::Registry,
        EntryKind::Policy => pb::EntryKind::Policy,
        _ => pb::EntryKind::Unspecified,
    }
}

/// An entry kind from the wire; `UNSPECIFIED` is `None` (no kind given).
pub fn optional_kind_from_proto(code: i32) -> Result<Option<EntryKind>, ConvertError> {
    match pb::EntryKind::try_from(code) {
        Ok(pb::EntryKind::Unspecified) => Ok(None),
        Ok(pb::EntryKind::Attestation) => Ok(Some(EntryKind::Attestation)),
        Ok(pb::EntryKind::Registry) => Ok(Some(EntryKind::Registry)),
        Ok(pb::EntryKind::Policy) => Ok(Some(EntryKind::Policy)),
        Err(_) => Err(ConvertError::Kind(code)),
    }
}

/// An entry's kind from the wire: one this version knows.
pub fn kind_from_proto(code: i32) -> Result<EntryKind, ConvertError> {
    optional_kind_from_proto(code)?.ok_or(ConvertError::Kind(code))
}

/// A hash field from the wire.
pub fn hash_from_proto(bytes: &[u8], field: &'static str) -> Result<Hash, ConvertError> {
    Hash::from_slice(bytes).map_err(|source| ConvertError::Hash { field, source })
}

/// A list of hashes (a proof) from the wire.
pub fn hashes_from_proto(list: &[Vec<u8>], field: &'static str) -> Result<Vec<Hash>, ConvertError> {
    list.iter().map(|h| hash_from_proto(h, field)).collect()
}

/// A list of hashes (a proof) on the wire.
pub fn hashes_to_proto(hashes: &[Hash]) -> Vec<Vec<u8>> {
    hashes.iter().map(|h| h.as_bytes().to_vec()).collect()
}

/// The inclusion proof of entry `index` in the tree of `tree_size` entries.
pub fn inclusion_proof_to_proto(index: u64, tree_size: u64, hashes: &[Hash]) -> pb::InclusionProof {
    pb::InclusionProof {
        leaf_index: index,
        tree_size,
        hashes: hashes_to_proto(hashes),
    }
}

/// A public key field from the wire.
pub fn key_from_proto(bytes: &[u8], field: &'static str) -> Result<PublicKey, ConvertError> {
    PublicKey::from_bytes(bytes).map_err(|source| ConvertError::Key { field, source })
}

/// Where and what an entry is in the log: the `LogEntry` a receipt, an entry and a query
/// result carry, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    /// Its position in the log.
    pub index: u64,
    /// Its integrated time (Unix nanoseconds).
    pub integrated_time_nanos: i64,
    /// Its kind.
    pub kind: EntryKind,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: Hash,
}

impl LogEntry {
    /// The entry `record` is, whose leaf hash is `leaf_hash`.
    pub fn of(record: &LeafRecord, leaf_hash: Hash) -> LogEntry {
        LogEntry {
            index: record.index(),
            integrated_time_nanos: record.integrated_time_nanos(),
            kind: record.kind(),
            leaf_hash,
        }
    }
}

/// A message that carries a `LogEntry` (`Receipt`, `GetEntryResponse`, `QueryResult`) and,
/// deprecated, the same four fields of its own.
pub trait CarriesLogEntry {
    /// Its `LogEntry`; from the deprecated fields when there is none (a server from before
    /// `LogEntry`).
    fn log_entry(&self) -> pb::LogEntry;
    /// Sets its `LogEntry` and the deprecated fields that repeat it.
    fn set_log_entry(&mut self, entry: pb::LogEntry);
}

/// The deprecated fields are read and written here only: for clients and servers built
/// before `LogEntry` (proto/evident/v1/ledger.proto says when they go).
macro_rules! carries_log_entry {
    ($($message:ty),*) => {$(
        #[allow(deprecated, reason = "the fields LogEntry replaces, kept for older peers")]
        impl CarriesLogEntry for $message {
            fn log_entry(&self) -> pb::LogEntry {
                self.entry.clone().unwrap_or_else(|| pb::LogEntry {
                    index: self.index,
                    integrated_time_nanos: self.integrated_time_nanos,
                    kind: self.kind,
                    leaf_hash: self.leaf_hash.clone(),
                })
            }

            fn set_log_entry(&mut self, entry: pb::LogEntry) {
                self.index = entry.index;
                self.integrated_time_nanos = entry.integrated_time_nanos;
                self.kind = entry.kind;
                self.leaf_hash = entry.leaf_hash.clone();
                self.entry = Some(entry);
            }
        }
    )*};
}

carries_log_entry!(pb::Receipt, pb::GetEntryResponse, pb::QueryResult);

/// Sets `message`'s `LogEntry` to `entry` (and the deprecated fields that repeat it).
pub fn set_log_entry(message: &mut impl CarriesLogEntry, entry: &LogEntry) {
    message.set_log_entry(pb::LogEntry {
        index: entry.index,
        integrated_time_nanos: entry.integrated_time_nanos,
        kind: kind_to_proto(entry.kind) as i32,
        leaf_hash: entry.leaf_hash.as_bytes().to_vec(),
    });
}

/// The `LogEntry` of `message`, checked.
pub fn log_entry_from_proto(message: &impl CarriesLogEntry) -> Result<LogEntry, ConvertError> {
    let entry = message.log_entry();
    Ok(LogEntry {
        index: entry.index,
        integrated_time_nanos: entry.integrated_time_nanos,
        kind: kind_from_proto(entry.kind)?,
        leaf_hash: hash_from_proto(&entry.leaf_hash, "leaf hash")?,
    })
}

/// A receipt on the wire; the envelope goes with it only when the log already held it
/// (`duplicate`): the submitter has it otherwise.
pub fn receipt_to_proto(receipt: Receipt, duplicate: bool) -> pb::Receipt {
    let mut message = pb::Receipt {
        inclusion_proof: Some(inclusion_proof_to_proto(
            receipt.index,
            receipt.tree_size,
            &receipt.proof,
        )),
        duplicate,
        previous_leaf_hash: receipt.previous_leaf_hash.as_bytes().to_vec(),
        ..pb::Receipt::default()
    };
    set_log_entry(
        &mut message,
        &LogEntry {
            index: receipt.index,
            integrated_time_nanos: receipt.integrated_time_nanos,
            kind: receipt.kind,
            leaf_hash: receipt.leaf_hash,
        },
    );
    message.logged_envelope = duplicate.then(|| envelope_to_proto(receipt.envelope));
    message.checkpoint = receipt.checkpoint;
    message
}

/// A receipt from the wire for the envelope `sent`, checked for shape (not verified), and
/// whether the log already held the entry. A duplicate's receipt carries the envelope the
/// log holds, which may differ from `sent` in its signatures.
pub fn receipt_from_proto(
    r: pb::Receipt,
    sent: &Envelope,
) -> Result<(Receipt, bool), ConvertError> {
    let entry = log_entry_from_proto(&r)?;
    let proof = r.inclusion_proof.ok_or(ConvertError::Missing {
        message: "receipt",
        field: "inclusion proof",
    })?;
    let receipt = Receipt {
        index: entry.index,
        integrated_time_nanos: entry.integrated_time_nanos,
        previous_leaf_hash: hash_from_proto(&r.previous_leaf_hash, "previous leaf hash")?,
        kind: entry.kind,
        envelope: match r.logged_envelope {
            Some(logged) => envelope_from_proto(logged)?,
            None => sent.clone(),
        },
        leaf_hash: entry.leaf_hash,
        tree_size: proof.tree_size,
        proof: hashes_from_proto(&proof.hashes, "inclusion proof")?,
        checkpoint: r.checkpoint,
    };
    Ok((receipt, r.duplicate))
}

/// A registered signer key on the wire.
pub fn signer_to_proto(k: &SignerKey) -> pb::SignerKey {
    let (public_key, public_key_spki, certificate) = match &k.credential {
        Credential::Ed25519(key) => (key.to_bytes().to_vec(), Vec::new(), None),
        Credential::Ecdsa(key) => (Vec::new(), key.to_spki_der(), None),
        Credential::Certificate(rule) => (
            Vec::new(),
            Vec::new(),
            Some(pb::CertificateRule {
                issuer: rule.issuer.clone(),
                subject: rule.subject.clone(),
                extensions: rule.extensions.clone().into_iter().collect(),
                trusted_root: rule.trusted_root.clone().unwrap_or_default(),
            }),
        ),
    };
    pb::SignerKey {
        identity: k.identity.clone(),
        public_key,
        public_key_spki,
        certificate,
        roles: k.roles.iter().cloned().collect(),
        predicate_types: k.predicate_types.iter().cloned().collect(),
        not_before_nanos: k.not_before,
        not_after_nanos: k.not_after,
        revoked_from_nanos: k.revoked.as_ref().map(|(t, _)| *t),
        revoked_reason: k
            .revoked
            .as_ref()
            .map(|(_, r)| r.clone())
            .unwrap_or_default(),
        added_at_index: k.added_at,
    }
}

/// A registered signer key from the wire.
pub fn signer_from_proto(k: pb::SignerKey) -> Result<SignerKey, ConvertError> {
    let credential = match (k.certificate, k.public_key_spki.is_empty()) {
        (Some(rule), true) if k.public_key.is_empty() => Credential::Certificate(CertificateRule {
            issuer: rule.issuer,
            subject: rule.subject,
            extensions: rule.extensions.into_iter().collect(),
            trusted_root: (!rule.trusted_root.is_empty()).then_some(rule.trusted_root),
        }),
        (None, false) if k.public_key.is_empty() => {
            Credential::Ecdsa(EcKey::from_spki_der(&k.public_key_spki).map_err(|e| {
                ConvertError::Invalid {
                    field: "signer public_key_spki",
                    problem: e.to_string(),
                }
            })?)
        }
        (None, true) => Credential::Ed25519(key_from_proto(&k.public_key, "public key")?),
        _ => {
            return Err(ConvertError::Invalid {
                field: "signer",
                problem: "sets more than one of public_key, public_key_spki and certificate".into(),
            });
        }
    };
    Ok(SignerKey {
        credential,
        identity: k.identity,
        roles: k.roles.into_iter().collect(),
        predicate_types: k.predicate_types.into_iter().collect(),
        not_before: k.not_before_nanos,
        not_after: k.not_after_nanos,
        revoked: k.revoked_from_nanos.map(|t| (t, k.revoked_reason)),
        added_at: k.added_at_index,
    })
}

/// An administrator on the wire.
pub fn admin_to_proto(a: &Admin) -> pb::Administrator {
    pb::Administrator {
        identity: a.identity.clone(),
        public_key: a.key.to_bytes().to_vec(),
    }
}

/// An administrator from the wire.
pub fn admin_from_proto(a: pb::Administrator) -> Result<Admin, ConvertError> {
    Ok(Admin {
        key: key_from_proto(&a.public_key, "public key")?,
        identity: a.identity,
    })
}

/// A registry event on the wire.
pub fn event_to_proto(e: &Event) -> pb::RegistryEvent {
    pb::RegistryEvent {
        index: e.index,
        integrated_time_nanos: e.time,
        identity: e.identity.clone(),
        summary: e.summary.clone(),
    }
}

/// A registry event from the wire.
pub fn event_from_proto(e: pb::RegistryEvent) -> Event {
    Event {
        index: e.index,
        time: e.integrated_time_nanos,
        identity: e.identity,
        summary: e.summary,
    }
}

/// Names an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// By index.
    Index(u64),
    /// By leaf hash.
    LeafHash(Hash),
}

/// An entry selector on the wire.
pub fn selector_to_proto(s: Selector) -> pb::EntrySelector {
    pb::EntrySelector {
        by: Some(match s {
            Selector::Index(i) => pb::entry_selector::By::Index(i),
            Selector::LeafHash(h) => pb::entry_selector::By::LeafHash(h.as_bytes().to_vec()),
        }),
    }
}

/// An entry selector from the wire: it must name an entry.
pub fn selector_from_proto(s: Option<pb::EntrySelector>) -> Result<Selector, ConvertError> {
    match s.and_then(|s| s.by) {
        Some(pb::entry_selector::By::Index(index)) => Ok(Selector::Index(index)),
        Some(pb::entry_selector::By::LeafHash(bytes)) => {
            Ok(Selector::LeafHash(hash_from_proto(&bytes, "leaf_hash")?))
        }
        None => Err(ConvertError::NoSelector),
    }
}

/// A completeness proof on the wire (`IndexProof`).
pub fn answer_proof_to_proto(proof: &vindex::AnswerProof) -> pb::IndexProof {
    let map = &proof.slice.map;
    let (ends_at_leaf, leaf_key, leaf_list_length, leaf_list_root) = match &map.terminal {
        Some((key, head)) => (
            true,
            key.as_bytes().to_vec(),
            head.len,
            head.root.as_bytes().to_vec(),
        ),
        None => (false, Vec::new(), 0, Vec::new()),
    };
    let bound = |b: &vindex::TimeBound| pb::TimeBound {
        index: b.index,
        before: b.before.as_ref().map(bound_entry_to_proto),
        at: b.at.as_ref().map(bound_entry_to_proto),
    };
    pb::IndexProof {
        key: proof.key.clone(),
        map: Some(pb::IndexMapProof {
            siblings: hashes_to_proto(&map.siblings),
            ends_at_leaf,
            leaf_key,
            leaf_list_length,
            leaf_list_root,
        }),
        start: proof.slice.start,
        elements: proof
            .slice
            .elements
            .iter()
            .map(|e| pb::IndexElement {
                index: e.index,
                leaf_hash: e.leaf_hash.as_bytes().to_vec(),
            })
            .collect(),
        range_hashes: hashes_to_proto(&proof.slice.hashes),
        since: proof.since.as_ref().map(bound),
        until: proof.until.as_ref().map(bound),
    }
}

fn bound_entry_to_proto(entry: &vindex::BoundEntry) -> pb::BoundEntry {
    pb::BoundEntry {
        leaf_record: entry.record.clone(),
        inclusion_hashes: hashes_to_proto(&entry.proof),
    }
}

/// A completeness proof from the wire. Checks only its shape; verify it with
/// [`vindex::AnswerProof::verify`].
pub fn answer_proof_from_proto(
    proof: &pb::IndexProof,
) -> Result<vindex::AnswerProof, ConvertError> {
    let map = proof.map.as_ref().ok_or(ConvertError::Missing {
        message: "index proof",
        field: "map",
    })?;
    let terminal = if map.ends_at_leaf {
        Some((
            hash_from_proto(&map.leaf_key, "index proof leaf_key")?,
            vindex::ListHead {
                len: map.leaf_list_length,
                root: hash_from_proto(&map.leaf_list_root, "index proof leaf_list_root")?,
            },
        ))
    } else {
        None
    };
    let entry = |e: &pb::BoundEntry| -> Result<vindex::BoundEntry, ConvertError> {
        Ok(vindex::BoundEntry {
            record: e.leaf_record.clone(),
            proof: hashes_from_proto(&e.inclusion_hashes, "bound inclusion_hashes")?,
        })
    };
    let bound = |b: &pb::TimeBound| -> Result<vindex::TimeBound, ConvertError> {
        Ok(vindex::TimeBound {
            index: b.index,
            before: b.before.as_ref().map(entry).transpose()?,
            at: b.at.as_ref().map(entry).transpose()?,
        })
    };
    Ok(vindex::AnswerProof {
        key: proof.key.clone(),
        slice: vindex::SliceProof {
            map: vindex::MapProof {
                siblings: hashes_from_proto(&map.siblings, "index proof siblings")?,
                terminal,
            },
            start: proof.start,
            elements: proof
                .elements
                .iter()
                .map(|e| {
                    Ok(vindex::Element {
                        index: e.index,
                        leaf_hash: hash_from_proto(&e.leaf_hash, "index element leaf_hash")?,
                    })
                })
                .collect::<Result<_, ConvertError>>()?,
            hashes: hashes_from_proto(&proof.range_hashes, "index proof range_hashes")?,
        },
        since: proof.since.as_ref().map(bound).transpose()?,
        until: proof.until.as_ref().map(bound).transpose()?,
    })
}

/// A digest given as `ALGORITHM:VALUE`, as a Statement holds it and the indexes key it: a
/// known algorithm in any case, its hex value lowercased and checked for length; an unknown
/// algorithm's value as written. The error says what is wrong with the text, quoting it.
pub fn digest_from_text(text: &str) -> Result<(String, String), String> {
    let Some((alg, value)) = text
        .split_once(':')
        .filter(|(a, v)| !a.is_empty() && !v.is_empty())
    else {
        return Err(format!("{text:?} is not ALGORITHM:HEX, e.g. sha256:4f2a…"));
    };
    let alg = evident_core::statement::DigestAlgorithm::parse_any_case(alg);
    let value = if alg.is_known() {
        value.to_ascii_lowercase()
    } else {
        value.to_owned()
    };
    alg.validate(&value)
        .map_err(|problem| format!("{text:?}: the {alg} digest {problem}"))?;
    Ok((alg.as_str().to_owned(), value))
}

/// The index keys a query names, checked, in a fixed order: subject digest, subject name,
/// predicate type, signer, role, release, kind. The server intersects their lists; a
/// client that asked for a completeness proof verifies it for the one key.
pub fn query_keys(request: &pb::QueryRequest) -> Result<Vec<vindex::IndexKey>, ConvertError> {
    use vindex::IndexKey;
    let mut keys = Vec::new();
    let invalid = |field: &'static str, problem: String| ConvertError::Invalid { field, problem };
    if !request.subject_digest.is_empty() {
        let (alg, value) = digest_from_text(&request.subject_digest)
            .map_err(|problem| invalid("subject_digest", problem))?;
        keys.push(IndexKey::Subject(alg, value));
    }
    let text = |field: &'static str, value: &str| -> Result<Option<String>, ConvertError> {
        if value.contains('\0') {
            return Err(invalid(field, "holds a NUL character".into()));
        }
        Ok((!value.is_empty()).then(|| value.to_owned()))
    };
    if let Some(v) = text("subject_name", &request.subject_name)? {
        keys.push(IndexKey::SubjectName(v));
    }
    if let Some(v) = text("predicate_type", &request.predicate_type)? {
        keys.push(IndexKey::PredicateType(v));
    }
    if let Some(v) = text("signer", &request.signer)? {
        keys.push(IndexKey::Signer(v));
    }
    if let Some(v) = text("role", &request.role)? {
        keys.push(IndexKey::Role(v));
    }
    if let Some(v) = text("release", &request.release)? {
        // NAME@VERSION splits at the last `@`; an `@` that starts the text belongs to the
        // name (`@scope/pkg`).
        keys.push(match v.rsplit_once('@') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => {
                IndexKey::Release(name.to_owned(), Some(version.to_owned()))
            }
            Some(("", _)) => IndexKey::Release(v, None),
            Some(_) => {
                return Err(invalid(
                    "release",
                    format!("{v:?} is not NAME or NAME@VERSION"),
                ));
            }
            None => IndexKey::Release(v, None),
        });
    }
    let kind = optional_kind_from_proto(request.kind)
        .map_err(|_| invalid("kind", format!("{} is not an entry kind", request.kind)))?;
    keys.extend(kind.map(IndexKey::Kind));
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn a_malformed_field_is_named() {
        let err = hash_from_proto(&[0; 3], "leaf_hash").unwrap_err();
        assert_eq!(
            err.to_string(),
            "leaf_hash: a SHA-256 hash is 32 bytes, got 3"
        );
        let sent = Envelope {
            payload: Vec::new(),
            payload_type: "t".into(),
            signatures: Vec::new(),
            sigstore: None,
        };
        let mut receipt = pb::Receipt::default();
        set_log_entry(
            &mut receipt,
            &LogEntry {
                index: 3,
                integrated_time_nanos: 4,
                kind: EntryKind::Attestation,
                leaf_hash: Hash([5; 32]),
            },
        );
        let err = receipt_from_proto(receipt, &sent).unwrap_err();
        assert_eq!(err.to_string(), "the receipt has no inclusion proof");
        assert_eq!(
            kind_from_proto(0).unwrap_err().to_string(),
            "unknown entry kind 0"
        );
        assert!(matches!(
            required_envelope(None).unwrap_err(),
            ConvertError::NoEnvelope
        ));
    }

    #[test]
    #[allow(deprecated, reason = "what a server from before LogEntry sends")]
    fn a_log_entry_is_read_from_the_deprecated_fields_when_absent() {
        let entry = LogEntry {
            index: 7,
            integrated_time_nanos: 8,
            kind: EntryKind::Policy,
            leaf_hash: Hash([1; 32]),
        };
        let mut new = pb::QueryResult::default();
        set_log_entry(&mut new, &entry);
        assert_eq!(new.index, 7, "the deprecated fields are filled too");
        assert_eq!(log_entry_from_proto(&new).unwrap(), entry);
        let old = pb::QueryResult { entry: None, ..new };
        assert_eq!(log_entry_from_proto(&old).unwrap(), entry);
    }

    #[test]
    fn an_envelope_and_a_selector_go_and_come_back() {
        let envelope = Envelope {
            payload: b"{}".to_vec(),
            payload_type: "application/vnd.in-toto+json".into(),
            signatures: vec![Signature {
                sig: vec![1, 2],
                keyid: "k".into(),
            }],
            sigstore: None,
        };
        let back = envelope_from_proto(envelope_to_proto(envelope.clone())).unwrap();
        assert_eq!(back, envelope);
        for s in [Selector::Index(7), Selector::LeafHash(Hash([9; 32]))] {
            assert_eq!(selector_from_proto(Some(selector_to_proto(s))).unwrap(), s);
        }
    }
}
