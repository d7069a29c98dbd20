//! The typed gRPC client: connecting, timeouts and retries, and one method per call of
//! `evident.v1.Ledger`, answering core types through [`crate::convert`]. It checks the
//! shape of answers, never their proofs or signatures.

use evident_core::Hash;
use evident_core::bundle::Bundle;
use evident_core::dsse::Envelope;
use evident_core::receipt::Receipt;
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::{Admin, Event, SignerKey};
use evident_proto::v1 as pb;
use evident_proto::v1::ledger_client::LedgerClient;
use std::time::Duration;

use tonic::Status;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::ClientError;
use crate::convert::{
    ConvertError, Selector, admin_from_proto, envelope_to_proto, event_from_proto, hash_from_proto,
    hashes_from_proto, kind_to_proto, log_entry_from_proto, receipt_from_proto, selector_to_proto,
    signer_from_proto,
};

/// The answer to one envelope of a batch or stream: its receipt (not yet verified) and
/// whether the log already held it, or why the server refused it
/// ([`ClientError::Status`] with the code and message `Submit` would have given).
pub type SubmitAnswer = Result<(Receipt, bool), ClientError>;

/// The largest answer the client accepts, and so the server sends: evidence bundles of big
/// registries and releases, pages of entries.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The most envelopes the server accepts in one `SubmitBatch` request or stream message.
pub const MAX_ENVELOPES_PER_REQUEST: usize = 256;

/// The answers of a [`Client::submit_stream`] call.
#[derive(Debug)]
pub struct SubmitStream {
    answers: tonic::Streaming<pb::SubmitStreamResponse>,
    /// Envelopes sent and not yet answered, oldest first.
    sent: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Envelope>>>,
    /// The number the next answer must carry.
    next: u64,
}

impl SubmitStream {
    /// The next envelope's number and answer; `None` once every envelope was answered and
    /// the server closed the stream. An error ends the stream (the server ended it, or
    /// its answer is malformed).
    pub async fn next(&mut self) -> Option<Result<(u64, SubmitAnswer), ClientError>> {
        let response = match self.answers.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return None,
            Err(status) => return Some(Err(status.into())),
        };
        if response.sequence != self.next {
            return Some(Err(ClientError::Response(format!(
                "answer numbered {} where {} was due",
                response.sequence, self.next
            ))));
        }
        let Some(envelope) = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
        else {
            return Some(Err(ClientError::Response(format!(
                "answer {} to an envelope never sent",
                response.sequence
            ))));
        };
        self.next += 1;
        let Some(result) = response.result else {
            return Some(Err(ClientError::Response(format!(
                "answer {} is empty",
                response.sequence
            ))));
        };
        Some(Ok((
            response.sequence,
            answer_from_proto(result, &envelope),
        )))
    }
}

/// One page of [`EntryPages`]: the index of its first record and the records, in log order.
pub type EntryPage = (u64, Vec<Vec<u8>>);

/// The most items a listing of the registry or the policies is read to: far above any real
/// registry, and a bound on what a server that keeps sending pages can make a client hold.
pub const MAX_LISTED: usize = 1_000_000;

/// The token of the page after the one asked for with `asked`, whose answer held `items`
/// items and brought the listing to `total`: empty after the last. A server that answers
/// with the token it was given, or with empty pages that go on, would page forever; one
/// that lists more than [`MAX_LISTED`] items would fill the client's memory.
fn next_page(
    asked: String,
    next: String,
    items: usize,
    total: usize,
) -> Result<String, ClientError> {
    if next.is_empty() {
        return Ok(next);
    }
    if next == asked {
        return Err(ClientError::Response(
            "the next page's token is the one just sent".into(),
        ));
    }
    if items == 0 {
        return Err(ClientError::Response(
            "an empty page names a next page".into(),
        ));
    }
    if total > MAX_LISTED {
        return Err(ClientError::Response(format!(
            "the listing goes on past {MAX_LISTED} items"
        )));
    }
    Ok(next)
}

/// Pages of consecutive leaf records, downloaded ahead of their reader
/// ([`Client::entry_pages`]).
#[derive(Debug)]
pub struct EntryPages {
    pages: tokio::sync::mpsc::Receiver<Result<EntryPage, ClientError>>,
    /// The download; aborted when the pages are dropped.
    task: tokio::task::JoinHandle<()>,
}

impl EntryPages {
    /// The next page: the index of its first record, and the records, in log order; `None`
    /// once every record was read. An error ends the pages.
    pub async fn next(&mut self) -> Option<Result<EntryPage, ClientError>> {
        self.pages.recv().await
    }
}

impl Drop for EntryPages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The envelopes of a stream grouped into messages: as many as are ready at once, up to
/// `size`.
struct ReadyChunks<S> {
    inner: std::pin::Pin<Box<S>>,
    size: usize,
}

impl<S: tokio_stream::Stream<Item = Envelope>> tokio_stream::Stream for ReadyChunks<S> {
    type Item = Vec<Envelope>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Vec<Envelope>>> {
        use std::task::Poll;
        let mut chunk = Vec::new();
        while chunk.len() < self.size {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(envelope)) => chunk.push(envelope),
                Poll::Ready(None) if chunk.is_empty() => return Poll::Ready(None),
                Poll::Pending if chunk.is_empty() => return Poll::Pending,
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        Poll::Ready(Some(chunk))
    }
}

/// One envelope's answer in a batch or stream.
fn answer_from_proto(result: pb::SubmitResult, envelope: &Envelope) -> SubmitAnswer {
    match result.result {
        Some(pb::submit_result::Result::Receipt(r)) => Ok(receipt_from_proto(r, envelope)?),
        Some(pb::submit_result::Result::Error(e)) => Err(ClientError::Status {
            code: tonic::Code::from_i32(e.code),
            message: e.message,
            reason: (!e.reason.is_empty()).then_some(e.reason),
        }),
        None => Err(ClientError::Response("an answer is empty".into())),
    }
}

