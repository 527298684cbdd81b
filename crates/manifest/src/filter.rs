//! Rendition filters: which variants (HLS) or Representations (DASH) to keep, by
//! bandwidth, resolution, codecs and frame rate.

/// A rendition filter. Every set bound must hold for a rendition to be kept; a bound
/// the rendition does not declare is not held against it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Keep renditions with at least this bandwidth (bits/s).
    pub min_bandwidth: Option<u64>,
    /// Keep renditions with at most this bandwidth (bits/s).
    pub max_bandwidth: Option<u64>,
    /// Keep renditions at most this tall.
    pub max_height: Option<u64>,
    /// Keep renditions at most this wide.
    pub max_width: Option<u64>,
    /// Keep renditions whose every codec starts with one of these (`avc1`, `mp4a`).
    pub codecs: Vec<String>,
    /// Keep renditions with at most this frame rate.
    pub max_frame_rate: Option<f64>,
}

/// What a rendition declares about itself.
#[derive(Debug, Clone, Default)]
pub struct Rendition<'a> {
    /// Bits per second.
    pub bandwidth: Option<u64>,
    /// Width in pixels.
    pub width: Option<u64>,
    /// Height in pixels.
    pub height: Option<u64>,
    /// Comma-separated codec list.
    pub codecs: Option<&'a str>,
    /// Frames per second.
    pub frame_rate: Option<f64>,
}

const VIDEO_CODECS: [&str; 9] = ["avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "vp8", "dvh1", "dvhe"];

impl Rendition<'_> {
    /// Whether this rendition carries video, as far as it says.
    pub fn is_video(&self) -> bool {
        self.width.is_some()
            || self.height.is_some()
            || self.codecs.is_some_and(|c| c.split(',').any(|c| VIDEO_CODECS.iter().any(|v| c.trim().starts_with(v))))
    }
}

impl Filter {
    /// True when no bound is set.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether a rendition passes.
    pub fn keeps(&self, r: &Rendition<'_>) -> bool {
        let le = |v: Option<u64>, max: Option<u64>| match (v, max) {
            (Some(v), Some(m)) => v <= m,
            _ => true,
        };
        if let (Some(b), Some(min)) = (r.bandwidth, self.min_bandwidth) {
            if b < min {
                return false;
            }
        }
        if !le(r.bandwidth, self.max_bandwidth) || !le(r.height, self.max_height) || !le(r.width, self.max_width) {
            return false;
        }
        if let (Some(f), Some(max)) = (r.frame_rate, self.max_frame_rate) {
            if f > max + 1e-9 {
                return false;
            }
        }
        if !self.codecs.is_empty() {
            if let Some(list) = r.codecs {
                let ok =
                    list.split(',').map(str::trim).filter(|c| !c.is_empty()).all(|c| self.codecs.iter().any(|p| c.starts_with(p.as_str())));
                if !ok {
                    return false;
                }
            }
        }
        true
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.min_bandwidth {
            parts.push(format!("min_bandwidth={v}"));
        }
        if let Some(v) = self.max_bandwidth {
            parts.push(format!("max_bandwidth={v}"));
        }
        if let Some(v) = self.max_height {
            parts.push(format!("max_height={v}"));
        }
        if let Some(v) = self.max_width {
            parts.push(format!("max_width={v}"));
        }
        if !self.codecs.is_empty() {
            parts.push(format!("codecs={}", self.codecs.join(",")));
        }
        if let Some(v) = self.max_frame_rate {
            parts.push(format!("max_frame_rate={v}"));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let f = Filter { max_height: Some(720), codecs: vec!["avc1".into(), "mp4a".into()], ..Default::default() };
        let r = |h, c| Rendition { height: Some(h), codecs: Some(c), ..Default::default() };
        assert!(f.keeps(&r(720, "avc1.64001f,mp4a.40.2")));
        assert!(!f.keeps(&r(1080, "avc1.640028,mp4a.40.2")));
        assert!(!f.keeps(&r(720, "hvc1.1.6.L93,mp4a.40.2")));
        assert!(Rendition { codecs: Some("hvc1.1"), ..Default::default() }.is_video());
        assert!(!Rendition { codecs: Some("mp4a.40.2"), ..Default::default() }.is_video());
    }
}
