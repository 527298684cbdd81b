//! A small HTTP/1.1 client for the upstream requests whose response is read whole:
//! bodiless `GET`/`HEAD` of manifests on direct (untunnelled) HTTP origins.
//!
//! Why not the hyper client for these: hyper's client drives each connection in a task of
//! its own and hands requests and responses over channels, so a 1 KB live playlist costs
//! two task wake-ups, a pool checkout future and a streaming body per request (about a
//! quarter of the proxy's user CPU for that request, see BENCHMARKS.md). A manifest is
//! read whole anyway, so here the request's own task writes the head, reads the response
//! to its end and puts the connection back, with no task, channel or body stream between.
//! Everything else (segments, request bodies, tunnels) keeps the hyper client.
//!
//! What it speaks (RFC 9112): one request per connection at a time (no pipelining), 1xx
//! interim responses skipped, bodies framed by `Transfer-Encoding: chunked`,
//! `Content-Length` or the end of the connection (§6.3, in that order), no body for
//! `HEAD`, 204 and 304. A connection is reused only after an HTTP/1.1 response without
//! `Connection: close` whose body ended exactly at its framing. A reused connection that
//! the origin closed while idle is detected by the first write or read failing with
//! nothing received, and the request is sent once more on a new connection.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http_client::Failure;
use crate::error::ProxyError;

/// Idle connections kept per url.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused (as the hyper pool).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response head (status line, fields, and chunked trailers).
const MAX_HEAD: usize = 64 * 1024;
/// Most fields in a response head.
const MAX_FIELDS: usize = 100;
/// Longest chunk-size line (size, extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// First read buffer.
const INITIAL_BUF: usize = 8 * 1024;

/// Idle keep-alive connections to one url.
pub struct H1Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    /// Where new connections go: the url's host (without IPv6 brackets) and port.
    host: String,
    port: u16,
    connect_timeout: Duration,
}

/// A response read whole.
pub struct Whole {
    /// Status.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Fields as the origin sent them.
    pub headers: HeaderMap,
    /// The decoded body.
    pub body: Bytes,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum H1Error {
    /// Before any response head: the problem and what kind of failure it was (for
    /// retries on another url).
    Head(ProxyError, Failure),
    /// After the head: the body could not be read (too large, cut short, invalid
    /// framing). Never retried: the origin has answered.
    Body(ProxyError),
}

/// A connection with the response head read, ready for its body.
pub struct Pending {
    stream: TcpStream,
    buf: BytesMut,
    framing: Framing,
    reusable: bool,
    /// Status, version and fields.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Fields as the origin sent them.
    pub headers: HeaderMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

impl H1Pool {
    /// An empty pool for the url at `authority` (port 80 when it names none), connecting
    /// within `connect_timeout`.
    pub fn new(authority: &http::uri::Authority, connect_timeout: Duration) -> Self {
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        Self { idle: Mutex::new(Vec::new()), host, port: authority.port_u16().unwrap_or(80), connect_timeout }
    }

    fn checkout(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((stream, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                return Some(stream);
            }
        }
        None
    }

    fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // The oldest connection sits at the bottom: close it once it has expired, so a
        // busy pool does not keep connections the origin has long given up on.
        let now = Instant::now();
        if idle.first().is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT) {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE {
            idle.push((stream, now));
        }
    }

