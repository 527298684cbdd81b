//! Upstream dispatch: origin pools (HTTP over a pooled keep-alive hyper client, with
//! manifests read whole by [`h1`] on direct origins; or a local directory), url selection over the healthy urls, timeouts, and retries of
//! idempotent requests (connect failure, reset before the head, 502/503) within
//! `retries` and `retry_deadline`. See docs/health-and-failover.md.

pub mod balance;
pub mod file;
pub mod h1;
pub mod health;
mod http_client;
pub mod tunnel;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::body::Body;
use crate::config::{OriginSettings, OriginUrl};
use crate::error::ProxyError;
use crate::telemetry::metrics::{Metrics, OriginStats};
use balance::{Balancer, Usable};
use health::{CheckSettings, UrlHealth};
use http_client::{classify, Failure, HttpClient};

/// One HTTP url of a pool, pre-rendered for the request path.
#[derive(Debug)]
struct HttpTarget {
    authority: Authority,
    host: HeaderValue,
    base_path: String,
    display: String,
}

enum Targets {
    /// `h1`: one pool per url for responses read whole, on direct origins (see [`h1`]).
    Http {
        targets: Vec<HttpTarget>,
        client: Box<HttpClient>,
        h1: Option<Vec<h1::H1Pool>>,
    },
    File {
        roots: Vec<PathBuf>,
    },
}

/// A named origin: its urls, balancer, client and counters.
pub struct OriginPool {
    /// The origin's name.
    pub name: Arc<str>,
    targets: Targets,
    balancer: Balancer,
    /// Time to the response head (also the deadline for reading a whole manifest).
    pub response_timeout: Duration,
    /// Longest pause inside a response body.
    pub idle_timeout: Duration,
    retries: u32,
    retry_deadline: Duration,
    /// Active health checks, if configured.
    pub health: Option<CheckSettings>,
    eject_after: u32,
    eject_for: Duration,
    /// Health of each url, in `urls` order (empty for file origins: always healthy).
    urls: Vec<Arc<UrlHealth>>,
    /// This pool's generation in the health registry: its checkers own the active state
    /// while no newer pool of the same origin exists.
    generation: u64,
    /// Counters.
    pub stats: Arc<OriginStats>,
}

/// A response from an origin, ready to be sent on.
pub struct Upstream {
    /// Status, headers (not yet cleaned) and the body stream.
    pub response: Response<Body>,
    /// The url that answered, for the access log.
    pub url: String,
    /// Whether the body comes from the network (and needs the idle timeout).
    pub streamed: bool,
}

/// A request to send upstream. `headers` are already cleaned of hop-by-hop fields.
pub struct Outbound {
    /// Method.
    pub method: Method,
    /// Path (mapped below the route) and query, as sent by the client.
    pub path_and_query: String,
    /// The path part only, for hashing and file lookup.
    pub path_len: usize,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Body,
    /// True when the body is known to be empty, so the request can be replayed.
    pub body_empty: bool,
    /// A longer wait for the response head than the origin's `response_timeout` (blocking
    /// Low-Latency HLS playlist reloads).
    pub response_timeout: Option<Duration>,
    /// Set when the response will be read whole (a manifest): its size limit. A bodiless
    /// `GET`/`HEAD` to a direct origin then goes through [`h1`] and the response arrives
    /// with its body read (within the response timeout, again, after the head), or fails
    /// with `manifest_too_large` past the limit.
    pub whole: Option<u64>,
}

/// How one attempt on one url ended.
enum Attempt {
    Response(Response<Body>, bool),
    /// Before a response head: the problem, and what kind of failure (which decides
    /// whether another url may be tried).
    Failed(ProxyError, Failure),
    /// No response head within the limit.
    TimedOut,
    /// After the head (a body read whole): not retried.
    Final(ProxyError),
}

