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
//! - anything else: 200 `origin NAME` so tests can tell origins apart

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    task: tokio::task::JoinHandle<()>,
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
        let h = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        handle(name, req)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, hits, task }
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

async fn handle(name: &'static str, req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |i: usize| parts.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let full = |s: String| http_body_util::Full::new(Bytes::from(s)).map_err(|never| match never {}).boxed_unsync();
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
