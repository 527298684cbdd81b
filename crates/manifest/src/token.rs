//! Akamai EdgeAuth ("Auth Token 2.0") tokens: generation and verification.
//!
//! Pure: no I/O and no clock. Callers pass `now` as unix seconds.
//!
//! Generation matches Akamai's reference implementation (PyPI `akamai-edgeauth` 0.3.2,
//! `akamai.edgeauth.EdgeAuth`, HMAC-SHA256) byte for byte:
//!
//! - fields in the order `ip`, `st`, `exp`, `acl`, `id`, `data`, joined by the field
//!   delimiter (`~`), then `hmac=` and the lowercase hex HMAC-SHA256 keyed with the binary
//!   key decoded from hex;
//! - the HMAC covers the joined fields, plus `~url=<url>` for URL tokens (the URL itself is
//!   not written into the token);
//! - `st` appears only when a start time is given (the reference omits it by default and
//!   then computes `exp` from the current time); `exp = start (or now) + window`;
//! - empty `ip`, `id` and `data` are left out, as the reference does;
//! - with `escape_early`, `ip`, `id`, `data` and the hashed `url` are escaped like Python's
//!   `quote_plus` (everything but `A-Za-z0-9_.-~` percent-encoded from UTF-8, space as
//!   `+`) with lowercase hex digits; `acl` is never escaped.
//!
//! Where the reference would produce a token that cannot be parsed back (a value holding
//! the field delimiter) or that [`verify`] would refuse (longer than [`MAX_TOKEN_LEN`]),
//! [`generate`] returns [`TokenError::InvalidParams`] instead of a different token.
//!
//! Verification recomputes the HMAC over exactly the bytes of the token before `~hmac=`
//! (plus `~url=<path>` when the token has no `acl`), compares it in constant time, then
//! checks the time window, the ACL (or URL) and the client IP when the token names one.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest token value (the part after `hdnts=`) that [`verify`] parses and [`generate`]
/// produces.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Default tolerance, in seconds, for a token whose `st` is slightly in the future (clock
/// skew between the signer and the verifier).
pub const DEFAULT_START_LEEWAY_SECS: u64 = 30;

/// Longest key accepted by [`AkamaiKey::from_hex`], in hex digits.
const MAX_KEY_HEX_LEN: usize = 1024;

/// Length of a hex HMAC-SHA256.
const HMAC_HEX_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a token could not be generated or verified. Every variant names its cause; none
/// carries text taken from the token, so errors are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The key is not a non-empty, even-length hex string.
    #[error("bad token key: {0}")]
    BadKey(&'static str),
    /// The generation parameters cannot make a valid token.
    #[error("invalid token parameters: {0}")]
    InvalidParams(&'static str),
    /// The token cannot be parsed.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The HMAC does not match (wrong key, altered token, or, for URL tokens, another URL).
    #[error("token signature does not match")]
    BadSignature,
    /// `exp` is not after `now`.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// `st` is later than `now` plus the leeway.
    #[error("token not valid before {start} (now {now})")]
    NotYetValid {
        /// The token's `st`.
        start: u64,
        /// The time of the check.
        now: u64,
    },
    /// The path matches none of the token's ACL patterns.
    #[error("path not covered by the token's acl")]
    AclMismatch,
    /// The token is bound to another client IP (or to one, and none was given).
    #[error("token bound to another client ip")]
    IpMismatch,
}

/// An EdgeAuth key: the binary bytes of the hex string configured for the property.
/// `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AkamaiKey(Vec<u8>);

impl AkamaiKey {
    /// Decodes a hex key (either case, even length, not empty), as the reference does with
    /// `binascii.a2b_hex`.
    pub fn from_hex(hex: &str) -> Result<Self, TokenError> {
        let hex = hex.as_bytes();
        if hex.is_empty() {
            return Err(TokenError::BadKey("empty"));
        }
        if hex.len() > MAX_KEY_HEX_LEN {
            return Err(TokenError::BadKey("longer than 1024 hex digits"));
        }
        if hex.len() % 2 != 0 {
            return Err(TokenError::BadKey("odd number of hex digits"));
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.chunks_exact(2) {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(TokenError::BadKey("not hex")),
            }
        }
        Ok(Self(out))
    }

    /// Length of the key in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty key cannot be built.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn mac(&self) -> Result<HmacSha256, TokenError> {
        HmacSha256::new_from_slice(&self.0).map_err(|_| TokenError::BadKey("rejected by HMAC"))
    }
}

