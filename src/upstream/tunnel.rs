//! How connections to an HTTP origin are opened: straight to the origin
//! (`HttpConnector`), or through the origin's tunnel (`origins.NAME.proxy`): a SOCKS5
//! proxy (RFC 1928, username/password per RFC 1929) or an HTTP proxy (CONNECT, Basic
//! auth). Either way the client then speaks ordinary HTTP/1.1 to the origin over the
//! stream, and keeps it in its pool like any other connection.
//!
//! A failed tunnel is a connect error (the connector's future fails), so the client's
//! retry and classification treat it as "nothing reached the origin". The reply parsers
//! are pure functions in [`socks5`] and [`http_connect`], fuzzed by `proxy_reply`.

pub mod http_connect;
pub mod socks5;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Scheme;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::config::{ProxyKind, UpstreamProxy};
use http_connect::HttpReplyError;
use socks5::{Progress, Socks5ReplyError};

/// The error type of [`OriginConnector`]: hyper-util boxes connector errors anyway.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Opens connections to an origin, directly or through its tunnel: one type for both, so
/// an origin's client type does not depend on its config.
#[derive(Clone)]
pub struct OriginConnector(Route);

#[derive(Clone)]
enum Route {
    Direct(HttpConnector),
    Tunnel(Arc<Tunnel>),
}

/// A proxy and what every handshake with it needs, prepared once.
struct Tunnel {
    kind: ProxyKind,
    addr: String,
    /// What errors call the proxy: "SOCKS5 proxy 127.0.0.1:1080".
    label: String,
    /// SOCKS5 username/password.
    auth: Option<(String, String)>,
    /// HTTP CONNECT `Proxy-Authorization` value.
    proxy_authorization: Option<String>,
    /// For the TCP connect and the handshake together.
    connect_timeout: Duration,
}

impl OriginConnector {
    /// Connects straight to the origin.
    pub fn direct(conn: HttpConnector) -> Self {
        Self(Route::Direct(conn))
    }

    /// Connects through `proxy`; `connect_timeout` bounds the TCP connect to the proxy
    /// and the handshake together.
    pub fn tunnel(proxy: &UpstreamProxy, connect_timeout: Duration) -> Self {
        let (label, proxy_authorization) = match proxy.kind {
            ProxyKind::Socks5 => (format!("SOCKS5 proxy {}", proxy.addr), None),
            ProxyKind::HttpConnect => {
                (format!("HTTP proxy {}", proxy.addr), proxy.auth.as_ref().map(|(u, p)| http_connect::basic_credentials(u, p)))
            }
        };
        Self(Route::Tunnel(Arc::new(Tunnel {
            kind: proxy.kind,
            addr: proxy.addr.clone(),
            label,
            auth: proxy.auth.clone(),
            proxy_authorization,
            connect_timeout,
        })))
    }
}

type DirectFuture = <HttpConnector as Service<Uri>>::Future;
type TunnelFuture = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, TunnelError>> + Send>>;

/// The future of [`OriginConnector`]: the direct path polls `HttpConnector`'s own future,
/// with nothing added.
pub struct Connecting(ConnectingInner);

enum ConnectingInner {
    Direct(DirectFuture),
    Tunnel(TunnelFuture),
}

impl Future for Connecting {
    type Output = Result<TokioIo<TcpStream>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            ConnectingInner::Direct(f) => Pin::new(f).poll(cx).map_err(Into::into),
            ConnectingInner::Tunnel(f) => f.as_mut().poll(cx).map_err(Into::into),
        }
    }
}

impl Service<Uri> for OriginConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.0 {
            Route::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            Route::Tunnel(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        Connecting(match &mut self.0 {
            Route::Direct(c) => ConnectingInner::Direct(c.call(dst)),
            Route::Tunnel(t) => ConnectingInner::Tunnel(Box::pin(Arc::clone(t).open(dst))),
        })
    }
}

