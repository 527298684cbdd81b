//! DASH (ISO/IEC 23009-1): a streaming rewriter over quick-xml reader events. The input
//! is copied event by event as raw bytes; only the URI sites SPEC names are replaced:
//! `BaseURL` (every level), `Location`, `PatchLocation` (text), `SegmentTemplate@media`,
//! `@initialization`, `@index`, `SegmentURL@media`, `@index`, `Initialization@sourceURL`,
//! `RepresentationIndex@sourceURL` and `xlink:href` on any element. Everything else
//! (namespaces and prefixes, comments, processing instructions, unknown elements,
//! `$Number%05d$`-style template identifiers, whitespace) passes through byte for byte.
//!
//! Refused: DTDs (no entity expansion, ever), undeclared element prefixes, malformed
//! XML, nesting deeper than [`MAX_DEPTH`] and more than [`MAX_ATTRS`] attributes on
//! one element.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::filter::Rendition;
use crate::mapping::{decide_into, Base};
use crate::{url, ManifestError, Plan};

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Most attributes accepted on one element.
pub const MAX_ATTRS: usize = 256;

fn err(offset: u64, reason: impl Into<String>) -> ManifestError {
    ManifestError::Dash { offset, reason: reason.into() }
}

/// Attributes that carry URLs, by element local name.
fn uri_attrs(local: &[u8]) -> &'static [&'static str] {
    match local {
        b"SegmentTemplate" => &["media", "initialization", "index"],
        b"SegmentURL" => &["media", "index"],
        b"Initialization" | b"RepresentationIndex" => &["sourceURL"],
        _ => &[],
    }
}

fn is_text_uri(local: &[u8]) -> bool {
    matches!(local, b"BaseURL" | b"Location" | b"PatchLocation")
}

fn is_container(local: &[u8]) -> bool {
    matches!(local, b"MPD" | b"Period" | b"AdaptationSet" | b"Representation")
}

/// A text URI element being collected (its content may span several events).
struct TextSite {
    depth: usize,
    start: usize,
    base_url: bool,
}

/// Rendition attributes an AdaptationSet passes down to its Representations.
#[derive(Default, Clone)]
struct SetInfo {
    out_start: usize,
    reps: usize,
    kept: usize,
    video: bool,
    width: Option<u64>,
    height: Option<u64>,
    codecs: Option<String>,
    frame_rate: Option<f64>,
}

struct State<'p> {
    plan: &'p Plan<'p>,
    /// The document (after any byte order mark), for bases still to be worked out.
    text: &'p str,
    out: Vec<u8>,
    /// Bases pushed by BaseURL children of containers: (container depth, base).
    bases: Vec<(usize, Slot)>,
    doc_base: Base,
    /// Declared namespace prefixes: (depth, prefix).
    prefixes: Vec<(usize, Vec<u8>)>,
    set: Option<SetInfo>,
    set_depth: usize,
    video_total: usize,
    video_kept: usize,
    /// Reused buffers: the new text of one URL, and the mapped URL of a new base.
    mapped: String,
    scratch: String,
    /// Searchers for the end tag and a nested start tag of skipped SegmentTimelines,
    /// built once per document (for the element name as written, prefix included).
    timeline: Option<TimelineFinders>,
}

struct TimelineFinders {
    name: Vec<u8>,
    close: memchr::memmem::Finder<'static>,
    open: memchr::memmem::Finder<'static>,
    comment_or_cdata: memchr::memmem::Finder<'static>,
    pi: memchr::memmem::Finder<'static>,
}

/// A container's base. Most BaseURLs (one per Representation, say) have nothing below
/// them that is resolved against them, so their base pair (two resolutions and a
/// mapping) is worked out only when something asks for it.
enum Slot {
    Ready(Base),
    /// The BaseURL element's content: a span of `State::text`.
    Pending(usize, usize),
}

