//! The health of each origin url: the active state from health checks, and passive
//! ejection after consecutive failed requests.
//!
//! All state is atomics, read and written on the request path without locks or
//! allocation: picking a url loads two atomics per url, and recording an outcome loads
//! one or two (and writes only when something changes). The states live in a
//! process-wide [`Registry`] keyed by origin name and url, so a config reload keeps what
//! is known about a url (an origin that is down stays out of the balancer) instead of
//! starting every url healthy again.
//!
//! States of a url:
//!
//! - **healthy**: in the balancer.
//! - **unhealthy**: `unhealthy_after` consecutive failed checks; out until
//!   `healthy_after` consecutive checks pass.
//! - **ejected**: `eject_after` consecutive failed requests (connect failure, reset or
//!   timeout before the response head, 502/503); out for `eject_for`.
//! - **probation**: back in after an ejection; the first success ends it, a failure
//!   ejects the url again at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::telemetry::metrics::esc;

/// Milliseconds on a process-wide monotonic clock; never 0 (0 means "not ejected").
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1).saturating_add(1)
}

/// What `/readyz` and `/metrics` say about a url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlState {
    /// In the balancer.
    Healthy,
    /// Failed its active checks.
    Unhealthy,
    /// Passively ejected until the cool-down ends.
    Ejected,
    /// Back after an ejection; one failure ejects it again.
    Probation,
}

impl UrlState {
    /// The name shown in `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlState::Healthy => "healthy",
            UrlState::Unhealthy => "unhealthy",
            UrlState::Ejected => "ejected",
            UrlState::Probation => "probation",
        }
    }

    /// Whether the balancer may pick the url (and `/readyz` counts it).
    pub fn usable(self) -> bool {
        !matches!(self, UrlState::Unhealthy | UrlState::Ejected)
    }
}

/// A change of the active state, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `unhealthy_after` checks failed in a row.
    WentDown,
    /// `healthy_after` checks passed in a row.
    CameUp,
}

/// The active check of an origin (from `origins.NAME.health`).
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Path requested with `GET` (below the url's base path).
    pub path: String,
    /// Time between checks of one url.
    pub interval: Duration,
    /// Time allowed for one check.
    pub timeout: Duration,
    /// Consecutive failed checks that make a url unhealthy.
    pub unhealthy_after: u32,
    /// Consecutive passed checks that make it healthy again.
    pub healthy_after: u32,
}

/// Why an active check failed (shown in `/readyz` detail and the log).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The check got a response, but not a 2xx one.
    #[error("health check answered {0}")]
    Status(u16),
    /// No complete answer within `health.timeout`.
    #[error("health check got no answer within {0:?}")]
    Timeout(Duration),
    /// Connect failure, reset, invalid response.
    #[error("{0}")]
    Request(crate::error::ProxyError),
}

/// The health of one url of one origin.
#[derive(Debug)]
pub struct UrlHealth {
    url: String,
    /// The generation of the pool whose checker owns the active state; checkers of an
    /// older snapshot see a newer value and stop.
    owner: AtomicU64,
    active_up: AtomicBool,
    check_passes: AtomicU32,
    check_fails: AtomicU32,
    /// Consecutive failed requests.
    fails: AtomicU32,
    /// 0: in; a time in the future: ejected until then; in the past: on probation.
    ejected_until: AtomicU64,
    ejections: AtomicU64,
}

impl UrlHealth {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            owner: AtomicU64::new(0),
            active_up: AtomicBool::new(true),
            check_passes: AtomicU32::new(0),
            check_fails: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    /// The url, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current state.
    pub fn state(&self) -> UrlState {
        if !self.active_up.load(Relaxed) {
            return UrlState::Unhealthy;
        }
        match self.ejected_until.load(Relaxed) {
            0 => UrlState::Healthy,
            until if now_ms() < until => UrlState::Ejected,
            _ => UrlState::Probation,
        }
    }

    /// Whether the balancer may pick this url. The hot path: reads the clock only while
    /// an ejection is recorded.
    #[inline]
    pub fn usable(&self) -> bool {
        self.active_up.load(Relaxed) && {
            let until = self.ejected_until.load(Relaxed);
            until == 0 || now_ms() >= until
        }
    }

    /// Passive ejections so far.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    /// Consecutive failed requests now.
    pub fn consecutive_failures(&self) -> u32 {
        self.fails.load(Relaxed)
    }

