//! `vectors/note/`: C2SP signed notes and checkpoints.

use evident_core::Hash;
use evident_core::SigningKey;
use evident_core::note::{Checkpoint, Note, NoteError, Signer, Verifier};

use crate::harness::{json_file, json_files};

#[test]
fn every_note_vector_verifies_exactly_when_it_says_valid() {
    let vectors = json_files("note");
    assert_eq!(vectors.len(), 5);
    for (name, v) in vectors {
        let verifier = Verifier::parse(v["verifier_key"].as_str().unwrap()).expect(&name);
        let result = Note::parse(v["note"].as_str().unwrap()).and_then(|n| n.verify(&verifier));
        assert_eq!(
            result.is_ok(),
            v["valid"].as_bool().unwrap(),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn the_spec_example_verifies_and_its_key_text_round_trips() {
    let v = json_file("note/spec-example.json");
    let key_text = v["verifier_key"].as_str().unwrap();
    let verifier = Verifier::parse(key_text).unwrap();
    assert_eq!(verifier.name(), "example.com/foo");
    assert_eq!(verifier.id(), 0x530d903a);
    assert_eq!(verifier.to_string(), key_text);
    let note = Note::parse(v["note"].as_str().unwrap()).unwrap();
    assert_eq!(note.text, "This is an example message.\n");
    note.verify(&verifier).unwrap();
}

#[test]
fn the_empty_tree_checkpoint_parses_to_its_fields() {
    let v = json_file("note/checkpoint-empty-tree.json");
    let verifier = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let checkpoint = Checkpoint::verify(v["note"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(checkpoint.origin, v["origin"].as_str().unwrap());
    assert_eq!(checkpoint.size, v["tree_size"].as_u64().unwrap());
    assert_eq!(
        checkpoint.root,
        Hash::from_base64(v["root_hash_b64"].as_str().unwrap()).unwrap()
    );
    assert!(checkpoint.extensions.is_empty());
}

#[test]
fn the_vector_log_key_signs_the_same_bytes_as_the_vector() {
    // Log key of the vectors: seed byte 7. Ed25519 is deterministic, so signing the same
    // body must give the very note of the vector.
    let v = json_file("note/checkpoint-empty-tree.json");
    let signer = Signer::new("ledger.example.com/test", SigningKey::from_bytes(&[7; 32])).unwrap();
    assert_eq!(
        signer.verifier().to_string(),
        v["verifier_key"].as_str().unwrap()
    );
    let checkpoint = Checkpoint {
        origin: "ledger.example.com/test".into(),
        size: 0,
        root: evident_core::merkle::empty_root(),
        extensions: vec![],
    };
    assert_eq!(
        checkpoint.sign(&signer).unwrap(),
        v["note"].as_str().unwrap()
    );
}

#[test]
fn a_wrong_key_under_the_right_name_is_not_a_signature() {
    let v = json_file("note/checkpoint-wrong-key.json");
    let verifier = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let err = Checkpoint::verify(v["note"].as_str().unwrap(), &verifier).unwrap_err();
    assert!(matches!(err, NoteError::UnverifiedNote(_)), "{err}");
}

#[test]
fn a_changed_size_breaks_the_signature() {
    let v = json_file("note/checkpoint-size-changed.json");
    let verifier = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let err = Checkpoint::verify(v["note"].as_str().unwrap(), &verifier).unwrap_err();
    assert!(matches!(err, NoteError::BadSignature(_)), "{err}");
}

fn signer() -> Signer {
    Signer::new("evident.test/log", SigningKey::from_bytes(&[3; 32])).unwrap()
}

#[test]
fn checkpoints_round_trip_with_extension_lines() {
    let checkpoint = Checkpoint {
        origin: "evident.test/log".into(),
        size: 12345,
        root: Hash([9; 32]),
        extensions: vec!["Timestamp: 1764150000".into(), "another extension".into()],
    };
    let note = checkpoint.sign(&signer()).unwrap();
    let back = Checkpoint::verify(&note, signer().verifier()).unwrap();
    assert_eq!(back, checkpoint);
}

#[test]
fn sixteen_unknown_signatures_and_one_known_are_accepted() {
    let body = "evident.test/log\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
    let mut note = signer().sign(body).unwrap();
    let others: String = (0..16u8)
        .map(|i| {
            let s = Signer::new(
                &format!("witness{i}.example/w"),
                SigningKey::from_bytes(&[i + 40; 32]),
            )
            .unwrap();
            let signed = s.sign(body).unwrap();
            signed[body.len() + 1..].to_owned()
        })
        .collect();
    note.push_str(&others);
    let parsed = Note::parse(&note).unwrap();
    assert_eq!(parsed.signatures.len(), 17);
    parsed.verify(signer().verifier()).unwrap();
}

#[test]
fn a_checkpoint_from_another_origin_is_refused() {
    let checkpoint = Checkpoint {
        origin: "other.test/log".into(),
        size: 1,
        root: Hash([1; 32]),
        extensions: vec![],
    };
    let note = signer().sign(&checkpoint.to_body()).unwrap();
    let err = Checkpoint::verify(&note, signer().verifier()).unwrap_err();
    assert!(matches!(err, NoteError::Origin { .. }), "{err}");
}

#[test]
fn malformed_notes_and_checkpoints_are_refused() {
    let v = signer();
    for bad in [
        "no blank line\n— evident.test/log AAAA\n",
        "text\n\nnot a signature line\n",
        "text\n\n— evident.test/log !!!\n",
        "text\n\n— evident.test/log AAAAAAAA",
        "te\u{7}xt\n\n— evident.test/log AAAAAAAA\n",
    ] {
        assert!(Note::parse(bad).is_err(), "{bad:?}");
    }
    for body in [
        "evident.test/log\n01\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
        "evident.test/log\n-1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
        "evident.test/log\n1\nCQkJ\n",
        "evident.test/log\n1\n",
        "\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
    ] {
        let note = v.sign(body).unwrap();
        let err = Checkpoint::verify(&note, v.verifier()).unwrap_err();
        assert!(matches!(err, NoteError::Checkpoint(_)), "{body:?}: {err}");
    }
}

#[test]
fn verifier_key_text_is_checked() {
    let good = signer().verifier().to_string();
    assert!(Verifier::parse(&good).is_ok());
    let (name, rest) = good.split_once('+').unwrap();
    let (_, key) = rest.split_once('+').unwrap();
    for bad in [
        format!("{name}+00000000+{key}"),
        format!("{name}+zz+{key}"),
        format!("{name}+{}", rest.replace('+', "+A")),
        format!("{name}+{}+{}", &rest[..8], key.replacen("A", "B", 1)),
        "name-only".to_owned(),
    ] {
        assert!(
            matches!(Verifier::parse(&bad), Err(NoteError::VerifierKey(_))),
            "{bad}"
        );
    }
}

#[test]
fn signer_key_text_round_trips_and_checks_its_id() {
    let text = signer().to_private_text();
    assert!(text.starts_with("PRIVATE+KEY+evident.test/log+"));
    let back = Signer::parse_private(&text).unwrap();
    assert_eq!(back.verifier(), signer().verifier());
    let tampered = text.replacen("+KEY+evident.test/log+", "+KEY+evident.test/other+", 1);
    assert!(Signer::parse_private(&tampered).is_err());
    assert!(!format!("{:?}", signer()).contains(&text[text.len() - 20..]));
}

#[test]
fn the_registry_digest_extension_round_trips_and_depends_on_every_entry() {
    use evident_core::registry::RegistryDigest;
    let mut a = RegistryDigest::default();
    a.add(&Hash([1; 32]));
    a.add(&Hash([2; 32]));
    let lines = vec!["other extension".to_owned(), a.extension()];
    assert_eq!(RegistryDigest::from_extensions(&lines), Some(a));
    let mut b = RegistryDigest::default();
    b.add(&Hash([2; 32]));
    assert_ne!(a, b, "an entry left out changes the count and the hash");
    b.add(&Hash([1; 32]));
    assert_ne!(a.hash, b.hash, "order matters");
    assert_eq!(
        RegistryDigest::from_extensions(&["evident-registry 1".to_owned()]),
        None
    );
}
