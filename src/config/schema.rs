//! The raw configuration schema: what a user writes, as serde structs. Every struct
//! refuses unknown keys (typos must not be silent) and names its defaults. `validate`
//! turns this into typed, checked values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secret::SecretRef;
use super::units::{ByteSize, ConfigDuration};

/// The whole file (after merging files and environment).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Edge listeners.
    pub server: ServerConfig,
    /// Admin listener.
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
    /// Manifest cache (global budget).
    pub cache: CacheConfig,
    /// Upstream origins by name.
    pub origins: BTreeMap<String, OriginConfig>,
    /// Routes by name.
    pub routes: BTreeMap<String, RouteConfig>,
    /// Viewer authentication blocks by name (`routes.X.auth`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub auth: BTreeMap<String, AuthConfig>,
    /// Rate limits by name (`routes.X.rate_limit`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, RateLimitConfig>,
    /// Country/region lookup.
    pub geoip: GeoipConfig,
}

/// `[auth.NAME]`: how viewers prove who they are. One table for every `type`; keys that
/// do not belong to the type are refused by validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `jwt`, `api_key` or `introspection`. Required.
    #[serde(rename = "type")]
    pub kind: String,
    /// jwt: accepted algorithms (`HS256`, `RS256`, `PS256`, `ES256`, `EdDSA`, ...). Required.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// jwt: PEM public keys (RSA, EC, Ed25519), inline or `file:`/`env:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<SecretRef>,
    /// jwt: shared secret for HS256/384/512.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
    /// jwt: JWKS URL, fetched at start and refreshed in the background.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// jwt: JWKS refresh interval (also the least time between refreshes on an unknown
    /// `kid`). Default `5m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_refresh: Option<ConfigDuration>,
    /// jwt: required `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// jwt: required `aud` (one of them).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// jwt: clock skew allowed for `exp`/`nbf`. Default `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway: Option<ConfigDuration>,
    /// jwt: claims that must be present.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<String>,
    /// jwt / introspection: where the token is read, in order: `header` (Authorization:
    /// Bearer), `query:NAME`, `cookie:NAME`. Default `["header", "query:token",
    /// "cookie:sg_token"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_from: Vec<String>,
    /// api_key: where the key is read: `header:NAME` or `query:NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// api_key: key name -> `sha256:HEX` of the key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// introspection: the RFC 7662 endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// introspection: client id for HTTP Basic authentication at the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// introspection: client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// introspection: longest time a result is cached (never past the token's `exp`).
    /// Default `60s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<ConfigDuration>,
    /// introspection (and jwt with `jwks_url`): time allowed for one call to the
    /// endpoint. Default `2s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ConfigDuration>,
    /// Longest token (or API key) accepted, in bytes; longer ones are refused before any
    /// parsing. Default `8KiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_token_bytes: Option<ByteSize>,
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// `[rate_limits.NAME]`: a GCRA limit.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// What a budget belongs to: `ip`, `claim:NAME`, `header:NAME`, `query:NAME`. Required.
    pub key: String,
    /// Sustained rate, `N/s`, `N/m` or `N/h`. Required.
    pub rate: String,
    /// Requests allowed at once above the rate. Default: the per-second rate, at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// `local` (default) or `redis`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// `redis://host:port[/db]` for `backend = "redis"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<SecretRef>,
    /// `allow` (default) or `deny` when Redis cannot be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_backend_error: Option<String>,
}

/// `[geoip]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoipConfig {
    /// A MaxMind-format (`.mmdb`) country or city database. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// `routes.NAME.cors`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins (`https://player.example.com`) or `["*"]`. Required.
    pub origins: Vec<String>,
    /// Response headers players may read, on top of the default set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long browsers may cache a preflight answer. Default `10m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<ConfigDuration>,
    /// Allow credentials (cookies) from the allowed origins (not with `*`). Default `false`.
    pub credentials: bool,
}

/// `[server]`: edge listeners.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to listen on. Default `["127.0.0.1:8080"]`.
    pub listen: Vec<String>,
    /// How long in-flight requests may take to finish on shutdown. Default `30s`.
    pub shutdown_grace: ConfigDuration,
    /// Tokio worker threads. Default: one per core. `1` runs a single-threaded runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// Largest request head (request line + headers). Default `16384`; larger: 431.
    pub max_header_bytes: ByteSize,
    /// Time a client has to send a complete request head. Default `10s`.
    pub header_read_timeout: ConfigDuration,
    /// Peers (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the client. Default none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Where a viewer's session id is read, in order: `header:NAME`, `query:NAME`,
    /// `cookie:NAME`. Default none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_from: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:8080".into()],
            shutdown_grace: ConfigDuration(Duration::from_secs(30)),
            worker_threads: None,
            max_header_bytes: ByteSize(16 * 1024),
            header_read_timeout: ConfigDuration(Duration::from_secs(10)),
            trusted_proxies: Vec::new(),
            session_from: Vec::new(),
        }
    }
}

