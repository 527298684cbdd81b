//! Upstream dispatch: origin pools (HTTP over a pooled keep-alive hyper client, or a
//! local directory), url selection, timeouts and retries on connect failure.

pub mod balance;
pub mod file;
mod http_client;
pub mod tunnel;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::BodyExt;

use crate::body::Body;
use crate::config::{OriginSettings, OriginUrl};
use crate::error::ProxyError;
use crate::telemetry::metrics::{Metrics, OriginStats};
use balance::Balancer;
use http_client::{classify, HttpClient};

/// One HTTP url of a pool, pre-rendered for the request path.
#[derive(Debug)]
struct HttpTarget {
    authority: Authority,
    host: HeaderValue,
    base_path: String,
    display: String,
}

enum Targets {
    Http { targets: Vec<HttpTarget>, client: Box<HttpClient> },
    File { roots: Vec<PathBuf> },
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
}

impl OriginPool {
    /// Builds the pool for validated origin settings.
    pub fn new(o: &OriginSettings, metrics: &Metrics) -> Self {
        let targets = if let Some(OriginUrl::File { .. }) = o.urls.first() {
            Targets::File {
                roots: o.urls.iter().filter_map(|u| if let OriginUrl::File { root } = u { Some(root.clone()) } else { None }).collect(),
            }
        } else {
            let targets = o
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
            Targets::Http { targets, client: Box::new(http_client::build(o.connect_timeout, o.proxy.as_ref())) }
        };
        Self {
            name: o.name.as_str().into(),
            balancer: Balancer::new(o.balance, o.urls.len()),
            targets,
            response_timeout: o.response_timeout,
            idle_timeout: o.idle_timeout,
            retries: o.retries,
            stats: metrics.origin(&o.name),
        }
    }

    /// Sends the request to one url of the pool; on a connect failure of an idempotent
    /// request with an empty body, tries the next url (the same one in a pool of one), up
    /// to `retries` more times.
    pub async fn send(&self, out: Outbound) -> Result<Upstream, ProxyError> {
        let path = &out.path_and_query[..out.path_len];
        match &self.targets {
            Targets::File { roots } => {
                let i = self.balancer.pick(path);
                let root = &roots[i.min(roots.len() - 1)];
                self.stats.requests.fetch_add(1, Relaxed);
                let response = file::serve(root, &out.method, path, &out.headers).await?;
                Ok(Upstream { response, url: format!("file://{}", root.display()), streamed: false })
            }
            Targets::Http { targets, client } => {
                let idempotent = matches!(out.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) && out.body_empty;
                let attempts = if idempotent { 1 + self.retries as usize } else { 1 };
                let mut order = self.balancer.order(path);
                let Outbound { method, path_and_query, mut headers, body, .. } = out;
                let mut body = Some(body);
                let mut last_err = ProxyError::UpstreamUnavailable(format!("origin {} has no urls", self.name));
                for attempt in 0..attempts {
                    let Some(i) = order.next() else { break };
                    let t = &targets[i];
                    let b = match body.take() {
                        Some(b) => b,
                        None => crate::body::empty(),
                    };
                    // Keep a copy only while another attempt may need it.
                    let mut h = if attempt + 1 < attempts { headers.clone() } else { std::mem::take(&mut headers) };
                    h.insert(header::HOST, t.host.clone());
                    let uri = build_uri(t, &path_and_query)?;
                    let mut req = Request::new(b);
                    *req.method_mut() = method.clone();
                    *req.uri_mut() = uri;
                    *req.headers_mut() = h;
                    self.stats.requests.fetch_add(1, Relaxed);
                    match tokio::time::timeout(self.response_timeout, client.request(req)).await {
                        Ok(Ok(resp)) => {
                            let response = resp.map(|b| b.map_err(Into::into).boxed_unsync());
                            return Ok(Upstream { response, url: t.display.clone(), streamed: true });
                        }
                        Ok(Err(e)) => {
                            let (err, connect) = classify(&e, &t.display);
                            if connect {
                                self.stats.connect_errors.fetch_add(1, Relaxed);
                            } else {
                                self.stats.protocol_errors.fetch_add(1, Relaxed);
                            }
                            tracing::warn!(origin = &*self.name, url = %t.display, error = %err, "upstream request failed");
                            last_err = err;
                            if !connect {
                                break;
                            }
                        }
                        Err(_) => {
                            self.stats.timeouts.fetch_add(1, Relaxed);
                            tracing::warn!(origin = &*self.name, url = %t.display, "no response head within {:?}", self.response_timeout);
                            return Err(ProxyError::UpstreamTimeout(format!(
                                "origin {} sent no response head within {:?}",
                                self.name, self.response_timeout
                            )));
                        }
                    }
                }
                Err(last_err)
            }
        }
    }
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
