//! The verifiable index: range proofs, the map's proofs of presence and absence, and the
//! completeness of a period's answer — property-tested over random logs so that an answer
//! verifies exactly when it is the true list.

use std::collections::BTreeMap;

use evident_core::Hash;
use evident_core::merkle::{self, MemoryTree, leaf_hash, range_proof, root_from_range};
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::vindex::{
    BoundEntry, Chunks, Coverage, Element, IndexBuilder, IndexKey, ListHead, Map, MemoryList,
    SliceProof, TimeBound, list_root, prove_slice,
};
use proptest::prelude::*;

fn tree(size: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..size {
        t.push(leaf_hash(&i.to_be_bytes()));
    }
    t
}

#[test]
fn every_range_of_small_trees_proves_its_leaves_and_nothing_else() {
    for size in 1..=33u64 {
        let t = tree(size);
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for start in 0..size {
            for end in start + 1..=size {
                let proof = range_proof(&t, start, end, size).expect("proof");
                assert_eq!(proof.len(), merkle::range_proof_len(start, end, size));
                assert!(proof.len() <= 2 * 64);
                let got = &leaves[start as usize..end as usize];
                assert_eq!(
                    root_from_range(start, got, size, &proof),
                    Ok(t.root()),
                    "size {size}, {start}..{end}"
                );
                // Another leaf, a shifted start or a dropped leaf does not verify.
                let mut wrong = got.to_vec();
                wrong[0] = leaf_hash(b"other");
                assert_ne!(root_from_range(start, &wrong, size, &proof), Ok(t.root()));
                if start + 1 < end {
                    assert_ne!(
                        root_from_range(start, &got[1..], size, &proof),
                        Ok(t.root())
                    );
                }
                if end < size {
                    assert_ne!(root_from_range(start + 1, got, size, &proof), Ok(t.root()));
                }
            }
        }
    }
}

fn key(i: u8) -> Hash {
    Hash::sha256(&[i])
}

fn head(n: u64) -> ListHead {
    ListHead {
        len: n,
        root: Hash::sha256(&n.to_be_bytes()),
    }
}

