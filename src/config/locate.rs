//! Finds the line of a key path (`routes.vod.origin`) in a TOML or YAML config file, so
//! `streamgate check` can say where a problem is. A best-effort scan of the text, not a
//! parser: it understands table headers, dotted keys and YAML indentation, which is what
//! config files are made of. When it cannot tell, it says nothing rather than guess.

/// Returns the 1-based line that defines `path` (or the nearest enclosing key).
pub fn locate(text: &str, path: &[&str], yaml: bool) -> Option<usize> {
    let keys = if yaml { yaml_keys(text) } else { toml_keys(text) };
    let mut best: Option<(usize, usize)> = None; // (matched depth, line)
    for (line, key) in keys {
        if key.len() > path.len() || key.is_empty() {
            continue;
        }
        if key.iter().zip(path).all(|(a, b)| a == b) {
            let depth = key.len();
            // Prefer the deepest match; among equals, the last definition wins (as in a merge).
            if best.is_none_or(|(d, _)| depth >= d) {
                best = Some((depth, line));
            }
        }
    }
    best.map(|(_, line)| line)
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .unwrap_or(s)
        .to_owned()
}

/// Splits a dotted TOML key, honouring quotes (`routes."a.b".x`).
fn split_dotted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => out.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|k| k.trim().to_owned()).collect()
}

fn toml_keys(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut table: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("[[") {
            if let Some(end) = rest.find("]]") {
                table = split_dotted(&rest[..end]);
                out.push((i + 1, table.clone()));
            }
        } else if let Some(rest) = line.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                table = split_dotted(&rest[..end]);
                out.push((i + 1, table.clone()));
            }
        } else if let Some(eq) = line.find('=') {
            let mut key = table.clone();
            key.extend(split_dotted(&line[..eq]).into_iter().map(|k| unquote(&k)));
            out.push((i + 1, key));
        }
    }
    out
}

fn yaml_keys(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some(colon) = trimmed.find(':') else { continue };
        let key = unquote(&trimmed[..colon]);
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        out.push((i + 1, stack.iter().map(|(_, k)| k.clone()).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[server]
listen = ["127.0.0.1:8080"]

[origins.vod]
urls = []

[routes.vod]
prefix = "/vod/"
origin = "missing"
manifest.rewrite = "cdn"
"#;

    #[test]
    fn toml_tables_and_dotted_keys() {
        assert_eq!(locate(TOML, &["server", "listen"], false), Some(3));
        assert_eq!(locate(TOML, &["origins", "vod", "urls"], false), Some(6));
        assert_eq!(locate(TOML, &["routes", "vod", "origin"], false), Some(10));
        assert_eq!(locate(TOML, &["routes", "vod", "manifest", "rewrite"], false), Some(11));
        // A key that is not written falls back to its table.
        assert_eq!(locate(TOML, &["routes", "vod", "host"], false), Some(8));
        assert_eq!(locate(TOML, &["log", "level"], false), None);
    }

    #[test]
    fn yaml_indentation() {
        let y = "server:\n  listen:\n    - 127.0.0.1:8080\nroutes:\n  vod:\n    prefix: /vod/\n    origin: nope\n";
        assert_eq!(locate(y, &["server", "listen"], true), Some(2));
        assert_eq!(locate(y, &["routes", "vod", "origin"], true), Some(7));
        assert_eq!(locate(y, &["routes", "vod"], true), Some(5));
    }
}
