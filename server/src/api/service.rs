//! The gRPC services. The only module that sees `evident-proto` types: requests are
//! converted into checked `evident-core` values here, once, and answers are converted back,
//! with the conversions the client shares (`evident_api::convert`).

use evident_api::convert::{self, LogEntry, Selector};
use evident_core::bundle::BundleRequest;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::kinds::{self, Refusal};
use evident_core::record::{self, LeafRecord};
use evident_core::registry::{AuthError, Registry};
use evident_core::statement::Statement;
use evident_core::{Hash, merkle};
use evident_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::api::paging::{self, List, Token};
use crate::auth::{Auth, Needs, Role};
use crate::ledger::{Ledger, LedgerError};
use crate::metrics::{METRICS, VerificationFailure};
use crate::query::{Cursor, Filters};

/// About how many bytes of leaf records one `Query` page or `GetEntries` answer carries.
const MAX_PAGE_BYTES: usize = 2 << 20;
use crate::store::Posting;

/// `evident.v1.Ledger`.
#[derive(Debug, Clone)]
pub struct LedgerService {
    /// Set once the store has passed its start-up check; until then calls are UNAVAILABLE.
    ledger: std::sync::Arc<std::sync::OnceLock<Ledger>>,
    max_envelope_bytes: usize,
    auth: std::sync::Arc<Auth>,
    limiter: std::sync::Arc<crate::limits::Limiter>,
    /// With witnesses configured: how long a `Submit` that asks for a witnessed receipt
    /// waits for one.
    witness_wait: Option<std::time::Duration>,
}

impl LedgerService {
    /// Witnesses are configured: a `Submit` may wait up to `wait` for a witnessed receipt.
    pub fn with_witnesses(mut self, wait: std::time::Duration) -> Self {
        self.witness_wait = Some(wait);
        self
    }

    /// The log has no witnesses: what a call that needs them is told.
    fn no_witnesses(&self) -> Result<std::time::Duration, Status> {
        self.witness_wait.ok_or_else(|| {
            Status::failed_precondition(
                "this log has no witnesses configured ([[witness]] in the server's \
                 configuration), so it has no witnessed checkpoint",
            )
        })
    }

    /// A service over a running ledger.
    pub fn new(
        ledger: std::sync::Arc<std::sync::OnceLock<Ledger>>,
        max_envelope_bytes: usize,
        auth: std::sync::Arc<Auth>,
        limiter: std::sync::Arc<crate::limits::Limiter>,
    ) -> Self {
        LedgerService {
            ledger,
            max_envelope_bytes,
            auth,
            limiter,
            witness_wait: None,
        }
    }

    /// The ledger, once the store has passed its start-up check.
    fn ledger(&self) -> Result<&Ledger, Status> {
        self.ledger.get().ok_or_else(|| {
            Status::unavailable("the server is starting: it is checking its store; retry shortly")
        })
    }

    /// Admits a request: its client must have what the call `needs` and be within its
    /// limits. The permit is held until the call is answered.
    fn admit<T>(
        &self,
        request: &Request<T>,
        needs: Needs,
        what: &str,
    ) -> Result<crate::limits::Permit, Status> {
        let principal = self.auth.check(request, needs, what)?;
        self.limiter.admit(&principal.name)
    }

    /// Routes on the payload type to the entry's kind and runs its checks that need no
    /// sequencing ([`Kind::check`]). `verified`: an attestation's signatures already
    /// verified (a batch's, together), with the registry they were verified against.
    fn check(&self, envelope: Envelope, verified: Option<Verified>) -> Result<Checked, Status> {
        let refused = |refusal: Refusal| {
            if let Some(failure) = VerificationFailure::of_refusal(&refusal) {
                METRICS.verification_failure(failure);
            }
            crate::api::reason::refused(&refusal)
        };
        let kind = kinds::for_payload_type(&envelope.payload_type).map_err(refused)?;
        let checked = match verified {
            Some((registry, keys)) => {
                kinds::check_verified(&registry, &envelope, keys, now_nanos())
            }
            None => kind.check(&self.ledger()?.registry(), &envelope, now_nanos()),
        }
        .map_err(refused)?;
        Ok(Checked {
            digest: checked.facts().dedupe_key(&envelope),
            envelope,
            checked,
        })
    }

    /// The artifacts a request names: one `ALGORITHM:HEX`, or those a release `NAME@VERSION`
    /// declares.
    /// What a bundle request asks, and the artifacts the server gathers evidence for: the
    /// artifact, or every artifact any release attestation declares for the release (the
    /// verifier keeps only those its policy's release signers declared).
    fn artifacts_of(
        &self,
        artifact: &str,
        release: &str,
    ) -> Result<(BundleRequest, Vec<(String, String)>), Status> {
        match (artifact.is_empty(), release.is_empty()) {
            (false, true) => {
                let (alg, hex) = artifact_arg(artifact)?;
                Ok((
                    BundleRequest::artifact(&format!("{alg}:{hex}")),
                    vec![(alg, hex)],
                ))
            }
            (true, false) => {
                let request = BundleRequest::release(release).ok_or_else(|| {
                    Status::invalid_argument(format!("release {release:?} is not NAME@VERSION"))
                })?;
                let (name, version) = release.rsplit_once('@').ok_or_else(|| {
                    Status::invalid_argument(format!("release {release:?} is not NAME@VERSION"))
                })?;
                let artifacts = self
                    .ledger()?
                    .release_artifacts(name, version)
                    .map_err(status)?;
                Ok((request, artifacts))
            }
            _ => Err(Status::invalid_argument(
                "name either the artifact (ALGORITHM:HEX) or the release (NAME@VERSION)",
            )),
        }
    }
}

