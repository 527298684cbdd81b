//! Header rules of a proxy (RFC 9110 §7.6): hop-by-hop fields removed in both directions
//! (including those named in `Connection`), `Via` added, and `X-Forwarded-*` appended on
//! the way upstream.

use std::net::IpAddr;

use http::header::{HeaderName, CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VIA};
use http::{HeaderMap, HeaderValue, Version};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

const HOP_BY_HOP: [HeaderName; 7] = [CONNECTION, KEEP_ALIVE, PROXY_CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE];

/// Removes hop-by-hop fields: the fixed list and every name listed in `Connection`.
pub fn remove_hop_by_hop(h: &mut HeaderMap) {
    // Most requests carry none of them: one pass over the names instead of seven
    // hashed removals.
    if !h.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if h.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in listed {
            h.remove(n);
        }
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

/// Whether the request's `If-None-Match` names `etag` (weak comparison, RFC 9110
/// §8.8.3.2: a `W/` prefix on either side is ignored) or is `*`, across all its field
/// lines.
pub fn if_none_match(h: &HeaderMap, etag: &[u8]) -> bool {
    fn opaque(t: &[u8]) -> &[u8] {
        let t = t.trim_ascii();
        t.strip_prefix(b"W/").unwrap_or(t)
    }
    let ours = opaque(etag);
    h.get_all(http::header::IF_NONE_MATCH)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii() == b"*" || opaque(t) == ours))
}

fn via_value(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_09 => "0.9 streamgate",
        Version::HTTP_10 => "1.0 streamgate",
        Version::HTTP_2 => "2 streamgate",
        Version::HTTP_3 => "3 streamgate",
        _ => "1.1 streamgate",
    })
}

/// Appends `value` to a comma-list header, or sets it.
fn append_list(h: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    match h.entry(name) {
        http::header::Entry::Vacant(e) => {
            e.insert(value);
        }
        http::header::Entry::Occupied(mut e) => {
            let prev = e.get().as_bytes();
            if prev.is_empty() {
                e.insert(value);
                return;
            }
            let mut joined = Vec::with_capacity(prev.len() + 2 + value.len());
            joined.extend_from_slice(prev);
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                e.insert(v);
            }
        }
    }
}

/// Prepares client request headers for the origin. `host` is the Host the client asked for.
pub fn to_upstream(h: &mut HeaderMap, version: Version, peer: IpAddr, host: Option<HeaderValue>) {
    remove_hop_by_hop(h);
    h.remove(http::header::HOST);
    append_list(h, VIA, via_value(version));
    if let Ok(ip) = HeaderValue::from_str(&peer.to_string()) {
        append_list(h, X_FORWARDED_FOR, ip);
    }
    append_list(h, X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = host {
        append_list(h, X_FORWARDED_HOST, host);
    }
}

/// Prepares origin response headers for the client.
pub fn to_client(h: &mut HeaderMap, upstream_version: Version) {
    remove_hop_by_hop(h);
    append_list(h, VIA, via_value(upstream_version));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-end-to-end", HeaderValue::from_static("1"));
        to_upstream(
            &mut h,
            Version::HTTP_11,
            "10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            Some(HeaderValue::from_static("video.example")),
        );
        assert!(h.get("x-secret-hop").is_none() && h.get(CONNECTION).is_none() && h.get(TE).is_none());
        assert!(h.get("keep-alive").is_none());
        assert_eq!(h["x-end-to-end"], "1");
        assert_eq!(h[VIA], "1.1 streamgate");
        assert_eq!(h[X_FORWARDED_FOR], "10.1.2.3");
        assert_eq!(h[X_FORWARDED_HOST], "video.example");
    }

    #[test]
    fn if_none_match_compares_weakly_across_lines() {
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, b"\"a\""));
        h.append(http::header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", W/\"y\""));
        assert!(if_none_match(&h, b"\"y\"") && if_none_match(&h, b"W/\"x\""));
        assert!(!if_none_match(&h, b"\"z\""));
        h.append(http::header::IF_NONE_MATCH, HeaderValue::from_static(" \"z\" "));
        assert!(if_none_match(&h, b"\"z\""), "second field line");
        h.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, b"\"anything\""));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        to_upstream(&mut h, Version::HTTP_2, IpAddr::from([127, 0, 0, 1]), None);
        assert_eq!(h[X_FORWARDED_FOR], "192.0.2.1, 127.0.0.1");
        assert_eq!(h[VIA], "2 streamgate");
    }
}
