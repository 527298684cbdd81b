//! Validation: raw config in, typed settings out, or every problem with its key path.
//! Everything that can be known before the first request is checked here (addresses,
//! URLs, references between routes and origins, duplicate prefixes), not at request time.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;

use super::load::{ConfigErrors, Locator, Problem};
use super::schema::{Balance, LogConfig, ManifestConfig, RawConfig};
use super::secret::Secret;

/// A validated configuration: what a snapshot is compiled from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The merged raw config, for `GET /config` (secrets redacted on output).
    pub raw: RawConfig,
    /// Edge listener settings.
    pub server: ServerSettings,
    /// Admin listener settings.
    pub admin: AdminSettings,
    /// Logging.
    pub log: LogConfig,
    /// Origins by name.
    pub origins: BTreeMap<String, OriginSettings>,
    /// Routes, in name order.
    pub routes: Vec<RouteSettings>,
    /// Auth blocks by name.
    pub auth: BTreeMap<String, super::auth::AuthSettings>,
    /// Rate limits by name.
    pub rate_limits: BTreeMap<String, super::limits::RateLimitSettings>,
    /// Request context settings (trusted proxies, session id, geoip).
    pub access: super::access::AccessSettings,
}

/// `[server]`, typed.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Runtime size; `None` = one per core.
    pub worker_threads: Option<usize>,
    /// Request head limit in bytes.
    pub max_header_bytes: usize,
    /// Slow request head cut-off.
    pub header_read_timeout: Duration,
}

/// `[admin]`, typed.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `None` when disabled.
    pub listen: Option<SocketAddr>,
    /// Bearer token for POST endpoints.
    pub token: Option<Secret>,
}

/// One url of an origin pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginUrl {
    /// An HTTP origin.
    Http {
        /// `http`.
        scheme: Scheme,
        /// `host:port`.
        authority: Authority,
        /// Path prefix without trailing slash (`""` for none).
        base_path: String,
    },
    /// A local directory.
    File {
        /// The root, canonicalized.
        root: PathBuf,
    },
}

impl std::fmt::Display for OriginUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginUrl::Http { scheme, authority, base_path } => write!(f, "{scheme}://{authority}{base_path}"),
            OriginUrl::File { root } => write!(f, "file://{}", root.display()),
        }
    }
}

/// `[origins.NAME]`, typed.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    /// The name.
    pub name: String,
    /// Its urls (all HTTP or all file).
    pub urls: Vec<OriginUrl>,
    /// Other names the origin uses for itself.
    pub aliases: Vec<Uri>,
    /// Balancing.
    pub balance: Balance,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Time to response head.
    pub response_timeout: Duration,
    /// Longest pause inside a response body.
    pub idle_timeout: Duration,
    /// Extra attempts on connect failure.
    pub retries: u32,
    /// Deadline for all attempts of one request.
    pub retry_deadline: Duration,
    /// Tunnel to reach the origin through.
    pub proxy: Option<UpstreamProxy>,
    /// Active health checks.
    pub health: Option<HealthSettings>,
    /// Consecutive failures before passive ejection (0: off).
    pub eject_after: u32,
    /// Passive ejection time.
    pub eject_for: Duration,
}

/// `origins.NAME.health`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Path checked with GET.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time allowed for one check.
    pub timeout: Duration,
    /// Failed checks before unhealthy.
    pub unhealthy_after: u32,
    /// Passed checks before healthy again.
    pub healthy_after: u32,
}

/// The kind of an upstream proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// SOCKS5 (RFC 1928), with username/password auth (RFC 1929) when given.
    Socks5,
    /// HTTP CONNECT, with Basic auth when given.
    HttpConnect,
}

/// `origins.NAME.proxy`, typed.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamProxy {
    /// SOCKS5 or HTTP CONNECT.
    pub kind: ProxyKind,
    /// `host:port` of the proxy.
    pub addr: String,
    /// Username and password, percent-decoded.
    pub auth: Option<(String, String)>,
}

impl std::fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProxy")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("auth", &self.auth.as_ref().map(|(u, _)| (u, "***")))
            .finish()
    }
}

