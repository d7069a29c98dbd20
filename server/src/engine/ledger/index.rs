//! The verifiable index (`evident_core::vindex`) as the sequencer keeps it: rebuilt at
//! start from the indexes' key lists and the log's leaf hashes, added to with every batch,
//! its root signed in each checkpoint (the `evident-index` line), and its view at the
//! published checkpoint handed to readers, who prove answers with it.

use evident_core::Hash;
use evident_core::note::Checkpoint;
use evident_core::vindex::{self, Element, IndexBuilder};

use super::LedgerError;
use crate::store::{Store, StoreError};

/// Leaf hashes read per request while rebuilding.
const LEAVES_PER_READ: u64 = 16_384;

/// The index over the first `size` entries, from the indexes' key lists.
pub(super) fn rebuild(store: &Store, size: u64) -> Result<IndexBuilder, LedgerError> {
    let started = std::time::Instant::now();
    let mut leaves: Vec<Hash> = Vec::with_capacity(size as usize);
    let mut at = 0u64;
    while at < size {
        let end = (at + LEAVES_PER_READ).min(size);
        let wanted: Vec<(u32, u64)> = (at..end).map(|i| (0, i)).collect();
        leaves.extend(store.subtree_hashes(&wanted)?);
        at = end;
    }
    let mut builder = IndexBuilder::new();
    store.index().list_keys(size, &mut |key, index| {
        let leaf_hash = *leaves.get(index as usize).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the indexes list entry {index}, beyond the log's {size} entries"
            ))
        })?;
        builder
            .insert(*key, Element { index, leaf_hash })
            .map_err(|e| StoreError::Corrupt(format!("the indexes' key lists: {e}")))
    })?;
    builder.set_size(size);
    let root = builder.root();
    tracing::info!(
        entries = size,
        keys = builder.keys(),
        root = %root,
        ms = started.elapsed().as_millis() as u64,
        "rebuilt the verifiable index"
    );
    Ok(builder)
}

/// Moves `builder` on to the first `end` entries, from the indexes' keys of the entries
/// after it (a log another instance writes).
pub(super) fn extend(
    store: &Store,
    builder: &mut IndexBuilder,
    end: u64,
) -> Result<(), LedgerError> {
    let start = builder.size();
    if start >= end {
        return Ok(());
    }
    let wanted: Vec<(u32, u64)> = (start..end).map(|i| (0, i)).collect();
    let leaves = store.subtree_hashes(&wanted)?;
    store.index().keys_between(start, end, &mut |index, keys| {
        let leaf = leaves[(index - start) as usize];
        builder.add_hashed(index, leaf, keys);
        Ok(())
    })?;
    Ok(())
}

/// Holds a rebuilt index against the stored checkpoint when it is of the same size and
/// signs an index root: an index that disagrees with what was signed is refused.
pub(super) fn check_against(
    builder: &mut IndexBuilder,
    stored: Option<&Checkpoint>,
) -> Result<(), LedgerError> {
    let Some(cp) = stored.filter(|cp| cp.size == builder.size()) else {
        return Ok(());
    };
    let signed = vindex::root_from_extensions(&cp.extensions)
        .map_err(|e| LedgerError::Damaged(std::sync::Arc::new(StoreError::Corrupt(e.0))))?;
    let Some(signed) = signed else {
        return Ok(());
    };
    let rebuilt = builder.root();
    if signed != rebuilt {
        return Err(LedgerError::Damaged(std::sync::Arc::new(
            StoreError::Corrupt(format!(
                "the verifiable index rebuilt from the indexes has root {rebuilt}, but the \
                 signed checkpoint of {} entries says {signed}: the indexes were edited or \
                 lost (stop the server and run `evidentd reindex`)",
                cp.size
            )),
        )));
    }
    Ok(())
}

/// The most entries one proven answer holds: its proof carries every element, so it fits
/// in one response.
pub const MAX_PROVEN: u64 = 50_000;

/// A proven answer, and how many entries it has (those inside the period).
#[derive(Debug, Clone)]
pub struct IndexAnswer {
    /// The proof.
    pub proof: vindex::AnswerProof,
    /// How many entries the answer has.
    pub len: u64,
}

/// Why an answer could not be proven.
#[derive(Debug)]
pub enum ProveError {
    /// The query cannot be proven as asked (the words say why and what to do).
    Refused(String),
    /// Reading the store failed.
    Ledger(LedgerError),
}

impl<E: Into<LedgerError>> From<E> for ProveError {
    fn from(e: E) -> ProveError {
        ProveError::Ledger(e.into())
    }
}

