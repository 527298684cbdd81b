//! Query parameters that belong to streamgate, not to the origin: per-request rendition
//! filters (`sg.*`), values propagated to child URLs, and the signed-URL token. They are
//! read here and removed from the query that goes upstream.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use streamgate_manifest::Filter;

use crate::error::ProxyError;
use crate::routing::Route;

/// Everything but RFC 3986 unreserved characters is encoded in propagated values, so no
/// request can inject text into a manifest.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What a request contributes to its manifest's transformation.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The query to send upstream, when it differs from the client's (`Some(None)`: drop it).
    pub upstream_query: Option<Option<String>>,
    /// Filter from `sg.*` parameters.
    pub filter: Option<Filter>,
    /// `name=value` pairs (encoded) to append to child URLs.
    pub propagate: Vec<String>,
}

/// The raw (percent-decoded) value of a query parameter.
pub fn find(query: &str, name: &str) -> Option<String> {
    crate::params::query(query, name).map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ProxyError> {
    v.trim().parse().map_err(|_| ProxyError::BadRequest(format!("query parameter {key}={v:?} is not a valid number")))
}

/// Reads streamgate's parameters from the request query and computes the upstream query.
pub fn prepare(route: &Route, query: Option<&str>) -> Result<Prepared, ProxyError> {
    let mut p = Prepared::default();
    let Some(q) = query else { return Ok(p) };
    let token_param = route.tokenize.as_ref().map(|t| t.param.as_str());
    let mut keep: Vec<&str> = Vec::new();
    let mut changed = false;
    let mut f = Filter::default();
    for kv in q.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let value = percent_decode_str(v).decode_utf8_lossy();
        if let Some(name) = k.strip_prefix("sg.") {
            changed = true;
            if !route.manifest.allow_query_filters {
                continue;
            }
            match name {
                "min_bandwidth" => f.min_bandwidth = Some(num(k, &value)?),
                "max_bandwidth" => f.max_bandwidth = Some(num(k, &value)?),
                "max_height" => f.max_height = Some(num(k, &value)?),
                "max_width" => f.max_width = Some(num(k, &value)?),
                "max_frame_rate" => f.max_frame_rate = Some(num(k, &value)?),
                "codecs" => f.codecs = value.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect(),
                _ => return Err(ProxyError::BadRequest(format!("unknown filter parameter {k}"))),
            }
            continue;
        }
        if Some(k) == token_param || route.auth.as_ref().is_some_and(|a| a.query_params().any(|n| n == k)) {
            changed = true;
            continue;
        }
        if route.manifest.propagate_query.iter().any(|n| n == k) {
            p.propagate.push(format!("{}={}", utf8_percent_encode(k, VALUE), utf8_percent_encode(&value, VALUE)));
        }
        keep.push(kv);
    }
    if !f.is_empty() {
        p.filter = Some(f);
    }
    if changed {
        p.upstream_query = Some(if keep.is_empty() { None } else { Some(keep.join("&")) });
    }
    Ok(p)
}

/// The stricter of two filters.
pub fn merge(a: &Filter, b: &Filter) -> Filter {
    let min = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    let max = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    Filter {
        min_bandwidth: max(a.min_bandwidth, b.min_bandwidth),
        max_bandwidth: min(a.max_bandwidth, b.max_bandwidth),
        max_height: min(a.max_height, b.max_height),
        max_width: min(a.max_width, b.max_width),
        codecs: match (a.codecs.is_empty(), b.codecs.is_empty()) {
            (true, _) => b.codecs.clone(),
            (_, true) => a.codecs.clone(),
            _ => {
                // A codec must pass both lists: keep the more specific prefix of each
                // overlapping pair. No overlap means nothing passes, which an empty list
                // (no limit) would not say: "!" starts no codec name.
                let mut both: Vec<String> = Vec::new();
                for x in &a.codecs {
                    for y in &b.codecs {
                        if x.starts_with(y.as_str()) {
                            both.push(x.clone());
                        } else if y.starts_with(x.as_str()) {
                            both.push(y.clone());
                        }
                    }
                }
                if both.is_empty() {
                    both.push("!".into());
                }
                both
            }
        },
        max_frame_rate: match (a.max_frame_rate, b.max_frame_rate) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_filters_are_the_stricter_of_both() {
        let route = Filter { codecs: vec!["avc1".into(), "mp4a".into()], max_height: Some(1080), ..Default::default() };
        let viewer = Filter { codecs: vec!["hvc1".into()], max_height: Some(2160), ..Default::default() };
        let m = merge(&route, &viewer);
        assert_eq!(m.max_height, Some(1080), "a viewer cannot raise the route's bound");
        let hevc = streamgate_manifest::filter::Rendition { codecs: Some("hvc1.1.6.L93"), ..Default::default() };
        let avc = streamgate_manifest::filter::Rendition { codecs: Some("avc1.640028"), ..Default::default() };
        assert!(!m.keeps(&hevc), "a viewer cannot undo the route's codec filter");
        assert!(!m.keeps(&avc), "no codec passes both lists");
        let narrower = merge(&route, &Filter { codecs: vec!["avc1.64".into()], ..Default::default() });
        assert_eq!(narrower.codecs, vec!["avc1.64".to_owned()]);
    }
}
