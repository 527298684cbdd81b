//! The request context settings (`server.trusted_proxies`, `server.session_from`,
//! `[geoip]`) and the per-route CORS and policy settings, validated: CIDRs parsed, the
//! geoip database opened, CORS origins checked, Rego policies compiled. Everything that
//! can fail does so here, so `streamgate check` reports it and a reload refuses it.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::HeaderValue;

use super::rego::CompiledPolicy;
use super::schema::{RawConfig, RouteConfig};

/// Global request-context settings, typed.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// `server.trusted_proxies`.
    pub trusted_proxies: Vec<Cidr>,
    /// `server.session_from`, in order.
    pub session_from: Vec<SessionSource>,
    /// `geoip.database`, opened.
    pub geoip: Option<GeoDatabase>,
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN` or a bare address. Host bits must be zero (`10.1.2.3/8` is more
    /// likely a typo than a wish).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => match l.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: prefix length must be 0..={max}")),
            },
        };
        let cidr = Self { net, prefix };
        if cidr.masked(net) != Some(bits(net)) {
            return Err(format!("{s:?} has host bits set (did you mean {}/{prefix}?)", cidr.network()));
        }
        Ok(cidr)
    }

    /// Whether `ip` is inside. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as a
    /// dual-stack listener reports IPv4 peers) match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.masked(ip) == Some(self.masked_net())
    }

    fn masked_net(&self) -> u128 {
        bits(self.net) & self.mask()
    }

    fn mask(&self) -> u128 {
        let width = if self.net.is_ipv4() { 32 } else { 128 };
        let host = width - u32::from(self.prefix);
        let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
        all.checked_shl(host).map_or(0, |m| m & all)
    }

    /// `ip`'s bits under this network's mask, when of the same family.
    fn masked(&self, ip: IpAddr) -> Option<u128> {
        (ip.is_ipv4() == self.net.is_ipv4()).then(|| bits(ip) & self.mask())
    }

    fn network(&self) -> IpAddr {
        let b = self.masked_net();
        match self.net {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(b).unwrap_or(0))),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(b)),
        }
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Where a session id is read (`server.session_from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionSource {
    /// `header:NAME`.
    Header(HeaderName),
    /// `query:NAME` (percent-decoded).
    Query(String),
    /// `cookie:NAME`.
    Cookie(String),
}

impl SessionSource {
    /// Parses `header:NAME`, `query:NAME` or `cookie:NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected \"header:NAME\", \"query:NAME\" or \"cookie:NAME\"");
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        match kind {
            "header" => HeaderName::from_bytes(name.as_bytes()).map(Self::Header).map_err(|_| format!("{name:?} is not a header name")),
            "query" => Ok(Self::Query(name.to_owned())),
            "cookie" if name.bytes().all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b)) => Ok(Self::Cookie(name.to_owned())),
            "cookie" => Err(format!("{name:?} is not a cookie name")),
            _ => Err(bad()),
        }
    }
}

/// An opened MaxMind-format database, shared by every snapshot built from this config.
#[derive(Clone)]
pub struct GeoDatabase {
    /// Where it was read from.
    pub path: PathBuf,
    /// The reader (the whole file in memory).
    pub reader: Arc<maxminddb::Reader<Vec<u8>>>,
}

impl fmt::Debug for GeoDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDatabase").field("path", &self.path).finish_non_exhaustive()
    }
}

/// `routes.NAME.cors`, typed.
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Allowed origins, lower-cased; `None` is `*`.
    pub origins: Option<Vec<String>>,
    /// Extra headers players may read (added to the default set).
    pub expose_headers: Vec<HeaderName>,
    /// Preflight cache lifetime.
    pub max_age: Duration,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
}

/// `routes.NAME.policy`, loaded and compiled.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// Where it came from (for messages).
    pub path: String,
    /// The Rego source.
    pub source: String,
    /// The compiled module.
    pub compiled: CompiledPolicy,
}

/// Validates the global context settings. `config_dir` is the directory of the config
/// file that set `geoip.database` (a relative path is resolved against it).
pub fn validate(raw: &RawConfig, config_dir: Option<&Path>, p: &mut dyn FnMut(&str, String)) -> AccessSettings {
    let mut trusted_proxies = Vec::new();
    for (i, s) in raw.server.trusted_proxies.iter().enumerate() {
        match Cidr::parse(s) {
            Ok(c) => trusted_proxies.push(c),
            Err(e) => p(&format!("server.trusted_proxies.{i}"), e),
        }
    }
    let mut session_from = Vec::new();
    for (i, s) in raw.server.session_from.iter().enumerate() {
        match SessionSource::parse(s) {
            Ok(src) => session_from.push(src),
            Err(e) => p(&format!("server.session_from.{i}"), e),
        }
    }
    let geoip = raw.geoip.database.as_deref().and_then(|db| {
        let path = resolve(config_dir, db);
        match maxminddb::Reader::open_readfile(&path) {
            Ok(reader) => Some(GeoDatabase { path, reader: Arc::new(reader) }),
            Err(e) => {
                p("geoip.database", format!("cannot open {} as a MaxMind database: {e}", path.display()));
                None
            }
        }
    });
    AccessSettings { trusted_proxies, session_from, geoip }
}