/// Whether the attestations of one `SubmitBatch` request or `SubmitStream` message have
/// their signatures checked together, in one Ed25519 batch
/// ([`Registry::verifying_keys_batch`]), instead of one by one. The answers are the same
/// either way. Off: to agree exactly with strict verification the batch must first check
/// every signature's `R` for a small-order component, which costs about what the batch
/// saves, and with the extra Statement parse it measured slower end to end
/// (`docs/PERFORMANCE.md`, "Batch and stream submission").
const BATCH_VERIFICATION: bool = false;

/// A unary `Submit` checks an envelope with at most this many signatures…
const INLINE_CHECK_SIGNATURES: usize = 2;
/// …and a payload of at most this many bytes on the async worker itself.
const INLINE_CHECK_BYTES: usize = 16 * 1024;

/// An attestation's signing keys as verified against a registry
/// ([`Registry::verifying_keys`], or the batch path of [`Registry::verifying_keys_batch`]).
type Verified = (
    std::sync::Arc<Registry>,
    Result<Vec<evident_core::registry::SignedBy>, AuthError>,
);

/// The answer to one envelope: its receipt, or why it was refused.
type Answer = Result<pb::Receipt, Status>;

/// The answers of a submission stream as tonic sends them.
type AnswerStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::SubmitStreamResponse, Status>> + Send>,
>;

impl LedgerService {
    /// The checks of one envelope that need neither keys nor the ledger: present, a
    /// payload type, within `max_envelope_bytes`, at most [`MAX_SIGNATURES`] signatures.
    fn precheck(&self, envelope: Option<pb::Envelope>) -> Result<Envelope, Status> {
        let envelope = convert::required_envelope(envelope)?;
        let size = record::encoded_envelope_len(&envelope);
        if size > self.max_envelope_bytes {
            return Err(crate::limits::oversize_envelope(
                size,
                self.max_envelope_bytes,
            ));
        }
        if envelope.signatures.len() > MAX_SIGNATURES {
            return Err(Status::invalid_argument(format!(
                "envelope has {} signatures, at most {MAX_SIGNATURES} are accepted",
                envelope.signatures.len()
            )));
        }
        // A field longer than a leaf record can say (a key id over 64 KiB, when
        // `max_envelope_bytes` allows one) is refused here, never at integration.
        record::check_fits(&envelope)
            .map_err(|e| crate::api::reason::refused(&Refusal::Unencodable(e)))?;
        Ok(envelope)
    }

    /// Sequences a checked envelope: the entry already logged with the same dedupe key,
    /// or (a registry change after its trial on a copy of the registry) a new entry.
    /// `receipt` again, proven against a witnessed checkpoint that covers it, once there is
    /// one (at most the configured wait).
    async fn witnessed_receipt(&self, receipt: pb::Receipt) -> Answer {
        let wait = self.no_witnesses()?;
        let index = receipt
            .entry
            .as_ref()
            .map(|e| e.index)
            .ok_or_else(|| Status::internal("a receipt without its entry"))?;
        let ledger = self.ledger()?.clone();
        let witnessed = tokio::time::timeout(wait, ledger.witnessed_covering(index))
            .await
            .map_err(|_| {
                Status::unavailable(format!(
                    "entry {index} is logged (the receipt is durable), but no witnessed \
                     checkpoint covered it within {} ms: the witnesses are slow or down; \
                     resubmit the same envelope later to get the witnessed receipt",
                    wait.as_millis()
                ))
            })?
            .map_err(status)?;
        let duplicate = receipt.duplicate;
        let proven = tokio::task::spawn_blocking(move || {
            ledger.receipt_at(index, &witnessed.note, &witnessed.checkpoint)
        })
        .await
        .map_err(|e| Status::internal(format!("proving the receipt: {e}")))?
        .map_err(status)?;
        Ok(convert::receipt_to_proto(proven, duplicate))
    }

    /// The note of the checkpoint at `size`, if the service knows one: the latest witnessed
    /// checkpoint's (with its cosignatures) or the latest one's; empty otherwise.
    fn note_at(&self, size: u64, published: &crate::ledger::Published) -> String {
        if let Ok(ledger) = self.ledger() {
            if let Some(witnessed) = ledger.witnessed() {
                if witnessed.checkpoint.size == size {
                    return witnessed.note.clone();
                }
            }
        }
        if published.checkpoint.size == size {
            published.note.clone()
        } else {
            String::new()
        }
    }

    async fn sequence(&self, checked: Checked) -> Answer {
        let Checked {
            envelope,
            checked,
            digest,
        } = checked;
        // Only now, with the signatures verified and authorized: the same content by the
        // same keys is answered with the entry already logged. With the indexes in
        // PostgreSQL, where the look-up is a round trip, only for a submission the trial
        // refuses (a retried registry change): the sequencer answers any other repeat with
        // the entry already logged.
        let ledger = self.ledger()?.clone();
        let trial = || kinds::of(checked.kind()).trial(&ledger.registry(), &envelope, now_nanos());
        let remote = ledger.remote_index();
        let refusal = if remote { trial().err() } else { None };
        if !remote || refusal.is_some() {
            // A local look-up takes microseconds; a round trip to PostgreSQL goes off the
            // async workers.
            let existing = if remote {
                let looking = ledger.clone();
                tokio::task::spawn_blocking(move || looking.existing(&digest))
                    .await
                    .map_err(|e| {
                        Status::internal(format!("looking for the entry already logged: {e}"))
                    })?
            } else {
                ledger.existing(&digest)
            };
            if let Some(receipt) = existing.map_err(status)? {
                tracing::info!(
                    index = receipt.index,
                    "resubmission answered with the original receipt"
                );
                return Ok(convert::receipt_to_proto(receipt, true));
            }
        }
        match refusal {
            Some(refusal) => return Err(crate::api::reason::refused(&refusal)),
            None if !remote => trial().map_err(|refusal| crate::api::reason::refused(&refusal))?,
            None => {}
        }
        let what = checked.what().to_owned();
        let signers = checked.facts().signers.clone();
        let (receipt, duplicate) = self
            .ledger()?
            .submit(envelope, checked)
            .await
            .map_err(status)?;
        tracing::info!(
            index = receipt.index,
            duplicate,
            kind = %receipt.kind,
            // Untrusted strings are logged escaped ({:?}): a newline in one cannot
            // forge a log line, an escape sequence cannot reach a terminal.
            what = ?what,
            signers = ?signers,
            "entry submitted"
        );
        Ok(convert::receipt_to_proto(receipt, duplicate))
    }

