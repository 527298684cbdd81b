//! Stage 2: CORS for browser players. A preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) on a route with `cors` is answered here, before auth
//! (browsers send no credentials on a preflight); every other response of the route,
//! errors included, gets the CORS headers, so a player can read a 401 or 429 too.
//!
//! A preflight from an origin that is not allowed is answered `204` without any CORS
//! header: the browser then refuses the real request, the origin server never sees it,
//! and the list of allowed origins is not disclosed.

use http::header::{
    HeaderName, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::Head;
use crate::body::{empty, Body};
use crate::config::access::CorsSettings;

/// Response headers players read, always exposed.
const DEFAULT_EXPOSE: &[&str] = &[
    "content-length",
    "content-range",
    "accept-ranges",
    "x-request-id",
    "x-cache",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "www-authenticate",
    "age",
    "date",
];

/// Methods a player uses on a streaming route.
const METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");

/// A route's CORS rules.
pub struct Cors {
    /// Allowed origins, lower-cased; `None` is `*`.
    origins: Option<Vec<String>>,
    credentials: bool,
    expose: HeaderValue,
    max_age: HeaderValue,
}

impl Cors {
    /// Compiles `routes.X.cors`.
    pub fn new(settings: &CorsSettings) -> Self {
        let mut expose: Vec<String> = DEFAULT_EXPOSE.iter().map(|s| (*s).to_owned()).collect();
        for h in &settings.expose_headers {
            if !expose.iter().any(|e| e == h.as_str()) {
                expose.push(h.as_str().to_owned());
            }
        }
        Self {
            origins: settings.origins.clone(),
            credentials: settings.credentials,
            // Header names only: always a valid value.
            expose: HeaderValue::from_str(&expose.join(", ")).unwrap_or(HeaderValue::from_static("content-length")),
            max_age: HeaderValue::from(settings.max_age.as_secs()),
        }
    }

    /// The answer to a preflight request (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or `None` for any other request.
    pub fn preflight(&self, head: &Head<'_>) -> Option<Response<Body>> {
        if head.method != Method::OPTIONS || !head.headers.contains_key(ORIGIN) {
            return None;
        }
        let requested = head.headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        let allowed = self.allowed(head.headers.get(ORIGIN)).is_some();
        let method_ok = matches!(requested.as_bytes(), b"GET" | b"HEAD" | b"OPTIONS");
        if allowed && method_ok {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, METHODS);
            // Players ask for Range, Authorization and the like: allow what was asked
            // when it is a plain list of header names.
            if let Some(req) = head.headers.get(ACCESS_CONTROL_REQUEST_HEADERS).filter(|v| header_list(v)) {
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, req.clone());
            }
            h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        }
        h.append(VARY, HeaderValue::from_static("Access-Control-Request-Method, Access-Control-Request-Headers"));
        Some(resp)
    }

    /// Adds the CORS response headers for a request whose `Origin` header was
    /// `request_origin` (to every response of the route, errors included). Replaces any
    /// CORS headers the origin server sent: the route's rules are the ones that hold.
    pub fn apply(&self, request_origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let preflight = response.contains_key(ACCESS_CONTROL_ALLOW_METHODS);
        for stale in [&ACCESS_CONTROL_ALLOW_ORIGIN, &ACCESS_CONTROL_ALLOW_CREDENTIALS, &ACCESS_CONTROL_EXPOSE_HEADERS] {
            response.remove(stale);
        }
        if self.origins.is_some() {
            // The answer depends on Origin: shared caches must key on it.
            response.append(VARY, HeaderValue::from_static("Origin"));
        }
        let Some(allow) = self.allowed(request_origin) else { return };
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if self.credentials {
            response.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if !preflight {
            response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, self.expose.clone());
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request origin, if it is allowed.
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        match &self.origins {
            None => Some(HeaderValue::from_static("*")),
            Some(list) => {
                let o = origin.to_str().ok()?;
                list.iter().any(|a| a.eq_ignore_ascii_case(o)).then(|| origin.clone())
            }
        }
    }
}

/// `Access-Control-Request-Headers`: comma-separated header names.
fn header_list(v: &HeaderValue) -> bool {
    v.to_str().is_ok_and(|s| s.split(',').map(str::trim).all(|n| n.is_empty() || HeaderName::from_bytes(n.as_bytes()).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cors(origins: Option<&[&str]>, credentials: bool) -> Cors {
        Cors::new(&CorsSettings {
            origins: origins.map(|o| o.iter().map(|s| s.to_string()).collect()),
            expose_headers: vec![HeaderName::from_static("x-custom")],
            max_age: Duration::from_secs(600),
            credentials,
        })
    }

    fn preflight(c: &Cors, origin: &str, method: &str) -> Option<Response<Body>> {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_str(method).unwrap());
        h.insert(ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("range, authorization"));
        let uri = "/vod/a.m3u8".parse().unwrap();
        let mut r = c.preflight(&Head { method: &Method::OPTIONS, uri: &uri, headers: &h })?;
        c.apply(h.get(ORIGIN), r.headers_mut());
        Some(r)
    }

    #[test]
    fn preflight_from_an_allowed_origin() {
        let c = cors(Some(&["https://player.example.com"]), true);
        let r = preflight(&c, "https://player.example.com", "GET").unwrap();
        assert_eq!(r.status(), 204);
        let h = r.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://player.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "range, authorization");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert!(h.get_all(VARY).iter().any(|v| v == "Origin"));
        assert!(!h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS));
    }

    #[test]
    fn preflight_from_another_origin_gets_no_cors_headers() {
        let c = cors(Some(&["https://player.example.com"]), false);
        let r = preflight(&c, "https://evil.example.net", "GET").unwrap();
        assert_eq!(r.status(), 204);
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_METHODS));
        let r = preflight(&c, "https://player.example.com", "DELETE").unwrap();
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    }

    #[test]
    fn simple_responses_get_origin_and_exposed_headers() {
        let any = cors(None, false);
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("https://stale.example"));
        any.apply(Some(&HeaderValue::from_static("https://x.example")), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!h.contains_key(VARY), "no Vary for *");
        let expose = h[ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap();
        for name in ["content-range", "x-request-id", "retry-after", "ratelimit-policy", "www-authenticate", "x-custom"] {
            assert!(expose.split(", ").any(|e| e == name), "{name} in {expose}");
        }
        let listed = cors(Some(&["https://a.example"]), false);
        let mut h = HeaderMap::new();
        listed.apply(None, &mut h);
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(h[VARY], "Origin", "Vary even without Origin, for shared caches");
        let mut h = HeaderMap::new();
        listed.apply(Some(&HeaderValue::from_static("https://A.example")), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://A.example");
    }

    #[test]
    fn not_a_preflight() {
        let c = cors(None, false);
        let uri = "/".parse().unwrap();
        let mut h = HeaderMap::new();
        assert!(c.preflight(&Head { method: &Method::OPTIONS, uri: &uri, headers: &h }).is_none());
        h.insert(ORIGIN, HeaderValue::from_static("https://a.example"));
        assert!(c.preflight(&Head { method: &Method::OPTIONS, uri: &uri, headers: &h }).is_none());
        h.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("GET"));
        assert!(c.preflight(&Head { method: &Method::GET, uri: &uri, headers: &h }).is_none());
    }
}
