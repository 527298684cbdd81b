//! Manifests through the proxy: rewriting in proxy and cdn mode, filters, propagated
//! query values, signed child URLs, and the errors (invalid, too large, too slow).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use streamgate_manifest::token::{self, AkamaiKey, TokenParams};

use crate::support::{get, send, Proxy, TestOrigin};

const KEY: &str = "0123456789abcdef0123456789abcdef";

const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:6\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"http://origin.example.com/vod/audio/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"a\"\n\
v360/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS=\"avc1.640028,mp4a.40.2\",AUDIO=\"a\"\n\
http://origin.example.com/vod/v1080/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=300000,CODECS=\"mp4a.40.2\"\n\
https://radio.example.net/live.m3u8\n";

const MPD: &str = "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\">\n  <BaseURL>http://origin.example.com/vod/</BaseURL>\n  <Period>\n    <AdaptationSet contentType=\"video\">\n      <SegmentTemplate media=\"$RepresentationID$/$Number%05d$.m4s\" initialization=\"$RepresentationID$/init.mp4\"/>\n      <Representation id=\"v1\" bandwidth=\"800000\" width=\"640\" height=\"360\"/>\n      <Representation id=\"v2\" bandwidth=\"5000000\" width=\"1920\" height=\"1080\"/>\n    </AdaptationSet>\n  </Period>\n</MPD>\n";

fn media_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-manifests-{}-{}", std::process::id(), crate::support::unique()));
    std::fs::create_dir_all(dir.join("vod")).unwrap();
    std::fs::write(dir.join("vod/master.m3u8"), MASTER).unwrap();
    std::fs::write(dir.join("vod/manifest.mpd"), MPD).unwrap();
    std::fs::write(dir.join("vod/broken.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\ns.ts\n").unwrap();
    std::fs::write(dir.join("vod/broken.mpd"), "<MPD><Period>").unwrap();
    dir
}

async fn proxy(manifest: &str, extra: &str) -> (Proxy, PathBuf) {
    let dir = media_dir();
    let p = Proxy::start(&format!(
        "[origins.o]\nurls = [\"file://{}\"]\naliases = [\"http://origin.example.com\"]\n[routes.r]\nprefix = \"/v/\"\norigin = \"o\"\nstrip_prefix = true\n[routes.r.manifest]\n{manifest}\n{extra}",
        dir.display()
    ))
    .await;
    (p, dir)
}

#[tokio::test]
async fn proxy_mode_maps_children_back_through_the_route() {
    let (p, _d) = proxy("rewrite = \"proxy\"", "").await;
    let r = get(&p.url("/v/vod/master.m3u8")).await;
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("URI=\"/v/vod/audio/en.m3u8\""), "{body}");
    assert!(body.contains("\nv360/index.m3u8\n"), "relative children that resolve right stay");
    assert!(body.contains("\n/v/vod/v1080/index.m3u8\n"));
    assert!(body.contains("\nhttps://radio.example.net/live.m3u8\n"), "foreign hosts stay");
    assert_eq!(r.headers["content-length"], body.len().to_string().as_str());
    let etag = r.headers.get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(etag.starts_with("\"sg-"), "the origin's ETag does not describe the new body; the cache's own does: {etag:?}");
    assert_eq!(r.headers["content-type"], "application/vnd.apple.mpegurl");
    let m = get(&p.url("/v/vod/manifest.mpd")).await.text();
    assert!(m.contains("<BaseURL>/v/vod/</BaseURL>"), "{m}");
    assert!(m.contains("media=\"$RepresentationID$/$Number%05d$.m4s\""), "templates survive");
}

