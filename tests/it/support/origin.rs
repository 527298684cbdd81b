//! A test origin on an ephemeral loopback port whose behaviour is chosen by path, and
//! that counts its hits:
//!
//! - `/echo/...`: 200 JSON of the request as received (method, path, query, headers, body length)
//! - `/bytes/N`: N bytes (a repeating pattern) with Content-Length, sent in 64 KiB chunks
//! - `/slowhead/MS/...`: waits MS milliseconds before the response head
//! - `/reset/N`: announces 2N bytes, sends N, then aborts the connection
//! - `/stall/N`: announces 2N bytes, sends N, then sends nothing more
//! - `/status/CODE`: that status with a small text body
//! - `/hop`: a response carrying hop-by-hop headers that must not reach the client
//! - `/slowstatus/MS/CODE`: waits MS milliseconds, then answers CODE
//! - `/live/....m3u8`: a small HLS media playlist naming the origin in a comment
//! - `/health`: 200, or 503 after `set_healthy(false)`; counted in `health_hits`, not `hits`
//! - anything else: 200 `origin NAME` so tests can tell origins apart
//!
//! `fail_with(CODE)` makes every request but `/health` answer CODE; `stop` closes the
//! listener and every connection, `restart` listens on the same port again.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A running test origin.
pub struct TestOrigin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub control: Arc<Control>,
    name: &'static str,
    task: tokio::task::JoinHandle<()>,
}

/// Switches and counters of a test origin shared with its connections.
pub struct Control {
    healthy: AtomicBool,
    fail_status: AtomicU16,
    /// `/health` requests answered.
    pub health_hits: AtomicUsize,
    /// `health_hits` when the first other request arrived after the last (re)start
    /// (`usize::MAX`: none yet).
    pub health_hits_at_first_hit: AtomicUsize,
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestOrigin {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let control = Arc::new(Control {
            healthy: AtomicBool::new(true),
            fail_status: AtomicU16::new(0),
            health_hits: AtomicUsize::new(0),
            health_hits_at_first_hit: AtomicUsize::new(usize::MAX),
        });
        let task = serve(listener, name, hits.clone(), control.clone());
        Self { addr, hits, control, name, task }
    }

    /// Closes the listener and every open connection (in-flight requests are cut off).
    pub async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Listens on the same port again; resets the health counters.
    pub async fn restart(&mut self) {
        self.control.health_hits.store(0, Ordering::SeqCst);
        self.control.health_hits_at_first_hit.store(usize::MAX, Ordering::SeqCst);
        let listener = TcpListener::bind(self.addr).await.expect("rebind origin");
        self.task = serve(listener, self.name, self.hits.clone(), self.control.clone());
    }

    /// `/health` answers 200 (true) or 503 (false).
    pub fn set_healthy(&self, ok: bool) {
        self.control.healthy.store(ok, Ordering::SeqCst);
    }

    /// Every request but `/health` answers `code` (0: back to normal).
    pub fn fail_with(&self, code: u16) {
        self.control.fail_status.store(code, Ordering::SeqCst);
    }

