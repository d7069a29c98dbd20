//! Witness cosignatures of untrusted input:
//! - `CosignerKey::parse` never panics, and a key it accepts prints to text that parses
//!   back to an equal key;
//! - `Note::parse` then `WitnessPolicy::check`, with a 2-of-2 policy trusting an Ed25519
//!   witness (`w.fuzz`, seed `[8; 32]`) and an ML-DSA-44 witness (`pq.fuzz`, seed
//!   `[9; 32]`), never panics, and every cosignature it returns is backed by a line in the
//!   note that `CosignerKey::verify_note` verifies;
//! - `add_signature_lines` never panics (the input, split at its first NUL byte, is the
//!   note and the lines), and what it returns parses as a note.
#![no_main]

use std::sync::LazyLock;

use evident_core::SigningKey;
use evident_core::cosign::{Cosigner, CosignerKey, WitnessPolicy, add_signature_lines};
use evident_core::note::{Checkpoint, Note};
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<WitnessPolicy> = LazyLock::new(|| {
    let ed = Cosigner::ed25519("w.fuzz", SigningKey::from_bytes(&[8; 32])).expect("valid name");
    let pq = Cosigner::ml_dsa_44("pq.fuzz", [9; 32]).expect("valid name");
    WitnessPolicy::new(vec![ed.key().clone(), pq.key().clone()], 2).expect("2 of 2")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(key) = CosignerKey::parse(text) {
        let printed = key.to_string();
        assert_eq!(CosignerKey::parse(&printed).as_ref(), Ok(&key), "{printed}");
    }

    if let Ok(note) = Note::parse(text) {
        if let Ok(checkpoint) = Checkpoint::parse_body(&note.text) {
            if let Ok(cosigned) = POLICY.check(&note, &checkpoint) {
                assert!(cosigned.len() >= POLICY.threshold());
                for c in &cosigned {
                    let key = POLICY
                        .witnesses()
                        .iter()
                        .find(|k| k.name() == c.witness)
                        .expect("a cosignature from a trusted witness");
                    assert_eq!(
                        key.verify_note(&note, &checkpoint).as_ref(),
                        Ok(&Some(c.clone())),
                        "a cosignature that its witness's key does not verify"
                    );
                }
            }
        }
    }

    let (note, lines) = text.split_once('\0').unwrap_or((text, ""));
    if let Ok(out) = add_signature_lines(note, lines) {
        assert!(Note::parse(&out).is_ok());
    }
});
