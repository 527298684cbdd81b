//! Fuzzes the config unit parsers (`config::units::{parse_duration, parse_size}`).
//!
//! Invariants: no panic (in particular no overflow in the unit multiplication), and an
//! accepted duration survives `format_duration` -> `parse_duration` unchanged, because
//! `GET /config` shows durations in that form and they must load back as the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate::config::units::{format_duration, parse_duration, parse_size};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(d) = parse_duration(&s) {
        let shown = format_duration(d);
        assert_eq!(parse_duration(&shown), Ok(d), "{s:?} formatted as {shown:?}");
    }
    let _ = parse_size(&s);
});
