//! Criterion benchmarks of what a pipeline's signature costs the server to check, by kind
//! of signer: an Ed25519 DSSE envelope, a cosign ECDSA P-256 envelope, and a Sigstore
//! bundle GitHub's attestations produced (certificate chain, SCT, Rekor entry with its
//! signed entry timestamp and inclusion proof) — the bundle on its own
//! (`sigstore::verify`) and through the registry (`verifying_keys` + `authorize`).
//!
//! Run with `cargo bench -p evident-benches --bench sigstore`; the figures are recorded in
//! `docs/PERFORMANCE.md`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, Signature, pae};
use evident_core::ecdsa::EcKey;
use evident_core::registry::{Admin, CertificateRule, Change, Registry, parse_time, sign_change};
use evident_core::sigstore::{Bundle, TrustedRoot, VerifyOptions, verify};
use evident_core::{PublicKey, SigningKey};
use p256::ecdsa::signature::Signer as _;

const PROVENANCE: &str = "https://slsa.dev/provenance/v1";

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/sigstore")
}

fn statement() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195"}}],
        "predicateType": PROVENANCE,
        "predicate": {}
    }))
    .expect("a statement serializes")
}

fn registry() -> (Registry, SigningKey, p256::ecdsa::SigningKey) {
    let admin = SigningKey::from_bytes(&[100; 32]);
    let mut registry = Registry::genesis(
        vec![Admin {
            identity: "admin@example.com".into(),
            key: PublicKey::from_signing_key(&admin),
        }],
        1,
    )
    .expect("a genesis");
    let ed = SigningKey::from_bytes(&[1; 32]);
    let ec = p256::ecdsa::SigningKey::from_bytes(&[2; 32].into()).expect("a P-256 key");
    let mut spki = hex_prefix();
    spki.extend_from_slice(ec.verifying_key().to_encoded_point(false).as_bytes());
    let root: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vectors().join("trusted_roots/production.trusted_root.json"))
            .expect("the production trusted root"),
    )
    .expect("JSON");
    let changes = [
        Change::TrustSigstore {
            name: "public-good".into(),
            trusted_root: root, reason: None, },
        add("ci@ed25519", Some(PublicKey::from_signing_key(&ed).to_hex()), None),
        add(
            "ci@cosign",
            Some(EcKey::from_spki_der(&spki).expect("an SPKI").to_pem()),
            None,
        ),
        add(
            "release@sigstore-js",
            None,
            Some(CertificateRule {
                issuer: "https://token.actions.githubusercontent.com".into(),
                subject: "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main".into(),
                extensions: Default::default(),
                trusted_root: None,
            }),
        ),
    ];
    let t = parse_time("t", "2026-11-01T00:00:00Z").expect("a time");
    for (i, change) in changes.iter().enumerate() {
        registry
            .apply(i as u64, t, &sign_change(change, &[&admin]))
            .expect("a registry change");
    }
    (registry, ed, ec)
}

fn hex_prefix() -> Vec<u8> {
    vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ]
}

fn add(identity: &str, public_key: Option<String>, certificate: Option<CertificateRule>) -> Change {
    Change::AddSigner {
        identity: identity.into(),
        public_key,
        certificate,
        roles: vec!["ci".into()],
        predicate_types: vec![PROVENANCE.into()],
        not_before: None,
        not_after: None,
    }
}

fn signers(c: &mut Criterion) {
    let (registry, ed, ec) = registry();
    let now = parse_time("t", "2026-11-02T00:00:00Z").expect("a time");
    let ed_envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement(), &[&ed]);
    let payload = statement();
    let sig: p256::ecdsa::Signature = ec.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    let ec_envelope = Envelope {
        payload,
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        signatures: vec![Signature {
            sig: sig.to_der().as_bytes().to_vec(),
            keyid: String::new(),
        }],
        sigstore: None,
    };
    let bytes = std::fs::read(vectors().join("github/sigstore-js-2.1.0-bundle.json"))
        .expect("the GitHub bundle");
    let bundle = Bundle::from_json(&bytes).expect("a bundle");
    let mut bundle_envelope = bundle.envelope().expect("a DSSE bundle").clone();
    bundle_envelope.sigstore = Some(bundle.material_json());
    let root = TrustedRoot::from_json(
        &std::fs::read(vectors().join("trusted_roots/production.trusted_root.json"))
            .expect("the root"),
    )
    .expect("a trusted root");
    for (name, envelope) in [
        ("authorize_ed25519_dsse", &ed_envelope),
        ("authorize_cosign_p256_dsse", &ec_envelope),
        ("authorize_github_sigstore_bundle", &bundle_envelope),
    ] {
        assert!(
            registry
                .authorize_envelope(envelope, PROVENANCE, now)
                .is_ok(),
            "{name}"
        );
        c.bench_function(name, |b| {
            b.iter(|| registry.authorize_envelope(black_box(envelope), PROVENANCE, now))
        });
    }
    c.bench_function("parse_github_sigstore_bundle", |b| {
        b.iter(|| Bundle::from_json(black_box(&bytes)))
    });
    c.bench_function("verify_github_sigstore_bundle", |b| {
        b.iter(|| verify(black_box(&bundle), &root, &VerifyOptions::default()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = signers
}
criterion_main!(benches);
