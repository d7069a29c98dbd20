//! Ed25519 public keys that are safe to trust, and the key ids Evident shows for them.
//!
//! A [`PublicKey`] can only be made from a valid, non-weak curve point, so every function
//! that takes one may verify with it without checking again.

use std::fmt;

use ed25519_dalek::{Signature as EdSignature, VerifyingKey};

use crate::hash::Hash;

pub use ed25519_dalek::SigningKey;

/// Length of a raw Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Why bytes are not a usable Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 32 bytes.
    #[error("an Ed25519 public key is 32 bytes, got {0}")]
    Length(usize),
    /// Not hex.
    #[error("public key is not hex: {0}")]
    Hex(String),
    /// Not the encoding of a point on the curve.
    #[error("public key is not a valid Ed25519 point")]
    InvalidPoint,
    /// A small-order point: signatures under it prove nothing.
    #[error("public key is a weak (small-order) Ed25519 key and is refused")]
    Weak,
}

/// An Ed25519 public key that is a valid, non-weak point.
///
/// Invariant: `inner.is_weak()` is false.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    inner: VerifyingKey,
}

impl PublicKey {
    /// Parses a raw 32-byte key, refusing invalid and weak points.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let raw: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        let inner = VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::InvalidPoint)?;
        if inner.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(PublicKey { inner })
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|e| KeyError::Hex(e.to_string()))?;
        PublicKey::from_bytes(&bytes)
    }

    /// The public half of a signing key.
    pub fn from_signing_key(key: &SigningKey) -> PublicKey {
        let inner = key.verifying_key();
        // A key derived from a secret scalar by the base point is never of small order.
        debug_assert!(!inner.is_weak());
        PublicKey { inner }
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.inner.to_bytes()
    }

    /// Lowercase hex of the raw key.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Evident's key id: lowercase hex of SHA-256 over the raw 32-byte key. Written as the
    /// DSSE `keyid` hint when Evident signs; never used for a security decision.
    pub fn key_id(&self) -> String {
        Hash::sha256(&self.to_bytes()).to_hex()
    }

    /// Strict Ed25519 verification (RFC 8032 with canonical encodings; no malleable
    /// signatures). A signature that is not 64 bytes does not verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = EdSignature::from_slice(signature) else {
            return false;
        };
        self.inner.verify_strict(message, &sig).is_ok()
    }
}

/// Whether every `(message, signature, key)` verifies under strict verification
/// ([`PublicKey::verify`]), checked together: one Ed25519 batch verification (a single
/// multiscalar multiplication) instead of one verification each.
///
/// A batch equation alone accepts some signatures that strict verification refuses: an
/// `R` with a small-order component, a non-canonical encoding of `R`, a key with a
/// small-order component. Each signature is checked for those first (canonical `R` of
/// no small order, `R` and the key torsion-free); any that fails makes the whole answer
/// false, and the caller verifies one by one. When every point is torsion-free and every
/// encoding canonical, the batch equation holds exactly when every signature verifies
/// strictly, but for a chance of 2^-128 (the batch's weights are derived from all of its
/// inputs, deterministically). `false` says only that at least one does not verify.
pub fn verify_all(trials: &[(&[u8], &[u8], &PublicKey)]) -> bool {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    if trials.is_empty() {
        return true;
    }
    let mut messages = Vec::with_capacity(trials.len());
    let mut signatures = Vec::with_capacity(trials.len());
    let mut keys = Vec::with_capacity(trials.len());
    let mut torsion_free_keys: Vec<[u8; PUBLIC_KEY_LEN]> = Vec::new();
    for &(message, signature, key) in trials {
        let Ok(sig) = EdSignature::from_slice(signature) else {
            return false;
        };
        let r = CompressedEdwardsY(*sig.r_bytes());
        let Some(point) = r.decompress() else {
            return false;
        };
        if point.compress() != r || point.is_small_order() || !point.is_torsion_free() {
            return false;
        }
        let raw = key.to_bytes();
        if !torsion_free_keys.contains(&raw) {
            if !key.inner.to_edwards().is_torsion_free() {
                return false;
            }
            torsion_free_keys.push(raw);
        }
        messages.push(message);
        signatures.push(sig);
        keys.push(key.inner);
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
