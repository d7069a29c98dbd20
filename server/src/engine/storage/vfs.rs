//! The file operations the log's files go through: [`Vfs`] and [`VfsFile`].
//!
//! [`OsFs`] is the real file system. [`SimFs`] is an in-memory one that records every write,
//! truncation, create, rename and removal since the last sync that covers it, so a test can
//! build every state a power cut could leave behind (see [`SimState::materialise`]), and
//! that can fail a sync or run out of space on request.
//!
//! The model of durability `SimFs` implements, which is what POSIX and Linux promise:
//! - a write or `set_len` is durable once `sync_data` or `sync_all` of its file returns `Ok`;
//! - a create, rename or removal is durable once `sync_dir` of its folder returns `Ok`;
//! - until then, any subset of a file's pending writes may survive, any of them torn, and a
//!   prefix of the pending folder operations, in order, may survive;
//! - a failed sync leaves what it should have made durable undefined: `SimFs` forgets it,
//!   as Linux may when it drops dirty pages after a write-back error, while reads still
//!   show it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// How [`Vfs::open`] treats a file that does or does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// Opened if it exists, created empty if not.
    Create,
    /// Created, or emptied if it exists.
    Truncate,
}

/// An open file: positional reads and writes, so readers share it with the writer.
pub trait VfsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ends before the bytes asked for",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`, extending the file as needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// The file's length in bytes.
    fn byte_len(&self) -> io::Result<u64>;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// `fdatasync`: the file's data and size are durable when this returns `Ok`.
    fn sync_data(&self) -> io::Result<()>;

    /// `fsync`: as [`VfsFile::sync_data`], and the rest of the file's metadata.
    fn sync_all(&self) -> io::Result<()>;

    /// Drops the file's pages from the page cache, so the next read comes from the disk.
    /// After a failed `fsync` the kernel may keep pages it never wrote, marked clean: a
    /// restarted process must not read them back as if they were durable.
    fn drop_cache(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A file system: every file operation of the log goes through one.
pub trait Vfs: Send + Sync + Debug {
    /// Opens a file for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>>;

    /// Renames a file within its folder, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Creates a folder and any missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// `fsync` of a folder: creates, renames and removals in it are durable on `Ok`.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// The names of the files and folders in a folder, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Whether a file or folder exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl VfsFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn byte_len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn drop_cache(&self) -> io::Result<()> {
        rustix::fs::fadvise(&self.0, 0, None, rustix::fs::Advice::DontNeed).map_err(Into::into)
    }
}

impl Vfs for OsFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::Create => {
                options.create(true);
            }
            OpenMode::Truncate => {
                options.create(true).truncate(true);
            }
        }
        Ok(Box::new(OsFile(options.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}

/// A write or truncation not yet covered by a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingOp {
    /// Bytes written at an offset.
    Write {
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// The file truncated or extended to a length.
    SetLen(u64),
}

/// What a simulated power cut leaves of one pending operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost.
    Drop,
    /// On disk.
    Keep,
    /// A write of which only the first `len` bytes reached the disk, the byte at `garbage`
    /// (if any, counted from the write's start, below `len`) replaced by junk.
    Torn {
        /// Bytes kept.
        len: usize,
        /// A byte within the kept part that holds junk.
        garbage: Option<usize>,
    },
}

/// A pending operation, as [`SimState::pending`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInfo {
    /// The file (inode number).
    pub inode: usize,
    /// Its position in the file's pending list.
    pub op: usize,
    /// The order of all operations on the file system.
    pub seq: u64,
    /// Bytes written (0 for a truncation).
    pub len: usize,
    /// Where the file is (a name it has now, if any).
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<(u64, PendingOp)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DirOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
    Mkdir(PathBuf),
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link(p, _) | DirOp::Unlink(p) | DirOp::Rename(_, p) | DirOp::Mkdir(p) => {
                p.parent()
            }
        }
    }
}

/// Faults a [`SimFs`] injects.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// The sync (of a file or a folder) with this number, counted from 0, fails with EIO.
    fail_sync: Option<u64>,
    /// Syncs done so far.
    syncs: u64,
    /// Bytes the files may hold in total; a write beyond fails with ENOSPC after writing
    /// what fits.
    space: Option<u64>,
}

/// Everything a [`SimFs`] holds: current contents, what is durable, what is pending.
#[derive(Debug, Clone)]
pub struct SimState {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    durable_names: BTreeMap<PathBuf, usize>,
    durable_dirs: BTreeSet<PathBuf>,
    dir_ops: Vec<(u64, DirOp)>,
    seq: u64,
    faults: Faults,
}

