//! Tunnels for origins reachable only through a proxy: a SOCKS5 server (RFC 1928, no
//! authentication or RFC 1929 username/password) and an HTTP CONNECT proxy (optional
//! Basic auth), on ephemeral loopback ports. Both relay bytes both ways and record each
//! tunnel's requested target and every accepted connection, so tests can prove traffic
//! went through them.
//!
//! Host names ending in `.tunnel.test` resolve to 127.0.0.1 here and nowhere else: an
//! origin named that way is reachable only through a tunnel whose proxy resolves names.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test proxy saw.
#[derive(Default)]
struct Log {
    connections: AtomicUsize,
    targets: Mutex<Vec<String>>,
    /// HTTP CONNECT: the `Host` header of each request, and `Proxy-Authorization`.
    hosts: Mutex<Vec<String>>,
    authorizations: Mutex<Vec<String>>,
}

/// A running SOCKS5 server or HTTP CONNECT proxy.
pub struct TunnelProxy {
    pub addr: SocketAddr,
    scheme: &'static str,
    userinfo: String,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TunnelProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TunnelProxy {
    /// A SOCKS5 server; with `auth`, it requires that username/password.
    pub async fn socks5(auth: Option<(&str, &str)>) -> Self {
        let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
        Self::start("socks5", move |s, log| {
            let auth = auth.clone();
            async move { socks5_session(s, auth, log).await }
        })
        .await
    }

    /// An HTTP CONNECT proxy; with `authorization`, it requires exactly that
    /// `Proxy-Authorization` value and answers 407 otherwise.
    pub async fn http_connect(authorization: Option<&str>) -> Self {
        let authorization = authorization.map(str::to_owned);
        Self::start("http", move |s, log| {
            let authorization = authorization.clone();
            async move { connect_session(s, authorization, log).await }
        })
        .await
    }

    async fn start<F, Fut>(scheme: &'static str, session: F) -> Self
    where
        F: Fn(TcpStream, Arc<Log>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tunnel proxy");
        let addr = listener.local_addr().expect("tunnel proxy addr");
        let log = Arc::new(Log::default());
        let l = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else { continue };
                l.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(session(s, l.clone()));
            }
        });
        Self { addr, scheme, userinfo: String::new(), log, task }
    }

    /// The proxy URL for `origins.NAME.proxy`, with `userinfo` (already percent-encoded,
    /// without the `@`) when set.
    pub fn with_userinfo(mut self, userinfo: &str) -> Self {
        self.userinfo = format!("{userinfo}@");
        self
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.userinfo, self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.connections.load(Ordering::SeqCst)
    }

    /// The `host:port` each tunnel asked for, in order.
    pub fn targets(&self) -> Vec<String> {
        self.log.targets.lock().unwrap().clone()
    }

    /// HTTP CONNECT: the `Host` header of each CONNECT request.
    pub fn hosts(&self) -> Vec<String> {
        self.log.hosts.lock().unwrap().clone()
    }

    /// HTTP CONNECT: the `Proxy-Authorization` of each CONNECT request ("" if none).
    pub fn authorizations(&self) -> Vec<String> {
        self.log.authorizations.lock().unwrap().clone()
    }
}

/// Connects to `host:port` the way the proxy would; `*.tunnel.test` is 127.0.0.1.
async fn dial(host: &str, port: u16) -> std::io::Result<TcpStream> {
    if host.ends_with(".tunnel.test") {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await
    } else {
        TcpStream::connect((host, port)).await
    }
}

async fn relay(mut client: TcpStream, mut upstream: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

async fn socks5_session(mut s: TcpStream, auth: Option<(String, String)>, log: Arc<Log>) {
    // Greeting: VER NMETHODS METHODS.
    let mut head = [0u8; 2];
    if s.read_exact(&mut head).await.is_err() || head[0] != 5 {
        return;
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    if s.read_exact(&mut methods).await.is_err() {
        return;
    }
    let wanted = if auth.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        let _ = s.write_all(&[5, 0xff]).await;
        return;
    }
    if s.write_all(&[5, wanted]).await.is_err() {
        return;
    }
    if let Some((user, pass)) = &auth {
        // RFC 1929: VER ULEN UNAME PLEN PASSWD.
        let Some(u) = read_len_prefixed(&mut s, true).await else { return };
        let Some(p) = read_len_prefixed(&mut s, false).await else { return };
        let ok = u == user.as_bytes() && p == pass.as_bytes();
        let _ = s.write_all(&[1, if ok { 0 } else { 1 }]).await;
        if !ok {
            return;
        }
    }
    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
    let mut req = [0u8; 4];
    if s.read_exact(&mut req).await.is_err() || req[..3] != [5, 1, 0] {
        let _ = s.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        return;
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            if s.read_exact(&mut a).await.is_err() {
                return;
            }
            Ipv4Addr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            if s.read_exact(&mut a).await.is_err() {
                return;
            }
            format!("[{}]", Ipv6Addr::from(a))
        }
        3 => {
            let Some(name) = read_len_prefixed(&mut s, false).await else { return };
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            let _ = s.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            return;
        }
    };
    let mut port = [0u8; 2];
    if s.read_exact(&mut port).await.is_err() {
        return;
    }
    let port = u16::from_be_bytes(port);
    log.targets.lock().unwrap().push(format!("{host}:{port}"));
    let upstream = match dial(host.trim_start_matches('[').trim_end_matches(']'), port).await {
        Ok(u) => u,
        Err(_) => {
            let _ = s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            return;
        }
    };
    // Reply with the bound address as IPv4 (what most servers do).
    let mut reply = vec![5, 0, 0, 1, 127, 0, 0, 1];
    reply.extend_from_slice(&upstream.local_addr().map(|a| a.port()).unwrap_or(0).to_be_bytes());
    if s.write_all(&reply).await.is_ok() {
        relay(s, upstream).await;
    }
}

/// One length-prefixed field; with `version`, a version byte (1) comes first.
async fn read_len_prefixed(s: &mut TcpStream, version: bool) -> Option<Vec<u8>> {
    if version && s.read_u8().await.ok()? != 1 {
        return None;
    }
    let n = s.read_u8().await.ok()?;
    let mut v = vec![0u8; usize::from(n)];
    s.read_exact(&mut v).await.ok()?;
    Some(v)
}

async fn connect_session(mut s: TcpStream, authorization: Option<String>, log: Arc<Log>) {
    // Byte by byte, so nothing after the head (the tunnelled bytes) is read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return;
        }
        match s.read_u8().await {
            Ok(b) => head.push(b),
            Err(_) => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let header = |name: &str| {
        text.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if method != "CONNECT" || version != "HTTP/1.1" {
        let _ = s.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
        return;
    }
    log.hosts.lock().unwrap().push(header("host").unwrap_or_default());
    let given = header("proxy-authorization").unwrap_or_default();
    log.authorizations.lock().unwrap().push(given.clone());
    if authorization.is_some_and(|want| want != given) {
        let _ = s
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\n\r\n",
            )
            .await;
        return;
    }
    log.targets.lock().unwrap().push(target.to_owned());
    let upstream = match target.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
        Some((h, p)) => dial(h.trim_start_matches('[').trim_end_matches(']'), p).await,
        None => Err(std::io::Error::other("bad target")),
    };
    let Ok(upstream) = upstream else {
        let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if s.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_ok() {
        relay(s, upstream).await;
    }
}
