//! The client address behind trusted proxies: `Forwarded` (RFC 7239 `for=`) when
//! present, else `X-Forwarded-For`, walked from the right (the hop nearest to us),
//! skipping trusted proxies; the first untrusted address is the client. A header that
//! does not parse, or names an `unknown` / obfuscated hop before an untrusted address is
//! found, is ignored as a whole: the client is the peer. Only called when the peer itself
//! is trusted.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, FORWARDED};
use http::HeaderMap;

use crate::config::access::Cidr;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client address named by the forwarding headers, or `None` when they are absent
/// or malformed. `trusted` decides which hops are skipped.
pub fn client_ip(headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if headers.contains_key(FORWARDED) {
        let hops = hops(headers, &FORWARDED, forwarded_for)?;
        return pick(hops, is_trusted);
    }
    if headers.contains_key(&X_FORWARDED_FOR) {
        let hops = hops(headers, &X_FORWARDED_FOR, |e| parse_node(e.trim()))?;
        return pick(hops, is_trusted);
    }
    None
}

/// Every element of every instance of `name`, left to right, parsed by `parse`
/// (`None` when any header or element is malformed).
fn hops(headers: &HeaderMap, name: &HeaderName, parse: fn(&str) -> Option<Hop>) -> Option<Vec<Hop>> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        let s = v.to_str().ok()?;
        for element in split_unquoted(s, b',') {
            out.push(parse(element)?);
        }
    }
    Some(out)
}

/// One hop of a forwarding chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Addr(IpAddr),
    /// `unknown` or an obfuscated identifier (`_hidden`).
    Hidden,
}

fn pick(hops: Vec<Hop>, is_trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    let mut last = None;
    for hop in hops.into_iter().rev() {
        match hop {
            Hop::Addr(ip) if is_trusted(ip) => last = Some(ip),
            Hop::Addr(ip) => return Some(ip.to_canonical()),
            Hop::Hidden => return None,
        }
    }
    // Every hop is a trusted proxy: the farthest one is the best we know.
    last.map(|ip| ip.to_canonical())
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn forwarded_for(element: &str) -> Option<Hop> {
    let mut found = None;
    for pair in split_unquoted(element, b';') {
        let (k, v) = pair.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(q) => q.strip_suffix('"')?,
                None => v,
            };
            found = Some(parse_node(v)?);
        }
    }
    found
}

/// An RFC 7239 node (`192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::1]:4711`, `unknown`,
/// `_obf`); X-Forwarded-For values are the same minus the quoting (bare IPv6 allowed).
fn parse_node(v: &str) -> Option<Hop> {
    if v.eq_ignore_ascii_case("unknown") || v.starts_with('_') {
        return Some(Hop::Hidden);
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(Hop::Addr(ip));
    }
    if let Some(rest) = v.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return addr.parse::<std::net::Ipv6Addr>().ok().map(|a| Hop::Addr(IpAddr::V6(a)));
    }
    let (addr, port) = v.rsplit_once(':')?;
    if !valid_port(port) {
        return None;
    }
    addr.parse::<std::net::Ipv4Addr>().ok().map(|a| Hop::Addr(IpAddr::V4(a)))
}

/// A port, or an obfuscated one (`_abc`).
fn valid_port(p: &str) -> bool {
    !p.is_empty()
        && (p.parse::<u16>().is_ok() || (p.starts_with('_') && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))))
}

/// Splits on `sep` outside double quotes; empty elements are dropped only at the ends
/// of whitespace (`a, ,b` keeps the middle one, which then fails to parse).
fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim)
}

/// The peer address as the client address, used when the peer is not trusted.
pub fn peer_ip(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn trusted() -> Vec<Cidr> {
        vec![Cidr::parse("10.0.0.0/8").unwrap(), Cidr::parse("2001:db8:ffff::/48").unwrap()]
    }

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn client(pairs: &[(&str, &str)]) -> Option<String> {
        client_ip(&with(pairs), &trusted()).map(|ip| ip.to_string())
    }

    #[test]
    fn xff_walks_from_the_right_past_trusted_hops() {
        assert_eq!(client(&[("x-forwarded-for", "203.0.113.7")]).as_deref(), Some("203.0.113.7"));
        assert_eq!(client(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.2")]).as_deref(), Some("203.0.113.7"));
        assert_eq!(client(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.7, 10.1.1.1")]).as_deref(), Some("203.0.113.7"));
        assert_eq!(client(&[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]).as_deref(), Some("10.0.0.9"), "all trusted: the farthest");
        assert_eq!(client(&[("x-forwarded-for", "203.0.113.7:5555")]).as_deref(), Some("203.0.113.7"));
        assert_eq!(client(&[("x-forwarded-for", "2001:db8::5")]).as_deref(), Some("2001:db8::5"));
        assert_eq!(client(&[("x-forwarded-for", "[2001:db8::5]:80")]).as_deref(), Some("2001:db8::5"));
        assert_eq!(client(&[("x-forwarded-for", "::ffff:203.0.113.7")]).as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in ["", "not-an-ip", "1.1.1.1,,10.0.0.1", "203.0.113.7, garbage", "1.2.3.4:99999", "[::1"] {
            assert_eq!(client(&[("x-forwarded-for", bad)]), None, "{bad:?}");
        }
        assert_eq!(client(&[("x-forwarded-for", "unknown, 10.0.0.1")]), None);
        assert_eq!(client(&[]), None);
    }

    #[test]
    fn forwarded_is_preferred_and_parsed_per_rfc7239() {
        let got = client(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(got.as_deref(), Some("192.0.2.60"));
        assert_eq!(client(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")]).as_deref(), Some("2001:db8:cafe::17"));
        assert_eq!(client(&[("forwarded", "For=198.51.100.17, for=10.0.0.3")]).as_deref(), Some("198.51.100.17"));
        assert_eq!(client(&[("forwarded", "for=192.0.2.43, for=\"[2001:db8:ffff::1]\"")]).as_deref(), Some("192.0.2.43"));
        assert_eq!(client(&[("forwarded", "for=\"192.0.2.43:_hidden\";proto=\"a,b\"")]).as_deref(), Some("192.0.2.43"));
        // Unknown before any untrusted address; malformed; no for= at all.
        for bad in
            ["for=unknown", "for=_gazonk, for=10.0.0.1", "for=", "proto=https", "for=1.2.3.4;for=5.6.7.8", "for=\"1.2.3.4", "by=1.2.3.4;x"]
        {
            assert_eq!(client(&[("forwarded", bad), ("x-forwarded-for", "198.51.100.1")]), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(xff in ".{0,80}", fwd in ".{0,80}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&xff) { h.append(X_FORWARDED_FOR, v); }
            let _ = client_ip(&h, &trusted());
            if let Ok(v) = HeaderValue::from_str(&fwd) { h.append(FORWARDED, v); }
            let _ = client_ip(&h, &trusted());
        }

        #[test]
        fn never_panics_on_structured_input(parts in proptest::collection::vec("(for|by|proto|For)=\"?\\[?[0-9a-f:._\\]]{0,20}\"?", 0..5)) {
            let v = parts.join(";");
            if let Ok(v) = HeaderValue::from_str(&v) {
                let mut h = HeaderMap::new();
                h.append(FORWARDED, v);
                let _ = client_ip(&h, &trusted());
            }
        }
    }
}
