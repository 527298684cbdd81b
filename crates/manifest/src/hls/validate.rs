//! RFC 8216 checks, fed one line at a time by the rewriter (one pass over the input).
//!
//! The checks are the "clients MUST fail to parse" rules of RFC 8216 (plus, from its
//! successor draft 8216bis, EXT-X-DEFINE and the low-latency tags) that one pass can
//! decide, kept only as strict as players are: what hls.js and the other parsers of the
//! conformance corpus accept is accepted here too (unknown tags, comments, blank or
//! indented lines, `#EXTINF` without its comma or with an odd duration, a fractional
//! `#EXT-X-TARGETDURATION`, EXT-X-STREAM-INF without BANDWIDTH, fractional EXTINF, IV or
//! EXT-X-BYTERANGE under a too-low EXT-X-VERSION). `tests/corpus_hls_validate.rs` holds
//! the corpus files where that tolerance and the corpus verdicts disagree.
//!
//! Cost: no allocation per line (only an error, or an `EXT-X-DEFINE` name, allocates);
//! tag names are compared as byte slices; the state is a few flags and counters.

use crate::ManifestError;

// Tags that must not appear more than once in a playlist (RFC 8216 §4.3.1.2, §4.3.3,
// §4.3.5; 8216bis §4.4.3.7, §4.4.3.8, §4.4.5.2): one bit each in `Validator::seen`.
const VERSION: u16 = 1;
const TARGETDURATION: u16 = 1 << 1;
const MEDIA_SEQUENCE: u16 = 1 << 2;
const DISCONTINUITY_SEQUENCE: u16 = 1 << 3;
const ENDLIST: u16 = 1 << 4;
const PLAYLIST_TYPE: u16 = 1 << 5;
const I_FRAMES_ONLY: u16 = 1 << 6;
const PART_INF: u16 = 1 << 7;
const SERVER_CONTROL: u16 = 1 << 8;
const SKIP: u16 = 1 << 9;
const INDEPENDENT_SEGMENTS: u16 = 1 << 10;
const START: u16 = 1 << 11;

/// Validation state of one playlist.
#[derive(Debug, Default)]
pub struct Validator {
    /// `line` has been called (so the header has been checked).
    started: bool,
    /// A tag or a URI line came after the header.
    content: bool,
    /// The once-only tags seen so far (one bit per tag, see the constants above).
    seen: u16,
    /// A media segment URI line has been seen.
    segment_seen: bool,
    /// Media segment tags (normally `#EXTINF`) wait for their URI line.
    pending_segment: bool,
    /// An `#EXT-X-STREAM-INF` waits for its URI line.
    pending_variant: bool,
    /// A master playlist tag has been seen (EXT-X-STREAM-INF, EXT-X-MEDIA, ...).
    master: bool,
    /// The `EXT-X-VERSION` value, if any.
    version: Option<u64>,
    /// Line of `#EXT-X-I-FRAMES-ONLY` (0: none), checked against the version at the end.
    iframes_only_line: usize,
    /// Variable names defined so far (NAME, IMPORT or QUERYPARAM of `EXT-X-DEFINE`).
    /// Empty, without allocation, unless the playlist uses `EXT-X-DEFINE`.
    vars: Vec<Box<[u8]>>,
    /// The last URI line contained a `{` (a possible variable reference).
    uri_has_brace: bool,
}

fn err(line: usize, reason: impl Into<String>) -> ManifestError {
    ManifestError::Hls { line, reason: reason.into() }
}

/// `decimal-integer` (RFC 8216 §4.2): 1 to 20 digits, at most 2^64-1.
fn decimal_integer(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &c| if c.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(c - b'0')) } else { None })
}

/// A non-negative decimal number (`decimal-integer` or `decimal-floating-point`).
fn decimal_number(v: &[u8]) -> bool {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    (!int.is_empty() || !frac.is_empty()) && int.iter().chain(frac).all(u8::is_ascii_digit)
}

