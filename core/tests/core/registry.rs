//! The trust registry: every rejection leaves the state unchanged; revocation, rotation and
//! predicate-type rules decide authorization at the integrated time.

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use evident_core::registry::{
    Admin, AuthError, Change, REGISTRY_PAYLOAD_TYPE, Registry, RegistryError, parse_time,
    sign_change,
};
use evident_core::{PublicKey, SigningKey};
use proptest::prelude::*;

const T0: &str = "2026-11-01T00:00:00Z";
const TESTS: &str = "https://in-toto.io/attestation/test-result/v0.1";

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn public(n: u8) -> PublicKey {
    PublicKey::from_signing_key(&key(n))
}

fn t(text: &str) -> i64 {
    parse_time("test", text).unwrap()
}

fn genesis(admins: &[u8], threshold: usize) -> Registry {
    Registry::genesis(
        admins
            .iter()
            .map(|&n| Admin {
                identity: format!("admin-{n}@example.com"),
                key: public(n),
            })
            .collect(),
        threshold,
    )
    .unwrap()
}

fn add_signer(n: u8, identity: &str, types: &[&str]) -> Change {
    Change::AddSigner {
        identity: identity.into(),
        public_key: Some(public(n).to_hex()),
        roles: vec!["ci".into()],
        predicate_types: types.iter().map(|s| s.to_string()).collect(),
        not_before: None,
        not_after: None,
        certificate: None,
    }
}

fn attestation(signer: u8, predicate_type: &str) -> Envelope {
    let payload = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195"}}],
        "predicateType": predicate_type,
        "predicate": {}
    }))
    .unwrap();
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key(signer)])
}

/// Applies a change signed by `admins`, expecting success.
fn apply(reg: &mut Registry, index: u64, time: &str, change: Change, admins: &[u8]) {
    let keys: Vec<SigningKey> = admins.iter().map(|&n| key(n)).collect();
    let refs: Vec<&SigningKey> = keys.iter().collect();
    reg.apply(index, t(time), &sign_change(&change, &refs))
        .unwrap();
}

/// Applies a change expected to fail; asserts the state did not move.
fn refuse(reg: &mut Registry, change: Change, admins: &[u8]) -> RegistryError {
    let before = reg.clone();
    let keys: Vec<SigningKey> = admins.iter().map(|&n| key(n)).collect();
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let err = reg
        .apply(99, t(T0), &sign_change(&change, &refs))
        .unwrap_err();
    assert_eq!(*reg, before, "a refused change modified the registry");
    err
}

#[test]
fn a_registered_key_authorizes_its_predicate_types_only() {
    let mut reg = genesis(&[1], 1);
    apply(
        &mut reg,
        0,
        T0,
        add_signer(10, "ci@payments", &[TESTS]),
        &[1],
    );
    let ok = reg
        .authorize_envelope(&attestation(10, TESTS), TESTS, t(T0))
        .unwrap();
    assert_eq!(ok[0].identity, "ci@payments");
    let other = "https://slsa.dev/provenance/v1";
    let err = reg
        .authorize_envelope(&attestation(10, other), other, t(T0))
        .unwrap_err();
    assert!(matches!(err, AuthError::PredicateType { .. }), "{err}");
    assert!(err.to_string().contains(other));
    let err = reg
        .authorize_envelope(&attestation(11, TESTS), TESTS, t(T0))
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey { .. }), "{err}");
}

#[test]
fn revocation_refuses_later_attestations_and_keeps_earlier_ones_valid() {
    let mut reg = genesis(&[1], 1);
    apply(&mut reg, 0, T0, add_signer(10, "ci@payments", &["*"]), &[1]);
    let revoke = Change::RevokeKey {
        public_key: public(10).to_hex(),
        from: Some("2026-11-10T00:00:00Z".into()),
        reason: "key leaked in a build log".into(),
    };
    apply(&mut reg, 1, "2026-11-12T00:00:00Z", revoke, &[1]);
    let env = attestation(10, TESTS);
    assert!(
        reg.authorize_envelope(&env, TESTS, t("2026-11-09T23:59:59Z"))
            .is_ok()
    );
    let err = reg
        .authorize_envelope(&env, TESTS, t("2026-11-10T00:00:00Z"))
        .unwrap_err();
    assert!(matches!(err, AuthError::Revoked { .. }), "{err}");
    assert!(
        err.to_string().contains("key leaked in a build log"),
        "{err}"
    );
    assert!(err.to_string().contains("2026-11-10T00:00:00Z"), "{err}");
}

