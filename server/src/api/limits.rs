//! Request limits: a rate (token bucket) and a concurrency cap per client, and a global
//! concurrency cap. A request over a limit gets `RESOURCE_EXHAUSTED` naming the limit; the
//! other clients keep their share.
//!
//! Before authentication: [`Refusals`], a budget of refused requests per peer IP address
//! (and the sampling of their log lines), and [`CappedBody`], the request size limit
//! enforced as the body arrives. Neither may ever buffer a request body.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Code, Status};

use crate::api::reason::{Reason, refuse};
use crate::config::LimitsConfig;

/// A client's token bucket and concurrency.
#[derive(Debug)]
struct ClientState {
    tokens: f64,
    refilled: Instant,
    in_flight: Arc<Semaphore>,
}

/// The limits of a running server.
#[derive(Debug)]
pub struct Limiter {
    config: LimitsConfig,
    global: Arc<Semaphore>,
    clients: Mutex<Buckets>,
}

/// The token buckets: one per client, one for all.
#[derive(Debug)]
struct Buckets {
    clients: HashMap<String, ClientState>,
    /// Tokens of the global bucket, and when it was last refilled.
    global: (f64, Instant),
}

/// Held while a request runs; frees its concurrency slots when dropped.
#[derive(Debug)]
pub struct Permit {
    _global: OwnedSemaphorePermit,
    _client: OwnedSemaphorePermit,
}

impl Limiter {
    /// Limits as configured.
    pub fn new(config: &LimitsConfig) -> Limiter {
        Limiter {
            config: config.clone(),
            global: Arc::new(Semaphore::new(config.max_concurrent)),
            clients: Mutex::new(Buckets {
                clients: HashMap::new(),
                global: (config.burst_global, Instant::now()),
            }),
        }
    }

    /// How long a request may run (`limits.request_timeout_ms`); a submission stream may
    /// wait this long for its next message while nothing of it is in flight.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// Charges one more envelope of a batch or stream of `client` against the rate limits
    /// (per client and global); the call's concurrency slot is the one its [`Permit`] holds.
    pub fn charge(&self, client: &str) -> Result<(), Status> {
        self.take_token(client).map(drop)
    }

    /// Admits one request of `client`, or says which limit it exceeds.
    pub fn admit(&self, client: &str) -> Result<Permit, Status> {
        let in_flight = self.take_token(client)?;
        let client_permit = in_flight.try_acquire_owned().map_err(|_| {
            crate::metrics::rate_limited();
            refuse(
                Code::ResourceExhausted,
                Reason::OverConcurrency,
                format!(
                    "{client} already has {} requests in flight \
                     (limits.max_concurrent_per_client)",
                    self.config.max_concurrent_per_client
                ),
                &[("scope", "client"), ("client", client)],
            )
        })?;
        let global_permit = self.global.clone().try_acquire_owned().map_err(|_| {
            crate::metrics::rate_limited();
            refuse(
                Code::ResourceExhausted,
                Reason::OverConcurrency,
                format!(
                    "the server has {} requests in flight (limits.max_concurrent): retry shortly",
                    self.config.max_concurrent
                ),
                &[("scope", "server")],
            )
        })?;
        Ok(Permit {
            _global: global_permit,
            _client: client_permit,
        })
    }

