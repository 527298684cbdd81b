//! The manifest cache: origin manifests (before any per-request transformation) by route
//! and upstream path + query, bounded by bytes, with single flight for misses.
//!
//! - **Store.** A map of entries plus a CLOCK queue for eviction: a hit only sets the
//!   entry's `referenced` flag; when the bytes held pass `cache.max_bytes`, the queue is
//!   walked from its oldest end, giving referenced entries a second chance and evicting
//!   the first unreferenced one. Every byte an entry holds counts (origin body, headers,
//!   the memoized rendering), so the budget bounds memory, not an entry count.
//! - **Single flight.** A miss either joins the fetch already running for its key or
//!   starts one. Fetches run as their own task, so a leader whose client goes away does
//!   not strand the others; everyone waiting gets the same [`Outcome`].
//! - **Freshness** is decided when an entry is stored ([`Freshness`]); serving fresh,
//!   stale-while-revalidate or stale-if-error is decided per request from its age.

mod fetch;
pub mod freshness;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use streamgate_manifest::Format;
use tokio::sync::watch;

use crate::error::ProxyError;
use crate::routing::Route;

pub use fetch::{cacheable, serve, CacheStatus, CachedRequest, X_CACHE};
pub use freshness::Freshness;

/// Fixed bytes counted per entry on top of its bodies and headers (map slot, queue slot,
/// the entry struct and its strings' headers).
const ENTRY_OVERHEAD: u64 = 512;

/// What the cache is keyed by: the route and the path + query sent upstream (without
/// streamgate's own and per-viewer parameters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Route name.
    pub route: Arc<str>,
    /// Upstream path and query.
    pub path_and_query: String,
}

/// A stored origin manifest.
pub struct Entry {
    /// HLS or DASH.
    pub format: Format,
    /// The origin's body, as it came.
    pub body: Bytes,
    /// The origin's response headers (hop-by-hop fields are removed when served).
    pub headers: HeaderMap,
    /// The origin sent a generic content type; the response gets the manifest's own.
    pub generic: bool,
    /// Absolute origin URL of the manifest (base for relative children).
    pub origin_url: String,
    /// The origin url that answered, for the access log.
    pub upstream: String,
    /// The public path it was requested under (for purges by path prefix).
    pub public_path: String,
    /// When it was stored.
    pub stored: Instant,
    /// How long it is fresh, and the stale windows after that.
    pub freshness: Freshness,
    /// The origin's `Cache-Control` directives clients keep (see
    /// [`freshness::kept_directives`]).
    pub cache_control: String,
    memo: Mutex<Option<Memo>>,
    referenced: AtomicBool,
    size: AtomicU64,
}

/// The rendering of an entry for a route's default plan (no per-viewer parts), reused
/// until the entry or the route (a config reload) changes.
struct Memo {
    route: Weak<Route>,
    body: Bytes,
    etag: HeaderValue,
}

/// A strong entity tag for a rendering: a hash of its bytes (the same bytes give the same
/// tag in every streamgate process of one version, so replicas agree).
pub fn etag_of(body: &[u8]) -> HeaderValue {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(body);
    // Once per rendering, not per request: format! is fine here.
    HeaderValue::from_str(&format!("\"sg-{:016x}\"", h.finish())).unwrap_or_else(|_| HeaderValue::from_static("\"sg\""))
}

