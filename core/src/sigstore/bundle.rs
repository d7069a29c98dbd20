//! The Sigstore bundle (`dev.sigstore.bundle.v1.Bundle` JSON), decoded once into checked
//! values: every base64 field decoded, every count bounded, every index non-negative.
//! Nothing here verifies anything; [`super::verify`] does.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::{
    MAX_BUNDLE_BYTES, MAX_CHAIN_CERTIFICATES, MAX_TIMESTAMPS, MAX_TLOG_ENTRIES, SigstoreError,
};
use crate::dsse::Envelope;
use crate::hash::Hash;

const ANY_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, ANY_PADDING);
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, ANY_PADDING);

/// Bundle format versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Version {
    V01,
    V02,
    V03,
}

fn version_of(media_type: &str) -> Option<Version> {
    match media_type {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => Some(Version::V01),
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => Some(Version::V02),
        "application/vnd.dev.sigstore.bundle+json;version=0.3"
        | "application/vnd.dev.sigstore.bundle.v0.3+json" => Some(Version::V03),
        _ => None,
    }
}

/// Who signed, as the bundle claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signer {
    /// A Fulcio certificate (DER), with intermediates the bundle carries (v0.1, v0.2).
    Certificate { leaf: Vec<u8>, chain: Vec<Vec<u8>> },
    /// A managed key, named by an unauthenticated hint.
    PublicKey { hint: String },
}

/// What was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// A signature over an artifact, with the artifact's SHA-256 as a hint.
    Message {
        digest: [u8; 32],
        signature: Vec<u8>,
    },
    /// A DSSE envelope.
    Dsse(Envelope),
}

/// An inclusion proof with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InclusionProof {
    pub log_index: u64,
    pub root_hash: Hash,
    pub tree_size: u64,
    pub hashes: Vec<Hash>,
    /// The checkpoint note; `None` when the bundle omits it (refused at verification).
    pub checkpoint: Option<String>,
}

/// One transparency log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlogEntry {
    pub log_index: u64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub integrated_time: i64,
    pub promise: Option<Vec<u8>>,
    pub proof: Option<InclusionProof>,
    pub body: Vec<u8>,
}

/// A Sigstore bundle, decoded and bounded but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub(crate) media_type: String,
    pub(crate) version: Version,
    pub(crate) signer: Signer,
    pub(crate) tlog_entries: Vec<TlogEntry>,
    pub(crate) timestamps: Vec<Vec<u8>>,
    pub(crate) content: Content,
    /// `{"mediaType", "verificationMaterial"}` as [`Bundle::material_json`] returns it.
    material: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: serde_json::Value,
    message_signature: Option<RawMessageSignature>,
    dsse_envelope: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    certificate: Option<RawCert>,
    x509_certificate_chain: Option<RawChain>,
    public_key: Option<RawHint>,
    #[serde(default)]
    tlog_entries: Vec<RawEntry>,
    timestamp_verification_data: Option<RawTimestamps>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
struct RawHint {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamps {
    #[serde(default)]
    rfc3161_timestamps: Vec<RawTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamp {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    log_index: Int,
    log_id: super::trust::RawLogId,
    kind_version: RawKindVersion,
    #[serde(default)]
    integrated_time: Option<Int>,
    inclusion_promise: Option<RawPromise>,
    inclusion_proof: Option<RawProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    log_index: Int,
    root_hash: String,
    tree_size: Int,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: Option<RawDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

/// A protobuf JSON int64: a decimal string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    Text(String),
    Number(i64),
}

impl Int {
    fn value(&self, field: &str) -> Result<i64, SigstoreError> {
        match self {
            Int::Number(n) => Ok(*n),
            Int::Text(t) => t.parse().map_err(|_| malformed(field, "is not an integer")),
        }
    }

