//! The `local` backend: governor's keyed GCRA over a `DashMap`, one state (8 bytes) per
//! budget. Keys are 64-bit SipHash values of the budget key under a random per-store
//! seed, so an entry has a fixed size whatever a client sends, no request allocates,
//! and nobody can aim collisions at another client's budget. [`LocalStore::retain_recent`]
//! (a periodic job) drops budgets that are back to full, which bounds memory by the
//! keys seen within one job interval plus one burst window.

use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, QuantaClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

use super::key::BudgetKey;
use super::Decision;

type Keyed<C> = governor::RateLimiter<u64, DashMapStateStore<u64>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A block's budgets in this process.
pub struct LocalStore<C: Clock = QuantaClock> {
    limiter: Keyed<C>,
    seed: std::collections::hash_map::RandomState,
}

impl LocalStore<QuantaClock> {
    /// Budgets of `burst` requests, one earned back every `period`.
    pub fn new(period: Duration, burst: u32) -> Self {
        Self::with_clock(period, burst, QuantaClock::default())
    }
}

impl<C: Clock> LocalStore<C> {
    /// The same with another clock (tests).
    pub fn with_clock(period: Duration, burst: u32, clock: C) -> Self {
        let quota = quota(period, burst);
        Self { limiter: governor::RateLimiter::dashmap_with_clock(quota, clock), seed: Default::default() }
    }

    /// Takes one request from the key's budget.
    pub fn check(&self, key: &BudgetKey<'_>) -> Decision {
        let mut h = self.seed.build_hasher();
        match key {
            BudgetKey::Ip(ip) => ip.hash(&mut h),
            BudgetKey::Value { kind, value } => {
                h.write_u8(*kind);
                h.write(value);
            }
        }
        match self.limiter.check_key(&h.finish()) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited { wait: not_until.wait_time_from(self.limiter.clock().now()) },
        }
    }

    /// Forgets budgets that are full again (indistinguishable from a new one).
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Budgets held now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no budget is held.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// governor's quota: `burst` at once, one more every `period` (validation guarantees
/// a non-zero period; a zero one would mean "no limit", taken as one per nanosecond).
fn quota(period: Duration, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX)).allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::borrow::Cow;

    fn value(v: &str) -> BudgetKey<'_> {
        BudgetKey::Value { kind: b'h', value: Cow::Borrowed(v.as_bytes()) }
    }

    #[test]
    fn gcra_allows_the_burst_then_one_per_period() {
        let clock = FakeRelativeClock::default();
        let store = LocalStore::with_clock(Duration::from_millis(100), 3, clock.clone());
        let k = value("a");
        for _ in 0..3 {
            assert_eq!(store.check(&k), Decision::Allowed);
        }
        assert_eq!(store.check(&k), Decision::Limited { wait: Duration::from_millis(100) });
        clock.advance(Duration::from_millis(40));
        assert_eq!(store.check(&k), Decision::Limited { wait: Duration::from_millis(60) });
        clock.advance(Duration::from_millis(60));
        assert_eq!(store.check(&k), Decision::Allowed);
        assert!(matches!(store.check(&k), Decision::Limited { .. }));
        // A full budget comes back after burst * period.
        clock.advance(Duration::from_millis(300));
        for _ in 0..3 {
            assert_eq!(store.check(&k), Decision::Allowed);
        }
        assert!(matches!(store.check(&k), Decision::Limited { .. }));
    }

    #[test]
    fn over_time_the_allowed_count_is_burst_plus_rate() {
        // 1000 attempts every 7 ms (6.993 s), at 10/s with a burst of 5: 5 + 69 allowed.
        let clock = FakeRelativeClock::default();
        let store = LocalStore::with_clock(Duration::from_millis(100), 5, clock.clone());
        let mut allowed = 0;
        for _ in 0..1000 {
            if store.check(&value("x")) == Decision::Allowed {
                allowed += 1;
            }
            clock.advance(Duration::from_millis(7));
        }
        assert!((74..=75).contains(&allowed), "{allowed}");
    }

    #[test]
    fn keys_and_sources_are_independent_and_full_budgets_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let store = LocalStore::with_clock(Duration::from_secs(1), 1, clock.clone());
        assert_eq!(store.check(&value("a")), Decision::Allowed);
        assert_eq!(store.check(&value("b")), Decision::Allowed);
        let q = BudgetKey::Value { kind: b'q', value: Cow::Borrowed(b"a") };
        assert_eq!(store.check(&q), Decision::Allowed, "a query value is not the header value");
        assert_eq!(store.check(&BudgetKey::Ip("10.0.0.1".parse().unwrap())), Decision::Allowed);
        assert!(matches!(store.check(&value("a")), Decision::Limited { .. }));
        assert_eq!(store.len(), 4);
        clock.advance(Duration::from_secs(2));
        store.retain_recent();
        assert!(store.is_empty(), "{} budgets kept", store.len());
    }
}
