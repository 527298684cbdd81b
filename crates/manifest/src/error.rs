//! The one error type of the crate.

/// Why a manifest could not be transformed. Every variant names its cause; none carries
/// another crate's error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// HLS that breaks RFC 8216 (line is 1-based).
    #[error("invalid HLS playlist at line {line}: {reason}")]
    Hls {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// DASH that is not a well-formed MPD (byte offset into the input).
    #[error("invalid DASH MPD at byte {offset}: {reason}")]
    Dash {
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A rendition filter would leave no video rendition.
    #[error("the rendition filter leaves no video rendition ({0})")]
    FilterRemovedAll(String),
}
