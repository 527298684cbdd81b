//! `[auth.*]`, validated into typed settings: which algorithms and keys a JWT block
//! accepts, the hashed keys of an API-key block, the endpoint of an introspection block.
//! Every key is decoded here, once, so that `streamgate check` reports a bad PEM with its
//! line and a request never parses a key.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Uri;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::schema::{AuthConfig, RawConfig};
use super::secret::Secret;

/// Default `max_token_bytes`.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// One `[auth.NAME]` block, typed.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The block's name.
    pub name: String,
    /// The raw table, as written (secrets redacted in `Debug`).
    pub raw: AuthConfig,
    /// What the block checks, typed.
    pub kind: AuthKind,
    /// Longest credential accepted, in bytes.
    pub max_token_bytes: usize,
}

/// The three kinds of auth block.
#[derive(Debug, Clone)]
pub enum AuthKind {
    /// `type = "jwt"`.
    Jwt(JwtSettings),
    /// `type = "api_key"`.
    ApiKey(ApiKeySettings),
    /// `type = "introspection"` (RFC 7662).
    Introspection(IntrospectionSettings),
}

/// Where a bearer token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer TOKEN`.
    Header,
    /// A header of this (lower-case) name carrying the credential as is (API keys).
    NamedHeader(http::HeaderName),
    /// The query parameter of this name.
    Query(String),
    /// The cookie of this name.
    Cookie(String),
}

/// A verification key with the algorithms it may verify: the algorithm comes from the
/// key (and the configured list), never from the token.
#[derive(Debug, Clone)]
pub struct JwtKey {
    /// The decoded key.
    pub key: DecodingKey,
    /// The algorithms this key verifies (a subset of the block's `algorithms`).
    pub algorithms: Vec<Algorithm>,
    /// `kid`, for JWKS keys; configured keys have none and match any `kid`.
    pub kid: Option<String>,
}

/// `type = "jwt"`, typed.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Keys from `public_keys` and `secret`.
    pub keys: Vec<JwtKey>,
    /// The JWKS endpoint, when configured.
    pub jwks: Option<JwksSettings>,
    /// Accepted `iss` (required in the token when set).
    pub issuer: Option<String>,
    /// Accepted `aud` values (the token must name one when set).
    pub audience: Vec<String>,
    /// Clock skew allowed for `exp` and `nbf`.
    pub leeway: Duration,
    /// Claims that must be present.
    pub required_claims: Vec<String>,
    /// Where the token is read, in order.
    pub sources: Vec<TokenSource>,
}

/// `jwks_url` and its refresh settings.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// The JWKS URL (`http` or `https`).
    pub url: Uri,
    /// Refresh interval, and least time between refreshes on an unknown `kid`.
    pub refresh: Duration,
    /// Time allowed for one fetch.
    pub timeout: Duration,
}

/// `type = "api_key"`, typed.
#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    /// Where the key is read.
    pub source: TokenSource,
    /// SHA-256 of each key, with the key's name.
    pub keys: Vec<([u8; 32], String)>,
}

/// `type = "introspection"`, typed.
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// The RFC 7662 endpoint.
    pub endpoint: Uri,
    /// Client id for HTTP Basic authentication.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Longest time a result is cached.
    pub cache_ttl: Duration,
    /// Time allowed for one call.
    pub timeout: Duration,
    /// Where the token is read, in order.
    pub sources: Vec<TokenSource>,
}

