//! Criterion micro-benchmarks of `evident-core`: DSSE verification, leaf hashing, Merkle
//! roots and proofs over a tree of 2^20 leaves, proof verification and checkpoint
//! verification.
//!
//! Run with `cargo bench -p evident-benches --bench core`; the figures are recorded in
//! `docs/PERFORMANCE.md`.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::merkle::{self, Frontier, MemoryTree};
use evident_core::note::{Checkpoint, Signer};
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::statement::Statement;
use evident_core::{Hash, PublicKey, SigningKey};

/// The size of the payload of every benchmarked envelope.
const PAYLOAD_LEN: usize = 1024;
/// Leaves in the in-memory tree: 2^20.
const TREE_LEAVES: u64 = 1 << 20;
/// The tree size the Merkle benchmarks ask about.
const TREE_SIZE: u64 = 1_000_000;
/// The leaf whose inclusion is proved.
const PROOF_INDEX: u64 = 123_456;
/// The older size of the consistency proof.
const OLD_SIZE: u64 = 500_000;
/// Envelopes in one verification batch.
const BATCH: usize = 64;
/// The log's origin, which is also its note key name.
const ORIGIN: &str = "evident.example.com/prod";

/// A fixed signing key, so every run signs the same bytes.
fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A SLSA provenance in-toto Statement v1 about one container image, padded to exactly
/// [`PAYLOAD_LEN`] bytes; `n` makes the subject digest (and so the payload) distinct.
fn statement_payload(n: u64) -> Vec<u8> {
    let subject = Hash::sha256(&n.to_be_bytes()).to_hex();
    let commit = &Hash::sha256(format!("commit {n}").as_bytes()).to_hex()[..40];
    let render = |invocation: &str| {
        format!(
            concat!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","#,
                r#""subject":[{{"name":"registry.example.com/payments/api","#,
                r#""digest":{{"sha256":"{subject}"}}}}],"#,
                r#""predicateType":"https://slsa.dev/provenance/v1","#,
                r#""predicate":{{"buildDefinition":{{"#,
                r#""buildType":"https://actions.github.io/buildtypes/workflow/v1","#,
                r#""externalParameters":{{"workflow":{{"#,
                r#""ref":"refs/heads/main","#,
                r#""repository":"https://github.com/example/payments","#,
                r#""path":".github/workflows/release.yml"}}}},"#,
                r#""internalParameters":{{"github":{{"event_name":"push","#,
                r#""repository_id":"123456789","repository_owner_id":"987654"}}}},"#,
                r#""resolvedDependencies":[{{"#,
                r#""uri":"git+https://github.com/example/payments@refs/heads/main","#,
                r#""digest":{{"gitCommit":"{commit}"}}}}]}},"#,
                r#""runDetails":{{"builder":{{"id":"https://github.com/actions/runner"}},"#,
                r#""metadata":{{"invocationId":"{invocation}","#,
                r#""startedOn":"2025-01-15T10:20:30Z","finishedOn":"2025-01-15T10:24:05Z"}}}}}}}}"#,
            ),
            subject = subject,
            commit = commit,
            invocation = invocation,
        )
    };
    let base = format!("https://github.com/example/payments/actions/runs/{n}");
    let bare = render(&base).len();
    assert!(
        bare <= PAYLOAD_LEN,
        "the statement without padding is {bare} bytes, over {PAYLOAD_LEN}"
    );
    let padded = format!("{base}/attempts/{}", "1".repeat(PAYLOAD_LEN - bare - 10));
    let payload = render(&padded).into_bytes();
    assert_eq!(payload.len(), PAYLOAD_LEN, "the payload is padded to 1 KiB");
    payload
}

/// An envelope over statement `n`, signed by `key`.
fn envelope(n: u64, key: &SigningKey) -> Envelope {
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement_payload(n), &[key]);
    Statement::from_envelope(&envelope).expect("the benchmark payload is a valid Statement v1");
    envelope
}

fn dsse_verify(c: &mut Criterion) {
    let key = signing_key(1);
    let trusted = [PublicKey::from_signing_key(&key)];
    let single = envelope(0, &key);
    single
        .verify(&trusted)
        .expect("the envelope verifies under its own key");
    let batch: Vec<Envelope> = (0..BATCH as u64).map(|n| envelope(n, &key)).collect();

    let mut group = c.benchmark_group("dsse_verify");
    group.sample_size(30);
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        b.iter(|| black_box(&single).verify(black_box(&trusted)))
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_64", |b| {
        b.iter(|| {
            for envelope in black_box(&batch) {
                let verified = envelope
                    .verify(black_box(&trusted))
                    .expect("every envelope of the batch verifies");
                black_box(verified);
            }
        })
    });
    group.finish();
}

