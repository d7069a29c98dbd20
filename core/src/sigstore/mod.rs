//! Offline verification of Sigstore bundles against a trusted root.
//!
//! [`verify`] proves *who* signed a bundle's content and *when*; whether that identity is
//! allowed is the trust registry's decision, never this module's. It follows the Sigstore
//! client verification procedure and refuses anything it does not understand:
//!
//! 1. The bundle is decoded strictly ([`Bundle::from_json`]): known media types only, every
//!    base64 field decoded, sizes bounded (input comes from strangers). A bundle repeating a
//!    transparency log entry (same log and index, or same canonicalized body) or an RFC 3161
//!    timestamp (same bytes) is refused (`bundle_malformed`).
//! 2. A Fulcio leaf must chain to a `certificateAuthorities` entry of the trusted root, with
//!    every signature, basicConstraints, keyUsage, extKeyUsage (codeSigning) and name link
//!    checked; unknown critical extensions and name constraints are refused; at least one
//!    embedded SCT must verify under a trusted CT log when the root lists CT logs. A root
//!    listing no CT log requires no SCT; a root listing CT logs none of which this verifier
//!    can use makes SCT verification fail (`sct_invalid`), never skips it.
//! 3. The signature must be proven made while the certificate was valid: every RFC 3161
//!    timestamp and every Rekor v1 signed entry timestamp must verify, at least one must
//!    exist for a certificate, and every certificate of the path, and its authority's
//!    `validFor`, must be valid at each of those times. A timestamp authority's leaf must be
//!    fit for timestamping (extKeyUsage timeStamping, critical or not; keyUsage
//!    digitalSignature; not a CA) and valid at the token's genTime, also when the trusted
//!    root lists that leaf alone.
//! 4. Every transparency log entry must come from a trusted log, match the bundle's
//!    content, signature and signer, and be proven in the log: an inclusion proof up to a
//!    checkpoint signed by the log (required from bundle v0.2), or a signed entry timestamp
//!    (required for v0.1). The log's key must be trusted (its `validFor`) at the entry's
//!    integrated time when a signed entry timestamp proves it, else at every verified
//!    RFC 3161 time of the bundle (`tlog_key_validity`); an entry with neither is refused
//!    (`tlog_key_time_missing`). A checkpoint carries at most 16 signature lines, and at
//!    most one line per name and key hint that could be the log's is verified.
//! 5. The content signature (DSSE over PAE with exactly one signature, or a message
//!    signature over the artifact's SHA-256) must verify under the leaf's key or the
//!    registered managed key.
//!
//! # Fulcio certificate extensions
//!
//! [`CertIdentity::extensions`] names the extensions under `1.3.6.1.4.1.57264.1.` as follows
//! (`.1`–`.6` are the legacy raw-string encoding, the rest DER UTF8String):
//!
//! | OID suffix | name |
//! |---|---|
//! | `.1` / `.8` | the issuer, in [`CertIdentity::issuer`] (`.8` preferred) |
//! | `.2` | `github_workflow_trigger` |
//! | `.3` | `github_workflow_sha` |
//! | `.4` | `github_workflow_name` |
//! | `.5` | `github_workflow_repository` |
//! | `.6` | `github_workflow_ref` |
//! | `.9` | `build_signer_uri` |
//! | `.10` | `build_signer_digest` |
//! | `.11` | `runner_environment` |
//! | `.12` | `source_repository_uri` |
//! | `.13` | `source_repository_digest` |
//! | `.14` | `source_repository_ref` |
//! | `.15` | `source_repository_identifier` |
//! | `.16` | `source_repository_owner_uri` |
//! | `.17` | `source_repository_owner_identifier` |
//! | `.18` | `build_config_uri` |
//! | `.19` | `build_config_digest` |
//! | `.20` | `build_trigger` |
//! | `.21` | `run_invocation_uri` |
//! | `.22` | `source_repository_visibility_at_signing` |
//! | `.23` | `deployment_environment` |

pub(crate) mod der;

mod bundle;
mod tlog;
mod trust;
mod tsa;
mod x509;

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

pub use bundle::Bundle;
pub use trust::TrustedRoot;

use crate::ecdsa::EcKey;
use bundle::{Content, Signer};

