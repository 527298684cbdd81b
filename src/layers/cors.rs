//! Stage 2: CORS for browser players (preflight answered here; headers added to every
//! response of the route).

use http::{HeaderMap, HeaderValue, Response};

use super::Head;
use crate::body::Body;
use crate::config::access::CorsSettings;

/// A route's CORS rules.
pub struct Cors {}

impl Cors {
    /// Compiles `routes.X.cors`.
    pub fn new(_settings: &CorsSettings) -> Self {
        Self {}
    }

    /// The answer to a preflight request (`OPTIONS` with `Access-Control-Request-Method`),
    /// or `None` for any other request.
    pub fn preflight(&self, _head: &Head<'_>) -> Option<Response<Body>> {
        None
    }

    /// Adds the CORS response headers for a request whose `Origin` header was
    /// `request_origin` (to every response of the route, errors included).
    pub fn apply(&self, _request_origin: Option<&HeaderValue>, _response: &mut HeaderMap) {}
}
