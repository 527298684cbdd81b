//! Fuzzes Akamai EdgeAuth token verification and generation
//! (`streamgate_manifest::token::{verify, verify_with, generate}`).
//!
//! Input: a control byte, then up to five `\n`-separated fields (lossy UTF-8):
//! `path`, `token`, `ip`, `id`, `data`. Control bits: 0 `escape_early`, 1 a start time,
//! 2 bind to `ip`, 3 `id`, 4 `data`, 5-7 the field and ACL delimiters.
//!
//! Invariants:
//! - arbitrary token strings and paths never panic, with default and with fuzzed options;
//! - a URL token generated for `path` verifies for `path` (and reports what was put in),
//!   and does not verify for another path;
//! - an ACL token whose single pattern is `path` verifies for `path` (when `path` has no
//!   ACL delimiter, which would split it into several patterns);
//! - changing any byte of a valid token makes it fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate_manifest::token::{escape_early, generate, verify, verify_with, AkamaiKey, TokenParams, VerifyOptions};

const KEY_HEX: &str = "52a152a152a152a152a152a152a152a1";
/// (field, acl) delimiter pairs: the defaults, then others Akamai allows.
const DELIMS: [(char, char); 8] = [('~', '!'), ('~', '!'), (';', ','), ('|', '!'), ('!', '~'), ('@', '^'), ('¦', '§'), (',', ';')];
const NOW: u64 = 1_800_000_000;
const WINDOW: u64 = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(5, '\n');
    let mut next = || parts.next().unwrap_or("");
    let (path, token, ip, id, payload) = (next(), next(), next(), next(), next());
    let Ok(key) = AkamaiKey::from_hex(KEY_HEX) else { return };
    let (fd, ad) = DELIMS[usize::from(ctl >> 5)];
    let escape = ctl & 1 != 0;

    // Anything goes in: no panic.
    let _ = verify(&key, token, path, NOW);
    let opts =
        VerifyOptions { field_delimiter: fd, acl_delimiter: ad, start_leeway: u64::from(ctl), escape_early: escape, client_ip: Some(ip) };
    let _ = verify_with(&key, token, path, NOW, &opts);
    let _ = verify_with(&key, token, path, NOW, &VerifyOptions { client_ip: None, ..opts });
    let _ = AkamaiKey::from_hex(token);
    let _ = escape_early(path);

    // What is generated verifies.
    let base = TokenParams {
        start: (ctl & 2 != 0).then_some(NOW - u64::from(ctl)),
        window: WINDOW,
        ip: (ctl & 4 != 0).then(|| ip.to_owned()),
        session_id: (ctl & 8 != 0).then(|| id.to_owned()),
        payload: (ctl & 16 != 0).then(|| payload.to_owned()),
        field_delimiter: fd,
        acl_delimiter: ad,
        escape_early: escape,
        ..TokenParams::default()
    };
    let opts = VerifyOptions { start_leeway: 0, ..opts };
    let url_token = TokenParams { url: Some(path.to_owned()), ..base.clone() };
    let acl_token = TokenParams { acl: Some(path.to_owned()), ..base };
    for (params, is_url) in [(url_token, true), (acl_token, false)] {
        let Ok(t) = generate(&key, "hdnts", &params, NOW) else { continue };
        let value = t.strip_prefix("hdnts=").unwrap_or_else(|| panic!("generate wrote {t:?} without its name"));
        if !is_url && path.contains(ad) {
            continue;
        }
        match verify_with(&key, value, path, NOW, &opts) {
            Ok(v) => {
                assert_eq!(v.expires, params.start.unwrap_or(NOW) + WINDOW, "{value:?}");
                assert_eq!(v.start, params.start, "{value:?}");
                assert_eq!(v.is_url_token(), is_url, "{value:?}");
                if !is_url {
                    assert_eq!(v.acl.as_deref(), Some(path), "{value:?}");
                }
            }
            Err(e) => panic!("generated {value:?} for path {path:?} ({params:?}) does not verify: {e}"),
        }
        if is_url {
            let other = format!("{path}x");
            assert!(verify_with(&key, value, &other, NOW, &opts).is_err(), "URL token for {path:?} verified for {other:?}");
        }
        if let Some(&b) = rest.first() {
            // Change one byte (chosen by the input) of the token to another ASCII byte.
            let mut bytes = value.as_bytes().to_vec();
            let i = usize::from(b) % bytes.len();
            if bytes[i].is_ascii() {
                bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
                if let Ok(altered) = String::from_utf8(bytes) {
                    if let Ok(v) = verify_with(&key, &altered, path, NOW, &opts) {
                        panic!("altered token {altered:?} (from {value:?}) verified: {v:?}");
                    }
                }
            }
        }
    }
});
