//! Stage 1: the request context: client address (from `Forwarded` / `X-Forwarded-For`
//! only when the peer is a trusted proxy), session id, device class, country/region.
//! Built once per request before routing; later stages and the access log read it.
//! The request id is made by `app.rs` (it is needed even when no route matches).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::USER_AGENT;

use super::{device, forwarded, Head, RequestContext};
use crate::config::access::{AccessSettings, Cidr, SessionSource};

/// Longest session id taken from a request; longer values are ignored (they are logged
/// and handed to policies, so they stay small and printable).
const MAX_SESSION_ID: usize = 256;

/// Builds each request's context from the global settings (compiled per snapshot).
pub struct ContextBuilder {
    trusted: Vec<Cidr>,
    sessions: Vec<SessionSource>,
    geoip: Option<Arc<maxminddb::Reader<Vec<u8>>>>,
    /// Whether anything reads the device class (the access log, or a policy that reads
    /// `input.client`): the User-Agent is only classified then.
    device: bool,
}

impl ContextBuilder {
    /// Compiles the settings (CIDRs, session sources, the geoip database).
    pub fn new(settings: &AccessSettings) -> Self {
        Self {
            trusted: settings.trusted_proxies.clone(),
            sessions: settings.session_from.clone(),
            geoip: settings.geoip.as_ref().map(|g| g.reader.clone()),
            device: true,
        }
    }

    /// Skips the User-Agent classification when nothing will read it.
    pub fn with_device(mut self, needed: bool) -> Self {
        self.device = needed;
        self
    }

    /// The context of one request.
    pub fn build(&self, head: &Head<'_>, peer: SocketAddr) -> RequestContext {
        let peer_ip = forwarded::peer_ip(peer);
        let client_ip = if !self.trusted.is_empty() && self.trusted.iter().any(|c| c.contains(peer_ip)) {
            forwarded::client_ip(head.headers, &self.trusted).unwrap_or(peer_ip)
        } else {
            peer_ip
        };
        let mut ctx = RequestContext::new(client_ip);
        ctx.session_id = self.sessions.iter().find_map(|s| session_id(s, head)).map(str::to_owned);
        if self.device {
            ctx.device = head.headers.get(USER_AGENT).map(|ua| device::classify(&String::from_utf8_lossy(ua.as_bytes())));
        }
        if let Some(db) = &self.geoip {
            (ctx.country, ctx.region) = geo(db, client_ip);
        }
        ctx
    }
}

fn session_id<'a>(source: &SessionSource, head: &Head<'a>) -> Option<&'a str> {
    let v = match source {
        SessionSource::Header(name) => head.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim),
        SessionSource::Query(name) => head.uri.query().and_then(|q| crate::params::query(q, name)),
        SessionSource::Cookie(name) => crate::params::cookie(head.headers, name),
    }?;
    let ok = !v.is_empty() && v.len() <= MAX_SESSION_ID && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    ok.then_some(v)
}

/// The parts of a GeoIP2 / GeoLite2 Country or City record we read.
#[derive(serde::Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
}

#[derive(serde::Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// Country (ISO 3166-1 alpha-2) and region (ISO 3166-2, `US-CA`: country, dash, the first
/// subdivision's code) of an address; none when the database does not know it.
fn geo(db: &maxminddb::Reader<Vec<u8>>, ip: std::net::IpAddr) -> (Option<String>, Option<String>) {
    let Ok(found) = db.lookup(ip) else { return (None, None) };
    let Ok(Some(rec)) = found.decode::<GeoRecord<'_>>() else { return (None, None) };
    let country = rec.country.and_then(|c| c.iso_code).filter(|c| c.len() <= 3).map(str::to_owned);
    let sub = rec.subdivisions.as_ref().and_then(|s| s.first()).and_then(|s| s.iso_code).filter(|c| c.len() <= 3);
    let region = match (&country, sub) {
        (Some(c), Some(s)) => Some(format!("{c}-{s}")),
        _ => None,
    };
    (country, region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method, Uri};

    fn build(settings: &AccessSettings, uri: &str, headers: &[(&str, &str)], peer: &str) -> RequestContext {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let uri: Uri = uri.parse().unwrap();
        ContextBuilder::new(settings).build(&Head { method: &Method::GET, uri: &uri, headers: &h }, peer.parse().unwrap())
    }

    fn settings() -> AccessSettings {
        AccessSettings {
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            session_from: ["header:x-session", "query:sid", "cookie:sg_s"].iter().map(|s| SessionSource::parse(s).unwrap()).collect(),
            geoip: None,
        }
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_peers() {
        let s = settings();
        let xff = [("x-forwarded-for", "203.0.113.7")];
        assert_eq!(build(&s, "/", &xff, "10.1.1.1:5000").client_ip.to_string(), "203.0.113.7");
        assert_eq!(build(&s, "/", &xff, "192.0.2.1:5000").client_ip.to_string(), "192.0.2.1");
        assert_eq!(build(&s, "/", &xff, "[::ffff:10.1.1.1]:5000").client_ip.to_string(), "203.0.113.7");
        assert_eq!(build(&s, "/", &[("x-forwarded-for", "bogus")], "10.1.1.1:5000").client_ip.to_string(), "10.1.1.1");
    }

    #[test]
    fn session_sources_in_order() {
        let s = settings();
        assert_eq!(build(&s, "/a?sid=q1", &[("x-session", "h1")], "1.1.1.1:1").session_id.as_deref(), Some("h1"));
        assert_eq!(build(&s, "/a?x=1&sid=q1", &[("cookie", "sg_s=c1")], "1.1.1.1:1").session_id.as_deref(), Some("q1"));
        assert_eq!(build(&s, "/a", &[("cookie", "a=b; sg_s=\"c1\"")], "1.1.1.1:1").session_id.as_deref(), Some("c1"));
        assert_eq!(build(&s, "/a?sid=", &[("x-session", "has space")], "1.1.1.1:1").session_id, None);
    }

    #[test]
    fn device_only_with_a_user_agent() {
        let s = AccessSettings::default();
        assert_eq!(build(&s, "/", &[], "1.1.1.1:1").device, None);
        assert_eq!(build(&s, "/", &[("user-agent", "Roku/DVP-12.5")], "1.1.1.1:1").device, Some("tv"));
    }

    /// Per-request cost of the context (trusted XFF, session cookie, User-Agent), printed
    /// (run with `--nocapture`); debug builds are ~10x slower than release.
    #[test]
    fn build_cost() {
        let s = settings();
        let headers = [
            ("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.0.0.2"),
            ("cookie", "a=1; sg_s=abcdef0123456789"),
            (
                "user-agent",
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            ),
        ];
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let uri: Uri = "/vod/a/master.m3u8?x=1".parse().unwrap();
        let b = ContextBuilder::new(&s);
        let peer = "10.1.1.1:5000".parse().unwrap();
        let n = 20_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let ctx = b.build(&Head { method: &Method::GET, uri: &uri, headers: &h }, peer);
            assert_eq!(ctx.device, Some("mobile"));
        }
        eprintln!("context build: {:?} per request", t.elapsed() / n);
        let ua = headers[2].1;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(crate::layers::device::classify(std::hint::black_box(ua)));
        }
        eprintln!("device class: {:?} per request", t.elapsed() / n);
    }
}