impl State<'_> {
    /// The innermost base, worked out (with the pending ones above it) if need be.
    fn base(&mut self) -> &Base {
        for i in 0..self.bases.len() {
            if let Slot::Pending(start, end) = self.bases[i].1 {
                let (done, _) = self.bases.split_at(i);
                let parent = match done.last() {
                    Some((_, Slot::Ready(b))) => b,
                    _ => &self.doc_base,
                };
                let raw = self.text.get(start..end).unwrap_or("");
                let value = quick_xml::escape::unescape(raw).unwrap_or(Cow::Borrowed(raw));
                let trimmed = value.trim();
                let new = decide_into(self.plan.mapper, parent, trimmed, self.plan.extra_query, &mut self.mapped);
                let origin = url::resolve(&parent.origin, trimmed);
                let public = url::resolve(&parent.public, if new { &self.mapped } else { trimmed });
                let b = Base::new_with(self.plan.mapper, origin, public, &mut self.scratch);
                self.bases[i].1 = Slot::Ready(b);
            }
        }
        match self.bases.last() {
            Some((_, Slot::Ready(b))) => b,
            _ => &self.doc_base,
        }
    }

    /// Decides the new text of `value` into `self.mapped`; false when it stays.
    fn map(&mut self, value: &str) -> bool {
        self.base();
        let base = match self.bases.last() {
            Some((_, Slot::Ready(b))) => b,
            _ => &self.doc_base,
        };
        decide_into(self.plan.mapper, base, value, self.plan.extra_query, &mut self.mapped)
    }
}