impl UpstreamProxy {
    /// Parses `socks5://[user[:pass]@]host:port` or `http://[user[:pass]@]host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, rest) = if let Some(r) = s.strip_prefix("socks5://") {
            (ProxyKind::Socks5, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (ProxyKind::HttpConnect, r)
        } else {
            return Err("expected socks5://host:port or http://host:port (HTTP CONNECT)".into());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("a proxy URL has no path, query or fragment".into());
        }
        let (auth, hostport) = match rest.rfind('@') {
            Some(at) => {
                let (u, p) = rest[..at].split_once(':').unwrap_or((&rest[..at], ""));
                let dec = |x: &str| percent_decode(x).ok_or_else(|| "invalid percent-encoding in the proxy credentials".to_string());
                (Some((dec(u)?, dec(p)?)), &rest[at + 1..])
            }
            None => (None, rest),
        };
        if let Some((u, p)) = &auth {
            if u.is_empty() || u.len() > 255 || p.len() > 255 {
                return Err("proxy username must be 1 to 255 bytes and password at most 255".into());
            }
        }
        let authority: Authority = hostport.parse().map_err(|_| format!("invalid proxy address {hostport:?}"))?;
        if authority.port_u16().is_none() || authority.host().is_empty() {
            return Err(format!("proxy address {hostport:?} needs a host and a port"));
        }
        Ok(Self { kind, addr: hostport.to_owned(), auth })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `[routes.NAME]`, typed.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// The name.
    pub name: String,
    /// Path prefix.
    pub prefix: String,
    /// Lower-cased host, when the route is host-specific.
    pub host: Option<String>,
    /// Origin name (known to exist).
    pub origin: String,
    /// Strip the prefix before going upstream.
    pub strip_prefix: bool,
    /// Manifest settings.
    pub manifest: ManifestConfig,
    /// Signed child URLs, with the key resolved.
    pub tokenize: Option<TokenSettings>,
    /// Name of the `[auth.*]` block (known to exist).
    pub auth: Option<String>,
    /// Name of the `[rate_limits.*]` block (known to exist).
    pub rate_limit: Option<String>,
    /// CORS.
    pub cors: Option<super::access::CorsSettings>,
    /// Rego policy.
    pub policy: Option<super::access::PolicySettings>,
}

/// `[routes.X.tokenize]`, typed.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The decoded HMAC key (its `Debug` prints no key material).
    pub key: streamgate_manifest::token::AkamaiKey,
    /// Token lifetime.
    pub ttl: Duration,
    /// Require valid tokens on this route.
    pub verify: bool,
    /// Query parameter / cookie name.
    pub param: String,
}

