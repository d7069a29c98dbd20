//! The entry kinds' rules: a sequencer that reuses what the check on submit found
//! authorizes exactly what a replay of the log, verifying every signature itself, does.

use evident_core::PublicKey;
use evident_core::audit::Replay;
use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::keys::SigningKey;
use evident_core::kinds::{self, LogState, Refusal};
use evident_core::record::{EntryKind, LeafRecord};
use evident_core::registry::{Admin, Change, Registry, sign_change, time_text};
use proptest::prelude::*;

const TESTS: &str = "https://in-toto.io/attestation/test-result/v0.1";
const SCAN: &str = "https://in-toto.io/attestation/vulns/v0.2";
const SECOND: i64 = 1_000_000_000;

fn admin() -> SigningKey {
    SigningKey::from_bytes(&[200; 32])
}

fn signer(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n + 1; 32])
}

fn hex_key(key: &SigningKey) -> String {
    PublicKey::from_signing_key(key).to_hex()
}

fn genesis() -> Registry {
    Registry::genesis(
        vec![Admin {
            identity: "root".into(),
            key: PublicKey::from_signing_key(&admin()),
        }],
        1,
    )
    .unwrap()
}

/// One step of a log's history.
#[derive(Debug, Clone)]
enum Step {
    /// Register signer `n` for these predicate types, valid until `k` steps later less a
    /// quarter second (between that step's check and its integration), or for ever.
    Add(u8, Vec<&'static str>, Option<i64>),
    /// Revoke signer `n`'s key now, or from `k` steps later less a quarter second.
    Revoke(u8, Option<i64>),
    /// An attestation signed by these signers, checked on submit `lag` registry changes
    /// ago (the registry the check saw is that much older than the sequencer's).
    Attest(Vec<u8>, &'static str, u8, usize),
}

fn step() -> impl Strategy<Value = Step> {
    let types = prop::sample::subsequence(vec![TESTS, SCAN, "*"], 1..=2);
    prop_oneof![
        (0u8..4, types, prop::option::of(1i64..4)).prop_map(|(n, t, k)| Step::Add(n, t, k)),
        (0u8..4, prop::option::of(1i64..4)).prop_map(|(n, k)| Step::Revoke(n, k)),
        (
            prop::collection::vec(0u8..4, 1..=3),
            prop::sample::select(vec![TESTS, SCAN]),
            any::<u8>(),
            0usize..4
        )
            .prop_map(|(s, t, subject, lag)| Step::Attest(s, t, subject, lag)),
    ]
}

/// The time `k` steps after `time`, less a quarter second: after the check of an
/// attestation at that step (half a second before its integration), before its
/// integration.
fn between(time: i64, k: Option<i64>) -> Option<String> {
    k.map(|k| time_text(time + k * SECOND - SECOND / 4))
}

fn change(step: &Step, time: i64) -> Option<Envelope> {
    let change = match step {
        Step::Add(n, types, k) => Change::AddSigner {
            identity: format!("signer-{n}"),
            public_key: Some(hex_key(&signer(*n))),
            roles: vec![format!("role-{n}")],
            predicate_types: types.iter().map(|t| (*t).to_owned()).collect(),
            not_before: None,
            not_after: between(time, *k),
            certificate: None,
        },
        Step::Revoke(n, k) => Change::RevokeKey {
            public_key: hex_key(&signer(*n)),
            from: between(time, *k),
            reason: "rotated".into(),
        },
        Step::Attest(..) => return None,
    };
    Some(sign_change(&change, &[&admin()]))
}

fn attestation(signers: &[u8], predicate_type: &str, subject: u8) -> Envelope {
    let payload = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar", "digest": {"sha256": hex::encode([subject; 32])}}],
        "predicateType": predicate_type,
        "predicate": {"result": "PASSED"},
    });
    let keys: Vec<SigningKey> = signers.iter().map(|n| signer(*n)).collect();
    let keys: Vec<&SigningKey> = keys.iter().collect();
    Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&payload).unwrap(),
        &keys,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever registry the check on submit saw (the sequencer's, or one from before the
    /// last few registry changes), the sequencer's authorization of an attestation at its
    /// integrated time is the replay's: the same signers, or the same refusal. A key
    /// revoked, or whose validity ends, between the check and the integration never
    /// counts; a key added after the check counts as it would in the replay.
    #[test]
    fn the_sequencer_authorizes_what_a_replay_authorizes(
        steps in prop::collection::vec(step(), 1..24)
    ) {
        let mut state = LogState::new(genesis());
        // The registry after each registry change, oldest first.
        let mut history = vec![state.registry.clone()];
        let mut log = Log::default();
        let mut replay = Replay::new(genesis());
        let mut time = SECOND;
        for step in &steps {
            time += SECOND;
            let index = replay.size();
            if let Some(envelope) = change(step, time) {
                let kind = kinds::of(EntryKind::Registry);
                let facts = kind.authorize(&state, &envelope, None, time).unwrap();
                match kind.apply(&mut state, index, time, &envelope, facts) {
                    Ok(_) => {
                        history.push(state.registry.clone());
                        let bytes = log.append(index, time, EntryKind::Registry, envelope);
                        replay.push(&bytes).unwrap();
                    }
                    // A change that does not fit (a revocation of an unknown key, a key
                    // added twice) is refused and leaves the state as it was.
                    Err(Refusal::Registry(_)) => {
                        prop_assert_eq!(&state.registry, history.last().unwrap());
                    }
                    Err(other) => prop_assert!(false, "unexpected refusal {other}"),
                }
                continue;
            }
            let Step::Attest(signers, predicate_type, subject, lag) = step else {
                unreachable!()
            };
            let envelope = attestation(signers, predicate_type, *subject);
            let seen = &history[history.len().saturating_sub(1 + lag)];
            let kind = kinds::for_payload_type(IN_TOTO_PAYLOAD_TYPE).unwrap();
            // Refused on submit: never reaches the sequencer.
            let Ok(checked) = kind.check(seen, &envelope, time - SECOND / 2) else {
                continue;
            };
            let sequenced = kind.authorize(&state, &envelope, Some(&checked), time);
            let replayed = kind.authorize(&state, &envelope, None, time);
            prop_assert_eq!(&sequenced, &replayed);
            if let Ok(facts) = sequenced {
                // The same statement by the same signers again is answered with the first
                // entry's receipt and never appended.
                if !log.seen.insert(facts.dedupe_key(&envelope)) {
                    continue;
                }
                let bytes = log.append(index, time, EntryKind::Attestation, envelope);
                let (_, _, replayed) = replay.push(&bytes).unwrap();
                prop_assert_eq!(replayed, facts);
            }
        }
    }
}

