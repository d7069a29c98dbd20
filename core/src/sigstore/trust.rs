//! The Sigstore trusted root (`dev.sigstore.trustroot.v1.TrustedRoot` JSON): the keys of the
//! transparency and CT logs, the Fulcio certificate authorities and the timestamp
//! authorities, each with the time range in which it may be trusted.
//!
//! Parsing is strict about what a verification relies on (a validity range without a start
//! is refused rather than read as "always"); a log whose key type this verifier does not
//! implement is dropped, since it could never make anything verify (a root whose CT logs
//! are all dropped still requires SCTs, which then cannot verify).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{MAX_TRUSTED_ROOT_BYTES, SigstoreError};
use crate::ecdsa::EcKey;
use crate::hash::Hash;
use crate::keys::PublicKey;

/// The media types of trusted roots this verifier reads.
const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot+json;version=0.2",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
];

/// A closed time range `[start, end]` in nanoseconds since the epoch; `end` absent means
/// still valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub start: i64,
    pub end: Option<i64>,
}

impl Validity {
    /// Whether `time` lies in the closed range.
    pub fn contains(&self, time: i64) -> bool {
        self.start <= time && self.end.is_none_or(|end| time <= end)
    }
}

/// A key a log signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogKey {
    /// ECDSA (Rekor v1, CT logs).
    Ecdsa(EcKey),
    /// Ed25519 (Rekor v2).
    Ed25519(PublicKey),
}

/// A transparency or CT log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Log {
    pub base_url: String,
    pub key: LogKey,
    pub log_id: Vec<u8>,
    pub valid: Validity,
}

/// A certificate or timestamp authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    /// The subject common name, else the URI: how messages and [`super::TimeSource`] name it.
    pub name: String,
    /// DER certificates, the issuing one first and the root last.
    pub chain: Vec<Vec<u8>>,
    pub valid: Validity,
}

/// The Sigstore trust anchors a verification is made against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    pub(crate) digest: Hash,
    pub(crate) tlogs: Vec<Log>,
    pub(crate) ctlogs: Vec<Log>,
    /// Whether the document listed any CT log, usable or not: a root that lists CT logs
    /// requires an SCT even when none of them can be used (verification then fails).
    pub(crate) ctlogs_listed: bool,
    pub(crate) cas: Vec<Authority>,
    pub(crate) tsas: Vec<Authority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    hash_algorithm: Option<String>,
    public_key: RawPublicKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: String,
    key_details: String,
    valid_for: Option<RawRange>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawLogId {
    pub key_id: String,
}

