//! Conformance over the shared corpus of real manifests from other projects' test suites
//! (`$STREAMGATE_CORPUS`, else `../shared/corpus` beside the repository). Never copied
//! into this repository.
//!
//! For every valid HLS and DASH manifest: `none` is byte-identical; `proxy` and `cdn`
//! succeed, map every absolute child on the origin (its own hosts are made aliases of
//! the origin) and leave every other line or site alone. Every invalid one is a typed
//! error. Nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[path = "support/conflicts.rs"]
mod conflicts;

use streamgate_manifest::{transform, url, Format, ManifestError, Mapper, Mode, OriginId, Plan, RouteTarget};

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("STREAMGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    if dir.join("features.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!("corpus not found at {} (set STREAMGATE_CORPUS): conformance test skipped", dir.display());
        None
    }
}

struct Entry {
    path: String,
    format: Format,
    valid: bool,
}

fn entries(dir: &std::path::Path) -> Vec<Entry> {
    let tsv = std::fs::read_to_string(dir.join("features.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut c = l.split('\t');
            let path = c.next()?.to_owned();
            let kind = c.next()?;
            let validity = c.next()?;
            let format = if kind.starts_with("hls") { Format::Hls } else { Format::Dash };
            Some(Entry { path, format, valid: validity == "valid" })
        })
        .collect()
}

