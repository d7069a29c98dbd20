//! Leaf records against `vectors/evident/leaf-records.json`, which an independent encoder
//! (`make_leaf_records.py`, written from docs/FORMAT.md) produced.

use evident_core::Hash;
use evident_core::dsse::Envelope;
use evident_core::record::{EntryKind, LeafRecord, RecordError, dedupe_key};

use crate::harness::json_file;

fn unhex(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

#[test]
fn valid_records_decode_to_their_fields_and_re_encode_byte_for_byte() {
    let vectors = json_file("evident/leaf-records.json");
    let valid = vectors["valid"].as_array().expect("valid list");
    assert_eq!(valid.len(), 4);
    let mut previous: Option<(u64, Hash)> = None;
    for v in valid {
        let bytes = unhex(&v["record_hex"]);
        let record = LeafRecord::decode(&bytes).expect("valid record decodes");
        assert_eq!(record.index(), v["index"].as_u64().unwrap());
        assert_eq!(
            record.integrated_time_nanos(),
            v["integrated_time_nanos"].as_i64().unwrap()
        );
        assert_eq!(
            record.previous_leaf_hash().to_hex(),
            v["previous_leaf_hash_hex"].as_str().unwrap()
        );
        assert_eq!(record.kind().as_str(), v["kind"].as_str().unwrap());
        assert_eq!(record.encode(), bytes, "encoding is canonical");
        assert_eq!(
            record.leaf_hash().to_hex(),
            v["leaf_hash_hex"].as_str().unwrap()
        );
        record
            .check_follows(previous)
            .expect("vectors form a chain");
        previous = Some((record.index(), record.leaf_hash()));
    }
}

#[test]
fn the_first_record_carries_the_dsse_vector_envelope_exactly() {
    let vectors = json_file("evident/leaf-records.json");
    let bytes = unhex(&vectors["valid"][0]["record_hex"]);
    let record = LeafRecord::decode(&bytes).unwrap();
    let dsse = json_file("dsse/single-signature.json");
    let env = Envelope::from_json(dsse["envelope"].to_string().as_bytes()).unwrap();
    assert_eq!(record.envelope(), &env);
    assert_eq!(record.kind(), EntryKind::Attestation);
}

#[test]
fn invalid_records_fail_for_their_stated_reason() {
    let vectors = json_file("evident/leaf-records.json");
    let invalid = vectors["invalid"].as_array().expect("invalid list");
    assert!(invalid.len() >= 10);
    for v in invalid {
        let err = LeafRecord::decode(&unhex(&v["record_hex"])).unwrap_err();
        let reason = v["error"].as_str().unwrap();
        let matches = match reason {
            "truncated" => matches!(err, RecordError::Truncated { .. }),
            "trailing" => matches!(err, RecordError::Trailing(1)),
            "version" => matches!(err, RecordError::Version(_)),
            "magic" => matches!(err, RecordError::Magic(_)),
            "kind" => matches!(err, RecordError::Kind(_)),
            "no signatures" => matches!(err, RecordError::NoSignatures),
            "utf-8" => matches!(err, RecordError::Utf8(_)),
            "empty sigstore" => matches!(err, RecordError::EmptySigstore),
            other => panic!("unknown reason {other}"),
        };
        assert!(matches, "{}: got {err}", v["description"]);
    }
}

#[test]
fn every_truncation_of_a_valid_record_is_refused() {
    let vectors = json_file("evident/leaf-records.json");
    for v in vectors["valid"].as_array().unwrap() {
        let bytes = unhex(&v["record_hex"]);
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    LeafRecord::decode(&bytes[..len]),
                    Err(RecordError::Truncated { .. })
                ),
                "prefix of {len} bytes"
            );
        }
    }
}

#[test]
fn a_broken_chain_names_the_entry() {
    let vectors = json_file("evident/leaf-records.json");
    let r1 = LeafRecord::decode(&unhex(&vectors["valid"][1]["record_hex"])).unwrap();
    let err = r1.check_follows(Some((0, Hash([7; 32])))).unwrap_err();
    assert!(matches!(err, RecordError::ChainHash { index: 1, .. }));
    assert!(
        err.to_string().starts_with("entry 1: chain broken"),
        "{err}"
    );
    let err = r1.check_follows(Some((5, Hash::ZERO))).unwrap_err();
    assert_eq!(
        err,
        RecordError::ChainIndex {
            index: 1,
            expected: 6
        }
    );
    assert!(r1.check_follows(None).is_err(), "entry 1 cannot be first");
}