/// `[admin]`: the admin listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; `""` disables it. Default `127.0.0.1:9090`.
    pub listen: String,
    /// Bearer token required for POST endpoints. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9090".into(), token: None }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (default) or `text`.
    pub format: LogFormat,
    /// A tracing filter: `info` (default), `warn`, `streamgate=debug`, ...
    pub level: String,
    /// One access-log line per request. Default `true`.
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Json, level: "info".into(), access: true }
    }
}

/// `[cache]`: the global manifest cache budget.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// All cached manifests together. Default `256MiB`.
    pub max_bytes: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_bytes: ByteSize(256 << 20) }
    }
}

/// How a pool picks one of its urls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each request to the next url (default).
    #[default]
    RoundRobin,
    /// The same path always to the same url (rendezvous hashing), for origin cache locality.
    ConsistentHash,
}

/// `[origins.NAME]`: an upstream pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// `http://host:port[/base]` or `file:///dir` urls. Required, not empty.
    pub urls: Vec<String>,
    /// Other names the origin's manifests use for itself. Default none.
    pub aliases: Vec<String>,
    /// `round_robin` (default) or `consistent_hash`.
    pub balance: Balance,
    /// TCP connect timeout. Default `2s`.
    pub connect_timeout: ConfigDuration,
    /// Time until the response head. Default `10s`.
    pub response_timeout: ConfigDuration,
    /// Longest pause between two pieces of a response body; past it the response is
    /// aborted. Default `30s`.
    pub idle_timeout: ConfigDuration,
    /// Extra attempts for idempotent requests (on connect failure, a reset before the
    /// response head, or 502/503 from the origin), each to another url when there is
    /// one. Default `1`.
    pub retries: u32,
    /// Deadline for all attempts of one request together. Default `15s`.
    pub retry_deadline: ConfigDuration,
    /// Reach the origin through a tunnel: `socks5://[user:pass@]host:port` or
    /// `http://[user:pass@]host:port` (HTTP CONNECT). Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyUrl>,
    /// Active health checks. Default none (only passive ejection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
    /// Consecutive failed requests (connect errors, resets, timeouts, 502/503) after
    /// which a url leaves the balancer for `eject_for`. `0` turns this off. Default `5`.
    pub eject_after: u32,
    /// How long a passively ejected url stays out. Default `10s`.
    pub eject_for: ConfigDuration,
}

/// `origins.NAME.health`: an active health check.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Path requested with GET on each url; 2xx is healthy. Required.
    pub path: String,
    /// Time between checks of one url (with up to 10% jitter). Default `5s`.
    pub interval: ConfigDuration,
    /// Time allowed for one check. Default `2s`.
    pub timeout: ConfigDuration,
    /// Consecutive failed checks that make a url unhealthy. Default `3`.
    pub unhealthy_after: u32,
    /// Consecutive passed checks that make an unhealthy url healthy again. Default `2`.
    pub healthy_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            interval: ConfigDuration(Duration::from_secs(5)),
            timeout: ConfigDuration(Duration::from_secs(2)),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

/// An upstream proxy URL as written; shown with its password replaced by `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ProxyUrl(pub String);

impl ProxyUrl {
    /// The URL with any password replaced.
    pub fn redacted(&self) -> String {
        let s = &self.0;
        let Some(scheme_end) = s.find("://") else { return s.clone() };
        let rest = &s[scheme_end + 3..];
        let auth_end = rest.find('/').unwrap_or(rest.len());
        match rest[..auth_end].rfind('@') {
            Some(at) => match rest[..at].find(':') {
                Some(colon) => format!("{}{}:***{}", &s[..scheme_end + 3], &rest[..colon], &rest[at..]),
                None => s.clone(),
            },
            None => s.clone(),
        }
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ProxyUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            aliases: Vec::new(),
            balance: Balance::RoundRobin,
            connect_timeout: ConfigDuration(Duration::from_secs(2)),
            response_timeout: ConfigDuration(Duration::from_secs(10)),
            idle_timeout: ConfigDuration(Duration::from_secs(30)),
            retries: 1,
            retry_deadline: ConfigDuration(Duration::from_secs(15)),
            proxy: None,
            health: None,
            eject_after: 5,
            eject_for: ConfigDuration(Duration::from_secs(10)),
        }
    }
}

