//! The registry's other signers: cosign's ECDSA keys and keyless signers (certificate
//! rules). Authorization depends only on what the registry says of the credential that
//! signed, at the integrated time; a certificate rule admits exactly the certificates it
//! describes.

use std::collections::BTreeMap;

use evident_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, Signature, pae};
use evident_core::ecdsa::EcKey;
use evident_core::registry::{
    Admin, AuthError, CertificateRule, Change, Credential, Registry, RegistryError, SignedBy,
    parse_time, pattern_matches, sign_change,
};
use evident_core::sigstore::CertIdentity;
use evident_core::{PublicKey, SigningKey};
use p256::ecdsa::signature::Signer as _;
use proptest::prelude::*;

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const WORKFLOW: &str =
    "https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/main";

fn t(text: &str) -> i64 {
    parse_time("test", text).unwrap()
}

fn admin() -> SigningKey {
    SigningKey::from_bytes(&[100; 32])
}

fn genesis() -> Registry {
    Registry::genesis(
        vec![Admin {
            identity: "admin@example.com".into(),
            key: PublicKey::from_signing_key(&admin()),
        }],
        1,
    )
    .unwrap()
}

fn apply(reg: &mut Registry, index: u64, time: &str, change: &Change) -> Result<(), RegistryError> {
    reg.apply(index, t(time), &sign_change(change, &[&admin()]))
        .map(|_| ())
}

/// A P-256 key as cosign makes one, and its PEM `PUBLIC KEY`.
fn p256_key(n: u8) -> (p256::ecdsa::SigningKey, String) {
    let sk = p256::ecdsa::SigningKey::from_bytes(&[n; 32].into()).unwrap();
    let point = sk.verifying_key().to_encoded_point(false);
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(point.as_bytes());
    (sk, EcKey::from_spki_der(&spki).unwrap().to_pem())
}

/// A DSSE envelope signed as cosign signs one: ECDSA P-256 over SHA-256 of the PAE, DER.
fn cosign_envelope(sk: &p256::ecdsa::SigningKey, keyid: &str) -> Envelope {
    let payload = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195"}}],
        "predicateType": PROVENANCE,
        "predicate": {}
    }))
    .unwrap();
    let signature: p256::ecdsa::Signature = sk.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    Envelope {
        payload,
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        signatures: vec![Signature {
            sig: signature.to_der().as_bytes().to_vec(),
            keyid: keyid.into(),
        }],
        sigstore: None,
    }
}

fn add_key(identity: &str, key: String) -> Change {
    Change::AddSigner {
        identity: identity.into(),
        public_key: Some(key),
        certificate: None,
        roles: vec!["ci".into()],
        predicate_types: vec![PROVENANCE.into()],
        not_before: None,
        not_after: None,
    }
}

fn rule(subject: &str, extensions: &[(&str, &str)]) -> CertificateRule {
    CertificateRule {
        issuer: GITHUB.into(),
        subject: subject.into(),
        extensions: extensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        trusted_root: None,
    }
}

fn add_keyless(identity: &str, rule: CertificateRule) -> Change {
    Change::AddSigner {
        identity: identity.into(),
        public_key: None,
        certificate: Some(rule),
        roles: vec!["release".into()],
        predicate_types: vec![PROVENANCE.into()],
        not_before: None,
        not_after: None,
    }
}

fn certificate(subject: &str, extensions: &[(&str, &str)]) -> SignedBy {
    SignedBy::Certificate {
        identity: CertIdentity {
            issuer: GITHUB.into(),
            subject: subject.into(),
            extensions: extensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        },
        root: "public-good".into(),
        signed_at: t("2026-11-01T00:00:00Z"),
    }
}

#[test]
fn a_cosign_p256_key_authorizes_dsse_it_signed_with_or_without_a_hint() {
    let (sk, pem) = p256_key(7);
    let mut reg = genesis();
    apply(
        &mut reg,
        0,
        "2026-11-01T00:00:00Z",
        &add_key("ci@payments", pem.clone()),
    )
    .unwrap();
    let key_id = EcKey::from_pem(&pem).unwrap().key_id();
    let now = t("2026-11-02T00:00:00Z");
    for hint in ["", key_id.as_str(), "not-a-key"] {
        let envelope = cosign_envelope(&sk, hint);
        let signers = reg.authorize_envelope(&envelope, PROVENANCE, now).unwrap();
        assert_eq!(signers.len(), 1, "hint {hint:?}");
        assert_eq!(signers[0].identity, "ci@payments");
        assert_eq!(signers[0].key_id, key_id);
    }
    // Another P-256 key's signature, a tampered payload: nobody.
    let (other, _) = p256_key(8);
    assert!(matches!(
        reg.authorize_envelope(&cosign_envelope(&other, ""), PROVENANCE, now),
        Err(AuthError::UnknownKey { .. })
    ));
    let mut tampered = cosign_envelope(&sk, "");
    tampered.payload.push(b' ');
    assert!(reg.authorize_envelope(&tampered, PROVENANCE, now).is_err());
    // Revoking the key by its PEM ends it, as for Ed25519 keys.
    let revoke = Change::RevokeKey {
        public_key: pem,
        from: Some("2026-11-03T00:00:00Z".into()),
        reason: "key leaked".into(),
    };
    apply(&mut reg, 1, "2026-11-02T12:00:00Z", &revoke).unwrap();
    let later = t("2026-11-03T00:00:00Z");
    assert!(matches!(
        reg.authorize_envelope(&cosign_envelope(&sk, ""), PROVENANCE, later),
        Err(AuthError::Revoked { .. })
    ));
    assert!(
        reg.authorize_envelope(&cosign_envelope(&sk, ""), PROVENANCE, now)
            .is_ok()
    );
}

