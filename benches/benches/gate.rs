//! The gate's offline decision for a release with 50 attestations: decode the bundle, verify
//! the checkpoint, 50+ inclusion proofs and signatures, replay the registry, evaluate the
//! policy. This is the work `evident gate` does after fetching the bundle.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evident_core::bundle::{Bundle, BundleRequest};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::memlog::MemoryLog;
use evident_core::note::Verifier;
use evident_core::policy::{POLICY_PAYLOAD_TYPE, Policy};
use evident_core::record::EntryKind;
use evident_core::registry::{Admin, Change, GenesisDocument, sign_change};
use evident_core::{PublicKey, SigningKey};
use serde_json::json;

const ARTIFACT: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
const COMMIT: &str = "4f2a9c1e0d5b7a3c9e8f1a2b3c4d5e6f7a8b9c0d";
const POLICY: &str = r#"name = "payments-prod"
version = 1
[[control]]
id = "provenance"
predicate_type = "https://slsa.dev/provenance/v1"
signers = ["role:ci"]
[[control]]
id = "unit-tests"
predicate_type = "https://in-toto.io/attestation/test-result/v0.1"
signers = ["role:ci"]
subject = "source-commit"
require = 'predicate.result == "PASSED"'
[[control]]
id = "scan"
predicate_type = "https://in-toto.io/attestation/vulns/v0.2"
signers = ["role:ci"]
max_severity = "HIGH"
"#;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// A log of: one registry entry, one policy, provenance, and 48 more attestations about the
/// artifact and its commit; the bundle of all of it.
fn build() -> (Bundle, Verifier, GenesisDocument) {
    let admin = key(100);
    let genesis = GenesisDocument::of(
        &[Admin {
            identity: "admin".into(),
            key: PublicKey::from_signing_key(&admin),
        }],
        1,
    );
    let add = Change::AddSigner {
        identity: "ci@payments".into(),
        public_key: PublicKey::from_signing_key(&key(1)).to_hex(),
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
    };
    let statement =
        |subject: serde_json::Value, predicate_type: &str, predicate: serde_json::Value| {
            serde_json::to_vec(&json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [subject],
                "predicateType": predicate_type,
                "predicate": predicate,
            }))
            .expect("JSON serializes")
        };
    let artifact = json!({"name": "payments-api", "digest": {"sha256": ARTIFACT}});
    let commit = json!({"name": "payments", "digest": {"gitCommit": COMMIT}});
    let mut envelopes: Vec<(EntryKind, Envelope)> = vec![
        (EntryKind::Registry, sign_change(&add, &[&admin])),
        (
            EntryKind::Policy,
            Envelope::sign(POLICY_PAYLOAD_TYPE, POLICY.as_bytes().to_vec(), &[&admin]),
        ),
        (
            EntryKind::Attestation,
            Envelope::sign(
                IN_TOTO_PAYLOAD_TYPE,
                statement(
                    artifact.clone(),
                    "https://slsa.dev/provenance/v1",
                    json!({"buildDefinition": {"resolvedDependencies": [{"uri": "git+https://git.example.com/payments", "digest": {"gitCommit": COMMIT}}]}}),
                ),
                &[&key(1)],
            ),
        ),
    ];
    for i in 0..49 {
        let (subject, predicate_type, predicate) = if i % 2 == 0 {
            (
                commit.clone(),
                "https://in-toto.io/attestation/test-result/v0.1",
                json!({"result": "PASSED", "run": i}),
            )
        } else {
            (
                artifact.clone(),
                "https://in-toto.io/attestation/vulns/v0.2",
                json!({"scanner": {"result": [{"id": format!("CVE-2025-{i:04}"), "severity": [{"method": "nvd", "score": "LOW"}]}]}}),
            )
        };
        envelopes.push((
            EntryKind::Attestation,
            Envelope::sign(
                IN_TOTO_PAYLOAD_TYPE,
                statement(subject, predicate_type, predicate),
                &[&key(1)],
            ),
        ));
    }
    let mut log =
        MemoryLog::new("evident.bench/log", key(7), genesis.clone()).expect("a valid name");
    for (i, (kind, envelope)) in envelopes.into_iter().enumerate() {
        log.append(kind, 1_764_000_000_000_000_000 + i as i64, envelope)
            .expect("fits a leaf record");
    }
    let signer = log.verifier().clone();
    let bundle = log.bundle(request(), 0..log.size());
    (bundle, signer, genesis)
}

fn request() -> BundleRequest {
    BundleRequest::artifact(&format!("sha256:{ARTIFACT}"))
}

fn gate(c: &mut Criterion) {
    let (bundle, signer, genesis) = build();
    let json = bundle.to_json();
    let log_key = signer;
    // Check once that the bundle is what the benchmark claims: 50 attestations, allowed.
    let verified = bundle
        .verify(&log_key, &genesis)
        .expect("the bundle verifies");
    assert_eq!(verified.evidence().len(), 50);
    let policy = verified
        .policy("payments-prod", None)
        .expect("the policy is in the bundle");
    assert!(
        verified
            .decide(&request(), policy, i64::MAX / 2)
            .expect("the bundle answers the request")
            .allowed
    );
    let mut group = c.benchmark_group("gate");
    group.throughput(Throughput::Elements(50));
    group.bench_function("verify_bundle_and_evaluate/50_attestations", |b| {
        b.iter(|| {
            let bundle = Bundle::from_json(json.as_bytes()).expect("parses");
            let verified = bundle.verify(&log_key, &genesis).expect("verifies");
            let policy: &Policy = verified.policy("payments-prod", None).expect("policy");
            verified
                .decide(&request(), policy, i64::MAX / 2)
                .expect("decides")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = gate
}
criterion_main!(benches);
