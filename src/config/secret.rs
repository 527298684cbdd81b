//! Secrets in config: a literal, `"env:NAME"` or `"file:/path"`. The resolved value never
//! appears in `Debug` output, logs or `GET /config`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret as written in config. Resolve it with [`SecretRef::resolve`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRef(String);

/// A resolved secret value. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `env:NAME` named a variable that is not set.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// `file:PATH` could not be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// The file named.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The secret resolved to an empty string.
    #[error("secret is empty")]
    Empty,
}

impl SecretRef {
    /// Resolves the reference: reads the environment variable or file (trailing newline
    /// trimmed), or takes the literal.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = if let Some(name) = self.0.strip_prefix("env:") {
            std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_owned()))?
        } else if let Some(path) = self.0.strip_prefix("file:") {
            read_small(path)
                .map_err(|source| SecretError::File { path: path.to_owned(), source })?
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        } else {
            self.0.clone()
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value))
    }

    /// What `GET /config` shows: the reference for `env:`/`file:`, `[redacted]` for literals.
    pub fn redacted(&self) -> &str {
        if self.0.starts_with("env:") || self.0.starts_with("file:") {
            &self.0
        } else {
            "[redacted]"
        }
    }
}

/// Largest secret file read: keys and tokens are small, and `file:/dev/zero` must not
/// exhaust memory.
const MAX_SECRET_FILE: u64 = 1 << 20;

fn read_small(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)?.take(MAX_SECRET_FILE + 1).read_to_string(&mut s)?;
    if s.len() as u64 > MAX_SECRET_FILE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "secret file larger than 1 MiB"));
    }
    Ok(s)
}

impl Secret {
    /// The secret value. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretRef)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_redacted_everywhere() {
        let s = SecretRef("hunter2".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap_or_default(), "\"[redacted]\"");
        let r = s.resolve().ok();
        assert_eq!(r.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(format!("{r:?}"), "Some([redacted])");
    }

    #[test]
    fn references_show_the_reference_only() {
        let s = SecretRef("env:SG_TEST_SURELY_UNSET_VAR".into());
        assert_eq!(s.redacted(), "env:SG_TEST_SURELY_UNSET_VAR");
        assert!(matches!(s.resolve(), Err(SecretError::MissingEnv(_))));
        let f = SecretRef("file:/nonexistent/secret".into());
        assert!(matches!(f.resolve(), Err(SecretError::File { .. })));
        let z = SecretRef("file:/dev/zero".into());
        assert!(matches!(z.resolve(), Err(SecretError::File { .. })), "endless files are refused");
    }
}
