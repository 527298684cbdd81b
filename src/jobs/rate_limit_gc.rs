//! Forgets full budgets of local rate limits: one periodic job per `local` block, named
//! `rate_limit_gc:NAME`, calling governor's `retain_recent`. Without it a limiter keyed
//! by a header or query value would keep one entry for every value ever seen.
//!
//! A job holds only a `Weak` to its limiter: it stops when the limiter's snapshot is
//! gone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{spawn_periodic, JobGuard, Registry, Run};
use crate::layers::rate_limit::RateLimiter;

/// Time between two runs. Memory is bounded by the keys seen within this interval
/// plus one burst window (about 64 bytes each).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Starts the job of one limiter (none for a Redis-backed one: Redis expires its keys).
pub fn start(limiter: &Arc<RateLimiter>, registry: &Arc<Registry>) -> Option<JobGuard> {
    limiter.local_store()?;
    let weak: Weak<RateLimiter> = Arc::downgrade(limiter);
    let name = format!("rate_limit_gc:{}", limiter.name());
    Some(spawn_periodic(registry, name, INTERVAL, INTERVAL / 10, move || {
        let weak = weak.clone();
        async move {
            let Some(store) = weak.upgrade() else { return Run::Stop };
            match store.local_store() {
                Some(local) => {
                    local.retain_recent();
                    Run::Ok
                }
                None => Run::Stop,
            }
        }
    }))
}