/// Validates one route's `cors` and `policy`. `key` is `routes.NAME`; `config_dir` is the
/// directory of the config file that set the policy (relative paths are resolved against
/// it).
pub fn route(
    r: &RouteConfig,
    key: &str,
    config_dir: Option<&Path>,
    p: &mut dyn FnMut(&str, String),
) -> (Option<CorsSettings>, Option<PolicySettings>) {
    let cors = r.cors.as_ref().map(|c| {
        let ck = format!("{key}.cors");
        let any = c.origins.iter().any(|o| o == "*");
        if c.origins.is_empty() {
            p(&format!("{ck}.origins"), "must list at least one origin, or \"*\"".into());
        } else if any && c.origins.len() > 1 {
            p(&format!("{ck}.origins"), "\"*\" must stand alone".into());
        }
        if any && c.credentials {
            p(&format!("{ck}.credentials"), "browsers refuse credentials with origin \"*\": list the origins".into());
        }
        let mut origins = Vec::new();
        for (i, o) in c.origins.iter().enumerate().filter(|(_, o)| *o != "*") {
            match check_origin(o) {
                Ok(()) => origins.push(o.to_ascii_lowercase()),
                Err(e) => p(&format!("{ck}.origins.{i}"), e),
            }
        }
        let mut expose_headers = Vec::new();
        for (i, h) in c.expose_headers.iter().enumerate() {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => expose_headers.push(n),
                Err(_) => p(&format!("{ck}.expose_headers.{i}"), format!("{h:?} is not a header name")),
            }
        }
        let max_age = c.max_age.map_or(Duration::from_secs(600), |d| d.0);
        CorsSettings { origins: (!any).then_some(origins), expose_headers, max_age, credentials: c.credentials }
    });
    let policy = r.policy.as_ref().and_then(|spec| {
        let pk = format!("{key}.policy");
        let Some(path) = spec.strip_prefix("file:") else {
            p(&pk, format!("{spec:?}: expected \"file:PATH\" to a Rego module"));
            return None;
        };
        let full = resolve(config_dir, path);
        let source = match std::fs::read_to_string(&full) {
            Ok(s) => s,
            Err(e) => {
                p(&pk, format!("cannot read {}: {e}", full.display()));
                return None;
            }
        };
        let shown = full.display().to_string();
        match CompiledPolicy::compile(&shown, &source) {
            Ok(compiled) => Some(PolicySettings { path: shown, source, compiled }),
            Err(e) => {
                p(&pk, e.to_string());
                None
            }
        }
    });
    (cors, policy)
}

fn resolve(config_dir: Option<&Path>, path: &str) -> PathBuf {
    match config_dir {
        Some(d) if Path::new(path).is_relative() => d.join(path),
        _ => PathBuf::from(path),
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn check_origin(o: &str) -> Result<(), String> {
    let bad = |why: &str| format!("{o:?} is not an origin ({why}); expected scheme://host[:port] or \"*\"");
    let (scheme, rest) = o.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(bad("bad scheme"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*']) || rest.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(bad("only a host and port may follow the scheme"));
    }
    if HeaderValue::from_str(o).is_err() || rest.parse::<http::uri::Authority>().is_err() {
        return Err(bad("bad host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_match_their_family_and_prefix() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped peers match IPv4 networks");
        assert!(!c.contains(ip("::a00:1")));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")) && !v6.contains(ip("10.0.0.1")));
        let host6 = Cidr::parse("::1").unwrap();
        assert!(host6.contains(ip("::1")) && !host6.contains(ip("::2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("1.2.3.4")) && !all.contains(ip("::2")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(Cidr::parse("172.16.0.0/12").unwrap().contains(ip("172.31.255.255")));
        assert!(!Cidr::parse("172.16.0.0/12").unwrap().contains(ip("172.32.0.0")));
    }

    #[test]
    fn bad_cidrs_say_why() {
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("10.1.0.0/8").unwrap_err().contains("10.0.0.0/8"));
        assert!(Cidr::parse("example.com").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
        assert!(Cidr::parse("::/129").is_err());
    }

    #[test]
    fn session_sources() {
        assert_eq!(SessionSource::parse("header:X-Session").unwrap(), SessionSource::Header(HeaderName::from_static("x-session")));
        assert_eq!(SessionSource::parse("query:sid").unwrap(), SessionSource::Query("sid".into()));
        assert_eq!(SessionSource::parse("cookie:sg_sess").unwrap(), SessionSource::Cookie("sg_sess".into()));
        for bad in ["sid", "header:", "form:x", "header:a b", "cookie:a;b"] {
            assert!(SessionSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins() {
        for ok in ["https://player.example.com", "http://localhost:8080", "capacitor://localhost", "https://[::1]:8443"] {
            assert!(check_origin(ok).is_ok(), "{ok}");
        }
        for bad in ["player.example.com", "https://a.com/", "https://a.com/path", "https://*.a.com", "https://", "null", "https://a b"] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}