    fn non_negative(&self, field: &str) -> Result<u64, SigstoreError> {
        let v = self.value(field)?;
        u64::try_from(v).map_err(|_| malformed(field, &format!("is negative ({v})")))
    }
}

fn malformed(field: &str, detail: &str) -> SigstoreError {
    SigstoreError::Malformed {
        field: field.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Decodes protobuf JSON `bytes`: standard or URL-safe alphabet, padded or not, with line
/// breaks ignored (as Go's decoder, which wrote many bundles, ignores them).
pub(crate) fn b64(field: &str, text: &str) -> Result<Vec<u8>, SigstoreError> {
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_ANY
    } else {
        &STANDARD_ANY
    };
    let cleaned: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    engine.decode(cleaned).map_err(|e| SigstoreError::Base64 {
        field: field.to_owned(),
        detail: e.to_string(),
    })
}

fn hash(field: &str, text: &str) -> Result<Hash, SigstoreError> {
    Hash::from_slice(&b64(field, text)?).map_err(|_| malformed(field, "is not 32 bytes"))
}

fn bounded<T>(field: &str, items: &[T], limit: usize) -> Result<(), SigstoreError> {
    if items.len() > limit {
        return Err(malformed(
            field,
            &format!("has {} items, at most {limit} are accepted", items.len()),
        ));
    }
    Ok(())
}

impl Bundle {
    /// Decodes the JSON form of a Sigstore bundle, media types v0.1, v0.2 and v0.3 (both
    /// spellings of v0.3); refuses other versions, bundles over 4 MiB and anything malformed.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, SigstoreError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(SigstoreError::TooLarge {
                what: "bundle",
                size: bytes.len(),
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let raw: RawBundle =
            serde_json::from_slice(bytes).map_err(|e| SigstoreError::Json(e.to_string()))?;
        Bundle::from_raw(raw)
    }

    fn from_raw(raw: RawBundle) -> Result<Bundle, SigstoreError> {
        let version = version_of(&raw.media_type).ok_or_else(|| SigstoreError::MediaType {
            media_type: raw.media_type.clone(),
        })?;
        let material: RawMaterial = serde_json::from_value(raw.verification_material.clone())
            .map_err(|e| malformed("verificationMaterial", &e.to_string()))?;
        let signer = match (
            &material.certificate,
            &material.x509_certificate_chain,
            &material.public_key,
        ) {
            (Some(cert), None, None) => Signer::Certificate {
                leaf: b64("verificationMaterial.certificate.rawBytes", &cert.raw_bytes)?,
                chain: Vec::new(),
            },
            (None, Some(chain), None) => {
                bounded(
                    "verificationMaterial.x509CertificateChain.certificates",
                    &chain.certificates,
                    MAX_CHAIN_CERTIFICATES,
                )?;
                let mut certs = chain
                    .certificates
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        b64(
                            &format!("verificationMaterial.x509CertificateChain.certificates[{i}]"),
                            &c.raw_bytes,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if certs.is_empty() {
                    return Err(SigstoreError::EmptyCertificateChain);
                }
                let leaf = certs.remove(0);
                Signer::Certificate { leaf, chain: certs }
            }
            (None, None, Some(key)) => Signer::PublicKey {
                hint: key.hint.clone(),
            },
            _ => {
                return Err(malformed(
                    "verificationMaterial",
                    "must hold exactly one of certificate, x509CertificateChain, publicKey",
                ));
            }
        };
        bounded(
            "verificationMaterial.tlogEntries",
            &material.tlog_entries,
            MAX_TLOG_ENTRIES,
        )?;
        let tlog_entries = material
            .tlog_entries
            .iter()
            .enumerate()
            .map(|(i, e)| entry(&format!("verificationMaterial.tlogEntries[{i}]"), e))
            .collect::<Result<Vec<_>, _>>()?;
        let raw_timestamps = material
            .timestamp_verification_data
            .map(|t| t.rfc3161_timestamps)
            .unwrap_or_default();
        bounded(
            "verificationMaterial.timestampVerificationData.rfc3161Timestamps",
            &raw_timestamps,
            MAX_TIMESTAMPS,
        )?;
        let timestamps = raw_timestamps
            .iter()
            .enumerate()
            .map(|(i, t)| {
                b64(
                    &format!("timestampVerificationData.rfc3161Timestamps[{i}]"),
                    &t.signed_timestamp,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let content = match (&raw.message_signature, &raw.dsse_envelope) {
            (Some(m), None) => {
                let signature = b64("messageSignature.signature", &m.signature)?;
                let digest = m
                    .message_digest
                    .as_ref()
                    .ok_or_else(|| malformed("messageSignature.messageDigest", "is missing"))?;
                if digest.algorithm != "SHA2_256" {
                    return Err(SigstoreError::UnsupportedAlgorithm {
                        what: "messageSignature.messageDigest".into(),
                        algorithm: digest.algorithm.clone(),
                    });
                }
                let digest = hash("messageSignature.messageDigest.digest", &digest.digest)?;
                Content::Message {
                    digest: digest.0,
                    signature,
                }
            }
            (None, Some(env)) => {
                let env_bytes = serde_json::to_vec(env)
                    .map_err(|e| malformed("dsseEnvelope", &e.to_string()))?;
                let envelope = Envelope::from_json(&env_bytes).map_err(|e| match e {
                    crate::dsse::DsseError::Base64 { field, reason } => SigstoreError::Base64 {
                        field: format!("dsseEnvelope.{field}"),
                        detail: reason,
                    },
                    other => malformed("dsseEnvelope", &other.to_string()),
                })?;
                Content::Dsse(envelope)
            }
            _ => {
                return Err(malformed(
                    "bundle",
                    "must hold exactly one of messageSignature, dsseEnvelope",
                ));
            }
        };
        let material_value = serde_json::json!({
            "mediaType": raw.media_type,
            "verificationMaterial": raw.verification_material,
        });
        let material = serde_json::to_vec(&material_value)
            .map_err(|e| malformed("verificationMaterial", &e.to_string()))?;
        Ok(Bundle {
            media_type: raw.media_type,
            version,
            signer,
            tlog_entries,
            timestamps,
            content,
            material,
        })
    }

    /// The bundle's media type, as written.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The DSSE envelope, or `None` for a `messageSignature` bundle.
    pub fn envelope(&self) -> Option<&Envelope> {
        match &self.content {
            Content::Dsse(e) => Some(e),
            Content::Message { .. } => None,
        }
    }

    /// The bundle without its content: the JSON object `{"mediaType",
    /// "verificationMaterial"}`, keys sorted, so the same bundle always gives the same bytes.
    pub fn material_json(&self) -> Vec<u8> {
        self.material.clone()
    }

    /// The bundle's JSON rebuilt from its parts, as docs/FORMAT.md (section 2.1) says: the
    /// material object with `dsseEnvelope` added. What any Sigstore client verifies.
    pub fn json_of_parts(
        material: &[u8],
        envelope: &Envelope,
    ) -> Result<serde_json::Value, SigstoreError> {
        if material.len() > MAX_BUNDLE_BYTES {
            return Err(SigstoreError::TooLarge {
                what: "bundle material",
                size: material.len(),
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(material).map_err(|e| SigstoreError::Json(e.to_string()))?;
        let env: serde_json::Value = serde_json::from_str(&envelope.to_json())
            .map_err(|e| SigstoreError::Json(e.to_string()))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| malformed("material", "is not a JSON object"))?;
        if object.contains_key("dsseEnvelope") || object.contains_key("messageSignature") {
            return Err(malformed("material", "already holds content"));
        }
        object.insert("dsseEnvelope".into(), env);
        Ok(value)
    }

    /// The bundle whose material is `material` (as [`Bundle::material_json`] wrote it) and
    /// whose content is `envelope`.
    pub fn from_parts(material: &[u8], envelope: &Envelope) -> Result<Bundle, SigstoreError> {
        let value = Bundle::json_of_parts(material, envelope)?;
        let raw: RawBundle =
            serde_json::from_value(value).map_err(|e| SigstoreError::Json(e.to_string()))?;
        Bundle::from_raw(raw)
    }

    /// `verificationMaterial.publicKey.hint`, for managed-key bundles.
    pub fn public_key_hint(&self) -> Option<&str> {
        match &self.signer {
            Signer::PublicKey { hint } => Some(hint),
            Signer::Certificate { .. } => None,
        }
    }

    /// Whether the bundle is signed with a certificate (keyless) rather than a managed key.
    pub fn has_certificate(&self) -> bool {
        matches!(self.signer, Signer::Certificate { .. })
    }
}

fn entry(field: &str, raw: &RawEntry) -> Result<TlogEntry, SigstoreError> {
    let log_index = raw.log_index.non_negative(&format!("{field}.logIndex"))?;
    let integrated_time = match &raw.integrated_time {
        Some(t) => {
            let secs = t.non_negative(&format!("{field}.integratedTime"))?;
            i64::try_from(secs)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000_000))
                .ok_or_else(|| malformed(&format!("{field}.integratedTime"), "is out of range"))?
        }
        None => 0,
    };
    let proof = raw
        .inclusion_proof
        .as_ref()
        .map(|p| -> Result<InclusionProof, SigstoreError> {
            bounded(&format!("{field}.inclusionProof.hashes"), &p.hashes, 64)?;
            Ok(InclusionProof {
                log_index: p
                    .log_index
                    .non_negative(&format!("{field}.inclusionProof.logIndex"))?,
                root_hash: hash(&format!("{field}.inclusionProof.rootHash"), &p.root_hash)?,
                tree_size: p
                    .tree_size
                    .non_negative(&format!("{field}.inclusionProof.treeSize"))?,
                hashes: p
                    .hashes
                    .iter()
                    .enumerate()
                    .map(|(i, h)| hash(&format!("{field}.inclusionProof.hashes[{i}]"), h))
                    .collect::<Result<_, _>>()?,
                checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
            })
        })
        .transpose()?;
    Ok(TlogEntry {
        log_index,
        log_id: b64(&format!("{field}.logId.keyId"), &raw.log_id.key_id)?,
        kind: raw.kind_version.kind.clone(),
        version: raw.kind_version.version.clone(),
        integrated_time,
        promise: raw
            .inclusion_promise
            .as_ref()
            .map(|p| {
                b64(
                    &format!("{field}.inclusionPromise"),
                    &p.signed_entry_timestamp,
                )
            })
            .transpose()?,
        proof,
        body: b64(
            &format!("{field}.canonicalizedBody"),
            &raw.canonicalized_body,
        )?,
    })
}
