//! `verify_inclusion` and `verify_consistency` never panic, whatever the sizes and hashes.
#![no_main]

use arbitrary::Arbitrary;
use evident_core::Hash;
use evident_core::merkle::{verify_consistency, verify_inclusion};
use libfuzzer_sys::fuzz_target;

/// The longest proof tried: a valid one has at most 64 hashes.
const MAX_PROOF: usize = 70;

#[derive(Debug, Arbitrary)]
struct Input {
    index: u64,
    size: u64,
    old: u64,
    new: u64,
    leaf: [u8; 32],
    root: [u8; 32],
    old_root: [u8; 32],
    new_root: [u8; 32],
    proof: Vec<[u8; 32]>,
}

fuzz_target!(|input: Input| {
    let proof: Vec<Hash> = input.proof.into_iter().take(MAX_PROOF).map(Hash).collect();
    let _ = verify_inclusion(
        input.index,
        input.size,
        &Hash(input.leaf),
        &proof,
        &Hash(input.root),
    );
    let _ = verify_consistency(
        input.old,
        input.new,
        &proof,
        &Hash(input.old_root),
        &Hash(input.new_root),
    );
});
