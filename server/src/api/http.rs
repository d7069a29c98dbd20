//! The HTTP/1.1 listeners beside gRPC (metrics, tiles), plain or over TLS: hyper with
//! keep-alive, and limits that never let a client hold one. A TLS handshake and then each
//! request head have `header_timeout` to arrive, an answer `request_timeout` to be
//! written, and at `max_connections` a new connection closes the oldest one, so idle or
//! stalled connections cannot starve the others.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Longest request head (request line and headers) read; a longer one is answered 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// A listener's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a connection has to send a complete request head: from its opening, and
    /// again after each answer.
    pub header_timeout: Duration,
    /// How long a request has, from its head until its answer is written.
    pub request_timeout: Duration,
    /// Connections open at once; one more closes the oldest.
    pub max_connections: usize,
}

/// Serves `handler`'s answers on `listener` until the task is dropped (which closes every
/// connection), over TLS with `tls`. `name` is what the log lines call the listener.
/// Request bodies are never read.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    name: &'static str,
    handler: H,
) where
    H: Fn(http::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let open = Open::default();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Owning the connection tasks here means dropping `serve` closes them all.
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (id, close) = open.admit(limits.max_connections);
                    let http = http.clone();
                    let open = open.clone();
                    let handler = handler.clone();
                    let acceptor = acceptor.clone();
                    tasks.spawn(async move {
                        let served = Served { http: &http, request_timeout: limits.request_timeout, close: &close, peer, name };
                        match acceptor {
                            None => served.connection(stream, handler).await,
                            Some(acceptor) => {
                                // A peer that never finishes its handshake holds its slot
                                // no longer than one that never sends a request head, and
                                // gives it up to a newer connection at the cap.
                                let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                                tokio::select! {
                                    done = handshake => match done {
                                        Ok(Ok(stream)) => served.connection(stream, handler).await,
                                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "{name} TLS handshake failed"),
                                        Err(_) => tracing::debug!(%peer, "{name} TLS handshake not done in time"),
                                    },
                                    () = close.notified() => {
                                        tracing::debug!(%peer, "{name} handshake closed to make room for a newer connection");
                                    }
                                }
                            }
                        }
                        open.remove(id);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a {name} connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
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
        // A panic while holding the lock cannot leave the map half-updated.
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while inner.connections.len() >= max.max(1) {
            let Some((_, oldest)) = inner.connections.pop_first() else {
                break;
            };
            // A permit is stored if the task is not waiting yet: it still closes.
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
}

/// What serving one connection needs besides its stream and handler.
struct Served<'a> {
    http: &'a http1::Builder,
    request_timeout: Duration,
    close: &'a Notify,
    peer: std::net::SocketAddr,
    name: &'static str,
}

impl Served<'_> {
    /// Serves one connection until the client closes it, hyper gives up on it (a request head
    /// not complete within the header timeout, a malformed or oversized head), its latest
    /// request is not answered within `request_timeout`, or a newer connection needs its place.
    async fn connection<S, H, F>(self, stream: S, handler: H)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(http::Request<hyper::body::Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let Served {
            http,
            request_timeout,
            close,
            peer,
            name,
        } = self;
        // Until the first request, hyper's header timeout closes the connection first; this is
        // only the backstop.
        let deadline = Arc::new(Mutex::new(Instant::now() + 2 * request_timeout));
        let service = {
            let deadline = deadline.clone();
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                *deadline.lock().unwrap_or_else(PoisonError::into_inner) =
                    Instant::now() + request_timeout;
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            })
        };
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        loop {
            let until = *deadline.lock().unwrap_or_else(PoisonError::into_inner);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "{name} connection failed");
                    }
                    return;
                }
                () = close.notified() => {
                    tracing::debug!(%peer, "{name} connection closed to make room for a newer one");
                    return;
                }
                () = tokio::time::sleep_until(until) => {
                    // A request that came meanwhile moved the deadline.
                    if *deadline.lock().unwrap_or_else(PoisonError::into_inner) <= Instant::now() {
                        tracing::debug!(%peer, "{name} request not answered in time");
                        return;
                    }
                }
            }
        }
    }
}
