//! `Note::parse`, `Checkpoint::parse_body` and `Checkpoint::verify` never panic.
#![no_main]

use std::sync::LazyLock;

use evident_core::SigningKey;
use evident_core::note::{Checkpoint, Note, Signer, Verifier};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Signer::new("fuzz.example/log", SigningKey::from_bytes(&[7; 32]))
        .expect("valid key name")
        .verifier()
        .clone()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(note) = Note::parse(text) {
        let _ = Checkpoint::parse_body(&note.text);
    }
    let _ = Checkpoint::parse_body(text);
    let _ = Checkpoint::verify(text, &VERIFIER);
});
