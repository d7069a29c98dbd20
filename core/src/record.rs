//! The leaf record: the exact bytes the Merkle tree hashes for each entry, and the hash chain
//! that links every entry to the one before it.
//!
//! The layout is documented byte by byte in `docs/FORMAT.md`. The encoding is canonical:
//! one record has exactly one encoding, and the decoder refuses anything else (truncation,
//! trailing bytes, unknown versions or kinds, invalid UTF-8).

use std::fmt;

use crate::dsse::{Envelope, Signature};
use crate::hash::Hash;
use crate::merkle;

/// The first four bytes of every leaf record.
pub const MAGIC: [u8; 4] = *b"EVLR";
/// The leaf record version of an entry whose envelope came bare.
pub const VERSION: u8 = 1;
/// The leaf record version of an entry whose envelope came in a Sigstore bundle: version 1
/// followed by the bundle's verification material ([`Envelope::sigstore`]).
pub const VERSION_SIGSTORE: u8 = 2;
/// Bytes before the envelope: magic, version, index, time, previous hash, kind.
pub const HEADER_LEN: usize = 4 + 1 + 8 + 8 + 32 + 1;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EntryKind {
    /// A signed attestation from a pipeline.
    Attestation,
    /// A change to the trust registry, signed by administrators.
    Registry,
    /// A version of a release policy, signed by administrators.
    Policy,
}

impl EntryKind {
    /// The byte that stands for this kind in a leaf record.
    pub fn code(self) -> u8 {
        match self {
            EntryKind::Attestation => 1,
            EntryKind::Registry => 2,
            EntryKind::Policy => 3,
        }
    }

    /// The kind a byte stands for.
    pub fn from_code(code: u8) -> Option<EntryKind> {
        match code {
            1 => Some(EntryKind::Attestation),
            2 => Some(EntryKind::Registry),
            3 => Some(EntryKind::Policy),
            _ => None,
        }
    }

    /// The lowercase name used in docs, logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Attestation => "attestation",
            EntryKind::Registry => "registry",
            EntryKind::Policy => "policy",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the log.
///
/// Invariant: every length of the envelope fits its length prefix, so [`LeafRecord::encode`]
/// cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRecord {
    index: u64,
    integrated_time_nanos: i64,
    previous_leaf_hash: Hash,
    kind: EntryKind,
    envelope: Envelope,
}

/// Why bytes are not a leaf record, or a record does not follow its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes end before a field does.
    #[error(
        "leaf record truncated: {field} needs {needed} byte(s) at offset {offset}, {left} left"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes remain.
        left: usize,
    },
    /// The record does not start with `EVLR`.
    #[error("not a leaf record: magic is {0:02x?}, expected \"EVLR\"")]
    Magic([u8; 4]),
    /// A version this code does not know.
    #[error(
        "leaf record version {0} is not supported (this build reads versions {VERSION} and \
         {VERSION_SIGSTORE})"
    )]
    Version(u8),
    /// An entry kind this code does not know.
    #[error("leaf record entry kind {0} is unknown")]
    Kind(u8),
    /// A text field is not UTF-8.
    #[error("leaf record field {0} is not valid UTF-8")]
    Utf8(&'static str),
    /// The envelope carries no signature.
    #[error("leaf record envelope has no signatures")]
    NoSignatures,
    /// A version 2 record whose Sigstore material is empty (version 1 says "none").
    #[error("leaf record version {VERSION_SIGSTORE} has empty Sigstore material")]
    EmptySigstore,
    /// Bytes after the last field.
    #[error("leaf record has {0} trailing byte(s) after the envelope")]
    Trailing(usize),
    /// A field is longer than its length prefix can say.
    #[error("{field} is {len} bytes, more than a leaf record can hold ({max})")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The most the encoding allows.
        max: usize,
    },
    /// The record's index does not follow the previous entry's.
    #[error("entry {index}: chain broken, expected index {expected}")]
    ChainIndex {
        /// The record's index.
        index: u64,
        /// The index that follows the previous entry.
        expected: u64,
    },
    /// The record's previous leaf hash is not the previous entry's leaf hash.
    #[error("entry {index}: chain broken, previous leaf hash is {found}, entry {prev} hashes to {expected}", prev = index.wrapping_sub(1))]
    ChainHash {
        /// The record's index.
        index: u64,
        /// What the record says.
        found: Hash,
        /// The actual leaf hash of the previous entry.
        expected: Hash,
    },
}

