//! Viewer access control, one stage a file, run in this order for every request (see
//! docs/access-control.md for the picture):
//!
//! 1. [`context`]: client address (from `Forwarded` / `X-Forwarded-For` only when the
//!    peer is a trusted proxy), session id, device class, country/region.
//! 2. [`cors`]: a CORS preflight on a route with `cors` is answered here.
//! 3. [`auth`]: the route's `[auth.*]` block (JWT, API key, token introspection):
//!    `401 unauthorized` with `WWW-Authenticate`.
//! 4. [`rate_limit`]: the route's `[rate_limits.*]` block (GCRA, local or Redis):
//!    `429 rate_limited` with `Retry-After`.
//! 5. [`policy`]: the route's Rego policy: `403 forbidden` with its `reason`.
//!
//! Each stage is a plain (async) function over the request head and the
//! [`RequestContext`], called in sequence from `app.rs`, not a boxed tower service: a
//! stage a route does not use costs one branch, and the order is visible in one place.

pub mod auth;
pub mod context;
pub mod cors;
pub mod device;
pub mod forwarded;
pub mod policy;
pub mod rate_limit;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

/// The parts of a request the access stages read.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    /// Method.
    pub method: &'a Method,
    /// URI as the client sent it (path and query).
    pub uri: &'a Uri,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// What is known about the viewer, filled in stage by stage, and written to the access
/// log.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address: the peer's, or the one a trusted proxy names.
    pub client_ip: IpAddr,
    /// The viewer's session id (`server.session_from`).
    pub session_id: Option<String>,
    /// Device class from the User-Agent: `desktop`, `mobile`, `tablet`, `tv`, `bot` or
    /// `other`.
    pub device: Option<&'static str>,
    /// ISO 3166-1 country code from `geoip.database`.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code (region) from a city database.
    pub region: Option<String>,
    /// Verified JWT claims or introspection result (empty object when none).
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Who passed auth, for logs: the JWT `sub`, the API key's name, the introspected
    /// `sub`/`username`. Never a token.
    pub principal: Option<String>,
}

impl RequestContext {
    /// A context that knows only the peer address.
    pub fn new(client_ip: IpAddr) -> Self {
        Self { client_ip, session_id: None, device: None, country: None, region: None, claims: None, principal: None }
    }
}
