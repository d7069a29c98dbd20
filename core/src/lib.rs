//! The rules of the Evident ledger, shared by the server and every verifier.
//!
//! Pure and synchronous: no I/O, no clock (times are passed in), no async. Everything here
//! is deterministic and checked against independent test vectors.
//!
//! - [`dsse`]: DSSE envelopes, PAE, Ed25519 signing and verification.
//! - [`statement`]: in-toto Statement v1 parsing with typed, validated digests.
//! - [`record`]: the leaf record encoding and its hash chain.
//! - [`merkle`]: RFC 6962 hashing, roots, inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes and checkpoints.
//! - [`cosign`]: witness cosignatures (C2SP tlog-cosignature) and K-of-N witness policies.
//! - [`tiles`]: C2SP tlog-tiles: tile and entry bundle paths, which tiles a tree has, tile
//!   contents, and a subtree source over tiles fetched from an untrusted place.
//! - [`tlog_proof`]: C2SP tlog-proof, the offline proof of an entry's inclusion under a
//!   witnessed checkpoint.
//! - [`receipt`]: receipts a submitter verifies offline.
//! - [`registry`]: the trust registry, rebuilt from registry entries.
//! - [`names`]: the one check for names the server indexes, logs and prints.
//! - [`audit`]: replaying a whole log from its genesis, with the facts each entry indexes.
//! - [`policy`], [`predicates`], [`bundle`]: release policies, the predicates they read, and
//!   evidence bundles, the only way to verified evidence.
//! - [`vindex`]: the verifiable index: posting lists committed by each checkpoint, and
//!   the proofs that an answer for one key left nothing out.
//! - [`memlog`]: an in-memory log that makes real bundles, for tests and benchmarks.

#![forbid(unsafe_code)]

pub mod audit;
pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod ecdsa;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod frameworks;
pub mod hash;
pub mod keys;
pub mod kinds;
pub mod memlog;
pub mod merkle;
pub mod names;
pub mod note;
pub mod policy;
pub mod predicates;
pub mod receipt;
pub mod record;
pub mod registry;
pub mod sigstore;
pub mod statement;
pub mod tiles;
pub mod tlog_proof;
pub mod vindex;

pub use hash::Hash;
pub use keys::{PublicKey, SigningKey};
