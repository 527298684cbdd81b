//! The request path, as a straight list of phases, each returning early with a
//! `ProxyError`:
//!
//! 1. context: request id (echoed or made), start time
//! 2. limits: request head size (431)
//! 3. route: longest prefix (+host) in the current snapshot (404), path sanity (400)
//! 4. forward: the route's origin pool picks a url and sends (502/504)
//! 5. respond: clean the head, add `Via`/`x-request-id`
//! 6. observe: the body is wrapped so that the access log and metrics are written when
//!    it ends, and so that an origin that stalls mid-body aborts the response
//!
//! Later capabilities slot in as phases here (auth, rate limits and policy before
//! routing; manifest transformation in `respond`), never by reaching back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::HeaderName;
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::cache::{self, CachedRequest, ManifestCache};
use crate::config::{ConfigErrors, ConfigSource};
use crate::error::{ErrorCode, ProxyError};
use crate::layers::{Head, RequestContext};
use crate::proxy;
use crate::routing::request_host;
use crate::routing::Route;
use crate::snapshot::Snapshot;
use crate::stream;
use crate::telemetry::access_log::{ObservedBody, RequestRecord};
use crate::telemetry::metrics::Metrics;
use crate::upstream::Upstream;

/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared state of a running proxy. Small; cloned as `Arc<App>` into every connection.
pub struct App {
    /// The current config snapshot; swapped atomically on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Process-wide metrics.
    pub metrics: Arc<Metrics>,
    /// Where the config came from, for reloads.
    pub source: ConfigSource,
    /// Set once shutdown has begun (`/readyz` turns 503).
    pub shutting_down: AtomicBool,
    /// The manifest cache (survives reloads; its budget follows `cache.max_bytes`).
    pub cache: Arc<ManifestCache>,
    ids: RequestIds,
}