impl OriginPool {
    /// Builds the pool for validated origin settings.
    pub fn new(o: &OriginSettings, metrics: &Metrics) -> Self {
        let targets = if let Some(OriginUrl::File { .. }) = o.urls.first() {
            Targets::File {
                roots: o.urls.iter().filter_map(|u| if let OriginUrl::File { root } = u { Some(root.clone()) } else { None }).collect(),
            }
        } else {
            let targets: Vec<HttpTarget> = o
                .urls
                .iter()
                .filter_map(|u| match u {
                    OriginUrl::Http { authority, base_path, .. } => Some(HttpTarget {
                        authority: authority.clone(),
                        host: HeaderValue::from_str(authority.as_str()).unwrap_or_else(|_| HeaderValue::from_static("localhost")),
                        base_path: base_path.clone(),
                        display: u.to_string(),
                    }),
                    OriginUrl::File { .. } => None,
                })
                .collect();
            let h1 = o.proxy.is_none().then(|| targets.iter().map(|t| h1::H1Pool::new(&t.authority, o.connect_timeout)).collect());
            Targets::Http { targets, client: Box::new(http_client::build(o.connect_timeout, o.proxy.as_ref())), h1 }
        };
        let (urls, generation) = match &targets {
            Targets::Http { targets, .. } => {
                let names: Vec<String> = targets.iter().map(|t| t.display.clone()).collect();
                metrics.health.claim(&o.name, &names, o.health.is_some())
            }
            Targets::File { .. } => (Vec::new(), 0),
        };
        Self {
            name: o.name.as_str().into(),
            balancer: Balancer::new(o.balance, o.urls.len()),
            targets,
            response_timeout: o.response_timeout,
            idle_timeout: o.idle_timeout,
            retries: o.retries,
            // A year is forever here, and `Instant + Duration` cannot overflow below it.
            retry_deadline: o.retry_deadline.min(Duration::from_secs(365 * 86_400)),
            health: o.health.as_ref().map(|h| CheckSettings {
                path: h.path.clone(),
                interval: h.interval,
                timeout: h.timeout,
                unhealthy_after: h.unhealthy_after,
                healthy_after: h.healthy_after,
            }),
            eject_after: o.eject_after,
            eject_for: o.eject_for,
            urls,
            generation,
            stats: metrics.origin(&o.name),
        }
    }

    /// The health of each HTTP url (empty for a file origin).
    pub fn url_health(&self) -> &[Arc<UrlHealth>] {
        &self.urls
    }

    /// This pool's generation in the health registry.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the pool has a url to send to: a file origin always, an HTTP origin when
    /// at least one url is healthy (not failing its checks, not ejected).
    pub fn ready(&self) -> bool {
        self.urls.is_empty() || self.urls.iter().any(|h| h.usable())
    }

    /// The urls the balancer may pick now. No allocation, no lock: one or two atomic
    /// loads per url.
    fn usable(&self) -> Usable {
        let mut bits = 0u64;
        for (i, h) in self.urls.iter().enumerate().take(64) {
            if h.usable() {
                bits |= 1 << i;
            }
        }
        Usable(bits)
    }

    fn record_failure(&self, i: usize) {
        if let Some(h) = self.urls.get(i) {
            if h.record_failure(self.eject_after, self.eject_for) {
                tracing::warn!(origin = &*self.name, url = h.url(), cool_down = ?self.eject_for, "url ejected after consecutive failures");
            }
        }
    }

    fn record_success(&self, i: usize) {
        if let Some(h) = self.urls.get(i) {
            h.record_success();
        }
    }