#[test]
fn rotation_accepts_the_new_key_and_ends_the_old_one() {
    let mut reg = genesis(&[1], 1);
    apply(
        &mut reg,
        0,
        T0,
        add_signer(10, "ci@payments", &[TESTS]),
        &[1],
    );
    let rotate = Change::RotateSigner {
        identity: "ci@payments".into(),
        new_public_key: public(11).to_hex(),
        old_key_not_after: Some("2026-11-05T00:00:00Z".into()),
    };
    apply(&mut reg, 1, "2026-11-03T00:00:00Z", rotate, &[1]);
    let new = reg
        .authorize_envelope(&attestation(11, TESTS), TESTS, t("2026-11-04T00:00:00Z"))
        .unwrap();
    assert_eq!(new[0].identity, "ci@payments");
    assert_eq!(
        new[0].roles.iter().next().map(String::as_str),
        Some("ci"),
        "roles carry over"
    );
    // The old key works during the grace period, and not after it.
    assert!(
        reg.authorize_envelope(&attestation(10, TESTS), TESTS, t("2026-11-04T00:00:00Z"))
            .is_ok()
    );
    let err = reg
        .authorize_envelope(&attestation(10, TESTS), TESTS, t("2026-11-05T00:00:00Z"))
        .unwrap_err();
    assert!(matches!(err, AuthError::Expired { .. }), "{err}");
    assert_eq!(reg.history("ci@payments").len(), 2);
}

#[test]
fn a_revocation_can_be_moved_earlier_but_not_later() {
    let mut reg = genesis(&[1], 1);
    apply(&mut reg, 0, T0, add_signer(10, "ci@payments", &["*"]), &[1]);
    let revoke = |from: &str| Change::RevokeKey {
        public_key: public(10).to_hex(),
        from: Some(from.into()),
        reason: "leak".into(),
    };
    // A mistyped year leaves the key valid for decades; the fix moves it earlier.
    apply(&mut reg, 1, T0, revoke("2062-11-10T00:00:00Z"), &[1]);
    let env = attestation(10, TESTS);
    assert!(
        reg.authorize_envelope(&env, TESTS, t("2026-11-11T00:00:00Z"))
            .is_ok()
    );
    apply(&mut reg, 2, T0, revoke("2026-11-10T00:00:00Z"), &[1]);
    assert!(matches!(
        reg.authorize_envelope(&env, TESTS, t("2026-11-11T00:00:00Z")),
        Err(AuthError::Revoked { .. })
    ));
    let err = refuse(&mut reg, revoke("2030-01-01T00:00:00Z"), &[1]);
    assert!(err.to_string().contains("only be moved earlier"), "{err}");
}

#[test]
fn a_signer_recovers_from_a_revoked_key_by_rotation_or_by_adding_it_again() {
    let mut reg = genesis(&[1], 1);
    apply(
        &mut reg,
        0,
        T0,
        add_signer(10, "ci@payments", &[TESTS]),
        &[1],
    );
    let rotate = |n: u8| Change::RotateSigner {
        identity: "ci@payments".into(),
        new_public_key: public(n).to_hex(),
        old_key_not_after: None,
    };
    let revoke = |n: u8| Change::RevokeKey {
        public_key: public(n).to_hex(),
        from: None,
        reason: "r".into(),
    };
    apply(&mut reg, 1, "2026-11-02T00:00:00Z", rotate(11), &[1]);
    apply(&mut reg, 2, "2026-11-03T00:00:00Z", revoke(11), &[1]);
    // Rotating away from the revoked key gives a key that works, with the signer's rights.
    apply(&mut reg, 3, "2026-11-04T00:00:00Z", rotate(12), &[1]);
    let ok = reg
        .authorize_envelope(&attestation(12, TESTS), TESTS, t("2026-11-05T00:00:00Z"))
        .unwrap();
    assert_eq!(ok[0].identity, "ci@payments");
    // With every key revoked, the identity may be added again.
    apply(&mut reg, 4, "2026-11-06T00:00:00Z", revoke(12), &[1]);
    apply(
        &mut reg,
        5,
        "2026-11-07T00:00:00Z",
        add_signer(13, "ci@payments", &[TESTS]),
        &[1],
    );
    assert!(
        reg.authorize_envelope(&attestation(13, TESTS), TESTS, t("2026-11-08T00:00:00Z"))
            .is_ok()
    );
    // While it has a live key, adding it again is refused.
    let err = refuse(&mut reg, add_signer(14, "ci@payments", &[TESTS]), &[1]);
    assert!(err.to_string().contains("rotate_signer"), "{err}");
}

