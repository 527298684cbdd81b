//! Just enough of RFC 3986 for manifests: split a reference into its parts, resolve it
//! against a base (§5.2), remove dot segments. Works on `&str` without normalizing or
//! re-encoding anything, so a URL that needs no change is never touched, and template
//! identifiers such as `$Number%05d$` pass through as the characters they are.

/// The five components of a URI reference (RFC 3986 appendix B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parts<'a> {
    /// `http`, without the colon.
    pub scheme: Option<&'a str>,
    /// `host:port`, without the slashes.
    pub authority: Option<&'a str>,
    /// The path, possibly empty.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The fragment, without `#`.
    pub fragment: Option<&'a str>,
}

/// Splits a reference into its parts.
pub fn split(s: &str) -> Parts<'_> {
    let b = s.as_bytes();
    let mut p = Parts::default();
    let mut end = b.len();
    // One scan finds whichever of '?' and '#' comes first: a '?' after the '#' belongs
    // to the fragment, so the fragment search then only covers the query.
    if let Some(i) = memchr::memchr2(b'?', b'#', b) {
        if b[i] == b'#' {
            p.fragment = Some(&s[i + 1..]);
            end = i;
        } else {
            if let Some(j) = memchr::memchr(b'#', &b[i + 1..]) {
                p.fragment = Some(&s[i + 2 + j..]);
                end = i + 1 + j;
            }
            p.query = Some(&s[i + 1..end]);
            end = i;
        }
    }
    let mut start = 0;
    // A scheme is letters, digits, + - . up to the first ':' that comes before any '/'.
    if let Some(colon) = memchr::memchr2(b':', b'/', &b[..end]).filter(|&i| b[i] == b':') {
        let cand = &b[..colon];
        if cand.first().is_some_and(u8::is_ascii_alphabetic)
            && cand.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            p.scheme = Some(&s[..colon]);
            start = colon + 1;
        }
    }
    if b[start..end].starts_with(b"//") {
        let a = start + 2;
        let a_end = memchr::memchr(b'/', &b[a..end]).map_or(end, |i| a + i);
        p.authority = Some(&s[a..a_end]);
        start = a_end;
    }
    p.path = &s[start..end];
    p
}

/// True when the reference has a scheme (`http://…`, `data:…`).
pub fn has_scheme(s: &str) -> bool {
    split(s).scheme.is_some()
}

/// RFC 3986 §5.2.4.
pub fn remove_dot_segments(path: &str) -> String {
    if !path.contains("./") && !path.ends_with("/.") && !path.ends_with("/..") && path != "." && path != ".." {
        return path.to_owned();
    }
    let mut input = path;
    let mut out: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = r;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            out.pop();
        } else if input == "/.." {
            input = "/";
            out.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push(&input[..end]);
            input = &input[end..];
        }
    }
    let mut s: String = out.concat();
    if absolute && !s.starts_with('/') {
        s.insert(0, '/');
    }
    s
}

fn merge(base: &Parts<'_>, rel_path: &str) -> String {
    if base.authority.is_some() && base.path.is_empty() {
        return format!("/{rel_path}");
    }
    match base.path.rfind('/') {
        Some(i) => format!("{}{}", &base.path[..=i], rel_path),
        None => rel_path.to_owned(),
    }
}

/// Resolves `reference` against `base` (RFC 3986 §5.2.2). The base may be absolute
/// (`http://h/a/b`) or an absolute path (`/a/b`).
pub fn resolve(base: &str, reference: &str) -> String {
    let b = split(base);
    let r = split(reference);
    let (scheme, authority, path, query);
    if r.scheme.is_some() {
        scheme = r.scheme;
        authority = r.authority;
        path = remove_dot_segments(r.path);
        query = r.query;
    } else {
        scheme = b.scheme;
        if r.authority.is_some() {
            authority = r.authority;
            path = remove_dot_segments(r.path);
            query = r.query;
        } else {
            authority = b.authority;
            if r.path.is_empty() {
                path = b.path.to_owned();
                query = if r.query.is_some() { r.query } else { b.query };
            } else {
                path = if r.path.starts_with('/') { remove_dot_segments(r.path) } else { remove_dot_segments(&merge(&b, r.path)) };
                query = r.query;
            }
        }
    }
    let mut out = String::with_capacity(base.len() + reference.len());
    if let Some(s) = scheme {
        out.push_str(s);
        out.push(':');
    }
    if let Some(a) = authority {
        out.push_str("//");
        out.push_str(a);
    }
    out.push_str(&path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = r.fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986 §5.4.1 normal examples.
    #[test]
    fn rfc3986_5_4_1() {
        let base = "http://a/b/c/d;p?q";
        for (r, want) in [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("g?y#s", "http://a/b/c/g?y#s"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
        ] {
            assert_eq!(resolve(base, r), want, "{r}");
        }
    }

    /// RFC 3986 §5.4.2 abnormal examples.
    #[test]
    fn rfc3986_5_4_2() {
        let base = "http://a/b/c/d;p?q";
        for (r, want) in [
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g#s/../x", "http://a/b/c/g#s/../x"),
        ] {
            assert_eq!(resolve(base, r), want, "{r}");
        }
    }

    proptest::proptest! {
        /// The parts put back together are the input, and the query and fragment are
        /// where RFC 3986 appendix B's regular expression puts them.
        #[test]
        fn split_round_trips(s in "[a-z:/?#.%$]{0,24}") {
            let p = split(&s);
            let mut back = String::new();
            if let Some(x) = p.scheme { back.push_str(x); back.push(':'); }
            if let Some(x) = p.authority { back.push_str("//"); back.push_str(x); }
            back.push_str(p.path);
            if let Some(x) = p.query { back.push('?'); back.push_str(x); }
            if let Some(x) = p.fragment { back.push('#'); back.push_str(x); }
            proptest::prop_assert_eq!(&back, &s);
            let (head, frag) = s.split_once('#').map_or((s.as_str(), None), |(h, f)| (h, Some(f)));
            proptest::prop_assert_eq!(p.fragment, frag);
            proptest::prop_assert_eq!(p.query, head.split_once('?').map(|(_, q)| q));
        }
    }

    #[test]
    fn templates_and_path_bases_survive() {
        assert_eq!(
            resolve("http://o/dash/p0/", "$RepresentationID$/seg-$Number%05d$.m4s"),
            "http://o/dash/p0/$RepresentationID$/seg-$Number%05d$.m4s"
        );
        assert_eq!(resolve("/vod/a/master.m3u8", "v1/index.m3u8?x=1"), "/vod/a/v1/index.m3u8?x=1");
        assert_eq!(resolve("/vod/a/master.m3u8", "../../../x.ts"), "/x.ts");
    }
}
