//! `vectors/merkle/testdata/{inclusion,consistency}` (transparency-dev/merkle), and proofs
//! generated from a subtree source against RFC 6962's definition.

use evident_core::Hash;
use evident_core::merkle::{
    self, Frontier, MemoryTree, SubtreeSource, consistency_proof, inclusion_proof, leaf_hash,
    node_hash, verify_consistency, verify_inclusion,
};

use crate::harness::{json_files, vector_hash, vector_root};

/// A proof's hashes; `null` is an empty proof. Errors when an element is not 32 bytes.
fn hashes(v: &serde_json::Value) -> Result<Vec<Hash>, evident_core::hash::HashError> {
    v.as_array()
        .map(|list| {
            list.iter()
                .map(|h| vector_hash(h.as_str().expect("base64 string")))
                .collect()
        })
        .unwrap_or(Ok(Vec::new()))
}

#[test]
fn every_inclusion_vector_passes_or_fails_as_it_says() {
    let vectors = json_files("merkle/testdata/inclusion");
    assert!(vectors.len() > 90, "found {}", vectors.len());
    for (name, v) in vectors {
        let parsed = (|| {
            Ok::<_, evident_core::hash::HashError>((
                vector_hash(v["leafHash"].as_str().expect("leafHash"))?,
                hashes(&v["proof"])?,
                vector_hash(v["root"].as_str().expect("root"))?,
            ))
        })();
        let result = parsed.map(|(leaf, proof, root)| {
            verify_inclusion(
                v["leafIdx"].as_u64().expect("leafIdx"),
                v["treeSize"].as_u64().expect("treeSize"),
                &leaf,
                &proof,
                &root,
            )
        });
        let ok = matches!(result, Ok(Ok(())));
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        assert_eq!(!ok, want_err, "{name}: {result:?}");
    }
}

#[test]
fn every_consistency_vector_passes_or_fails_as_it_says() {
    let vectors = json_files("merkle/testdata/consistency");
    assert!(vectors.len() > 90, "found {}", vectors.len());
    for (name, v) in vectors {
        let result = hashes(&v["proof"]).map(|proof| {
            verify_consistency(
                v["size1"].as_u64().expect("size1"),
                v["size2"].as_u64().expect("size2"),
                &proof,
                &vector_root(v["root1"].as_str().expect("root1")),
                &vector_root(v["root2"].as_str().expect("root2")),
            )
        });
        let ok = matches!(result, Ok(Ok(())));
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        assert_eq!(!ok, want_err, "{name}: {result:?}");
    }
}

/// RFC 6962's MTH, written from the definition, as the reference for everything else.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

fn tree(n: u64) -> (MemoryTree, Vec<Hash>) {
    let mut tree = MemoryTree::new();
    let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    for leaf in &leaves {
        tree.push(*leaf);
    }
    (tree, leaves)
}

#[test]
fn roots_from_the_source_and_the_frontier_match_the_definition() {
    let (tree, leaves) = tree(70);
    for size in 0..=70u64 {
        let want = reference_root(&leaves[..size as usize]);
        assert_eq!(merkle::root(&tree, size).unwrap(), want, "size {size}");
        let frontier = Frontier::from_source(&tree, size).unwrap();
        assert_eq!(frontier.root(), want, "frontier at size {size}");
    }
}

#[test]
fn the_empty_tree_root_is_sha256_of_nothing() {
    assert_eq!(
        merkle::empty_root().to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(MemoryTree::new().root(), merkle::empty_root());
}

#[test]
fn the_rfc6962_example_tree_of_seven_leaves() {
    // The seven-leaf tree of RFC 6962 section 2.1.3: the inclusion proof of d0 is [b, h, l]
    // and of d3 is [c, g, l]; the consistency proof between sizes 3 and 7 is [c, d, g, l].
    let (tree, leaves) = tree(7);
    let h = |a: usize, b: usize| reference_root(&leaves[a..b]);
    assert_eq!(
        inclusion_proof(&tree, 0, 7).unwrap(),
        vec![leaves[1], h(2, 4), h(4, 7)]
    );
    assert_eq!(
        inclusion_proof(&tree, 3, 7).unwrap(),
        vec![leaves[2], h(0, 2), h(4, 7)]
    );
    assert_eq!(
        inclusion_proof(&tree, 6, 7).unwrap(),
        vec![h(4, 6), h(0, 4)]
    );
    assert_eq!(
        consistency_proof(&tree, 3, 7).unwrap(),
        vec![leaves[2], leaves[3], h(0, 2), h(4, 7)]
    );
    assert_eq!(consistency_proof(&tree, 4, 7).unwrap(), vec![h(4, 7)]);
    assert_eq!(
        consistency_proof(&tree, 6, 7).unwrap(),
        vec![h(4, 6), leaves[6], h(0, 4)]
    );
}

#[test]
fn proofs_outside_the_tree_are_refused() {
    let (tree, _) = tree(5);
    assert!(inclusion_proof(&tree, 5, 5).is_err());
    assert!(inclusion_proof(&tree, 0, 0).is_err());
    assert!(consistency_proof(&tree, 4, 3).is_err());
    // Asking the source for a subtree beyond what it holds surfaces the source's error.
    assert!(matches!(
        inclusion_proof(&tree, 0, 6),
        Err(merkle::ProofError::Source(_))
    ));
}

/// Counts reads, to pin down the O(log n) cost the store relies on.
struct Counting<'a> {
    tree: &'a MemoryTree,
    reads: std::cell::Cell<usize>,
}

