//! DASH rewriter tests.

use crate::mapping::Mode;
use crate::test_support::mapper;
use crate::{Filter, ManifestError, Plan};

fn run(mode: Mode, input: &str, extra: &str, filter: Option<&Filter>) -> Result<String, ManifestError> {
    let m = mapper(mode);
    let plan = Plan {
        mapper: &m,
        origin_url: "http://origin.test/a/manifest.mpd",
        public_path: "/vod/a/manifest.mpd",
        extra_query: extra,
        filter,
    };
    super::rewrite(input.as_bytes(), &plan).map(|b| String::from_utf8_lossy(&b).into_owned())
}

const MPD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- made by hand -->
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:cenc="urn:mpeg:cenc:2013" type="static">
  <Location>http://origin.test/a/manifest.mpd?x=1&amp;y=2</Location>
  <PatchLocation ttl="60">http://origin.test/a/patch.mpp</PatchLocation>
  <BaseURL>http://origin.test/a/</BaseURL>
  <?processing instruction?>
  <Period id="1" xlink:href="http://origin.test/a/period1.xml" xlink:actuate="onLoad"/>
  <Period id="2">
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" cenc:default_KID="10000000-1000-1000-1000-100000000001"/>
      <SegmentTemplate media="$RepresentationID$/seg-$Number%05d$.m4s" initialization="$RepresentationID$/init.mp4" startNumber="1"/>
      <Representation id="v1080" bandwidth="5000000" width="1920" height="1080" codecs="avc1.640028"/>
      <Representation id="v360" bandwidth="800000" width="640" height="360" codecs="avc1.4d401e">
        <BaseURL>v360/</BaseURL>
      </Representation>
    </AdaptationSet>
    <AdaptationSet contentType="audio" mimeType="audio/mp4">
      <BaseURL>http://foreign.example/audio/</BaseURL>
      <Representation id="a1" bandwidth="128000" codecs="mp4a.40.2">
        <SegmentList>
          <Initialization sourceURL="init.mp4"/>
          <SegmentURL media="s1.m4s" index="s1.idx"/>
        </SegmentList>
      </Representation>
    </AdaptationSet>
    <AdaptationSet contentType="text">
      <Representation id="t1" bandwidth="1000">
        <SegmentBase><RepresentationIndex sourceURL="http://origin.test/a/t1.sidx"/></SegmentBase>
        <x:Unknown xmlns:x="urn:x" x:a="http://origin.test/untouched"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#;

#[test]
fn spec_every_uri_site_and_nothing_else() {
    let out = run(Mode::Proxy, MPD, "", None).unwrap_or_default();
    assert!(out.contains("<Location>/vod/a/manifest.mpd?x=1&amp;y=2</Location>"), "{out}");
    assert!(out.contains("<PatchLocation ttl=\"60\">/vod/a/patch.mpp</PatchLocation>"));
    assert!(out.contains("<BaseURL>/vod/a/</BaseURL>"));
    assert!(out.contains("xlink:href=\"/vod/a/period1.xml\" xlink:actuate=\"onLoad\""));
    assert!(
        out.contains("media=\"$RepresentationID$/seg-$Number%05d$.m4s\" initialization=\"$RepresentationID$/init.mp4\""),
        "relative templates under a mapped base stay"
    );
    assert!(out.contains("<BaseURL>v360/</BaseURL>"));
    assert!(out.contains("<BaseURL>http://foreign.example/audio/</BaseURL>"));
    assert!(out.contains("<Initialization sourceURL=\"init.mp4\"/>"), "relative to a foreign base: untouched");
    assert!(out.contains("<RepresentationIndex sourceURL=\"/vod/a/t1.sidx\"/>"));
    assert!(out.contains("x:a=\"http://origin.test/untouched\""), "unknown attributes stay");
    assert!(out.contains("<!-- made by hand -->") && out.contains("<?processing instruction?>"));
    assert!(out.contains("cenc:default_KID=\"10000000-1000-1000-1000-100000000001\""));
}

#[test]
fn spec_cdn_mode_and_extra_query() {
    let out = run(Mode::Cdn, MPD, "tok=1&s=a%20b", None).unwrap_or_default();
    assert!(out.contains("<BaseURL>https://cdn.test/v/a/?tok=1&amp;s=a%20b</BaseURL>"), "{out}");
    assert!(out.contains("media=\"https://cdn.test/v/a/$RepresentationID$/seg-$Number%05d$.m4s?tok=1&amp;s=a%20b\""));
}

