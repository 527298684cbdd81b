//! streamgate: an edge proxy for HTTP video streaming.
//!
//! The crate wires the parts together: [`config`] loads and validates, [`snapshot`]
//! compiles, [`edge`] accepts, [`app`] runs the request phases, [`upstream`] dispatches,
//! [`telemetry`] observes and [`admin`] exposes. `start` runs it all on the current tokio
//! runtime; `run` builds the runtime and handles signals for the binary.

pub mod admin;
pub mod app;
pub mod body;
pub mod cache;
pub mod config;
pub mod edge;
pub mod error;
pub mod jobs;
pub mod layers;
pub mod params;
pub mod proxy;
pub mod routing;
pub mod snapshot;
pub mod stream;
pub mod telemetry;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::{Config, ConfigSource};
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::Metrics;

/// A proxy that is serving. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    /// The bound edge addresses, in `server.listen` order (real ports when `:0` was asked).
    pub listen: Vec<SocketAddr>,
    /// The bound admin address, if enabled.
    pub admin: Option<SocketAddr>,
    /// Shared state, for tests and reloads.
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    edges: Vec<JoinHandle<usize>>,
    admin_task: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and starts draining in-flight requests.
    pub fn shutdown(&self) {
        self.app.shutting_down.store(true, Relaxed);
        let _ = self.shutdown.send(true);
    }

    /// Waits until every listener has drained (or its grace ran out). Returns the number
    /// of connections that were cut off.
    pub async fn wait(self) -> usize {
        let mut cut = 0;
        for e in self.edges {
            cut += e.await.unwrap_or(0);
        }
        if let Some(a) = self.admin_task {
            a.abort();
        }
        cut
    }
}

/// Binds every listener and starts serving on the current runtime.
pub async fn start(config: Config, source: ConfigSource) -> std::io::Result<Running> {
    let metrics = Arc::new(Metrics::default());
    let server = config.server.clone();
    let admin_addr = config.admin.listen;
    let listeners = edge::bind_all(&server.listen).await?;
    let admin_listener = match admin_addr {
        Some(a) => Some(edge::bind_all(&[a]).await?.remove(0)),
        None => None,
    };
    let snapshot = Snapshot::build(config, &metrics);
    snapshot.start_jobs(&metrics);
    let app = Arc::new(App::new(snapshot, metrics, source));
    let (tx, rx) = watch::channel(false);
    let listen = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    let admin = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let edges = listeners.into_iter().map(|l| tokio::spawn(edge::serve(l, app.clone(), server.clone(), rx.clone()))).collect();
    let admin_task = admin_listener.map(|l| tokio::spawn(admin::serve(l, app.clone())));
    Ok(Running { listen, admin, app, shutdown: tx, edges, admin_task })
}

/// Why `run` ended with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Could not build the runtime or bind a listener.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the proxy until SIGTERM or SIGINT: builds the runtime (`server.worker_threads`;
/// one means a single-threaded runtime), starts serving, prints where, reloads on SIGHUP,
/// and drains on shutdown.
pub fn run(config: Config, source: ConfigSource, demo: bool) -> Result<(), RunError> {
    telemetry::init_logging(&config.log);
    let rt = match config.server.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    rt.block_on(async move {
        let running = start(config, source).await?;
        for a in &running.listen {
            println!("streamgate listening on http://{a}/");
        }
        if let Some(a) = running.admin {
            println!("streamgate admin on http://{a}/ (healthz, readyz, metrics, config)");
        }
        if demo {
            if let Some(a) = running.listen.first() {
                println!("demo: play http://{a}/demo/hls/master.m3u8 or http://{a}/demo/dash/manifest.mpd");
            }
        }
        wait_for_signals(&running).await;
        tracing::info!("shutting down: draining in-flight requests (send the signal again to stop at once)");
        running.shutdown();
        tokio::select! {
            cut = running.wait() => {
                if cut > 0 {
                    tracing::warn!(connections = cut, "grace period over; connections closed");
                }
            }
            _ = wait_for_stop_signal() => tracing::warn!("second stop signal: exiting without waiting for the drain"),
        }
        Ok(())
    })
}

#[cfg(unix)]
async fn wait_for_signals(running: &Running) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => { let _ = running.app.reload(); }
        }
    }
}

#[cfg(unix)]
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(not(unix))]
async fn wait_for_signals(_running: &Running) {
    let _ = tokio::signal::ctrl_c().await;
}

/// Why `streamgate rewrite` failed.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// Unknown route, unusable URL, unknown format: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The manifest was refused as the proxy would refuse it: exit 1.
    #[error("{0}")]
    Manifest(error::ProxyError),
}

/// `streamgate rewrite`: runs one manifest through a route's transformation offline.
pub fn rewrite_once(config: Config, route: &str, url: &str, input: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let snapshot = Snapshot::build(config, &Metrics::default());
    let r = snapshot.routes.iter().find(|r| &*r.name == route).ok_or_else(|| RewriteError::Usage(format!("no route named {route:?}")))?;
    let parts = streamgate_manifest::url::split(url);
    if parts.scheme.is_none() || parts.authority.is_none() {
        return Err(RewriteError::Usage(format!("--url {url:?} must be an absolute URL (the manifest's origin URL)")));
    }
    let format = streamgate_manifest::detect(None, parts.path)
        .or_else(|| {
            [streamgate_manifest::Format::Hls, streamgate_manifest::Format::Dash]
                .into_iter()
                .find(|f| streamgate_manifest::detect::sniff(*f, input))
        })
        .ok_or_else(|| RewriteError::Usage("cannot tell HLS from DASH: name the URL .m3u8 or .mpd".into()))?;
    // The public path a client would have asked for: the route prefix over the origin path.
    let public_path = if r.strip_prefix { format!("{}{}", r.prefix.trim_end_matches('/'), parts.path) } else { parts.path.to_owned() };
    let prepared = stream::prepare(r, parts.query).map_err(RewriteError::Manifest)?;
    let origin_url = format!("{}://{}{}", parts.scheme.unwrap_or("http"), parts.authority.unwrap_or(""), parts.path);
    stream::transform_manifest(r, format, &origin_url, &public_path, &prepared, input).map_err(RewriteError::Manifest)
}
