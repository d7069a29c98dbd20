//! C2SP tlog-tiles (c2sp.org/tlog-tiles): the Merkle tree and the entries of a log served
//! as static, immutable resources — hash tiles `tile/<L>/<N>[.p/<W>]` and entry bundles
//! `tile/entries/<N>[.p/<W>]` — with the tile height fixed at 8.
//!
//! - [`TileId`], [`BundleId`], [`Resource`]: the resources and their canonical paths, with
//!   a strict parser that refuses every other spelling (one resource, one path).
//! - [`tiles_new_between`], [`bundles_new_between`]: which resources a tree of one size
//!   has that a smaller one did not (what a static mirror writes after each checkpoint).
//! - [`tile_hashes`]: a tile's bytes from any [`SubtreeSource`].
//! - [`encode_bundle`], [`decode_bundle`]: the entry bundle format.
//! - [`TiledTree`]: a [`SubtreeSource`] over tiles fetched from somewhere untrusted.
//!
//! Nothing here trusts a fetched tile: a hash read through [`TiledTree`] means something
//! only once a root or proof computed from it has been checked against a signed
//! checkpoint. No I/O: fetching is the caller's closure.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::hash::{HASH_LEN, Hash};
use crate::merkle::{SubtreeSource, node_hash};

/// Tile height: every tile spans 8 levels of the Merkle tree.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile (entries in a full bundle): `2^TILE_HEIGHT`.
pub const FULL_WIDTH: u16 = 256;
/// The highest tile level a path may name.
pub const MAX_LEVEL: u8 = 63;
/// The largest record an entry bundle can carry (its length is a big-endian `u16`).
pub const MAX_BUNDLE_RECORD: usize = u16::MAX as usize;

/// Why a tile or bundle id, or a resource path, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileIdError {
    /// The tile level is above 63.
    #[error("tile level {0} is above the highest level, 63")]
    Level(u8),
    /// The width is 0 or above 256.
    #[error("tile width {0} is not between 1 and 256")]
    Width(u16),
    /// The path is not the canonical path of any tile or entry bundle.
    #[error("{path:?} is not a canonical tlog-tiles path: {why}")]
    Path {
        /// The path, as given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A hash tile: `width` consecutive hashes at Merkle level `8 × level`, starting at hash
/// `256 × index` of that level.
///
/// Invariant: `level <= 63` and `1 <= width <= 256` (256 is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    level: u8,
    index: u64,
    width: u16,
}

impl TileId {
    /// The tile at `level` (0..=63), `index`, `width` (1..=256; 256 is a full tile).
    pub fn new(level: u8, index: u64, width: u16) -> Result<TileId, TileIdError> {
        if level > MAX_LEVEL {
            return Err(TileIdError::Level(level));
        }
        check_width(width)?;
        Ok(TileId {
            level,
            index,
            width,
        })
    }

    /// The tile level: its hashes are at Merkle level `8 × level`.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The tile's index within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of hashes it holds (256 for a full tile).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether it is a full tile (256 hashes).
    pub fn is_full(&self) -> bool {
        self.width == FULL_WIDTH
    }

    /// Its length in bytes: `width × 32`.
    pub fn byte_len(&self) -> usize {
        usize::from(self.width) * HASH_LEN
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, index_path(self.index, self.width))
    }

    /// Parses the canonical path of a hash tile (not an entry bundle).
    pub fn parse(path: &str) -> Result<TileId, TileIdError> {
        match Resource::parse(path)? {
            Resource::Tile(id) => Ok(id),
            Resource::Entries(_) => Err(bad_path(path, "an entry bundle, not a hash tile")),
        }
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// An entry bundle: the `width` entries starting at entry `256 × index`, the entries whose
/// leaf hashes are level-0 tile `index` of the same width.
///
/// Invariant: `1 <= width <= 256` (256 is a full bundle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    index: u64,
    width: u16,
}

impl BundleId {
    /// The bundle `index` of `width` (1..=256; 256 is a full bundle) entries.
    pub fn new(index: u64, width: u16) -> Result<BundleId, TileIdError> {
        check_width(width)?;
        Ok(BundleId { index, width })
    }

    /// The bundle's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of entries it holds (256 for a full bundle).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// The level-0 tile holding the leaf hashes of these entries.
    pub fn tile(&self) -> TileId {
        TileId {
            level: 0,
            index: self.index,
            width: self.width,
        }
    }