    /// One active health check of url `i`: `GET` of the check path within the check
    /// timeout; a 2xx status passes. The body is read (up to 64 KiB) so that the
    /// connection goes back to the pool.
    pub async fn probe(&self, i: usize) -> Result<(), health::CheckError> {
        let (Targets::Http { targets, client, .. }, Some(hs)) = (&self.targets, &self.health) else { return Ok(()) };
        let Some(t) = targets.get(i) else { return Ok(()) };
        let uri = build_uri(t, &hs.path).map_err(health::CheckError::Request)?;
        let mut req = Request::new(crate::body::empty());
        *req.uri_mut() = uri;
        req.headers_mut().insert(header::HOST, t.host.clone());
        req.headers_mut().insert(header::USER_AGENT, HeaderValue::from_static("streamgate-health-check"));
        let check = async {
            let resp = client.request(req).await.map_err(|e| health::CheckError::Request(classify(&e, &t.display).0))?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut read = 0usize;
            while read < 64 * 1024 {
                match body.frame().await {
                    Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(health::CheckError::Status(status.as_u16()))
            }
        };
        match tokio::time::timeout(hs.timeout, check).await {
            Ok(r) => r,
            Err(_) => Err(health::CheckError::Timeout(hs.timeout)),
        }
    }

    /// Sends the request to one healthy url of the pool (any url when none is healthy).
    /// An idempotent request with an empty body is tried again on the next healthy url
    /// (the same one when it is the only one) after a connect failure, a reset before
    /// the response head, or a 502/503 from the origin, up to `retries` more times and
    /// while `retry_deadline` has not passed. The last attempt's 502/503 goes to the
    /// client as the origin sent it. Once a response head is returned nothing is retried:
    /// a body that fails midway is the client's to see.
    pub async fn send(&self, out: Outbound) -> Result<Upstream, ProxyError> {
        let path = &out.path_and_query[..out.path_len];
        let response_timeout = out.response_timeout.map_or(self.response_timeout, |t| t.max(self.response_timeout));
        // A longer wait granted to this request (a blocking playlist reload) is not cut
        // short by the deadline of all attempts.
        let deadline_len = if out.response_timeout.is_some() { self.retry_deadline.max(response_timeout) } else { self.retry_deadline };
        match &self.targets {
            Targets::File { roots } => {
                let i = self.balancer.pick(path);
                let root = &roots[i.min(roots.len() - 1)];
                self.stats.requests.fetch_add(1, Relaxed);
                let response = file::serve(root, &out.method, path, &out.headers).await?;
                Ok(Upstream { response, url: format!("file://{}", root.display()), streamed: false })
            }
            Targets::Http { targets, client, h1 } => {
                let idempotent = matches!(out.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) && out.body_empty;
                let attempts = if idempotent { 1 + self.retries as usize } else { 1 };
                let deadline = Instant::now() + deadline_len;
                let mut order = self.balancer.order(path, self.usable());
                let Outbound { method, path_and_query, mut headers, body, whole, .. } = out;
                let whole = whole.filter(|_| out.body_empty && matches!(method, Method::GET | Method::HEAD));
                let mut body = Some(body);
                let mut last_err = ProxyError::UpstreamUnavailable(format!("origin {} has no urls", self.name));
                for attempt in 0..attempts {
                    let Some(i) = order.next() else { break };
                    let Some(t) = targets.get(i) else { break };
                    let more = attempt + 1 < attempts;
                    // Every attempt ends by the response timeout and by the deadline of
                    // all attempts together.
                    let left = if attempt == 0 { deadline_len } else { deadline.saturating_duration_since(Instant::now()) };
                    let limit = response_timeout.min(left);
                    self.stats.requests.fetch_add(1, Relaxed);
                    let pool = h1.as_ref().and_then(|p| p.get(i));
                    let outcome = match (whole, pool) {
                        (Some(max), Some(pool)) => {
                            Self::attempt_whole(pool, t, &method, &path_and_query, &headers, limit, response_timeout, max).await
                        }
                        _ => {
                            let b = match body.take() {
                                Some(b) => b,
                                None => crate::body::empty(),
                            };
                            // Keep a copy only while another attempt may need it.
                            let h = if more { headers.clone() } else { std::mem::take(&mut headers) };
                            Self::attempt_hyper(client, t, &method, &path_and_query, h, b, limit).await
                        }
                    };
                    match outcome {
                        Attempt::Response(response, streamed) => {
                            let status = response.status();
                            if status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE {
                                self.record_failure(i);
                                if more && Instant::now() < deadline {
                                    // Nothing of it reached the client: drop it and ask another url.
                                    self.stats.retries_status.fetch_add(1, Relaxed);
                                    tracing::debug!(origin = &*self.name, url = %t.display, status = status.as_u16(), "retrying on another url");
                                    continue;
                                }
                            } else {
                                self.record_success(i);
                            }
                            return Ok(Upstream { response, url: t.display.clone(), streamed });
                        }
                        Attempt::Final(e) => return Err(e),
                        Attempt::Failed(err, failure) => {
                            match failure {
                                Failure::Connect => self.stats.connect_errors.fetch_add(1, Relaxed),
                                Failure::Reset | Failure::Other => self.stats.protocol_errors.fetch_add(1, Relaxed),
                            };
                            self.record_failure(i);
                            tracing::warn!(origin = &*self.name, url = %t.display, error = %err, "upstream request failed");
                            last_err = err;
                            let counter = match failure {
                                Failure::Connect => &self.stats.retries_connect,
                                Failure::Reset => &self.stats.retries_reset,
                                // An invalid response: the origin may have acted on it.
                                Failure::Other => break,
                            };
                            if !more || Instant::now() >= deadline {
                                break;
                            }
                            counter.fetch_add(1, Relaxed);
                        }
                        Attempt::TimedOut => {
                            self.stats.timeouts.fetch_add(1, Relaxed);
                            self.record_failure(i);
                            let detail = if limit < response_timeout {
                                format!("origin {} sent no response head within the retry deadline of {:?}", self.name, self.retry_deadline)
                            } else {
                                format!("origin {} sent no response head within {:?}", self.name, response_timeout)
                            };
                            tracing::warn!(origin = &*self.name, url = %t.display, "{detail}");
                            return Err(ProxyError::UpstreamTimeout(detail));
                        }
                    }
                }
                Err(last_err)
            }
        }
    }

    /// One attempt through the hyper client: the response streams.
    async fn attempt_hyper(
        client: &HttpClient,
        t: &HttpTarget,
        method: &Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Body,
        limit: Duration,
    ) -> Attempt {
        headers.insert(header::HOST, t.host.clone());
        let uri = match build_uri(t, path_and_query) {
            Ok(u) => u,
            Err(e) => return Attempt::Final(e),
        };
        let mut req = Request::new(body);
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        match tokio::time::timeout(limit, client.request(req)).await {
            Ok(Ok(resp)) => Attempt::Response(resp.map(|b| b.map_err(Into::into).boxed_unsync()), true),
            Ok(Err(e)) => {
                let (err, failure) = classify(&e, &t.display);
                Attempt::Failed(err, failure)
            }
            Err(_) => Attempt::TimedOut,
        }
    }

    /// One attempt through [`h1`]: the head within `limit`, then the whole body (at most
    /// `max` bytes) within `body_timeout`.
    #[allow(clippy::too_many_arguments)]
    async fn attempt_whole(
        pool: &h1::H1Pool,
        t: &HttpTarget,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        limit: Duration,
        body_timeout: Duration,
        max: u64,
    ) -> Attempt {
        let Some(head) = h1::request_head(method, &t.base_path, path_and_query, &t.host, headers) else {
            return Attempt::Final(ProxyError::BadRequest("cannot build upstream url: invalid request target".into()));
        };
        let pending = match tokio::time::timeout(limit, pool.send(&t.display, &head, method)).await {
            Ok(Ok(p)) => p,
            Ok(Err(h1::H1Error::Head(err, failure))) => return Attempt::Failed(err, failure),
            Ok(Err(h1::H1Error::Body(err))) => return Attempt::Final(err),
            Err(_) => return Attempt::TimedOut,
        };
        match tokio::time::timeout(body_timeout, pool.finish(pending, max)).await {
            Ok(Ok(w)) => {
                let mut response = Response::new(crate::body::full(w.body));
                *response.status_mut() = w.status;
                *response.version_mut() = w.version;
                *response.headers_mut() = w.headers;
                Attempt::Response(response, false)
            }
            Ok(Err(h1::H1Error::Body(err) | h1::H1Error::Head(err, _))) => Attempt::Final(err),
            Err(_) => {
                Attempt::Final(ProxyError::UpstreamTimeout(format!("the origin did not send the whole manifest within {body_timeout:?}")))
            }
        }
    }
}

/// Idle time before TCP keep-alive probes on upstream connections.
pub(crate) const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Options of every upstream connection streamgate opens itself (the manifest client's,
/// and tunnels to upstream proxies), the same as hyper's connector sets for direct
/// origins: no Nagle delay, and keep-alive probes after [`TCP_KEEPALIVE`] idle, so a
/// peer that vanished without a FIN is noticed on pooled connections.
pub(crate) fn tune_socket(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    socket2::SockRef::from(stream).set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE))
}

fn build_uri(t: &HttpTarget, path_and_query: &str) -> Result<Uri, ProxyError> {
    let mut pq = String::with_capacity(t.base_path.len() + path_and_query.len());
    pq.push_str(&t.base_path);
    pq.push_str(path_and_query);
    Uri::builder()
        .scheme("http")
        .authority(t.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| ProxyError::BadRequest(format!("cannot build upstream url: {e}")))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn upstream_sockets_get_nodelay_and_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(!sock.keepalive().unwrap());
        super::tune_socket(&stream).unwrap();
        assert!(stream.nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), super::TCP_KEEPALIVE);
    }
}