    /// The checks of several envelopes, on the blocking pool's thread: with
    /// [`BATCH_VERIFICATION`], the signatures of every attestation verified together (one
    /// Ed25519 batch, falling back to one by one when it fails); then each envelope checked
    /// on its own exactly as `Submit` checks it.
    fn check_all(&self, envelopes: Vec<Result<Envelope, Status>>) -> Vec<Result<Checked, Status>> {
        let registry = match self.ledger() {
            Ok(ledger) => ledger.registry(),
            Err(refused) => {
                return envelopes
                    .into_iter()
                    .map(|_| Err(refused.clone()))
                    .collect();
            }
        };
        // The attestations whose Statement parses: the others are refused before their
        // signatures are looked at, as `Submit` refuses them.
        let mut attestations: Vec<(usize, String)> = Vec::new();
        for (i, envelope) in envelopes.iter().enumerate() {
            if !BATCH_VERIFICATION {
                break;
            }
            let Ok(envelope) = envelope else { continue };
            if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
                continue;
            }
            if let Ok(statement) = Statement::from_envelope(envelope) {
                if evident_core::audit::check_release(&statement).is_ok() {
                    attestations.push((i, statement.predicate_type));
                }
            }
        }
        let mut verified: Vec<Option<Verified>> = envelopes.iter().map(|_| None).collect();
        if attestations.len() > 1 {
            let items: Vec<(&Envelope, &str)> = attestations
                .iter()
                .filter_map(|(i, predicate_type)| {
                    envelopes[*i]
                        .as_ref()
                        .ok()
                        .map(|e| (e, predicate_type.as_str()))
                })
                .collect();
            let keys = registry.verifying_keys_batch(&items);
            for ((i, _), keys) in attestations.iter().zip(keys) {
                verified[*i] = Some((registry.clone(), keys));
            }
        }
        envelopes
            .into_iter()
            .zip(verified)
            .map(|(envelope, verified)| self.check(envelope?, verified))
            .collect()
    }

    /// Submits the envelopes of one `SubmitBatch` request or `SubmitStream` message for
    /// `principal`: each envelope is answered on its own, as `Submit` would answer it, in
    /// order. Each needs its role (admin for registry changes and policy versions) and is
    /// charged to the client's rate, except the first when `first_paid` (the call's
    /// admission paid for it). The envelopes are sequenced concurrently, so they share the
    /// sequencer's batches.
    async fn submit_many(
        &self,
        principal: &crate::auth::Principal,
        envelopes: Vec<pb::Envelope>,
        first_paid: bool,
    ) -> Vec<Answer> {
        let prechecked: Vec<Result<Envelope, Status>> = envelopes
            .into_iter()
            .enumerate()
            .map(|(i, envelope)| {
                let (needs, what) = submit_needs(&envelope.payload_type);
                principal.require(needs, what)?;
                if i > 0 || !first_paid {
                    self.limiter.charge(&principal.name)?;
                }
                self.precheck(Some(envelope))
            })
            .collect();
        let count = prechecked.len();
        // Signature verification is CPU work: keep it off the async workers.
        let this = self.clone();
        let checked = match tokio::task::spawn_blocking(move || this.check_all(prechecked)).await {
            Ok(checked) => checked,
            Err(e) => {
                let refused = Status::internal(format!("checking the envelopes failed: {e}"));
                (0..count).map(|_| Err(refused.clone())).collect()
            }
        };
        let tasks: Vec<_> = checked
            .into_iter()
            .map(|checked| {
                let this = self.clone();
                tokio::spawn(async move { this.sequence(checked?).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            let answer = task
                .await
                .unwrap_or_else(|e| Err(Status::internal(format!("submitting failed: {e}"))));
            count_submission(&answer);
            answers.push(answer);
        }
        answers
    }

    /// Reads a submission stream and answers each envelope, in order, into `answers`;
    /// holds the call's concurrency slot (`admitted`) until the stream is done. Stops
    /// reading while [`crate::limits::MAX_STREAM_IN_FLIGHT`] envelopes are unanswered, and
    /// when no message arrives within the request timeout.
    async fn run_stream(
        self,
        principal: crate::auth::Principal,
        admitted: crate::limits::Permit,
        mut requests: tonic::Streaming<pb::SubmitStreamRequest>,
        answers: tokio::sync::mpsc::Sender<(
            Result<pb::SubmitStreamResponse, Status>,
            Option<tokio::sync::OwnedSemaphorePermit>,
        )>,
    ) {
        use crate::limits::{MAX_BATCH_ENVELOPES, MAX_STREAM_IN_FLIGHT};
        let _admitted = admitted;
        let window = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_STREAM_IN_FLIGHT));
        let timeout = self.limiter.request_timeout();
        let mut previous: Option<tokio::task::JoinHandle<()>> = None;
        let end: Option<Status> = loop {
            // Room for a whole message before reading it, so the unanswered envelopes never
            // exceed the window; a client that neither sends nor reads its answers for the
            // request timeout is cut off.
            let next = async {
                let room = window
                    .clone()
                    .acquire_many_owned(MAX_BATCH_ENVELOPES as u32)
                    .await
                    .map_err(|_| Status::internal("the stream's window closed"))?;
                requests.message().await.map(|m| (room, m))
            };
            let (room, message) = match tokio::time::timeout(timeout, next).await {
                Err(_) => {
                    break Some(Status::deadline_exceeded(format!(
                        "the stream made no progress for {} ms (limits.request_timeout_ms): \
                         it sent no envelope, or read none of its answers; it is closed",
                        timeout.as_millis()
                    )));
                }
                Ok(Err(refused)) => break Some(refused),
                Ok(Ok((_, None))) => break None,
                Ok(Ok((room, Some(message)))) => (room, message),
            };
            drop(room);
            let count = message.envelopes.len();
            if count == 0 {
                // Free to send, yet work to take: an empty message would also keep an idle
                // stream open past the request timeout.
                break Some(Status::invalid_argument(
                    "a SubmitStream message carries no envelope: send at least one per message",
                ));
            }
            if count > MAX_BATCH_ENVELOPES {
                count_submission(&Err(too_many_envelopes(count)));
                break Some(too_many_envelopes(count));
            }
            let mut permits = Vec::with_capacity(count);
            for _ in 0..count {
                match window.clone().try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            let this = self.clone();
            let principal = principal.clone();
            let answers = answers.clone();
            let after = previous.take();
            let sequence = message.sequence;
            previous = Some(tokio::spawn(async move {
                let results = this.submit_many(&principal, message.envelopes, false).await;
                // Answers go out in the order the envelopes came in.
                if let Some(after) = after {
                    let _ = after.await;
                }
                let permits = permits
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None));
                for ((i, answer), permit) in results.into_iter().enumerate().zip(permits) {
                    let response = pb::SubmitStreamResponse {
                        sequence: sequence.wrapping_add(i as u64),
                        result: Some(result_to_proto(answer)),
                    };
                    if answers.send((Ok(response), permit)).await.is_err() {
                        return;
                    }
                }
            }));
        };
        if let Some(last) = previous {
            let _ = last.await;
        }
        if let Some(end) = end {
            let _ = answers.send((Err(end), None)).await;
        }
    }
}

