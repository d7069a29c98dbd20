//! The sequencer: the log's only writer, in three steps per batch — queue (`collect`: every
//! submission waiting, up to the batch limit), integrate (`integrate`: authorize each at its
//! integrated time, dedupe, give it its index, time and place in the hash chain and the
//! tree) and publish (`publish`: after the store made the batch durable, publish the
//! checkpoint signed over it to readers, answer each submitter).
//!
//! The steps run on two threads, so that the next batch is integrated while the store
//! writes the last one: the sequencer thread queues, integrates and signs each batch and
//! hands it to the writer thread, which makes it durable and publishes it. The hand-over
//! waits for the writer to take the batch, so at most one batch is being written while the
//! next is integrated, and batches are written and published in the order they were
//! integrated. A batch handed over is not in the store yet: until its checkpoint is
//! published, the sequencer dedupes against its entries from memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock, mpsc as handover};
use std::time::Instant;

use evident_core::Hash;
use evident_core::kinds::{self, LogState, Refusal};
use evident_core::merkle::{self, Node};
use evident_core::note::{Checkpoint, Signer};
use evident_core::record::LeafRecord;
use evident_core::registry::Registry;
use tokio::sync::mpsc;

use super::{
    BatchLimits, LedgerError, Published, Submission, build_receipt, failure_of, now_nanos,
    read_record, refused,
};
use crate::check::Tail;
use crate::metrics::METRICS;
use crate::storage::Outcome;
use crate::store::{CachedSource, Indexed, NewEntry, Store};

/// What the sequencer did with one submission of a batch.
enum Placed {
    /// Appended: the new record and its leaf hash.
    New(LeafRecord, Hash),
    /// Already in the log at this index.
    Existing(u64),
    /// Refused at the integrated time; nothing was appended.
    Refused(LedgerError),
}

/// Where a submitter waits for its receipt (and whether it was already logged).
type Reply =
    tokio::sync::oneshot::Sender<Result<(evident_core::receipt::Receipt, bool), LedgerError>>;

/// A batch after [`Sequencer::integrate`]: the answers' places, the new entries and tree
/// nodes, the registry the batch leads to, or the failure that stopped it.
struct Integrated {
    replies: Vec<Reply>,
    /// Each submission's place in the database's queue, if another instance queued it.
    queued: Vec<Option<u64>>,
    placed: Vec<Placed>,
    entries: Vec<NewEntry>,
    nodes: Vec<Node>,
    /// The new entries' dedupe keys and indexes.
    keys: HashMap<Hash, u64>,
    /// The registry after the batch, when its registry changes were applied: readers get
    /// this copy with the batch's checkpoint. `None`: the registry did not change.
    registry: Option<Arc<Registry>>,
    error: Option<LedgerError>,
}

impl Integrated {
    /// The outcomes of the submissions other instances queued: recorded in the batch's own
    /// transaction, so that each is either settled with the batch or still queued.
    fn outcomes(&self) -> Vec<(u64, Outcome)> {
        self.queued
            .iter()
            .zip(&self.placed)
            .filter_map(|(queued, place)| {
                let id = (*queued)?;
                let outcome = match place {
                    Placed::New(record, _) => Outcome::Logged {
                        index: record.index(),
                        duplicate: false,
                    },
                    Placed::Existing(index) => Outcome::Logged {
                        index: *index,
                        duplicate: true,
                    },
                    Placed::Refused(e) => {
                        let status = crate::api::service::status(e.clone());
                        Outcome::Refused {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                            details: status.details().to_vec(),
                        }
                    }
                };
                Some((id, outcome))
            })
            .collect()
    }
}