/// The largest bundle accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 4 << 20;
/// The largest trusted root accepted, in bytes.
pub const MAX_TRUSTED_ROOT_BYTES: usize = 4 << 20;
/// The most certificates a bundle's chain may carry.
pub const MAX_CHAIN_CERTIFICATES: usize = 10;
/// The most transparency log entries a bundle may carry.
pub const MAX_TLOG_ENTRIES: usize = 16;
/// The most RFC 3161 timestamps a bundle may carry.
pub const MAX_TIMESTAMPS: usize = 16;

/// What a verification proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who the Fulcio certificate says signed; `None` for managed-key bundles.
    pub identity: Option<CertIdentity>,
    /// SHA-256 of the leaf certificate DER, or of the managed key's SPKI DER.
    pub signer_fingerprint: [u8; 32],
    /// Nanoseconds since the epoch: the earliest verified timestamp, 0 if there is none.
    pub signed_at: i64,
    /// Every timestamp that verified.
    pub timestamps: Vec<VerifiedTime>,
}

/// A time the signature is proven to have existed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTime {
    /// Who vouches for the time.
    pub source: TimeSource,
    /// Nanoseconds since the epoch.
    pub time: i64,
}

/// Who vouches for a [`VerifiedTime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// An RFC 3161 timestamp authority of the trusted root.
    Rfc3161 {
        /// The authority's subject common name, or its URI.
        authority: String,
    },
    /// A transparency log's signed entry timestamp (integrated time).
    TransparencyLog {
        /// The log's id, lowercase hex.
        log_id: String,
    },
}

/// Who a Fulcio certificate says signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CertIdentity {
    /// The OIDC issuer (extension `.8`, else the legacy `.1`).
    pub issuer: String,
    /// The subjectAltName: the URI, else the email, else the otherName username.
    pub subject: String,
    /// The other Fulcio extensions by name (see the module's table).
    pub extensions: BTreeMap<String, String>,
}

/// What verification is given besides the bundle.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// For managed-key bundles: the registered key. Without it a key bundle is refused.
    pub key: Option<&'a EcKey>,
    /// For `messageSignature` bundles (and DSSE statements' subjects): the artifact.
    pub artifact: Option<&'a [u8]>,
    /// The artifact's SHA-256, when the bytes are not at hand.
    pub artifact_digest: Option<[u8; 32]>,
}

