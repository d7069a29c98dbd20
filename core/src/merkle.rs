//! The RFC 6962 / RFC 9162 Merkle tree: hashing, roots, inclusion and consistency proofs.
//!
//! Proofs are generated from a [`SubtreeSource`], which returns the hash of any complete,
//! aligned subtree (2^level leaves starting at a multiple of 2^level). A store that keeps
//! those hashes answers a root or a proof for any tree size with O(log n) reads. The
//! [`Frontier`] is the right edge of the tree: all a writer needs to append leaves and
//! compute the new root without reading anything.

use sha2::{Digest as _, Sha256};

use crate::hash::Hash;

/// `SHA-256(0x00 ‖ data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Hash::sha256(b"")
}

/// Why a proof could not be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError<E = std::convert::Infallible> {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes of a consistency proof are not `0 < old <= new`.
    #[error("tree sizes {old} and {new} do not allow a consistency proof")]
    Sizes {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for its sizes.
    #[error("proof has {got} hash(es), {want} expected for these sizes")]
    Length {
        /// Hashes in the proof.
        got: usize,
        /// Hashes a valid proof has.
        want: usize,
    },
    /// The proof leads to a different root.
    #[error("proof leads to root {computed}, not the expected {expected}")]
    RootMismatch {
        /// The root the proof computes.
        computed: Hash,
        /// The root it was checked against.
        expected: Hash,
    },
    /// The subtree source failed.
    #[error("reading subtree hashes: {0}")]
    Source(E),
}

/// Where proofs get the hashes of complete subtrees.
pub trait SubtreeSource {
    /// The error of a failed read.
    type Error;

    /// The hash of the complete subtree of `2^level` leaves that starts at leaf
    /// `index << level`. Only asked for subtrees that lie wholly inside the tree.
    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The root of the first `size` leaves.
pub fn root<S: SubtreeSource>(source: &S, size: u64) -> Result<Hash, ProofError<S::Error>> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(source, 0, size)
}

