//! `TlogProof::parse` never panics and accepts only canonical text: a proof it accepts is
//! exactly its own `to_text`, which parses again to an equal proof. `TlogProof::verify`
//! (against the log key of `fuzz.example/log`, seed `[7; 32]`, and a 1-of-1 policy
//! trusting the Ed25519 witness `w.fuzz`, seed `[8; 32]`) never panics either.
#![no_main]

use std::sync::LazyLock;

use evident_core::SigningKey;
use evident_core::cosign::{Cosigner, WitnessPolicy};
use evident_core::merkle::leaf_hash;
use evident_core::note::{Signer, Verifier};
use evident_core::tlog_proof::TlogProof;
use evident_core::Hash;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    log: Verifier,
    policy: WitnessPolicy,
    leaf: Hash,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let log = Signer::new("fuzz.example/log", SigningKey::from_bytes(&[7; 32]))
        .expect("valid key name")
        .verifier()
        .clone();
    let witness = Cosigner::ed25519("w.fuzz", SigningKey::from_bytes(&[8; 32])).expect("valid name");
    let policy = WitnessPolicy::new(vec![witness.key().clone()], 1).expect("1 of 1");
    Fixture { log, policy, leaf: leaf_hash(b"fuzz entry") }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(proof) = TlogProof::parse(text) else {
        return;
    };
    let again = proof.to_text();
    assert_eq!(again, text, "a non-canonical tlog proof was accepted");
    assert_eq!(TlogProof::parse(&again).as_ref(), Ok(&proof));
    if let Ok(verified) = proof.verify(&FIXTURE.leaf, &FIXTURE.log, &FIXTURE.policy) {
        assert_eq!(verified.cosigned.len(), 1, "a verified proof without its cosignature");
        assert_eq!(verified.checkpoint.origin, "fuzz.example/log");
    }
});