    /// `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/entries/{}", index_path(self.index, self.width))
    }

    /// Parses the canonical path of an entry bundle.
    pub fn parse(path: &str) -> Result<BundleId, TileIdError> {
        match Resource::parse(path)? {
            Resource::Entries(id) => Ok(id),
            Resource::Tile(_) => Err(bad_path(path, "a hash tile, not an entry bundle")),
        }
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A resource under `tile/`: a hash tile or an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `tile/<L>/<N>[.p/<W>]`.
    Tile(TileId),
    /// `tile/entries/<N>[.p/<W>]`.
    Entries(BundleId),
}

impl Resource {
    /// The resource's path, relative to the log's prefix.
    pub fn path(&self) -> String {
        match self {
            Resource::Tile(id) => id.path(),
            Resource::Entries(id) => id.path(),
        }
    }

    /// Parses a path relative to the log's prefix, refusing every non-canonical spelling:
    /// leading zeros in the level or width, a width of 0, 256 or more after `.p/`, index
    /// groups that are not three digits, a missing `x`, a leading `x000` group, empty
    /// components, a level above 63 and an index beyond 64 bits.
    pub fn parse(path: &str) -> Result<Resource, TileIdError> {
        let bad = |why: &str| bad_path(path, why);
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| bad("does not start with tile/"))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad("no index after the level"))?;
        let level = if kind == "entries" {
            None
        } else {
            let level = canonical_decimal(kind)
                .filter(|&l| l <= u64::from(MAX_LEVEL))
                .ok_or_else(|| {
                    bad("the level is not entries or a decimal from 0 to 63 without leading zeros")
                })?;
            Some(u8::try_from(level).expect("level is at most 63"))
        };
        let (groups, width) = match rest.split_once(".p/") {
            None => (rest, FULL_WIDTH),
            Some((groups, width)) => {
                let width = canonical_decimal(width)
                    .filter(|w| (1..u64::from(FULL_WIDTH)).contains(w))
                    .ok_or_else(|| {
                        bad("the partial width is not a decimal from 1 to 255 without leading zeros")
                    })?;
                (groups, u16::try_from(width).expect("width is below 256"))
            }
        };
        let groups: Vec<&str> = groups.split('/').collect();
        let (last, upper) = groups
            .split_last()
            .expect("split always yields at least one piece");
        let mut index: u64 = 0;
        for (i, group) in upper.iter().enumerate() {
            let digits = group
                .strip_prefix('x')
                .ok_or_else(|| bad("an index group other than the last does not start with x"))?;
            let value = three_digits(digits)
                .ok_or_else(|| bad("an index group is not x and three digits"))?;
            if i == 0 && value == 0 {
                return Err(bad("the index has a leading x000 group"));
            }
            index = push_group(index, value).ok_or_else(|| bad("the index overflows 64 bits"))?;
        }
        let value =
            three_digits(last).ok_or_else(|| bad("the last index group is not three digits"))?;
        index = push_group(index, value).ok_or_else(|| bad("the index overflows 64 bits"))?;
        Ok(match level {
            Some(level) => Resource::Tile(TileId {
                level,
                index,
                width,
            }),
            None => Resource::Entries(BundleId { index, width }),
        })
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

fn check_width(width: u16) -> Result<(), TileIdError> {
    if width == 0 || width > FULL_WIDTH {
        return Err(TileIdError::Width(width));
    }
    Ok(())
}

fn bad_path(path: &str, why: &str) -> TileIdError {
    TileIdError::Path {
        path: path.to_owned(),
        why: why.to_owned(),
    }
}

/// `<N>[.p/<W>]`: the index in zero-padded 3-digit groups, all but the last prefixed `x`.
fn index_path(index: u64, width: u16) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    let mut path = groups.join("/");
    if width != FULL_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// A decimal without leading zeros (`0` itself allowed) that fits in 64 bits.
fn canonical_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

