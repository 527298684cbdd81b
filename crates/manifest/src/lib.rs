//! streamgate-manifest: the pure transformation core. Manifest bytes and a [`Plan`] in,
//! new bytes or a typed [`ManifestError`] out. No I/O, no async, no HTTP types: the proxy
//! feeds it bodies, the `rewrite` command feeds it stdin, fuzzers feed it anything.
//!
//! Formats plug in behind [`Format`]; each one rewrites only the URI sites it owns and
//! copies every other byte of the input unchanged.

pub mod dash;
pub mod detect;
mod error;
pub mod filter;
pub mod hls;
pub mod live;
pub mod mapping;
pub mod token;
pub mod url;

#[cfg(test)]
mod test_support;

pub use detect::{detect, Format};
pub use error::ManifestError;
pub use filter::Filter;
pub use live::{liveness, Liveness};
pub use mapping::{Mapper, Mode, OriginId, RouteTarget};

/// Everything one transformation needs: how URLs map, where this manifest lives on the
/// origin and in public, what to add to child URLs, and which renditions to keep.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// URL mapping rules of the route (and the other routes it can map children to).
    pub mapper: &'a Mapper,
    /// The absolute URL this manifest was fetched from on the origin.
    pub origin_url: &'a str,
    /// The path (no query) the client asked for, e.g. `/vod/a/master.m3u8`.
    pub public_path: &'a str,
    /// Already percent-encoded `k=v&k2=v2` to append to every mapped child URL (signed
    /// tokens, propagated session ids). Empty for none.
    pub extra_query: &'a str,
    /// Renditions to keep; `None` keeps all.
    pub filter: Option<&'a Filter>,
}

impl Plan<'_> {
    /// True when the plan changes nothing, so the input can be returned as it is.
    pub fn is_identity(&self) -> bool {
        self.mapper.mode() == Mode::None && self.extra_query.is_empty() && self.filter.is_none_or(Filter::is_empty)
    }
}

/// Transforms one manifest. With an identity plan the output is byte-identical to the
/// input (after the format's validity checks).
pub fn transform(format: Format, input: &[u8], plan: &Plan<'_>) -> Result<Vec<u8>, ManifestError> {
    match format {
        Format::Hls => hls::rewrite(input, plan),
        Format::Dash => dash::rewrite(input, plan),
    }
}
