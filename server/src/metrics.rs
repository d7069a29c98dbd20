//! Prometheus metrics: one registry of the `prometheus-client` crate, rendered in the text
//! exposition format (version 0.0.4), and the HTTP listener that serves it on
//! `GET /metrics` (hyper, HTTP/1.1).
//!
//! Everything counts into one process-wide [`METRICS`]: the submit path, the sequencer and
//! the store's `sync` update it; only a scrape renders. The listener must never let a
//! client hold it: a request head has [`HEADER_TIMEOUT`] to arrive, an answer
//! [`REQUEST_TIMEOUT`] to be written, and at [`MAX_CONNECTIONS`] a new connection closes
//! the oldest one, so idle or stalled connections cannot starve a scrape.
//! `docs/OPERATIONS.md` lists every metric.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use evident_core::kinds::Refusal;
use evident_core::registry::AuthError;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The server's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Counts a submission refused by the rate limiter (`evident_rate_limited_total`).
pub fn rate_limited() {
    METRICS.rate_limited();
}

/// How a submission ended (the `result` label of `evident_submissions_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitResult {
    /// Appended as a new entry.
    Appended,
    /// Already in the log: answered with the original entry's receipt.
    Duplicate,
    /// Refused for what the request is or who sent it (a client-side status code).
    Refused,
    /// Not answered for a server-side reason (storage, shutting down, internal).
    Error,
}

impl SubmitResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmitResult::Appended => "appended",
            SubmitResult::Duplicate => "duplicate",
            SubmitResult::Refused => "refused",
            SubmitResult::Error => "error",
        }
    }

    /// The result a failed submission's status code stands for.
    pub fn of_code(code: tonic::Code) -> SubmitResult {
        use tonic::Code;
        match code {
            Code::Ok => SubmitResult::Appended,
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unauthenticated => SubmitResult::Refused,
            _ => SubmitResult::Error,
        }
    }
}

/// The gRPC status code names, indexed by code number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a gRPC status code, as the `code` label shows it.
fn code_name(code: tonic::Code) -> &'static str {
    usize::try_from(code as i32)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Why an attestation's verification failed (the `reason` label of
/// `evident_verification_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationFailure {
    /// No signature, or none that verifies under a registered key.
    Signature,
    /// A registered key signed it, but is not valid or not allowed at the time: revoked,
    /// expired, not yet valid, or not allowed for the predicate type.
    Authorization,
    /// The payload is not an in-toto Statement v1.
    Statement,
}

impl VerificationFailure {
    const ALL: [VerificationFailure; 3] = [
        VerificationFailure::Signature,
        VerificationFailure::Authorization,
        VerificationFailure::Statement,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationFailure::Signature => "signature",
            VerificationFailure::Authorization => "authorization",
            VerificationFailure::Statement => "statement",
        }
    }

    /// The reason a refused entry counts as, if it is an attestation's failed
    /// verification.
    pub fn of_refusal(refusal: &Refusal) -> Option<VerificationFailure> {
        match refusal {
            Refusal::Unauthorized(e) => Some(VerificationFailure::of(e)),
            Refusal::Statement(_) | Refusal::Release(_) => Some(VerificationFailure::Statement),
            _ => None,
        }
    }

    /// The reason an authorization error stands for.
    pub fn of(error: &AuthError) -> VerificationFailure {
        match error {
            AuthError::NoSignatures | AuthError::UnknownKey { .. } => {
                VerificationFailure::Signature
            }
            _ => VerificationFailure::Authorization,
        }
    }
}

