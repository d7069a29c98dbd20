//! The tlog-tiles decoders of untrusted input never panic and accept only canonical forms:
//! `Resource::parse` accepts a path only if it is exactly the path of what it returns, and
//! `decode_bundle` accepts bytes only if `encode_bundle` of what it returns gives them back.
//! The whole input is the path (when UTF-8); after its first byte `b`, the rest is decoded
//! as a bundle of `b` and of `b + 1` records (so every count from 0 to 256 is tried).
#![no_main]

use evident_core::tiles::{Resource, decode_bundle, encode_bundle};
use libfuzzer_sys::fuzz_target;

fn bundle(bytes: &[u8], expected: usize) {
    if let Ok(records) = decode_bundle(bytes, expected) {
        assert_eq!(records.len(), expected, "a decoded bundle has the wrong record count");
        let again = encode_bundle(&records).expect("a decoded bundle encodes");
        assert_eq!(again, bytes, "entry bundle encoding is not canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(resource) = Resource::parse(path) {
            let canonical = resource.path();
            assert_eq!(canonical, path, "a non-canonical tile path was accepted");
            assert_eq!(Resource::parse(&canonical).ok(), Some(resource));
        }
    }
    if let Some((&first, rest)) = data.split_first() {
        bundle(rest, usize::from(first));
        bundle(rest, usize::from(first) + 1);
    }
});
