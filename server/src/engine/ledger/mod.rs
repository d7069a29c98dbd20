//! The ledger: the sequencer (the log's only writer) and the read side that everything else
//! uses.
//!
//! Submissions queue up for one sequencer (`sequencer.rs`). It takes every submission
//! waiting (up to the batch limit: the queue), gives each its index, time and place in the
//! hash chain after authorizing it at that time (integrate) and signs a checkpoint over the
//! batch; its writer thread makes the batch durable in the store and only then publishes
//! the checkpoint and answers (publish), while the sequencer integrates the next batch.
//! Nothing is acknowledged before it is durable, and no checkpoint is shown over data that
//! is not. This module is the read side everything else uses (entries, receipts, proofs,
//! queries) and the queue's front; `registry.rs` answers the trust registry as of any
//! entry or time, `bundles.rs` the policies and evidence bundles.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use evident_core::Hash;
use evident_core::dsse::Envelope;
use evident_core::kinds::{Checked, LogState, Refusal};
use evident_core::merkle::{self, SubtreeSource};
use evident_core::note::{Checkpoint, Signer, Verifier};
use evident_core::receipt::Receipt;
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::{GenesisDocument, Registry};
use tokio::sync::{mpsc, oneshot};

use crate::check::Tail;
use crate::metrics::METRICS;
use crate::query::{Cursor, Filters, Page};
use crate::store::{CachedSource, Store, StoreError};

mod bundles;
mod index;
mod registry;
mod sequencer;
pub use index::{IndexAnswer, ProveError};
use registry::Snapshots;
pub use registry::advance as advance_registry;
use sequencer::{Sequencer, Writer};

