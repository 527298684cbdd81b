//! Attribute lists (RFC 8216 §4.2): `NAME=VALUE` pairs separated by commas, where a value
//! is a quoted string (which may contain commas), a hexadecimal sequence, a number, a
//! resolution or an enumerated string. The parser returns byte spans into the line so the
//! rewriter can replace one value and copy everything else as it was.

/// One attribute: name, and the value's span in the tag's attribute text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute name.
    pub name: &'a [u8],
    /// The value without quotes.
    pub value: &'a [u8],
    /// Start of `value` within the attribute text.
    pub start: usize,
    /// Whether the value was quoted.
    pub quoted: bool,
}

/// Why an attribute list is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrError {
    /// A quoted string without its closing quote.
    UnterminatedQuote,
    /// Something other than a comma after a quoted value.
    JunkAfterQuote,
}

impl AttrError {
    /// A description for error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrError::UnterminatedQuote => "unterminated quoted string in attribute list",
            AttrError::JunkAfterQuote => "unexpected characters after a quoted attribute value",
        }
    }
}

/// Iterates over the attributes of `text` (what follows `#EXT-X-TAG:`).
pub struct Attrs<'a> {
    text: &'a [u8],
    pos: usize,
}

/// Attributes of an attribute list.
pub fn attrs(text: &[u8]) -> Attrs<'_> {
    Attrs { text, pos: 0 }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, AttrError>;

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.text;
        // Skip separators and blanks.
        while self.pos < t.len() && matches!(t[self.pos], b',' | b' ' | b'\t') {
            self.pos += 1;
        }
        if self.pos >= t.len() {
            return None;
        }
        let name_start = self.pos;
        let eq = match memchr::memchr2(b'=', b',', &t[self.pos..]) {
            Some(i) if t[self.pos + i] == b'=' => self.pos + i,
            Some(i) => {
                // A bare word without '=': skip it (tolerated, as players do).
                self.pos += i + 1;
                return self.next();
            }
            None => {
                self.pos = t.len();
                return None;
            }
        };
        let name = trim(&t[name_start..eq]);
        let vstart = eq + 1;
        if t.get(vstart) == Some(&b'"') {
            let Some(close) = memchr::memchr(b'"', &t[vstart + 1..]) else {
                self.pos = t.len();
                return Some(Err(AttrError::UnterminatedQuote));
            };
            let end = vstart + 1 + close;
            self.pos = end + 1;
            while self.pos < t.len() && matches!(t[self.pos], b' ' | b'\t') {
                self.pos += 1;
            }
            if self.pos < t.len() && t[self.pos] != b',' {
                self.pos = t.len();
                return Some(Err(AttrError::JunkAfterQuote));
            }
            Some(Ok(Attr { name, value: &t[vstart + 1..end], start: vstart + 1, quoted: true }))
        } else {
            let end = memchr::memchr(b',', &t[vstart..]).map_or(t.len(), |i| vstart + i);
            self.pos = end;
            Some(Ok(Attr { name, value: &t[vstart..end], start: vstart, quoted: false }))
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |i| i + 1);
    &b[s..e]
}

/// Parses `WIDTHxHEIGHT`.
pub fn resolution(v: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (w, h) = s.split_once(['x', 'X'])?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &str) -> Vec<(String, String, bool)> {
        attrs(s.as_bytes())
            .map(|a| {
                let a = a.unwrap_or(Attr { name: b"ERR", value: b"", start: 0, quoted: false });
                (String::from_utf8_lossy(a.name).into_owned(), String::from_utf8_lossy(a.value).into_owned(), a.quoted)
            })
            .collect()
    }

    #[test]
    fn rfc8216_4_2_quoted_strings_may_hold_commas() {
        let v = collect(r#"BANDWIDTH=1280000,CODECS="avc1.4d401f,mp4a.40.2",RESOLUTION=1280x720,URI="a,b.m3u8""#);
        assert_eq!(v[0], ("BANDWIDTH".into(), "1280000".into(), false));
        assert_eq!(v[1], ("CODECS".into(), "avc1.4d401f,mp4a.40.2".into(), true));
        assert_eq!(v[2], ("RESOLUTION".into(), "1280x720".into(), false));
        assert_eq!(v[3], ("URI".into(), "a,b.m3u8".into(), true));
    }

    #[test]
    fn rfc8216_4_2_hex_and_enums() {
        let v = collect("METHOD=AES-128,IV=0x0123456789abcdef0123456789abcdef,URI=\"k\"");
        assert_eq!(v[1].1, "0x0123456789abcdef0123456789abcdef");
        assert_eq!(v[2].1, "k");
    }

    #[test]
    fn spans_point_into_the_text() {
        let t = br#"METHOD=AES-128,URI="https://k.example/key",IV=0x1"#;
        let uri = attrs(t).filter_map(Result::ok).find(|a| a.name == b"URI").map(|a| (a.start, a.value.len()));
        assert_eq!(uri, Some((20, 21)));
        assert_eq!(&t[20..41], b"https://k.example/key");
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(attrs(br#"URI="abc"#).next(), Some(Err(AttrError::UnterminatedQuote)));
        assert_eq!(attrs(br#"URI="abc"x,Y=1"#).next(), Some(Err(AttrError::JunkAfterQuote)));
    }
}