/// `[routes.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, starting with `/`. Required. The longest matching prefix wins.
    pub prefix: String,
    /// Name of an `[origins.*]` block. Required.
    pub origin: String,
    /// Remove `prefix` from the path sent upstream. Default `false`.
    pub strip_prefix: bool,
    /// Only requests for this host (the `Host` header without port). Default: any host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Name of an `[auth.*]` block viewers must pass. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Name of a `[rate_limits.*]` block. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// CORS for browser players. Default: none (no CORS headers, no preflight answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    /// A Rego policy (`file:PATH`, relative to the config file's directory or absolute)
    /// whose `allow` decides. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Manifest handling.
    pub manifest: ManifestConfig,
    /// Signed child URLs (and, with `verify`, required tokens on this route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenize: Option<TokenizeConfig>,
}

/// Token format of `[routes.X.tokenize]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// Akamai EdgeAuth v2 (`hdnts=st=…~exp=…~acl=…~hmac=…`).
    #[default]
    Akamai,
}

/// `[routes.X.tokenize]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizeConfig {
    /// `akamai` (default).
    pub format: TokenFormat,
    /// HMAC key, hex. Required; a secret (`env:`/`file:`).
    pub key: Option<SecretRef>,
    /// Token lifetime. Default `6h`.
    pub ttl: ConfigDuration,
    /// Require a valid token on every request to this route. Default `false`.
    pub verify: bool,
    /// Query parameter (and cookie) name of the token. Default `hdnts`.
    pub param: String,
}

impl Default for TokenizeConfig {
    fn default() -> Self {
        Self {
            format: TokenFormat::Akamai,
            key: None,
            ttl: ConfigDuration(Duration::from_secs(6 * 3600)),
            verify: false,
            param: "hdnts".into(),
        }
    }
}

/// `manifest.filter`: renditions to keep.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Keep renditions with at least this bandwidth (bit/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_bandwidth: Option<u64>,
    /// Keep renditions with at most this bandwidth (bit/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<u64>,
    /// Keep renditions at most this tall (pixels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u64>,
    /// Keep renditions at most this wide (pixels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u64>,
    /// Keep renditions whose codecs all start with one of these (`avc1`, `mp4a`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
    /// Keep renditions with at most this frame rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_rate: Option<f64>,
}

/// How child URLs in manifests are rewritten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RewriteMode {
    /// Child URLs come back through this route (default).
    #[default]
    Proxy,
    /// Child URLs become `cdn_base` + the path below the route.
    Cdn,
    /// Bodies pass through unchanged.
    None,
}

/// `[routes.NAME.manifest]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManifestConfig {
    /// `proxy` (default), `cdn` or `none`.
    pub rewrite: RewriteMode,
    /// Base URL for `rewrite = "cdn"`; required there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdn_base: Option<String>,
    /// Cache manifests. Default `true`.
    pub cache: bool,
    /// Time a VOD manifest stays fresh. Default `10m`.
    pub vod_ttl: ConfigDuration,
    /// Time a live manifest stays fresh when it states no refresh interval (a dynamic MPD
    /// without `minimumUpdatePeriod`). Default `2s`.
    pub live_ttl: ConfigDuration,
    /// Past expiry, serve the old copy while one background refresh runs, for this long.
    /// Default: live, half the target duration (`minimumUpdatePeriod` for DASH); VOD, `1m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_while_revalidate: Option<ConfigDuration>,
    /// Past expiry, serve the old copy while the origin fails, for this long. Default:
    /// live, three target durations (`minimumUpdatePeriod`s for DASH); VOD, `1h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_if_error: Option<ConfigDuration>,
    /// Largest manifest accepted from the origin. Default `16MiB`.
    pub max_bytes: ByteSize,
    /// Renditions to keep on this route. Default: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterConfig>,
    /// Accept per-request filters in the query (`sg.max_height=720`, ...). Default `false`.
    pub allow_query_filters: bool,
    /// Query parameters copied from the manifest request onto every child URL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub propagate_query: Vec<String>,
}

impl Default for ManifestConfig {
    fn default() -> Self {
        Self {
            rewrite: RewriteMode::Proxy,
            cdn_base: None,
            cache: true,
            vod_ttl: ConfigDuration(Duration::from_secs(600)),
            live_ttl: ConfigDuration(Duration::from_secs(2)),
            stale_while_revalidate: None,
            stale_if_error: None,
            max_bytes: ByteSize(16 << 20),
            filter: None,
            allow_query_filters: false,
            propagate_query: Vec::new(),
        }
    }
}