/// The hash of leaves `[start, end)`, where the range is a node of the tree of size `end`
/// (`start` is aligned to the largest power of two not above `end - start`).
fn range_hash<S: SubtreeSource>(
    source: &S,
    start: u64,
    end: u64,
) -> Result<Hash, ProofError<S::Error>> {
    let len = end - start;
    if len.is_power_of_two() && start % len == 0 {
        let level = len.trailing_zeros();
        return source
            .subtree_hash(level, start >> level)
            .map_err(ProofError::Source);
    }
    let k = split_point(len);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The largest power of two smaller than `n` (RFC 6962's k), for n >= 2.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The inclusion proof of leaf `index` in the tree of size `size` (RFC 6962 PATH), ordered
/// from the leaf's sibling up to the root's child.
pub fn inclusion_proof<S: SubtreeSource>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(source, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<S: SubtreeSource>(
    source: &S,
    index: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), ProofError<S::Error>> {
    let len = end - start;
    if len <= 1 {
        return Ok(());
    }
    let k = split_point(len);
    if index < start + k {
        path(source, index, start, start + k, proof)?;
        proof.push(range_hash(source, start + k, end)?);
    } else {
        path(source, index, start + k, end, proof)?;
        proof.push(range_hash(source, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of sizes `old` and `new` (RFC 6962 PROOF).
/// Empty when `old` equals `new`; refused when `old` is 0 (there is nothing to prove).
pub fn consistency_proof<S: SubtreeSource>(
    source: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old == 0 || old > new {
        return Err(ProofError::Sizes { old, new });
    }
    let mut proof = Vec::new();
    if old == new {
        return Ok(proof);
    }
    subproof(source, old, 0, new, true, &mut proof)?;
    Ok(proof)
}

/// The complete subtrees (`(level, index)`, in the order read) that
/// [`inclusion_proof`] of leaf `index` in the tree of `size` reads: a store far away
/// fetches them in one request, then answers the proof from memory. Empty when the index
/// is not in the tree.
pub fn inclusion_proof_reads(index: u64, size: u64) -> Vec<(u32, u64)> {
    let reads = Reads::default();
    let _ = inclusion_proof(&reads, index, size);
    reads.0.into_inner()
}

/// The complete subtrees (`(level, index)`, in the order read) that
/// [`consistency_proof`] between the trees of sizes `old` and `new` reads.
pub fn consistency_proof_reads(old: u64, new: u64) -> Vec<(u32, u64)> {
    let reads = Reads::default();
    let _ = consistency_proof(&reads, old, new);
    reads.0.into_inner()
}

/// A source that answers every read with a zero hash and remembers what was read: the
/// shape of a proof does not depend on the hashes in it.
#[derive(Default)]
struct Reads(std::cell::RefCell<Vec<(u32, u64)>>);

impl SubtreeSource for Reads {
    type Error = std::convert::Infallible;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.0.borrow_mut().push((level, index));
        Ok(Hash([0; 32]))
    }
}

/// RFC 6962 SUBPROOF(m, D[start:end], b).
fn subproof<S: SubtreeSource>(
    source: &S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    proof: &mut Vec<Hash>,
) -> Result<(), ProofError<S::Error>> {
    let n = end - start;
    if m == n {
        if !whole {
            proof.push(range_hash(source, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(source, m, start, start + k, whole, proof)?;
        proof.push(range_hash(source, start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, proof)?;
        proof.push(range_hash(source, start, start + k)?);
    }
    Ok(())
}

/// The proof that the consecutive leaves `[start, end)` are in the tree of size `size`: the
/// hashes of the nodes wholly outside the range that the root is made of, left to right.
/// With the range's leaves it gives the root ([`root_from_range`]); it holds at most two
/// hashes per level, whatever the range's length.
pub fn range_proof<S: SubtreeSource>(
    source: &S,
    start: u64,
    end: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if start >= end || end > size {
        return Err(ProofError::IndexOutOfRange {
            index: end.max(start).saturating_sub(1).max(start),
            size,
        });
    }
    let mut proof = Vec::new();
    range_path(source, 0, size, start, end, &mut proof)?;
    Ok(proof)
}

/// The hashes outside `[start, end)` under the node `[lo, hi)`, left to right.
fn range_path<S: SubtreeSource>(
    source: &S,
    lo: u64,
    hi: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), ProofError<S::Error>> {
    if end <= lo || hi <= start {
        proof.push(range_hash(source, lo, hi)?);
        return Ok(());
    }
    if start <= lo && hi <= end {
        return Ok(());
    }
    let k = split_point(hi - lo);
    range_path(source, lo, lo + k, start, end, proof)?;
    range_path(source, lo + k, hi, start, end, proof)
}

/// How many hashes [`range_proof`] of `[start, end)` in a tree of `size` holds.
pub fn range_proof_len(start: u64, end: u64, size: u64) -> usize {
    fn count(lo: u64, hi: u64, start: u64, end: u64) -> usize {
        if end <= lo || hi <= start {
            return 1;
        }
        if start <= lo && hi <= end {
            return 0;
        }
        let k = split_point(hi - lo);
        count(lo, lo + k, start, end) + count(lo + k, hi, start, end)
    }
    if start >= end || end > size {
        return 0;
    }
    count(0, size, start, end)
}

/// The root that the consecutive leaves `leaves`, from leaf `start` on, and their
/// [`range_proof`] lead to in a tree of size `size`.
pub fn root_from_range(
    start: u64,
    leaves: &[Hash],
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    let end = start.checked_add(leaves.len() as u64);
    let Some(end) = end.filter(|&e| e > start && e <= size) else {
        return Err(ProofError::IndexOutOfRange {
            index: start.saturating_add(leaves.len().max(1) as u64 - 1),
            size,
        });
    };
    let want = range_proof_len(start, end, size);
    if proof.len() != want {
        return Err(ProofError::Length {
            got: proof.len(),
            want,
        });
    }
    let mut hashes = proof.iter();
    Ok(range_root(0, size, start, leaves, &mut hashes))
}

/// The hash of the node `[lo, hi)` from the leaves `[start, start + leaves.len())` and the
/// proof's hashes for the nodes outside them (enough of them, counted beforehand).
fn range_root(
    lo: u64,
    hi: u64,
    start: u64,
    leaves: &[Hash],
    proof: &mut std::slice::Iter<'_, Hash>,
) -> Hash {
    let end = start + leaves.len() as u64;
    if end <= lo || hi <= start {
        return *proof.next().expect("the proof's length was checked");
    }
    if hi - lo == 1 {
        return leaves[(lo - start) as usize];
    }
    let k = split_point(hi - lo);
    let left = range_root(lo, lo + k, start, leaves, proof);
    let right = range_root(lo + k, hi, start, leaves, proof);
    node_hash(&left, &right)
}

/// Checks that `proof` proves leaf `index` with hash `leaf` is in the tree of size `size`
/// with root `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(index, size, leaf, proof)?;
    matches(computed, root)
}

/// The root that an inclusion proof leads to.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::Length {
            got: proof.len(),
            want: inner + border,
        });
    }
    let hash = chain_inner(*leaf, &proof[..inner], index);
    Ok(chain_border_right(hash, &proof[inner..]))
}

/// Checks that `proof` shows the tree of size `old` with root `old_root` is a prefix of the
/// tree of size `new` with root `new_root` (RFC 9162 section 2.1.4.2). Requires
/// `0 < old <= new`; when `old == new` the proof is empty and the roots must be equal.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    // RFC 9162 defines consistency for 0 < old <= new: every tree extends the empty tree,
    // so a proof from size 0 proves nothing and is refused rather than trivially accepted.
    if old == 0 || old > new {
        return Err(ProofError::Sizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                got: proof.len(),
                want: 0,
            });
        }
        return matches(*old_root, new_root);
    }
    // 0 < old < new. The proof is the tail of the inclusion proof of leaf old-1 in the
    // new tree, from the level of the largest complete subtree the two trees share.
    let (inner, border) = decompose(old - 1, new);
    let shift = old.trailing_zeros() as usize;
    let inner = inner - shift;
    let (seed, rest) = if old == 1 << shift {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(ProofError::Length {
                    got: 0,
                    want: 1 + inner + border,
                });
            }
        }
    };
    if rest.len() != inner + border {
        let extra = proof.len() - rest.len();
        return Err(ProofError::Length {
            got: proof.len(),
            want: extra + inner + border,
        });
    }
    let mask = (old - 1) >> shift;
    let old_computed = chain_border_right(
        chain_inner_right(seed, &rest[..inner], mask),
        &rest[inner..],
    );
    matches(old_computed, old_root)?;
    let new_computed = chain_border_right(chain_inner(seed, &rest[..inner], mask), &rest[inner..]);
    matches(new_computed, new_root)
}