    async fn connect(&self, url: &str) -> Result<TcpStream, H1Error> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Err(_) => {
                return Err(H1Error::Head(ProxyError::UpstreamTimeout(format!("connecting to {url} timed out")), Failure::Connect));
            }
            Ok(Err(e)) => {
                let kind = e.kind();
                return Err(H1Error::Head(ProxyError::UpstreamUnavailable(format!("cannot connect to {url}: {kind}")), Failure::Connect));
            }
            Ok(Ok(s)) => s,
        };
        let _ = super::tune_socket(&stream);
        Ok(stream)
    }

    /// Sends a bodiless request and reads the response head. `head` is the whole request
    /// head (see [`request_head`]). On a reused connection that turns out closed, the
    /// request goes once more on a new one.
    pub async fn send(&self, url: &str, head: &[u8], method: &Method) -> Result<Pending, H1Error> {
        if let Some(stream) = self.checkout() {
            match exchange(stream, head, method, url).await {
                Ok(p) => return Ok(p),
                Err(Attempt::Stale) => {}
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        let stream = self.connect(url).await?;
        match exchange(stream, head, method, url).await {
            Ok(p) => Ok(p),
            Err(Attempt::Stale) => Err(H1Error::Head(
                ProxyError::UpstreamUnavailable(format!("origin {url} closed the connection before a complete response head")),
                Failure::Reset,
            )),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }

    /// Reads the body of `p` whole (at most `limit` bytes, else `manifest_too_large`) and
    /// puts the connection back when it can carry another request.
    pub async fn finish(&self, p: Pending, limit: u64) -> Result<Whole, H1Error> {
        let Pending { mut stream, mut buf, framing, reusable, status, version, headers } = p;
        let body = match framing {
            Framing::None => Bytes::new(),
            Framing::Length(n) => {
                if n > limit {
                    return Err(H1Error::Body(ProxyError::ManifestTooLarge(limit)));
                }
                let n = n as usize;
                if buf.len() < n {
                    buf.reserve(n - buf.len());
                }
                while buf.len() < n {
                    if read_more(&mut stream, &mut buf).await.map_err(body_failed)? == 0 {
                        return Err(body_failed(io::Error::new(io::ErrorKind::UnexpectedEof, "the origin closed the connection early")));
                    }
                }
                buf.split_to(n).freeze()
            }
            Framing::Chunked => read_chunked(&mut stream, &mut buf, limit).await?,
            Framing::Close => {
                loop {
                    if buf.len() as u64 > limit {
                        return Err(H1Error::Body(ProxyError::ManifestTooLarge(limit)));
                    }
                    if read_more(&mut stream, &mut buf).await.map_err(body_failed)? == 0 {
                        break;
                    }
                }
                buf.split().freeze()
            }
        };
        // Bytes after the response (an origin answering twice) make the connection unsafe.
        if reusable && framing != Framing::Close && buf.is_empty() {
            self.put(stream);
        }
        Ok(Whole { status, version, headers, body })
    }
}

enum Attempt {
    /// The connection was closed or reset before anything of a response arrived.
    Stale,
    Failed(H1Error),
}

fn body_failed(e: io::Error) -> H1Error {
    H1Error::Body(ProxyError::UpstreamUnavailable(format!("the manifest body failed midway: {e}")))
}

fn invalid(url: &str, what: &str) -> Attempt {
    Attempt::Failed(H1Error::Head(
        ProxyError::UpstreamUnavailable(format!("origin {url} sent an invalid HTTP response: {what}")),
        Failure::Other,
    ))
}

fn is_reset(e: &io::Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(buf.capacity().max(INITIAL_BUF));
    }
    stream.read_buf(buf).await
}

/// The request head for `method` and `target` (origin-form: path and query), with `host`
/// and the already-cleaned `headers`. `None` when the target holds bytes a request line
/// cannot carry.
pub fn request_head(method: &Method, base_path: &str, path_and_query: &str, host: &HeaderValue, headers: &HeaderMap) -> Option<Vec<u8>> {
    let target_ok = |s: &str| s.bytes().all(|b| b > b' ' && b != 0x7f);
    if !target_ok(base_path) || !target_ok(path_and_query) {
        return None;
    }
    let mut size = method.as_str().len() + base_path.len() + path_and_query.len() + 20 + host.len() + 8;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(base_path.as_bytes());
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// Writes the request and reads the response head on one connection.
async fn exchange(mut stream: TcpStream, head: &[u8], method: &Method, url: &str) -> Result<Pending, Attempt> {
    if let Err(e) = stream.write_all(head).await {
        return Err(if is_reset(&e) {
            Attempt::Stale
        } else {
            Attempt::Failed(H1Error::Head(
                ProxyError::UpstreamUnavailable(format!("request to {url} failed before a response head: {e}")),
                Failure::Other,
            ))
        });
    }
    let mut buf = BytesMut::with_capacity(INITIAL_BUF);
    let mut received = false;
    loop {
        match read_more(&mut stream, &mut buf).await {
            Ok(0) if !received => return Err(Attempt::Stale),
            Ok(0) => {
                return Err(Attempt::Failed(H1Error::Head(
                    ProxyError::UpstreamUnavailable(format!("origin {url} closed the connection before a complete response head")),
                    Failure::Reset,
                )))
            }
            Ok(_) => received = true,
            Err(e) if is_reset(&e) && !received => return Err(Attempt::Stale),
            Err(e) if is_reset(&e) => {
                return Err(Attempt::Failed(H1Error::Head(
                    ProxyError::UpstreamUnavailable(format!("origin {url} reset the connection before a response head")),
                    Failure::Reset,
                )))
            }
            Err(e) => {
                return Err(Attempt::Failed(H1Error::Head(
                    ProxyError::UpstreamUnavailable(format!("request to {url} failed before a response head: {e}")),
                    Failure::Other,
                )))
            }
        }
        // Interim (1xx) responses are dropped and the final one parsed after them.
        while let Some(parsed) = parse_head(&mut buf, method, url)? {
            match parsed {
                Parsed::Interim => continue,
                Parsed::Final { status, version, headers, framing, reusable } => {
                    return Ok(Pending { stream, buf, framing, reusable, status, version, headers });
                }
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid(url, "response head too large"));
        }
    }
}

/// What a response head at the start of `bytes` says, for the fuzz target: `None` when
/// more bytes are needed, else the status, the bytes the head took, and the body's
/// framing (`none`, `length N`, `chunked`, `close`). Interim (1xx) heads count as heads.
#[doc(hidden)]
pub fn inspect_head(bytes: &[u8], head_request: bool) -> Result<Option<(u16, usize, String)>, String> {
    let mut buf = BytesMut::from(bytes);
    let method = if head_request { Method::HEAD } else { Method::GET };
    match parse_head(&mut buf, &method, "u") {
        Ok(None) => Ok(None),
        Ok(Some(Parsed::Interim)) => Ok(Some((100, bytes.len() - buf.len(), "interim".into()))),
        Ok(Some(Parsed::Final { status, framing, .. })) => {
            let framing = match framing {
                Framing::None => "none".into(),
                Framing::Length(n) => format!("length {n}"),
                Framing::Chunked => "chunked".into(),
                Framing::Close => "close".into(),
            };
            Ok(Some((status.as_u16(), bytes.len() - buf.len(), framing)))
        }
        Err(Attempt::Stale) => Err("stale".into()),
        Err(Attempt::Failed(H1Error::Head(e, _) | H1Error::Body(e))) => Err(e.to_string()),
    }
}

enum Parsed {
    Interim,
    Final { status: StatusCode, version: Version, headers: HeaderMap, framing: Framing, reusable: bool },
}

/// Parses one response head at the start of `buf` and removes it from there. `None`
/// when more bytes are needed.
fn parse_head(buf: &mut BytesMut, method: &Method, url: &str) -> Result<Option<Parsed>, Attempt> {
    // Uninitialised field slots: a 100-slot array costs nothing until a field lands in it.
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(url, &e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| invalid(url, "invalid status code"))?;
    let version = if resp.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(invalid(url, "unexpected 101 Switching Protocols"));
    }
    if status.is_informational() {
        let _ = buf.split_to(len);
        return Ok(Some(Parsed::Interim));
    }
    // Field values are slices of the head's buffer, not copies: names and value positions
    // first, then the head is split off and frozen.
    let base = buf.as_ptr() as usize;
    let mut fields: Vec<(HeaderName, usize, usize)> = Vec::with_capacity(resp.headers.len());
    for f in resp.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| invalid(url, "invalid field name"))?;
        let start = f.value.as_ptr() as usize - base;
        fields.push((name, start, start + f.value.len()));
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, start, end) in fields {
        let value = HeaderValue::from_maybe_shared(head.slice(start..end)).map_err(|_| invalid(url, "invalid field value"))?;
        headers.append(name, value);
    }
    let mut reusable = version == Version::HTTP_11 && !has_token(&headers, &header::CONNECTION, "close");
    let framing = if *method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::None
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        // RFC 9112 §6.3: chunked as the final coding frames the body; any other coding
        // leaves the end of the connection as its end. A Content-Length alongside is
        // ignored, and the connection is not reused.
        if headers.contains_key(header::CONTENT_LENGTH) {
            reusable = false;
        }
        let last = headers.get_all(header::TRANSFER_ENCODING).iter().next_back().and_then(|v| v.to_str().ok()).unwrap_or("");
        if last.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")) {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length(content_length(&headers).ok_or_else(|| invalid(url, "invalid Content-Length"))?)
    } else {
        Framing::Close
    };
    Ok(Some(Parsed::Final { status, version, headers, framing, reusable }))
}