/// Validates every `[auth.*]` block; `p(key, message)` records a problem.
pub fn validate(raw: &RawConfig, p: &mut dyn FnMut(&str, String)) -> BTreeMap<String, AuthSettings> {
    let mut out = BTreeMap::new();
    for (name, a) in &raw.auth {
        let key = format!("auth.{name}");
        let mut p = |field: &str, msg: String| p(&format!("{key}.{field}"), msg);
        let kind = match a.kind.as_str() {
            "jwt" => {
                refuse_foreign(a, JWT_FIELDS, "jwt", &mut p);
                jwt(a, &mut p).map(AuthKind::Jwt)
            }
            "api_key" => {
                refuse_foreign(a, API_KEY_FIELDS, "api_key", &mut p);
                api_key(a, &mut p).map(AuthKind::ApiKey)
            }
            "introspection" => {
                refuse_foreign(a, INTROSPECTION_FIELDS, "introspection", &mut p);
                introspection(a, &mut p).map(AuthKind::Introspection)
            }
            "" => {
                p("type", "is required: \"jwt\", \"api_key\" or \"introspection\"".into());
                None
            }
            other => {
                p("type", format!("{other:?} is not one of \"jwt\", \"api_key\", \"introspection\""));
                None
            }
        };
        let max_token_bytes = match a.max_token_bytes {
            None => DEFAULT_MAX_TOKEN_BYTES,
            Some(s) if s.0 == 0 || s.0 > 64 * 1024 => {
                p("max_token_bytes", "must be between 1 byte and 64KiB".into());
                DEFAULT_MAX_TOKEN_BYTES
            }
            Some(s) => usize::try_from(s.0).unwrap_or(DEFAULT_MAX_TOKEN_BYTES),
        };
        if let Some(kind) = kind {
            out.insert(name.clone(), AuthSettings { name: name.clone(), raw: a.clone(), kind, max_token_bytes });
        }
    }
    out
}

const JWT_FIELDS: &[&str] = &[
    "algorithms",
    "public_keys",
    "secret",
    "jwks_url",
    "jwks_refresh",
    "issuer",
    "audience",
    "leeway",
    "required_claims",
    "token_from",
    "timeout",
    "max_token_bytes",
];
const API_KEY_FIELDS: &[&str] = &["from", "keys", "max_token_bytes"];
const INTROSPECTION_FIELDS: &[&str] = &["endpoint", "client_id", "client_secret", "cache_ttl", "timeout", "token_from", "max_token_bytes"];

