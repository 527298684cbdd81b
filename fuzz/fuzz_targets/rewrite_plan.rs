//! The plan-from-a-byte harness shared by the HLS and DASH rewrite targets (see their
//! module docs for the encoding and the invariants).

use streamgate_manifest::{transform, Filter, Format, Mapper, Mode, OriginId, Plan, RouteTarget};

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

/// Runs one input: the first byte picks the plan, the rest is the manifest.
pub fn run(format: Format, origin_url: &str, public_path: &str, data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else { return };
    let mode = match ctl & 3 {
        0 => Mode::None,
        2 => Mode::Cdn,
        _ => Mode::Proxy,
    };
    let m = mapper(mode);
    let f = (ctl & 4 != 0).then(|| filter(ctl >> 4));
    let extra_query = if ctl & 8 != 0 { "tok=a%20b&session=1" } else { "" };
    let plan = Plan { mapper: &m, origin_url, public_path, extra_query, filter: f.as_ref() };
    let out = transform(format, input, &plan);
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
}