fn checked_len(field: &'static str, len: usize, max: usize) -> Result<(), RecordError> {
    if len > max {
        return Err(RecordError::TooLong { field, len, max });
    }
    Ok(())
}

impl LeafRecord {
    /// A record for entry `index`; errors when a field of the envelope is longer than the
    /// encoding can say (a 64 KiB type, a 4 GiB payload, 65,536 signatures).
    pub fn new(
        index: u64,
        integrated_time_nanos: i64,
        previous_leaf_hash: Hash,
        kind: EntryKind,
        envelope: Envelope,
    ) -> Result<LeafRecord, RecordError> {
        check_fits(&envelope)?;
        Ok(LeafRecord {
            index,
            integrated_time_nanos,
            previous_leaf_hash,
            kind,
            envelope,
        })
    }

    /// The entry's position in the log, from 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// When the sequencer integrated the entry: nanoseconds since the Unix epoch, UTC.
    pub fn integrated_time_nanos(&self) -> i64 {
        self.integrated_time_nanos
    }

    /// The leaf hash of entry `index - 1`, or all zeros for entry 0.
    pub fn previous_leaf_hash(&self) -> Hash {
        self.previous_leaf_hash
    }

    /// What the entry holds.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The envelope as received.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Gives up the record for its envelope.
    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }

    /// The canonical encoding (see `docs/FORMAT.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + encoded_envelope_len(&self.envelope));
        out.extend_from_slice(&MAGIC);
        out.push(match self.envelope.sigstore {
            None => VERSION,
            Some(_) => VERSION_SIGSTORE,
        });
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.integrated_time_nanos.to_be_bytes());
        out.extend_from_slice(self.previous_leaf_hash.as_bytes());
        out.push(self.kind.code());
        encode_envelope(&self.envelope, &mut out);
        out
    }

    /// Decodes a complete record; refuses truncation, trailing bytes and unknown versions.
    pub fn decode(bytes: &[u8]) -> Result<LeafRecord, RecordError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic: [u8; 4] = r.array("magic")?;
        if magic != MAGIC {
            return Err(RecordError::Magic(magic));
        }
        let version = r.u8("version")?;
        if version != VERSION && version != VERSION_SIGSTORE {
            return Err(RecordError::Version(version));
        }
        let index = u64::from_be_bytes(r.array("index")?);
        let integrated_time_nanos = i64::from_be_bytes(r.array("integrated time")?);
        let previous_leaf_hash = Hash(r.array("previous leaf hash")?);
        let kind_code = r.u8("entry kind")?;
        let kind = EntryKind::from_code(kind_code).ok_or(RecordError::Kind(kind_code))?;
        let mut envelope = decode_envelope(&mut r)?;
        if version == VERSION_SIGSTORE {
            let len = u32::from_be_bytes(r.array("Sigstore material length")?) as usize;
            if len == 0 {
                return Err(RecordError::EmptySigstore);
            }
            envelope.sigstore = Some(r.take("Sigstore material", len)?.to_vec());
        }
        if r.pos != bytes.len() {
            return Err(RecordError::Trailing(bytes.len() - r.pos));
        }
        Ok(LeafRecord {
            index,
            integrated_time_nanos,
            previous_leaf_hash,
            kind,
            envelope,
        })
    }

    /// The RFC 6962 leaf hash of this record's encoding.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.encode())
    }

    /// Checks the hash chain: this record comes right after the entry at `previous_index`
    /// whose leaf hash is `previous_leaf_hash`; for entry 0 pass `None`.
    pub fn check_follows(&self, previous: Option<(u64, Hash)>) -> Result<(), RecordError> {
        let (expected_index, expected_hash) = match previous {
            None => (0, Hash::ZERO),
            Some((index, hash)) => (index.wrapping_add(1), hash),
        };
        if self.index != expected_index {
            return Err(RecordError::ChainIndex {
                index: self.index,
                expected: expected_index,
            });
        }
        if self.previous_leaf_hash != expected_hash {
            return Err(RecordError::ChainHash {
                index: self.index,
                found: self.previous_leaf_hash,
                expected: expected_hash,
            });
        }
        Ok(())
    }
}

