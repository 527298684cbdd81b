//! The JWKS of a jwt block: fetched by the `jwks_refresh` job every `jwks_refresh`, and
//! on a token with an unknown `kid` at most once per `jwks_refresh` (so a flood of forged
//! `kid`s cannot turn into a flood of fetches), or once per 2 s while no key set has
//! loaded at all (an IdP that was down at start is picked up as soon as it answers). Requests read the current key set without
//! locking (`ArcSwap`).
//!
//! Only signature keys of the configured public-key algorithms are taken: symmetric
//! (`oct`) keys and `use = "enc"` keys are skipped, and a key's `alg`, when the JWKS names
//! one, narrows what it verifies.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::fetch::Fetcher;
use super::jwt::{ClaimRules, PreparedKey};
use crate::config::auth::{algorithms_for, parse_algorithm, JwksSettings, KeyFamily};

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Most keys taken from one JWKS.
const MAX_KEYS: usize = 100;
/// Shortest gap between token-triggered fetches while no key set has loaded yet.
const EMPTY_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// The JWKS state of one block.
pub struct Jwks {
    /// Where and how often.
    pub settings: JwksSettings,
    algorithms: Vec<Algorithm>,
    rules: ClaimRules,
    keys: ArcSwap<Vec<PreparedKey>>,
    /// Hash of the last document taken, to tell a changed key set from the same one.
    fingerprint: AtomicU64,
    /// When the last fetch was started (success or not).
    last_attempt: std::sync::Mutex<Option<Instant>>,
    /// One fetch at a time; requests that miss a `kid` together share it.
    fetching: tokio::sync::Mutex<()>,
    fetcher: Fetcher,
}

impl Jwks {
    /// An empty key set; the first fetch fills it.
    pub fn new(settings: JwksSettings, algorithms: Vec<Algorithm>, rules: ClaimRules) -> Self {
        Self {
            settings,
            algorithms,
            rules,
            keys: ArcSwap::from_pointee(Vec::new()),
            fingerprint: AtomicU64::new(0),
            last_attempt: std::sync::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            fetcher: Fetcher::default(),
        }
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<Vec<PreparedKey>> {
        self.keys.load_full()
    }

    /// A token named a `kid` we do not have: fetch again, unless a fetch started less than
    /// `jwks_refresh` ago. True when a fetch happened and changed the keys (or one ran
    /// while we waited).
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let before = self.fingerprint.load(Relaxed);
        let _one = self.fetching.lock().await;
        if self.fingerprint.load(Relaxed) != before {
            return true;
        }
        // While no key set has loaded (the IdP was down or broken when streamgate started),
        // every token is refused: a token may then bring the fetch forward every
        // EMPTY_RETRY instead of once per `jwks_refresh`. Still one fetch at a time, and
        // at most one per EMPTY_RETRY however many tokens come.
        let gap = if self.keys.load().is_empty() { self.settings.refresh.min(EMPTY_RETRY) } else { self.settings.refresh };
        let recent = self.last_attempt.lock().ok().and_then(|t| *t).is_some_and(|t| t.elapsed() < gap);
        if recent {
            return false;
        }
        match self.fetch().await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(url = %self.settings.url, error = %e, "JWKS fetch for an unknown kid failed");
                false
            }
        }
    }

    /// Fetches the JWKS now (the periodic job). True when the keys changed.
    pub async fn refresh(&self) -> Result<bool, String> {
        let _one = self.fetching.lock().await;
        self.fetch().await
    }

    async fn fetch(&self) -> Result<bool, String> {
        if let Ok(mut t) = self.last_attempt.lock() {
            *t = Some(Instant::now());
        }
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.settings.url.clone())
            .header(ACCEPT, HeaderValue::from_static("application/jwk-set+json, application/json"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let body = self.fetcher.send(req, self.settings.timeout, MAX_JWKS_BYTES).await.map_err(|e| format!("JWKS {e}"))?;
        let mut h = DefaultHasher::new();
        body.hash(&mut h);
        let fingerprint = h.finish() | 1;
        if fingerprint == self.fingerprint.load(Relaxed) {
            return Ok(false);
        }
        let keys = self.parse(&body)?;
        tracing::info!(url = %self.settings.url, keys = keys.len(), "JWKS loaded");
        self.keys.store(Arc::new(keys));
        self.fingerprint.store(fingerprint, Relaxed);
        Ok(true)
    }

    /// The usable keys of a JWKS document. A document that is not a JWKS is an error (the
    /// old keys stay); keys we cannot use are skipped.
    pub fn parse(&self, body: &[u8]) -> Result<Vec<PreparedKey>, String> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_slice(body).map_err(|e| format!("JWKS is not a key set: {e}"))?;
        let mut out = Vec::new();
        for value in set.keys.into_iter().take(MAX_KEYS) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
            if let Some(k) = self.usable(&jwk) {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn usable(&self, jwk: &Jwk) -> Option<PreparedKey> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyFamily::P256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => KeyFamily::P384,
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyFamily::Ed25519,
            // Symmetric keys are never taken from the network; other curves are unsupported.
            _ => return None,
        };
        let mut algorithms = algorithms_for(family, &self.algorithms);
        if let Some(named) = jwk.common.key_algorithm {
            let named = parse_algorithm(&format!("{named:?}"))?;
            algorithms.retain(|a| *a == named);
        }
        if algorithms.is_empty() {
            return None;
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(self.rules.prepare(key, algorithms, jwk.common.key_id.clone()))
    }
}