/// Why a submission or read could not be answered.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The store failed; the sequencer stopped writing.
    #[error("storage failure: {0}")]
    Store(#[source] Arc<StoreError>),
    /// Stored bytes are not what the ledger wrote (an auditor's finding, not an outage).
    #[error("data loss: {0}")]
    Damaged(#[source] Arc<StoreError>),
    /// A step of writing or reading the log failed for a reason other than the store
    /// (signing, encoding, a proof that does not verify, starting a thread).
    #[error("storage failure: {what}: {source}")]
    Failed {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The server is shutting down and takes no new entries.
    #[error("the ledger is shutting down")]
    ShuttingDown,
    /// The ledger cannot take the submission now, for the reason given (no sequencer
    /// reachable, the database down, the lease lost); retrying later is safe.
    #[error("{0}")]
    Unavailable(String),
    /// The sequencer (another instance) refused a submission this instance queued: its
    /// gRPC status, relayed as it is.
    #[error("{message}")]
    Relayed {
        /// The gRPC status code.
        code: i32,
        /// The status message.
        message: String,
        /// The status details, encoded.
        details: Vec<u8>,
    },
    /// The entry is refused at its integrated time: its signers are not authorized then,
    /// a registry change does not fit the registry, a policy version is not above the
    /// latest.
    #[error("{0}")]
    Refused(Refusal),
    /// No entry has this index: the log is smaller.
    #[error("entry {index} does not exist: the log has {size} entries")]
    NoEntry {
        /// The index asked for.
        index: u64,
        /// The log's size at the latest checkpoint.
        size: u64,
    },
    /// No entry has this leaf hash.
    #[error("no entry has leaf hash {0}")]
    NoLeafHash(Hash),
    /// No release attestation declares this release.
    #[error("no release attestation declares {name}@{version}")]
    NoRelease {
        /// The release's name.
        name: String,
        /// Its version.
        version: String,
    },
    /// A tree size beyond the latest checkpoint.
    #[error("tree size {requested} is beyond the log's current size {size}")]
    BeyondLog {
        /// The tree size asked for.
        requested: u64,
        /// The log's size at the latest checkpoint.
        size: u64,
    },
    /// An inclusion proof of an entry outside the tree asked for.
    #[error("entry {index} is not in a tree of size {size}")]
    NotInTree {
        /// The entry.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof between sizes that have none.
    #[error("no consistency proof from size {old} to size {new}: need 0 < old size <= new size")]
    NoConsistency {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// A range of entries that starts, or ends, beyond the latest checkpoint.
    #[error("{}", range_beyond(*start, *end, *size))]
    RangeBeyondLog {
        /// The first entry asked for.
        start: u64,
        /// One past the last.
        end: u64,
        /// The log's size at the latest checkpoint.
        size: u64,
    },
    /// A range of entries that is empty or reversed.
    #[error("start {start} is not below end {end}")]
    EmptyRange {
        /// The first entry asked for.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// A query cursor that is not one this server gave for this query.
    #[error("{0}")]
    Cursor(#[source] crate::query::CursorError),
    /// An entry below the checkpoint is missing from the store.
    #[error("data loss: entry {0} is missing from the store")]
    Missing(u64),
    /// An entry below the checkpoint does not decode.
    #[error("data loss: entry {index} does not decode: {source}")]
    Undecodable {
        /// The entry.
        index: u64,
        /// Why.
        #[source]
        source: evident_core::record::RecordError,
    },
}

/// The message of [`LedgerError::RangeBeyondLog`].
fn range_beyond(start: u64, end: u64, size: u64) -> String {
    if end > size {
        format!("end {end} is beyond the log's current size {size}")
    } else {
        format!("entry {start} does not exist: the log has {size} entries")
    }
}

/// A failure of `what` for a reason other than the store, its cause kept.
fn failure_of(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> LedgerError {
    LedgerError::Failed {
        what: what.into(),
        source: Arc::new(e),
    }
}

/// An entry refused at integration, counted in the metrics if it is a failed verification.
fn refused(refusal: Refusal) -> LedgerError {
    if let Some(failure) = crate::metrics::VerificationFailure::of_refusal(&refusal) {
        METRICS.verification_failure(failure);
    }
    LedgerError::Refused(refusal)
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> LedgerError {
        match e {
            // Bytes the log holds are not what it wrote: an auditor's finding, not an outage.
            StoreError::Corrupt(_) => LedgerError::Damaged(Arc::new(e)),
            _ => LedgerError::Store(Arc::new(e)),
        }
    }
}

/// The latest signed checkpoint, and the registry as of it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The signed note text.
    pub note: String,
    /// What it says.
    pub checkpoint: Checkpoint,
    /// The trust registry after the last entry the checkpoint covers.
    pub registry: Arc<Registry>,
    /// The verifiable index at the checkpoint's size, when this instance keeps it (its own
    /// sequencer does): what query answers are proven with.
    pub index: Option<evident_core::vindex::IndexView>,
}

/// The latest checkpoint that enough witnesses cosigned: the log's note with their
/// cosignature lines (C2SP tlog-cosignature).
#[derive(Debug, Clone)]
pub struct Witnessed {
    /// The note: the log's signature and the witnesses' cosignatures.
    pub note: String,
    /// What it says.
    pub checkpoint: Checkpoint,
    /// The configured witnesses whose cosignature it carries.
    pub cosigned: Vec<evident_core::cosign::Cosigned>,
}

struct Submission {
    envelope: Envelope,
    /// What the submit-time check found (for a submission queued by another instance, the
    /// sequencer's own check: it may have refused it).
    checked: Result<Checked, Refusal>,
    /// The receipt, and whether the envelope was already in the log.
    reply: oneshot::Sender<Result<(Receipt, bool), LedgerError>>,
    /// Its place in the database's queue, when another instance queued it: its outcome is
    /// recorded with the batch.
    queued: Option<u64>,
}

/// Where this instance's submissions go.
#[derive(Clone)]
enum Route {
    /// To this instance's sequencer.
    Local {
        queue: mpsc::Sender<Submission>,
        /// Set when that sequencer stopped on a failure.
        failure: tokio::sync::watch::Receiver<Option<LedgerError>>,
    },
    /// Through the database to whichever instance sequences.
    Remote(Arc<crate::cluster::Forwarder>),
    /// Nowhere, for this reason.
    Down(LedgerError),
}

/// A handle to the ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<Store>,
    genesis: Arc<Registry>,
    genesis_document: Arc<GenesisDocument>,
    published: Arc<RwLock<Arc<Published>>>,
    /// The size of the latest published checkpoint, for those waiting for one to cover an
    /// entry.
    published_size: Arc<tokio::sync::watch::Sender<u64>>,
    /// The latest witnessed checkpoint, once witnesses have cosigned one.
    witnessed: Arc<tokio::sync::watch::Sender<Option<Arc<Witnessed>>>>,
    route: Arc<RwLock<Route>>,
    verifier: Verifier,
    /// The log key, shared with the sequencer: the read side signs bundle manifests with it.
    signer: Arc<Signer>,
    /// The registry after every [`registry::SNAPSHOT_EVERY`]-th registry entry, by that entry's index
    /// (with its integrated time), filled as as-of reads replay: an as-of answer replays at
    /// most `SNAPSHOT_EVERY` entries. Entries below a checkpoint never change, so a
    /// snapshot never goes stale.
    snapshots: Arc<std::sync::Mutex<Snapshots>>,
    /// On an instance that follows another's sequencer: the verifiable index, moved on as
    /// the log grows, so that this instance proves answers too.
    follower_index: Arc<std::sync::Mutex<FollowerIndex>>,
}

/// What an instance that follows another's sequencer keeps of the verifiable index.
#[derive(Debug, Default)]
struct FollowerIndex {
    /// The index at the last checkpoint it was built or moved on to.
    builder: Option<evident_core::vindex::IndexBuilder>,
    /// The checkpoint size at which building it last failed: not tried again until the
    /// log grows, so a database that is away is not asked for the whole index every tick.
    failed_at: Option<u64>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("verifier", &self.verifier)
            .finish()
    }
}

/// Group-commit limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most entries per batch.
    pub max_entries: usize,
    /// Longest wait for more entries once a batch has one.
    pub max_delay: Duration,
    /// Queue depth in front of the sequencer.
    pub queue_depth: usize,
}

/// Waits for the sequencer (and its writer) to finish its last batch.
#[derive(Debug)]
pub struct SequencerHandle(
    std::thread::JoinHandle<()>,
    tokio::sync::watch::Receiver<Option<LedgerError>>,
);

impl SequencerHandle {
    /// Set when the sequencer stopped on a storage failure: from then on nothing is
    /// acknowledged until the server restarts and recovers from what is durable.
    pub fn failure(&self) -> tokio::sync::watch::Receiver<Option<LedgerError>> {
        self.1.clone()
    }

    /// Blocks until the sequencer has answered everything it took and exited.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the sequencer thread panicked");
        }
    }
}

/// The sequencer's state after the first `size` entries, from the indexes: `registry` is
/// the registry after them, the policies' latest versions and the digests come from the
/// registry and policy entries the indexes list.
fn recover_state(store: &Store, registry: Registry, size: u64) -> Result<LogState, LedgerError> {
    let mut state = LogState::new(registry);
    for index in store.registry_entries(0, size)? {
        state
            .digests
            .add(EntryKind::Registry, &store.subtree_hash(0, index)?);
    }
    let mut policies: Vec<(String, u64, u64)> = store
        .policies()?
        .into_iter()
        .filter(|(_, _, index)| *index < size)
        .collect();
    policies.sort_unstable_by_key(|(_, _, index)| *index);
    for (name, version, index) in policies {
        state
            .digests
            .add(EntryKind::Policy, &store.subtree_hash(0, index)?);
        let latest = state.policies.entry(name).or_insert(version);
        *latest = (*latest).max(version);
    }
    Ok(state)
}

fn now_nanos() -> i64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .expect("the clock reads a time between 1677 and 2262")
}

