//! HLS rewriter tests, named after the RFC 8216 sections and SPEC rules they check.

use proptest::prelude::*;

use crate::mapping::Mode;
use crate::test_support::mapper;
use crate::{Filter, ManifestError, Plan};

fn run(mode: Mode, input: &str, extra: &str, filter: Option<&Filter>) -> Result<String, ManifestError> {
    let m = mapper(mode);
    let plan =
        Plan { mapper: &m, origin_url: "http://origin.test/a/master.m3u8", public_path: "/vod/a/master.m3u8", extra_query: extra, filter };
    super::rewrite(input.as_bytes(), &plan).map(|b| String::from_utf8_lossy(&b).into_owned())
}

const MASTER: &str = "#EXTM3U\r\n\
#EXT-X-VERSION:7\r\n\
#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://origin.test/steer.json\",PATHWAY-ID=\"CDN\"\r\n\
#EXT-X-SESSION-DATA:DATA-ID=\"com.example.x\",URI=\"http://origin.test/data.json\"\r\n\
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://key1\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\r\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"audio/en.m3u8\"\r\n\
# a comment with URI=\"http://origin.test/not-a-uri\"\r\n\
#X-UNKNOWN-TAG:URI=\"http://origin.test/unknown\"\r\n\
\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aud\"\r\n\
v360/index.m3u8\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS=\"avc1.640028,mp4a.40.2\",FRAME-RATE=60.000\r\n\
http://origin.test/a/v1080/index.m3u8\r\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,RESOLUTION=1920x1080,URI=\"http://alias.test/a/iframe1080.m3u8\"\r\n\
#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS=\"mp4a.40.2\"\r\n\
https://foreign.example/radio.m3u8\r\n";

#[test]
fn spec_every_uri_site_in_a_master_playlist() {
    let out = run(Mode::Proxy, MASTER, "", None).unwrap_or_default();
    assert!(out.contains("SERVER-URI=\"/vod/steer.json\",PATHWAY-ID=\"CDN\"\r\n"), "{out}");
    assert!(out.contains("URI=\"/vod/data.json\"\r\n"));
    assert!(out.contains("URI=\"skd://key1\""), "non-http key URIs stay");
    assert!(out.contains("URI=\"audio/en.m3u8\""), "relative URIs that resolve right stay as written");
    assert!(out.contains("\r\nv360/index.m3u8\r\n"));
    assert!(out.contains("\r\n/vod/a/v1080/index.m3u8\r\n"));
    assert!(out.contains("URI=\"/vod/a/iframe1080.m3u8\""), "aliases belong to the origin");
    assert!(out.contains("\r\nhttps://foreign.example/radio.m3u8\r\n"), "foreign hosts stay");
    assert!(out.contains("# a comment with URI=\"http://origin.test/not-a-uri\"\r\n"), "comments are not touched");
    assert!(out.contains("#X-UNKNOWN-TAG:URI=\"http://origin.test/unknown\"\r\n"), "unknown tags are not touched");
    assert_eq!(out.matches("\r\n").count(), MASTER.matches("\r\n").count(), "line endings kept");
}

#[test]
fn spec_cdn_mode_makes_every_origin_child_absolute_on_the_cdn() {
    let out = run(Mode::Cdn, MASTER, "", None).unwrap_or_default();
    assert!(out.contains("URI=\"https://cdn.test/v/a/audio/en.m3u8\""), "{out}");
    assert!(out.contains("\r\nhttps://cdn.test/v/a/v360/index.m3u8\r\n"));
    assert!(out.contains("\r\nhttps://cdn.test/v/a/v1080/index.m3u8\r\n"));
    assert!(out.contains("\r\nhttps://foreign.example/radio.m3u8\r\n"));
}