    /// Whether the active checks (if any) pass.
    pub fn active_up(&self) -> bool {
        self.active_up.load(Relaxed)
    }

    /// Whether a checker of pool generation `generation` still owns the active state.
    pub fn owned_by(&self, generation: u64) -> bool {
        self.owner.load(Relaxed) == generation
    }

    /// A request got a response head that is not 502/503: the url works. Ends a
    /// probation and the failure streak. Writes only when there is something to reset.
    #[inline]
    pub fn record_success(&self) {
        if self.fails.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
        }
        let until = self.ejected_until.load(Relaxed);
        if until != 0 && now_ms() >= until {
            // Only a probation ends here; a late answer does not cut an ejection short.
            let _ = self.ejected_until.compare_exchange(until, 0, Relaxed, Relaxed);
        }
    }

    /// A request failed (connect failure, reset or timeout before the head, 502/503).
    /// Returns true when this failure ejected the url. `eject_after == 0`: never ejects.
    pub fn record_failure(&self, eject_after: u32, eject_for: Duration) -> bool {
        if eject_after == 0 {
            return false;
        }
        let until = self.ejected_until.load(Relaxed);
        let eject = if until != 0 {
            let now = now_ms();
            if now < until {
                return false; // already out (a request that started before the ejection)
            }
            Some((until, now)) // on probation: out again at once
        } else if self.fails.fetch_add(1, Relaxed).saturating_add(1) >= eject_after {
            Some((0, now_ms()))
        } else {
            None
        };
        let Some((from, now)) = eject else { return false };
        let to = now.saturating_add(u64::try_from(eject_for.as_millis()).unwrap_or(u64::MAX));
        // One of several concurrent failures wins the ejection.
        if self.ejected_until.compare_exchange(from, to, Relaxed, Relaxed).is_ok() {
            self.fails.store(0, Relaxed);
            self.ejections.fetch_add(1, Relaxed);
            true
        } else {
            false
        }
    }

    /// Records one active check. Returns the transition it caused, if any.
    pub fn record_check(&self, passed: bool, unhealthy_after: u32, healthy_after: u32) -> Option<Transition> {
        if passed {
            self.check_fails.store(0, Relaxed);
            let n = self.check_passes.fetch_add(1, Relaxed).saturating_add(1);
            if !self.active_up.load(Relaxed) && n >= healthy_after {
                self.active_up.store(true, Relaxed);
                return Some(Transition::CameUp);
            }
        } else {
            self.check_passes.store(0, Relaxed);
            let n = self.check_fails.fetch_add(1, Relaxed).saturating_add(1);
            if self.active_up.load(Relaxed) && n >= unhealthy_after {
                self.active_up.store(false, Relaxed);
                return Some(Transition::WentDown);
            }
        }
        None
    }
}

/// The health of every configured url, by origin name. Process-wide, like the metrics.
#[derive(Debug, Default)]
pub struct Registry {
    origins: RwLock<BTreeMap<String, Vec<Arc<UrlHealth>>>>,
    generations: AtomicU64,
}

impl Registry {
    /// The states for a newly built pool of `origin` over `urls`, and the pool's
    /// generation. States of urls the origin already had are kept; the new pool's
    /// checkers take them over (older checkers stop). Without active checks (`checked`
    /// false) the active state is reset to up, since nothing would ever bring it back.
    pub fn claim(&self, origin: &str, urls: &[String], checked: bool) -> (Vec<Arc<UrlHealth>>, u64) {
        let generation = self.generations.fetch_add(1, Relaxed).saturating_add(1);
        let mut map = match self.origins.write() {
            Ok(m) => m,
            Err(_) => {
                let states: Vec<_> = urls.iter().map(|u| Arc::new(UrlHealth::new(u))).collect();
                return (states, generation);
            }
        };
        let old = map.remove(origin).unwrap_or_default();
        let states: Vec<Arc<UrlHealth>> =
            urls.iter().map(|u| old.iter().find(|h| h.url == *u).cloned().unwrap_or_else(|| Arc::new(UrlHealth::new(u)))).collect();
        for h in &states {
            h.owner.store(generation, Relaxed);
            if !checked {
                h.active_up.store(true, Relaxed);
                h.check_fails.store(0, Relaxed);
                h.check_passes.store(0, Relaxed);
            }
        }
        map.insert(origin.to_owned(), states.clone());
        (states, generation)
    }