/// The one length all `Content-Length` fields agree on (a list of equal values counts as
/// one, RFC 9110 §8.6).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.to_str().ok()?.split(',') {
            let part = part.trim();
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = part.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

/// Reads and decodes a chunked body into one buffer, at most `limit` bytes of data.
async fn read_chunked(stream: &mut TcpStream, buf: &mut BytesMut, limit: u64) -> Result<Bytes, H1Error> {
    let mut decoder = Chunked::default();
    let mut out = BytesMut::new();
    loop {
        match decoder.decode(buf, &mut out, limit) {
            Ok(true) => return Ok(out.freeze()),
            Ok(false) => {}
            Err(ChunkError::TooLarge) => return Err(H1Error::Body(ProxyError::ManifestTooLarge(limit))),
            Err(ChunkError::Invalid(what)) => {
                return Err(H1Error::Body(ProxyError::UpstreamUnavailable(format!(
                    "the manifest body failed midway: invalid chunked encoding ({what})"
                ))))
            }
        }
        if read_more(stream, buf).await.map_err(body_failed)? == 0 {
            return Err(body_failed(io::Error::new(io::ErrorKind::UnexpectedEof, "the origin closed the connection early")));
        }
    }
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// More data than the limit.
    TooLarge,
    /// Not chunked coding as RFC 9112 §7.1 writes it.
    Invalid(&'static str),
}

/// A sans-IO decoder of chunked transfer coding (RFC 9112 §7.1): fed whatever bytes have
/// arrived, it takes what it can from the front of the input and appends chunk data to
/// the output. Chunk extensions are ignored; trailer fields are read and dropped.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    /// Bytes of trailer section seen so far.
    trailer: usize,
}

