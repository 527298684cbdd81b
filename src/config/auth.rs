//! `[auth.*]`, validated into typed settings: which algorithms and keys a JWT block
//! accepts, the hashed keys of an API-key block, the endpoint of an introspection block.

use std::collections::BTreeMap;

use super::schema::{AuthConfig, RawConfig};

/// One `[auth.NAME]` block, typed.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The block's name.
    pub name: String,
    /// The raw table (typed fields come with the auth implementation).
    pub raw: AuthConfig,
}

/// Validates every `[auth.*]` block; `p(key, message)` records a problem.
pub fn validate(raw: &RawConfig, p: &mut dyn FnMut(&str, String)) -> BTreeMap<String, AuthSettings> {
    let mut out = BTreeMap::new();
    for (name, a) in &raw.auth {
        if !matches!(a.kind.as_str(), "jwt" | "api_key" | "introspection") {
            p(&format!("auth.{name}.type"), format!("{:?} is not one of \"jwt\", \"api_key\", \"introspection\"", a.kind));
        }
        out.insert(name.clone(), AuthSettings { name: name.clone(), raw: a.clone() });
    }
    out
}
