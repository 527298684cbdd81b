//! Fuzzes what the manifest cache reads from an origin's answer: the manifest's liveness
//! (HLS tags, the MPD's `type` and `minimumUpdatePeriod`) and the `Cache-Control` / `Age`
//! headers that bound freshness, and the `Cache-Control` sent to clients.
//!
//! Input: header text up to the first NUL (lines of `name: value`), then the manifest.
//! Invariants: no panic; a stored entry is fresh for more than zero and never longer than
//! the configured lifetime; the client header always parses as a header value and ends
//! with `max-age=N`.
#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use streamgate::cache::freshness::{client_cache_control, Freshness};
use streamgate::config::schema::ManifestConfig;
use streamgate_manifest::{liveness, Format};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (head, body) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii())) else {
            continue;
        };
        headers.append(name, value);
    }
    let cfg = ManifestConfig::default();
    for format in [Format::Hls, Format::Dash] {
        let live = liveness(format, body);
        if let Some(f) = Freshness::decide(live, &cfg, &headers) {
            assert!(!f.fresh_for.is_zero());
            let limit = match f.refresh {
                None => cfg.vod_ttl.0.max(cfg.live_ttl.0),
                Some(r) => r / 2,
            };
            assert!(f.fresh_for <= limit, "{f:?}");
            let _ = f.state(f.fresh_for + Duration::from_millis(1));
        }
    }
    let out = client_cache_control(&headers, Duration::from_secs(3));
    assert!(out.to_str().is_ok_and(|s| s.ends_with("max-age=3")), "{out:?}");
});