/// The sequencer's half: queues, integrates and signs each batch, then hands it to the
/// [`Writer`].
pub(super) struct Sequencer {
    pub(super) store: Arc<Store>,
    pub(super) signer: Arc<Signer>,
    /// The tail after the last integrated batch, which may not be durable yet.
    pub(super) tail: Tail,
    /// The size of the latest published checkpoint: the batches it covers are durable, and
    /// the store answers their dedupe keys.
    pub(super) published_size: Arc<tokio::sync::watch::Sender<u64>>,
    /// The registry, the policies' latest versions and the running digests after the last
    /// integrated entry. Integration changes it in place: a batch that does not become
    /// durable stops the sequencer, and a restart recovers the state from the log.
    pub(super) state: LogState,
    pub(super) rx: mpsc::Receiver<Submission>,
    pub(super) limits: BatchLimits,
    pub(super) runtime: tokio::runtime::Handle,
    /// Told of the storage failure that stopped the sequencer (by the writer, which meets
    /// it first).
    pub(super) failed: Arc<tokio::sync::watch::Sender<Option<LedgerError>>>,
    /// The dedupe keys of the batches handed to the writer and not yet published, each
    /// with the tree size after it: their entries are not in the store yet, and the same
    /// content submitted again is answered with them.
    pub(super) in_flight: VecDeque<(u64, HashMap<Hash, u64>)>,
    /// The verifiable index after the last integrated entry.
    pub(super) index: evident_core::vindex::IndexBuilder,
}

/// The writer's half: makes each batch durable and publishes it, in the order the
/// [`Sequencer`] handed them over.
pub(super) struct Writer {
    pub(super) store: Arc<Store>,
    pub(super) published: Arc<RwLock<Arc<Published>>>,
    pub(super) published_size: Arc<tokio::sync::watch::Sender<u64>>,
    /// Told of the storage failure that stopped the sequencer.
    pub(super) failed: Arc<tokio::sync::watch::Sender<Option<LedgerError>>>,
}

/// An integrated batch with the checkpoint signed over it, handed from the sequencer to
/// the writer.
struct Job {
    batch: Integrated,
    checkpoint: Checkpoint,
    note: Result<String, LedgerError>,
    /// The outcomes of the submissions other instances queued, written with the batch.
    outcomes: Vec<(u64, Outcome)>,
    /// The nodes of the tree's right edge before the batch: with the batch's own nodes,
    /// all its new entries' proofs read.
    edge: Vec<Node>,
    /// When the sequencer started integrating the batch.
    started: Instant,
    /// How long integrating it took, in microseconds.
    integrated_us: u64,
    /// How many submissions the batch answers.
    submissions: usize,
    /// The verifiable index with the batch.
    view: evident_core::vindex::IndexView,
}

impl Job {
    /// Answers every submission of the batch with `e`: nothing of it is logged.
    fn fail(self, e: &LedgerError) {
        for reply in self.batch.replies {
            let _ = reply.send(Err(e.clone()));
        }
    }
}

/// Starts the sequencer and its writer, each on its own thread; the handle returned is the
/// sequencer's, which joins the writer before it ends: once it is joined, every batch the
/// sequencer took is answered.
pub(super) fn spawn(
    mut sequencer: Sequencer,
    writer: Writer,
) -> Result<std::thread::JoinHandle<()>, LedgerError> {
    // A rendezvous: the hand-over of a batch waits until the writer takes it, that is
    // until the batch before it is written and published.
    let (jobs, inbox) = handover::sync_channel(0);
    let writing = std::thread::Builder::new()
        .name("sequencer-writer".into())
        .spawn(move || writer.run(inbox))
        .map_err(|e| failure_of("starting the sequencer's writer", e))?;
    // Should this fail, `jobs` is dropped with the closure and the writer exits.
    std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || sequencer.run(jobs, writing))
        .map_err(|e| failure_of("starting the sequencer", e))
}

