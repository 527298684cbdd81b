//! How long a cached manifest is served: fresh for half its refresh interval when live
//! (the HLS target duration, the MPD's `minimumUpdatePeriod`), `vod_ttl` when not, never
//! longer than the origin's `Cache-Control` allows; then the stale windows of RFC 5861.

use std::time::Duration;

use http::header::{AGE, CACHE_CONTROL};
use http::{HeaderMap, HeaderValue};
use streamgate_manifest::Liveness;

use crate::config::schema::ManifestConfig;

/// Default stale-while-revalidate for VOD manifests.
const VOD_SWR: Duration = Duration::from_secs(60);
/// Default stale-if-error for VOD manifests.
const VOD_SIE: Duration = Duration::from_secs(3600);

/// The lifetime of one cached manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Served as fresh this long after it was stored.
    pub fresh_for: Duration,
    /// After that, served stale while one refresh runs, this long.
    pub stale_while_revalidate: Duration,
    /// After `fresh_for`, served stale while the origin fails, this long.
    pub stale_if_error: Duration,
    /// A live manifest's refresh interval (target duration / minimumUpdatePeriod).
    pub refresh: Option<Duration>,
}

/// Where an entry of a given age stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Fresh, with this much left.
    Fresh(Duration),
    /// Past fresh, inside the stale-while-revalidate window.
    StaleRevalidate,
    /// Past both windows but inside stale-if-error: usable only when the origin fails.
    StaleIfError,
    /// Too old for anything.
    Expired,
}

impl Freshness {
    /// The lifetime of a manifest the origin just sent, or `None` when it must not be
    /// stored (`no-store`, `private`, `no-cache`, or a zero lifetime).
    pub fn decide(liveness: Liveness, m: &ManifestConfig, headers: &HeaderMap) -> Option<Self> {
        let (fresh_for, swr, sie, refresh) = match liveness {
            Liveness::Vod => (m.vod_ttl.0, VOD_SWR, VOD_SIE, None),
            Liveness::Live { refresh, .. } => {
                let fresh = refresh.map_or(m.live_ttl.0, |r| r / 2);
                // Saturating: a playlist may claim any target duration (found by fuzzing).
                let interval = refresh.unwrap_or(m.live_ttl.0.saturating_mul(2));
                (fresh, fresh, interval.saturating_mul(3), refresh)
            }
        };
        let cap = origin_cap(headers)?;
        let fresh_for = cap.map_or(fresh_for, |c| c.min(fresh_for));
        if fresh_for.is_zero() {
            return None;
        }
        Some(Self {
            fresh_for,
            stale_while_revalidate: m.stale_while_revalidate.map_or(swr, |d| d.0),
            stale_if_error: m.stale_if_error.map_or(sie, |d| d.0),
            refresh,
        })
    }

    /// A fixed lifetime, for tests.
    #[cfg(test)]
    pub fn for_test(fresh_for: Duration) -> Self {
        Self { fresh_for, stale_while_revalidate: Duration::ZERO, stale_if_error: Duration::ZERO, refresh: None }
    }

    /// Where an entry of this age stands.
    pub fn state(&self, age: Duration) -> State {
        if age < self.fresh_for {
            State::Fresh(self.fresh_for - age)
        } else if age < self.fresh_for.saturating_add(self.stale_while_revalidate) {
            State::StaleRevalidate
        } else if age < self.fresh_for.saturating_add(self.stale_if_error) {
            State::StaleIfError
        } else {
            State::Expired
        }
    }
}

/// The origin's limit on shared caching: `None` forbids storing, `Some(None)` sets no
/// limit, `Some(Some(d))` caps freshness (`s-maxage` over `max-age`, minus `Age`).
fn origin_cap(headers: &HeaderMap) -> Option<Option<Duration>> {
    let mut max_age = None;
    let mut s_maxage = None;
    for v in headers.get_all(CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { continue };
        for d in v.split(',') {
            let d = d.trim();
            let (name, value) = d.split_once('=').map_or((d, None), |(n, v)| (n.trim(), Some(v.trim().trim_matches('"'))));
            let secs = || value.and_then(|v| v.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "no-store" | "private" | "no-cache" => return None,
                "max-age" => max_age = secs().or(Some(0)),
                "s-maxage" => s_maxage = secs().or(Some(0)),
                _ => {}
            }
        }
    }
    let age = headers.get(AGE).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    Some(s_maxage.or(max_age).map(|s| Duration::from_secs(s.saturating_sub(age))))
}

/// The `Cache-Control` a client gets: the origin's directives with `max-age` set to what
/// is left of the freshness (0 when served stale) and `s-maxage` dropped (a CDN in front
/// gets the same bound).
pub fn client_cache_control(origin: &HeaderMap, left: Duration) -> HeaderValue {
    with_max_age(&kept_directives(origin), left)
}

