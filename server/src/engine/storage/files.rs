//! The embedded log backend: leaf records in append-only, checksummed segment files, and
//! the Merkle tree as C2SP tlog-tiles hash files. The layout, byte by byte, and the
//! recovery procedure are in `docs/FORMAT.md`, "The log's files".
//!
//! ```text
//! <dir>/segments/<first index, 20 digits>.seg   records (the truth)
//! <dir>/segments/<first index, 20 digits>.idx   offset of each record (derived)
//! <dir>/tiles/<L>.hashes                         hashes of level 8·L (derived)
//! <dir>/watermark                                how far the derived files are durable
//! <dir>/checkpoint                               latest signed checkpoint (not synced)
//! <dir>/genesis                                  the genesis (durable)
//! ```
//!
//! Durability: each [`LogStore::append`] is one write and one `fdatasync` of the current
//! segment file; acknowledgement comes only after that `fdatasync`. The derived files are
//! written on every append but synced only when the watermark advances (every
//! [`FileLogOptions::watermark_entries`] entries and at each segment roll). Opening the log
//! re-reads the segments from the watermark on, cuts a torn tail, rebuilds the derived
//! files past the watermark, makes all of it durable and moves the watermark to the end:
//! start-up work is bounded by the tail since the watermark, never the whole log.
//!
//! A failed write or sync poisons the log: that append and every later one fail, and no
//! sync is ever retried (after a failed `fsync` the kernel may have dropped the pages).
//!
//! Memory and open files are bounded and independent of the log's size: the open files of
//! the segment being written and of at most [`FileLogOptions::open_segments`] sealed ones
//! (opened when read), one file per tile level, the writer's reusable buffers (the size of
//! the largest batch), and a cache of at most 2 × [`FileLogOptions::tile_cache`] tiles
//! with their inner hashes (at most 16 KiB each, 2 MiB by default). Per segment
//! (one per [`FileLogOptions::segment_bytes`] of records, 256 MiB) a few dozen bytes of
//! bookkeeping are kept; nothing is kept per entry.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use evident_core::Hash;
use evident_core::merkle::{self, Frontier, Node, SubtreeSource};

use super::vfs::{OpenMode, Vfs, VfsFile};
use super::{LogStore, StoreError};

/// The first bytes of a segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"EVLS";
/// The segment format this code writes and reads.
pub const SEGMENT_VERSION: u8 = 1;
/// Bytes before a segment's first record: magic, version, 3 zero bytes, first index.
pub const SEGMENT_HEADER_LEN: u64 = 16;
/// Bytes before each record in a segment: length and CRC-32.
pub const FRAME_HEADER_LEN: u64 = 8;
/// The first bytes of the watermark file.
pub const WATERMARK_MAGIC: [u8; 4] = *b"EVWM";
/// The watermark file's length.
pub const WATERMARK_LEN: usize = 36;
/// The first bytes of the checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"EVCP";
/// Hashes per full tile (C2SP tlog-tiles height 8).
pub const TILE_WIDTH: u64 = 256;
/// Bytes of a hash.
const HASH_LEN: u64 = 32;
/// A record is at least as long as the bytes that say its index (5..13).
const MIN_RECORD_LEN: usize = 13;
/// Bytes read at a time when scanning a segment at start.
const SCAN_CHUNK: usize = 1 << 20;
/// Rebuilt derived bytes held before they are written out at start.
const REBUILD_FLUSH: usize = 4 << 20;

/// Sizes the log works with; the defaults suit production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLogOptions {
    /// A segment file rolls to a new one once it holds this many bytes (256 MiB).
    pub segment_bytes: u64,
    /// The derived files are synced, and the watermark advanced, whenever the log passes
    /// a multiple of this many entries (65,536), and at every roll.
    pub watermark_entries: u64,
    /// Tiles (full, or the partial ones at the right edge) kept in memory with their inner
    /// hashes, for each of leaf tiles and upper-level tiles (64 each, at most 16 KiB a
    /// tile: 2 MiB).
    pub tile_cache: usize,
    /// Sealed segments whose files are kept open at once (16, two files each); the
    /// segments being written keep theirs.
    pub open_segments: usize,
}

impl Default for FileLogOptions {
    fn default() -> FileLogOptions {
        FileLogOptions {
            segment_bytes: 256 << 20,
            watermark_entries: 65_536,
            tile_cache: 64,
            open_segments: 16,
        }
    }
}

/// The watermark: the derived files are durable for the first `size` entries, which end
/// at byte `offset` of the segment that starts at entry `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watermark {
    size: u64,
    segment: u64,
    offset: u64,
}

impl Watermark {
    fn encode(&self) -> [u8; WATERMARK_LEN] {
        let mut out = [0u8; WATERMARK_LEN];
        out[0..4].copy_from_slice(&WATERMARK_MAGIC);
        out[4] = 1;
        out[8..16].copy_from_slice(&self.size.to_be_bytes());
        out[16..24].copy_from_slice(&self.segment.to_be_bytes());
        out[24..32].copy_from_slice(&self.offset.to_be_bytes());
        let crc = crc32fast::hash(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Watermark> {
        if bytes.len() != WATERMARK_LEN
            || bytes[0..4] != WATERMARK_MAGIC
            || bytes[4] != 1
            || bytes[5..8] != [0, 0, 0]
            || crc32fast::hash(&bytes[..32]).to_be_bytes() != bytes[32..36]
        {
            return None;
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Some(Watermark {
            size: word(8),
            segment: word(16),
            offset: word(24),
        })
    }
}

/// A segment's open files.
#[derive(Debug)]
struct SegmentFiles {
    seg: Box<dyn VfsFile>,
    idx: Box<dyn VfsFile>,
}

/// One segment: its records and their offsets.
#[derive(Debug)]
struct Segment {
    first: u64,
    seg_path: PathBuf,
    idx_path: PathBuf,
    /// Bytes of the segment that hold published records. For the current segment it is
    /// stored before the size, so a reader that loaded the size sees at least its end. For
    /// a sealed segment it is set when its files are opened.
    end: AtomicU64,
    /// The open files. Segments from the watermark's on keep theirs; older (sealed) ones
    /// are opened when read and closed again, at most
    /// [`FileLogOptions::open_segments`] of them open at once.
    files: Mutex<Option<Arc<SegmentFiles>>>,
}

impl Segment {
    fn new(first: u64, dir: &Path, files: Option<SegmentFiles>, end: u64) -> Segment {
        let (seg_path, idx_path) = segment_paths(dir, first);
        Segment {
            first,
            seg_path,
            idx_path,
            end: AtomicU64::new(end),
            files: Mutex::new(files.map(Arc::new)),
        }
    }
}

/// The writer's state, under its lock.
#[derive(Debug, Default)]
struct Writer {
    /// The first write or sync failure, if any.
    poisoned: Option<String>,
    /// The last durable watermark.
    watermark: Option<Watermark>,
    /// Reused buffers: segment bytes, offsets, tile hashes per level.
    records: Vec<u8>,
    offsets: Vec<u8>,
    levels: Vec<Vec<u8>>,
}

/// Tiles, keyed by (tile level, tile index, width), with all their inner hashes, evicted
/// oldest first; leaf tiles and upper tiles (which every proof uses) in separate queues, so
/// that one kind does not evict the other.
#[derive(Debug, Default)]
struct TileCache {
    tiles: HashMap<(u32, u64, u32), Arc<Vec<Hash>>>,
    order: [VecDeque<(u32, u64, u32)>; 2],
}

/// The log in files. See the module documentation.
pub struct FileLog {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    options: FileLogOptions,
    size: AtomicU64,
    segments: RwLock<Vec<Arc<Segment>>>,
    tiles: RwLock<Vec<Arc<dyn VfsFile>>>,
    writer: Mutex<Writer>,
    cache: Mutex<TileCache>,
    /// First indexes of the sealed segments with open files, oldest opened first.
    open_sealed: Mutex<VecDeque<u64>>,
    /// The latest checkpoint stored, when newer than the durable one in the file.
    latest_checkpoint: Mutex<Option<String>>,
}

impl fmt::Debug for FileLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLog")
            .field("dir", &self.dir)
            .field("size", &self.size.load(Ordering::Acquire))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Maps an I/O error to a [`StoreError`] naming the operation and the file; a full disk
/// says so.
fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| {
        let op = if source.kind() == io::ErrorKind::StorageFull {
            "the disk is full: cannot write"
        } else {
            op
        };
        StoreError::Io { op, path, source }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

fn frame_crc(len: [u8; 4], record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(record);
    h.finalize()
}

/// The index a record says it has (bytes 5..13).
fn record_index(record: &[u8]) -> Option<u64> {
    record.get(5..13).map(be_u64)
}

/// Appends a record's frame to `out`.
fn push_frame(out: &mut Vec<u8>, record: &[u8]) {
    let len = u32::try_from(record.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, record).to_be_bytes());
    out.extend_from_slice(record);
}

/// Why bytes at an offset are not a valid frame.
#[derive(Debug)]
enum FrameError {
    /// Fewer bytes than the frame needs.
    Short,
    /// The checksum does not match.
    Checksum,
    /// Too short to be a record.
    Tiny,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Short => "the record is cut short",
            FrameError::Checksum => "the record's CRC-32 does not match",
            FrameError::Tiny => "the record is too short to hold its index",
        })
    }
}

