//! Reading one query parameter or one cookie from a request: the one place every stage
//! that takes a value from the viewer (tokens, credentials, session ids, rate-limit keys,
//! admin parameters) reads it, so they all agree on what `?a=1&a=2` or `a="x"` mean.

use http::header::COOKIE;
use http::HeaderMap;

/// The raw (still percent-encoded) value of the first query parameter named `name`; a
/// parameter without `=` has the empty value.
pub fn query<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The value of the first cookie named `name` in any `Cookie` header, surrounding quotes
/// removed.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(v)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn first_parameter_and_cookie_win() {
        assert_eq!(query("a=1&b=2&a=3", "a"), Some("1"));
        assert_eq!(query("flag&b=%20", "flag"), Some(""));
        assert_eq!(query("ab=1", "a"), None, "names match whole");
        assert_eq!(query("b=%20", "b"), Some("%20"), "raw: decoding is the caller's");
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("x=1; sg = \"ck\""));
        h.append(COOKIE, HeaderValue::from_static("sg=later"));
        assert_eq!(cookie(&h, "sg"), Some("ck"));
        assert_eq!(cookie(&h, "s"), None);
        assert_eq!(cookie(&h, "x"), Some("1"));
    }
}
