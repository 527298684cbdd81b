//! `[rate_limits.*]`, validated into typed settings: what a budget is keyed by, the GCRA
//! emission interval and burst, and where the state lives (this process or Redis).
//! See docs/rate-limits.md.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;

use super::schema::{RateLimitConfig, RawConfig};
use super::secret::Secret;

/// One `[rate_limits.NAME]` block, typed.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// The block's name (also the policy name in the `RateLimit*` headers and part of
    /// the Redis key).
    pub name: String,
    /// What a budget belongs to.
    pub key: KeySource,
    /// GCRA emission interval: one request is earned back every `period`.
    pub period: Duration,
    /// Requests allowed at once (the bucket size).
    pub burst: u32,
    /// Where the state lives.
    pub backend: Backend,
}

/// `key`: what a budget belongs to. Requests without the named claim, header or query
/// parameter are counted against their client IP (see docs/rate-limits.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// `ip`: the client address (trusted-proxy aware).
    Ip,
    /// `claim:NAME`: a verified JWT / introspection claim.
    Claim(String),
    /// `header:NAME`.
    Header(HeaderName),
    /// `query:NAME`.
    Query(String),
}

/// `backend` and its settings.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `local`: a keyed GCRA in this process.
    Local,
    /// `redis`: one atomic script per decision, shared by every instance.
    Redis {
        /// `redis_url`, resolved (it may hold a password: `Debug` redacts it).
        url: Secret,
        /// `on_backend_error`.
        on_error: OnBackendError,
    },
}

/// `on_backend_error`: what a request gets when Redis cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Pass the request (default): an outage of Redis is not an outage of the video.
    Allow,
    /// Refuse it with 503 `backend_unavailable`.
    Deny,
}

/// Parses a rate: `N/s`, `N/m` or `N/h` with N > 0, into the emission interval.
pub fn parse_rate(s: &str) -> Result<(u32, Duration), String> {
    let bad = || format!("invalid rate {s:?}: expected N/s, N/m or N/h with N > 0 (e.g. \"20/s\")");
    let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    let period = unit / n;
    if period.is_zero() {
        return Err(format!("invalid rate {s:?}: more than one request per nanosecond"));
    }
    Ok((n, period))
}

/// Parses a `key`.
pub fn parse_key(s: &str) -> Result<KeySource, String> {
    let expected = "expected \"ip\", \"claim:NAME\", \"header:NAME\" or \"query:NAME\"";
    if s == "ip" {
        return Ok(KeySource::Ip);
    }
    let Some((kind, name)) = s.split_once(':') else {
        return Err(if s.is_empty() { format!("is required: {expected}") } else { format!("invalid key {s:?}: {expected}") });
    };
    if name.is_empty() {
        return Err(format!("invalid key {s:?}: the name after {kind:?} is empty"));
    }
    match kind {
        "claim" => Ok(KeySource::Claim(name.to_owned())),
        "header" => HeaderName::from_bytes(name.as_bytes())
            .map(KeySource::Header)
            .map_err(|_| format!("invalid key {s:?}: {name:?} is not a valid header name")),
        "query" => Ok(KeySource::Query(name.to_owned())),
        _ => Err(format!("invalid key {s:?}: {expected}")),
    }
}

/// Validates every `[rate_limits.*]` block, and that routes with a block keyed by a
/// claim also authenticate; `p(key, message)` records a problem.
pub fn validate(raw: &RawConfig, p: &mut dyn FnMut(&str, String)) -> BTreeMap<String, RateLimitSettings> {
    let mut out = BTreeMap::new();
    for (name, r) in &raw.rate_limits {
        if let Some(s) = block(name, r, p) {
            out.insert(name.clone(), s);
        }
    }
    for (route, r) in &raw.routes {
        let Some(limit) = r.rate_limit.as_deref() else { continue };
        let keyed_by_claim = raw.rate_limits.get(limit).is_some_and(|l| l.key.starts_with("claim:"));
        if keyed_by_claim && r.auth.is_none() {
            p(
                &format!("routes.{route}.rate_limit"),
                format!("[rate_limits.{limit}] is keyed by a claim, which needs `auth` on the route (claims come from it)"),
            );
        }
    }
    out
}

