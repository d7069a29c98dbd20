//! The verifiable index: every posting list the server keeps, committed by one root that
//! each checkpoint signs, so that an answer for one key proves it left nothing out.
//!
//! Two layers (docs/FORMAT.md, section 4.3, gives every byte):
//!
//! - **Lists.** The entries on one index key (a subject digest, a release, a signer…), in
//!   log order, are the leaves of an RFC 6962 Merkle tree. A leaf is an [`Element`], the
//!   entry's index and leaf hash: `SHA-256(0x00 ‖ index (u64 BE) ‖ leaf hash)`. The list's
//!   length and root say exactly which entries are on it.
//! - **The map.** A binary Merkle prefix tree from each key's hash (`SHA-256` of its
//!   [`IndexKey::bytes`]) to its list's length and root. A key is a leaf
//!   `SHA-256(0x02 ‖ key hash ‖ length (u64 BE) ‖ list root)` placed at the shallowest
//!   depth where no other key shares its path (bits read from the most significant);
//!   a node with two or more keys below it is `SHA-256(0x03 ‖ left ‖ right)`; a subtree
//!   with no key is 32 zero bytes. The tree is fully determined by its keys, so a root
//!   opens to one value per key, and a key that is absent is proven absent.
//!
//! An answer proves a slice of one list ([`SliceProof`]): the map path to the key's leaf
//! (or to where it would be), and the slice's elements with the RFC 6962 range proof of
//! their positions. Covering a whole period takes the slices from the last element before
//! the period to the first after it ([`Coverage`]); the period's ends are log indexes
//! proven by the entries on either side of each end ([`TimeBound`]). Both proofs are
//! O(log n) hashes plus the elements.
//!
//! What it proves: that the list is exactly what the server committed in the checkpoint.
//! Whether the server committed the true lists is what every replay checks
//! ([`IndexBuilder`] rebuilds the root from the entries' facts): `evident audit`,
//! `evident monitor` and `evidentd verify-store`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::audit::Facts;
use crate::hash::Hash;
use crate::merkle::{self, Frontier, SubtreeSource};
use crate::record::{EntryKind, LeafRecord};

/// The checkpoint extension line that carries the index root: `evident-index <base64>`.
pub const EXTENSION: &str = "evident-index";

/// List positions per chunk: the server keeps the hash of every complete, aligned run of
/// this many elements, so that a proof reads at most two chunks' elements.
pub const CHUNK: u64 = 1 << CHUNK_LEVEL;
/// `log2(CHUNK)`.
pub const CHUNK_LEVEL: u32 = 8;

/// The most map levels a proof may have: one per bit of a key hash.
pub const MAX_DEPTH: usize = 256;

/// One index key: a property an entry has, with the list of the entries that have it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKey {
    /// Entries of one kind.
    Kind(EntryKind),
    /// Attestations with this predicate type.
    PredicateType(String),
    /// Entries signed by this identity (administrators of registry and policy entries).
    Signer(String),
    /// Attestations signed by a key that had this role at the entry's time.
    Role(String),
    /// Attestations with this subject digest `(algorithm, value)`.
    Subject(String, String),
    /// Attestations with a subject of this name.
    SubjectName(String),
    /// Release attestations of this name and version (`Some`), or of this name (`None`).
    Release(String, Option<String>),
}

impl IndexKey {
    /// The key's bytes: a tag byte, then each part followed by a NUL (the kind: its code).
    /// `None` when a part holds a NUL byte: such a value is not indexed.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        fn text(tag: u8, parts: &[&str]) -> Option<Vec<u8>> {
            let mut k = vec![tag];
            for part in parts {
                if part.contains('\0') {
                    return None;
                }
                k.extend_from_slice(part.as_bytes());
                k.push(0);
            }
            Some(k)
        }
        match self {
            IndexKey::Kind(kind) => Some(vec![b'K', kind.code()]),
            IndexKey::PredicateType(p) => text(b'T', &[p]),
            IndexKey::Signer(s) => text(b'I', &[s]),
            IndexKey::Role(r) => text(b'O', &[r]),
            IndexKey::Subject(alg, value) => text(b'S', &[alg, value]),
            IndexKey::SubjectName(n) => text(b'A', &[n]),
            IndexKey::Release(n, Some(v)) => text(b'V', &[n, v]),
            IndexKey::Release(n, None) => text(b'W', &[n]),
        }
    }

    /// The key's place in the map: `SHA-256` of its bytes.
    pub fn hash(&self) -> Option<Hash> {
        self.bytes().map(|b| Hash::sha256(&b))
    }

    /// The keys an entry of `kind` with `facts` is listed under, in a fixed order, each
    /// once, without those that are not indexed.
    pub fn of_entry(kind: EntryKind, facts: &Facts) -> Vec<IndexKey> {
        let mut keys = vec![IndexKey::Kind(kind)];
        if let Some(p) = &facts.predicate_type {
            keys.push(IndexKey::PredicateType(p.clone()));
        }
        keys.extend(facts.signers.iter().cloned().map(IndexKey::Signer));
        keys.extend(facts.roles.iter().cloned().map(IndexKey::Role));
        keys.extend(
            facts
                .subjects
                .iter()
                .map(|(alg, value)| IndexKey::Subject(alg.clone(), value.clone())),
        );
        keys.extend(
            facts
                .subject_names
                .iter()
                .cloned()
                .map(IndexKey::SubjectName),
        );
        if let Some((name, version)) = &facts.release {
            keys.push(IndexKey::Release(name.clone(), Some(version.clone())));
            keys.push(IndexKey::Release(name.clone(), None));
        }
        keys.retain(|k| k.bytes().is_some());
        let mut seen = BTreeSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        keys
    }
}