impl fmt::Debug for AkamaiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AkamaiKey(<redacted, {} bytes>)", self.0.len())
    }
}

impl Drop for AkamaiKey {
    fn drop(&mut self) {
        // Best effort: nothing guarantees the compiler keeps this store.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// What to put in a token. Set exactly one of `acl` and `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenParams {
    /// `st`: start of validity, unix seconds. `None` leaves `st` out of the token (the
    /// reference's default); `exp` is then counted from `now`.
    pub start: Option<u64>,
    /// Lifetime in seconds, counted from `start` (or `now`). Must be > 0.
    pub window: u64,
    /// ACL token: one or more path patterns (`*` matches anything, `/` included),
    /// separated by `acl_delimiter`, e.g. `/vod/a/*` or `/vod/a/*!/vod/b/*`. Written into
    /// the token as it is (never escaped).
    pub acl: Option<String>,
    /// URL token: the exact path the token is for. Signed but not written into the token.
    pub url: Option<String>,
    /// `id`: session id (left out when empty).
    pub session_id: Option<String>,
    /// `data`: opaque payload (left out when empty).
    pub payload: Option<String>,
    /// `ip`: client IP the token is bound to (left out when empty).
    pub ip: Option<String>,
    /// Separates the fields. Default `~`.
    pub field_delimiter: char,
    /// Separates the ACL patterns inside `acl`. Default `!`.
    pub acl_delimiter: char,
    /// Escape `ip`, `id`, `data` and the hashed `url` before signing (Akamai's "Escape token
    /// input" option). Default false.
    pub escape_early: bool,
}

impl Default for TokenParams {
    fn default() -> Self {
        Self {
            start: None,
            window: 0,
            acl: None,
            url: None,
            session_id: None,
            payload: None,
            ip: None,
            field_delimiter: '~',
            acl_delimiter: '!',
            escape_early: false,
        }
    }
}

impl TokenParams {
    /// An ACL token for `acl`, valid `window` seconds from `now` (no `st`).
    pub fn acl(acl: impl Into<String>, window: u64) -> Self {
        Self { acl: Some(acl.into()), window, ..Self::default() }
    }

