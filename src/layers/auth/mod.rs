//! Stage 3: viewer authentication by the route's `[auth.*]` block (see docs/auth.md).
//!
//! - [`token`]: where the credential is read (header, query, cookie), size-checked first
//! - [`jwt`] and [`jwks`]: JWT verification against configured keys and a JWKS
//! - [`api_key`]: hashed API keys
//! - [`introspection`]: RFC 7662 token introspection
//! - [`cache`]: the bounded cache of credentials already checked
//! - [`fetch`]: the HTTP(S) client for JWKS and introspection
//!
//! Every refusal is a 401 `unauthorized` whose `WWW-Authenticate` carries an RFC 6750
//! error code and a fixed description; no token, key or secret is ever put in a
//! response, a log line or an error.

pub mod api_key;
pub mod cache;
pub mod fetch;
pub mod introspection;
pub mod jwks;
pub mod jwt;
pub mod token;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Head, RequestContext};
use crate::config::auth::{AuthKind, AuthSettings, TokenSource};
use crate::error::ProxyError;

/// The realm in every challenge.
const REALM: &str = "streamgate";

/// A credential that passed: what the request context gets.
#[derive(Debug)]
pub struct Verified {
    /// Verified claims (JWT payload, introspection answer).
    pub claims: Arc<Map<String, Value>>,
    /// Who, for logs: `sub` (or `username` for introspection).
    pub principal: Option<String>,
}

/// Why a credential was refused. Each maps to one fixed `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Longer than `max_token_bytes`.
    TooLarge,
    /// Not a compact JWS, bad base64 or JSON.
    Malformed,
    /// `alg` is `none`, unknown, not configured, or not one the key verifies.
    Algorithm,
    /// No key has the token's `kid` (after the allowed JWKS refetch).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    NotYetValid,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` names none of the configured audiences.
    Audience,
    /// A required claim is missing.
    MissingClaim,
    /// Introspection said `active: false`.
    Inactive,
    /// The API key is not one of the configured keys.
    UnknownApiKey,
}

impl Rejection {
    /// The `error_description`, also the problem detail. Fixed text: never the token.
    pub fn description(self) -> &'static str {
        match self {
            Rejection::TooLarge => "the token is larger than allowed",
            Rejection::Malformed => "the token is malformed",
            Rejection::Algorithm => "the token algorithm is not accepted",
            Rejection::UnknownKey => "the token key id is unknown",
            Rejection::Signature => "the token signature is invalid",
            Rejection::Expired => "the token has expired",
            Rejection::NotYetValid => "the token is not valid yet",
            Rejection::Issuer => "the token issuer is not accepted",
            Rejection::Audience => "the token audience is not accepted",
            Rejection::MissingClaim => "the token lacks a required claim",
            Rejection::Inactive => "the token is not active",
            Rejection::UnknownApiKey => "the API key is not valid",
        }
    }
}

/// One compiled `[auth.NAME]` block, shared by the routes that name it.
pub struct Authenticator {
    name: Arc<str>,
    max_token_bytes: usize,
    kind: Kind,
}

/// Boxed: the jwt and introspection states are large, and built once per snapshot.
enum Kind {
    Jwt { auth: Box<jwt::JwtAuth>, sources: Vec<TokenSource> },
    ApiKey { auth: api_key::ApiKeyAuth, source: [TokenSource; 1] },
    Introspection { auth: Box<introspection::IntrospectionAuth>, sources: Vec<TokenSource> },
}

impl Authenticator {
    /// Compiles a block (keys parsed, JWKS fetched later by a job).
    pub fn new(settings: &AuthSettings) -> Self {
        let kind = match &settings.kind {
            AuthKind::Jwt(s) => Kind::Jwt { auth: Box::new(jwt::JwtAuth::new(s)), sources: s.sources.clone() },
            AuthKind::ApiKey(s) => Kind::ApiKey { auth: api_key::ApiKeyAuth::new(s), source: [s.source.clone()] },
            AuthKind::Introspection(s) => {
                Kind::Introspection { auth: Box::new(introspection::IntrospectionAuth::new(s)), sources: s.sources.clone() }
            }
        };
        Self { name: settings.name.as_str().into(), max_token_bytes: settings.max_token_bytes, kind }
    }