/// One element of a list: an entry's index and leaf hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    /// The entry's index in the log.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
}

impl Element {
    /// The list tree's leaf: `SHA-256(0x00 ‖ index (u64 BE) ‖ leaf hash)`.
    pub fn hash(&self) -> Hash {
        let mut bytes = [0u8; 40];
        bytes[..8].copy_from_slice(&self.index.to_be_bytes());
        bytes[8..].copy_from_slice(self.leaf_hash.as_bytes());
        merkle::leaf_hash(&bytes)
    }
}

/// The root of a whole list (RFC 6962 over the elements' hashes).
pub fn list_root(elements: &[Element]) -> Hash {
    let mut frontier = Frontier::new();
    for e in elements {
        frontier.append(e.hash());
    }
    frontier.root()
}

/// A map leaf: `SHA-256(0x02 ‖ key hash ‖ length (u64 BE) ‖ list root)`.
pub fn leaf_node(key: &Hash, len: u64, list_root: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x02]);
    h.update(key.as_bytes());
    h.update(len.to_be_bytes());
    h.update(list_root.as_bytes());
    Hash(h.finalize().into())
}

/// A map node with keys on both sides: `SHA-256(0x03 ‖ left ‖ right)`.
pub fn branch_node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x03]);
    h.update(left.as_bytes());
    h.update(right.as_bytes());
    Hash(h.finalize().into())
}

/// Bit `depth` of a key hash, the most significant first.
fn bit(key: &Hash, depth: usize) -> usize {
    usize::from((key.0[depth / 8] >> (7 - depth % 8)) & 1)
}

/// Whether two key hashes agree on their first `depth` bits.
fn shares_prefix(a: &Hash, b: &Hash, depth: usize) -> bool {
    (0..depth).all(|d| bit(a, d) == bit(b, d))
}

/// What the map holds for a key: its list's length and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListHead {
    /// Elements on the list.
    pub len: u64,
    /// The list's root.
    pub root: Hash,
}

impl ListHead {
    /// The head of an empty list.
    pub fn empty() -> ListHead {
        ListHead {
            len: 0,
            root: merkle::empty_root(),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Arc<MapLeaf>),
    Branch(Arc<Branch>),
}

#[derive(Debug)]
struct MapLeaf {
    key: Hash,
    head: ListHead,
    hash: Hash,
}

#[derive(Debug)]
struct Branch {
    hash: Hash,
    children: [Option<Node>; 2],
}

impl Node {
    fn hash(&self) -> Hash {
        match self {
            Node::Leaf(l) => l.hash,
            Node::Branch(b) => b.hash,
        }
    }

    fn leaf(key: Hash, head: ListHead) -> Node {
        Node::Leaf(Arc::new(MapLeaf {
            key,
            head,
            hash: leaf_node(&key, head.len, &head.root),
        }))
    }
}

fn hash_of(node: &Option<Node>) -> Hash {
    node.as_ref().map_or(Hash::ZERO, Node::hash)
}

/// The map from key hashes to list heads: immutable, so that a copy (cheap: it shares
/// every node) is a snapshot that later updates leave as it is.
#[derive(Debug, Clone, Default)]
pub struct Map {
    root: Option<Node>,
    keys: u64,
}

impl Map {
    /// The empty map.
    pub fn new() -> Map {
        Map::default()
    }

    /// The map's root hash (32 zero bytes when empty).
    pub fn root(&self) -> Hash {
        hash_of(&self.root)
    }

