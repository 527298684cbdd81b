//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the messages we
//! send, and pure parsers for the proxy's replies, so that every byte a proxy can send is
//! covered by property tests and the `proxy_reply` fuzz target without a socket.

use std::fmt;
use std::net::IpAddr;

/// Longest reply to CONNECT: header, a 255-byte domain name with its length, port.
pub const MAX_CONNECT_REPLY: usize = 4 + 1 + 255 + 2;

const VERSION: u8 = 5;
const AUTH_VERSION: u8 = 1;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

/// How far a reply parser got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<T> {
    /// More bytes are needed: at least this many in all.
    Incomplete(usize),
    /// The reply is complete.
    Done(T),
}

/// The authentication method the proxy chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No authentication.
    NoAuth,
    /// RFC 1929 username/password.
    UserPass,
}

/// What was wrong with a SOCKS5 proxy's reply. Displays as a predicate of the proxy
/// ("SOCKS5 proxy 127.0.0.1:1080 refused the username/password").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Socks5ReplyError {
    /// The version byte of a reply is not the one the protocol step requires.
    Version(u8),
    /// The proxy accepts none of the authentication methods we offered.
    NoAcceptableMethod {
        /// Whether username/password was among them.
        offered_auth: bool,
    },
    /// The proxy chose a method we did not offer.
    UnofferedMethod(u8),
    /// The proxy refused the username/password (RFC 1929 status other than 0).
    AuthRejected,
    /// The proxy could not open the connection to the origin (RFC 1928 reply code).
    ConnectFailed(u8),
    /// The reply names an address type that does not exist.
    AddressType(u8),
}

impl fmt::Display for Socks5ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Version(v) => write!(f, "answered with protocol version {v}, which is not SOCKS5"),
            Self::NoAcceptableMethod { offered_auth: true } => f.write_str("accepts neither no authentication nor username/password"),
            Self::NoAcceptableMethod { offered_auth: false } => {
                f.write_str("requires authentication, and the proxy URL has no username/password")
            }
            Self::UnofferedMethod(m) => write!(f, "chose authentication method {m:#04x}, which was not offered"),
            Self::AuthRejected => f.write_str("refused the username/password"),
            Self::ConnectFailed(code) => write!(f, "could not connect to the origin: {} (reply {code})", reply_reason(code)),
            Self::AddressType(t) => write!(f, "answered with unknown address type {t}"),
        }
    }
}

/// The meaning of an RFC 1928 reply code.
fn reply_reason(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// The greeting: the authentication methods we offer.
pub fn greeting(with_auth: bool) -> &'static [u8] {
    if with_auth {
        &[VERSION, 2, NO_AUTH, USER_PASS]
    } else {
        &[VERSION, 1, NO_AUTH]
    }
}

/// Parses the proxy's choice of method (2 bytes).
pub fn parse_method_reply(buf: &[u8], offered_auth: bool) -> Result<Progress<Method>, Socks5ReplyError> {
    let [ver, method, ..] = *buf else { return Ok(Progress::Incomplete(2)) };
    if ver != VERSION {
        return Err(Socks5ReplyError::Version(ver));
    }
    match method {
        NO_AUTH => Ok(Progress::Done(Method::NoAuth)),
        USER_PASS if offered_auth => Ok(Progress::Done(Method::UserPass)),
        NO_ACCEPTABLE => Err(Socks5ReplyError::NoAcceptableMethod { offered_auth }),
        m => Err(Socks5ReplyError::UnofferedMethod(m)),
    }
}

/// The RFC 1929 request; `None` if a field is empty or longer than 255 bytes (config
/// validation already refuses those).
pub fn auth_request(user: &str, pass: &str) -> Option<Vec<u8>> {
    let ulen = u8::try_from(user.len()).ok().filter(|n| *n > 0)?;
    let plen = u8::try_from(pass.len()).ok()?;
    let mut out = Vec::with_capacity(3 + user.len() + pass.len());
    out.extend_from_slice(&[AUTH_VERSION, ulen]);
    out.extend_from_slice(user.as_bytes());
    out.push(plen);
    out.extend_from_slice(pass.as_bytes());
    Some(out)
}

