//! Stage 4: rate limits by the route's `[rate_limits.*]` block: GCRA with a burst, keyed
//! by client IP, a claim, a header or a query parameter, in this process ([`local`]) or
//! in Redis ([`redis_store`]). A refusal is 429 `rate_limited` with `Retry-After` and the
//! `RateLimit-Policy` / `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers.
//! See docs/rate-limits.md.

pub mod key;
pub mod local;
pub mod redis_store;
pub mod registry;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use registry::{BlockStats, Registry, Store};

use super::{Head, RequestContext};
use crate::config::limits::{Backend, KeySource, OnBackendError, RateLimitSettings};
use crate::error::ProxyError;

/// What a store decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Within the budget (one request taken from it).
    Allowed,
    /// Over it: the next request of this key is allowed after `wait`.
    Limited {
        /// Time until the budget holds one request again.
        wait: Duration,
    },
}

/// Least time between two "backend unavailable" warnings of one block.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// One compiled `[rate_limits.NAME]` block, shared by the routes that name it.
pub struct RateLimiter {
    name: Arc<str>,
    key: KeySource,
    on_error: OnBackendError,
    /// `None` only when a Redis client could not be built (then every decision is a
    /// backend error).
    store: Option<Arc<Store>>,
    stats: Arc<BlockStats>,
    /// The `RateLimit-Policy` value (constant for the block).
    policy: String,
    warn: WarnThrottle,
}

impl RateLimiter {
    /// Compiles a block, taking its store from `registry` (kept when the block is unchanged
    /// since the last snapshot). Connects to nothing: Redis on first use.
    pub fn new(settings: &RateLimitSettings, registry: &Registry) -> Self {
        let s = settings;
        let (fingerprint, on_error) = match &s.backend {
            Backend::Local => (format!("local|{:?}|{:?}|{}", s.key, s.period, s.burst), OnBackendError::Allow),
            Backend::Redis { url, on_error } => (format!("redis|{:?}|{:?}|{}|{}", s.key, s.period, s.burst, url.expose()), *on_error),
        };
        let (store, stats) = registry.store(&s.name, &fingerprint, || match &s.backend {
            Backend::Local => Some(Store::Local(local::LocalStore::new(s.period, s.burst))),
            Backend::Redis { url, .. } => match redis_store::RedisStore::new(&s.name, url.expose(), s.period, s.burst) {
                Ok(r) => Some(Store::Redis(r)),
                Err(e) => {
                    tracing::error!(limit = %s.name, error = %e, "rate limit: cannot use redis");
                    None
                }
            },
        });
        Self {
            name: s.name.as_str().into(),
            key: s.key.clone(),
            on_error,
            store,
            stats,
            policy: policy_field(&s.name, s.burst, s.period),
            warn: WarnThrottle::default(),
        }
    }

    /// The block's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local store, for the job that forgets full budgets (`None` for Redis).
    pub fn local_store(&self) -> Option<&local::LocalStore> {
        match self.store.as_deref() {
            Some(Store::Local(l)) => Some(l),
            _ => None,
        }
    }

    /// Takes one request from the budget of this request's key, or refuses it.
    pub async fn check(&self, head: &Head<'_>, ctx: &RequestContext) -> Result<(), ProxyError> {
        let key = key::of(&self.key, head, ctx);
        let decision = match self.store.as_deref() {
            Some(Store::Local(l)) => Ok(l.check(&key)),
            Some(Store::Redis(r)) => r.check(&key).await.map_err(|e| e.to_string()),
            None => Err("no redis client".to_owned()),
        };
        match decision {
            Ok(Decision::Allowed) => {
                self.stats.allowed.fetch_add(1, Relaxed);
                Ok(())
            }
            Ok(Decision::Limited { wait }) => {
                self.stats.limited.fetch_add(1, Relaxed);
                Err(self.refusal(wait))
            }
            Err(error) => {
                self.stats.backend_errors.fetch_add(1, Relaxed);
                if let Some(suppressed) = self.warn.due() {
                    tracing::warn!(limit = %self.name, %error, suppressed, on_backend_error = ?self.on_error, "rate limit backend unavailable");
                }
                match self.on_error {
                    OnBackendError::Allow => Ok(()),
                    OnBackendError::Deny => {
                        Err(ProxyError::BackendUnavailable(format!("rate limit {:?} cannot be checked right now", &*self.name)))
                    }
                }
            }
        }
    }

    /// The 429 for a request that must wait `wait`.
    fn refusal(&self, wait: Duration) -> ProxyError {
        let retry_after = ceil_secs(wait);
        ProxyError::RateLimited {
            retry_after,
            policy: self.policy.clone(),
            state: format!("{};r=0;t={retry_after}", sf_string(&self.name)),
            detail: format!("rate limit {:?} exceeded; retry in {retry_after}s", &*self.name),
        }
    }
}

/// `RateLimit-Policy`: `"NAME";q=BURST;w=WINDOW`, where the window is the time the
/// whole burst takes to come back (burst × period), in whole seconds, at least 1.
pub fn policy_field(name: &str, burst: u32, period: Duration) -> String {
    let window = ceil_secs(period.saturating_mul(burst));
    format!("{};q={burst};w={window}", sf_string(name))
}

