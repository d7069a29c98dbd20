//! Prometheus metrics: a small registry of atomics, rendered in the text exposition format
//! (version 0.0.4), and a minimal HTTP/1.1 listener that serves it on `GET /metrics`.
//!
//! Everything counts into one process-wide [`METRICS`]: the submit path, the sequencer and
//! the store's `sync` update it with relaxed atomics (no locks, no allocation); only a
//! scrape allocates. `docs/OPERATIONS.md` lists every metric.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evident_core::registry::AuthError;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The server's metrics.
pub static METRICS: Metrics = Metrics::new();

/// Counts a submission refused by the rate limiter (`evident_rate_limited_total`).
pub fn rate_limited() {
    METRICS.rate_limited.inc();
}

/// A monotonic counter.
#[derive(Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at 0.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds 1.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Counter {
        Counter::new()
    }
}

/// A value that goes up and down (an `f64`, stored as its bits).
#[derive(Debug)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// A gauge at 0.
    pub const fn new() -> Gauge {
        // 0u64 is the bit pattern of 0.0.
        Gauge(AtomicU64::new(0))
    }

    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Default for Gauge {
    fn default() -> Gauge {
        Gauge::new()
    }
}

/// A histogram with fixed upper bounds, observing integers in a base unit (nanoseconds,
/// entries) that render divided by `unit` (1e9 for seconds).
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    /// Upper bounds (inclusive, ascending), in the base unit.
    bounds: [u64; N],
    /// Base units per rendered unit.
    unit: u64,
    /// Observations per bucket (not cumulative): `buckets[i]` holds those in
    /// `(bounds[i-1], bounds[i]]`.
    buckets: [AtomicU64; N],
    /// Observations above the last bound.
    overflow: AtomicU64,
    /// Sum of all observations, in the base unit.
    sum: AtomicU64,
}