    /// Takes one token of `client`'s bucket and one of the global bucket, or says which
    /// rate `client` is over. Returns the client's concurrency semaphore.
    fn take_token(&self, client: &str) -> Result<Arc<Semaphore>, Status> {
        {
            let mut buckets = self
                .clients
                .lock()
                .map_err(|_| Status::internal("the limiter's lock was poisoned by a panic"))?;
            let now = Instant::now();
            let (tokens, refilled) = buckets.global;
            let tokens = (tokens
                + now.duration_since(refilled).as_secs_f64() * self.config.rate_global)
                .min(self.config.burst_global);
            buckets.global = (tokens, now);
            if tokens < 1.0 {
                crate::metrics::rate_limited();
                return Err(refuse(
                    Code::ResourceExhausted,
                    Reason::OverRateLimit,
                    format!(
                        "the server is over its rate limit of {} requests/s for all clients \
                         (limits.rate_global): retry shortly",
                        self.config.rate_global
                    ),
                    &[("scope", "server")],
                ));
            }
            let state = buckets
                .clients
                .entry(client.to_owned())
                .or_insert_with(|| ClientState {
                    tokens: self.config.burst_per_client,
                    refilled: now,
                    in_flight: Arc::new(Semaphore::new(self.config.max_concurrent_per_client)),
                });
            let elapsed = now.duration_since(state.refilled).as_secs_f64();
            state.tokens = (state.tokens + elapsed * self.config.rate_per_client)
                .min(self.config.burst_per_client);
            state.refilled = now;
            if state.tokens < 1.0 {
                crate::metrics::rate_limited();
                return Err(refuse(
                    Code::ResourceExhausted,
                    Reason::OverRateLimit,
                    format!(
                        "{client} is over its rate limit of {} requests/s with bursts of {} \
                         (limits.rate_per_client, limits.burst_per_client): slow down and retry",
                        self.config.rate_per_client, self.config.burst_per_client
                    ),
                    &[("scope", "client"), ("client", client)],
                ));
            }
            state.tokens -= 1.0;
            let in_flight = state.in_flight.clone();
            buckets.global.0 -= 1.0;
            Ok(in_flight)
        }
    }
}

/// Room for the protobuf framing around an envelope (field tags and lengths, up to the
/// accepted number of signatures): a request message may be this much longer than
/// `max_envelope_bytes` before it is refused unread.
pub const FRAMING_BYTES: usize = 1024;

/// The most envelopes one `SubmitBatch` request or one `SubmitStream` message may carry:
/// what the client splits its batches by.
pub const MAX_BATCH_ENVELOPES: usize = evident_api::MAX_ENVELOPES_PER_REQUEST;

/// The most envelopes of one submission stream received and not yet answered: past it the
/// server reads no more of the stream until answers have gone out.
pub const MAX_STREAM_IN_FLIGHT: usize = 1024;

/// The most `SubmitBatch` and `SubmitStream` calls one client may have open at once. Their
/// messages may be far larger than an envelope, and are read before the per-client
/// concurrency limit applies: the front door holds them to this before reading a byte.
pub const MAX_BATCH_CALLS_PER_CLIENT: usize = 16;

/// The most `SubmitBatch` and `SubmitStream` calls open at once, all clients together: with
/// 4 MiB messages, at most 256 MiB of request bodies are buffered.
pub const MAX_BATCH_CALLS: usize = 64;