/// Checks everything and returns typed settings, or all problems found.
pub fn validate(raw: RawConfig, loc: &Locator) -> Result<Config, ConfigErrors> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut p = |key: &str, msg: String| problems.push(loc.problem(key, msg));

    // [server]
    let s = &raw.server;
    let mut listen = Vec::new();
    if s.listen.is_empty() {
        p("server.listen", "at least one address is required".into());
    }
    for a in &s.listen {
        match a.parse::<SocketAddr>() {
            Ok(addr) => listen.push(addr),
            Err(_) => p("server.listen", format!("invalid listen address {a:?} (expected e.g. \"127.0.0.1:8080\" or \"[::]:443\")")),
        }
    }
    if matches!(s.worker_threads, Some(0)) {
        p("server.worker_threads", "must be at least 1".into());
    }
    let max_header_bytes = s.max_header_bytes.0;
    if !(1024..=1 << 20).contains(&max_header_bytes) {
        p("server.max_header_bytes", format!("{max_header_bytes} is out of range 1024..=1048576"));
    }
    if s.header_read_timeout.0.is_zero() {
        p("server.header_read_timeout", "must be greater than zero".into());
    }

    // [admin]
    let admin_listen = if raw.admin.listen.is_empty() {
        None
    } else {
        match raw.admin.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p("admin.listen", format!("invalid listen address {:?}", raw.admin.listen));
                None
            }
        }
    };
    if let Some(a) = admin_listen {
        if let Some(l) = listen.iter().find(|l| overlaps(l, &a)) {
            p("admin.listen", format!("{a} overlaps server.listen {l}"));
        }
    }
    for (i, a) in listen.iter().enumerate() {
        if let Some(b) = listen[..i].iter().find(|b| overlaps(b, a)) {
            p("server.listen", format!("{a} overlaps {b}"));
        }
    }
    let admin_token = match &raw.admin.token {
        None => None,
        Some(t) => match t.resolve() {
            Ok(s) => Some(s),
            Err(e) => {
                p("admin.token", e.to_string());
                None
            }
        },
    };

    if raw.cache.max_bytes.0 == 0 {
        p("cache.max_bytes", "must be greater than zero".into());
    }

    // [log]
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
        p("log.level", format!("invalid level {:?}: {e}", raw.log.level));
    }

    // [origins.*]
    let mut origins = BTreeMap::new();
    for (name, o) in &raw.origins {
        let key = format!("origins.{name}");
        if o.urls.is_empty() {
            p(&format!("{key}.urls"), "must list at least one url".into());
        }
        let mut urls = Vec::new();
        for u in &o.urls {
            match parse_origin_url(u) {
                Ok(url) => urls.push(url),
                Err(msg) => p(&format!("{key}.urls"), msg),
            }
        }
        let files = urls.iter().filter(|u| matches!(u, OriginUrl::File { .. })).count();
        if files > 0 && files != urls.len() {
            p(&format!("{key}.urls"), "cannot mix file:// and http:// urls in one origin".into());
        }
        let mut aliases = Vec::new();
        for a in &o.aliases {
            match a.parse::<Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => aliases.push(uri),
                _ => p(&format!("{key}.aliases"), format!("invalid alias {a:?}: expected an absolute http(s) URL")),
            }
        }
        for (field, d) in
            [("connect_timeout", o.connect_timeout), ("response_timeout", o.response_timeout), ("idle_timeout", o.idle_timeout)]
        {
            if d.0.is_zero() {
                p(&format!("{key}.{field}"), "must be greater than zero".into());
            }
        }
        if o.retries > 10 {
            p(&format!("{key}.retries"), format!("{} is more than the maximum of 10", o.retries));
        }
        for (field, d) in [("retry_deadline", o.retry_deadline), ("eject_for", o.eject_for)] {
            if d.0.is_zero() {
                p(&format!("{key}.{field}"), "must be greater than zero".into());
            }
        }
        let proxy = match &o.proxy {
            None => None,
            Some(u) => match UpstreamProxy::parse(&u.0) {
                Ok(px) => Some(px),
                Err(msg) => {
                    p(&format!("{key}.proxy"), msg);
                    None
                }
            },
        };
        if proxy.is_some() && files > 0 {
            p(&format!("{key}.proxy"), "file:// origins cannot use a proxy".into());
        }
        let health = match &o.health {
            None => None,
            Some(h) => {
                let hkey = format!("{key}.health");
                if !h.path.starts_with('/') {
                    p(&format!("{hkey}.path"), format!("{:?} must be a path starting with '/'", h.path));
                }
                for (field, d) in [("interval", h.interval), ("timeout", h.timeout)] {
                    if d.0.is_zero() {
                        p(&format!("{hkey}.{field}"), "must be greater than zero".into());
                    }
                }
                for (field, n) in [("unhealthy_after", h.unhealthy_after), ("healthy_after", h.healthy_after)] {
                    if n == 0 {
                        p(&format!("{hkey}.{field}"), "must be at least 1".into());
                    }
                }
                if files > 0 {
                    p(&hkey, "file:// origins have no health checks".into());
                }
                Some(HealthSettings {
                    path: h.path.clone(),
                    interval: h.interval.0,
                    timeout: h.timeout.0,
                    unhealthy_after: h.unhealthy_after,
                    healthy_after: h.healthy_after,
                })
            }
        };
        origins.insert(
            name.clone(),
            OriginSettings {
                name: name.clone(),
                urls,
                aliases,
                balance: o.balance,
                connect_timeout: o.connect_timeout.0,
                response_timeout: o.response_timeout.0,
                idle_timeout: o.idle_timeout.0,
                retries: o.retries,
                retry_deadline: o.retry_deadline.0,
                proxy,
                health,
                eject_after: o.eject_after,
                eject_for: o.eject_for.0,
            },
        );
    }

    // [routes.*]
    let mut routes = Vec::new();
    let mut seen: HashMap<(Option<String>, String), String> = HashMap::new();
    for (name, r) in &raw.routes {
        let key = format!("routes.{name}");
        if r.prefix.is_empty() {
            p(&format!("{key}.prefix"), "is required".into());
        } else if !r.prefix.starts_with('/') {
            p(&format!("{key}.prefix"), format!("{:?} must start with '/'", r.prefix));
        }
        if r.origin.is_empty() {
            p(&format!("{key}.origin"), "is required".into());
        } else if !raw.origins.contains_key(&r.origin) {
            p(&format!("{key}.origin"), format!("no origin named {:?} (define [origins.{}])", r.origin, r.origin));
        }
        let host = r.host.as_ref().map(|h| h.to_ascii_lowercase());
        if let Some(h) = &host {
            if h.is_empty() || h.parse::<Authority>().is_err() || h.contains(':') {
                p(&format!("{key}.host"), format!("invalid host {h:?} (a host name without port)"));
            }
        }
        if let Some(other) = seen.insert((host.clone(), r.prefix.clone()), name.clone()) {
            p(
                &format!("{key}.prefix"),
                format!("{:?} is also the prefix of routes.{other} (same host): one of them could never match", r.prefix),
            );
        }
        let m = &r.manifest;
        match (&m.rewrite, &m.cdn_base) {
            (super::schema::RewriteMode::Cdn, None) => p(&format!("{key}.manifest.cdn_base"), "is required when rewrite = \"cdn\"".into()),
            (_, Some(base)) => match base.parse::<Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {}
                _ => p(&format!("{key}.manifest.cdn_base"), format!("invalid URL {base:?}: expected an absolute http(s) URL")),
            },
            _ => {}
        }
        if let Some(f) = &m.filter {
            if f.codecs.iter().any(|c| c.trim().is_empty()) {
                p(&format!("{key}.manifest.filter.codecs"), "codec prefixes must not be empty".into());
            }
            if f.max_frame_rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                p(&format!("{key}.manifest.filter.max_frame_rate"), "must be greater than zero".into());
            }
        }
        if m.live_ttl.0.is_zero() {
            p(&format!("{key}.manifest.live_ttl"), "must be greater than zero".into());
        }
        for q in &m.propagate_query {
            if q.is_empty() || q.contains(['&', '=', '#', ' ']) {
                p(&format!("{key}.manifest.propagate_query"), format!("{q:?} is not a query parameter name"));
            }
        }
        let tokenize = match &r.tokenize {
            None => None,
            Some(t) => {
                let tkey = format!("{key}.tokenize");
                if t.ttl.0.is_zero() {
                    p(&format!("{tkey}.ttl"), "must be greater than zero".into());
                }
                if t.param.is_empty() || t.param.contains(['&', '=', '#', ' ']) {
                    p(&format!("{tkey}.param"), format!("{:?} is not a query parameter name", t.param));
                }
                match t.key.as_ref().map(|k| k.resolve()) {
                    None => {
                        p(&format!("{tkey}.key"), "is required (hex; use \"env:NAME\" or \"file:PATH\")".into());
                        None
                    }
                    Some(Err(e)) => {
                        p(&format!("{tkey}.key"), e.to_string());
                        None
                    }
                    Some(Ok(secret)) => match streamgate_manifest::token::AkamaiKey::from_hex(secret.expose()) {
                        Ok(key) => Some(TokenSettings { key, ttl: t.ttl.0, verify: t.verify, param: t.param.clone() }),
                        Err(e) => {
                            p(&format!("{tkey}.key"), format!("not a usable hex key: {e}"));
                            None
                        }
                    },
                }
            }
        };
        if m.rewrite == super::schema::RewriteMode::None {
            if r.tokenize.is_some() {
                p(
                    &format!("{key}.tokenize"),
                    "signing child URLs needs manifest.rewrite = \"proxy\" or \"cdn\" (with \"none\" manifests are not touched)".into(),
                );
            }
            if !m.propagate_query.is_empty() {
                p(
                    &format!("{key}.manifest.propagate_query"),
                    "needs manifest.rewrite = \"proxy\" or \"cdn\" (with \"none\" manifests are not touched)".into(),
                );
            }
        }
        if m.vod_ttl.0.is_zero() {
            p(&format!("{key}.manifest.vod_ttl"), "must be greater than zero".into());
        }
        if m.max_bytes.0 == 0 {
            p(&format!("{key}.manifest.max_bytes"), "must be greater than zero".into());
        }
        for (field, target, known) in [
            ("auth", &r.auth, raw.auth.contains_key(r.auth.as_deref().unwrap_or(""))),
            ("rate_limit", &r.rate_limit, raw.rate_limits.contains_key(r.rate_limit.as_deref().unwrap_or(""))),
        ] {
            if let (Some(n), false) = (target, known) {
                let section = if field == "auth" { "auth" } else { "rate_limits" };
                p(&format!("{key}.{field}"), format!("no block named {n:?} (define [{section}.{n}])"));
            }
        }
        let dir = loc.dir_of(&format!("{key}.policy"));
        let (cors, policy) = super::access::route(r, &key, dir.as_deref(), &mut p);
        routes.push(RouteSettings {
            name: name.clone(),
            prefix: r.prefix.clone(),
            host,
            origin: r.origin.clone(),
            strip_prefix: r.strip_prefix,
            manifest: m.clone(),
            tokenize,
            auth: r.auth.clone(),
            rate_limit: r.rate_limit.clone(),
            cors,
            policy,
        });
    }
    let auth = super::auth::validate(&raw, &mut p);
    let rate_limits = super::limits::validate(&raw, &mut p);
    let geo_dir = loc.dir_of("geoip.database");
    let access = super::access::validate(&raw, geo_dir.as_deref(), &mut p);

    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    Ok(Config {
        server: ServerSettings {
            listen,
            shutdown_grace: s.shutdown_grace.0,
            worker_threads: s.worker_threads,
            max_header_bytes: max_header_bytes as usize,
            header_read_timeout: s.header_read_timeout.0,
        },
        admin: AdminSettings { listen: admin_listen, token: admin_token },
        log: raw.log.clone(),
        origins,
        routes,
        auth,
        rate_limits,
        access,
        raw,
    })
}

