//! Criterion micro-benchmarks of what witnesses and tiles add to a verifier: one witness
//! cosignature verified (Ed25519, ML-DSA-44), one signed (the witness's cost per checkpoint),
//! a 2-of-2 witness policy checked over a cosigned checkpoint, and an inclusion proof
//! computed from tiles (a client reading a log from a tiles URL) of a 2^20-leaf tree.
//!
//! Run with `cargo bench -p evident-benches --bench witness`; the figures are recorded in
//! `docs/PERFORMANCE.md`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use evident_core::cosign::{Cosigner, WitnessPolicy, add_signature_lines};
use evident_core::merkle::{self, MemoryTree};
use evident_core::note::{Checkpoint, Note, Signer};
use evident_core::tiles::{TileId, TiledTree, tile_hashes, tiles};
use evident_core::{Hash, SigningKey};

const ORIGIN: &str = "evident.example.com/prod";
/// Leaves of the tiled tree: 2^20.
const LEAVES: u64 = 1 << 20;

fn checkpoint() -> (String, Checkpoint) {
    let log = Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).expect("a valid name");
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: 1_000_000,
        root: Hash::sha256(b"root"),
        extensions: vec!["evident-registry 3 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()],
    };
    (checkpoint.sign(&log).expect("signs"), checkpoint)
}

fn cosignatures(c: &mut Criterion) {
    let (note, checkpoint) = checkpoint();
    let body = checkpoint.to_body();
    let ed = Cosigner::ed25519("w1.example", SigningKey::from_bytes(&[2; 32])).expect("name");
    let ed2 = Cosigner::ed25519("w2.example", SigningKey::from_bytes(&[3; 32])).expect("name");
    let pq = Cosigner::ml_dsa_44("pq.example", [4; 32]).expect("name");
    let mut group = c.benchmark_group("witness");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("cosign Ed25519", |b| {
        b.iter(|| ed.cosign(black_box(&body), 1_800_000_000).expect("cosigns"))
    });
    group.bench_function("cosign ML-DSA-44", |b| {
        b.iter(|| pq.cosign(black_box(&body), 1_800_000_000).expect("cosigns"))
    });
    let with = |lines: &[&Cosigner]| {
        let mut text = note.clone();
        for w in lines {
            text = add_signature_lines(&text, &w.cosign(&body, 1_800_000_000).expect("cosigns"))
                .expect("fits");
        }
        Note::parse(&text).expect("parses")
    };
    let ed_note = with(&[&ed]);
    group.bench_function("verify Ed25519 cosignature", |b| {
        b.iter(|| {
            ed.key()
                .verify_note(black_box(&ed_note), &checkpoint)
                .expect("verifies")
        })
    });
    let pq_note = with(&[&pq]);
    group.bench_function("verify ML-DSA-44 cosignature", |b| {
        b.iter(|| {
            pq.key()
                .verify_note(black_box(&pq_note), &checkpoint)
                .expect("verifies")
        })
    });
    let both = with(&[&ed, &ed2]);
    let policy =
        WitnessPolicy::new(vec![ed.key().clone(), ed2.key().clone()], 2).expect("a policy");
    group.bench_function("2-of-2 witness policy, Ed25519", |b| {
        b.iter(|| policy.check(black_box(&both), &checkpoint).expect("passes"))
    });
    group.finish();
}

fn tiled_proofs(c: &mut Criterion) {
    let mut tree = MemoryTree::new();
    for i in 0..LEAVES {
        tree.push(merkle::leaf_hash(&i.to_be_bytes()));
    }
    let store: HashMap<TileId, Vec<u8>> = tiles(LEAVES)
        .into_iter()
        .map(|id| (id, tile_hashes(&tree, id).expect("the tree has it")))
        .collect();
    let root = tree.root();
    let mut group = c.benchmark_group("tiles");
    group.bench_function(
        "inclusion proof from tiles, 2^20 leaves, tiles fetched and cached",
        |b| {
            b.iter(|| {
                // A client's fresh view: every proof fetches the tiles it needs.
                let tiled = TiledTree::new(LEAVES, |id: TileId| {
                    store.get(&id).cloned().ok_or("no such tile")
                });
                let index = black_box(123_456);
                let proof = merkle::inclusion_proof(&tiled, index, LEAVES).expect("a proof");
                merkle::verify_inclusion(
                    index,
                    LEAVES,
                    &merkle::leaf_hash(&index.to_be_bytes()),
                    &proof,
                    &root,
                )
                .expect("verifies");
            })
        },
    );
    group.finish();
}

criterion_group!(benches, cosignatures, tiled_proofs);
criterion_main!(benches);