/// Rewrites an MPD under `plan`.
pub fn rewrite(whole: &[u8], plan: &Plan<'_>) -> Result<Vec<u8>, ManifestError> {
    // The BOM is copied as it is and kept out of the reader, so that event positions
    // index `input` exactly.
    let (bom, input) = match whole.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (&whole[..3], rest),
        None => (&whole[..0], whole),
    };
    if input.starts_with(b"\xEF\xBB\xBF") {
        // A second U+FEFF is text before the root (not well-formed), and the reader would
        // silently skip it as another byte order mark, shifting positions (found by fuzzing).
        return Err(err(3, "text before the MPD element (a second byte order mark)"));
    }
    let text = std::str::from_utf8(input).map_err(|e| err(e.valid_up_to() as u64, "MPD is not valid UTF-8"))?;
    let identity = plan.is_identity();
    let filter = plan.filter.filter(|f| !f.is_empty());
    // The reader is restarted after each skipped SegmentTimeline (see below), so it cannot
    // match end tags itself: `open` does, with the names of the open elements.
    let new_reader = |at: usize| {
        let mut r = Reader::from_str(&text[at..]);
        let cfg = r.config_mut();
        cfg.check_end_names = false;
        cfg.allow_unmatched_ends = true;
        cfg.expand_empty_elements = false;
        r
    };
    let mut reader = new_reader(0);
    let mut base = 0usize;
    let mut open: Vec<(usize, usize)> = Vec::new();
    let doc_base = Base::new(plan.mapper, plan.origin_url.to_owned(), plan.public_path.to_owned());
    let mut st = State {
        plan,
        text,
        out: Vec::with_capacity(if identity { 0 } else { whole.len() + whole.len() / 8 }),
        bases: Vec::new(),
        doc_base,
        prefixes: Vec::new(),
        set: None,
        set_depth: 0,
        video_total: 0,
        video_kept: 0,
        mapped: String::new(),
        scratch: String::new(),
        timeline: None,
    };
    st.out.extend_from_slice(bom);
    let mut depth = 0usize;
    let mut text_site: Option<TextSite> = None;
    // Depth of a Representation being dropped by the filter (its events are skipped).
    let mut skip_depth: Option<usize> = None;
    let mut saw_root = false;
    loop {
        let before = base + reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| err(base as u64 + reader.error_position(), e.to_string()))?;
        let after = base + reader.buffer_position() as usize;
        let raw = &input[before..after];
        match ev {
            Event::Eof => break,
            Event::DocType(_) => return Err(err(before as u64, "DTDs and entity declarations are not allowed")),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if depth == 0 {
                    if saw_root {
                        return Err(err(before as u64, "more than one root element"));
                    }
                    saw_root = true;
                    if e.local_name().as_ref().as_bytes() != b"MPD" {
                        return Err(err(before as u64, "root element is not MPD"));
                    }
                }
                depth += 1;
                if !empty {
                    let name = e.name();
                    let name = name.as_ref().as_bytes();
                    let off = name.as_ptr() as usize - input.as_ptr() as usize;
                    open.push((off, name.len()));
                }
                if depth > MAX_DEPTH {
                    return Err(err(before as u64, format!("elements nested deeper than {MAX_DEPTH}")));
                }
                check_prefixes(&mut st, e, raw, depth, before)?;
                if skip_depth.is_some() {
                    if empty {
                        depth -= 1;
                    }
                    continue;
                }
                let local = e.local_name();
                let local = local.as_ref().as_bytes();
                if is_container(local) {
                    check_attrs(e, raw, before)?;
                }
                if let Some(f) = filter {
                    if local == b"AdaptationSet" && !empty {
                        st.set = Some(set_info(e, st.out.len()));
                        st.set_depth = depth;
                    } else if local == b"Representation" {
                        let r = rep_info(e, st.set.as_ref());
                        let video = r.0;
                        if video {
                            st.video_total += 1;
                        }
                        if let Some(s) = st.set.as_mut() {
                            s.reps += 1;
                        }
                        let keep = f.keeps(&r.1.as_rendition());
                        if !keep {
                            if !empty {
                                skip_depth = Some(depth);
                            } else {
                                depth -= 1;
                            }
                            continue;
                        }
                        if video {
                            st.video_kept += 1;
                        }
                        if let Some(s) = st.set.as_mut() {
                            s.kept += 1;
                        }
                    }
                }
                if identity {
                    if empty {
                        depth -= 1;
                    }
                    continue;
                }
                write_start(&mut st, input, e, raw, before)?;
                // Thousands of <S/> and no URI site: find the end tag with a SIMD search,
                // copy the span as it is, and restart the reader after it. Timelines with
                // comments or other markup inside go through the reader event by event.
                let skip_to = if !empty && local == b"SegmentTimeline" {
                    skip_element(&mut st, input, after, e.name().as_ref().as_bytes())
                } else {
                    None
                };
                if let Some(to) = skip_to {
                    st.out.extend_from_slice(&input[after..to]);
                    open.pop();
                    pop_scopes(&mut st, depth);
                    depth -= 1;
                    base = to;
                    reader = new_reader(to);
                    continue;
                }
                if empty {
                    pop_scopes(&mut st, depth);
                    depth -= 1;
                } else if is_text_uri(local) {
                    text_site = Some(TextSite { depth, start: after, base_url: local == b"BaseURL" });
                }
            }
            Event::End(ref e) => {
                match open.pop() {
                    Some((off, len)) if &input[off..off + len] == e.name().as_ref().as_bytes() => {}
                    Some((off, len)) => {
                        return Err(err(
                            before as u64,
                            format!(
                                "end tag </{}> does not close <{}>",
                                e.name().as_ref(),
                                String::from_utf8_lossy(&input[off..off + len])
                            ),
                        ));
                    }
                    None => return Err(err(before as u64, format!("end tag </{}> without a start tag", e.name().as_ref()))),
                }
                if let Some(d) = skip_depth {
                    if d == depth {
                        skip_depth = None;
                    }
                    pop_scopes(&mut st, depth);
                    depth = depth.saturating_sub(1);
                    continue;
                }
                if identity {
                    pop_scopes(&mut st, depth);
                    depth = depth.saturating_sub(1);
                    continue;
                }
                if let Some(site) = text_site.take_if(|s| s.depth == depth) {
                    finish_text_site(&mut st, text, &site, before)?;
                }
                st.out.extend_from_slice(raw);
                if filter.is_some() && e.local_name().as_ref().as_bytes() == b"AdaptationSet" && depth == st.set_depth {
                    if let Some(s) = st.set.take() {
                        if s.reps > 0 && s.kept == 0 {
                            st.out.truncate(s.out_start);
                        }
                    }
                }
                pop_scopes(&mut st, depth);
                depth = depth.saturating_sub(1);
            }
            _ => {
                // Text, CDATA, references, comments, PIs, the declaration: copied, unless
                // they are inside a text URI element (collected there) or a dropped
                // Representation.
                if depth == 0 {
                    if let Event::Text(_) = ev {
                        if !raw.iter().all(u8::is_ascii_whitespace) {
                            return Err(err(before as u64, "text outside the MPD element"));
                        }
                    }
                }
                if identity || skip_depth.is_some() || text_site.is_some() {
                    continue;
                }
                st.out.extend_from_slice(raw);
            }
        }
    }
    if depth != 0 || !saw_root {
        return Err(err(input.len() as u64, "document ends before the MPD element is closed"));
    }
    if let Some(f) = filter {
        if st.video_total > 0 && st.video_kept == 0 {
            return Err(ManifestError::FilterRemovedAll(f.describe()));
        }
    }
    if identity {
        return Ok(whole.to_vec());
    }
    Ok(st.out)
}

