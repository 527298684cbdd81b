//! Edge listeners: accept TCP connections and serve HTTP/1.1 and cleartext HTTP/2
//! (prior knowledge) on the same port, with request-head limits and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::config::ServerSettings;

/// Builds the connection builder from `[server]`.
///
/// Request heads up to `max_header_bytes` reach the app, which answers a larger one with a
/// 431 problem+json; hyper's own buffer limit sits at four times that (at least 64 KiB)
/// and closes the connection with a bare 431 beyond it, so a huge head never costs more
/// memory than that.
pub fn connection_builder(s: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    let buf = (s.max_header_bytes * 4).max(64 * 1024);
    b.http1().timer(TokioTimer::new()).header_read_timeout(s.header_read_timeout).max_buf_size(buf).keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(buf).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

struct ConnGuard(Arc<App>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.metrics.open_connections.fetch_sub(1, Relaxed);
    }
}

/// Serves one listener until `shutdown` flips, then drains its connections for up to
/// `grace`. Returns the number of connections cut off when the grace ran out.
pub async fn serve(listener: TcpListener, app: Arc<App>, settings: ServerSettings, mut shutdown: watch::Receiver<bool>) -> usize {
    let builder = Arc::new(connection_builder(&settings));
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let first_byte_timeout = settings.header_read_timeout;
                app.metrics.open_connections.fetch_add(1, Relaxed);
                app.metrics.connections_total.fetch_add(1, Relaxed);
                let guard = ConnGuard(app.clone());
                let svc_app = app.clone();
                let svc = service_fn(move |req| {
                    let app = svc_app.clone();
                    async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
                });
                let watcher = graceful.watcher();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    // hyper's header_read_timeout starts with the first byte; a connection
                    // that never sends one must not hold a socket forever.
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(first_byte_timeout, stream.peek(&mut probe)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        _ = graceful.shutdown() => 0,
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            let left = open.max(1);
            tracing::warn!("shutdown grace of {:?} elapsed; closing remaining connections", settings.shutdown_grace);
            left
        }
    }
}

/// Binds every listen address (before anything is served, so a bad address fails fast).
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        let l = TcpListener::bind(a).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
        out.push(l);
    }
    Ok(out)
}
