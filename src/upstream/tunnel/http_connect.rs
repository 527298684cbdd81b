//! HTTP CONNECT (RFC 9110 section 9.3.6): the request we send, with Basic proxy
//! credentials, and a pure parser for the proxy's response head, so that every byte a
//! proxy can send is covered by property tests and the `proxy_reply` fuzz target.

use std::fmt;

/// Longest response head accepted from a proxy.
pub const MAX_HEAD: usize = 16 * 1024;

/// What was wrong with an HTTP proxy's answer to CONNECT. Displays as a predicate of the
/// proxy ("HTTP proxy 127.0.0.1:3128 answered 407 Proxy Authentication Required").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpReplyError {
    /// The answer does not start with an HTTP/1.x status line.
    NotHttp,
    /// No end of the response head within [`MAX_HEAD`] bytes.
    HeadTooLarge,
    /// A status other than 2xx.
    Status(u16),
    /// Bytes after a 2xx head, before we sent anything through the tunnel.
    TrailingData(usize),
}

impl fmt::Display for HttpReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotHttp => f.write_str("did not answer CONNECT with an HTTP/1.x response"),
            Self::HeadTooLarge => write!(f, "sent a response head over {} KiB", MAX_HEAD / 1024),
            Self::Status(code) => match http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()) {
                Some(reason) => write!(f, "answered {code} {reason}"),
                None => write!(f, "answered {code}"),
            },
            Self::TrailingData(n) => write!(f, "sent {n} bytes after its response to CONNECT, before the tunnel was used"),
        }
    }
}

