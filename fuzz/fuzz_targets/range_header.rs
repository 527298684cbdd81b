//! Fuzzes `Range` header interpretation for file origins (`upstream::file::parse_range`).
//!
//! The input is the header value; each one is tried against a fixed set of file lengths
//! covering the edges (empty, one byte, small, beyond u32, near u64::MAX).
//! Invariants: no panic, and `Partial(s, e)` always satisfies `s <= e < len`, so the
//! `Content-Range` and `Content-Length` we send (`e - s + 1`) describe real bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate::upstream::file::{parse_range, RangeDecision};

const LENS: [u64; 8] = [0, 1, 2, 100, 1000, 1 << 32, u64::MAX - 1, u64::MAX];

fuzz_target!(|data: &[u8]| {
    // Header values reach parse_range through HeaderValue::to_str, so only text matters.
    let Ok(value) = std::str::from_utf8(data) else { return };
    for len in LENS {
        if let RangeDecision::Partial(s, e) = parse_range(value, len) {
            assert!(s <= e && e < len, "{value:?} with len {len} gave Partial({s}, {e})");
        }
    }
});