/// A connection to an `evidentd`.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Ledger,
    /// How long a unary call may take, each attempt; `None`: no limit.
    timeout: Option<Duration>,
    /// How failed idempotent calls are retried.
    retry: RetryPolicy,
}

/// The generated gRPC client, with the bearer token added to every call.
type Ledger = LedgerClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// How a [`Client`] retries a call the server could not take just then.
///
/// Only idempotent calls are retried: `Submit` and `SubmitBatch` (a resubmitted envelope
/// gets the receipt of its first submission, marked as already held) and every read;
/// [`Client::submit_stream`] is not. A call is retried when the connection fails or the
/// server answers `UNAVAILABLE`, or `RESOURCE_EXHAUSTED` for any reason but `TOO_LARGE`
/// (over a rate or concurrency limit: docs/ERRORS.md); never on another code
/// (`INVALID_ARGUMENT`, `PERMISSION_DENIED`, `DEADLINE_EXCEEDED`, …). Connecting is
/// retried the same way when the server cannot be reached. Between attempts the client
/// sleeps an exponential backoff with full jitter: a random time up to
/// `base_delay × 2^attempt`, at most `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub retries: u32,
    /// The backoff's ceiling before the first retry; it doubles with each retry.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retries: every failure is returned at once.
    pub const NONE: RetryPolicy = RetryPolicy {
        retries: 0,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// `retries` retries with the default backoff (250 ms doubling, at most 8 s).
    pub fn with_retries(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            ..RetryPolicy::default()
        }
    }

    /// The pause before retry `attempt` (0 for the first): uniformly random up to the
    /// backoff ceiling.
    pub fn delay(&self, attempt: u32) -> Duration {
        use rand_core::RngCore as _;
        let ceiling = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand_core::OsRng.next_u64() % (nanos + 1))
    }
}

impl Default for RetryPolicy {
    /// 3 retries, 250 ms doubling, at most 8 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// How [`Client::connect_with_options`] connects and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The longest wait to connect, and for each attempt of a unary call; `None`: no limit.
    pub timeout: Option<Duration>,
    /// Retries of a failed connection and of idempotent calls.
    pub retry: RetryPolicy,
}

impl Default for ConnectOptions {
    /// 30 seconds, and [`RetryPolicy::default`].
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: Some(Duration::from_secs(30)),
            retry: RetryPolicy::default(),
        }
    }
}

/// Whether a call that failed with `status` may be sent again: the server was
/// unreachable or unavailable, or over a rate or concurrency limit (not a request too
/// large, which would be refused again).
pub fn is_retryable(status: &Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::ResourceExhausted => error_reason(status).as_deref() != Some("TOO_LARGE"),
        _ => false,
    }
}

/// The `reason` of the `google.rpc.ErrorInfo` a status carries (docs/ERRORS.md), if any.
pub(crate) fn error_reason(status: &Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// An entry as `GetEntry` returns it, checked: the record decodes and hashes to the leaf
/// hash the server reported.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The exact leaf record bytes.
    pub record_bytes: Vec<u8>,
    /// The decoded record.
    pub record: LeafRecord,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// An inclusion proof, when one was asked for: (tree size, hashes).
    pub proof: Option<(u64, Vec<Hash>)>,
    /// The checkpoint the proof is at, when it is the latest.
    pub checkpoint: Option<String>,
}

/// The trust registry as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerListing {
    /// The administrators.
    pub admins: Vec<Admin>,
    /// How many must sign a registry change.
    pub threshold: usize,
    /// Every signer key ever registered, in order.
    pub signers: Vec<SignerKey>,
    /// The number of entries the listing covers.
    pub as_of_index: u64,
    /// The Sigstore trusted roots, by name, with the SHA-256 of each document.
    pub sigstore_roots: Vec<(String, evident_core::Hash)>,
}

/// What a gate asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// One artifact, `ALGORITHM:HEX`.
    Artifact(String),
    /// A release `NAME@VERSION`, whose artifacts release v0.1 attestations declare.
    Named(String),
}

impl Release {
    fn fields(&self) -> (String, String) {
        match self {
            Release::Artifact(a) => (a.clone(), String::new()),
            Release::Named(n) => (String::new(), n.clone()),
        }
    }
}

/// A policy version as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The entry that holds it.
    pub index: u64,
    /// When it was integrated (nanoseconds).
    pub integrated_time_nanos: i64,
    /// The TOML document as signed.
    pub document: String,
    /// The administrators who signed it.
    pub signed_by: Vec<String>,
}

/// One identity's registry history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerHistory {
    /// The registry entries that touched it.
    pub events: Vec<Event>,
    /// Its keys.
    pub keys: Vec<SignerKey>,
}

/// A query's filters and paging; unset filters do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// A subject digest, `ALGORITHM:HEX`.
    pub subject_digest: Option<String>,
    /// A subject name.
    pub subject_name: Option<String>,
    /// A predicate type URI.
    pub predicate_type: Option<String>,
    /// A signer identity.
    pub signer: Option<String>,
    /// A role of the signer at the entry's time.
    pub role: Option<String>,
    /// An entry kind.
    pub kind: Option<EntryKind>,
    /// Integrated at or after (Unix nanoseconds).
    pub since: Option<i64>,
    /// Integrated at or before.
    pub until: Option<i64>,
    /// A release, `NAME` or `NAME@VERSION`.
    pub release: Option<String>,
    /// Newest first.
    pub newest_first: bool,
    /// Results per page (0: the server's default).
    pub page_size: u32,
    /// The previous page's cursor.
    pub cursor: Option<String>,
    /// Ask for each entry's leaf record.
    pub include_entries: bool,
    /// Ask for each entry's inclusion proof.
    pub include_proofs: bool,
    /// Ask for the proof that the answer is complete (one filter, and a time range).
    pub prove_complete: bool,
}