#[test]
fn rotation_keeps_the_validity_window_and_refuses_a_key_that_could_never_be_valid() {
    let mut reg = genesis(&[1], 1);
    let windowed = Change::AddSigner {
        identity: "release@x".into(),
        public_key: Some(public(10).to_hex()),
        roles: vec!["release".into()],
        predicate_types: vec!["*".into()],
        not_before: Some("2027-01-01T00:00:00Z".into()),
        not_after: Some("2027-06-01T00:00:00Z".into()),
        certificate: None,
    };
    apply(&mut reg, 0, T0, windowed, &[1]);
    let rotate = |n: u8| Change::RotateSigner {
        identity: "release@x".into(),
        new_public_key: public(n).to_hex(),
        old_key_not_after: None,
    };
    apply(&mut reg, 1, "2026-11-02T00:00:00Z", rotate(11), &[1]);
    assert!(matches!(
        reg.authorize_envelope(&attestation(11, TESTS), TESTS, t("2026-12-01T00:00:00Z")),
        Err(AuthError::NotYetValid { .. })
    ));
    assert!(
        reg.authorize_envelope(&attestation(11, TESTS), TESTS, t("2027-02-01T00:00:00Z"))
            .is_ok()
    );
    let err = {
        let before = reg.clone();
        let e = reg
            .apply(
                2,
                t("2027-07-01T00:00:00Z"),
                &sign_change(&rotate(12), &[&key(1)]),
            )
            .unwrap_err();
        assert_eq!(reg, before);
        e
    };
    assert!(err.to_string().contains("would never be valid"), "{err}");
}