#[test]
fn none_mode_is_byte_identical() {
    assert_eq!(run(Mode::None, MPD, "", None).ok().as_deref(), Some(MPD));
}

#[test]
fn filters_drop_representations_and_empty_sets() {
    let f = Filter { max_height: Some(720), ..Default::default() };
    let out = run(Mode::Proxy, MPD, "", Some(&f)).unwrap_or_default();
    assert!(!out.contains("v1080"), "{out}");
    assert!(out.contains("id=\"v360\""));
    let audio_only = Filter { codecs: vec!["mp4a".into()], ..Default::default() };
    assert!(matches!(run(Mode::Proxy, MPD, "", Some(&audio_only)), Err(ManifestError::FilterRemovedAll(_))));
    let no_text = Filter { min_bandwidth: Some(2000), ..Default::default() };
    let out = run(Mode::Proxy, MPD, "", Some(&no_text)).unwrap_or_default();
    assert!(!out.contains("contentType=\"text\""), "an AdaptationSet left empty is removed: {out}");
}

#[test]
fn hostile_documents_are_refused() {
    let dtd = "<?xml version=\"1.0\"?><!DOCTYPE MPD [<!ENTITY a \"aaaa\">]><MPD>&a;</MPD>";
    assert!(matches!(run(Mode::Proxy, dtd, "", None), Err(ManifestError::Dash { .. })));
    let deep = format!("<MPD>{}{}</MPD>", "<a>".repeat(100), "</a>".repeat(100));
    assert!(matches!(run(Mode::Proxy, &deep, "", None), Err(ManifestError::Dash { .. })));
    let attrs: String = (0..300).map(|i| format!(" a{i}=\"1\"")).collect();
    assert!(matches!(run(Mode::Proxy, &format!("<MPD{attrs}/>"), "", None), Err(ManifestError::Dash { .. })));
    assert!(matches!(run(Mode::Proxy, "<MPD><Period>", "", None), Err(ManifestError::Dash { .. })), "truncated");
    assert!(matches!(run(Mode::Proxy, "<MPD><p:x/></MPD>", "", None), Err(ManifestError::Dash { .. })), "undeclared prefix");
    assert!(matches!(run(Mode::Proxy, "<MPD a=\"1\"b=\"2\"/>", "", None), Err(ManifestError::Dash { .. })), "attributes need whitespace");
    assert!(matches!(run(Mode::Proxy, "<NotMPD/>", "", None), Err(ManifestError::Dash { .. })));
    assert!(matches!(run(Mode::Proxy, "data", "", None), Err(ManifestError::Dash { .. })));
}

