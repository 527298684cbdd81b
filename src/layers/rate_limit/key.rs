//! Which budget a request draws from: the value of the block's `key` in this request,
//! or the client IP when the request has no such claim, header or query parameter.
//!
//! Falling back to the IP (instead of refusing, or of one shared "unknown" budget) keeps
//! the limit in force for requests that omit the key without letting one client that
//! omits it exhaust the budget of every other such client.

use std::borrow::Cow;
use std::net::IpAddr;

use percent_encoding::percent_decode_str;

use super::super::{Head, RequestContext};
use crate::config::limits::KeySource;

/// The budget a request belongs to, borrowed from the request where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetKey<'a> {
    /// The client address (`key = "ip"`, or the fallback).
    Ip(IpAddr),
    /// A claim, header or query value (raw bytes; hashed before it is stored).
    Value {
        /// `b'c'` claim, `b'h'` header, `b'q'` query: keeps equal values of different
        /// sources apart.
        kind: u8,
        /// The value.
        value: Cow<'a, [u8]>,
    },
}

impl BudgetKey<'_> {
    /// The short name of the source, for the Redis key: `ip`, `c`, `h` or `q`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            BudgetKey::Ip(_) => "ip",
            BudgetKey::Value { kind: b'c', .. } => "c",
            BudgetKey::Value { kind: b'h', .. } => "h",
            BudgetKey::Value { .. } => "q",
        }
    }
}

/// The key of one request.
pub fn of<'a>(source: &KeySource, head: &Head<'a>, ctx: &'a RequestContext) -> BudgetKey<'a> {
    let value: Option<(u8, Cow<'a, [u8]>)> = match source {
        KeySource::Ip => None,
        KeySource::Claim(name) => ctx.claims.as_deref().and_then(|c| c.get(name)).and_then(claim_bytes).map(|v| (b'c', v)),
        KeySource::Header(name) => head.headers.get(name).map(|v| (b'h', Cow::Borrowed(v.as_bytes()))),
        // Percent-decoded, so `a%62c` and `abc` share a budget.
        KeySource::Query(name) => {
            head.uri.query().and_then(|q| crate::params::query(q, name)).map(|v| (b'q', Cow::from(percent_decode_str(v))))
        }
    };
    match value {
        Some((kind, value)) if !value.is_empty() => BudgetKey::Value { kind, value },
        _ => BudgetKey::Ip(ctx.client_ip),
    }
}

/// A claim as bytes: strings as they are, numbers and booleans as JSON text; `null`
/// counts as missing. Arrays and objects use their JSON text (stable for one token).
fn claim_bytes<'a>(v: &'a serde_json::Value) -> Option<Cow<'a, [u8]>> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_bytes())),
        other => Some(Cow::Owned(other.to_string().into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, Uri};
    use std::sync::Arc;

    fn key_of(source: &KeySource, uri: &str, headers: &[(&'static str, &str)], claims: Option<serde_json::Value>) -> String {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        let head = Head { method: &Method::GET, uri: &uri, headers: &h };
        let mut ctx = RequestContext::new("10.1.2.3".parse().unwrap());
        ctx.claims = claims.and_then(|c| c.as_object().cloned()).map(Arc::new);
        match of(source, &head, &ctx) {
            BudgetKey::Ip(ip) => format!("ip {ip}"),
            BudgetKey::Value { kind, value } => format!("{} {}", kind as char, String::from_utf8_lossy(&value)),
        }
    }

    #[test]
    fn each_source_reads_its_value() {
        let h = KeySource::Header(http::HeaderName::from_static("x-viewer"));
        assert_eq!(key_of(&h, "/a", &[("x-viewer", "v1")], None), "h v1");
        let q = KeySource::Query("session".into());
        assert_eq!(key_of(&q, "/a?x=1&session=a%62c&session=zzz", &[], None), "q abc");
        let c = KeySource::Claim("sub".into());
        assert_eq!(key_of(&c, "/a", &[], Some(serde_json::json!({"sub": "alice"}))), "c alice");
        assert_eq!(key_of(&c, "/a", &[], Some(serde_json::json!({"sub": 42}))), "c 42");
        assert_eq!(key_of(&KeySource::Ip, "/a?session=x", &[("x-viewer", "v")], None), "ip 10.1.2.3");
    }

    #[test]
    fn a_missing_or_empty_key_falls_back_to_the_client_ip() {
        let h = KeySource::Header(http::HeaderName::from_static("x-viewer"));
        assert_eq!(key_of(&h, "/a", &[], None), "ip 10.1.2.3");
        assert_eq!(key_of(&h, "/a", &[("x-viewer", "")], None), "ip 10.1.2.3");
        let q = KeySource::Query("session".into());
        assert_eq!(key_of(&q, "/a?sessionx=1&session", &[], None), "ip 10.1.2.3");
        let c = KeySource::Claim("sub".into());
        assert_eq!(key_of(&c, "/a", &[], None), "ip 10.1.2.3");
        assert_eq!(key_of(&c, "/a", &[], Some(serde_json::json!({"sub": null}))), "ip 10.1.2.3");
    }
}