impl Ledger {
    /// Starts the sequencer over a checked store. Signs a checkpoint for the current size
    /// before returning, so readers always have one.
    pub fn start(
        store: Arc<Store>,
        signer: Signer,
        tail: Tail,
        genesis: crate::genesis::Genesis,
        registry: Registry,
        limits: BatchLimits,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Ledger, SequencerHandle), LedgerError> {
        let verifier = signer.verifier().clone();
        // Replaced by the sequencer's first checkpoint before anyone reads it.
        let placeholder = Published {
            note: String::new(),
            checkpoint: Checkpoint {
                origin: verifier.name().to_owned(),
                size: 0,
                root: merkle::empty_root(),
                extensions: Vec::new(),
            },
            registry: Arc::new(registry.clone()),
            index: None,
        };
        let ledger = Ledger::new(
            store,
            signer,
            genesis,
            placeholder,
            Route::Down(LedgerError::ShuttingDown),
        );
        let sequencer = ledger.lead(tail, registry, limits, runtime)?;
        Ok((ledger, sequencer))
    }

    /// A ledger whose submissions go through the database to another instance's
    /// sequencer (`forwarder`), publishing `published` until [`Ledger::refresh`] or
    /// [`Ledger::lead`] moves it on.
    pub fn follower(
        store: Arc<Store>,
        signer: Signer,
        genesis: crate::genesis::Genesis,
        published: Published,
        forwarder: Arc<crate::cluster::Forwarder>,
    ) -> Ledger {
        Ledger::new(store, signer, genesis, published, Route::Remote(forwarder))
    }

    fn new(
        store: Arc<Store>,
        signer: Signer,
        genesis: crate::genesis::Genesis,
        published: Published,
        route: Route,
    ) -> Ledger {
        let verifier = signer.verifier().clone();
        let (published_size, _) = tokio::sync::watch::channel(published.checkpoint.size);
        Ledger {
            store,
            genesis: Arc::new(genesis.registry),
            genesis_document: Arc::new(genesis.document),
            published: Arc::new(RwLock::new(Arc::new(published))),
            published_size: Arc::new(published_size),
            witnessed: Arc::new(tokio::sync::watch::channel(None).0),
            route: Arc::new(RwLock::new(route)),
            verifier,
            signer: Arc::new(signer),
            snapshots: Arc::default(),
            follower_index: Arc::default(),
        }
    }

