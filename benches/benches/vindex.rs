//! The verifiable index on a log of 1,000,000 entries: what keeping it costs the sequencer
//! per entry, what it holds in memory, and how large and how fast to check a completeness
//! proof is for answers of 1, 100 and 10,000 entries.
//!
//! Before any timing, the benchmark adds 1 M attestations to an `IndexBuilder` in batches
//! of 256, committing after each batch as the sequencer does. Each entry is on seven lists,
//! as a pipeline's attestation is: its kind, one of 5 predicate types, one of 50 signers
//! and one of 5 roles, its own subject digest (one per entry), one of 500 subject names,
//! and for every 100th entry a release name. Three subject names are special: `one`
//! (1 entry), `hundred` (100 entries) and `ten-thousand` (10,000 entries), spread over the
//! log. It prints the build's time per entry, the process's resident memory before and
//! after (the index's memory per entry), and each proof's size on the wire (the
//! `IndexProof` message, protobuf).
//!
//! It then rebuilds the same index from every entry's stored key hashes, as a restart does
//! (without the reading), and prints the time per entry.
//!
//! Then it times, for each answer, making the proof (the map path, the list's elements and
//! its range proof, from the list's elements and chunk roots in memory: on a server the
//! elements come from the posting lists) and verifying it as `evident query --verify` does
//! (`AnswerProof::verify` against a checkpoint). `signer-100-of-20000` is a period inside
//! a signer's list of 20,000 entries: 100 entries with the fences on either side, the rest
//! of the list proven by O(log n) hashes.
//!
//! `EVIDENT_BENCH_ENTRIES` sets the number of entries (default 1,000,000). Run with
//! `cargo bench -p evident-benches --bench vindex`; the figures are in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use evident_core::Hash;
use evident_core::note::Checkpoint;
use evident_core::record::EntryKind;
use evident_core::vindex::{
    AnswerProof, Element, IndexBuilder, IndexKey, IndexView, MemoryList, SliceProof, extension,
    prove_slice,
};

const DEFAULT_ENTRIES: u64 = 1_000_000;
const BATCH: u64 = 256;