impl SubtreeSource for Counting<'_> {
    type Error = merkle::MissingSubtree;
    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.tree.subtree_hash(level, index)
    }
}

#[test]
fn proofs_and_roots_read_a_logarithmic_number_of_subtrees() {
    let (tree, _) = tree(5000);
    let source = Counting {
        tree: &tree,
        reads: Default::default(),
    };
    let bound = 2 * 13 + 2; // 2 * ceil(log2(5000)) + slack
    for (index, size) in [
        (0, 5000),
        (4095, 4999),
        (2500, 4097),
        (4999, 5000),
        (17, 3333),
    ] {
        source.reads.set(0);
        inclusion_proof(&source, index, size).unwrap();
        assert!(
            source.reads.get() <= bound,
            "inclusion {index}/{size}: {}",
            source.reads.get()
        );
        source.reads.set(0);
        consistency_proof(&source, index + 1, size).unwrap();
        assert!(
            source.reads.get() <= bound,
            "consistency {index}/{size}: {}",
            source.reads.get()
        );
        source.reads.set(0);
        merkle::root(&source, size).unwrap();
        assert!(
            source.reads.get() <= 13,
            "root {size}: {}",
            source.reads.get()
        );
    }
}

#[test]
fn sizes_that_use_the_top_bit_are_refused_without_overflow() {
    // Found by the `proofs` fuzz target: 2^63 + 1 leaves made the proof-shape arithmetic
    // shift by 64.
    let size = (1u64 << 63) + 1;
    let zero = Hash([0; 32]);
    assert!(verify_inclusion(0, size, &zero, &[], &zero).is_err());
    assert!(verify_inclusion(size - 1, size, &zero, &[], &zero).is_err());
    assert!(verify_consistency(1, size, &[], &zero, &zero).is_err());
    assert!(verify_consistency(1, u64::MAX, &[zero], &zero, &zero).is_err());
    assert!(verify_inclusion(u64::MAX - 1, u64::MAX, &zero, &[zero; 64], &zero).is_err());
}

/// A source that holds only some subtrees and fails on any other read.
struct Only(std::collections::HashMap<(u32, u64), Hash>);

impl SubtreeSource for Only {
    type Error = (u32, u64);
    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.0.get(&(level, index)).copied().ok_or((level, index))
    }
}

proptest::proptest! {
    /// The reads a proof is said to make are exactly the subtrees it needs: a source that
    /// holds only those gives the same proof as the whole tree.
    #[test]
    fn the_reads_of_a_proof_are_all_it_needs(size in 1u64..600, a in 0u64..600, b in 0u64..600) {
        let (tree, _) = tree(size);
        let index = a % size;
        let wanted = merkle::inclusion_proof_reads(index, size);
        let only = Only(wanted.iter().map(|&(l, i)| ((l, i), tree.subtree_hash(l, i).unwrap())).collect());
        proptest::prop_assert_eq!(
            inclusion_proof(&only, index, size).unwrap(),
            inclusion_proof(&tree, index, size).unwrap()
        );
        let old = 1 + b % size;
        let wanted = merkle::consistency_proof_reads(old, size);
        let only = Only(wanted.iter().map(|&(l, i)| ((l, i), tree.subtree_hash(l, i).unwrap())).collect());
        proptest::prop_assert_eq!(
            consistency_proof(&only, old, size).unwrap(),
            consistency_proof(&tree, old, size).unwrap()
        );
    }

    /// A writer that appends leaves to a frontier can prove each new leaf in the new tree
    /// from the old frontier's nodes and the nodes the appends completed, reading nothing.
    #[test]
    fn new_leaves_are_proven_from_the_old_frontier_and_the_new_nodes(old in 0u64..400, added in 1u64..200) {
        let (tree, leaves) = tree(old + added);
        let mut frontier = Frontier::new();
        for leaf in &leaves[..old as usize] {
            frontier.append(*leaf);
        }
        let mut known: std::collections::HashMap<(u32, u64), Hash> = frontier
            .nodes()
            .into_iter()
            .map(|n| ((n.level, n.index), n.hash))
            .collect();
        for leaf in &leaves[old as usize..] {
            known.extend(frontier.append(*leaf).into_iter().map(|n| ((n.level, n.index), n.hash)));
        }
        let only = Only(known);
        let size = old + added;
        for index in old..size {
            proptest::prop_assert_eq!(
                inclusion_proof(&only, index, size),
                Ok(inclusion_proof(&tree, index, size).unwrap())
            );
        }
    }
}