#[test]
fn rfc8216_4_3_media_playlist_tags() {
    let media = "\u{feff}#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1.0\n\
#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"http://origin.test/keys/k1.key\",IV=0x00000000000000000000000000000001\n\
#EXTINF:4.0,\nseg1.m4s\n\
#EXT-X-PART:DURATION=1.0,URI=\"http://origin.test/a/seg2.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"http://origin.test/a/seg2.1.m4s\"\n\
#EXT-X-RENDITION-REPORT:URI=\"http://live.test/live/other.m3u8\",LAST-MSN=2\n";
    let out = run(Mode::Proxy, media, "", None).unwrap_or_default();
    assert!(out.starts_with('\u{feff}'), "BOM kept");
    assert!(out.contains("#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\n"));
    assert!(out.contains("URI=\"/vod/keys/k1.key\",IV=0x00000000000000000000000000000001\n"));
    assert!(out.contains("\nseg1.m4s\n"));
    assert!(out.contains("URI=\"/vod/a/seg2.0.m4s\",INDEPENDENT=YES"));
    assert!(out.contains("URI=\"/vod/a/seg2.1.m4s\""));
    assert!(out.contains("URI=\"/live/other.m3u8\""), "another route's origin maps to that route");
}

#[test]
fn spec_extra_query_is_added_to_every_mapped_child() {
    let out = run(Mode::Proxy, MASTER, "hdnts=st%3D1~exp%3D2&session=a%20b", None).unwrap_or_default();
    assert!(out.contains("URI=\"/vod/a/audio/en.m3u8?hdnts=st%3D1~exp%3D2&session=a%20b\""), "{out}");
    assert!(out.contains("\r\n/vod/a/v360/index.m3u8?hdnts=st%3D1~exp%3D2&session=a%20b\r\n"));
    assert!(out.contains("\r\n/vod/a/v1080/index.m3u8?hdnts=st%3D1~exp%3D2&session=a%20b\r\n"));
    assert!(out.contains("\r\nhttps://foreign.example/radio.m3u8\r\n"), "foreign children get no token");
}

#[test]
fn filters_remove_variants_with_their_uri_lines() {
    let f = Filter { max_height: Some(720), ..Default::default() };
    let out = run(Mode::Proxy, MASTER, "", Some(&f)).unwrap_or_default();
    assert!(!out.contains("v1080"), "{out}");
    assert!(!out.contains("iframe1080"), "I-frame variants are filtered too");
    assert!(out.contains("v360/index.m3u8"));
    assert!(out.contains("radio.m3u8"), "variants without RESOLUTION are kept");
    let none = Filter { max_bandwidth: Some(1000), ..Default::default() };
    assert!(matches!(run(Mode::Proxy, MASTER, "", Some(&none)), Err(ManifestError::FilterRemovedAll(_))));
}

#[test]
fn audio_only_masters_may_be_filtered() {
    let radio = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\nlo.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=256000,CODECS=\"mp4a.40.2\"\nhi.m3u8\n";
    let f = Filter { max_bandwidth: Some(100_000), ..Default::default() };
    let out = run(Mode::Proxy, radio, "", Some(&f)).unwrap_or_default();
    assert!(out.contains("lo.m3u8") && !out.contains("hi.m3u8"), "{out}");
}

#[test]
fn malformed_attribute_lists_are_copied_untouched() {
    let bad = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=AES-128,URI=\"http://origin.test/k\n#EXTINF:4,\ns.ts\n";
    let out = run(Mode::Proxy, bad, "", None).unwrap_or_default();
    assert!(out.contains("\n#EXT-X-KEY:METHOD=AES-128,URI=\"http://origin.test/k\n"), "{out}");
}

#[test]
fn variable_references_are_left_for_the_player() {
    let p = "#EXTM3U\n#EXT-X-DEFINE:NAME=\"host\",VALUE=\"http://origin.test\"\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{$host}/a/s.ts\n";
    let out = run(Mode::Proxy, p, "", None).unwrap_or_default();
    assert!(out.contains("\n{$host}/a/s.ts\n"), "{out}");
}

