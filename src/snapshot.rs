//! The compiled, immutable view of one validated config: route table and origin pools.
//! Requests hold an `Arc<Snapshot>` for their whole life, so a reload never changes a
//! request midway.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::routing::{Route, RouteTable};
use crate::telemetry::metrics::Metrics;
use crate::upstream::OriginPool;

/// One config, compiled.
pub struct Snapshot {
    /// The validated config it was built from.
    pub config: Arc<Config>,
    /// Route lookup.
    pub routes: RouteTable,
    /// Origin pools by name.
    pub origins: HashMap<String, Arc<OriginPool>>,
}

impl Snapshot {
    /// Compiles a validated config. Cannot fail: validation already checked references.
    pub fn build(config: Config, metrics: &Metrics) -> Self {
        let origins: HashMap<String, Arc<OriginPool>> =
            config.origins.iter().map(|(name, o)| (name.clone(), Arc::new(OriginPool::new(o, metrics)))).collect();
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let origin = origins.get(&r.origin)?.clone();
                Some(Arc::new(Route {
                    name: r.name.as_str().into(),
                    prefix: r.prefix.clone(),
                    host: r.host.clone(),
                    strip_prefix: r.strip_prefix,
                    origin,
                    manifest: r.manifest.clone(),
                    stats: metrics.route(&r.name),
                }))
            })
            .collect();
        Self { config: Arc::new(config), routes: RouteTable::new(routes), origins }
    }
}