/// Parses the frame at the start of `buf`: its record and the frame's length.
fn parse_frame(buf: &[u8]) -> Result<(&[u8], usize), FrameError> {
    if buf.len() < FRAME_HEADER_LEN as usize {
        return Err(FrameError::Short);
    }
    let len_bytes = [buf[0], buf[1], buf[2], buf[3]];
    let len = u32::from_be_bytes(len_bytes) as usize;
    let total = FRAME_HEADER_LEN as usize + len;
    if buf.len() < total {
        return Err(FrameError::Short);
    }
    let record = &buf[FRAME_HEADER_LEN as usize..total];
    if frame_crc(len_bytes, record) != be_u32(&buf[4..8]) {
        return Err(FrameError::Checksum);
    }
    if len < MIN_RECORD_LEN {
        return Err(FrameError::Tiny);
    }
    Ok((record, total))
}

fn segment_header(first: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4] = SEGMENT_VERSION;
    h[8..16].copy_from_slice(&first.to_be_bytes());
    h
}

/// Hashes `hashes` (a power of two of them, a complete subtree's level) up to one.
fn hash_up(mut hashes: Vec<Hash>) -> Hash {
    while hashes.len() > 1 {
        hashes = hashes
            .chunks(2)
            .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    hashes.first().copied().unwrap_or_else(merkle::empty_root)
}

fn hashes_of(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(HASH_LEN as usize)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect()
}

/// Reads the hashes of level `8·tile_level` numbered `first..first + count`.
fn read_hashes(
    file: &dyn VfsFile,
    path: &Path,
    first: u64,
    count: u64,
) -> Result<Vec<Hash>, StoreError> {
    let mut buf = vec![0u8; (count * HASH_LEN) as usize];
    file.read_exact_at(&mut buf, first * HASH_LEN)
        .map_err(io_err("reading tree hashes from", path))?;
    Ok(hashes_of(&buf))
}

/// The tile files as a subtree source, without a cache (used while opening).
struct TileFiles<'a> {
    files: &'a [Arc<dyn VfsFile>],
    dir: &'a Path,
}

impl SubtreeSource for TileFiles<'_> {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let tile_level = (level / 8) as usize;
        let rest = level % 8;
        let file = self.files.get(tile_level).ok_or_else(|| {
            StoreError::Corrupt(format!("tree hashes of level {} are missing", level & !7))
        })?;
        let path = tile_path(self.dir, tile_level);
        Ok(hash_up(read_hashes(
            file.as_ref(),
            &path,
            index << rest,
            1 << rest,
        )?))
    }
}

fn tile_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("{level}.hashes"))
}

fn segment_paths(dir: &Path, first: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{first:020}.seg")),
        dir.join(format!("{first:020}.idx")),
    )
}