    /// A URL token for `url`, valid `window` seconds from `now` (no `st`).
    pub fn url(url: impl Into<String>, window: u64) -> Self {
        Self { url: Some(url.into()), window, ..Self::default() }
    }
}

/// Makes the query fragment `NAME=[ip=..~]st=..~exp=..~acl=..[~id=..][~data=..]~hmac=..`.
///
/// `name` is the query parameter name (`hdnts`, or the reference's default `__token__`).
/// The value after `NAME=` is exactly what the reference's `generate_acl_token` /
/// `generate_url_token` return; percent-encoding it for a URL is the caller's business.
pub fn generate(key: &AkamaiKey, name: &str, p: &TokenParams, now: u64) -> Result<String, TokenError> {
    check_name(name)?;
    check_delimiters(p.field_delimiter, p.acl_delimiter)?;
    let fd = p.field_delimiter;

    let acl = p.acl.as_deref().filter(|s| !s.is_empty());
    let url = p.url.as_deref().filter(|s| !s.is_empty());
    let (acl, url) = match (acl, url) {
        (Some(_), Some(_)) => return Err(TokenError::InvalidParams("set either acl or url, not both")),
        (None, None) => return Err(TokenError::InvalidParams("set acl or url")),
        other => other,
    };
    if p.window == 0 {
        return Err(TokenError::InvalidParams("window must be > 0"));
    }
    if p.start == Some(0) {
        return Err(TokenError::InvalidParams("start must be > 0"));
    }
    let exp = p.start.unwrap_or(now).checked_add(p.window).ok_or(TokenError::InvalidParams("start + window overflows"))?;

    let esc = |s: &str| if p.escape_early { escape_early(s) } else { s.to_owned() };
    let mut fields: Vec<String> = Vec::with_capacity(7);
    if let Some(ip) = p.ip.as_deref().filter(|s| !s.is_empty()) {
        fields.push(format!("ip={}", esc(ip)));
    }
    if let Some(st) = p.start {
        fields.push(format!("st={st}"));
    }
    fields.push(format!("exp={exp}"));
    if let Some(acl) = acl {
        fields.push(format!("acl={acl}"));
    }
    if let Some(id) = p.session_id.as_deref().filter(|s| !s.is_empty()) {
        fields.push(format!("id={}", esc(id)));
    }
    if let Some(data) = p.payload.as_deref().filter(|s| !s.is_empty()) {
        fields.push(format!("data={}", esc(data)));
    }
    if fields.iter().any(|f| f.contains(fd)) {
        return Err(TokenError::InvalidParams("a field value contains the field delimiter"));
    }

    let mut delim_buf = [0u8; 4];
    let delim: &str = fd.encode_utf8(&mut delim_buf);
    let signed = fields.join(delim);
    let mut mac = key.mac()?;
    mac.update(signed.as_bytes());
    if let Some(url) = url {
        mac.update(delim.as_bytes());
        mac.update(b"url=");
        mac.update(esc(url).as_bytes());
    }
    let tag = to_hex(&mac.finalize().into_bytes());

    let value_len = signed.len() + delim.len() + "hmac=".len() + tag.len();
    if value_len > MAX_TOKEN_LEN {
        return Err(TokenError::InvalidParams("token longer than MAX_TOKEN_LEN"));
    }
    let mut out = String::with_capacity(name.len() + 1 + value_len);
    out.push_str(name);
    out.push('=');
    out.push_str(&signed);
    out.push_str(delim);
    out.push_str("hmac=");
    out.push_str(&tag);
    Ok(out)
}

/// How to verify. `Default` matches the reference's defaults and [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions<'a> {
    /// Separates the fields. Default `~`.
    pub field_delimiter: char,
    /// Separates the ACL patterns. Default `!`.
    pub acl_delimiter: char,
    /// How far in the future `st` may be. Default [`DEFAULT_START_LEEWAY_SECS`].
    pub start_leeway: u64,
    /// The tokens were made with `escape_early`: URL tokens are checked against the escaped
    /// path, and `ip` against the escaped client IP. Default false.
    pub escape_early: bool,
    /// The client's IP, checked when the token has an `ip` field. A token with `ip` fails
    /// with [`TokenError::IpMismatch`] when this is `None`.
    pub client_ip: Option<&'a str>,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        Self { field_delimiter: '~', acl_delimiter: '!', start_leeway: DEFAULT_START_LEEWAY_SECS, escape_early: false, client_ip: None }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `st`, when present.
    pub start: Option<u64>,
    /// `exp`.
    pub expires: u64,
    /// `acl` as written in the token; `None` for a URL token.
    pub acl: Option<String>,
    /// `id` as written in the token (escaped if the signer escaped early).
    pub session_id: Option<String>,
    /// `data` as written in the token (escaped if the signer escaped early).
    pub payload: Option<String>,
    /// `ip` as written in the token.
    pub ip: Option<String>,
}

impl Verified {
    /// True for a URL token (one without `acl`, signed for exactly one path).
    pub fn is_url_token(&self) -> bool {
        self.acl.is_none()
    }
}

/// Verifies a token value (the part after `hdnts=`, already percent-decoded) for a
/// request to `path` at time `now`, with [`VerifyOptions::default`].
pub fn verify(key: &AkamaiKey, token_value: &str, path: &str, now: u64) -> Result<Verified, TokenError> {
    verify_with(key, token_value, path, now, &VerifyOptions::default())
}