/// Leaf records chained as the sequencer chains them.
struct Log {
    last: evident_core::Hash,
    seen: std::collections::HashSet<evident_core::Hash>,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            last: evident_core::Hash::ZERO,
            seen: Default::default(),
        }
    }
}

impl Log {
    fn append(&mut self, index: u64, time: i64, kind: EntryKind, envelope: Envelope) -> Vec<u8> {
        let record = LeafRecord::new(index, time, self.last, kind, envelope).unwrap();
        self.last = record.leaf_hash();
        record.encode()
    }
}

/// A subject digest whose algorithm is a known one in another case (`SHA256`) is refused on
/// submission, saying how to write it; a replay of a log that already holds one reads it
/// as it is, as its own algorithm.
#[test]
fn a_known_digest_algorithm_in_another_case_is_refused_on_submit_and_replayed_as_logged() {
    let mut registry = genesis();
    let add = sign_change(
        &Change::AddSigner {
            identity: "ci".into(),
            public_key: Some(hex_key(&signer(0))),
            roles: vec!["ci".into()],
            predicate_types: vec![TESTS.into()],
            not_before: None,
            not_after: None,
            certificate: None,
        },
        &[&admin()],
    );
    let mut state = LogState::new(registry.clone());
    let facts = kinds::of(EntryKind::Registry)
        .authorize(&state, &add, None, SECOND)
        .unwrap();
    kinds::of(EntryKind::Registry)
        .apply(&mut state, 0, SECOND, &add, facts)
        .unwrap();
    registry = state.registry.clone();
    let payload = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar", "digest": {"SHA256": hex::encode([7u8; 32])}}],
        "predicateType": TESTS,
        "predicate": {"result": "PASSED"},
    });
    let envelope = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&payload).unwrap(),
        &[&signer(0)],
    );
    let refused = kinds::of(EntryKind::Attestation)
        .check(&registry, &envelope, 2 * SECOND)
        .unwrap_err();
    assert!(matches!(refused, Refusal::Statement(_)), "{refused}");
    assert!(
        refused.to_string().contains("subject[0].digest.SHA256")
            && refused.to_string().contains("\"sha256\""),
        "{refused}"
    );
    // What the log already holds is read as logged: the replay's authorization stands.
    let facts = kinds::of(EntryKind::Attestation)
        .authorize(&state, &envelope, None, 2 * SECOND)
        .unwrap();
    assert_eq!(facts.subjects[0].0, "SHA256");
}
