//! URL mapping: which child URLs belong to an origin, and what they become.
//!
//! A child belongs to a route when, resolved to an absolute URL, its scheme and
//! authority are one of the route's origin urls or aliases and its path lies below that
//! url's base path. It then maps to:
//!
//! - `proxy`: the route's public path, as an absolute-path reference (`/vod/a/seg.ts`).
//!   Absolute-path rather than absolute (scheme + host), because the proxy is often
//!   reached under several names (its own, a CDN's); an absolute-path reference keeps
//!   the player on whichever name and scheme it used. Relative references that already
//!   resolve to the right place are left exactly as written.
//! - `cdn`: `cdn_base` + the path below the route.
//!
//! Children of another route's origin map to that route's public path; children on
//! hosts no route serves stay as written.

use crate::url::{self, Parts};

/// The route's rewrite mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Children come back through the proxy.
    Proxy,
    /// Children go to `cdn_base`.
    Cdn,
    /// Nothing is rewritten.
    None,
}

/// One origin url or alias: `scheme://authority/base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginId {
    scheme: String,
    authority: String,
    base_path: String,
}

impl OriginId {
    /// Parses `http://host[:port][/base]`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let p = url::split(s);
        let scheme = p.scheme?.to_ascii_lowercase();
        let authority = normalize_authority(&scheme, p.authority?);
        if authority.is_empty() {
            return None;
        }
        Some(Self { scheme, authority, base_path: p.path.trim_end_matches('/').to_owned() })
    }

    /// The path below this origin url, when `p` is on it.
    fn path_below<'a>(&self, p: &Parts<'a>) -> Option<&'a str> {
        let scheme = p.scheme?;
        let authority = p.authority?;
        if !scheme.eq_ignore_ascii_case(&self.scheme) || !authority_eq(&self.scheme, authority, &self.authority) {
            return None;
        }
        if self.base_path.is_empty() {
            return Some(p.path);
        }
        let rest = p.path.strip_prefix(self.base_path.as_str())?;
        if rest.is_empty() || rest.starts_with('/') {
            Some(rest)
        } else {
            None
        }
    }
}

fn default_port(scheme: &str) -> &'static str {
    match scheme {
        "https" => ":443",
        _ => ":80",
    }
}

fn normalize_authority(scheme: &str, a: &str) -> String {
    let a = a.to_ascii_lowercase();
    a.strip_suffix(default_port(scheme)).map(str::to_owned).unwrap_or(a)
}

fn authority_eq(scheme: &str, given: &str, normalized: &str) -> bool {
    if given.len() == normalized.len() {
        return given.eq_ignore_ascii_case(normalized);
    }
    // Bytes, not str slices: `given` comes from the document and may hold any character
    // where `normalized` ends (found by fuzzing: a BOM inside an authority).
    let (g, n, dp) = (given.as_bytes(), normalized.as_bytes(), default_port(scheme).as_bytes());
    g.len() == n.len() + dp.len() && g.ends_with(dp) && g[..n.len()].eq_ignore_ascii_case(n)
}

/// A route children can be mapped to: its origins and public prefix.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// Origin urls and aliases.
    pub origins: Vec<OriginId>,
    /// Public path prefix (`/vod/`).
    pub prefix: String,
    /// Whether the prefix is stripped on the way to the origin.
    pub strip_prefix: bool,
}

impl RouteTarget {
    /// The public path of an origin path on this route, if the route can serve it.
    fn public_path(&self, origin_path: &str, out: &mut String) -> bool {
        let origin_path = if origin_path.is_empty() { "/" } else { origin_path };
        if self.strip_prefix {
            out.push_str(self.prefix.trim_end_matches('/'));
            out.push_str(origin_path);
            true
        } else if origin_path.starts_with(self.prefix.as_str()) {
            out.push_str(origin_path);
            true
        } else {
            false
        }
    }
}