/// Why a bundle or trusted root was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigstoreError {
    /// The bundle is not JSON of the expected shape.
    #[error("bundle is not valid Sigstore bundle JSON: {0}")]
    Json(String),
    /// The bundle's media type names a version this verifier does not know.
    #[error(
        "bundle media type `{media_type}` is not a supported version (v0.1, v0.2, v0.3); produce the bundle with a current Sigstore client"
    )]
    MediaType {
        /// The media type found.
        media_type: String,
    },
    /// An input exceeds its size limit.
    #[error("{what} is {size} bytes, at most {limit} are accepted")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A base64 field does not decode.
    #[error("bundle field `{field}` is not valid base64: {detail}")]
    Base64 {
        /// The JSON path of the field.
        field: String,
        /// What the decoder said.
        detail: String,
    },
    /// A field is missing, negative, out of range or contradicts another.
    #[error("bundle field `{field}` {detail}")]
    Malformed {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The trusted root is malformed.
    #[error(
        "trusted root is invalid: {detail}; fetch a current trusted_root.json from the Sigstore TUF repository"
    )]
    TrustedRoot {
        /// What is wrong.
        detail: String,
    },
    /// The certificate chain is empty.
    #[error("bundle x509CertificateChain is empty: the signing certificate is missing")]
    EmptyCertificateChain,
    /// The bundle carries a self-signed root: roots come from the trusted root only.
    #[error(
        "bundle certificate chain includes the root `{subject}`; roots must come from the trusted root, not the bundle"
    )]
    RootInBundle {
        /// The root's subject.
        subject: String,
    },
    /// A certificate does not parse.
    #[error("certificate is malformed: {detail}")]
    Certificate {
        /// What is wrong.
        detail: String,
    },
    /// An algorithm this verifier does not implement.
    #[error(
        "{what} uses {algorithm}, which this verifier does not support (signing keys: ECDSA P-256/P-384; certificate signatures: ECDSA or RSA PKCS#1 v1.5, with SHA-2)"
    )]
    UnsupportedAlgorithm {
        /// Where the algorithm appears.
        what: String,
        /// The algorithm.
        algorithm: String,
    },
    /// The leaf does not chain to a trusted authority.
    #[error(
        "certificate `{subject}` does not chain to the trusted root: {detail}; was the bundle made against another Sigstore instance?"
    )]
    CertificateUntrusted {
        /// The leaf's subject.
        subject: String,
        /// Why.
        detail: String,
    },
    /// A certificate's signature does not verify under its issuer's key.
    #[error("certificate `{subject}` is not validly signed by `{issuer}`")]
    CertificateSignature {
        /// The certificate.
        subject: String,
        /// Its claimed issuer.
        issuer: String,
    },
    /// A certificate breaks a path validation rule.
    #[error("certificate `{subject}`: {rule}")]
    CertificateConstraint {
        /// The certificate.
        subject: String,
        /// The rule it breaks.
        rule: String,
    },
    /// A critical extension this verifier does not evaluate.
    #[error(
        "certificate `{subject}` has critical extension {oid}, which this verifier does not evaluate"
    )]
    CriticalExtension {
        /// The certificate.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// A certificate was not valid at a verified signing time.
    #[error(
        "certificate `{subject}` was not valid at the verified signing time {time} (valid {not_before} to {not_after}): the signature was not made while the certificate was valid"
    )]
    CertificateExpired {
        /// The certificate.
        subject: String,
        /// The signing time.
        time: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// The certificate authority was not trusted at a verified signing time.
    #[error(
        "certificate authority `{authority}` was not trusted at the signing time {time} (its validFor in the trusted root excludes it)"
    )]
    AuthorityValidity {
        /// The authority.
        authority: String,
        /// The signing time.
        time: String,
    },
    /// No embedded SCT verifies.
    #[error("certificate transparency: {detail}")]
    Sct {
        /// Why.
        detail: String,
    },
    /// A managed-key bundle was given no key.
    #[error(
        "bundle is signed with a managed key (hint `{hint}`) but no key was given: register the key and verify with it"
    )]
    KeyRequired {
        /// The bundle's hint.
        hint: String,
    },
    /// A key was given for a certificate bundle, or the bundle names another key.
    #[error("{detail}")]
    KeyMismatch {
        /// Why.
        detail: String,
    },
    /// The DSSE envelope does not carry exactly one signature.
    #[error("DSSE envelope has {count} signatures; a Sigstore bundle's envelope has exactly one")]
    DsseSignatureCount {
        /// How many it has.
        count: usize,
    },
    /// The DSSE signature does not verify.
    #[error("DSSE envelope signature does not verify under the {signer} key")]
    DsseSignature {
        /// Which key (certificate or managed).
        signer: &'static str,
    },
    /// The message signature does not verify.
    #[error("message signature does not verify over the artifact digest under the {signer} key")]
    MessageSignature {
        /// Which key (certificate or managed).
        signer: &'static str,
    },
    /// The artifact given does not match the bundle.
    #[error("artifact does not match the bundle: {detail}")]
    ArtifactMismatch {
        /// Why.
        detail: String,
    },
    /// A message-signature bundle was given no artifact.
    #[error("bundle signs an artifact by digest; pass the artifact or its SHA-256 to verify it")]
    ArtifactRequired,
    /// A certificate bundle has no verified time.
    #[error(
        "no verified timestamp proves the signature was made while the short-lived certificate was valid: add an RFC 3161 timestamp or a transparency log entry with a signed entry timestamp"
    )]
    TimestampMissing,
    /// An RFC 3161 timestamp is malformed.
    #[error("RFC 3161 timestamp {index} is malformed: {detail}")]
    TimestampMalformed {
        /// Which timestamp.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// An RFC 3161 timestamp is not from a trusted authority, or not at a trusted time.
    #[error("RFC 3161 timestamp {index} is not trusted: {detail}")]
    TimestampUntrusted {
        /// Which timestamp.
        index: usize,
        /// Why.
        detail: String,
    },
    /// An RFC 3161 timestamp covers other bytes than the bundle's signature.
    #[error(
        "RFC 3161 timestamp {index} does not cover this bundle's signature (messageImprint mismatch)"
    )]
    TimestampMismatch {
        /// Which timestamp.
        index: usize,
    },
    /// No transparency log entry.
    #[error("bundle has no transparency log entry; sign with a Rekor log enabled")]
    TlogEntryMissing,
    /// The entry's log is not in the trusted root.
    #[error(
        "transparency log entry {index} is from log {log_id}, which the trusted root does not list"
    )]
    TlogUntrusted {
        /// Which entry.
        index: usize,
        /// The log id, hex.
        log_id: String,
    },
    /// The entry does not record this bundle's content, signature or signer.
    #[error("transparency log entry {index} does not match the bundle: {detail}")]
    TlogEntryMismatch {
        /// Which entry.
        index: usize,
        /// What differs.
        detail: String,
    },
    /// An entry kind or version this verifier does not implement.
    #[error(
        "transparency log entry {index} has kind {kind} {version}, which this verifier does not support"
    )]
    TlogKind {
        /// Which entry.
        index: usize,
        /// The kind.
        kind: String,
        /// Its version.
        version: String,
    },
    /// The bundle version requires an inclusion proof and the entry has none.
    #[error(
        "transparency log entry {index} has no inclusion proof, which bundles from v0.2 require"
    )]
    InclusionProofMissing {
        /// Which entry.
        index: usize,
    },
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("transparency log entry {index}: inclusion proof is invalid: {detail}")]
    InclusionProof {
        /// Which entry.
        index: usize,
        /// Why.
        detail: String,
    },
    /// The checkpoint is malformed or does not match the proof.
    #[error("transparency log entry {index}: checkpoint is invalid: {detail}")]
    Checkpoint {
        /// Which entry.
        index: usize,
        /// Why.
        detail: String,
    },
    /// No signature of the checkpoint verifies under the log's key.
    #[error("transparency log entry {index}: the checkpoint is not signed by log {log_id}")]
    CheckpointSignature {
        /// Which entry.
        index: usize,
        /// The log id, hex.
        log_id: String,
    },
    /// A v0.1 bundle's entry has no signed entry timestamp.
    #[error("transparency log entry {index} has no inclusion promise, which v0.1 bundles require")]
    InclusionPromiseMissing {
        /// Which entry.
        index: usize,
    },
    /// The signed entry timestamp does not verify.
    #[error(
        "transparency log entry {index}: the signed entry timestamp does not verify under log {log_id}"
    )]
    SetSignature {
        /// Which entry.
        index: usize,
        /// The log id, hex.
        log_id: String,
    },
    /// The log's key was not trusted at the entry's integrated time, or (for an entry
    /// without a signed entry timestamp) at a verified RFC 3161 time of the bundle.
    #[error(
        "transparency log entry {index}: log {log_id} was not trusted at {at} {time} (its key's validFor excludes it)"
    )]
    TlogKeyValidity {
        /// Which entry.
        index: usize,
        /// The log id, hex.
        log_id: String,
        /// Which time was checked: the integrated time or an RFC 3161 time.
        at: &'static str,
        /// The time.
        time: String,
    },
    /// An entry proven only by an inclusion proof, in a bundle without a verified RFC 3161
    /// timestamp: nothing shows its log's key was trusted when the entry was made.
    #[error(
        "transparency log entry {index} has no signed entry timestamp and the bundle has no verified RFC 3161 timestamp, so nothing shows the key of log {log_id} was trusted when the entry was made; add an RFC 3161 timestamp to the bundle"
    )]
    TlogKeyTimeMissing {
        /// Which entry.
        index: usize,
        /// The log id, hex.
        log_id: String,
    },
}