/// One list at a view: elements by position from the posting list (below the view's
/// size), chunk roots from the view.
struct StoreList<'a> {
    store: &'a Store,
    posting: &'a crate::store::Posting,
    chunks: vindex::Chunks<'a>,
    len: u64,
    size: u64,
}

impl StoreList<'_> {
    /// The indexes at list positions `start..end`: read from the nearest complete chunk at
    /// or before `start` (or the list's start), in one read of the posting list.
    fn indexes(&self, start: u64, end: u64) -> Result<Vec<u64>, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let c = ((start / vindex::CHUNK) as usize).min(self.chunks.len());
        let from = if c < self.chunks.len() {
            Some(c)
        } else {
            c.checked_sub(1)
        };
        let (position, next) = from
            .and_then(|c| self.chunks.get(c).map(|(first, _)| (c, first)))
            .map_or((0, 0), |(c, first)| (c as u64 * vindex::CHUNK, first));
        let wanted = (end - position) as usize;
        let read = self
            .store
            .read_list(self.posting, next, self.size, wanted)?;
        if read.len() < wanted {
            return Err(StoreError::Corrupt(format!(
                "a posting list ends at position {}, before the {} entries its verifiable \
                 index commits",
                position + read.len() as u64,
                self.len
            )));
        }
        Ok(read[(start - position) as usize..].to_vec())
    }

    /// How many elements have an index below `index`: from the last chunk that starts
    /// below it, a read of at most a chunk and the list's incomplete end.
    fn rank(&self, index: u64) -> Result<u64, StoreError> {
        let c = self.chunks.starting_before(index);
        let (position, next) = c
            .checked_sub(1)
            .and_then(|c| self.chunks.get(c).map(|(first, _)| (c, first)))
            .map_or((0, 0), |(c, first)| (c as u64 * vindex::CHUNK, first));
        // The next chunk starts at or after `index`, so the answer lies within
        // 2 · CHUNK positions of this one (one chunk, and the incomplete end after it).
        let window = (self.len - position).min(2 * vindex::CHUNK) as usize;
        let read = self.store.read_list(self.posting, next, index, window)?;
        Ok(position + read.len() as u64)
    }
}

impl vindex::ListSource for StoreList<'_> {
    type Error = StoreError;

    fn elements(&self, start: u64, end: u64) -> Result<Vec<Element>, StoreError> {
        let indexes = self.indexes(start, end)?;
        let wanted: Vec<(u32, u64)> = indexes.iter().map(|&i| (0, i)).collect();
        let leaves = self.store.subtree_hashes(&wanted)?;
        Ok(indexes
            .into_iter()
            .zip(leaves)
            .map(|(index, leaf_hash)| Element { index, leaf_hash })
            .collect())
    }

    fn chunk(&self, chunk: u64) -> Result<Option<Hash>, StoreError> {
        Ok(self.chunks.get(chunk as usize).map(|(_, h)| h))
    }
}

/// The entries on either side of log index `index` in a log of `size`, with their
/// inclusion proofs.
fn bound(store: &Store, index: u64, size: u64) -> Result<vindex::TimeBound, LedgerError> {
    let entry = |at: u64| -> Result<vindex::BoundEntry, LedgerError> {
        let record = store
            .entry(at)?
            .ok_or_else(|| StoreError::Corrupt(format!("entry {at} is missing")))?;
        let proof = evident_core::merkle::inclusion_proof(store, at, size)
            .map_err(|e| super::failure_of("proving a period's bound", e))?;
        Ok(vindex::BoundEntry { record, proof })
    };
    Ok(vindex::TimeBound {
        index,
        before: index.checked_sub(1).map(entry).transpose()?,
        at: (index < size).then(|| entry(index)).transpose()?,
    })
}