#[test]
fn duplicate_attributes_on_containers_are_refused() {
    for (doc, why) in [
        ("<MPD><Period id=\"1\" id=\"2\"/></MPD>", "among the first few"),
        (
            &*format!("<MPD><Representation {} b5=\"x\"/></MPD>", (0..20).map(|i| format!("b{i}=\"1\"")).collect::<Vec<_>>().join(" ")),
            "past the first sixteen",
        ),
    ] {
        match run(Mode::Proxy, doc, "", None) {
            Err(ManifestError::Dash { reason, .. }) => assert!(reason.to_lowercase().contains("duplicate"), "{why}: {reason}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    assert!(run(Mode::Proxy, "<MPD><Period id=\"1\" start=\"PT0S\"/></MPD>", "", None).is_ok());
}

/// A SegmentTimeline is copied in one piece only when nothing in it could hide markup;
/// either way its content and everything after it come out right.
#[test]
fn segment_timelines_with_and_without_markup_inside() {
    let doc = |inner: &str| {
        format!(
            "<MPD><Period><AdaptationSet><SegmentTemplate media=\"s-$Time$.m4s\"><SegmentTimeline>{inner}</SegmentTimeline>\
             </SegmentTemplate><BaseURL>http://origin.test/a/v/</BaseURL></AdaptationSet></Period></MPD>"
        )
    };
    for inner in [
        "<S t=\"0\" d=\"9\"/><S d=\"9\" r=\"3\"/>",
        "<S t=\"0\" d=\"9\"/><!-- </SegmentTimeline> --><S d=\"9\"/>",
        "<S t=\"0\" d=\"9\"/><?pi ?><S d=\"9\"/>",
        "<S t=\"0\" d=\"9\" x=\"a?b!c\"/>",
    ] {
        let out = run(Mode::Proxy, &doc(inner), "", None).unwrap();
        assert_eq!(out, doc(inner).replace("http://origin.test/a/v/", "/vod/a/v/"), "{inner}");
    }
}

/// Bases of nested BaseURLs are worked out only when a reference below them needs one;
/// then every pending level above is worked out in order.
#[test]
fn nested_relative_bases_resolve_through_every_level() {
    let mpd = "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><BaseURL>http://origin.test/a/</BaseURL><Period><BaseURL>p1/</BaseURL>\
        <AdaptationSet><BaseURL>video/</BaseURL><Representation id=\"r\" bandwidth=\"1\"><BaseURL>hd/</BaseURL>\
        <SegmentList><Initialization sourceURL=\"init.mp4\"/><SegmentURL media=\"../sd/s1.m4s\"/></SegmentList></Representation>\
        <Representation id=\"q\" bandwidth=\"2\"><BaseURL>http://foreign.example/x/</BaseURL></Representation>\
        <Representation id=\"z\" bandwidth=\"3\"><SegmentBase><Initialization sourceURL=\"z.mp4\"/></SegmentBase></Representation>\
        </AdaptationSet></Period></MPD>";
    let out = run(Mode::Proxy, mpd, "tok=1", None).unwrap_or_default();
    assert!(out.contains("<Initialization sourceURL=\"/vod/a/p1/video/hd/init.mp4?tok=1\"/>"), "{out}");
    assert!(out.contains("<SegmentURL media=\"/vod/a/p1/video/sd/s1.m4s?tok=1\"/>"), "{out}");
    assert!(out.contains("<BaseURL>http://foreign.example/x/</BaseURL>"), "{out}");
    // After a Representation's own base is gone, its sibling resolves against the set's.
    assert!(out.contains("<Initialization sourceURL=\"/vod/a/p1/video/z.mp4?tok=1\"/>"), "{out}");
    assert!(out.contains("<BaseURL>/vod/a/p1/?tok=1</BaseURL>"), "{out}");
    assert!(out.contains("<BaseURL>/vod/a/p1/video/hd/?tok=1</BaseURL>"), "{out}");
}

#[test]
fn attributes_must_be_separated_by_whitespace() {
    use super::attrs_spaced;
    for ok in [
        &b"<Period id=\"1\" start='PT0S'>"[..],
        b"<Period id=\"1\"/>",
        b"<Period id=\"1\"\tstart=\"x\" >",
        b"<Period id=\"a'b\" x='c\"d'>",
        b"<Period id=\"unterminated>",
        b"<Period>",
    ] {
        assert!(attrs_spaced(ok), "{}", String::from_utf8_lossy(ok));
    }
    for bad in [&b"<Period id=\"1\"start=\"2\">"[..], b"<Period a='1'b='2'/>", b"<Period id=\"a'b\"x='c'>"] {
        assert!(!attrs_spaced(bad), "{}", String::from_utf8_lossy(bad));
    }
    let e = run(Mode::Proxy, "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"><Period id=\"1\"start=\"PT0S\"/></MPD>", "", None);
    assert!(matches!(e, Err(ManifestError::Dash { ref reason, .. }) if reason.contains("separated by whitespace")), "{e:?}");
}

/// The byte-at-a-time definition: outside quotes, a closing quote is followed by
/// whitespace, '/' or '>'.
fn attrs_spaced_reference(raw: &[u8]) -> bool {
    let mut quote: Option<u8> = None;
    let mut just_closed = false;
    for &c in raw {
        match quote {
            Some(q) if c == q => {
                quote = None;
                just_closed = true;
                continue;
            }
            Some(_) => {}
            None => {
                if just_closed && !(c.is_ascii_whitespace() || c == b'/' || c == b'>') {
                    return false;
                }
                if c == b'"' || c == b'\'' {
                    quote = Some(c);
                }
            }
        }
        just_closed = false;
    }
    true
}

proptest::proptest! {
    #[test]
    fn attrs_spaced_agrees_with_its_definition(raw in proptest::collection::vec(proptest::sample::select(b"ab= \t\"'/>".to_vec()), 0..40)) {
        proptest::prop_assert_eq!(super::attrs_spaced(&raw), attrs_spaced_reference(&raw));
    }
}