/// [`verify`] with explicit options.
///
/// Checks, in order: the token parses (known fields only, none twice, `exp` present,
/// `hmac` last), the HMAC, `st <= now + leeway`, `exp > now`, that `path` matches an ACL
/// pattern (ACL tokens; URL tokens are bound to `path` by the HMAC), and the client IP.
pub fn verify_with(key: &AkamaiKey, token_value: &str, path: &str, now: u64, opts: &VerifyOptions<'_>) -> Result<Verified, TokenError> {
    if token_value.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("longer than MAX_TOKEN_LEN"));
    }
    if check_delimiters(opts.field_delimiter, opts.acl_delimiter).is_err() {
        return Err(TokenError::Malformed("unusable delimiters in verify options"));
    }
    let fd = opts.field_delimiter;
    let (signed, tag) = match token_value.rsplit_once(fd) {
        Some((signed, last)) => match last.strip_prefix("hmac=") {
            Some(tag) => (signed, tag),
            None => return Err(TokenError::Malformed("last field is not hmac")),
        },
        None => return Err(TokenError::Malformed("no field delimiter")),
    };
    if tag.len() != HMAC_HEX_LEN || !tag.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(TokenError::Malformed("hmac is not 64 lowercase hex digits"));
    }

    let mut v = Verified { start: None, expires: 0, acl: None, session_id: None, payload: None, ip: None };
    let mut exp = None;
    for field in signed.split(fd) {
        let (k, val) = field.split_once('=').ok_or(TokenError::Malformed("field without '='"))?;
        if val.is_empty() {
            return Err(TokenError::Malformed("empty field value"));
        }
        let dup = match k {
            "ip" => v.ip.replace(val.to_owned()).is_some(),
            "st" => v.start.replace(parse_time(val)?).is_some(),
            "exp" => exp.replace(parse_time(val)?).is_some(),
            "acl" => v.acl.replace(val.to_owned()).is_some(),
            "id" => v.session_id.replace(val.to_owned()).is_some(),
            "data" => v.payload.replace(val.to_owned()).is_some(),
            "hmac" => return Err(TokenError::Malformed("hmac is not the last field")),
            _ => return Err(TokenError::Malformed("unknown field")),
        };
        if dup {
            return Err(TokenError::Malformed("duplicate field"));
        }
    }
    v.expires = exp.ok_or(TokenError::Malformed("no exp"))?;

    let mut mac = key.mac()?;
    mac.update(signed.as_bytes());
    if v.acl.is_none() {
        let mut delim_buf = [0u8; 4];
        mac.update(fd.encode_utf8(&mut delim_buf).as_bytes());
        mac.update(b"url=");
        if opts.escape_early {
            mac.update(escape_early(path).as_bytes());
        } else {
            mac.update(path.as_bytes());
        }
    }
    let expected = to_hex(&mac.finalize().into_bytes());
    if !ct_eq(expected.as_bytes(), tag.as_bytes()) {
        return Err(TokenError::BadSignature);
    }

    if let Some(start) = v.start {
        if start > now.saturating_add(opts.start_leeway) {
            return Err(TokenError::NotYetValid { start, now });
        }
    }
    if v.expires <= now {
        return Err(TokenError::Expired { exp: v.expires, now });
    }
    if let Some(acl) = &v.acl {
        if !acl.split(opts.acl_delimiter).any(|pat| wildcard_match(pat.as_bytes(), path.as_bytes())) {
            return Err(TokenError::AclMismatch);
        }
    }
    if let Some(ip) = &v.ip {
        let ok = match opts.client_ip {
            Some(client) if opts.escape_early => *ip == escape_early(client),
            Some(client) => ip == client,
            None => false,
        };
        if !ok {
            return Err(TokenError::IpMismatch);
        }
    }
    Ok(v)
}

/// Python's `quote_plus(s)` (3.7+: `~` is safe) with the hex digits of every escape
/// lowercased, as the reference's `_escape_early` does.
pub fn escape_early(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

/// `*` matches any run of bytes (including `/` and none); every other byte matches itself.
/// Linear backtracking on the last `*`: O(pattern × path) at worst, never exponential.
fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
            }
            Some(&c) if c == s[i] => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|&c| c == b'*')
}

/// Equality whose time depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn parse_time(s: &str) -> Result<u64, TokenError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed("time is not a decimal number"));
    }
    s.parse().map_err(|_| TokenError::Malformed("time out of range"))
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(TokenError::InvalidParams("token name must be non-empty [A-Za-z0-9_.-]"))
    }
}

