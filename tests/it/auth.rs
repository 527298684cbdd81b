//! Viewer authentication over real sockets: the JWT attack suite (each case's status,
//! `code` and exact `WWW-Authenticate`), JWKS rotation against a test IdP, token
//! introspection (active, inactive, endpoint down), API keys, and that no credential
//! ever reaches the log.

use std::io::{BufRead, BufReader};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::Method;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::idp::{jwk, jwks_json, TestIdp};
use crate::support::{closed_port, eventually, repo, send, write_config, Proxy, Resp, Spawned, TestOrigin};

const ISS: &str = "https://idp.example.com/";

fn key_path(name: &str) -> String {
    repo().join("tests/it/fixtures/keys").join(name).display().to_string()
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims(over: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"sub": "viewer-1", "iss": ISS, "aud": "streamgate", "exp": now() + 600});
    for (k, v) in over.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, c: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, c, key).unwrap()
}

fn es256(file: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(&pem(file)).unwrap()
}

async fn bearer(url: &str, token: &str) -> Resp {
    send(Method::GET, url, &[("authorization", &format!("Bearer {token}"))]).await
}

/// A proxy with one route, `/` to `origin`, behind the auth block `[auth.idp]` with these
/// keys.
async fn behind_auth(origin: &TestOrigin, auth_block: &str) -> Proxy {
    Proxy::start(&format!(
        "[origins.o]\nurls = [\"http://{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\nauth = \"idp\"\n[auth.idp]\n{auth_block}\n",
        origin.addr
    ))
    .await
}

/// A 401 `unauthorized` with exactly this challenge.
fn assert_refused(r: &Resp, challenge: &str) {
    r.assert_problem(401, "unauthorized");
    assert_eq!(r.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some(challenge), "{}", r.text());
}

fn invalid(description: &str) -> String {
    format!("Bearer realm=\"streamgate\", error=\"invalid_token\", error_description=\"{description}\"")
}

const MISSING: &str = "Bearer realm=\"streamgate\"";

