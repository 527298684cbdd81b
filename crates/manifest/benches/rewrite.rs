//! Manifest rewrite throughput, against a full parse + serialize of the same input with
//! m3u8-rs and dash-mpd-core (what a proxy built on a manifest model would pay at least).
//!
//! Inputs are generated here, byte for byte what `shared/bench/gen-fixtures.sh` writes as
//! `hls/1080p/vod.m3u8` (1,000 segments, ~100 KB) and `dash/large.mpd` (128 Periods with
//! SegmentTimeline and BaseURL at MPD, Period and Representation level, ~1 MB); their
//! SHA-256 is checked so the two stay in step. The route is the one of
//! `shared/bench/streamgate.toml`: origin `http://127.0.0.1:18080` with alias
//! `http://origin.example.com`, prefix `/` not stripped, `cdn` to
//! `https://cdn.example.com/`.
//!
//! ```text
//! cargo bench -p streamgate-manifest --bench rewrite -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};
use streamgate_manifest::{transform, Format, Mapper, Mode, OriginId, Plan, RouteTarget};

const HOST: &str = "http://origin.example.com";
const CDN: &str = "https://cdn.example.com";
/// SHA-256 of `hls/1080p/vod.m3u8` and `dash/large.mpd` as gen-fixtures.sh writes them.
const VOD_SHA256: &str = "a197376e104bf6d6b8b13847354fc0027da3c286fe20425bf7165bb304e2b979";
const MPD_SHA256: &str = "45f4a18f2fa9adbafe5c972881a18eabb346482f670cd64ec31ad8c6017131bc";

