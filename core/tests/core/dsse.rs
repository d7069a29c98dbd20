//! `vectors/dsse/`: every case behaves as its file says.

use evident_core::dsse::{DsseError, Envelope, pae};
use evident_core::statement::{Statement, StatementError};

use crate::harness::{json_file, json_files, keys};

fn envelope(vector: &serde_json::Value) -> Envelope {
    Envelope::from_json(vector["envelope"].to_string().as_bytes()).expect("vector envelope decodes")
}

#[test]
fn every_dsse_vector_verifies_exactly_when_it_says_valid() {
    let vectors = json_files("dsse");
    assert_eq!(vectors.len(), 13, "all 13 DSSE cases are exercised");
    for (name, vector) in vectors {
        let env = envelope(&vector);
        let result = env.verify(&keys(&vector));
        let valid = vector["valid"].as_bool().expect("valid flag");
        assert_eq!(result.is_ok(), valid, "{name}: {result:?}");
    }
}

#[test]
fn pae_matches_the_vector_bytes() {
    let vector = json_file("dsse/single-signature.json");
    let env = envelope(&vector);
    let want = hex::decode(vector["pae_hex"].as_str().expect("pae_hex")).expect("hex");
    assert_eq!(env.pae(), want);
    assert_eq!(pae(&env.payload_type, &env.payload), want);
}

#[test]
fn pae_of_the_spec_example() {
    // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world").
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
}

#[test]
fn duplicate_signature_counts_one_key_towards_a_threshold() {
    let vector = json_file("dsse/duplicate-signature.json");
    let env = envelope(&vector);
    let trusted = keys(&vector);
    assert_eq!(
        env.verify_threshold(&trusted, 1).expect("1-of-2 holds"),
        vec![0]
    );
    assert_eq!(
        env.verify_threshold(&trusted, 2),
        Err(DsseError::Threshold {
            distinct: 1,
            threshold: 2
        })
    );
}

#[test]
fn two_distinct_keys_meet_a_two_of_two_threshold() {
    let vector = json_file("dsse/two-signatures.json");
    let env = envelope(&vector);
    assert_eq!(
        env.verify_threshold(&keys(&vector), 2)
            .expect("2-of-2 holds"),
        vec![0, 1]
    );
}

#[test]
fn no_signatures_is_its_own_error() {
    let vector = json_file("dsse/no-signatures.json");
    assert_eq!(
        envelope(&vector).verify(&keys(&vector)),
        Err(DsseError::NoSignatures)
    );
}

#[test]
fn tampered_payload_and_changed_type_fail_as_untrusted_signatures() {
    for case in ["tampered-payload", "changed-payload-type", "unknown-signer"] {
        let vector = json_file(&format!("dsse/{case}.json"));
        let err = envelope(&vector).verify(&keys(&vector)).unwrap_err();
        assert!(
            matches!(err, DsseError::NoTrustedSignature { signatures: 1, .. }),
            "{case}: {err}"
        );
    }
}

#[test]
fn urlsafe_and_standard_base64_decode_to_the_same_envelope() {
    let std_env = envelope(&json_file("dsse/single-signature.json"));
    let url_env = envelope(&json_file("dsse/urlsafe-base64.json"));
    assert_eq!(std_env, url_env);
}

#[test]
fn unpadded_base64_is_accepted() {
    let vector = json_file("dsse/single-signature.json");
    let mut json = vector["envelope"].clone();
    let unpad = |v: &mut serde_json::Value| {
        let s = v.as_str().expect("string").trim_end_matches('=').to_owned();
        *v = serde_json::Value::String(s);
    };
    unpad(&mut json["payload"]);
    unpad(&mut json["signatures"][0]["sig"]);
    let env = Envelope::from_json(json.to_string().as_bytes()).expect("unpadded decodes");
    assert!(env.verify(&keys(&vector)).is_ok());
}

#[test]
fn bad_base64_names_the_field() {
    let vector = json_file("dsse/two-signatures.json");
    let mut json = vector["envelope"].clone();
    json["signatures"][1]["sig"] = "not*base64".into();
    let err = Envelope::from_json(json.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(&err, DsseError::Base64 { field, .. } if field == "signatures[1].sig"),
        "{err}"
    );
    assert!(err.to_string().contains("signatures[1].sig"));
}

#[test]
fn malformed_json_is_refused() {
    for bad in [&b"{"[..], b"[]", b"{\"payload\":\"e30=\"}", b"null"] {
        let err = Envelope::from_json(bad).unwrap_err();
        assert!(matches!(err, DsseError::Json(_)), "{err}");
    }
}

#[test]
fn json_round_trips() {
    let env = envelope(&json_file("dsse/two-signatures.json"));
    assert_eq!(Envelope::from_json(env.to_json().as_bytes()).unwrap(), env);
}

