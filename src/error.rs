//! `ProxyError`: everything the proxy itself refuses or fails at, and the one place that
//! renders it as `application/problem+json` (RFC 9457). Rendering never logs; the access
//! log reads the error code from the response extensions.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, Body};

/// An error the proxy produces itself. Each variant's doc names its status and `code`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProxyError {
    /// 404 `route_not_found`: no route's prefix (and host) matches.
    #[error("no route matches {0}")]
    RouteNotFound(String),
    /// 400 `bad_request`: a request we will not forward.
    #[error("{0}")]
    BadRequest(String),
    /// 431 `header_too_large`.
    #[error("request head of {size} bytes exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// Bytes in the request head.
        size: usize,
        /// `server.max_header_bytes`.
        limit: usize,
    },
    /// 502 `upstream_unavailable`: connect refused, every url down, reset before the
    /// response head, or an origin that does not speak HTTP.
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// 504 `upstream_timeout`: no response head within `response_timeout` (or no
    /// connection within `connect_timeout`).
    #[error("{0}")]
    UpstreamTimeout(String),
    /// 404 `not_found`: a file origin has no such file.
    #[error("no such file")]
    NotFound,
    /// 405 `method_not_allowed`, with the methods that are (file origins: GET and HEAD).
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(&'static str),
    /// 416 `range_not_satisfiable`, with `Content-Range: bytes */LEN`.
    #[error("requested range is not satisfiable for a {0}-byte file")]
    RangeNotSatisfiable(u64),
    /// 401 `unauthorized`: admin endpoints that need the admin token.
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// 403 `forbidden`: a signed-URL token is missing, expired or wrong, or a policy
    /// denied the request.
    #[error("{0}")]
    Forbidden(String),
    /// 401 `unauthorized` for viewers: no valid credentials for the route's `auth` block.
    /// `challenge` is the whole `WWW-Authenticate` value (RFC 6750), e.g.
    /// `Bearer realm="streamgate", error="invalid_token"`. Never carries the token.
    #[error("{detail}")]
    Unauthenticated {
        /// The `WWW-Authenticate` header value.
        challenge: String,
        /// What was wrong, for the problem detail.
        detail: String,
    },
    /// 429 `rate_limited`, with `Retry-After` and the IETF `RateLimit-Policy` /
    /// `RateLimit` headers.
    #[error("{detail}")]
    RateLimited {
        /// Seconds until a request would be allowed (`Retry-After`).
        retry_after: u64,
        /// `RateLimit-Policy` value, e.g. `"per_viewer";q=40;w=2`.
        policy: String,
        /// `RateLimit` value, e.g. `"per_viewer";r=0;t=1`.
        state: String,
        /// What was exceeded.
        detail: String,
    },
    /// 503 `backend_unavailable`: a backend streamgate needs to decide (introspection
    /// endpoint, Redis with `on_backend_error = "deny"`) cannot be reached.
    #[error("{0}")]
    BackendUnavailable(String),
    /// 502 `manifest_invalid`: the origin's manifest cannot be parsed; never half-served.
    #[error("{0}")]
    ManifestInvalid(String),
    /// 502 `manifest_too_large`: the origin's manifest exceeds `manifest.max_bytes`.
    #[error("the origin's manifest exceeds the limit of {0} bytes")]
    ManifestTooLarge(u64),
    /// 500 `internal`: a bug or an I/O failure on our side.
    #[error("{0}")]
    Internal(String),
}

/// The stable `code` of a problem, also recorded in the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

impl ProxyError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::RouteNotFound(_) | ProxyError::NotFound => StatusCode::NOT_FOUND,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ProxyError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::BackendUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::ManifestInvalid(_) | ProxyError::ManifestTooLarge(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::RouteNotFound(_) => "route_not_found",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::HeaderTooLarge { .. } => "header_too_large",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::NotFound => "not_found",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::RangeNotSatisfiable(_) => "range_not_satisfiable",
            ProxyError::Unauthorized => "unauthorized",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::Unauthenticated { .. } => "unauthorized",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::BackendUnavailable(_) => "backend_unavailable",
            ProxyError::ManifestInvalid(_) => "manifest_invalid",
            ProxyError::ManifestTooLarge(_) => "manifest_too_large",
            ProxyError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ProxyError::RouteNotFound(_) => "No route for this request",
            ProxyError::BadRequest(_) => "Bad request",
            ProxyError::HeaderTooLarge { .. } => "Request header fields too large",
            ProxyError::UpstreamUnavailable(_) => "Upstream unavailable",
            ProxyError::UpstreamTimeout(_) => "Upstream timeout",
            ProxyError::NotFound => "Not found",
            ProxyError::MethodNotAllowed(_) => "Method not allowed",
            ProxyError::RangeNotSatisfiable(_) => "Range not satisfiable",
            ProxyError::Unauthorized => "Unauthorized",
            ProxyError::Forbidden(_) => "Forbidden",
            ProxyError::Unauthenticated { .. } => "Unauthorized",
            ProxyError::RateLimited { .. } => "Too many requests",
            ProxyError::BackendUnavailable(_) => "Backend unavailable",
            ProxyError::ManifestInvalid(_) => "Invalid manifest from origin",
            ProxyError::ManifestTooLarge(_) => "Manifest too large",
            ProxyError::Internal(_) => "Internal error",
        }
    }

    /// Renders the problem+json response. `request_id` goes into the body; the code into
    /// the response extensions for the access log.
    pub fn into_response(self, request_id: &str, head_only: bool) -> Response<Body> {
        let status = self.status();
        let body = serde_json::json!({
            "type": format!("urn:streamgate:problem:{}", self.code()),
            "title": self.title(),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
            "request_id": request_id,
        });
        let bytes = Bytes::from(body.to_string());
        let len = bytes.len();
        let mut resp = Response::new(if head_only { crate::body::empty() } else { full(bytes) });
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            ProxyError::RangeNotSatisfiable(size) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
            }
            ProxyError::MethodNotAllowed(allow) => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ProxyError::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"streamgate-admin\""));
            }
            ProxyError::Unauthenticated { challenge, .. } => {
                let v = HeaderValue::from_str(challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"streamgate\""));
                h.insert(header::WWW_AUTHENTICATE, v);
            }
            ProxyError::RateLimited { retry_after, policy, state, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                    if let Ok(v) = HeaderValue::from_str(value) {
                        h.insert(header::HeaderName::from_static(name), v);
                    }
                }
            }
            _ => {}
        }
        resp.extensions_mut().insert(ErrorCode(self.code()));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_json_has_every_field() {
        let resp = ProxyError::RouteNotFound("/x".into()).into_response("abc", false);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["code"], "route_not_found");
        assert_eq!(v["status"], 404);
        assert_eq!(v["request_id"], "abc");
        assert!(v["type"].is_string() && v["title"].is_string() && v["detail"].is_string());
    }
}
