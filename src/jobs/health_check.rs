//! The active health check: one periodic job per url of each origin with a `health`
//! block, named `health_check:ORIGIN:URL`. Each run sends the check (see
//! [`OriginPool::probe`]) and feeds the result to the url's health state.
//!
//! A job holds only a `Weak` to its pool: it stops when the pool's snapshot is gone, or
//! as soon as a newer pool of the same origin (a reload) has taken the url's state over.

use std::sync::{Arc, Weak};

use super::{spawn_periodic, JobGuard, Registry, Run};
use crate::upstream::health::Transition;
use crate::upstream::OriginPool;

/// Starts the checkers of one pool (none when it has no `health` block). Call inside
/// the runtime; keep the guards as long as the pool serves.
pub fn start(pool: &Arc<OriginPool>, registry: &Arc<Registry>) -> Vec<JobGuard> {
    let Some(settings) = pool.health.clone() else { return Vec::new() };
    let generation = pool.generation();
    pool.url_health()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let name = format!("health_check:{}:{}", pool.name, h.url());
            let weak: Weak<OriginPool> = Arc::downgrade(pool);
            let (unhealthy_after, healthy_after) = (settings.unhealthy_after, settings.healthy_after);
            spawn_periodic(registry, name, settings.interval, settings.interval / 10, move || {
                let weak = weak.clone();
                async move {
                    let Some(pool) = weak.upgrade() else { return Run::Stop };
                    let Some(h) = pool.url_health().get(i) else { return Run::Stop };
                    if !h.owned_by(generation) {
                        return Run::Stop;
                    }
                    let result = pool.probe(i).await;
                    match h.record_check(result.is_ok(), unhealthy_after, healthy_after) {
                        Some(Transition::WentDown) => {
                            tracing::warn!(origin = &*pool.name, url = h.url(), "url unhealthy: left the balancer");
                        }
                        Some(Transition::CameUp) => {
                            tracing::info!(origin = &*pool.name, url = h.url(), "url healthy again: back in the balancer");
                        }
                        None => {}
                    }
                    match result {
                        Ok(()) => Run::Ok,
                        Err(e) => Run::Failed(e.to_string()),
                    }
                }
            })
        })
        .collect()
}