#[tokio::test]
async fn jwt_attack_suite() {
    let origin = TestOrigin::start("o").await;
    let (es_pub, rsa_pub) = (key_path("es256.pub.pem"), key_path("rsa.pub.pem"));
    let proxy = Proxy::start(&format!(
        r#"
[origins.o]
urls = ["http://{origin}"]
[routes.jwt]
prefix = "/jwt/"
origin = "o"
auth = "viewers"
[routes.hdr]
prefix = "/hdr/"
origin = "o"
auth = "header_only"
[routes.rs]
prefix = "/rs/"
origin = "o"
auth = "rsa"
[auth.viewers]
type = "jwt"
algorithms = ["ES256"]
public_keys = ["file:{es_pub}"]
issuer = "{ISS}"
audience = "streamgate"
leeway = "5s"
[auth.header_only]
type = "jwt"
algorithms = ["ES256"]
public_keys = ["file:{es_pub}"]
token_from = ["header"]
[auth.rsa]
type = "jwt"
algorithms = ["RS256"]
public_keys = ["file:{rsa_pub}"]
"#,
        origin = origin.addr
    ))
    .await;
    let url = proxy.url("/jwt/a.m3u8");
    let key = es256("es256.key.pem");
    let good = sign(Algorithm::ES256, &key, None, &claims(json!({})));

    // The good token, from each allowed place.
    assert_eq!(bearer(&url, &good).await.status, 200);
    assert_eq!(send(Method::GET, &format!("{url}?token={good}"), &[]).await.status, 200);
    assert_eq!(send(Method::GET, &url, &[("cookie", &format!("a=b; sg_token={good}"))]).await.status, 200);

    // No token: a challenge without an error code (RFC 6750 §3.1).
    assert_refused(&send(Method::GET, &url, &[]).await, MISSING);
    // A token in a place the block does not read is no token.
    let hdr = proxy.url("/hdr/a.m3u8");
    assert_refused(&send(Method::GET, &format!("{hdr}?token={good}"), &[]).await, MISSING);
    assert_refused(&send(Method::GET, &hdr, &[("cookie", &format!("sg_token={good}"))]).await, MISSING);
    assert_eq!(bearer(&hdr, &good).await.status, 200);

    // alg = none.
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims(json!({})).to_string()));
    assert_refused(&bearer(&url, &none).await, &invalid("the token algorithm is not accepted"));
    // HS256 "signed" with the RSA public key (HS/RS confusion).
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&pem("rsa.pub.pem")), None, &claims(json!({})));
    assert_refused(&bearer(&proxy.url("/rs/a"), &confused).await, &invalid("the token algorithm is not accepted"));
    let rs_good = sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(&pem("rsa.key.pem")).unwrap(), None, &claims(json!({})));
    assert_eq!(bearer(&proxy.url("/rs/a"), &rs_good).await.status, 200);
    // Expired, not yet valid (beyond the 5s leeway).
    let expired = sign(Algorithm::ES256, &key, None, &claims(json!({"exp": now() - 60})));
    assert_refused(&bearer(&url, &expired).await, &invalid("the token has expired"));
    let early = sign(Algorithm::ES256, &key, None, &claims(json!({"nbf": now() + 60})));
    assert_refused(&bearer(&url, &early).await, &invalid("the token is not valid yet"));
    // Wrong issuer, wrong audience.
    let iss = sign(Algorithm::ES256, &key, None, &claims(json!({"iss": "https://evil.example.com/"})));
    assert_refused(&bearer(&url, &iss).await, &invalid("the token issuer is not accepted"));
    let aud = sign(Algorithm::ES256, &key, None, &claims(json!({"aud": "someone-else"})));
    assert_refused(&bearer(&url, &aud).await, &invalid("the token audience is not accepted"));
    // Signed by another key.
    let forged = sign(Algorithm::ES256, &es256("es256b.key.pem"), None, &claims(json!({})));
    assert_refused(&bearer(&url, &forged).await, &invalid("the token signature is invalid"));
    // Oversized: refused before parsing, whatever it contains.
    let huge = format!("{good}{}", "A".repeat(9000));
    assert_refused(&bearer(&url, &huge).await, &invalid("the token is larger than allowed"));
    assert_refused(&send(Method::GET, &format!("{url}?token={huge}"), &[]).await, &invalid("the token is larger than allowed"));
    // Garbage.
    assert_refused(&bearer(&url, "not.a.jwt").await, &invalid("the token is malformed"));

    // Nothing refused reached the origin: only the 5 good requests did.
    assert_eq!(origin.hits.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn jwks_rotation_and_unknown_kid() {
    let (k1, k2) = (pem("es256.key.pem"), pem("es256b.key.pem"));
    let fast = TestIdp::start(jwks_json(vec![jwk(&k1, Algorithm::ES256, "k1")])).await;
    let slow = TestIdp::start(jwks_json(vec![jwk(&k1, Algorithm::ES256, "k1")])).await;
    let origin = TestOrigin::start("o").await;
    let proxy = Proxy::start(&format!(
        r#"
[origins.o]
urls = ["http://{origin}"]
[routes.fast]
prefix = "/fast/"
origin = "o"
auth = "fast"
[routes.slow]
prefix = "/slow/"
origin = "o"
auth = "slow"
[auth.fast]
type = "jwt"
algorithms = ["ES256"]
jwks_url = "{fast_url}"
jwks_refresh = "1s"
[auth.slow]
type = "jwt"
algorithms = ["ES256"]
jwks_url = "{slow_url}"
jwks_refresh = "1h"
"#,
        origin = origin.addr,
        fast_url = fast.url("/jwks"),
        slow_url = slow.url("/jwks"),
    ))
    .await;
    let c = claims(json!({}));
    let t1 = sign(Algorithm::ES256, &es256("es256.key.pem"), Some("k1"), &c);
    let t2 = sign(Algorithm::ES256, &es256("es256b.key.pem"), Some("k2"), &c);

    // The first token is accepted as soon as the keys are loaded (no fixed wait).
    assert_eq!(bearer(&proxy.url("/slow/a"), &t1).await.status, 200);
    // A flood of unknown kids costs at most one extra fetch per jwks_refresh (1h here):
    // the start-up fetch, and possibly one more if a request came before it.
    for _ in 0..20 {
        assert_refused(&bearer(&proxy.url("/slow/a"), &t2).await, &invalid("the token key id is unknown"));
    }
    assert!(slow.jwks_hits.load(Ordering::SeqCst) <= 2, "hits: {}", slow.jwks_hits.load(Ordering::SeqCst));

    // Rotation: k2 published next to k1 is picked up without a restart ...
    assert_eq!(bearer(&proxy.url("/fast/a"), &t1).await.status, 200);
    fast.set_jwks(jwks_json(vec![jwk(&k1, Algorithm::ES256, "k1"), jwk(&k2, Algorithm::ES256, "k2")]));
    let url = proxy.url("/fast/a");
    assert!(eventually(Duration::from_secs(10), || async { bearer(&url, &t2).await.status == 200 }).await, "new key not picked up");
    // ... and k1, once withdrawn, stops working (cached verifications are dropped too).
    fast.set_jwks(jwks_json(vec![jwk(&k2, Algorithm::ES256, "k2")]));
    assert!(eventually(Duration::from_secs(10), || async { bearer(&url, &t1).await.status == 401 }).await, "old key still accepted");
    assert_refused(&bearer(&url, &t1).await, &invalid("the token key id is unknown"));
    assert_eq!(bearer(&url, &t2).await.status, 200);
}

/// An IdP that is broken when streamgate starts (its JWKS does not parse): every token is
/// refused, and once the IdP is fixed the next tokens load the keys within seconds, not
/// after a whole `jwks_refresh` (an hour here). The retries stay bounded meanwhile.
#[tokio::test]
async fn jwks_unavailable_at_start_is_picked_up_by_later_tokens() {
    let k1 = pem("es256.key.pem");
    let idp = TestIdp::start("{not a jwks".into()).await;
    let origin = TestOrigin::start("o").await;
    let jwt = format!("type = \"jwt\"\nalgorithms = [\"ES256\"]\njwks_url = \"{}\"\njwks_refresh = \"1h\"", idp.url("/jwks"));
    let proxy = behind_auth(&origin, &jwt).await;
    let t1 = sign(Algorithm::ES256, &es256("es256.key.pem"), Some("k1"), &claims(json!({})));
    let url = proxy.url("/a");
    let started = std::time::Instant::now();
    // The start-up fetch (within its jitter) has been answered with the broken document.
    let hits = &idp.jwks_hits;
    assert!(eventually(Duration::from_secs(5), || async { hits.load(Ordering::SeqCst) >= 1 }).await, "no start-up fetch");
    for _ in 0..20 {
        assert_eq!(bearer(&url, &t1).await.status, 401);
    }
    idp.set_jwks(jwks_json(vec![jwk(&k1, Algorithm::ES256, "k1")]));
    assert!(eventually(Duration::from_secs(10), || async { bearer(&url, &t1).await.status == 200 }).await, "keys never loaded");
    // The start-up fetch, then at most one per 2 s while the key set was empty.
    let hits = idp.jwks_hits.load(Ordering::SeqCst);
    let bound = 2 + started.elapsed().as_secs() as usize / 2;
    assert!(hits <= bound, "{hits} JWKS fetches in {:?}", started.elapsed());
}

/// A player opening a stream sends several requests with one new token at once: they
/// share one introspection call.
#[tokio::test]
async fn concurrent_first_uses_of_a_token_share_one_introspection() {
    let idp = TestIdp::start(jwks_json(vec![])).await;
    let origin = TestOrigin::start("o").await;
    let introspection =
        format!("type = \"introspection\"\nendpoint = \"{}\"\nclient_id = \"sg\"\nclient_secret = \"idp-secret\"", idp.url("/introspect"));
    let proxy = behind_auth(&origin, &introspection).await;
    for (token, want) in [("slow-active-alice", 200), ("slow-nobody", 401)] {
        let before = idp.introspect_hits.load(Ordering::SeqCst);
        let url = proxy.url("/a");
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (url, token) = (url.clone(), token.to_owned());
            set.spawn(async move { bearer(&url, &token).await.status });
        }
        let statuses: Vec<_> = set.join_all().await;
        assert!(statuses.iter().all(|s| *s == want), "{token}: {statuses:?}");
        assert_eq!(idp.introspect_hits.load(Ordering::SeqCst) - before, 1, "{token}: one call for 20 concurrent requests");
    }
}