/// name, bandwidth, resolution, codecs (gen_fixtures.py `VARIANTS`).
const VARIANTS: [(&str, u64, &str, &str); 6] = [
    ("240p", 400_000, "426x240", "avc1.4d4015,mp4a.40.2"),
    ("360p", 800_000, "640x360", "avc1.4d401e,mp4a.40.2"),
    ("480p", 1_400_000, "854x480", "avc1.4d401f,mp4a.40.2"),
    ("720p", 2_800_000, "1280x720", "avc1.4d401f,mp4a.40.2"),
    ("1080p", 5_000_000, "1920x1080", "avc1.640028,mp4a.40.2"),
    ("2160p", 14_000_000, "3840x2160", "avc1.640033,mp4a.40.2"),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// gen_fixtures.py `media_playlist(name, count, first_seq, vod)`.
fn media_playlist(name: &str, count: u64, first_seq: u64, vod: bool) -> String {
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:{first_seq}\n");
    if vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    for i in first_seq..first_seq + count {
        let duration = if i % 5 == 4 { 5.972 } else { 6.006 };
        let sig = hex(&Sha256::digest(format!("{name}/{i}").as_bytes())[..8]);
        let _ = write!(out, "#EXTINF:{duration:.3},\n{HOST}/hls/{name}/seg-{i:06}.ts?exp=1893456000&sig={sig}\n");
    }
    if vod {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// gen_fixtures.py `mpd(periods, segs_per_period, reps)`.
fn mpd(periods: usize, segs_per_period: usize, reps: usize) -> String {
    const TIMESCALE: u64 = 90_000;
    let mut total = 0u64;
    let mut body = Vec::with_capacity(periods);
    for p in 0..periods {
        let start = total;
        let mut s_entries = Vec::with_capacity(segs_per_period);
        let mut t = 0u64;
        for i in 0..segs_per_period {
            let d = if i % 5 != 4 { 540_540 } else { 537_480 };
            s_entries.push(format!("          <S t=\"{t}\" d=\"{d}\"/>"));
            t += d;
        }
        total += t;
        let rep_lines: Vec<String> = VARIANTS[..reps]
            .iter()
            .map(|(name, bw, res, codecs)| {
                let (w, h) = res.split_once('x').unwrap();
                let codec = codecs.split(',').next().unwrap();
                format!(
                    "      <Representation id=\"{name}\" bandwidth=\"{bw}\" width=\"{w}\" height=\"{h}\" codecs=\"{codec}\">\n        \
                     <BaseURL>{HOST}/dash/p{p:04}/{name}/</BaseURL>\n      </Representation>"
                )
            })
            .collect();
        body.push(format!(
            "  <Period id=\"p{p:04}\" start=\"PT{:.3}S\">\n    <BaseURL>{HOST}/dash/p{p:04}/</BaseURL>\n    \
             <AdaptationSet id=\"1\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      \
             <SegmentTemplate timescale=\"{TIMESCALE}\" initialization=\"$RepresentationID$/init.mp4\" media=\"$RepresentationID$/seg-$Time$.m4s\">\n        \
             <SegmentTimeline>\n{}\n        </SegmentTimeline>\n      </SegmentTemplate>\n{}\n    </AdaptationSet>\n    \
             <AdaptationSet id=\"2\" contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"en\">\n      \
             <SegmentTemplate timescale=\"48000\" duration=\"288000\" initialization=\"audio/init.mp4\" media=\"audio/seg-$Number$.m4s\"/>\n      \
             <Representation id=\"audio\" bandwidth=\"128000\" codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\">\n        \
             <BaseURL>{HOST}/dash/p{p:04}/audio/</BaseURL>\n      </Representation>\n    </AdaptationSet>\n  </Period>",
            start as f64 / TIMESCALE as f64,
            s_entries.join("\n"),
            rep_lines.join("\n"),
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" \
         mediaPresentationDuration=\"PT{:.3}S\" minBufferTime=\"PT2S\">\n  <BaseURL>{HOST}/dash/</BaseURL>\n{}\n</MPD>\n",
        total as f64 / TIMESCALE as f64,
        body.join("\n"),
    )
}

/// The `bench` route of shared/bench/streamgate.toml, in `mode`.
fn mapper(mode: Mode) -> Mapper {
    let own = RouteTarget {
        origins: ["http://127.0.0.1:18080", HOST].iter().map(|o| OriginId::parse(o).unwrap()).collect(),
        prefix: "/".into(),
        strip_prefix: false,
    };
    Mapper::new(mode, Some("https://cdn.example.com/"), own, Vec::new())
}

fn plan<'a>(mapper: &'a Mapper, path: &'a str, origin_url: &'a str) -> Plan<'a> {
    Plan { mapper, origin_url, public_path: path, extra_query: "", filter: None }
}

fn benches(c: &mut Criterion) {
    let vod = media_playlist("1080p", 1000, 0, true).into_bytes();
    let large = mpd(128, 150, 6).into_bytes();
    assert_eq!(hex(&Sha256::digest(&vod)), VOD_SHA256, "VOD playlist differs from gen-fixtures.sh's");
    assert_eq!(hex(&Sha256::digest(&large)), MPD_SHA256, "MPD differs from gen-fixtures.sh's");

    let (cdn, proxy, none) = (mapper(Mode::Cdn), mapper(Mode::Proxy), mapper(Mode::None));
    let hls_path = "/hls/1080p/vod.m3u8";
    let hls_origin = "http://127.0.0.1:18080/hls/1080p/vod.m3u8";
    let dash_path = "/dash/large.mpd";
    let dash_origin = "http://127.0.0.1:18080/dash/large.mpd";

    // Correctness, once, outside the timed loops: cdn mode does what nginx's sub_filter
    // does in the proxy benchmark; none is the identity; proxy rewrites every origin URL.
    for (format, input, path, origin) in [(Format::Hls, &vod, hls_path, hls_origin), (Format::Dash, &large, dash_path, dash_origin)] {
        let text = std::str::from_utf8(input).unwrap();
        let out = transform(format, input, &plan(&cdn, path, origin)).unwrap();
        assert!(out == text.replace(HOST, CDN).as_bytes(), "{format:?} cdn rewrite is not the sub_filter result");
        let out = transform(format, input, &plan(&none, path, origin)).unwrap();
        assert!(out == *input, "{format:?} identity changed the input");
        let out = String::from_utf8(transform(format, input, &plan(&proxy, path, origin)).unwrap()).unwrap();
        assert!(!out.contains(HOST) && out.len() < input.len(), "{format:?} proxy rewrite left origin URLs");
    }
    let parsed = m3u8_rs::parse_playlist_res(&vod).unwrap();
    let mut written = Vec::new();
    parsed.write_to(&mut written).unwrap();
    assert!(written.len() > vod.len() / 2, "m3u8-rs wrote back {} bytes", written.len());
    let model = dash_mpd_core::parse(std::str::from_utf8(&large).unwrap()).unwrap();
    assert_eq!(model.periods.len(), 128, "dash-mpd-core lost Periods");
    let written = model.to_string();
    assert!(written.len() > large.len() / 2 && written.contains("SegmentTimeline"), "dash-mpd-core wrote back {} bytes", written.len());

    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Bytes(vod.len() as u64));
    for (name, m) in [("hls_rewrite_cdn", &cdn), ("hls_rewrite_proxy", &proxy), ("hls_identity", &none)] {
        let p = plan(m, hls_path, hls_origin);
        g.bench_function(name, |b| b.iter(|| transform(Format::Hls, black_box(&vod), black_box(&p))));
    }
    // The 1 KB live playlist of the proxy benchmark: per-call costs, not throughput.
    let live = media_playlist("live", 10, 184320, false).into_bytes();
    let live_plan = plan(&cdn, "/hls/live.m3u8", "http://127.0.0.1:18080/hls/live.m3u8");
    let out = transform(Format::Hls, &live, &live_plan).unwrap();
    assert!(out == std::str::from_utf8(&live).unwrap().replace(HOST, CDN).as_bytes(), "live cdn rewrite is not the sub_filter result");
    g.throughput(Throughput::Bytes(live.len() as u64));
    g.bench_function("hls_rewrite_cdn_live_1k", |b| b.iter(|| transform(Format::Hls, black_box(&live), black_box(&live_plan))));
    g.throughput(Throughput::Bytes(vod.len() as u64));
    g.bench_function("hls_m3u8rs_parse_serialize", |b| {
        b.iter(|| {
            let pl = m3u8_rs::parse_playlist_res(black_box(&vod)).unwrap();
            let mut out = Vec::with_capacity(vod.len() + vod.len() / 4);
            pl.write_to(&mut out).unwrap();
            out
        })
    });

    g.throughput(Throughput::Bytes(large.len() as u64));
    for (name, m) in [("dash_rewrite_cdn", &cdn), ("dash_rewrite_proxy", &proxy)] {
        let p = plan(m, dash_path, dash_origin);
        g.bench_function(name, |b| b.iter(|| transform(Format::Dash, black_box(&large), black_box(&p))));
    }
    g.bench_function("dash_mpdcore_parse_serialize", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(&large)).unwrap();
            dash_mpd_core::parse(text).unwrap().to_string()
        })
    });
    g.finish();
}

criterion_group!(rewrite, benches);
criterion_main!(rewrite);
