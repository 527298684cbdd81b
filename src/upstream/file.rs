//! File origins (`file:///dir`): GET and HEAD of files below a root directory, with
//! byte ranges, validators and conditional requests, streamed in chunks. The path is
//! decoded segment by segment and refused when it could leave the root (dot segments,
//! encoded slashes or backslashes, NUL); symlinks are followed only if they stay inside.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::body::{empty, Body, BoxError};
use crate::error::ProxyError;

const CHUNK: usize = 128 * 1024;

/// Maps a request path (still percent-encoded) to a file path below `root`, or refuses.
pub fn resolve_path(root: &Path, raw_path: &str) -> Result<PathBuf, ProxyError> {
    if raw_path.contains('\\') {
        return Err(ProxyError::BadRequest("backslashes are not allowed in paths".into()));
    }
    let mut out = root.to_path_buf();
    let mut any = false;
    for seg in raw_path.split('/') {
        if seg.is_empty() {
            continue;
        }
        let decoded = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| ProxyError::BadRequest("path is not valid UTF-8".into()))?;
        if decoded == "." || decoded == ".." {
            return Err(ProxyError::BadRequest("dot segments are not allowed in paths".into()));
        }
        if decoded.contains(['/', '\\', '\0']) {
            return Err(ProxyError::BadRequest("encoded slash, backslash or NUL in path".into()));
        }
        out.push(decoded.as_ref());
        any = true;
    }
    if !any {
        return Err(ProxyError::NotFound);
    }
    Ok(out)
}

/// The content type for a file name.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("ts") => "video/mp2t",
        Some("m4s") => "video/iso.segment",
        Some("mp4" | "m4v" | "cmfv") => "video/mp4",
        Some("m4a" | "cmfa") => "audio/mp4",
        Some("aac") => "audio/aac",
        Some("mp3") => "audio/mpeg",
        Some("vtt" | "webvtt") => "text/vtt",
        Some("key") => "application/octet-stream",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("txt") => "text/plain; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A byte range decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// Serve the whole file (no or ignorable Range).
    Full,
    /// Serve `start..=end`.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `len` bytes (RFC 9110 §14). Multiple ranges
/// and malformed headers are ignored (a full 200 is always a correct answer).
pub fn parse_range(value: &str, len: u64) -> RangeDecision {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeDecision::Full };
    if spec.contains(',') {
        return RangeDecision::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeDecision::Full };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeDecision::Full,
        (true, false) => match num(b) {
            None => RangeDecision::Full,
            Some(0) => RangeDecision::Unsatisfiable,
            Some(_) if len == 0 => RangeDecision::Unsatisfiable,
            Some(n) => RangeDecision::Partial(len.saturating_sub(n), len - 1),
        },
        (false, _) => {
            let Some(start) = num(a) else { return RangeDecision::Full };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match num(b) {
                    Some(e) if e >= start => e,
                    _ => return RangeDecision::Full,
                }
            };
            if start >= len {
                RangeDecision::Unsatisfiable
            } else {
                RangeDecision::Partial(start, end.min(len - 1))
            }
        }
    }
}

fn etag_for(len: u64, mtime: SystemTime) -> String {
    let d = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("\"{:x}-{:x}-{:x}\"", d.as_secs(), d.subsec_nanos(), len)
}