impl Entry {
    /// Builds an entry.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        format: Format,
        body: Bytes,
        headers: HeaderMap,
        generic: bool,
        origin_url: String,
        upstream: String,
        public_path: String,
        freshness: Freshness,
    ) -> Self {
        let header_bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
        let cache_control = freshness::kept_directives(&headers);
        let size = ENTRY_OVERHEAD + (body.len() + header_bytes + origin_url.len() + upstream.len() + public_path.len()) as u64;
        Self {
            format,
            body,
            headers,
            generic,
            origin_url,
            upstream,
            public_path,
            stored: Instant::now(),
            freshness,
            cache_control,
            memo: Mutex::new(None),
            referenced: AtomicBool::new(false),
            size: AtomicU64::new(size),
        }
    }

    /// Time since it was stored.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    /// Bytes counted against the budget.
    pub fn size(&self) -> u64 {
        self.size.load(Relaxed)
    }

    /// The memoized default rendering for `route` under `public_path` and its entity
    /// tag, if there is one.
    pub fn memo(&self, route: &Arc<Route>, public_path: &str) -> Option<(Bytes, HeaderValue)> {
        if public_path != self.public_path {
            return None;
        }
        let m = lock(&self.memo);
        m.as_ref().filter(|m| std::ptr::eq(m.route.as_ptr(), Arc::as_ptr(route))).map(|m| (m.body.clone(), m.etag.clone()))
    }

    /// Sets the default rendering of an entry not stored yet.
    pub fn with_memo(self, route: &Arc<Route>, body: Bytes) -> Self {
        self.size.fetch_add(body.len() as u64, Relaxed);
        let etag = etag_of(&body);
        *lock(&self.memo) = Some(Memo { route: Arc::downgrade(route), body, etag });
        self
    }
}

/// What a fetch produced, shared by everyone who waited for it.
#[derive(Clone)]
pub enum Outcome {
    /// A manifest (stored, unless the origin forbade it).
    Entry(Arc<Entry>),
    /// Any other answer from the origin (an error status, or not a manifest), buffered.
    Response(Arc<Buffered>),
    /// The proxy's own error (origin down, timeout, invalid manifest, too large).
    Error(ProxyError),
}

/// A buffered non-manifest response.
pub struct Buffered {
    /// Status.
    pub status: StatusCode,
    /// Headers as the origin sent them.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// The origin url that answered.
    pub upstream: String,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct CacheStats {
    /// Served fresh from the cache.
    pub hits: AtomicU64,
    /// Not in the cache (or too old): the request started or joined a fetch.
    pub misses: AtomicU64,
    /// Misses that joined a fetch another request had started.
    pub coalesced: AtomicU64,
    /// Served stale while a background refresh ran.
    pub stale_while_revalidate: AtomicU64,
    /// Served stale because the origin failed.
    pub stale_if_error: AtomicU64,
    /// Entries evicted to stay within the budget.
    pub evictions: AtomicU64,
    /// Fetches started.
    pub fetches: AtomicU64,
    /// Entries removed by purges.
    pub purged: AtomicU64,
}

struct Inner {
    entries: HashMap<Key, Arc<Entry>>,
    /// Eviction order (CLOCK). May hold keys already removed or replaced; those are
    /// skipped (an entry is matched by pointer).
    queue: VecDeque<(Key, Weak<Entry>)>,
    flights: HashMap<Key, watch::Receiver<Option<Outcome>>>,
    bytes: u64,
}

/// The cache. One per process; it survives config reloads.
pub struct ManifestCache {
    budget: AtomicU64,
    inner: Mutex<Inner>,
    /// Counters.
    pub stats: CacheStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here (no multi-step
    // invariants span an unwind point), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a lookup found.
pub enum Found {
    /// An entry (fresh or not: the caller decides by its age).
    Entry(Arc<Entry>),
    /// Nothing.
    Nothing,
}

/// The caller's part in a fetch.
pub enum Flight {
    /// It started the fetch: send the outcome on this sender.
    Lead(watch::Sender<Option<Outcome>>),
    /// Another request is fetching: wait on this receiver.
    Join(watch::Receiver<Option<Outcome>>),
    /// A fetch finished between the caller's lookup and this call: its fresh entry.
    Fresh(Arc<Entry>),
}

impl ManifestCache {
    /// An empty cache holding at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Self {
            budget: AtomicU64::new(budget),
            inner: Mutex::new(Inner { entries: HashMap::new(), queue: VecDeque::new(), flights: HashMap::new(), bytes: 0 }),
            stats: CacheStats::default(),
        }
    }