/// Whole seconds, rounded up, at least 1 (`Retry-After: 0` would invite a retry storm).
fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// A structured-field String (RFC 9651): quoted, `\` and `"` escaped, other characters
/// outside printable ASCII dropped.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        let _ = out.write_char(c);
    }
    out.push('"');
    out
}

/// At most one warning per [`WARN_EVERY`], counting the ones left out.
#[derive(Default)]
struct WarnThrottle {
    /// Ms since `EPOCH` + 1 of the last warning (0: none yet).
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnThrottle {
    /// `Some(n)` when a warning is due (n left out since the last one).
    fn due(&self) -> Option<u64> {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        self.due_at(u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1))
    }

    fn due_at(&self, now: u64) -> Option<u64> {
        let last = self.last_ms.load(Relaxed);
        let every = WARN_EVERY.as_millis() as u64;
        if (last == 0 || now.saturating_sub(last) >= every) && self.last_ms.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::limits::parse_rate;
    use http::{HeaderMap, Method, Uri};

    fn settings(key: KeySource, rate: &str, burst: u32) -> RateLimitSettings {
        let (_, period) = parse_rate(rate).unwrap();
        RateLimitSettings { name: "per_viewer".into(), key, period, burst, backend: Backend::Local }
    }

    #[test]
    fn header_fields_follow_the_draft() {
        assert_eq!(policy_field("per_viewer", 40, Duration::from_millis(50)), "\"per_viewer\";q=40;w=2");
        assert_eq!(policy_field("a", 1, Duration::from_secs(1800)), "\"a\";q=1;w=1800");
        assert_eq!(policy_field("a", 3, Duration::from_millis(1)), "\"a\";q=3;w=1");
        assert_eq!(sf_string("we\"ird\\\n"), "\"we\\\"ird\\\\\"");
        assert_eq!((ceil_secs(Duration::from_millis(1)), ceil_secs(Duration::from_millis(2001))), (1, 3));
    }

    #[tokio::test]
    async fn a_refusal_is_a_429_with_every_field() {
        let reg = Registry::default();
        let l = RateLimiter::new(&settings(KeySource::Ip, "1/m", 2), &reg);
        let uri: Uri = "/v/a.m3u8".parse().unwrap();
        let headers = HeaderMap::new();
        let head = Head { method: &Method::GET, uri: &uri, headers: &headers };
        let ctx = RequestContext::new("192.0.2.7".parse().unwrap());
        assert!(l.check(&head, &ctx).await.is_ok());
        assert!(l.check(&head, &ctx).await.is_ok());
        let Err(e) = l.check(&head, &ctx).await else { panic!("third request allowed") };
        let ProxyError::RateLimited { retry_after, policy, state, .. } = &e else { panic!("{e:?}") };
        assert!((59..=60).contains(retry_after), "{retry_after}");
        assert_eq!(policy, "\"per_viewer\";q=2;w=120", "the whole burst comes back in 2 minutes");
        assert_eq!(state, &format!("\"per_viewer\";r=0;t={retry_after}"));
        let resp = e.into_response("id", false);
        assert_eq!(resp.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().contains_key("retry-after") && resp.headers().contains_key("ratelimit"));
        let other = RequestContext::new("192.0.2.8".parse().unwrap());
        assert!(l.check(&head, &other).await.is_ok(), "another client has its own budget");
        let mut text = String::new();
        reg.render(&mut text);
        assert!(text.contains("streamgate_rate_limit_decisions_total{limit=\"per_viewer\",result=\"allowed\"} 3"), "{text}");
        assert!(text.contains("streamgate_rate_limit_decisions_total{limit=\"per_viewer\",result=\"limited\"} 1"), "{text}");
        assert!(text.contains("streamgate_rate_limit_keys{limit=\"per_viewer\"} 2"), "{text}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_follows_on_backend_error() {
        let url = |s: &str| serde_json::from_value::<crate::config::secret::SecretRef>(s.into()).unwrap().resolve().unwrap();
        let uri: Uri = "/v/a.m3u8".parse().unwrap();
        let headers = HeaderMap::new();
        let head = Head { method: &Method::GET, uri: &uri, headers: &headers };
        let ctx = RequestContext::new("192.0.2.7".parse().unwrap());
        for (on_error, allowed) in [(OnBackendError::Allow, true), (OnBackendError::Deny, false)] {
            let reg = Registry::default();
            let mut s = settings(KeySource::Ip, "1/s", 1);
            s.backend = Backend::Redis { url: url("redis://127.0.0.1:1"), on_error };
            let l = RateLimiter::new(&s, &reg);
            for _ in 0..3 {
                let r = l.check(&head, &ctx).await;
                assert_eq!(r.is_ok(), allowed, "{on_error:?}: {r:?}");
                if let Err(e) = r {
                    assert_eq!(e.code(), "backend_unavailable");
                }
            }
            assert_eq!(l.stats.backend_errors.load(Relaxed), 3);
        }
    }

    #[test]
    fn warnings_are_throttled() {
        let w = WarnThrottle::default();
        assert_eq!(w.due_at(5), Some(0));
        assert_eq!(w.due_at(6), None);
        assert_eq!(w.due_at(9_000), None);
        // Due again once WARN_EVERY has passed, with the count of the ones left out.
        assert_eq!(w.due_at(10_005), Some(2));
        assert_eq!(w.due_at(10_006), None);
    }
}
