//! Shared fixtures for unit tests.
#![cfg(test)]

use crate::mapping::{Mapper, Mode, OriginId, RouteTarget};

/// A route `/vod/` (prefix stripped) over origin `http://origin.test` (alias
/// `http://alias.test`), and a second route `/live/` over `http://live.test`.
pub fn mapper(mode: Mode) -> Mapper {
    let own = RouteTarget {
        origins: ["http://origin.test", "http://alias.test"].iter().filter_map(|o| OriginId::parse(o)).collect(),
        prefix: "/vod/".into(),
        strip_prefix: true,
    };
    let other =
        RouteTarget { origins: OriginId::parse("http://live.test").into_iter().collect(), prefix: "/live/".into(), strip_prefix: false };
    Mapper::new(mode, Some("https://cdn.test/v"), own, vec![other])
}