    /// Keys in the map.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The head of a key's list, if the key is in the map.
    pub fn get(&self, key: &Hash) -> Option<ListHead> {
        let mut node = self.root.as_ref();
        let mut depth = 0;
        while let Some(n) = node {
            match n {
                Node::Leaf(l) => return (l.key == *key).then_some(l.head),
                Node::Branch(b) => {
                    node = b.children[bit(key, depth)].as_ref();
                    depth += 1;
                }
            }
        }
        None
    }

    /// The map with these keys set: `updates` sorted by key hash, each key once.
    pub fn update(&self, updates: &[(Hash, ListHead)]) -> Map {
        debug_assert!(updates.windows(2).all(|w| w[0].0 < w[1].0));
        let added = updates
            .iter()
            .filter(|(k, _)| self.get(k).is_none())
            .count() as u64;
        Map {
            root: update(self.root.as_ref(), 0, updates),
            keys: self.keys + added,
        }
    }

    /// The proof of what the map holds for `key`.
    pub fn prove(&self, key: &Hash) -> MapProof {
        let mut siblings = Vec::new();
        let mut node = self.root.as_ref();
        let mut depth = 0;
        loop {
            match node {
                None => {
                    return MapProof {
                        siblings,
                        terminal: None,
                    };
                }
                Some(Node::Leaf(l)) => {
                    return MapProof {
                        siblings,
                        terminal: Some((l.key, l.head)),
                    };
                }
                Some(Node::Branch(b)) => {
                    let side = bit(key, depth);
                    siblings.push(hash_of(&b.children[1 - side]));
                    node = b.children[side].as_ref();
                    depth += 1;
                }
            }
        }
    }
}

/// The subtree at `depth` with `updates` (sorted, all under it) applied.
fn update(node: Option<&Node>, depth: usize, updates: &[(Hash, ListHead)]) -> Option<Node> {
    if updates.is_empty() {
        return node.cloned();
    }
    match node {
        None => Some(build(depth, updates)),
        Some(Node::Leaf(l)) => {
            if updates.iter().any(|(k, _)| *k == l.key) {
                return Some(build(depth, updates));
            }
            let mut all = updates.to_vec();
            let at = all.partition_point(|(k, _)| *k < l.key);
            all.insert(at, (l.key, l.head));
            Some(build(depth, &all))
        }
        Some(Node::Branch(b)) => {
            let split = updates.partition_point(|(k, _)| bit(k, depth) == 0);
            let left = update(b.children[0].as_ref(), depth + 1, &updates[..split]);
            let right = update(b.children[1].as_ref(), depth + 1, &updates[split..]);
            Some(branch(left, right))
        }
    }
}

/// The canonical subtree at `depth` holding exactly `keys` (sorted, at least one).
fn build(depth: usize, keys: &[(Hash, ListHead)]) -> Node {
    if let [(key, head)] = keys {
        return Node::leaf(*key, *head);
    }
    let split = keys.partition_point(|(k, _)| bit(k, depth) == 0);
    let side = |part: &[(Hash, ListHead)]| (!part.is_empty()).then(|| build(depth + 1, part));
    branch(side(&keys[..split]), side(&keys[split..]))
}

fn branch(left: Option<Node>, right: Option<Node>) -> Node {
    Node::Branch(Arc::new(Branch {
        hash: branch_node(&hash_of(&left), &hash_of(&right)),
        children: [left, right],
    }))
}

/// Why an index proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IndexProofError(pub String);

fn refuse(text: impl Into<String>) -> IndexProofError {
    IndexProofError(text.into())
}

/// The path from the map's root to a key's leaf, or to where the key would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapProof {
    /// The sibling hash at each depth, from the root down.
    pub siblings: Vec<Hash>,
    /// Where the path ends: the leaf there (a key hash and its list head), or `None` for an
    /// empty subtree.
    pub terminal: Option<(Hash, ListHead)>,
}

impl MapProof {
    /// The head of `key`'s list under the map root `root`: the empty list when the proof
    /// shows the key absent.
    pub fn verify(&self, root: &Hash, key: &Hash) -> Result<ListHead, IndexProofError> {
        let depth = self.siblings.len();
        if depth > MAX_DEPTH {
            return Err(refuse(format!(
                "the index proof's map path is {depth} levels deep; a key hash has {MAX_DEPTH} bits"
            )));
        }
        let (mut hash, head) = match &self.terminal {
            None => (Hash::ZERO, ListHead::empty()),
            Some((other, head)) => {
                if !shares_prefix(other, key, depth) {
                    return Err(refuse(
                        "the index proof's map path ends at a key that does not lie on the \
                         asked key's path",
                    ));
                }
                let found = if other == key {
                    *head
                } else {
                    ListHead::empty()
                };
                (leaf_node(other, head.len, &head.root), found)
            }
        };
        for d in (0..depth).rev() {
            let sibling = &self.siblings[d];
            hash = if bit(key, d) == 0 {
                branch_node(&hash, sibling)
            } else {
                branch_node(sibling, &hash)
            };
        }
        if hash != *root {
            return Err(refuse(format!(
                "the index proof leads to root {hash}, but the checkpoint signs index root {root}"
            )));
        }
        if head.len == 0 && head.root != merkle::empty_root() {
            return Err(refuse(
                "the index proof gives an empty list a non-empty root",
            ));
        }
        Ok(head)
    }
}