/// Reads a whole small file, `None` when it does not exist.
fn read_small(vfs: &dyn Vfs, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match vfs.open(path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    let len = file.byte_len().map_err(io_err("reading", path))?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.read_exact_at(&mut buf, 0)
        .map_err(io_err("reading", path))?;
    Ok(Some(buf))
}

/// The tree size a checkpoint note states (its second line), without checking anything
/// else: used only to refuse cutting the log below it.
/// The checkpoint file's bytes for a note (docs/FORMAT.md, 7.5).
fn encode_checkpoint(note: &str) -> Result<Vec<u8>, StoreError> {
    let text = note.as_bytes();
    let mut bytes = Vec::with_capacity(12 + text.len());
    bytes.extend_from_slice(&CHECKPOINT_MAGIC);
    bytes.extend_from_slice(
        &u32::try_from(text.len())
            .map_err(|_| StoreError::Corrupt("checkpoint note is too long".into()))?
            .to_be_bytes(),
    );
    bytes.extend_from_slice(&crc32fast::hash(text).to_be_bytes());
    bytes.extend_from_slice(text);
    Ok(bytes)
}

fn checkpoint_size(note: &str) -> Option<u64> {
    note.split('\n').nth(1)?.parse().ok()
}

fn decode_checkpoint(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 12 || bytes[0..4] != CHECKPOINT_MAGIC {
        return None;
    }
    let len = be_u32(&bytes[4..8]) as usize;
    let text = bytes.get(12..)?;
    if text.len() != len || crc32fast::hash(text) != be_u32(&bytes[8..12]) {
        return None;
    }
    String::from_utf8(text.to_vec()).ok()
}

/// Bytes being rebuilt for one derived file at start, written out in large pieces.
struct Rebuild {
    at: u64,
    bytes: Vec<u8>,
}

impl Rebuild {
    fn flush(&mut self, file: &dyn VfsFile, path: &Path) -> Result<(), StoreError> {
        if !self.bytes.is_empty() {
            file.write_all_at(&self.bytes, self.at)
                .map_err(io_err("rebuilding", path))?;
            self.at += self.bytes.len() as u64;
            self.bytes.clear();
        }
        Ok(())
    }
}

impl FileLog {
    /// Opens (creating if needed) the log in `dir` with the default options, recovering
    /// from whatever a crash left (see the module documentation).
    pub fn open(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<FileLog, StoreError> {
        FileLog::open_with(vfs, dir, FileLogOptions::default())
    }

    /// [`FileLog::open`] with other sizes.
    pub fn open_with(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        options: FileLogOptions,
    ) -> Result<FileLog, StoreError> {
        let log = FileLog {
            vfs,
            dir: dir.to_owned(),
            options: FileLogOptions {
                segment_bytes: options.segment_bytes.max(SEGMENT_HEADER_LEN + 1),
                watermark_entries: options.watermark_entries.max(1),
                tile_cache: options.tile_cache,
                open_segments: options.open_segments.max(1),
            },
            size: AtomicU64::new(0),
            segments: RwLock::new(Vec::new()),
            tiles: RwLock::new(Vec::new()),
            writer: Mutex::new(Writer::default()),
            cache: Mutex::new(TileCache::default()),
            open_sealed: Mutex::new(VecDeque::new()),
            latest_checkpoint: Mutex::new(None),
        };
        log.recover()?;
        Ok(log)
    }

    fn segments_dir(&self) -> PathBuf {
        self.dir.join("segments")
    }

    fn tiles_dir(&self) -> PathBuf {
        self.dir.join("tiles")
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.vfs
            .sync_dir(dir)
            .map_err(io_err("fsync of the folder", dir))
    }

    /// Writes a small file durably: temporary file, fsync, rename, fsync of the folder.
    fn write_durable(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let file = self
            .vfs
            .open(&tmp, OpenMode::Truncate)
            .map_err(io_err("creating", &tmp))?;
        file.write_all_at(bytes, 0)
            .map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("fsync of", &tmp))?;
        self.vfs
            .rename(&tmp, &path)
            .map_err(io_err("renaming into place", &path))?;
        self.sync_dir(&self.dir)
    }

    /// Opens the files, cuts a torn tail and rebuilds the derived files past the watermark.
    fn recover(&self) -> Result<(), StoreError> {
        let vfs = self.vfs.as_ref();
        let segdir = self.segments_dir();
        let tiledir = self.tiles_dir();
        // Folders created here are durable only once their parents are synced.
        let mut created = Vec::new();
        for d in segdir.ancestors() {
            if d.as_os_str().is_empty() || vfs.exists(d).map_err(io_err("looking for", d))? {
                break;
            }
            created.push(d.to_owned());
        }
        for d in [&segdir, &tiledir] {
            vfs.create_dir_all(d)
                .map_err(io_err("creating the folder", d))?;
        }
        for d in created.iter().rev() {
            match d.parent() {
                Some(p) if p.as_os_str().is_empty() => self.sync_dir(Path::new("."))?,
                Some(p) => self.sync_dir(p)?,
                None => {}
            }
        }
        self.sync_dir(&self.dir)?;
        for name in ["watermark.tmp", "checkpoint.tmp", "genesis.tmp"] {
            let tmp = self.dir.join(name);
            if vfs.exists(&tmp).map_err(io_err("looking for", &tmp))? {
                vfs.remove(&tmp).map_err(io_err("removing", &tmp))?;
            }
        }

        let wm_path = self.dir.join("watermark");
        let watermark = match read_small(vfs, &wm_path)? {
            None => None,
            Some(bytes) => Some(Watermark::decode(&bytes).ok_or_else(|| {
                StoreError::Corrupt(format!("{} is not a valid watermark", wm_path.display()))
            })?),
        };
        let wm = watermark.unwrap_or(Watermark {
            size: 0,
            segment: 0,
            offset: SEGMENT_HEADER_LEN,
        });
        // Cutting the log below a checkpoint that was signed over it would destroy entries
        // that were acknowledged: refuse, and leave the files for inspection.
        let floor = self
            .checkpoint()?
            .and_then(|note| checkpoint_size(&note))
            .unwrap_or(0);

        // Segments, oldest first.
        let mut firsts = Vec::new();
        for name in vfs.list(&segdir).map_err(io_err("listing", &segdir))? {
            if let Some(first) = name
                .strip_suffix(".seg")
                .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        if firsts.first().is_some_and(|f| *f != 0) {
            return Err(StoreError::Corrupt(format!(
                "the first segment in {} starts at entry {}, not 0",
                segdir.display(),
                firsts[0]
            )));
        }
        if !firsts.contains(&wm.segment) && wm.size > 0 {
            return Err(StoreError::Corrupt(format!(
                "the watermark names segment {:020}.seg, which is missing from {}",
                wm.segment,
                segdir.display()
            )));
        }

        // Tile files.
        let mut tiles: Vec<Arc<dyn VfsFile>> = Vec::new();
        loop {
            let path = tile_path(&tiledir, tiles.len());
            if !vfs.exists(&path).map_err(io_err("looking for", &path))? {
                break;
            }
            let file = vfs
                .open(&path, OpenMode::Existing)
                .map_err(io_err("opening", &path))?;
            tiles.push(Arc::from(file));
        }
        for (level, file) in tiles.iter().enumerate() {
            let want = (wm.size >> (8 * level)) * HASH_LEN;
            let have = file
                .byte_len()
                .map_err(io_err("reading", &tile_path(&tiledir, level)))?;
            if have < want {
                return Err(StoreError::Corrupt(format!(
                    "{} holds {have} bytes, the watermark at entry {} says at least {want}",
                    tile_path(&tiledir, level).display(),
                    wm.size
                )));
            }
        }
        let levels_needed = (0..8).filter(|l| wm.size >> (8 * l) > 0).count();
        if tiles.len() < levels_needed {
            return Err(StoreError::Corrupt(format!(
                "{} is missing, the watermark at entry {} needs it",
                tile_path(&tiledir, tiles.len()).display(),
                wm.size
            )));
        }
        let mut frontier = Frontier::from_source(
            &TileFiles {
                files: &tiles,
                dir: &tiledir,
            },
            wm.size,
        )
        .map_err(|e| match e {
            merkle::ProofError::Source(e) => e,
            other => StoreError::Corrupt(format!("reading the tree's right edge: {other}")),
        })?;

        let mut segments: Vec<Arc<Segment>> = Vec::new();
        let mut next = wm.size;
        let mut rebuilt: Vec<Rebuild> = (0..tiles.len().max(1))
            .map(|level| Rebuild {
                at: (wm.size >> (8 * level)) * HASH_LEN,
                bytes: Vec::new(),
            })
            .collect();
        let mut scanned = Vec::new();
        for &first in &firsts {
            let (seg_path, idx_path) = segment_paths(&segdir, first);
            if first < wm.segment {
                // Sealed and wholly below the watermark: durable as it is, and opened only
                // when read.
                if !vfs
                    .exists(&idx_path)
                    .map_err(io_err("looking for", &idx_path))?
                {
                    return Err(StoreError::Corrupt(format!(
                        "{} is missing",
                        idx_path.display()
                    )));
                }
                segments.push(Arc::new(Segment::new(first, &segdir, None, 0)));
                continue;
            }
            let seg = vfs
                .open(&seg_path, OpenMode::Existing)
                .map_err(io_err("opening", &seg_path))?;
            let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
            let header_ok =
                seg.read_exact_at(&mut header, 0).is_ok() && header == segment_header(first);
            let at_watermark = first == wm.segment;
            if !header_ok || (!at_watermark && first != next) {
                if (at_watermark && watermark.is_some()) || first < next {
                    return Err(StoreError::Corrupt(format!(
                        "{} should hold entries from {next} on and does not (bad header or \
                         wrong first index)",
                        seg_path.display()
                    )));
                }
                // A segment created after the end of the log, never written to (a roll
                // cut short, or one after a torn tail): remove it.
                let mut probe = vec![0u8; 64];
                let n = seg.read_at(&mut probe, SEGMENT_HEADER_LEN).unwrap_or(0);
                if header_ok && n > 0 && parse_frame(&probe[..n]).is_ok() && first > next {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds entries from {first} on, but the log before it ends at {next}",
                        seg_path.display()
                    )));
                }
                vfs.remove(&seg_path)
                    .map_err(io_err("removing", &seg_path))?;
                if vfs
                    .exists(&idx_path)
                    .map_err(io_err("looking for", &idx_path))?
                {
                    vfs.remove(&idx_path)
                        .map_err(io_err("removing", &idx_path))?;
                }
                continue;
            }
            let idx = vfs
                .open(&idx_path, OpenMode::Create)
                .map_err(io_err("opening", &idx_path))?;
            let start = if first == wm.segment {
                wm.offset
            } else {
                SEGMENT_HEADER_LEN
            };
            let idx_durable = (next - first) * 8;
            if first == wm.segment {
                let have = idx.byte_len().map_err(io_err("reading", &idx_path))?;
                if have < idx_durable {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds {have} bytes, the watermark at entry {} says at least \
                         {idx_durable}",
                        idx_path.display(),
                        wm.size
                    )));
                }
            }
            let len = seg.byte_len().map_err(io_err("reading", &seg_path))?;
            if len < start {
                return Err(StoreError::Corrupt(format!(
                    "{} holds {len} bytes, the watermark at entry {} says at least {start}",
                    seg_path.display(),
                    wm.size
                )));
            }
            // What is read next must be what the disk holds: sync what a process crash left
            // in the page cache, then drop the cache, so that pages a failed fsync left
            // behind (clean, never written) are not taken for durable records.
            if len > start {
                seg.sync_data().map_err(io_err("fdatasync of", &seg_path))?;
                seg.drop_cache()
                    .map_err(io_err("dropping the page cache of", &seg_path))?;
            }
            // Scan the records from `start`.
            let mut offsets = Rebuild {
                at: idx_durable,
                bytes: Vec::new(),
            };
            let mut pos = start;
            let mut buf: Vec<u8> = Vec::new();
            let mut buf_at = start;
            loop {
                if pos >= len {
                    break;
                }
                let consumed = pos - buf_at;
                let avail = buf.len() as u64 - consumed.min(buf.len() as u64);
                let need = if avail >= FRAME_HEADER_LEN {
                    let at = consumed as usize;
                    FRAME_HEADER_LEN + u64::from(be_u32(&buf[at..at + 4]))
                } else {
                    FRAME_HEADER_LEN
                };
                if avail < need {
                    if pos + need > len {
                        break; // cut short: torn
                    }
                    let want = need.max(SCAN_CHUNK as u64).min(len - pos);
                    buf.clear();
                    buf.resize(want as usize, 0);
                    seg.read_exact_at(&mut buf, pos)
                        .map_err(io_err("reading", &seg_path))?;
                    buf_at = pos;
                    continue;
                }
                let at = (pos - buf_at) as usize;
                let Ok((record, total)) = parse_frame(&buf[at..]) else {
                    break;
                };
                if record_index(record) != Some(next) {
                    break;
                }
                offsets.bytes.extend_from_slice(&pos.to_be_bytes());
                for node in frontier.append(merkle::leaf_hash(record)) {
                    if node.level % 8 == 0 {
                        let level = (node.level / 8) as usize;
                        while rebuilt.len() <= level {
                            rebuilt.push(Rebuild {
                                at: 0,
                                bytes: Vec::new(),
                            });
                        }
                        rebuilt[level].bytes.extend_from_slice(node.hash.as_bytes());
                    }
                }
                next += 1;
                pos += total as u64;
                if offsets.bytes.len() >= REBUILD_FLUSH {
                    offsets.flush(idx.as_ref(), &idx_path)?;
                }
                if rebuilt.iter().map(|r| r.bytes.len()).sum::<usize>() >= REBUILD_FLUSH {
                    self.flush_rebuilt(&mut tiles, &mut rebuilt)?;
                }
            }
            if pos < len {
                if next < floor {
                    return Err(StoreError::Corrupt(format!(
                        "{} has an unreadable record at byte {pos} (entry {next}), below the \
                         stored checkpoint's {floor} entries: refusing to cut the log",
                        seg_path.display()
                    )));
                }
                seg.set_len(pos)
                    .map_err(io_err("cutting the torn tail of", &seg_path))?;
            }
            offsets.flush(idx.as_ref(), &idx_path)?;
            idx.set_len((next - first) * 8)
                .map_err(io_err("truncating", &idx_path))?;
            scanned.push((segments.len(), seg_path));
            segments.push(Arc::new(Segment::new(
                first,
                &segdir,
                Some(SegmentFiles { seg, idx }),
                pos,
            )));
        }
        if next < floor {
            return Err(StoreError::Corrupt(format!(
                "the log holds {next} entries, fewer than the {floor} of its stored checkpoint"
            )));
        }
        self.flush_rebuilt(&mut tiles, &mut rebuilt)?;
        for (level, file) in tiles.iter().enumerate() {
            file.set_len((next >> (8 * level)) * HASH_LEN)
                .map_err(io_err("truncating", &tile_path(&tiledir, level)))?;
        }
        let fresh = segments.is_empty();
        if fresh {
            segments.push(self.create_segment(0)?);
        }

        // Make what was recovered durable (it may have been read from the page cache after
        // a process crash) before anyone signs over it, then move the watermark to the end.
        let current = segments
            .last()
            .map(|s| (s.first, s.end.load(Ordering::Relaxed)));
        let moved =
            watermark.is_none_or(|w| Some((w.segment, w.offset)) != current) || wm.size != next;
        if moved {
            for (k, path) in &scanned {
                self.files(&segments[*k])?
                    .seg
                    .sync_data()
                    .map_err(io_err("fdatasync of", path))?;
            }
        }
        let (cur_first, cur_end) = current.unwrap_or((0, SEGMENT_HEADER_LEN));
        self.size.store(next, Ordering::Release);
        *self
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner) = segments;
        *self.tiles.write().unwrap_or_else(PoisonError::into_inner) = tiles;
        let mut writer = lock(&self.writer);
        writer.watermark = watermark;
        if moved {
            self.advance_watermark(
                &mut writer,
                Watermark {
                    size: next,
                    segment: cur_first,
                    offset: cur_end,
                },
            )?;
        }
        Ok(())
    }

    /// Writes out rebuilt tile hashes, creating level files as needed.
    fn flush_rebuilt(
        &self,
        tiles: &mut Vec<Arc<dyn VfsFile>>,
        rebuilt: &mut [Rebuild],
    ) -> Result<(), StoreError> {
        let tiledir = self.tiles_dir();
        for (level, r) in rebuilt.iter_mut().enumerate() {
            if r.bytes.is_empty() {
                continue;
            }
            while tiles.len() <= level {
                let path = tile_path(&tiledir, tiles.len());
                let file = self
                    .vfs
                    .open(&path, OpenMode::Create)
                    .map_err(io_err("creating", &path))?;
                tiles.push(Arc::from(file));
            }
            r.flush(tiles[level].as_ref(), &tile_path(&tiledir, level))?;
        }
        Ok(())
    }

    /// Creates a new, empty segment durably: header written and synced, folder synced.
    fn create_segment(&self, first: u64) -> Result<Arc<Segment>, StoreError> {
        let (seg_path, idx_path) = segment_paths(&self.segments_dir(), first);
        let seg = self
            .vfs
            .open(&seg_path, OpenMode::Truncate)
            .map_err(io_err("creating", &seg_path))?;
        seg.write_all_at(&segment_header(first), 0)
            .map_err(io_err("writing", &seg_path))?;
        seg.sync_all().map_err(io_err("fsync of", &seg_path))?;
        let idx = self
            .vfs
            .open(&idx_path, OpenMode::Truncate)
            .map_err(io_err("creating", &idx_path))?;
        self.sync_dir(&self.segments_dir())?;
        Ok(Arc::new(Segment::new(
            first,
            &self.segments_dir(),
            Some(SegmentFiles { seg, idx }),
            SEGMENT_HEADER_LEN,
        )))
    }

    /// Syncs the derived files written since the last watermark, then records `to`
    /// durably.
    fn advance_watermark(&self, writer: &mut Writer, to: Watermark) -> Result<(), StoreError> {
        let since = writer.watermark.map_or(0, |w| w.segment);
        let segments: Vec<Arc<Segment>> = self
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.first >= since)
            .cloned()
            .collect();
        for s in &segments {
            self.files(s)?
                .idx
                .sync_data()
                .map_err(io_err("fdatasync of", &s.idx_path))?;
        }
        let tiles = self
            .tiles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let tiledir = self.tiles_dir();
        for (level, file) in tiles.iter().enumerate() {
            file.sync_data()
                .map_err(io_err("fdatasync of", &tile_path(&tiledir, level)))?;
        }
        self.sync_dir(&tiledir)?;
        self.sync_dir(&self.segments_dir())?;
        self.write_durable("watermark", &to.encode())?;
        writer.watermark = Some(to);
        Ok(())
    }

    /// The segment holding entry `index` and the first entry of the segment after it.
    fn segment_of(&self, index: u64) -> Result<(Arc<Segment>, u64), StoreError> {
        let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        let k = segments.partition_point(|s| s.first <= index);
        let seg = k
            .checked_sub(1)
            .and_then(|k| segments.get(k))
            .ok_or_else(|| StoreError::Corrupt(format!("no segment holds entry {index}")))?;
        let next = segments.get(k).map_or(u64::MAX, |s| s.first);
        Ok((seg.clone(), next))
    }

    /// The byte range of entries `start..end` in `seg` (all in it, below `size`).
    fn byte_range(
        &self,
        seg: &Segment,
        next_first: u64,
        start: u64,
        end: u64,
        size: u64,
    ) -> Result<(u64, u64), StoreError> {
        let files = self.files(seg)?;
        let local = start - seg.first;
        let read = |at: u64, buf: &mut [u8]| {
            files
                .idx
                .read_exact_at(buf, at * 8)
                .map_err(io_err("reading", &seg.idx_path))
        };
        let both = end < size && end < next_first;
        let (from, to) = if both && end - start <= 64 {
            // One read for both ends of a short run.
            let mut b = vec![0u8; 8 * (end - start + 1) as usize];
            read(local, &mut b)?;
            (be_u64(&b), be_u64(&b[b.len() - 8..]))
        } else {
            let mut b = [0u8; 8];
            read(local, &mut b)?;
            let from = u64::from_be_bytes(b);
            let to = if both {
                read(end - seg.first, &mut b)?;
                u64::from_be_bytes(b)
            } else {
                // Loaded after the size: at least the end of entry `end - 1`.
                seg.end.load(Ordering::Acquire)
            };
            (from, to)
        };
        if to < from + FRAME_HEADER_LEN * (end - start) || from < SEGMENT_HEADER_LEN {
            return Err(StoreError::Corrupt(format!(
                "{}: the offsets of entries {start}..{end} are not increasing ({from}..{to})",
                seg.idx_path.display()
            )));
        }
        Ok((from, to))
    }

    /// Reads entries `start..end` of one segment into `out`.
    fn read_run(
        &self,
        seg: &Segment,
        next_first: u64,
        start: u64,
        end: u64,
        size: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let (from, to) = self.byte_range(seg, next_first, start, end, size)?;
        let mut buf = vec![0u8; usize::try_from(to - from).unwrap_or(usize::MAX)];
        self.files(seg)?
            .seg
            .read_exact_at(&mut buf, from)
            .map_err(io_err("reading", &seg.seg_path))?;
        let mut at = 0usize;
        for index in start..end {
            let (record, total) = parse_frame(&buf[at..]).map_err(|e| {
                StoreError::Corrupt(format!(
                    "{} at byte {} (entry {index}): {e}",
                    seg.seg_path.display(),
                    from + at as u64
                ))
            })?;
            if record_index(record) != Some(index) {
                return Err(StoreError::Corrupt(format!(
                    "{} at byte {}: the record there is not entry {index}",
                    seg.seg_path.display(),
                    from + at as u64
                )));
            }
            out.push(record.to_vec());
            at += total;
        }
        Ok(())
    }

    fn check_poisoned(writer: &Writer) -> Result<(), StoreError> {
        match &writer.poisoned {
            Some(why) => Err(StoreError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write under the writer lock; a failure poisons the log.
    fn write_locked<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = lock(&self.writer);
        FileLog::check_poisoned(&writer)?;
        let result = f(&mut writer);
        if let Err(e) = &result {
            writer.poisoned = Some(e.to_string());
        }
        result
    }

    /// Checks a batch before anything is written: records carry their indexes, and the
    /// nodes hold exactly the hashes each tile level gains, in order. Returns the hashes
    /// per tile level.
    fn check_batch(
        records: &[Vec<u8>],
        nodes: &[Node],
        start: u64,
        levels: &mut Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        for (i, record) in records.iter().enumerate() {
            let index = start + i as u64;
            if record_index(record) != Some(index) {
                return Err(StoreError::Corrupt(format!(
                    "refusing to append: the record for entry {index} does not carry that index"
                )));
            }
            if u32::try_from(record.len()).is_err() {
                return Err(StoreError::Corrupt(format!(
                    "refusing to append: the record for entry {index} is {} bytes, more than \
                     a segment frame can hold",
                    record.len()
                )));
            }
        }
        let end = start + records.len() as u64;
        for l in levels.iter_mut() {
            l.clear();
        }
        for node in nodes.iter().filter(|n| n.level % 8 == 0) {
            let level = (node.level / 8) as usize;
            while levels.len() <= level {
                levels.push(Vec::new());
            }
            let expected = (start >> node.level) + levels[level].len() as u64 / HASH_LEN;
            if node.index != expected {
                return Err(StoreError::Corrupt(format!(
                    "refusing to append: tree node (level {}, index {}) given where index \
                     {expected} belongs",
                    node.level, node.index
                )));
            }
            levels[level].extend_from_slice(node.hash.as_bytes());
        }
        // Every tile level a 64-bit size can have, whether or not nodes were given for it.
        for level in 0..8usize {
            let shift = 8 * level as u32;
            let want = (end >> shift) - (start >> shift);
            let have = levels.get(level).map_or(0, |l| l.len() as u64 / HASH_LEN);
            if have != want {
                return Err(StoreError::Corrupt(format!(
                    "refusing to append: {have} tree node(s) of level {shift} given, the batch \
                     completes {want}"
                )));
            }
        }
        Ok(())
    }

    fn append_locked(
        &self,
        writer: &mut Writer,
        records: &[Vec<u8>],
        start: u64,
    ) -> Result<(), StoreError> {
        let end = start + records.len() as u64;
        let current = self
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned();
        let mut seg =
            current.ok_or_else(|| StoreError::Corrupt("the log has no segment".into()))?;
        if seg.end.load(Ordering::Relaxed) >= self.options.segment_bytes && start > seg.first {
            seg = self.roll(writer, start)?;
        }
        let seg_end = seg.end.load(Ordering::Relaxed);

        // One buffer, one write, one fdatasync: the records are the truth.
        let mut buf = std::mem::take(&mut writer.records);
        let mut offsets = std::mem::take(&mut writer.offsets);
        buf.clear();
        offsets.clear();
        for record in records {
            offsets.extend_from_slice(&(seg_end + buf.len() as u64).to_be_bytes());
            push_frame(&mut buf, record);
        }
        let new_end = seg_end + buf.len() as u64;
        let files = self.files(&seg)?;
        let written = files
            .seg
            .write_all_at(&buf, seg_end)
            .map_err(io_err("writing", &seg.seg_path))
            .and_then(|()| {
                files
                    .seg
                    .sync_data()
                    .map_err(io_err("fdatasync of", &seg.seg_path))
            });
        writer.records = buf;
        written?;

        // The derived files: written now, synced when the watermark advances.
        files
            .idx
            .write_all_at(&offsets, (start - seg.first) * 8)
            .map_err(io_err("writing", &seg.idx_path))?;
        writer.offsets = offsets;
        let tiledir = self.tiles_dir();
        for level in 0..writer.levels.len() {
            if writer.levels[level].is_empty() {
                continue;
            }
            let file = self.tile_file(level, true)?;
            let at = (start >> (8 * level)) * HASH_LEN;
            file.write_all_at(&writer.levels[level], at)
                .map_err(io_err("writing", &tile_path(&tiledir, level)))?;
        }
        let interval = self.options.watermark_entries;
        let due = writer
            .watermark
            .is_none_or(|w| end / interval > w.size / interval);
        seg.end.store(new_end, Ordering::Release);
        if due {
            self.advance_watermark(
                writer,
                Watermark {
                    size: end,
                    segment: seg.first,
                    offset: new_end,
                },
            )?;
        }
        self.size.store(end, Ordering::Release);
        Ok(())
    }

    /// Starts a new segment at entry `first` and moves the watermark to it.
    fn roll(&self, writer: &mut Writer, first: u64) -> Result<Arc<Segment>, StoreError> {
        let seg = self.create_segment(first)?;
        let sealed = {
            let mut segments = self
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let sealed = segments.last().cloned();
            segments.push(seg.clone());
            sealed
        };
        self.advance_watermark(
            writer,
            Watermark {
                size: first,
                segment: first,
                offset: SEGMENT_HEADER_LEN,
            },
        )?;
        // Below the watermark now: its files may be closed like any sealed segment's.
        if let Some(sealed) = sealed {
            self.note_open(sealed.first);
        }
        Ok(seg)
    }

    /// A segment's files, opening them if they are closed.
    fn files(&self, seg: &Segment) -> Result<Arc<SegmentFiles>, StoreError> {
        let mut slot = lock(&seg.files);
        if let Some(files) = slot.as_ref() {
            return Ok(files.clone());
        }
        let open = |path: &Path| {
            self.vfs
                .open(path, OpenMode::Existing)
                .map_err(io_err("opening", path))
        };
        let files = Arc::new(SegmentFiles {
            seg: open(&seg.seg_path)?,
            idx: open(&seg.idx_path)?,
        });
        // Sealed: its length is its end.
        let len = files
            .seg
            .byte_len()
            .map_err(io_err("reading", &seg.seg_path))?;
        seg.end.store(len, Ordering::Release);
        *slot = Some(files.clone());
        drop(slot);
        self.note_open(seg.first);
        Ok(files)
    }

    /// Records that a sealed segment's files are open, closing the longest-open ones
    /// beyond the bound (readers still using them keep them until they are done).
    fn note_open(&self, first: u64) {
        let evicted = {
            let mut open = lock(&self.open_sealed);
            open.push_back(first);
            let mut evicted = Vec::new();
            while open.len() > self.options.open_segments {
                evicted.extend(open.pop_front());
            }
            evicted
        };
        for first in evicted {
            if let Ok((seg, _)) = self.segment_of(first) {
                if seg.first == first {
                    *lock(&seg.files) = None;
                }
            }
        }
    }

    /// The file of tile level `level`, created if `create` and missing.
    fn tile_file(&self, level: usize, create: bool) -> Result<Arc<dyn VfsFile>, StoreError> {
        if let Some(f) = self
            .tiles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(level)
        {
            return Ok(f.clone());
        }
        let path = tile_path(&self.tiles_dir(), level);
        if !create {
            return Err(StoreError::Corrupt(format!(
                "{} is missing",
                path.display()
            )));
        }
        let mut tiles = self.tiles.write().unwrap_or_else(PoisonError::into_inner);
        while tiles.len() <= level {
            let path = tile_path(&self.tiles_dir(), tiles.len());
            let file = self
                .vfs
                .open(&path, OpenMode::Create)
                .map_err(io_err("creating", &path))?;
            tiles.push(Arc::from(file));
        }
        Ok(tiles[level].clone())
    }

    /// The first `width` hashes of a tile with every complete subtree above them: `width`
    /// hashes of its bottom level, then `width / 2` of the next, and so on. Computing one
    /// costs fewer than `width` hashes, no more than the subtrees inside a full tile that
    /// a single inclusion proof needs. The first `width` hashes of a tile never change, so
    /// an entry stays valid as the log grows.
    fn tile(&self, tile_level: usize, tile: u64, width: u64) -> Result<Arc<Vec<Hash>>, StoreError> {
        let key = (tile_level as u32, tile, width as u32);
        if let Some(t) = lock(&self.cache).tiles.get(&key) {
            return Ok(t.clone());
        }
        let file = self.tile_file(tile_level, false)?;
        let mut all = read_hashes(
            file.as_ref(),
            &tile_path(&self.tiles_dir(), tile_level),
            tile * TILE_WIDTH,
            width,
        )?;
        let mut from = 0;
        let mut count = width as usize;
        while count > 1 {
            for i in 0..count / 2 {
                let h = merkle::node_hash(&all[from + 2 * i], &all[from + 2 * i + 1]);
                all.push(h);
            }
            from += count;
            count /= 2;
        }
        let all = Arc::new(all);
        if self.options.tile_cache > 0 {
            let mut cache = lock(&self.cache);
            let queue = usize::from(tile_level > 0);
            if cache.tiles.insert(key, all.clone()).is_none() {
                cache.order[queue].push_back(key);
            }
            while cache.order[queue].len() > self.options.tile_cache {
                if let Some(old) = cache.order[queue].pop_front() {
                    cache.tiles.remove(&old);
                }
            }
        }
        Ok(all)
    }
}

impl LogStore for FileLog {
    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn append(&self, records: &[Vec<u8>], nodes: &[Node]) -> Result<(), StoreError> {
        let mut writer = lock(&self.writer);
        FileLog::check_poisoned(&writer)?;
        if records.is_empty() {
            return Ok(());
        }
        let start = self.size.load(Ordering::Acquire);
        let mut levels = std::mem::take(&mut writer.levels);
        let checked = FileLog::check_batch(records, nodes, start, &mut levels);
        writer.levels = levels;
        checked?;
        let result = self.append_locked(&mut writer, records, start);
        if let Err(e) = &result {
            writer.poisoned = Some(e.to_string());
        }
        result
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let size = self.size();
        if index >= size {
            return Ok(None);
        }
        let (seg, next_first) = self.segment_of(index)?;
        let mut out = Vec::with_capacity(1);
        self.read_run(&seg, next_first, index, index + 1, size, &mut out)?;
        Ok(out.pop())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let size = self.size();
        let end = end.min(size);
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        let mut at = start;
        while at < end {
            let (seg, next_first) = self.segment_of(at)?;
            let stop = end.min(next_first);
            self.read_run(&seg, next_first, at, stop, size, &mut out)?;
            at = stop;
        }
        Ok(out)
    }

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let size = self.size();
        super::check_complete(level, index, size)?;
        let tile_level = (level / 8) as usize;
        let rest = level % 8;
        let first = index << rest;
        let tile = first / TILE_WIDTH;
        if rest == 0 {
            let file = self.tile_file(tile_level, false)?;
            let path = tile_path(&self.tiles_dir(), tile_level);
            return Ok(read_hashes(file.as_ref(), &path, first, 1)?[0]);
        }
        // The tile as the log's size has it: full, or the partial tile at the right edge.
        let width = ((size >> (8 * tile_level)) - tile * TILE_WIDTH).min(TILE_WIDTH);
        let all = self.tile(tile_level, tile, width)?;
        // Level `rest` of the tile starts after width + width/2 + ... hashes.
        let base: u64 = (0..rest).map(|r| width >> r).sum();
        let within = index - ((tile * TILE_WIDTH) >> rest);
        all.get((base + within) as usize)
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("tile ({tile_level}, {tile}) is short")))
    }

    fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        if let Some(note) = self
            .latest_checkpoint
            .lock()
            .map_err(|_| StoreError::Poisoned("a checkpoint writer panicked".into()))?
            .clone()
        {
            return Ok(Some(note));
        }
        let path = self.dir.join("checkpoint");
        Ok(read_small(self.vfs.as_ref(), &path)?.and_then(|b| decode_checkpoint(&b)))
    }

    fn set_checkpoint_durably(&self, note: &str) -> Result<(), StoreError> {
        let bytes = encode_checkpoint(note)?;
        self.write_locked(|_| self.write_durable("checkpoint", &bytes))?;
        self.set_checkpoint(note)
    }

    /// Kept in memory: the file holds the checkpoint last made durable, which is what a
    /// restart reads and what recovery holds the log to.
    fn set_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.write_locked(|_| {
            *self
                .latest_checkpoint
                .lock()
                .map_err(|_| StoreError::Poisoned("a checkpoint writer panicked".into()))? =
                Some(note.to_owned());
            Ok(())
        })
    }

    fn genesis(&self) -> Result<Option<Vec<u8>>, StoreError> {
        read_small(self.vfs.as_ref(), &self.dir.join("genesis"))
    }

    fn set_genesis(&self, json: &[u8]) -> Result<(), StoreError> {
        self.write_locked(|_| self.write_durable("genesis", json))
    }
}