#[tokio::test]
async fn introspection_active_inactive_and_down() {
    let idp = TestIdp::start(jwks_json(vec![])).await;
    let origin = TestOrigin::start("o").await;
    let down = closed_port().await;
    let proxy = Proxy::start(&format!(
        r#"
[origins.o]
urls = ["http://{origin}"]
[routes.i]
prefix = "/i/"
origin = "o"
auth = "idp"
[routes.down]
prefix = "/down/"
origin = "o"
auth = "down"
[routes.badclient]
prefix = "/badclient/"
origin = "o"
auth = "badclient"
[auth.idp]
type = "introspection"
endpoint = "{endpoint}"
client_id = "sg"
client_secret = "idp-secret"
cache_ttl = "30s"
[auth.down]
type = "introspection"
endpoint = "http://{down}/introspect"
client_id = "sg"
client_secret = "idp-secret"
timeout = "1s"
[auth.badclient]
type = "introspection"
endpoint = "{endpoint}"
client_id = "sg"
client_secret = "wrong"
"#,
        origin = origin.addr,
        endpoint = idp.url("/introspect"),
    ))
    .await;
    let url = proxy.url("/i/a");
    assert_eq!(bearer(&url, "active-alice").await.status, 200);
    assert_eq!(idp.last_form.lock().unwrap().as_str(), "token=active-alice&token_type_hint=access_token");
    assert_eq!(bearer(&url, "active-alice").await.status, 200);
    assert_eq!(idp.introspect_hits.load(Ordering::SeqCst), 1, "the active answer is cached");
    assert_refused(&bearer(&url, "revoked").await, &invalid("the token is not active"));
    assert_refused(&bearer(&url, "revoked").await, &invalid("the token is not active"));
    assert_eq!(idp.introspect_hits.load(Ordering::SeqCst), 2, "the inactive answer is cached too");
    assert_refused(&send(Method::GET, &url, &[]).await, MISSING);
    // Fail closed: an endpoint that is down, or refuses our client, is a 503.
    bearer(&proxy.url("/down/a"), "active-bob").await.assert_problem(503, "backend_unavailable");
    bearer(&proxy.url("/badclient/a"), "active-bob").await.assert_problem(503, "backend_unavailable");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 2);
}

