//! The JWKS refresh: one periodic job per jwt block with a `jwks_url`, named
//! `jwks_refresh:BLOCK`, every `jwks_refresh`. The first run comes at once (within a
//! small jitter), so keys are usually loaded before the first token arrives; a token that
//! comes earlier triggers the unknown-`kid` fetch instead.
//!
//! A job holds only a `Weak` to its authenticator: it stops when the snapshot that owns
//! the authenticator is gone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{spawn_periodic, JobGuard, Registry, Run};
use crate::layers::auth::Authenticator;

/// Starts the refresh job of one auth block (none unless it is a jwt block with a JWKS).
pub fn start(auth: &Arc<Authenticator>, registry: &Arc<Registry>) -> Option<JobGuard> {
    let interval = auth.jwt_with_jwks()?.jwks.as_ref()?.settings.refresh;
    let weak: Weak<Authenticator> = Arc::downgrade(auth);
    let jitter = (interval / 20).min(Duration::from_millis(500));
    Some(spawn_periodic(registry, format!("jwks_refresh:{}", auth.name()), interval, jitter, move || {
        let weak = weak.clone();
        async move {
            let Some(auth) = weak.upgrade() else { return Run::Stop };
            let Some(jwt) = auth.jwt_with_jwks() else { return Run::Stop };
            match jwt.refresh_jwks().await {
                Ok(()) => Run::Ok,
                Err(e) => {
                    tracing::warn!(auth = auth.name(), error = %e, "JWKS refresh failed; keeping the previous keys");
                    Run::Failed(e)
                }
            }
        }
    }))
}