/// The proof of a slice of one key's list at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceProof {
    /// The map path to the key.
    pub map: MapProof,
    /// The list position of the first element given.
    pub start: u64,
    /// The elements at positions `start..start + elements.len()`.
    pub elements: Vec<Element>,
    /// The RFC 6962 range proof of those positions in the list's tree (empty when the
    /// slice is empty).
    pub hashes: Vec<Hash>,
}

/// A slice checked against an index root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSlice {
    /// The list's length.
    pub len: u64,
    /// The position of the first element.
    pub start: u64,
    /// The elements, in list order.
    pub elements: Vec<Element>,
}

impl SliceProof {
    /// Checks the slice against the index root of a checkpoint of `size` entries.
    pub fn verify(
        &self,
        index_root: &Hash,
        key: &Hash,
        size: u64,
    ) -> Result<VerifiedSlice, IndexProofError> {
        let head = self.map.verify(index_root, key)?;
        if self.elements.is_empty() {
            if head.len != 0 {
                return Err(refuse(format!(
                    "the index proof gives no elements of a list of {} entries",
                    head.len
                )));
            }
            if !self.hashes.is_empty() {
                return Err(refuse("the index proof of an empty list has hashes"));
            }
            return Ok(VerifiedSlice {
                len: 0,
                start: 0,
                elements: Vec::new(),
            });
        }
        if self.elements.windows(2).any(|w| w[0].index >= w[1].index) {
            return Err(refuse(
                "the index proof's elements are not in strictly increasing log order",
            ));
        }
        if let Some(last) = self.elements.last() {
            if last.index >= size {
                return Err(refuse(format!(
                    "the index proof lists entry {}, beyond the checkpoint's {size} entries",
                    last.index
                )));
            }
        }
        let hashes: Vec<Hash> = self.elements.iter().map(Element::hash).collect();
        let root = merkle::root_from_range(self.start, &hashes, head.len, &self.hashes)
            .map_err(|e| refuse(format!("the index proof's list slice does not verify: {e}")))?;
        if root != head.root {
            return Err(refuse(format!(
                "the index proof's list slice leads to list root {root}, but the index commits \
                 {}",
                head.root
            )));
        }
        Ok(VerifiedSlice {
            len: head.len,
            start: self.start,
            elements: self.elements.clone(),
        })
    }
}

/// Where a list stands at a checkpoint, for proving its slices: its length, and the hashes
/// of its complete chunks of [`CHUNK`] elements.
pub trait ListSource {
    /// The error of a failed read.
    type Error;

    /// The elements at positions `start..end` (all inside the list).
    fn elements(&self, start: u64, end: u64) -> Result<Vec<Element>, Self::Error>;

    /// The root of the complete chunk `chunk` (positions `chunk * CHUNK` on), when kept.
    fn chunk(&self, chunk: u64) -> Result<Option<Hash>, Self::Error>;
}

struct ListTree<'a, S>(&'a S);

impl<S: ListSource> SubtreeSource for ListTree<'_, S> {
    type Error = S::Error;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, S::Error> {
        if level >= CHUNK_LEVEL {
            let per = 1u64 << (level - CHUNK_LEVEL);
            let mut hashes = Vec::with_capacity(per as usize);
            for c in index * per..(index + 1) * per {
                match self.0.chunk(c)? {
                    Some(h) => hashes.push(h),
                    None => {
                        let elements = self.0.elements(c * CHUNK, (c + 1) * CHUNK)?;
                        hashes.push(perfect_root(elements.iter().map(Element::hash).collect()));
                    }
                }
            }
            return Ok(perfect_root(hashes));
        }
        let elements = self.0.elements(index << level, (index + 1) << level)?;
        Ok(perfect_root(elements.iter().map(Element::hash).collect()))
    }
}

