//! in-toto Statement v1 parsing: what is accepted and every way it is refused.

use evident_core::dsse::Envelope;
use evident_core::statement::{DigestAlgorithm, Statement, StatementError};
use serde_json::json;

const SHA: &str = "421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195";

fn parse(value: serde_json::Value) -> Result<Statement, StatementError> {
    Statement::from_json(value.to_string().as_bytes())
}

fn statement_with_digest(digest: serde_json::Value) -> serde_json::Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": digest}],
        "predicateType": "https://example.com/p",
        "predicate": {}
    })
}

fn field_of(err: StatementError) -> String {
    match err {
        StatementError::Field { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn a_statement_parses_into_typed_digests() {
    let s = parse(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": SHA, "gitCommit": "4f2a9c1e0d5b7a3c9e8f1a2b3c4d5e6f7a8b9c0d"}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}},
        "someFutureField": [1, 2, 3]
    }))
    .expect("valid statement");
    assert_eq!(s.predicate_type, "https://slsa.dev/provenance/v1");
    assert_eq!(s.subjects[0].name, "app");
    assert_eq!(
        s.subjects[0]
            .digests
            .get(&DigestAlgorithm::Sha256)
            .map(String::as_str),
        Some(SHA)
    );
    assert!(
        s.subjects[0]
            .digests
            .contains_key(&DigestAlgorithm::GitCommit)
    );
    assert_eq!(s.digests().count(), 2);
}

#[test]
fn predicate_may_be_absent_and_subject_name_optional() {
    let s = parse(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": SHA}}],
        "predicateType": "https://example.com/p"
    }))
    .expect("valid statement");
    assert!(s.predicate.is_null());
    assert_eq!(s.subjects[0].name, "");
}

#[test]
fn unknown_digest_algorithms_are_kept() {
    let s = parse(statement_with_digest(json!({"dirHash": "abc:def"}))).expect("valid");
    assert!(
        s.subjects[0]
            .digests
            .contains_key(&DigestAlgorithm::Other("dirHash".into()))
    );
}

#[test]
fn wrong_types_are_named() {
    assert_eq!(
        parse(json!({"predicateType": "x"})),
        Err(StatementError::MissingType)
    );
    assert_eq!(
        parse(json!({"_type": "link"})),
        Err(StatementError::LegacyLink)
    );
    assert_eq!(
        parse(json!({"_type": "https://in-toto.io/Statement/v0.1"})),
        Err(StatementError::UnknownType(
            "https://in-toto.io/Statement/v0.1".into()
        ))
    );
    assert_eq!(parse(json!([1])), Err(StatementError::NotObject));
    assert!(matches!(
        Statement::from_json(b"{not json"),
        Err(StatementError::Json(_))
    ));
}

#[test]
fn a_subject_without_digest_is_refused_naming_it() {
    let err = parse(json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": SHA}}, {"name": "b"}],
        "predicateType": "https://example.com/p"
    }))
    .unwrap_err();
    assert!(err.to_string().contains("subject[1].digest"), "{err}");
    assert_eq!(field_of(err), "subject[1].digest");
}

#[test]
fn missing_or_empty_subjects_and_predicate_type_are_refused() {
    let base = || statement_with_digest(json!({"sha256": SHA}));
    let mut no_subject = base();
    no_subject.as_object_mut().unwrap().remove("subject");
    assert_eq!(field_of(parse(no_subject).unwrap_err()), "subject");
    let mut empty_subject = base();
    empty_subject["subject"] = json!([]);
    assert_eq!(field_of(parse(empty_subject).unwrap_err()), "subject");
    let mut no_type = base();
    no_type.as_object_mut().unwrap().remove("predicateType");
    assert_eq!(field_of(parse(no_type).unwrap_err()), "predicateType");
    let mut empty_type = base();
    empty_type["predicateType"] = json!("");
    assert_eq!(field_of(parse(empty_type).unwrap_err()), "predicateType");
    let mut bad_predicate = base();
    bad_predicate["predicate"] = json!("text");
    assert_eq!(field_of(parse(bad_predicate).unwrap_err()), "predicate");
    assert_eq!(
        field_of(parse(statement_with_digest(json!({}))).unwrap_err()),
        "subject[0].digest"
    );
}

#[test]
fn digests_must_be_lowercase_hex_of_the_right_length() {
    for (digest, field) in [
        (
            json!({"sha256": SHA.to_uppercase()}),
            "subject[0].digest.sha256",
        ),
        (json!({"sha256": &SHA[1..]}), "subject[0].digest.sha256"),
        (json!({"sha512": SHA}), "subject[0].digest.sha512"),
        (
            json!({"gitCommit": "4f2a9c"}),
            "subject[0].digest.gitCommit",
        ),
        (json!({"sha1": "zz"}), "subject[0].digest.sha1"),
        (json!({"sha256": 5}), "subject[0].digest.sha256"),
        (json!({"custom": ""}), "subject[0].digest.custom"),
    ] {
        let err = parse(statement_with_digest(digest.clone())).unwrap_err();
        assert_eq!(field_of(err), field, "{digest}");
    }
    let ok_sha256_git = "a".repeat(64);
    assert!(parse(statement_with_digest(json!({"gitCommit": ok_sha256_git}))).is_ok());
}

#[test]
fn the_payload_type_must_be_in_toto() {
    let payload = statement_with_digest(json!({"sha256": SHA})).to_string();
    let env = Envelope {
        payload: payload.into_bytes(),
        payload_type: "application/json".into(),
        signatures: vec![],
        sigstore: None,
    };
    assert_eq!(
        Statement::from_envelope(&env),
        Err(StatementError::PayloadType("application/json".into()))
    );
}

#[test]
fn a_key_repeated_at_any_depth_is_refused_naming_its_path() {
    use evident_core::statement::{Statement, StatementError};
    let subject = r#"[{"name":"app","digest":{"sha256":"421d4f3fd2c761a029c265b9ca65c2014480b7a25614fdce71b006f31eb36195"}}]"#;
    let cases = [
        (
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":{subject},"subject":[],"predicateType":"p"}}"#
            ),
            "subject",
        ),
        (
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":{subject},"predicateType":"p","predicate":{{"a":[{{"b":1,"b":2}}]}}}}"#
            ),
            "predicate.a[0].b",
        ),
    ];
    for (json, path) in cases {
        assert_eq!(
            Statement::from_json(json.as_bytes()),
            Err(StatementError::DuplicateKey { field: path.into() })
        );
    }
}
