//! A log read from its C2SP tlog-tiles (`--tiles URL`): the listener of `evidentd`
//! (`[tiles] listen`), a static mirror behind any web server or CDN, or a folder written by
//! `evidentd export-tiles` — with no gRPC and no credentials.
//!
//! [`Tiles`] is a [`LogReader`]: proofs are computed here from hash tiles with
//! [`evident_core::tiles::TiledTree`], and entries are read from entry bundles. Nothing
//! fetched is trusted: every proof is checked against a checkpoint verified under the
//! pinned log key (and its witnesses), and every replayed entry against that checkpoint's
//! root, so a mirror can withhold the log but not change it unnoticed.
//!
//! A partial tile or bundle that is gone (a mirror may delete one once the full one exists)
//! is read from the full one, which begins with the same hashes or entries. Every body is
//! read up to the most its resource can hold, so a hostile server cannot make the client
//! buffer more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evident_core::hash::Hash;
use evident_core::merkle::{self, ProofError};
use evident_core::tiles::{
    BundleId, FULL_WIDTH, MAX_BUNDLE_RECORD, TileError, TileId, TiledTree, decode_bundle,
};

use crate::ClientError;
use crate::reader::LogReader;

/// The largest checkpoint note read: the log's signature and many witnesses' cosignatures
/// (an ML-DSA-44 cosignature line is about 3.3 KiB).
const MAX_CHECKPOINT_BYTES: usize = 1 << 20;
/// The largest entry bundle: 256 records of at most 65,535 bytes, each with its length.
const MAX_BUNDLE_BYTES: usize = FULL_WIDTH as usize * (2 + MAX_BUNDLE_RECORD);
/// The most tiles one proof may fetch: a proof in the largest tree reads far fewer (about
/// two per level, eight levels), so more means a source that keeps answering wrongly.
const MAX_TILES_PER_PROOF: usize = 64;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the tiles are.
#[derive(Debug, Clone)]
enum Location {
    /// A base URL without its trailing `/`: `BASE/checkpoint`, `BASE/tile/…`.
    Http {
        base: String,
        client: reqwest::Client,
    },
    /// A folder holding `checkpoint` and `tile/`.
    Folder(PathBuf),
}

/// A log's tiles, at a URL or in a folder.
#[derive(Debug, Clone)]
pub struct Tiles {
    location: Location,
}

/// A tile the proof being computed needs and has not been fetched yet.
#[derive(Debug)]
struct Missing(TileId);

