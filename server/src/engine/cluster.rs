//! Several instances on one PostgreSQL database: exactly one sequences, the others follow.
//!
//! - **The lease.** A row in the database names the instance that sequences and its fencing
//!   term ([`PgLog::acquire_lease`]). The holder renews it every third of its duration;
//!   every batch's transaction checks it, so a holder that was paused or cut off past its
//!   lease can never write or sign after another took over. A follower tries to take an
//!   expired lease every quarter of its duration, checks the log's tail against the last
//!   signed checkpoint (the start-up check), and starts a sequencer ([`Ledger::lead`]).
//! - **Submissions on a follower** are checked there (signatures, authorization), queued in
//!   the database ([`PgLog::enqueue`]) and taken by the sequencer's pump, which checks each
//!   again and hands it to the sequencer; the batch records each queued submission's outcome
//!   in its own transaction. The follower ([`Forwarder`]) waits for the outcome and answers
//!   with the receipt once a checkpoint covering the entry is published.
//! - **Reads on a follower** come from the database, bounded by the latest checkpoint it
//!   stored; the follower refreshes it when the sequencer announces one (LISTEN/NOTIFY)
//!   and twice a second.
//! - **The database unreachable**: health says NOT_SERVING and submissions are answered
//!   UNAVAILABLE until it answers again; connections are made again on their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evident_core::dsse::Envelope;
use evident_core::kinds::{self, Refusal};
use evident_core::registry::Registry;
use tokio::sync::{Notify, oneshot};

use crate::check::{self, Tail};
use crate::config::StartupCheck;
use crate::ledger::{BatchLimits, Ledger, LedgerError, SequencerHandle};
use crate::metrics::METRICS;
use crate::storage::postgres::{Event, PgLog, PgTarget};
use crate::storage::{Outcome, StoreError};
use crate::store::Store;

/// How long a follower waits for the sequencer to settle a submission it queued.
pub const OUTCOME_WAIT: Duration = Duration::from_secs(30);

/// Entries a takeover's check replays: the last batches of the sequencer it replaces. A
/// batch and its index rows are one transaction, so the indexes cannot lag the log; the
/// check holds the tail against the last signed checkpoint and rebuilds the sequencer's
/// state, and failover does not wait for a replay of `startup_tail_entries`.
pub const TAKEOVER_TAIL: u64 = 512;

/// Queued submissions the pump takes at once.
const TAKE: usize = 256;

/// Outcomes nobody collected (their submitter stopped waiting, or stopped) are removed after
/// this long.
const OUTCOME_KEEP: Duration = Duration::from_secs(600);

/// Submissions a forwarder queues in one transaction at most.
const ENQUEUE: usize = 256;

/// A queued submission's outcome, with its receipt when the checkpoint this instance
/// follows already covered it when the outcome was collected.
type Settled = (
    Outcome,
    Option<Result<evident_core::receipt::Receipt, LedgerError>>,
);

/// A submission on its way into the database's queue, and where its place is answered.
type Enqueue = (Vec<u8>, oneshot::Sender<Result<u64, String>>);