/// The dedupe key: what Evident uses to recognise a resubmission. SHA-256 over a domain
/// tag, `SHA-256(PAE(payloadType, payload))` (the bytes every signature covers) and the
/// fingerprints of the credentials whose signatures counted for the entry
/// ([`crate::registry::Credential::fingerprint`]: the raw bytes of an Ed25519 key), sorted
/// and without repeats. Keyid hints and signatures that did not count are left out on purpose: changing
/// a hint or adding a junk signature must not turn old evidence into a new entry with a
/// fresh time. The keys are in on purpose: the same statement signed by someone else is
/// their evidence, not a retry, and must never be answered with another signer's entry.
pub fn dedupe_key(envelope: &Envelope, signer_keys: &[[u8; 32]]) -> Hash {
    let mut keys: Vec<[u8; 32]> = signer_keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let mut bytes = Vec::with_capacity(DEDUPE_TAG.len() + 32 + 32 * keys.len());
    bytes.extend_from_slice(DEDUPE_TAG);
    bytes.extend_from_slice(Hash::sha256(&envelope.pae()).as_bytes());
    for key in &keys {
        bytes.extend_from_slice(key);
    }
    Hash::sha256(&bytes)
}

/// Domain separation of [`dedupe_key`].
const DEDUPE_TAG: &[u8] = b"evident dedupe v2\n";

/// The length of an envelope's encoding in a leaf record: what the size limit counts.
pub fn encoded_envelope_len(envelope: &Envelope) -> usize {
    2 + envelope.payload_type.len()
        + 4
        + envelope.payload.len()
        + 2
        + envelope
            .signatures
            .iter()
            .map(|s| 2 + s.keyid.len() + 2 + s.sig.len())
            .sum::<usize>()
        + envelope.sigstore.as_ref().map_or(0, |m| 4 + m.len())
}

const U16: usize = u16::MAX as usize;
const U32: usize = u32::MAX as usize;

/// Whether every field of `envelope` fits the leaf record's length prefixes (a 64 KiB
/// payload type, key id or signature, a 4 GiB payload, 65,535 signatures): what
/// [`LeafRecord::new`] refuses otherwise.
pub fn check_fits(envelope: &Envelope) -> Result<(), RecordError> {
    checked_len("payload type", envelope.payload_type.len(), U16)?;
    checked_len("payload", envelope.payload.len(), U32)?;
    checked_len("signature count", envelope.signatures.len(), U16)?;
    for signature in &envelope.signatures {
        checked_len("signature keyid", signature.keyid.len(), U16)?;
        checked_len("signature", signature.sig.len(), U16)?;
    }
    if let Some(material) = &envelope.sigstore {
        checked_len("Sigstore material", material.len(), U32)?;
        if material.is_empty() {
            return Err(RecordError::EmptySigstore);
        }
    }
    Ok(())
}

/// An envelope alone in the leaf record's encoding (no header): how an envelope travels
/// between instances of one log. `check_fits(envelope)` must hold.
pub fn envelope_to_bytes(envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_envelope_len(envelope));
    encode_envelope(envelope, &mut out);
    out
}

