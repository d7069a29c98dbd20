//! Witness cosignatures: a K-of-N policy accepts a checkpoint exactly when K distinct
//! trusted witnesses validly cosigned that checkpoint, whatever else the note carries; and a
//! release policy with `[witnesses]` denies evidence proven at a checkpoint without them.

use evident_core::bundle::BundleRequest;
use evident_core::cosign::{
    CosignError, Cosigner, CosignerKey, WitnessPolicy, add_signature_lines,
};
use evident_core::fixtures::{ARTIFACT, DAY, PAYMENTS_PROD, good_release, key, t0};
use evident_core::note::{Checkpoint, Note, Signer};
use evident_core::policy::{Policy, Status, WITNESSES_CONTROL};
use evident_core::{Hash, SigningKey};
use proptest::prelude::*;

fn witness(n: u8) -> Cosigner {
    Cosigner::ed25519(&format!("w{n}.test"), SigningKey::from_bytes(&[n; 32])).unwrap()
}

fn checkpoint(size: u64) -> (String, Checkpoint) {
    let log = Signer::new("evident.test/log", key(200)).unwrap();
    let checkpoint = Checkpoint {
        origin: "evident.test/log".into(),
        size,
        root: Hash::sha256(&size.to_be_bytes()),
        extensions: Vec::new(),
    };
    (checkpoint.sign(&log).unwrap(), checkpoint)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `trusted` witnesses, `threshold` of them required; `signing` is which trusted ones
    /// cosign (with repeats), `strangers` how many untrusted keys cosign, `impostors` how many
    /// untrusted keys cosign under a trusted witness's name, and `bad` whether one trusted
    /// witness's line is over another checkpoint.
    #[test]
    fn a_checkpoint_passes_exactly_when_k_distinct_trusted_witnesses_cosigned_it(
        trusted in 1u8..6,
        threshold_pick in 0u8..6,
        signing in proptest::collection::vec(0u8..6, 0..10),
        strangers in 0u8..4,
        impostors in 0u8..3,
        bad in proptest::option::of(0u8..6),
        size in 1u64..1000,
    ) {
        let threshold = usize::from(threshold_pick % trusted) + 1;
        let witnesses: Vec<Cosigner> = (1..=trusted).map(witness).collect();
        let policy = WitnessPolicy::new(
            witnesses.iter().map(|w| w.key().clone()).collect(),
            threshold,
        )
        .unwrap();
        let (mut note, cp) = checkpoint(size);
        let body = cp.to_body();
        let mut honest = std::collections::BTreeSet::new();
        for pick in &signing {
            let i = usize::from(pick % trusted);
            note = add_signature_lines(&note, &witnesses[i].cosign(&body, 100 + u64::from(*pick)).unwrap()).unwrap();
            honest.insert(i);
        }
        for s in 0..strangers {
            let stranger = witness(100 + s);
            note = add_signature_lines(&note, &stranger.cosign(&body, 7).unwrap()).unwrap();
        }
        for s in 0..impostors {
            // A key of its own under a trusted witness's name: its key id differs, so the
            // line is not the trusted witness's and is ignored.
            let name = witnesses[usize::from(s % trusted)].key().name().to_owned();
            let impostor = Cosigner::ed25519(&name, SigningKey::from_bytes(&[200 - s; 32])).unwrap();
            note = add_signature_lines(&note, &impostor.cosign(&body, 7).unwrap()).unwrap();
        }
        if let Some(b) = bad {
            let (_, other) = checkpoint(size + 1);
            let i = usize::from(b % trusted);
            note = add_signature_lines(&note, &witnesses[i].cosign(&other.to_body(), 9).unwrap()).unwrap();
        }
        let parsed = Note::parse(&note).unwrap();
        let result = policy.check(&parsed, &cp);
        match (bad, result) {
            (Some(_), Err(CosignError::BadCosignature(_))) => {}
            (Some(_), other) => prop_assert!(false, "a bad trusted line must fail: {other:?}"),
            (None, Ok(cosigned)) => {
                prop_assert!(honest.len() >= threshold);
                let names: std::collections::BTreeSet<String> =
                    cosigned.iter().map(|c| c.witness.clone()).collect();
                let expected: std::collections::BTreeSet<String> = honest
                    .iter()
                    .map(|i| witnesses[*i].key().name().to_owned())
                    .collect();
                prop_assert_eq!(names, expected);
            }
            (None, Err(CosignError::TooFew { have, need, .. })) => {
                prop_assert!(honest.len() < threshold);
                prop_assert_eq!(have, honest.len());
                prop_assert_eq!(need, threshold);
            }
            (None, Err(other)) => prop_assert!(false, "unexpected {other}"),
        }
    }
}