impl SigstoreError {
    /// A stable snake_case code per variant, for reports and tests.
    pub fn reason(&self) -> &'static str {
        match self {
            SigstoreError::Json(_) => "bundle_json",
            SigstoreError::MediaType { .. } => "bundle_media_type",
            SigstoreError::TooLarge { .. } => "too_large",
            SigstoreError::Base64 { .. } => "bundle_base64",
            SigstoreError::Malformed { .. } => "bundle_malformed",
            SigstoreError::TrustedRoot { .. } => "trusted_root_invalid",
            SigstoreError::EmptyCertificateChain => "certificate_chain_empty",
            SigstoreError::RootInBundle { .. } => "certificate_chain_contains_root",
            SigstoreError::Certificate { .. } => "certificate_malformed",
            SigstoreError::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            SigstoreError::CertificateUntrusted { .. } => "certificate_untrusted",
            SigstoreError::CertificateSignature { .. } => "certificate_signature",
            SigstoreError::CertificateConstraint { .. } => "certificate_constraint",
            SigstoreError::CriticalExtension { .. } => "certificate_critical_extension",
            SigstoreError::CertificateExpired { .. } => "certificate_expired",
            SigstoreError::AuthorityValidity { .. } => "certificate_authority_validity",
            SigstoreError::Sct { .. } => "sct_invalid",
            SigstoreError::KeyRequired { .. } => "key_required",
            SigstoreError::KeyMismatch { .. } => "key_mismatch",
            SigstoreError::DsseSignatureCount { .. } => "dsse_signature_count",
            SigstoreError::DsseSignature { .. } => "dsse_signature",
            SigstoreError::MessageSignature { .. } => "message_signature",
            SigstoreError::ArtifactMismatch { .. } => "artifact_mismatch",
            SigstoreError::ArtifactRequired => "artifact_required",
            SigstoreError::TimestampMissing => "timestamp_missing",
            SigstoreError::TimestampMalformed { .. } => "timestamp_malformed",
            SigstoreError::TimestampUntrusted { .. } => "timestamp_untrusted",
            SigstoreError::TimestampMismatch { .. } => "timestamp_mismatch",
            SigstoreError::TlogEntryMissing => "tlog_entry_missing",
            SigstoreError::TlogUntrusted { .. } => "tlog_untrusted",
            SigstoreError::TlogEntryMismatch { .. } => "tlog_entry_mismatch",
            SigstoreError::TlogKind { .. } => "tlog_kind_unsupported",
            SigstoreError::InclusionProofMissing { .. } => "inclusion_proof_missing",
            SigstoreError::InclusionProof { .. } => "inclusion_proof",
            SigstoreError::Checkpoint { .. } => "checkpoint_invalid",
            SigstoreError::CheckpointSignature { .. } => "checkpoint_signature",
            SigstoreError::InclusionPromiseMissing { .. } => "inclusion_promise_missing",
            SigstoreError::SetSignature { .. } => "set_signature",
            SigstoreError::TlogKeyValidity { .. } => "tlog_key_validity",
            SigstoreError::TlogKeyTimeMissing { .. } => "tlog_key_time_missing",
        }
    }
}