impl Default for SimState {
    fn default() -> SimState {
        let root: BTreeSet<PathBuf> = [PathBuf::from("/")].into_iter().collect();
        SimState {
            inodes: Vec::new(),
            names: BTreeMap::new(),
            dirs: root.clone(),
            durable_names: BTreeMap::new(),
            durable_dirs: root,
            dir_ops: Vec::new(),
            seq: 0,
            faults: Faults::default(),
        }
    }
}

impl SimState {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Every write and truncation not yet covered by a sync, oldest first.
    pub fn pending(&self) -> Vec<PendingInfo> {
        let mut out = Vec::new();
        for (inode, node) in self.inodes.iter().enumerate() {
            let path = self
                .names
                .iter()
                .find(|(_, i)| **i == inode)
                .map(|(p, _)| p.clone());
            for (op, (seq, pending)) in node.pending.iter().enumerate() {
                let len = match pending {
                    PendingOp::Write { data, .. } => data.len(),
                    PendingOp::SetLen(_) => 0,
                };
                out.push(PendingInfo {
                    inode,
                    op,
                    seq: *seq,
                    len,
                    path: path.clone(),
                });
            }
        }
        out.sort_by_key(|p| p.seq);
        out
    }

    /// Number of folder operations (creates, renames, removals) not yet covered by a sync.
    pub fn pending_dir_ops(&self) -> usize {
        self.dir_ops.len()
    }

    /// The file system a power cut would leave: each pending operation's fate is
    /// `fate(info)`, and the first `dir_ops` pending folder operations survive, in order.
    pub fn materialise(&self, fate: &mut dyn FnMut(&PendingInfo) -> Fate, dir_ops: usize) -> SimFs {
        let pending = self.pending();
        let mut contents: Vec<Vec<u8>> = self.inodes.iter().map(|n| n.durable.clone()).collect();
        for info in &pending {
            let (_, op) = &self.inodes[info.inode].pending[info.op];
            let data = &mut contents[info.inode];
            match (fate(info), op) {
                (Fate::Drop, _) => {}
                (Fate::Keep, op) => apply(data, op),
                (
                    Fate::Torn { len, garbage },
                    PendingOp::Write {
                        offset,
                        data: bytes,
                    },
                ) => {
                    let mut kept = bytes[..len.min(bytes.len())].to_vec();
                    if let Some(b) = garbage.and_then(|g| kept.get_mut(g)) {
                        *b = !*b ^ 0x5a;
                    }
                    write_into(data, *offset, &kept);
                }
                (Fate::Torn { .. }, op @ PendingOp::SetLen(_)) => apply(data, op),
            }
        }
        let mut names = self.durable_names.clone();
        let mut dirs = self.durable_dirs.clone();
        for (_, op) in self.dir_ops.iter().take(dir_ops) {
            match op {
                DirOp::Link(p, i) => {
                    names.insert(p.clone(), *i);
                }
                DirOp::Unlink(p) => {
                    names.remove(p);
                }
                DirOp::Rename(from, to) => {
                    if let Some(i) = names.remove(from) {
                        names.insert(to.clone(), i);
                    }
                }
                DirOp::Mkdir(p) => {
                    dirs.insert(p.clone());
                }
            }
        }
        // A folder whose own entry did not survive takes its contents with it.
        let reachable =
            |p: &Path, dirs: &BTreeSet<PathBuf>| p.ancestors().skip(1).all(|a| dirs.contains(a));
        let kept_dirs: BTreeSet<PathBuf> = dirs
            .iter()
            .filter(|d| reachable(d, &dirs))
            .cloned()
            .collect();
        names.retain(|p, _| reachable(p, &kept_dirs));
        let inodes = contents
            .into_iter()
            .map(|data| Inode {
                durable: data.clone(),
                data,
                pending: Vec::new(),
            })
            .collect();
        SimFs::from_state(SimState {
            inodes,
            durable_names: names.clone(),
            names,
            durable_dirs: kept_dirs.clone(),
            dirs: kept_dirs,
            dir_ops: Vec::new(),
            seq: self.seq,
            faults: Faults::default(),
        })
    }

    /// The file system a crash of the process (not of the machine) leaves: everything
    /// written is still there, in the page cache, and no more of it is durable than before.
    pub fn process_crash(&self) -> SimFs {
        let mut state = self.clone();
        state.faults = Faults::default();
        SimFs::from_state(state)
    }

    fn used_space(&self) -> u64 {
        self.inodes.iter().map(|n| n.data.len() as u64).sum()
    }