/// Variable names are `[a-zA-Z0-9_-]+` (8216bis §4.3).
fn var_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// The value of attribute `want` in an attribute list (§4.2; quotes removed), if present.
/// Quoted strings may hold commas and `=`; names are compared after trimming blanks, and
/// bare words without `=` are skipped.
fn attr<'a>(list: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    let mut rest = list;
    loop {
        let eq = memchr::memchr(b'=', rest)?;
        let name = rest[..eq].trim_ascii();
        let name = match memchr::memrchr(b',', name) {
            Some(i) => name[i + 1..].trim_ascii(),
            None => name,
        };
        let after = &rest[eq + 1..];
        let (value, next) = if after.first() == Some(&b'"') {
            match memchr::memchr(b'"', &after[1..]) {
                Some(close) => {
                    let tail = &after[close + 2..];
                    (&after[1..close + 1], memchr::memchr(b',', tail).map_or(&b""[..], |i| &tail[i + 1..]))
                }
                None => (&after[1..], &b""[..]),
            }
        } else {
            match memchr::memchr(b',', after) {
                Some(i) => (&after[..i], &after[i + 1..]),
                None => (after, &b""[..]),
            }
        };
        if name == want {
            return Some(value.trim_ascii());
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

impl Validator {
    /// A fresh validator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the URI line just checked contains a `{`, so the rewriter need not scan it
    /// again for variable references.
    pub fn uri_has_brace(&self) -> bool {
        self.uri_has_brace
    }

    /// Checks one line (without its line terminator; a trailing `\r` already removed).
    /// `line_no` is 1-based. The first line has had any UTF-8 BOM removed.
    pub fn line(&mut self, line_no: usize, line: &[u8]) -> Result<(), ManifestError> {
        // Players tolerate indentation and trailing blanks; so do we.
        let line = line.trim_ascii();
        if !self.started {
            self.started = true;
            // §4.3.1.1: the first line of every playlist is #EXTM3U.
            if line != b"#EXTM3U" {
                return Err(err(line_no, "the first line is not #EXTM3U"));
            }
            return Ok(());
        }
        match line.first() {
            None => Ok(()),
            // The hot path: half of a media playlist's lines. Players accept a missing
            // comma and odd durations, so only the pairing with a URI line is checked.
            Some(b'#') if line.starts_with(b"#EXTINF") && line.get(7).is_none_or(|&c| c == b':') => {
                self.content = true;
                self.pending_segment = true;
                Ok(())
            }
            Some(b'#') if line.starts_with(b"#EXT") => {
                // A repeated header line is tolerated (as an unknown tag), but is no content.
                self.content |= line != b"#EXTM3U";
                self.tag(line_no, line)
            }
            // §4.1: other lines starting with '#' are comments.
            Some(b'#') => Ok(()),
            Some(_) => {
                self.content = true;
                self.uri(line_no, line)
            }
        }
    }

    /// Checks what can only be known at the end (e.g. a playlist with no segments and no
    /// variants). `lines` is the number of lines seen.
    pub fn finish(&mut self, lines: usize) -> Result<(), ManifestError> {
        if !self.started {
            return Err(err(1, "empty playlist: the #EXTM3U header is missing"));
        }
        // A playlist may have no segment yet (live) or no variant, but not nothing at all.
        if !self.content {
            return Err(err(lines.max(1), "the playlist has nothing but the #EXTM3U header"));
        }
        // §7: EXT-X-I-FRAMES-ONLY needs compatibility version 4.
        if self.iframes_only_line != 0 && self.version.unwrap_or(1) < 4 {
            return Err(err(self.iframes_only_line, "EXT-X-I-FRAMES-ONLY requires EXT-X-VERSION 4 or higher"));
        }
        Ok(())
    }

    /// A URI line: a variant stream after `EXT-X-STREAM-INF`, a media segment after its
    /// media segment tags, or (tolerated, as players ignore it) a stray line in a master
    /// playlist.
    fn uri(&mut self, line_no: usize, line: &[u8]) -> Result<(), ManifestError> {
        self.uri_has_brace = memchr::memchr(b'{', line).is_some();
        if self.uri_has_brace {
            self.check_refs(line_no, line)?;
        }
        if self.pending_variant {
            self.pending_variant = false;
            return Ok(());
        }
        if self.pending_segment {
            // §4.3.3.4: no media segment follows EXT-X-ENDLIST.
            if self.seen & ENDLIST != 0 {
                return Err(err(line_no, "a media segment after EXT-X-ENDLIST"));
            }
            self.pending_segment = false;
            self.segment_seen = true;
            return Ok(());
        }
        if self.master {
            return Ok(());
        }
        // §4.3.2: a media segment is a series of media segment tags (EXTINF required)
        // followed by its URI; a URI line with none of them before it is no segment.
        Err(err(line_no, "a URI line without a preceding #EXTINF (or #EXT-X-STREAM-INF)"))
    }

    /// Records a once-only tag; errors on its second occurrence.
    fn only_once(&mut self, line_no: usize, bit: u16, name: &[u8]) -> Result<(), ManifestError> {
        if self.seen & bit != 0 {
            return Err(err(line_no, format!("#{} must not appear more than once", String::from_utf8_lossy(name))));
        }
        self.seen |= bit;
        Ok(())
    }

    fn tag(&mut self, line_no: usize, line: &[u8]) -> Result<(), ManifestError> {
        let body = &line[1..];
        let (name, v) = match memchr::memchr(b':', body) {
            Some(i) => (&body[..i], body[i + 1..].trim_ascii()),
            None => (body, &b""[..]),
        };
        match name {
            // §4.3.2, 8216bis §4.4.4: media segment tags other than EXTINF (handled in
            // `line`), which also precede a segment's URI (players tolerate a segment whose
            // EXTINF is missing).
            b"EXT-X-BYTERANGE"
            | b"EXT-X-DISCONTINUITY"
            | b"EXT-X-KEY"
            | b"EXT-X-MAP"
            | b"EXT-X-PROGRAM-DATE-TIME"
            | b"EXT-X-DATERANGE"
            | b"EXT-X-GAP"
            | b"EXT-X-BITRATE"
            | b"EXT-X-PART" => self.pending_segment = true,
            b"EXT-X-VERSION" => {
                self.only_once(line_no, VERSION, name)?;
                match decimal_integer(v) {
                    Some(n) => self.version = Some(n),
                    None => return Err(err(line_no, "EXT-X-VERSION is not a decimal integer")),
                }
            }
            b"EXT-X-TARGETDURATION" => {
                self.only_once(line_no, TARGETDURATION, name)?;
                // §4.3.3.1 says decimal-integer; hls.js and others round fractional values,
                // so any non-negative number is accepted.
                if !decimal_number(v) {
                    return Err(err(line_no, "EXT-X-TARGETDURATION is not a non-negative number"));
                }
            }
            b"EXT-X-MEDIA-SEQUENCE" => {
                self.only_once(line_no, MEDIA_SEQUENCE, name)?;
                if decimal_integer(v).is_none() {
                    return Err(err(line_no, "EXT-X-MEDIA-SEQUENCE is not a non-negative decimal integer"));
                }
                // §4.3.3.2: before the first media segment.
                if self.segment_seen {
                    return Err(err(line_no, "EXT-X-MEDIA-SEQUENCE must appear before the first media segment"));
                }
            }
            b"EXT-X-DISCONTINUITY-SEQUENCE" => {
                self.only_once(line_no, DISCONTINUITY_SEQUENCE, name)?;
                // §4.3.3.3 also wants it before the first segment; hls.js applies a late one
                // to all segments, so only the value is checked.
                if decimal_integer(v).is_none() {
                    return Err(err(line_no, "EXT-X-DISCONTINUITY-SEQUENCE is not a non-negative decimal integer"));
                }
            }
            b"EXT-X-ENDLIST" => self.only_once(line_no, ENDLIST, name)?,
            b"EXT-X-PLAYLIST-TYPE" => {
                self.only_once(line_no, PLAYLIST_TYPE, name)?;
                if v != b"EVENT" && v != b"VOD" {
                    return Err(err(line_no, "EXT-X-PLAYLIST-TYPE is neither EVENT nor VOD"));
                }
            }
            b"EXT-X-I-FRAMES-ONLY" => {
                self.only_once(line_no, I_FRAMES_ONLY, name)?;
                self.iframes_only_line = line_no;
            }
            b"EXT-X-PART-INF" => self.only_once(line_no, PART_INF, name)?,
            b"EXT-X-SERVER-CONTROL" => self.only_once(line_no, SERVER_CONTROL, name)?,
            // 8216bis §4.4.5.2. hls.js accepts it after a segment, so only once-ness.
            b"EXT-X-SKIP" => self.only_once(line_no, SKIP, name)?,
            b"EXT-X-INDEPENDENT-SEGMENTS" => self.only_once(line_no, INDEPENDENT_SEGMENTS, name)?,
            b"EXT-X-START" => self.only_once(line_no, START, name)?,
            b"EXT-X-ALLOW-CACHE" => {
                // Removed by RFC 8216 (protocol version 7); its grammar was YES or NO.
                if v != b"YES" && v != b"NO" {
                    return Err(err(line_no, "EXT-X-ALLOW-CACHE is neither YES nor NO"));
                }
            }
            b"EXT-X-STREAM-INF" => {
                // §4.3.4.2 requires BANDWIDTH, but players fall back to other attributes and
                // real playlists omit it or write it as a float: not checked. The next URI
                // line is the variant.
                self.master = true;
                self.pending_variant = true;
            }
            b"EXT-X-I-FRAME-STREAM-INF" => {
                // §4.3.4.3: the I-frame playlist is the URI attribute.
                self.master = true;
                if attr(v, b"URI").is_none_or(<[u8]>::is_empty) {
                    return Err(err(line_no, "EXT-X-I-FRAME-STREAM-INF without a URI"));
                }
            }
            b"EXT-X-MEDIA" | b"EXT-X-SESSION-DATA" | b"EXT-X-SESSION-KEY" | b"EXT-X-CONTENT-STEERING" => self.master = true,
            b"EXT-X-PRELOAD-HINT" | b"EXT-X-RENDITION-REPORT" => {}
            b"EXT-X-DEFINE" => {
                // A reference in VALUE must not use the name being defined.
                self.check_refs(line_no, line)?;
                return self.define(line_no, v);
            }
            b"EXT-X-CUE-OUT" => {
                // SCTE-35 cue (not RFC 8216): `#EXT-X-CUE-OUT[:<duration>[,...]]` or
                // `#EXT-X-CUE-OUT:DURATION=<duration>,...`; a duration must be a number.
                let first = v[..memchr::memchr(b',', v).unwrap_or(v.len())].trim_ascii();
                let duration = if memchr::memchr(b'=', first).is_some() { attr(v, b"DURATION") } else { Some(first) };
                if duration.is_some_and(|d| !d.is_empty() && !decimal_number(d)) {
                    return Err(err(line_no, "EXT-X-CUE-OUT duration is not a number"));
                }
                return Ok(());
            }
            // Unknown tags: no rules, and no variable substitution either.
            _ => return Ok(()),
        }
        self.uri_has_brace = memchr::memchr(b'{', line).is_some();
        if self.uri_has_brace {
            self.check_refs(line_no, line)?;
        }
        Ok(())
    }

    /// `EXT-X-DEFINE` (8216bis §4.4.2.3): exactly one of NAME (with VALUE), IMPORT or
    /// QUERYPARAM; a name is defined at most once. An IMPORTed name takes its value from
    /// the multivariant playlist, which a single-playlist validator cannot see: it counts
    /// as defined.
    fn define(&mut self, line_no: usize, v: &[u8]) -> Result<(), ManifestError> {
        let name = attr(v, b"NAME");
        let import = attr(v, b"IMPORT");
        let query = attr(v, b"QUERYPARAM");
        let defined = match (name, import, query) {
            (Some(n), None, None) => {
                if attr(v, b"VALUE").is_none() {
                    return Err(err(line_no, "EXT-X-DEFINE with NAME but no VALUE"));
                }
                n
            }
            (None, Some(n), None) | (None, None, Some(n)) => n,
            _ => return Err(err(line_no, "EXT-X-DEFINE needs exactly one of NAME, IMPORT or QUERYPARAM")),
        };
        if defined.is_empty() || !defined.iter().all(|&c| var_name_char(c)) {
            return Err(err(line_no, "EXT-X-DEFINE variable name is not [a-zA-Z0-9_-]+"));
        }
        if self.vars.iter().any(|d| **d == *defined) {
            return Err(err(line_no, format!("variable \"{}\" is defined more than once", String::from_utf8_lossy(defined))));
        }
        self.vars.push(defined.into());
        Ok(())
    }

    /// 8216bis §4.3: every variable reference `{$name}` needs an earlier definition.
    fn check_refs(&self, line_no: usize, text: &[u8]) -> Result<(), ManifestError> {
        let mut rest = text;
        while let Some(i) = memchr::memchr(b'{', rest) {
            rest = &rest[i + 1..];
            let Some(after) = rest.strip_prefix(b"$") else { continue };
            let len = after.iter().take_while(|&&c| var_name_char(c)).count();
            if len == 0 || after.get(len) != Some(&b'}') {
                continue;
            }
            let name = &after[..len];
            if !self.vars.iter().any(|d| **d == *name) {
                return Err(err(
                    line_no,
                    format!("variable reference {{${}}} without a preceding EXT-X-DEFINE", String::from_utf8_lossy(name)),
                ));
            }
            rest = &after[len + 1..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a playlist through the validator like the rewriter does.
    fn check(text: &str) -> Result<(), ManifestError> {
        let mut v = Validator::new();
        let mut n = 0;
        for (i, l) in text.split_terminator('\n').enumerate() {
            n = i + 1;
            v.line(n, l.strip_suffix('\r').unwrap_or(l).as_bytes())?;
        }
        v.finish(n)
    }

    fn fails_at(text: &str) -> usize {
        match check(text) {
            Err(ManifestError::Hls { line, .. }) => line,
            other => panic!("expected an HLS error, got {other:?} for:\n{text}"),
        }
    }

    const MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:7\n\
                         #EXTINF:9.009,\nfirst.ts\n#EXTINF:9.009,title\nsecond.ts\n#EXT-X-ENDLIST\n";
    const MASTER: &str = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"a.m3u8\"\n\
                          #EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"a\"\nlow.m3u8\n\
                          #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"low-iframe.m3u8\"\n";

    #[test]
    fn rfc8216_well_formed_media_and_master_playlists_pass() {
        check(MEDIA).unwrap();
        check(MASTER).unwrap();
        check(&MEDIA.replace('\n', "\r\n")).unwrap();
    }

    #[test]
    fn rfc8216_4_3_1_1_header_first() {
        assert_eq!(fails_at("#EXT-X-TARGETDURATION:10\n#EXTINF:10,\na.ts\n"), 1);
        assert_eq!(fails_at("# comment\n#EXTM3U\n#EXT-X-TARGETDURATION:10\n"), 1);
        assert_eq!(fails_at("#EXTM3U#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"), 1);
        // Trailing blanks on the header line are tolerated.
        check("#EXTM3U \n#EXT-X-TARGETDURATION:10\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_1_1_empty_and_header_only_playlists() {
        assert_eq!(fails_at(""), 1);
        assert_eq!(fails_at("#EXTM3U\n"), 1);
        assert_eq!(fails_at("#EXTM3U\n\n# just a comment\n"), 3);
        assert_eq!(fails_at("#EXTM3U\n#EXTM3U\n"), 2);
        // A live playlist with no segment yet is fine.
        check("#EXTM3U\n#EXT-X-TARGETDURATION:6\n").unwrap();
    }

    #[test]
    fn rfc8216_4_1_comments_blank_lines_and_unknown_tags_are_ignored() {
        // Unknown tags get no variable substitution, so `{$x}` there is no reference.
        check("#EXTM3U\n\n# a comment\n#EXT-X-UNKNOWN:whatever={$x}\n#EXT-OATCLS-SCTE35:/DA0\n   #EXT-X-TARGETDURATION:4\n#EXTINF:4,\n  a.ts  \n    \n")
            .unwrap();
        // A repeated #EXTM3U line is tolerated.
        check("#EXTM3U\n#EXTM3U\n#EXT-X-TARGETDURATION:4\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_1_2_version_once_and_integer() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-VERSION:5\n#EXT-X-VERSION:6\n"), 3);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-VERSION:NaN\n"), 2);
        check("#EXTM3U\n#EXT-X-VERSION: 10\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_2_1_extinf_precedes_each_segment_uri() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\na.ts\nb.ts\n"), 5);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-TARGETDURATION:10\nJUNK\n"), 3);
        assert_eq!(fails_at("#EXTM3U\na.ts\n"), 2);
        // A playlist tag is not a media segment tag.
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-TARGETDURATION:10\na.ts\n"), 3);
        // Segment tags may sit between EXTINF and the URI; the comma is tolerated.
        check("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-VERSION:4\n#EXTINF:10\n#EXT-X-BYTERANGE:100@0\na.ts\n").unwrap();
        // A segment whose EXTINF is missing but that has other media segment tags is
        // tolerated, as by hls.js and videojs.
        check("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\na.ts\n#EXT-X-BYTERANGE:100@0\na.ts\n").unwrap();
        check("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MAP:URI=\"i.mp4\"\n4.m4s\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_3_1_targetduration_once_and_numeric() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXT-X-TARGETDURATION:4\n"), 3);
        for bad in ["", "NaN", "-10", "1e3", "."] {
            assert_eq!(fails_at(&format!("#EXTM3U\n#EXT-X-TARGETDURATION:{bad}\n")), 2, "{bad:?}");
        }
        check("#EXTM3U\n#EXT-X-TARGETDURATION:2.5\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_3_2_media_sequence_once_integer_before_first_segment() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MEDIA-SEQUENCE:2\n"), 3);
        for bad in ["", "-11", "gobblegobble", "1.5", "99999999999999999999"] {
            assert_eq!(fails_at(&format!("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:{bad}\n")), 2, "{bad:?}");
        }
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4,\n1.ts\n#EXT-X-MEDIA-SEQUENCE:2\n"), 5);
        check("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_3_3_discontinuity_sequence_once_before_first_segment() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:4,\n1.ts\n#EXT-X-DISCONTINUITY-SEQUENCE:2\n"), 5);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DISCONTINUITY-SEQUENCE:x\n"), 2);
    }

    #[test]
    fn rfc8216_4_3_3_4_endlist_once_and_last() {
        assert_eq!(fails_at("#EXTM3U\n#EXTINF:4,\n1.ts\n#EXT-X-ENDLIST\n#EXT-X-ENDLIST\n"), 5);
        assert_eq!(fails_at("#EXTM3U\n#EXTINF:4,\n1.ts\n#EXT-X-ENDLIST\n#EXTINF:4,\n2.ts\n"), 6);
    }

    #[test]
    fn rfc8216_4_3_3_5_playlist_type_once_event_or_vod() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-PLAYLIST-TYPE:EVENT\n"), 3);
        for bad in ["", "STRING", "vod"] {
            assert_eq!(fails_at(&format!("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:{bad}\n")), 2, "{bad:?}");
        }
        check("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_3_6_i_frames_only_needs_version_4() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:1,\n#EXT-X-BYTERANGE:1@0\na.ts\n"), 3);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-I-FRAMES-ONLY\n"), 2);
        check("#EXTM3U\n#EXT-X-I-FRAMES-ONLY\n#EXT-X-VERSION:4\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_4_2_stream_inf_uri_is_the_variant() {
        check("#EXTM3U\n#EXT-X-STREAM-INF:PROGRAM-ID=1, BANDWIDTH=40000\nmedia.m3u8\n").unwrap();
        // BANDWIDTH is required by the RFC but missing or float in real playlists: tolerated.
        check("#EXTM3U\n#EXT-X-STREAM-INF:CODECS=\"mp4a.40.2\"\naudio.m3u8\n").unwrap();
        // Stray URI lines in a master playlist are ignored by players: tolerated.
        check("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"A1.m3u8\"\nA1.m3u8\n").unwrap();
        // Variable references in the variant URI need a definition.
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv{$x}.m3u8\n"), 3);
    }

    #[test]
    fn rfc8216_4_3_4_3_i_frame_stream_inf_needs_uri() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1\n"), 2);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"\"\n"), 2);
        check("#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\"\n").unwrap();
    }

    #[test]
    fn rfc8216_4_3_5_start_and_independent_segments_once() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-START:TIME-OFFSET=0\n#EXT-X-START:TIME-OFFSET=1\n"), 3);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-INDEPENDENT-SEGMENTS\n"), 3);
    }

    #[test]
    fn rfc8216_7_allow_cache_yes_or_no() {
        for bad in ["", "0", "MAYBE"] {
            assert_eq!(fails_at(&format!("#EXTM3U\n#EXT-X-ALLOW-CACHE:{bad}\n")), 2, "{bad:?}");
        }
        check("#EXTM3U\n#EXT-X-ALLOW-CACHE:NO\n").unwrap();
    }

    #[test]
    fn rfc8216bis_4_4_3_low_latency_tags_once() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=1\n#EXT-X-PART-INF:PART-TARGET=0.5\n"), 3);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=24\n"), 3);
    }

    #[test]
    fn rfc8216bis_4_4_5_2_skip_once() {
        let head = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:1\n";
        assert_eq!(fails_at(&format!("{head}#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n#EXTINF:4,\n2.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n")), 7);
        check(&format!("{head}#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n#EXTINF:4,\n2.ts\n")).unwrap();
        // hls.js accepts a skip after the first segment; a late MEDIA-SEQUENCE is the error.
        check(&format!("{head}#EXTINF:4,\n2.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXTINF:4,\n6.ts\n")).unwrap();
        let late = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n1.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXT-X-MEDIA-SEQUENCE:1\n";
        assert_eq!(fails_at(late), 6);
    }

    #[test]
    fn rfc8216bis_4_3_variable_references_need_a_definition() {
        let ok = "#EXTM3U\n#EXT-X-DEFINE:NAME=\"host\",VALUE=\"example.com\"\n#EXT-X-DEFINE:NAME=\"b\",VALUE=\"{$host}\"\n\
                  #EXT-X-DEFINE:QUERYPARAM=\"token\"\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttps://{$host}/1.ts?t={$token}\n";
        check(ok).unwrap();
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttps://{$host}/1.mp4\n"), 4);
        assert_eq!(fails_at("#EXTM3U\n#EXTINF:4,\na{$bar}.mp4\n#EXT-X-DEFINE:NAME=\"bar\",VALUE=\"1\"\n"), 3);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"{$k}\"\n"), 2);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DEFINE:NAME=\"x\",VALUE=\"{$x}\"\n"), 2);
        // Not variable references: no `$`, an empty name, no closing brace.
        check("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na{b}{$}{$x.ts\n").unwrap();
    }

    #[test]
    fn rfc8216bis_4_4_2_3_define_rules() {
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DEFINE:NAME=\"foo\",VALUE=\"a\"\n#EXT-X-DEFINE:NAME=\"bar\",VALUE=\"b\"\n#EXT-X-DEFINE:NAME=\"foo\",VALUE=\"c\"\n"), 4);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DEFINE:NAME=\"foo\"\n"), 2);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DEFINE:VALUE=\"foo\"\n"), 2);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DEFINE:NAME=\"a\",IMPORT=\"b\",VALUE=\"c\"\n"), 2);
        assert_eq!(fails_at("#EXTM3U\n#EXT-X-DEFINE:NAME=\"a b\",VALUE=\"c\"\n"), 2);
        // IMPORT takes its value from the multivariant playlist, which is not visible here.
        check("#EXTM3U\n#EXT-X-DEFINE:IMPORT=\"v\"\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na{$v}.mp4\n").unwrap();
    }

    #[test]
    fn scte35_cue_out_duration_is_numeric() {
        for ok in ["", ":", ":30", ":11.52", ":DURATION=15", ":4,SpliceType=VOD_DAI", ":DURATION=150,BREAKID=0x0", ":ID=1"] {
            check(&format!("#EXTM3U\n#EXT-X-CUE-OUT{ok}\n")).unwrap();
        }
        for bad in [":INVALID", ":DURATION=abc", ":-5"] {
            assert_eq!(fails_at(&format!("#EXTM3U\n#EXT-X-CUE-OUT{bad}\n")), 2, "{bad:?}");
        }
        check("#EXTM3U\n#EXT-X-CUE-OUT-CONT:ElapsedTime=5\n").unwrap();
    }

    #[test]
    fn attribute_lookup_skips_quoted_text_and_bare_words() {
        let l = br#"CODECS="a,BANDWIDTH=9", junk ,BANDWIDTH= 77 ,URI="u""#;
        assert_eq!(attr(l, b"BANDWIDTH"), Some(&b"77"[..]));
        assert_eq!(attr(l, b"URI"), Some(&b"u"[..]));
        assert_eq!(attr(l, b"CODECS"), Some(&b"a,BANDWIDTH=9"[..]));
        assert_eq!(attr(l, b"NOPE"), None);
        assert_eq!(attr(b"", b"X"), None);
        assert_eq!(attr(br#"URI="open"#, b"URI"), Some(&b"open"[..]));
    }

    #[test]
    fn numbers() {
        assert_eq!(decimal_integer(b"0"), Some(0));
        assert_eq!(decimal_integer(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal_integer(b"18446744073709551616"), None);
        assert_eq!(decimal_integer(b"+1"), None);
        assert!(decimal_number(b"2.5") && decimal_number(b"10") && decimal_number(b".5") && decimal_number(b"5."));
        assert!(!decimal_number(b"") && !decimal_number(b".") && !decimal_number(b"1.2.3") && !decimal_number(b"-1"));
    }
}
