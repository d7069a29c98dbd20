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