/// The fields of a block that are set, by name.
fn set_fields(a: &AuthConfig) -> [(&'static str, bool); 18] {
    [
        ("algorithms", !a.algorithms.is_empty()),
        ("public_keys", !a.public_keys.is_empty()),
        ("secret", a.secret.is_some()),
        ("jwks_url", a.jwks_url.is_some()),
        ("jwks_refresh", a.jwks_refresh.is_some()),
        ("issuer", a.issuer.is_some()),
        ("audience", !a.audience.is_empty()),
        ("leeway", a.leeway.is_some()),
        ("required_claims", !a.required_claims.is_empty()),
        ("token_from", !a.token_from.is_empty()),
        ("from", a.from.is_some()),
        ("keys", !a.keys.is_empty()),
        ("endpoint", a.endpoint.is_some()),
        ("client_id", a.client_id.is_some()),
        ("client_secret", a.client_secret.is_some()),
        ("cache_ttl", a.cache_ttl.is_some()),
        ("timeout", a.timeout.is_some()),
        ("max_token_bytes", a.max_token_bytes.is_some()),
    ]
}

/// Keys that do not belong to the block's type are refused, not ignored.
fn refuse_foreign(a: &AuthConfig, allowed: &[&str], kind: &str, p: &mut dyn FnMut(&str, String)) {
    for (field, set) in set_fields(a) {
        if set && !allowed.contains(&field) {
            p(field, format!("does not apply to type = {kind:?}"));
        }
    }
}

fn jwt(a: &AuthConfig, p: &mut dyn FnMut(&str, String)) -> Option<JwtSettings> {
    let mut ok = true;
    let mut algorithms = Vec::new();
    if a.algorithms.is_empty() {
        p("algorithms", "is required: the algorithms tokens may use, e.g. [\"ES256\"]".into());
        ok = false;
    }
    for name in &a.algorithms {
        match parse_algorithm(name) {
            Some(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
            Some(_) => {}
            None => {
                p(
                    "algorithms",
                    format!("{name:?} is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"),
                );
                ok = false;
            }
        }
    }
    let mut keys = Vec::new();
    for (i, r) in a.public_keys.iter().enumerate() {
        // The line of `public_keys` is found; an index in the key path would not be.
        match r.resolve() {
            Err(e) => {
                p("public_keys", format!("entry {i}: {e}"));
                ok = false;
            }
            Ok(pem) => match public_key(pem.expose().as_bytes(), &algorithms) {
                Ok(k) => keys.push(k),
                Err(msg) => {
                    p("public_keys", format!("entry {i} {msg}"));
                    ok = false;
                }
            },
        }
    }
    let hmac: Vec<Algorithm> = algorithms.iter().copied().filter(|a| is_hmac(*a)).collect();
    match (&a.secret, hmac.is_empty()) {
        (Some(_), true) => {
            p("secret", "is only used by HS256/HS384/HS512, and algorithms lists none of them".into());
            ok = false;
        }
        (Some(s), false) => match s.resolve() {
            Ok(secret) if secret.expose().len() < 32 => {
                p("secret", "is shorter than 32 bytes: too weak for HMAC tokens".into());
                ok = false;
            }
            Ok(secret) => keys.push(JwtKey { key: DecodingKey::from_secret(secret.expose().as_bytes()), algorithms: hmac, kid: None }),
            Err(e) => {
                p("secret", e.to_string());
                ok = false;
            }
        },
        (None, false) if !algorithms.is_empty() => {
            p("algorithms", "lists an HMAC algorithm (HS256/384/512) but no secret is set".into());
            ok = false;
        }
        (None, _) => {}
    }
    let refresh = a.jwks_refresh.map_or(Duration::from_secs(300), |d| d.0);
    let timeout = a.timeout.map_or(Duration::from_secs(2), |d| d.0);
    if a.timeout.is_some() && a.jwks_url.is_none() {
        p("timeout", "applies to the JWKS fetch: set jwks_url, or remove timeout".into());
        ok = false;
    }
    if a.jwks_refresh.is_some() && a.jwks_url.is_none() {
        p("jwks_refresh", "needs jwks_url".into());
        ok = false;
    }
    if refresh < Duration::from_secs(1) {
        p("jwks_refresh", "must be at least 1s".into());
        ok = false;
    }
    if timeout.is_zero() {
        p("timeout", "must be greater than zero".into());
        ok = false;
    }
    let jwks = match &a.jwks_url {
        None => None,
        Some(u) => match parse_endpoint(u) {
            Ok(url) => {
                if !algorithms.iter().any(|a| !is_hmac(*a)) {
                    p("jwks_url", "JWKS keys are public keys: algorithms must list at least one of RS*, PS*, ES*, EdDSA".into());
                    ok = false;
                }
                Some(JwksSettings { url, refresh, timeout })
            }
            Err(msg) => {
                p("jwks_url", msg);
                ok = false;
                None
            }
        },
    };
    if ok && keys.is_empty() && jwks.is_none() {
        p("public_keys", "a jwt block needs public_keys, secret or jwks_url".into());
        ok = false;
    }
    if ok {
        // Every listed public-key algorithm must be usable by some key (or the JWKS).
        for alg in algorithms.iter().filter(|a| !is_hmac(**a)) {
            if jwks.is_none() && !keys.iter().any(|k| k.algorithms.contains(alg)) {
                p("algorithms", format!("{alg:?} is listed but no configured key can verify it"));
                ok = false;
            }
        }
    }
    if let Some(iss) = &a.issuer {
        if iss.is_empty() {
            p("issuer", "must not be empty".into());
            ok = false;
        }
    }
    if a.audience.iter().any(String::is_empty) {
        p("audience", "must not contain an empty string".into());
        ok = false;
    }
    for c in &a.required_claims {
        if c.is_empty() {
            p("required_claims", "must not contain an empty name".into());
            ok = false;
        }
    }
    let leeway = a.leeway.map_or(Duration::from_secs(30), |d| d.0);
    if leeway > Duration::from_secs(600) {
        p("leeway", "must be at most 10m".into());
        ok = false;
    }
    let sources = token_sources(&a.token_from, p)?;
    ok.then(|| JwtSettings {
        algorithms,
        keys,
        jwks,
        issuer: a.issuer.clone(),
        audience: a.audience.clone(),
        leeway,
        required_claims: a.required_claims.clone(),
        sources,
    })
}

/// `"ES256"` etc. (exact JOSE names; `none` is never one).
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The algorithms of `configured` that a key of this family can verify.
pub fn algorithms_for(family: KeyFamily, configured: &[Algorithm]) -> Vec<Algorithm> {
    configured
        .iter()
        .copied()
        .filter(|a| match family {
            KeyFamily::Rsa => {
                matches!(a, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
            }
            KeyFamily::P256 => *a == Algorithm::ES256,
            KeyFamily::P384 => *a == Algorithm::ES384,
            KeyFamily::Ed25519 => *a == Algorithm::EdDSA,
        })
        .collect()
}

/// The kind of a public key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA: RS* and PS*.
    Rsa,
    /// EC P-256: ES256.
    P256,
    /// EC P-384: ES384.
    P384,
    /// Ed25519: EdDSA.
    Ed25519,
}

/// OID of prime256v1 / secp384r1 as they appear, DER-encoded, in a SubjectPublicKeyInfo.
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Decodes one PEM public key (RSA, EC P-256/P-384, Ed25519) and the configured
/// algorithms it can verify. Messages never quote the key.
fn public_key(pem: &[u8], configured: &[Algorithm]) -> Result<JwtKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "is not a PEM public key (not text)".to_owned())?;
    if text.contains("PRIVATE KEY") {
        return Err("is a private key: give the public key (openssl pkey -pubout)".into());
    }
    if text.contains("CERTIFICATE") {
        return Err("is a certificate: give the public key (openssl x509 -pubkey -noout)".into());
    }
    let (key, family) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        (k, KeyFamily::Rsa)
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let der = pem_der(text).unwrap_or_default();
        let family = if contains(&der, OID_P256) {
            KeyFamily::P256
        } else if contains(&der, OID_P384) {
            KeyFamily::P384
        } else {
            return Err("is an EC key on a curve other than P-256 or P-384".into());
        };
        (k, family)
    } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (k, KeyFamily::Ed25519)
    } else {
        return Err("is not a PEM public key (RSA, EC P-256/P-384 or Ed25519)".into());
    };
    let algorithms = algorithms_for(family, configured);
    if algorithms.is_empty() {
        return Err(format!("is a {family:?} key, but algorithms lists nothing it can verify"));
    }
    Ok(JwtKey { key, algorithms, kid: None })
}