/// The CONNECT request for `authority` (`host:port`), with a `Proxy-Authorization`
/// value when the proxy needs one (see [`basic_credentials`]).
pub fn connect_request(authority: &str, proxy_authorization: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 2 * authority.len() + proxy_authorization.map_or(0, str::len));
    for part in ["CONNECT ", authority, " HTTP/1.1\r\nHost: ", authority, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    if let Some(v) = proxy_authorization {
        for part in ["Proxy-Authorization: ", v, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `Basic base64(user:pass)` (RFC 7617).
pub fn basic_credentials(user: &str, pass: &str) -> String {
    let mut plain = Vec::with_capacity(user.len() + 1 + pass.len());
    plain.extend_from_slice(user.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(pass.as_bytes());
    let mut out = String::from("Basic ");
    base64_into(&plain, &mut out);
    out
}

/// Standard base64 with padding (RFC 4648 section 4); one use, not worth a crate.
fn base64_into(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
}

/// Parses the proxy's answer to CONNECT. `Ok(None)`: the head is not complete yet.
/// `Ok(Some(n))`: a 2xx head of `n` bytes, and nothing after it. Fails as early as the
/// bytes allow (a non-HTTP answer after its first 5 bytes, a non-2xx status once the
/// status line is complete) so that a proxy that answers and closes is reported by what
/// it said.
pub fn parse_connect_response(buf: &[u8]) -> Result<Option<usize>, HttpReplyError> {
    let prefix = &b"HTTP/"[..buf.len().min(5)];
    if !buf.starts_with(prefix) {
        return Err(HttpReplyError::NotHttp);
    }
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(line_end) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_HEAD { Err(HttpReplyError::HeadTooLarge) } else { Ok(None) };
    };
    let status = parse_status_line(&window[..line_end])?;
    if !(200..300).contains(&status) {
        return Err(HttpReplyError::Status(status));
    }
    let Some(head_len) = head_end(window, line_end) else {
        return if buf.len() >= MAX_HEAD { Err(HttpReplyError::HeadTooLarge) } else { Ok(None) };
    };
    match buf.len() - head_len {
        0 => Ok(Some(head_len)),
        extra => Err(HttpReplyError::TrailingData(extra)),
    }
}

/// `HTTP/1.x SP 3DIGIT [SP reason] [CR]` to the status code.
fn parse_status_line(line: &[u8]) -> Result<u16, HttpReplyError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"HTTP/1.1 ").or_else(|| line.strip_prefix(b"HTTP/1.0 ")).ok_or(HttpReplyError::NotHttp)?;
    let (code, after) = rest.split_at_checked(3).ok_or(HttpReplyError::NotHttp)?;
    if !code.iter().all(u8::is_ascii_digit) || !(after.is_empty() || after.starts_with(b" ")) {
        return Err(HttpReplyError::NotHttp);
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if status < 100 {
        return Err(HttpReplyError::NotHttp);
    }
    Ok(status)
}

/// The length of the head: through the first empty line (CRLF or bare LF) after the
/// status line, which ends at `line_end`.
fn head_end(buf: &[u8], line_end: usize) -> Option<usize> {
    let mut i = line_end;
    while let Some(off) = buf.get(i + 1..)?.iter().position(|&b| b == b'\n') {
        let next = i + 1 + off;
        let line = &buf[i + 1..next];
        if line.is_empty() || line == b"\r" {
            return Some(next + 1);
        }
        i = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_section10_base64_vectors() {
        for (plain, enc) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        {
            let mut out = String::new();
            base64_into(plain.as_bytes(), &mut out);
            assert_eq!(out, enc, "{plain}");
        }
    }

    #[test]
    fn rfc7617_basic_credentials() {
        assert_eq!(basic_credentials("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(basic_credentials("test", "123\u{a3}"), "Basic dGVzdDoxMjPCow==");
    }

    #[test]
    fn rfc9110_connect_request() {
        assert_eq!(connect_request("origin.example:80", None), b"CONNECT origin.example:80 HTTP/1.1\r\nHost: origin.example:80\r\n\r\n");
        assert_eq!(
            connect_request("[::1]:8080", Some("Basic dTpw")),
            b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
    }

    #[test]
    fn rfc9110_connect_responses() {
        let ok = b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n";
        assert_eq!(parse_connect_response(ok), Ok(Some(ok.len())));
        assert_eq!(parse_connect_response(b"HTTP/1.0 200\n\n"), Ok(Some(14)), "bare LF and no reason");
        assert_eq!(parse_connect_response(b"HTTP/1.1 204 No Content\r\n\r\n"), Ok(Some(27)), "any 2xx");
        for cut in 0..ok.len() {
            assert_eq!(parse_connect_response(&ok[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(parse_connect_response(b"HTTP/1.1 200 OK\r\n\r\nX"), Err(HttpReplyError::TrailingData(1)));
        assert_eq!(parse_connect_response(b"HTTP/1.1 407 Proxy Authentication Required\r\n"), Err(HttpReplyError::Status(407)));
        assert_eq!(parse_connect_response(b"HTTP/1.1 502 whatever\r\nContent-Length: 5\r\n\r\nabcde"), Err(HttpReplyError::Status(502)));
        assert_eq!(parse_connect_response(b"\x05\x00"), Err(HttpReplyError::NotHttp), "a SOCKS5 server");
        assert_eq!(parse_connect_response(b"HTTP/2 200\r\n\r\n"), Err(HttpReplyError::NotHttp));
        assert_eq!(parse_connect_response(b"HTTP/1.1 2000\r\n\r\n"), Err(HttpReplyError::NotHttp));
        assert_eq!(parse_connect_response(b"HTTP/1.1 099\r\n\r\n"), Err(HttpReplyError::NotHttp));
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse_connect_response(&big), Err(HttpReplyError::HeadTooLarge));
        assert_eq!(parse_connect_response(&big[..MAX_HEAD - 1]), Ok(None));
        assert_eq!(HttpReplyError::Status(407).to_string(), "answered 407 Proxy Authentication Required");
        assert_eq!(HttpReplyError::Status(599).to_string(), "answered 599");
    }

    proptest! {
        #[test]
        fn responses_never_panic_and_stay_in_bounds(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(Some(n)) = parse_connect_response(&buf) {
                prop_assert_eq!(n, buf.len());
                prop_assert!(buf.starts_with(b"HTTP/1.") && buf[9] == b'2');
            }
        }

        #[test]
        fn header_text_never_panics(headers in "[ -~\r\n]{0,300}", code in 100u16..1000) {
            let buf = format!("HTTP/1.1 {code} X\r\n{headers}");
            let r = parse_connect_response(buf.as_bytes());
            if !(200..300).contains(&code) {
                prop_assert_eq!(r, Err(HttpReplyError::Status(code)));
            }
        }

        #[test]
        fn base64_has_the_right_length(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = String::new();
            base64_into(&input, &mut out);
            prop_assert_eq!(out.len(), input.len().div_ceil(3) * 4);
        }
    }
}