#[tokio::test]
async fn range_requests_for_manifests_get_the_whole_rewritten_body() {
    let (p, _d) = proxy("rewrite = \"proxy\"", "").await;
    let r = send(Method::GET, &p.url("/v/vod/master.m3u8"), &[("range", "bytes=0-10"), ("if-none-match", "\"x\"")]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/v/vod/v1080/index.m3u8"), "{}", r.text());
}

#[tokio::test]
async fn head_on_a_manifest_does_not_promise_the_origin_length() {
    let (p, _d) = proxy("rewrite = \"proxy\"", "").await;
    let r = send(Method::HEAD, &p.url("/v/vod/master.m3u8"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("etag").is_some_and(|v| v.as_bytes().starts_with(b"\"sg-")), "not the origin's validator");
    assert_ne!(r.headers.get("content-length").map(|v| v.to_str().unwrap().to_owned()), Some(MASTER.len().to_string()));
}

#[tokio::test]
async fn cdn_mode_points_children_at_the_cdn() {
    let (p, _d) = proxy("rewrite = \"cdn\"\ncdn_base = \"https://cdn.example.com/edge/\"", "").await;
    let body = get(&p.url("/v/vod/master.m3u8")).await.text();
    assert!(body.contains("URI=\"https://cdn.example.com/edge/vod/audio/en.m3u8\""), "{body}");
    assert!(body.contains("\nhttps://cdn.example.com/edge/vod/v360/index.m3u8\n"));
    assert!(body.contains("\nhttps://cdn.example.com/edge/vod/v1080/index.m3u8\n"));
}

#[tokio::test]
async fn rewrite_none_is_byte_identical_and_keeps_validators() {
    let (p, _d) = proxy("rewrite = \"none\"", "").await;
    let r = get(&p.url("/v/vod/master.m3u8")).await;
    assert_eq!(r.text(), MASTER);
    assert!(r.headers.contains_key("etag"));
}

#[tokio::test]
async fn static_and_query_filters() {
    let (p, _d) = proxy("filter = { max_height = 1080 }\nallow_query_filters = true", "").await;
    let all = get(&p.url("/v/vod/master.m3u8")).await.text();
    assert!(all.contains("v1080") && all.contains("v360"));
    let small = get(&p.url("/v/vod/master.m3u8?sg.max_height=720")).await.text();
    assert!(!small.contains("v1080") && small.contains("v360"), "{small}");
    let dash = get(&p.url("/v/vod/manifest.mpd?sg.max_bandwidth=1000000")).await.text();
    assert!(dash.contains("id=\"v1\"") && !dash.contains("id=\"v2\""), "{dash}");
    let v = get(&p.url("/v/vod/master.m3u8?sg.max_bandwidth=1000")).await.assert_problem(400, "bad_request");
    assert!(v["detail"].as_str().unwrap().contains("no video rendition"), "{v}");
    get(&p.url("/v/vod/master.m3u8?sg.max_height=tall")).await.assert_problem(400, "bad_request");
}

#[tokio::test]
async fn filter_and_token_parameters_do_not_reach_the_origin() {
    let o = TestOrigin::start("o").await;
    let config = |cache: bool| {
        format!(
            "[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n[routes.r.manifest]\ncache = {cache}\nallow_query_filters = true\npropagate_query = [\"session\"]\n",
            o.url()
        )
    };
    let p = Proxy::start(&config(false)).await;
    let v = get(&p.url("/echo/x.m3u8?a=1&sg.max_height=720&session=s1&sg.codecs=avc1")).await.json();
    assert_eq!(v["query"], "a=1&session=s1", "without the cache, propagated values reach the origin");
    // Through the cache one fetch serves every viewer, so per-viewer values stay out of it.
    let p = Proxy::start(&config(true)).await;
    let v = get(&p.url("/echo/x.m3u8?a=1&sg.max_height=720&session=s1&sg.codecs=avc1")).await.json();
    assert_eq!(v["query"], "a=1");
}

#[tokio::test]
async fn propagated_values_are_encoded_into_children() {
    let (p, _d) = proxy("propagate_query = [\"session\"]", "").await;
    let body = get(&p.url("/v/vod/master.m3u8?session=a%20b%0A%23EXT-X-ENDLIST&other=1")).await.text();
    assert!(body.contains("\n/v/vod/v360/index.m3u8?session=a%20b%0A%23EXT-X-ENDLIST\n"), "{body}");
    assert!(body.contains("URI=\"/v/vod/audio/en.m3u8?session=a%20b%0A%23EXT-X-ENDLIST\""));
    assert!(!body.contains("other=1"));
    assert!(!body.lines().any(|l| l.starts_with("#EXT-X-ENDLIST")), "nothing injected: {body}");
    assert!(body.contains("\nhttps://radio.example.net/live.m3u8\n"), "foreign children get nothing");
}

#[tokio::test]
async fn broken_manifests_are_never_half_served() {
    let (p, _d) = proxy("rewrite = \"proxy\"", "").await;
    get(&p.url("/v/vod/broken.m3u8")).await.assert_problem(502, "manifest_invalid");
    get(&p.url("/v/vod/broken.mpd")).await.assert_problem(502, "manifest_invalid");
}

#[tokio::test]
async fn generic_types_are_sniffed() {
    // No content type and a manifest extension, but not a manifest: passed through.
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!("[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n", o.url())).await;
    let r = get(&p.url("/anything/x.m3u8")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "origin o");
}

#[tokio::test]
async fn oversized_manifests_are_502() {
    let (p, _d) = proxy("max_bytes = 100", "").await;
    let v = get(&p.url("/v/vod/master.m3u8")).await.assert_problem(502, "manifest_too_large");
    assert!(v["detail"].as_str().unwrap().contains("100"));
}

#[tokio::test]
async fn slow_manifests_are_cut_off_at_the_timeout() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!(
        "[origins.o]\nurls = [\"{}\"]\nresponse_timeout = \"400ms\"\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let started = std::time::Instant::now();
    get(&p.url("/stall/1000/live.m3u8")).await.assert_problem(504, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn tokenize_signs_children_and_verify_requires_tokens() {
    let (p, _d) = proxy("rewrite = \"proxy\"", &format!("[routes.r.tokenize]\nkey = \"{KEY}\"\nttl = \"1h\"\nverify = true\n")).await;
    get(&p.url("/v/vod/master.m3u8")).await.assert_problem(403, "forbidden");
    let key = AkamaiKey::from_hex(KEY).unwrap();
    let good = token::generate(&key, "hdnts", &TokenParams::acl("/v/vod/*", 300), now()).unwrap();
    let r = get(&p.url(&format!("/v/vod/master.m3u8?{good}"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    let child = body.lines().find(|l| l.starts_with("/v/vod/v360/index.m3u8?hdnts=")).unwrap_or_else(|| panic!("{body}"));
    let minted = child.split_once('?').unwrap().1;
    assert!(minted.contains("acl=/v/vod/*"), "{minted}");
    // The minted token opens the manifest's directory, and nothing outside it.
    let r = get(&p.url(&format!("/v/vod/manifest.mpd?{minted}"))).await;
    assert_eq!(r.status, 200);
    let r = send(Method::GET, &p.url("/v/vod/manifest.mpd"), &[("cookie", &format!("other=1; {minted}"))]).await;
    assert_eq!(r.status, 200, "tokens are accepted from the cookie too");
    let other = token::generate(&key, "hdnts", &TokenParams::acl("/v/other/*", 300), now()).unwrap();
    get(&p.url(&format!("/v/vod/master.m3u8?{other}"))).await.assert_problem(403, "forbidden");
    let expired =
        token::generate(&key, "hdnts", &TokenParams { start: Some(now() - 1000), ..TokenParams::acl("/v/vod/*", 10) }, now()).unwrap();
    get(&p.url(&format!("/v/vod/master.m3u8?{expired}"))).await.assert_problem(403, "forbidden");
    let forged = good.replace("hmac=", "hmac=0");
    get(&p.url(&format!("/v/vod/master.m3u8?{forged}"))).await.assert_problem(403, "forbidden");
}