impl Query {
    /// The query as a request.
    pub fn request(&self) -> pb::QueryRequest {
        let query = self;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        pb::QueryRequest {
            subject_digest: text(&query.subject_digest),
            subject_name: text(&query.subject_name),
            predicate_type: text(&query.predicate_type),
            signer: text(&query.signer),
            role: text(&query.role),
            kind: query.kind.map_or(pb::EntryKind::Unspecified, kind_to_proto) as i32,
            since_nanos: query.since,
            until_nanos: query.until,
            release: text(&query.release),
            newest_first: query.newest_first,
            page_size: query.page_size,
            cursor: text(&query.cursor),
            include_entries: query.include_entries,
            include_proofs: query.include_proofs,
            prove_complete: query.prove_complete,
        }
    }

    /// The index keys the query names, as the server reads them.
    pub fn keys(&self) -> Result<Vec<evident_core::vindex::IndexKey>, ClientError> {
        Ok(crate::convert::query_keys(&self.request())?)
    }
}

/// One query result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The entry's index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// When it was integrated (Unix nanoseconds).
    pub integrated_time_nanos: i64,
    /// Its kind.
    pub kind: EntryKind,
    /// Who signed it.
    pub signers: Vec<String>,
    /// Its subjects: name and `ALGORITHM:HEX` digests.
    pub subjects: Vec<(String, Vec<String>)>,
    /// Its predicate type (attestations).
    pub predicate_type: String,
    /// The leaf record, when asked for; checked to hash to `leaf_hash`.
    pub record: Option<LeafRecord>,
    /// The inclusion proof at the page's tree size, when asked for.
    pub proof: Option<Vec<Hash>>,
}

/// One page of query results.
#[derive(Debug, Clone)]
pub struct QueryPage {
    /// The results.
    pub hits: Vec<Hit>,
    /// The next page's cursor; `None` on the last page.
    pub next_cursor: Option<String>,
    /// The tree size the query runs at.
    pub tree_size: u64,
    /// The latest signed checkpoint (not yet verified).
    pub checkpoint: String,
    /// With [`Query::prove_complete`], on the first page: the proof of the whole answer
    /// (not yet verified), against `checkpoint`.
    pub index_proof: Option<evident_core::vindex::AnswerProof>,
}

/// How to reach a server: TLS trust and client credentials.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// PEM of the CA that signed the server's certificate (`https://` servers).
    pub ca: Option<Vec<u8>>,
    /// PEM of a client certificate chain and its key, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// A bearer token.
    pub token: Option<String>,
}

/// Whether a URL's host is this machine: `localhost` or a loopback address (`http::Uri`
/// gives an IPv6 host in brackets).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error and its sources, `: `-separated (tonic's own message is only "transport
/// error"); a cause whose text ends the message already is not repeated.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}