impl Tunnel {
    async fn open(self: Arc<Self>, dst: Uri) -> Result<TokioIo<TcpStream>, TunnelError> {
        match tokio::time::timeout(self.connect_timeout, self.handshake(&dst)).await {
            Ok(Ok(stream)) => Ok(TokioIo::new(stream)),
            Ok(Err(kind)) => Err(self.error(kind)),
            Err(_) => Err(self.error(TunnelErrorKind::TimedOut(self.connect_timeout))),
        }
    }

    fn error(&self, kind: TunnelErrorKind) -> TunnelError {
        TunnelError { proxy: self.label.clone(), kind }
    }

    async fn handshake(&self, dst: &Uri) -> Result<TcpStream, TunnelErrorKind> {
        if dst.scheme() != Some(&Scheme::HTTP) {
            return Err(TunnelErrorKind::Scheme);
        }
        let host = dst.host().filter(|h| !h.is_empty()).ok_or(TunnelErrorKind::TargetName)?;
        let port = dst.port_u16().unwrap_or(80);
        let mut stream = TcpStream::connect(self.addr.as_str()).await.map_err(TunnelErrorKind::Connect)?;
        super::tune_socket(&stream).map_err(TunnelErrorKind::Io)?;
        match self.kind {
            ProxyKind::Socks5 => self.socks5(&mut stream, host, port).await?,
            ProxyKind::HttpConnect => self.http_connect(&mut stream, host, port).await?,
        }
        Ok(stream)
    }

    async fn socks5(&self, s: &mut TcpStream, host: &str, port: u16) -> Result<(), TunnelErrorKind> {
        let mut buf = [0u8; socks5::MAX_CONNECT_REPLY];
        let offered_auth = self.auth.is_some();
        s.write_all(socks5::greeting(offered_auth)).await.map_err(TunnelErrorKind::Io)?;
        let method = read_socks5_reply(s, &mut buf, |b| socks5::parse_method_reply(b, offered_auth)).await?;
        if let (socks5::Method::UserPass, Some((user, pass))) = (method, &self.auth) {
            let req = socks5::auth_request(user, pass).ok_or(TunnelErrorKind::Credentials)?;
            s.write_all(&req).await.map_err(TunnelErrorKind::Io)?;
            read_socks5_reply(s, &mut buf, socks5::parse_auth_reply).await?;
        }
        let req = socks5::connect_request(host, port).ok_or(TunnelErrorKind::TargetName)?;
        s.write_all(&req).await.map_err(TunnelErrorKind::Io)?;
        read_socks5_reply(s, &mut buf, socks5::parse_connect_reply).await?;
        Ok(())
    }

    async fn http_connect(&self, s: &mut TcpStream, host: &str, port: u16) -> Result<(), TunnelErrorKind> {
        let authority = format!("{host}:{port}");
        s.write_all(&http_connect::connect_request(&authority, self.proxy_authorization.as_deref())).await.map_err(TunnelErrorKind::Io)?;
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            // Never more than MAX_HEAD: the parser fails at that size, so `room` is not 0.
            let room = http_connect::MAX_HEAD.saturating_sub(head.len()).min(chunk.len());
            let into = chunk.get_mut(..room).filter(|c| !c.is_empty()).ok_or(TunnelErrorKind::Http(HttpReplyError::HeadTooLarge))?;
            let n = s.read(into).await.map_err(TunnelErrorKind::Io)?;
            if n == 0 {
                return Err(TunnelErrorKind::Closed);
            }
            head.extend_from_slice(into.get(..n).unwrap_or_default());
            if http_connect::parse_connect_response(&head).map_err(TunnelErrorKind::Http)?.is_some() {
                return Ok(());
            }
        }
    }
}

