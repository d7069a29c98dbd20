//! ECDSA public keys as cosign writes them (`cosign.pub`): a PEM `PUBLIC KEY` holding a
//! SubjectPublicKeyInfo for P-256 or P-384, with signatures in ASN.1 DER.
//!
//! An [`EcKey`] is only made from a valid curve point, so verification never re-checks it.
//! Verification never panics: any malformed signature is simply not valid.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest as _, Sha256, Sha384};

use crate::sigstore::der::{self, tag};

/// id-ecPublicKey.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// prime256v1 (P-256).
const OID_P256: &str = "1.2.840.10045.3.1.7";
/// secp384r1 (P-384).
const OID_P384: &str = "1.3.132.0.34";

/// The curves cosign keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256, signed over SHA-256.
    P256,
    /// NIST P-384, signed over SHA-384.
    P384,
}

impl Curve {
    /// The curve's name as NIST writes it.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

/// Why bytes are not a usable ECDSA public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EcKeyError {
    /// The PEM text has no `PUBLIC KEY` block or its base64 is broken.
    #[error(
        "public key PEM is malformed: {0}; expected a \"-----BEGIN PUBLIC KEY-----\" block as `cosign generate-key-pair` writes"
    )]
    Pem(String),
    /// The DER is not a SubjectPublicKeyInfo.
    #[error("public key is not a DER SubjectPublicKeyInfo: {0}")]
    Der(String),
    /// The key is not an elliptic-curve key.
    #[error(
        "public key algorithm {0} is not id-ecPublicKey; only ECDSA P-256 and P-384 keys are accepted"
    )]
    Algorithm(String),
    /// The curve is neither P-256 nor P-384.
    #[error("elliptic curve {0} is not supported; use a P-256 or P-384 key")]
    Curve(String),
    /// The key bytes are not a point on the curve.
    #[error("public key is not a valid {0} point")]
    Point(&'static str),
}

/// The DER of a P-256 SubjectPublicKeyInfo before its 65-byte uncompressed point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The DER of a P-384 SubjectPublicKeyInfo before its 97-byte uncompressed point.
const SPKI_P384_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// An ECDSA public key on P-256 or P-384.
///
/// Invariant: `point` is the uncompressed SEC1 encoding of a point on `curve`, and `spki`
/// the DER SubjectPublicKeyInfo of that point (whatever encoding it was parsed from).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcKey {
    curve: Curve,
    spki: Vec<u8>,
    point: Vec<u8>,
}

impl EcKey {
    /// Parses a DER SubjectPublicKeyInfo with id-ecPublicKey and P-256 or P-384.
    pub fn from_spki_der(bytes: &[u8]) -> Result<EcKey, EcKeyError> {
        let bad = |e: der::DerError| EcKeyError::Der(e.0);
        let spki = der::single(bytes, tag::SEQUENCE).map_err(bad)?;
        let mut r = spki.reader();
        let alg = r.expect(tag::SEQUENCE).map_err(bad)?;
        let bits = r.expect(tag::BIT_STRING).map_err(bad)?;
        r.finish().map_err(bad)?;
        let mut a = alg.reader();
        let alg_oid = a.expect(tag::OID).map_err(bad)?;
        if alg_oid.body != der::oid(OID_EC_PUBLIC_KEY) {
            return Err(EcKeyError::Algorithm(der::oid_text(alg_oid.body)));
        }
        let curve_oid = a.expect(tag::OID).map_err(bad)?;
        a.finish().map_err(bad)?;
        let curve = if curve_oid.body == der::oid(OID_P256) {
            Curve::P256
        } else if curve_oid.body == der::oid(OID_P384) {
            Curve::P384
        } else {
            return Err(EcKeyError::Curve(der::oid_text(curve_oid.body)));
        };
        let (&unused, point) = bits
            .body
            .split_first()
            .ok_or_else(|| EcKeyError::Der("empty BIT STRING".into()))?;
        if unused != 0 {
            return Err(EcKeyError::Der("BIT STRING has unused bits".into()));
        }
        // One key, one encoding: a compressed point is held uncompressed, so that a key
        // has one fingerprint and cannot be registered twice under two encodings.
        let (prefix, point) = match curve {
            Curve::P256 => (
                &SPKI_P256_PREFIX[..],
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| EcKeyError::Point(curve.name()))?
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
            Curve::P384 => (
                &SPKI_P384_PREFIX[..],
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| EcKeyError::Point(curve.name()))?
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec(),
            ),
        };
        let mut spki = prefix.to_vec();
        spki.extend_from_slice(&point);
        Ok(EcKey { curve, spki, point })
    }

    /// Parses a PEM `PUBLIC KEY` block (text around it is ignored).
    pub fn from_pem(text: &str) -> Result<EcKey, EcKeyError> {
        let der = pem_block(text, "PUBLIC KEY").map_err(EcKeyError::Pem)?;
        EcKey::from_spki_der(&der)
    }

    /// The SubjectPublicKeyInfo DER, with the point uncompressed.
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    /// The PEM `PUBLIC KEY` form, 64 base64 characters a line.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki)
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// SHA-256 over the SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.spki).into()
    }

    /// The lowercase hex of [`EcKey::fingerprint`].
    pub fn key_id(&self) -> String {
        hex::encode(self.fingerprint())
    }

    /// Verifies an ASN.1 DER ECDSA `signature` over `message`, hashed as cosign does:
    /// SHA-256 for P-256, SHA-384 for P-384. Never panics.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self.curve {
            Curve::P256 => self.verify_prehash(&Sha256::digest(message), signature),
            Curve::P384 => self.verify_prehash(&Sha384::digest(message), signature),
        }
    }

    /// Verifies an ASN.1 DER ECDSA `signature` over an already computed `digest`.
    pub fn verify_prehash(&self, digest: &[u8], signature: &[u8]) -> bool {
        if digest.len() < 16 || digest.len() > 64 {
            return false;
        }
        match self.curve {
            Curve::P256 => {
                let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.point) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::Signature::from_der(signature) else {
                    return false;
                };
                key.verify_prehash(digest, &sig).is_ok()
            }
            Curve::P384 => {
                let Ok(key) = p384::ecdsa::VerifyingKey::from_sec1_bytes(&self.point) else {
                    return false;
                };
                let Ok(sig) = p384::ecdsa::Signature::from_der(signature) else {
                    return false;
                };
                key.verify_prehash(digest, &sig).is_ok()
            }
        }
    }
}