#[test]
fn dedupe_key_covers_what_is_signed_and_who_signed_it() {
    let dsse = json_file("dsse/two-signatures.json");
    let env = Envelope::from_json(dsse["envelope"].to_string().as_bytes()).unwrap();
    let a =
        evident_core::PublicKey::from_signing_key(&evident_core::SigningKey::from_bytes(&[1; 32]));
    let b =
        evident_core::PublicKey::from_signing_key(&evident_core::SigningKey::from_bytes(&[2; 32]));
    let digest = dedupe_key(&env, &[a.to_bytes()]);
    // What signatures cover changes the key...
    let mut payload = env.clone();
    payload.payload.push(b' ');
    assert_ne!(dedupe_key(&payload, &[a.to_bytes()]), digest);
    let mut payload_type = env.clone();
    payload_type.payload_type.push('x');
    assert_ne!(dedupe_key(&payload_type, &[a.to_bytes()]), digest);
    // ...and so do the keys that signed: another signer's copy is its own entry...
    assert_ne!(dedupe_key(&env, &[b.to_bytes()]), digest);
    assert_ne!(dedupe_key(&env, &[a.to_bytes(), b.to_bytes()]), digest);
    assert_eq!(
        dedupe_key(&env, &[b.to_bytes(), a.to_bytes(), b.to_bytes()]),
        dedupe_key(&env, &[a.to_bytes(), b.to_bytes()])
    );
    // ...while hints and signatures that did not count do not: a replay with a changed
    // hint or a junk signature is the same statement.
    let mut hint = env.clone();
    hint.signatures[1].keyid.push('x');
    assert_eq!(dedupe_key(&hint, &[a.to_bytes()]), digest);
    let mut more = env.clone();
    more.signatures.push(more.signatures[0].clone());
    assert_eq!(dedupe_key(&more, &[a.to_bytes()]), digest);
}

#[test]
fn oversize_fields_are_refused_when_building_a_record() {
    let env = Envelope {
        payload: vec![],
        payload_type: "t".repeat(70_000),
        signatures: vec![],
        sigstore: None,
    };
    assert!(matches!(
        LeafRecord::new(0, 0, Hash::ZERO, EntryKind::Attestation, env),
        Err(RecordError::TooLong {
            field: "payload type",
            ..
        })
    ));
}

fn sigstore_record(material: &[u8]) -> LeafRecord {
    let key = evident_core::fixtures::key(1);
    let mut envelope = Envelope::sign("application/vnd.in-toto+json", b"{}".to_vec(), &[&key]);
    envelope.sigstore = Some(material.to_vec());
    LeafRecord::new(
        7,
        1_700_000_000,
        Hash([9; 32]),
        EntryKind::Attestation,
        envelope,
    )
    .unwrap()
}

#[test]
fn a_record_with_sigstore_material_is_version_2_and_round_trips() {
    let material = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
    let record = sigstore_record(material);
    let bytes = record.encode();
    assert_eq!(bytes[4], evident_core::record::VERSION_SIGSTORE);
    // The material is the last field: its u32 length, then its bytes.
    let tail = &bytes[bytes.len() - material.len() - 4..];
    assert_eq!(&tail[..4], &(material.len() as u32).to_be_bytes());
    assert_eq!(&tail[4..], material);
    let decoded = LeafRecord::decode(&bytes).unwrap();
    assert_eq!(decoded, record);
    assert_eq!(decoded.envelope().sigstore.as_deref(), Some(&material[..]));
    // The same entry without material is a version 1 record, and hashes differently.
    let mut bare = record.envelope().clone();
    bare.sigstore = None;
    let bare = LeafRecord::new(
        7,
        1_700_000_000,
        Hash([9; 32]),
        EntryKind::Attestation,
        bare,
    )
    .unwrap();
    assert_eq!(bare.encode()[4], evident_core::record::VERSION);
    assert_ne!(bare.leaf_hash(), record.leaf_hash());
}

#[test]
fn sigstore_material_is_refused_when_empty_truncated_or_followed_by_bytes() {
    let record = sigstore_record(b"{}");
    let bytes = record.encode();
    // Truncated anywhere in the material or its length.
    for cut in 1..=6 {
        let err = LeafRecord::decode(&bytes[..bytes.len() - cut]).unwrap_err();
        assert!(matches!(err, RecordError::Truncated { .. }), "{err}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        LeafRecord::decode(&trailing).unwrap_err(),
        RecordError::Trailing(1)
    ));
    // Version 2 with zero-length material: "none" has one encoding, version 1.
    let mut empty = bytes[..bytes.len() - 6].to_vec();
    empty.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        LeafRecord::decode(&empty).unwrap_err(),
        RecordError::EmptySigstore
    );
    // Version 1 bytes relabelled as version 2 lack the material length.
    let mut relabelled = sigstore_record(b"x").encode();
    relabelled.truncate(relabelled.len() - 5);
    relabelled[4] = evident_core::record::VERSION_SIGSTORE;
    assert!(matches!(
        LeafRecord::decode(&relabelled).unwrap_err(),
        RecordError::Truncated { .. }
    ));
    // And an empty material cannot be logged at all.
    let mut envelope = record.envelope().clone();
    envelope.sigstore = Some(Vec::new());
    assert_eq!(
        LeafRecord::new(0, 0, Hash::ZERO, EntryKind::Attestation, envelope).unwrap_err(),
        RecordError::EmptySigstore
    );
}