    fn sync_fault(&mut self) -> io::Result<()> {
        let n = self.faults.syncs;
        self.faults.syncs += 1;
        if self.faults.fail_sync == Some(n) {
            return Err(io::Error::other("injected I/O error in sync"));
        }
        Ok(())
    }
}

fn apply(data: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write {
            offset,
            data: bytes,
        } => write_into(data, *offset, bytes),
        PendingOp::SetLen(len) => data.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
    }
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(bytes.len());
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

type SyncHook = Box<dyn FnMut(&SimState) + Send>;

#[derive(Default)]
struct Shared {
    state: Mutex<SimState>,
    hook: Mutex<Option<SyncHook>>,
}

impl Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimFs")
    }
}

/// An in-memory file system that records what is durable and what is pending; for tests.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    shared: Arc<Shared>,
}

impl SimFs {
    /// An empty file system with only `/`.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn from_state(state: SimState) -> SimFs {
        SimFs {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                hook: Mutex::new(None),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        // A panic while the lock was held leaves the state usable for a test's report.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> SimState {
        self.state().clone()
    }

    /// Calls `hook` with the state just before every sync (of a file or a folder) takes
    /// effect: the moment a power cut hurts most.
    pub fn set_sync_hook(&self, hook: Option<SyncHook>) {
        *self
            .shared
            .hook
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hook;
    }

    /// Makes the `n`-th sync from now (0 = the next) fail with an I/O error.
    pub fn fail_sync_after(&self, n: u64) {
        let mut state = self.state();
        state.faults.fail_sync = Some(state.faults.syncs + n);
    }

