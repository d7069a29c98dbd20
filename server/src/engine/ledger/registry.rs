//! The read side's trust registry: as of the latest checkpoint, and as of any entry or
//! time, replayed from kept snapshots on the blocking pool.

use std::sync::Arc;

use evident_core::registry::Registry;

use super::{Ledger, LedgerError, failure_of, read_record};

/// Kept registry snapshots: registry entry index → (its integrated time, the registry after
/// it).
pub(super) type Snapshots = std::collections::BTreeMap<u64, (i64, Arc<Registry>)>;

/// Registry entries between two kept registry snapshots: the most an as-of read replays.
/// With 2,000 registry entries that is 31 snapshots.
pub const SNAPSHOT_EVERY: usize = 64;

/// `registry` (the registry before entry `start`) moved on over the registry entries in
/// `start..end`. Blocking: reads the store.
pub fn advance(
    store: &crate::store::Store,
    registry: &Registry,
    start: u64,
    end: u64,
) -> Result<Option<Registry>, LedgerError> {
    let entries = store.registry_entries(start, end)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut registry = registry.clone();
    for index in entries {
        let record = read_record(store, index)?;
        registry
            .apply(index, record.integrated_time_nanos(), record.envelope())
            .map_err(|e| failure_of(format!("replaying registry entry {index}"), e))?;
    }
    Ok(Some(registry))
}

impl Ledger {
    /// The registry as of the latest checkpoint.
    pub fn registry(&self) -> Arc<Registry> {
        self.published().registry.clone()
    }

    /// The registry as it was before entry `index`. Blocking: reads the store (call it
    /// off the async workers).
    pub fn registry_as_of(&self, index: u64) -> Result<Registry, LedgerError> {
        let size = self.published().checkpoint.size;
        self.replay_registry(index.min(size), i64::MAX)
            .map(|(registry, _)| registry)
    }

    /// The registry after every registry entry integrated at or before `time`, and the
    /// index up to which it holds (exclusive). Blocking, like [`Ledger::registry_as_of`].
    pub fn registry_as_of_time(&self, time: i64) -> Result<(Registry, u64), LedgerError> {
        let size = self.published().checkpoint.size;
        self.replay_registry(size, time)
    }

    /// The registry entries below `end` integrated at or before `time`, applied from the
    /// latest snapshot that precedes them (or the genesis); keeps a snapshot every
    /// [`SNAPSHOT_EVERY`] registry entries. Returns the registry and the index of the first
    /// entry not covered (`end`, or the first registry entry after `time`).
    fn replay_registry(&self, end: u64, time: i64) -> Result<(Registry, u64), LedgerError> {
        let entries = self.store.registry_entries(0, end)?;
        let start = {
            let snapshots = self
                .snapshots
                .lock()
                .expect("the snapshot lock is never held across a panic");
            // Integrated times never go backwards: the last snapshot at or before `time`.
            snapshots
                .range(..end)
                .rev()
                .find(|(_, (t, _))| *t <= time)
                .map(|(index, (_, registry))| (*index, registry.clone()))
        };
        let (mut registry, skip) = match start {
            Some((index, snapshot)) => match entries.binary_search(&index) {
                Ok(position) => ((*snapshot).clone(), position + 1),
                Err(_) => (self.genesis.as_ref().clone(), 0),
            },
            None => (self.genesis.as_ref().clone(), 0),
        };
        for (position, &index) in entries.iter().enumerate().skip(skip) {
            let record = read_record(&self.store, index)?;
            let at = record.integrated_time_nanos();
            if at > time {
                return Ok((registry, index));
            }
            registry
                .apply(index, at, record.envelope())
                .map_err(|e| failure_of(format!("replaying registry entry {index}"), e))?;
            if (position + 1) % SNAPSHOT_EVERY == 0 {
                self.snapshots
                    .lock()
                    .expect("the snapshot lock is never held across a panic")
                    .insert(index, (at, Arc::new(registry.clone())));
            }
        }
        Ok((registry, end))
    }
}
