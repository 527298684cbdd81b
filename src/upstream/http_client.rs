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
            conn.set_keepalive(Some(super::TCP_KEEPALIVE));
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

/// What kind of failure a client error was, for retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing reached the origin (refused, unreachable, connect timeout).
    Connect,
    /// The connection was reset or closed before a response head: an idempotent
    /// request may be sent again.
    Reset,
    /// Anything else (an invalid response, ...): not retried.
    Other,
}

/// Maps a client error to the problem the client sees, and the kind of failure.
pub fn classify(e: &hyper_util::client::legacy::Error, url: &str) -> (ProxyError, Failure) {
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
                (ProxyError::UpstreamTimeout(format!("connecting to {url} timed out: {t}")), Failure::Connect)
            } else {
                (ProxyError::UpstreamUnavailable(format!("cannot connect to {url}: {t}")), Failure::Connect)
            };
        }
        return match io_kind {
            Some(std::io::ErrorKind::TimedOut) => (ProxyError::UpstreamTimeout(format!("connecting to {url} timed out")), Failure::Connect),
            Some(kind) => (ProxyError::UpstreamUnavailable(format!("cannot connect to {url}: {kind}")), Failure::Connect),
            None => (ProxyError::UpstreamUnavailable(format!("cannot connect to {url}")), Failure::Connect),
        };
    }
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let reset = matches!(io_kind, Some(ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof));
    let (detail, failure) = match hyper_err {
        Some(h) if h.is_parse() || h.is_parse_status() => (format!("origin {url} sent an invalid HTTP response"), Failure::Other),
        Some(h) if h.is_incomplete_message() => {
            (format!("origin {url} closed the connection before a complete response head"), Failure::Reset)
        }
        Some(h) if h.is_canceled() => (format!("request to {url} was canceled before a response head"), Failure::Reset),
        Some(h) if h.is_timeout() => (format!("origin {url} timed out"), Failure::Other),
        _ if reset => (format!("origin {url} reset the connection before a response head"), Failure::Reset),
        _ => (format!("request to {url} failed before a response head"), Failure::Other),
    };
    (ProxyError::UpstreamUnavailable(detail), failure)
}