/// Adds the bearer token to every call.
#[derive(Debug, Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Client {
    /// Connects to `server` (`http://127.0.0.1:50051`) without TLS or credentials.
    pub async fn connect(server: &str) -> Result<Client, ClientError> {
        Client::connect_with(server, &Credentials::default()).await
    }

    /// Connects to `server`; an `https://` server needs `credentials.ca`.
    ///
    /// No timeout and no retries: see [`Client::connect_with_options`].
    pub async fn connect_with(
        server: &str,
        credentials: &Credentials,
    ) -> Result<Client, ClientError> {
        let options = ConnectOptions {
            timeout: None,
            retry: RetryPolicy::NONE,
        };
        Client::connect_with_options(server, credentials, &options).await
    }

    /// Connects to `server` within `options.timeout`, retrying as `options.retry` says
    /// while the server cannot be reached; the client's unary calls then each get
    /// `options.timeout` and are retried by `options.retry` (see [`RetryPolicy`]).
    ///
    /// An `https://` server's certificate is checked against `credentials.ca` when given,
    /// else against the system's trusted root certificates.
    pub async fn connect_with_options(
        server: &str,
        credentials: &Credentials,
        options: &ConnectOptions,
    ) -> Result<Client, ClientError> {
        let connect_error =
            |e: &dyn std::fmt::Display| ClientError::Connect(format!("{server}: {e}"));
        // One parse decides the scheme and the host: the checks below must see the URL the
        // channel will dial, whatever its case (`HTTP://` is `http://`).
        let uri: http::Uri = server.parse().map_err(|e| connect_error(&e))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => {
                return Err(connect_error(&"give http://HOST:PORT or https://HOST:PORT"));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| connect_error(&"the URL names no host"))?;
        let mut endpoint = Channel::from_shared(uri.to_string()).map_err(|e| connect_error(&e))?;
        if let Some(timeout) = options.timeout {
            endpoint = endpoint.connect_timeout(timeout);
        }
        if tls {
            let mut tls = match &credentials.ca {
                Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                None => ClientTlsConfig::new().with_native_roots(),
            };
            if let Some((cert, key)) = &credentials.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| connect_error(&e))?;
        } else if credentials.token.is_some() && !is_loopback(host) {
            return Err(ClientError::Connect(format!(
                "{server} is plaintext: the token would cross the network unencrypted; use \
                 https://"
            )));
        } else if credentials.identity.is_some() || credentials.ca.is_some() {
            return Err(ClientError::Connect(format!(
                "{server} is plaintext (http://) but TLS credentials were given: use https://"
            )));
        }
        let mut attempt = 0;
        let channel = loop {
            match endpoint.connect().await {
                Ok(channel) => break channel,
                Err(_) if attempt < options.retry.retries => {
                    tokio::time::sleep(options.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    // The transport error's text alone says little: name its causes.
                    let mut text = with_sources(&e);
                    if tls && credentials.ca.is_none() {
                        text.push_str(
                            " (without a CA the server's certificate is checked against \
                             the system's trusted roots; for a server with its own CA give the \
                             CA that signed its certificate with --ca or EVIDENT_CA, e.g. \
                             evident-data/tls/ca.pem)",
                        );
                    }
                    return Err(connect_error(&text));
                }
            }
        };
        let bearer =
            match &credentials.token {
                Some(token) => Some(format!("Bearer {}", token.trim()).parse().map_err(|_| {
                    ClientError::Connect("the token is not printable ASCII".into())
                })?),
                None => None,
            };
        Ok(Client {
            // Evidence bundles and pages of entries can be large; the server caps them.
            inner: LedgerClient::with_interceptor(channel, Bearer(bearer))
                .max_decoding_message_size(MAX_ANSWER_BYTES),
            timeout: options.timeout,
            retry: options.retry,
        })
    }

    /// This client with another retry policy (see [`RetryPolicy`]).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// One unary call: `call` sends it on a clone of the channel, within the timeout,
    /// retried as the policy says. Only for idempotent calls.
    async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Ledger) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut attempt = 0;
        loop {
            let answer = call(self.inner.clone());
            let answer = match self.timeout {
                Some(limit) => tokio::time::timeout(limit, answer)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(format!(
                            "no answer within {} s",
                            limit.as_secs_f64()
                        )))
                    }),
                None => answer.await,
            };
            match answer {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if attempt < self.retry.retries && is_retryable(&status) => {
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    /// Submits a Sigstore bundle (JSON) carrying a DSSE envelope, as `Submit` with
    /// `sigstore_bundle`: the server logs the envelope with the bundle's verification
    /// material. The receipt is checked against that envelope, as [`Client::submit`] does.
    pub async fn submit_sigstore_bundle(
        &mut self,
        bundle: &[u8],
    ) -> Result<(Receipt, bool), ClientError> {
        let envelope = crate::convert::submitted_envelope(None, bundle)?
            .map(crate::convert::envelope_from_proto)
            .transpose()?
            .ok_or(ConvertError::NoEnvelope)?;
        let request = pb::SubmitRequest {
            envelope: None,
            sigstore_bundle: bundle.to_vec(),
            wait_for_witnesses: false,
        };
        self.submit_request(request, &envelope).await
    }

    /// Submits an envelope; returns its receipt (not yet verified) and whether the log
    /// already held it.
    pub async fn submit(&mut self, envelope: &Envelope) -> Result<(Receipt, bool), ClientError> {
        self.submit_with(envelope, false).await
    }

    /// [`Client::submit`]; with `wait_for_witnesses`, the server answers once a witnessed
    /// checkpoint covers the entry, with the receipt proven against it (its checkpoint
    /// carries the witnesses' cosignatures).
    pub async fn submit_with(
        &mut self,
        envelope: &Envelope,
        wait_for_witnesses: bool,
    ) -> Result<(Receipt, bool), ClientError> {
        let request = pb::SubmitRequest {
            envelope: Some(envelope_to_proto(envelope.clone())),
            sigstore_bundle: Vec::new(),
            wait_for_witnesses,
        };
        self.submit_request(request, envelope).await
    }

    /// One `Submit` call, its receipt read as the receipt of `envelope`.
    async fn submit_request(
        &mut self,
        request: pb::SubmitRequest,
        envelope: &Envelope,
    ) -> Result<(Receipt, bool), ClientError> {
        let response = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.submit(request).await }
            })
            .await?;
        let r = response.receipt.ok_or(ConvertError::Missing {
            message: "answer",
            field: "receipt",
        })?;
        Ok(receipt_from_proto(r, envelope)?)
    }

    /// Submits several envelopes in one call (at most 256, within the server's batch
    /// message limit): one answer per envelope, in order, each what [`Client::submit`]
    /// would have answered for it alone. The call fails as a whole only when the request
    /// is refused (credentials, too many envelopes, too large).
    pub async fn submit_batch(
        &mut self,
        envelopes: &[Envelope],
    ) -> Result<Vec<SubmitAnswer>, ClientError> {
        let request = pb::SubmitBatchRequest {
            envelopes: envelopes.iter().cloned().map(envelope_to_proto).collect(),
        };
        let response = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.submit_batch(request).await }
            })
            .await?;
        if response.results.len() != envelopes.len() {
            return Err(ClientError::Response(format!(
                "{} answers to {} envelopes",
                response.results.len(),
                envelopes.len()
            )));
        }
        Ok(response
            .results
            .into_iter()
            .zip(envelopes)
            .map(|(result, envelope)| answer_from_proto(result, envelope))
            .collect())
    }

    /// Submits the envelopes `envelopes` yields over one `SubmitStream` call, in messages
    /// of up to `per_message` envelopes (those ready at once, at most 256): the first
    /// envelope is numbered 0, the next 1, and so on. Answers come from
    /// [`SubmitStream::next`], in the order sent. The server reads no more while 1024 of
    /// the stream's envelopes are unanswered, so a slow reader of answers slows the sender.
    pub async fn submit_stream<S>(
        &mut self,
        envelopes: S,
        per_message: usize,
    ) -> Result<SubmitStream, ClientError>
    where
        S: tokio_stream::Stream<Item = Envelope> + Send + 'static,
    {
        use tokio_stream::StreamExt as _;
        let sent: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Envelope>>> =
            std::sync::Arc::default();
        let outbox = sent.clone();
        let mut next = 0u64;
        let requests = ReadyChunks {
            inner: Box::pin(envelopes),
            size: per_message.clamp(1, MAX_ENVELOPES_PER_REQUEST),
        }
        .map(move |chunk: Vec<Envelope>| {
            let request = pb::SubmitStreamRequest {
                sequence: next,
                envelopes: chunk.iter().cloned().map(envelope_to_proto).collect(),
            };
            next += chunk.len() as u64;
            outbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(chunk);
            request
        });
        let answers = self.inner.submit_stream(requests).await?.into_inner();
        Ok(SubmitStream {
            answers,
            sent,
            next: 0,
        })
    }
    /// The trust registry now, or as it was before entry `as_of_index`.
    pub async fn list_signers(
        &mut self,
        as_of_index: Option<u64>,
    ) -> Result<SignerListing, ClientError> {
        self.list_signers_at(as_of_index, None).await
    }

    /// The trust registry as of an entry index or as of a time (nanoseconds, UTC), with the
    /// signer keys of every page.
    pub async fn list_signers_at(
        &mut self,
        as_of_index: Option<u64>,
        as_of_time_nanos: Option<i64>,
    ) -> Result<SignerListing, ClientError> {
        let mut listing: Option<SignerListing> = None;
        let mut page_token = String::new();
        // Every page: the server pins the registry of the first one in its token.
        loop {
            let request = pb::ListSignersRequest {
                as_of_index,
                as_of_time_nanos,
                page_size: 0,
                page_token: page_token.clone(),
            };
            let r = self
                .call(move |mut c| {
                    let request = request.clone();
                    async move { c.list_signers(request).await }
                })
                .await?;
            let signers = r
                .signers
                .into_iter()
                .map(signer_from_proto)
                .collect::<Result<Vec<_>, _>>()?;
            let items = signers.len();
            match &mut listing {
                // Every page lists the registry the first one did.
                Some(listing) if listing.as_of_index != r.as_of_index => {
                    return Err(ClientError::Response(format!(
                        "a page of the registry as of entry {} follows one as of entry {}",
                        r.as_of_index, listing.as_of_index
                    )));
                }
                Some(listing) => listing.signers.extend(signers),
                None => {
                    listing = Some(SignerListing {
                        admins: r
                            .admins
                            .into_iter()
                            .map(admin_from_proto)
                            .collect::<Result<_, _>>()?,
                        threshold: r.threshold as usize,
                        signers,
                        as_of_index: r.as_of_index,
                        sigstore_roots: r
                            .sigstore_roots
                            .into_iter()
                            .map(|root| {
                                Ok((root.name, hash_from_proto(&root.sha256, "sigstore root")?))
                            })
                            .collect::<Result<_, ConvertError>>()?,
                    });
                }
            }
            let total = listing.as_ref().map_or(0, |l| l.signers.len());
            page_token = next_page(page_token, r.next_page_token, items, total)?;
            if page_token.is_empty() {
                break;
            }
        }
        Ok(listing.expect("the loop runs at least once"))
    }

    /// Every registry entry that touched `identity`, and its keys.
    pub async fn signer_history(&mut self, identity: &str) -> Result<SignerHistory, ClientError> {
        let request = pb::GetSignerHistoryRequest {
            identity: identity.to_owned(),
        };
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.get_signer_history(request).await }
            })
            .await?;
        Ok(SignerHistory {
            events: r.events.into_iter().map(event_from_proto).collect(),
            keys: r
                .keys
                .into_iter()
                .map(signer_from_proto)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Every policy version in the log: `(name, version, index)`, from every page.
    pub async fn list_policies(&mut self) -> Result<Vec<(String, u64, u64)>, ClientError> {
        let mut policies = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListPoliciesRequest {
                page_size: 0,
                page_token: page_token.clone(),
            };
            let r = self
                .call(move |mut c| {
                    let request = request.clone();
                    async move { c.list_policies(request).await }
                })
                .await?;
            let items = r.policies.len();
            policies.extend(r.policies.into_iter().map(|p| (p.name, p.version, p.index)));
            page_token = next_page(page_token, r.next_page_token, items, policies.len())?;
            if page_token.is_empty() {
                return Ok(policies);
            }
        }
    }

    /// One policy version (default: the latest).
    pub async fn get_policy(
        &mut self,
        name: &str,
        version: Option<u64>,
    ) -> Result<PolicyDocument, ClientError> {
        let request = pb::GetPolicyRequest {
            name: name.to_owned(),
            version,
        };
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.get_policy(request).await }
            })
            .await?;
        Ok(PolicyDocument {
            name: r.name,
            version: r.version,
            index: r.index,
            integrated_time_nanos: r.integrated_time_nanos,
            document: r.document,
            signed_by: r.signed_by,
        })
    }

    /// The evidence bundle of a release or an artifact, with every policy version. Not yet verified: see `evident_core::bundle::Bundle::verify`.
    pub async fn release_bundle(&mut self, release: &Release) -> Result<Bundle, ClientError> {
        self.release_bundle_at(release, false).await
    }

    /// [`Client::release_bundle`]; with `witnessed`, proven against the latest witnessed
    /// checkpoint (with the witnesses' cosignatures) instead of the latest one.
    pub async fn release_bundle_at(
        &mut self,
        release: &Release,
        witnessed: bool,
    ) -> Result<Bundle, ClientError> {
        let (artifact, name) = release.fields();
        let request = pb::GetReleaseEvidenceRequest {
            artifact,
            release: name,
            witnessed,
        };
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.get_release_evidence(request).await }
            })
            .await?;
        Bundle::from_json(r.bundle_json.as_bytes())
            .map_err(|e| ClientError::Response(e.to_string()))
    }

    /// The server's own verdict: `(allowed, report JSON)`. For information only; a gate
    /// decides on its own evaluation of the bundle.
    pub async fn verify_release(
        &mut self,
        release: &Release,
        policy: &str,
    ) -> Result<(bool, String), ClientError> {
        let (artifact, name) = release.fields();
        let request = pb::VerifyReleaseRequest {
            artifact,
            release: name,
            policy: policy.to_owned(),
        };
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.verify_release(request).await }
            })
            .await?;
        Ok((r.allowed, r.report_json))
    }

    /// The latest signed checkpoint (not yet verified).
    pub async fn checkpoint(&mut self) -> Result<String, ClientError> {
        self.checkpoint_at(false).await
    }

    /// The latest witnessed checkpoint (the log's note with its witnesses' cosignatures),
    /// when `witnessed`; else the latest one. Not yet verified.
    pub async fn checkpoint_at(&mut self, witnessed: bool) -> Result<String, ClientError> {
        let request = pb::GetCheckpointRequest { witnessed };
        Ok(self
            .call(move |mut c| async move { c.get_checkpoint(request).await })
            .await?
            .checkpoint)
    }

    /// One entry; with `proof_tree_size` (0 for the latest checkpoint) an inclusion proof.
    pub async fn entry(
        &mut self,
        selector: Selector,
        proof_tree_size: Option<u64>,
    ) -> Result<Entry, ClientError> {
        let request = pb::GetEntryRequest {
            entry: Some(selector_to_proto(selector)),
            proof_tree_size,
        };
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.get_entry(request).await }
            })
            .await?;
        let entry = log_entry_from_proto(&r)?;
        let record = LeafRecord::decode(&r.leaf_record)
            .map_err(|e| ClientError::Response(format!("leaf record: {e}")))?;
        let leaf_hash = record.leaf_hash();
        if entry.leaf_hash != leaf_hash || entry.index != record.index() {
            return Err(ClientError::Response(format!(
                "the server's index and leaf hash for entry {} are not those of the record it \
                 sent",
                entry.index
            )));
        }
        // The entry asked for, not another one (which a proof would prove just as well).
        let asked = match &selector {
            Selector::Index(index) => *index == record.index(),
            Selector::LeafHash(hash) => *hash == leaf_hash,
        };
        if !asked {
            return Err(ClientError::Response(format!(
                "the server answered with entry {} (leaf hash {leaf_hash}), not the entry asked \
                 for",
                record.index()
            )));
        }
        let proof = match r.inclusion_proof {
            Some(p) => Some((
                p.tree_size,
                hashes_from_proto(&p.hashes, "inclusion proof")?,
            )),
            None => None,
        };
        Ok(Entry {
            record_bytes: r.leaf_record,
            record,
            leaf_hash,
            proof,
            checkpoint: (!r.checkpoint.is_empty()).then_some(r.checkpoint),
        })
    }

    /// The inclusion proof of an entry at a tree size (0: the latest checkpoint), with the
    /// entry's leaf hash and the latest checkpoint.
    pub async fn inclusion_proof(
        &mut self,
        selector: Selector,
        tree_size: u64,
    ) -> Result<(u64, Vec<Hash>, Hash, String), ClientError> {
        let request = pb::GetInclusionProofRequest {
            entry: Some(selector_to_proto(selector)),
            tree_size,
        };
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.get_inclusion_proof(request).await }
            })
            .await?;
        let proof = r
            .proof
            .ok_or_else(|| ClientError::Response("no proof in the answer".into()))?;
        let leaf = hash_from_proto(&r.leaf_hash, "leaf hash")?;
        Ok((
            proof.tree_size,
            hashes_from_proto(&proof.hashes, "inclusion proof")?,
            leaf,
            r.checkpoint,
        ))
    }

    /// One page of a query.
    pub async fn query(&mut self, query: &Query) -> Result<QueryPage, ClientError> {
        let request = query.request();
        let r = self
            .call(move |mut c| {
                let request = request.clone();
                async move { c.query(request).await }
            })
            .await?;
        let hits = r
            .results
            .into_iter()
            .map(|h| {
                let entry = log_entry_from_proto(&h)?;
                let record = if h.leaf_record.is_empty() {
                    None
                } else {
                    let record = LeafRecord::decode(&h.leaf_record)
                        .map_err(|e| ClientError::Response(format!("leaf record: {e}")))?;
                    if record.leaf_hash() != entry.leaf_hash || record.index() != entry.index {
                        return Err(ClientError::Response(format!(
                            "the server's record for entry {} does not match its index or \
                             leaf hash",
                            entry.index
                        )));
                    }
                    Some(record)
                };
                let proof = match h.inclusion_proof {
                    Some(p) => Some(hashes_from_proto(&p.hashes, "inclusion proof")?),
                    None => None,
                };
                Ok(Hit {
                    index: entry.index,
                    leaf_hash: entry.leaf_hash,
                    integrated_time_nanos: entry.integrated_time_nanos,
                    kind: entry.kind,
                    signers: h.signers,
                    subjects: h
                        .subjects
                        .into_iter()
                        .map(|s| (s.name, s.digests))
                        .collect(),
                    predicate_type: h.predicate_type,
                    record,
                    proof,
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(QueryPage {
            hits,
            next_cursor: (!r.next_cursor.is_empty()).then_some(r.next_cursor),
            tree_size: r.tree_size,
            checkpoint: r.checkpoint,
            index_proof: r
                .index_proof
                .as_ref()
                .map(crate::convert::answer_proof_from_proto)
                .transpose()?,
        })
    }

    /// Consecutive leaf records from `start` below `end` (the server may return fewer).
    pub async fn entries(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        let request = pb::GetEntriesRequest { start, end };
        Ok(self
            .call(move |mut c| async move { c.get_entries(request).await })
            .await?
            .leaf_records)
    }

    /// Every leaf record from `start` below `end`, downloaded one `GetEntries` page at a
    /// time by a task of its own, at most `ahead` pages ahead of the reader (dropping the
    /// [`EntryPages`] stops it). Records past `end` in an answer are dropped; an answer with
    /// none before `end` is a [`ClientError::Verification`]: the server lacks entries it
    /// was asked for, which only a log that lost data does below its checkpoint's size.
    pub fn entry_pages(&self, start: u64, end: u64, ahead: usize) -> EntryPages {
        let (pages, rx) = tokio::sync::mpsc::channel(ahead.max(1));
        let mut client = self.clone();
        let task = tokio::spawn(async move {
            let mut next = start;
            while next < end {
                let page = match client.entries(next, end).await {
                    Ok(records) if records.is_empty() => Err(ClientError::Verification(format!(
                        "entry {next}: asked for the entries below {end}, the server returned \
                         none from entry {next} on"
                    ))),
                    Ok(mut records) => {
                        records.truncate(usize::try_from(end - next).unwrap_or(usize::MAX));
                        let first = next;
                        next += records.len() as u64;
                        Ok((first, records))
                    }
                    Err(e) => Err(e),
                };
                let failed = page.is_err();
                if pages.send(page).await.is_err() || failed {
                    return;
                }
            }
        });
        EntryPages { pages: rx, task }
    }

    /// The consistency proof between two tree sizes.
    pub async fn consistency_proof(
        &mut self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, ClientError> {
        let request = pb::GetConsistencyProofRequest { old_size, new_size };
        let r = self
            .call(move |mut c| async move { c.get_consistency_proof(request).await })
            .await?;
        let proof = r
            .proof
            .ok_or_else(|| ClientError::Response("no proof in the answer".into()))?;
        Ok(hashes_from_proto(&proof.hashes, "consistency proof")?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use evident_proto::v1::ledger_server::{Ledger as LedgerService, LedgerServer};
    use tonic::{Code, Request, Response};

    use super::*;

    /// A server cannot keep a client paging: the same token again, an empty page that names
    /// another, or a listing past the bound ends the listing with an error.
    #[test]
    fn a_listing_ends_when_the_server_would_page_forever() {
        let next = |asked: &str, next: &str, items, total| {
            next_page(asked.to_owned(), next.to_owned(), items, total)
        };
        assert_eq!(next("", "", 5, 5).unwrap(), "");
        assert_eq!(next("", "t1", 5, 5).unwrap(), "t1");
        assert!(next("t1", "t1", 5, 10).is_err());
        assert!(next("t1", "t2", 0, 10).is_err());
        assert!(next("t1", "t2", 5, MAX_LISTED + 1).is_err());
        assert_eq!(next("t1", "t2", 5, MAX_LISTED).unwrap(), "t2");
    }

    /// A ledger that answers `GetCheckpoint` with `failures` in turn, then a checkpoint;
    /// every other call is unimplemented.
    struct Flaky {
        calls: Arc<AtomicU32>,
        failures: Vec<Status>,
    }

    /// The `Ledger` service of [`Flaky`]: the calls listed are unimplemented.
    macro_rules! flaky_ledger {
        ($($name:ident($request:ty) -> $response:ty;)*) => {
            #[tonic::async_trait]
            impl LedgerService for Flaky {
                type SubmitStreamStream =
                    tokio_stream::Empty<Result<pb::SubmitStreamResponse, Status>>;

                async fn submit_stream(
                    &self,
                    _: Request<tonic::Streaming<pb::SubmitStreamRequest>>,
                ) -> Result<Response<Self::SubmitStreamStream>, Status> {
                    Err(Status::unimplemented("submit_stream"))
                }

                async fn get_checkpoint(
                    &self,
                    _: Request<pb::GetCheckpointRequest>,
                ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
                    let call = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
                    match self.failures.get(call) {
                        Some(status) => Err(status.clone()),
                        None => Ok(Response::new(pb::GetCheckpointResponse {
                            checkpoint: "a checkpoint".into(),
                        })),
                    }
                }

                $(async fn $name(
                    &self,
                    _: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    Err(Status::unimplemented(stringify!($name)))
                })*
            }
        };
    }

    flaky_ledger! {
            submit(pb::SubmitRequest) -> pb::SubmitResponse;
            submit_batch(pb::SubmitBatchRequest) -> pb::SubmitBatchResponse;
            list_signers(pb::ListSignersRequest) -> pb::ListSignersResponse;
            get_signer_history(pb::GetSignerHistoryRequest) -> pb::GetSignerHistoryResponse;
            list_policies(pb::ListPoliciesRequest) -> pb::ListPoliciesResponse;
            get_policy(pb::GetPolicyRequest) -> pb::GetPolicyResponse;
            get_release_evidence(pb::GetReleaseEvidenceRequest) -> pb::GetReleaseEvidenceResponse;
            verify_release(pb::VerifyReleaseRequest) -> pb::VerifyReleaseResponse;
            query(pb::QueryRequest) -> pb::QueryResponse;
            get_entries(pb::GetEntriesRequest) -> pb::GetEntriesResponse;
            get_entry(pb::GetEntryRequest) -> pb::GetEntryResponse;
            get_inclusion_proof(pb::GetInclusionProofRequest) -> pb::GetInclusionProofResponse;
            get_consistency_proof(pb::GetConsistencyProofRequest) -> pb::GetConsistencyProofResponse;
    }

    /// A free loopback port (bound, then released).
    fn free_port() -> std::net::SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// Serves a [`Flaky`] ledger on `addr`, after `delay`; returns its call counter.
    fn serve(addr: std::net::SocketAddr, delay: Duration, failures: Vec<Status>) -> Arc<AtomicU32> {
        let calls = Arc::new(AtomicU32::new(0));
        let service = LedgerServer::new(Flaky {
            calls: calls.clone(),
            failures,
        });
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve(addr)
                .await
                .unwrap();
        });
        calls
    }

    fn options(retries: u32) -> ConnectOptions {
        ConnectOptions {
            timeout: Some(Duration::from_secs(5)),
            retry: RetryPolicy {
                retries,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(400),
            },
        }
    }

    async fn connect(addr: std::net::SocketAddr, retries: u32) -> Result<Client, ClientError> {
        Client::connect_with_options(
            &format!("http://{addr}"),
            &Credentials::default(),
            &options(retries),
        )
        .await
    }

    #[tokio::test]
    async fn connecting_retries_until_a_late_server_is_up() {
        let addr = free_port();
        let calls = serve(addr, Duration::from_millis(300), Vec::new());
        // 20 retries of at most 400 ms: the server comes up well within them.
        let mut client = connect(addr, 20).await.unwrap();
        assert_eq!(client.checkpoint().await.unwrap(), "a checkpoint");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_retries_an_absent_server_fails_at_once() {
        let addr = free_port();
        let error = connect(addr, 0).await.unwrap_err();
        assert!(matches!(error, ClientError::Connect(_)), "{error}");
    }

    #[tokio::test]
    async fn a_call_is_retried_after_resource_exhausted_and_unavailable() {
        let addr = free_port();
        let calls = serve(
            addr,
            Duration::ZERO,
            vec![
                Status::resource_exhausted("over its rate limit"),
                Status::unavailable("shutting down"),
            ],
        );
        let mut client = connect(addr, 20).await.unwrap();
        assert_eq!(client.checkpoint().await.unwrap(), "a checkpoint");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retries_give_up_after_the_policy_s_count() {
        let addr = free_port();
        let calls = serve(addr, Duration::ZERO, vec![Status::unavailable("down"); 5]);
        let mut client = connect(addr, 20).await.unwrap().with_retry(RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        });
        let error = client.checkpoint().await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Status {
                    code: Code::Unavailable,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn refusals_are_not_retried() {
        for status in [
            Status::invalid_argument("payloadType is empty"),
            Status::permission_denied("no role"),
            // A request too large would be refused again.
            refused_with(Code::ResourceExhausted, "TOO_LARGE"),
        ] {
            let addr = free_port();
            let calls = serve(addr, Duration::ZERO, vec![status.clone(); 3]);
            let mut client = connect(addr, 20).await.unwrap();
            let error = client.checkpoint().await.unwrap_err();
            assert!(
                matches!(&error, ClientError::Status { code, .. } if *code == status.code()),
                "{error}"
            );
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{status:?}");
        }
    }

    /// A status carrying an `ErrorInfo` of `reason`, as the server sends it.
    fn refused_with(code: Code, reason: &str) -> Status {
        use tonic_types::{ErrorDetails, StatusExt as _};
        Status::with_error_details(
            code,
            "refused",
            ErrorDetails::with_error_info(reason, "evident.dev", std::collections::HashMap::new()),
        )
    }

    #[test]
    fn the_error_reason_is_read_from_the_details() {
        let too_large = refused_with(Code::ResourceExhausted, "TOO_LARGE");
        assert_eq!(error_reason(&too_large).as_deref(), Some("TOO_LARGE"));
        assert!(!is_retryable(&too_large));
        let over = refused_with(Code::ResourceExhausted, "OVER_RATE_LIMIT");
        assert_eq!(error_reason(&over).as_deref(), Some("OVER_RATE_LIMIT"));
        assert!(is_retryable(&over));
        assert_eq!(error_reason(&Status::internal("none")), None);
        assert_eq!(
            error_reason(&Status::with_details(
                Code::Internal,
                "junk",
                vec![0xff].into()
            )),
            None
        );
        // Carried into the client's error.
        let error = ClientError::from(refused_with(Code::PermissionDenied, "KEY_REVOKED"));
        assert!(
            matches!(&error, ClientError::Status { reason: Some(r), .. } if r == "KEY_REVOKED"),
            "{error:?}"
        );
    }

    #[test]
    fn loopback_is_decided_on_the_parsed_host() {
        for url in [
            "http://127.0.0.1:1",
            "HTTP://LOCALHOST:1",
            "http://[::1]:1/",
        ] {
            let uri: http::Uri = url.parse().unwrap();
            assert!(is_loopback(uri.host().unwrap()), "{url}");
        }
        for url in [
            "HtTp://203.0.113.7:1",
            "http://127.0.0.1.example:1",
            "http://[::2]:1",
            "http://127.0.0.1@203.0.113.7:1",
        ] {
            let uri: http::Uri = url.parse().unwrap();
            assert!(!is_loopback(uri.host().unwrap()), "{url}");
        }
    }

    #[tokio::test]
    async fn a_token_never_goes_in_plaintext_to_another_host_whatever_the_scheme_case() {
        for url in ["http://203.0.113.7:1", "HTTP://203.0.113.7:1"] {
            let credentials = Credentials {
                token: Some("s3cret".into()),
                ..Credentials::default()
            };
            let error = Client::connect_with(url, &credentials).await.unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains("is plaintext: the token would cross"),
                "{text}"
            );
            assert!(!text.contains("s3cret"), "{text}");
        }
    }

    #[test]
    fn backoff_doubles_within_its_ceiling() {
        let policy = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100 << attempt.min(4)).min(policy.max_delay);
            assert!(policy.delay(attempt) <= ceiling, "attempt {attempt}");
        }
        assert_eq!(RetryPolicy::NONE.delay(3), Duration::ZERO);
    }
}
