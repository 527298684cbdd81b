//! `type = "jwt"`: verifies a JWT against the configured keys and the JWKS.
//!
//! The token's header is read only to pick keys: its `alg` must be one that the key
//! itself verifies (an RSA key never verifies HS256, whatever the token says; `none` is
//! not an algorithm here), its `kid` selects JWKS keys. A verified token is cached by
//! its bytes until its `exp` (plus leeway) or [`CACHE_BOUND`], whichever comes first,
//! so the signature is checked once per token and interval, not once per request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::cache::TokenCache;
use super::jwks::Jwks;
use super::{Rejection, Verified};
use crate::config::auth::{parse_algorithm, JwtKey, JwtSettings};

/// Longest time a verified token is reused without checking it again.
pub const CACHE_BOUND: Duration = Duration::from_secs(60);

/// A key ready to verify: its algorithms and its claim validation, built once.
pub struct PreparedKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    /// `kid` (JWKS keys); configured keys have none and are tried for any `kid`.
    pub kid: Option<String>,
    validation: Validation,
}

/// How claims are validated, shared by every key of a block.
#[derive(Clone)]
pub struct ClaimRules {
    base: Validation,
    required: Vec<String>,
}

impl ClaimRules {
    fn new(s: &JwtSettings) -> Self {
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = s.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut spec: HashSet<String> = HashSet::from(["exp".to_owned()]);
        if let Some(iss) = &s.issuer {
            v.set_issuer(&[iss]);
            spec.insert("iss".into());
        }
        // Without a configured audience, `aud` is not checked (an IdP puts its own there).
        v.validate_aud = !s.audience.is_empty();
        if !s.audience.is_empty() {
            v.set_audience(&s.audience);
            spec.insert("aud".into());
        }
        let mut required = Vec::new();
        for c in &s.required_claims {
            if matches!(c.as_str(), "exp" | "nbf" | "iss" | "aud" | "sub") {
                spec.insert(c.clone());
            } else {
                required.push(c.clone());
            }
        }
        v.required_spec_claims = spec;
        Self { base: v, required }
    }

    /// A key with these rules, verifying `algorithms`.
    pub fn prepare(&self, key: DecodingKey, algorithms: Vec<Algorithm>, kid: Option<String>) -> PreparedKey {
        let mut validation = self.base.clone();
        validation.algorithms.clone_from(&algorithms);
        PreparedKey { key, algorithms, kid, validation }
    }
}

/// A compiled jwt block.
pub struct JwtAuth {
    algorithms: Vec<Algorithm>,
    keys: Vec<PreparedKey>,
    rules: ClaimRules,
    leeway: Duration,
    /// The JWKS, when `jwks_url` is set.
    pub jwks: Option<Jwks>,
    cache: TokenCache<Arc<Verified>>,
}

/// The parts of a JOSE header we read.
#[derive(serde::Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

impl JwtAuth {
    /// Compiles a block: keys prepared once.
    pub fn new(s: &JwtSettings) -> Self {
        let rules = ClaimRules::new(s);
        let keys =
            s.keys.iter().map(|JwtKey { key, algorithms, kid }| rules.prepare(key.clone(), algorithms.clone(), kid.clone())).collect();
        let jwks = s.jwks.as_ref().map(|j| Jwks::new(j.clone(), s.algorithms.clone(), rules.clone()));
        Self { algorithms: s.algorithms.clone(), keys, rules, leeway: s.leeway, jwks, cache: TokenCache::new() }
    }

    /// Verifies `token` (already size-checked), from the cache when it was verified lately.
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        let now = Instant::now();
        if let Some(v) = self.cache.get(token.as_bytes(), now) {
            return Ok(v);
        }
        let (verified, exp) = self.verify_uncached(token).await?;
        let unix = unix_now();
        let left = Duration::from_secs(exp.saturating_add(self.leeway.as_secs()).saturating_sub(unix));
        self.cache.insert(token.as_bytes(), verified.clone(), now + left.min(CACHE_BOUND), now);
        Ok(verified)
    }

    /// Fetches the JWKS again; forgets cached tokens when the keys changed.
    pub async fn refresh_jwks(&self) -> Result<(), String> {
        let Some(jwks) = &self.jwks else { return Ok(()) };
        if jwks.refresh().await? {
            self.cache.clear();
        }
        Ok(())
    }

    async fn verify_uncached(&self, token: &str) -> Result<(Arc<Verified>, u64), Rejection> {
        let header = header(token).ok_or(Rejection::Malformed)?;
        let alg = parse_algorithm(&header.alg).filter(|a| self.algorithms.contains(a)).ok_or(Rejection::Algorithm)?;
        let kid = header.kid.as_deref();
        let mut remote = self.jwks.as_ref().map(|j| j.keys());
        if let (Some(jwks), Some(kid)) = (&self.jwks, kid) {
            let known = remote.as_ref().is_some_and(|ks| ks.iter().any(|k| k.kid.as_deref() == Some(kid)));
            if !known && jwks.refetch_for_unknown_kid().await {
                self.cache.clear();
                remote = Some(jwks.keys());
            }
        }
        let remote_keys: &[PreparedKey] = remote.as_deref().map_or(&[], |v| v.as_slice());
        let matching_remote = remote_keys.iter().filter(|k| kid.is_none() || k.kid.as_deref() == kid);
        let mut tried = false;
        let mut kid_known = false;
        let mut failure = Rejection::Signature;
        for key in self.keys.iter().chain(matching_remote) {
            kid_known |= key.kid.is_some();
            if !key.algorithms.contains(&alg) {
                continue;
            }
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation) {
                Ok(data) => return self.accept(data.claims),
                Err(e) => match rejection(e.kind()) {
                    // Another key may be the right one.
                    Rejection::Signature => {}
                    other => {
                        failure = other;
                        break;
                    }
                },
            }
        }
        if !tried {
            return Err(match (kid, &self.jwks) {
                (Some(_), Some(_)) if !kid_known && self.keys.is_empty() => Rejection::UnknownKey,
                _ => Rejection::Algorithm,
            });
        }
        Err(failure)
    }

    /// Checks the claims the library does not know, and keeps what the request needs.
    fn accept(&self, claims: Map<String, Value>) -> Result<(Arc<Verified>, u64), Rejection> {
        if self.rules.required.iter().any(|c| !claims.contains_key(c)) {
            return Err(Rejection::MissingClaim);
        }
        let exp = claims.get("exp").and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))).unwrap_or(0);
        let principal = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        Ok((Arc::new(Verified { claims: Arc::new(claims), principal }), exp))
    }
}

/// The JOSE header of a compact JWS (exactly three parts).
fn header(token: &str) -> Option<JoseHeader> {
    let (h, rest) = token.split_once('.')?;
    if rest.bytes().filter(|b| *b == b'.').count() != 1 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a library error means for the viewer.
fn rejection(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidIssuer => Rejection::Issuer,
        ErrorKind::InvalidAudience => Rejection::Audience,
        ErrorKind::MissingRequiredClaim(_) => Rejection::MissingClaim,
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::InvalidSubject => Rejection::Malformed,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => Rejection::Algorithm,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => Rejection::Malformed,
        // InvalidSignature, and keys that do not fit the signature (a P-384 token for a
        // P-256 key): the signature does not verify with this key.
        _ => Rejection::Signature,
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
