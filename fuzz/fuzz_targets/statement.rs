//! `Statement::from_json` never panics, whatever the bytes.
#![no_main]

use evident_core::statement::Statement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Statement::from_json(data);
});
