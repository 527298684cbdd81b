//! `type = "api_key"`: the key from a header or query parameter, hashed with SHA-256 and
//! looked up among the configured hashes. Config holds only hashes, so a leaked config
//! leaks no key; the lookup is by hash, so its timing tells nothing about a key.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;

use crate::config::auth::ApiKeySettings;

/// A compiled api_key block.
pub struct ApiKeyAuth {
    keys: HashMap<[u8; 32], Arc<str>>,
}

impl ApiKeyAuth {
    /// Compiles a block.
    pub fn new(s: &ApiKeySettings) -> Self {
        Self { keys: s.keys.iter().map(|(h, name)| (*h, Arc::from(name.as_str()))).collect() }
    }

    /// The name of the key, if `key` is one of them.
    pub fn lookup(&self, key: &str) -> Option<&Arc<str>> {
        let d = digest::digest(&digest::SHA256, key.as_bytes());
        let h: [u8; 32] = d.as_ref().try_into().ok()?;
        self.keys.get(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_their_hash() {
        // echo -n test | sha256sum
        let mut h = [0u8; 32];
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        let auth = ApiKeyAuth::new(&ApiKeySettings {
            source: crate::config::auth::TokenSource::Query("k".into()),
            keys: vec![(h, "acme".into())],
        });
        assert_eq!(auth.lookup("test").map(|n| &**n), Some("acme"));
        assert!(auth.lookup("Test").is_none());
    }
}