    /// Starts a sequencer over the log as `tail` and `registry` describe it (checked just
    /// now: this instance is the only writer): signs a checkpoint for the current size,
    /// publishes it, and routes this instance's submissions to the sequencer from then on.
    pub fn lead(
        &self,
        tail: Tail,
        registry: Registry,
        limits: BatchLimits,
        runtime: tokio::runtime::Handle,
    ) -> Result<SequencerHandle, LedgerError> {
        let state = recover_state(&self.store, registry, tail.frontier.size())?;
        let mut index_builder = index::rebuild(&self.store, tail.frontier.size())?;
        let stored = match self.store.checkpoint()? {
            Some(note) => Some(
                Checkpoint::verify(&note, &self.verifier)
                    .map_err(|e| failure_of("verifying the stored checkpoint", e))?,
            ),
            None => None,
        };
        index::check_against(&mut index_builder, stored.as_ref())?;
        let view = index_builder.view();
        let mut extensions = state.digests.extensions();
        extensions.push(evident_core::vindex::extension(&view.root()));
        let checkpoint = Checkpoint {
            origin: self.verifier.name().to_owned(),
            size: tail.frontier.size(),
            root: tail.frontier.root(),
            extensions,
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| failure_of("signing a checkpoint", e))?;
        self.store.set_checkpoint(&note)?;
        self.store.sync()?;
        METRICS.checkpoint(checkpoint.size);
        self.publish(Published {
            note,
            checkpoint,
            registry: Arc::new(state.registry.clone()),
            index: Some(view),
        });
        let (queue, rx) = mpsc::channel(limits.queue_depth);
        let (failed, failure) = tokio::sync::watch::channel(None);
        let failed = Arc::new(failed);
        let sequencer = Sequencer {
            store: self.store.clone(),
            signer: self.signer.clone(),
            tail,
            published_size: self.published_size.clone(),
            state,
            rx,
            limits,
            runtime,
            failed: failed.clone(),
            in_flight: Default::default(),
            index: index_builder,
        };
        let writer = Writer {
            store: self.store.clone(),
            published: self.published.clone(),
            published_size: self.published_size.clone(),
            failed,
        };
        let thread = sequencer::spawn(sequencer, writer)?;
        *self
            .route
            .write()
            .expect("the route lock is never held across a panic") = Route::Local {
            queue,
            failure: failure.clone(),
        };
        Ok(SequencerHandle(thread, failure))
    }

    /// Stops routing submissions to this instance's sequencer: from now on they go
    /// `through` the database (another instance sequences), or are refused with the reason
    /// given. The sequencer finishes what it has and exits (join its handle).
    pub fn step_down(&self, through: Result<Arc<crate::cluster::Forwarder>, LedgerError>) {
        *self
            .route
            .write()
            .expect("the route lock is never held across a panic") = match through {
            Ok(forwarder) => Route::Remote(forwarder),
            Err(e) => Route::Down(e),
        };
    }

    /// Whether this instance's own sequencer takes its submissions.
    pub fn sequences(&self) -> bool {
        matches!(
            *self
                .route
                .read()
                .expect("the route lock is never held across a panic"),
            Route::Local { .. }
        )
    }

    /// Publishes a checkpoint to readers and to those waiting for one.
    fn publish(&self, published: Published) {
        let size = published.checkpoint.size;
        *self
            .published
            .write()
            .expect("the checkpoint lock is never held across a panic") = Arc::new(published);
        self.published_size.send_replace(size);
    }