/// The end of the element whose content starts at `from`: the position after its end
/// tag `</name>` (whitespace allowed before `>`). `None` when it is not closed, or when a
/// nested element of the same name or markup that could hide a tag (comments, CDATA,
/// processing instructions, DTD pieces) makes a plain search unsafe; the caller then
/// processes the element event by event.
fn skip_element(st: &mut State<'_>, input: &[u8], from: usize, name: &[u8]) -> Option<usize> {
    if st.timeline.as_ref().is_none_or(|t| t.name != name) {
        let tag = |lead: &[u8]| [lead, name].concat();
        st.timeline = Some(TimelineFinders {
            name: name.to_vec(),
            close: memchr::memmem::Finder::new(&tag(b"</")).into_owned(),
            open: memchr::memmem::Finder::new(&tag(b"<")).into_owned(),
            comment_or_cdata: memchr::memmem::Finder::new(b"<!").into_owned(),
            pi: memchr::memmem::Finder::new(b"<?").into_owned(),
        });
    }
    let f = st.timeline.as_ref()?;
    let rel = f.close.find(&input[from..])?;
    let body = &input[from..from + rel];
    // Comments, CDATA, processing instructions and DTD pieces start with "<!" or "<?";
    // a nested start tag of the same name has a 'g' ("SegmentTimeline"). <S> elements
    // have none of these characters, so one pass rules all three out; anything else goes
    // event by event.
    if memchr::memchr3(b'!', b'?', b'g', body).is_some()
        && (f.comment_or_cdata.find(body).is_some() || f.pi.find(body).is_some() || f.open.find(body).is_some())
    {
        return None;
    }
    let mut i = from + rel + f.close.needle().len();
    while input.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    // A restarted reader would take a U+FEFF right after the end tag for a byte order mark
    // and skip it, shifting every position (found by fuzzing).
    (input.get(i) == Some(&b'>') && !input[i + 1..].starts_with(b"\xEF\xBB\xBF")).then_some(i + 1)
}

/// Rejects element prefixes that no enclosing element declares, and records this
/// element's declarations.
fn check_prefixes(st: &mut State<'_>, e: &BytesStart<'_>, raw: &[u8], depth: usize, at: usize) -> Result<(), ManifestError> {
    // Most elements (a SegmentTimeline's thousands of <S/>) have no ':' at all.
    let has_colon = memchr::memchr(b':', raw).is_some();
    if has_colon && memchr::memmem::find(raw, b"xmlns:").is_some() {
        for a in e.attributes() {
            let a = a.map_err(|x| err(at as u64, x.to_string()))?;
            if let Some(p) = a.key.as_ref().as_bytes().strip_prefix(b"xmlns:") {
                st.prefixes.push((depth, p.to_vec()));
            }
        }
    }
    if !has_colon {
        return Ok(());
    }
    if let Some(prefix) = e.name().prefix() {
        let p = prefix.as_ref().as_bytes();
        if p != b"xml" && !st.prefixes.iter().any(|(_, d)| d.as_slice() == p) {
            return Err(err(at as u64, format!("undeclared namespace prefix {:?}", String::from_utf8_lossy(p))));
        }
    }
    Ok(())
}

fn pop_scopes(st: &mut State<'_>, depth: usize) {
    while st.prefixes.last().is_some_and(|(d, _)| *d >= depth) {
        st.prefixes.pop();
    }
    while st.bases.last().is_some_and(|(d, _)| *d >= depth) {
        st.bases.pop();
    }
}

