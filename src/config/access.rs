//! The request context settings (`server.trusted_proxies`, `server.session_from`,
//! `[geoip]`) and the per-route CORS and policy settings, validated.

use std::path::Path;

use super::schema::{CorsConfig, RawConfig, RouteConfig};

/// Global request-context settings, typed.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// `server.trusted_proxies` as written (typed CIDRs come with the context work).
    pub trusted_proxies: Vec<String>,
    /// `server.session_from` as written.
    pub session_from: Vec<String>,
    /// `geoip.database`.
    pub geoip_database: Option<String>,
}

/// `routes.NAME.cors`, typed.
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// The raw table.
    pub raw: CorsConfig,
}

/// `routes.NAME.policy`, loaded.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// Where it came from (for messages).
    pub path: String,
    /// The Rego source.
    pub source: String,
}

/// Validates the global context settings.
pub fn validate(raw: &RawConfig, _p: &mut dyn FnMut(&str, String)) -> AccessSettings {
    AccessSettings {
        trusted_proxies: raw.server.trusted_proxies.clone(),
        session_from: raw.server.session_from.clone(),
        geoip_database: raw.geoip.database.clone(),
    }
}

/// Validates one route's `cors` and `policy`. `key` is `routes.NAME`; `config_dir` is the
/// directory of the first config file (relative policy paths are resolved against it).
pub fn route(
    r: &RouteConfig,
    key: &str,
    config_dir: Option<&Path>,
    p: &mut dyn FnMut(&str, String),
) -> (Option<CorsSettings>, Option<PolicySettings>) {
    let cors = r.cors.as_ref().map(|c| {
        if c.origins.is_empty() {
            p(&format!("{key}.cors.origins"), "must list at least one origin, or \"*\"".into());
        }
        CorsSettings { raw: c.clone() }
    });
    let policy = r.policy.as_ref().and_then(|spec| {
        let Some(path) = spec.strip_prefix("file:") else {
            p(&format!("{key}.policy"), format!("{spec:?}: expected \"file:PATH\" to a Rego module"));
            return None;
        };
        let full = match config_dir {
            Some(d) if Path::new(path).is_relative() => d.join(path),
            _ => Path::new(path).to_path_buf(),
        };
        match std::fs::read_to_string(&full) {
            Ok(source) => Some(PolicySettings { path: full.display().to_string(), source }),
            Err(e) => {
                p(&format!("{key}.policy"), format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    });
    (cors, policy)
}