impl Tiles {
    /// Tiles at `location`: an `http://` or `https://` URL (the prefix under which
    /// `checkpoint` and `tile/` are served), a `file://` URL, or a folder. `ca` is a CA
    /// certificate (PEM) an HTTPS server's certificate may chain to, beside the system's
    /// roots (for `evidentd`'s own, `DATA_DIR/tls/ca.pem`).
    pub fn open(location: &str, ca: Option<&Path>) -> Result<Tiles, ClientError> {
        let location = if location.starts_with("http://") || location.starts_with("https://") {
            let mut builder = reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("evident/", env!("CARGO_PKG_VERSION")));
            if let Some(ca) = ca {
                let pem = std::fs::read(ca).map_err(|e| {
                    ClientError::input(format!("--tiles-ca: reading {}", ca.display()), e)
                })?;
                let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                    ClientError::Invalid(format!("--tiles-ca {}: {e}", ca.display()))
                })?;
                builder = builder.add_root_certificate(certificate);
            }
            let client = builder
                .build()
                .map_err(|e| ClientError::Invalid(format!("--tiles {location}: {e}")))?;
            Location::Http {
                base: location.trim_end_matches('/').to_owned(),
                client,
            }
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            if path.is_empty() {
                return Err(ClientError::Invalid(
                    "--tiles needs a URL (https://…) or a folder written by evidentd export-tiles"
                        .into(),
                ));
            }
            Location::Folder(PathBuf::from(path))
        };
        Ok(Tiles { location })
    }

    /// Where the tiles are, as given (for messages).
    pub fn describe(&self) -> String {
        match &self.location {
            Location::Http { base, .. } => base.clone(),
            Location::Folder(path) => path.display().to_string(),
        }
    }

    /// The resource at `path` (relative, e.g. `tile/0/001`), read up to one byte past
    /// `limit` (so that a longer one is seen to be too long, and never read whole); `None`
    /// when the source does not have it.
    async fn get(&self, path: &str, limit: usize) -> Result<Option<Vec<u8>>, ClientError> {
        match &self.location {
            Location::Http { base, client } => {
                let url = format!("{base}/{path}");
                let mut response = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| ClientError::Connect(format!("{url}: {}", chain(&e))))?;
                let status = response.status();
                if status == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !status.is_success() {
                    return Err(ClientError::Response(format!("GET {url}: HTTP {status}")));
                }
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| ClientError::Connect(format!("{url}: {e}")))?
                {
                    // One byte past the limit is enough to tell the resource is too long.
                    let room = (limit + 1).saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() > limit {
                        break;
                    }
                }
                Ok(Some(body))
            }
            Location::Folder(dir) => {
                let file = dir.join(path);
                tokio::task::spawn_blocking(move || {
                    use std::io::Read as _;
                    let f = match std::fs::File::open(&file) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => {
                            return Err(ClientError::input(
                                format!("reading {}", file.display()),
                                e,
                            ));
                        }
                    };
                    let mut body = Vec::new();
                    f.take(limit as u64 + 1)
                        .read_to_end(&mut body)
                        .map_err(|e| {
                            ClientError::input(format!("reading {}", file.display()), e)
                        })?;
                    Ok(Some(body))
                })
                .await
                .map_err(|e| ClientError::Response(format!("reading {path}: {e}")))?
            }
        }
    }

    /// The latest checkpoint note the tiles carry.
    pub async fn checkpoint(&self) -> Result<String, ClientError> {
        let bytes = self
            .get("checkpoint", MAX_CHECKPOINT_BYTES)
            .await?
            .filter(|bytes| bytes.len() <= MAX_CHECKPOINT_BYTES)
            .ok_or_else(|| {
                ClientError::Response(format!(
                    "{} has no checkpoint of at most 1 MiB: is it the address of a log's tiles (the prefix \
                     under which /checkpoint and /tile/ are served)?",
                    self.describe()
                ))
            })?;
        String::from_utf8(bytes).map_err(|_| {
            ClientError::Response(format!("{}/checkpoint is not UTF-8 text", self.describe()))
        })
    }

    /// Hash tile `id`, `width × 32` bytes: the tile itself, or the first hashes of the full
    /// tile when a partial one is gone. Not checked beyond its length.
    pub async fn tile(&self, id: TileId) -> Result<Vec<u8>, ClientError> {
        if let Some(bytes) = self.get(&id.path(), id.byte_len()).await? {
            return Ok(bytes);
        }
        if !id.is_full() {
            let full = TileId::new(id.level(), id.index(), FULL_WIDTH)
                .expect("a full tile at the same place is valid");
            if let Some(mut bytes) = self.get(&full.path(), full.byte_len()).await? {
                if bytes.len() == full.byte_len() {
                    bytes.truncate(id.byte_len());
                    return Ok(bytes);
                }
            }
        }
        Err(self.missing(&id.path()))
    }

    /// The records of entry bundle `id`: the bundle itself, or the first records of the full
    /// bundle when a partial one is gone. Not checked beyond its framing.
    pub async fn bundle(&self, id: BundleId) -> Result<Vec<Vec<u8>>, ClientError> {
        let width = usize::from(id.width());
        let decode = |bytes: &[u8], expected: usize, path: &str| {
            decode_bundle(bytes, expected)
                .map(|records| records.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>())
                .map_err(|e| ClientError::Verification(format!("{}/{path}: {e}", self.describe())))
        };
        if let Some(bytes) = self.get(&id.path(), MAX_BUNDLE_BYTES).await? {
            return decode(&bytes, width, &id.path());
        }
        if width < usize::from(FULL_WIDTH) {
            let full = BundleId::new(id.index(), FULL_WIDTH)
                .expect("a full bundle at the same place is valid");
            if let Some(bytes) = self.get(&full.path(), MAX_BUNDLE_BYTES).await? {
                let mut records = decode(&bytes, usize::from(FULL_WIDTH), &full.path())?;
                records.truncate(width);
                return Ok(records);
            }
        }
        Err(self.missing(&id.path()))
    }

    /// A resource the tree of a signed checkpoint has, missing from the source.
    fn missing(&self, path: &str) -> ClientError {
        ClientError::Verification(format!(
            "{} has no {path}, which the log's signed checkpoint covers: the log (or this \
             mirror) is withholding part of what it signed",
            self.describe()
        ))
    }

    /// Runs `compute` over the tree of `size` entries, fetching the tiles it reads as it
    /// asks for them (each computation is repeated with every tile fetched so far).
    async fn with_tree<T>(
        &self,
        size: u64,
        compute: impl Fn(
            &TiledTree<&dyn Fn(TileId) -> Result<Vec<u8>, Missing>>,
        ) -> Result<T, ProofError<TileError<Missing>>>,
    ) -> Result<T, ClientError> {
        let mut fetched: HashMap<TileId, Vec<u8>> = HashMap::new();
        loop {
            let outcome = {
                let lookup = |id: TileId| fetched.get(&id).cloned().ok_or(Missing(id));
                let fetcher: &dyn Fn(TileId) -> Result<Vec<u8>, Missing> = &lookup;
                compute(&TiledTree::new(size, fetcher))
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(ProofError::Source(TileError::Fetch {
                    error: Missing(id), ..
                })) if fetched.len() < MAX_TILES_PER_PROOF => {
                    let bytes = self.tile(id).await?;
                    fetched.insert(id, bytes);
                }
                Err(e) => {
                    return Err(ClientError::Verification(format!(
                        "computing a proof from the tiles at {}: {e}",
                        self.describe()
                    )));
                }
            }
        }
    }
}

