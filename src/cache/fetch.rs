//! A manifest request through the cache: fresh hit, stale-while-revalidate, or a miss
//! that starts or joins the one fetch for its key; then the per-request transformation of
//! the shared origin manifest.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Empty;
use streamgate_manifest::detect::{by_content_type, detect, sniff};
use streamgate_manifest::liveness;

use super::freshness::{with_max_age, Freshness, State};
use super::{Buffered, Entry, Flight, Found, Key, ManifestCache, Outcome};
use crate::body::{full, Body};
use crate::error::ProxyError;
use crate::routing::Route;
use crate::stream::{self, Prepared};

/// `x-cache`: how the cache answered (`hit`, `miss`, `coalesced`, `stale`, `stale-if-error`).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// How a cached request was answered, for the `x-cache` header and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh from the cache.
    Hit,
    /// Fetched for this request.
    Miss,
    /// Waited for a fetch another request started.
    Coalesced,
    /// Served stale while a refresh runs.
    Stale,
    /// Served stale because the origin failed.
    StaleIfError,
}

impl CacheStatus {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Coalesced => "coalesced",
            CacheStatus::Stale => "stale",
            CacheStatus::StaleIfError => "stale-if-error",
        }
    }
}

/// A GET for a manifest path on a route with `manifest.cache = true`.
pub struct CachedRequest<'a> {
    /// The process cache.
    pub cache: &'a Arc<ManifestCache>,
    /// The route.
    pub route: &'a Arc<Route>,
    /// The client's request head (its body is empty: GET).
    pub head: &'a http::request::Parts,
    /// The client's address.
    pub peer: IpAddr,
    /// This request's id (the fetch carries the id of the request that started it).
    pub request_id: &'a HeaderValue,
    /// What the request contributes to the transformation.
    pub prepared: &'a Prepared,
    /// The path the client asked for.
    pub public_path: &'a str,
}

/// The answer, with what the access log needs.
pub struct Served {
    /// The response (head not yet cleaned for the client).
    pub response: Response<Body>,
    /// The origin url that answered, when this request caused or joined a fetch.
    pub upstream: Option<String>,
    /// How the cache answered.
    pub status: CacheStatus,
}

/// Whether a request can go through the cache: a GET or HEAD for an `.m3u8`/`.mpd` path on a route
/// that caches.
pub fn cacheable(route: &Route, method: &Method, path: &str) -> bool {
    // HEAD too: it is answered like the GET (the origin is asked with GET on a miss) and
    // hyper sends the head without the body.
    route.manifest.cache && (*method == Method::GET || *method == Method::HEAD) && stream::is_manifest_path(path)
}

