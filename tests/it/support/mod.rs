//! Test support: the test origin, an in-process proxy on ephemeral ports, a spawned
//! `streamgate` binary, and small HTTP clients (hyper, and raw TCP for malformed input).

pub mod idp;
pub mod manifest_origin;
pub mod mmdb;
pub mod origin;
pub mod redis;
pub mod tunnel;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use streamgate::config::{load_and_validate, ConfigSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use origin::TestOrigin;

/// A proxy running inside the test process.
pub struct Proxy {
    pub running: Option<streamgate::Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Proxy {
    /// Starts a proxy from TOML text; `listen` and `admin.listen` are forced to ephemeral
    /// ports unless the text sets them.
    pub async fn start(toml: &str) -> Self {
        let mut text = String::new();
        if !toml.contains("[server]") {
            text.push_str("[server]\nlisten = [\"127.0.0.1:0\"]\n");
        }
        if !toml.contains("[admin]") {
            text.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !toml.contains("[log]") {
            text.push_str("[log]\naccess = false\n");
        }
        text.push_str(toml);
        let src = ConfigSource::Embedded(text);
        let cfg = load_and_validate(&src).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let running = streamgate::start(cfg, src).await.expect("proxy starts");
        let addr = running.listen[0];
        let admin = running.admin.expect("admin enabled");
        Self { running: Some(running), addr, admin }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown();
        }
    }
}

/// A response as tests see it.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json with this status and code; returns the body.
    pub fn assert_problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(self.headers.get("content-type").map(|v| v.to_str().unwrap_or("")), Some("application/problem+json"));
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["status"], status);
        assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
        assert_eq!(self.headers.get("x-request-id").and_then(|h| h.to_str().ok()), v["request_id"].as_str());
        v
    }
}

/// Sends a request with hyper (HTTP/1.1) and collects the body.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)]) -> Resp {
    try_send(method, url, headers, Bytes::new()).await.unwrap_or_else(|e| panic!("request to {url} failed: {e}"))
}

pub async fn get(url: &str) -> Resp {
    send(Method::GET, url, &[]).await
}

pub async fn try_send(method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Resp, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| format!("body: {e:?}"))?.to_bytes();
    Ok(Resp { status: parts.status, headers: parts.headers, body })
}

/// Sends over cleartext HTTP/2 with prior knowledge.
pub async fn get_h2(url: &str) -> Resp {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let resp = client.get(url.parse().expect("url")).await.expect("h2 request");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("h2 body").to_bytes();
    Resp { status: parts.status, headers: parts.headers, body }
}

/// Writes raw bytes and reads until the server closes or `limit` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Like [`raw`], returning bytes.
pub async fn raw_bytes(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// A loopback port with nothing listening (connects are refused).
pub async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

/// A server that answers every connection with `reply` and closes it.
pub async fn raw_origin(reply: &'static [u8]) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    a
}

/// Polls `f` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes a config file into a fresh temp dir and returns its path.
pub fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-test-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Runs the binary to completion.
pub fn run_bin(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_streamgate")).args(args).envs(env.iter().copied()).output().expect("run streamgate");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs the binary with `stdin` as its standard input.
pub fn run_bin_stdin(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamgate");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A spawned `streamgate serve`, with its announced addresses.
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub stderr: Option<std::process::ChildStderr>,
}

impl Spawned {
    /// Starts the binary and waits for it to print its listen addresses.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streamgate"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn streamgate");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut admin = None;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("streamgate listening on http://") {
                addr.get_or_insert(rest.trim_end_matches('/').parse().expect("addr"));
            } else if let Some(rest) = line.strip_prefix("streamgate admin on http://") {
                admin = rest.split('/').next().and_then(|a| a.parse().ok());
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let addr = addr.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("streamgate did not announce its address")
        });
        let stderr = child.stderr.take();
        Self { child, addr, admin, stderr }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status();
    }

    /// Waits for exit up to `limit`; returns the exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