#[derive(Debug, Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

impl Chunked {
    /// Decodes from the front of `input` into `out` (at most `limit` bytes in all). True
    /// once the body has ended (the bytes after it stay in `input`); false when more
    /// input is needed.
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut, limit: u64) -> Result<bool, ChunkError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    let Some(end) = memchr::memchr(b'\n', input) else {
                        return if input.len() > MAX_CHUNK_LINE { Err(ChunkError::Invalid("chunk-size line too long")) } else { Ok(false) };
                    };
                    if end > MAX_CHUNK_LINE {
                        return Err(ChunkError::Invalid("chunk-size line too long"));
                    }
                    let line = input[..end].strip_suffix(b"\r").ok_or(ChunkError::Invalid("bare LF"))?;
                    let digits = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
                    if digits == 0 || digits > 15 || !matches!(line.get(digits), None | Some(b';' | b' ' | b'\t')) {
                        return Err(ChunkError::Invalid("chunk size"));
                    }
                    let size = line[..digits].iter().fold(0u64, |n, &b| (n << 4) | u64::from((b as char).to_digit(16).unwrap_or(0)));
                    let _ = input.split_to(end + 1);
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else if out.len() as u64 + size > limit {
                        return Err(ChunkError::TooLarge);
                    } else {
                        if out.capacity() == 0 {
                            out.reserve(size as usize);
                        }
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(left) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let n = (left as usize).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    let _ = input.split_to(n);
                    self.state = if left as usize == n { ChunkState::DataEnd } else { ChunkState::Data(left - n as u64) };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return if input.first().is_some_and(|&b| b != b'\r') {
                            Err(ChunkError::Invalid("missing CRLF after chunk data"))
                        } else {
                            Ok(false)
                        };
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(ChunkError::Invalid("missing CRLF after chunk data"));
                    }
                    let _ = input.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(end) = memchr::memchr(b'\n', input) else {
                        return if self.trailer + input.len() > MAX_HEAD {
                            Err(ChunkError::Invalid("trailer too large"))
                        } else {
                            Ok(false)
                        };
                    };
                    let empty = end == 0 || (end == 1 && input[0] == b'\r');
                    self.trailer += end + 1;
                    let _ = input.split_to(end + 1);
                    if empty {
                        self.state = ChunkState::Done;
                    } else if self.trailer > MAX_HEAD {
                        return Err(ChunkError::Invalid("trailer too large"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