/// XML requires whitespace between attributes (`a="1"b="2"` is not well-formed; some
/// lenient parsers accept it, quick-xml's attribute iterator among them).
fn attrs_spaced(raw: &[u8]) -> bool {
    // From quote to quote: after each closing quote comes whitespace, '/' or '>'. An
    // unterminated value is the reader's to refuse.
    let mut i = 0;
    while let Some(q) = memchr::memchr2(b'"', b'\'', &raw[i..]) {
        let open = i + q;
        let Some(len) = memchr::memchr(raw[open], &raw[open + 1..]) else { return true };
        let after = open + 1 + len + 1;
        if raw.get(after).is_some_and(|&c| !(c.is_ascii_whitespace() || c == b'/' || c == b'>')) {
            return false;
        }
        i = after;
    }
    true
}

fn check_attrs(e: &BytesStart<'_>, raw: &[u8], at: usize) -> Result<(), ManifestError> {
    if !attrs_spaced(raw) {
        return Err(err(at as u64, "attributes must be separated by whitespace"));
    }
    // Duplicate names among the first few attributes are found here without quick-xml's
    // per-attribute bookkeeping; elements with more go through its checked iterator.
    const FEW: usize = 16;
    let mut keys: [&[u8]; FEW] = [b""; FEW];
    for (n, a) in e.attributes().with_checks(false).enumerate() {
        let a = a.map_err(|x| err(at as u64, x.to_string()))?;
        if n == FEW {
            return check_attrs_many(e, at);
        }
        let key = a.key.into_inner().as_bytes();
        if keys[..n].contains(&key) {
            return Err(err(at as u64, format!("duplicate attribute {:?}", String::from_utf8_lossy(key))));
        }
        keys[n] = key;
    }
    Ok(())
}

fn check_attrs_many(e: &BytesStart<'_>, at: usize) -> Result<(), ManifestError> {
    let mut n = 0;
    for a in e.attributes() {
        a.map_err(|x| err(at as u64, x.to_string()))?;
        n += 1;
        if n > MAX_ATTRS {
            return Err(err(at as u64, format!("more than {MAX_ATTRS} attributes on one element")));
        }
    }
    Ok(())
}

/// Offset of a borrowed slice within the input.
fn offset_in(input: &[u8], part: &str) -> Option<usize> {
    let start = input.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    (p >= start && p + part.len() <= start + input.len()).then(|| p - start)
}

/// Writes a start (or empty) tag, replacing URI attribute values.
fn write_start(st: &mut State<'_>, input: &[u8], e: &BytesStart<'_>, raw: &[u8], at: usize) -> Result<(), ManifestError> {
    let local = e.local_name();
    let names = uri_attrs(local.as_ref().as_bytes());
    let has_href = memchr::memchr(b':', raw).is_some() && memchr::memmem::find(raw, b":href").is_some();
    if names.is_empty() && !has_href {
        st.out.extend_from_slice(raw);
        return Ok(());
    }
    let mut copied = at;
    let mut count = 0;
    for a in e.attributes() {
        let a = a.map_err(|x| err(at as u64, x.to_string()))?;
        count += 1;
        if count > MAX_ATTRS {
            return Err(err(at as u64, format!("more than {MAX_ATTRS} attributes on one element")));
        }
        let key = a.key.as_ref().as_bytes();
        let is_uri = names.iter().any(|n| n.as_bytes() == key) || (key.ends_with(b":href") && key.len() > 5);
        if !is_uri {
            continue;
        }
        let Cow::Borrowed(rawv) = a.value else { continue };
        let Some(off) = offset_in(input, rawv) else { continue };
        let value = quick_xml::escape::unescape(rawv).map_err(|x| err(at as u64, x.to_string()))?;
        if st.map(&value) {
            st.out.extend_from_slice(&input[copied..off]);
            st.out.extend_from_slice(quick_xml::escape::escape(st.mapped.as_str()).as_bytes());
            copied = off + rawv.len();
        }
    }
    st.out.extend_from_slice(&input[copied..at + raw.len()]);
    Ok(())
}

