//! `type = "introspection"`: OAuth 2.0 Token Introspection (RFC 7662). The token is
//! POSTed to the endpoint with the client's credentials (HTTP Basic, RFC 6749 §2.3.1);
//! `active: true` lets the request through with the answer as its claims.
//!
//! Answers are cached by token: an active one until its `exp` or `cache_ttl`, whichever
//! is first; an inactive one for `cache_ttl` (a token does not come back to life, and junk
//! tokens must not each cost a call). An endpoint that cannot answer (down, timeout,
//! non-200, not JSON) fails closed with 503 `backend_unavailable`, and nothing is cached.
//! Concurrent first uses of one token share one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::cache::TokenCache;
use super::fetch::Fetcher;
use super::Verified;
use crate::config::auth::IntrospectionSettings;

/// Largest introspection answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `application/x-www-form-urlencoded` keeps only the unreserved characters.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What the endpoint said about a token.
#[derive(Clone)]
pub enum Answer {
    /// `active: true`, with the answer as claims.
    Active(Arc<Verified>),
    /// `active: false` (or expired).
    Inactive,
}

/// A compiled introspection block.
pub struct IntrospectionAuth {
    settings: IntrospectionSettings,
    authorization: Option<HeaderValue>,
    cache: TokenCache<Answer>,
    /// Calls in flight, by token: requests that bring the same new token at once (a
    /// player opening a stream asks for several manifests and segments together) share
    /// one call to the endpoint.
    flights: Mutex<HashMap<Box<[u8]>, Arc<Flight>>>,
    fetcher: Fetcher,
}

type Flight = tokio::sync::OnceCell<Result<Answer, String>>;

/// The endpoint could not answer; the text is for logs (no token in it).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl IntrospectionAuth {
    /// Compiles a block.
    pub fn new(s: &IntrospectionSettings) -> Self {
        let id = utf8_percent_encode(&s.client_id, FORM).to_string();
        let secret = utf8_percent_encode(s.client_secret.expose(), FORM).to_string();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let authorization = HeaderValue::from_str(&format!("Basic {basic}")).ok().map(|mut v| {
            v.set_sensitive(true);
            v
        });
        Self {
            settings: s.clone(),
            authorization,
            cache: TokenCache::new(),
            flights: Mutex::new(HashMap::new()),
            fetcher: Fetcher::default(),
        }
    }

    /// What the endpoint says about `token`, from the cache when asked lately. Concurrent
    /// first uses of one token share one call; if the request that started it goes away,
    /// the next one waiting makes the call.
    pub async fn introspect(&self, token: &str) -> Result<Answer, Unavailable> {
        if let Some(a) = self.cache.get(token.as_bytes(), Instant::now()) {
            return Ok(a);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.entry(token.as_bytes().into()).or_default().clone()
        };
        let _leave = Leave { flights: &self.flights, token: token.as_bytes(), flight: &flight };
        let result = flight
            .get_or_init(|| async {
                let now = Instant::now();
                let answer = self.call(token).await.map_err(|e| e.0)?;
                let ttl = match &answer {
                    Answer::Active(v) => {
                        let exp = v.claims.get("exp").and_then(Value::as_u64);
                        let left = exp.map_or(self.settings.cache_ttl, |e| Duration::from_secs(e.saturating_sub(unix_now())));
                        left.min(self.settings.cache_ttl)
                    }
                    Answer::Inactive => self.settings.cache_ttl,
                };
                self.cache.insert(token.as_bytes(), answer.clone(), now + ttl, now);
                Ok(answer)
            })
            .await
            .clone();
        result.map_err(Unavailable)
    }

    async fn call(&self, token: &str) -> Result<Answer, Unavailable> {
        let body = format!("token={}&token_type_hint=access_token", utf8_percent_encode(token, FORM));
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.settings.endpoint.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"))
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(a) = &self.authorization {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| Unavailable(e.to_string()))?;
        let body = self
            .fetcher
            .send(req, self.settings.timeout, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Unavailable(format!("introspection endpoint {}: {e}", self.settings.endpoint)))?;
        let claims: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| Unavailable(format!("introspection endpoint {}: answer is not a JSON object", self.settings.endpoint)))?;
        let active = match claims.get("active") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(Unavailable(format!("introspection endpoint {}: answer has no boolean \"active\"", self.settings.endpoint))),
        };
        let expired = claims.get("exp").and_then(Value::as_u64).is_some_and(|e| e <= unix_now());
        if !active || expired {
            return Ok(Answer::Inactive);
        }
        let principal = ["sub", "username"].iter().find_map(|k| claims.get(*k).and_then(Value::as_str)).map(str::to_owned);
        Ok(Answer::Active(Arc::new(Verified { claims: Arc::new(claims), principal })))
    }
}

/// Takes a flight out of the map when a request leaves it (answered or gone): once the
/// flight has its answer (later requests use the cache, or after a failure start a new
/// call), or when no other request is waiting on it, so abandoned flights do not pile up.
struct Leave<'a> {
    flights: &'a Mutex<HashMap<Box<[u8]>, Arc<Flight>>>,
    token: &'a [u8],
    flight: &'a Arc<Flight>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        let ours = flights.get(self.token).is_some_and(|f| Arc::ptr_eq(f, self.flight));
        // Two holders: the map and this request.
        if ours && (self.flight.initialized() || Arc::strong_count(self.flight) <= 2) {
            flights.remove(self.token);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::SecretRef;

    #[tokio::test]
    async fn an_abandoned_call_leaves_no_flight_behind() {
        // An endpoint that takes connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let secret = serde_json::from_str::<SecretRef>("\"s\"").unwrap().resolve().unwrap();
        let auth = IntrospectionAuth::new(&IntrospectionSettings {
            endpoint: format!("http://{addr}/introspect").parse().unwrap(),
            client_id: "c".into(),
            client_secret: secret,
            cache_ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            sources: Vec::new(),
        });
        // Two requests wait on one call; both go away before it answers.
        let mut both = Box::pin(async { tokio::join!(auth.introspect("tok"), auth.introspect("tok")) });
        assert!(tokio::time::timeout(Duration::from_millis(100), both.as_mut()).await.is_err());
        assert_eq!(auth.flights.lock().unwrap().len(), 1, "one shared call in flight");
        drop(both);
        assert!(auth.flights.lock().unwrap().is_empty(), "the abandoned flight is gone");
    }
}