/// The root of a perfect tree over a power-of-two number of hashes.
fn perfect_root(mut level: Vec<Hash>) -> Hash {
    debug_assert!(level.len().is_power_of_two());
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

/// The range proof of positions `start..end` of a list of `len` elements.
pub fn prove_slice<S: ListSource>(
    source: &S,
    start: u64,
    end: u64,
    len: u64,
) -> Result<Vec<Hash>, merkle::ProofError<S::Error>> {
    merkle::range_proof(&ListTree(source), start, end, len)
}

/// Each complete chunk of a list: its first entry index and root, shared between views.
type ChunkMap = Arc<HashMap<Hash, ChunkTable>>;

/// Chunk roots per block of a [`ChunkTable`].
const TABLE_BLOCK: usize = 1024;

/// The roots of a list's complete chunks, each with the index of its first entry, in
/// blocks that appends never change once full: a copy shares every block, so a view of
/// the index costs the table's block pointers, not its roots.
#[derive(Debug, Clone, Default)]
pub struct ChunkTable {
    blocks: Vec<Arc<Vec<(u64, Hash)>>>,
    len: usize,
}

impl ChunkTable {
    /// Chunks in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Chunk `i`: its first entry's index and its root.
    pub fn get(&self, i: usize) -> Option<(u64, Hash)> {
        (i < self.len).then(|| self.blocks[i / TABLE_BLOCK][i % TABLE_BLOCK])
    }

    fn push(&mut self, chunk: (u64, Hash)) {
        if self.len % TABLE_BLOCK == 0 {
            self.blocks.push(Arc::new(Vec::with_capacity(TABLE_BLOCK)));
        }
        let last = self.blocks.last_mut().expect("a block was just made");
        Arc::make_mut(last).push(chunk);
        self.len += 1;
    }

    /// Every chunk in the table.
    pub fn all(&self) -> Chunks<'_> {
        Chunks {
            table: Some(self),
            len: self.len,
        }
    }

    /// Every chunk, in order (for tests and benchmarks).
    pub fn to_vec(&self) -> Vec<(u64, Hash)> {
        (0..self.len).filter_map(|i| self.get(i)).collect()
    }
}

/// The first `len` chunks of a [`ChunkTable`]: a list's complete chunks at one size.
#[derive(Debug, Clone, Copy)]
pub struct Chunks<'a> {
    table: Option<&'a ChunkTable>,
    len: usize,
}

impl Chunks<'_> {
    /// No chunks.
    pub fn none() -> Chunks<'static> {
        Chunks {
            table: None,
            len: 0,
        }
    }

    /// Chunks at this size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Chunk `i`: its first entry's index and its root.
    pub fn get(&self, i: usize) -> Option<(u64, Hash)> {
        if i >= self.len {
            return None;
        }
        self.table.and_then(|t| t.get(i))
    }

    /// How many chunks start at an entry before `index`.
    pub fn starting_before(&self, index: u64) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(|(first, _)| first < index) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// A list as the index builder keeps it: enough to append and to give its root, and the
/// root and first index of each complete chunk.
#[derive(Debug, Clone, Default)]
pub struct ListState {
    frontier: Frontier,
    chunks: ChunkTable,
    chunk_first: u64,
    last: Option<u64>,
}

impl ListState {
    /// Elements on the list.
    pub fn len(&self) -> u64 {
        self.frontier.size()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends an element.
    pub fn push(&mut self, element: &Element) {
        if self.len() % CHUNK == 0 {
            self.chunk_first = element.index;
        }
        for node in self.frontier.append(element.hash()) {
            if node.level == CHUNK_LEVEL {
                self.chunks.push((self.chunk_first, node.hash));
            }
        }
        self.last = Some(element.index);
    }

    /// The list's head.
    pub fn head(&self) -> ListHead {
        ListHead {
            len: self.len(),
            root: self.frontier.root(),
        }
    }

    /// The complete chunks: each one's first entry index and root.
    pub fn chunks(&self) -> &ChunkTable {
        &self.chunks
    }
}

/// Builds the index commitment entry by entry: what the sequencer keeps up to date and every
/// replay rebuilds.
#[derive(Debug, Clone, Default)]
pub struct IndexBuilder {
    lists: HashMap<Hash, ListState>,
    map: Map,
    changed: BTreeSet<Hash>,
    size: u64,
    chunked: ChunkMap,
}

/// The index at one size, for proving answers: the map, and the chunk roots of every list
/// that has a complete chunk. Cheap to copy; later additions leave it as it is.
#[derive(Debug, Clone, Default)]
pub struct IndexView {
    /// Entries the index covers.
    pub size: u64,
    /// The map.
    pub map: Map,
    chunks: ChunkMap,
}

impl IndexView {
    /// The index root.
    pub fn root(&self) -> Hash {
        self.map.root()
    }