#[test]
fn a_key_is_registered_once_whatever_its_encoding() {
    let (sk, pem) = p256_key(7);
    let mut reg = genesis();
    apply(
        &mut reg,
        0,
        "2026-11-01T00:00:00Z",
        &add_key("ci@payments", pem.clone()),
    )
    .unwrap();
    // The same point, compressed (SEC1 allows both): still the same key.
    let mut compressed =
        hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
    compressed.extend_from_slice(sk.verifying_key().to_encoded_point(true).as_bytes());
    let compressed = EcKey::from_spki_der(&compressed).unwrap();
    assert_eq!(compressed, EcKey::from_pem(&pem).unwrap());
    let before = reg.clone();
    for text in [pem, compressed.to_pem()] {
        let again = apply(
            &mut reg,
            1,
            "2026-11-01T00:00:00Z",
            &add_key("other@payments", text),
        );
        assert!(
            matches!(again, Err(RegistryError::Conflict(_))),
            "{again:?}"
        );
        assert_eq!(reg, before);
    }
}

#[test]
fn a_keyless_signer_is_authorized_by_matching_certificates_only() {
    let mut reg = genesis();
    let rule = rule(WORKFLOW, &[("runner_environment", "github-hosted")]);
    apply(
        &mut reg,
        0,
        "2026-11-01T00:00:00Z",
        &add_keyless("release@payments", rule),
    )
    .unwrap();
    let now = t("2026-11-02T00:00:00Z");
    let good = certificate(WORKFLOW, &[("runner_environment", "github-hosted")]);
    let signers = reg.authorize(&[good], PROVENANCE, now).unwrap();
    assert_eq!(signers.len(), 1);
    assert_eq!(signers[0].identity, "release@payments");
    assert_eq!(signers[0].roles.iter().collect::<Vec<_>>(), ["release"]);
    assert_eq!(
        signers[0].certificate.as_ref().map(|c| c.subject.as_str()),
        Some(WORKFLOW)
    );
    // Another workflow, another ref, a self-hosted runner, a missing extension: nobody.
    for wrong in [
        certificate(
            "https://github.com/acme/payments/.github/workflows/other.yml@refs/heads/main",
            &[("runner_environment", "github-hosted")],
        ),
        certificate(
            "https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/dev",
            &[("runner_environment", "github-hosted")],
        ),
        certificate(WORKFLOW, &[("runner_environment", "self-hosted")]),
        certificate(WORKFLOW, &[]),
    ] {
        assert!(
            matches!(
                reg.authorize(std::slice::from_ref(&wrong), PROVENANCE, now),
                Err(AuthError::UnknownCertificate { .. })
            ),
            "{wrong:?}"
        );
    }
    // The same subject from another issuer.
    let SignedBy::Certificate {
        mut identity,
        root,
        signed_at,
    } = certificate(WORKFLOW, &[("runner_environment", "github-hosted")])
    else {
        unreachable!()
    };
    identity.issuer = "https://token.actions.githubusercontent.com.evil.example".into();
    let forged = SignedBy::Certificate {
        identity,
        root,
        signed_at,
    };
    assert!(reg.authorize(&[forged], PROVENANCE, now).is_err());
    // Not for another predicate type.
    assert!(matches!(
        reg.authorize(
            &[certificate(
                WORKFLOW,
                &[("runner_environment", "github-hosted")]
            )],
            "https://in-toto.io/attestation/vulns/v0.2",
            now
        ),
        Err(AuthError::PredicateType { .. })
    ));
}