fn sha256_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn api_keys_from_header_and_query() {
    let origin = TestOrigin::start("o").await;
    let hash = sha256_hex("acme-key-1");
    let proxy = Proxy::start(&format!(
        r#"
[origins.o]
urls = ["http://{origin}"]
[routes.h]
prefix = "/h/"
origin = "o"
auth = "partners"
[routes.q]
prefix = "/q/"
origin = "o"
auth = "partners_q"
[routes.echo]
prefix = "/echo/"
origin = "o"
auth = "partners_q"
[auth.partners]
type = "api_key"
from = "header:x-api-key"
keys = {{ acme = "sha256:{hash}" }}
[auth.partners_q]
type = "api_key"
from = "query:api_key"
keys = {{ acme = "sha256:{hash}" }}
"#,
        origin = origin.addr
    ))
    .await;
    let h = proxy.url("/h/a");
    let wrong = "ApiKey realm=\"streamgate\", error=\"invalid_token\", error_description=\"the API key is not valid\"";
    assert_eq!(send(Method::GET, &h, &[("x-api-key", "acme-key-1")]).await.status, 200);
    assert_refused(&send(Method::GET, &h, &[("x-api-key", "acme-key-2")]).await, wrong);
    assert_refused(&send(Method::GET, &h, &[]).await, "ApiKey realm=\"streamgate\"");
    assert_refused(&send(Method::GET, &format!("{h}?api_key=acme-key-1"), &[]).await, "ApiKey realm=\"streamgate\"");
    let q = proxy.url("/q/a");
    assert_eq!(send(Method::GET, &format!("{q}?x=1&api_key=acme-key-1"), &[]).await.status, 200);
    assert_refused(&send(Method::GET, &format!("{q}?api_key=nope"), &[]).await, wrong);
    assert_refused(&send(Method::GET, &q, &[("x-api-key", "acme-key-1")]).await, "ApiKey realm=\"streamgate\"");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 2);
    // The key in the query is the viewer's, not the origin's: it is not sent upstream
    // (no origin log gets it, and a cached manifest is shared).
    let r = send(Method::GET, &proxy.url("/echo/x?a=1&api_key=acme-key-1&b=2"), &[]).await;
    assert_eq!(r.json()["query"], "a=1&b=2");
}

