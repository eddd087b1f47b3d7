//! Connection configuration JSON: parsing, the per-call check and the full
//! validation never panic, whatever the text, and agree on what is valid.
#![no_main]

use std::time::SystemTime;

use as2_connector::config::Connection;
use as2_connector::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = SystemTime::now();
    let parsed = Connection::from_json(text);
    let checked = Connection::check(text, now);
    let report = validate::validate(text, now);
    // What the per-call check accepts, validation reports without errors.
    if checked.is_ok() {
        assert!(parsed.is_ok());
        assert!(report.checked.is_some());
    }
});