    /// Moves the published checkpoint on to `note`, stored by the sequencer (another
    /// instance) after its entries: verified under the log key, and the registry advanced
    /// over the registry entries it adds. `Ok(false)` when it is not newer. Blocking.
    pub fn refresh(&self, note: &str) -> Result<bool, LedgerError> {
        let checkpoint = Checkpoint::verify(note, &self.verifier)
            .map_err(|e| failure_of("verifying the stored checkpoint", e))?;
        let current = self.published();
        if checkpoint.size < current.checkpoint.size
            || (checkpoint.size == current.checkpoint.size
                && checkpoint.root != current.checkpoint.root)
        {
            // Never by the sequencers (the stored checkpoint only grows, and a batch is
            // fenced): the database was rolled back (restored from an old backup, an
            // asynchronous standby promoted) or written by something else.
            return Err(LedgerError::Damaged(Arc::new(StoreError::Corrupt(
                format!(
                    "the database's latest checkpoint (size {}, root {}) conflicts with one this \
                 instance published (size {}, root {}): the database was rolled back or \
                 forked; stop the instances and restore (docs/DEPLOY.md)",
                    checkpoint.size,
                    checkpoint.root,
                    current.checkpoint.size,
                    current.checkpoint.root
                ),
            ))));
        }
        if checkpoint.size == current.checkpoint.size {
            return Ok(false);
        }
        self.store.log().observe_size(checkpoint.size);
        let advanced = registry::advance(
            &self.store,
            &current.registry,
            current.checkpoint.size,
            checkpoint.size,
        )?;
        METRICS.checkpoint(checkpoint.size);
        let index = self.follow_index(&checkpoint);
        self.publish(Published {
            note: note.to_owned(),
            checkpoint,
            registry: advanced.map_or_else(|| current.registry.clone(), Arc::new),
            index,
        });
        Ok(true)
    }

    /// On a follower: the verifiable index at the published checkpoint, built from the
    /// database (published again with it), so that this instance proves answers too.
    pub fn keep_index(&self) {
        let current = self.published();
        if current.index.is_some() {
            return;
        }
        let index = self.follow_index(&current.checkpoint);
        if index.is_some() {
            self.publish(Published {
                index,
                ..(*current).clone()
            });
        }
    }