fn three_digits(text: &str) -> Option<u64> {
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn push_group(index: u64, group: u64) -> Option<u64> {
    index.checked_mul(1000)?.checked_add(group)
}

/// The levels a tree of `size` leaves has tiles at: `size >> 8L > 0`.
fn levels(size: u64) -> impl Iterator<Item = u8> {
    (0..8u8).take_while(move |&l| size >> (TILE_HEIGHT * u32::from(l)) > 0)
}

/// The hash tiles a tree of `new` leaves has that a tree of `old` leaves did not: at each
/// level L, the full tiles completed since `old` and the partial tile of width
/// `floor(new / 256^L) mod 256` (when that is not 0 and changed). Every tile of a tree is
/// `tiles_new_between(0, size)`. Empty when `old >= new`.
pub fn tiles_new_between(old: u64, new: u64) -> Vec<TileId> {
    let mut tiles = Vec::new();
    if old >= new {
        return tiles;
    }
    for level in levels(new) {
        let shift = TILE_HEIGHT * u32::from(level);
        let (old_n, new_n) = (old >> shift, new >> shift);
        if old_n == new_n {
            continue;
        }
        for index in (old_n >> TILE_HEIGHT)..(new_n >> TILE_HEIGHT) {
            tiles.push(TileId {
                level,
                index,
                width: FULL_WIDTH,
            });
        }
        let width = u16::try_from(new_n % u64::from(FULL_WIDTH)).expect("below 256");
        if width > 0 {
            tiles.push(TileId {
                level,
                index: new_n >> TILE_HEIGHT,
                width,
            });
        }
    }
    tiles
}

/// Every hash tile of a tree of `size` leaves.
pub fn tiles(size: u64) -> Vec<TileId> {
    tiles_new_between(0, size)
}

/// The entry bundles a tree of `new` leaves has that a tree of `old` leaves did not (the
/// level-0 tiles of [`tiles_new_between`], as bundles). Empty when `old >= new`.
pub fn bundles_new_between(old: u64, new: u64) -> Vec<BundleId> {
    tiles_new_between(old, new)
        .into_iter()
        .filter(|t| t.level == 0)
        .map(|t| BundleId {
            index: t.index,
            width: t.width,
        })
        .collect()
}

/// Every resource a tree of `new` leaves has that a tree of `old` leaves did not: the hash
/// tiles, then the entry bundles.
pub fn resources_new_between(old: u64, new: u64) -> Vec<Resource> {
    let mut out: Vec<Resource> = tiles_new_between(old, new)
        .into_iter()
        .map(Resource::Tile)
        .collect();
    out.extend(
        bundles_new_between(old, new)
            .into_iter()
            .map(Resource::Entries),
    );
    out
}

/// Why a tile could not be made, read or trusted as well-formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError<E = std::convert::Infallible> {
    /// The tile lies beyond any tree of at most 2^64 - 1 leaves.
    #[error("tile {0} lies beyond the largest tree a log can hold")]
    Beyond(TileId),
    /// A subtree asked of a [`TiledTree`] is not a complete subtree of its tree.
    #[error("no complete subtree at level {level}, index {index} in the tree of size {size}")]
    OutsideTree {
        /// The Merkle level asked for.
        level: u32,
        /// The index asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// A fetched tile does not have `width × 32` bytes.
    #[error("tile {tile} is {got} bytes, {want} expected for its width")]
    Length {
        /// The tile.
        tile: TileId,
        /// Its length as fetched.
        got: usize,
        /// `width × 32`.
        want: usize,
    },
    /// Fetching a tile failed.
    #[error("fetching tile {tile}: {error}")]
    Fetch {
        /// The tile.
        tile: TileId,
        /// The fetcher's error.
        error: E,
    },
    /// The subtree source failed.
    #[error("reading subtree hashes for tile {tile}: {error}")]
    Source {
        /// The tile being made.
        tile: TileId,
        /// The source's error.
        error: E,
    },
}

/// The bytes of tile `id` (`width × 32`): hash `i` is the complete subtree at Merkle level
/// `8 × level`, index `256 × id.index + i`, read from `source`. The source must hold every
/// one of them: ask only for tiles of a tree the source covers ([`tiles`]).
pub fn tile_hashes<S: SubtreeSource>(
    source: &S,
    id: TileId,
) -> Result<Vec<u8>, TileError<S::Error>> {
    let level = TILE_HEIGHT * u32::from(id.level);
    // The leaves the tile covers must be numbered in 64 bits.
    let first = id
        .index
        .checked_mul(u64::from(FULL_WIDTH))
        .filter(|&first| covers_leaves(first, u64::from(id.width), level));
    let Some(first) = first else {
        return Err(TileError::Beyond(id));
    };
    let mut bytes = Vec::with_capacity(id.byte_len());
    for i in 0..u64::from(id.width) {
        let hash = source
            .subtree_hash(level, first + i)
            .map_err(|error| TileError::Source { tile: id, error })?;
        bytes.extend_from_slice(&hash.0);
    }
    Ok(bytes)
}

/// Why an entry bundle could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A record is longer than a `u16` length prefix can say.
    #[error(
        "record {index} is {len} bytes: the tlog-tiles entry bundle format cannot carry a \
         record over 65535 bytes"
    )]
    TooLarge {
        /// The record's position in the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// More records than a bundle holds.
    #[error("{count} records do not fit in one entry bundle (at most 256)")]
    TooMany {
        /// The number of records given.
        count: usize,
    },
    /// The bundle ends inside a record's length or bytes.
    #[error("entry bundle is truncated in record {index} of {expected}")]
    Truncated {
        /// The record that is cut short.
        index: usize,
        /// The records expected.
        expected: usize,
    },
    /// Bytes remain after the expected records.
    #[error("entry bundle has {extra} bytes after its {expected} records")]
    Trailing {
        /// The bytes left over.
        extra: usize,
        /// The records expected.
        expected: usize,
    },
}

