//! `[rate_limits.*]`, validated into typed settings.

use std::collections::BTreeMap;

use super::schema::{RateLimitConfig, RawConfig};

/// One `[rate_limits.NAME]` block, typed.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// The block's name.
    pub name: String,
    /// The raw table (typed fields come with the rate-limit implementation).
    pub raw: RateLimitConfig,
}

/// Validates every `[rate_limits.*]` block; `p(key, message)` records a problem.
pub fn validate(raw: &RawConfig, p: &mut dyn FnMut(&str, String)) -> BTreeMap<String, RateLimitSettings> {
    let mut out = BTreeMap::new();
    for (name, r) in &raw.rate_limits {
        if r.key.is_empty() {
            p(&format!("rate_limits.{name}.key"), "is required: \"ip\", \"claim:NAME\", \"header:NAME\" or \"query:NAME\"".into());
        }
        out.insert(name.clone(), RateLimitSettings { name: name.clone(), raw: r.clone() });
    }
    out
}