    /// The verifiable index at `checkpoint`, moved on from the one kept (or rebuilt), and
    /// held against the root the checkpoint signs; `None` (answers are then not proven
    /// complete) when it cannot be built or disagrees.
    fn follow_index(&self, checkpoint: &Checkpoint) -> Option<evident_core::vindex::IndexView> {
        let signed = evident_core::vindex::root_from_extensions(&checkpoint.extensions)
            .ok()
            .flatten()?;
        let mut kept = self
            .follower_index
            .lock()
            .expect("the follower index lock is never held across a panic");
        if kept.failed_at == Some(checkpoint.size) {
            return None;
        }
        kept.failed_at = Some(checkpoint.size);
        let moved = kept
            .builder
            .take()
            .filter(|b| b.size() <= checkpoint.size)
            .and_then(
                |mut b| match index::extend(&self.store, &mut b, checkpoint.size) {
                    Ok(()) => Some(b),
                    Err(e) => {
                        tracing::info!(error = %e, "rebuilding the verifiable index");
                        None
                    }
                },
            );
        let mut builder = match moved {
            Some(b) => b,
            None => match index::rebuild(&self.store, checkpoint.size) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "the verifiable index could not be built: answers are not proven complete");
                    return None;
                }
            },
        };
        let root = builder.root();
        if root != signed {
            tracing::error!(
                size = checkpoint.size,
                signed = %signed,
                rebuilt = %root,
                "the database's index does not give the index root the checkpoint signs: answers are not proven complete"
            );
            return None;
        }
        let view = builder.view();
        kept.builder = Some(builder);
        kept.failed_at = None;
        Some(view)
    }

    /// Hands a submission another instance queued to this instance's sequencer, with the
    /// sequencer's own check of it; its outcome is recorded with the batch. Waits while the
    /// sequencer's queue is full; `false` when this instance no longer sequences.
    pub async fn sequence_queued(
        &self,
        id: u64,
        envelope: Envelope,
        checked: Result<Checked, Refusal>,
    ) -> bool {
        let queue = match &*self
            .route
            .read()
            .expect("the route lock is never held across a panic")
        {
            Route::Local { queue, .. } => queue.clone(),
            _ => return false,
        };
        let (reply, _ignored) = oneshot::channel();
        queue
            .send(Submission {
                envelope,
                checked,
                reply,
                queued: Some(id),
            })
            .await
            .is_ok()
    }

    /// Waits until a published checkpoint covers entry `index`.
    async fn covering(&self, index: u64) -> Result<Arc<Published>, LedgerError> {
        let mut size = self.published_size.subscribe();
        size.wait_for(|size| *size > index)
            .await
            .map_err(|_| LedgerError::ShuttingDown)?;
        Ok(self.published())
    }

    /// Watches the size of the latest published checkpoint.
    pub fn published_sizes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published_size.subscribe()
    }

    /// The latest checkpoint that enough witnesses cosigned, if any yet.
    pub fn witnessed(&self) -> Option<Arc<Witnessed>> {
        self.witnessed.borrow().clone()
    }

    /// Watches the latest witnessed checkpoint.
    pub fn witnessed_updates(&self) -> tokio::sync::watch::Receiver<Option<Arc<Witnessed>>> {
        self.witnessed.subscribe()
    }

    /// Publishes a witnessed checkpoint, unless one at least as large already is. The
    /// caller has verified the log's signature and the cosignatures.
    pub fn set_witnessed(&self, witnessed: Witnessed) -> bool {
        let size = witnessed.checkpoint.size;
        let count = witnessed.cosigned.len();
        self.witnessed.send_if_modified(|current| {
            let newer = current.as_ref().is_none_or(|c| {
                c.checkpoint.size < size || (c.checkpoint.size == size && c.cosigned.len() < count)
            });
            if newer {
                *current = Some(Arc::new(witnessed));
            }
            newer
        })
    }

    /// Waits until a witnessed checkpoint covers entry `index`.
    pub async fn witnessed_covering(&self, index: u64) -> Result<Arc<Witnessed>, LedgerError> {
        let mut updates = self.witnessed.subscribe();
        let found = updates
            .wait_for(|w| w.as_ref().is_some_and(|w| w.checkpoint.size > index))
            .await
            .map_err(|_| LedgerError::ShuttingDown)?;
        Ok(found
            .clone()
            .expect("wait_for returned a witnessed checkpoint covering the entry"))
    }

    /// The log's verifier key.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The latest signed checkpoint.
    pub fn published(&self) -> Arc<Published> {
        self.published
            .read()
            .expect("the checkpoint lock is never held across a panic")
            .clone()
    }

    /// Queues an already verified envelope and waits for its durable receipt. The same
    /// content signed by the same keys again gets the original entry's receipt with
    /// `duplicate` set.
    pub async fn submit(
        &self,
        envelope: Envelope,
        checked: Checked,
    ) -> Result<(Receipt, bool), LedgerError> {
        let route = self
            .route
            .read()
            .expect("the route lock is never held across a panic")
            .clone();
        match route {
            Route::Local { queue, failure } => {
                let (reply, answer) = oneshot::channel();
                let submission = Submission {
                    envelope,
                    checked: Ok(checked),
                    reply,
                    queued: None,
                };
                let stopped = || match &*failure.borrow() {
                    Some(failure) => failure.clone(),
                    None => LedgerError::Unavailable(
                        "this instance stopped sequencing before the submission was \
                         logged; nothing of it was written: retry"
                            .into(),
                    ),
                };
                queue.send(submission).await.map_err(|_| stopped())?;
                answer.await.map_err(|_| stopped())?
            }
            Route::Remote(forwarder) => {
                let (index, duplicate, receipt) = forwarder.submit(&envelope).await?;
                if let Some(receipt) = receipt {
                    return receipt.map(|receipt| (receipt, duplicate));
                }
                let published =
                    tokio::time::timeout(crate::cluster::OUTCOME_WAIT, self.covering(index))
                        .await
                        .map_err(|_| {
                            LedgerError::Unavailable(format!(
                                "entry {index} is logged, but no checkpoint covering it was \
                         published in time: resubmit to get its receipt"
                            ))
                        })??;
                let ledger = self.clone();
                tokio::task::spawn_blocking(move || ledger.receipt(index, &published))
                    .await
                    .map_err(|e| failure_of("building a receipt", e))?
                    .map(|receipt| (receipt, duplicate))
            }
            Route::Down(e) => Err(e),
        }
    }

    /// The receipt of the entry already in the log with this dedupe key
    /// ([`evident_core::record::dedupe_key`]), if any. Asked only after the submission's
    /// signatures verified and were authorized, so a caller learns nothing about an entry
    /// it could not have submitted itself.
    pub fn existing(&self, digest: &Hash) -> Result<Option<Receipt>, LedgerError> {
        if let Some(index) = self.store.index_of_content(digest)? {
            let published = self.published();
            if index < published.checkpoint.size {
                return Ok(Some(self.receipt(index, &published)?));
            }
        }
        Ok(None)
    }

    /// The receipts of several entries against the latest published checkpoint, read
    /// together (two requests to a database server for all of them); `None` for an entry
    /// the checkpoint does not cover.
    pub fn receipts(&self, indexes: &[u64]) -> Vec<Option<Result<Receipt, LedgerError>>> {
        let published = self.published();
        let size = published.checkpoint.size;
        let covered: Vec<u64> = indexes.iter().copied().filter(|&i| i < size).collect();
        type Records = Vec<Option<Vec<u8>>>;
        let read = || -> Result<(Records, CachedSource<'_>), LedgerError> {
            let records = self.store.entries_at(&covered)?;
            let source = CachedSource::new(&self.store, &[]);
            let wanted: Vec<(u32, u64)> = covered
                .iter()
                .flat_map(|&i| merkle::inclusion_proof_reads(i, size))
                .collect();
            source.prefetch(&wanted)?;
            Ok((records, source))
        };
        let (records, source) = match read() {
            Ok(read) => read,
            Err(e) => {
                return indexes
                    .iter()
                    .map(|&i| (i < size).then(|| Err(e.clone())))
                    .collect();
            }
        };
        let records: std::collections::HashMap<u64, Option<Vec<u8>>> =
            covered.into_iter().zip(records).collect();
        indexes
            .iter()
            .map(|&index| {
                let bytes = records.get(&index)?.clone();
                Some((|| {
                    let bytes = bytes.ok_or(LedgerError::Missing(index))?;
                    let record = LeafRecord::decode(&bytes)
                        .map_err(|source| LedgerError::Undecodable { index, source })?;
                    let leaf_hash = record.leaf_hash();
                    build_receipt(
                        record,
                        leaf_hash,
                        &source,
                        &published.note,
                        &published.checkpoint,
                    )
                })())
            })
            .collect()
    }

    /// Whether an index look-up costs a round trip to a database server (PostgreSQL).
    pub fn remote_index(&self) -> bool {
        self.store.remote_index()
    }

    /// The receipt of entry `index` against a published checkpoint.
    pub fn receipt(&self, index: u64, published: &Published) -> Result<Receipt, LedgerError> {
        self.receipt_at(index, &published.note, &published.checkpoint)
    }

    /// The receipt of entry `index` against a checkpoint this log signed (`note` says
    /// `checkpoint`), such as the latest witnessed one.
    pub fn receipt_at(
        &self,
        index: u64,
        note: &str,
        checkpoint: &Checkpoint,
    ) -> Result<Receipt, LedgerError> {
        if index >= checkpoint.size {
            return Err(LedgerError::NotInTree {
                index,
                size: checkpoint.size,
            });
        }
        let record = read_record(&self.store, index)?;
        let leaf_hash = record.leaf_hash();
        let source = CachedSource::new(&self.store, &[]);
        source.prefetch(&merkle::inclusion_proof_reads(index, checkpoint.size))?;
        build_receipt(record, leaf_hash, &source, note, checkpoint)
    }

    /// The leaf record bytes of entry `index`, if it is covered by the latest checkpoint.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let size = self.published().checkpoint.size;
        if index >= size {
            return Err(LedgerError::NoEntry { index, size });
        }
        self.store.entry(index)?.ok_or(LedgerError::Missing(index))
    }

    /// The index of the entry with this leaf hash.
    pub fn index_of_leaf(&self, leaf_hash: &Hash) -> Result<u64, LedgerError> {
        let size = self.published().checkpoint.size;
        match self.store.index_of_leaf(leaf_hash)? {
            Some(index) if index < size => Ok(index),
            _ => Err(LedgerError::NoLeafHash(*leaf_hash)),
        }
    }

    /// Resolves a requested tree size: 0 means the latest checkpoint's.
    pub fn tree_size(&self, requested: u64) -> Result<(u64, Arc<Published>), LedgerError> {
        let published = self.published();
        let size = published.checkpoint.size;
        match requested {
            0 => Ok((size, published)),
            n if n > size => Err(LedgerError::BeyondLog { requested: n, size }),
            n => Ok((n, published)),
        }
    }

    /// The inclusion proof of entry `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        if index >= size {
            return Err(LedgerError::NotInTree { index, size });
        }
        let source = CachedSource::new(&self.store, &[]);
        source.prefetch(&merkle::inclusion_proof_reads(index, size))?;
        merkle::inclusion_proof(&source, index, size)
            .map_err(|e| failure_of(format!("the inclusion proof of entry {index}"), e))
    }

    /// The consistency proof between two tree sizes.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        if old == 0 || old > new {
            return Err(LedgerError::NoConsistency { old, new });
        }
        let source = CachedSource::new(&self.store, &[]);
        source.prefetch(&merkle::consistency_proof_reads(old, new))?;
        merkle::consistency_proof(&source, old, new)
            .map_err(|e| failure_of(format!("the consistency proof from {old} to {new}"), e))
    }

    /// The log's genesis, as verifiers pin it.
    pub fn genesis_document(&self) -> &GenesisDocument {
        &self.genesis_document
    }

    /// One page of a query over the entries the latest checkpoint covers (or, with a
    /// cursor, over the tree size of the query's first page).
    pub fn query(
        &self,
        filters: &Filters,
        cursor: Option<&str>,
        page_size: usize,
    ) -> Result<(Page, Arc<Published>), LedgerError> {
        let published = self.published();
        let cursor = cursor
            .map(|text| Cursor::decode(text, filters))
            .transpose()
            .map_err(LedgerError::Cursor)?;
        let page = crate::query::run(
            &self.store,
            filters,
            published.checkpoint.size,
            cursor,
            page_size,
        )?;
        Ok((page, published))
    }

    /// The completeness proof of a one-list query's answer at `published` (its checkpoint
    /// and index view): every entry on `posting` integrated in `since..=until`.
    pub fn prove_answer(
        &self,
        published: &Published,
        posting: &crate::store::Posting,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<IndexAnswer, ProveError> {
        let view = published.index.as_ref().ok_or_else(|| {
            ProveError::Refused(
                "this instance does not keep the verifiable index (it follows another \
                 instance's sequencer): ask the instance that sequences"
                    .into(),
            )
        })?;
        index::prove(&self.store, view, posting, since, until)
    }

    /// What a query answers about entry `index`: its record, leaf hash and signers.
    pub fn entry_facts(&self, index: u64) -> Result<(Vec<u8>, Vec<String>), LedgerError> {
        let bytes = self.entry(index)?;
        let signers = self.store.signers_of(index)?;
        Ok((bytes, signers))
    }

    /// Consecutive leaf records from `start` below `end` (0: the latest checkpoint's
    /// size), at most `max_entries` or about `max_bytes` (at least one).
    pub fn entries(
        &self,
        start: u64,
        end: u64,
        max_entries: u64,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, Arc<Published>), LedgerError> {
        let published = self.published();
        let size = published.checkpoint.size;
        let end = if end == 0 { size } else { end };
        if end > size {
            return Err(LedgerError::RangeBeyondLog { start, end, size });
        }
        if start >= size {
            return Err(LedgerError::RangeBeyondLog { start, end, size });
        }
        if start >= end {
            return Err(LedgerError::EmptyRange { start, end });
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in start..end.min(start.saturating_add(max_entries)) {
            let record = match self.store.entry(index) {
                Ok(Some(record)) => record,
                // Answer what comes before it; the next request names the missing or
                // damaged entry.
                Ok(None) | Err(_) if !out.is_empty() => break,
                Ok(None) => {
                    return Err(LedgerError::Missing(index));
                }
                Err(e) => return Err(e.into()),
            };
            bytes += record.len();
            out.push(record);
            if bytes >= max_bytes {
                break;
            }
        }
        Ok((out, published))
    }

    /// The hashes of complete subtrees `(level, index)`, in the order asked, read together
    /// (one request to a database). The caller asks only for subtrees below a published
    /// checkpoint.
    pub fn subtree_hashes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Hash>, LedgerError> {
        Ok(self.store.subtree_hashes(wanted)?)
    }

    /// Every leaf record of entries `start..end` (below a published checkpoint), in order.
    pub fn records(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
        let records = self.store.entries(start, end)?;
        if records.len() as u64 != end - start {
            return Err(LedgerError::Missing(start + records.len() as u64));
        }
        Ok(records)
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        Ok(self.store.subtree_hash(0, index)?)
    }
}

/// Reads and decodes entry `index`.
fn read_record(store: &Store, index: u64) -> Result<LeafRecord, LedgerError> {
    let bytes = store.entry(index)?.ok_or(LedgerError::Missing(index))?;
    LeafRecord::decode(&bytes).map_err(|source| LedgerError::Undecodable { index, source })
}

/// Builds a receipt and checks its proof against the checkpoint before handing it out.
fn build_receipt(
    record: LeafRecord,
    leaf_hash: Hash,
    source: &impl SubtreeSource<Error = StoreError>,
    note: &str,
    checkpoint: &Checkpoint,
) -> Result<Receipt, LedgerError> {
    let size = checkpoint.size;
    let index = record.index();
    let proof = merkle::inclusion_proof(source, index, size)
        .map_err(|e| failure_of(format!("the inclusion proof of entry {index}"), e))?;
    merkle::verify_inclusion(index, size, &leaf_hash, &proof, &checkpoint.root).map_err(|e| {
        failure_of(
            format!("the inclusion proof of entry {index} against the checkpoint"),
            e,
        )
    })?;
    Ok(Receipt {
        index,
        integrated_time_nanos: record.integrated_time_nanos(),
        previous_leaf_hash: record.previous_leaf_hash(),
        kind: record.kind(),
        leaf_hash,
        tree_size: size,
        proof,
        checkpoint: note.to_owned(),
        envelope: record.into_envelope(),
    })
}