    /// Limits the bytes all files may hold; writes beyond fail with ENOSPC.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.state().faults.space = bytes;
    }

    /// The bytes all files hold now.
    pub fn used_space(&self) -> u64 {
        self.state().used_space()
    }

    /// Calls the sync hook, if any, with the current state.
    fn before_sync(&self) {
        let mut hook = self
            .shared
            .hook
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(hook) = hook.as_mut() {
            let state = self.snapshot();
            hook(&state);
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: usize,
}

impl SimFile {
    fn sync(&self) -> io::Result<()> {
        self.fs.before_sync();
        let mut state = self.fs.state();
        let failed = state.sync_fault();
        let node = &mut state.inodes[self.inode];
        // Either durable now, or forgotten: never written by a later sync.
        for (_, op) in std::mem::take(&mut node.pending) {
            if failed.is_ok() {
                apply(&mut node.durable, &op);
            }
        }
        failed
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let state = self.fs.state();
        let data = &state.inodes[self.inode].data;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.fs.state();
        let mut bytes = buf;
        let mut full = false;
        if let Some(space) = state.faults.space {
            let len = state.inodes[self.inode].data.len() as u64;
            let grows = (offset + buf.len() as u64).saturating_sub(len);
            let free = space.saturating_sub(state.used_space());
            if grows > free {
                let fits = (len + free).saturating_sub(offset);
                bytes = &buf[..usize::try_from(fits).unwrap_or(0).min(buf.len())];
                full = true;
            }
        }
        if !bytes.is_empty() {
            let seq = state.next_seq();
            let node = &mut state.inodes[self.inode];
            write_into(&mut node.data, offset, bytes);
            node.pending.push((
                seq,
                PendingOp::Write {
                    offset,
                    data: bytes.to_vec(),
                },
            ));
        }
        if full {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected)",
            ));
        }
        Ok(())
    }

    fn byte_len(&self) -> io::Result<u64> {
        Ok(self.fs.state().inodes[self.inode].data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.fs.state();
        let seq = state.next_seq();
        let node = &mut state.inodes[self.inode];
        node.data
            .resize(usize::try_from(len).map_err(io::Error::other)?, 0);
        node.pending.push((seq, PendingOp::SetLen(len)));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

impl Vfs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut state = self.state();
        let inode = match (state.names.get(path).copied(), mode) {
            (Some(inode), OpenMode::Existing | OpenMode::Create) => inode,
            (Some(inode), OpenMode::Truncate) => {
                let seq = state.next_seq();
                let node = &mut state.inodes[inode];
                node.data.clear();
                node.pending.push((seq, PendingOp::SetLen(0)));
                inode
            }
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, OpenMode::Create | OpenMode::Truncate) => {
                let parent = path.parent().ok_or_else(|| not_found(path))?;
                if !state.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
                if state.dirs.contains(path) {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        format!("{} is a folder", path.display()),
                    ));
                }
                let inode = state.inodes.len();
                state.inodes.push(Inode::default());
                state.names.insert(path.to_owned(), inode);
                let seq = state.next_seq();
                state
                    .dir_ops
                    .push((seq, DirOp::Link(path.to_owned(), inode)));
                inode
            }
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            inode,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_owned(), inode);
        let seq = state.next_seq();
        state
            .dir_ops
            .push((seq, DirOp::Rename(from.to_owned(), to.to_owned())));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        let seq = state.next_seq();
        state.dir_ops.push((seq, DirOp::Unlink(path.to_owned())));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        let mut missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && !state.dirs.contains(*a))
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        for dir in missing {
            if state.names.contains_key(&dir) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", dir.display()),
                ));
            }
            state.dirs.insert(dir.clone());
            let seq = state.next_seq();
            state.dir_ops.push((seq, DirOp::Mkdir(dir)));
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.before_sync();
        let mut state = self.state();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.sync_fault()?;
        let in_dir = |p: &Path| p.parent() == Some(path);
        state.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, usize)> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        state.durable_names.extend(current);
        state.durable_dirs.retain(|p| !in_dir(p));
        let dirs: Vec<PathBuf> = state.dirs.iter().filter(|p| in_dir(p)).cloned().collect();
        state.durable_dirs.extend(dirs);
        state.dir_ops.retain(|(_, op)| op.dir() != Some(path));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = state.names.keys().filter(|p| p.parent() == Some(dir));
        let dirs = state.dirs.iter().filter(|p| p.parent() == Some(dir));
        Ok(files
            .chain(dirs)
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.state();
        Ok(state.names.contains_key(path) || state.dirs.contains(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_keeps_only_synced_data_and_names_after_a_crash() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.open(Path::new("/d/a"), OpenMode::Create).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        // The name is not durable yet.
        let crashed = fs.snapshot().materialise(&mut |_| Fate::Keep, 0);
        assert!(!crashed.exists(Path::new("/d/a")).unwrap());
        fs.sync_dir(Path::new("/d")).unwrap();
        f.write_all_at(b" world", 5).unwrap();
        let crashed = fs.snapshot().materialise(&mut |_| Fate::Drop, 0);
        let g = crashed.open(Path::new("/d/a"), OpenMode::Existing).unwrap();
        assert_eq!(g.byte_len().unwrap(), 5);
        let crashed = fs.snapshot().materialise(
            &mut |_| Fate::Torn {
                len: 3,
                garbage: None,
            },
            0,
        );
        let g = crashed.open(Path::new("/d/a"), OpenMode::Existing).unwrap();
        let mut buf = vec![0; 8];
        g.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello wo");
    }

    #[test]
    fn sim_rename_is_durable_only_after_the_folder_sync() {
        let fs = SimFs::new();
        let f = fs.open(Path::new("/a.tmp"), OpenMode::Create).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_all().unwrap();
        fs.rename(Path::new("/a.tmp"), Path::new("/a")).unwrap();
        let state = fs.snapshot();
        assert_eq!(state.pending_dir_ops(), 2);
        let none = state.materialise(&mut |_| Fate::Keep, 0);
        assert!(!none.exists(Path::new("/a")).unwrap());
        let created = state.materialise(&mut |_| Fate::Keep, 1);
        assert!(created.exists(Path::new("/a.tmp")).unwrap());
        let renamed = state.materialise(&mut |_| Fate::Keep, 2);
        assert!(renamed.exists(Path::new("/a")).unwrap());
        assert!(!renamed.exists(Path::new("/a.tmp")).unwrap());
    }

    #[test]
    fn sim_failed_sync_forgets_the_writes_it_covered() {
        let fs = SimFs::new();
        let f = fs.open(Path::new("/a"), OpenMode::Create).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        f.write_all_at(b"abc", 0).unwrap();
        fs.fail_sync_after(0);
        assert!(f.sync_data().is_err());
        // A retried sync "succeeds", but the data never reached the disk.
        f.sync_data().unwrap();
        let crashed = fs.snapshot().materialise(&mut |_| Fate::Keep, 0);
        let g = crashed.open(Path::new("/a"), OpenMode::Existing).unwrap();
        assert_eq!(g.byte_len().unwrap(), 0);
    }

    #[test]
    fn sim_runs_out_of_space() {
        let fs = SimFs::new();
        fs.set_space_limit(Some(4));
        let f = fs.open(Path::new("/a"), OpenMode::Create).unwrap();
        let e = f.write_all_at(b"abcdef", 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(f.byte_len().unwrap(), 4);
    }
}