impl SubtreeSource for FileLog {
    type Error = StoreError;

    fn subtree_hash(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        LogStore::subtree_hash(self, level, index)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use crate::storage::crashsim::{Records, Rng, nodes_for};
    use crate::storage::vfs::{Fate, OsFs, SimFs};
    use evident_core::merkle::MemoryTree;

    const DIR: &str = "/srv/log";

    fn small() -> FileLogOptions {
        FileLogOptions {
            segment_bytes: 4096,
            watermark_entries: 100,
            tile_cache: 2,
            open_segments: 2,
        }
    }

    /// A log being written, with everything it should hold.
    struct Fixture {
        log: FileLog,
        records: Records,
        frontier: Frontier,
        all: Vec<Vec<u8>>,
        rng: Rng,
    }

    impl Fixture {
        fn new(vfs: Arc<dyn Vfs>, dir: &Path, options: FileLogOptions) -> Fixture {
            Fixture {
                log: FileLog::open_with(vfs, dir, options).unwrap(),
                records: Records::new(11),
                frontier: Frontier::new(),
                all: Vec::new(),
                rng: Rng::new(13),
            }
        }

        fn batch(&mut self, n: usize, payload: u64) -> (Vec<Vec<u8>>, Vec<Node>) {
            let batch = self.records.batch(n, 0, payload.max(1));
            let nodes = nodes_for(&mut self.frontier.clone(), &batch);
            (batch, nodes)
        }

        fn append(&mut self, n: usize, payload: u64) -> Result<(), StoreError> {
            let (batch, nodes) = self.batch(n, payload);
            self.log.append(&batch, &nodes)?;
            nodes_for(&mut self.frontier, &batch);
            self.all.extend(batch);
            Ok(())
        }

        fn fill(&mut self, entries: usize, max_batch: u64, payload: u64) {
            while self.all.len() < entries {
                let n = self.rng.range(1, max_batch + 1) as usize;
                self.append(n.min(entries - self.all.len()), payload)
                    .unwrap();
            }
        }
    }

    fn check_reads(log: &FileLog, all: &[Vec<u8>], rng: &mut Rng) {
        let size = all.len() as u64;
        assert_eq!(log.size(), size);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(log.entry(i as u64).unwrap().as_ref(), Some(r), "entry {i}");
        }
        assert_eq!(log.entry(size).unwrap(), None);
        assert_eq!(log.entries(0, size + 10).unwrap(), all);
        for _ in 0..200 {
            let a = rng.range(0, size + 1);
            let b = rng.range(a, size + 20);
            let want = &all[a as usize..b.min(size) as usize];
            assert_eq!(log.entries(a, b).unwrap(), want, "entries({a}, {b})");
        }
    }

