//! The witness's HTTP/1.1 interface (hyper): `POST /add-checkpoint` and
//! `GET /<origin hash>/checkpoint`, as c2sp.org/tlog-witness defines them.
//!
//! The listener must never let a client hold it: a request head has [`HEADER_TIMEOUT`] to
//! arrive, a request [`REQUEST_TIMEOUT`] from its head to its answer, a body at most
//! [`MAX_BODY`] bytes (a larger declared length is refused before any of it is read), and
//! at [`MAX_CONNECTIONS`] a new connection closes the oldest one. The same limits as the
//! server's metrics listener (`server/src/metrics.rs`). Every refusal is answered with one
//! line of plain text saying what was wrong, except 409, whose body the specification fixes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::witness::{AddError, Witness};

/// How long a client has to send a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request has, from its head until its answer is written, before the
/// connection is closed (a client that trickles its body or does not read its answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once. One more closes the oldest: idle or stalled connections
/// cannot lock a log out of its witness.
pub const MAX_CONNECTIONS: usize = 256;

/// The largest `add-checkpoint` body: 63 proof lines and a checkpoint with many
/// signatures (even ML-DSA-44 cosignatures, ~3.3 KiB each) fit well within it.
pub const MAX_BODY: usize = 64 * 1024;

/// Longest request head (request line and headers) read.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The content type of a 409 answer's body (the stored size).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Serves `witness` on `listener` until `shutdown` resolves; then stops accepting, gives
/// the requests in flight [`REQUEST_TIMEOUT`] to finish, and closes every connection.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD);
    let open = Open::default();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (id, close) = open.admit(MAX_CONNECTIONS);
                    let http = http.clone();
                    let open = open.clone();
                    let witness = witness.clone();
                    tasks.spawn(async move {
                        connection(stream, &http, witness, &close, peer).await;
                        open.remove(id);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    open.close_all();
    // Each checkpoint is stored on the blocking pool, which finishes what it started even
    // if its connection is closed: a shutdown never leaves a half-made update.
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

/// The open connections by age (ids ascend), each with the signal that closes it.
#[derive(Debug, Clone, Default)]
struct Open(Arc<Mutex<OpenInner>>);

#[derive(Debug, Default)]
struct OpenInner {
    next_id: u64,
    connections: BTreeMap<u64, Arc<Notify>>,
}

impl Open {
    /// Makes room for a new connection (closing the oldest at the cap) and records it.
    fn admit(&self, max: usize) -> (u64, Arc<Notify>) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.connections.len() >= max.max(1) {
            let Some((_, oldest)) = inner.connections.pop_first() else {
                break;
            };
            oldest.notify_one();
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let close = Arc::new(Notify::new());
        inner.connections.insert(id, close.clone());
        (id, close)
    }

    fn remove(&self, id: u64) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner.connections.remove(&id);
    }

    /// Asks every connection to finish: idle ones close, busy ones after their answer.
    fn close_all(&self) {
        let inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for close in inner.connections.values() {
            close.notify_one();
        }
    }
}

/// Serves one connection until the client closes it, hyper gives up on it, its latest
/// request is not answered within [`REQUEST_TIMEOUT`], or it is asked to close.
async fn connection(
    stream: TcpStream,
    http: &http1::Builder,
    witness: Arc<Witness>,
    close: &Notify,
    peer: std::net::SocketAddr,
) {
    // Until the first request, hyper's header timeout closes the connection first; this is
    // only the backstop.
    let deadline = Arc::new(Mutex::new(Instant::now() + 2 * REQUEST_TIMEOUT));
    let service = {
        let deadline = deadline.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            *deadline.lock().unwrap_or_else(PoisonError::into_inner) =
                Instant::now() + REQUEST_TIMEOUT;
            let witness = witness.clone();
            async move { Ok::<_, Infallible>(answer(request, witness).await) }
        })
    };
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let until = *deadline.lock().unwrap_or_else(PoisonError::into_inner);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection failed");
                }
                return;
            }
            () = close.notified(), if !closing => {
                // Finish the request in flight, if any, then close.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(until) => {
                // A request that came meanwhile moved the deadline.
                if *deadline.lock().unwrap_or_else(PoisonError::into_inner) <= Instant::now() {
                    tracing::debug!(%peer, "request not answered in time");
                    return;
                }
            }
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// A refusal: one line of plain text.
fn refuse(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let line = message.replace('\n', " ");
    text(status, PLAIN, format!("{line}\n"))
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed: use {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

async fn answer(request: Request<Incoming>, witness: Arc<Witness>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == "/add-checkpoint" {
        if request.method() != Method::POST {
            return method_not_allowed("POST");
        }
        return add_checkpoint(request, witness).await;
    }
    if let Some(hash) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/checkpoint"))
        .filter(|h| !h.contains('/'))
    {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return method_not_allowed("GET");
        }
        return match witness.latest(hash) {
            Some(note) => text(StatusCode::OK, PLAIN, note),
            None => refuse(
                StatusCode::NOT_FOUND,
                &format!("no checkpoint cosigned for the log whose origin hashes to {hash:?}"),
            ),
        };
    }
    refuse(StatusCode::NOT_FOUND, &format!("no such endpoint {path:?}"))
}

async fn add_checkpoint(
    request: Request<Incoming>,
    witness: Arc<Witness>,
) -> Response<Full<Bytes>> {
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than {MAX_BODY} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body: {e}"),
            );
        }
    };
    // Verification, the per-log lock and the fsync all block: run them on the blocking
    // pool, where a dropped connection cannot interrupt them halfway.
    let result = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    match result {
        Ok(Ok(lines)) => text(StatusCode::OK, PLAIN, lines),
        Ok(Err(AddError::Conflict { old, stored })) => {
            tracing::info!(
                old,
                stored,
                "refused add-checkpoint: old size does not match"
            );
            text(
                StatusCode::CONFLICT,
                SIZE_CONTENT_TYPE,
                format!("{stored}\n"),
            )
        }
        Ok(Err(e)) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "add-checkpoint failed");
            } else {
                tracing::info!(status = status.as_u16(), error = %e, "refused add-checkpoint");
            }
            refuse(status, &e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "add-checkpoint task failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
