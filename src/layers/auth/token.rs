//! Finding the credential in a request: `Authorization: Bearer`, a named header, a query
//! parameter or a cookie, in the configured order. The first source that carries one
//! wins. Its raw size is checked before anything else is done with it.

use std::borrow::Cow;

use http::header::AUTHORIZATION;
use percent_encoding::percent_decode_str;

use crate::config::auth::TokenSource;
use crate::layers::Head;

/// The credential was longer than `max_token_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// The credential of the first source that has one, borrowed from the request where it
/// can be.
pub fn find<'a>(head: &Head<'a>, sources: &[TokenSource], max: usize) -> Result<Option<Cow<'a, str>>, TooLarge> {
    for source in sources {
        let raw = match source {
            TokenSource::Header => bearer(head),
            TokenSource::NamedHeader(name) => head.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim),
            TokenSource::Query(name) => head.uri.query().and_then(|q| crate::params::query(q, name)),
            TokenSource::Cookie(name) => crate::params::cookie(head.headers, name),
        };
        let Some(raw) = raw.filter(|t| !t.is_empty()) else { continue };
        if raw.len() > max {
            return Err(TooLarge);
        }
        return Ok(Some(match source {
            TokenSource::Query(_) => percent_decode_str(raw).decode_utf8().unwrap_or(Cow::Borrowed(raw)),
            _ => Cow::Borrowed(raw),
        }));
    }
    Ok(None)
}

/// `Authorization: Bearer TOKEN` (scheme case-insensitive, RFC 6750 §2.1).
fn bearer<'a>(head: &Head<'a>) -> Option<&'a str> {
    let v = head.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method, Uri};

    fn found(uri: &str, headers: &[(&'static str, &'static str)], sources: &[TokenSource]) -> Result<Option<String>, TooLarge> {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(*k, HeaderValue::from_static(v));
        }
        let head = Head { method: &Method::GET, uri: &uri, headers: &h };
        find(&head, sources, 16).map(|t| t.map(Cow::into_owned))
    }

    #[test]
    fn sources_are_tried_in_order() {
        let all = [TokenSource::Header, TokenSource::Query("token".into()), TokenSource::Cookie("sg".into())];
        let both = [("authorization", "Bearer hdr"), ("cookie", "a=b; sg=\"ck\"")];
        assert_eq!(found("/x?token=q%2Ex", &both, &all), Ok(Some("hdr".into())));
        assert_eq!(found("/x?token=q%2Ex", &[("cookie", "sg=ck")], &all), Ok(Some("q.x".into())));
        assert_eq!(found("/x?mytoken=no", &[("cookie", "x=1"), ("cookie", "sg=\"ck\"")], &all), Ok(Some("ck".into())));
        assert_eq!(found("/x", &[("authorization", "Basic abc")], &all), Ok(None));
        assert_eq!(found("/x", &[("authorization", "bearer   lower ")], &all), Ok(Some("lower".into())));
        assert_eq!(found("/x?token=q", &[], &[TokenSource::Header]), Ok(None), "a source that is not allowed is not read");
        assert_eq!(found("/x?token=0123456789abcdefX", &[], &all), Err(TooLarge));
        let named = [TokenSource::NamedHeader(http::HeaderName::from_static("x-api-key"))];
        assert_eq!(found("/x", &[("x-api-key", " k1 ")], &named), Ok(Some("k1".into())));
    }
}
