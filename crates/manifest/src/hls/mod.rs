//! HLS (RFC 8216): a line-oriented rewriter. Every URI-bearing line and attribute is
//! mapped; every other byte (unknown tags, comments, attribute order and quoting, CRLF,
//! BOM, blank lines) is copied as it was. Validation runs in the same pass.

pub mod attr;
pub mod validate;

use crate::filter::Rendition;
use crate::mapping::{decide_into, Base};
use crate::{ManifestError, Plan};
use attr::{attrs, resolution};
use validate::Validator;

/// Tags whose `URI` attribute is a child URL (SPEC "Manifest transformation rules").
const URI_TAGS: [&[u8]; 9] = [
    b"EXT-X-KEY",
    b"EXT-X-SESSION-KEY",
    b"EXT-X-MAP",
    b"EXT-X-MEDIA",
    b"EXT-X-I-FRAME-STREAM-INF",
    b"EXT-X-PART",
    b"EXT-X-PRELOAD-HINT",
    b"EXT-X-RENDITION-REPORT",
    b"EXT-X-SESSION-DATA",
];

fn err(line: usize, reason: impl Into<String>) -> ManifestError {
    ManifestError::Hls { line, reason: reason.into() }
}

/// Splits `#EXT-X-TAG:attrs` into the tag name (without `#`) and the text after `:`.
fn tag(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    let body = &line[1..];
    match memchr::memchr(b':', body) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    }
}

fn rendition<'a>(attr_text: &'a [u8], line_no: usize) -> Result<Rendition<'a>, ManifestError> {
    let mut r = Rendition::default();
    for a in attrs(attr_text) {
        let a = a.map_err(|e| err(line_no, e.as_str()))?;
        let num = || std::str::from_utf8(a.value).ok().and_then(|s| s.trim().parse::<u64>().ok());
        match a.name {
            b"BANDWIDTH" => r.bandwidth = num(),
            b"RESOLUTION" => {
                if let Some((w, h)) = resolution(a.value) {
                    r.width = Some(w);
                    r.height = Some(h);
                }
            }
            b"CODECS" => r.codecs = std::str::from_utf8(a.value).ok(),
            b"FRAME-RATE" => r.frame_rate = std::str::from_utf8(a.value).ok().and_then(|s| s.trim().parse().ok()),
            _ => {}
        }
    }
    Ok(r)
}