/// The key the content must verify under, and how it is known.
pub(crate) enum SigningKey<'a> {
    /// A Fulcio leaf certificate (DER) and its key.
    Certificate { der: &'a [u8], key: EcKey },
    /// A registered managed key.
    Managed(&'a EcKey),
}

impl SigningKey<'_> {
    fn key(&self) -> &EcKey {
        match self {
            SigningKey::Certificate { key, .. } => key,
            SigningKey::Managed(key) => key,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            SigningKey::Certificate { .. } => "certificate",
            SigningKey::Managed(_) => "managed",
        }
    }
}

/// The bytes a content signature is over, for timestamps and log entries.
pub(crate) fn content_signature(bundle: &Bundle) -> Result<&[u8], SigstoreError> {
    match &bundle.content {
        Content::Message { signature, .. } => Ok(signature),
        Content::Dsse(env) => match env.signatures.as_slice() {
            [one] => Ok(&one.sig),
            other => Err(SigstoreError::DsseSignatureCount { count: other.len() }),
        },
    }
}

/// Verifies `bundle` against `root` as the module documentation describes, and returns
/// what it proved.
pub fn verify(
    bundle: &Bundle,
    root: &TrustedRoot,
    options: &VerifyOptions<'_>,
) -> Result<Verified, SigstoreError> {
    // Structural requirements first: they need no cryptography.
    if bundle.tlog_entries.is_empty() {
        return Err(SigstoreError::TlogEntryMissing);
    }
    if bundle.has_certificate()
        && bundle.timestamps.is_empty()
        && bundle.tlog_entries.iter().all(|e| e.promise.is_none())
    {
        return Err(SigstoreError::TimestampMissing);
    }

    check_repeats(bundle)?;

    // Who signed, and the path that makes the certificate trusted (times checked below).
    let (signer, path) = match &bundle.signer {
        Signer::Certificate { leaf, chain } => {
            if options.key.is_some() {
                return Err(SigstoreError::KeyMismatch {
                    detail: "a managed key was given but the bundle is signed with a certificate"
                        .into(),
                });
            }
            for der in chain {
                let cert = x509::parse(der)?;
                if x509::is_self_issued(&cert) {
                    return Err(SigstoreError::RootInBundle {
                        subject: x509::subject(&cert),
                    });
                }
            }
            let cert = x509::parse(leaf)?;
            let key = x509::public_key(&cert)?;
            let path = x509::verify_path(leaf, chain, &root.cas, x509::Purpose::CodeSigning)?;
            (SigningKey::Certificate { der: leaf, key }, Some(path))
        }
        Signer::PublicKey { hint } => {
            let key = options
                .key
                .ok_or_else(|| SigstoreError::KeyRequired { hint: hint.clone() })?;
            (SigningKey::Managed(key), None)
        }
    };

    // The content signature, and the artifact it is over.
    let artifact_digest = match (options.artifact, options.artifact_digest) {
        (Some(bytes), _) => Some(<[u8; 32]>::from(Sha256::digest(bytes))),
        (None, digest) => digest,
    };
    match &bundle.content {
        Content::Message { digest, signature } => {
            let given = artifact_digest.ok_or(SigstoreError::ArtifactRequired)?;
            if given != *digest {
                return Err(SigstoreError::ArtifactMismatch {
                    detail: format!(
                        "the artifact's SHA-256 is {}, the bundle's messageDigest is {}",
                        hex::encode(given),
                        hex::encode(digest)
                    ),
                });
            }
            if !signer.key().verify_prehash(&given, signature) {
                return Err(SigstoreError::MessageSignature {
                    signer: signer.label(),
                });
            }
        }
        Content::Dsse(env) => {
            let sig = content_signature(bundle)?;
            if !signer.key().verify(&env.pae(), sig) {
                return Err(SigstoreError::DsseSignature {
                    signer: signer.label(),
                });
            }
            if let Some(digest) = artifact_digest {
                check_subject(env, &digest, options.artifact)?;
            }
        }
    }

    // Timestamps and log entries.
    let signature = content_signature(bundle)?;
    let mut timestamps = Vec::new();
    for (index, token) in bundle.timestamps.iter().enumerate() {
        timestamps.push(tsa::verify(index, token, signature, &root.tsas)?);
    }
    let rfc3161_times: Vec<i64> = timestamps.iter().map(|t| t.time).collect();
    for (index, entry) in bundle.tlog_entries.iter().enumerate() {
        if let Some(time) = tlog::verify(index, entry, bundle, &signer, root, &rfc3161_times)? {
            timestamps.push(time);
        }
    }

    // Every verified time inside the certificate's (and its chain's) validity.
    let (identity, signer_fingerprint) = match (&signer, &path) {
        (SigningKey::Certificate { der, .. }, Some(path)) => {
            if timestamps.is_empty() {
                return Err(SigstoreError::TimestampMissing);
            }
            for t in &timestamps {
                x509::check_valid_at(der, path, t.time)?;
            }
            if !root.ctlogs.is_empty() {
                x509::verify_scts(der, path.issuer, &root.ctlogs)?;
            } else if root.ctlogs_listed {
                return Err(SigstoreError::Sct {
                    detail: "the trusted root lists CT logs but none has a key type or hash \
                             algorithm this verifier supports, so no SCT can be verified"
                        .into(),
                });
            }
            (
                Some(x509::identity(der)?),
                <[u8; 32]>::from(Sha256::digest(der)),
            )
        }
        _ => (None, signer.key().fingerprint()),
    };
    let signed_at = timestamps.iter().map(|t| t.time).min().unwrap_or(0);
    Ok(Verified {
        identity,
        signer_fingerprint,
        signed_at,
        timestamps,
    })
}