impl Sequencer {
    /// Takes batches until the queue closes and is drained, or the writer fails; then
    /// joins the writer. After a failure, stops taking submissions and answers every one
    /// still queued with it.
    fn run(&mut self, jobs: handover::SyncSender<Job>, writer: std::thread::JoinHandle<()>) {
        let mut failures = self.failed.subscribe();
        loop {
            // Woken by a submission, the queue closing, or the writer failing.
            let rx = &mut self.rx;
            let first = self.runtime.block_on(async {
                tokio::select! {
                    first = rx.recv() => first,
                    _ = failures.wait_for(Option::is_some) => None,
                }
            });
            let Some(first) = first else { break };
            let batch = self.collect(first);
            // The state integration starts from is not durable after a failure: nothing
            // more is integrated.
            let failure = self.failed.borrow().clone();
            if let Some(e) = failure {
                for s in batch {
                    let _ = s.reply.send(Err(e.clone()));
                }
                break;
            }
            let job = self.prepare(batch);
            // A batch that failed here is answered by the writer, after the batches before
            // it, and stops the sequencer.
            let failing = job.batch.error.is_some();
            if let Err(handover::SendError(job)) = jobs.send(job) {
                // The writer stopped on a failure before it took the batch.
                job.fail(&self.stopped());
                break;
            }
            if failing {
                break;
            }
        }
        // The writer finishes the batch it has (if any), then sees the hand-over close.
        drop(jobs);
        if writer.join().is_err() {
            tracing::error!("the sequencer's writer thread panicked");
            self.stopped();
        }
        let failure = self.failed.borrow().clone();
        match failure {
            Some(e) => {
                // Answer everything still queued, then stop taking submissions.
                self.rx.close();
                while let Ok(s) = self.rx.try_recv() {
                    let _ = s.reply.send(Err(e.clone()));
                }
            }
            None => tracing::info!("sequencer stopped: queue closed and drained"),
        }
    }

    /// The failure that stopped the writer. Published if the writer could not (it
    /// panicked), so that health turns NOT_SERVING on it.
    fn stopped(&self) -> LedgerError {
        let failure = self.failed.borrow().clone();
        if let Some(e) = failure {
            return e;
        }
        let e = failure_of(
            "writing a batch",
            std::io::Error::other("the sequencer's writer stopped"),
        );
        self.failed.send_replace(Some(e.clone()));
        e
    }

