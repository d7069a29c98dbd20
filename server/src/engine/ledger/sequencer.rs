//! The sequencer: the log's only writer, on its own thread, in three steps per batch —
//! queue (`collect`: every submission waiting, up to the batch limit), integrate
//! (`integrate`: authorize each at its integrated time, dedupe, give it its index, time and
//! place in the hash chain and the tree) and publish (`publish`: after the store made the
//! batch durable, sign a checkpoint over it, publish it to readers, answer each submitter).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use evident_core::Hash;
use evident_core::kinds::{self, LogState, Refusal};
use evident_core::merkle::{self, Node};
use evident_core::note::{Checkpoint, Signer};
use evident_core::record::LeafRecord;
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
/// nodes, the tail and digests the batch leads to, or the failure that stopped it.
struct Integrated {
    replies: Vec<Reply>,
    /// Each submission's place in the database's queue, if another instance queued it.
    queued: Vec<Option<u64>>,
    placed: Vec<Placed>,
    entries: Vec<NewEntry>,
    nodes: Vec<Node>,
    tail: Tail,
    /// Whether registry changes were applied: readers get a new copy of the registry.
    registry_changed: bool,
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

pub(super) struct Sequencer {
    pub(super) store: Arc<Store>,
    pub(super) signer: Arc<Signer>,
    pub(super) tail: Tail,
    pub(super) published: Arc<RwLock<Arc<Published>>>,
    pub(super) published_size: Arc<tokio::sync::watch::Sender<u64>>,
    /// The registry, the policies' latest versions and the running digests after the last
    /// integrated entry. Integration changes it in place: a batch that does not become
    /// durable stops the sequencer, and a restart recovers the state from the log.
    pub(super) state: LogState,
    pub(super) rx: mpsc::Receiver<Submission>,
    pub(super) limits: BatchLimits,
    pub(super) runtime: tokio::runtime::Handle,
    /// Told of the storage failure that stopped the sequencer.
    pub(super) failed: tokio::sync::watch::Sender<Option<LedgerError>>,
}

impl Sequencer {
    pub(super) fn run(&mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let batch = self.collect(first);
            if let Err(e) = self.commit(batch) {
                tracing::error!(error = %e, "storage failure: the sequencer stops and nothing more is acknowledged; health is NOT_SERVING; restart evidentd after fixing the store (it recovers what is durable)");
                let _ = self.failed.send(Some(e.clone()));
                // Answer everything still queued, then stop taking submissions.
                self.rx.close();
                while let Ok(s) = self.rx.try_recv() {
                    let _ = s.reply.send(Err(e.clone()));
                }
                return;
            }
        }
        tracing::info!("sequencer stopped: queue closed and drained");
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

    /// Sequences, writes, syncs and signs one batch, then answers it.
    /// One batch: integrated, made durable, published.
    fn commit(&mut self, batch: Vec<Submission>) -> Result<(), LedgerError> {
        let started = Instant::now();
        let count = batch.len();
        let mut integrated = self.integrate(batch);
        let integrated_us = started.elapsed().as_micros() as u64;
        let appended = integrated.entries.len();
        let outcomes = integrated.outcomes();
        // Signed now, so that a store that can writes it with the batch (PostgreSQL: in the
        // batch's transaction); shown to nobody before the batch is durable.
        let checkpoint = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size: integrated.tail.frontier.size(),
            root: integrated.tail.frontier.root(),
            extensions: self.state.digests.extensions(),
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| failure_of("signing a checkpoint", e));
        if let (None, Err(e)) = (&integrated.error, &note) {
            integrated.error = Some(e.clone());
        }
        let mut stored = false;
        if integrated.error.is_none() && (appended > 0 || !outcomes.is_empty()) {
            let entries = std::mem::take(&mut integrated.entries);
            match self.store.append_settling(
                entries,
                &integrated.nodes,
                &outcomes,
                note.as_deref().ok(),
            ) {
                Ok(with_checkpoint) => stored = with_checkpoint,
                Err(e) => integrated.error = Some(e.into()),
            }
        }
        let durable = started.elapsed();
        if integrated.error.is_none() && appended > 0 {
            METRICS.batch(appended, durable);
        }
        let size = self.publish(integrated, checkpoint, note, stored)?;
        tracing::debug!(
            entries = appended,
            submissions = count,
            size,
            integrated_us,
            durable_us = durable.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// Places each submission of a batch: authorized by the registry after every entry
    /// before it at its integrated time, answered with the entry already logged if it is
    /// one, given its index, time and place in the hash chain and the tree. The sequencer's
    /// registry and policy versions move on as entries are placed; nothing is durable yet.
    fn integrate(&mut self, batch: Vec<Submission>) -> Integrated {
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
            // The same content by the same keys is answered with the entry already logged;
            // looked up before the entry's effect is applied, so a retry of an applied
            // registry change or policy version is not refused as a conflict.
            let digest = facts.dedupe_key(&s.envelope);
            let existing = match in_batch.get(&digest) {
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
        Integrated {
            replies,
            queued,
            placed,
            entries,
            nodes,
            tail: Tail {
                frontier,
                last_leaf_hash: last_hash,
                last_time_nanos: last_time,
            },
            registry_changed: self.state.registry.events().len() != registry_changes,
            error,
        }
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

    /// After the store made an integrated batch durable (or failed to): stores the
    /// checkpoint signed over it unless the store wrote it with the batch (`stored`),
    /// publishes it to readers and answers every submitter; returns the new tree size. On a
    /// failure, publishes it and answers everyone with it.
    fn publish(
        &mut self,
        batch: Integrated,
        checkpoint: Checkpoint,
        note: Result<String, LedgerError>,
        stored: bool,
    ) -> Result<u64, LedgerError> {
        let Integrated {
            replies,
            placed,
            queued: _,
            nodes,
            tail,
            registry_changed,
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
                let _ = self.failed.send(Some(e.clone()));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                return Err(e);
            }
        };
        let before = std::mem::replace(&mut self.tail, tail);
        // Readers share one copy of the registry until a registry entry changes it.
        let previous = self
            .published
            .read()
            .expect("the checkpoint lock is never held across a panic")
            .registry
            .clone();
        let registry = if registry_changed {
            Arc::new(self.state.registry.clone())
        } else {
            previous
        };
        let published = Arc::new(Published {
            note,
            checkpoint,
            registry,
        });
        *self
            .published
            .write()
            .expect("the checkpoint lock is never held across a panic") = published.clone();
        self.published_size.send_replace(published.checkpoint.size);
        METRICS.checkpoint(published.checkpoint.size);
        // The new entries' proofs read only the tree's old right edge and the nodes the
        // batch completed: nothing from the store.
        let mut known = before.frontier.nodes();
        known.extend_from_slice(&nodes);
        let source = CachedSource::new(&self.store, &known);
        for (reply, place) in replies.into_iter().zip(placed) {
            let answer = match place {
                Placed::New(record, leaf_hash) => {
                    build_receipt(record, leaf_hash, &source, &published).map(|r| (r, false))
                }
                Placed::Existing(index) => read_record(&self.store, index).and_then(|record| {
                    let leaf_hash = record.leaf_hash();
                    build_receipt(record, leaf_hash, &source, &published).map(|r| (r, true))
                }),
                Placed::Refused(e) => Err(e),
            };
            let _ = reply.send(answer);
        }
        Ok(published.checkpoint.size)
    }
}
