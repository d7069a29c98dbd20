//! Signature-check amplification (issue 11, finding 13): what one envelope stuffed with junk
//! signatures costs the server when 2,000 signer keys are registered.
//!
//! `bounded` is [`Registry::verifying_keys`] as the server, audit replay and bundles run it
//! (at most `MAX_SIGNATURES` signatures, a keyid tried against its key only, the others
//! sharing `MAX_UNHINTED_VERIFICATIONS` trials). `unbounded` is the check before the bound:
//! every signature tried against every registered key, for the 16 signatures the server
//! accepted then. `honest` is one signature with its keyid, the common case.
//!
//! Run with `cargo bench -p evident-benches --bench integrity`; the figures are in
//! `docs/SECURITY.md` ("Ledger integrity").

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, MAX_SIGNATURES, Signature};
use evident_core::registry::{Admin, Change, Registry, sign_change};
use evident_core::{PublicKey, SigningKey};

/// Registered signer keys.
const KEYS: usize = 2_000;
/// Signatures the server accepted per envelope before the bound.
const OLD_MAX_SIGNATURES: usize = 16;
const PREDICATE: &str = "https://in-toto.io/attestation/test-result/v0.1";

fn signer(i: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    SigningKey::from_bytes(&seed)
}

/// A registry with [`KEYS`] signers, each allowed for every predicate type.
fn registry() -> Registry {
    let admin = SigningKey::from_bytes(&[200; 32]);
    let mut registry = Registry::genesis(
        vec![Admin {
            identity: "admin@bench".into(),
            key: PublicKey::from_signing_key(&admin),
        }],
        1,
    )
    .expect("one administrator, threshold one");
    for i in 0..KEYS {
        let change = Change::AddSigner {
            identity: format!("signer-{i}@bench"),
            public_key: Some(PublicKey::from_signing_key(&signer(i)).to_hex()),
            roles: vec!["ci".into()],
            predicate_types: vec!["*".into()],
            not_before: None,
            not_after: None,
            certificate: None,
        };
        registry
            .apply(i as u64, 1_000 + i as i64, &sign_change(&change, &[&admin]))
            .expect("a new signer is added");
    }
    registry
}

fn payload() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": PREDICATE,
        "predicate": {"result": "PASSED"},
    }))
    .expect("JSON serializes")
}

fn junk(signatures: usize) -> Envelope {
    Envelope {
        payload: payload(),
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        signatures: (0..signatures)
            .map(|i| Signature {
                sig: vec![i as u8; 64],
                keyid: String::new(),
            })
            .collect(),
        sigstore: None,
    }
}

/// The check before the bound: every signature against every key.
fn unbounded(envelope: &Envelope, keys: &[PublicKey]) -> usize {
    let message = envelope.pae();
    envelope
        .signatures
        .iter()
        .filter(|s| keys.iter().any(|k| k.verify(&message, &s.sig)))
        .count()
}

fn amplification(c: &mut Criterion) {
    let registry = registry();
    let keys: Vec<PublicKey> = registry
        .signer_keys()
        .iter()
        .filter_map(|k| match k.credential {
            evident_core::registry::Credential::Ed25519(key) => Some(key),
            _ => None,
        })
        .collect();
    let mut group = c.benchmark_group("junk_signatures_2000_keys");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let bounded = junk(MAX_SIGNATURES);
    group.bench_function("bounded_8_signatures", |b| {
        b.iter(|| black_box(registry.verifying_keys(black_box(&bounded), PREDICATE)).is_err())
    });
    let old = junk(OLD_MAX_SIGNATURES);
    group.bench_function("unbounded_16_signatures", |b| {
        b.iter(|| black_box(unbounded(black_box(&old), &keys)))
    });
    let honest = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload(), &[&signer(KEYS - 1)]);
    group.bench_function("honest_1_signature", |b| {
        b.iter(|| black_box(registry.verifying_keys(black_box(&honest), PREDICATE)).is_ok())
    });
    group.finish();
}

criterion_group!(benches, amplification);
criterion_main!(benches);
