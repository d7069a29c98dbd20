//! The sequencer: the log's only writer, on its own thread, in three steps per batch —
//! queue (`collect`: every submission waiting, up to the batch limit), integrate
//! (`integrate`: authorize each at its integrated time, dedupe, give it its index, time and
//! place in the hash chain and the tree) and publish (`publish`: after the store made the
//! batch durable, sign a checkpoint over it, publish it to readers, answer each submitter).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use evident_core::Hash;
use evident_core::PublicKey;
use evident_core::audit::Facts;
use evident_core::dsse::Envelope;
use evident_core::merkle::{self, Node};
use evident_core::note::{Checkpoint, Signer};
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::{Registry, RegistryDigest};
use tokio::sync::mpsc;

use super::{
    Authorization, BatchLimits, LedgerError, Published, Submission, build_receipt, failure_of,
    now_nanos, read_record, registry_error,
};
use crate::check::Tail;
use crate::metrics::{METRICS, VerificationFailure};
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
    placed: Vec<Placed>,
    entries: Vec<NewEntry>,
    nodes: Vec<Node>,
    tail: Tail,
    registry_changed: bool,
    registry_digest: RegistryDigest,
    policy_digest: RegistryDigest,
    error: Option<LedgerError>,
}

pub(super) struct Sequencer {
    pub(super) store: Arc<Store>,
    pub(super) signer: Arc<Signer>,
    pub(super) tail: Tail,
    pub(super) published: Arc<RwLock<Arc<Published>>>,
    /// The registry after the last sequenced entry.
    pub(super) registry: Registry,
    /// The running hash of the registry entries, signed into every checkpoint.
    pub(super) registry_digest: RegistryDigest,
    /// The running hash of the policy entries, signed into every checkpoint.
    pub(super) policy_digest: RegistryDigest,
    /// The latest version of each policy.
    pub(super) policies: HashMap<String, u64>,
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