/// The map of `entries`, made by inserting them in batches of `batch`.
fn map_of(entries: &[(Hash, ListHead)], batch: usize) -> Map {
    let mut map = Map::new();
    for chunk in entries.chunks(batch.max(1)) {
        let mut sorted: BTreeMap<Hash, ListHead> = BTreeMap::new();
        sorted.extend(chunk.iter().copied());
        let updates: Vec<(Hash, ListHead)> = sorted.into_iter().collect();
        map = map.update(&updates);
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The map's root depends only on what it holds, not on the order or batches of
    /// updates; every key present proves its head, every key absent proves the empty list,
    /// and no proof verifies for another key or another head.
    #[test]
    fn the_map_proves_each_key_exactly(
        present in proptest::collection::btree_map(any::<u8>(), 1u64..50, 0..60),
        batch in 1usize..9,
        rewrite in proptest::collection::vec((any::<u8>(), 1u64..50), 0..10),
    ) {
        let mut entries: Vec<(Hash, ListHead)> =
            present.iter().map(|(&k, &n)| (key(k), head(n))).collect();
        let one_go = map_of(&entries, usize::MAX);
        entries.reverse();
        let batched = map_of(&entries, batch);
        prop_assert_eq!(one_go.root(), batched.root());
        prop_assert_eq!(one_go.keys(), present.len() as u64);
        // Later updates of the same keys: the root is the root of the final contents.
        let mut last = present.clone();
        let mut map = batched;
        for (k, n) in &rewrite {
            map = map.update(&[(key(*k), head(*n))]);
            last.insert(*k, *n);
        }
        let fresh = map_of(&last.iter().map(|(&k, &n)| (key(k), head(n))).collect::<Vec<_>>(), 3);
        prop_assert_eq!(map.root(), fresh.root());
        let root = map.root();
        for k in 0..=255u8 {
            let proof = map.prove(&key(k));
            let want = last.get(&k).map_or(ListHead::empty(), |&n| head(n));
            prop_assert_eq!(proof.verify(&root, &key(k)), Ok(want));
            prop_assert_eq!(map.get(&key(k)), last.get(&k).map(|&n| head(n)));
            // The proof says nothing of another key (unless that key's path is the same).
            let other = key(k.wrapping_add(1));
            if let Ok(got) = proof.verify(&root, &other) {
                let truth = last.get(&k.wrapping_add(1)).map_or(ListHead::empty(), |&n| head(n));
                prop_assert_eq!(got, truth);
            }
            // A changed head does not verify.
            if let Some((kh, h)) = proof.terminal {
                let mut forged = proof.clone();
                forged.terminal = Some((kh, ListHead { len: h.len + 1, root: h.root }));
                prop_assert!(forged.verify(&root, &key(k)).is_err());
            }
        }
    }
}

/// A random log: each entry is on some of a few keys.
#[derive(Debug, Clone)]
struct Log {
    /// For each entry, the keys (0..KEYS) it is on.
    on: Vec<Vec<u8>>,
}

const KEYS: u8 = 5;

fn release(k: u8) -> IndexKey {
    IndexKey::Release(format!("app-{k}"), None)
}

fn leaf_of(index: u64) -> Hash {
    leaf_hash(&index.to_be_bytes())
}

impl Log {
    fn builder(&self) -> IndexBuilder {
        let mut b = IndexBuilder::new();
        for (i, keys) in self.on.iter().enumerate() {
            let keys: Vec<IndexKey> = keys.iter().map(|&k| release(k)).collect();
            b.add(i as u64, leaf_of(i as u64), &keys);
        }
        b
    }

    /// The true list of key `k`.
    fn list(&self, k: u8) -> Vec<Element> {
        self.on
            .iter()
            .enumerate()
            .filter(|(_, keys)| keys.contains(&k))
            .map(|(i, _)| Element {
                index: i as u64,
                leaf_hash: leaf_of(i as u64),
            })
            .collect()
    }
}

fn arb_log() -> impl Strategy<Value = Log> {
    proptest::collection::vec(
        proptest::collection::btree_set(0..KEYS, 0..3).prop_map(|s| s.into_iter().collect()),
        0..700,
    )
    .prop_map(|on| Log { on })
}

/// The honest answer for key `k` and the index range `lo..hi`, in pages of `page`
/// elements: slices from the fence before the range to the fence after it.
fn answer(
    log: &Log,
    b: &mut IndexBuilder,
    k: u8,
    lo: u64,
    hi: u64,
    page: usize,
) -> Vec<SliceProof> {
    let key = release(k).hash().expect("key");
    let map = b.commit().clone();
    let list = log.list(k);
    let state = b.list(&key).cloned().unwrap_or_default();
    let source = MemoryList {
        elements: &list,
        chunks: state.chunks().all(),
    };
    let len = list.len() as u64;
    if len == 0 {
        return vec![SliceProof {
            map: map.prove(&key),
            start: 0,
            elements: Vec::new(),
            hashes: Vec::new(),
        }];
    }
    let first_in = list.partition_point(|e| e.index < lo) as u64;
    let first_after = list.partition_point(|e| e.index < hi) as u64;
    let start = first_in.saturating_sub(1);
    let end = (first_after + 1).min(len);
    let mut pages = Vec::new();
    let mut at = start;
    while at < end {
        let to = (at + page as u64).min(end);
        pages.push(SliceProof {
            map: map.prove(&key),
            start: at,
            elements: list[at as usize..to as usize].to_vec(),
            hashes: prove_slice(&source, at, to, len).expect("proof"),
        });
        at = to;
    }
    pages
}

/// Verifies pages as a client does; the elements proven to be the answer.
fn check(
    pages: &[SliceProof],
    root: &Hash,
    k: u8,
    lo: u64,
    hi: u64,
    size: u64,
) -> Result<Vec<Element>, String> {
    let key = release(k).hash().expect("key");
    let mut coverage = Coverage::new();
    for p in pages {
        let slice = p.verify(root, &key, size).map_err(|e| e.to_string())?;
        coverage.add(&slice).map_err(|e| e.to_string())?;
    }
    coverage.finish(lo, hi).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The honest answer verifies and gives exactly the true list in the range; removing,
    /// adding or reordering an element, dropping a page or a fence, or proving another
    /// key's list is refused.
    #[test]
    fn an_answer_verifies_exactly_for_the_true_list(
        log in arb_log(),
        k in 0..KEYS,
        a in 0u64..800,
        w in 0u64..800,
        page in 1usize..40,
        tamper in 0usize..7,
        at in any::<prop::sample::Index>(),
    ) {
        let size = log.on.len() as u64;
        let (lo, hi) = (a.min(size), (a + w).min(size));
        let mut b = log.builder();
        let root = b.root();
        let pages = answer(&log, &mut b, k, lo, hi, page);
        let truth: Vec<Element> = log.list(k).into_iter().filter(|e| e.index >= lo && e.index < hi).collect();
        prop_assert_eq!(check(&pages, &root, k, lo, hi, size), Ok(truth.clone()));

        let mut forged = pages.clone();
        let all: usize = forged.iter().map(|p| p.elements.len()).sum();
        let changed = match tamper {
            // Remove an element.
            0 if all > 0 => {
                let p = at.index(forged.len());
                if forged[p].elements.is_empty() { false } else {
                    let i = at.index(forged[p].elements.len());
                    forged[p].elements.remove(i);
                    true
                }
            }
            // Add an element that is not on the list.
            1 => {
                let p = at.index(forged.len());
                let index = at.index(size.max(1) as usize) as u64;
                let pos = forged[p].elements.partition_point(|e| e.index < index);
                if forged[p].elements.get(pos).is_some_and(|e| e.index == index) { false } else {
                    forged[p].elements.insert(pos, Element { index, leaf_hash: leaf_of(index) });
                    true
                }
            }
            // Swap two neighbours.
            2 => {
                let p = at.index(forged.len());
                if forged[p].elements.len() < 2 { false } else {
                    let i = at.index(forged[p].elements.len() - 1);
                    forged[p].elements.swap(i, i + 1);
                    true
                }
            }
            // Drop a page.
            3 if forged.len() > 1 => {
                let p = at.index(forged.len());
                forged.remove(p);
                true
            }
            // Another leaf hash for an entry.
            4 if all > 0 => {
                let p = at.index(forged.len());
                if forged[p].elements.is_empty() { false } else {
                    let i = at.index(forged[p].elements.len());
                    forged[p].elements[i].leaf_hash = leaf_hash(b"forged");
                    true
                }
            }
            // Shift the slice's claimed position.
            5 if all > 0 => {
                let p = at.index(forged.len());
                forged[p].start += 1;
                true
            }
            // The pages of another key's list.
            6 => {
                let other = (k + 1) % KEYS;
                let theirs = answer(&log, &mut b, other, lo, hi, page);
                let same = log.list(other).into_iter().filter(|e| e.index >= lo && e.index < hi).collect::<Vec<_>>() == truth;
                forged = theirs;
                !same
            }
            _ => false,
        };
        if changed {
            let got = check(&forged, &root, k, lo, hi, size);
            prop_assert!(got != Ok(truth), "a forged answer verified: {:?}", got);
        }
    }
}

#[test]
fn an_answer_that_stops_short_of_a_fence_is_refused() {
    // Key 0 is on every third entry of 900.
    let log = Log {
        on: (0..900)
            .map(|i| if i % 3 == 0 { vec![0] } else { vec![1] })
            .collect(),
    };
    let size = 900;
    let mut b = log.builder();
    let root = b.root();
    let (lo, hi) = (300, 600);
    let pages = answer(&log, &mut b, 0, lo, hi, 17);
    assert_eq!(
        check(&pages, &root, 0, lo, hi, size).expect("honest").len(),
        100
    );
    // Without the element before the period, a leading omission could go unseen.
    let mut no_left = pages.clone();
    no_left[0].elements.remove(0);
    no_left[0].start += 1;
    no_left[0].hashes = prove_slice(
        &MemoryList {
            elements: &log.list(0),
            chunks: Chunks::none(),
        },
        no_left[0].start,
        no_left[0].start + no_left[0].elements.len() as u64,
        300,
    )
    .expect("proof");
    let err = check(&no_left, &root, 0, lo, hi, size).expect_err("no left fence");
    assert!(err.contains("where the period starts"), "{err}");
    // Without the element after it, a trailing omission could.
    let mut no_right = pages.clone();
    let last = no_right.len() - 1;
    no_right[last].elements.pop();
    let p = &mut no_right[last];
    p.hashes = prove_slice(
        &MemoryList {
            elements: &log.list(0),
            chunks: Chunks::none(),
        },
        p.start,
        p.start + p.elements.len() as u64,
        300,
    )
    .expect("proof");
    let err = check(&no_right, &root, 0, lo, hi, size).expect_err("no right fence");
    assert!(err.contains("where the period ends"), "{err}");
    // A list root under a checkpoint of another size does not match.
    let mut other = log.clone();
    other.on.push(vec![0]);
    let mut b2 = other.builder();
    assert_ne!(b2.root(), root);
}

#[test]
fn chunk_roots_give_the_same_proofs_as_the_elements() {
    let log = Log {
        on: (0..3000)
            .map(|i| if i % 2 == 0 { vec![0] } else { vec![0, 1] })
            .collect(),
    };
    let b = log.builder();
    let key = release(0).hash().expect("key");
    let state = b.list(&key).expect("list");
    let list = log.list(0);
    assert_eq!(state.chunks().len(), 3000 / 256);
    assert_eq!(state.head().root, list_root(&list));
    for (c, (first, _)) in state.chunks().to_vec().iter().enumerate() {
        assert_eq!(*first, list[c * 256].index);
    }
    let with = MemoryList {
        elements: &list,
        chunks: state.chunks().all(),
    };
    let without = MemoryList {
        elements: &list,
        chunks: Chunks::none(),
    };
    for (s, e) in [(0, 1), (255, 257), (1000, 1100), (2999, 3000), (0, 3000)] {
        assert_eq!(
            prove_slice(&with, s, e, 3000).expect("with chunks"),
            prove_slice(&without, s, e, 3000).expect("from elements")
        );
    }
}

/// A leaf record of entry `index` integrated at `time`.
fn record(index: u64, time: i64, previous: Hash) -> Vec<u8> {
    let envelope = evident_core::dsse::Envelope {
        payload_type: "application/vnd.in-toto+json".into(),
        payload: b"{}".to_vec(),
        signatures: vec![evident_core::dsse::Signature {
            sig: vec![7; 64],
            keyid: String::new(),
        }],
        sigstore: None,
    };
    LeafRecord::new(index, time, previous, EntryKind::Attestation, envelope)
        .expect("record")
        .encode()
}

#[test]
fn period_bounds_hold_only_at_the_true_index() {
    // Times 0, 10, 10, 20, 30, …: a time shared by two entries.
    let times: Vec<i64> = vec![0, 10, 10, 20, 30, 40, 40, 50];
    let mut records = Vec::new();
    let mut t = MemoryTree::new();
    let mut prev = Hash::ZERO;
    for (i, time) in times.iter().enumerate() {
        let r = record(i as u64, *time, prev);
        prev = leaf_hash(&r);
        t.push(prev);
        records.push(r);
    }
    let size = times.len() as u64;
    let root = t.root();
    let bound = |index: u64| TimeBound {
        index,
        before: (index > 0).then(|| BoundEntry {
            record: records[index as usize - 1].clone(),
            proof: merkle::inclusion_proof(&t, index - 1, size).expect("proof"),
        }),
        at: (index < size).then(|| BoundEntry {
            record: records[index as usize].clone(),
            proof: merkle::inclusion_proof(&t, index, size).expect("proof"),
        }),
    };
    // Since 10 (entries at 10 included): index 1. Until 40 inclusive: index 7.
    for (time, inclusive, want) in [
        (10, false, 1),
        (40, true, 7),
        (0, false, 0),
        (50, true, 8),
        (11, false, 3),
    ] {
        for index in 0..=size {
            let got = bound(index).verify(time, inclusive, size, &root);
            if index == want {
                assert_eq!(got, Ok(want), "time {time} inclusive {inclusive}");
            } else {
                let err = got.expect_err("off by one");
                assert!(err.to_string().contains("bound is off"), "{err}");
            }
        }
    }
    // A record that is not in the checkpoint is refused.
    let mut b = bound(3);
    b.at.as_mut().expect("at").record = record(3, 20, Hash::ZERO);
    assert!(b.verify(11, false, size, &root).is_err());
    // A missing neighbour is refused.
    let mut b = bound(3);
    b.before = None;
    assert!(b.verify(11, false, size, &root).is_err());
}
