//! Bundle verification never panics, and no edit of a real bundle of a denied release
//! verifies to ALLOWED. The input is either bundle JSON (starting with `{`) or a list of
//! edits — 5 bytes each: an operation and a position — applied to that real bundle's JSON.
#![no_main]

use std::sync::LazyLock;

use evident_core::bundle::{Bundle, BundleRequest};
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::memlog::MemoryLog;
use evident_core::note::Verifier;
use evident_core::policy::POLICY_PAYLOAD_TYPE;
use evident_core::record::EntryKind;
use evident_core::registry::{Admin, Change, GenesisDocument, sign_change};
use evident_core::{PublicKey, SigningKey};
use libfuzzer_sys::fuzz_target;

const ARTIFACT: &str = "sha256:421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";
const POLICY: &str = "name = \"fuzz\"\nversion = 1\n[[control]]\nid = \"tests\"\n\
    predicate_type = \"https://in-toto.io/attestation/test-result/v0.1\"\n\
    signers = [\"role:ci\"]\nrequire = 'predicate.result == \"PASSED\"'\n";
const TIME: i64 = 1_764_000_000_000_000_000;

struct Fixture {
    key: Verifier,
    genesis: GenesisDocument,
    json: Vec<u8>,
}

/// A log with one CI signer, the policy, a passing test result about another artifact and
/// a failing one about `ARTIFACT`: the bundle of `ARTIFACT` is denied.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let admin = SigningKey::from_bytes(&[1; 32]);
    let ci = SigningKey::from_bytes(&[2; 32]);
    let genesis = GenesisDocument::of(
        &[Admin { identity: "admin".into(), key: PublicKey::from_signing_key(&admin) }],
        1,
    );
    let mut log = MemoryLog::new("fuzz.example/log", SigningKey::from_bytes(&[3; 32]), genesis.clone())
        .expect("a valid origin");
    let add = Change::AddSigner {
        identity: "ci@fuzz".into(),
        public_key: Some(PublicKey::from_signing_key(&ci).to_hex()),
        certificate: None,
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
    };
    log.append(EntryKind::Registry, TIME, sign_change(&add, &[&admin])).expect("fits");
    log.append(EntryKind::Policy, TIME, Envelope::sign(POLICY_PAYLOAD_TYPE, POLICY.into(), &[&admin]))
        .expect("fits");
    for (digest, result) in [(ARTIFACT, "FAILED"), ("sha256:00", "PASSED")] {
        let (alg, hex) = digest.split_once(':').expect("alg:hex");
        let statement = format!(
            "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{{\"name\":\"a\",\"digest\":{{\"{alg}\":\"{hex}\"}}}}],\
             \"predicateType\":\"https://in-toto.io/attestation/test-result/v0.1\",\"predicate\":{{\"result\":\"{result}\"}}}}"
        );
        log.append(EntryKind::Attestation, TIME + 1, Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.into_bytes(), &[&ci]))
            .expect("fits");
    }
    let bundle = log.bundle(BundleRequest::artifact(ARTIFACT), 0..log.size());
    Fixture { key: log.verifier().clone(), genesis, json: bundle.to_json().into_bytes() }
});

fn edited(edits: &[u8]) -> Vec<u8> {
    let mut json = FIXTURE.json.clone();
    for edit in edits.chunks_exact(5) {
        if json.is_empty() {
            break;
        }
        let at = u32::from_le_bytes([edit[1], edit[2], edit[3], edit[4]]) as usize % json.len();
        match edit[0] % 3 {
            0 => json[at] ^= 1 << (edit[0] >> 5),
            1 => {
                json.remove(at);
            }
            _ => json.insert(at, json[at]),
        }
    }
    json
}

fuzz_target!(|data: &[u8]| {
    let json = if data.first() == Some(&b'{') { data.to_vec() } else { edited(data) };
    let Ok(bundle) = Bundle::from_json(&json) else { return };
    let Ok(verified) = bundle.verify(&FIXTURE.key, &FIXTURE.genesis) else { return };
    let Ok(policy) = verified.policy("fuzz", None) else { return };
    if let Ok(report) = verified.decide(&BundleRequest::artifact(ARTIFACT), policy, i64::MAX / 2) {
        assert!(!report.allowed, "an edited bundle of a denied release was allowed");
    }
});