/// Encodes records as an entry bundle: each a big-endian `u16` length, then its bytes.
pub fn encode_bundle(records: &[&[u8]]) -> Result<Vec<u8>, BundleError> {
    if records.len() > usize::from(FULL_WIDTH) {
        return Err(BundleError::TooMany {
            count: records.len(),
        });
    }
    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() + 2).sum());
    for (index, record) in records.iter().enumerate() {
        let len = u16::try_from(record.len()).map_err(|_| BundleError::TooLarge {
            index,
            len: record.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(record);
    }
    Ok(out)
}

/// Decodes an entry bundle of exactly `expected` records (the bundle's width), refusing a
/// truncated bundle and trailing bytes.
pub fn decode_bundle(bytes: &[u8], expected: usize) -> Result<Vec<&[u8]>, BundleError> {
    let mut records = Vec::with_capacity(expected.min(usize::from(FULL_WIDTH)));
    let mut rest = bytes;
    for index in 0..expected {
        let truncated = BundleError::Truncated { index, expected };
        let (len, tail) = rest.split_first_chunk::<2>().ok_or(truncated.clone())?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(truncated);
        }
        let (record, tail) = tail.split_at(len);
        records.push(record);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(BundleError::Trailing {
            extra: rest.len(),
            expected,
        });
    }
    Ok(records)
}

/// Where a [`TiledTree`] gets tiles: a closure `Fn(TileId) -> Result<Vec<u8>, E>` is one.
pub trait TileFetcher {
    /// The error of a failed fetch.
    type Error;

    /// The bytes of tile `id`, as served (not trusted).
    fn fetch(&self, id: TileId) -> Result<Vec<u8>, Self::Error>;
}

impl<F, E> TileFetcher for F
where
    F: Fn(TileId) -> Result<Vec<u8>, E>,
{
    type Error = E;

    fn fetch(&self, id: TileId) -> Result<Vec<u8>, E> {
        self(id)
    }
}

/// How many fetched tiles a [`TiledTree`] keeps (256 KiB of full tiles): enough for every
/// tile one proof reads.
const CACHE_TILES: usize = 32;

/// A [`SubtreeSource`] over the tiles of a tree of a given size, fetched from an untrusted
/// place (a tlog-tiles server, a static mirror).
///
/// It answers the hash of any complete subtree within the size: a level that is a multiple
/// of 8 is one hash of the tile at `level / 8` (the full tile if that tile is complete in
/// the tree, else the tree's partial tile); other levels are hashed up from the
/// `2^(level mod 8)` hashes below them in the tile at `floor(level / 8)`. A tile whose
/// length is not `width × 32` is refused; fetched tiles are cached, a few at a time.
///
/// **Nothing it returns is trusted by itself.** Compute a root or proof over it with
/// [`crate::merkle::root`], [`crate::merkle::inclusion_proof`] or
/// [`crate::merkle::consistency_proof`] and check that against the root of a verified
/// checkpoint ([`crate::merkle::verify_inclusion`], [`crate::merkle::verify_consistency`],
/// or equality with the signed root): a wrong hash in a tile makes that check fail.
pub struct TiledTree<F: TileFetcher> {
    size: u64,
    fetcher: F,
    cache: RefCell<Cache>,
}

