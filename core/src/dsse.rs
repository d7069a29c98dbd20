//! DSSE envelopes: the pre-authentication encoding, signing, and verification against a set
//! of trusted Ed25519 keys.
//!
//! Follows the DSSE v1.0 protocol (github.com/secure-systems-lab/dsse, `protocol.md`). The
//! `keyid` of a signature is a hint, never an authority: a signature counts only if it
//! verifies. A threshold counts distinct keys, so the same key signing twice counts once.
//!
//! Verification is bounded, because the signatures are chosen by the caller and every
//! trial costs an Ed25519 verification: an envelope carries at most [`MAX_SIGNATURES`]
//! signatures; a signature whose keyid names a trusted key is tried against that key only;
//! the others share a budget of [`MAX_UNHINTED_VERIFICATIONS`] trials per envelope. An
//! envelope made by [`Envelope::sign`] (or any signer that writes its key's id) costs one
//! verification per signature.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose};

use crate::keys::{PublicKey, SigningKey};

use ed25519_dalek::Signer as _;

/// The most signatures an envelope may carry.
pub const MAX_SIGNATURES: usize = 8;

/// The most verifications spent per envelope on signatures whose keyid names no trusted
/// key (empty or unknown hints).
pub const MAX_UNHINTED_VERIFICATIONS: usize = 64;

/// The payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope as received: every signed byte exactly as the signer produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The serialized message that was signed.
    pub payload: Vec<u8>,
    /// The media type of `payload`, bound into the signature by PAE.
    pub payload_type: String,
    /// Signatures over `PAE(payload_type, payload)`.
    pub signatures: Vec<Signature>,
    /// The verification material of the Sigstore bundle the envelope arrived in: the
    /// bundle's JSON without its `dsseEnvelope` (certificate or key hint, transparency-log
    /// entries, timestamps), as [`crate::sigstore::Bundle::material_json`] writes it.
    /// `None` for a bare DSSE envelope. Not part of DSSE and not signed by it: it is the
    /// evidence of who signed and when, kept in the leaf record so that anyone can verify
    /// the signature again later, offline.
    pub sigstore: Option<Vec<u8>>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The raw signature bytes (64 for Ed25519).
    pub sig: Vec<u8>,
    /// An unauthenticated hint naming the key; may be empty.
    pub keyid: String,
}

/// Why an envelope could not be decoded or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DsseError {
    /// The bytes are not a JSON DSSE envelope.
    #[error("envelope is not valid DSSE JSON: {0}")]
    Json(String),
    /// A base64 field is neither standard nor URL-safe base64.
    #[error("envelope field `{field}` is not valid base64 (standard or URL-safe): {reason}")]
    Base64 {
        /// The JSON path of the field, e.g. `signatures[1].sig`.
        field: String,
        /// What the decoder said.
        reason: String,
    },
    /// The envelope carries more signatures than [`MAX_SIGNATURES`].
    #[error(
        "envelope has {0} signatures, at most {MAX_SIGNATURES} are accepted: sign with each \
         key once"
    )]
    TooManySignatures(usize),
    /// The envelope carries no signatures at all.
    #[error("envelope has no signatures: sign PAE(payloadType, payload) with a trusted key")]
    NoSignatures,
    /// No signature verifies under any trusted key.
    #[error(
        "none of the envelope's {signatures} signature(s) verifies under a trusted key \
         (keyid hints in the envelope: {hints})"
    )]
    NoTrustedSignature {
        /// How many signatures the envelope carries.
        signatures: usize,
        /// The envelope's keyid hints, or "none" when it gives none.
        hints: String,
    },
    /// Fewer distinct trusted keys signed than the threshold requires.
    #[error("envelope is signed by {distinct} distinct trusted key(s), {threshold} required")]
    Threshold {
        /// Distinct trusted keys whose signature verified.
        distinct: usize,
        /// Distinct keys required.
        threshold: usize,
    },
}

/// One envelope of [`Envelope::verify_bounded_batch`], with the arguments
/// [`Envelope::verify_bounded`] would take for it.
#[derive(Clone, Copy)]
pub struct BatchItem<'a> {
    /// The envelope.
    pub envelope: &'a Envelope,
    /// The keys it may be signed by.
    pub trusted: &'a [PublicKey],
    /// The trusted key a keyid names, if any.
    pub hinted: &'a dyn Fn(&str) -> Option<usize>,
    /// The keys tried for a signature whose keyid names none, most likely first.
    pub candidates: &'a [usize],
}