impl App {
    /// A new app over a first snapshot.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>, source: ConfigSource) -> Self {
        let cache = Arc::new(ManifestCache::new(snapshot.config.raw.cache.max_bytes.0));
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            source,
            shutting_down: AtomicBool::new(false),
            cache,
            ids: RequestIds::new(),
        }
    }

    /// Reloads config from its source; on any problem the old snapshot keeps serving.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        match crate::config::load_and_validate(&self.source) {
            Ok(cfg) => {
                let old = self.snapshot.load();
                let (new_raw, old_raw) = (&cfg.raw, &old.config.raw);
                for (section, changed) in [
                    ("server", serde_json::to_value(&new_raw.server).ok() != serde_json::to_value(&old_raw.server).ok()),
                    ("admin.listen", new_raw.admin.listen != old_raw.admin.listen),
                    ("log", serde_json::to_value(&new_raw.log).ok() != serde_json::to_value(&old_raw.log).ok()),
                ] {
                    if changed {
                        tracing::warn!(section, "changed settings in this section take effect only after a restart");
                    }
                }
                self.cache.set_budget(cfg.raw.cache.max_bytes.0);
                let snapshot = Snapshot::build(cfg, &self.metrics);
                snapshot.start_jobs(&self.metrics);
                self.snapshot.store(Arc::new(snapshot));
                self.metrics.reloads_ok.fetch_add(1, Relaxed);
                tracing::info!("config reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Relaxed);
                tracing::error!(problems = %e, "config reload refused; keeping the previous config");
                Err(e)
            }
        }
    }

    /// The request id for a request: the client's `x-request-id` when it is short and
    /// plain, else a new one.
    pub fn request_id(&self, given: Option<&HeaderValue>) -> HeaderValue {
        self.ids.accept_or_make(given)
    }

    /// Handles one request. Never fails: errors become problem+json responses.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // 1. context
        let start = Instant::now();
        let snapshot = self.snapshot.load_full();
        let request_id = self.ids.accept_or_make(req.headers().get(&X_REQUEST_ID));
        let method = req.method().clone();
        let log = snapshot.config.log.access;
        let path = if log { req.uri().path().to_owned() } else { String::new() };
        let head_only = method == Method::HEAD;
        let origin_header = req.headers().get(http::header::ORIGIN).cloned();
        let mut ctx = snapshot.context.build(&Head { method: req.method(), uri: req.uri(), headers: req.headers() }, peer);
        let mut matched: Option<Arc<Route>> = None;

        // 2..9, each returning early with a ProxyError
        let result = self.phases(&snapshot, req, peer, &request_id, &mut ctx, &mut matched).await;

        // 6. observe
        let (mut resp, route, stats, upstream, origin_stats, idle, cache) = match result {
            Ok(done) => (done.response, done.route, done.stats, done.upstream, Some(done.origin_stats), done.idle, done.cache),
            Err((err, route, stats)) => {
                if err.status().is_server_error() {
                    tracing::debug!(code = err.code(), error = %err, "request failed");
                }
                let id = request_id.to_str().unwrap_or("");
                let mut r = err.into_response(id, head_only);
                r.headers_mut().insert(X_REQUEST_ID, request_id.clone());
                (r, route, stats, None, None, None, None)
            }
        };
        if let Some(cors) = matched.as_ref().and_then(|r| r.cors.as_ref()) {
            cors.apply(origin_header.as_ref(), resp.headers_mut());
        }
        let record = RequestRecord {
            start,
            request_id: request_id.to_str().unwrap_or("").into(),
            route,
            stats,
            method,
            path,
            status: resp.status().as_u16(),
            upstream,
            code: resp.extensions().get::<ErrorCode>().map(|c| c.0),
            log,
            origin_stats,
            cache,
            context: log.then_some(ctx),
        };
        let (parts, body) = resp.into_parts();
        let body = http_body_util::BodyExt::boxed_unsync(ObservedBody::new(body, record, idle));
        resp = Response::from_parts(parts, body);
        resp
    }

    async fn phases(
        &self,
        snapshot: &Snapshot,
        req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
        ctx: &mut RequestContext,
        matched: &mut Option<Arc<Route>>,
    ) -> Result<Done, (ProxyError, Arc<str>, Arc<crate::telemetry::metrics::RouteStats>)> {
        let unmatched = || -> (Arc<str>, _) { (Arc::from(""), self.metrics.route("")) };

        // 2. limits
        let limit = snapshot.config.server.max_header_bytes;
        let size = head_size(&req);
        if size > limit {
            let (r, s) = unmatched();
            return Err((ProxyError::HeaderTooLarge { size, limit }, r, s));
        }

        // 3. route
        let host = request_host(req.uri(), req.headers());
        let path = req.uri().path();
        let Some(route) = snapshot.routes.find(host, path) else {
            let (r, s) = unmatched();
            return Err((ProxyError::RouteNotFound(path.to_owned()), r, s));
        };
        let fail = |e: ProxyError| (e, route.name.clone(), route.stats.clone());
        *matched = Some(route.clone());
        proxy::check_path(path).map_err(fail)?;

        // 4. access control: CORS preflight, auth, rate limit, policy (src/layers/)
        let head = Head { method: req.method(), uri: req.uri(), headers: req.headers() };
        if let Some(preflight) = route.cors.as_ref().and_then(|c| c.preflight(&head)) {
            return Ok(Done {
                response: proxy::respond(preflight, request_id),
                route: route.name.clone(),
                stats: route.stats.clone(),
                upstream: None,
                origin_stats: route.origin.stats.clone(),
                idle: None,
                cache: None,
            });
        }
        if let Some(a) = &route.auth {
            a.check(&head, ctx).await.map_err(fail)?;
        }
        if let Some(l) = &route.rate_limit {
            l.check(&head, ctx).await.map_err(fail)?;
        }
        if let Some(p) = &route.policy {
            p.check(&head, ctx, &route.name).map_err(fail)?;
        }

        // 4. authorize: signed-URL tokens
        stream::verify_token(route, path, req.uri().query(), req.headers()).map_err(fail)?;

        // 5. forward, without streamgate's own query parameters
        let mut prepared = stream::prepare(route, req.uri().query()).map_err(fail)?;
        let manifests = stream::active(route, &prepared);
        let method = req.method().clone();
        if cache::cacheable(route, &method, path) {
            // Manifests through the cache: one origin fetch for every viewer at once, the
            // transformation per request.
            let public_path = path.to_owned();
            let (head, _) = req.into_parts();
            let r = CachedRequest {
                cache: &self.cache,
                route,
                head: &head,
                peer: peer.ip(),
                request_id,
                prepared: &prepared,
                public_path: &public_path,
            };
            let served = cache::serve(r).await.map_err(fail)?;
            return Ok(Done {
                response: proxy::respond(served.response, request_id),
                route: route.name.clone(),
                stats: route.stats.clone(),
                upstream: served.upstream,
                origin_stats: route.origin.stats.clone(),
                idle: None,
                cache: Some(served.status.as_str()),
            });
        }
        let public_path = if manifests { path.to_owned() } else { String::new() };
        let query = prepared.upstream_query.take();
        let (up, upstream_path) = proxy::forward(route, req, peer.ip(), request_id, query, manifests, None).await.map_err(fail)?;
        let Upstream { response, url: upstream, streamed } = up;
        let idle = streamed.then_some(route.origin.idle_timeout);

        // 6. transform manifests (everything else streams through)
        let response = if manifests {
            let ctx = stream::ManifestContext {
                route,
                method: &method,
                public_path: &public_path,
                upstream_path: &upstream_path,
                prepared: &prepared,
                read_timeout: route.origin.response_timeout,
                origin_url: stream::origin_url(&upstream, &upstream_path),
            };
            stream::respond(&ctx, response).await.map_err(fail)?
        } else {
            response
        };

        // 7. respond
        let response = proxy::respond(response, request_id);
        Ok(Done {
            response,
            route: route.name.clone(),
            stats: route.stats.clone(),
            upstream: Some(upstream),
            origin_stats: route.origin.stats.clone(),
            idle,
            cache: None,
        })
    }
}