    pub fn health_hits(&self) -> usize {
        self.control.health_hits.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn pattern(n: usize, offset: usize) -> Bytes {
    Bytes::from((offset..offset + n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// The body `/bytes/N` sends, for comparisons.
pub fn expected_bytes(n: usize) -> Bytes {
    pattern(n, 0)
}

fn channel_body(total_announced: usize, sent: usize, then_abort: bool) -> (BoxBody, usize) {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut off = 0;
        while off < sent {
            let n = (sent - off).min(64 * 1024);
            if tx.send(Ok(Frame::data(pattern(n, off)))).await.is_err() {
                return;
            }
            off += n;
        }
        if then_abort {
            // Let the head and the first bytes reach the client before failing.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "test origin reset"))).await;
        } else if sent < total_announced {
            // stall: keep the sender alive, send nothing more
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    (ChannelBody(rx).boxed_unsync(), total_announced)
}

/// A body fed by a channel, so a test can send, stall or fail at will.
struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

/// Accepts connections until aborted; aborting drops the listener and, with the
/// `JoinSet`, every connection.
fn serve(listener: TcpListener, name: &'static str, hits: Arc<AtomicUsize>, control: Arc<Control>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (h, c) = (hits.clone(), control.clone());
                    conns.spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            if req.uri().path() == "/health" {
                                c.health_hits.fetch_add(1, Ordering::SeqCst);
                            } else {
                                h.fetch_add(1, Ordering::SeqCst);
                                let seen = c.health_hits.load(Ordering::SeqCst);
                                let _ = c.health_hits_at_first_hit.compare_exchange(usize::MAX, seen, Ordering::SeqCst, Ordering::SeqCst);
                            }
                            handle(name, req, c.clone())
                        });
                        let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    })
}

async fn handle(name: &'static str, req: Request<Incoming>, control: Arc<Control>) -> Result<Response<BoxBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |i: usize| parts.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let full = |s: String| http_body_util::Full::new(Bytes::from(s)).map_err(|never| match never {}).boxed_unsync();
    let full_text = |code: u16, s: String| {
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT))
            .header("x-origin", name)
            .body(http_body_util::Full::new(Bytes::from(s)).map_err(|never| match never {}).boxed_unsync())
    };
    if path == "/health" {
        let ok = control.healthy.load(Ordering::SeqCst);
        let resp = full_text(if ok { 200 } else { 503 }, format!("health of {name}"));
        return Ok(resp.unwrap_or_else(|_| Response::new(full(String::new()))));
    }
    let fail = control.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        let resp = full_text(fail, format!("status from {name}"));
        return Ok(resp.unwrap_or_else(|_| Response::new(full(String::new()))));
    }
    let resp = match parts.first().copied().unwrap_or("") {
        "echo" => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v.to_str().unwrap_or("?").to_owned())))
                .collect();
            let method = req.method().to_string();
            let query = req.uri().query().unwrap_or("").to_owned();
            let body_len = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(usize::MAX);
            let v = serde_json::json!({"origin": name, "method": method, "path": path, "query": query, "headers": headers, "body_len": body_len});
            Response::builder().header("content-type", "application/json").body(full(v.to_string()))
        }
        "bytes" => {
            let n = num(1);
            let (body, len) = channel_body(n, n, false);
            Response::builder().header("content-length", len).header("content-type", "video/mp2t").body(body)
        }
        "slowhead" => {
            tokio::time::sleep(Duration::from_millis(num(1) as u64)).await;
            Response::builder().body(full(format!("slow {name}")))
        }
        "reset" => {
            let n = num(1);
            let (body, _) = channel_body(2 * n, n, true);
            Response::builder().header("content-length", 2 * n).body(body)
        }
        "stall" => {
            let n = num(1);
            let (body, _) = channel_body(2 * n, n, false);
            Response::builder().header("content-length", 2 * n).body(body)
        }
        "status" => {
            let code = StatusCode::from_u16(num(1) as u16).unwrap_or(StatusCode::IM_A_TEAPOT);
            Response::builder().status(code).header("x-origin", name).body(full(format!("status from {name}")))
        }
        "slowstatus" => {
            tokio::time::sleep(Duration::from_millis(num(1) as u64)).await;
            full_text(num(2) as u16, format!("status from {name}"))
        }
        "live" if path.ends_with(".m3u8") => {
            Response::builder().header("content-type", "application/vnd.apple.mpegurl").header("x-origin", name).body(full(format!(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n# origin {name}\n#EXTINF:4,\nseg0.ts\n#EXTINF:4,\nseg1.ts\n"
            )))
        }
        "hop" => Response::builder()
            .header("connection", "x-hop-secret")
            .header("x-hop-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("x-end-to-end", "kept")
            .body(full("hop".into())),
        _ => Response::builder().header("x-origin", name).body(full(format!("origin {name}"))),
    };
    Ok(resp.unwrap_or_else(|_| Response::new(full(String::new()))))
}