/// The mapping rules of one route.
#[derive(Debug, Clone)]
pub struct Mapper {
    mode: Mode,
    cdn_base: String,
    own: RouteTarget,
    others: Vec<RouteTarget>,
}

impl Mapper {
    /// Rules for a route. `cdn_base` is used in `Mode::Cdn` (a trailing `/` is added).
    pub fn new(mode: Mode, cdn_base: Option<&str>, own: RouteTarget, others: Vec<RouteTarget>) -> Self {
        let mut cdn_base = cdn_base.unwrap_or("").to_owned();
        if mode == Mode::Cdn && !cdn_base.ends_with('/') {
            cdn_base.push('/');
        }
        Self { mode, cdn_base, own, others }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The route this mapper belongs to.
    pub fn own(&self) -> &RouteTarget {
        &self.own
    }

    /// Maps an absolute URL into `out` (cleared first); false when it belongs to no route
    /// (or the mode is `none`). Query and fragment are kept.
    pub fn map_absolute(&self, abs: &str, out: &mut String) -> bool {
        self.map_parts(&url::split(abs), out)
    }

    /// [`Mapper::map_absolute`] on an already split URL.
    pub fn map_parts(&self, p: &Parts<'_>, out: &mut String) -> bool {
        out.clear();
        if self.mode == Mode::None || p.scheme.is_none() || p.authority.is_none() {
            return false;
        }
        let own = self.own.origins.iter().find_map(|o| o.path_below(p));
        let mapped = if let Some(origin_path) = own {
            match self.mode {
                Mode::Cdn => {
                    // The path below the route: what follows the prefix in the public path.
                    let op = if origin_path.is_empty() { "/" } else { origin_path };
                    let below = if self.own.strip_prefix {
                        op
                    } else if let Some(rest) = op.strip_prefix(self.own.prefix.as_str()) {
                        rest
                    } else {
                        return false;
                    };
                    out.push_str(&self.cdn_base);
                    out.push_str(below.trim_start_matches('/'));
                    true
                }
                _ => self.own.public_path(origin_path, out),
            }
        } else {
            self.others.iter().any(|r| {
                r.origins.iter().find_map(|o| o.path_below(p)).is_some_and(|op| {
                    out.clear();
                    r.public_path(op, out)
                })
            })
        };
        if !mapped {
            out.clear();
            return false;
        }
        if let Some(q) = p.query {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = p.fragment {
            out.push('#');
            out.push_str(f);
        }
        true
    }
}

/// A pair of bases a relative reference is resolved against: where the document (or
/// DASH BaseURL) lives on the origin, and where the client will resolve it.
#[derive(Debug, Clone)]
pub struct Base {
    /// Absolute origin URL.
    pub origin: String,
    /// What the client resolves against: an absolute-path or absolute URL.
    pub public: String,
    /// Whether the directories of the two correspond under the mapping, so a simple
    /// relative path (`seg1.ts`, `v/seg.m4s`) already points to the right place.
    pub coherent: bool,
}

impl Base {
    /// Builds a base pair and decides coherence once.
    pub fn new(mapper: &Mapper, origin: String, public: String) -> Self {
        Self::new_with(mapper, origin, public, &mut String::new())
    }

    /// [`Base::new`] with a reusable buffer for the mapped origin URL.
    pub fn new_with(mapper: &Mapper, origin: String, public: String, scratch: &mut String) -> Self {
        let coherent = mapper.map_absolute(&origin, scratch) && dir(strip_qf(scratch)) == dir(strip_qf(&public));
        Self { origin, public, coherent }
    }
}

fn strip_qf(s: &str) -> &str {
    let end = memchr::memchr2(b'?', b'#', s.as_bytes()).unwrap_or(s.len());
    &s[..end]
}

fn dir(s: &str) -> &str {
    match s.rfind('/') {
        Some(i) => &s[..=i],
        None => "",
    }
}

/// A relative path with no scheme, no leading `/`, and no `.`/`..` segments: it resolves
/// within the base's directory.
pub fn is_simple_relative(r: &str) -> bool {
    if r.is_empty() || r.starts_with('/') || r.starts_with('?') || r.starts_with('#') || url::has_scheme(r) {
        return false;
    }
    // No "." or ".." segment: every '.' that starts a segment is followed by more than
    // one more '.'-or-end of that segment.
    let b = strip_qf(r).as_bytes();
    !memchr::memchr_iter(b'.', b).any(|i| {
        let starts_segment = i == 0 || b[i - 1] == b'/';
        let rest = &b[i + 1..];
        starts_segment && (rest.is_empty() || rest[0] == b'/' || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/')))
    })
}

/// Appends an encoded `k=v&…` to a URL, before its fragment.
pub fn append_query(url: &mut String, extra: &str) {
    if extra.is_empty() {
        return;
    }
    let frag = url.find('#');
    let head_end = frag.unwrap_or(url.len());
    let sep = if url[..head_end].contains('?') { '&' } else { '?' };
    let insert = format!("{sep}{extra}");
    url.insert_str(head_end, &insert);
}

/// Decides the new value of one URI reference found in a document with `base`: writes
/// the replacement into `out` (a reusable buffer) and returns whether there is one. The hot path of playlist rewriting: no allocation per URI once
/// `out` has grown.
pub fn decide_into(mapper: &Mapper, base: &Base, reference: &str, extra_query: &str, out: &mut String) -> bool {
    out.clear();
    if mapper.mode() == Mode::None {
        return false;
    }
    let r = reference.trim();
    if r.is_empty() || r.starts_with('#') {
        return false;
    }
    let parts = url::split(r);
    if parts.scheme.is_some() {
        if !mapper.map_parts(&parts, out) {
            return false;
        }
        append_query(out, extra_query);
        return out.as_str() != r;
    }
    // With a query to add, children are written as absolute paths: some players (FFmpeg
    // 5.1's HLS demuxer among them) lose the query of a relative reference whose query
    // holds a '/', as token ACLs do.
    if extra_query.is_empty() && base.coherent && is_simple_relative(r) {
        return false;
    }
    let abs = url::resolve(&base.origin, r);
    if !mapper.map_absolute(&abs, out) {
        return false;
    }
    if extra_query.is_empty() && url::resolve(&base.public, r) == *out {
        out.clear();
        return false;
    }
    append_query(out, extra_query);
    out.as_str() != r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(origins: &[&str], prefix: &str, strip: bool) -> RouteTarget {
        RouteTarget { origins: origins.iter().filter_map(|o| OriginId::parse(o)).collect(), prefix: prefix.into(), strip_prefix: strip }
    }

    fn mapper(mode: Mode) -> Mapper {
        Mapper::new(
            mode,
            Some("https://cdn.example.com/vod"),
            route(&["http://127.0.0.1:18080", "http://origin.example.com/media"], "/vod/", true),
            vec![route(&["http://live.example.com"], "/live/", false)],
        )
    }

    fn map(m: &Mapper, u: &str) -> Option<String> {
        let mut out = String::new();
        m.map_absolute(u, &mut out).then_some(out)
    }

    #[test]
    fn proxy_mode_maps_origin_urls_and_aliases() {
        let m = mapper(Mode::Proxy);
        assert_eq!(map(&m, "http://127.0.0.1:18080/a/seg.ts?x=1").as_deref(), Some("/vod/a/seg.ts?x=1"));
        assert_eq!(map(&m, "HTTP://Origin.Example.com:80/media/a/b.m4s").as_deref(), Some("/vod/a/b.m4s"));
        assert_eq!(map(&m, "http://origin.example.com/other/a.ts"), None, "outside the alias base path");
        assert_eq!(map(&m, "http://origin.example.com/mediax/a.ts"), None);
        assert_eq!(map(&m, "http://elsewhere.example.com/a.ts"), None);
        assert_eq!(map(&m, "http://live.example.com/live/ch1/i.m3u8").as_deref(), Some("/live/ch1/i.m3u8"), "another route");
        assert_eq!(map(&m, "http://live.example.com/notlive/x"), None);
    }

    #[test]
    fn cdn_mode_uses_the_path_below_the_route() {
        let m = mapper(Mode::Cdn);
        assert_eq!(map(&m, "http://127.0.0.1:18080/a/seg.ts?x=1#f").as_deref(), Some("https://cdn.example.com/vod/a/seg.ts?x=1#f"));
    }

    fn decide(m: &Mapper, base: &Base, r: &str, extra: &str) -> Option<String> {
        let mut out = String::new();
        decide_into(m, base, r, extra, &mut out).then_some(out)
    }

    #[test]
    fn relative_references_are_kept_when_they_already_resolve_right() {
        let m = mapper(Mode::Proxy);
        let base = Base::new(&m, "http://127.0.0.1:18080/a/master.m3u8".into(), "/vod/a/master.m3u8".into());
        assert!(base.coherent);
        assert_eq!(decide(&m, &base, "v1/index.m3u8", ""), None);
        assert_eq!(decide(&m, &base, "../b/x.ts", ""), None);
        assert_eq!(
            decide(&m, &base, "../../../x.ts", "").as_deref(),
            Some("/vod/x.ts"),
            "a reference climbing out of the route is rewritten"
        );
        assert_eq!(decide(&m, &base, "v1/index.m3u8", "session=a%20b").as_deref(), Some("/vod/a/v1/index.m3u8?session=a%20b"));
        let cdn = mapper(Mode::Cdn);
        let base = Base::new(&cdn, "http://127.0.0.1:18080/a/master.m3u8".into(), "/vod/a/master.m3u8".into());
        assert!(!base.coherent);
        assert_eq!(
            decide(&cdn, &base, "v1/index.m3u8?t=1", "").as_deref(),
            Some("https://cdn.example.com/vod/a/v1/index.m3u8?t=1"),
            "cdn mode makes relative children absolute"
        );
    }

    #[test]
    fn fuzz_finding_multibyte_character_where_an_authority_ends() {
        // dash_rewrite crash: "index 9 is not a char boundary; it is inside '\u{feff}'".
        let m = mapper(Mode::Proxy);
        assert_eq!(map(&m, "http://live.tes\u{feff}/live/a"), None);
        assert_eq!(map(&m, "http://127.0.0.\u{feff}:80/a"), None);
    }

    #[test]
    fn append_query_respects_existing_query_and_fragment() {
        let mut u = String::from("/a/b.ts?x=1#t=3");
        append_query(&mut u, "tok=2");
        assert_eq!(u, "/a/b.ts?x=1&tok=2#t=3");
        let mut u = String::from("/a/b.ts");
        append_query(&mut u, "tok=2");
        assert_eq!(u, "/a/b.ts?tok=2");
    }

    #[test]
    fn simple_relative_references() {
        for yes in ["seg1.ts", "v/seg.m4s", "$RepresentationID$/seg-$Time$.m4s", ".hidden/a", "a/..b/c", "a/b..", "x?q=/../"] {
            assert!(is_simple_relative(yes), "{yes}");
        }
        for no in ["../a.ts", "./a.ts", "a/./b", "a/..", "a/.", ".", "..", "/abs", "?q", "#f", "http://h/a", ""] {
            assert!(!is_simple_relative(no), "{no}");
        }
    }

    proptest::proptest! {
        #[test]
        fn simple_relative_matches_the_segment_definition(r in "[a./?#]{0,12}") {
            let reference = !(r.is_empty() || r.starts_with('/') || r.starts_with('?') || r.starts_with('#') || url::has_scheme(&r))
                && !strip_qf(&r).split('/').any(|seg| seg == "." || seg == "..");
            proptest::prop_assert_eq!(is_simple_relative(&r), reference);
        }
    }
}