impl std::fmt::Debug for BatchItem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchItem")
            .field("envelope", self.envelope)
            .field("trusted", &self.trusted.len())
            .field("candidates", &self.candidates)
            .finish()
    }
}

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        7 + type_len.len() + 1 + payload_type.len() + 1 + body_len.len() + 1 + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

const INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
const URL_SAFE_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);

/// Decodes standard or URL-safe base64, padded or not, as DSSE requires of verifiers.
fn decode_base64(field: impl FnOnce() -> String, text: &str) -> Result<Vec<u8>, DsseError> {
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_ANY_PADDING
    } else {
        &STANDARD_ANY_PADDING
    };
    engine.decode(text).map_err(|e| DsseError::Base64 {
        field: field(),
        reason: e.to_string(),
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEnvelope {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<JsonSignature>,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct JsonSignature {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    keyid: String,
    sig: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonEnvelopeOut<'a> {
    payload: String,
    payload_type: &'a str,
    signatures: Vec<JsonSignature>,
}

impl Envelope {
    /// Decodes the JSON form of DSSE (`payload`, `payloadType`, `signatures[].sig`,
    /// `signatures[].keyid`), as in-toto tools, cosign and securesystemslib write it.
    /// Unknown fields are ignored.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, DsseError> {
        let raw: JsonEnvelope =
            serde_json::from_slice(bytes).map_err(|e| DsseError::Json(e.to_string()))?;
        let payload = decode_base64(|| "payload".to_owned(), &raw.payload)?;
        let signatures = raw
            .signatures
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(Signature {
                    sig: decode_base64(|| format!("signatures[{i}].sig"), &s.sig)?,
                    keyid: s.keyid,
                })
            })
            .collect::<Result<Vec<_>, DsseError>>()?;
        Ok(Envelope {
            payload,
            payload_type: raw.payload_type,
            signatures,
            sigstore: None,
        })
    }

    /// The JSON form, with standard padded base64.
    pub fn to_json(&self) -> String {
        let out = JsonEnvelopeOut {
            payload: general_purpose::STANDARD.encode(&self.payload),
            payload_type: &self.payload_type,
            signatures: self
                .signatures
                .iter()
                .map(|s| JsonSignature {
                    keyid: s.keyid.clone(),
                    sig: general_purpose::STANDARD.encode(&s.sig),
                })
                .collect(),
        };
        serde_json::to_string(&out).expect("an envelope of strings and byte arrays serializes")
    }

    /// Signs `payload` with every key in `keys`, each writing its [`PublicKey::key_id`] as
    /// the hint.
    pub fn sign(payload_type: &str, payload: Vec<u8>, keys: &[&SigningKey]) -> Envelope {
        let message = pae(payload_type, &payload);
        let signatures = keys
            .iter()
            .map(|key| Signature {
                sig: key.sign(&message).to_bytes().to_vec(),
                keyid: PublicKey::from_signing_key(key).key_id(),
            })
            .collect();
        Envelope {
            payload,
            payload_type: payload_type.to_owned(),
            signatures,
            sigstore: None,
        }
    }

    /// The bytes every signature must cover.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// The distinct trusted keys (indexes into `trusted`, ascending) with at least one
    /// verifying signature. Errors when there is none. Bounded as the module says; keyids
    /// are matched against [`PublicKey::key_id`] of every trusted key (for a few keys: the
    /// registry keeps its own keyid index and calls [`Envelope::verify_bounded`]).
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<Vec<usize>, DsseError> {
        let ids: Vec<String> = trusted.iter().map(PublicKey::key_id).collect();
        let all: Vec<usize> = (0..trusted.len()).collect();
        self.verify_bounded(trusted, |keyid| ids.iter().position(|id| id == keyid), &all)
    }

    /// The bounded verification both [`Envelope::verify`] and the registry use. `hinted`
    /// maps a keyid to the trusted key it names; a signature with such a keyid is tried
    /// against that key only. Other signatures are tried against `candidates` (indexes into
    /// `trusted`, most likely first), sharing [`MAX_UNHINTED_VERIFICATIONS`] trials.
    pub fn verify_bounded(
        &self,
        trusted: &[PublicKey],
        hinted: impl Fn(&str) -> Option<usize>,
        candidates: &[usize],
    ) -> Result<Vec<usize>, DsseError> {
        let message = self.pae();
        self.bounded(trusted, hinted, candidates, |s, k| {
            trusted[k].verify(&message, &self.signatures[s].sig)
        })
    }

    /// The rules of [`Envelope::verify_bounded`], with `trial(signature, key)` (indexes into
    /// `self.signatures` and `trusted`) deciding each verification it makes. Which trials
    /// are made depends only on the answers of the earlier ones.
    fn bounded(
        &self,
        trusted: &[PublicKey],
        hinted: impl Fn(&str) -> Option<usize>,
        candidates: &[usize],
        mut trial: impl FnMut(usize, usize) -> bool,
    ) -> Result<Vec<usize>, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures(self.signatures.len()));
        }
        let mut signed = vec![false; trusted.len()];
        let mut budget = MAX_UNHINTED_VERIFICATIONS;
        for (s, signature) in self.signatures.iter().enumerate() {
            let named = (!signature.keyid.is_empty())
                .then(|| hinted(&signature.keyid))
                .flatten()
                .filter(|&i| i < trusted.len());
            if let Some(i) = named {
                if !signed[i] && trial(s, i) {
                    signed[i] = true;
                }
                continue;
            }
            for &i in candidates {
                if i >= trusted.len() || signed[i] {
                    continue;
                }
                if budget == 0 {
                    break;
                }
                budget -= 1;
                if trial(s, i) {
                    signed[i] = true;
                    break;
                }
            }
        }
        let verified: Vec<usize> = (0..trusted.len()).filter(|&i| signed[i]).collect();
        if verified.is_empty() {
            let hints: Vec<&str> = self
                .signatures
                .iter()
                .map(|s| s.keyid.as_str())
                .filter(|k| !k.is_empty())
                .collect();
            return Err(DsseError::NoTrustedSignature {
                signatures: self.signatures.len(),
                hints: if hints.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{:?}", hints.join(", "))
                },
            });
        }
        Ok(verified)
    }

    /// [`Envelope::verify_bounded`] of many envelopes at once, with exactly its results: the
    /// same keys, or the same error, for each. The verifications each envelope would make
    /// if every one succeeded are checked together in one Ed25519 batch
    /// ([`crate::keys::verify_all`]); when the batch holds, every one of them succeeds, so
    /// the one-by-one rules would have made the same trials with the same answers. When it
    /// does not, each envelope is verified one by one, which finds the bad signatures.
    pub fn verify_bounded_batch(items: &[BatchItem<'_>]) -> Vec<Result<Vec<usize>, DsseError>> {
        let messages: Vec<Vec<u8>> = items.iter().map(|item| item.envelope.pae()).collect();
        // Each envelope's verifications, assuming every one succeeds, and what the rules
        // conclude from that.
        let mut trials: Vec<(&[u8], &[u8], &PublicKey)> = Vec::new();
        let mut optimistic = Vec::with_capacity(items.len());
        for (item, message) in items.iter().zip(&messages) {
            let result =
                item.envelope
                    .bounded(item.trusted, item.hinted, item.candidates, |s, k| {
                        trials.push((message, &item.envelope.signatures[s].sig, &item.trusted[k]));
                        true
                    });
            optimistic.push(result);
        }
        if crate::keys::verify_all(&trials) {
            return optimistic;
        }
        items
            .iter()
            .zip(&messages)
            .map(|(item, message)| {
                item.envelope
                    .bounded(item.trusted, item.hinted, item.candidates, |s, k| {
                        item.trusted[k].verify(message, &item.envelope.signatures[s].sig)
                    })
            })
            .collect()
    }

    /// Like [`Envelope::verify`], and at least `threshold` distinct trusted keys signed.
    pub fn verify_threshold(
        &self,
        trusted: &[PublicKey],
        threshold: usize,
    ) -> Result<Vec<usize>, DsseError> {
        let verified = self.verify(trusted)?;
        if verified.len() < threshold {
            return Err(DsseError::Threshold {
                distinct: verified.len(),
                threshold,
            });
        }
        Ok(verified)
    }
}