/// Hosts of absolute http(s) URLs in the text, so they can be made origin aliases.
fn hosts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scheme in ["http://", "https://"] {
        for (i, _) in text.match_indices(scheme) {
            let rest = &text[i + scheme.len()..];
            let end = rest.find(|c: char| c == '/' || c == '"' || c == '<' || c.is_whitespace() || c == '?').unwrap_or(rest.len());
            let h = format!("{scheme}{}", &rest[..end]);
            if end > 0 && !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

fn mapper(mode: Mode, aliases: &[String]) -> Mapper {
    let mut origins: Vec<OriginId> = aliases.iter().filter_map(|a| OriginId::parse(a)).collect();
    origins.extend(OriginId::parse("http://origin.test"));
    Mapper::new(mode, Some("https://cdn.test/c/"), RouteTarget { origins, prefix: "/p/".into(), strip_prefix: true }, Vec::new())
}

/// HLS URI sites, found independently of the rewriter: URI lines and quoted URI /
/// SERVER-URI attributes of the tags SPEC lists.
fn hls_sites(text: &str) -> Vec<String> {
    const TAGS: [&str; 10] = [
        "#EXT-X-KEY:",
        "#EXT-X-SESSION-KEY:",
        "#EXT-X-MAP:",
        "#EXT-X-MEDIA:",
        "#EXT-X-I-FRAME-STREAM-INF:",
        "#EXT-X-PART:",
        "#EXT-X-PRELOAD-HINT:",
        "#EXT-X-RENDITION-REPORT:",
        "#EXT-X-SESSION-DATA:",
        "#EXT-X-CONTENT-STEERING:",
    ];
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        if !l.starts_with('#') {
            out.push(l.to_owned());
            continue;
        }
        if TAGS.iter().any(|t| l.starts_with(t)) {
            let key = if l.starts_with("#EXT-X-CONTENT-STEERING:") { "SERVER-URI=\"" } else { "URI=\"" };
            // The attribute must start the list or follow a comma.
            let mut from = 0;
            while let Some(i) = l[from..].find(key) {
                let at = from + i;
                let prev = l[..at].chars().last();
                if matches!(prev, Some(',') | Some(':')) {
                    let v = &l[at + key.len()..];
                    match v.find('"') {
                        Some(end) => out.push(v[..end].to_owned()),
                        None => out.push(format!("\"{v}")),
                    }
                    break;
                }
                from = at + key.len();
            }
        }
    }
    out
}

fn absolute_on(u: &str, aliases: &[String]) -> Option<String> {
    let u = u.split('#').next().unwrap_or(u);
    aliases.iter().find_map(|a| {
        let rest = u.strip_prefix(a.as_str())?;
        if rest.is_empty() {
            Some("/".to_owned())
        } else if rest.starts_with('?') {
            Some(format!("/{rest}"))
        } else {
            rest.starts_with('/').then(|| rest.to_owned())
        }
    })
}

#[test]
fn corpus_conformance() {
    let Some(dir) = corpus() else { return };
    let (mut valid_ok, mut valid_total, mut invalid_rejected, mut invalid_total) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut skipped = 0;
    for e in entries(&dir) {
        if conflicts::KNOWN_CONFLICTS.iter().any(|(p, _)| *p == e.path) {
            // Classified against the corpus by corpus_hls_validate, which also checks the list.
            skipped += 1;
            continue;
        }
        let bytes = std::fs::read(dir.join(&e.path)).unwrap();
        let origin_url = format!("http://origin.test/{}", e.path);
        let public = format!("/p/{}", e.path);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let aliases = hosts(&text);
        let run = |mode: Mode| {
            let m = mapper(mode, &aliases);
            let plan = Plan { mapper: &m, origin_url: &origin_url, public_path: &public, extra_query: "", filter: None };
            transform(e.format, &bytes, &plan)
        };
        if !e.valid {
            invalid_total += 1;
            match run(Mode::Proxy) {
                Err(ManifestError::Hls { .. } | ManifestError::Dash { .. }) => invalid_rejected += 1,
                other => failures.push(format!("invalid {} accepted: {:?}", e.path, other.map(|b| b.len()))),
            }
            continue;
        }
        valid_total += 1;
        let mut ok = true;
        match run(Mode::None) {
            Ok(out) if out == bytes => {}
            Ok(_) => {
                failures.push(format!("{}: none mode changed bytes", e.path));
                ok = false;
            }
            Err(err) => {
                failures.push(format!("{}: {err}", e.path));
                ok = false;
            }
        }
        for mode in [Mode::Proxy, Mode::Cdn] {
            match run(mode) {
                Ok(out) => {
                    let out = String::from_utf8_lossy(&out).into_owned();
                    if e.format == Format::Hls {
                        let (a, b) = (hls_sites(&text), hls_sites(&out));
                        if a.len() != b.len() {
                            failures.push(format!("{} {mode:?}: {} URI sites became {}", e.path, a.len(), b.len()));
                            ok = false;
                            continue;
                        }
                        for (x, y) in a.iter().zip(&b) {
                            if x.contains("{$") || x.is_empty() || x.contains('"') || x.contains("#EXT") {
                                continue;
                            }
                            let resolved = url::resolve(&origin_url, x);
                            let on =
                                absolute_on(&resolved, &aliases).or_else(|| absolute_on(&resolved, &["http://origin.test".to_owned()]));
                            let want = on.map(|path| match mode {
                                Mode::Proxy => format!("/p{path}"),
                                _ => format!("https://cdn.test/c/{}", &path[1..]),
                            });
                            let got = url::resolve(&public, y);
                            let no_frag = |s: &str| s.split('#').next().unwrap_or("").to_owned();
                            let good = match &want {
                                Some(w) => no_frag(&got) == no_frag(w),
                                None => y == x,
                            };
                            if !good {
                                failures.push(format!("{} {mode:?}: {x:?} became {y:?}, want {want:?}", e.path));
                                ok = false;
                                break;
                            }
                        }
                        // Lines that are not URI sites are unchanged.
                        let keep = |s: &str| {
                            s.lines().filter(|l| l.starts_with('#') && !l.contains("URI=\"")).map(str::to_owned).collect::<Vec<_>>()
                        };
                        if keep(&text) != keep(&out) {
                            failures.push(format!("{} {mode:?}: a non-URI line changed", e.path));
                            ok = false;
                        }
                    } else if transform(
                        Format::Dash,
                        out.as_bytes(),
                        &Plan {
                            mapper: &mapper(Mode::None, &[]),
                            origin_url: "http://x/",
                            public_path: "/",
                            extra_query: "",
                            filter: None,
                        },
                    )
                    .is_err()
                    {
                        failures.push(format!("{} {mode:?}: output does not re-parse", e.path));
                        ok = false;
                    }
                }
                Err(err) => {
                    failures.push(format!("{} {mode:?}: {err}", e.path));
                    ok = false;
                }
            }
        }
        if ok {
            valid_ok += 1;
        }
    }
    eprintln!(
        "corpus: valid passed {valid_ok}/{valid_total}, invalid rejected {invalid_rejected}/{invalid_total}, {skipped} known conflicts skipped"
    );
    for f in failures.iter().take(40) {
        eprintln!("  {f}");
    }
    assert!(failures.is_empty(), "{} corpus failures (first shown above)", failures.len());
}