    /// The block's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Query parameters that carry this block's credentials: removed from the query sent
    /// to the origin (so tokens reach no origin log, and the manifest cache key does not
    /// vary per viewer).
    pub fn query_params(&self) -> impl Iterator<Item = &str> {
        let sources: &[TokenSource] = match &self.kind {
            Kind::Jwt { sources, .. } | Kind::Introspection { sources, .. } => sources,
            Kind::ApiKey { source, .. } => source,
        };
        sources.iter().filter_map(|s| match s {
            TokenSource::Query(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The JWT verifier, when this is a jwt block with a JWKS (for the refresh job).
    pub fn jwt_with_jwks(&self) -> Option<&jwt::JwtAuth> {
        match &self.kind {
            Kind::Jwt { auth, .. } if auth.jwks.is_some() => Some(auth),
            _ => None,
        }
    }

    /// Checks the request's credentials; on success fills `ctx.claims` and
    /// `ctx.principal`.
    pub async fn check(&self, head: &Head<'_>, ctx: &mut RequestContext) -> Result<(), ProxyError> {
        match &self.kind {
            Kind::Jwt { auth, sources } => {
                let token = self.credential(head, sources, Scheme::Bearer)?;
                let v = auth.verify(&token).await.map_err(|r| refuse(Scheme::Bearer, r))?;
                admit(ctx, &v);
            }
            Kind::Introspection { auth, sources } => {
                let token = self.credential(head, sources, Scheme::Bearer)?;
                match auth.introspect(&token).await {
                    Ok(introspection::Answer::Active(v)) => admit(ctx, &v),
                    Ok(introspection::Answer::Inactive) => return Err(refuse(Scheme::Bearer, Rejection::Inactive)),
                    Err(introspection::Unavailable(why)) => {
                        tracing::warn!(auth = &*self.name, error = %why, "token introspection failed; refusing the request");
                        return Err(ProxyError::BackendUnavailable("the token introspection endpoint is unavailable".into()));
                    }
                }
            }
            Kind::ApiKey { auth, source } => {
                let key = self.credential(head, source, Scheme::ApiKey)?;
                let name = auth.lookup(&key).ok_or_else(|| refuse(Scheme::ApiKey, Rejection::UnknownApiKey))?;
                ctx.principal = Some(name.to_string());
                ctx.claims = None;
            }
        }
        Ok(())
    }

    fn credential<'a>(&self, head: &Head<'a>, sources: &[TokenSource], scheme: Scheme) -> Result<std::borrow::Cow<'a, str>, ProxyError> {
        match token::find(head, sources, self.max_token_bytes) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(ProxyError::Unauthenticated {
                challenge: format!("{} realm=\"{REALM}\"", scheme.as_str()),
                detail: scheme.missing().into(),
            }),
            Err(token::TooLarge) => Err(refuse(scheme, Rejection::TooLarge)),
        }
    }
}

fn admit(ctx: &mut RequestContext, v: &Verified) {
    ctx.claims = Some(v.claims.clone());
    ctx.principal.clone_from(&v.principal);
}

#[derive(Clone, Copy)]
enum Scheme {
    Bearer,
    ApiKey,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::ApiKey => "ApiKey",
        }
    }

    fn missing(self) -> &'static str {
        match self {
            Scheme::Bearer => "a bearer token is required",
            Scheme::ApiKey => "an API key is required",
        }
    }
}

/// The 401 for a credential that was present but refused (RFC 6750 §3.1 `invalid_token`).
fn refuse(scheme: Scheme, r: Rejection) -> ProxyError {
    let d = r.description();
    ProxyError::Unauthenticated {
        challenge: format!("{} realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{d}\"", scheme.as_str()),
        detail: d.into(),
    }
}