fn media_playlist() -> impl Strategy<Value = String> {
    let uri = prop_oneof![
        "[a-z]{1,8}(/[a-z0-9]{1,6}){0,2}\\.(ts|m4s)".prop_map(|s| s),
        "[a-z]{1,6}\\.ts".prop_map(|s| format!("http://origin.test/a/{s}")),
        "[a-z]{1,6}\\.ts".prop_map(|s| format!("http://foreign.test/{s}")),
        "[a-z]{1,6}\\.ts\\?[a-z]=[0-9]{1,3}".prop_map(|s| format!("../b/{s}")),
    ];
    let eol = prop_oneof![Just("\n"), Just("\r\n")];
    (proptest::collection::vec((uri, "[ -~&&[^\"]]{0,12}"), 1..20), eol).prop_map(|(segs, eol)| {
        let mut s = format!("#EXTM3U{eol}#EXT-X-TARGETDURATION:4{eol}");
        for (i, (u, title)) in segs.iter().enumerate() {
            if i % 3 == 0 {
                s.push_str(&format!("# comment {title}{eol}"));
            }
            s.push_str(&format!("#EXTINF:4.0,{title}{eol}{u}{eol}"));
        }
        s
    })
}

proptest! {
    #[test]
    fn none_mode_is_byte_identical(p in media_playlist()) {
        let out = run(Mode::None, &p, "", None);
        prop_assert_eq!(out.ok(), Some(p));
    }

    #[test]
    fn proxy_mode_maps_every_origin_uri_and_keeps_every_other_line(p in media_playlist()) {
        let out = run(Mode::Proxy, &p, "", None).unwrap_or_default();
        let (a, b): (Vec<&str>, Vec<&str>) = (p.lines().collect(), out.lines().collect());
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            if x.starts_with('#') {
                prop_assert_eq!(x, y);
            } else if let Some(rest) = x.strip_prefix("http://origin.test/a/") {
                prop_assert_eq!(y.to_string(), format!("/vod/a/{rest}"));
            } else {
                prop_assert_eq!(x, y, "relative and foreign URIs stay");
            }
        }
        // The output is itself a valid playlist.
        prop_assert_eq!(run(Mode::None, &out, "", None).ok(), Some(out));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let m = mapper(Mode::Cdn);
        let plan = Plan { mapper: &m, origin_url: "http://origin.test/a/x.m3u8", public_path: "/vod/a/x.m3u8", extra_query: "t=1", filter: None };
        let _ = super::rewrite(&b, &plan);
    }
}

/// The whole playlist is checked for UTF-8 once; a stray Latin-1 byte outside any URI
/// (a comment) makes the rewriter check each URI on its own instead of failing.
#[test]
fn invalid_utf8_outside_uris_is_copied_and_inside_a_uri_is_refused() {
    let m = mapper(Mode::Proxy);
    let plan = Plan { mapper: &m, origin_url: "http://origin.test/a/i.m3u8", public_path: "/vod/a/i.m3u8", extra_query: "", filter: None };
    let input = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n# caf\xe9\n#EXT-X-MAP:URI=\"http://origin.test/a/init.mp4\"\n#EXTINF:6,\nhttp://origin.test/a/s1.ts\n";
    let out = super::rewrite(input, &plan).unwrap();
    let want = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n# caf\xe9\n#EXT-X-MAP:URI=\"/vod/a/init.mp4\"\n#EXTINF:6,\n/vod/a/s1.ts\n";
    assert_eq!(out, want.to_vec(), "{}", String::from_utf8_lossy(&out));
    for bad in [&b"#EXTM3U\n#EXTINF:6,\nhttp://origin.test/a/s\xe9.ts\n"[..], b"#EXTM3U\n#EXT-X-MAP:URI=\"s\xe9.mp4\"\n#EXTINF:6,\ns.ts\n"]
    {
        match super::rewrite(bad, &plan) {
            Err(ManifestError::Hls { reason, .. }) => assert!(reason.contains("UTF-8"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
