//! Fuzzes the HLS rewriter (`streamgate_manifest::transform` with `Format::Hls`).
//!
//! The first input byte picks the plan, the rest is the playlist:
//! bits 0-1 the mode (`none`, `proxy`, `cdn`, and `proxy` again), bit 2 a rendition
//! filter (bits 4-7 pick which), bit 3 an extra query (as `propagate_query` and
//! tokenization add). The route is `/vod/` (prefix stripped) over `http://origin.test`
//! with alias `http://alias.test:8080/media`, beside a `/live/` route over
//! `http://live.test`, so absolute, relative, aliased, other-route and foreign children
//! all occur.
//!
//! Invariants: no panic (nor hang: libFuzzer's timeout), and with `none` and no filter an
//! `Ok` output equals the input. Without an extra query that is SPEC's "with rewrite =
//! none and no other transformation, output is byte-identical to input" (the identity
//! plan); with one, the rewriter takes its copying path but `none` maps no URI (and the
//! config refuses tokenizing under `none`), so every byte must still be copied as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate_manifest::{transform, Filter, Format, Mapper, Mode, OriginId, Plan, RouteTarget};

const FORMAT: Format = Format::Hls;
const ORIGIN_URL: &str = "http://origin.test/a/master.m3u8";
const PUBLIC_PATH: &str = "/vod/a/master.m3u8";

fn mapper(mode: Mode) -> Mapper {
    let own = RouteTarget {
        origins: ["http://origin.test", "http://alias.test:8080/media"].iter().filter_map(|o| OriginId::parse(o)).collect(),
        prefix: "/vod/".into(),
        strip_prefix: true,
    };
    let live =
        RouteTarget { origins: OriginId::parse("http://live.test").into_iter().collect(), prefix: "/live/".into(), strip_prefix: false };
    Mapper::new(mode, Some("https://cdn.test/v"), own, vec![live])
}

fn filter(pick: u8) -> Filter {
    match pick % 6 {
        0 => Filter { max_height: Some(720), ..Filter::default() },
        1 => Filter { codecs: vec!["avc1".into(), "mp4a".into()], ..Filter::default() },
        2 => Filter { min_bandwidth: Some(500_000), max_bandwidth: Some(3_000_000), ..Filter::default() },
        3 => Filter { max_frame_rate: Some(30.0), max_width: Some(1280), ..Filter::default() },
        4 => Filter { codecs: vec!["hvc1".into()], ..Filter::default() },
        _ => Filter { max_bandwidth: Some(1), ..Filter::default() },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let mode = match ctl & 3 {
        0 => Mode::None,
        2 => Mode::Cdn,
        _ => Mode::Proxy,
    };
    let m = mapper(mode);
    let f = (ctl & 4 != 0).then(|| filter(ctl >> 4));
    let extra_query = if ctl & 8 != 0 { "tok=a%20b&session=1" } else { "" };
    let plan = Plan { mapper: &m, origin_url: ORIGIN_URL, public_path: PUBLIC_PATH, extra_query, filter: f.as_ref() };
    let out = transform(FORMAT, input, &plan);
    if mode == Mode::None && f.is_none() {
        if let Ok(out) = out {
            assert!(
                out == input,
                "mode none (identity plan: {}) changed the manifest:\n{:?}\n=>\n{:?}",
                plan.is_identity(),
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out)
            );
        }
    }
});
