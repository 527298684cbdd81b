//! Fuzzes the mapping of a request path onto a file origin's root
//! (`upstream::file::resolve_path`).
//!
//! Invariants: no panic, and when a path is accepted it starts with the root, lies
//! strictly below it, and has no `..` component, so a file origin can never be walked
//! out of its directory (symlinks are checked separately, at open time).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use streamgate::upstream::file::resolve_path;

fuzz_target!(|data: &[u8]| {
    // Request paths reach resolve_path as &str (from http::Uri), so only text matters.
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let root = Path::new("/srv/media");
    if let Ok(p) = resolve_path(root, raw) {
        assert!(p.starts_with(root), "{raw:?} resolved outside the root: {p:?}");
        assert!(p != root, "{raw:?} resolved to the root itself");
        assert!(!p.components().any(|c| c == Component::ParentDir), "{raw:?} resolved to a path with `..`: {p:?}");
    }
});