/// The DER inside the first PEM block labelled `label`.
pub(crate) fn pem_block(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no \"{begin}\" line"))?
        + begin.len();
    let len = text[start..]
        .find(&end)
        .ok_or_else(|| format!("no \"{end}\" line"))?;
    let body: String = text[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| format!("base64 inside the {label} block: {e}"))
}

/// A PEM block, 64 base64 characters a line.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    fn key() -> (p256::ecdsa::SigningKey, EcKey) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar");
        let der = p256_spki(&sk);
        (sk, EcKey::from_spki_der(&der).expect("parses"))
    }

    /// The SubjectPublicKeyInfo of a P-256 signing key, for tests.
    pub(crate) fn p256_spki(sk: &p256::ecdsa::SigningKey) -> Vec<u8> {
        let point = sk.verifying_key().to_encoded_point(false);
        let alg = [
            der::encode(tag::OID, &der::oid(OID_EC_PUBLIC_KEY)),
            der::encode(tag::OID, &der::oid(OID_P256)),
        ]
        .concat();
        let mut bits = vec![0u8];
        bits.extend_from_slice(point.as_bytes());
        der::encode(
            tag::SEQUENCE,
            &[
                der::encode(tag::SEQUENCE, &alg),
                der::encode(tag::BIT_STRING, &bits),
            ]
            .concat(),
        )
    }

    #[test]
    fn verifies_what_p256_signs_and_nothing_else() {
        let (sk, key) = key();
        let sig: p256::ecdsa::Signature = sk.sign(b"hello");
        let der = sig.to_der();
        assert!(key.verify(b"hello", der.as_bytes()));
        assert!(!key.verify(b"hellp", der.as_bytes()));
        assert!(!key.verify(b"hello", &der.as_bytes()[1..]));
        assert!(!key.verify(b"hello", &[]));
        assert_eq!(key.curve(), Curve::P256);
    }

    #[test]
    fn pem_round_trips() {
        let (_, key) = key();
        let again = EcKey::from_pem(&key.to_pem()).expect("parses");
        assert_eq!(again, key);
        assert_eq!(key.key_id().len(), 64);
    }

    #[test]
    fn refuses_other_keys() {
        assert!(EcKey::from_pem("nothing").is_err());
        // An Ed25519 SPKI.
        let ed = hex::decode("302a300506032b6570032100").expect("hex");
        let mut ed = ed;
        ed.extend_from_slice(&[1u8; 32]);
        assert!(matches!(
            EcKey::from_spki_der(&ed),
            Err(EcKeyError::Algorithm(_))
        ));
        let (_, key) = key();
        let mut bad = key.to_spki_der();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(EcKey::from_spki_der(&bad).is_err());
    }
}
