//! Fuzzes the edge's request-path check (`proxy::check_path`).
//!
//! Invariants: no panic, and an accepted path is absolute and has no segment that is `.`
//! or `..` once `%2e`/`%2E` are decoded to `.`, so no origin sees a dot segment however
//! the client spelled it. The decoding here is written independently of the checker's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate::proxy::check_path;

/// Decodes only `%2e` / `%2E` to `.`, leaving every other byte (and escape) as is.
fn decode_dots(seg: &str) -> Vec<u8> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && b.get(i + 1) == Some(&b'2') && matches!(b.get(i + 2), Some(b'e' | b'E')) {
            out.push(b'.');
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // Paths reach check_path as &str (from http::Uri), so only text matters.
    let Ok(path) = std::str::from_utf8(data) else { return };
    if check_path(path).is_ok() {
        assert!(path.starts_with('/'), "accepted a relative path {path:?}");
        for seg in path.split('/') {
            let d = decode_dots(seg);
            assert!(d != b"." && d != b"..", "accepted dot segment {seg:?} in {path:?}");
        }
    }
});
