//! The proxy side of manifests: before forwarding, take this request's parameters
//! (rendition filters, propagated query values, the signed-URL token) out of the query;
//! after, decide whether the response is a manifest, read it (bounded in size and time),
//! run it through `streamgate_manifest`, and answer with fresh length and validators.
//! Everything that is not a manifest streams through untouched.

mod query;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use streamgate_manifest::detect::{by_content_type, detect, sniff};
use streamgate_manifest::token::{self, TokenParams};
use streamgate_manifest::{transform, Filter, Format, ManifestError, Mode, Plan};

use crate::body::{full, Body};
use crate::error::ProxyError;
use crate::routing::Route;

pub use query::{prepare, Prepared};

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Checks the signed-URL token of a request on a route with `tokenize.verify`.
pub fn verify_token(route: &Route, path: &str, query: Option<&str>, headers: &http::HeaderMap) -> Result<(), ProxyError> {
    let Some(t) = route.tokenize.as_ref().filter(|t| t.verify) else { return Ok(()) };
    let from_query = query.and_then(|q| query::find(q, &t.param));
    let from_cookie = || crate::params::cookie(headers, &t.param).map(str::to_owned);
    let Some(value) = from_query.or_else(from_cookie) else {
        return Err(ProxyError::Forbidden(format!("a signed-URL token ({}) is required", t.param)));
    };
    token::verify(&t.key, &value, path, now_secs()).map(|_| ()).map_err(|e| ProxyError::Forbidden(format!("signed-URL token refused: {e}")))
}

/// Whether a path names a manifest by its extension (`.m3u8`, `.mpd`, any case): such
/// requests go upstream asking for the whole, uncompressed manifest, and through the
/// manifest cache. Compared as bytes, so any path is safe to ask about.
pub fn is_manifest_path(path: &str) -> bool {
    let p = path.as_bytes();
    let ends = |ext: &[u8]| p.len() >= ext.len() && p[p.len() - ext.len()..].eq_ignore_ascii_case(ext);
    ends(b".m3u8") || ends(b".mpd")
}

/// Whether responses on this route may need manifest processing at all.
pub fn active(route: &Route, prepared: &Prepared) -> bool {
    route.mapper.mode() != Mode::None
        || route.filter.is_some()
        || prepared.filter.is_some()
        || route.tokenize.is_some()
        || !prepared.propagate.is_empty()
}

/// The origin URL of a manifest, as the base for its relative children. File origins get a
/// stable synthetic name so that their children map like any origin's.
pub fn origin_url(upstream_url: &str, upstream_path: &str) -> String {
    if upstream_url.starts_with("file://") {
        format!("{}{upstream_path}", crate::snapshot::FILE_ORIGIN_BASE)
    } else {
        format!("{upstream_url}{upstream_path}")
    }
}

/// What the transformation needs from the request.
pub struct ManifestContext<'a> {
    /// The route.
    pub route: &'a Route,
    /// Request method.
    pub method: &'a Method,
    /// The path the client asked for.
    pub public_path: &'a str,
    /// The path sent upstream (for detection and as the base of relative children).
    pub upstream_path: &'a str,
    /// Parameters taken from the query.
    pub prepared: &'a Prepared,
    /// Deadline for reading the manifest body.
    pub read_timeout: Duration,
    /// The manifest's absolute origin URL (see [`origin_url`]).
    pub origin_url: String,
}

/// Transforms the response when it is a manifest; streams it through otherwise.
pub async fn respond(ctx: &ManifestContext<'_>, resp: Response<Body>) -> Result<Response<Body>, ProxyError> {
    let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ct = ct.as_deref();
    let Some(format) = detect(ct, ctx.upstream_path) else { return Ok(resp) };
    if *ctx.method == Method::HEAD {
        // The rewritten length and validators are only known after a GET.
        let mut resp = resp;
        for name in [header::ETAG, header::CONTENT_LENGTH, header::ACCEPT_RANGES, header::HeaderName::from_static("content-md5")] {
            resp.headers_mut().remove(name);
        }
        return Ok(resp);
    }
    if resp.status() == StatusCode::PARTIAL_CONTENT {
        // Range requests for .m3u8/.mpd paths are sent upstream without Range; a partial
        // manifest elsewhere cannot be rewritten and must not pass with origin URLs.
        return Err(ProxyError::ManifestInvalid("the origin sent part of a manifest (206), which cannot be rewritten".into()));
    }
    if *ctx.method != Method::GET || resp.status() != StatusCode::OK {
        return Ok(resp);
    }
    let generic = by_content_type(ct).is_none();
    refuse_encoded(resp.headers())?;
    let (mut parts, body) = resp.into_parts();
    let bytes = read_manifest(&parts.headers, body, ctx.route.manifest.max_bytes.0, ctx.read_timeout).await?;
    if generic && !sniff(format, &bytes) {
        // A generic type and a manifest extension, but not a manifest: send it as it came.
        return Ok(Response::from_parts(parts, full(bytes)));
    }
    let out = transform_manifest(ctx.route, format, &ctx.origin_url, ctx.public_path, ctx.prepared, &bytes)?;
    let h = &mut parts.headers;
    for name in
        [header::ETAG, header::CONTENT_LENGTH, header::ACCEPT_RANGES, header::CONTENT_RANGE, header::HeaderName::from_static("content-md5")]
    {
        h.remove(name);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    if generic {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(format)));
    }
    Ok(Response::from_parts(parts, full(out)))
}