/// Serves one request from a file root.
pub async fn serve(root: &Path, method: &Method, raw_path: &str, headers: &HeaderMap) -> Result<Response<Body>, ProxyError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ProxyError::MethodNotAllowed("GET, HEAD"));
    }
    let candidate = resolve_path(root, raw_path)?;
    // Symlinks may point anywhere; only targets inside the root are served.
    let real = tokio::fs::canonicalize(&candidate).await.map_err(|_| ProxyError::NotFound)?;
    if !real.starts_with(root) {
        return Err(ProxyError::NotFound);
    }
    let mut file = tokio::fs::File::open(&real).await.map_err(|_| ProxyError::NotFound)?;
    let meta = file.metadata().await.map_err(|_| ProxyError::NotFound)?;
    if !meta.is_file() {
        return Err(ProxyError::NotFound);
    }
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let etag = etag_for(len, mtime);
    let last_modified = httpdate::fmt_http_date(mtime);

    let mut resp = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes");

    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let not_modified = match (headers.contains_key(header::IF_NONE_MATCH), get(header::IF_MODIFIED_SINCE)) {
        (true, _) => crate::proxy::headers::if_none_match(headers, etag.as_bytes()),
        (false, Some(ims)) => match httpdate::parse_http_date(ims) {
            Ok(t) => {
                mtime.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
                    <= t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
            }
            Err(_) => false,
        },
        _ => false,
    };
    if not_modified {
        return resp.status(StatusCode::NOT_MODIFIED).body(empty()).map_err(|e| ProxyError::Internal(e.to_string()));
    }

    let range_ok = match get(header::IF_RANGE) {
        None => true,
        Some(v) if v.starts_with('"') || v.starts_with("W/") => v == etag,
        Some(v) => v == last_modified,
    };
    let decision = match get(header::RANGE) {
        Some(r) if range_ok => parse_range(r, len),
        _ => RangeDecision::Full,
    };
    let (status, start, count) = match decision {
        RangeDecision::Full => (StatusCode::OK, 0, len),
        RangeDecision::Partial(s, e) => {
            resp = resp.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        RangeDecision::Unsatisfiable => return Err(ProxyError::RangeNotSatisfiable(len)),
    };
    resp = resp
        .status(status)
        .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&real)))
        .header(header::CONTENT_LENGTH, count);
    let body = if method == Method::HEAD || count == 0 {
        empty()
    } else {
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await.map_err(|e| ProxyError::Internal(e.to_string()))?;
        }
        FileBody { file, remaining: count, buf: vec![0; CHUNK.min(count as usize)] }.boxed_unsync()
    };
    resp.body(body).map_err(|e| ProxyError::Internal(e.to_string()))
}

/// Streams `remaining` bytes of a file in chunks; a file that shrinks midway is an error,
/// never a silently short body.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (this.buf.len() as u64).min(this.remaining) as usize;
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err("file shrank while it was being sent".into())));
                }
                this.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn traversal_is_refused() {
        let root = Path::new("/srv/media");
        for bad in ["/../etc/passwd", "/a/%2e%2e/b", "/a/%2E%2e/%2e%2e/x", "/a/.%2e/x", "/a%2fb", "/a%5cb", "/a\\b", "/a%00b", "/./a"] {
            assert!(matches!(resolve_path(root, bad), Err(ProxyError::BadRequest(_))), "{bad}");
        }
        // Double encoding decodes once: a literal name "%2e%2e" stays inside the root.
        assert_eq!(resolve_path(root, "/%252e%252e/x").ok(), Some(PathBuf::from("/srv/media/%2e%2e/x")));
        assert_eq!(resolve_path(root, "/hls/a%20b.ts").ok(), Some(PathBuf::from("/srv/media/hls/a b.ts")));
        assert!(matches!(resolve_path(root, "/"), Err(ProxyError::NotFound)));
    }

    #[test]
    fn ranges_rfc9110() {
        assert_eq!(parse_range("bytes=0-99", 1000), RangeDecision::Partial(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), RangeDecision::Partial(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), RangeDecision::Partial(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), RangeDecision::Partial(0, 999));
        assert_eq!(parse_range("bytes=990-5000", 1000), RangeDecision::Partial(990, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), RangeDecision::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), RangeDecision::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), RangeDecision::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeDecision::Full);
        assert_eq!(parse_range("items=0-1", 1000), RangeDecision::Full);
        assert_eq!(parse_range("bytes=+1-2", 1000), RangeDecision::Full);
    }

    fn etag_matches(list: &'static str, etag: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, http::HeaderValue::from_static(list));
        crate::proxy::headers::if_none_match(&h, etag.as_bytes())
    }

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }

    proptest! {
        #[test]
        fn resolved_paths_stay_below_root(path in "(/([a-z.%2eEfF5cC0]{0,6}))*") {
            if let Ok(p) = resolve_path(Path::new("/root"), &path) {
                prop_assert!(p.starts_with("/root"));
                prop_assert!(!p.components().any(|c| matches!(c, std::path::Component::ParentDir)));
            }
        }

        #[test]
        fn ranges_stay_within_the_file(h in "\\PC{0,20}", len in 0u64..10_000) {
            if let RangeDecision::Partial(s, e) = parse_range(&h, len) {
                prop_assert!(s <= e && e < len);
            }
        }
    }
}