/// Handles the collected content of a BaseURL/Location/PatchLocation element.
fn finish_text_site(st: &mut State<'_>, text: &str, site: &TextSite, end: usize) -> Result<(), ManifestError> {
    // Both ends are next to '>' and '<', so on character boundaries of the checked text.
    let raw_str = text.get(site.start..end).ok_or_else(|| err(site.start as u64, "URL is not valid UTF-8"))?;
    let raw = raw_str.as_bytes();
    if memchr::memchr(b'<', raw).is_some() {
        // Markup inside a URL element (comments, CDATA): leave it exactly as written.
        st.out.extend_from_slice(raw);
        return Ok(());
    }
    let value = quick_xml::escape::unescape(raw_str).map_err(|x| err(site.start as u64, x.to_string()))?;
    let trimmed = value.trim();
    let new = st.map(trimmed);
    if site.base_url {
        // The first BaseURL of a container becomes the base of everything below it.
        let container = site.depth - 1;
        if st.bases.last().is_none_or(|(d, _)| *d != container) {
            st.bases.push((container, Slot::Pending(site.start, end)));
        }
    }
    if new {
        let lead = raw_str.len() - raw_str.trim_start().len();
        let trail = raw_str.len() - raw_str.trim_end().len();
        st.out.extend_from_slice(&raw[..lead]);
        st.out.extend_from_slice(quick_xml::escape::escape(st.mapped.as_str()).as_bytes());
        st.out.extend_from_slice(&raw[raw.len() - trail..]);
    } else {
        st.out.extend_from_slice(raw);
    }
    Ok(())
}

fn attr_str<'a>(e: &'a BytesStart<'_>, name: &[u8]) -> Option<Cow<'a, str>> {
    e.attributes().filter_map(Result::ok).find(|a| a.key.as_ref().as_bytes() == name).map(|a| a.value)
}

fn num(v: Option<Cow<'_, str>>) -> Option<u64> {
    v.and_then(|s| s.trim().parse().ok())
}

fn frame_rate(v: Option<Cow<'_, str>>) -> Option<f64> {
    let s = v?;
    match s.split_once('/') {
        Some((a, b)) => {
            let (a, b): (f64, f64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (b != 0.0).then_some(a / b)
        }
        None => s.trim().parse().ok(),
    }
}

fn is_video_type(e: &BytesStart<'_>) -> bool {
    attr_str(e, b"contentType").is_some_and(|c| c == "video") || attr_str(e, b"mimeType").is_some_and(|m| m.starts_with("video/"))
}

fn set_info(e: &BytesStart<'_>, out_start: usize) -> SetInfo {
    SetInfo {
        out_start,
        reps: 0,
        kept: 0,
        video: is_video_type(e),
        width: num(attr_str(e, b"width")),
        height: num(attr_str(e, b"height")),
        codecs: attr_str(e, b"codecs").map(Cow::into_owned),
        frame_rate: frame_rate(attr_str(e, b"frameRate")),
    }
}

struct RepInfo {
    bandwidth: Option<u64>,
    width: Option<u64>,
    height: Option<u64>,
    codecs: Option<String>,
    frame_rate: Option<f64>,
}

impl RepInfo {
    fn as_rendition(&self) -> Rendition<'_> {
        Rendition {
            bandwidth: self.bandwidth,
            width: self.width,
            height: self.height,
            codecs: self.codecs.as_deref(),
            frame_rate: self.frame_rate,
        }
    }
}

fn rep_info(e: &BytesStart<'_>, set: Option<&SetInfo>) -> (bool, RepInfo) {
    let r = RepInfo {
        bandwidth: num(attr_str(e, b"bandwidth")),
        width: num(attr_str(e, b"width")).or(set.and_then(|s| s.width)),
        height: num(attr_str(e, b"height")).or(set.and_then(|s| s.height)),
        codecs: attr_str(e, b"codecs").map(Cow::into_owned).or_else(|| set.and_then(|s| s.codecs.clone())),
        frame_rate: frame_rate(attr_str(e, b"frameRate")).or(set.and_then(|s| s.frame_rate)),
    };
    let video = set.is_some_and(|s| s.video) || is_video_type(e) || r.as_rendition().is_video();
    (video, r)
}

#[cfg(test)]
mod tests;