    /// The head of a key's list (the empty list when the key has none).
    pub fn head(&self, key: &Hash) -> ListHead {
        self.map.get(key).unwrap_or_else(ListHead::empty)
    }

    /// The complete chunks of a key's list at this size.
    pub fn chunks(&self, key: &Hash) -> Chunks<'_> {
        let complete = (self.head(key).len / CHUNK) as usize;
        let table = self.chunks.get(key);
        Chunks {
            table,
            len: complete.min(table.map_or(0, ChunkTable::len)),
        }
    }
}

impl IndexBuilder {
    /// The index of an empty log.
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Entries added so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next entry (its index must be [`IndexBuilder::size`]) under its keys.
    pub fn add(&mut self, index: u64, leaf_hash: Hash, keys: &[IndexKey]) {
        assert_eq!(index, self.size, "entries are indexed in log order");
        let element = Element { index, leaf_hash };
        let mut seen = BTreeSet::new();
        for key in keys {
            let Some(hash) = key.hash() else { continue };
            if !seen.insert(hash) {
                continue;
            }
            self.lists.entry(hash).or_default().push(&element);
            self.changed.insert(hash);
        }
        self.size += 1;
    }

    /// Appends an element to one key's list, out of log order across keys (for rebuilding
    /// from stored posting lists): each list's elements must come in increasing index
    /// order. [`IndexBuilder::set_size`] says how many entries the lists cover.
    pub fn insert(&mut self, key: Hash, element: Element) -> Result<(), IndexProofError> {
        let list = self.lists.entry(key).or_default();
        if list.last.is_some_and(|last| last >= element.index) {
            return Err(refuse(format!(
                "entry {} comes after entry {} on one list",
                element.index,
                list.last.unwrap_or_default()
            )));
        }
        list.push(&element);
        self.changed.insert(key);
        Ok(())
    }

    /// Says that the lists cover entries `0..size` (after [`IndexBuilder::insert`]).
    pub fn set_size(&mut self, size: u64) {
        self.size = size;
    }

    /// Keys with a list.
    pub fn keys(&self) -> usize {
        self.lists.len()
    }

    /// Adds the next entry under lists named by their key hashes ([`IndexKey::hash`]), as
    /// stored indexes give them.
    pub fn add_hashed(&mut self, index: u64, leaf_hash: Hash, keys: &[Hash]) {
        assert_eq!(index, self.size, "entries are indexed in log order");
        let element = Element { index, leaf_hash };
        let mut seen = BTreeSet::new();
        for hash in keys {
            if seen.insert(*hash) {
                self.lists.entry(*hash).or_default().push(&element);
                self.changed.insert(*hash);
            }
        }
        self.size += 1;
    }

    /// Adds the next entry under the keys its kind and facts give.
    pub fn add_entry(&mut self, index: u64, leaf_hash: Hash, kind: EntryKind, facts: &Facts) {
        self.add(index, leaf_hash, &IndexKey::of_entry(kind, facts));
    }

    /// The map with every entry added so far (the changes since the last call applied
    /// together).
    pub fn commit(&mut self) -> &Map {
        if !self.changed.is_empty() {
            let changed = std::mem::take(&mut self.changed);
            let mut updates = Vec::with_capacity(changed.len());
            for key in changed {
                let list = &self.lists[&key];
                updates.push((key, list.head()));
                let chunks = list.chunks().len();
                if chunks > 0 && self.chunked.get(&key).map(ChunkTable::len) != Some(chunks) {
                    Arc::make_mut(&mut self.chunked).insert(key, list.chunks().clone());
                }
            }
            self.map = self.map.update(&updates);
        }
        &self.map
    }

    /// The index as it stands, for proving answers.
    pub fn view(&mut self) -> IndexView {
        self.commit();
        IndexView {
            size: self.size,
            map: self.map.clone(),
            chunks: Arc::clone(&self.chunked),
        }
    }

    /// The root over every entry added so far.
    pub fn root(&mut self) -> Hash {
        self.commit().root()
    }

    /// A key's list as it stands.
    pub fn list(&self, key: &Hash) -> Option<&ListState> {
        self.lists.get(key)
    }
}

/// The `evident-index <base64 root>` extension line.
pub fn extension(root: &Hash) -> String {
    format!("{EXTENSION} {}", root.to_base64())
}

