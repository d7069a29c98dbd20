//! The log as C2SP tlog-tiles over HTTP (`[tiles] listen`): `/checkpoint`, the hash tiles
//! `/tile/<L>/<N>[.p/<W>]` and the entry bundles `/tile/entries/<N>[.p/<W>]`, whose entries
//! are the leaf records exactly as the tree hashes them (docs/FORMAT.md, section 8).
//!
//! Everything under `/tile/` is immutable — a tile's bytes never change once its range of
//! the tree exists — so full tiles carry a year-long `Cache-Control` and partial ones a
//! minute (they are superseded by wider ones). `/checkpoint` is the latest witnessed
//! checkpoint when the log has witnesses and they have cosigned one, else the latest
//! checkpoint, cached for a second. Tiles and bundles are read through the store, so every
//! backend serves them, and only up to the size of the checkpoint published.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use evident_core::tiles::{BundleId, Resource, TileId, encode_bundle};
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::api::http::Limits;
use crate::ledger::Ledger;

/// How many connections the tiles listener keeps open at once (one more closes the oldest).
pub const MAX_CONNECTIONS: usize = 1024;

/// `Cache-Control` of full tiles and bundles: immutable.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of partial tiles and bundles.
const PARTIAL: &str = "public, max-age=60";
/// `Cache-Control` of the checkpoint.
const CHECKPOINT: &str = "public, max-age=1";

/// Tile and bundle reads in flight at once. A bundle of 256 records of up to 64 KiB is up to
/// 16 MiB: with this many at once, what unauthenticated readers can make the server hold
/// stays bounded (the others wait their turn).
const MAX_READS: usize = 16;

static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_READS);

const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(5),
    request_timeout: Duration::from_secs(30),
    max_connections: MAX_CONNECTIONS,
};

/// Serves the tiles of the ledger in `ledger` (set once the store passed its start-up check;
/// until then every request is answered 503) on `listener`, over TLS with `tls`, until the
/// task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    ledger: Arc<OnceLock<Ledger>>,
) {
    crate::api::http::serve(listener, tls, LIMITS, "tiles", move |request| {
        let ledger = ledger.get().cloned();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        async move { answer(ledger, &method, &path).await }
    })
    .await;
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn bytes(body: Vec<u8>, cache: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The answer to one request; hyper leaves the body out of the answer to `HEAD`.
async fn answer(ledger: Option<Ledger>, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(ledger) = ledger else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is starting: it is checking its store; retry shortly\n".into(),
        );
    };
    if path == "/checkpoint" {
        let note = match ledger.witnessed() {
            Some(witnessed) => witnessed.note.clone(),
            None => ledger.published().note.clone(),
        };
        let mut response = text(StatusCode::OK, note);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(CHECKPOINT));
        return response;
    }
    let Some(relative) = path.strip_prefix('/') else {
        return not_found(path);
    };
    let resource = match Resource::parse(relative) {
        Ok(resource) => resource,
        Err(_) if !relative.starts_with("tile/") => return not_found(path),
        Err(e) => return text(StatusCode::NOT_FOUND, format!("{e}\n")),
    };
    let size = ledger.published().checkpoint.size;
    let Ok(_reading) = READS.acquire().await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping\n".into(),
        );
    };
    let read = tokio::task::spawn_blocking(move || read(&ledger, resource, size)).await;
    match read {
        Ok(Ok(Some((body, full)))) => bytes(body, if full { IMMUTABLE } else { PARTIAL }),
        Ok(Ok(None)) => text(
            StatusCode::NOT_FOUND,
            format!(
                "{}: the log of {size} entries has no such tile\n",
                resource.path()
            ),
        ),
        Ok(Err(e)) => {
            tracing::error!(path = %resource.path(), error = %e, "serving a tile failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading {}: {e}\n", resource.path()),
        ),
    }
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    let path: String = path.chars().take(200).collect();
    text(
        StatusCode::NOT_FOUND,
        format!(
            "not found: {path:?}; this listener serves /checkpoint, /tile/<L>/<N>[.p/<W>] and \
             /tile/entries/<N>[.p/<W>] (C2SP tlog-tiles)\n"
        ),
    )
}

/// Whether a tree of `size` entries has the tile at `level` covering hashes
/// `[256·index, 256·index + width)` of that level.
fn exists(level: u8, index: u64, width: u16, size: u64) -> bool {
    // A hash of level 8 or above covers 2^64 leaves or more: more than any log holds (and
    // the shift would overflow).
    if level >= 8 {
        return false;
    }
    let per_hash = 1u128 << (8 * u32::from(level));
    let end = (u128::from(index) * 256 + u128::from(width)) * per_hash;
    end <= u128::from(size)
}

/// A tile's or bundle's bytes and whether it is full, or `None` when the tree of `size`
/// entries does not have it.
fn read(ledger: &Ledger, resource: Resource, size: u64) -> Result<Option<(Vec<u8>, bool)>, String> {
    match resource {
        Resource::Tile(id) => {
            if !exists(id.level(), id.index(), id.width(), size) {
                return Ok(None);
            }
            tile(ledger, id).map(|bytes| Some((bytes, id.is_full())))
        }
        Resource::Entries(id) => {
            if !exists(0, id.index(), id.width(), size) {
                return Ok(None);
            }
            bundle(ledger, id).map(|bytes| Some((bytes, id.width() == 256)))
        }
    }
}

/// The hashes of tile `id`, in one read of the store.
pub(crate) fn tile(ledger: &Ledger, id: TileId) -> Result<Vec<u8>, String> {
    let level = 8 * u32::from(id.level());
    let first = id.index() * 256;
    let wanted: Vec<(u32, u64)> = (0..u64::from(id.width()))
        .map(|i| (level, first + i))
        .collect();
    let hashes = ledger
        .subtree_hashes(&wanted)
        .map_err(|e| format!("reading the hashes of {}: {e}", id.path()))?;
    let mut bytes = Vec::with_capacity(id.byte_len());
    for hash in hashes {
        bytes.extend_from_slice(hash.as_bytes());
    }
    Ok(bytes)
}

/// The leaf records of bundle `id`, encoded.
pub(crate) fn bundle(ledger: &Ledger, id: BundleId) -> Result<Vec<u8>, String> {
    let first = id.index() * 256;
    let records = ledger
        .records(first, first + u64::from(id.width()))
        .map_err(|e| format!("reading the entries of {}: {e}", id.path()))?;
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    encode_bundle(&refs).map_err(|e| format!("{}: {e}", id.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_exist_as_the_spec_counts_them() {
        // A tree of 70,000 entries: 273 full level-0 tiles and one of width 112, one full
        // level-1 tile and one of width 17, one level-2 tile of width 1.
        let size = 70_000;
        assert!(exists(0, 272, 256, size));
        assert!(!exists(0, 273, 256, size));
        assert!(exists(0, 273, 112, size));
        assert!(!exists(0, 273, 113, size));
        assert!(exists(1, 0, 256, size));
        assert!(exists(1, 1, 17, size));
        assert!(!exists(1, 1, 18, size));
        assert!(exists(2, 0, 1, size));
        assert!(!exists(2, 0, 2, size));
        assert!(!exists(3, 0, 1, size));
        // Far beyond 64 bits does not overflow: a stranger's path cannot crash the listener.
        assert!(!exists(63, u64::MAX, 255, size));
        assert!(!exists(7, u64::MAX, 255, u64::MAX));
        assert!(!exists(8, 0, 1, u64::MAX));
    }
}