/// What submitting an envelope of this payload type needs, and how a refusal names it:
/// registry changes and policy versions are the administrators'; the rest is evidence.
fn submit_needs(payload_type: &str) -> (Needs, &'static str) {
    if kinds::for_payload_type(payload_type).is_ok_and(|kind| kind.administrative()) {
        (
            Needs::Role(Role::Admin),
            "submit registry changes or policy versions",
        )
    } else {
        (Needs::Role(Role::Submitter), "submit attestations")
    }
}

/// The refusal of a batch request or stream message over [`crate::limits::MAX_BATCH_ENVELOPES`].
fn too_many_envelopes(count: usize) -> Status {
    Status::invalid_argument(format!(
        "the request carries {count} envelopes, at most {} are accepted in one request: \
         split it (nothing was submitted)",
        crate::limits::MAX_BATCH_ENVELOPES
    ))
}

/// Counts one envelope's answer in the submission metrics.
fn count_submission(answer: &Answer) {
    METRICS.submission(match answer {
        Ok(receipt) => Ok(receipt.duplicate),
        Err(refused) => Err(refused.code()),
    });
}

fn result_to_proto(answer: Answer) -> pb::SubmitResult {
    pb::SubmitResult {
        result: Some(match answer {
            Ok(receipt) => pb::submit_result::Result::Receipt(receipt),
            Err(refused) => pb::submit_result::Result::Error(pb::SubmitError {
                code: refused.code() as i32,
                message: refused.message().to_owned(),
                reason: crate::api::reason::of(&refused).unwrap_or_default(),
            }),
        }),
    }
}

/// A submission that passed the checks that need no sequencing.
struct Checked {
    envelope: Envelope,
    /// What its kind's check found.
    checked: kinds::Checked,
    /// The dedupe key ([`record::dedupe_key`]).
    digest: Hash,
}

/// The most signatures an envelope may carry ([`evident_core::dsse::MAX_SIGNATURES`]): an
/// envelope stuffed with signatures is refused before any is checked.
pub const MAX_SIGNATURES: usize = evident_core::dsse::MAX_SIGNATURES;

fn now_nanos() -> i64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .expect("the clock reads a time between 1677 and 2262")
}

/// Parses an artifact's `ALGORITHM:VALUE` as a Statement would hold it
/// ([`convert::digest_from_text`]).
fn artifact_arg(text: &str) -> Result<(String, String), Status> {
    convert::digest_from_text(text)
        .map_err(|problem| Status::invalid_argument(format!("artifact {problem}")))
}

/// The filters of a query request, checked.
fn filters_of(request: &pb::QueryRequest) -> Result<Filters, Status> {
    let postings: Vec<Posting> = convert::query_keys(request)?
        .into_iter()
        .map(Posting::from)
        .collect();
    if let (Some(since), Some(until)) = (request.since_nanos, request.until_nanos) {
        if since > until {
            return Err(Status::invalid_argument(format!(
                "since ({}) is after until ({})",
                evident_core::registry::time_text(since),
                evident_core::registry::time_text(until)
            )));
        }
    }
    Ok(Filters {
        postings,
        since: request.since_nanos,
        until: request.until_nanos,
        newest_first: request.newest_first,
    })
}

/// Parses `NAME` or `NAME@VERSION`.
fn policy_arg(text: &str) -> Result<(String, Option<u64>), Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument(
            "name the policy: NAME or NAME@VERSION",
        ));
    }
    match text.split_once('@') {
        None => Ok((text.to_owned(), None)),
        Some((name, version)) => {
            version
                .parse()
                .map(|v| (name.to_owned(), Some(v)))
                .map_err(|_| {
                    Status::invalid_argument(format!("policy version {version:?} is not a number"))
                })
        }
    }
}

