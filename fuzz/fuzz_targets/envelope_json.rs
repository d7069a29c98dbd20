//! `Envelope::from_json` never panics, and what it decodes survives `to_json` unchanged.
#![no_main]

use evident_core::dsse::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::from_json(data) {
        let json = envelope.to_json();
        let again = Envelope::from_json(json.as_bytes()).expect("to_json output decodes");
        assert_eq!(envelope, again);
    }
});