#[test]
fn revoke_signer_ends_a_keyless_signer_from_its_time_and_keeps_earlier_entries() {
    let mut reg = genesis();
    apply(
        &mut reg,
        0,
        "2026-11-01T00:00:00Z",
        &add_keyless("release@payments", rule(WORKFLOW, &[])),
    )
    .unwrap();
    let revoke = Change::RevokeSigner {
        identity: "release@payments".into(),
        from: Some("2026-11-05T00:00:00Z".into()),
        reason: "workflow compromised".into(),
    };
    apply(&mut reg, 1, "2026-11-04T00:00:00Z", &revoke).unwrap();
    let cert = certificate(WORKFLOW, &[]);
    let before = t("2026-11-04T23:59:59Z");
    let after = t("2026-11-05T00:00:00Z");
    assert!(
        reg.authorize(std::slice::from_ref(&cert), PROVENANCE, before)
            .is_ok()
    );
    assert!(matches!(
        reg.authorize(std::slice::from_ref(&cert), PROVENANCE, after),
        Err(AuthError::Revoked { .. })
    ));
    // Moving it later is refused; re-adding the identity after revocation works.
    let later = Change::RevokeSigner {
        identity: "release@payments".into(),
        from: Some("2026-11-06T00:00:00Z".into()),
        reason: "again".into(),
    };
    assert!(matches!(
        apply(&mut reg, 2, "2026-11-05T00:00:00Z", &later),
        Err(RegistryError::Conflict(_))
    ));
    apply(
        &mut reg,
        2,
        "2026-11-06T00:00:00Z",
        &add_keyless("release@payments", rule(WORKFLOW, &[])),
    )
    .unwrap();
    assert!(
        reg.authorize(&[cert], PROVENANCE, t("2026-11-07T00:00:00Z"))
            .is_ok()
    );
}

#[test]
fn bad_keyless_changes_are_refused_and_change_nothing() {
    let mut reg = genesis();
    let before = reg.clone();
    let (_, pem) = p256_key(3);
    let cases: Vec<(Change, &str)> = vec![
        (
            Change::AddSigner {
                identity: "x@y".into(),
                public_key: Some(pem),
                certificate: Some(rule(WORKFLOW, &[])),
                roles: vec![],
                predicate_types: vec!["*".into()],
                not_before: None,
                not_after: None,
            },
            "both",
        ),
        (
            Change::AddSigner {
                identity: "x@y".into(),
                public_key: None,
                certificate: None,
                roles: vec![],
                predicate_types: vec!["*".into()],
                not_before: None,
                not_after: None,
            },
            "missing",
        ),
        (
            add_keyless(
                "x@y",
                CertificateRule {
                    issuer: "https://*.githubusercontent.com".into(),
                    ..rule(WORKFLOW, &[])
                },
            ),
            "OIDC issuer exactly",
        ),
        (add_keyless("x@y", rule("*", &[])), "not be only"),
        (add_keyless("x@y", rule("", &[])), "subject"),
        (
            add_keyless("x@y", rule(WORKFLOW, &[("repository", "acme/payments")])),
            "not a Fulcio extension",
        ),
        (
            add_keyless(
                "x@y",
                CertificateRule {
                    trusted_root: Some("github".into()),
                    ..rule(WORKFLOW, &[])
                },
            ),
            "trust_sigstore",
        ),
        (
            Change::RevokeSigner {
                identity: "nobody@example.com".into(),
                from: None,
                reason: "x".into(),
            },
            "not registered",
        ),
        (
            Change::DistrustSigstore {
                name: "public-good".into(),
                reason: None,
            },
            "no Sigstore trusted root",
        ),
        (
            Change::TrustSigstore {
                name: "bad".into(),
                trusted_root: serde_json::json!(["not", "a", "root"]),
                reason: None,
            },
            "trusted_root",
        ),
    ];
    for (change, expect) in cases {
        let err = apply(&mut reg, 0, "2026-11-01T00:00:00Z", &change).unwrap_err();
        assert!(err.to_string().contains(expect), "{change:?}: {err}");
        assert_eq!(reg, before, "{change:?} changed the registry");
    }
    // A keyless signer has no key to rotate.
    apply(
        &mut reg,
        0,
        "2026-11-01T00:00:00Z",
        &add_keyless("release@payments", rule(WORKFLOW, &[])),
    )
    .unwrap();
    let rotate = Change::RotateSigner {
        identity: "release@payments".into(),
        new_public_key: PublicKey::from_signing_key(&SigningKey::from_bytes(&[5; 32])).to_hex(),
        old_key_not_after: None,
    };
    let err = apply(&mut reg, 1, "2026-11-01T00:00:00Z", &rotate).unwrap_err();
    assert!(err.to_string().contains("keyless"), "{err}");
}

#[test]
fn keyless_changes_round_trip_through_their_payload() {
    for change in [
        add_keyless(
            "release@payments",
            rule(WORKFLOW, &[("source_repository_ref", "refs/heads/main")]),
        ),
        Change::RevokeSigner {
            identity: "release@payments".into(),
            from: None,
            reason: "r".into(),
        },
        Change::DistrustSigstore {
            name: "github".into(),
            reason: None,
        },
    ] {
        assert_eq!(Change::from_payload(&change.to_payload()).unwrap(), change);
    }
}

