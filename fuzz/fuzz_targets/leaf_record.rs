//! `LeafRecord::decode` never panics, and accepts only canonical encodings: a record it
//! decodes encodes back to exactly the input bytes.
#![no_main]

use evident_core::record::LeafRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = LeafRecord::decode(data) {
        assert_eq!(
            record.encode(),
            data,
            "leaf record encoding is not canonical"
        );
    }
});