/// Akamai's Property Manager refuses delimiters that are letters, digits or one of
/// `= & / \ : %`; the two must also differ. Whitespace and controls are refused too.
fn check_delimiters(field: char, acl: char) -> Result<(), TokenError> {
    let usable = |c: char| !(c.is_alphanumeric() || c.is_whitespace() || c.is_control() || "=&/\\:%".contains(c));
    if !usable(field) || !usable(acl) {
        return Err(TokenError::InvalidParams("unusable delimiter"));
    }
    if field == acl {
        return Err(TokenError::InvalidParams("field and acl delimiters must differ"));
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn key() -> AkamaiKey {
        AkamaiKey::from_hex(KEY).unwrap()
    }

    fn value(token: &str) -> &str {
        token.split_once('=').unwrap().1
    }

    /// Expected values produced by akamai-edgeauth 0.3.2 under Python 3.11.
    #[test]
    fn token_matches_reference_acl() {
        let p = TokenParams { start: Some(1_700_000_000), ..TokenParams::acl("/vod/*", 300) };
        let t = generate(&key(), "hdnts", &p, 0).unwrap();
        assert_eq!(
            t,
            "hdnts=st=1700000000~exp=1700000300~acl=/vod/*~hmac=e91ce690b83081f9cd1dc14c9f4d45e2629178c39fa4e1f7fc4e7ff53c037ad7"
        );
    }

    #[test]
    fn token_matches_reference_url_escape_early() {
        let p = TokenParams {
            start: Some(1_700_000_000),
            ip: Some("::1".into()),
            session_id: Some("a b/c".into()),
            payload: Some("x=y&z".into()),
            escape_early: true,
            ..TokenParams::url("/vod/a b.ts?x=1", 300)
        };
        let t = generate(&key(), "hdnts", &p, 0).unwrap();
        assert_eq!(
            t,
            "hdnts=ip=%3a%3a1~st=1700000000~exp=1700000300~id=a+b%2fc~data=x%3dy%26z~hmac=5833b608d3b49e0a8d320f0439d95e51310b49e68aa5d78d453abd1094dff4a8"
        );
    }

    #[test]
    fn no_start_means_no_st_and_exp_from_now() {
        let t = generate(&key(), "hdnts", &TokenParams::acl("/vod/*", 60), 1_000).unwrap();
        assert!(t.starts_with("hdnts=exp=1060~acl=/vod/*~hmac="), "{t}");
        assert!(verify(&key(), value(&t), "/vod/x.ts", 1_059).is_ok());
        assert_eq!(verify(&key(), value(&t), "/vod/x.ts", 1_060), Err(TokenError::Expired { exp: 1060, now: 1060 }));
    }

    #[test]
    fn key_parsing() {
        assert!(AkamaiKey::from_hex("00FFaa").is_ok());
        assert_eq!(AkamaiKey::from_hex(""), Err(TokenError::BadKey("empty")));
        assert_eq!(AkamaiKey::from_hex("abc"), Err(TokenError::BadKey("odd number of hex digits")));
        assert_eq!(AkamaiKey::from_hex("zz"), Err(TokenError::BadKey("not hex")));
        assert_eq!(AkamaiKey::from_hex("é"), Err(TokenError::BadKey("not hex")));
        let dbg = format!("{:?}", key());
        assert!(!dbg.contains("0123") && !dbg.contains("cdef"), "{dbg}");
    }

    #[test]
    fn generate_refuses_bad_params() {
        let k = key();
        let bad = |p: TokenParams| generate(&k, "hdnts", &p, 100).unwrap_err();
        assert!(matches!(bad(TokenParams { window: 10, ..TokenParams::default() }), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams { url: Some("/a".into()), ..TokenParams::acl("/a", 10) }), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams::acl("/a", 0)), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams { start: Some(0), ..TokenParams::acl("/a", 10) }), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams { start: Some(u64::MAX), ..TokenParams::acl("/a", 10) }), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams::acl("/a~b", 10)), TokenError::InvalidParams(_)));
        // escape_early keeps '~', so it still collides with the delimiter.
        let p = TokenParams { session_id: Some("a~b".into()), escape_early: true, ..TokenParams::acl("/a", 10) };
        assert!(matches!(bad(p), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams { field_delimiter: '!', ..TokenParams::acl("/a", 10) }), TokenError::InvalidParams(_)));
        assert!(matches!(bad(TokenParams::acl("/".repeat(5000), 10)), TokenError::InvalidParams(_)));
        assert!(matches!(generate(&k, "", &TokenParams::acl("/a", 10), 1), Err(TokenError::InvalidParams(_))));
        assert!(matches!(generate(&k, "a=b", &TokenParams::acl("/a", 10), 1), Err(TokenError::InvalidParams(_))));
    }

    #[test]
    fn verify_checks_each_cause() {
        let k = key();
        let p = TokenParams { start: Some(1_000), ..TokenParams::acl("/vod/a/*!/live/*.m3u8", 100) };
        let t = generate(&k, "hdnts", &p, 0).unwrap();
        let v = value(&t);
        let ok = verify(&k, v, "/vod/a/b/c.ts", 1_050).unwrap();
        assert_eq!(ok.start, Some(1_000));
        assert_eq!(ok.expires, 1_100);
        assert!(!ok.is_url_token());
        assert!(verify(&k, v, "/live/x/y.m3u8", 1_050).is_ok());
        assert_eq!(verify(&k, v, "/live/x/y.ts", 1_050), Err(TokenError::AclMismatch));
        assert_eq!(verify(&k, v, "/vod/b/c.ts", 1_050), Err(TokenError::AclMismatch));
        assert_eq!(verify(&k, v, "/vod/a/x", 1_100), Err(TokenError::Expired { exp: 1_100, now: 1_100 }));
        assert!(verify(&k, v, "/vod/a/x", 1_000 - DEFAULT_START_LEEWAY_SECS).is_ok());
        assert_eq!(verify(&k, v, "/vod/a/x", 969), Err(TokenError::NotYetValid { start: 1_000, now: 969 }));
        let other = AkamaiKey::from_hex("00").unwrap();
        assert_eq!(verify(&other, v, "/vod/a/x", 1_050), Err(TokenError::BadSignature));
        assert!(matches!(verify(&k, &"a".repeat(MAX_TOKEN_LEN + 1), "/", 0), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn verify_url_token_binds_path() {
        let k = key();
        let p = TokenParams { start: Some(1_000), ..TokenParams::url("/vod/a/b.ts", 100) };
        let t = generate(&k, "hdnts", &p, 0).unwrap();
        assert!(verify(&k, value(&t), "/vod/a/b.ts", 1_010).unwrap().is_url_token());
        assert_eq!(verify(&k, value(&t), "/vod/a/c.ts", 1_010), Err(TokenError::BadSignature));

        let p = TokenParams { escape_early: true, ..p };
        let t = generate(&k, "hdnts", &p, 0).unwrap();
        assert_eq!(verify(&k, value(&t), "/vod/a/b.ts", 1_010), Err(TokenError::BadSignature));
        let opts = VerifyOptions { escape_early: true, ..VerifyOptions::default() };
        assert!(verify_with(&k, value(&t), "/vod/a/b.ts", 1_010, &opts).is_ok());
    }

    #[test]
    fn verify_ip_binding() {
        let k = key();
        let p = TokenParams { ip: Some("192.0.2.7".into()), ..TokenParams::acl("/*", 100) };
        let t = generate(&k, "hdnts", &p, 1_000).unwrap();
        assert_eq!(verify(&k, value(&t), "/a", 1_010), Err(TokenError::IpMismatch));
        let opts = |ip| VerifyOptions { client_ip: Some(ip), ..VerifyOptions::default() };
        assert!(verify_with(&k, value(&t), "/a", 1_010, &opts("192.0.2.7")).is_ok());
        assert_eq!(verify_with(&k, value(&t), "/a", 1_010, &opts("192.0.2.8")), Err(TokenError::IpMismatch));
    }

    #[test]
    fn verify_rejects_structural_tricks() {
        let k = key();
        let sign = |fields: &str| {
            let mut mac = k.mac().unwrap();
            mac.update(fields.as_bytes());
            format!("{fields}~hmac={}", to_hex(&mac.finalize().into_bytes()))
        };
        let m = |t: &str| matches!(verify(&k, t, "/a", 10), Err(TokenError::Malformed(_)));
        assert!(m(&sign("exp=100~acl=/*~acl=/b")));
        assert!(m(&sign("exp=100~url=/a")));
        assert!(m(&sign("acl=/*")));
        assert!(m(&sign("exp=+100~acl=/*")));
        assert!(m(&sign("exp=100~acl=")));
        assert!(m(&sign("exp=100~acl")));
        assert!(m(&sign("exp=99999999999999999999999~acl=/*")));
        assert!(m("hmac=00"));
        assert!(m(""));
        assert!(m(&sign("exp=100~acl=/*").to_uppercase()));
        assert!(verify(&k, &sign("exp=100~acl=/*"), "/a", 10).is_ok());
    }

    #[test]
    fn wildcard() {
        assert!(wildcard_match(b"/vod/*", b"/vod/"));
        assert!(wildcard_match(b"/vod/*", b"/vod/a/b.ts"));
        assert!(!wildcard_match(b"/vod/*", b"/vod"));
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"", b""));
        assert!(!wildcard_match(b"", b"/"));
        assert!(wildcard_match(b"/a/*/x*.ts", b"/a/b/c/xyz.ts"));
        assert!(!wildcard_match(b"/a/*/x*.ts", b"/a/b/c/xyz.tsx"));
        assert!(wildcard_match(b"/exact", b"/exact"));
        assert!(!wildcard_match(b"/exact", b"/exactly"));
        assert!(wildcard_match(b"**a**", b"bab"));
        // Pathological input stays fast.
        let s = vec![b'a'; 4000];
        let p = [b"*a".repeat(1000), b"b".to_vec()].concat();
        assert!(!wildcard_match(&p, &s));
    }

    #[test]
    fn escaping_matches_quote_plus() {
        assert_eq!(escape_early("a b~c/d"), "a+b~c%2fd");
        assert_eq!(escape_early("AZaz09_.-"), "AZaz09_.-");
        assert_eq!(escape_early("é*?"), "%c3%a9%2a%3f");
    }

    fn path_suffix() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9/._~!*%-]{0,40}").unwrap()
    }

    proptest! {
        #[test]
        fn token_round_trip_under_acl(suffix in path_suffix(), start in 1u64..4_000_000_000, window in 1u64..100_000, at in 0u64..100_000) {
            let k = key();
            let p = TokenParams { start: Some(start), ..TokenParams::acl("/vod/a/*", window) };
            let t = generate(&k, "hdnts", &p, 0).unwrap();
            let now = start + (at % window);
            let path = format!("/vod/a/{suffix}");
            let v = verify(&k, value(&t), &path, now).unwrap();
            prop_assert_eq!(v.expires, start + window);
        }

        #[test]
        fn token_round_trip_url(path in "/[a-z0-9/ ?=&%~.]{0,40}", escape in any::<bool>(), now in 1u64..4_000_000_000) {
            let k = key();
            let p = TokenParams { escape_early: escape, ..TokenParams::url(path.clone(), 60) };
            let t = generate(&k, "hdnts", &p, now).unwrap();
            let opts = VerifyOptions { escape_early: escape, ..VerifyOptions::default() };
            prop_assert!(verify_with(&k, value(&t), &path, now, &opts).is_ok());
        }

        #[test]
        fn token_any_single_byte_change_fails(idx in any::<prop::sample::Index>(), replacement in any::<u8>(), with_extras in any::<bool>()) {
            let k = key();
            let mut p = TokenParams { start: Some(1_000), ..TokenParams::acl("/vod/*", 500) };
            if with_extras {
                p.session_id = Some("sess1".into());
                p.payload = Some("abc".into());
            }
            let t = generate(&k, "hdnts", &p, 0).unwrap();
            let mut bytes = value(&t).as_bytes().to_vec();
            let i = idx.index(bytes.len());
            prop_assume!(bytes[i] != replacement);
            bytes[i] = replacement;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(verify(&k, &changed, "/vod/a.ts", 1_100).is_err(), "{} verified", changed);
        }

        #[test]
        fn token_verify_never_panics(s in ".{0,300}", path in ".{0,60}", now in any::<u64>(), leeway in any::<u64>(), fd in any::<char>(), ad in any::<char>()) {
            let k = key();
            let _ = verify(&k, &s, &path, now);
            let opts = VerifyOptions { field_delimiter: fd, acl_delimiter: ad, start_leeway: leeway, escape_early: true, client_ip: Some(&path) };
            let _ = verify_with(&k, &s, &path, now, &opts);
        }

        #[test]
        fn token_verify_never_panics_near_valid(fields in "(ip|st|exp|acl|id|data|hmac|x)=[0-9a-f/*]{0,70}(~(ip|st|exp|acl|id|data|hmac)=[0-9a-f/*!]{0,70}){0,6}", now in any::<u64>()) {
            let _ = verify(&key(), &fields, "/a/b", now);
        }

        #[test]
        fn token_generate_never_panics(acl in ".{0,50}", id in ".{0,20}", start in any::<Option<u64>>(), window in any::<u64>(), now in any::<u64>(), esc in any::<bool>()) {
            let p = TokenParams { start, session_id: Some(id), escape_early: esc, ..TokenParams::acl(acl, window) };
            let _ = generate(&key(), "hdnts", &p, now);
        }
    }
}