/// The DER bytes of the first PEM block.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `token_from`: `header`, `query:NAME`, `cookie:NAME`; default all three.
fn token_sources(list: &[String], p: &mut dyn FnMut(&str, String)) -> Option<Vec<TokenSource>> {
    if list.is_empty() {
        return Some(vec![TokenSource::Header, TokenSource::Query("token".into()), TokenSource::Cookie("sg_token".into())]);
    }
    let mut out = Vec::new();
    let mut ok = true;
    for s in list {
        let parsed = if s == "header" {
            Some(TokenSource::Header)
        } else if let Some(n) = s.strip_prefix("query:").filter(|n| plain_name(n)) {
            Some(TokenSource::Query(n.to_owned()))
        } else {
            s.strip_prefix("cookie:").filter(|n| plain_name(n)).map(|n| TokenSource::Cookie(n.to_owned()))
        };
        match parsed {
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {
                p("token_from", format!("{s:?} is listed twice"));
                ok = false;
            }
            None => {
                p("token_from", format!("{s:?} is not \"header\", \"query:NAME\" or \"cookie:NAME\""));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn plain_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn api_key(a: &AuthConfig, p: &mut dyn FnMut(&str, String)) -> Option<ApiKeySettings> {
    let mut ok = true;
    let source = match a.from.as_deref() {
        None => {
            p("from", "is required: \"header:NAME\" or \"query:NAME\"".into());
            None
        }
        Some(s) => {
            let parsed = if let Some(n) = s.strip_prefix("header:") {
                http::HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok().map(TokenSource::NamedHeader)
            } else {
                s.strip_prefix("query:").filter(|n| plain_name(n)).map(|n| TokenSource::Query(n.to_owned()))
            };
            if parsed.is_none() {
                p("from", format!("{s:?} is not \"header:NAME\" or \"query:NAME\""));
            }
            parsed
        }
    };
    if a.keys.is_empty() {
        p("keys", "is required: name = \"sha256:<64 hex digits>\" (echo -n KEY | sha256sum)".into());
        ok = false;
    }
    let mut keys = Vec::new();
    for (name, v) in &a.keys {
        match parse_sha256(v) {
            Some(h) if keys.iter().any(|(k, _)| *k == h) => {
                p(&format!("keys.{name}"), "is the same key as another entry".into());
                ok = false;
            }
            Some(h) => keys.push((h, name.clone())),
            None => {
                p(&format!("keys.{name}"), "must be \"sha256:<64 hex digits>\", the SHA-256 of the key (never the key itself)".into());
                ok = false;
            }
        }
    }
    let source = source?;
    ok.then_some(ApiKeySettings { source, keys })
}

/// `sha256:` and 64 hex digits.
fn parse_sha256(v: &str) -> Option<[u8; 32]> {
    let hex = v.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        let (hi, lo) = (digit(pair[0])?, digit(pair[1])?);
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// An `http://` or `https://` URL with a host (JWKS and introspection endpoints).
fn parse_endpoint(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|_| format!("{s:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err(format!("{s:?}: expected an http:// or https:// URL with a host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry credentials in the URL".into());
    }
    Ok(uri)
}

fn introspection(a: &AuthConfig, p: &mut dyn FnMut(&str, String)) -> Option<IntrospectionSettings> {
    let mut ok = true;
    let endpoint = match a.endpoint.as_deref() {
        None => {
            p("endpoint", "is required: the RFC 7662 introspection URL".into());
            None
        }
        Some(s) => parse_endpoint(s).map_err(|m| p("endpoint", m)).ok(),
    };
    let client_id = match &a.client_id {
        Some(id) if !id.is_empty() && !id.contains(':') => Some(id.clone()),
        Some(_) => {
            p("client_id", "must be non-empty and without ':'".into());
            None
        }
        None => {
            p("client_id", "is required".into());
            None
        }
    };
    let client_secret = match a.client_secret.as_ref().map(|s| s.resolve()) {
        None => {
            p("client_secret", "is required (use \"env:NAME\" or \"file:PATH\")".into());
            None
        }
        Some(Err(e)) => {
            p("client_secret", e.to_string());
            None
        }
        Some(Ok(s)) => Some(s),
    };
    let cache_ttl = a.cache_ttl.map_or(Duration::from_secs(60), |d| d.0);
    let timeout = a.timeout.map_or(Duration::from_secs(2), |d| d.0);
    if timeout.is_zero() {
        p("timeout", "must be greater than zero".into());
        ok = false;
    }
    let sources = token_sources(&a.token_from, p);
    match (endpoint, client_id, client_secret, sources, ok) {
        (Some(endpoint), Some(client_id), Some(client_secret), Some(sources), true) => {
            Some(IntrospectionSettings { endpoint, client_id, client_secret, cache_ttl, timeout, sources })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
