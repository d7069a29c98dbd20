//! The gate's offline decision for a release with 50 attestations: decode the bundle, verify
//! the checkpoint, 50+ inclusion proofs and signatures, replay the registry, evaluate the
//! policy (payments-prod's four controls, reviews included). This is the work `evident
//! gate` does after fetching the bundle. Then the same re-performed as of a past time
//! (`evident gate --as-of`), and the auditor's report of the release built and rendered.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evident_client::oscal::assessment_results;
use evident_client::report::{Document, ReleaseReport, render_html, render_markdown};
use evident_core::bundle::{Bundle, BundleRequest};
use evident_core::fixtures::{ARTIFACT, DAY, PAYMENTS_PROD, artifact, commit, good_release, t0};
use evident_core::note::Verifier;
use evident_core::policy::Policy;
use evident_core::predicates::{TEST_RESULT_V0_1, VULNS_V0_2};
use evident_core::registry::GenesisDocument;
use serde_json::json;

/// The gate's time: a day after the evidence, within the scan's `max_age`.
fn gate_time() -> i64 {
    t0() + DAY
}

/// The complete payments-prod release (evident_core::fixtures), its policy, and 44 more
/// test runs and scans about the artifact and its commit: 50 attestations in all, with the
/// registry entries and the policy; the bundle of all of it.
fn build() -> (Bundle, Verifier, GenesisDocument) {
    build_with_later(0)
}

/// [`build`], and `later` more test runs logged after the gate's time: what a re-performed
/// decision as of that time sets aside.
fn build_with_later(later: usize) -> (Bundle, Verifier, GenesisDocument) {
    let mut s = good_release();
    s.add_policy(PAYMENTS_PROD);
    for i in 0..44 {
        if i % 2 == 0 {
            s.attest(
                1,
                TEST_RESULT_V0_1,
                commit(),
                json!({"result": "PASSED", "run": i}),
                t0(),
            );
        } else {
            s.attest(2, VULNS_V0_2, artifact(), json!({"scanner": {"result": [{"id": format!("CVE-2025-{i:04}"), "severity": [{"method": "nvd", "score": "LOW"}]}]}}), t0());
        }
    }
    for i in 0..later {
        s.attest(
            1,
            TEST_RESULT_V0_1,
            commit(),
            json!({"result": "FAILED", "later": i}),
            gate_time() + 1,
        );
    }
    (
        s.bundle(),
        s.log.verifier().clone(),
        s.log.genesis().clone(),
    )
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
            .decide(&request(), policy, gate_time())
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
                .decide(&request(), policy, gate_time())
                .expect("decides")
        })
    });
    // Re-performed as of the gate's time, with 10 failing test runs logged after it: every
    // check over all 60, the replay's state at the gate's time kept (cloned once), and the
    // decision over the 50 before it — still allowed.
    let (later, _, _) = build_with_later(10);
    let later_json = later.to_json();
    assert!(
        later
            .verify_as_of(&log_key, &genesis, Some(gate_time()))
            .expect("verifies")
            .decide(&request(), policy, gate_time())
            .expect("decides")
            .allowed
    );
    // The same bundle decided as the gate does, at the gate's time: what `--as-of` adds.
    group.bench_function("verify_bundle_and_evaluate/50_attestations_10_later", |b| {
        b.iter(|| {
            let bundle = Bundle::from_json(later_json.as_bytes()).expect("parses");
            let verified = bundle.verify(&log_key, &genesis).expect("verifies");
            let policy: &Policy = verified.policy("payments-prod", None).expect("policy");
            verified
                .decide(&request(), policy, gate_time())
                .expect("decides")
        })
    });
    group.bench_function("verify_as_of_and_evaluate/50_attestations_10_later", |b| {
        b.iter(|| {
            let bundle = Bundle::from_json(later_json.as_bytes()).expect("parses");
            let verified = bundle
                .verify_as_of(&log_key, &genesis, Some(gate_time()))
                .expect("verifies");
            let policy: &Policy = verified.policy("payments-prod", None).expect("policy");
            verified
                .decide(&request(), policy, gate_time())
                .expect("decides")
        })
    });
    // The auditor's report of the release from the verified bundle and its evaluation: the
    // model with its why sections, the HTML page, the Markdown and the OSCAL document.
    let report = verified
        .decide(&request(), policy, gate_time())
        .expect("decides");
    let catalogue = evident_core::frameworks::Catalogue::builtin();
    group.bench_function("report_build_and_render/50_attestations", |b| {
        b.iter(|| {
            let mut doc = Document::new("bench", gate_time(), &log_key, verified.checkpoint());
            doc.releases.push(ReleaseReport::new(
                "payments-api@1.4.2",
                &verified,
                policy,
                &report,
                &catalogue,
                &[evident_core::policy::SignerRule::Role("deploy".into())],
            ));
            let html = render_html(&doc);
            let markdown = render_markdown(&doc);
            let oscal = serde_json::to_vec(&assessment_results(&doc)).expect("serializes");
            (html.len(), markdown.len(), oscal.len())
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