    /// Changes the budget (config reload), evicting at once if needed.
    pub fn set_budget(&self, budget: u64) {
        self.budget.store(budget, Relaxed);
        let mut inner = lock(&self.inner);
        self.evict(&mut inner);
    }

    /// The entry for `key`, marking it used.
    pub fn get(&self, key: &Key) -> Found {
        let inner = lock(&self.inner);
        match inner.entries.get(key) {
            Some(e) => {
                e.referenced.store(true, Relaxed);
                Found::Entry(e.clone())
            }
            None => Found::Nothing,
        }
    }

    /// Joins the fetch running for `key`, or registers a new one that the caller leads.
    /// When a fetch ended since the caller looked (its entry is now fresh), that entry is
    /// returned instead: checked under the same lock, so no second fetch starts.
    pub fn flight(&self, key: &Key) -> Flight {
        let mut inner = lock(&self.inner);
        if let Some(rx) = inner.flights.get(key) {
            return Flight::Join(rx.clone());
        }
        if let Some(e) = inner.entries.get(key) {
            if matches!(e.freshness.state(e.age(Instant::now())), freshness::State::Fresh(_)) {
                e.referenced.store(true, Relaxed);
                return Flight::Fresh(e.clone());
            }
        }
        let (tx, rx) = watch::channel(None);
        inner.flights.insert(key.clone(), rx);
        Flight::Lead(tx)
    }

    /// Whether a fetch for `key` is running.
    pub fn fetching(&self, key: &Key) -> bool {
        lock(&self.inner).flights.contains_key(key)
    }

    /// Ends the fetch for `key`: stores the entry when there is one and `store` allows,
    /// removes the flight, and wakes everyone waiting — all under one lock, so a request
    /// never sees neither the flight nor its entry.
    pub fn finish(&self, key: &Key, tx: &watch::Sender<Option<Outcome>>, outcome: Outcome, store: bool) {
        let mut inner = lock(&self.inner);
        inner.flights.remove(key);
        if let (Outcome::Entry(e), true) = (&outcome, store) {
            if e.size() <= self.budget.load(Relaxed) {
                if let Some(old) = inner.entries.insert(key.clone(), e.clone()) {
                    inner.bytes = inner.bytes.saturating_sub(old.size());
                }
                inner.bytes += e.size();
                inner.queue.push_back((key.clone(), Arc::downgrade(e)));
                self.evict(&mut inner);
            }
        }
        drop(inner);
        tx.send_replace(Some(outcome));
    }

    /// Drops an entry (e.g. one past every stale window).
    pub fn remove(&self, key: &Key, entry: &Arc<Entry>) {
        let mut inner = lock(&self.inner);
        if inner.entries.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            inner.entries.remove(key);
            inner.bytes = inner.bytes.saturating_sub(entry.size());
        }
    }

    /// Stores the default rendering of `entry` for `route` and counts its bytes.
    pub fn set_memo(&self, key: &Key, entry: &Arc<Entry>, route: &Arc<Route>, body: Bytes, etag: HeaderValue) {
        let added = body.len() as u64;
        let mut inner = lock(&self.inner);
        let stored = inner.entries.get(key).is_some_and(|e| Arc::ptr_eq(e, entry));
        let mut memo = lock(&entry.memo);
        let old = memo.replace(Memo { route: Arc::downgrade(route), body, etag }).map_or(0, |m| m.body.len() as u64);
        drop(memo);
        entry.size.fetch_add(added, Relaxed);
        entry.size.fetch_sub(old, Relaxed);
        if stored {
            inner.bytes = (inner.bytes + added).saturating_sub(old);
            self.evict(&mut inner);
        }
    }