    /// Forgets origins that are no longer configured.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        if let Ok(mut m) = self.origins.write() {
            m.retain(|name, _| keep(name));
        }
    }

    /// Appends the per-url gauges and counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let origins: Vec<(String, Vec<Arc<UrlHealth>>)> = match self.origins.read() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        out.push_str("# HELP streamgate_upstream_up Whether an origin url is in the balancer (1) or out: unhealthy or ejected (0).\n# TYPE streamgate_upstream_up gauge\n");
        for (name, urls) in &origins {
            for h in urls {
                let up = u8::from(h.state().usable());
                let _ = writeln!(out, "streamgate_upstream_up{{origin=\"{}\",url=\"{}\"}} {up}", esc(name), esc(&h.url));
            }
        }
        out.push_str("# HELP streamgate_upstream_ejections_total Passive ejections of an origin url after consecutive failed requests.\n# TYPE streamgate_upstream_ejections_total counter\n");
        for (name, urls) in &origins {
            for h in urls {
                let _ = writeln!(
                    out,
                    "streamgate_upstream_ejections_total{{origin=\"{}\",url=\"{}\"}} {}",
                    esc(name),
                    esc(&h.url),
                    h.ejections()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_move_a_url_down_and_up() {
        let h = UrlHealth::new("http://a");
        assert_eq!(h.record_check(false, 2, 3), None);
        assert_eq!(h.record_check(false, 2, 3), Some(Transition::WentDown));
        assert_eq!(h.state(), UrlState::Unhealthy);
        assert!(!h.usable());
        assert_eq!(h.record_check(true, 2, 3), None);
        assert_eq!(h.record_check(false, 2, 3), None, "a failure restarts the count");
        assert_eq!(h.record_check(true, 2, 3), None);
        assert_eq!(h.record_check(true, 2, 3), None);
        assert_eq!(h.record_check(true, 2, 3), Some(Transition::CameUp));
        assert_eq!(h.state(), UrlState::Healthy);
    }

    #[test]
    fn consecutive_failures_eject_and_probation_ends_with_a_success() {
        let h = UrlHealth::new("http://a");
        let long = Duration::from_secs(60);
        assert!(!h.record_failure(3, long));
        assert!(!h.record_failure(3, long));
        h.record_success();
        assert!(!h.record_failure(3, long), "a success resets the streak");
        assert!(!h.record_failure(3, long));
        assert!(h.record_failure(3, long));
        assert_eq!(h.state(), UrlState::Ejected);
        assert!(!h.usable());
        assert!(!h.record_failure(3, long), "already out");
        assert_eq!(h.ejections(), 1);

        // A zero cool-down puts the url on probation at once.
        let p = UrlHealth::new("http://b");
        assert!(p.record_failure(1, Duration::ZERO));
        assert_eq!(p.state(), UrlState::Probation);
        assert!(p.usable());
        assert!(p.record_failure(5, Duration::ZERO), "one failure on probation ejects again");
        assert_eq!(p.ejections(), 2);
        p.record_success();
        assert_eq!(p.state(), UrlState::Healthy);
        assert!(!h.record_failure(0, long) && !UrlHealth::new("x").record_failure(0, long), "0 turns ejection off");
    }

    #[test]
    fn registry_keeps_state_across_claims() {
        let r = Registry::default();
        let (a, g1) = r.claim("o", &["http://a".into(), "http://b".into()], true);
        a[0].record_check(false, 1, 1);
        let (b, g2) = r.claim("o", &["http://a".into(), "http://c".into()], true);
        assert!(Arc::ptr_eq(&a[0], &b[0]));
        assert!(!b[0].active_up(), "state survives a reload");
        assert!(b[1].active_up());
        assert!(!a[0].owned_by(g1) && b[0].owned_by(g2));
        let (c, _) = r.claim("o", &["http://a".into()], false);
        assert!(c[0].active_up(), "without checks nothing would bring it back");
        let mut text = String::new();
        r.render(&mut text);
        assert!(text.contains("streamgate_upstream_up{origin=\"o\",url=\"http://a\"} 1"), "{text}");
        assert!(!text.contains("http://b"), "{text}");
        r.retain(|_| false);
        let mut text = String::new();
        r.render(&mut text);
        assert!(!text.contains("http://a"), "{text}");
    }
}