#[test]
fn validity_windows_are_enforced() {
    let mut reg = genesis(&[1], 1);
    let change = Change::AddSigner {
        identity: "scanner@sec".into(),
        public_key: Some(public(12).to_hex()),
        roles: vec!["scanner".into()],
        predicate_types: vec!["*".into()],
        not_before: Some("2026-11-02T00:00:00Z".into()),
        not_after: Some("2026-12-01T00:00:00Z".into()),
        certificate: None,
    };
    apply(&mut reg, 0, T0, change, &[1]);
    let env = attestation(12, TESTS);
    assert!(matches!(
        reg.authorize_envelope(&env, TESTS, t(T0)),
        Err(AuthError::NotYetValid { .. })
    ));
    assert!(
        reg.authorize_envelope(&env, TESTS, t("2026-11-15T00:00:00Z"))
            .is_ok()
    );
    assert!(matches!(
        reg.authorize_envelope(&env, TESTS, t("2026-12-01T00:00:00Z")),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn each_bad_change_is_refused_and_changes_nothing() {
    let mut reg = genesis(&[1, 2], 2);
    apply(
        &mut reg,
        0,
        T0,
        add_signer(10, "ci@payments", &["*"]),
        &[1, 2],
    );

    let err = refuse(&mut reg, add_signer(11, "x", &["*"]), &[1]);
    assert!(
        matches!(err, RegistryError::NotEnoughAdmins { threshold: 2, .. }),
        "{err}"
    );
    let err = refuse(&mut reg, add_signer(11, "x", &["*"]), &[1, 1]);
    assert!(
        matches!(err, RegistryError::NotEnoughAdmins { .. }),
        "same admin twice counts once: {err}"
    );
    let err = refuse(&mut reg, add_signer(11, "x", &["*"]), &[10, 11]);
    assert!(
        err.to_string()
            .contains("no signature is by an administrator"),
        "{err}"
    );

    let unknown = Change::RevokeKey {
        public_key: public(50).to_hex(),
        from: None,
        reason: "r".into(),
    };
    let err = refuse(&mut reg, unknown, &[1, 2]);
    assert!(err.to_string().contains("revokes an unknown key"), "{err}");

    let err = refuse(&mut reg, add_signer(10, "someone-else", &["*"]), &[1, 2]);
    assert!(
        err.to_string()
            .contains("already registered to ci@payments"),
        "{err}"
    );
    let err = refuse(&mut reg, add_signer(13, "ci@payments", &["*"]), &[1, 2]);
    assert!(err.to_string().contains("rotate_signer"), "{err}");
    let err = refuse(&mut reg, add_signer(13, "y", &[]), &[1, 2]);
    assert!(
        matches!(
            err,
            RegistryError::Field {
                field: "predicate_types",
                ..
            }
        ),
        "{err}"
    );
    let bad_time = Change::AddSigner {
        identity: "z".into(),
        public_key: Some(public(14).to_hex()),
        roles: vec![],
        predicate_types: vec!["*".into()],
        not_before: Some("yesterday".into()),
        not_after: None,
        certificate: None,
    };
    let err = refuse(&mut reg, bad_time, &[1, 2]);
    assert!(
        matches!(
            err,
            RegistryError::Field {
                field: "not_before",
                ..
            }
        ),
        "{err}"
    );
    let bad_key = Change::AddAdmin {
        identity: "w".into(),
        public_key: "abcd".into(),
        threshold: None,
    };
    let err = refuse(&mut reg, bad_key, &[1, 2]);
    assert!(
        matches!(
            err,
            RegistryError::Field {
                field: "public_key",
                ..
            }
        ),
        "{err}"
    );

    let err = refuse(
        &mut reg,
        Change::RemoveAdmin {
            public_key: public(2).to_hex(),
            threshold: Some(2),
        },
        &[1, 2],
    );
    assert!(
        matches!(
            err,
            RegistryError::Field {
                field: "threshold",
                ..
            }
        ),
        "{err}"
    );
    apply(
        &mut reg,
        1,
        T0,
        Change::RemoveAdmin {
            public_key: public(2).to_hex(),
            threshold: None,
        },
        &[1, 2],
    );
    assert_eq!((reg.admins().len(), reg.threshold()), (1, 1));
    let err = refuse(
        &mut reg,
        Change::RemoveAdmin {
            public_key: public(1).to_hex(),
            threshold: None,
        },
        &[1],
    );
    assert!(err.to_string().contains("leave no one"), "{err}");
}

#[test]
fn payloads_must_be_registry_changes() {
    let reg = genesis(&[1], 1);
    let wrong_type = Envelope::sign("application/json", b"{}".to_vec(), &[&key(1)]);
    assert!(matches!(
        reg.check_envelope(&wrong_type),
        Err(RegistryError::PayloadType(_))
    ));
    for payload in [
        &br#"{"op":"add_admin"}"#[..],
        br#"{"_type":"https://evident.dev/registry/change/v1","op":"explode"}"#,
        br#"{"_type":"https://evident.dev/registry/change/v1","op":"revoke_key","public_key":"00","reason":"r","extra":1}"#,
        b"[]",
    ] {
        let env = Envelope::sign(REGISTRY_PAYLOAD_TYPE, payload.to_vec(), &[&key(1)]);
        assert!(matches!(reg.check_envelope(&env), Err(RegistryError::Malformed(_))), "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn changes_round_trip_through_their_payload() {
    let change = add_signer(10, "ci@payments", &[TESTS]);
    assert_eq!(Change::from_payload(&change.to_payload()).unwrap(), change);
}

/// Day `d` after `T0`, as RFC 3339.
fn day_text(d: i64) -> String {
    evident_core::registry::time_text(t(T0) + d * 86_400_000_000_000)
}

/// A random change over a small universe of keys and identities, so that many are refused.
fn arb_change() -> impl Strategy<Value = (Change, Vec<u8>)> {
    let key_n = 10u8..16;
    let who = prop::sample::select(vec!["a@x", "b@x", "c@x"]);
    let change = prop_oneof![
        (key_n.clone(), who.clone()).prop_map(|(k, w)| add_signer(k, w, &["*"])),
        (key_n.clone(), who.clone(), prop::option::of(0i64..40)).prop_map(|(k, w, day)| {
            Change::RotateSigner {
                identity: w.into(),
                new_public_key: public(k).to_hex(),
                old_key_not_after: day.map(day_text),
            }
        }),
        (key_n.clone(), prop::option::of(0i64..40)).prop_map(|(k, day)| Change::RevokeKey {
            public_key: public(k).to_hex(),
            from: day.map(day_text),
            reason: "test".into()
        }),
        (1u8..4, 1usize..4).prop_map(|(k, th)| Change::AddAdmin {
            identity: format!("admin-{k}"),
            public_key: public(k).to_hex(),
            threshold: Some(th)
        }),
        (1u8..4).prop_map(|k| Change::RemoveAdmin {
            public_key: public(k).to_hex(),
            threshold: None
        }),
    ];
    (change, prop::collection::vec(1u8..4, 0..4))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Replaying any prefix of the log from genesis gives exactly the state the registry had
    /// at that point, and a refused change leaves the state as it was.
    #[test]
    fn replay_of_every_prefix_matches_the_incremental_state(
        changes in prop::collection::vec(arb_change(), 1..40),
    ) {
        let mut live = genesis(&[1], 1);
        let mut log: Vec<(u64, i64, Envelope)> = Vec::new();
        let mut states = vec![live.clone()];
        for (i, (change, signers)) in changes.into_iter().enumerate() {
            let keys: Vec<SigningKey> = signers.iter().map(|&n| key(n)).collect();
            let refs: Vec<&SigningKey> = keys.iter().collect();
            let env = sign_change(&change, &refs);
            let time = t(T0) + i as i64 * 1_000_000_000;
            let before = live.clone();
            match live.apply(i as u64, time, &env) {
                Ok(_) => log.push((i as u64, time, env)),
                Err(_) => prop_assert_eq!(&live, &before),
            }
            states.push(live.clone());
        }
        // An offline verifier sees only the accepted entries.
        let mut offline = genesis(&[1], 1);
        let mut accepted = log.iter().peekable();
        for (i, state) in states.iter().enumerate().skip(1) {
            while let Some((index, time, env)) = accepted.peek() {
                if *index as usize + 1 > i { break; }
                offline.apply(*index, *time, env).expect("an accepted entry applies offline");
                accepted.next();
            }
            prop_assert_eq!(&offline, state);
        }
    }
}

#[test]
fn names_the_log_cannot_carry_are_refused_in_changes_and_the_genesis() {
    use evident_core::registry::{Admin, Change, Registry, RegistryError};
    let key =
        evident_core::PublicKey::from_signing_key(&evident_core::SigningKey::from_bytes(&[4; 32]));
    for bad in [
        "\u{0}",
        "\n",
        "\u{1b}[31m",
        "\u{202e}",
        "\u{2028}",
        "\u{85}",
    ] {
        let genesis = Registry::genesis(
            vec![Admin {
                identity: format!("admin{bad}"),
                key,
            }],
            1,
        );
        assert!(matches!(genesis, Err(RegistryError::Name(_))), "{bad:?}");
        let change = Change::AddSigner {
            identity: "ci@x".into(),
            public_key: Some(key.to_hex()),
            roles: vec![format!("ci{bad}")],
            predicate_types: vec!["*".into()],
            not_before: None,
            not_after: None,
            certificate: None,
        };
        let err = Change::from_payload(&change.to_payload()).unwrap_err();
        assert!(err.to_string().contains("roles[0] holds"), "{err}");
    }
    let long = "x".repeat(evident_core::names::MAX_NAME_BYTES + 1);
    assert!(evident_core::names::check_name("identity", &long).is_err());
    assert!(evident_core::names::check_name("identity", " ").is_err());
    assert!(evident_core::names::check_optional_name("subject name", "").is_ok());
    assert!(evident_core::names::check_name("identity", "ci@payments — ü").is_ok());
}