/// Upper bounds of the latency histograms, in seconds: 100 µs to 10 s.
const LATENCY_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds of the batch size histogram, in entries.
const BATCH_BOUNDS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The labels of `evident_submissions_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubmissionLabels {
    result: &'static str,
    code: &'static str,
}

/// The label of `evident_verification_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Every metric the server exposes, and the registry that renders them. Each field is a
/// handle on a metric registered in `registry` (they share their value).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    submissions: Family<SubmissionLabels, Counter>,
    verification_failures: Family<ReasonLabel, Counter>,
    rate_limited: Counter,
    batch_entries: Histogram,
    batch_commit: Histogram,
    fsync: Histogram,
    tree_size: Gauge,
    sequencer: Gauge,
    lease_term: Gauge,
    takeovers: Counter,
    checkpoint_time: Gauge<f64, AtomicU64>,
    verifications: Family<ResultLabel, Counter>,
    verified_entries: Gauge,
    verified_time: Gauge<f64, AtomicU64>,
    witnessed_size: Gauge,
    witnessed_time: Gauge<f64, AtomicU64>,
    witness_size: Family<WitnessLabel, Gauge>,
    witness_failures: Family<WitnessLabel, Counter>,
}

/// The label of the per-witness metrics: the witness's key name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabel {
    witness: String,
}