/// An error with its causes, `: `-separated (reqwest's own message hides why a TLS
/// handshake or a connection failed).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tile {} not fetched", self.0)
    }
}

impl LogReader for Tiles {
    fn may_lag(&self) -> bool {
        true
    }

    /// The tiles carry one checkpoint: `evidentd` publishes its latest witnessed one there
    /// when it has witnesses, so `witnessed` changes nothing.
    async fn read_checkpoint(&mut self, _witnessed: bool) -> Result<String, ClientError> {
        self.checkpoint().await
    }

    async fn read_consistency_proof(
        &mut self,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, ClientError> {
        self.with_tree(new, |tree| merkle::consistency_proof(tree, old, new))
            .await
    }

    async fn read_inclusion_proof(
        &mut self,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, ClientError> {
        self.with_tree(size, |tree| merkle::inclusion_proof(tree, index, size))
            .await
    }

    async fn read_entries(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let full = u64::from(FULL_WIDTH);
        let index = start / full;
        let width = (end - index * full).min(full);
        let id = BundleId::new(index, u16::try_from(width).expect("at most 256"))
            .map_err(|e| ClientError::Invalid(format!("entries {start}..{end}: {e}")))?;
        let records = self.bundle(id).await?;
        let skip = usize::try_from(start - index * full).expect("below 256");
        Ok(records.into_iter().skip(skip).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use evident_core::merkle::MemoryTree;
    use evident_core::tiles::{tile_hashes, tiles};

    use super::*;

    /// A folder of its own under the system's temporary folder, removed at the end.
    struct Folder(PathBuf);

    impl Folder {
        fn new(name: &str) -> Folder {
            let path = std::env::temp_dir().join(format!(
                "evident-tiles-{name}-{}-{}",
                std::process::id(),
                crate::now_nanos()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Folder(path)
        }

        fn write(&self, path: &str, bytes: &[u8]) {
            let file = self.0.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, bytes).unwrap();
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(size: u64) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for i in 0..size {
            tree.push(merkle::leaf_hash(&i.to_be_bytes()));
        }
        tree
    }

    #[tokio::test]
    async fn proofs_of_an_older_size_come_from_the_full_tiles_when_its_partial_ones_are_gone() {
        // A mirror that deleted the partial level-0 tile of the tree of 300 leaves (tile 1
        // of width 44) once the log grew to 600 and that tile became full: the tree of 300
        // is read from the full tile, which begins with the same hashes.
        let big = tree(600);
        let small = tree(300);
        let folder = Folder::new("fallback");
        for id in tiles(300) {
            if id.level() == 0 && !id.is_full() {
                let full = TileId::new(0, id.index(), FULL_WIDTH).unwrap();
                folder.write(&full.path(), &tile_hashes(&big, full).unwrap());
            } else {
                folder.write(&id.path(), &tile_hashes(&small, id).unwrap());
            }
        }
        assert!(!folder.0.join("tile/0/001.p/44").exists());
        let mut tiles = Tiles::open(&folder.0.display().to_string(), None).unwrap();
        for index in [0, 1, 255, 256, 299] {
            let proof = tiles.read_inclusion_proof(index, 300).await.unwrap();
            assert_eq!(proof, merkle::inclusion_proof(&small, index, 300).unwrap());
        }
        for old in [1, 100, 256, 257] {
            let proof = tiles.read_consistency_proof(old, 300).await.unwrap();
            assert_eq!(proof, merkle::consistency_proof(&small, old, 300).unwrap());
        }
    }

    #[tokio::test]
    async fn a_tile_of_the_wrong_length_or_a_missing_one_is_refused() {
        let big = tree(300);
        let folder = Folder::new("refused");
        let mut tiles = Tiles::open(&format!("file://{}", folder.0.display()), None).unwrap();
        // Nothing there: the tree's signed checkpoint covers tiles the mirror withholds.
        let missing = tiles.read_inclusion_proof(5, 300).await.unwrap_err();
        assert!(missing.is_verification_failure(), "{missing}");
        assert!(missing.to_string().contains("has no tile/"), "{missing}");
        // A level-0 tile one hash short.
        for id in evident_core::tiles::tiles(300) {
            let mut bytes = tile_hashes(&big, id).unwrap();
            if id.level() == 0 && id.index() == 0 {
                bytes.truncate(bytes.len() - 32);
            }
            folder.write(&id.path(), &bytes);
        }
        let short = tiles.read_inclusion_proof(5, 300).await.unwrap_err();
        assert!(short.is_verification_failure(), "{short}");
        assert!(short.to_string().contains("8160 bytes"), "{short}");
        // A tile longer than its width allows is refused, read only one byte past it.
        let mut long = tile_hashes(&big, TileId::new(0, 0, 256).unwrap()).unwrap();
        long.extend_from_slice(&[0; 4096]);
        folder.write("tile/0/000", &long);
        let err = tiles.read_inclusion_proof(5, 300).await.unwrap_err();
        assert!(err.is_verification_failure(), "{err}");
        assert!(err.to_string().contains("8193 bytes"), "{err}");
    }
}