#[tokio::test]
async fn credentials_never_reach_the_log() {
    let origin = TestOrigin::start("o").await;
    let cfg = write_config(
        "auth-log.toml",
        &format!(
            r#"
[log]
level = "debug"
access = true
[origins.o]
urls = ["http://{origin}"]
[routes.jwt]
prefix = "/jwt/"
origin = "o"
auth = "viewers"
[routes.key]
prefix = "/key/"
origin = "o"
auth = "partners"
[auth.viewers]
type = "jwt"
algorithms = ["ES256"]
public_keys = ["file:{pubkey}"]
[auth.partners]
type = "api_key"
from = "header:x-api-key"
keys = {{ acme = "sha256:{hash}" }}
"#,
            origin = origin.addr,
            pubkey = key_path("es256.pub.pem"),
            hash = sha256_hex("acme-secret-key"),
        ),
    );
    let env = [("STREAMGATE_SERVER__LISTEN", "[\"127.0.0.1:0\"]"), ("STREAMGATE_ADMIN__LISTEN", "127.0.0.1:0")];
    let mut sg = Spawned::start(&["serve", "-c", cfg.to_str().unwrap()], &env);
    let base = format!("http://{}", sg.addr);
    let key = es256("es256.key.pem");
    let good = sign(Algorithm::ES256, &key, None, &claims(json!({"aud": null, "iss": null})));
    let forged = sign(Algorithm::ES256, &es256("es256b.key.pem"), None, &claims(json!({"sub": "mallory"})));
    let url = format!("{base}/jwt/a.m3u8");
    assert_eq!(bearer(&url, &good).await.status, 200);
    assert_eq!(send(Method::GET, &format!("{url}?token={good}"), &[]).await.status, 200);
    assert_eq!(send(Method::GET, &url, &[("cookie", &format!("sg_token={good}"))]).await.status, 200);
    assert_eq!(bearer(&url, &forged).await.status, 401);
    assert_eq!(
        send(Method::GET, &format!("{base}/key/a"), &[("x-api-key", "acme-secret-key"), ("x-request-id", "last-one")]).await.status,
        200
    );
    let stderr = sg.stderr.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.contains("last-one");
            out.push(line);
            if done {
                break;
            }
        }
        out
    });
    let lines = tokio::time::timeout(Duration::from_secs(10), lines).await.expect("log lines in time").unwrap();
    sg.signal("TERM");
    let text = lines.join("\n");
    let sig = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for secret in [good.as_str(), &sig(&good), forged.as_str(), &sig(&forged), "acme-secret-key"] {
        assert!(!text.contains(secret), "a credential reached the log:\n{text}");
    }
    let access: Vec<serde_json::Value> =
        lines.iter().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|v| v["target"] == "access").collect();
    assert_eq!(access.iter().filter(|v| v["principal"] == "viewer-1").count(), 3, "{text}");
    assert!(access.iter().any(|v| v["principal"] == "acme"), "{text}");
    assert!(access.iter().any(|v| v["status"] == 401 && v["principal"] == ""), "{text}");
}
