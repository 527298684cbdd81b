//! The compiled, immutable view of one validated config: route table and origin pools.
//! Requests hold an `Arc<Snapshot>` for their whole life, so a reload never changes a
//! request midway. A snapshot that serves also owns its background jobs (the health
//! checkers of its pools, the JWKS refresh of its auth blocks): they stop when it is
//! dropped.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use streamgate_manifest::{Filter, Mapper, Mode, OriginId, RouteTarget};

use crate::config::schema::{FilterConfig, RewriteMode};
use crate::config::{Config, RouteSettings};
use crate::jobs::{health_check, jwks_refresh, rate_limit_gc, JobGuard};
use crate::layers::auth::Authenticator;
use crate::layers::context::ContextBuilder;
use crate::layers::cors::Cors;
use crate::layers::policy::Policy;
use crate::layers::rate_limit::RateLimiter;
use crate::routing::{Route, RouteTable, RouteToken};
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
    /// Builds each request's context (trusted proxies, session id, device, geo).
    pub context: ContextBuilder,
    /// Auth blocks by name, shared by the routes that name them.
    pub authenticators: HashMap<String, Arc<Authenticator>>,
    /// Rate limits by name, shared by the routes that name them.
    pub limiters: HashMap<String, Arc<RateLimiter>>,
    /// The jobs started by [`Snapshot::start_jobs`]; dropped (stopped) with the snapshot.
    jobs: OnceLock<Vec<JobGuard>>,
}

impl Snapshot {
    /// Compiles a validated config. Cannot fail: validation already checked references.
    /// Starts nothing: see [`Snapshot::start_jobs`].
    pub fn build(config: Config, metrics: &Metrics) -> Self {
        let origins: HashMap<String, Arc<OriginPool>> =
            config.origins.iter().map(|(name, o)| (name.clone(), Arc::new(OriginPool::new(o, metrics)))).collect();
        metrics.health.retain(|name| config.origins.contains_key(name));
        let targets: Vec<(String, RouteTarget)> = config.routes.iter().map(|r| (r.name.clone(), target(&config, r))).collect();
        let device_read = config.log.access || config.routes.iter().any(|r| r.policy.as_ref().is_some_and(|p| p.compiled.reads.client));
        let context = ContextBuilder::new(&config.access).with_device(device_read);
        let authenticators: HashMap<String, Arc<Authenticator>> =
            config.auth.iter().map(|(name, a)| (name.clone(), Arc::new(Authenticator::new(a)))).collect();
        let limiters: HashMap<String, Arc<RateLimiter>> =
            config.rate_limits.iter().map(|(name, l)| (name.clone(), Arc::new(RateLimiter::new(l, &metrics.rate_limits)))).collect();
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let origin = origins.get(&r.origin)?.clone();
                let own = targets.iter().find(|(n, _)| n == &r.name).map(|(_, t)| t.clone())?;
                let others = targets.iter().filter(|(n, _)| n != &r.name).map(|(_, t)| t.clone()).collect();
                let mode = match r.manifest.rewrite {
                    RewriteMode::Proxy => Mode::Proxy,
                    RewriteMode::Cdn => Mode::Cdn,
                    RewriteMode::None => Mode::None,
                };
                let tokenize = r.tokenize.as_ref().map(|t| RouteToken {
                    key: t.key.clone(),
                    ttl: t.ttl.as_secs().max(1),
                    verify: t.verify,
                    param: t.param.clone(),
                });
                Some(Arc::new(Route {
                    name: r.name.as_str().into(),
                    prefix: r.prefix.clone(),
                    host: r.host.clone(),
                    strip_prefix: r.strip_prefix,
                    origin,
                    manifest: r.manifest.clone(),
                    stats: metrics.route(&r.name),
                    mapper: Mapper::new(mode, r.manifest.cdn_base.as_deref(), own, others),
                    filter: r.manifest.filter.as_ref().map(filter_of).filter(|f| !f.is_empty()),
                    tokenize,
                    auth: r.auth.as_ref().and_then(|n| authenticators.get(n)).cloned(),
                    rate_limit: r.rate_limit.as_ref().and_then(|n| limiters.get(n)).cloned(),
                    cors: r.cors.as_ref().map(Cors::new),
                    policy: r.policy.as_ref().map(Policy::new),
                }))
            })
            .collect();
        Self {
            config: Arc::new(config),
            routes: RouteTable::new(routes),
            origins,
            context,
            authenticators,
            limiters,
            jobs: OnceLock::new(),
        }
    }

    /// Starts the snapshot's background jobs (health checkers, rate-limit cleanup, JWKS
    /// refresh) on the current runtime,
    /// once; for a snapshot that is about to serve. `streamgate check` and `rewrite`
    /// build snapshots without calling this.
    pub fn start_jobs(&self, metrics: &Metrics) {
        self.jobs.get_or_init(|| {
            let checkers = self.origins.values().flat_map(|pool| health_check::start(pool, &metrics.jobs));
            let gc = self.limiters.values().filter_map(|l| rate_limit_gc::start(l, &metrics.jobs));
            let jwks = self.authenticators.values().filter_map(|a| jwks_refresh::start(a, &metrics.jobs));
            checkers.chain(gc).chain(jwks).collect()
        });
    }
}

/// The name under which file origins' manifests are resolved: their children map like
/// those of any origin, and the name can never be reached on the network.
pub const FILE_ORIGIN_BASE: &str = "http://file-origin.invalid";

/// The origins (urls and aliases) and public prefix of a route, for URL mapping.
fn target(config: &Config, r: &RouteSettings) -> RouteTarget {
    let mut origins = Vec::new();
    if let Some(o) = config.origins.get(&r.origin) {
        for u in &o.urls {
            match u {
                crate::config::OriginUrl::Http { .. } => origins.extend(OriginId::parse(&u.to_string())),
                crate::config::OriginUrl::File { .. } => origins.extend(OriginId::parse(FILE_ORIGIN_BASE)),
            }
        }
        for a in &o.aliases {
            origins.extend(OriginId::parse(&a.to_string()));
        }
    }
    RouteTarget { origins, prefix: r.prefix.clone(), strip_prefix: r.strip_prefix }
}

/// A configured filter as the manifest crate's type.
pub fn filter_of(f: &FilterConfig) -> Filter {
    Filter {
        min_bandwidth: f.min_bandwidth,
        max_bandwidth: f.max_bandwidth,
        max_height: f.max_height,
        max_width: f.max_width,
        codecs: f.codecs.clone(),
        max_frame_rate: f.max_frame_rate,
    }
}