    #[test]
    fn reads_across_segments_before_and_after_reopening() {
        let fs = SimFs::new();
        let mut f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), small());
        f.fill(1200, 40, 400);
        let mut rng = Rng::new(1);
        check_reads(&f.log, &f.all, &mut rng);
        let names = fs.list(Path::new("/srv/log/segments")).unwrap();
        let segs = names.iter().filter(|n| n.ends_with(".seg")).count();
        assert!(segs > 20, "{segs} segments");
        assert_eq!(names.iter().filter(|n| n.ends_with(".idx")).count(), segs);
        let tiles = fs.list(Path::new("/srv/log/tiles")).unwrap();
        assert!(tiles.contains(&"0.hashes".to_owned()) && tiles.contains(&"1.hashes".to_owned()));
        let reopened = FileLog::open_with(Arc::new(fs.clone()), Path::new(DIR), small()).unwrap();
        check_reads(&reopened, &f.all, &mut rng);
        // Sealed segments are opened when read, and only a few stay open.
        for log in [&f.log, &reopened] {
            let segments = log.segments.read().unwrap();
            let open = segments.iter().filter(|s| lock(&s.files).is_some()).count();
            assert!(open <= small().open_segments + 1, "{open} segments open");
        }
        // Every segment but the last starts where the one before ended and holds whole
        // records only; the last one is the current one.
        let mut firsts: Vec<u64> = names
            .iter()
            .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        assert_eq!(firsts[0], 0);
        for first in &firsts {
            let r = reopened.entry(*first).unwrap().unwrap();
            assert_eq!(record_index(&r), Some(*first));
        }
    }

    #[test]
    fn subtree_hashes_match_a_memory_tree() {
        for (entries, levels) in [(3000u64, 0..13u32), (66_000, 0..17)] {
            let fs = SimFs::new();
            let options = FileLogOptions {
                watermark_entries: 10_000,
                ..FileLogOptions::default()
            };
            let mut f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), options);
            f.fill(entries as usize, 500, 1);
            let mut tree = MemoryTree::new();
            for r in &f.all {
                tree.push(merkle::leaf_hash(r));
            }
            // After a power cut every derived byte past the watermark is gone, and opening
            // rebuilds them (for 66,000 entries: past 65,536, where level 16 begins).
            let crashed = fs.snapshot().materialise(&mut |_| Fate::Drop, 0);
            let durable = crashed
                .open(Path::new("/srv/log/tiles/0.hashes"), OpenMode::Existing)
                .map_or(0, |f| f.byte_len().unwrap());
            assert!(durable < entries * HASH_LEN);
            let rebuilt = FileLog::open_with(Arc::new(crashed), Path::new(DIR), options).unwrap();
            assert_eq!(rebuilt.size(), entries);
            // The second round is served from the tile cache where it can be.
            for log in [&f.log, &f.log, &rebuilt] {
                for level in levels.clone() {
                    for index in 0..entries >> level {
                        assert_eq!(
                            LogStore::subtree_hash(log, level, index).unwrap(),
                            tree.subtree_hash(level, index).unwrap(),
                            "level {level}, index {index}"
                        );
                    }
                    assert!(LogStore::subtree_hash(log, level, entries >> level).is_err());
                }
                for size in [1, 255, 256, 257, 65_535, 65_536, 65_537, entries] {
                    if size <= entries {
                        assert_eq!(
                            merkle::root(log, size).unwrap(),
                            merkle::root(&tree, size).unwrap()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_failed_fdatasync_poisons_the_log() {
        let fs = SimFs::new();
        let mut f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), small());
        f.fill(150, 10, 200);
        let acked = f.all.clone();
        fs.fail_sync_after(0);
        let err = f.append(5, 200).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { op: "fdatasync of", path, .. } if path.extension().is_some_and(|e| e == "seg")),
            "{err}"
        );
        assert_eq!(
            f.log.size(),
            acked.len() as u64,
            "nothing of the batch is published"
        );
        let err = f.append(1, 10).unwrap_err();
        assert!(
            matches!(&err, StoreError::Poisoned(why) if why.contains("fdatasync")),
            "{err}"
        );
        assert!(matches!(
            f.log.set_checkpoint("x\n1\n"),
            Err(StoreError::Poisoned(_))
        ));
        // Reads go on.
        assert_eq!(f.log.entries(0, 1000).unwrap(), acked);
        // After a power cut, everything acknowledged is there; the failed batch is not.
        for fate in [Fate::Drop, Fate::Keep] {
            let crashed = fs.snapshot().materialise(&mut |_| fate, usize::MAX);
            let log = FileLog::open_with(Arc::new(crashed), Path::new(DIR), small()).unwrap();
            assert_eq!(log.entries(0, u64::MAX).unwrap(), acked);
        }
    }

    #[test]
    fn a_full_disk_is_a_clear_error_and_loses_nothing() {
        let fs = SimFs::new();
        let mut f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), small());
        f.fill(150, 10, 200);
        let acked = f.all.clone();
        fs.set_space_limit(Some(fs.used_space() + 500));
        let err = f.append(20, 200).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("the disk is full") && text.contains(".seg"),
            "{text}"
        );
        assert!(matches!(f.append(1, 1), Err(StoreError::Poisoned(_))));
        assert_eq!(f.log.size(), acked.len() as u64);
        for fate in [Fate::Drop, Fate::Keep] {
            let crashed = fs.snapshot().materialise(&mut |_| fate, usize::MAX);
            let log = FileLog::open_with(Arc::new(crashed), Path::new(DIR), small()).unwrap();
            // Whole records of the refused batch that reached the disk may be kept: they
            // were never acknowledged, and they carry the next indexes.
            let entries = log.entries(0, u64::MAX).unwrap();
            assert!(entries.len() >= acked.len() && entries[..acked.len()] == acked[..]);
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(record_index(e), Some(i as u64));
            }
            // With space again, the log goes on.
            let mut more = Records::after(5, entries.last().unwrap());
            let batch = more.batch(3, 0, 100);
            let mut frontier = Frontier::from_source(&log, log.size()).unwrap();
            let nodes = nodes_for(&mut frontier, &batch);
            log.append(&batch, &nodes).unwrap();
            assert_eq!(merkle::root(&log, log.size()).unwrap(), frontier.root());
        }
    }

    #[test]
    fn a_batch_that_does_not_fit_is_refused_without_poisoning() {
        let fs = SimFs::new();
        let mut f = Fixture::new(Arc::new(fs), Path::new(DIR), small());
        f.fill(10, 3, 10);
        let (batch, nodes) = f.batch(3, 10);
        // Records out of place.
        let err = f.log.append(&batch[1..], &nodes).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        // Nodes missing.
        let err = f.log.append(&batch, &nodes[1..]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        f.log.append(&batch, &nodes).unwrap();
        nodes_for(&mut f.frontier, &batch);
        f.all.extend(batch);
        assert_eq!(f.log.size(), 13);
        // A batch that completes a subtree of 256 leaves without its hash.
        f.fill(250, 5, 10);
        let (batch, nodes) = f.batch(10, 10);
        let without: Vec<Node> = nodes.iter().filter(|n| n.level != 8).copied().collect();
        assert!(without.len() < nodes.len());
        let err = f.log.append(&batch, &without).unwrap_err();
        assert!(err.to_string().contains("level 8"), "{err}");
        f.log.append(&batch, &nodes).unwrap();
        assert_eq!(f.log.size(), 260);
    }

    #[test]
    fn readers_run_alongside_the_writer() {
        let fs = SimFs::new();
        let options = FileLogOptions {
            segment_bytes: 8192,
            watermark_entries: 64,
            tile_cache: 4,
            open_segments: 3,
        };
        let mut f = Fixture::new(Arc::new(fs), Path::new(DIR), options);
        // Everything the writer will append, and the root at every size, known in advance.
        let mut all = Vec::new();
        let mut batches = Vec::new();
        let mut tree = MemoryTree::new();
        let mut roots = vec![merkle::empty_root()];
        let mut frontier = Frontier::new();
        while all.len() < 1500 {
            let n = f.rng.range(1, 30) as usize;
            let batch = f.records.batch(n, 0, 300);
            let nodes = nodes_for(&mut frontier, &batch);
            for r in &batch {
                tree.push(merkle::leaf_hash(r));
                roots.push(tree.root());
            }
            all.extend(batch.iter().cloned());
            batches.push((batch, nodes));
        }
        let log = Arc::new(f.log);
        std::thread::scope(|scope| {
            for seed in 0..2 {
                let log = log.clone();
                let (all, roots) = (&all, &roots);
                scope.spawn(move || {
                    let mut rng = Rng::new(seed);
                    loop {
                        let size = log.size();
                        if size > 0 {
                            let i = rng.range(0, size);
                            assert_eq!(log.entry(i).unwrap().as_ref(), Some(&all[i as usize]));
                            let a = size.saturating_sub(rng.range(1, 40));
                            let got = log.entries(a, size).unwrap();
                            assert!(got[..] == all[a as usize..size as usize]);
                            assert_eq!(
                                merkle::root(log.as_ref(), size).unwrap(),
                                roots[size as usize]
                            );
                        }
                        if size as usize == all.len() {
                            break;
                        }
                    }
                });
            }
            for (batch, nodes) in &batches {
                log.append(batch, nodes).unwrap();
                std::thread::yield_now();
            }
        });
    }

    #[test]
    fn checkpoint_and_genesis() {
        let fs = SimFs::new();
        let f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), small());
        assert_eq!(f.log.checkpoint().unwrap(), None);
        assert_eq!(f.log.genesis().unwrap(), None);
        f.log.set_genesis(b"{}").unwrap();
        f.log.set_checkpoint("o\n0\nAAAA\n\n- sig\n").unwrap();
        assert_eq!(
            f.log.checkpoint().unwrap().as_deref(),
            Some("o\n0\nAAAA\n\n- sig\n")
        );
        // The genesis is durable; the checkpoint is not, and is lost.
        let crashed = fs.snapshot().materialise(&mut |_| Fate::Drop, 0);
        let log = FileLog::open_with(Arc::new(crashed), Path::new(DIR), small()).unwrap();
        assert_eq!(log.genesis().unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(log.checkpoint().unwrap(), None);
        // A durable one survives; a newer one since is served until a restart.
        f.log
            .set_checkpoint_durably("o\n0\nBBBB\n\n- sig\n")
            .unwrap();
        f.log.set_checkpoint("o\n0\nCCCC\n\n- sig\n").unwrap();
        assert_eq!(
            f.log.checkpoint().unwrap().as_deref(),
            Some("o\n0\nCCCC\n\n- sig\n")
        );
        let crashed = fs.snapshot().materialise(&mut |_| Fate::Drop, 0);
        let log = FileLog::open_with(Arc::new(crashed), Path::new(DIR), small()).unwrap();
        assert_eq!(
            log.checkpoint().unwrap().as_deref(),
            Some("o\n0\nBBBB\n\n- sig\n")
        );
        // A torn or edited file reads as no checkpoint.
        let file = fs
            .open(Path::new("/srv/log/checkpoint"), OpenMode::Existing)
            .unwrap();
        file.write_all_at(b"junk", 14).unwrap();
        let reopened = || FileLog::open_with(Arc::new(fs.clone()), Path::new(DIR), small());
        assert_eq!(reopened().unwrap().checkpoint().unwrap(), None);
        file.set_len(10).unwrap();
        assert_eq!(reopened().unwrap().checkpoint().unwrap(), None);
    }

    /// Flips a byte of entry `index`'s record in the segment files.
    fn damage(fs: &SimFs, log: &FileLog, index: u64) {
        let (seg, _) = log.segment_of(index).unwrap();
        let mut b = [0u8; 8];
        log.files(&seg)
            .unwrap()
            .idx
            .read_exact_at(&mut b, (index - seg.first) * 8)
            .unwrap();
        let at = u64::from_be_bytes(b) + FRAME_HEADER_LEN + 20;
        let file = fs.open(&seg.seg_path, OpenMode::Existing).unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[!byte[0]], at).unwrap();
    }

    #[test]
    fn opening_reads_only_the_tail_after_the_watermark() {
        let fs = SimFs::new();
        let options = FileLogOptions {
            segment_bytes: 1 << 30,
            ..small()
        };
        let mut f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), options);
        f.fill(1000, 30, 100);
        // Damage below the watermark is not read at start (but is found when read).
        damage(&fs, &f.log, 10);
        let log = FileLog::open_with(Arc::new(fs.clone()), Path::new(DIR), options).unwrap();
        assert_eq!(log.size(), 1000);
        assert!(matches!(log.entry(10), Err(StoreError::Corrupt(_))));
        // Opening moved the watermark to the end.
        let wm = read_small(&fs, Path::new("/srv/log/watermark"))
            .unwrap()
            .unwrap();
        assert_eq!(Watermark::decode(&wm).unwrap().size, 1000);
    }

    #[test]
    fn a_bad_record_in_the_tail_is_cut_unless_a_checkpoint_covers_it() {
        let options = FileLogOptions {
            watermark_entries: 1000,
            segment_bytes: 1 << 30,
            ..small()
        };
        let build = |checkpoint: Option<&str>| {
            let fs = SimFs::new();
            let mut f = Fixture::new(Arc::new(fs.clone()), Path::new(DIR), options);
            f.fill(50, 5, 100);
            if let Some(note) = checkpoint {
                f.log.set_checkpoint_durably(note).unwrap();
            }
            damage(&fs, &f.log, 20);
            (fs, f.all)
        };
        let (fs, all) = build(Some("evident.test/log\n15\nAAAA\n\n- x\n"));
        let log = FileLog::open_with(Arc::new(fs), Path::new(DIR), options).unwrap();
        assert_eq!(log.size(), 20);
        assert_eq!(log.entries(0, 50).unwrap(), &all[..20]);
        assert_eq!(merkle::root(&log, 20).unwrap(), {
            let mut t = MemoryTree::new();
            all[..20].iter().for_each(|r| t.push(merkle::leaf_hash(r)));
            t.root()
        });
        let (fs, _) = build(Some("evident.test/log\n50\nAAAA\n\n- x\n"));
        let err = FileLog::open_with(Arc::new(fs), Path::new(DIR), options).unwrap_err();
        assert!(err.to_string().contains("refusing to cut"), "{err}");
    }

    #[test]
    fn works_on_the_real_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/log");
        let mut f = Fixture::new(Arc::new(OsFs), &path, small());
        f.fill(400, 20, 300);
        f.log.set_genesis(b"{\"g\":1}").unwrap();
        f.log
            .set_checkpoint_durably("o\n400\nAAAA\n\n- x\n")
            .unwrap();
        let log = FileLog::open_with(Arc::new(OsFs), &path, small()).unwrap();
        let mut rng = Rng::new(2);
        check_reads(&log, &f.all, &mut rng);
        assert_eq!(log.genesis().unwrap().as_deref(), Some(&b"{\"g\":1}"[..]));
        assert_eq!(
            log.checkpoint().unwrap().as_deref(),
            Some("o\n400\nAAAA\n\n- x\n")
        );
        assert_eq!(merkle::root(&log, 400).unwrap(), f.frontier.root());
        // A torn tail on disk is cut at start.
        let (seg, _) = log.segment_of(399).unwrap();
        let files = log.files(&seg).unwrap();
        let end = files.seg.byte_len().unwrap();
        files.seg.write_all_at(&[0, 0, 1, 0, 9, 9, 9], end).unwrap();
        drop(log);
        let log = FileLog::open_with(Arc::new(OsFs), &path, small()).unwrap();
        assert_eq!(log.size(), 400);
        assert_eq!(files.seg.byte_len().unwrap(), end);
    }
}
