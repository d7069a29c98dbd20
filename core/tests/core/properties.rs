//! Property tests of the Merkle algebra: every proof the code makes verifies, and any
//! change to a proof, root, index or size makes verification fail.
//!
//! A changed tree size is checked against the root of the tree of that size, as a verifier
//! would see it in a signed checkpoint: RFC 6962 proofs do not bind the size by themselves
//! (the proof of leaf 0 in trees of 1025 and 1027 leaves has the same shape), the signed
//! (size, root) pair does.

use std::sync::LazyLock;

use evident_core::Hash;
use evident_core::merkle::{
    MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};
use proptest::prelude::*;

/// Trees up to this size are tested; bit flips of a size stay below `2 * MAX`.
const MAX: u64 = 3000;

static TREE: LazyLock<MemoryTree> = LazyLock::new(|| {
    let mut tree = MemoryTree::new();
    for i in 0..2 * 4096u64 {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    tree
});

fn root_of(size: u64) -> Hash {
    root(&*TREE, size).expect("size within the test tree")
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut out = *hash;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inclusion_proofs_verify_and_any_change_breaks_them(
        size in 1..MAX,
        index_seed in any::<u64>(),
        bit in 0usize..256,
        which in any::<prop::sample::Index>(),
        number_bit in 0u32..12,
    ) {
        let index = index_seed % size;
        let tree = &*TREE;
        let root_hash = root_of(size);
        let leaf = leaf_hash(&index.to_le_bytes());
        let proof = inclusion_proof(tree, index, size).unwrap();
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root_hash).is_ok());

        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = which.index(bad.len());
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_inclusion(index, size, &leaf, &bad, &root_hash).is_err());
        }
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &flip(&root_hash, bit)).is_err());
        prop_assert!(verify_inclusion(index, size, &flip(&leaf, bit), &proof, &root_hash).is_err());

        let other_index = index ^ (1 << number_bit);
        prop_assert!(verify_inclusion(other_index, size, &leaf, &proof, &root_hash).is_err());
        let other_size = size ^ (1 << number_bit);
        if other_size > 0 {
            prop_assert!(
                verify_inclusion(index, other_size, &leaf, &proof, &root_of(other_size)).is_err()
            );
        }

        let mut longer = proof.clone();
        longer.push(leaf);
        prop_assert!(verify_inclusion(index, size, &leaf, &longer, &root_hash).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(index, size, &leaf, &proof[1..], &root_hash).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_any_change_breaks_them(
        new in 1..MAX,
        old_seed in any::<u64>(),
        bit in 0usize..256,
        which in any::<prop::sample::Index>(),
        number_bit in 0u32..12,
    ) {
        let old = 1 + old_seed % new;
        let old_root = root_of(old);
        let new_root = root_of(new);
        let proof = consistency_proof(&*TREE, old, new).unwrap();
        prop_assert!(verify_consistency(old, new, &proof, &old_root, &new_root).is_ok());

        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = which.index(bad.len());
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(old, new, &bad, &old_root, &new_root).is_err());
        }
        prop_assert!(verify_consistency(old, new, &proof, &flip(&old_root, bit), &new_root).is_err());
        prop_assert!(verify_consistency(old, new, &proof, &old_root, &flip(&new_root, bit)).is_err());

        let other_old = old ^ (1 << number_bit);
        if other_old > 0 {
            prop_assert!(
                verify_consistency(other_old, new, &proof, &root_of(other_old), &new_root).is_err()
            );
        }
        let other_new = new ^ (1 << number_bit);
        prop_assert!(
            verify_consistency(old, other_new, &proof, &old_root, &root_of(other_new)).is_err()
        );
    }
}