/// The result of a background verification pass.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its name. The registry adds the `_total`
    /// suffix of counters and the `_info` suffix of the build info, and ends every help
    /// text with a period.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "evident_build",
            "The running evidentd: always 1, with its version as a label",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );

        let submissions = Family::<SubmissionLabels, Counter>::default();
        // The two successful series always show, so rates start from zero; the others
        // appear once they happen.
        for result in [SubmitResult::Appended, SubmitResult::Duplicate] {
            submissions.get_or_create_owned(&SubmissionLabels {
                result: result.as_str(),
                code: code_name(tonic::Code::Ok),
            });
        }
        registry.register(
            "evident_submissions",
            "Answered Submit calls, by result (appended, duplicate, refused, error) and gRPC \
             status code",
            submissions.clone(),
        );

        let verification_failures = Family::<ReasonLabel, Counter>::default();
        for reason in VerificationFailure::ALL {
            verification_failures.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        registry.register(
            "evident_verification_failures",
            "Attestations refused because their verification failed, by reason (signature, \
             authorization, statement)",
            verification_failures.clone(),
        );

        let rate_limited = Counter::default();
        registry.register(
            "evident_rate_limited",
            "Requests refused by the rate limiter",
            rate_limited.clone(),
        );

        let batch_entries = Histogram::new(BATCH_BOUNDS);
        registry.register(
            "evident_batch_entries",
            "Entries appended per committed batch (one fsync each)",
            batch_entries.clone(),
        );
        let batch_commit = Histogram::new(LATENCY_BOUNDS);
        registry.register(
            "evident_batch_commit_seconds",
            "Time from the start of a batch's commit until it is durable (written, flushed \
             and fsynced), in seconds",
            batch_commit.clone(),
        );
        let fsync = Histogram::new(LATENCY_BOUNDS);
        registry.register(
            "evident_fsync_seconds",
            "Duration of one store sync (flush, fdatasync of the log file, fsync of new files \
             and folders), in seconds",
            fsync.clone(),
        );

        let tree_size = Gauge::default();
        registry.register(
            "evident_tree_size",
            "Entries covered by the latest signed checkpoint",
            tree_size.clone(),
        );
        let sequencer = Gauge::default();
        registry.register(
            "evident_sequencer",
            "1 while this instance holds the sequencing lease (PostgreSQL), or sequences its \
             own store; 0 otherwise",
            sequencer.clone(),
        );
        let lease_term = Gauge::default();
        registry.register(
            "evident_lease_term",
            "The fencing term of the sequencing lease this instance last held (PostgreSQL)",
            lease_term.clone(),
        );
        let takeovers = Counter::default();
        registry.register(
            "evident_takeovers",
            "Times this instance took the sequencing lease (PostgreSQL)",
            takeovers.clone(),
        );
        let checkpoint_time = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "evident_checkpoint_timestamp_seconds",
            "Unix time at which the latest checkpoint was signed; its age is \
             time() - evident_checkpoint_timestamp_seconds",
            checkpoint_time.clone(),
        );

        let verifications = Family::<ResultLabel, Counter>::default();
        for result in ["ok", "failed"] {
            verifications.get_or_create_owned(&ResultLabel { result });
        }
        registry.register(
            "evident_store_verifications",
            "Finished background verifications of the whole store, by result (ok, failed)",
            verifications.clone(),
        );
        let verified_entries = Gauge::default();
        registry.register(
            "evident_store_verified_entries",
            "Entries the background verification in progress (or the last one) has verified",
            verified_entries.clone(),
        );
        let verified_time = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "evident_store_verified_timestamp_seconds",
            "Unix time at which the last background verification of the whole store \
             succeeded (0: none yet)",
            verified_time.clone(),
        );

        let witnessed_size = Gauge::default();
        registry.register(
            "evident_witnessed_tree_size",
            "Entries covered by the latest checkpoint that enough witnesses cosigned (0: none \
             yet); evident_tree_size - evident_witnessed_tree_size is how far it lags",
            witnessed_size.clone(),
        );
        let witnessed_time = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "evident_witnessed_timestamp_seconds",
            "Unix time at which the latest witnessed checkpoint was published (0: none yet)",
            witnessed_time.clone(),
        );
        let witness_size = Family::<WitnessLabel, Gauge>::default();
        registry.register(
            "evident_witness_cosigned_tree_size",
            "The largest checkpoint each witness has cosigned for this log, by witness",
            witness_size.clone(),
        );
        let witness_failures = Family::<WitnessLabel, Counter>::default();
        registry.register(
            "evident_witness_failures",
            "Requests to a witness that brought no cosignature (unreachable, timed out, \
             refused, or a cosignature that did not verify), by witness",
            witness_failures.clone(),
        );

        Metrics {
            witnessed_size,
            witnessed_time,
            witness_size,
            witness_failures,
            registry,
            submissions,
            verification_failures,
            rate_limited,
            batch_entries,
            batch_commit,
            fsync,
            tree_size,
            sequencer,
            lease_term,
            takeovers,
            checkpoint_time,
            verifications,
            verified_entries,
            verified_time,
        }
    }

    /// Counts one answered submission: `Ok(duplicate)` or the status code of its refusal.
    pub fn submission(&self, outcome: Result<bool, tonic::Code>) {
        let (result, code) = match outcome {
            Ok(false) => (SubmitResult::Appended, tonic::Code::Ok),
            Ok(true) => (SubmitResult::Duplicate, tonic::Code::Ok),
            Err(code) => (SubmitResult::of_code(code), code),
        };
        self.submissions
            .get_or_create(&SubmissionLabels {
                result: result.as_str(),
                code: code_name(code),
            })
            .inc();
    }

    /// How many submissions ended with this result and code.
    pub fn submissions(&self, result: SubmitResult, code: tonic::Code) -> u64 {
        self.submissions
            .get(&SubmissionLabels {
                result: result.as_str(),
                code: code_name(code),
            })
            .map_or(0, |counter| counter.get())
    }

    /// Counts an attestation refused for failing verification.
    pub fn verification_failure(&self, reason: VerificationFailure) {
        self.verification_failures
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts a submission refused by the rate limiter.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Records a committed batch: how many entries it appended, and the time from the
    /// start of its commit until it was durable.
    pub fn batch(&self, entries: usize, commit: Duration) {
        self.batch_entries.observe(entries as f64);
        self.batch_commit.observe(commit.as_secs_f64());
    }

    /// Records one `Store::sync` (flush and fsyncs).
    pub fn fsync(&self, duration: Duration) {
        self.fsync.observe(duration.as_secs_f64());
    }

    /// Records a checkpoint signed now over `size` entries.
    pub fn checkpoint(&self, size: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.tree_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        self.checkpoint_time.set(now);
    }

    /// Records a newly published witnessed checkpoint.
    pub fn witnessed(&self, size: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.witnessed_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.witnessed_time.set(now);
    }

    /// Records the size a witness has cosigned.
    pub fn witness_cosigned(&self, witness: &str, size: u64) {
        self.witness_size
            .get_or_create(&WitnessLabel {
                witness: witness.to_owned(),
            })
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }

    /// Counts a request to a witness that brought no cosignature.
    pub fn witness_failed(&self, witness: &str) {
        self.witness_failures
            .get_or_create(&WitnessLabel {
                witness: witness.to_owned(),
            })
            .inc();
    }

    /// Records whether this instance sequences, and under which lease term (0: no lease,
    /// its own store).
    pub fn sequencing(&self, on: bool, term: u64) {
        self.sequencer.set(i64::from(on));
        if term > 0 {
            self.lease_term.set(i64::try_from(term).unwrap_or(i64::MAX));
        }
    }

    /// Counts a takeover of the sequencing lease.
    pub fn takeover(&self) {
        self.takeovers.inc();
    }

    /// Records a finished background verification of the store.
    pub fn verification(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.verifications
            .get_or_create(&ResultLabel { result })
            .inc();
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.verified_time.set(now);
        }
    }

    /// Records the background verification's progress.
    pub fn verified_entries(&self, entries: u64) {
        self.verified_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// The metrics in the Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_text::encode(&mut out, &self.registry)
            .expect("writing the exposition into a String cannot fail");
        out
    }
}

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How long a connection has to send a complete request head: from its opening, and again
/// after each answer (an idle keep-alive connection is closed when it runs out).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request has, from its head until its answer is written, before the
/// connection is closed (a client that does not read its answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once. One more closes the oldest: a scrape is never refused for
/// connections that idle or stall.
pub const MAX_CONNECTIONS: usize = 64;