/// A follower's side of a submission: queued in the database, waited for until the
/// sequencer records its outcome. Submissions that arrive together are queued together,
/// in one transaction, by the forwarder's own thread.
pub struct Forwarder {
    log: Arc<PgLog>,
    instance: String,
    pending: Mutex<HashMap<u64, oneshot::Sender<Settled>>>,
    enqueue: Mutex<std::sync::mpsc::Sender<Enqueue>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// A storage failure on the way to the sequencer, in words for the submitter.
fn unreachable(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable(format!(
        "the submission could not be handed to the sequencer: {e}; it may or may not be \
         logged: resubmit, and if it was, the answer is its original receipt"
    ))
}

impl Forwarder {
    /// A forwarder for this instance (`instance` names it in the queue).
    pub fn new(log: Arc<PgLog>, instance: &str) -> Forwarder {
        let (enqueue, inbox) = std::sync::mpsc::channel::<Enqueue>();
        let (queue, by) = (log.clone(), instance.to_owned());
        // Ends when the forwarder is dropped (its sender with it).
        let spawned = std::thread::Builder::new()
            .name("evident-enqueue".into())
            .spawn(move || {
                while let Ok(first) = inbox.recv() {
                    let mut group = vec![first];
                    while group.len() < ENQUEUE {
                        match inbox.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let (envelopes, replies): (Vec<Vec<u8>>, Vec<_>) = group.into_iter().unzip();
                    match queue.enqueue_all(envelopes, &by) {
                        Ok(ids) => {
                            for (reply, id) in replies.into_iter().zip(ids) {
                                let _ = reply.send(Ok(id));
                            }
                        }
                        Err(e) => {
                            let why = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(why.clone()));
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // Every submission then answers that it could not be handed over.
            tracing::error!(error = %e, "starting the thread that queues submissions failed");
        }
        Forwarder {
            log,
            instance: instance.to_owned(),
            pending: Mutex::new(HashMap::new()),
            enqueue: Mutex::new(enqueue),
        }
    }

    /// Queues a checked envelope for the sequencer and waits for its outcome: its index,
    /// whether it was already logged and, when it could be made with the outcome, its
    /// receipt; or the sequencer's refusal.
    pub async fn submit(
        &self,
        envelope: &Envelope,
    ) -> Result<
        (
            u64,
            bool,
            Option<Result<evident_core::receipt::Receipt, LedgerError>>,
        ),
        LedgerError,
    > {
        let bytes = evident_core::record::envelope_to_bytes(envelope);
        let (tx, rx) = oneshot::channel();
        let (placed, place) = oneshot::channel();
        let handed = self
            .enqueue
            .lock()
            .map(|queue| queue.send((bytes, placed)).is_ok())
            .unwrap_or(false);
        if !handed {
            return Err(unreachable("this instance's queueing thread stopped"));
        }
        let id = place
            .await
            .map_err(|_| LedgerError::ShuttingDown)?
            .map_err(unreachable)?;
        self.pending
            .lock()
            .expect("the pending lock is never held across a panic")
            .insert(id, tx);
        match tokio::time::timeout(OUTCOME_WAIT, rx).await {
            Ok(Ok((Outcome::Logged { index, duplicate }, receipt))) => {
                Ok((index, duplicate, receipt))
            }
            Ok(Ok((
                Outcome::Refused {
                    code,
                    message,
                    details,
                },
                _,
            ))) => Err(LedgerError::Relayed {
                code,
                message,
                details,
            }),
            Ok(Err(_)) => Err(LedgerError::ShuttingDown),
            Err(_) => {
                self.pending
                    .lock()
                    .expect("the pending lock is never held across a panic")
                    .remove(&id);
                let log = self.log.clone();
                let withdrawn = tokio::task::spawn_blocking(move || log.withdraw(id)).await;
                let secs = OUTCOME_WAIT.as_secs();
                Err(LedgerError::Unavailable(match withdrawn {
                    Ok(Ok(true)) => format!(
                        "no sequencer took the submission within {secs} s (no instance holds \
                         the lease? see evident_sequencer on each); it was withdrawn and will \
                         not be logged: retry"
                    ),
                    _ => format!(
                        "a sequencer took the submission but did not settle it within {secs} \
                         s; it may still be logged: resubmit, and if it was, the answer is its \
                         original receipt"
                    ),
                }))
            }
        }
    }

    /// Hands the outcomes recorded for the submissions waiting here to their submitters,
    /// with the receipts of those the checkpoint `ledger` publishes covers, read together.
    /// Blocking.
    pub fn collect(&self, ledger: &Ledger) -> Result<(), StoreError> {
        let outcomes = self.take()?;
        self.deliver(outcomes, ledger);
        Ok(())
    }

    /// The outcomes recorded for the submissions waiting here, taken from the database.
    /// Blocking.
    fn take(&self) -> Result<Vec<(u64, Outcome)>, StoreError> {
        let ids: Vec<u64> = self
            .pending
            .lock()
            .expect("the pending lock is never held across a panic")
            .keys()
            .copied()
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.log.take_outcomes(&ids)
    }

    /// Hands `outcomes` to their submitters, with the receipts of those the checkpoint
    /// `ledger` publishes covers, read together. Blocking.
    fn deliver(&self, outcomes: Vec<(u64, Outcome)>, ledger: &Ledger) {
        if outcomes.is_empty() {
            return;
        }
        let logged: Vec<u64> = outcomes
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                Outcome::Logged { index, .. } => Some(*index),
                Outcome::Refused { .. } => None,
            })
            .collect();
        let mut receipts = ledger.receipts(&logged).into_iter();
        for (id, outcome) in outcomes {
            let receipt = match outcome {
                Outcome::Logged { .. } => receipts.next().flatten(),
                Outcome::Refused { .. } => None,
            };
            let waiting = self
                .pending
                .lock()
                .expect("the pending lock is never held across a panic")
                .remove(&id);
            if let Some(tx) = waiting {
                let _ = tx.send((outcome, receipt));
            }
        }
    }
}

/// Tells the health service whether this instance serves.
pub type Serving = Box<
    dyn Fn(bool) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

/// How one instance of several runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This instance's name in the lease, the queue and the logs.
    pub instance: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// The sequencer's group commit.
    pub limits: BatchLimits,
    /// Entries the takeover's tail check replays.
    pub tail_entries: u64,
    /// The database.
    pub target: PgTarget,
}

/// What an instance needs to take over.
#[derive(Debug)]
pub struct Parts {
    /// The store (in the database).
    pub store: Arc<Store>,
    /// Its log: the lease, the queue.
    pub log: Arc<PgLog>,
    /// The ledger this instance serves.
    pub ledger: Ledger,
    /// Its forwarder, for when it follows.
    pub forwarder: Arc<Forwarder>,
    /// The genesis registry, for the tail check.
    pub genesis: Registry,
}

/// The sequencer this instance runs while it holds the lease.
struct Leading {
    sequencer: SequencerHandle,
    term: u64,
    renewed: Instant,
    pump: tokio::task::JoinHandle<()>,
    wake: Arc<Notify>,
}

/// Tries to take the lease and, with it, starts a sequencer: the tail check, then
/// [`Ledger::lead`]. `None` when another instance holds the lease. Blocking.
pub fn take_over(
    parts: &Parts,
    settings: &Settings,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<(SequencerHandle, u64)>, String> {
    let Some(lease) = parts
        .log
        .acquire_lease(&settings.instance, settings.lease)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let started = (|| {
        // The check may outlast the lease: renewed meanwhile, as the sequencer would.
        let (checked, kept) = parts.log.with_lease_renewed(settings.lease, || {
            check::check_store(
                &parts.store,
                parts.ledger.verifier(),
                StartupCheck::Tail,
                settings.tail_entries.min(TAKEOVER_TAIL),
                &parts.genesis,
            )
        });
        let checked = checked.map_err(|e| format!("the tail check refused the log: {e}"))?;
        if !kept {
            return Err("the lease was lost during the tail check".into());
        }
        let check::Checked { tail, registry, .. } = checked;
        lead(parts, settings, runtime, tail, registry)
    })();
    match started {
        Ok(sequencer) => {
            tracing::info!(
                instance = %settings.instance,
                term = lease.term,
                size = lease.size,
                "took the sequencing lease: this instance sequences"
            );
            METRICS.takeover();
            METRICS.sequencing(true, lease.term);
            Ok(Some((sequencer, lease.term)))
        }
        Err(e) => {
            // Someone else may manage; this instance must not hold the lease idle.
            let _ = parts.log.release_lease();
            Err(e)
        }
    }
}

fn lead(
    parts: &Parts,
    settings: &Settings,
    runtime: &tokio::runtime::Handle,
    tail: Tail,
    registry: Registry,
) -> Result<SequencerHandle, String> {
    parts
        .ledger
        .lead(tail, registry, settings.limits, runtime.clone())
        .map_err(|e| format!("starting the sequencer: {e}"))
}

/// The pump: takes what other instances queued and hands it to this instance's sequencer,
/// each checked again here, until this instance stops sequencing.
async fn pump(ledger: Ledger, log: Arc<PgLog>, term: u64, wake: Arc<Notify>) {
    loop {
        let taken = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || log.take_queued(term, 0, TAKE)).await
        };
        let taken = match taken {
            Ok(Ok(taken)) => taken,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading the queue failed; trying again");
                Vec::new()
            }
            Err(_) => return,
        };
        let full = taken.len() == TAKE;
        // Signature checks (a Sigstore chain takes milliseconds) off the async workers, as
        // `Submit` does; the whole take at once.
        let checking = ledger.clone();
        let checked = tokio::task::spawn_blocking(move || {
            taken
                .into_iter()
                .map(
                    |(id, bytes)| match evident_core::record::envelope_from_bytes(&bytes) {
                        Ok(envelope) => {
                            let checked = check_queued(&checking, &envelope);
                            (id, envelope, checked)
                        }
                        Err(e) => {
                            let nothing = Envelope {
                                payload: Vec::new(),
                                payload_type: String::new(),
                                signatures: Vec::new(),
                                sigstore: None,
                            };
                            (id, nothing, Err(Refusal::Unencodable(e)))
                        }
                    },
                )
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(checked) = checked else { return };
        for (id, envelope, checked) in checked {
            if !ledger.sequence_queued(id, envelope, checked).await {
                return;
            }
        }
        if !full {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// The sequencer's own check of a queued envelope, as `Submit` checks one.
fn check_queued(ledger: &Ledger, envelope: &Envelope) -> Result<kinds::Checked, Refusal> {
    let now = chrono::Utc::now()
        .timestamp_nanos_opt()
        .expect("the clock reads a time between 1677 and 2262");
    let kind = kinds::for_payload_type(&envelope.payload_type)?;
    kind.check(&ledger.registry(), envelope, now)
}

/// Runs this instance's part until `stop` says so: renews the lease while it sequences,
/// steps down when it loses it, takes it over when it expires, follows the checkpoints,
/// and reports health (`serving`). `leading`: the sequencer started at start-up with the
/// lease of this term, if this instance took it then.
pub async fn run(
    parts: Parts,
    settings: Settings,
    leading: Option<(SequencerHandle, u64)>,
    serving: Serving,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let runtime = tokio::runtime::Handle::current();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    crate::storage::postgres::listen(&settings.target, events_tx);
    let start_pump = |term: u64| {
        let wake = Arc::new(Notify::new());
        let pump = tokio::spawn(pump(
            parts.ledger.clone(),
            parts.log.clone(),
            term,
            wake.clone(),
        ));
        (pump, wake)
    };
    let mut leading = leading.map(|(sequencer, term)| {
        METRICS.sequencing(true, term);
        let (pump, wake) = start_pump(term);
        Leading {
            sequencer,
            term,
            renewed: Instant::now(),
            pump,
            wake,
        }
    });
    if leading.is_none() {
        METRICS.sequencing(false, 0);
    }
    let mut healthy = true;
    // Health is told only of changes: what else sets it (a shutdown, damage found by the
    // background verification) is not overwritten twice a second.
    let mut reported: Option<bool> = Some(true);
    let mut renew = tokio::time::interval(settings.lease / 3);
    let mut take = tokio::time::interval(settings.lease / 4);
    let mut sweep = tokio::time::interval(OUTCOME_KEEP / 10);
    loop {
        let mut refresh = false;
        // The latest checkpoint note a notification carried, if any: followed without
        // reading it back from the database.
        let mut note: Option<String> = None;
        tokio::select! {
            _ = stop.changed() => break,
            event = events.recv() => match event {
                None => break,
                Some(Event::Down(why)) => {
                    if healthy {
                        tracing::error!(error = %why, "PostgreSQL is unreachable: not serving until it is back");
                    }
                    healthy = false;
                    stop_serving(&serving, &mut reported, &parts, leading.is_none(), format!(
                        "PostgreSQL is unreachable ({why}): nothing can be logged until it is \
                         back; retry"
                    ))
                    .await;
                }
                Some(Event::Queued) => {
                    if let Some(l) = &leading {
                        l.wake.notify_one();
                    }
                }
                Some(Event::Checkpoint(carried)) => {
                    refresh = true;
                    if carried.is_some() {
                        note = carried;
                    }
                }
                Some(Event::Up | Event::Tick) => refresh = true,
            },
            _ = renew.tick(), if leading.is_some() => {
                let Some(l) = leading.as_mut() else { continue };
                let failed = l.sequencer.failure().borrow().clone();
                let kept = match failed {
                    Some(e) => {
                        tracing::warn!(error = %e, "the sequencer stopped: stepping down");
                        false
                    }
                    None => {
                        let log = parts.log.clone();
                        let ttl = settings.lease;
                        match tokio::task::spawn_blocking(move || log.renew_lease(ttl)).await {
                            Ok(Ok(true)) => {
                                l.renewed = Instant::now();
                                true
                            }
                            Ok(Ok(false)) => {
                                tracing::warn!(term = l.term, "the sequencing lease was lost: stepping down");
                                false
                            }
                            Ok(Err(e)) => {
                                // Past its lease, no batch of this instance can commit: stop.
                                let alive = l.renewed.elapsed() < settings.lease;
                                if !alive {
                                    tracing::warn!(error = %e, "the sequencing lease could not be renewed before it expired: stepping down");
                                }
                                alive
                            }
                            Err(_) => false,
                        }
                    }
                };
                if !kept {
                    let down = leading.take().expect("leading");
                    step_down(&parts, down, healthy, false).await;
                    refresh = true;
                }
            }
            _ = take.tick(), if leading.is_none() && healthy => {
                let taken = {
                    let (runtime, settings) = (runtime.clone(), settings.clone());
                    let parts = Parts {
                        store: parts.store.clone(),
                        log: parts.log.clone(),
                        ledger: parts.ledger.clone(),
                        forwarder: parts.forwarder.clone(),
                        genesis: parts.genesis.clone(),
                    };
                    tokio::task::spawn_blocking(move || take_over(&parts, &settings, &runtime)).await
                };
                match taken {
                    Ok(Ok(Some((sequencer, term)))) => {
                        let (pump, wake) = start_pump(term);
                        leading = Some(Leading { sequencer, term, renewed: Instant::now(), pump, wake });
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "taking over as sequencer failed"),
                    Err(_) => break,
                }
            }
            _ = sweep.tick(), if leading.is_some() => {
                let log = parts.log.clone();
                let _ = tokio::task::spawn_blocking(move || log.sweep_outcomes(OUTCOME_KEEP)).await;
            }
        }
        // Events that piled up while this loop was busy: one look covers them all.
        while let Ok(event) = events.try_recv() {
            match event {
                Event::Queued => {
                    if let Some(l) = &leading {
                        l.wake.notify_one();
                    }
                }
                Event::Down(_) => {}
                Event::Checkpoint(carried) => {
                    refresh = true;
                    if carried.is_some() {
                        note = carried;
                    }
                }
                Event::Up | Event::Tick => refresh = true,
            }
        }
        if refresh {
            let (ledger, log, forwarder) = (
                parts.ledger.clone(),
                parts.log.clone(),
                parts.forwarder.clone(),
            );
            let sequences = leading.is_some();
            let refreshed = tokio::task::spawn_blocking(move || {
                // The checkpoint first, so that the outcomes collected come with receipts
                // against it; their outcomes taken from the database meanwhile. A refresh
                // that fails must not keep logged submissions from their answers.
                std::thread::scope(|scope| {
                    let taking = scope.spawn(|| forwarder.take());
                    let refreshed = if sequences {
                        Ok(())
                    } else {
                        // A notification can arrive after the table was read for a later
                        // checkpoint: a note older than the one published is stale, not
                        // a rollback, and the table says what is current.
                        let published = ledger.published().checkpoint.size;
                        let size = |note: &str| note.lines().nth(1)?.parse::<u64>().ok();
                        match note.filter(|n| size(n).is_some_and(|s| s >= published)) {
                            Some(note) => Ok(Some(note)),
                            None => log.stored_checkpoint().map_err(LedgerError::from),
                        }
                        .and_then(|note| match note {
                            Some(note) => ledger.refresh(&note).map(drop),
                            None => Ok(()),
                        })
                        // Proving answers as the sequencing instance does: the index at the
                        // published checkpoint, built once if this instance has none yet.
                        .map(|()| ledger.keep_index())
                    };
                    let taken = taking.join().unwrap_or_else(|_| {
                        Err(StoreError::Poisoned("taking outcomes panicked".into()))
                    });
                    let collected = taken.map(|outcomes| forwarder.deliver(outcomes, &ledger));
                    refreshed?;
                    collected?;
                    Ok::<(), LedgerError>(())
                })
            })
            .await;
            match refreshed {
                Ok(Ok(())) => {
                    if !healthy {
                        tracing::info!("PostgreSQL answers again: serving");
                    }
                    healthy = true;
                    if reported != Some(true) {
                        serving(true).await;
                        reported = Some(true);
                    }
                    if leading.is_none() && !parts.ledger.sequences() {
                        parts.ledger.step_down(Ok(parts.forwarder.clone()));
                    }
                }
                Ok(Err(e)) => {
                    if healthy {
                        tracing::error!(error = %e, "following the log failed: not serving until it succeeds");
                    }
                    healthy = false;
                    stop_serving(
                        &serving,
                        &mut reported,
                        &parts,
                        leading.is_none(),
                        format!(
                            "this instance cannot follow the log ({e}); retry on another instance"
                        ),
                    )
                    .await;
                }
                Err(_) => break,
            }
        }
    }
    if let Some(l) = leading.take() {
        step_down(&parts, l, true, true).await;
    }
}

/// Health says NOT_SERVING (once), and a follower refuses submissions with `why`.
async fn stop_serving(
    serving: &Serving,
    reported: &mut Option<bool>,
    parts: &Parts,
    follows: bool,
    why: String,
) {
    if *reported != Some(false) {
        serving(false).await;
        *reported = Some(false);
    }
    if follows {
        parts.ledger.step_down(Err(LedgerError::Unavailable(why)));
    }
}

/// Stops this instance's sequencer: submissions go through the database from now on (or
/// are refused while it is unreachable), the pump stops, the sequencer finishes its
/// queue (any batch after the lease was lost is fenced and answered UNAVAILABLE) and exits.
/// `release`: give the lease up in the database too (a clean stop), so that another
/// instance takes over at once.
async fn step_down(parts: &Parts, leading: Leading, healthy: bool, release: bool) {
    let Leading {
        sequencer, pump, ..
    } = leading;
    parts.ledger.step_down(if healthy {
        Ok(parts.forwarder.clone())
    } else {
        Err(LedgerError::Unavailable(
            "PostgreSQL is unreachable: nothing can be logged until it is back; retry".into(),
        ))
    });
    pump.abort();
    let _ = tokio::task::spawn_blocking(move || sequencer.join()).await;
    if release {
        let log = parts.log.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || log.release_lease()).await {
            tracing::warn!(error = %e, "giving up the lease failed: it expires on its own");
        }
    } else {
        parts.log.drop_lease();
    }
    METRICS.sequencing(false, 0);
}