#[test]
fn signing_then_verifying_with_the_right_key_only() {
    let key = evident_core::SigningKey::from_bytes(&[9; 32]);
    let other = evident_core::SigningKey::from_bytes(&[10; 32]);
    let public = |k: &evident_core::SigningKey| evident_core::PublicKey::from_signing_key(k);
    let env = Envelope::sign("text/plain", b"hello".to_vec(), &[&key]);
    assert_eq!(env.signatures[0].keyid, public(&key).key_id());
    assert_eq!(env.verify(&[public(&other), public(&key)]), Ok(vec![1]));
    assert!(env.verify(&[public(&other)]).is_err());
}

#[test]
fn legacy_link_has_a_good_signature_but_is_not_a_statement() {
    let vector = json_file("dsse/legacy-link-not-statement.json");
    let env = envelope(&vector);
    assert!(env.verify(&keys(&vector)).is_ok(), "its signature is valid");
    assert_eq!(
        Statement::from_envelope(&env),
        Err(StatementError::LegacyLink)
    );
}

#[test]
fn every_valid_statement_vector_parses() {
    for case in [
        "single-signature",
        "approval",
        "vuln-scan",
        "two-signatures",
        "no-keyid",
    ] {
        let env = envelope(&json_file(&format!("dsse/{case}.json")));
        let statement = Statement::from_envelope(&env).expect(case);
        assert!(!statement.subjects.is_empty());
    }
}

#[test]
fn weak_keys_are_refused() {
    // The identity point and a point of order 8 (both small-order, so "weak").
    for hex_key in [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    ] {
        assert_eq!(
            evident_core::PublicKey::from_hex(hex_key),
            Err(evident_core::keys::KeyError::Weak),
            "{hex_key}"
        );
    }
}

fn signing(seed: u8) -> (evident_core::SigningKey, evident_core::PublicKey) {
    let key = evident_core::SigningKey::from_bytes(&[seed; 32]);
    let public = evident_core::PublicKey::from_signing_key(&key);
    (key, public)
}

#[test]
fn more_than_the_maximum_of_signatures_is_refused_before_any_is_checked() {
    use evident_core::dsse::MAX_SIGNATURES;
    let (key, public) = signing(9);
    let mut env = Envelope::sign("text/plain", b"hello".to_vec(), &[&key]);
    let good = env.signatures[0].clone();
    env.signatures = vec![good; MAX_SIGNATURES];
    assert_eq!(env.verify(&[public]), Ok(vec![0]));
    env.signatures.push(env.signatures[0].clone());
    let err = env.verify(&[public]).unwrap_err();
    assert_eq!(err, DsseError::TooManySignatures(MAX_SIGNATURES + 1));
    assert!(err.to_string().contains("at most 8"), "{err}");
}

#[test]
fn a_keyid_naming_a_trusted_key_is_tried_against_that_key_only() {
    let (key, public) = signing(9);
    let (_, other) = signing(10);
    let mut env = Envelope::sign("text/plain", b"hello".to_vec(), &[&key]);
    // The hint names the other trusted key: one trial, which fails.
    env.signatures[0].keyid = other.key_id();
    assert!(matches!(
        env.verify(&[other, public]),
        Err(DsseError::NoTrustedSignature { .. })
    ));
    // An unknown hint is no hint: the signature is tried against the trusted keys.
    env.signatures[0].keyid = "not-a-key-id".into();
    assert_eq!(env.verify(&[other, public]), Ok(vec![1]));
}

#[test]
fn unhinted_signatures_share_a_bounded_number_of_trials() {
    use evident_core::dsse::MAX_UNHINTED_VERIFICATIONS;
    let keys: Vec<_> = (0..=MAX_UNHINTED_VERIFICATIONS as u8)
        .map(signing)
        .collect();
    let trusted: Vec<_> = keys.iter().map(|(_, p)| *p).collect();
    let last = &keys[MAX_UNHINTED_VERIFICATIONS].0;
    let mut env = Envelope::sign("text/plain", b"hello".to_vec(), &[last]);
    env.signatures[0].keyid.clear();
    // The signing key is the 65th candidate: past the budget.
    assert!(env.verify(&trusted).is_err());
    // Most likely first: the same key as the first candidate verifies at once.
    let first: Vec<usize> = (0..trusted.len()).rev().collect();
    assert_eq!(
        env.verify_bounded(&trusted, |_| None, &first),
        Ok(vec![MAX_UNHINTED_VERIFICATIONS])
    );
    // With its keyid, any number of trusted keys costs one trial.
    let hinted = Envelope::sign("text/plain", b"hello".to_vec(), &[last]);
    assert_eq!(
        hinted.verify(&trusted),
        Ok(vec![MAX_UNHINTED_VERIFICATIONS])
    );
}
