//! SHA-256 hashes as a value type, with the hex and base64 spellings the formats use.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Length in bytes of every hash Evident uses (SHA-256).
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash: a leaf hash, a tree node, a root, an envelope digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

/// A byte string that is not 32 bytes long where a SHA-256 hash was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The input has the wrong number of bytes.
    #[error("a SHA-256 hash is {HASH_LEN} bytes, got {0}")]
    Length(usize),
    /// The input is not lowercase or uppercase hexadecimal.
    #[error("a SHA-256 hash in hex is 64 hex digits: {0}")]
    Hex(String),
    /// The input is not standard base64.
    #[error("a SHA-256 hash in base64 must be standard base64: {0}")]
    Base64(String),
}

impl Hash {
    /// All zeros: the "previous leaf hash" of entry 0.
    pub const ZERO: Hash = Hash([0; HASH_LEN]);

    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// Takes exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashError> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashError::Length(bytes.len()))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Hash, HashError> {
        let bytes = hex::decode(text).map_err(|e| HashError::Hex(e.to_string()))?;
        Hash::from_slice(&bytes)
    }

    /// Parses standard, padded base64 (the spelling checkpoints and the vectors use).
    pub fn from_base64(text: &str) -> Result<Hash, HashError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| HashError::Base64(e.to_string()))?;
        Hash::from_slice(&bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Standard, padded base64.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