    /// The registered keys that signed an envelope, as the sequencer's registry sees them:
    /// those the service found, unless registry changes were sequenced since (a key added
    /// in between counts, so the facts indexed are those a replay of the log finds).
    fn signing_keys(
        &self,
        envelope: &Envelope,
        predicate_type: &str,
        found: &[PublicKey],
        registry_changes: usize,
    ) -> Result<Vec<PublicKey>, evident_core::registry::AuthError> {
        if self.registry.events().len() == registry_changes {
            Ok(found.to_vec())
        } else {
            self.registry.verifying_keys(envelope, predicate_type)
        }
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
        let appended = integrated.entries.len();
        if integrated.error.is_none() && appended > 0 {
            let entries = std::mem::take(&mut integrated.entries);
            integrated.error = self
                .store
                .append(entries, &integrated.nodes)
                .err()
                .map(Into::into);
        }
        let durable = started.elapsed();
        if integrated.error.is_none() && appended > 0 {
            METRICS.batch(appended, durable);
        }
        let size = self.publish(integrated)?;
        tracing::debug!(
            entries = appended,
            submissions = count,
            size,
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
        let mut entries = Vec::with_capacity(count);
        let mut nodes: Vec<Node> = Vec::with_capacity(count * 2);
        let mut placed: Vec<Placed> = Vec::with_capacity(count);
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut frontier = self.tail.frontier.clone();
        let mut last_hash = self.tail.last_leaf_hash;
        let mut last_time = self.tail.last_time_nanos;
        let mut error = None;
        let mut registry_changed = false;
        let mut registry_digest = self.registry_digest;
        let mut policy_digest = self.policy_digest;
        for s in batch {
            replies.push(s.reply);
            if error.is_some() {
                continue;
            }
            let index = frontier.size();
            // Integrated times never go backwards, even if the clock does.
            let time = now_nanos().max(last_time);
            // Who signed, as the registry after every entry before this one (including those
            // earlier in this batch) sees it: the signers are part of the dedupe key.
            let (kind, mut facts) = match &s.authorization {
                Authorization::Attestation {
                    keys,
                    registry_changes,
                    predicate_type,
                    facts: about,
                } => match self
                    .signing_keys(&s.envelope, predicate_type, keys, *registry_changes)
                    .and_then(|keys| self.registry.authorize(&keys, predicate_type, time))
                {
                    Ok(signers) => {
                        let mut facts = (**about).clone();
                        facts.set_signers(&signers);
                        (EntryKind::Attestation, facts)
                    }
                    Err(e) => {
                        METRICS.verification_failure(VerificationFailure::of(&e));
                        placed.push(Placed::Refused(LedgerError::Unauthorized(e)));
                        continue;
                    }
                },
                Authorization::Registry | Authorization::Policy { .. } => {
                    match self.registry.admin_signers(&s.envelope) {
                        Ok(admins) => match &s.authorization {
                            Authorization::Policy { name, version } => (
                                EntryKind::Policy,
                                Facts::of_admin_entry(&admins, Some((name.clone(), *version))),
                            ),
                            _ => (EntryKind::Registry, Facts::of_admin_entry(&admins, None)),
                        },
                        Err(e) => {
                            placed.push(Placed::Refused(registry_error(e)));
                            continue;
                        }
                    }
                }
            };
            // The same content by the same keys is answered with the entry already logged;
            // looked up before the checks of the log's state, so a retry of an applied
            // registry change or policy version is not refused as a conflict.
            let digest = facts.dedupe_key(&s.envelope);
            let existing = match in_batch.get(&digest) {
                Some(i) => Some(*i),
                None => match self.store.index_of_content(&digest) {
                    Ok(found) => found,
                    Err(e) => {
                        error = Some(e.into());
                        continue;
                    }
                },
            };
            if let Some(index) = existing {
                placed.push(Placed::Existing(index));
                continue;
            }
            match (&s.authorization, kind) {
                (_, EntryKind::Registry) => match self.registry.apply(index, time, &s.envelope) {
                    Ok(applied) => {
                        registry_changed = true;
                        facts = Facts::of_admin_entry(&applied.signed_by, None);
                    }
                    Err(e) => {
                        placed.push(Placed::Refused(registry_error(e)));
                        continue;
                    }
                },
                (Authorization::Policy { name, version }, _) => {
                    if let Some(latest) = self.policies.get(name).copied().filter(|l| l >= version)
                    {
                        placed.push(Placed::Refused(LedgerError::Precondition(format!(
                            "policy {name} is at version {latest}: a new version must be higher than {latest}"
                        ))));
                        continue;
                    }
                    self.policies.insert(name.clone(), *version);
                }
                _ => {}
            }
            let record = match LeafRecord::new(index, time, last_hash, kind, s.envelope) {
                Ok(r) => r,
                Err(e) => {
                    error = Some(failure_of(format!("encoding entry {index}"), e));
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
            if kind == EntryKind::Registry {
                registry_digest.add(&leaf_hash);
            }
            if kind == EntryKind::Policy {
                policy_digest.add(&leaf_hash);
            }
            placed.push(Placed::New(record, leaf_hash));
            last_hash = leaf_hash;
            last_time = time;
        }
        Integrated {
            replies,
            placed,
            entries,
            nodes,
            tail: Tail {
                frontier,
                last_leaf_hash: last_hash,
                last_time_nanos: last_time,
            },
            registry_changed,
            registry_digest,
            policy_digest,
            error,
        }
    }

    /// After the store made an integrated batch durable (or failed to): signs a checkpoint
    /// over it, publishes it to readers and answers every submitter; returns the new tree
    /// size. On a failure, publishes it and answers everyone with it.
    fn publish(&mut self, batch: Integrated) -> Result<u64, LedgerError> {
        let Integrated {
            replies,
            placed,
            nodes,
            tail,
            registry_changed,
            registry_digest,
            policy_digest,
            error,
            ..
        } = batch;
        // The batch is durable: only now may a checkpoint cover it.
        let checkpoint = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size: tail.frontier.size(),
            root: tail.frontier.root(),
            extensions: vec![
                registry_digest.extension(),
                policy_digest.policy_extension(),
            ],
        };
        let note = match error {
            Some(e) => Err(e),
            None => checkpoint
                .sign(&self.signer)
                .map_err(|e| failure_of("signing a checkpoint", e)),
        }
        .and_then(|note| {
            self.store.set_checkpoint(&note)?;
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
        self.tail = tail;
        self.registry_digest = registry_digest;
        self.policy_digest = policy_digest;
        // Readers share one copy of the registry until a registry entry changes it.
        let previous = self
            .published
            .read()
            .expect("the checkpoint lock is never held across a panic")
            .registry
            .clone();
        let registry = if registry_changed {
            Arc::new(self.registry.clone())
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
        METRICS.checkpoint(published.checkpoint.size);
        let source = CachedSource::new(&self.store, &nodes);
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
