//! Route lookup: the longest matching prefix wins; among equal prefixes a route for the
//! request's host beats a route for any host.

use std::sync::Arc;

use streamgate_manifest::token::AkamaiKey;
use streamgate_manifest::{Filter, Mapper};

use crate::config::schema::ManifestConfig;
use crate::telemetry::metrics::RouteStats;
use crate::upstream::OriginPool;

/// A compiled route.
pub struct Route {
    /// Its name.
    pub name: Arc<str>,
    /// Path prefix.
    pub prefix: String,
    /// Lower-cased host, if host-specific.
    pub host: Option<String>,
    /// Strip the prefix before going upstream.
    pub strip_prefix: bool,
    /// The origin pool.
    pub origin: Arc<OriginPool>,
    /// Manifest settings.
    pub manifest: ManifestConfig,
    /// Counters.
    pub stats: Arc<RouteStats>,
    /// How child URLs in this route's manifests map.
    pub mapper: Mapper,
    /// The static rendition filter.
    pub filter: Option<Filter>,
    /// Signed child URLs.
    pub tokenize: Option<RouteToken>,
    /// Viewer authentication.
    pub auth: Option<Arc<crate::layers::auth::Authenticator>>,
    /// Rate limit.
    pub rate_limit: Option<Arc<crate::layers::rate_limit::RateLimiter>>,
    /// CORS for browser players.
    pub cors: Option<crate::layers::cors::Cors>,
    /// Rego policy.
    pub policy: Option<crate::layers::policy::Policy>,
}

/// `[routes.X.tokenize]`, compiled.
pub struct RouteToken {
    /// The decoded HMAC key.
    pub key: AkamaiKey,
    /// Token lifetime in seconds.
    pub ttl: u64,
    /// Require a valid token on every request.
    pub verify: bool,
    /// Query parameter / cookie name.
    pub param: String,
}

impl Route {
    /// The path to send upstream for a request path under this route.
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.strip_prefix {
            return path.into();
        }
        let rest = path.get(self.prefix.len()..).unwrap_or("");
        if rest.starts_with('/') {
            rest.into()
        } else {
            format!("/{rest}").into()
        }
    }
}

/// Routes ordered for lookup.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Orders routes: longer prefixes first, host-specific before any-host.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then(b.host.is_some().cmp(&a.host.is_some())));
        Self { routes }
    }

    /// The route for a request, if any. `host` is the request host without port, any case.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            path.starts_with(r.prefix.as_str())
                && match (&r.host, host) {
                    (None, _) => true,
                    (Some(want), Some(h)) => want.eq_ignore_ascii_case(h),
                    (Some(_), None) => false,
                }
        })
    }

    /// All routes, in lookup order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }
}

/// The host of a request without port: from the URI authority (HTTP/2, absolute form)
/// or the `Host` header.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    let raw = uri.authority().map(|a| a.as_str()).or_else(|| headers.get(http::header::HOST).and_then(|v| v.to_str().ok()))?;
    Some(strip_port(raw))
}

fn strip_port(authority: &str) -> &str {
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| h).trim_start_matches('[');
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_without_ports() {
        assert_eq!(strip_port("video.example.com:8080"), "video.example.com");
        assert_eq!(strip_port("video.example.com"), "video.example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