/// Refuses a bundle that repeats a transparency log entry (the same log and index, or the
/// same canonicalized body) or an RFC 3161 timestamp (the same bytes): a repeat proves
/// nothing more and would only multiply the signatures verified.
fn check_repeats(bundle: &Bundle) -> Result<(), SigstoreError> {
    for (i, entry) in bundle.tlog_entries.iter().enumerate() {
        let earlier = bundle.tlog_entries[..i].iter().position(|e| {
            (e.log_id == entry.log_id && e.log_index == entry.log_index) || e.body == entry.body
        });
        if let Some(j) = earlier {
            return Err(SigstoreError::Malformed {
                field: format!("verificationMaterial.tlogEntries[{i}]"),
                detail: format!(
                    "repeats tlogEntries[{j}] (the same log and index, or the same \
                     canonicalized body); each entry may appear once"
                ),
            });
        }
    }
    for (i, token) in bundle.timestamps.iter().enumerate() {
        if let Some(j) = bundle.timestamps[..i].iter().position(|t| t == token) {
            return Err(SigstoreError::Malformed {
                field: format!(
                    "verificationMaterial.timestampVerificationData.rfc3161Timestamps[{i}]"
                ),
                detail: format!("repeats rfc3161Timestamps[{j}]; each timestamp may appear once"),
            });
        }
    }
    Ok(())
}