/// The query sent upstream for a cached manifest: the client's, without streamgate's own
/// parameters (already gone from `prepared.upstream_query`) and without the propagated
/// per-viewer ones, so that all viewers share one entry and one fetch.
fn shared_query(route: &Route, head: &http::request::Parts, prepared: &Prepared) -> Option<String> {
    let q = match &prepared.upstream_query {
        Some(replaced) => replaced.as_deref(),
        None => head.uri.query(),
    }?;
    let names = &route.manifest.propagate_query;
    if names.is_empty() {
        return Some(q.to_owned());
    }
    let kept: Vec<&str> = q.split('&').filter(|kv| !names.iter().any(|n| kv.split('=').next() == Some(n.as_str()))).collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Serves a cacheable manifest request.
pub async fn serve(r: CachedRequest<'_>) -> Result<Served, ProxyError> {
    let upstream_path = r.route.upstream_path(r.head.uri.path()).into_owned();
    let query = shared_query(r.route, r.head, r.prepared);
    let mut pq = upstream_path.clone();
    if let Some(q) = &query {
        pq.push('?');
        pq.push_str(q);
    }
    let key = Key { route: r.route.name.clone(), path_and_query: pq };
    let cache = r.cache;
    let stale = match cache.get(&key) {
        Found::Entry(e) => match e.freshness.state(e.age(Instant::now())) {
            State::Fresh(left) => {
                cache.stats.hits.fetch_add(1, Relaxed);
                return render(&r, &key, &e, CacheStatus::Hit, left).map(|response| Served {
                    response,
                    upstream: None,
                    status: CacheStatus::Hit,
                });
            }
            State::StaleRevalidate => {
                cache.stats.stale_while_revalidate.fetch_add(1, Relaxed);
                match cache.flight(&key) {
                    Flight::Lead(tx) => spawn_fetch(&r, key.clone(), upstream_path, query, tx),
                    Flight::Join(_) | Flight::Fresh(_) => {}
                }
                let response = render(&r, &key, &e, CacheStatus::Stale, Duration::ZERO)?;
                return Ok(Served { response, upstream: None, status: CacheStatus::Stale });
            }
            State::StaleIfError => Some(e),
            State::Expired => {
                cache.remove(&key, &e);
                None
            }
        },
        Found::Nothing => None,
    };
    cache.stats.misses.fetch_add(1, Relaxed);
    let (mut rx, status) = match cache.flight(&key) {
        Flight::Lead(tx) => {
            let rx = tx.subscribe();
            spawn_fetch(&r, key.clone(), upstream_path, query, tx);
            (rx, CacheStatus::Miss)
        }
        Flight::Join(rx) => {
            cache.stats.coalesced.fetch_add(1, Relaxed);
            (rx, CacheStatus::Coalesced)
        }
        Flight::Fresh(e) => {
            // The fetch this request missed by a hair: as good as having waited for it.
            cache.stats.coalesced.fetch_add(1, Relaxed);
            let left = match e.freshness.state(e.age(Instant::now())) {
                State::Fresh(left) => left,
                _ => Duration::ZERO,
            };
            let response = render(&r, &key, &e, CacheStatus::Coalesced, left)?;
            return Ok(Served { response, upstream: Some(e.upstream.clone()), status: CacheStatus::Coalesced });
        }
    };
    let outcome = match rx.wait_for(Option::is_some).await {
        Ok(o) => o.clone(),
        Err(_) => None,
    };
    let outcome = outcome.unwrap_or_else(|| Outcome::Error(ProxyError::Internal("the manifest fetch ended without a result".into())));
    let failed = match &outcome {
        Outcome::Error(_) => true,
        Outcome::Response(b) => b.status.is_server_error(),
        Outcome::Entry(_) => false,
    };
    if let (true, Some(old)) = (failed, &stale) {
        cache.stats.stale_if_error.fetch_add(1, Relaxed);
        let why = match &outcome {
            Outcome::Error(e) => e.to_string(),
            Outcome::Response(b) => format!("origin answered {}", b.status),
            Outcome::Entry(_) => String::new(),
        };
        tracing::warn!(route = &*r.route.name, path = r.public_path, error = %why, "origin failed; serving the stale manifest (stale_if_error)");
        let response = render(&r, &key, old, CacheStatus::StaleIfError, Duration::ZERO)?;
        return Ok(Served { response, upstream: None, status: CacheStatus::StaleIfError });
    }
    match outcome {
        Outcome::Entry(e) => {
            let left = match e.freshness.state(e.age(Instant::now())) {
                State::Fresh(left) => left,
                _ => Duration::ZERO,
            };
            let response = render(&r, &key, &e, status, left)?;
            Ok(Served { response, upstream: Some(e.upstream.clone()), status })
        }
        Outcome::Response(b) => {
            let mut resp = Response::new(full(b.body.clone()));
            *resp.status_mut() = b.status;
            *resp.headers_mut() = b.headers.clone();
            resp.headers_mut().insert(X_CACHE, HeaderValue::from_static(status.as_str()));
            Ok(Served { response: resp, upstream: Some(b.upstream.clone()), status })
        }
        Outcome::Error(e) => Err(e),
    }
}

/// What a fetch task needs, owned.
struct FetchJob {
    cache: Arc<ManifestCache>,
    route: Arc<Route>,
    key: Key,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    peer: IpAddr,
    request_id: HeaderValue,
    upstream_path: String,
    query: Option<String>,
    public_path: String,
    /// A blocking LL-HLS reload may wait this long for the origin.
    blocking_wait: Option<Duration>,
}

fn spawn_fetch(
    r: &CachedRequest<'_>,
    key: Key,
    upstream_path: String,
    query: Option<String>,
    tx: tokio::sync::watch::Sender<Option<Outcome>>,
) {
    let blocking_wait = blocking_wait(r.cache, &r.route.name, &upstream_path, query.as_deref());
    let job = FetchJob {
        cache: r.cache.clone(),
        route: r.route.clone(),
        key,
        uri: r.head.uri.clone(),
        version: r.head.version,
        headers: r.head.headers.clone(),
        peer: r.peer,
        request_id: r.request_id.clone(),
        upstream_path,
        blocking_wait,
        query,
        public_path: r.public_path.to_owned(),
    };
    job.cache.stats.fetches.fetch_add(1, Relaxed);
    // Its own task: the fetch completes (and wakes every waiter) even if the request that
    // started it goes away.
    tokio::spawn(async move {
        let (outcome, store) = fetch(&job).await;
        job.cache.finish(&job.key, &tx, outcome, store);
    });
}

/// For a blocking playlist reload (`_HLS_msn`, RFC 8216bis §6.2.5.2) the origin may hold the
/// request until the part exists: allow three target durations, from the cached playlist
/// of the same path (the one players load first).
fn blocking_wait(cache: &ManifestCache, route: &Arc<str>, upstream_path: &str, query: Option<&str>) -> Option<Duration> {
    let q = query?;
    if !q.split('&').any(|kv| kv.starts_with("_HLS_msn=")) {
        return None;
    }
    let plain = Key { route: route.clone(), path_and_query: upstream_path.to_owned() };
    match cache.get(&plain) {
        Found::Entry(e) => e.freshness.refresh.map(|td| td.saturating_mul(3)),
        Found::Nothing => None,
    }
}

/// Fetches, reads and checks one manifest. Returns the outcome and whether to store it.
async fn fetch(job: &FetchJob) -> (Outcome, bool) {
    let route = &job.route;
    let mut head = Request::new(Empty::<Bytes>::new());
    *head.method_mut() = Method::GET;
    *head.uri_mut() = job.uri.clone();
    *head.version_mut() = job.version;
    *head.headers_mut() = job.headers.clone();
    let (up, _) =
        match crate::proxy::forward(route, head, job.peer, &job.request_id, Some(job.query.clone()), true, job.blocking_wait).await {
            Ok(x) => x,
            Err(e) => return (Outcome::Error(e), false),
        };
    let upstream = up.url;
    let (parts, body) = up.response.into_parts();
    let limit = route.manifest.max_bytes.0;
    let timeout = job.blocking_wait.map_or(route.origin.response_timeout, |w| w.max(route.origin.response_timeout));
    let ct = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = detect(ct, &job.upstream_path);
    let generic = by_content_type(ct).is_none();
    if format.is_some() && parts.status == StatusCode::OK {
        if let Err(e) = stream::refuse_encoded(&parts.headers) {
            return (Outcome::Error(e), false);
        }
    }
    let bytes = match stream::read_manifest(&parts.headers, body, limit, timeout).await {
        Ok(b) => b,
        Err(e) => return (Outcome::Error(e), false),
    };
    let format = match format {
        Some(f) if parts.status == StatusCode::OK && (!generic || sniff(f, &bytes)) => f,
        _ => {
            let b = Buffered { status: parts.status, headers: parts.headers, body: bytes, upstream };
            return (Outcome::Response(Arc::new(b)), false);
        }
    };
    // The route's default transformation validates the manifest once for everyone, and its
    // output is kept for every request that adds nothing of its own. (A route that changes
    // nothing passes manifests through unchecked, as it does without the cache.)
    let origin_url = stream::origin_url(&upstream, &job.upstream_path);
    let defaults = Prepared::default();
    let rendered = if stream::active(route, &defaults) {
        match stream::transform_manifest(route, format, &origin_url, &job.public_path, &defaults, &bytes) {
            Ok(out) => Some(out),
            Err(e) => return (Outcome::Error(e), false),
        }
    } else {
        None
    };
    let fresh = Freshness::decide(liveness(format, &bytes), &route.manifest, &parts.headers);
    let store = fresh.is_some();
    let freshness = fresh.unwrap_or(Freshness {
        fresh_for: Duration::ZERO,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        refresh: None,
    });
    let mut entry = Entry::new(format, bytes, parts.headers, generic, origin_url, upstream, job.public_path.clone(), freshness);
    if let (None, Some(out)) = (&route.tokenize, rendered) {
        entry = entry.with_memo(route, Bytes::from(out));
    }
    (Outcome::Entry(Arc::new(entry)), store)
}

/// The response for one request from a cached manifest.
fn render(r: &CachedRequest<'_>, key: &Key, e: &Arc<Entry>, status: CacheStatus, left: Duration) -> Result<Response<Body>, ProxyError> {
    let route = r.route;
    let identity = !stream::active(route, r.prepared);
    // Entity tags: the origin's when its bytes are served; a hash of the shared rendering
    // of a route's default plan; none for per-viewer renderings (tokens, filters, ...).
    let (body, etag) = if identity {
        (e.body.clone(), e.headers.get(header::ETAG).cloned())
    } else if route.tokenize.is_none() && r.prepared.filter.is_none() && r.prepared.propagate.is_empty() {
        match e.memo(route, r.public_path) {
            Some((b, tag)) => (b, Some(tag)),
            None => {
                let out = Bytes::from(stream::transform_manifest(route, e.format, &e.origin_url, r.public_path, r.prepared, &e.body)?);
                // Tagged only when kept: the hash is paid once per rendering, not per request.
                if r.public_path == e.public_path {
                    let tag = super::etag_of(&out);
                    r.cache.set_memo(key, e, route, out.clone(), tag.clone());
                    (out, Some(tag))
                } else {
                    (out, None)
                }
            }
        }
    } else {
        (Bytes::from(stream::transform_manifest(route, e.format, &e.origin_url, r.public_path, r.prepared, &e.body)?), None)
    };
    let mut h = e.headers.clone();
    if !identity {
        // The validators describe the origin's bytes; kept only when those are served.
        h.remove(header::ETAG);
        h.remove(header::LAST_MODIFIED);
    }
    for name in [
        header::CONTENT_LENGTH,
        header::ACCEPT_RANGES,
        header::CONTENT_RANGE,
        header::CACHE_CONTROL,
        header::AGE,
        HeaderName::from_static("content-md5"),
    ] {
        h.remove(name);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(header::CACHE_CONTROL, with_max_age(&e.cache_control, left));
    h.insert(header::AGE, HeaderValue::from(e.age(Instant::now()).as_secs()));
    h.insert(X_CACHE, HeaderValue::from_static(status.as_str()));
    if e.generic {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(stream::content_type(e.format)));
    }
    if let Some(tag) = &etag {
        h.insert(header::ETAG, tag.clone());
        if crate::proxy::headers::if_none_match(&r.head.headers, tag.as_bytes()) {
            // RFC 9110 §13.2.2: the client's copy is current.
            h.remove(header::CONTENT_LENGTH);
            let mut resp = Response::new(crate::body::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            *resp.headers_mut() = h;
            return Ok(resp);
        }
    }
    let mut resp = Response::new(full(body));
    *resp.headers_mut() = h;
    Ok(resp)
}