/// Rewrites a playlist under `plan`.
pub fn rewrite(input: &[u8], plan: &Plan<'_>) -> Result<Vec<u8>, ManifestError> {
    let (bom, body) = match input.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (&input[..3], rest),
        None => (&input[..0], input),
    };
    let identity = plan.is_identity();
    let filter = plan.filter.filter(|f| !f.is_empty());
    let mut out = Vec::with_capacity(if identity { 0 } else { input.len() + input.len() / 4 });
    out.extend_from_slice(bom);
    let base = Base::new(plan.mapper, plan.origin_url.to_owned(), plan.public_path.to_owned());
    // Validated once for the whole playlist (fast in bulk); each URI is then a slice of
    // it. A playlist with invalid UTF-8 somewhere (a Latin-1 comment) falls back to
    // checking each URI on its own.
    let text = std::str::from_utf8(body).ok();
    let as_str = |from: usize, to: usize, line_no: usize| match text {
        Some(t) => t.get(from..to).ok_or_else(|| err(line_no, "URI is not valid UTF-8")),
        None => std::str::from_utf8(&body[from..to]).map_err(|_| err(line_no, "URI is not valid UTF-8")),
    };
    let mut v = Validator::new();
    let mut line_no = 0usize;
    let mut pos = 0usize;
    // Filtering: while a removed variant's lines are skipped, up to its URI line.
    let mut skipping_variant = false;
    let mut scratch = String::with_capacity(256);
    let (mut variants, mut kept, mut video, mut kept_video) = (0usize, 0usize, 0usize, 0usize);
    while pos < body.len() {
        let end = memchr::memchr(b'\n', &body[pos..]).map_or(body.len(), |i| pos + i + 1);
        let raw = &body[pos..end];
        let line_start = pos;
        pos = end;
        line_no += 1;
        let mut content_end = raw.len();
        if raw.last() == Some(&b'\n') {
            content_end -= 1;
        }
        if content_end > 0 && raw[content_end - 1] == b'\r' {
            content_end -= 1;
        }
        let line = &raw[..content_end];
        v.line(line_no, line)?;
        if identity {
            continue;
        }
        let first = line.iter().position(|c| !c.is_ascii_whitespace());
        let Some(first) = first else {
            if !skipping_variant {
                out.extend_from_slice(raw);
            }
            continue;
        };
        if line[first] == b'#' {
            if !line[first..].starts_with(b"#EXT") {
                if !skipping_variant {
                    out.extend_from_slice(raw);
                }
                continue;
            }
            let (name, attr_text) = tag(&line[first..]);
            if name == b"EXT-X-STREAM-INF" {
                variants += 1;
                if let Some(f) = filter {
                    let r = rendition(attr_text.unwrap_or(b""), line_no)?;
                    let is_video = r.is_video() || r.codecs.is_none();
                    video += usize::from(is_video);
                    if !f.keeps(&r) {
                        skipping_variant = true;
                        continue;
                    }
                    kept_video += usize::from(is_video);
                }
                kept += 1;
                out.extend_from_slice(raw);
                continue;
            }
            if skipping_variant {
                continue;
            }
            if name == b"EXT-X-I-FRAME-STREAM-INF" {
                if let Some(f) = filter {
                    if !f.keeps(&rendition(attr_text.unwrap_or(b""), line_no)?) {
                        continue;
                    }
                }
            }
            let uri_attr: &[u8] = if name == b"EXT-X-CONTENT-STEERING" {
                b"SERVER-URI"
            } else if URI_TAGS.contains(&name) {
                b"URI"
            } else {
                out.extend_from_slice(raw);
                continue;
            };
            let text = attr_text.unwrap_or(b"");
            let text_start = content_end - text.len();
            // A malformed attribute list (an unterminated quote, as some packagers write)
            // is copied as it is: players tolerate it, and guessing its URI could corrupt it.
            let mut found = None;
            for a in attrs(text) {
                let Ok(a) = a else {
                    found = None;
                    break;
                };
                if a.name == uri_attr && a.quoted {
                    found = Some(a);
                    break;
                }
            }
            match found {
                Some(a) => {
                    let at = line_start + text_start + a.start;
                    let value = as_str(at, at + a.value.len(), line_no)?;
                    if map_uri(plan, &base, value, &mut scratch, memchr::memchr(b'{', a.value).is_some()) {
                        let s = text_start + a.start;
                        out.extend_from_slice(&raw[..s]);
                        out.extend_from_slice(scratch.as_bytes());
                        out.extend_from_slice(&raw[s + a.value.len()..]);
                    } else {
                        out.extend_from_slice(raw);
                    }
                }
                None => out.extend_from_slice(raw),
            }
            continue;
        }
        // A URI line: a media segment, a variant, or (in a master playlist) a rendition.
        if skipping_variant {
            skipping_variant = false;
            continue;
        }
        let last = line.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(first, |i| i + 1);
        let value = as_str(line_start + first, line_start + last, line_no)?;
        if map_uri(plan, &base, value, &mut scratch, v.uri_has_brace()) {
            out.extend_from_slice(&raw[..first]);
            out.extend_from_slice(scratch.as_bytes());
            out.extend_from_slice(&raw[last..]);
        } else {
            out.extend_from_slice(raw);
        }
    }
    v.finish(line_no)?;
    if let Some(f) = filter {
        if variants > 0 && (kept == 0 || (video > 0 && kept_video == 0)) {
            return Err(ManifestError::FilterRemovedAll(f.describe()));
        }
    }
    if identity {
        return Ok(input.to_vec());
    }
    Ok(out)
}

/// Writes the new text of one URI into `scratch` and returns true, or returns false to
/// keep it. URIs with variable references (`{$name}`, RFC 8216 §4.3) are kept: they only
/// have a meaning after substitution. `has_brace`: whether `uri` contains a `{` at all.
fn map_uri(plan: &Plan<'_>, base: &Base, uri: &str, scratch: &mut String, has_brace: bool) -> bool {
    if has_brace && uri.as_bytes().windows(2).any(|w| w[0] == b'{' && w[1] == b'$') {
        return false;
    }
    decide_into(plan.mapper, base, uri, plan.extra_query, scratch)
}

#[cfg(test)]
mod tests;