/// The index root a checkpoint's extension lines sign, if one of them is an index line.
/// A malformed index line is an error.
pub fn root_from_extensions(extensions: &[String]) -> Result<Option<Hash>, IndexProofError> {
    let mut found = None;
    for line in extensions {
        let Some(rest) = line.strip_prefix(EXTENSION) else {
            continue;
        };
        let Some(text) = rest.strip_prefix(' ') else {
            continue;
        };
        if found.is_some() {
            return Err(refuse("the checkpoint has two index lines"));
        }
        let bytes = STANDARD.decode(text).map_err(|_| {
            refuse(format!(
                "the checkpoint's index line {line:?} is not base64"
            ))
        })?;
        found = Some(Hash::from_slice(&bytes).map_err(|_| {
            refuse(format!(
                "the checkpoint's index line {line:?} does not hold a 32-byte hash"
            ))
        })?);
    }
    Ok(found)
}

/// The pieces of a completed period: the elements of a list whose indexes lie in a range.
#[derive(Debug, Clone)]
pub struct Coverage {
    len: Option<u64>,
    elements: std::collections::BTreeMap<u64, Element>,
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage::new()
    }
}

impl Coverage {
    /// Nothing covered yet.
    pub fn new() -> Coverage {
        Coverage {
            len: None,
            elements: std::collections::BTreeMap::new(),
        }
    }