fn block(name: &str, r: &RateLimitConfig, p: &mut dyn FnMut(&str, String)) -> Option<RateLimitSettings> {
    let at = |field: &str| format!("rate_limits.{name}.{field}");
    let mut ok = true;
    let key = parse_key(&r.key).map_err(|e| p(&at("key"), e)).ok();
    let rate = if r.rate.is_empty() {
        p(&at("rate"), "is required: N/s, N/m or N/h (e.g. \"20/s\")".into());
        None
    } else {
        parse_rate(&r.rate).map_err(|e| p(&at("rate"), e)).ok()
    };
    let burst = match (r.burst, rate) {
        (Some(0), _) => {
            p(&at("burst"), "must be at least 1".into());
            ok = false;
            1
        }
        (Some(b), _) => b,
        // Default: the per-second rate, at least 1.
        (None, Some((_, period))) => u32::try_from(Duration::from_secs(1).as_nanos() / period.as_nanos().max(1)).unwrap_or(u32::MAX).max(1),
        (None, None) => 1,
    };
    let on_error = match r.on_backend_error.as_deref() {
        None | Some("allow") => OnBackendError::Allow,
        Some("deny") => OnBackendError::Deny,
        Some(other) => {
            p(&at("on_backend_error"), format!("{other:?} is not one of \"allow\", \"deny\""));
            ok = false;
            OnBackendError::Allow
        }
    };
    let backend = match r.backend.as_deref() {
        None | Some("local") => {
            if r.redis_url.is_some() {
                p(&at("redis_url"), "is only used with backend = \"redis\"".into());
                ok = false;
            }
            if r.on_backend_error.is_some() {
                p(&at("on_backend_error"), "is only used with backend = \"redis\" (a local limit cannot fail)".into());
                ok = false;
            }
            Some(Backend::Local)
        }
        Some("redis") => match &r.redis_url {
            None => {
                p(&at("redis_url"), "is required with backend = \"redis\" (redis://host:port[/db])".into());
                None
            }
            Some(url) => match url.resolve() {
                Err(e) => {
                    p(&at("redis_url"), e.to_string());
                    None
                }
                Ok(secret) => match check_redis_url(secret.expose()) {
                    Ok(()) => Some(Backend::Redis { url: secret, on_error }),
                    Err(e) => {
                        p(&at("redis_url"), e);
                        None
                    }
                },
            },
        },
        Some(other) => {
            p(&at("backend"), format!("{other:?} is not one of \"local\", \"redis\""));
            None
        }
    };
    let (Some(key), Some((_, period)), Some(backend), true) = (key, rate, backend, ok) else { return None };
    Some(RateLimitSettings { name: name.to_owned(), key, period, burst, backend })
}

