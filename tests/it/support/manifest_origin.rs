//! A programmable origin for cache tests: each path (query included, when one is set for
//! it) answers what the test put there, after an optional delay; hits are counted per
//! path and query; `set_down` makes it answer 503 and `stop` closes it (connection
//! refused, and open connections dropped).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// What one path answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn hls(body: &str) -> Self {
        Self { status: 200, body: body.into(), content_type: "application/vnd.apple.mpegurl", headers: Vec::new(), delay: Duration::ZERO }
    }
    pub fn dash(body: &str) -> Self {
        Self { content_type: "application/dash+xml", ..Self::hls(body) }
    }
    pub fn status(status: u16, body: &str) -> Self {
        Self { status, content_type: "text/plain", ..Self::hls(body) }
    }
    pub fn delay(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Default)]
struct State {
    replies: Mutex<HashMap<String, Reply>>,
    hits: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    down: AtomicBool,
}

pub struct ManifestOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
    tasks: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for ManifestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ManifestOrigin {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind manifest origin");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let s = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so aborting this task drops every one of them.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let s = s.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(s.clone(), req));
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Self { addr, state, tasks: Mutex::new(Some(task)) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets what `path` (optionally with `?query`) answers.
    pub fn set(&self, path: &str, reply: Reply) {
        self.state.replies.lock().unwrap().insert(path.into(), reply);
    }

    /// Hits on `path` (with its query, if any, as sent).
    pub fn hits(&self, path: &str) -> usize {
        self.state.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// While down, every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        if let Some(t) = self.tasks.lock().unwrap().take() {
            t.abort();
        }
    }
}

async fn handle(s: Arc<State>, req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let with_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    s.total.fetch_add(1, Ordering::SeqCst);
    *s.hits.lock().unwrap().entry(with_query.clone()).or_default() += 1;
    let full = |b: String| Full::new(Bytes::from(b)).boxed_unsync();
    if s.down.load(Ordering::SeqCst) {
        let mut r = Response::new(full("origin down".into()));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(r);
    }
    let reply = {
        let replies = s.replies.lock().unwrap();
        replies.get(&with_query).or_else(|| replies.get(&path)).cloned()
    };
    let Some(reply) = reply else {
        let mut r = Response::new(full("no such manifest".into()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut b = Response::builder().status(reply.status).header("content-type", reply.content_type);
    for (k, v) in &reply.headers {
        b = b.header(*k, v.as_str());
    }
    Ok(b.body(full(reply.body)).unwrap_or_else(|_| Response::new(full(String::new()))))
}
