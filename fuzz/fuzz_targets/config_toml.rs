//! Fuzzes config loading and validation from TOML text
//! (`config::load_and_validate` on `ConfigSource::Embedded`).
//!
//! Invariant: any input, valid TOML or not, yields `Ok` or a list of problems; it never
//! panics. Non-UTF-8 bytes are replaced (`from_utf8_lossy`), as an embedded config is a
//! `String`. `STREAMGATE_*` environment variables are merged on top, so run this without
//! any set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate::config::{load_and_validate, ConfigSource};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = load_and_validate(&ConfigSource::Embedded(text));
});