fn entries() -> u64 {
    std::env::var("EVIDENT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ENTRIES)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn leaf(index: u64) -> Hash {
    Hash::sha256(&index.to_be_bytes())
}

/// The subject name of entry `i`: the three special names on their spread-out entries.
fn name_of(i: u64, n: u64) -> String {
    let every = |count: u64| n / count;
    if i == n / 2 {
        "one".into()
    } else if i % every(100) == 7 && i / every(100) < 100 {
        "hundred".into()
    } else if i % every(10_000) == 3 && i / every(10_000) < 10_000 {
        "ten-thousand".into()
    } else {
        format!("app-{}", i % 500)
    }
}

fn keys_of(i: u64, n: u64) -> Vec<IndexKey> {
    let mut keys = vec![
        IndexKey::Kind(EntryKind::Attestation),
        IndexKey::PredicateType(format!("https://example.com/predicate/{}", i % 5)),
        IndexKey::Signer(format!("signer-{}@example.com", i % 50)),
        IndexKey::Role(format!("role-{}", i % 5)),
        IndexKey::Subject("sha256".into(), leaf(i).to_hex()),
        IndexKey::SubjectName(name_of(i, n)),
    ];
    if i % 100 == 0 {
        keys.push(IndexKey::Release(format!("release-{}", i % 7), None));
    }
    keys
}

/// An answer to prove: a key and the positions of its list the answer covers.
struct Answer {
    name: &'static str,
    key: IndexKey,
    elements: Vec<Element>,
    start: u64,
    end: u64,
}

fn prove(view: &IndexView, a: &Answer) -> AnswerProof {
    let hash = a.key.hash().expect("key");
    let len = a.elements.len() as u64;
    let source = MemoryList {
        elements: &a.elements,
        chunks: view.chunks(&hash),
    };
    AnswerProof {
        key: a.key.bytes().expect("key"),
        slice: SliceProof {
            map: view.map.prove(&hash),
            start: a.start,
            elements: a.elements[a.start as usize..a.end as usize].to_vec(),
            hashes: prove_slice(&source, a.start, a.end, len).expect("proof"),
        },
        since: None,
        until: None,
    }
}

/// The proof's size as an `IndexProof` message on the wire (protobuf): every field's tag,
/// length and bytes.
fn wire_bytes(p: &AnswerProof) -> usize {
    fn bytes_field(len: usize) -> usize {
        1 + varint(len as u64) + len
    }
    fn varint(mut v: u64) -> usize {
        let mut n = 1;
        while v >= 0x80 {
            v >>= 7;
            n += 1;
        }
        n
    }
    let map = p.slice.map.siblings.len() * bytes_field(32)
        + p.slice.map.terminal.map_or(0, |(_, h)| {
            2 + bytes_field(32) + 1 + varint(h.len) + bytes_field(32)
        });
    let elements: usize = p
        .slice
        .elements
        .iter()
        .map(|e| {
            let inner = 1 + varint(e.index) + bytes_field(32);
            1 + varint(inner as u64) + inner
        })
        .sum();
    bytes_field(p.key.len())
        + 1
        + varint(map as u64)
        + map
        + 1
        + varint(p.slice.start)
        + elements
        + p.slice.hashes.len() * bytes_field(32)
}

fn bench(c: &mut Criterion) {
    let n = entries();
    let before = rss_bytes();
    let started = Instant::now();
    let mut builder = IndexBuilder::new();
    let mut lists: std::collections::HashMap<&'static str, Vec<Element>> = Default::default();
    let signer_7 = IndexKey::Signer("signer-7@example.com".into());
    for i in 0..n {
        let keys = keys_of(i, n);
        let element = Element {
            index: i,
            leaf_hash: leaf(i),
        };
        for (name, key) in [
            ("one", IndexKey::SubjectName("one".into())),
            ("hundred", IndexKey::SubjectName("hundred".into())),
            ("ten-thousand", IndexKey::SubjectName("ten-thousand".into())),
            ("signer-7", signer_7.clone()),
        ] {
            if keys.contains(&key) {
                lists.entry(name).or_default().push(element);
            }
        }
        builder.add(i, element.leaf_hash, &keys);
        if (i + 1) % BATCH == 0 {
            builder.commit();
        }
    }
    let view = builder.view();
    let built = started.elapsed();
    let after = rss_bytes();
    println!(
        "index of {n} entries, {} keys: built in {:.2} s ({:.2} µs per entry, 7 keys each, \
         committed every {BATCH}); resident memory {:.0} MiB more ({:.0} bytes per entry)",
        builder.keys(),
        built.as_secs_f64(),
        built.as_secs_f64() * 1e6 / n as f64,
        after.saturating_sub(before) as f64 / (1 << 20) as f64,
        after.saturating_sub(before) as f64 / n as f64,
    );
    // What a restart does: the same index from the stored keys (hashes) and leaf hashes,
    // without reading them (that is I/O, measured with the server).
    let hashed: Vec<Vec<Hash>> = (0..n)
        .map(|i| keys_of(i, n).iter().filter_map(IndexKey::hash).collect())
        .collect();
    let started = Instant::now();
    let mut again = IndexBuilder::new();
    for (i, keys) in hashed.iter().enumerate() {
        again.add_hashed(i as u64, leaf(i as u64), keys);
    }
    let rebuilt = again.root();
    println!(
        "rebuilt from stored key hashes in {:.2} s ({:.2} µs per entry); same root: {}",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e6 / n as f64,
        rebuilt == view.root()
    );
    drop(hashed);
    drop(again);
    let checkpoint = Checkpoint {
        origin: "bench".into(),
        size: n,
        root: Hash::ZERO,
        extensions: vec![extension(&view.root())],
    };
    let whole = |name: &'static str, list: &'static str, key: IndexKey| {
        let elements = lists[list].clone();
        let end = elements.len() as u64;
        Answer {
            name,
            key,
            elements,
            start: 0,
            end,
        }
    };
    let signer_list = lists["signer-7"].clone();
    let mid = signer_list.len() as u64 / 2;
    let answers = vec![
        whole("1", "one", IndexKey::SubjectName("one".into())),
        whole("100", "hundred", IndexKey::SubjectName("hundred".into())),
        whole(
            "10000",
            "ten-thousand",
            IndexKey::SubjectName("ten-thousand".into()),
        ),
        Answer {
            name: "signer-100-of-20000",
            key: signer_7,
            elements: signer_list,
            // The 100 entries and a fence on either side.
            start: mid - 1,
            end: mid + 101,
        },
    ];
    let mut group = c.benchmark_group("vindex_1m");
    for a in &answers {
        let proof = prove(&view, a);
        let lo = proof.slice.elements.first().map_or(0, |e| e.index);
        let hi = proof.slice.elements.last().map_or(0, |e| e.index + 1);
        let (lo, hi) = if a.start == 0 && a.end == a.elements.len() as u64 {
            (0, n)
        } else {
            (lo + 1, hi - 1)
        };
        let verify = |p: &AnswerProof| {
            let root = evident_core::vindex::root_from_extensions(&checkpoint.extensions)
                .expect("line")
                .expect("root");
            let slice = p
                .slice
                .verify(&root, &a.key.hash().expect("key"), n)
                .expect("verifies");
            let mut coverage = evident_core::vindex::Coverage::new();
            coverage.add(&slice).expect("adds");
            coverage.finish(lo, hi).expect("complete")
        };
        let got = verify(&proof);
        println!(
            "answer {}: {} entries, proof {} bytes on the wire ({} map hashes, {} elements, {} \
             range hashes)",
            a.name,
            got.len(),
            wire_bytes(&proof),
            proof.slice.map.siblings.len(),
            proof.slice.elements.len(),
            proof.slice.hashes.len()
        );
        if a.start == 0 {
            // The whole list: the same check `evident query --verify` makes.
            proof
                .verify(&checkpoint, &a.key, None, None)
                .expect("the answer verifies");
        }
        group.bench_function(format!("prove/{}", a.name), |b| {
            b.iter(|| black_box(prove(&view, a)))
        });
        group.bench_function(format!("verify/{}", a.name), |b| {
            b.iter(|| black_box(verify(&proof)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
