//! How long a manifest stays current: whether it is live (will change) or VOD (will not),
//! and for live ones how often the packager updates it. A cache uses this to decide
//! freshness: HLS live playlists every target duration (RFC 8216 §6.2.2 has clients reload
//! after one), dynamic MPDs every `minimumUpdatePeriod` (ISO/IEC 23009-1 §5.4).
//!
//! Only the few lines or the one start tag that say so are read; the document is not
//! validated here (the rewriter does that).

use std::time::Duration;

use crate::Format;

/// What a manifest says about its own lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Liveness {
    /// Will not change: an HLS playlist with `EXT-X-ENDLIST` or `EXT-X-PLAYLIST-TYPE:VOD`,
    /// an HLS master playlist, or a static MPD.
    Vod,
    /// Changes as the stream goes on.
    Live {
        /// How often it is updated: the HLS target duration, or the MPD's
        /// `minimumUpdatePeriod`. `None` when the manifest does not say.
        refresh: Option<Duration>,
        /// HLS: `EXT-X-PART-INF` present (Low-Latency HLS, blocking reloads possible).
        low_latency: bool,
    },
}

/// Reads the liveness of a manifest.
pub fn liveness(format: Format, input: &[u8]) -> Liveness {
    match format {
        Format::Hls => hls(input),
        Format::Dash => dash(input),
    }
}

fn hls(input: &[u8]) -> Liveness {
    let mut target = None;
    let mut low_latency = false;
    let mut master = false;
    for line in input.split(|&c| c == b'\n') {
        let line = line.trim_ascii();
        let Some(tag) = line.strip_prefix(b"#EXT") else { continue };
        if tag == b"-X-ENDLIST" || tag.starts_with(b"-X-PLAYLIST-TYPE:VOD") {
            return Liveness::Vod;
        }
        if let Some(v) = tag.strip_prefix(b"-X-TARGETDURATION:") {
            target = std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok());
        } else if tag.starts_with(b"-X-PART-INF:") {
            low_latency = true;
        } else if tag.starts_with(b"-X-STREAM-INF:") || tag.starts_with(b"-X-I-FRAME-STREAM-INF:") {
            master = true;
        }
    }
    if master && target.is_none() {
        return Liveness::Vod;
    }
    Liveness::Live { refresh: target.filter(|&t| t > 0).map(Duration::from_secs), low_latency }
}

fn dash(input: &[u8]) -> Liveness {
    let Some(start) = memchr::memmem::find(input, b"<MPD").or_else(|| memchr::memmem::find(input, b":MPD")) else {
        return Liveness::Vod;
    };
    let rest = &input[start..];
    let end = memchr::memchr(b'>', rest).unwrap_or(rest.len());
    let tag = &rest[..end];
    if attr(tag, b"type").is_none_or(|t| t != b"dynamic") {
        return Liveness::Vod;
    }
    let refresh = attr(tag, b"minimumUpdatePeriod").and_then(iso8601_duration).filter(|d| !d.is_zero());
    Liveness::Live { refresh, low_latency: false }
}

/// The value of attribute `name` in a start tag (no entity decoding: the values read here
/// never need it).
fn attr<'a>(tag: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&tag[at..], name) {
        let pos = at + i;
        at = pos + name.len();
        if pos == 0 || !tag[pos - 1].is_ascii_whitespace() {
            continue;
        }
        let mut j = at;
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if tag.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let quote = *tag.get(j)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let value = &tag[j + 1..];
        let close = memchr::memchr(quote, value)?;
        return Some(&value[..close]);
    }
    None
}

/// An `xs:duration` such as `PT2S`, `PT0.5S`, `PT1M30S`, `P1DT2H` (years and months are
/// refused: their length is not fixed).
pub fn iso8601_duration(v: &[u8]) -> Option<Duration> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut secs = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                let n: f64 = num.parse().ok()?;
                secs += n * mult;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    take(date, &[('D', 86_400.0), ('W', 604_800.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_live_vod_and_master() {
        let live = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n";
        assert_eq!(liveness(Format::Hls, live), Liveness::Live { refresh: Some(Duration::from_secs(6)), low_latency: false });
        let ended = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(liveness(Format::Hls, ended), Liveness::Vod);
        let typed = b"#EXTM3U\r\n#EXT-X-PLAYLIST-TYPE:VOD\r\n#EXT-X-TARGETDURATION:4\r\n";
        assert_eq!(liveness(Format::Hls, typed), Liveness::Vod);
        let event = b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:4\n";
        assert!(matches!(liveness(Format::Hls, event), Liveness::Live { .. }), "EVENT playlists grow");
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert_eq!(liveness(Format::Hls, master), Liveness::Vod);
        let ll = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1.0\n";
        assert_eq!(liveness(Format::Hls, ll), Liveness::Live { refresh: Some(Duration::from_secs(4)), low_latency: true });
    }

    #[test]
    fn dash_static_and_dynamic() {
        let d = br#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2.5S"><Period/></MPD>"#;
        assert_eq!(liveness(Format::Dash, d), Liveness::Live { refresh: Some(Duration::from_millis(2500)), low_latency: false });
        let no_mup = br#"<MPD type='dynamic'/>"#;
        assert_eq!(liveness(Format::Dash, no_mup), Liveness::Live { refresh: None, low_latency: false });
        assert_eq!(liveness(Format::Dash, br#"<MPD type="static"/>"#), Liveness::Vod);
        assert_eq!(liveness(Format::Dash, br#"<MPD mediaPresentationDuration="PT1M"/>"#), Liveness::Vod, "static is the default");
        let prefixed = br#"<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011" subtype="x" type = "dynamic" minimumUpdatePeriod="PT1M"/>"#;
        assert_eq!(liveness(Format::Dash, prefixed), Liveness::Live { refresh: Some(Duration::from_secs(60)), low_latency: false });
    }

    #[test]
    fn durations() {
        for (s, secs) in [("PT2S", 2.0), ("PT0.5S", 0.5), ("PT1M30S", 90.0), ("P1DT1H", 90_000.0), ("PT1H", 3600.0)] {
            assert_eq!(iso8601_duration(s.as_bytes()), Some(Duration::from_secs_f64(secs)), "{s}");
        }
        for bad in ["", "P", "PT", "2S", "P1Y", "PT1X", "PTS", "PT1.2.3S"] {
            assert_eq!(iso8601_duration(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = liveness(Format::Hls, &input);
            let _ = liveness(Format::Dash, &input);
            let _ = iso8601_duration(&input);
        }
    }
}