/// Two listen addresses that could not both be bound: same port (not 0) and the same
/// IP, or either one the unspecified address of the same family.
fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Parses one origin url: `http://host[:port][/base]` or `file:///absolute/dir`.
pub fn parse_origin_url(s: &str) -> Result<OriginUrl, String> {
    if let Some(path) = s.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!("invalid url {s:?}: a file url needs an absolute path (file:///srv/media)"));
        }
        let root = std::fs::canonicalize(path).map_err(|e| format!("{s:?}: cannot open directory: {e}"))?;
        if !root.is_dir() {
            return Err(format!("{s:?}: not a directory"));
        }
        return Ok(OriginUrl::File { root });
    }
    let uri: Uri = s.parse().map_err(|e| format!("invalid url {s:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(format!("invalid url {s:?}: https origins are not supported yet; use http:// or file://")),
        Some(other) => return Err(format!("invalid url {s:?}: unsupported scheme {other:?} (use http:// or file://)")),
        None => return Err(format!("invalid url {s:?}: missing scheme (use http://host:port or file:///dir)")),
    }
    let authority = uri.authority().cloned().ok_or_else(|| format!("invalid url {s:?}: missing host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("invalid url {s:?}: credentials in origin urls are not supported"));
    }
    if uri.query().is_some() {
        return Err(format!("invalid url {s:?}: origin urls cannot have a query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(OriginUrl::Http { scheme: Scheme::HTTP, authority, base_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_proxy_urls() {
        let p = UpstreamProxy::parse("socks5://127.0.0.1:1080").unwrap();
        assert_eq!((p.kind, p.addr.as_str(), p.auth), (ProxyKind::Socks5, "127.0.0.1:1080", None));
        let p = UpstreamProxy::parse("http://us%40er:p%3Ass@proxy.internal:3128/").unwrap();
        assert_eq!(p.kind, ProxyKind::HttpConnect);
        assert_eq!(p.addr, "proxy.internal:3128");
        assert_eq!(p.auth, Some(("us@er".to_string(), "p:ss".to_string())));
        assert!(!format!("{p:?}").contains("p:ss"), "Debug hides the password");
        for bad in ["socks4://h:1", "socks5://h", "http://h:1/path", "socks5://:1080", "socks5://u:%zz@h:1", "h:1080"] {
            assert!(UpstreamProxy::parse(bad).is_err(), "{bad}");
        }
        let shown = super::super::schema::ProxyUrl("http://user:secret@h:3128".into());
        assert_eq!(shown.redacted(), "http://user:***@h:3128");
        assert_eq!(super::super::schema::ProxyUrl("socks5://h:1080".into()).redacted(), "socks5://h:1080");
    }

    #[test]
    fn origin_urls() {
        assert!(matches!(parse_origin_url("http://127.0.0.1:8080"), Ok(OriginUrl::Http { ref base_path, .. }) if base_path.is_empty()));
        assert!(matches!(parse_origin_url("http://o.example/base/"), Ok(OriginUrl::Http { ref base_path, .. }) if base_path == "/base"));
        assert!(parse_origin_url("ftp://x").is_err());
        assert!(parse_origin_url("127.0.0.1:80").is_err());
        assert!(parse_origin_url("file://relative").is_err());
        assert!(parse_origin_url("file:///definitely/not/here").is_err());
        assert!(matches!(parse_origin_url("file:///tmp"), Ok(OriginUrl::File { .. })));
    }
}
