//! The witness's `add-checkpoint` request body parser, `AddCheckpoint::parse`, never panics
//! on arbitrary bytes, and what it accepts holds at most 63 proof hashes and a note whose
//! text is the checkpoint it returns.
#![no_main]

use evident_core::note::{Checkpoint, Note};
use evident_witness::request::{AddCheckpoint, MAX_PROOF_LINES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpoint::parse(data) {
        assert!(request.proof.len() <= MAX_PROOF_LINES);
        let note = Note::parse(&request.note_text).expect("the accepted note parses again");
        assert_eq!(note, request.note);
        assert_eq!(Checkpoint::parse_body(&note.text).ok(), Some(request.checkpoint));
    }
});