struct Done {
    response: Response<Body>,
    route: Arc<str>,
    stats: Arc<crate::telemetry::metrics::RouteStats>,
    upstream: Option<String>,
    origin_stats: Arc<crate::telemetry::metrics::OriginStats>,
    idle: Option<std::time::Duration>,
    cache: Option<&'static str>,
}

/// Bytes in the request head as the client sent it (request line and header fields).
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().path_and_query().map_or(1, |p| p.as_str().len()) + 12;
    req.headers().iter().fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// Makes request ids: a random per-process prefix and a counter, or accepts the client's
/// when it is short and plain.
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        h.write_u32(std::process::id());
        Self { prefix: h.finish(), counter: AtomicU64::new(0) }
    }

    fn accept_or_make(&self, given: Option<&HeaderValue>) -> HeaderValue {
        if let Some(v) = given {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:+=/".contains(c)) {
                return v.clone();
            }
        }
        let n = self.counter.fetch_add(1, Relaxed);
        // 16 hex digits of the prefix (with the counter's high half mixed in, so ids stay
        // unique past 2^32 requests) and 8 of the counter's low half; no `format!`, as this
        // runs for every request.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let high = self.prefix ^ (n >> 32);
        let mut id = [0u8; 24];
        for (i, slot) in id[..16].iter_mut().enumerate() {
            *slot = HEX[((high >> (60 - 4 * i)) & 15) as usize];
        }
        for (i, slot) in id[16..].iter_mut().enumerate() {
            *slot = HEX[((n >> (28 - 4 * i)) & 15) as usize];
        }
        HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        let ids = RequestIds::new();
        let a = ids.accept_or_make(None);
        let b = ids.accept_or_make(None);
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a:?}");
        assert_eq!(&a.as_bytes()[..16], format!("{:016x}", ids.prefix).as_bytes());
        assert_eq!(&b.as_bytes()[16..], b"00000001", "the counter, after the first id");
        let given = HeaderValue::from_static("abc-123");
        assert_eq!(ids.accept_or_make(Some(&given)), given);
        let evil = HeaderValue::from_static("a\"b<script>");
        assert_ne!(ids.accept_or_make(Some(&evil)), evil);
    }
}