    /// Adds a verified slice (every slice of one answer is of the same list, at the same
    /// checkpoint).
    pub fn add(&mut self, slice: &VerifiedSlice) -> Result<(), IndexProofError> {
        match self.len {
            Some(len) if len != slice.len => {
                return Err(refuse(format!(
                    "the answer's pages prove lists of {len} and of {} entries: they are not \
                     of one checkpoint",
                    slice.len
                )));
            }
            _ => self.len = Some(slice.len),
        }
        for (i, e) in slice.elements.iter().enumerate() {
            let position = slice.start + i as u64;
            if let Some(old) = self.elements.insert(position, *e) {
                if old != *e {
                    return Err(refuse(format!(
                        "two pages give different entries at list position {position}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The list's elements with an index in `lo..hi`, once the slices cover them from the
    /// last element before `lo` (or the list's start) to the first at or after `hi` (or its
    /// end) without a gap.
    pub fn finish(&self, lo: u64, hi: u64) -> Result<Vec<Element>, IndexProofError> {
        let len = self.len.unwrap_or(0);
        if len == 0 {
            return Ok(Vec::new());
        }
        let positions: Vec<u64> = self.elements.keys().copied().collect();
        let (Some(&first), Some(&last)) = (positions.first(), positions.last()) else {
            return Err(refuse("the answer proves no element of a non-empty list"));
        };
        if last - first + 1 != positions.len() as u64 {
            return Err(refuse(
                "the answer's pages leave a gap in the list: entries may be missing",
            ));
        }
        let elements: Vec<Element> = self.elements.values().copied().collect();
        if elements.windows(2).any(|w| w[0].index >= w[1].index) {
            return Err(refuse(
                "the answer's pages are not in strictly increasing log order",
            ));
        }
        if first != 0 && elements[0].index >= lo {
            return Err(refuse(format!(
                "the answer does not prove where the period starts: its first proven entry, {} \
                 at list position {first}, is not before entry {lo}",
                elements[0].index
            )));
        }
        let end = elements[elements.len() - 1].index;
        if last != len - 1 && end < hi {
            return Err(refuse(format!(
                "the answer does not prove where the period ends: its last proven entry, {end} \
                 at list position {last} of {len}, is before entry {hi}"
            )));
        }
        Ok(elements
            .into_iter()
            .filter(|e| e.index >= lo && e.index < hi)
            .collect())
    }
}

/// An entry on either side of a period's end, with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundEntry {
    /// The entry's leaf record.
    pub record: Vec<u8>,
    /// Its inclusion proof at the checkpoint.
    pub proof: Vec<Hash>,
}

/// One end of a period as a log index: the first entry integrated at or after a time
/// (`since`), or after it (`until`, inclusive), with the entries on either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBound {
    /// The index where the period starts (or ends, exclusive).
    pub index: u64,
    /// Entry `index - 1`, unless `index` is 0.
    pub before: Option<BoundEntry>,
    /// Entry `index`, unless it is the checkpoint's size.
    pub at: Option<BoundEntry>,
}

impl TimeBound {
    /// Checks the bound against a checkpoint (`size`, `root`): the entry before it was
    /// integrated before `time` (at or before, when `inclusive`), and the entry at it was
    /// not. Integrated times never decrease along the log, which every replay checks.
    /// Returns the index.
    pub fn verify(
        &self,
        time: i64,
        inclusive: bool,
        size: u64,
        root: &Hash,
    ) -> Result<u64, IndexProofError> {
        let index = self.index;
        if index > size {
            return Err(refuse(format!(
                "the period's bound {index} lies beyond the checkpoint's {size} entries"
            )));
        }
        let inside = |t: i64| if inclusive { t <= time } else { t < time };
        let check = |entry: &Option<BoundEntry>, at: u64, what: &str| {
            let entry = entry.as_ref().ok_or_else(|| {
                refuse(format!(
                    "the period's bound at entry {index} comes without entry {at} ({what})"
                ))
            })?;
            let record = LeafRecord::decode(&entry.record).map_err(|e| {
                refuse(format!(
                    "the period's bound: entry {at} does not decode: {e}"
                ))
            })?;
            if record.index() != at {
                return Err(refuse(format!(
                    "the period's bound: the record given for entry {at} is entry {}",
                    record.index()
                )));
            }
            merkle::verify_inclusion(at, size, &record.leaf_hash(), &entry.proof, root).map_err(
                |e| {
                    refuse(format!(
                        "the period's bound: entry {at} is not in the checkpoint: {e}"
                    ))
                },
            )?;
            Ok(record.integrated_time_nanos())
        };
        if index > 0 {
            let t = check(&self.before, index - 1, "the last entry before the bound")?;
            if !inside(t) {
                return Err(refuse(format!(
                    "the period's bound is off: entry {} was integrated at {}, not before the \
                     bound's time {}",
                    index - 1,
                    crate::registry::time_text(t),
                    crate::registry::time_text(time)
                )));
            }
        }
        if index < size {
            let t = check(&self.at, index, "the first entry from the bound on")?;
            if inside(t) {
                return Err(refuse(format!(
                    "the period's bound is off: entry {index} was integrated at {}, which is \
                     inside the bound's time {}",
                    crate::registry::time_text(t),
                    crate::registry::time_text(time)
                )));
            }
        }
        Ok(index)
    }
}

/// A list held in memory, with its chunk roots: a [`ListSource`] for tests, benchmarks and
/// verifiers that hold a whole log.
#[derive(Debug, Clone, Copy)]
pub struct MemoryList<'a> {
    /// The list's elements (at least as many as the proofs read).
    pub elements: &'a [Element],
    /// Its complete chunks ([`ListState::chunks`]), or [`Chunks::none`].
    pub chunks: Chunks<'a>,
}

impl ListSource for MemoryList<'_> {
    type Error = std::convert::Infallible;

    fn elements(&self, start: u64, end: u64) -> Result<Vec<Element>, Self::Error> {
        Ok(self.elements[start as usize..end as usize].to_vec())
    }

    fn chunk(&self, chunk: u64) -> Result<Option<Hash>, Self::Error> {
        Ok(self.chunks.get(chunk as usize).map(|(_, h)| h))
    }
}

/// The proof of a whole answer: one list's slice from the fence before a period to the
/// fence after it, and the period's ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerProof {
    /// The list's key ([`IndexKey::bytes`]).
    pub key: Vec<u8>,
    /// The slice.
    pub slice: SliceProof,
    /// The period's start, for an answer from a time on.
    pub since: Option<TimeBound>,
    /// The period's end, for an answer up to a time (inclusive).
    pub until: Option<TimeBound>,
}

impl AnswerProof {
    /// The entries on `key`'s list integrated in `since..=until` (either end open) as of
    /// `checkpoint` (whose signature the caller verified), in log order: exactly those,
    /// or an error that says what does not hold.
    pub fn verify(
        &self,
        checkpoint: &crate::note::Checkpoint,
        key: &IndexKey,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<Element>, IndexProofError> {
        let root = root_from_extensions(&checkpoint.extensions)?.ok_or_else(|| {
            refuse(
                "the checkpoint signs no index root (no evident-index line): this log does \
                 not prove that answers are complete",
            )
        })?;
        let bytes = key
            .bytes()
            .ok_or_else(|| refuse("the asked key holds a NUL byte and is not indexed"))?;
        if self.key != bytes {
            return Err(refuse(
                "the index proof is of another list than the one asked for",
            ));
        }
        let size = checkpoint.size;
        let end = |bound: &Option<TimeBound>, time: Option<i64>, inclusive: bool, open: u64| match (
            bound, time,
        ) {
            (Some(b), Some(t)) => b.verify(t, inclusive, size, &checkpoint.root),
            (None, None) => Ok(open),
            (None, Some(_)) => Err(refuse("the index proof does not prove the period's ends")),
            (Some(_), None) => Err(refuse(
                "the index proof bounds a period the query did not ask for",
            )),
        };
        let lo = end(&self.since, since, false, 0)?;
        let hi = end(&self.until, until, true, size)?;
        let slice = self.slice.verify(&root, &Hash::sha256(&bytes), size)?;
        let mut coverage = Coverage::new();
        coverage.add(&slice)?;
        coverage.finish(lo, hi.max(lo))
    }
}
