//! Device class from the User-Agent: `bot`, `tv`, `tablet`, `mobile`, `desktop` or
//! `other`, by the product tokens that browsers, players and crawlers put in it.
//!
//! Why not a uap-core parser (`ua-parser`): that crate ships the matching engine but not
//! the regexes (`regexes.yaml` must be supplied), and uap-core classifies device
//! families and brands, not these classes, so a token table would still be needed on top.
//! A policy needs the class only; this table costs well under a microsecond per request
//! (measured in docs/access-control.md) and needs no data file or cache.

use std::sync::LazyLock;

/// Classes in priority order: the first that matches wins (a Googlebot smartphone UA
/// says `Android` and `Mobile`; an Android TV says `Android`; an iPad says `Mobile/`).
const RULES: &[(&str, &[&str])] = &[
    (
        "bot",
        &[
            "bot/",
            "bot;",
            "bot ",
            "bot)",
            "-bot",
            "crawler",
            "spider",
            "slurp",
            "headlesschrome",
            "lighthouse",
            "curl/",
            "wget/",
            "python-requests",
            "python-urllib",
            "go-http-client",
            "facebookexternalhit",
            "bingpreview",
            "httpclient",
        ],
    ),
    (
        "tv",
        &[
            "smart-tv",
            "smarttv",
            "googletv",
            "android tv",
            "androidtv",
            "appletv",
            "apple tv",
            "tvos",
            "roku",
            "crkey",
            "bravia",
            "web0s",
            "webos",
            "netcast",
            "hbbtv",
            "tizen",
            "; aft",
            "playstation",
            "xbox",
            "nintendo",
            "viera",
            "philipstv",
            "dtv",
        ],
    ),
    ("tablet", &["ipad", "tablet", "kindle", "silk/", "playbook", "nexus 7", "nexus 9", "sm-t", "sm-x"]),
    ("mobile", &["mobi", "iphone", "ipod", "android", "windows phone", "blackberry", "opera mini", "iemobile", "kaios"]),
    ("desktop", &["windows nt", "macintosh", "mac os x", "x11", "linux", "cros ", "freebsd", "openbsd"]),
];

/// Extra bits beside the class bits: "android" and "mobile" seen (an Android UA without
/// "Mobile" is a tablet: Android tablets omit it).
const ANDROID: u32 = 1 << 30;
const MOBILE_WORD: u32 = 1 << 31;

/// Every needle in one automaton (one pass over the User-Agent, case-insensitive), each
/// with the bits it sets.
struct Matcher {
    automaton: aho_corasick::AhoCorasick,
    bits: Vec<u32>,
}

static MATCHER: LazyLock<Option<Matcher>> = LazyLock::new(|| {
    let mut needles = Vec::new();
    let mut bits = Vec::new();
    for (i, (_, list)) in RULES.iter().enumerate() {
        for n in *list {
            needles.push(*n);
            bits.push((1u32 << i) | if *n == "android" { ANDROID } else { 0 });
        }
    }
    needles.push("mobile");
    bits.push(MOBILE_WORD);
    let automaton = aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build(&needles).ok()?;
    Some(Matcher { automaton, bits })
});

/// The class of a User-Agent value (only its first 512 bytes are read).
pub fn classify(user_agent: &str) -> &'static str {
    let Some(m) = MATCHER.as_ref() else { return "other" };
    let ua = user_agent.as_bytes();
    let ua = ua.get(..512).unwrap_or(ua);
    let mut seen = 0u32;
    for hit in m.automaton.find_overlapping_iter(ua) {
        seen |= m.bits.get(hit.pattern().as_usize()).copied().unwrap_or(0);
    }
    for (i, (class, _)) in RULES.iter().enumerate() {
        if seen & (1 << i) != 0 {
            if *class == "mobile" && seen & ANDROID != 0 && seen & MOBILE_WORD == 0 {
                return "tablet";
            }
            return class;
        }
    }
    "other"
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn real_user_agents() {
        for (ua, want) in [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "desktop"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "desktop"),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "desktop"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "mobile"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "mobile"),
            ("AppleCoreMedia/1.0.0.21E236 (iPhone; U; CPU OS 17_4 like Mac OS X; en_us)", "mobile"),
            ("MyPlayer/3.1 (Linux;Android 13) ExoPlayerLib/2.19.1", "tablet"),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "tablet"),
            ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "tablet"),
            ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 94.0.4606.31/7.0 TV Safari/537.36", "tv"),
            ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36 WebAppManager", "tv"),
            ("Roku/DVP-12.5 (12.5.0.4178-88)", "tv"),
            ("Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7624.3337N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "tv"),
            ("AppleCoreMedia/1.0.0.21L227 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)", "tv"),
            ("Mozilla/5.0 (Linux; Android 12; BRAVIA 4K VH2 Build/STT1.211025.001.Z4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tv"),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
            ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
            ("curl/8.5.0", "bot"),
            ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
            ("VLC/3.0.20 LibVLC/3.0.20", "other"),
            ("", "other"),
        ] {
            assert_eq!(classify(ua), want, "{ua}");
        }
    }

    #[test]
    fn long_and_odd_values_do_not_panic() {
        let long = "é".repeat(1000);
        assert_eq!(classify(&long), "other");
        assert_eq!(classify(&format!("{}iPhone", "x".repeat(600))), "other", "only the first 512 bytes are read");
    }
}
