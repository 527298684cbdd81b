//! Manifest detection (SPEC "Manifest transformation rules"): by content type first;
//! for generic content types by path extension plus a look at the first bytes.

/// A manifest format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HLS playlist (RFC 8216).
    Hls,
    /// DASH MPD (ISO/IEC 23009-1).
    Dash,
}

/// Content types that are generic enough that the path and body decide.
fn generic(ct: &str) -> bool {
    ct.is_empty()
        || ct.starts_with("text/plain")
        || ct.starts_with("application/octet-stream")
        || ct.starts_with("binary/octet-stream")
        || ct.starts_with("application/xml")
        || ct.starts_with("text/xml")
}

/// The format a content type names by itself (`None` for generic or other types).
pub fn by_content_type(content_type: Option<&str>) -> Option<Format> {
    let ct = content_type.unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    let is = |t: &str| essence.eq_ignore_ascii_case(t);
    if is("application/vnd.apple.mpegurl") || is("application/x-mpegurl") || is("audio/mpegurl") || is("audio/x-mpegurl") {
        Some(Format::Hls)
    } else if is("application/dash+xml") {
        Some(Format::Dash)
    } else {
        None
    }
}

/// Decides whether a response is a manifest. `head` is the start of the body (a few
/// hundred bytes are enough), or empty when the body has not been read yet: then a
/// generic content type with a manifest extension answers `Some` tentatively and the
/// caller confirms with [`sniff`] once bytes are there.
pub fn detect(content_type: Option<&str>, path: &str) -> Option<Format> {
    if let Some(f) = by_content_type(content_type) {
        return Some(f);
    }
    let essence = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !generic(&essence) {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".m3u8") {
        Some(Format::Hls)
    } else if lower.ends_with(".mpd") {
        Some(Format::Dash)
    } else {
        None
    }
}

/// Whether the body starts like the format (after an optional UTF-8 BOM and whitespace).
pub fn sniff(format: Format, head: &[u8]) -> bool {
    let b = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let b = &b[start..];
    match format {
        Format::Hls => b.starts_with(b"#EXTM3U"),
        Format::Dash => b.starts_with(b"<?xml") || b.starts_with(b"<MPD") || b.starts_with(b"<!--") || has_mpd_root(b),
    }
}

fn has_mpd_root(b: &[u8]) -> bool {
    // A prefixed root such as <mpd:MPD ...>.
    b.first() == Some(&b'<') && memchr::memmem::find(&b[..b.len().min(256)], b"MPD").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_content_type_then_extension() {
        assert_eq!(detect(Some("application/vnd.apple.mpegurl"), "/x"), Some(Format::Hls));
        assert_eq!(detect(Some("Application/X-MpegURL; charset=utf-8"), "/x"), Some(Format::Hls));
        assert_eq!(detect(Some("application/dash+xml"), "/x.bin"), Some(Format::Dash));
        assert_eq!(detect(Some("text/plain"), "/a/b.m3u8"), Some(Format::Hls));
        assert_eq!(detect(None, "/a/b.MPD"), Some(Format::Dash));
        assert_eq!(detect(Some("video/mp2t"), "/a/b.m3u8"), None);
        assert_eq!(detect(Some("text/plain"), "/a/b.txt"), None);
    }

    #[test]
    fn sniffing() {
        assert!(sniff(Format::Hls, b"\xEF\xBB\xBF#EXTM3U\n"));
        assert!(!sniff(Format::Hls, b"<html>"));
        assert!(sniff(Format::Dash, b"  <?xml version=\"1.0\"?><MPD/>"));
        assert!(sniff(Format::Dash, b"<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\">"));
        assert!(!sniff(Format::Dash, b"#EXTM3U"));
    }
}