/// The one mapping from a ledger error to a gRPC status.
pub(crate) fn status(e: LedgerError) -> Status {
    let message = e.to_string();
    match e {
        LedgerError::Store(_)
        | LedgerError::Failed { .. }
        | LedgerError::ShuttingDown
        | LedgerError::Unavailable(_) => Status::unavailable(message),
        LedgerError::Relayed { code, details, .. } => {
            Status::with_details(tonic::Code::from_i32(code), message, details.into())
        }
        LedgerError::Damaged(_) | LedgerError::Missing(_) | LedgerError::Undecodable { .. } => {
            Status::data_loss(message)
        }
        LedgerError::NoEntry { .. }
        | LedgerError::NoLeafHash(_)
        | LedgerError::NoRelease { .. } => Status::not_found(message),
        LedgerError::BeyondLog { .. }
        | LedgerError::NotInTree { .. }
        | LedgerError::NoConsistency { .. }
        | LedgerError::RangeBeyondLog { .. } => Status::failed_precondition(message),
        LedgerError::EmptyRange { .. } | LedgerError::Cursor(_) => {
            Status::invalid_argument(message)
        }
        // Counted as a verification failure where it was found (the sequencer).
        LedgerError::Refused(refusal) => crate::api::reason::refused(&refusal),
    }
}