/// What a histogram holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)` for each finite bound, in rendered units.
    pub buckets: Vec<(f64, u64)>,
    /// Observations in all (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations, in rendered units.
    pub sum: f64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram; `bounds` must ascend.
    pub const fn new(bounds: [u64; N], unit: u64) -> Histogram<N> {
        Histogram {
            bounds,
            unit,
            buckets: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation, in the base unit.
    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        match self.buckets.get(i) {
            Some(bucket) => bucket.fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (for histograms in nanoseconds).
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The cumulative counts, the total and the sum. The `+Inf` bucket is the total of the
    /// same loads, so it always equals the count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let unit = self.unit as f64;
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(N);
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative = cumulative.wrapping_add(bucket.load(Ordering::Relaxed));
            buckets.push((*bound as f64 / unit, cumulative));
        }
        let count = cumulative.wrapping_add(self.overflow.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            count,
            sum: self.sum.load(Ordering::Relaxed) as f64 / unit,
        }
    }
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
    const ALL: [SubmitResult; 4] = [
        SubmitResult::Appended,
        SubmitResult::Duplicate,
        SubmitResult::Refused,
        SubmitResult::Error,
    ];

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

/// Upper bounds of the latency histograms, in nanoseconds: 100 µs to 10 s.
const LATENCY_BOUNDS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the batch size histogram, in entries.
const BATCH_BOUNDS: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Every metric the server exposes.
#[derive(Debug)]
pub struct Metrics {
    /// `[result][code]`.
    submissions: [[AtomicU64; 17]; 4],
    batch_entries: Histogram<13>,
    batch_commit: Histogram<16>,
    fsync: Histogram<16>,
    tree_size: Gauge,
    checkpoint_time: Gauge,
    verification_failures: [Counter; 3],
    rate_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub const fn new() -> Metrics {
        Metrics {
            submissions: [const { [const { AtomicU64::new(0) }; 17] }; 4],
            batch_entries: Histogram::new(BATCH_BOUNDS, 1),
            batch_commit: Histogram::new(LATENCY_BOUNDS, NANOS_PER_SECOND),
            fsync: Histogram::new(LATENCY_BOUNDS, NANOS_PER_SECOND),
            tree_size: Gauge::new(),
            checkpoint_time: Gauge::new(),
            verification_failures: [const { Counter::new() }; 3],
            rate_limited: Counter::new(),
        }
    }

    /// Counts one answered submission: `Ok(duplicate)` or the status code of its refusal.
    pub fn submission(&self, outcome: Result<bool, tonic::Code>) {
        let (result, code) = match outcome {
            Ok(false) => (SubmitResult::Appended, tonic::Code::Ok),
            Ok(true) => (SubmitResult::Duplicate, tonic::Code::Ok),
            Err(code) => (SubmitResult::of_code(code), code),
        };
        let code = usize::try_from(code as i32).unwrap_or(usize::MAX);
        if let Some(counter) = self.submissions[result as usize].get(code) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many submissions ended with this result and code.
    pub fn submissions(&self, result: SubmitResult, code: tonic::Code) -> u64 {
        usize::try_from(code as i32)
            .ok()
            .and_then(|c| self.submissions[result as usize].get(c))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts an attestation refused for failing verification.
    pub fn verification_failure(&self, reason: VerificationFailure) {
        self.verification_failures[reason as usize].inc();
    }

    /// Counts a submission refused by the rate limiter.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Records a committed batch: how many entries it appended, and the time from the
    /// start of its commit until it was durable.
    pub fn batch(&self, entries: usize, commit: Duration) {
        self.batch_entries
            .observe(u64::try_from(entries).unwrap_or(u64::MAX));
        self.batch_commit.observe_duration(commit);
    }

    /// Records one `Store::sync` (flush and fsyncs).
    pub fn fsync(&self, duration: Duration) {
        self.fsync.observe_duration(duration);
    }

    /// Records a checkpoint signed now over `size` entries.
    pub fn checkpoint(&self, size: u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.tree_size.set(size as f64);
        self.checkpoint_time.set(now);
    }

    /// The metrics in the Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            "evident_build_info",
            "gauge",
            "The running evidentd: always 1, with its version as a label.",
        );
        sample(
            &mut out,
            "evident_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            "1",
        );

        family(
            &mut out,
            "evident_submissions_total",
            "counter",
            "Answered Submit calls, by result (appended, duplicate, refused, error) and gRPC \
             status code.",
        );
        for result in SubmitResult::ALL {
            for (code, name) in CODE_NAMES.iter().enumerate() {
                let value = self.submissions[result as usize][code].load(Ordering::Relaxed);
                // The two successful series always show, so rates start from zero; the
                // others appear once they happen.
                let always =
                    code == 0 && matches!(result, SubmitResult::Appended | SubmitResult::Duplicate);
                if value > 0 || always {
                    sample(
                        &mut out,
                        "evident_submissions_total",
                        &[("result", result.as_str()), ("code", name)],
                        &value.to_string(),
                    );
                }
            }
        }

        family(
            &mut out,
            "evident_verification_failures_total",
            "counter",
            "Attestations refused because their verification failed, by reason (signature, \
             authorization, statement).",
        );
        for reason in VerificationFailure::ALL {
            sample(
                &mut out,
                "evident_verification_failures_total",
                &[("reason", reason.as_str())],
                &self.verification_failures[reason as usize]
                    .get()
                    .to_string(),
            );
        }

        family(
            &mut out,
            "evident_rate_limited_total",
            "counter",
            "Requests refused by the rate limiter.",
        );
        sample(
            &mut out,
            "evident_rate_limited_total",
            &[],
            &self.rate_limited.get().to_string(),
        );

        histogram(
            &mut out,
            "evident_batch_entries",
            "Entries appended per committed batch (one fsync each).",
            &self.batch_entries.snapshot(),
        );
        histogram(
            &mut out,
            "evident_batch_commit_seconds",
            "Time from the start of a batch's commit until it is durable (written, flushed \
             and fsynced), in seconds.",
            &self.batch_commit.snapshot(),
        );
        histogram(
            &mut out,
            "evident_fsync_seconds",
            "Duration of one store sync (flush, fdatasync of the log file, fsync of new files \
             and folders), in seconds.",
            &self.fsync.snapshot(),
        );

        family(
            &mut out,
            "evident_tree_size",
            "gauge",
            "Entries covered by the latest signed checkpoint.",
        );
        sample(
            &mut out,
            "evident_tree_size",
            &[],
            &number(self.tree_size.get()),
        );
        family(
            &mut out,
            "evident_checkpoint_timestamp_seconds",
            "gauge",
            "Unix time at which the latest checkpoint was signed; its age is \
             time() - evident_checkpoint_timestamp_seconds.",
        );
        sample(
            &mut out,
            "evident_checkpoint_timestamp_seconds",
            &[],
            &number(self.checkpoint_time.get()),
        );
        out
    }
}

/// `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{label="value",...} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label(text));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A histogram family: cumulative `_bucket` lines ending in `+Inf`, `_sum`, `_count`.
fn histogram(out: &mut String, name: &str, help: &str, snapshot: &HistogramSnapshot) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (bound, count) in &snapshot.buckets {
        sample(out, &bucket, &[("le", &number(*bound))], &count.to_string());
    }
    sample(out, &bucket, &[("le", "+Inf")], &snapshot.count.to_string());
    sample(out, &format!("{name}_sum"), &[], &number(snapshot.sum));
    sample(
        out,
        &format!("{name}_count"),
        &[],
        &snapshot.count.to_string(),
    );
}