#[derive(Deserialize)]
struct RawRange {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    #[serde(default)]
    subject: RawSubject,
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawRange>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSubject {
    #[serde(default)]
    common_name: String,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

fn invalid(detail: String) -> SigstoreError {
    SigstoreError::TrustedRoot { detail }
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, SigstoreError> {
    STANDARD
        .decode(text)
        .map_err(|e| invalid(format!("{field} is not base64: {e}")))
}

pub(crate) fn rfc3339(field: &str, text: &str) -> Result<i64, SigstoreError> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid(format!("{field} `{text}` is not an RFC 3339 time")))?;
    // Beyond what nanoseconds in an i64 reach (years before 1677 or after 2262): saturate.
    Ok(t.timestamp_nanos_opt().unwrap_or(if t.timestamp() > 0 {
        i64::MAX
    } else {
        i64::MIN
    }))
}

fn range(field: &str, raw: Option<&RawRange>) -> Result<Validity, SigstoreError> {
    let raw = raw.ok_or_else(|| invalid(format!("{field}.validFor is missing")))?;
    let start = raw.start.as_deref().ok_or_else(|| {
        invalid(format!(
            "{field}.validFor has no start; a trust range must say when it begins"
        ))
    })?;
    let start = rfc3339(&format!("{field}.validFor.start"), start)?;
    let end = raw
        .end
        .as_deref()
        .map(|e| rfc3339(&format!("{field}.validFor.end"), e))
        .transpose()?;
    if end.is_some_and(|e| e < start) {
        return Err(invalid(format!("{field}.validFor ends before it starts")));
    }
    Ok(Validity { start, end })
}

fn log(field: &str, raw: &RawLog) -> Result<Option<Log>, SigstoreError> {
    let valid = range(
        &format!("{field}.publicKey"),
        raw.public_key.valid_for.as_ref(),
    )?;
    if raw
        .hash_algorithm
        .as_deref()
        .is_some_and(|h| h != "SHA2_256")
    {
        return Ok(None);
    }
    let der = b64(
        &format!("{field}.publicKey.rawBytes"),
        &raw.public_key.raw_bytes,
    )?;
    let key = match raw.public_key.key_details.as_str() {
        "PKIX_ECDSA_P256_SHA_256" | "PKIX_ECDSA_P384_SHA_384" => LogKey::Ecdsa(
            EcKey::from_spki_der(&der).map_err(|e| invalid(format!("{field}.publicKey: {e}")))?,
        ),
        "PKIX_ED25519" => {
            let raw_key = der
                .strip_prefix(&ED25519_SPKI_PREFIX[..])
                .ok_or_else(|| invalid(format!("{field}.publicKey is not an Ed25519 SPKI")))?;
            LogKey::Ed25519(
                PublicKey::from_bytes(raw_key)
                    .map_err(|e| invalid(format!("{field}.publicKey: {e}")))?,
            )
        }
        _ => return Ok(None),
    };
    let log_id = b64(&format!("{field}.logId.keyId"), &raw.log_id.key_id)?;
    Ok(Some(Log {
        base_url: raw.base_url.clone(),
        key,
        log_id,
        valid,
    }))
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32 key bytes.
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn authority(field: &str, raw: &RawAuthority) -> Result<Authority, SigstoreError> {
    let chain = raw
        .cert_chain
        .certificates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            b64(
                &format!("{field}.certChain.certificates[{i}]"),
                &c.raw_bytes,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err(invalid(format!("{field}.certChain is empty")));
    }
    let name = if raw.subject.common_name.is_empty() {
        raw.uri.clone()
    } else {
        raw.subject.common_name.clone()
    };
    Ok(Authority {
        name,
        chain,
        valid: range(field, raw.valid_for.as_ref())?,
    })
}

impl TrustedRoot {
    /// Parses the JSON form of `dev.sigstore.trustroot.v1.TrustedRoot` (media types
    /// `application/vnd.dev.sigstore.trustedroot+json;version=0.1`, the same with
    /// `version=0.2`, and `application/vnd.dev.sigstore.trustedroot.v0.2+json`).
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, SigstoreError> {
        if bytes.len() > MAX_TRUSTED_ROOT_BYTES {
            return Err(SigstoreError::TooLarge {
                what: "trusted root",
                size: bytes.len(),
                limit: MAX_TRUSTED_ROOT_BYTES,
            });
        }
        let raw: RawRoot =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        if !MEDIA_TYPES.contains(&raw.media_type.as_str()) {
            return Err(invalid(format!(
                "media type `{}` is not a known trusted root version",
                raw.media_type
            )));
        }
        let mut tlogs = Vec::new();
        for (i, l) in raw.tlogs.iter().enumerate() {
            tlogs.extend(log(&format!("tlogs[{i}]"), l)?);
        }
        let mut ctlogs = Vec::new();
        for (i, l) in raw.ctlogs.iter().enumerate() {
            ctlogs.extend(log(&format!("ctlogs[{i}]"), l)?);
        }
        let cas = raw
            .certificate_authorities
            .iter()
            .enumerate()
            .map(|(i, a)| authority(&format!("certificateAuthorities[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let tsas = raw
            .timestamp_authorities
            .iter()
            .enumerate()
            .map(|(i, a)| authority(&format!("timestampAuthorities[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedRoot {
            digest: Hash(Sha256::digest(bytes).into()),
            tlogs,
            ctlogs,
            ctlogs_listed: !raw.ctlogs.is_empty(),
            cas,
            tsas,
        })
    }

    /// SHA-256 of the exact JSON bytes the root was parsed from.
    pub fn digest(&self) -> Hash {
        self.digest
    }
}