/// The entry a selector names, as an index.
fn select(ledger: &Ledger, selector: Option<pb::EntrySelector>) -> Result<u64, Status> {
    match convert::selector_from_proto(selector)? {
        Selector::Index(index) => Ok(index),
        Selector::LeafHash(hash) => ledger.index_of_leaf(&hash).map_err(status),
    }
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let admitted = self.admit(&request, Needs::Role(Role::Auditor), "query the log")?;
        let request = request.into_inner();
        let filters = filters_of(&request)?;
        let page_size = match request.page_size {
            0 => crate::query::DEFAULT_PAGE,
            n if n as usize > crate::query::MAX_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is above the limit of {}",
                    crate::query::MAX_PAGE
                )));
            }
            n => n as usize,
        };
        if request.prove_complete && filters.postings.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "prove_complete needs exactly one of subject_digest, subject_name, \
                 predicate_type, signer, role, kind and release (a time range may be \
                 added); the query has {}",
                filters.postings.len()
            )));
        }
        let ledger = self.ledger()?.clone();
        tokio::task::spawn_blocking(move || {
            // The slot stays taken while the work runs, even if the caller gave up.
            let _admitted = admitted;
            let cursor = (!request.cursor.is_empty()).then_some(request.cursor.as_str());
            let (page, published) = ledger.query(&filters, cursor, page_size).map_err(status)?;
            // The whole answer's proof, on the first page: at the page's size, which is the
            // published checkpoint's.
            let index_proof = match (request.prove_complete, cursor, filters.postings.first()) {
                (true, None, Some(posting)) => Some(
                    ledger
                        .prove_answer(&published, posting, filters.since, filters.until)
                        .map_err(|e| match e {
                            crate::ledger::ProveError::Refused(why) => {
                                Status::failed_precondition(why)
                            }
                            crate::ledger::ProveError::Ledger(e) => status(e),
                        })?,
                ),
                _ => None,
            };
            let mut results = Vec::with_capacity(page.indexes.len());
            let mut next_cursor = page.next.map(|c| c.encode()).unwrap_or_default();
            let mut bytes = 0;
            for &index in &page.indexes {
                // Entries make a page heavy: end it at about MAX_PAGE_BYTES, with a cursor.
                if bytes >= MAX_PAGE_BYTES {
                    next_cursor = Cursor::new(page.size, index, &filters).encode();
                    break;
                }
                let (record_bytes, signers) = ledger.entry_facts(index).map_err(status)?;
                let record = LeafRecord::decode(&record_bytes).map_err(|e| {
                    Status::data_loss(format!("entry {index} does not decode: {e}"))
                })?;
                let mut result = pb::QueryResult {
                    signers,
                    ..pb::QueryResult::default()
                };
                convert::set_log_entry(
                    &mut result,
                    &LogEntry::of(&record, merkle::leaf_hash(&record_bytes)),
                );
                if let Ok(statement) = Statement::from_envelope(record.envelope()) {
                    result.predicate_type = statement.predicate_type.clone();
                    result.subjects = statement
                        .subjects
                        .iter()
                        .map(|s| pb::Subject {
                            name: s.name.clone(),
                            digests: s
                                .digests
                                .iter()
                                .map(|(a, v)| format!("{}:{v}", a.as_str()))
                                .collect(),
                        })
                        .collect();
                }
                if request.include_proofs {
                    result.inclusion_proof = Some(convert::inclusion_proof_to_proto(
                        index,
                        page.size,
                        &ledger.inclusion_proof(index, page.size).map_err(status)?,
                    ));
                }
                if request.include_entries {
                    bytes += record_bytes.len();
                    result.leaf_record = record_bytes;
                }
                results.push(result);
            }
            Ok(Response::new(pb::QueryResponse {
                results,
                next_cursor,
                tree_size: page.size,
                checkpoint: published.note.clone(),
                index_proof: index_proof.map(|a| convert::answer_proof_to_proto(&a.proof)),
            }))
        })
        .await
        .map_err(|e| Status::internal(format!("the query failed: {e}")))?
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let admitted = self.admit(&request, Needs::Role(Role::Auditor), "read entries")?;
        let request = request.into_inner();
        let ledger = self.ledger()?.clone();
        tokio::task::spawn_blocking(move || {
            // The slot stays taken while the work runs, even if the caller gave up.
            let _admitted = admitted;
            let (leaf_records, published) = ledger
                .entries(request.start, request.end, 1000, MAX_PAGE_BYTES)
                .map_err(status)?;
            Ok(Response::new(pb::GetEntriesResponse {
                leaf_records,
                checkpoint: published.note.clone(),
            }))
        })
        .await
        .map_err(|e| Status::internal(format!("reading entries failed: {e}")))?
    }

    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let wait_for_witnesses = request.get_ref().wait_for_witnesses;
        if wait_for_witnesses {
            self.no_witnesses()?;
        }
        let answer: Answer = async {
            let payload_type = request
                .get_ref()
                .envelope
                .as_ref()
                .map(|e| e.payload_type.as_str())
                .unwrap_or(if request.get_ref().sigstore_bundle.is_empty() {
                    ""
                } else {
                    evident_core::dsse::IN_TOTO_PAYLOAD_TYPE
                });
            let (needs, what) = submit_needs(payload_type);
            // Held until the envelope is checked.
            let admitted = self.admit(&request, needs, what)?;
            let request = request.into_inner();
            let envelope = self.precheck(convert::submitted_envelope(
                request.envelope,
                &request.sigstore_bundle,
            )?)?;
            // A typical envelope's check (one signature, a few KiB of Statement) takes tens
            // of microseconds: done here, it costs less than a hand-off to the blocking
            // pool. Larger ones go to the pool, so that no caller can hold an async worker
            // for long.
            // A Sigstore bundle's certificate chain, timestamps and log entries cost more.
            let checked = if envelope.signatures.len() <= INLINE_CHECK_SIGNATURES
                && envelope.payload.len() <= INLINE_CHECK_BYTES
                && envelope.sigstore.is_none()
            {
                let checked = self.check(envelope, None);
                drop(admitted);
                checked?
            } else {
                let this = self.clone();
                tokio::task::spawn_blocking(move || {
                    // The slot stays taken while the check runs, even if the caller gave up.
                    let _admitted = admitted;
                    this.check(envelope, None)
                })
                .await
                .map_err(|e| Status::internal(format!("checking the envelope failed: {e}")))??
            };
            let receipt = self.sequence(checked).await?;
            if wait_for_witnesses {
                self.witnessed_receipt(receipt).await
            } else {
                Ok(receipt)
            }
        }
        .await;
        count_submission(&answer);
        answer.map(|receipt| {
            Response::new(pb::SubmitResponse {
                receipt: Some(receipt),
            })
        })
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        let what = "submit entries";
        let principal = self
            .auth
            .check(&request, Needs::Either(Role::Submitter, Role::Admin), what)
            .inspect_err(|refused| count_submission(&Err(refused.clone())))?;
        // Held until every envelope is answered.
        let _admitted = self
            .limiter
            .admit(&principal.name)
            .inspect_err(|refused| count_submission(&Err(refused.clone())))?;
        let envelopes = request.into_inner().envelopes;
        if envelopes.len() > crate::limits::MAX_BATCH_ENVELOPES {
            let refused = too_many_envelopes(envelopes.len());
            count_submission(&Err(refused.clone()));
            return Err(refused);
        }
        self.ledger()
            .inspect_err(|refused| count_submission(&Err(refused.clone())))?;
        let results = self
            .submit_many(&principal, envelopes, true)
            .await
            .into_iter()
            .map(result_to_proto)
            .collect();
        Ok(Response::new(pb::SubmitBatchResponse { results }))
    }

    type SubmitStreamStream = AnswerStream;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<pb::SubmitStreamRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        use tokio_stream::StreamExt as _;
        let what = "submit entries";
        let principal = self
            .auth
            .check(&request, Needs::Either(Role::Submitter, Role::Admin), what)
            .inspect_err(|refused| count_submission(&Err(refused.clone())))?;
        // Held until the stream is done: one slot, however many envelopes it carries.
        let admitted = self
            .limiter
            .admit(&principal.name)
            .inspect_err(|refused| count_submission(&Err(refused.clone())))?;
        self.ledger()
            .inspect_err(|refused| count_submission(&Err(refused.clone())))?;
        let (answers, out) = tokio::sync::mpsc::channel(crate::limits::MAX_STREAM_IN_FLIGHT + 1);
        let this = self.clone();
        tokio::spawn(this.run_stream(principal, admitted, request.into_inner(), answers));
        // An answer's place in the window is freed once tonic takes it to send.
        let out = tokio_stream::wrappers::ReceiverStream::new(out).map(|(answer, _permit)| answer);
        Ok(Response::new(Box::pin(out)))
    }

    async fn list_signers(
        &self,
        request: Request<pb::ListSignersRequest>,
    ) -> Result<Response<pb::ListSignersResponse>, Status> {
        let _admitted = self.admit(
            &request,
            Needs::Role(Role::Auditor),
            "list the trust registry",
        )?;
        let request = request.into_inner();
        let token = Token::parse(&request.page_token, List::Signers)?;
        let ledger = self.ledger()?.clone();
        // One checkpoint for the whole answer: its size and its registry go together.
        let published = ledger.published();
        let size = published.checkpoint.size;
        let as_of_registry = match (token, request.as_of_index, request.as_of_time_nanos) {
            // Later pages list the registry the first one did.
            (Some(token), _, _) if token.as_of > size => {
                return Err(Status::invalid_argument(format!(
                    "page_token names a registry beyond the log's {size} entries: pass the \
                     previous page's next_page_token unchanged"
                )));
            }
            (Some(token), _, _) if token.as_of == size => None,
            (Some(token), _, _) => Some((Some(token.as_of), None)),
            (None, Some(_), Some(_)) => {
                return Err(Status::invalid_argument(
                    "give as_of_index or as_of_time_nanos, not both",
                ));
            }
            (None, None, None) => None,
            (None, Some(index), None) if index > size => {
                return Err(Status::failed_precondition(format!(
                    "as_of_index {index} is beyond the log's {size} entries"
                )));
            }
            (None, index, time) => Some((index, time)),
        };
        let (registry, as_of) = match as_of_registry {
            None => (published.registry.clone(), size),
            // Replaying reads the store and verifies signatures: off the async workers.
            Some((index, time)) => tokio::task::spawn_blocking(move || match (index, time) {
                (Some(index), _) => ledger
                    .registry_as_of(index)
                    .map(|r| (std::sync::Arc::new(r), index)),
                (None, time) => ledger
                    .registry_as_of_time(time.unwrap_or(i64::MAX))
                    .map(|(r, end)| (std::sync::Arc::new(r), end)),
            })
            .await
            .map_err(|e| Status::internal(format!("reading the registry failed: {e}")))?
            .map_err(status)?,
        };
        let (signers, next_page_token) = paging::page(
            registry.signer_keys().iter().collect(),
            List::Signers,
            as_of,
            token.map_or(0, |t| t.offset),
            paging::page_size(request.page_size),
        )?;
        Ok(Response::new(pb::ListSignersResponse {
            admins: registry
                .admins()
                .iter()
                .map(convert::admin_to_proto)
                .collect(),
            threshold: u32::try_from(registry.threshold()).unwrap_or(u32::MAX),
            signers: signers.into_iter().map(convert::signer_to_proto).collect(),
            as_of_index: as_of,
            next_page_token,
            sigstore_roots: registry
                .sigstore_roots()
                .iter()
                .map(|(name, root)| pb::SigstoreRoot {
                    name: name.clone(),
                    sha256: root.digest().as_bytes().to_vec(),
                })
                .collect(),
        }))
    }

    async fn get_signer_history(
        &self,
        request: Request<pb::GetSignerHistoryRequest>,
    ) -> Result<Response<pb::GetSignerHistoryResponse>, Status> {
        let _admitted = self.admit(
            &request,
            Needs::Role(Role::Auditor),
            "read the trust registry",
        )?;
        let identity = request.into_inner().identity;
        let registry = self.ledger()?.registry();
        let events: Vec<pb::RegistryEvent> = registry
            .history(&identity)
            .into_iter()
            .map(convert::event_to_proto)
            .collect();
        if events.is_empty() {
            return Err(Status::not_found(format!(
                "no registry entry names {identity:?}"
            )));
        }
        Ok(Response::new(pb::GetSignerHistoryResponse {
            events,
            keys: registry
                .signer_keys()
                .iter()
                .filter(|k| k.identity == identity)
                .map(convert::signer_to_proto)
                .collect(),
        }))
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let _admitted = self.admit(&request, Needs::Role(Role::Auditor), "list policies")?;
        let request = request.into_inner();
        let token = Token::parse(&request.page_token, List::Policies)?;
        let ledger = self.ledger()?;
        let size = ledger.published().checkpoint.size;
        // Later pages list the versions the first one did: those below its log size.
        let as_of = match token {
            Some(token) if token.as_of > size => {
                return Err(Status::invalid_argument(format!(
                    "page_token names a log of {} entries, beyond its {size}: pass the \
                     previous page's next_page_token unchanged",
                    token.as_of
                )));
            }
            Some(token) => token.as_of,
            None => size,
        };
        let policies = ledger
            .policies()
            .map_err(status)?
            .into_iter()
            .filter(|(_, _, index)| *index < as_of)
            .collect();
        let (policies, next_page_token) = paging::page(
            policies,
            List::Policies,
            as_of,
            token.map_or(0, |t| t.offset),
            paging::page_size(request.page_size),
        )?;
        Ok(Response::new(pb::ListPoliciesResponse {
            policies: policies
                .into_iter()
                .map(|(name, version, index)| pb::PolicyVersion {
                    name,
                    version,
                    index,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let admitted = self.admit(&request, Needs::Role(Role::Auditor), "read policies")?;
        let request = request.into_inner();
        let ledger = self.ledger()?.clone();
        // Reads the policy index and replays the registry as of the entry: off the async
        // workers.
        tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            let found = ledger
                .policies()
                .map_err(status)?
                .into_iter()
                .filter(|(name, version, _)| {
                    *name == request.name && request.version.is_none_or(|v| v == *version)
                })
                .max_by_key(|(_, version, _)| *version);
            let Some((name, version, index)) = found else {
                return Err(Status::not_found(match request.version {
                    Some(v) => format!("policy {:?}@{v} is not in the log", request.name),
                    None => format!("no policy named {:?} is in the log", request.name),
                }));
            };
            let bytes = ledger.entry(index).map_err(status)?;
            let record = LeafRecord::decode(&bytes).map_err(|e| {
                Status::unavailable(format!(
                    "storage failure: entry {index} does not decode: {e}"
                ))
            })?;
            let signed_by = ledger
                .registry_as_of(index)
                .map_err(status)?
                .check_admin_signatures(record.envelope())
                .unwrap_or_default();
            Ok(Response::new(pb::GetPolicyResponse {
                name,
                version,
                index,
                integrated_time_nanos: record.integrated_time_nanos(),
                document: String::from_utf8_lossy(&record.envelope().payload).into_owned(),
                signed_by,
            }))
        })
        .await
        .map_err(|e| Status::internal(format!("reading the policy failed: {e}")))?
    }

    async fn get_release_evidence(
        &self,
        request: Request<pb::GetReleaseEvidenceRequest>,
    ) -> Result<Response<pb::GetReleaseEvidenceResponse>, Status> {
        let admitted = self.admit(
            &request,
            Needs::Role(Role::Auditor),
            "read release evidence",
        )?;
        let request = request.into_inner();
        let (asked, artifacts) = self.artifacts_of(&request.artifact, &request.release)?;
        let ledger = self.ledger()?.clone();
        let at = if request.witnessed {
            self.no_witnesses()?;
            let witnessed = ledger.witnessed().ok_or_else(|| {
                Status::unavailable(
                    "no checkpoint has been cosigned by enough witnesses yet; retry shortly",
                )
            })?;
            Some((witnessed.note.clone(), witnessed.checkpoint.clone()))
        } else {
            None
        };
        let bundle = tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            ledger.release_bundle_at(asked, &artifacts, at)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        Ok(Response::new(pb::GetReleaseEvidenceResponse {
            bundle_json: bundle.to_json(),
        }))
    }

    async fn verify_release(
        &self,
        request: Request<pb::VerifyReleaseRequest>,
    ) -> Result<Response<pb::VerifyReleaseResponse>, Status> {
        let admitted = self.admit(&request, Needs::Role(Role::Auditor), "verify releases")?;
        let request = request.into_inner();
        let (asked, artifacts) = self.artifacts_of(&request.artifact, &request.release)?;
        let (name, version) = policy_arg(&request.policy)?;
        let ledger = self.ledger()?.clone();
        let report = tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            let verified_at = |at| {
                let bundle = ledger
                    .release_bundle_at(asked.clone(), &artifacts, at)
                    .map_err(status)?;
                // The server checks its own bundle exactly as an offline verifier would.
                bundle
                    .verify(ledger.verifier(), ledger.genesis_document())
                    .map_err(|e| {
                        Status::internal(format!("the server's own bundle does not verify: {e}"))
                    })
            };
            let mut verified = verified_at(None)?;
            // A policy that requires witnesses is decided at the latest witnessed checkpoint.
            let wants = verified
                .policy(&name, version)
                .is_ok_and(|p| p.witnesses.is_some());
            if let (true, Some(witnessed)) = (wants, ledger.witnessed()) {
                verified =
                    verified_at(Some((witnessed.note.clone(), witnessed.checkpoint.clone())))?;
            }
            let policy = verified
                .policy(&name, version)
                .map_err(|e| Status::not_found(e.to_string()))?;
            // Evaluate what was asked: the artifact, or the artifacts that release
            // attestations by the policy's release signers declare.
            verified
                .decide(&asked, policy, now_nanos())
                .map_err(|e| Status::failed_precondition(e.to_string()))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::VerifyReleaseResponse {
            allowed: report.allowed,
            report_json: serde_json::to_string_pretty(&report).expect("a report serializes"),
        }))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        let _admitted = self.admit(&request, Needs::Role(Role::Auditor), "read entries")?;
        let request = request.into_inner();
        let index = select(self.ledger()?, request.entry)?;
        let bytes = self.ledger()?.entry(index).map_err(status)?;
        let record = LeafRecord::decode(&bytes).map_err(|e| {
            Status::unavailable(format!(
                "storage failure: entry {index} does not decode: {e}"
            ))
        })?;
        let leaf_hash = merkle::leaf_hash(&bytes);
        let (proof, checkpoint) = match request.proof_tree_size {
            None => (None, String::new()),
            Some(requested) => {
                let (size, published) = self.ledger()?.tree_size(requested).map_err(status)?;
                let hashes = self
                    .ledger()?
                    .inclusion_proof(index, size)
                    .map_err(status)?;
                let checkpoint = self.note_at(size, &published);
                (
                    Some(convert::inclusion_proof_to_proto(index, size, &hashes)),
                    checkpoint,
                )
            }
        };
        let mut answer = pb::GetEntryResponse {
            previous_leaf_hash: record.previous_leaf_hash().as_bytes().to_vec(),
            inclusion_proof: proof,
            checkpoint,
            ..pb::GetEntryResponse::default()
        };
        convert::set_log_entry(&mut answer, &LogEntry::of(&record, leaf_hash));
        answer.envelope = Some(convert::envelope_to_proto(record.into_envelope()));
        answer.leaf_record = bytes;
        Ok(Response::new(answer))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let _admitted = self.admit(&request, Needs::AnyRole, "read checkpoints")?;
        let ledger = self.ledger()?;
        if request.get_ref().witnessed {
            self.no_witnesses()?;
            let witnessed = ledger.witnessed().ok_or_else(|| {
                Status::unavailable(
                    "no checkpoint has been cosigned by enough witnesses yet: the witnesses \
                     are slow or down (see evident_witness_failures_total); retry shortly",
                )
            })?;
            return Ok(Response::new(pb::GetCheckpointResponse {
                checkpoint: witnessed.note.clone(),
            }));
        }
        let published = ledger.published();
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: self.note_at(published.checkpoint.size, &published),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let _admitted = self.admit(&request, Needs::AnyRole, "read proofs")?;
        let request = request.into_inner();
        let index = select(self.ledger()?, request.entry)?;
        let (size, published) = self
            .ledger()?
            .tree_size(request.tree_size)
            .map_err(status)?;
        if index >= published.checkpoint.size {
            return Err(Status::not_found(format!(
                "entry {index} does not exist: the log has {} entries",
                published.checkpoint.size
            )));
        }
        let hashes = self
            .ledger()?
            .inclusion_proof(index, size)
            .map_err(status)?;
        let leaf_hash = self.ledger()?.leaf_hash(index).map_err(status)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            proof: Some(convert::inclusion_proof_to_proto(index, size, &hashes)),
            leaf_hash: leaf_hash.as_bytes().to_vec(),
            // A checkpoint only proves a proof made at its own size.
            checkpoint: self.note_at(size, &published),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let _admitted = self.admit(&request, Needs::AnyRole, "read proofs")?;
        let request = request.into_inner();
        let (new, published) = self.ledger()?.tree_size(request.new_size).map_err(status)?;
        let hashes = self
            .ledger()?
            .consistency_proof(request.old_size, new)
            .map_err(status)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            proof: Some(pb::ConsistencyProof {
                old_size: request.old_size,
                new_size: new,
                hashes: convert::hashes_to_proto(&hashes),
            }),
            checkpoint: published.note.clone(),
        }))
    }
}
