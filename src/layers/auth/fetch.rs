//! The HTTP(S) client of the auth blocks: JWKS fetches and introspection calls. One
//! pooled hyper client per block, built on first use (a snapshot built by `check` never
//! needs one). `https://` uses rustls with the aws-lc-rs provider and the Mozilla roots
//! (webpki-roots); `http://` works for sidecars and tests.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why a call failed. Messages name the URL and the cause, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection or request failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The endpoint answered with a status other than 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The body was larger than allowed, or broke off.
    #[error("unreadable body (over {0} bytes, or cut off)")]
    Body(usize),
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// A lazily built client.
#[derive(Default)]
pub struct Fetcher {
    client: OnceLock<Result<Client<Connector, Full<Bytes>>, String>>,
}

impl Fetcher {
    /// Sends `req` and reads a 200 body of at most `limit` bytes, all within `timeout`.
    pub async fn send(&self, req: Request<Full<Bytes>>, timeout: Duration, limit: usize) -> Result<Bytes, FetchError> {
        let client = self.client.get_or_init(build).as_ref().map_err(|e| FetchError::Tls(e.clone()))?;
        let call = async {
            let resp = client.request(req).await.map_err(|e| FetchError::Request(error_chain(&e)))?;
            if resp.status() != StatusCode::OK {
                return Err(FetchError::Status(resp.status()));
            }
            let body = Limited::new(resp.into_body(), limit).collect().await.map_err(|_| FetchError::Body(limit))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(timeout, call).await.map_err(|_| FetchError::Timeout(timeout))?
    }
}

fn build() -> Result<Client<Connector, Full<Bytes>>, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| e.to_string())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .timer(TokioTimer::new())
        .build(https))
}

/// The error and its causes on one line (`connection refused` is deep in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
