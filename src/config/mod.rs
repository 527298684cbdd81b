//! Configuration: the raw schema users write, loading and merging (files, then
//! environment), secrets, units, and validation into typed values.

pub mod access;
pub mod auth;
pub mod limits;
mod load;
mod locate;
pub mod rego;
pub mod schema;
pub mod secret;
pub mod units;
mod validate;

pub use load::{load, ConfigErrors, ConfigSource, Locator, Problem};
pub use schema::RawConfig;
pub use validate::{validate, AdminSettings, Config, OriginSettings, OriginUrl, RouteSettings, ServerSettings, TokenSettings};
pub use validate::{ProxyKind, UpstreamProxy};

/// Loads and validates in one step: what `serve` and `check` do.
pub fn load_and_validate(source: &ConfigSource) -> Result<Config, ConfigErrors> {
    let (raw, locator) = load(source)?;
    validate(raw, &locator)
}

/// The embedded demo configuration, with the bundled media directory filled in.
pub fn embedded_default() -> ConfigSource {
    let media = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/media");
    ConfigSource::Embedded(include_str!("../../examples/demo.toml").replace("@MEDIA_DIR@", media))
}
