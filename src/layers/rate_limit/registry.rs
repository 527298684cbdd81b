//! The budgets and counters of every rate-limit block, kept across config reloads.
//!
//! One registry per process (in `Metrics`, like the health states). A snapshot's
//! [`super::RateLimiter`] takes its store from here: when a reload keeps a block
//! unchanged (same key, rate, burst, backend and URL) the new snapshot shares the old
//! store, so budgets (and the Redis connection) carry over; a changed block starts
//! with full budgets. Counters are kept by block name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock, Weak};

use super::local::LocalStore;
use super::redis_store::RedisStore;
use crate::telemetry::metrics::esc;

/// Where one block's budgets live.
pub enum Store {
    /// In this process.
    Local(LocalStore),
    /// In Redis.
    Redis(RedisStore),
}

/// Decisions of one block.
#[derive(Debug, Default)]
pub struct BlockStats {
    /// Requests let through.
    pub allowed: AtomicU64,
    /// Requests refused with 429.
    pub limited: AtomicU64,
    /// Decisions Redis could not make (then `on_backend_error` decided).
    pub backend_errors: AtomicU64,
}

struct Entry {
    fingerprint: String,
    store: Weak<Store>,
    stats: Arc<BlockStats>,
}

/// Every block's store and counters, by name.
#[derive(Default)]
pub struct Registry {
    blocks: RwLock<BTreeMap<String, Entry>>,
}

impl Registry {
    /// The store of block `name` with these settings (`fingerprint`): the live one if a
    /// snapshot still uses it, else a new one from `make`. Also the block's counters.
    pub fn store(&self, name: &str, fingerprint: &str, make: impl FnOnce() -> Option<Store>) -> (Option<Arc<Store>>, Arc<BlockStats>) {
        let Ok(mut blocks) = self.blocks.write() else {
            return (make().map(Arc::new), Arc::default());
        };
        let entry = blocks.entry(name.to_owned()).or_insert_with(|| Entry {
            fingerprint: String::new(),
            store: Weak::new(),
            stats: Arc::default(),
        });
        let live = (entry.fingerprint == fingerprint).then(|| entry.store.upgrade()).flatten();
        let store = live.or_else(|| {
            let s = make().map(Arc::new);
            entry.fingerprint = fingerprint.to_owned();
            entry.store = s.as_ref().map(Arc::downgrade).unwrap_or_default();
            s
        });
        (store, entry.stats.clone())
    }

    /// Appends the rate-limit counters (and local budget counts) in the Prometheus text
    /// format.
    pub fn render(&self, out: &mut String) {
        let Ok(blocks) = self.blocks.read() else { return };
        out.push_str("# HELP streamgate_rate_limit_decisions_total Rate-limit decisions, by block and result.\n# TYPE streamgate_rate_limit_decisions_total counter\n");
        for (name, e) in blocks.iter() {
            for (result, v) in [("allowed", &e.stats.allowed), ("limited", &e.stats.limited), ("backend_error", &e.stats.backend_errors)] {
                let _ = writeln!(
                    out,
                    "streamgate_rate_limit_decisions_total{{limit=\"{}\",result=\"{result}\"}} {}",
                    esc(name),
                    v.load(Relaxed)
                );
            }
        }
        out.push_str(
            "# HELP streamgate_rate_limit_keys Budgets held in memory by local rate limits.\n# TYPE streamgate_rate_limit_keys gauge\n",
        );
        for (name, e) in blocks.iter() {
            if let Some(Store::Local(l)) = e.store.upgrade().as_deref() {
                let _ = writeln!(out, "streamgate_rate_limit_keys{{limit=\"{}\"}} {}", esc(name), l.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn local() -> Option<Store> {
        Some(Store::Local(LocalStore::new(Duration::from_secs(1), 1)))
    }

    #[test]
    fn an_unchanged_block_keeps_its_store_and_a_changed_one_starts_afresh() {
        let r = Registry::default();
        let (a, sa) = r.store("x", "v1", local);
        let (b, sb) = r.store("x", "v1", || panic!("must reuse the live store"));
        assert!(matches!((&a, &b), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
        assert!(Arc::ptr_eq(&sa, &sb), "counters are kept by name");
        let (c, _) = r.store("x", "v2", local);
        assert!(matches!((&a, &c), (Some(a), Some(c)) if !Arc::ptr_eq(a, c)));
        drop((a, b, c));
        let mut text = String::new();
        r.render(&mut text);
        assert!(text.contains("streamgate_rate_limit_decisions_total{limit=\"x\",result=\"limited\"} 0"), "{text}");
    }
}