/// Decodes [`envelope_to_bytes`]' encoding; refuses truncation and trailing bytes. The
/// Sigstore material, if any, follows the signatures (length-prefixed, as in a record).
pub fn envelope_from_bytes(bytes: &[u8]) -> Result<Envelope, RecordError> {
    let mut r = Reader { bytes, pos: 0 };
    let mut envelope = decode_envelope(&mut r)?;
    if r.remaining() != 0 {
        let len = u32::from_be_bytes(r.array("Sigstore material length")?) as usize;
        envelope.sigstore = Some(r.take("Sigstore material", len)?.to_vec());
    }
    if r.remaining() != 0 {
        return Err(RecordError::Trailing(r.remaining()));
    }
    Ok(envelope)
}

/// Invariant: `check_fits(envelope)` holds, so every length fits its prefix.
fn encode_envelope(envelope: &Envelope, out: &mut Vec<u8>) {
    out.extend_from_slice(&(envelope.payload_type.len() as u16).to_be_bytes());
    out.extend_from_slice(envelope.payload_type.as_bytes());
    out.extend_from_slice(&(envelope.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&envelope.payload);
    out.extend_from_slice(&(envelope.signatures.len() as u16).to_be_bytes());
    for signature in &envelope.signatures {
        out.extend_from_slice(&(signature.keyid.len() as u16).to_be_bytes());
        out.extend_from_slice(signature.keyid.as_bytes());
        out.extend_from_slice(&(signature.sig.len() as u16).to_be_bytes());
        out.extend_from_slice(&signature.sig);
    }
    if let Some(material) = &envelope.sigstore {
        out.extend_from_slice(&(material.len() as u32).to_be_bytes());
        out.extend_from_slice(material);
    }
}

fn decode_envelope(r: &mut Reader<'_>) -> Result<Envelope, RecordError> {
    let payload_type = r.string16("payload type")?;
    let payload_len = u32::from_be_bytes(r.array("payload length")?) as usize;
    let payload = r.take("payload", payload_len)?.to_vec();
    let count = u16::from_be_bytes(r.array("signature count")?);
    if count == 0 {
        return Err(RecordError::NoSignatures);
    }
    // Each signature takes at least 4 bytes: never reserve more than the input can hold.
    let mut signatures = Vec::with_capacity(usize::from(count).min(r.remaining() / 4));
    for _ in 0..count {
        let keyid = r.string16("signature keyid")?;
        let sig_len = usize::from(u16::from_be_bytes(r.array("signature length")?));
        let sig = r.take("signature", sig_len)?.to_vec();
        signatures.push(Signature { sig, keyid });
    }
    Ok(Envelope {
        payload,
        payload_type,
        signatures,
        sigstore: None,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], RecordError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(RecordError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                left,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let slice = self.take(field, N)?;
        Ok(slice.try_into().expect("take returned exactly N bytes"))
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, RecordError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn string16(&mut self, field: &'static str) -> Result<String, RecordError> {
        let len = usize::from(u16::from_be_bytes(self.array(field)?));
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Utf8(field))
    }
}

#[cfg(test)]
mod envelope_bytes_tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn an_envelope_alone_round_trips_with_and_without_sigstore_material() {
        let mut envelope = Envelope {
            payload: b"{}".to_vec(),
            payload_type: "application/vnd.in-toto+json".into(),
            signatures: vec![Signature {
                sig: vec![7; 64],
                keyid: "k".into(),
            }],
            sigstore: None,
        };
        for material in [None, Some(vec![1, 2, 3])] {
            envelope.sigstore = material;
            let bytes = envelope_to_bytes(&envelope);
            assert_eq!(bytes.len(), encoded_envelope_len(&envelope));
            assert_eq!(envelope_from_bytes(&bytes).unwrap(), envelope);
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(envelope_from_bytes(&longer).is_err());
            assert!(envelope_from_bytes(&bytes[..bytes.len() - 1]).is_err());
        }
    }
}