/// Proves the answer to a one-list query at `view`: every entry on `posting` integrated in
/// `since..=until` (either end open).
pub fn prove(
    store: &Store,
    view: &vindex::IndexView,
    posting: &crate::store::Posting,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<IndexAnswer, ProveError> {
    let size = view.size;
    let key = posting
        .key()
        .and_then(|k| k.bytes())
        .ok_or_else(|| ProveError::Refused("this filter is not a list the index commits".into()))?;
    let hash = Hash::sha256(&key);
    let head = view.head(&hash);
    let lo = match since {
        Some(t) => crate::query::first_at_or_after(store, t, size)?,
        None => 0,
    };
    let hi = match until {
        Some(t) => match t.checked_add(1) {
            Some(after) => crate::query::first_at_or_after(store, after, size)?,
            None => size,
        },
        None => size,
    };
    let since = since.map(|_| bound(store, lo, size)).transpose()?;
    let until = until.map(|_| bound(store, hi, size)).transpose()?;
    let list = StoreList {
        store,
        posting,
        chunks: view.chunks(&hash),
        len: head.len,
        size,
    };
    let map = view.map.prove(&hash);
    if head.len == 0 {
        return Ok(IndexAnswer {
            proof: vindex::AnswerProof {
                key,
                slice: vindex::SliceProof {
                    map,
                    start: 0,
                    elements: Vec::new(),
                    hashes: Vec::new(),
                },
                since,
                until,
            },
            len: 0,
        });
    }
    let first_in = list.rank(lo)?;
    let first_after = if hi >= size { head.len } else { list.rank(hi)? };
    let len = first_after.saturating_sub(first_in);
    if len > MAX_PROVEN {
        return Err(ProveError::Refused(format!(
            "the answer has {len} entries, more than the {MAX_PROVEN} one proof holds: narrow \
             the period (since/until) and ask for each part"
        )));
    }
    let start = first_in.saturating_sub(1);
    let end = (first_after + 1).min(head.len);
    let elements = vindex::ListSource::elements(&list, start, end)?;
    let hashes = vindex::prove_slice(&list, start, end, head.len).map_err(|e| match e {
        evident_core::merkle::ProofError::Source(e) => ProveError::Ledger(e.into()),
        e => ProveError::Ledger(super::failure_of("proving a list slice", e)),
    })?;
    Ok(IndexAnswer {
        proof: vindex::AnswerProof {
            key,
            slice: vindex::SliceProof {
                map,
                start,
                elements,
                hashes,
            },
            since,
            until,
        },
        len,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use evident_core::audit::Facts;
    use evident_core::vindex::IndexKey;

    use super::*;
    use crate::query::tests::store_of;
    use crate::store::Posting;

    /// Entry `i` is signed by `a` when `i % 3 != 0`, by `b` when `i % 7 == 0`.
    fn facts(i: u64) -> Facts {
        let mut signers = Vec::new();
        if i % 3 != 0 {
            signers.push("a".to_owned());
        }
        if i % 7 == 0 {
            signers.push("b".to_owned());
        }
        Facts {
            signers,
            ..Facts::default()
        }
    }

    #[test]
    fn answers_over_long_lists_verify_for_every_period_and_hold_exactly_its_entries() {
        let n = 2_000u64;
        let (_dir, store) = store_of(n, facts);
        // The index as a restart builds it, from the indexes' key log.
        let mut builder = rebuild(&store, n).unwrap();
        let view = builder.view();
        assert!(
            view.chunks(&IndexKey::Signer("a".into()).hash().unwrap())
                .len()
                >= 5
        );
        let checkpoint = Checkpoint {
            origin: "test".into(),
            size: n,
            root: evident_core::merkle::root(&store, n).unwrap(),
            extensions: vec![vindex::extension(&view.root())],
        };
        // Entry `i` is integrated at nanosecond 1,000 + i. Periods inside, across and at
        // the edges of chunks, and past both ends.
        let times = [
            None,
            Some(0),
            Some(1_000),
            Some(1_100),
            Some(1_256),
            Some(1_333),
            Some(2_999),
            Some(5_000),
        ];
        type OnList = fn(u64) -> bool;
        let on: [(&str, OnList); 2] = [("a", |i| i % 3 != 0), ("b", |i| i % 7 == 0)];
        for (signer, every) in on {
            let key = IndexKey::Signer(signer.into());
            let posting = Posting::Signer(signer.into());
            for since in times {
                for until in times {
                    if let (Some(s), Some(u)) = (since, until) {
                        if s > u {
                            continue;
                        }
                    }
                    let answer = prove(&store, &view, &posting, since, until)
                        .unwrap_or_else(|_| panic!("proving {signer} {since:?}..{until:?}"));
                    let got = answer
                        .proof
                        .verify(&checkpoint, &key, since, until)
                        .unwrap();
                    let want: Vec<u64> = (0..n)
                        .filter(|&i| every(i))
                        .filter(|&i| {
                            let t = 1_000 + i as i64;
                            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
                        })
                        .collect();
                    let got: Vec<u64> = got.iter().map(|e| e.index).collect();
                    assert_eq!(got, want, "{signer} {since:?}..{until:?}");
                    assert_eq!(answer.len, want.len() as u64);
                }
            }
        }
    }
}