fn leaf_hash(c: &mut Criterion) {
    let key = signing_key(1);
    let record = LeafRecord::new(
        1_000_000,
        1_736_936_645_000_000_000,
        Hash::sha256(b"the previous leaf"),
        EntryKind::Attestation,
        envelope(0, &key),
    )
    .expect("a 1 KiB envelope fits a leaf record");
    let encoded_len = record.encode().len() as u64;

    let mut group = c.benchmark_group("leaf_hash");
    group.throughput(Throughput::Bytes(encoded_len));
    group.bench_function("1KiB", |b| b.iter(|| black_box(&record).leaf_hash()));
    group.finish();
}

/// The leaf hash of entry `index` in the benchmark tree.
fn tree_leaf(index: u64) -> Hash {
    merkle::leaf_hash(&index.to_be_bytes())
}

/// The tree of [`TREE_LEAVES`] leaves, built once per process.
fn tree() -> &'static MemoryTree {
    static TREE: OnceLock<MemoryTree> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = MemoryTree::new();
        for index in 0..TREE_LEAVES {
            tree.push(tree_leaf(index));
        }
        tree
    })
}

fn merkle_1m(c: &mut Criterion) {
    let tree = tree();
    let frontier =
        Frontier::from_source(tree, TREE_SIZE).expect("the tree holds the first 1,000,000 leaves");
    let next_leaf = tree_leaf(TREE_SIZE);

    let mut group = c.benchmark_group("merkle_1M");
    group.bench_function("root", |b| {
        b.iter(|| merkle::root(black_box(tree), black_box(TREE_SIZE)))
    });
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            merkle::inclusion_proof(
                black_box(tree),
                black_box(PROOF_INDEX),
                black_box(TREE_SIZE),
            )
        })
    });
    group.bench_function("consistency_proof", |b| {
        b.iter(|| {
            merkle::consistency_proof(black_box(tree), black_box(OLD_SIZE), black_box(TREE_SIZE))
        })
    });
    group.bench_function("frontier_append", |b| {
        b.iter_batched(
            || frontier.clone(),
            |mut frontier| {
                let nodes = frontier.append(black_box(next_leaf));
                (frontier, nodes)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let tree = tree();
    let root = merkle::root(tree, TREE_SIZE).expect("the tree holds 1,000,000 leaves");
    let old_root = merkle::root(tree, OLD_SIZE).expect("the tree holds 500,000 leaves");
    let leaf = tree_leaf(PROOF_INDEX);
    let inclusion = merkle::inclusion_proof(tree, PROOF_INDEX, TREE_SIZE)
        .expect("leaf 123,456 is in the tree of 1,000,000");
    let consistency = merkle::consistency_proof(tree, OLD_SIZE, TREE_SIZE)
        .expect("500,000 and 1,000,000 allow a consistency proof");
    merkle::verify_inclusion(PROOF_INDEX, TREE_SIZE, &leaf, &inclusion, &root)
        .expect("the inclusion proof verifies");
    merkle::verify_consistency(OLD_SIZE, TREE_SIZE, &consistency, &old_root, &root)
        .expect("the consistency proof verifies");

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("inclusion", |b| {
        b.iter(|| {
            merkle::verify_inclusion(
                black_box(PROOF_INDEX),
                black_box(TREE_SIZE),
                black_box(&leaf),
                black_box(&inclusion),
                black_box(&root),
            )
        })
    });
    group.bench_function("consistency", |b| {
        b.iter(|| {
            merkle::verify_consistency(
                black_box(OLD_SIZE),
                black_box(TREE_SIZE),
                black_box(&consistency),
                black_box(&old_root),
                black_box(&root),
            )
        })
    });
    group.finish();
}

fn checkpoint(c: &mut Criterion) {
    let signer = Signer::new(ORIGIN, signing_key(2)).expect("the origin is a valid key name");
    let verifier = signer.verifier().clone();
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        size: TREE_SIZE,
        root: merkle::root(tree(), TREE_SIZE).expect("the tree holds 1,000,000 leaves"),
        extensions: Vec::new(),
    };
    let note = checkpoint
        .sign(&signer)
        .expect("a checkpoint body is a valid note text");
    Checkpoint::verify(&note, &verifier).expect("the checkpoint verifies under its signer");

    let mut group = c.benchmark_group("checkpoint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify", |b| {
        b.iter(|| Checkpoint::verify(black_box(&note), black_box(&verifier)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Ten benchmarks at about 4 s each, so a full run stays well under three minutes on two
    // cores; the DSSE group takes 30 samples, since one batch costs milliseconds.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = dsse_verify, leaf_hash, merkle_1m, verify, checkpoint
}
criterion_main!(benches);