/// The payments-prod policy with `[witnesses]` requiring `threshold` of `witnesses`.
fn policy_requiring(witnesses: &[&Cosigner], threshold: usize) -> Policy {
    let keys: Vec<String> = witnesses
        .iter()
        .map(|w| format!("{:?}", w.key().to_string()))
        .collect();
    Policy::parse(&format!(
        "{PAYMENTS_PROD}\n[witnesses]\nthreshold = {threshold}\nkeys = [{}]\n",
        keys.join(", ")
    ))
    .unwrap()
}

#[test]
fn a_release_policy_requiring_witnesses_denies_evidence_they_did_not_cosign() {
    let scenario = good_release();
    let (w1, w2) = (witness(1), witness(2));
    let policy = policy_requiring(&[&w1, &w2], 2);
    let request = BundleRequest::artifact(&format!("sha256:{ARTIFACT}"));
    let gate = t0() + DAY;
    let decide = |bundle: &evident_core::bundle::Bundle| {
        let verified = bundle
            .verify(scenario.log.verifier(), scenario.log.genesis())
            .unwrap();
        verified.decide(&request, &policy, gate).unwrap()
    };
    let mut bundle = scenario.bundle();
    // Without cosignatures: every control passes but the witnesses', so the release is
    // denied, saying why.
    let report = decide(&bundle);
    assert!(!report.allowed);
    let witnesses = report
        .controls
        .iter()
        .find(|c| c.id == WITNESSES_CONTROL)
        .unwrap();
    assert_eq!(witnesses.status, Status::Fail);
    assert!(
        witnesses
            .reason
            .contains("cosigned by 0 of the trusted witnesses, 2 required"),
        "{}",
        witnesses.reason
    );
    assert!(
        report
            .controls
            .iter()
            .filter(|c| c.id != WITNESSES_CONTROL)
            .all(|c| c.status == Status::Pass)
    );
    // One cosignature of two: still denied.
    let body = Note::parse(&bundle.checkpoint).unwrap().text;
    bundle.checkpoint = add_signature_lines(
        &bundle.checkpoint,
        &w1.cosign(&body, 1_800_000_000).unwrap(),
    )
    .unwrap();
    assert!(!decide(&bundle).allowed);
    // Both: allowed, and the verdict names them.
    bundle.checkpoint = add_signature_lines(
        &bundle.checkpoint,
        &w2.cosign(&body, 1_800_000_001).unwrap(),
    )
    .unwrap();
    let report = decide(&bundle);
    assert!(report.allowed, "{report:?}");
    let witnesses = report
        .controls
        .iter()
        .find(|c| c.id == WITNESSES_CONTROL)
        .unwrap();
    assert!(
        witnesses.reason.contains("w1.test, w2.test"),
        "{}",
        witnesses.reason
    );
    // The same policy without [witnesses] never reports the control.
    let plain = Policy::parse(PAYMENTS_PROD).unwrap();
    let verified = scenario
        .bundle()
        .verify(scenario.log.verifier(), scenario.log.genesis())
        .unwrap();
    let report = verified.decide(&request, &plain, gate).unwrap();
    assert!(report.controls.iter().all(|c| c.id != WITNESSES_CONTROL));
}

#[test]
fn a_policy_names_its_witnesses_correctly_or_is_refused_with_the_line() {
    let w1 = witness(1);
    let bad = |witnesses: &str| {
        Policy::parse(&format!("{PAYMENTS_PROD}\n{witnesses}"))
            .unwrap_err()
            .to_string()
    };
    let key = w1.key().to_string();
    let err = bad(&format!("[witnesses]\nthreshold = 2\nkeys = [{key:?}]\n"));
    assert!(
        err.contains("requires 2 cosignatures but trusts only 1"),
        "{err}"
    );
    let err = bad(&format!("[witnesses]\nthreshold = 0\nkeys = [{key:?}]\n"));
    assert!(err.contains("at least 1"), "{err}");
    let log_key = Signer::new("evident.test/log", key_of(7))
        .unwrap()
        .verifier()
        .to_string();
    let err = bad(&format!(
        "[witnesses]\nthreshold = 1\nkeys = [{log_key:?}]\n"
    ));
    assert!(err.contains("0x04"), "{err}");
    let err = bad(&format!(
        "[witnesses]\nthreshold = 1\nkeys = [{key:?}]\nthreshhold = 1\n"
    ));
    assert!(err.contains("threshhold"), "{err}");
    // A key parses back to the same witness.
    assert_eq!(&CosignerKey::parse(&key).unwrap(), w1.key());
}

fn key_of(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}
