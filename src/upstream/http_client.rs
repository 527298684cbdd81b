//! The pooled keep-alive hyper client used for HTTP origins (direct or through a
//! tunnel, see [`super::tunnel`]), and the mapping of its errors to proxy errors.

use std::error::Error as StdError;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::tunnel::{OriginConnector, TunnelError};
use crate::body::Body;
use crate::config::UpstreamProxy;
use crate::error::ProxyError;

/// The client type: one per origin (each origin has its own connect timeout, tunnel and
/// pool).
pub type HttpClient = Client<OriginConnector, Body>;

/// Builds a client with keep-alive pooling and the origin's connect timeout, connecting
/// through `proxy` when the origin has one.
pub fn build(connect_timeout: Duration, proxy: Option<&UpstreamProxy>) -> HttpClient {
    let connector = match proxy {
        None => {
            let mut conn = HttpConnector::new();
            conn.set_connect_timeout(Some(connect_timeout));
            conn.set_nodelay(true);
            conn.set_keepalive(Some(Duration::from_secs(60)));
            OriginConnector::direct(conn)
        }
        Some(p) => OriginConnector::tunnel(p, connect_timeout),
    };
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .timer(TokioTimer::new())
        .build(connector)
}

/// Maps a client error to the problem the client sees, and whether it was a connect
/// failure (nothing reached the origin, so another url may be tried).
pub fn classify(e: &hyper_util::client::legacy::Error, url: &str) -> (ProxyError, bool) {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    let mut io_kind = None;
    let mut hyper_err: Option<&hyper::Error> = None;
    let mut tunnel_err: Option<&TunnelError> = None;
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<TunnelError>() {
            tunnel_err.get_or_insert(t);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            hyper_err.get_or_insert(h);
        }
        source = s.source();
    }
    if e.is_connect() {
        if let Some(t) = tunnel_err {
            return if t.is_timeout() {
                (ProxyError::UpstreamTimeout(format!("connecting to {url} timed out: {t}")), true)
            } else {
                (ProxyError::UpstreamUnavailable(format!("cannot connect to {url}: {t}")), true)
            };
        }
        return match io_kind {
            Some(std::io::ErrorKind::TimedOut) => (ProxyError::UpstreamTimeout(format!("connecting to {url} timed out")), true),
            Some(kind) => (ProxyError::UpstreamUnavailable(format!("cannot connect to {url}: {kind}")), true),
            None => (ProxyError::UpstreamUnavailable(format!("cannot connect to {url}")), true),
        };
    }
    let detail = match hyper_err {
        Some(h) if h.is_parse() || h.is_parse_status() => format!("origin {url} sent an invalid HTTP response"),
        Some(h) if h.is_incomplete_message() => format!("origin {url} closed the connection before a complete response head"),
        Some(h) if h.is_timeout() => format!("origin {url} timed out"),
        _ => format!("request to {url} failed before a response head"),
    };
    (ProxyError::UpstreamUnavailable(detail), false)
}
