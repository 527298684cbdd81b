//! The admin listener: `/healthz` (liveness), `/readyz` (readiness), `/metrics`
//! (Prometheus text), `/config` (effective config, secrets redacted), `POST /reload`,
//! `POST /cache/purge?route=NAME&prefix=/path/`.
//! POST endpoints require `admin.token` as a bearer token when one is set.

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::app::{App, X_REQUEST_ID};
use crate::body::{full, Body};
use crate::error::ProxyError;

/// Serves the admin endpoints until the task is aborted. It keeps serving while the
/// edge listeners drain, so probes see `/readyz` turn 503 rather than a refused connect.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let app = app.clone();
        let svc = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, req)) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
        // Admin requests are tiny; a client that stalls is dropped after a while.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn authorized(app: &App, req: &Request<Incoming>) -> bool {
    let snap = app.snapshot.load();
    let Some(token) = &snap.config.admin.token else { return true };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(g) => constant_time_eq(g.as_bytes(), token.expose().as_bytes()),
        None => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `/readyz`: 200 when not draining and every route's origin has a healthy url (file
/// origins always do); 503 otherwise. The body says why: each route, each origin's urls
/// with their state, and the background jobs.
fn readiness(app: &App) -> Response<Body> {
    use serde_json::{json, Map, Value};
    let snap = app.snapshot.load();
    let down = app.shutting_down.load(Relaxed);
    let routes: Map<String, Value> = snap
        .routes
        .iter()
        .map(|r| (r.name.to_string(), json!({ "origin": &*r.origin.name, "ready": !down && r.origin.ready() })))
        .collect();
    let ready = !down && snap.routes.iter().all(|r| r.origin.ready());
    let origins: Map<String, Value> = snap
        .origins
        .iter()
        .map(|(name, pool)| {
            let urls: Vec<Value> = pool
                .url_health()
                .iter()
                .map(|h| {
                    json!({
                        "url": h.url(),
                        "state": h.state().as_str(),
                        "checks": if pool.health.is_none() { "off" } else if h.active_up() { "passing" } else { "failing" },
                        "consecutive_failures": h.consecutive_failures(),
                        "ejections": h.ejections(),
                    })
                })
                .collect();
            (name.clone(), json!({ "ready": pool.ready(), "urls": urls }))
        })
        .collect();
    let jobs: Map<String, Value> = app.metrics.jobs.statuses().iter().map(|j| (j.name().to_owned(), j.to_json())).collect();
    let body = json!({ "ready": ready, "shutting_down": down, "routes": routes, "origins": origins, "jobs": jobs });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    text(status, "application/json", body.to_string())
}

fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    let id = app.request_id(req.headers().get(&X_REQUEST_ID));
    let mut resp = endpoint(app, req, id.to_str().unwrap_or(""));
    resp.headers_mut().insert(X_REQUEST_ID, id);
    resp
}

fn endpoint(app: &App, req: Request<Incoming>, request_id: &str) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => readiness(app),
        (&Method::GET, "/metrics") => {
            let mut out = app.metrics.render();
            app.cache.render(&mut out);
            text(StatusCode::OK, "text/plain; version=0.0.4", out)
        }
        (&Method::GET, "/config") => {
            let snap = app.snapshot.load();
            let body = serde_json::to_string_pretty(&snap.config.raw).unwrap_or_else(|_| "{}".into());
            text(StatusCode::OK, "application/json", body)
        }
        (&Method::POST, "/reload") => {
            if !authorized(app, &req) {
                return ProxyError::Unauthorized.into_response(request_id, false);
            }
            match app.reload() {
                Ok(()) => text(StatusCode::OK, "application/json", r#"{"reloaded":true}"#.into()),
                Err(e) => {
                    let problems: Vec<String> = e.0.iter().map(ToString::to_string).collect();
                    let body = serde_json::json!({ "reloaded": false, "problems": problems });
                    text(StatusCode::UNPROCESSABLE_ENTITY, "application/json", body.to_string())
                }
            }
        }
        (&Method::POST, "/cache/purge") => {
            if !authorized(app, &req) {
                return ProxyError::Unauthorized.into_response(request_id, false);
            }
            match purge(app, req.uri().query()) {
                Ok(n) => text(StatusCode::OK, "application/json", serde_json::json!({ "purged": n }).to_string()),
                Err(e) => e.into_response(request_id, false),
            }
        }
        (_, "/reload" | "/cache/purge") => ProxyError::MethodNotAllowed("POST").into_response(request_id, false),
        (_, "/healthz" | "/readyz" | "/metrics" | "/config") => ProxyError::MethodNotAllowed("GET").into_response(request_id, false),
        (_, p) => ProxyError::RouteNotFound(format!("admin endpoint {p}")).into_response(request_id, false),
    }
}

/// `POST /cache/purge?route=NAME[&prefix=/path/]`: drops the route's cached manifests
/// whose public path starts with `prefix` (default: all of the route's).
fn purge(app: &App, query: Option<&str>) -> Result<usize, ProxyError> {
    let param = |name: &str| {
        query.and_then(|q| crate::params::query(q, name)).map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    };
    let Some(route) = param("route").filter(|r| !r.is_empty()) else {
        return Err(ProxyError::BadRequest("the route query parameter is required: /cache/purge?route=NAME&prefix=/path/".into()));
    };
    let snapshot = app.snapshot.load();
    let Some(r) = snapshot.config.routes.iter().find(|r| r.name == route) else {
        return Err(ProxyError::BadRequest(format!("no route named {route:?}")));
    };
    let prefix = param("prefix").unwrap_or_else(|| r.prefix.clone());
    if !prefix.starts_with('/') {
        return Err(ProxyError::BadRequest(format!("prefix {prefix:?} must start with '/'")));
    }
    let n = app.cache.purge(&route, &prefix);
    tracing::info!(route = %route, prefix = %prefix, purged = n, "manifest cache purged");
    Ok(n)
}