#[derive(Default)]
struct Cache {
    tiles: HashMap<TileId, Vec<u8>>,
    order: VecDeque<TileId>,
}

impl<F: TileFetcher> fmt::Debug for TiledTree<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TiledTree")
            .field("size", &self.size)
            .field("cached_tiles", &self.cache.borrow().order.len())
            .finish_non_exhaustive()
    }
}

impl<F: TileFetcher> TiledTree<F> {
    /// The tree of `size` leaves whose tiles `fetcher` returns.
    pub fn new(size: u64, fetcher: F) -> TiledTree<F> {
        TiledTree {
            size,
            fetcher,
            cache: RefCell::new(Cache::default()),
        }
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tile at `level` and `index` as this tree has it: full when complete, else the
    /// tree's partial tile. `None` when the tree has no such tile.
    pub fn tile_id(&self, level: u8, index: u64) -> Option<TileId> {
        let shift = TILE_HEIGHT * u32::from(level);
        let hashes = self.size.checked_shr(shift).unwrap_or(0);
        let start = index.checked_mul(u64::from(FULL_WIDTH))?;
        let width = hashes.checked_sub(start)?.min(u64::from(FULL_WIDTH));
        let width = u16::try_from(width).expect("at most 256");
        TileId::new(level, index, width).ok()
    }

    /// The bytes of tile `id`, from the cache or the fetcher, checked for length.
    fn tile(&self, id: TileId, offset: usize, count: usize) -> Result<Hash, TileError<F::Error>> {
        if let Some(bytes) = self.cache.borrow().tiles.get(&id) {
            return Ok(hash_up(
                &bytes[offset * HASH_LEN..(offset + count) * HASH_LEN],
            ));
        }
        let bytes = self
            .fetcher
            .fetch(id)
            .map_err(|error| TileError::Fetch { tile: id, error })?;
        if bytes.len() != id.byte_len() {
            return Err(TileError::Length {
                tile: id,
                got: bytes.len(),
                want: id.byte_len(),
            });
        }
        let hash = hash_up(&bytes[offset * HASH_LEN..(offset + count) * HASH_LEN]);
        let mut cache = self.cache.borrow_mut();
        if cache.order.len() >= CACHE_TILES {
            if let Some(old) = cache.order.pop_front() {
                cache.tiles.remove(&old);
            }
        }
        cache.order.push_back(id);
        cache.tiles.insert(id, bytes);
        Ok(hash)
    }
}

/// Whether `count` subtrees of `2^level` leaves from subtree `first` end at a leaf number
/// that fits in 64 bits.
fn covers_leaves(first: u64, count: u64, level: u32) -> bool {
    level < 64
        && first
            .checked_add(count)
            .and_then(|end| end.checked_mul(1 << level))
            .is_some()
}

/// The Merkle hash of a power-of-two run of concatenated hashes.
fn hash_up(bytes: &[u8]) -> Hash {
    if bytes.len() == HASH_LEN {
        return Hash::from_slice(bytes).expect("32 bytes");
    }
    let half = bytes.len() / 2;
    node_hash(&hash_up(&bytes[..half]), &hash_up(&bytes[half..]))
}

impl<F: TileFetcher> SubtreeSource for TiledTree<F> {
    type Error = TileError<F::Error>;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let outside = TileError::OutsideTree {
            level,
            index,
            size: self.size,
        };
        let inside = covers_leaves(index, 1, level) && ((index + 1) << level) <= self.size;
        if !inside {
            return Err(outside);
        }
        let tile_level = u8::try_from(level / TILE_HEIGHT).expect("level is below 64");
        let below = level % TILE_HEIGHT;
        // The 2^below hashes at Merkle level 8 × tile_level under this subtree; aligned, so
        // they sit in one tile.
        let first = index << below;
        let tile_index = first >> TILE_HEIGHT;
        let offset = usize::try_from(first % u64::from(FULL_WIDTH)).expect("below 256");
        let id = self.tile_id(tile_level, tile_index).ok_or(outside)?;
        self.tile(id, offset, 1 << below)
    }
}
