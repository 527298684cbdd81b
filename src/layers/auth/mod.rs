//! Stage 3: viewer authentication by the route's `[auth.*]` block.

use super::{Head, RequestContext};
use crate::config::auth::AuthSettings;
use crate::error::ProxyError;

/// One compiled `[auth.NAME]` block, shared by the routes that name it.
pub struct Authenticator {}

impl Authenticator {
    /// Compiles a block (keys parsed, JWKS fetched later by a job).
    pub fn new(_settings: &AuthSettings) -> Self {
        Self {}
    }

    /// Checks the request's credentials; on success fills `ctx.claims` and
    /// `ctx.principal`.
    pub async fn check(&self, _head: &Head<'_>, _ctx: &mut RequestContext) -> Result<(), ProxyError> {
        Ok(())
    }
}
