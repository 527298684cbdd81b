//! Loading: embedded default or files (TOML/YAML by extension) merged in order, then
//! `STREAMGATE_*` environment variables (`__` between levels). Each top-level section and
//! each origin and route is deserialized on its own so that one typo does not hide the
//! next: `streamgate check` reports every problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml, Yaml};
use figment::value::Value;
use figment::Figment;
use serde::de::DeserializeOwned;

use super::locate::locate;
use super::schema::RawConfig;

/// Where configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// The built-in demo config (TOML text).
    Embedded(String),
    /// Files merged in order.
    Files(Vec<PathBuf>),
}

/// One thing wrong with the configuration, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `routes.vod.origin` (empty when not about one key).
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// The file the key came from, or `environment`.
    pub source: Option<String>,
    /// 1-based line in that file, when found.
    pub line: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.line) {
            (Some(s), Some(l)) => write!(f, "{s}:{l}: ")?,
            (Some(s), None) => write!(f, "{s}: ")?,
            _ => {}
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found; never empty.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Finds where a key was defined, for problems found after deserialization.
pub struct Locator {
    figment: Figment,
}

impl Locator {
    /// A problem about `key`, with the file and line that set it (or its parent).
    pub fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        let mut p = Problem { key: key.to_owned(), message: message.into(), source: None, line: None };
        // Walk up the path until some provider is known to have set it.
        let mut probe = key;
        loop {
            if let Some(meta) = self.figment.find_metadata(probe) {
                fill_location(&mut p, meta, key);
                break;
            }
            match probe.rfind('.') {
                Some(i) => probe = &probe[..i],
                None => break,
            }
        }
        p
    }

    /// The directory of the config file that set `key`, for paths relative to it.
    pub fn dir_of(&self, key: &str) -> Option<std::path::PathBuf> {
        match &self.figment.find_metadata(key)?.source {
            Some(figment::Source::File(path)) => path.parent().map(Path::to_path_buf),
            _ => None,
        }
    }
}

fn fill_location(p: &mut Problem, meta: &figment::Metadata, key: &str) {
    match &meta.source {
        Some(figment::Source::File(path)) => {
            p.source = Some(path.display().to_string());
            let yaml = is_yaml(path);
            if let Ok(text) = std::fs::read_to_string(path) {
                let parts: Vec<&str> = key.split('.').collect();
                p.line = locate(&text, &parts, yaml);
            }
        }
        Some(figment::Source::Code(_)) | Some(figment::Source::Custom(_)) | None => {
            if meta.name.contains("environment") || meta.name.contains("STREAMGATE_") {
                p.source = Some("environment".to_owned());
            } else {
                p.source = Some(meta.name.to_string());
            }
        }
        Some(_) => {}
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Builds the merged figment and the raw config, or every problem found on the way.
pub fn load(source: &ConfigSource) -> Result<(RawConfig, Locator), ConfigErrors> {
    let mut problems = Vec::new();
    let mut figment = Figment::new();
    match source {
        ConfigSource::Embedded(text) => figment = figment.merge(Toml::string(text)),
        ConfigSource::Files(files) => {
            for f in files {
                let shown = f.display().to_string();
                if !f.is_file() {
                    problems.push(Problem {
                        key: String::new(),
                        message: "config file not found or not a file".into(),
                        source: Some(shown),
                        line: None,
                    });
                    continue;
                }
                match f.extension().and_then(|e| e.to_str()) {
                    Some("toml") => figment = figment.merge(Toml::file_exact(f)),
                    Some("yaml" | "yml") => figment = figment.merge(Yaml::file_exact(f)),
                    _ => problems.push(Problem {
                        key: String::new(),
                        message: "unknown config format: use a .toml, .yaml or .yml file".into(),
                        source: Some(shown),
                        line: None,
                    }),
                }
            }
        }
    }
    // Only nested names are config paths: STREAMGATE_SERVER__LISTEN is, while single-level
    // names such as STREAMGATE_CORPUS belong to tools and are ignored.
    figment = figment.merge(Env::prefixed("STREAMGATE_").filter(|k| k.as_str().contains("__")).split("__"));
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let locator = Locator { figment };
    let raw = extract_all(&locator, &mut problems);
    match raw {
        Some(raw) if problems.is_empty() => Ok((raw, locator)),
        _ => Err(ConfigErrors(problems)),
    }
}

const SECTIONS: &[&str] = &["server", "admin", "log", "cache", "origins", "routes", "auth", "rate_limits", "geoip"];

fn extract_all(loc: &Locator, problems: &mut Vec<Problem>) -> Option<RawConfig> {
    let fig = &loc.figment;
    let top: BTreeMap<String, Value> = match fig.extract() {
        Ok(t) => t,
        Err(e) => {
            push_figment_errors(loc, "", e, problems);
            return None;
        }
    };
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(loc.problem(key, format!("unknown section, expected one of: {}", SECTIONS.join(", "))));
        }
    }
    let mut raw = RawConfig::default();
    if top.contains_key("server") {
        section(loc, "server", problems, &mut raw.server);
    }
    if top.contains_key("admin") {
        section(loc, "admin", problems, &mut raw.admin);
    }
    if top.contains_key("log") {
        section(loc, "log", problems, &mut raw.log);
    }
    if top.contains_key("cache") {
        section(loc, "cache", problems, &mut raw.cache);
    }
    raw.origins = named_entries(loc, "origins", problems);
    raw.routes = named_entries(loc, "routes", problems);
    raw.auth = named_entries(loc, "auth", problems);
    raw.rate_limits = named_entries(loc, "rate_limits", problems);
    if top.contains_key("geoip") {
        section(loc, "geoip", problems, &mut raw.geoip);
    }
    Some(raw)
}