    /// Removes the entries of `route` whose public path starts with `prefix`; returns how
    /// many.
    pub fn purge(&self, route: &str, prefix: &str) -> usize {
        let mut inner = lock(&self.inner);
        let before = inner.entries.len();
        let mut freed = 0;
        inner.entries.retain(|k, e| {
            let gone = &*k.route == route && e.public_path.starts_with(prefix);
            if gone {
                freed += e.size();
            }
            !gone
        });
        inner.bytes = inner.bytes.saturating_sub(freed);
        let n = before - inner.entries.len();
        self.stats.purged.fetch_add(n as u64, Relaxed);
        n
    }

    /// Bytes held and number of entries.
    pub fn usage(&self) -> (u64, usize) {
        let inner = lock(&self.inner);
        (inner.bytes, inner.entries.len())
    }

    fn evict(&self, inner: &mut Inner) {
        let budget = self.budget.load(Relaxed);
        // Each pass over the queue clears reference bits, so two passes always find a victim.
        let mut turns = inner.queue.len() * 2 + 1;
        while inner.bytes > budget && turns > 0 {
            turns -= 1;
            let Some((key, weak)) = inner.queue.pop_front() else { break };
            let Some(current) = inner.entries.get(&key) else { continue };
            if !std::ptr::eq(Arc::as_ptr(current), weak.as_ptr()) {
                continue;
            }
            if current.referenced.swap(false, Relaxed) {
                inner.queue.push_back((key, weak));
                continue;
            }
            if let Some(e) = inner.entries.remove(&key) {
                inner.bytes = inner.bytes.saturating_sub(e.size());
                self.stats.evictions.fetch_add(1, Relaxed);
            }
        }
        // Keys of removed or replaced entries pile up in the queue; trim them when the
        // queue is much longer than the map.
        if inner.queue.len() > 2 * inner.entries.len() + 64 {
            let entries = &inner.entries;
            inner.queue.retain(|(k, w)| entries.get(k).is_some_and(|e| std::ptr::eq(Arc::as_ptr(e), w.as_ptr())));
        }
    }

