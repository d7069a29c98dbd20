//! Interim interface of the Sigstore verifier (replaced by the full module).
#![allow(missing_docs, dead_code, clippy::all)]

use std::collections::BTreeMap;

use crate::dsse::Envelope;
use crate::hash::Hash;

pub mod der;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    bytes: Vec<u8>,
}
impl TrustedRoot {
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, SigstoreError> {
        serde_json::from_slice::<serde_json::Value>(bytes).map_err(|_| SigstoreError::Stub)?;
        Ok(TrustedRoot {
            bytes: bytes.to_vec(),
        })
    }
    pub fn digest(&self) -> Hash {
        Hash::sha256(&self.bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    envelope: Option<Envelope>,
    material: Vec<u8>,
    media_type: String,
}
impl Bundle {
    pub fn from_json(_bytes: &[u8]) -> Result<Bundle, SigstoreError> {
        Err(SigstoreError::Stub)
    }
    pub fn media_type(&self) -> &str {
        &self.media_type
    }
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }
    pub fn material_json(&self) -> Vec<u8> {
        self.material.clone()
    }
    pub fn from_parts(material: &[u8], envelope: &Envelope) -> Result<Bundle, SigstoreError> {
        Ok(Bundle {
            envelope: Some(envelope.clone()),
            material: material.to_vec(),
            media_type: String::new(),
        })
    }
    pub fn public_key_hint(&self) -> Option<&str> {
        None
    }
    pub fn has_certificate(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub identity: Option<CertIdentity>,
    pub signer_fingerprint: [u8; 32],
    pub signed_at: i64,
    pub timestamps: Vec<VerifiedTime>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTime {
    pub source: TimeSource,
    pub time: i64,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    Rfc3161 { authority: String },
    TransparencyLog { log_id: String },
}
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CertIdentity {
    pub issuer: String,
    pub subject: String,
    pub extensions: BTreeMap<String, String>,
}
#[derive(Debug, Default)]
pub struct VerifyOptions<'a> {
    pub key: Option<&'a crate::ecdsa::EcKey>,
    pub artifact: Option<&'a [u8]>,
    pub artifact_digest: Option<[u8; 32]>,
}
pub fn verify(
    _bundle: &Bundle,
    _root: &TrustedRoot,
    _options: &VerifyOptions<'_>,
) -> Result<Verified, SigstoreError> {
    Err(SigstoreError::Stub)
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigstoreError {
    #[error("stub")]
    Stub,
}
impl SigstoreError {
    pub fn reason(&self) -> &'static str {
        "stub"
    }
}
