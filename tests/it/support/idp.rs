//! A test identity provider on an ephemeral loopback port:
//!
//! - `GET /jwks`: the current JWKS document (replace it with `set_jwks`), counted in
//!   `jwks_hits`
//! - `POST /introspect`: RFC 7662; needs `Authorization: Basic` of `sg:idp-secret`
//!   (else 401); `token=active-*` answers `active: true` with `sub` = the rest of the
//!   token, anything else `active: false`. Counted in `introspect_hits`; the last form
//!   body is kept in `last_form`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use tokio::net::TcpListener;

/// `sg:idp-secret`, base64.
pub const BASIC: &str = "Basic c2c6aWRwLXNlY3JldA==";

pub struct TestIdp {
    pub addr: SocketAddr,
    pub jwks_hits: Arc<AtomicUsize>,
    pub introspect_hits: Arc<AtomicUsize>,
    pub last_form: Arc<Mutex<String>>,
    jwks: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A public JWK for a PKCS#8 private key file, with a `kid`.
pub fn jwk(private_pem: &[u8], alg: Algorithm, kid: &str) -> Jwk {
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
        _ => EncodingKey::from_rsa_pem(private_pem),
    }
    .expect("test key");
    let mut jwk = Jwk::from_encoding_key(&key, alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

pub fn jwks_json(keys: Vec<Jwk>) -> String {
    serde_json::to_string(&JwkSet { keys }).expect("jwks json")
}

impl TestIdp {
    pub async fn start(jwks: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind idp");
        let addr = listener.local_addr().expect("idp addr");
        let jwks = Arc::new(Mutex::new(jwks));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let introspect_hits = Arc::new(AtomicUsize::new(0));
        let last_form = Arc::new(Mutex::new(String::new()));
        let state = (jwks.clone(), jwks_hits.clone(), introspect_hits.clone(), last_form.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, state.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, jwks_hits, introspect_hits, last_form, jwks, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set_jwks(&self, doc: String) {
        *self.jwks.lock().unwrap() = doc;
    }
}

type State = (Arc<Mutex<String>>, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Mutex<String>>);

async fn handle(req: Request<Incoming>, (jwks, jwks_hits, introspect_hits, last_form): State) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
        Ok(r)
    };
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/jwks") => {
            jwks_hits.fetch_add(1, Ordering::SeqCst);
            let doc = jwks.lock().unwrap().clone();
            reply(StatusCode::OK, doc)
        }
        ("POST", "/introspect") => {
            introspect_hits.fetch_add(1, Ordering::SeqCst);
            let authorized = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(BASIC);
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let form = String::from_utf8_lossy(&body).into_owned();
            *last_form.lock().unwrap() = form.clone();
            if !authorized {
                return reply(StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_client\"}".into());
            }
            let token = form.split('&').find_map(|p| p.strip_prefix("token=")).unwrap_or("");
            // "slow-...": an IdP that takes 300 ms to answer, so callers overlap.
            let token = match token.strip_prefix("slow-") {
                Some(t) => {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    t
                }
                None => token,
            };
            let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
            match token.strip_prefix("active-") {
                Some(sub) => reply(StatusCode::OK, format!("{{\"active\":true,\"sub\":\"{sub}\",\"exp\":{exp},\"scope\":\"video\"}}")),
                None => reply(StatusCode::OK, "{\"active\":false}".into()),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "{}".into()),
    }
}
