//! Inputs the fuzzers found, kept as tests named after what they broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use streamgate_manifest::{transform, Format, ManifestError, Mapper, Mode, OriginId, Plan, RouteTarget};

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

/// dash_rewrite, 2026-11-28: a U+FEFF right after a skipped SegmentTimeline was taken for
/// a byte order mark by the restarted reader, and positions went out of step.
#[test]
fn dash_feff_after_segment_timeline() {
    let m = Mapper::new(
        Mode::Proxy,
        None,
        RouteTarget { origins: vec![OriginId::parse("http://origin.test").unwrap()], prefix: "/vod/".into(), strip_prefix: true },
        vec![],
    );
    let mpd = "<MPD >\n<SegmentTimeline>L\n</SegmentTimeline>\u{feff}t\n<SegmentTemplate e=\"Z\" initialization=\"$s\"/></MPD>";
    let out = transform(Format::Dash, mpd.as_bytes(), &plan_for(&m));
    assert!(matches!(out, Ok(_) | Err(ManifestError::Dash { .. })), "{out:?}");
    let text = "<MPD><Period><SegmentTimeline><S t=\"0\"/></SegmentTimeline>\u{feff}<SegmentTemplate media=\"http://origin.test/a/$Number$.m4s\"/></Period></MPD>";
    let out = String::from_utf8(transform(Format::Dash, text.as_bytes(), &plan_for(&m)).unwrap()).unwrap();
    assert!(out.contains("</SegmentTimeline>\u{feff}<SegmentTemplate media=\"/vod/a/$Number$.m4s\"/>"), "{out}");
}

/// dash_rewrite, 2026-11-28: a second U+FEFF after the byte order mark was skipped by the
/// reader too; positions went out of step and output was truncated (or panicked).
#[test]
fn dash_double_byte_order_mark() {
    let m = Mapper::new(
        Mode::None,
        None,
        RouteTarget { origins: vec![OriginId::parse("http://origin.test").unwrap()], prefix: "/vod/".into(), strip_prefix: true },
        vec![],
    );
    let mpd = "\u{feff}\u{feff}<MPD><BaseURL>http://origin.test/a/</BaseURL></MPD>";
    let plan = Plan { extra_query: "t=1", ..plan_for(&m) };
    assert!(matches!(transform(Format::Dash, mpd.as_bytes(), &plan), Err(ManifestError::Dash { .. })));
    let one = "\u{feff}<MPD><BaseURL>http://origin.test/a/</BaseURL></MPD>";
    assert_eq!(transform(Format::Dash, one.as_bytes(), &plan).unwrap(), one.as_bytes());
}