fn section<T: DeserializeOwned>(loc: &Locator, key: &str, problems: &mut Vec<Problem>, out: &mut T) {
    match loc.figment.extract_inner::<T>(key) {
        Ok(v) => *out = v,
        Err(e) => push_figment_errors(loc, key, e, problems),
    }
}

fn named_entries<T: DeserializeOwned>(loc: &Locator, key: &str, problems: &mut Vec<Problem>) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let names: BTreeMap<String, Value> = match loc.figment.extract_inner(key) {
        Ok(n) => n,
        Err(e) if e.missing() => return out,
        Err(e) => {
            push_figment_errors(loc, key, e, problems);
            return out;
        }
    };
    for name in names.keys() {
        if name.is_empty() || name.contains('.') {
            problems.push(loc.problem(key, format!("name {name:?} must be non-empty and contain no '.'")));
            continue;
        }
        let path = format!("{key}.{name}");
        match loc.figment.extract_inner::<T>(&path) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => push_figment_errors(loc, &path, e, problems),
        }
    }
    out
}

fn push_figment_errors(loc: &Locator, base: &str, err: figment::Error, problems: &mut Vec<Problem>) {
    for e in err {
        // figment appends the extraction path after the inner path; rebuild it in order.
        let inner: Vec<&str> = e.path.iter().map(String::as_str).collect();
        let base_parts: Vec<&str> = base.split('.').filter(|s| !s.is_empty()).collect();
        let inner = strip_suffix_parts(&inner, &base_parts);
        let mut parts = base_parts.clone();
        parts.extend(inner.iter().filter(|p| !p.is_empty()));
        let key = parts.join(".");
        let message = describe(&e.kind);
        let mut p = loc.problem(&key, message);
        if p.source.is_none() {
            if let Some(meta) = &e.metadata {
                fill_location(&mut p, meta, &key);
            }
        }
        problems.push(p);
    }
}

fn strip_suffix_parts<'a>(inner: &[&'a str], base: &[&str]) -> Vec<&'a str> {
    if !base.is_empty() && inner.ends_with(base) {
        inner[..inner.len() - base.len()].to_vec()
    } else if !base.is_empty() && inner.starts_with(base) {
        inner[base.len()..].to_vec()
    } else {
        inner.to_vec()
    }
}

fn describe(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(f, expected) => {
            format!("unknown key {f:?}; expected one of: {}", expected.join(", "))
        }
        Kind::MissingField(f) => format!("missing required key {f:?}"),
        other => other.to_string(),
    }
}