/// Parses the RFC 1929 status (2 bytes). Some servers answer with version 5 here
/// instead of 1; both are accepted.
pub fn parse_auth_reply(buf: &[u8]) -> Result<Progress<()>, Socks5ReplyError> {
    let [ver, status, ..] = *buf else { return Ok(Progress::Incomplete(2)) };
    if ver != AUTH_VERSION && ver != VERSION {
        return Err(Socks5ReplyError::Version(ver));
    }
    if status != 0 {
        return Err(Socks5ReplyError::AuthRejected);
    }
    Ok(Progress::Done(()))
}

/// The CONNECT request for `host:port`: an IP literal as ATYP 1 or 4, anything else as
/// a domain name (ATYP 3) for the proxy to resolve. `None` if the name is longer than
/// 255 bytes or empty.
pub fn connect_request(host: &str, port: u16) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(7 + host.len());
    out.extend_from_slice(&[VERSION, 1, 0]);
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len()).ok().filter(|n| *n > 0)?;
            out.extend_from_slice(&[3, len]);
            out.extend_from_slice(host.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Some(out)
}

/// Parses the reply to CONNECT. `Done(n)`: the reply is the first `n` bytes and the
/// tunnel is open. Fails as early as the bytes allow, so a proxy that sends a short
/// failure reply and closes is reported by its reply code.
pub fn parse_connect_reply(buf: &[u8]) -> Result<Progress<usize>, Socks5ReplyError> {
    let Some(&ver) = buf.first() else { return Ok(Progress::Incomplete(2)) };
    if ver != VERSION {
        return Err(Socks5ReplyError::Version(ver));
    }
    let Some(&rep) = buf.get(1) else { return Ok(Progress::Incomplete(2)) };
    if rep != 0 {
        return Err(Socks5ReplyError::ConnectFailed(rep));
    }
    let Some(&atyp) = buf.get(3) else { return Ok(Progress::Incomplete(4)) };
    let len = match atyp {
        1 => 4 + 4 + 2,
        4 => 4 + 16 + 2,
        3 => match buf.get(4) {
            Some(&n) => 4 + 1 + usize::from(n) + 2,
            None => return Ok(Progress::Incomplete(5)),
        },
        t => return Err(Socks5ReplyError::AddressType(t)),
    };
    if buf.len() < len {
        Ok(Progress::Incomplete(len))
    } else {
        Ok(Progress::Done(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1928_section3_method_selection() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        assert_eq!(parse_method_reply(&[5], true), Ok(Progress::Incomplete(2)));
        assert_eq!(parse_method_reply(&[5, 0], false), Ok(Progress::Done(Method::NoAuth)));
        assert_eq!(parse_method_reply(&[5, 2], true), Ok(Progress::Done(Method::UserPass)));
        assert_eq!(parse_method_reply(&[5, 2], false), Err(Socks5ReplyError::UnofferedMethod(2)));
        assert_eq!(parse_method_reply(&[5, 0xff], false), Err(Socks5ReplyError::NoAcceptableMethod { offered_auth: false }));
        assert_eq!(parse_method_reply(&[4, 0], false), Err(Socks5ReplyError::Version(4)));
        assert_eq!(parse_method_reply(b"HTTP/1.1 400", false), Err(Socks5ReplyError::Version(b'H')));
    }

    #[test]
    fn rfc1929_username_password() {
        assert_eq!(auth_request("u", "pw"), Some(vec![1, 1, b'u', 2, b'p', b'w']));
        assert_eq!(auth_request("u", ""), Some(vec![1, 1, b'u', 0]));
        assert_eq!(auth_request("", "pw"), None);
        assert_eq!(auth_request(&"x".repeat(256), "pw"), None);
        assert_eq!(parse_auth_reply(&[1, 0]), Ok(Progress::Done(())));
        assert_eq!(parse_auth_reply(&[5, 0]), Ok(Progress::Done(())), "version 5 here is a common server quirk");
        assert_eq!(parse_auth_reply(&[1, 1]), Err(Socks5ReplyError::AuthRejected));
        assert_eq!(parse_auth_reply(&[2, 0]), Err(Socks5ReplyError::Version(2)));
        assert_eq!(Socks5ReplyError::AuthRejected.to_string(), "refused the username/password");
    }

    #[test]
    fn rfc1928_section4_connect_request_address_types() {
        assert_eq!(connect_request("10.1.2.3", 80), Some(vec![5, 1, 0, 1, 10, 1, 2, 3, 0, 80]));
        let v6 = connect_request("[::1]", 8080).unwrap();
        assert_eq!((v6[3], v6.len(), &v6[v6.len() - 3..]), (4, 22, &[1, 0x1f, 0x90][..]));
        assert_eq!(connect_request("origin.example", 443), Some([&[5, 1, 0, 3, 14][..], b"origin.example", &[1, 0xbb]].concat()));
        assert_eq!(connect_request(&"a".repeat(256), 80), None);
        assert_eq!(connect_request("", 80), None);
    }

    #[test]
    fn rfc1928_section6_replies() {
        let v4 = [5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38];
        assert_eq!(parse_connect_reply(&v4), Ok(Progress::Done(10)));
        assert_eq!(parse_connect_reply(&v4[..7]), Ok(Progress::Incomplete(10)));
        assert_eq!(parse_connect_reply(&[5, 0, 0]), Ok(Progress::Incomplete(4)));
        assert_eq!(parse_connect_reply(&[5, 0, 0, 3]), Ok(Progress::Incomplete(5)));
        assert_eq!(parse_connect_reply(&[5, 0, 0, 3, 2, b'h', b'i', 0, 80]), Ok(Progress::Done(9)));
        assert_eq!(parse_connect_reply(&[5, 0, 0, 4]), Ok(Progress::Incomplete(22)));
        assert_eq!(parse_connect_reply(&[5, 5]), Err(Socks5ReplyError::ConnectFailed(5)), "fails without the address");
        assert_eq!(parse_connect_reply(&[5, 0, 0, 9]), Err(Socks5ReplyError::AddressType(9)));
        assert_eq!(parse_connect_reply(&[0x48]), Err(Socks5ReplyError::Version(0x48)));
        assert_eq!(Socks5ReplyError::ConnectFailed(5).to_string(), "could not connect to the origin: connection refused (reply 5)");
    }

    proptest! {
        #[test]
        fn replies_never_panic_and_stay_in_bounds(buf in proptest::collection::vec(any::<u8>(), 0..300), auth: bool) {
            let _ = parse_method_reply(&buf, auth);
            let _ = parse_auth_reply(&buf);
            match parse_connect_reply(&buf) {
                Ok(Progress::Done(n)) => prop_assert!(n <= buf.len() && n <= MAX_CONNECT_REPLY),
                Ok(Progress::Incomplete(n)) => prop_assert!(n > buf.len() && n <= MAX_CONNECT_REPLY),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn a_reply_is_complete_only_at_its_own_length(extra in proptest::collection::vec(any::<u8>(), 0..8), name_len in 0u8..=255) {
            let mut reply = vec![5, 0, 0, 3, name_len];
            reply.extend(std::iter::repeat_n(b'n', usize::from(name_len)));
            reply.extend_from_slice(&[0, 80]);
            let len = reply.len();
            reply.extend_from_slice(&extra);
            prop_assert_eq!(parse_connect_reply(&reply), Ok(Progress::Done(len)));
            for cut in 0..len {
                prop_assert!(matches!(parse_connect_reply(&reply[..cut]), Ok(Progress::Incomplete(n)) if n > cut));
            }
        }
    }
}