pub(crate) use crate::api::http::Limits;

const LIMITS: Limits = Limits {
    header_timeout: HEADER_TIMEOUT,
    request_timeout: REQUEST_TIMEOUT,
    max_connections: MAX_CONNECTIONS,
};

/// Serves [`METRICS`] on `listener` until the task is dropped (which closes every
/// connection): `GET` (or `HEAD`) `/metrics` answers the exposition, any other path 404,
/// any other method 405. HTTP/1.1 with keep-alive, within [`HEADER_TIMEOUT`],
/// [`REQUEST_TIMEOUT`] and [`MAX_CONNECTIONS`].
pub async fn serve(listener: TcpListener) {
    serve_with(listener, LIMITS).await;
}

async fn serve_with(listener: TcpListener, limits: Limits) {
    crate::api::http::serve(listener, None, limits, "metrics", |request| {
        std::future::ready(answer(request.method(), request.uri().path()))
    })
    .await;
}

/// The answer to a request: the method and path decide; headers and body are ignored.
/// hyper leaves the body out of the answer to `HEAD`.
fn answer(method: &Method, path: &str) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(METRICS.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// A parsed sample: name, label pairs (unescaped) and value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// Splits a sample line into its parts, or says why it is not one.
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .ok_or("no value")?;
        let name = &line[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("bad metric name in {line:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            loop {
                let (start, c) = chars.next().ok_or("unterminated labels")?;
                if c == '}' {
                    rest = &inner[start + 1..];
                    break;
                }
                let eq = inner[start..].find('=').ok_or("label without =")? + start;
                let label = inner[start..eq].trim_start_matches(',').to_owned();
                while chars.next().ok_or("cut label")?.0 < eq {}
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("unquoted label value in {line:?}"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated label value")?.1 {
                        '"' => break,
                        '\\' => match chars.next().ok_or("cut escape")?.1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        c => value.push(c),
                    }
                }
                labels.push((label, value));
            }
        }
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
        };
        Ok((name.to_owned(), labels, value))
    }

    /// Every sample of an exposition, keyed by its line up to the value.
    fn samples(text: &str) -> std::collections::HashMap<String, f64> {
        assert!(text.ends_with('\n'));
        let mut out = std::collections::HashMap::new();
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            let (_, _, value) = parse_sample(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let (key, _) = line.rsplit_once(' ').unwrap();
            assert!(
                out.insert(key.to_owned(), value).is_none(),
                "repeated {key}"
            );
        }
        out
    }

    /// Every family, with its type and help, as the hand-written registry exposed them.
    const FAMILIES: [(&str, &str, &str); 17] = [
        (
            "evident_build_info",
            "gauge",
            "The running evidentd: always 1, with its version as a label.",
        ),
        (
            "evident_submissions_total",
            "counter",
            "Answered Submit calls, by result (appended, duplicate, refused, error) and gRPC \
             status code.",
        ),
        (
            "evident_verification_failures_total",
            "counter",
            "Attestations refused because their verification failed, by reason (signature, \
             authorization, statement).",
        ),
        (
            "evident_rate_limited_total",
            "counter",
            "Requests refused by the rate limiter.",
        ),
        (
            "evident_batch_entries",
            "histogram",
            "Entries appended per committed batch (one fsync each).",
        ),
        (
            "evident_batch_commit_seconds",
            "histogram",
            "Time from the start of a batch's commit until it is durable (written, flushed \
             and fsynced), in seconds.",
        ),
        (
            "evident_fsync_seconds",
            "histogram",
            "Duration of one store sync (flush, fdatasync of the log file, fsync of new files \
             and folders), in seconds.",
        ),
        (
            "evident_tree_size",
            "gauge",
            "Entries covered by the latest signed checkpoint.",
        ),
        (
            "evident_sequencer",
            "gauge",
            "1 while this instance holds the sequencing lease (PostgreSQL), or sequences its \
             own store; 0 otherwise.",
        ),
        (
            "evident_lease_term",
            "gauge",
            "The fencing term of the sequencing lease this instance last held (PostgreSQL).",
        ),
        (
            "evident_takeovers_total",
            "counter",
            "Times this instance took the sequencing lease (PostgreSQL).",
        ),
        (
            "evident_checkpoint_timestamp_seconds",
            "gauge",
            "Unix time at which the latest checkpoint was signed; its age is \
             time() - evident_checkpoint_timestamp_seconds.",
        ),
        (
            "evident_store_verifications_total",
            "counter",
            "Finished background verifications of the whole store, by result (ok, failed).",
        ),
        (
            "evident_store_verified_entries",
            "gauge",
            "Entries the background verification in progress (or the last one) has verified.",
        ),
        (
            "evident_store_verified_timestamp_seconds",
            "gauge",
            "Unix time at which the last background verification of the whole store \
             succeeded (0: none yet).",
        ),
        (
            "evident_witnessed_tree_size",
            "gauge",
            "Entries covered by the latest checkpoint that enough witnesses cosigned (0: none \
             yet); evident_tree_size - evident_witnessed_tree_size is how far it lags.",
        ),
        (
            "evident_witnessed_timestamp_seconds",
            "gauge",
            "Unix time at which the latest witnessed checkpoint was published (0: none yet).",
        ),
        // The per-witness families (evident_witness_cosigned_tree_size,
        // evident_witness_failures_total) show once a witness is asked.
    ];

    #[test]
    fn every_family_keeps_its_name_type_help_and_series() {
        let text = Metrics::new().render();
        for (name, kind, help) in FAMILIES {
            assert!(
                text.lines().any(|l| l == format!("# HELP {name} {help}")),
                "{name} help in\n{text}"
            );
            assert!(
                text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
                "{name} type in\n{text}"
            );
        }
        let help_lines = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(help_lines, FAMILIES.len(), "{text}");
        let series = samples(&text);
        let les = [
            "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
            "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ];
        for name in ["evident_batch_commit_seconds", "evident_fsync_seconds"] {
            for le in les {
                assert_eq!(
                    series[&format!("{name}_bucket{{le=\"{le}\"}}")],
                    0.0,
                    "{le}"
                );
            }
        }
        for le in [
            "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096",
            "+Inf",
        ] {
            assert_eq!(
                series[&format!("evident_batch_entries_bucket{{le=\"{le}\"}}")],
                0.0
            );
        }
        // 17 buckets, sum and count for each latency histogram; 14, sum and count for the
        // batch histogram; the rest one by one.
        let expected = [
            format!(
                "evident_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            "evident_submissions_total{result=\"appended\",code=\"OK\"}".to_owned(),
            "evident_submissions_total{result=\"duplicate\",code=\"OK\"}".to_owned(),
            "evident_verification_failures_total{reason=\"signature\"}".to_owned(),
            "evident_verification_failures_total{reason=\"authorization\"}".to_owned(),
            "evident_verification_failures_total{reason=\"statement\"}".to_owned(),
            "evident_rate_limited_total".to_owned(),
            "evident_tree_size".to_owned(),
            "evident_sequencer".to_owned(),
            "evident_lease_term".to_owned(),
            "evident_takeovers_total".to_owned(),
            "evident_checkpoint_timestamp_seconds".to_owned(),
            "evident_store_verifications_total{result=\"ok\"}".to_owned(),
            "evident_store_verifications_total{result=\"failed\"}".to_owned(),
            "evident_store_verified_entries".to_owned(),
            "evident_store_verified_timestamp_seconds".to_owned(),
            "evident_witnessed_tree_size".to_owned(),
            "evident_witnessed_timestamp_seconds".to_owned(),
        ];
        for key in &expected {
            assert!(series.contains_key(key), "{key} in\n{text}");
        }
        assert_eq!(
            series.len(),
            expected.len() + 2 * (17 + 2) + 14 + 2,
            "{text}"
        );
    }

    #[test]
    fn submissions_count_by_result_and_code() {
        let m = Metrics::new();
        m.submission(Ok(false));
        m.submission(Ok(false));
        m.submission(Ok(true));
        m.submission(Err(tonic::Code::PermissionDenied));
        m.submission(Err(tonic::Code::Unavailable));
        m.verification_failure(VerificationFailure::Signature);
        m.rate_limited();
        m.batch(3, Duration::from_millis(2));
        m.fsync(Duration::from_micros(300));
        m.fsync(Duration::from_millis(1));
        m.checkpoint(42);
        assert_eq!(m.submissions(SubmitResult::Appended, tonic::Code::Ok), 2);
        assert_eq!(
            m.submissions(SubmitResult::Refused, tonic::Code::PermissionDenied),
            1
        );
        assert_eq!(
            m.submissions(SubmitResult::Refused, tonic::Code::NotFound),
            0
        );
        let text = m.render();
        let series = samples(&text);
        for (key, value) in [
            (
                "evident_submissions_total{result=\"appended\",code=\"OK\"}",
                2.0,
            ),
            (
                "evident_submissions_total{result=\"duplicate\",code=\"OK\"}",
                1.0,
            ),
            (
                "evident_submissions_total{result=\"refused\",code=\"PERMISSION_DENIED\"}",
                1.0,
            ),
            (
                "evident_submissions_total{result=\"error\",code=\"UNAVAILABLE\"}",
                1.0,
            ),
            (
                "evident_verification_failures_total{reason=\"signature\"}",
                1.0,
            ),
            (
                "evident_verification_failures_total{reason=\"authorization\"}",
                0.0,
            ),
            ("evident_rate_limited_total", 1.0),
            ("evident_batch_entries_bucket{le=\"2\"}", 0.0),
            ("evident_batch_entries_bucket{le=\"4\"}", 1.0),
            ("evident_batch_entries_sum", 3.0),
            ("evident_batch_entries_count", 1.0),
            ("evident_batch_commit_seconds_count", 1.0),
            // Bounds are inclusive: 1 ms counts in le="0.001".
            ("evident_fsync_seconds_bucket{le=\"0.00025\"}", 0.0),
            ("evident_fsync_seconds_bucket{le=\"0.0005\"}", 1.0),
            ("evident_fsync_seconds_bucket{le=\"0.001\"}", 2.0),
            ("evident_fsync_seconds_bucket{le=\"+Inf\"}", 2.0),
            ("evident_fsync_seconds_count", 2.0),
            ("evident_tree_size", 42.0),
        ] {
            assert_eq!(series.get(key), Some(&value), "{key} in\n{text}");
        }
        assert!(text.lines().any(|l| l == "evident_tree_size 42"), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "evident_submissions_total{result=\"appended\",code=\"OK\"} 2"),
            "{text}"
        );
        // Series that never happened are not listed.
        assert!(!text.contains("code=\"NOT_FOUND\""), "{text}");
        let signed = series["evident_checkpoint_timestamp_seconds"];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - signed).abs() < 60.0);
    }

    #[test]
    fn refusal_codes_split_into_refused_and_error() {
        assert_eq!(
            SubmitResult::of_code(tonic::Code::InvalidArgument),
            SubmitResult::Refused
        );
        assert_eq!(
            SubmitResult::of_code(tonic::Code::ResourceExhausted),
            SubmitResult::Refused
        );
        assert_eq!(
            SubmitResult::of_code(tonic::Code::DataLoss),
            SubmitResult::Error
        );
        assert_eq!(
            SubmitResult::of_code(tonic::Code::Internal),
            SubmitResult::Error
        );
        for (i, name) in CODE_NAMES.iter().enumerate() {
            let code = tonic::Code::from_i32(i32::try_from(i).unwrap());
            assert_eq!(code as usize, i, "{name}");
            assert_eq!(code_name(code), *name);
        }
    }

    #[test]
    fn the_method_and_path_decide_the_answer() {
        let ok = answer(&Method::GET, "/metrics");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(answer(&Method::HEAD, "/metrics").status(), StatusCode::OK);
        assert_eq!(answer(&Method::GET, "/").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            answer(&Method::GET, "/metricsx").status(),
            StatusCode::NOT_FOUND
        );
        let post = answer(&Method::POST, "/metrics");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
    }

    const SHORT: Limits = Limits {
        header_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        max_connections: 4,
    };

    async fn start(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_with(listener, limits));
        addr
    }

    /// Reads until the server closes the connection (or resets it), within 10 s.
    async fn read_until_closed(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
        let _ = read.await.expect("the server closes the connection");
        String::from_utf8_lossy(&answer).into_owned()
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        read_until_closed(&mut stream).await
    }

    /// Whether the server keeps `stream` open for `wait` (nothing to read, no close).
    async fn still_open(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(wait, stream.read(&mut byte))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn the_listener_serves_metrics_404_405_and_431() {
        let addr = start(LIMITS).await;
        let ok = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        samples(body);
        let head_only =
            exchange(addr, b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(head_only.starts_with("HTTP/1.1 200 OK\r\n"), "{head_only}");
        assert!(head_only.ends_with("\r\n\r\n"), "no body: {head_only}");
        let missing = exchange(addr, b"GET /other HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(
            post.to_ascii_lowercase().contains("allow: get, head\r\n"),
            "{post}"
        );
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let refused = exchange(addr, huge.as_bytes()).await;
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_on_one_connection() {
        let addr = start(LIMITS).await;
        let both = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(both.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{both}");
    }

    #[tokio::test]
    async fn a_stalled_or_idle_connection_is_closed_after_the_header_timeout() {
        let addr = start(SHORT).await;
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(b"GET /metr").await.unwrap();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        read_until_closed(&mut stalled).await;
        read_until_closed(&mut idle).await;
        assert!(started.elapsed() >= Duration::from_millis(250));
        // So is a keep-alive connection after its answer.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut kept).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn an_unread_answer_is_cut_after_the_request_timeout() {
        let addr = start(Limits {
            header_timeout: Duration::from_secs(30),
            ..SHORT
        })
        .await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        const REQUESTS: usize = 20_000;
        // Pipelined requests whose answers are not read: the server's writes block once
        // the socket buffers are full.
        let writing = tokio::spawn(async move {
            for _ in 0..REQUESTS {
                if writer
                    .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
                    .await
                    .is_err()
                {
                    break;
                }
            }
            writer
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut answers = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answers));
        let _ = read.await.expect("the server closed the connection");
        let answered = String::from_utf8_lossy(&answers)
            .matches("HTTP/1.1 200 OK\r\n")
            .count();
        assert!(answered < REQUESTS, "{answered} answered");
        writing.abort();
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_closes_the_oldest() {
        let addr = start(Limits {
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_connections: 4,
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(TcpStream::connect(addr).await.unwrap());
            // Accepted in this order.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert_eq!(read_until_closed(&mut idle[0]).await, "");
        for stream in &mut idle[1..] {
            assert!(still_open(stream, Duration::from_millis(200)).await);
        }
    }
}