/// The open batch and stream calls, in all and per client.
#[derive(Debug, Default)]
pub struct BatchCalls {
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open batch or stream call; closed when dropped (with the call's request body).
#[derive(Debug)]
pub struct BatchCall {
    calls: Arc<BatchCalls>,
    client: String,
}

impl BatchCalls {
    /// Opens a call for `client`, or says which bound it is over.
    pub fn open(self: &Arc<Self>, client: &str) -> Result<BatchCall, Status> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *open;
        let mine = per_client.get(client).copied().unwrap_or(0);
        if mine >= MAX_BATCH_CALLS_PER_CLIENT {
            return Err(refuse(
                Code::ResourceExhausted,
                Reason::TooManyOpenCalls,
                format!(
                    "{client} already has {mine} SubmitBatch or SubmitStream calls open, the \
                     most one client may: wait for one to finish, or send more envelopes per call"
                ),
                &[("scope", "client"), ("client", client)],
            ));
        }
        if *total >= MAX_BATCH_CALLS {
            return Err(refuse(
                Code::ResourceExhausted,
                Reason::TooManyOpenCalls,
                format!(
                    "the server has {total} SubmitBatch or SubmitStream calls open, the most it \
                     takes at once: retry with backoff"
                ),
                &[("scope", "server")],
            ));
        }
        *total += 1;
        *per_client.entry(client.to_owned()).or_default() += 1;
        Ok(BatchCall {
            calls: self.clone(),
            client: client.to_owned(),
        })
    }
}

impl Drop for BatchCall {
    fn drop(&mut self) {
        let mut open = self.calls.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(mine) = per_client.get_mut(&self.client) {
            *mine -= 1;
            if *mine == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// The largest `SubmitBatch` request or `SubmitStream` message the server reads when
/// envelopes are at most `max_envelope_bytes`: 4 MiB (gRPC's usual message limit), or one
/// envelope's request if that is larger. Each envelope in it is still held to
/// `max_envelope_bytes`.
pub fn max_batch_message_bytes(max_envelope_bytes: usize) -> usize {
    (4 << 20).max(max_submit_request_bytes(max_envelope_bytes))
}

/// The largest request message of a call other than `SubmitBatch` and `SubmitStream`, for
/// an envelope limit of `max_envelope_bytes`.
pub fn max_submit_request_bytes(max_envelope_bytes: usize) -> usize {
    max_envelope_bytes + FRAMING_BYTES
}

/// The largest request message any call accepts (a batch's), for an envelope limit of
/// `max_envelope_bytes`: tonic's own decoding limit, a backstop behind [`CappedBody`], which
/// holds each call to its own limit before the message is read.
pub fn max_request_bytes(max_envelope_bytes: usize) -> usize {
    max_batch_message_bytes(max_envelope_bytes)
}

/// The refusal of an envelope over `max_envelope_bytes`, whether the front door finds it
/// from the request's size (framing included) before reading it, or the `Submit` handler
/// from the envelope's encoding: one status, one message.
pub fn oversize_envelope(size: usize, max_envelope_bytes: usize) -> Status {
    refuse(
        Code::ResourceExhausted,
        Reason::TooLarge,
        format!(
            "envelope of {size} bytes is over the {max_envelope_bytes}-byte limit \
             (max_envelope_bytes): reference large evidence (SBOM, SARIF) by digest in the \
             predicate instead"
        ),
        &[("limit", "max_envelope_bytes")],
    )
}

/// What a capped body belongs to: the limit of its messages and how a refusal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `Submit`: one message, one envelope (refusals counted as submissions).
    Submit,
    /// `SubmitBatch`: one message of up to [`MAX_BATCH_ENVELOPES`] envelopes.
    SubmitBatch,
    /// `SubmitStream`: any number of messages, each held to the batch message limit.
    SubmitStream,
    /// Any other call: one message.
    Other,
}

/// A request body that fails with `RESOURCE_EXHAUSTED` as soon as a gRPC message header
/// announces more than the call's message size limit, or more than that arrives: the server
/// never holds more of an oversize message than its first frame. A stream's messages are
/// each held to the limit; any other call carries one message.
#[derive(Debug)]
pub struct CappedBody {
    inner: tonic::body::Body,
    max_envelope_bytes: usize,
    call: Call,
    /// The gRPC message header (compression flag, big-endian length) as it arrives.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message's body still to come.
    remaining: usize,
    /// Messages begun so far.
    messages: usize,
    /// The open batch or stream call this body belongs to, if it is one.
    _call: Option<BatchCall>,
}

impl CappedBody {
    /// `inner`, capped for `call` and an envelope limit of `max_envelope_bytes`.
    pub fn new(inner: tonic::body::Body, max_envelope_bytes: usize, call: Call) -> Self {
        CappedBody {
            inner,
            max_envelope_bytes,
            call,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            messages: 0,
            _call: None,
        }
    }

    /// This body, holding `call` open until it is dropped.
    pub fn holding(mut self, call: BatchCall) -> Self {
        self._call = Some(call);
        self
    }

    /// The largest message the call accepts.
    fn limit(&self) -> usize {
        match self.call {
            Call::SubmitBatch | Call::SubmitStream => {
                max_batch_message_bytes(self.max_envelope_bytes)
            }
            Call::Submit | Call::Other => max_submit_request_bytes(self.max_envelope_bytes),
        }
    }

    fn refuse(&self, size: usize) -> Status {
        let refused = match self.call {
            Call::Submit => oversize_envelope(size, self.max_envelope_bytes),
            Call::SubmitBatch | Call::SubmitStream => refuse(
                Code::ResourceExhausted,
                Reason::TooLarge,
                format!(
                    "request message of {size} bytes is over the {}-byte limit of a batch \
                     message (4 MiB, at least one envelope's request): send fewer envelopes \
                     per message",
                    self.limit()
                ),
                &[("limit", "batch_message_bytes")],
            ),
            Call::Other => refuse(
                Code::ResourceExhausted,
                Reason::TooLarge,
                format!(
                    "request of {size} bytes is over the {}-byte limit (max_envelope_bytes)",
                    self.limit()
                ),
                &[("limit", "max_envelope_bytes")],
            ),
        };
        if self.call != Call::Other {
            crate::metrics::METRICS.submission(Err(refused.code()));
        }
        refused
    }

    /// Takes in a chunk of the body: the refusal when it goes over the limit.
    fn take(&mut self, mut data: &[u8]) -> Result<(), Status> {
        let limit = self.limit();
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            if self.header_len == 0 {
                self.messages += 1;
                // A call other than a stream carries one message: anything after it is
                // more than the limit allows.
                if self.messages > 1 && self.call != Call::SubmitStream {
                    return Err(self.refuse(limit.saturating_add(data.len())));
                }
            }
            let n = (self.header.len() - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == self.header.len() {
                let [_, a, b, c, d] = self.header;
                let announced =
                    usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                if announced > limit {
                    return Err(self.refuse(announced));
                }
                self.header_len = 0;
                self.remaining = announced;
            }
        }
        Ok(())
    }
}

impl http_body::Body for CappedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                self.take(data)?;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How often the refusals of a peer beyond the first are summed up in one log line.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Peers tracked at once; refusals from further peers are counted together.
const MAX_TRACKED_PEERS: usize = 65_536;

/// What [`Refusals`] knows of one peer address.
#[derive(Debug)]
struct Peer {
    /// Refusals it may still cause now.
    tokens: f64,
    refilled: Instant,
    /// Whether a refusal of this interval was logged.
    logged: bool,
    /// Refusals of this interval not logged one by one.
    unlogged: u64,
}

/// The refusal budget of each peer IP address, and the sampled logging of refusals.
///
/// A request refused for its credentials or its roles costs its peer one token; a peer out
/// of tokens has every request that needs credentials refused with `RESOURCE_EXHAUSTED`
/// before they are looked at, until its bucket refills. Clients that authenticate are not
/// charged. Per peer and interval the first refusal is logged with its reason; the others
/// are summed up by [`Refusals::summarize`].
#[derive(Debug)]
pub struct Refusals {
    rate: f64,
    burst: f64,
    state: Mutex<RefusalState>,
}

#[derive(Debug, Default)]
struct RefusalState {
    peers: HashMap<IpAddr, Peer>,
    /// Refusals of peers beyond [`MAX_TRACKED_PEERS`] this interval.
    untracked: u64,
}

impl Refusals {
    /// Budgets as configured (`limits.refused_rate_per_ip`, `limits.refused_burst_per_ip`).
    pub fn new(config: &LimitsConfig) -> Refusals {
        Refusals {
            rate: config.refused_rate_per_ip,
            burst: config.refused_burst_per_ip,
            state: Mutex::new(RefusalState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RefusalState> {
        // The state is counters only: one a panic left half-updated is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Before authentication: `RESOURCE_EXHAUSTED` when `peer` is out of its refusal budget.
    pub fn admit(&self, peer: Option<SocketAddr>, what: &str) -> Result<(), Status> {
        let ip = ip_of(peer);
        let mut state = self.lock();
        let Some(p) = state.peers.get_mut(&ip) else {
            return Ok(());
        };
        let now = Instant::now();
        p.tokens =
            (p.tokens + now.duration_since(p.refilled).as_secs_f64() * self.rate).min(self.burst);
        p.refilled = now;
        if p.tokens >= 1.0 {
            return Ok(());
        }
        crate::metrics::rate_limited();
        let refused = refuse(
            Code::ResourceExhausted,
            Reason::OverRateLimit,
            format!(
                "{ip} is over its budget of refused requests ({} a second, bursts of {}: \
                 limits.refused_rate_per_ip, limits.refused_burst_per_ip): its requests are \
                 refused unread; give the client a valid token or certificate, then retry in \
                 a few seconds",
                self.rate, self.burst
            ),
            &[("scope", "refused_requests")],
        );
        if !std::mem::replace(&mut p.logged, true) {
            tracing::warn!(peer = %ip, what, reason = refused.message(), "request refused");
        } else {
            p.unlogged += 1;
        }
        Err(refused)
    }

    /// Charges `peer` for a refusal (`client` when it authenticated) and logs it, unless a
    /// refusal of this peer was already logged this interval.
    pub fn refused(
        &self,
        peer: Option<SocketAddr>,
        what: &str,
        client: Option<&str>,
        refusal: &Status,
    ) {
        let ip = ip_of(peer);
        let mut state = self.lock();
        let tracked = state.peers.len() < MAX_TRACKED_PEERS || state.peers.contains_key(&ip);
        if !tracked {
            state.untracked += 1;
            return;
        }
        let now = Instant::now();
        let p = state.peers.entry(ip).or_insert(Peer {
            tokens: self.burst,
            refilled: now,
            logged: false,
            unlogged: 0,
        });
        p.tokens =
            (p.tokens + now.duration_since(p.refilled).as_secs_f64() * self.rate).min(self.burst);
        p.refilled = now;
        p.tokens = (p.tokens - 1.0).max(0.0);
        if std::mem::replace(&mut p.logged, true) {
            p.unlogged += 1;
            return;
        }
        drop(state);
        let peer = peer.map_or_else(|| ip.to_string(), |a| a.to_string());
        let code = refusal.code();
        let reason = refusal.message();
        match client {
            None => tracing::warn!(%peer, what, ?code, reason, "unauthenticated request refused"),
            Some(client) => tracing::warn!(%peer, client, what, ?code, "request refused: role"),
        }
    }

    /// Logs, per peer, the refusals of the interval that were not logged one by one, and
    /// starts a new interval; forgets peers with a full budget. Called every
    /// [`REFUSAL_LOG_INTERVAL`]. Returns the lines' (peer, count), for tests.
    pub fn summarize(&self) -> Vec<(IpAddr, u64)> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut lines = Vec::new();
        let (rate, burst) = (self.rate, self.burst);
        state.peers.retain(|ip, p| {
            if p.unlogged > 0 {
                lines.push((*ip, p.unlogged));
            }
            p.unlogged = 0;
            p.logged = false;
            let tokens = p.tokens + now.duration_since(p.refilled).as_secs_f64() * rate;
            tokens < burst
        });
        let untracked = std::mem::take(&mut state.untracked);
        drop(state);
        let seconds = REFUSAL_LOG_INTERVAL.as_secs();
        for (peer, refused) in &lines {
            tracing::warn!(
                %peer,
                refused,
                "{refused} more requests refused from {peer} in the last {seconds} s"
            );
        }
        if untracked > 0 {
            tracing::warn!(
                refused = untracked,
                "{untracked} requests refused in the last {seconds} s from peers beyond the \
                 {MAX_TRACKED_PEERS} tracked"
            );
        }
        lines
    }
}

/// The address a peer is tracked under; unknown (no TCP peer) counts as one peer.
fn ip_of(peer: Option<SocketAddr>) -> IpAddr {
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: f64, burst: f64, per_client: usize, global: usize) -> Limiter {
        Limiter::new(&LimitsConfig {
            rate_per_client: rate,
            burst_per_client: burst,
            max_concurrent_per_client: per_client,
            max_concurrent: global,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn all_clients_together_are_held_to_the_global_rate() {
        let l = Limiter::new(&LimitsConfig {
            rate_global: 0.001,
            burst_global: 4.0,
            ..LimitsConfig::default()
        });
        for client in ["a", "b", "c", "d"] {
            drop(l.admit(client).unwrap());
        }
        let err = l.admit("e").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("limits.rate_global"), "{err}");
    }

    #[test]
    fn a_client_over_its_rate_is_refused_and_others_are_not() {
        let l = limits(0.001, 3.0, 100, 100);
        for _ in 0..3 {
            drop(l.admit("a").unwrap());
        }
        let err = l.admit("a").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("limits.rate_per_client"), "{err}");
        assert!(l.admit("b").is_ok(), "another client keeps its share");
    }

    #[test]
    fn concurrency_is_capped_per_client_and_globally() {
        let l = limits(1e9, 1e9, 2, 3);
        let a1 = l.admit("a").unwrap();
        let _a2 = l.admit("a").unwrap();
        let err = l.admit("a").unwrap_err();
        assert!(err.message().contains("max_concurrent_per_client"), "{err}");
        let _b1 = l.admit("b").unwrap();
        let err = l.admit("c").unwrap_err();
        assert!(err.message().contains("limits.max_concurrent)"), "{err}");
        drop(a1);
        assert!(l.admit("c").is_ok(), "a finished request frees its slot");
    }

    #[test]
    fn a_peer_over_its_refusal_budget_is_refused_unread_and_summed_up() {
        let r = Refusals::new(&LimitsConfig {
            refused_rate_per_ip: 0.001,
            refused_burst_per_ip: 3.0,
            ..LimitsConfig::default()
        });
        let peer: Option<SocketAddr> = Some("10.0.0.1:5000".parse().unwrap());
        let other: Option<SocketAddr> = Some("10.0.0.2:5000".parse().unwrap());
        let refusal = Status::unauthenticated("no credentials");
        for _ in 0..3 {
            r.admit(peer, "read checkpoints").unwrap();
            r.refused(peer, "read checkpoints", None, &refusal);
        }
        let err = r.admit(peer, "read checkpoints").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message().contains("limits.refused_rate_per_ip"),
            "{err}"
        );
        assert!(
            r.admit(other, "read checkpoints").is_ok(),
            "others keep their budget"
        );
        // The first refusal was logged; the two after it and the budget refusal are summed.
        assert_eq!(r.summarize(), vec![("10.0.0.1".parse().unwrap(), 3)]);
        assert!(r.summarize().is_empty(), "a new interval starts empty");
    }

    /// A gRPC message: header and `len` bytes of body.
    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        m.extend(std::iter::repeat_n(0x0a, len));
        m
    }

    #[test]
    fn a_stream_holds_each_message_to_the_batch_limit_and_a_unary_call_to_one_message() {
        let limit = max_batch_message_bytes(1024);
        let mut stream = CappedBody::new(tonic::body::Body::empty(), 1024, Call::SubmitStream);
        // Many messages within the limit, split across chunks anywhere.
        let mut bytes = Vec::new();
        for len in [10, limit, 0, 3000] {
            bytes.extend(message(len));
        }
        for chunk in bytes.chunks(7) {
            stream.take(chunk).unwrap();
        }
        // The next one announces one byte too many: refused from its header.
        let err = stream.take(&message(limit + 1)[..5]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("send fewer envelopes"), "{err}");

        // Submit: one message of at most the envelope limit plus framing.
        let mut unary = CappedBody::new(tonic::body::Body::empty(), 1024, Call::Submit);
        unary.take(&message(1024 + FRAMING_BYTES)).unwrap();
        assert!(
            unary.take(&message(1)).is_err(),
            "a second message is refused"
        );
        let mut unary = CappedBody::new(tonic::body::Body::empty(), 1024, Call::Submit);
        let err = unary.take(&message(1024 + FRAMING_BYTES + 1)).unwrap_err();
        assert!(err.message().contains("max_envelope_bytes"), "{err}");
        // A batch: one message of up to the batch limit.
        let mut batch = CappedBody::new(tonic::body::Body::empty(), 1024, Call::SubmitBatch);
        batch.take(&message(limit)).unwrap();
        assert!(batch.take(&message(1)).is_err());
    }

    #[test]
    fn the_oversize_message_names_the_size_the_limit_and_what_to_do() {
        let err = oversize_envelope(70_000, 65_536);
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            err.message(),
            "envelope of 70000 bytes is over the 65536-byte limit (max_envelope_bytes): \
             reference large evidence (SBOM, SARIF) by digest in the predicate instead"
        );
    }
}