#[test]
fn credentials_fingerprint_as_documented() {
    let ed = PublicKey::from_signing_key(&SigningKey::from_bytes(&[1; 32]));
    // An Ed25519 key's fingerprint is its raw bytes: dedupe keys of existing logs stay.
    assert_eq!(Credential::Ed25519(ed).fingerprint(), ed.to_bytes());
    let (_, pem) = p256_key(7);
    let ec = EcKey::from_pem(&pem).unwrap();
    assert_eq!(
        Credential::Ecdsa(ec.clone()).fingerprint(),
        ec.fingerprint()
    );
    let a = rule(WORKFLOW, &[]);
    let b = rule(WORKFLOW, &[("runner_environment", "github-hosted")]);
    assert_ne!(a.fingerprint(), b.fingerprint());
}

/// A string of path-like characters, with `/` and `@` likely.
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('/'), Just('@'), Just('a'), Just('b'), Just('.')],
        0..8,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn star_free() -> impl Strategy<Value = String> {
    text()
}

/// The definition, directly: a star takes 0, 1, 2… characters other than `/` and `@`.
fn reference(pattern: &[u8], value: &[u8]) -> bool {
    match pattern.split_first() {
        None => value.is_empty(),
        Some((b'*', rest)) => (0..=value.len())
            .take_while(|&n| n == 0 || !matches!(value[n - 1], b'/' | b'@'))
            .any(|n| reference(rest, &value[n..])),
        Some((c, rest)) => value.first() == Some(c) && reference(rest, &value[1..]),
    }
}

fn pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('*'), Just('/'), Just('@'), Just('a'), Just('b')],
        0..8,
    )
    .prop_map(|c| c.into_iter().collect())
}

proptest! {
    /// Patterns with any number of stars agree with the definition.
    #[test]
    fn patterns_with_many_stars_match_as_defined(p in pattern(), v in text()) {
        prop_assert_eq!(pattern_matches(&p, &v), reference(p.as_bytes(), v.as_bytes()));
    }

    #[test]
    fn a_pattern_without_a_star_matches_only_itself(p in star_free(), v in text()) {
        prop_assert_eq!(pattern_matches(&p, &v), p == v);
    }

    /// `HEAD*TAIL` matches exactly the values made of HEAD, a run without `/` or `@`, and
    /// TAIL: a star never reaches into another path segment or ref.
    #[test]
    fn a_star_matches_one_run_without_slash_or_at(
        head in star_free(), tail in star_free(), v in text(),
    ) {
        let pattern = format!("{head}*{tail}");
        let expected = v.len() >= head.len() + tail.len()
            && v.starts_with(&head)
            && v.ends_with(&tail)
            && !v[head.len()..v.len() - tail.len()].contains(['/', '@']);
        prop_assert_eq!(pattern_matches(&pattern, &v), expected);
    }

    /// A rule admits a certificate exactly when the issuer is equal, the subject matches
    /// and every extension it names is present and matches; extensions it does not name
    /// never matter.
    #[test]
    fn a_rule_admits_exactly_what_it_describes(
        issuer_equal in any::<bool>(),
        subject in text(),
        pattern in text(),
        ext in proptest::option::of(text()),
        ext_pattern in proptest::option::of(text()),
        noise in text(),
    ) {
        let rule = CertificateRule {
            issuer: GITHUB.into(),
            subject: format!("https://github.com/{pattern}"),
            extensions: ext_pattern.iter().map(|p| ("source_repository_ref".to_owned(), p.clone())).collect(),
            trusted_root: None,
        };
        let mut extensions: BTreeMap<String, String> =
            ext.iter().map(|e| ("source_repository_ref".to_owned(), e.clone())).collect();
        extensions.insert("build_trigger".into(), noise);
        let identity = CertIdentity {
            issuer: if issuer_equal { GITHUB.into() } else { format!("{GITHUB}/x") },
            subject: format!("https://github.com/{subject}"),
            extensions,
        };
        let expected = issuer_equal
            && pattern_matches(&rule.subject, &identity.subject)
            && match (&ext_pattern, &ext) {
                (None, _) => true,
                (Some(p), Some(e)) => pattern_matches(p, e),
                (Some(_), None) => false,
            };
        prop_assert_eq!(rule.matches(&identity, "public-good"), expected);
        // Naming a trusted root restricts to certificates that chain to it.
        let pinned = CertificateRule { trusted_root: Some("github".into()), ..rule.clone() };
        prop_assert!(!pinned.matches(&identity, "public-good"));
        prop_assert_eq!(pinned.matches(&identity, "github"), expected);
    }
}
