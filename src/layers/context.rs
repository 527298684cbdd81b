//! Stage 1: the request context.

use std::net::SocketAddr;

use super::{Head, RequestContext};
use crate::config::access::AccessSettings;

/// Builds each request's context from the global settings (compiled per snapshot).
pub struct ContextBuilder {}

impl ContextBuilder {
    /// Compiles the settings (CIDRs, session sources, the geoip database).
    pub fn new(_settings: &AccessSettings) -> Self {
        Self {}
    }

    /// The context of one request.
    pub fn build(&self, _head: &Head<'_>, peer: SocketAddr) -> RequestContext {
        RequestContext::new(peer.ip())
    }
}