fn matches(computed: Hash, expected: &Hash) -> Result<(), ProofError> {
    if computed != *expected {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *expected,
        });
    }
    Ok(())
}

/// Splits the inclusion proof of `index` in a tree of `size` into the hashes below the
/// point where the leaf's path leaves the tree's right border (`inner`) and those on it.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    // `inner` is 64 when the sizes use the top bit; nothing is left above it then.
    let border = index.checked_shr(inner).unwrap_or(0).count_ones() as usize;
    let inner = inner as usize;
    (inner, border)
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

/// A hash of a complete subtree that an append made: what a store must write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// The subtree covers `2^level` leaves.
    pub level: u32,
    /// It starts at leaf `index << level`.
    pub index: u64,
    /// Its hash.
    pub hash: Hash,
}

/// The right edge of a tree: the roots of the complete subtrees that make up its first
/// `size` leaves, largest first. Enough to append and to compute the root.
///
/// Invariant: `hashes[i]` is the root of the subtree for the i-th set bit of `size`,
/// counted from the most significant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Reads the frontier of the tree of `size` from a source: one read per set bit.
    pub fn from_source<S: SubtreeSource>(
        source: &S,
        size: u64,
    ) -> Result<Frontier, ProofError<S::Error>> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                hashes.push(
                    source
                        .subtree_hash(level, start >> level)
                        .map_err(ProofError::Source)?,
                );
                start += 1 << level;
            }
        }
        Ok(Frontier { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier's subtrees as nodes of the tree (level, index and hash), largest
    /// first. With the nodes that appends after it complete, they are every subtree the
    /// inclusion proofs of those appended leaves read.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = Vec::with_capacity(self.hashes.len());
        let mut start = 0u64;
        let mut hashes = self.hashes.iter();
        for level in (0..64u32).rev() {
            if self.size & (1 << level) != 0 {
                let Some(hash) = hashes.next() else { break };
                nodes.push(Node {
                    level,
                    index: start >> level,
                    hash: *hash,
                });
                start += 1 << level;
            }
        }
        nodes
    }

    /// Appends a leaf hash; returns the subtree hashes that became complete, the leaf first.
    pub fn append(&mut self, leaf: Hash) -> Vec<Node> {
        let index = self.size;
        let mut nodes = vec![Node {
            level: 0,
            index,
            hash: leaf,
        }];
        let mut hash = leaf;
        let mut level = 0u32;
        // Each trailing one bit of the old size is a left sibling that now has its pair.
        while (index >> level) & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("a set bit of the size has its subtree in the frontier");
            hash = node_hash(&left, &hash);
            level += 1;
            nodes.push(Node {
                level,
                index: index >> level,
                hash,
            });
        }
        self.hashes.push(hash);
        self.size += 1;
        nodes
    }

    /// The root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// An in-memory tree: every complete subtree hash, level by level. For tests, benchmarks
/// and offline verifiers that hold a whole log.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        for node in self.frontier.append(leaf) {
            let level = node.level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            debug_assert_eq!(self.levels[level].len() as u64, node.index);
            self.levels[level].push(node.hash);
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// Asked for a subtree a [`MemoryTree`] does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no complete subtree at level {level}, index {index}")]
pub struct MissingSubtree {
    /// The level asked for.
    pub level: u32,
    /// The index asked for.
    pub index: u64,
}

impl SubtreeSource for MemoryTree {
    type Error = MissingSubtree;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, MissingSubtree> {
        self.levels
            .get(level as usize)
            .and_then(|l| usize::try_from(index).ok().and_then(|i| l.get(i)))
            .copied()
            .ok_or(MissingSubtree { level, index })
    }
}
