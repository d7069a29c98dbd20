//! The accept loop of the gRPC listener. It caps open connections, in all and per peer IP
//! address, closing a connection over a cap as soon as it is accepted; and when accepting
//! fails for want of file descriptors or memory it waits and retries (logging once per
//! burst) instead of spinning a core. A connection that sends nothing within the
//! handshake timeout is closed. It never reads from a connection itself.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::LimitsConfig;

/// The first wait after a failed accept; it doubles while accepting keeps failing.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait between two accepts that fail.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Connections closed over a cap are logged at most this often.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The connection caps and the open connections they count.
#[derive(Debug)]
pub struct Caps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Invariant: holds only addresses with at least one open connection.
    per_ip: HashMap<IpAddr, usize>,
}

impl Caps {
    /// Caps as configured (`limits.max_connections`, `limits.max_connections_per_ip`).
    pub fn new(config: &LimitsConfig) -> Arc<Caps> {
        Arc::new(Caps {
            max_total: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Counters only, updated in one step each: still consistent after a panic.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more connection from `ip`, or `None` when a cap is reached.
    fn take(self: &Arc<Caps>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.lock();
        let of_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if open.total >= self.max_total || of_ip >= self.max_per_ip {
            return None;
        }
        open.total += 1;
        open.per_ip.insert(ip, of_ip + 1);
        Some(Slot {
            caps: self.clone(),
            ip,
        })
    }

    /// Open connections: in all, and from `ip`.
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.lock();
        (open.total, open.per_ip.get(&ip).copied().unwrap_or(0))
    }
}

/// One open connection's place under the caps, freed when the connection is dropped.
#[derive(Debug)]
struct Slot {
    caps: Arc<Caps>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection within the caps.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    _slot: Slot,
    /// Until the peer's first bytes arrive: when the connection is given up on.
    first_bytes: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        let Some(deadline) = &mut self.first_bytes else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() == before => read,
            Poll::Ready(_) => {
                self.first_bytes = None;
                read
            }
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer sent nothing within limits.handshake_timeout_ms",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The stream of accepted connections the gRPC server serves. It never yields an error:
/// failed accepts are retried here.
#[derive(Debug)]
pub struct Incoming {
    listener: TcpListener,
    caps: Arc<Caps>,
    handshake_timeout: Duration,
    /// The wait before the next accept, after one failed.
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
    next_backoff: Duration,
    /// Failed accepts in the current burst.
    failures: u64,
    /// Connections closed over a cap since the last log line, and when that was.
    over_cap: u64,
    over_cap_logged: Option<Instant>,
}

impl Incoming {
    /// Accepts on `listener` within `caps`; a connection must send its first bytes within
    /// `handshake_timeout`.
    pub fn new(listener: TcpListener, caps: Arc<Caps>, handshake_timeout: Duration) -> Incoming {
        Incoming {
            listener,
            caps,
            handshake_timeout,
            backoff: None,
            next_backoff: FIRST_BACKOFF,
            failures: 0,
            over_cap: 0,
            over_cap_logged: None,
        }
    }

    fn closed_over_cap(&mut self, peer: std::net::SocketAddr) {
        self.over_cap += 1;
        let now = Instant::now();
        if self
            .over_cap_logged
            .is_some_and(|at| now.duration_since(at) < CAP_LOG_INTERVAL)
        {
            return;
        }
        let (total, of_peer) = self.caps.open(peer.ip());
        tracing::warn!(
            %peer,
            closed = self.over_cap,
            open = total,
            open_from_peer = of_peer,
            max_connections = self.caps.max_total,
            max_connections_per_ip = self.caps.max_per_ip,
            "connection closed: over the connection cap (limits.max_connections, \
             limits.max_connections_per_ip); counts connections closed since the last line"
        );
        self.over_cap = 0;
        self.over_cap_logged = Some(now);
    }
}

/// Whether a failed accept concerns only the connection being accepted (retry at once),
/// rather than the process (file descriptors, memory: wait before retrying).
fn only_that_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(backoff) = &mut this.backoff {
                ready!(backoff.as_mut().poll(cx));
                this.backoff = None;
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((stream, peer)) => {
                    if this.failures > 0 {
                        tracing::info!(
                            failures = this.failures,
                            "accepting connections again after {} failed accepts",
                            this.failures
                        );
                        this.failures = 0;
                        this.next_backoff = FIRST_BACKOFF;
                    }
                    let Some(slot) = this.caps.take(peer.ip()) else {
                        // Dropped here: closed before anything is read from it.
                        drop(stream);
                        this.closed_over_cap(peer);
                        continue;
                    };
                    // Without TCP_NODELAY, small answers wait for delayed ACKs (~40 ms).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "setting TCP_NODELAY failed");
                    }
                    return Poll::Ready(Some(Ok(Conn {
                        stream,
                        _slot: slot,
                        first_bytes: Some(Box::pin(tokio::time::sleep(this.handshake_timeout))),
                    })));
                }
                Err(e) if only_that_connection(&e) => continue,
                Err(e) => {
                    if this.failures == 0 {
                        tracing::error!(
                            error = %e,
                            "accepting a connection failed (out of file descriptors or \
                             memory?): retrying with a growing pause up to {} ms; raise the \
                             file limit (LimitNOFILE) or lower limits.max_connections",
                            MAX_BACKOFF.as_millis()
                        );
                    }
                    this.failures += 1;
                    this.backoff = Some(Box::pin(tokio::time::sleep(this.next_backoff)));
                    this.next_backoff = (this.next_backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
