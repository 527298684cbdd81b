//! Stage 4: rate limits by the route's `[rate_limits.*]` block.

use super::{Head, RequestContext};
use crate::config::limits::RateLimitSettings;
use crate::error::ProxyError;

/// One compiled `[rate_limits.NAME]` block, shared by the routes that name it.
pub struct RateLimiter {}

impl RateLimiter {
    /// Compiles a block.
    pub fn new(_settings: &RateLimitSettings) -> Self {
        Self {}
    }

    /// Takes one request from the budget of this request's key, or refuses it.
    pub async fn check(&self, _head: &Head<'_>, _ctx: &RequestContext) -> Result<(), ProxyError> {
        Ok(())
    }
}