    /// Prometheus text for the cache.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let (bytes, entries) = self.usage();
        let s = &self.stats;
        let counters = [
            ("hits", "Manifest requests served fresh from the cache.", &s.hits),
            ("misses", "Manifest requests that started or joined an origin fetch.", &s.misses),
            ("coalesced", "Misses that waited for a fetch another request started.", &s.coalesced),
            ("stale_while_revalidate", "Stale manifests served while a background refresh ran.", &s.stale_while_revalidate),
            ("stale_if_error", "Stale manifests served because the origin failed.", &s.stale_if_error),
            ("evictions", "Entries evicted to stay within cache.max_bytes.", &s.evictions),
            ("fetches", "Origin fetches made for the cache.", &s.fetches),
            ("purged", "Entries removed by /cache/purge.", &s.purged),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP streamgate_manifest_cache_{name}_total {help}");
            let _ = writeln!(out, "# TYPE streamgate_manifest_cache_{name}_total counter");
            let _ = writeln!(out, "streamgate_manifest_cache_{name}_total {}", v.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP streamgate_manifest_cache_bytes Bytes held by the manifest cache.");
        let _ = writeln!(out, "# TYPE streamgate_manifest_cache_bytes gauge");
        let _ = writeln!(out, "streamgate_manifest_cache_bytes {bytes}");
        let _ = writeln!(out, "# HELP streamgate_manifest_cache_entries Manifests in the cache.");
        let _ = writeln!(out, "# TYPE streamgate_manifest_cache_entries gauge");
        let _ = writeln!(out, "streamgate_manifest_cache_entries {entries}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Arc<Entry> {
        Arc::new(Entry::new(
            Format::Hls,
            Bytes::from(vec![b'#'; n]),
            HeaderMap::new(),
            false,
            String::new(),
            String::new(),
            "/p".into(),
            Freshness::for_test(Duration::from_secs(60)),
        ))
    }

    fn key(p: &str) -> Key {
        Key { route: "r".into(), path_and_query: p.into() }
    }

    fn store(c: &ManifestCache, k: &Key, e: Arc<Entry>) {
        let tx = match c.flight(k) {
            Flight::Lead(tx) => tx,
            Flight::Fresh(old) => {
                c.remove(k, &old);
                let Flight::Lead(tx) = c.flight(k) else { panic!("no flight expected for {k:?}") };
                tx
            }
            Flight::Join(_) => panic!("no flight expected for {k:?}"),
        };
        c.finish(k, &tx, Outcome::Entry(e), true);
    }

    #[test]
    fn a_request_that_missed_a_just_finished_fetch_gets_its_entry_not_a_new_fetch() {
        let c = ManifestCache::new(1 << 20);
        let k = key("/race");
        assert!(matches!(c.get(&k), Found::Nothing), "looked before the fetch ended");
        store(&c, &k, entry(10));
        assert!(matches!(c.flight(&k), Flight::Fresh(_)), "then asked for a flight after it ended");
        assert!(matches!(c.flight(&k), Flight::Fresh(_)), "and no flight was registered");
    }

    #[test]
    fn bytes_stay_within_the_budget_and_used_entries_survive() {
        let size = entry(1000).size();
        let c = ManifestCache::new(10 * size);
        for i in 0..10 {
            store(&c, &key(&format!("/{i}")), entry(1000));
        }
        assert_eq!(c.usage().1, 10);
        // Use entry 0, then add more: 0 gets a second chance, 1 goes first.
        assert!(matches!(c.get(&key("/0")), Found::Entry(_)));
        store(&c, &key("/new"), entry(1000));
        let (bytes, n) = c.usage();
        assert!(bytes <= 10 * size, "{bytes}");
        assert_eq!(n, 10);
        assert!(matches!(c.get(&key("/0")), Found::Entry(_)), "a referenced entry survives");
        assert!(matches!(c.get(&key("/1")), Found::Nothing), "the oldest unreferenced entry goes");
        assert_eq!(c.stats.evictions.load(Relaxed), 1);
        // Many more than fit: the budget holds throughout.
        for i in 0..1000 {
            store(&c, &key(&format!("/many/{i}")), entry(1000 + i % 7));
            assert!(c.usage().0 <= 10 * size);
        }
        assert!(c.inner.lock().unwrap().queue.len() <= 2 * 10 + 64 + 1, "the queue is trimmed");
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_stored_but_still_delivered() {
        let c = ManifestCache::new(100);
        let k = key("/big");
        let Flight::Lead(tx) = c.flight(&k) else { panic!() };
        let Flight::Join(mut rx) = c.flight(&k) else { panic!("second request joins") };
        c.finish(&k, &tx, Outcome::Entry(entry(1000)), true);
        assert!(matches!(rx.borrow_and_update().as_ref(), Some(Outcome::Entry(_))));
        assert!(matches!(c.get(&k), Found::Nothing));
        assert_eq!(c.usage(), (0, 0));
        assert!(matches!(c.flight(&k), Flight::Lead(_)), "the flight ended");
    }

    #[test]
    fn purge_by_route_and_prefix_and_replacing_keeps_the_count_right() {
        let c = ManifestCache::new(1 << 30);
        store(&c, &key("/a"), entry(10));
        store(&c, &key("/a"), entry(20));
        assert_eq!(c.usage(), (20 + ENTRY_OVERHEAD + 2, 1));
        store(&c, &Key { route: "other".into(), path_and_query: "/a".into() }, entry(10));
        assert_eq!(c.purge("r", "/q"), 0);
        assert_eq!(c.purge("r", "/"), 1);
        assert_eq!(c.usage().1, 1);
        assert_eq!(c.stats.purged.load(Relaxed), 1);
    }
}