    /// Everything waiting, up to the batch limit; waits up to `max_delay` for more.
    fn collect(&mut self, first: Submission) -> Vec<Submission> {
        let mut batch = vec![first];
        let deadline = Instant::now() + self.limits.max_delay;
        while batch.len() < self.limits.max_entries {
            match self.rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let next = self
                        .runtime
                        .block_on(tokio::time::timeout(left, self.rx.recv()));
                    match next {
                        Ok(Some(s)) => batch.push(s),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        batch
    }

    /// Integrates a batch and signs the checkpoint over it, for the writer. The sequencer's
    /// tail moves on to the batch's, and its dedupe keys are kept until it is published.
    fn prepare(&mut self, batch: Vec<Submission>) -> Job {
        let started = Instant::now();
        let submissions = batch.len();
        let edge = self.tail.frontier.nodes();
        let (mut integrated, tail) = self.integrate(batch);
        let integrated_us = started.elapsed().as_micros() as u64;
        let outcomes = integrated.outcomes();
        if integrated.error.is_none() {
            for entry in &integrated.entries {
                let e = &entry.indexed;
                self.index.add_entry(e.index, e.leaf_hash, e.kind, &e.facts);
            }
        }
        let view = self.index.view();
        let mut extensions = self.state.digests.extensions();
        extensions.push(evident_core::vindex::extension(&view.root()));
        // Signed now, so that a store that can writes it with the batch (PostgreSQL: in the
        // batch's transaction); shown to nobody before the batch is durable.
        let checkpoint = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size: tail.frontier.size(),
            root: tail.frontier.root(),
            extensions,
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| failure_of("signing a checkpoint", e));
        if let (None, Err(e)) = (&integrated.error, &note) {
            integrated.error = Some(e.clone());
        }
        if integrated.error.is_none() {
            self.tail = tail;
            let keys = std::mem::take(&mut integrated.keys);
            if !keys.is_empty() {
                self.in_flight.push_back((checkpoint.size, keys));
            }
        }
        Job {
            batch: integrated,
            checkpoint,
            note,
            outcomes,
            edge,
            started,
            integrated_us,
            submissions,
            view,
        }
    }

    /// Places each submission of a batch: authorized by the registry after every entry
    /// before it at its integrated time, answered with the entry already logged if it is
    /// one, given its index, time and place in the hash chain and the tree. The sequencer's
    /// registry and policy versions move on as entries are placed; nothing is durable yet.
    /// Returns the batch and the tail it leads to.
    fn integrate(&mut self, batch: Vec<Submission>) -> (Integrated, Tail) {
        let count = batch.len();
        let mut replies = Vec::with_capacity(count);
        let mut queued = Vec::with_capacity(count);
        let mut entries = Vec::with_capacity(count);
        let mut nodes: Vec<Node> = Vec::with_capacity(count * 2);
        let mut placed: Vec<Placed> = Vec::with_capacity(count);
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut frontier = self.tail.frontier.clone();
        let mut last_hash = self.tail.last_leaf_hash;
        let mut last_time = self.tail.last_time_nanos;
        let mut error = None;
        // The batches published since the last batch are durable: the store answers their
        // dedupe keys from now on (before any look-up below starts).
        let durable = *self.published_size.borrow();
        while self
            .in_flight
            .front()
            .is_some_and(|(size, _)| *size <= durable)
        {
            self.in_flight.pop_front();
        }
        let prefetching = Instant::now();
        let known = match self.prefetch_dedupe(&batch) {
            Ok(known) => known,
            Err(e) => {
                error = Some(e);
                HashMap::new()
            }
        };
        tracing::trace!(
            us = prefetching.elapsed().as_micros() as u64,
            keys = known.len(),
            "dedupe keys looked up"
        );
        let registry_changes = self.state.registry.events().len();
        for s in batch {
            replies.push(s.reply);
            queued.push(s.queued);
            if error.is_some() {
                continue;
            }
            let checked = match s.checked {
                Ok(checked) => checked,
                Err(refusal) => {
                    placed.push(Placed::Refused(refused(refusal)));
                    continue;
                }
            };
            let index = frontier.size();
            // Integrated times never go backwards, even if the clock does.
            let time = now_nanos().max(last_time);
            // Who signed, as the state after every entry before this one (including those
            // earlier in this batch) sees them: the signers are part of the dedupe key.
            let kind = checked.kind();
            let rules = kinds::of(kind);
            let facts = match rules.authorize(&self.state, &s.envelope, Some(&checked), time) {
                Ok(facts) => facts,
                Err(refusal) => {
                    placed.push(Placed::Refused(refused(refusal)));
                    continue;
                }
            };
            // The same content by the same keys is answered with the entry already logged
            // (earlier in this batch, in a batch the writer has not published yet, or in
            // the store); looked up before the entry's effect is applied, so a retry of an
            // applied registry change or policy version is not refused as a conflict.
            let digest = facts.dedupe_key(&s.envelope);
            let written = || {
                self.in_flight
                    .iter()
                    .find_map(|(_, keys)| keys.get(&digest))
            };
            let existing = match in_batch.get(&digest).or_else(written) {
                Some(i) => Some(*i),
                None => match known.get(&digest) {
                    Some(found) => *found,
                    None => match self.store.index_of_content(&digest) {
                        Ok(found) => {
                            tracing::trace!("a dedupe key looked up on its own");
                            found
                        }
                        Err(e) => {
                            error = Some(e.into());
                            continue;
                        }
                    },
                },
            };
            if let Some(index) = existing {
                placed.push(Placed::Existing(index));
                continue;
            }
            // The record before the entry's effect: one that cannot be encoded is refused
            // (the service refuses it first) and leaves the state as it was.
            let record = match LeafRecord::new(index, time, last_hash, kind, s.envelope) {
                Ok(r) => r,
                Err(e) => {
                    placed.push(Placed::Refused(refused(Refusal::Unencodable(e))));
                    continue;
                }
            };
            let facts = match rules.apply(&mut self.state, index, time, record.envelope(), facts) {
                Ok(facts) => facts,
                Err(refusal) => {
                    placed.push(Placed::Refused(refused(refusal)));
                    continue;
                }
            };
            let bytes = record.encode();
            let leaf_hash = merkle::leaf_hash(&bytes);
            nodes.extend(frontier.append(leaf_hash));
            entries.push(NewEntry {
                record: bytes,
                indexed: Indexed {
                    index,
                    leaf_hash,
                    dedupe_key: digest,
                    kind,
                    facts,
                },
            });
            in_batch.insert(digest, index);
            rules.record(&mut self.state.digests, &leaf_hash);
            placed.push(Placed::New(record, leaf_hash));
            last_hash = leaf_hash;
            last_time = time;
        }
        let integrated = Integrated {
            replies,
            queued,
            placed,
            entries,
            nodes,
            keys: in_batch,
            registry: (self.state.registry.events().len() != registry_changes)
                .then(|| Arc::new(self.state.registry.clone())),
            error,
        };
        let tail = Tail {
            frontier,
            last_leaf_hash: last_hash,
            last_time_nanos: last_time,
        };
        (integrated, tail)
    }

    /// When the indexes are a database server's: the entries already logged with the dedupe
    /// keys the batch's submissions are expected to have (authorized as the state before
    /// the batch sees them), read in one request instead of one per submission. A
    /// submission whose key turns out otherwise (an earlier entry of the batch changed the
    /// registry) is looked up on its own. Empty for a local index.
    fn prefetch_dedupe(
        &self,
        batch: &[Submission],
    ) -> Result<HashMap<Hash, Option<u64>>, LedgerError> {
        if batch.len() < 2 || !self.store.remote_index() {
            return Ok(HashMap::new());
        }
        let time = now_nanos().max(self.tail.last_time_nanos);
        let keys: Vec<Hash> = batch
            .iter()
            .filter_map(|s| {
                let checked = s.checked.as_ref().ok()?;
                let facts = kinds::of(checked.kind())
                    .authorize(&self.state, &s.envelope, Some(checked), time)
                    .ok()?;
                Some(facts.dedupe_key(&s.envelope))
            })
            .collect();
        let found = self.store.indexes_of_content(&keys)?;
        Ok(keys.into_iter().zip(found).collect())
    }
}

impl Writer {
    /// Writes and publishes the batches handed over, in order, until the sequencer closes
    /// the hand-over. On a failure, stops: the batch is answered with it, and the
    /// sequencer, which can no longer hand a batch over, answers the rest.
    fn run(self, jobs: handover::Receiver<Job>) {
        for job in jobs {
            if let Err(e) = self.commit(job) {
                tracing::error!(error = %e, "storage failure: the sequencer stops and nothing more is acknowledged; health is NOT_SERVING; restart evidentd after fixing the store (it recovers what is durable)");
                return;
            }
        }
    }