/// Reads one SOCKS5 reply, never past its end (the bytes after it belong to the origin),
/// parsing after every read so a failure reply is reported even if the proxy closes.
async fn read_socks5_reply<T>(
    s: &mut TcpStream,
    buf: &mut [u8],
    parse: impl Fn(&[u8]) -> Result<Progress<T>, Socks5ReplyError>,
) -> Result<T, TunnelErrorKind> {
    let mut have = 0;
    loop {
        match parse(buf.get(..have).unwrap_or_default()).map_err(TunnelErrorKind::Socks5)? {
            Progress::Done(v) => return Ok(v),
            Progress::Incomplete(need) => {
                let Some(into) = buf.get_mut(have..need) else {
                    return Err(TunnelErrorKind::Io(std::io::Error::other("SOCKS5 reply longer than its maximum")));
                };
                let n = s.read(into).await.map_err(TunnelErrorKind::Io)?;
                if n == 0 {
                    return Err(TunnelErrorKind::Closed);
                }
                have += n;
            }
        }
    }
}

/// A tunnel to an origin could not be opened: nothing reached the origin. Displays as
/// what failed, naming the proxy ("SOCKS5 proxy 127.0.0.1:1080 refused the
/// username/password"); never shows credentials.
#[derive(Debug)]
pub struct TunnelError {
    proxy: String,
    kind: TunnelErrorKind,
}

/// What went wrong with a tunnel.
#[derive(Debug)]
#[non_exhaustive]
pub enum TunnelErrorKind {
    /// The TCP connection to the proxy failed.
    Connect(std::io::Error),
    /// Connect and handshake took longer than the origin's connect timeout.
    TimedOut(Duration),
    /// The proxy closed the connection before the tunnel was open.
    Closed,
    /// Reading from or writing to the proxy failed.
    Io(std::io::Error),
    /// The SOCKS5 proxy refused or answered wrongly.
    Socks5(Socks5ReplyError),
    /// The HTTP proxy refused or answered wrongly.
    Http(HttpReplyError),
    /// The origin url is not `http://` (TLS to origins is not supported yet).
    Scheme,
    /// The origin's host name cannot be sent (SOCKS5 allows 1 to 255 bytes).
    TargetName,
    /// The username or password does not fit SOCKS5 (1 to 255 and 0 to 255 bytes).
    Credentials,
}

impl TunnelError {
    /// What went wrong.
    pub fn kind(&self) -> &TunnelErrorKind {
        &self.kind
    }

    /// Whether the tunnel failed by running out of time (a 504 rather than a 502).
    pub fn is_timeout(&self) -> bool {
        match &self.kind {
            TunnelErrorKind::TimedOut(_) => true,
            TunnelErrorKind::Connect(e) | TunnelErrorKind::Io(e) => e.kind() == std::io::ErrorKind::TimedOut,
            _ => false,
        }
    }
}

impl fmt::Display for TunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = &self.proxy;
        match &self.kind {
            TunnelErrorKind::Connect(e) => write!(f, "{proxy} is unreachable: {e}"),
            TunnelErrorKind::TimedOut(d) => write!(f, "{proxy} did not open the tunnel within the connect timeout ({d:?})"),
            TunnelErrorKind::Closed => write!(f, "{proxy} closed the connection during the handshake"),
            TunnelErrorKind::Io(e) => write!(f, "{proxy}: handshake failed: {e}"),
            TunnelErrorKind::Socks5(e) => write!(f, "{proxy} {e}"),
            TunnelErrorKind::Http(e) => write!(f, "{proxy} {e}"),
            TunnelErrorKind::Scheme => write!(f, "{proxy}: only http:// origins can be reached through a proxy"),
            TunnelErrorKind::TargetName => write!(f, "{proxy}: the origin's host name cannot be sent (1 to 255 bytes)"),
            TunnelErrorKind::Credentials => write!(f, "{proxy}: the username or password is longer than 255 bytes"),
        }
    }
}

impl StdError for TunnelError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            TunnelErrorKind::Connect(e) | TunnelErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
