//! Inputs the fuzzers found, kept as tests named after what they broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use streamgate_manifest::{transform, Format, Mapper, Mode, OriginId, Plan, RouteTarget};

fn plan_for(mapper: &Mapper) -> Plan<'_> {
    Plan { mapper, origin_url: "http://origin.test/a/m.mpd", public_path: "/vod/a/m.mpd", extra_query: "", filter: None }
}

/// dash_rewrite, 2026-11-28: an absolute URL whose authority has a multi-byte character
/// where an origin's authority (plus ":80") would end panicked on a str slice.
#[test]
fn dash_authority_with_multibyte_character() {
    let own = RouteTarget { origins: vec![OriginId::parse("http://origin.test").unwrap()], prefix: "/vod/".into(), strip_prefix: true };
    let other = RouteTarget { origins: vec![OriginId::parse("http://live.test").unwrap()], prefix: "/live/".into(), strip_prefix: false };
    let m = Mapper::new(Mode::Proxy, None, own, vec![other]);
    let mpd = "<MPD><BaseURL>http://live.tes\u{feff}/x/</BaseURL><Period/></MPD>";
    let out = transform(Format::Dash, mpd.as_bytes(), &plan_for(&m)).unwrap();
    assert_eq!(out, mpd.as_bytes(), "a foreign host stays as written");
}