    /// One batch: made durable, published.
    fn commit(&self, job: Job) -> Result<(), LedgerError> {
        let Job {
            mut batch,
            checkpoint,
            note,
            outcomes,
            edge,
            started,
            integrated_us,
            submissions,
            view,
        } = job;
        let writing = Instant::now();
        let appended = batch.entries.len();
        let mut stored = false;
        if batch.error.is_none() && (appended > 0 || !outcomes.is_empty()) {
            let entries = std::mem::take(&mut batch.entries);
            match self
                .store
                .append_settling(entries, &batch.nodes, &outcomes, note.as_deref().ok())
            {
                Ok(with_checkpoint) => stored = with_checkpoint,
                Err(e) => batch.error = Some(e.into()),
            }
        }
        let write_us = writing.elapsed().as_micros() as u64;
        // From the start of the batch's integration, including its wait for the batch
        // before it to be written.
        let durable = started.elapsed();
        if batch.error.is_none() && appended > 0 {
            METRICS.batch(appended, durable);
        }
        let size = self.publish(batch, checkpoint, note, stored, edge, view)?;
        tracing::debug!(
            entries = appended,
            submissions,
            size,
            integrated_us,
            write_us,
            durable_us = durable.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// After the store made an integrated batch durable (or failed to): stores the
    /// checkpoint signed over it unless the store wrote it with the batch (`stored`),
    /// publishes it to readers and answers every submitter; returns the new tree size. On a
    /// failure, publishes it and answers everyone with it. `edge`: the nodes of the tree's
    /// right edge before the batch.
    fn publish(
        &self,
        batch: Integrated,
        checkpoint: Checkpoint,
        note: Result<String, LedgerError>,
        stored: bool,
        edge: Vec<Node>,
        view: evident_core::vindex::IndexView,
    ) -> Result<u64, LedgerError> {
        let Integrated {
            replies,
            placed,
            nodes,
            registry,
            error,
            ..
        } = batch;
        // The batch is durable: only now may anyone see a checkpoint that covers it.
        let note = match error {
            Some(e) => Err(e),
            None => note,
        }
        .and_then(|note| {
            if !stored {
                self.store.set_checkpoint(&note)?;
            }
            Ok(note)
        });
        let note = match note {
            Ok(note) => note,
            Err(e) => {
                // Published before anyone is answered: whoever learns of the failure from
                // an answer finds the server already failed.
                self.failed.send_replace(Some(e.clone()));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                return Err(e);
            }
        };
        // Readers share one copy of the registry until a registry entry changes it; a batch
        // that changed it brings the copy taken when it was integrated (the sequencer's
        // may already include the next batch's changes).
        let registry = registry.unwrap_or_else(|| {
            self.published
                .read()
                .expect("the checkpoint lock is never held across a panic")
                .registry
                .clone()
        });
        let published = Arc::new(Published {
            note,
            checkpoint,
            registry,
            index: Some(view),
        });
        *self
            .published
            .write()
            .expect("the checkpoint lock is never held across a panic") = published.clone();
        self.published_size.send_replace(published.checkpoint.size);
        METRICS.checkpoint(published.checkpoint.size);
        // The new entries' proofs read only the tree's old right edge and the nodes the
        // batch completed: nothing from the store.
        let mut known = edge;
        known.extend_from_slice(&nodes);
        let source = CachedSource::new(&self.store, &known);
        for (reply, place) in replies.into_iter().zip(placed) {
            let answer = match place {
                Placed::New(record, leaf_hash) => build_receipt(
                    record,
                    leaf_hash,
                    &source,
                    &published.note,
                    &published.checkpoint,
                )
                .map(|r| (r, false)),
                Placed::Existing(index) => read_record(&self.store, index).and_then(|record| {
                    let leaf_hash = record.leaf_hash();
                    build_receipt(
                        record,
                        leaf_hash,
                        &source,
                        &published.note,
                        &published.checkpoint,
                    )
                    .map(|r| (r, true))
                }),
                Placed::Refused(e) => Err(e),
            };
            let _ = reply.send(answer);
        }
        Ok(published.checkpoint.size)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use evident_core::SigningKey;
    use evident_core::dsse::Envelope;
    use evident_core::record::EntryKind;
    use evident_core::registry::{Admin, Change, GenesisDocument, sign_change};
    use tokio::sync::oneshot;

    use super::*;
    use crate::config::StartupCheck;
    use crate::storage::files::FileLog;
    use crate::storage::runs::RunIndex;
    use crate::storage::vfs::{OsFs, Vfs};

    /// A sequencer and its writer over an empty log in `dir`, run by hand; the admin key.
    fn open(dir: &Path, runtime: &tokio::runtime::Runtime) -> (Sequencer, Writer, SigningKey) {
        let admin = SigningKey::from_bytes(&[9; 32]);
        let admins = vec![Admin {
            identity: "admin".into(),
            key: evident_core::PublicKey::from_signing_key(&admin),
        }];
        let registry = Registry::genesis(admins.clone(), 1).unwrap();
        let vfs: Arc<dyn Vfs> = Arc::new(OsFs);
        let store = Store::from_parts(
            Arc::new(FileLog::open(vfs.clone(), &dir.join("log")).unwrap()),
            Arc::new(RunIndex::open(vfs, &dir.join("indexes")).unwrap()),
        );
        store
            .set_genesis(&serde_json::to_vec(&GenesisDocument::of(&admins, 1)).unwrap())
            .unwrap();
        let signer = Signer::new("evident.test/log", SigningKey::from_bytes(&[3; 32])).unwrap();
        let checked = crate::check::check_store(
            &store,
            signer.verifier(),
            StartupCheck::Tail,
            10_000,
            &registry,
        )
        .unwrap();
        let store = Arc::new(store);
        let (published_size, _) = tokio::sync::watch::channel(0);
        let published_size = Arc::new(published_size);
        let (failed, _) = tokio::sync::watch::channel(None);
        let failed = Arc::new(failed);
        let (_queue, rx) = mpsc::channel(1);
        let published = Published {
            note: String::new(),
            checkpoint: Checkpoint {
                origin: signer.verifier().name().to_owned(),
                size: 0,
                root: merkle::empty_root(),
                extensions: Vec::new(),
            },
            registry: Arc::new(checked.registry.clone()),
            index: None,
        };
        let sequencer = Sequencer {
            store: store.clone(),
            signer: Arc::new(signer),
            tail: checked.tail,
            published_size: published_size.clone(),
            state: LogState::new(checked.registry),
            rx,
            limits: BatchLimits {
                max_entries: 64,
                max_delay: Duration::ZERO,
                queue_depth: 64,
            },
            runtime: runtime.handle().clone(),
            failed: failed.clone(),
            in_flight: VecDeque::new(),
            index: evident_core::vindex::IndexBuilder::new(),
        };
        let writer = Writer {
            store,
            published: Arc::new(RwLock::new(Arc::new(published))),
            published_size,
            failed,
        };
        (sequencer, writer, admin)
    }

    /// The registry change that adds signer `n`, signed by the admin.
    fn add_signer(admin: &SigningKey, n: u8) -> Envelope {
        let key = SigningKey::from_bytes(&[n + 100; 32]);
        let change = Change::AddSigner {
            identity: format!("signer-{n}@test"),
            public_key: Some(evident_core::PublicKey::from_signing_key(&key).to_hex()),
            roles: vec!["ci".into()],
            predicate_types: vec!["*".into()],
            not_before: None,
            not_after: None,
            certificate: None,
        };
        sign_change(&change, &[admin])
    }

    /// Where a submission's answer comes.
    type Answer = oneshot::Receiver<Result<(evident_core::receipt::Receipt, bool), LedgerError>>;

    /// A submission of `envelope` as checked at submit time, and where its answer comes.
    fn submission(sequencer: &Sequencer, envelope: Envelope) -> (Submission, Answer) {
        let checked = kinds::of(EntryKind::Registry).check(&sequencer.state.registry, &envelope, 0);
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            envelope,
            checked,
            reply,
            queued: None,
        };
        (submission, answer)
    }

    #[test]
    fn a_duplicate_of_an_entry_still_being_written_is_answered_as_that_entry() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (mut sequencer, writer, admin) = open(dir.path(), &runtime);
        let genesis_events = sequencer.state.registry.events().len();
        let first = add_signer(&admin, 1);
        let (s, first_answer) = submission(&sequencer, first.clone());
        let batch = sequencer.prepare(vec![s]);
        assert!(matches!(batch.batch.placed[..], [Placed::New(ref r, _)] if r.index() == 0));

        // The next batch is integrated before the first is written: the store does not know
        // the entry yet, the sequencer does.
        let (again, again_answer) = submission(&sequencer, first);
        let (other, other_answer) = submission(&sequencer, add_signer(&admin, 2));
        let next = sequencer.prepare(vec![again, other]);
        assert!(
            matches!(
                next.batch.placed[..],
                [Placed::Existing(0), Placed::New(ref r, _)] if r.index() == 1
            ),
            "the duplicate is the entry in the batch being written, and nothing is logged twice"
        );
        assert_eq!(next.batch.entries.len(), 1);
        assert!(first_answer.is_empty() && again_answer.is_empty());

        // Written and published in order: the first batch's checkpoint and registry are
        // the log's after it, not after the batch integrated since.
        writer.commit(batch).unwrap();
        let published = writer.published.read().unwrap().clone();
        assert_eq!(published.checkpoint.size, 1);
        assert_eq!(published.registry.events().len(), genesis_events + 1);
        let (receipt, duplicate) = first_answer.blocking_recv().unwrap().unwrap();
        assert_eq!((receipt.index, duplicate), (0, false));
        assert!(
            again_answer.is_empty(),
            "not answered before its batch is durable"
        );

        writer.commit(next).unwrap();
        let published = writer.published.read().unwrap().clone();
        assert_eq!(published.checkpoint.size, 2);
        assert_eq!(published.registry.events().len(), genesis_events + 2);
        let (again, duplicate) = again_answer.blocking_recv().unwrap().unwrap();
        assert_eq!(
            (again.index, again.leaf_hash, duplicate),
            (0, receipt.leaf_hash, true)
        );
        let (other, duplicate) = other_answer.blocking_recv().unwrap().unwrap();
        assert_eq!((other.index, duplicate), (1, false));

        // Both batches are published: the next batch asks the store.
        let (s, _answer) = submission(&sequencer, add_signer(&admin, 3));
        let third = sequencer.prepare(vec![s]);
        assert!(sequencer.in_flight.iter().all(|(size, _)| *size > 2));
        assert!(matches!(third.batch.placed[..], [Placed::New(ref r, _)] if r.index() == 2));
    }
}