/// A `redis://` URL the client accepts. Messages never repeat the URL: it may hold a
/// password.
fn check_redis_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    if !url.starts_with("redis://") {
        return Err("must be a redis:// URL (redis://[:password@]host:port[/db]); rediss:// and unix sockets are not supported".into());
    }
    url.into_connection_info().map(|_| ()).map_err(|_| "is not a valid redis:// URL (redis://[:password@]host:port[/db])".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_blocks: &str) -> (BTreeMap<String, RateLimitSettings>, Vec<String>) {
        let raw: RawConfig = figment::Figment::new()
            .merge(<figment::providers::Toml as figment::providers::Format>::string(toml_blocks))
            .extract()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let settings = validate(&raw, &mut |k, m| out.push(format!("{k}: {m}")));
        (settings, out)
    }

    #[test]
    fn rates_become_emission_intervals() {
        assert_eq!(parse_rate("20/s"), Ok((20, Duration::from_millis(50))));
        assert_eq!(parse_rate("90/m"), Ok((90, Duration::from_secs(60) / 90)));
        assert_eq!(parse_rate(" 2 / h "), Ok((2, Duration::from_secs(1800))));
        for bad in ["", "20", "0/s", "-1/s", "20/d", "x/s", "1e3/s", "20/s/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keys_have_four_forms() {
        assert_eq!(parse_key("ip"), Ok(KeySource::Ip));
        assert_eq!(parse_key("claim:sub"), Ok(KeySource::Claim("sub".into())));
        assert_eq!(parse_key("header:X-Viewer"), Ok(KeySource::Header(HeaderName::from_static("x-viewer"))));
        assert_eq!(parse_key("query:session"), Ok(KeySource::Query("session".into())));
        for bad in ["", "IP", "cookie:a", "header:", "header:bad name", "claim"] {
            assert!(parse_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn burst_defaults_to_the_per_second_rate_at_least_one() {
        let (s, p) = problems(
            "[rate_limits.a]\nkey = \"ip\"\nrate = \"20/s\"\n[rate_limits.b]\nkey = \"ip\"\nrate = \"600/m\"\n[rate_limits.c]\nkey = \"ip\"\nrate = \"5/h\"\n[rate_limits.d]\nkey = \"ip\"\nrate = \"5/s\"\nburst = 40\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let burst = |n: &str| s.get(n).map(|x| x.burst);
        assert_eq!((burst("a"), burst("b"), burst("c"), burst("d")), (Some(20), Some(10), Some(1), Some(40)));
        assert!(matches!(s.get("a").map(|x| &x.backend), Some(Backend::Local)));
    }

    #[test]
    fn every_problem_names_its_field() {
        let (s, p) = problems(
            "[rate_limits.a]\nkey = \"cookie:x\"\nrate = \"0/s\"\nburst = 0\nbackend = \"memcached\"\n\
             [rate_limits.b]\nkey = \"ip\"\nrate = \"1/s\"\nbackend = \"redis\"\n\
             [rate_limits.c]\nkey = \"ip\"\nrate = \"1/s\"\nbackend = \"redis\"\nredis_url = \"http://:hunter2@x\"\non_backend_error = \"maybe\"\n\
             [rate_limits.d]\nkey = \"ip\"\nrate = \"1/s\"\nredis_url = \"redis://x\"\n\
             [rate_limits.e]\nkey = \"ip\"\nrate = \"1/s\"\nbackend = \"redis\"\nredis_url = \"env:SG_TEST_SURELY_UNSET_REDIS\"\n",
        );
        assert!(s.is_empty(), "{s:?}");
        let text = p.join("\n");
        for needle in [
            "rate_limits.a.key: invalid key \"cookie:x\"",
            "rate_limits.a.rate: invalid rate \"0/s\"",
            "rate_limits.a.burst: must be at least 1",
            "rate_limits.a.backend: \"memcached\"",
            "rate_limits.b.redis_url: is required",
            "rate_limits.c.redis_url: must be a redis:// URL",
            "rate_limits.c.on_backend_error: \"maybe\"",
            "rate_limits.d.redis_url: is only used with backend = \"redis\"",
            "rate_limits.e.redis_url: environment variable SG_TEST_SURELY_UNSET_REDIS is not set",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(!text.contains("hunter2"), "a password leaked into a message:\n{text}");
    }

    #[test]
    fn redis_blocks_keep_their_url_and_error_policy() {
        let (s, p) = problems(
            "[rate_limits.r]\nkey = \"header:x-viewer\"\nrate = \"10/s\"\nbackend = \"redis\"\nredis_url = \"redis://:pw@127.0.0.1:6379/2\"\non_backend_error = \"deny\"\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let Some(Backend::Redis { url, on_error }) = s.get("r").map(|x| x.backend.clone()) else { panic!("not redis") };
        assert_eq!(url.expose(), "redis://:pw@127.0.0.1:6379/2");
        assert_eq!(on_error, OnBackendError::Deny);
        assert!(!format!("{:?}", s.get("r")).contains("pw@"), "Debug shows the password");
    }

    #[test]
    fn claim_keys_need_auth_on_the_route() {
        let (_, p) = problems(
            "[rate_limits.v]\nkey = \"claim:sub\"\nrate = \"1/s\"\n[routes.a]\nprefix = \"/a/\"\norigin = \"o\"\nrate_limit = \"v\"\n",
        );
        assert!(p.iter().any(|m| m.starts_with("routes.a.rate_limit: [rate_limits.v] is keyed by a claim")), "{p:?}");
    }
}
