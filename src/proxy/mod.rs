//! The proxy phases after routing: map the request onto the route's origin, send it,
//! and turn the origin's answer into the client's response head.

pub mod headers;

use std::net::IpAddr;

use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;

use crate::body::Body;
use crate::error::ProxyError;
use crate::routing::Route;
use crate::upstream::{Outbound, Upstream};

/// Refuses paths that could escape a prefix once normalized: `.` and `..` segments,
/// literal or percent-encoded. Routing (and later, authorization) sees the path as the
/// origin will, so `/public/../private/x` can never pass as `/public/`.
pub fn check_path(path: &str) -> Result<(), ProxyError> {
    if !path.starts_with('/') {
        return Err(ProxyError::BadRequest("request target must be an absolute path".into()));
    }
    for seg in path.split('/') {
        if !seg.is_empty() && seg.len() <= 6 && is_dot_segment(seg.as_bytes()) {
            return Err(ProxyError::BadRequest("dot segments are not allowed in paths".into()));
        }
    }
    Ok(())
}

/// `.` or `..`, with any dot written as `%2e`/`%2E`.
fn is_dot_segment(mut s: &[u8]) -> bool {
    let mut dots = 0;
    while !s.is_empty() {
        if s[0] == b'.' {
            s = &s[1..];
        } else if s.len() >= 3 && s[0] == b'%' && s[1] == b'2' && (s[2] | 0x20) == b'e' {
            s = &s[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    (1..=2).contains(&dots)
}

/// Sends the request to the route's origin, carrying the request id so that origin logs
/// can be joined with ours. `query` replaces the client's query when streamgate took its
/// own parameters out of it; `manifests` says whether manifest responses will be
/// rewritten (then they are asked for uncompressed). Returns the path sent upstream too.
pub async fn forward<B>(
    route: &Route,
    req: Request<B>,
    peer: IpAddr,
    request_id: &HeaderValue,
    query: Option<Option<String>>,
    manifests: bool,
    response_timeout: Option<std::time::Duration>,
) -> Result<(Upstream, String), ProxyError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    let (parts, body) = req.into_parts();
    // X-Forwarded-Host carries the host as the client wrote it, port included.
    let host = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(http::header::HOST).cloned(),
    };
    let path = parts.uri.path();
    let upstream_path = route.upstream_path(path);
    let path_len = upstream_path.len();
    let upstream_path = upstream_path.into_owned();
    let q = match &query {
        Some(replaced) => replaced.as_deref(),
        None => parts.uri.query(),
    };
    let path_and_query = match q {
        Some(q) => format!("{upstream_path}?{q}"),
        None => upstream_path.clone(),
    };
    let mut headers = parts.headers;
    headers::to_upstream(&mut headers, parts.version, peer, host);
    headers.insert(crate::app::X_REQUEST_ID, request_id.clone());
    let manifest_path = manifests && crate::stream::is_manifest_path(&upstream_path);
    if manifest_path {
        // Manifests are rewritten whole: they must arrive uncompressed and complete (a
        // player's Range request gets the whole rewritten manifest with 200), and the
        // client's validators describe our output, not the origin's.
        for h in [
            http::header::ACCEPT_ENCODING,
            http::header::RANGE,
            http::header::IF_RANGE,
            http::header::IF_NONE_MATCH,
            http::header::IF_MODIFIED_SINCE,
        ] {
            headers.remove(h);
        }
    }
    let body_empty = http_body::Body::is_end_stream(&body);
    let out = Outbound {
        method: parts.method,
        path_and_query,
        path_len,
        headers,
        body: body.map_err(Into::into).boxed_unsync(),
        body_empty,
        response_timeout,
        whole: manifest_path.then_some(route.manifest.max_bytes.0),
    };
    route.origin.send(out).await.map(|up| (up, upstream_path))
}

/// Turns the origin's response into the client's: hop-by-hop fields out, `Via` and the
/// request id in.
pub fn respond(mut resp: Response<Body>, request_id: &HeaderValue) -> Response<Body> {
    let version = resp.version();
    headers::to_client(resp.headers_mut(), version);
    resp.headers_mut().insert(crate::app::X_REQUEST_ID, request_id.clone());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused() {
        for bad in ["/a/../b", "/a/%2e%2e/b", "/a/.%2E/b", "/./a", "/a/..", "/a/%2e/b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for ok in ["/a/b.m3u8", "/a/..b/c", "/a/.hidden", "/", "/a//b"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
    }
}