/// The origin's `Cache-Control` directives a client keeps (all but `max-age` and
/// `s-maxage`), each followed by `", "`: worked out once per cached manifest.
pub fn kept_directives(origin: &HeaderMap) -> String {
    let mut out = String::new();
    for v in origin.get_all(CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { continue };
        for d in v.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let name = d.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
            if name == "max-age" || name == "s-maxage" {
                continue;
            }
            out.push_str(d);
            out.push_str(", ");
        }
    }
    out
}

/// `kept` (from [`kept_directives`]) plus `max-age` of what is left, per response.
pub fn with_max_age(kept: &str, left: Duration) -> HeaderValue {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(kept.len() + 20);
    out.push_str(kept);
    let _ = write!(out, "max-age={}", left.as_secs());
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ManifestConfig {
        ManifestConfig::default()
    }

    fn headers(cc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        h
    }

    #[test]
    fn live_is_fresh_for_half_the_refresh_interval() {
        let live = Liveness::Live { refresh: Some(Duration::from_secs(6)), low_latency: false };
        let f = Freshness::decide(live, &cfg(), &HeaderMap::new()).unwrap();
        assert_eq!(f.fresh_for, Duration::from_secs(3));
        assert_eq!(f.stale_while_revalidate, Duration::from_secs(3));
        assert_eq!(f.stale_if_error, Duration::from_secs(18));
        let unknown = Liveness::Live { refresh: None, low_latency: false };
        assert_eq!(Freshness::decide(unknown, &cfg(), &HeaderMap::new()).unwrap().fresh_for, cfg().live_ttl.0);
        let vod = Freshness::decide(Liveness::Vod, &cfg(), &HeaderMap::new()).unwrap();
        assert_eq!((vod.fresh_for, vod.stale_while_revalidate, vod.stale_if_error), (cfg().vod_ttl.0, VOD_SWR, VOD_SIE));
    }

    #[test]
    fn origin_cache_control_bounds_it() {
        for cc in ["no-store", "private, max-age=60", "No-Cache", "max-age=0"] {
            assert_eq!(Freshness::decide(Liveness::Vod, &cfg(), &headers(cc)), None, "{cc}");
        }
        let f = Freshness::decide(Liveness::Vod, &cfg(), &headers("public, max-age=30")).unwrap();
        assert_eq!(f.fresh_for, Duration::from_secs(30));
        let f = Freshness::decide(Liveness::Vod, &cfg(), &headers("max-age=30, s-maxage=20")).unwrap();
        assert_eq!(f.fresh_for, Duration::from_secs(20), "s-maxage wins for a shared cache");
        let mut h = headers("max-age=30");
        h.insert(AGE, HeaderValue::from_static("25"));
        assert_eq!(Freshness::decide(Liveness::Vod, &cfg(), &h).unwrap().fresh_for, Duration::from_secs(5));
        let live = Liveness::Live { refresh: Some(Duration::from_secs(6)), low_latency: false };
        assert_eq!(Freshness::decide(live, &cfg(), &headers("max-age=600")).unwrap().fresh_for, Duration::from_secs(3), "never longer");
    }

    #[test]
    fn states_by_age_and_configured_windows() {
        let mut m = cfg();
        m.stale_while_revalidate = Some(crate::config::units::ConfigDuration(Duration::from_secs(2)));
        m.stale_if_error = Some(crate::config::units::ConfigDuration(Duration::from_secs(10)));
        let live = Liveness::Live { refresh: Some(Duration::from_secs(4)), low_latency: false };
        let f = Freshness::decide(live, &m, &HeaderMap::new()).unwrap();
        assert_eq!(f.state(Duration::from_millis(500)), State::Fresh(Duration::from_millis(1500)));
        assert_eq!(f.state(Duration::from_secs(3)), State::StaleRevalidate);
        assert_eq!(f.state(Duration::from_secs(5)), State::StaleIfError);
        assert_eq!(f.state(Duration::from_secs(12)), State::Expired);
    }

    #[test]
    fn fuzz_finding_huge_target_durations_saturate() {
        // cache_policy crash: "overflow when multiplying duration by scalar".
        let live = Liveness::Live { refresh: Some(Duration::from_secs(u64::MAX)), low_latency: false };
        let f = Freshness::decide(live, &cfg(), &HeaderMap::new()).unwrap();
        assert_eq!(f.stale_if_error, Duration::MAX);
        assert_eq!(f.state(Duration::from_secs(1)), State::Fresh(f.fresh_for - Duration::from_secs(1)));
        assert_eq!(f.state(Duration::from_secs(u64::MAX)), State::StaleIfError);
    }

    #[test]
    fn clients_get_what_is_left() {
        let v = client_cache_control(&headers("public, max-age=600, s-maxage=900, must-revalidate"), Duration::from_millis(2900));
        assert_eq!(v, "public, must-revalidate, max-age=2");
        assert_eq!(client_cache_control(&HeaderMap::new(), Duration::ZERO), "max-age=0");
    }
}
