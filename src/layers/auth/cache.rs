//! A small bounded cache of credentials already checked, keyed by the credential's bytes:
//! a verified JWT or an introspection answer is reused until it expires (or a short
//! bound passes), so that the signature check or the call to the endpoint happens once
//! per token and interval, not once per request.
//!
//! Bounded by entries and by key bytes. When full, expired entries are dropped; if that
//! is not enough the whole cache is cleared (cheap, rare, and safe: a miss only costs one
//! verification).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

/// Most entries kept.
const MAX_ENTRIES: usize = 10_000;
/// Most key bytes kept (tokens are at most `max_token_bytes` each).
const MAX_KEY_BYTES: usize = 8 << 20;

/// A bounded map from credential bytes to `V`, each entry valid until its deadline.
pub struct TokenCache<V> {
    inner: RwLock<Inner<V>>,
}

struct Inner<V> {
    map: HashMap<Box<[u8]>, (V, Instant)>,
    key_bytes: usize,
}

impl<V: Clone> TokenCache<V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self { inner: RwLock::new(Inner { map: HashMap::new(), key_bytes: 0 }) }
    }

    /// The value for this credential, if cached and not past its deadline.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<V> {
        let inner = self.inner.read().ok()?;
        match inner.map.get(key) {
            Some((v, until)) if now < *until => Some(v.clone()),
            _ => None,
        }
    }

    /// Keeps `value` for this credential until `until`.
    pub fn insert(&self, key: &[u8], value: V, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        let Ok(mut inner) = self.inner.write() else { return };
        if inner.map.len() >= MAX_ENTRIES || inner.key_bytes + key.len() > MAX_KEY_BYTES {
            inner.map.retain(|_, (_, u)| now < *u);
            inner.key_bytes = inner.map.keys().map(|k| k.len()).sum();
            if inner.map.len() >= MAX_ENTRIES || inner.key_bytes + key.len() > MAX_KEY_BYTES {
                inner.map.clear();
                inner.key_bytes = 0;
            }
        }
        if let Some(old) = inner.map.insert(key.into(), (value, until)) {
            drop(old);
        } else {
            inner.key_bytes += key.len();
        }
    }

    /// Forgets everything (the keys that verified the entries changed).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.map.clear();
            inner.key_bytes = 0;
        }
    }

    /// Entries held (tests, metrics).
    pub fn entries(&self) -> usize {
        self.inner.read().map(|i| i.map.len()).unwrap_or(0)
    }
}

impl<V: Clone> Default for TokenCache<V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let c = TokenCache::new();
        let now = Instant::now();
        c.insert(b"a", 1, now + Duration::from_secs(10), now);
        c.insert(b"gone", 2, now, now);
        assert_eq!(c.get(b"a", now), Some(1));
        assert_eq!(c.get(b"gone", now), None);
        assert_eq!(c.get(b"a", now + Duration::from_secs(11)), None);
        for i in 0..MAX_ENTRIES + 5 {
            c.insert(format!("k{i}").as_bytes(), i, now + Duration::from_secs(10), now);
        }
        assert!(c.entries() <= MAX_ENTRIES);
        c.clear();
        assert_eq!(c.entries(), 0);
    }
}