/// A float as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, or the shortest decimal.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text with `\` and newlines escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Longest request head (request line and headers) the listener reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How long a client has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;

/// Serves [`METRICS`] on `listener` until the task is dropped: `GET` (or `HEAD`)
/// `/metrics` answers the exposition, any other path 404. One request per connection; the
/// request body, if any, is ignored.
pub async fn serve(listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(async move {
                    if let Err(e) = respond(stream).await {
                        tracing::debug!(%peer, error = %e, "metrics request failed");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "accepting a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head, answers it, and closes the connection.
async fn respond(mut stream: TcpStream) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))??;
    let answer = match head {
        Some(head) => answer(&head),
        None => Answer::text(
            "431 Request Header Fields Too Large",
            "request head too large\n",
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len(),
        if answer.status.starts_with("405") {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        },
    );
    if answer.send_body {
        response.push_str(&answer.body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    // Read (and drop) whatever the client still sends, for a moment, so that closing does
    // not reset the connection before the client has read the answer.
    let drain = async {
        let mut sink = [0u8; 1024];
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

/// Reads up to the blank line that ends a request head (or the end of the stream, if a
/// request line came before it). `None` when the head is larger than the limit.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if head.contains(&b'\n') {
                break;
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before a request line",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n").or_else(|| find(&head, b"\n\n")) {
            head.truncate(end);
            break;
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Where `needle` first starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
    /// False for `HEAD`: the headers describe the body, which is not sent.
    send_body: bool,
}

impl Answer {
    fn text(status: &'static str, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            send_body: true,
        }
    }
}

/// The answer to a request head: the request line decides; headers are ignored.
fn answer(head: &str) -> Answer {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Answer::text("400 Bad Request", "malformed request line\n");
    };
    if parts.next().is_some_and(|v| !v.starts_with("HTTP/")) || parts.next().is_some() {
        return Answer::text("400 Bad Request", "malformed request line\n");
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return Answer::text("405 Method Not Allowed", "only GET and HEAD are served\n");
    }
    let mut answer = if path == "/metrics" {
        Answer {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            body: METRICS.render(),
            send_body: true,
        }
    } else {
        Answer::text("404 Not Found", "not found: metrics are at /metrics\n")
    };
    answer.send_body = !head_only;
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

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
                // The next char is ',' or '}'; a ',' is consumed with the next label.
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

    fn assert_parses(text: &str) {
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            parse_sample(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        }
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets() {
        let h = Histogram::new([1_000_000, 10_000_000, 100_000_000], NANOS_PER_SECOND);
        h.observe_duration(Duration::from_micros(500)); // <= 0.001
        h.observe_duration(Duration::from_millis(1)); // <= 0.001 (bounds are inclusive)
        h.observe_duration(Duration::from_millis(50)); // <= 0.1
        h.observe_duration(Duration::from_secs(2)); // +Inf only
        let mut out = String::new();
        histogram(&mut out, "x_seconds", "Some help.", &h.snapshot());
        let expected = "# HELP x_seconds Some help.\n\
                        # TYPE x_seconds histogram\n\
                        x_seconds_bucket{le=\"0.001\"} 2\n\
                        x_seconds_bucket{le=\"0.01\"} 2\n\
                        x_seconds_bucket{le=\"0.1\"} 3\n\
                        x_seconds_bucket{le=\"+Inf\"} 4\n\
                        x_seconds_sum 2.0515\n\
                        x_seconds_count 4\n";
        assert_eq!(out, expected);
        assert_parses(&out);
    }

    #[test]
    fn latency_bounds_ascend_and_print_as_short_decimals() {
        assert!(LATENCY_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert!(BATCH_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        let h = Histogram::new(LATENCY_BOUNDS, NANOS_PER_SECOND);
        let les: Vec<String> = h.snapshot().buckets.iter().map(|b| number(b.0)).collect();
        assert_eq!(les[0], "0.0001");
        assert_eq!(les[4], "0.0025");
        assert_eq!(les[15], "10");
    }

    #[test]
    fn labels_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("two\nlines"), r"two\nlines");
        assert_eq!(escape_help("a\\b\nc \"d\""), "a\\\\b\\nc \"d\"");
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            &[("a", "x\"y"), ("b", "back\\slash\nnew")],
            "1",
        );
        assert_eq!(out, "m{a=\"x\\\"y\",b=\"back\\\\slash\\nnew\"} 1\n");
        let (name, labels, value) = parse_sample(out.trim_end()).unwrap();
        assert_eq!(name, "m");
        assert_eq!(
            labels,
            vec![
                ("a".to_owned(), "x\"y".to_owned()),
                ("b".to_owned(), "back\\slash\nnew".to_owned()),
            ]
        );
        assert_eq!(value, 1.0);
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
        m.checkpoint(42);
        assert_eq!(m.submissions(SubmitResult::Appended, tonic::Code::Ok), 2);
        assert_eq!(
            m.submissions(SubmitResult::Refused, tonic::Code::PermissionDenied),
            1
        );
        let text = m.render();
        assert_parses(&text);
        for line in [
            "evident_submissions_total{result=\"appended\",code=\"OK\"} 2",
            "evident_submissions_total{result=\"duplicate\",code=\"OK\"} 1",
            "evident_submissions_total{result=\"refused\",code=\"PERMISSION_DENIED\"} 1",
            "evident_submissions_total{result=\"error\",code=\"UNAVAILABLE\"} 1",
            "evident_verification_failures_total{reason=\"signature\"} 1",
            "evident_verification_failures_total{reason=\"authorization\"} 0",
            "evident_rate_limited_total 1",
            "evident_batch_entries_bucket{le=\"2\"} 0",
            "evident_batch_entries_bucket{le=\"4\"} 1",
            "evident_batch_entries_sum 3",
            "evident_batch_entries_count 1",
            "evident_batch_commit_seconds_count 1",
            "evident_fsync_seconds_bucket{le=\"0.0005\"} 1",
            "evident_tree_size 42",
            &format!(
                "evident_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // Series that never happened are not listed.
        assert!(!text.contains("code=\"NOT_FOUND\""), "{text}");
        // Every family has HELP and TYPE before its samples.
        for name in [
            "evident_submissions_total",
            "evident_batch_entries",
            "evident_batch_commit_seconds",
            "evident_fsync_seconds",
            "evident_tree_size",
            "evident_checkpoint_timestamp_seconds",
            "evident_verification_failures_total",
            "evident_rate_limited_total",
            "evident_build_info",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        let signed = text
            .lines()
            .find_map(|l| l.strip_prefix("evident_checkpoint_timestamp_seconds "))
            .unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - signed.parse::<f64>().unwrap()).abs() < 60.0);
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
        }
    }

    #[test]
    fn the_request_line_decides_the_answer() {
        let a = answer("GET /metrics HTTP/1.1\r\nHost: x");
        assert_eq!(a.status, "200 OK");
        assert_eq!(a.content_type, CONTENT_TYPE);
        assert!(a.send_body && a.body.contains("# TYPE evident_tree_size gauge"));
        assert_eq!(answer("GET /metrics?x=1 HTTP/1.0").status, "200 OK");
        let head = answer("HEAD /metrics HTTP/1.1");
        assert_eq!(head.status, "200 OK");
        assert!(!head.send_body && !head.body.is_empty());
        assert_eq!(answer("GET / HTTP/1.1").status, "404 Not Found");
        assert_eq!(answer("GET /metricsx HTTP/1.1").status, "404 Not Found");
        assert_eq!(
            answer("POST /metrics HTTP/1.1").status,
            "405 Method Not Allowed"
        );
        assert_eq!(answer("").status, "400 Bad Request");
        assert_eq!(answer("GET").status, "400 Bad Request");
        assert_eq!(
            answer("GET /metrics SPDY/9 extra").status,
            "400 Bad Request"
        );
    }

    async fn fetch(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn the_listener_serves_metrics_and_404() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener));
        let ok = fetch(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert_parses(body);
        let missing = fetch(addr, b"GET /other HTTP/1.1\r\n\r\n").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        // A body after the head is ignored, and the answer still arrives.
        let post = fetch(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let refused = fetch(addr, huge.as_bytes()).await;
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        server.abort();
    }
}