/// Checks that an in-toto Statement in `env` names an artifact with SHA-256 `digest` (or,
/// when the artifact's bytes are at hand, its SHA-512).
fn check_subject(
    env: &crate::dsse::Envelope,
    digest: &[u8; 32],
    artifact: Option<&[u8]>,
) -> Result<(), SigstoreError> {
    let want = hex::encode(digest);
    let want512 = artifact.map(|a| hex::encode(sha2::Sha512::digest(a)));
    let statement: serde_json::Value =
        serde_json::from_slice(&env.payload).map_err(|e| SigstoreError::ArtifactMismatch {
            detail: format!("the DSSE payload is not a JSON in-toto Statement: {e}"),
        })?;
    let found = statement
        .get("subject")
        .and_then(|s| s.as_array())
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                let d = s.get("digest");
                let sha256 = d.and_then(|d| d.get("sha256")).and_then(|v| v.as_str());
                let sha512 = d.and_then(|d| d.get("sha512")).and_then(|v| v.as_str());
                sha256.is_some_and(|v| v.eq_ignore_ascii_case(&want))
                    || sha512
                        .zip(want512.as_deref())
                        .is_some_and(|(v, w)| v.eq_ignore_ascii_case(w))
            })
        });
    if found {
        Ok(())
    } else {
        Err(SigstoreError::ArtifactMismatch {
            detail: format!("no subject of the in-toto Statement has sha256 {want}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vector(path: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/vectors/sigstore")
            .join(path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// The conformance Rekor v2 bundle (an RFC 3161 timestamp, an entry proven by its
    /// inclusion proof alone) and its trusted root, as JSON.
    fn rekor2() -> (Bundle, Value) {
        let bundle = Bundle::from_json(&vector(
            "conformance/rekor2-happy-path/bundle.sigstore.json",
        ))
        .expect("the bundle parses");
        let root =
            serde_json::from_slice(&vector("conformance/rekor2-happy-path/trusted_root.json"))
                .expect("the root is JSON");
        (bundle, root)
    }

    fn check(bundle: &Bundle, root: &Value) -> &'static str {
        let root = TrustedRoot::from_json(&serde_json::to_vec(root).expect("serializes"))
            .expect("the root parses");
        let artifact = vector("conformance/a.txt");
        let options = VerifyOptions {
            artifact: Some(&artifact),
            ..VerifyOptions::default()
        };
        verify(bundle, &root, &options).map_or_else(|e| e.reason(), |_| "ok")
    }

    /// Sets `validFor.end` of every Ed25519 (Rekor v2) log of `root`.
    fn end_rekor2_logs(root: &mut Value, end: &str) {
        for log in root["tlogs"].as_array_mut().expect("tlogs") {
            if log["publicKey"]["keyDetails"] == "PKIX_ED25519" {
                log["publicKey"]["validFor"]["end"] = Value::from(end);
            }
        }
    }

    #[test]
    fn a_log_key_retired_before_the_timestamp_cannot_prove_an_entry() {
        let (bundle, mut root) = rekor2();
        assert_eq!(check(&bundle, &root), "ok");
        assert_eq!(bundle.timestamps.len(), 1);
        end_rekor2_logs(&mut root, "2099-01-01T00:00:00Z");
        assert_eq!(check(&bundle, &root), "ok");
        // The log's validFor starts 2025-04-16; the bundle was timestamped later.
        end_rekor2_logs(&mut root, "2025-04-16T00:00:01Z");
        assert_eq!(check(&bundle, &root), "tlog_key_validity");
    }

    #[test]
    fn an_entry_without_a_set_needs_a_verified_timestamp() {
        let (bundle, root) = rekor2();
        let root = TrustedRoot::from_json(&serde_json::to_vec(&root).expect("serializes"))
            .expect("the root parses");
        let Signer::Certificate { leaf, .. } = &bundle.signer else {
            panic!("a certificate bundle");
        };
        let key = x509::public_key(&x509::parse(leaf).expect("parses")).expect("a key");
        let signer = SigningKey::Certificate { der: leaf, key };
        let entry = &bundle.tlog_entries[0];
        assert!(entry.promise.is_none());
        let verified = tlog::verify(0, entry, &bundle, &signer, &root, &[])
            .map(|_| ())
            .map_err(|e| e.reason());
        assert_eq!(verified, Err("tlog_key_time_missing"));
        let valid = root.tlogs.iter().find(|l| l.log_id == entry.log_id);
        let start = valid.expect("the entry's log").valid.start;
        let verified = tlog::verify(0, entry, &bundle, &signer, &root, &[start])
            .map(|t| t.is_none())
            .map_err(|e| e.reason());
        assert_eq!(verified, Ok(true));
        let verified = tlog::verify(0, entry, &bundle, &signer, &root, &[start, start - 1])
            .map(|_| ())
            .map_err(|e| e.reason());
        assert_eq!(verified, Err("tlog_key_validity"));
    }

    #[test]
    fn repeated_log_entries_and_timestamps_are_refused() {
        let (bundle, root) = rekor2();
        let mut twice = bundle.clone();
        twice.tlog_entries.push(bundle.tlog_entries[0].clone());
        assert_eq!(check(&twice, &root), "bundle_malformed");
        // The same log and index with another body.
        let mut same_index = bundle.clone();
        let mut other = bundle.tlog_entries[0].clone();
        other.body.push(b' ');
        same_index.tlog_entries.push(other);
        assert_eq!(check(&same_index, &root), "bundle_malformed");
        // The same body under another index.
        let mut same_body = bundle.clone();
        let mut other = bundle.tlog_entries[0].clone();
        other.log_index += 1;
        same_body.tlog_entries.push(other);
        assert_eq!(check(&same_body, &root), "bundle_malformed");
        let mut stamped_twice = bundle.clone();
        stamped_twice.timestamps.push(bundle.timestamps[0].clone());
        assert_eq!(check(&stamped_twice, &root), "bundle_malformed");
        assert_eq!(check(&bundle, &root), "ok");
    }

    #[test]
    fn ct_logs_listed_but_all_unusable_fail_sct_verification() {
        let (bundle, root) = rekor2();
        let mut unusable = root.clone();
        for log in unusable["ctlogs"].as_array_mut().expect("ctlogs") {
            log["publicKey"]["keyDetails"] = Value::from("PKIX_ED448");
        }
        let parsed = TrustedRoot::from_json(&serde_json::to_vec(&unusable).expect("serializes"))
            .expect("the root parses");
        assert!(parsed.ctlogs.is_empty() && parsed.ctlogs_listed);
        assert_eq!(check(&bundle, &unusable), "sct_invalid");
        // A root listing no CT log at all requires no SCT, as documented.
        let mut none = root.clone();
        none.as_object_mut().expect("an object").remove("ctlogs");
        assert_eq!(check(&bundle, &none), "ok");
        assert_eq!(check(&bundle, &root), "ok");
    }
}