/// The content type a manifest is served with when the origin sent a generic one.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Hls => "application/vnd.apple.mpegurl",
        Format::Dash => "application/dash+xml",
    }
}

/// A manifest that came compressed cannot be rewritten (`502 manifest_invalid`).
pub fn refuse_encoded(headers: &http::HeaderMap) -> Result<(), ProxyError> {
    match headers.get(header::CONTENT_ENCODING).filter(|v| v.as_bytes() != b"identity") {
        Some(enc) => Err(ProxyError::ManifestInvalid(format!(
            "the origin sent the manifest with Content-Encoding {:?}, which cannot be rewritten",
            String::from_utf8_lossy(enc.as_bytes())
        ))),
        None => Ok(()),
    }
}

/// Reads a whole manifest body: `502 manifest_too_large` past `limit` (by its
/// `Content-Length`, or while reading), `504` past `timeout`.
pub async fn read_manifest(headers: &http::HeaderMap, body: Body, limit: u64, timeout: Duration) -> Result<Bytes, ProxyError> {
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > limit) {
        return Err(ProxyError::ManifestTooLarge(limit));
    }
    read_limited(body, limit, announced.unwrap_or(0), timeout).await
}

/// Reads a whole body, refusing more than `limit` bytes or taking longer than `timeout`.
async fn read_limited(mut body: Body, limit: u64, announced: u64, timeout: Duration) -> Result<Bytes, ProxyError> {
    let read = async move {
        let mut buf = bytes::BytesMut::with_capacity(announced.min(limit) as usize);
        let mut single: Option<Bytes> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ProxyError::UpstreamUnavailable(format!("the manifest body failed midway: {e}")))?;
            if let Ok(data) = frame.into_data() {
                let held = buf.len() + single.as_ref().map_or(0, Bytes::len);
                if (held + data.len()) as u64 > limit {
                    return Err(ProxyError::ManifestTooLarge(limit));
                }
                // A body that arrives in one piece is used as it is, without a copy.
                if buf.is_empty() && single.is_none() && data.len() as u64 == announced {
                    single = Some(data);
                    continue;
                }
                if let Some(first) = single.take() {
                    buf.extend_from_slice(&first);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(single.unwrap_or_else(|| buf.freeze()))
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ProxyError::UpstreamTimeout(format!("the origin did not send the whole manifest within {timeout:?}"))),
        Ok(r) => r,
    }
}

/// Runs one manifest through a route's transformation: what the proxy does to a response
/// body, and what `streamgate rewrite` does to stdin.
pub fn transform_manifest(
    route: &Route,
    format: Format,
    origin_url: &str,
    public_path: &str,
    prepared: &Prepared,
    input: &[u8],
) -> Result<Vec<u8>, ProxyError> {
    let mut extra = String::new();
    if let Some(t) = &route.tokenize {
        let acl = token_acl(route, public_path);
        let now = now_secs();
        let params = TokenParams { start: Some(now), ..TokenParams::acl(acl, t.ttl) };
        let tok = token::generate(&t.key, &t.param, &params, now).map_err(|e| ProxyError::Internal(format!("token: {e}")))?;
        extra.push_str(&tok);
    }
    for pair in &prepared.propagate {
        if !extra.is_empty() {
            extra.push('&');
        }
        extra.push_str(pair);
    }
    let merged: Option<Filter> = match (&route.filter, &prepared.filter) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(f.clone()),
        (Some(a), Some(b)) => Some(query::merge(a, b)),
    };
    let plan = Plan { mapper: &route.mapper, origin_url, public_path, extra_query: &extra, filter: merged.as_ref() };
    transform(format, input, &plan).map_err(|e| match e {
        ManifestError::FilterRemovedAll(_) => ProxyError::BadRequest(e.to_string()),
        other => ProxyError::ManifestInvalid(other.to_string()),
    })
}

/// The ACL of tokens minted for a manifest's children: the manifest's directory, as the
/// client will request it (on the proxy, or on the CDN in `cdn` mode).
fn token_acl(route: &Route, public_path: &str) -> String {
    let dir = match public_path.rfind('/') {
        Some(i) => &public_path[..=i],
        None => "/",
    };
    if route.mapper.mode() == Mode::Cdn {
        let base = route.manifest.cdn_base.as_deref().unwrap_or("");
        let base_path = streamgate_manifest::url::split(base).path.trim_end_matches('/').to_owned();
        let below = dir.get(route.prefix.len()..).unwrap_or("").trim_start_matches('/');
        format!("{base_path}/{below}*")
    } else {
        format!("{dir}*")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn manifest_paths_by_extension() {
        for yes in ["/a/live.m3u8", "/A/X.M3U8", "/dash/x.mpd", "/é/x.Mpd"] {
            assert!(super::is_manifest_path(yes), "{yes}");
        }
        // Multi-byte characters where the extension would start: no slicing panic.
        for no in ["/a/seg.ts", "/m3u8", "/x.mpd/", "", "é€", "/aé€x"] {
            assert!(!super::is_manifest_path(no), "{no}");
        }
    }
}
