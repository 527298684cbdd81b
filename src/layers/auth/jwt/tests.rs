//! JWT verification without sockets: the attack cases, the cache, JWKS parsing, and the
//! cost of one verification.

use std::time::{Duration, Instant};

use figment::providers::Format as _;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::config::auth::{AuthKind, JwksSettings};
use crate::config::RawConfig;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/keys");
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ES256_KEY: &[u8] = include_bytes!("../../../../tests/it/fixtures/keys/es256.key.pem");
const RSA_PUB: &[u8] = include_bytes!("../../../../tests/it/fixtures/keys/rsa.pub.pem");

fn settings(block: &str) -> JwtSettings {
    let toml = format!("[auth.v]\ntype = \"jwt\"\n{block}");
    let raw: RawConfig = figment::Figment::from(figment::providers::Toml::string(&toml)).extract().unwrap();
    let mut problems = Vec::new();
    let mut out = crate::config::auth::validate(&raw, &mut |k: &str, m: String| problems.push(format!("{k}: {m}")));
    assert!(problems.is_empty(), "{problems:?}");
    match out.remove("v").map(|s| s.kind) {
        Some(AuthKind::Jwt(j)) => j,
        _ => panic!("not a jwt block"),
    }
}

fn es256() -> JwtAuth {
    JwtAuth::new(&settings(&format!(
        "algorithms = [\"ES256\"]\npublic_keys = [\"file:{KEYS}/es256.pub.pem\"]\nissuer = \"https://idp/\"\naudience = [\"sg\", \"other\"]\nrequired_claims = [\"tier\"]\n"
    )))
}

fn now() -> u64 {
    unix_now()
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"sub": "viewer-1", "iss": "https://idp/", "aud": "sg", "exp": now() + 600, "tier": "gold"});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

fn es(c: &serde_json::Value) -> String {
    encode(&Header::new(Algorithm::ES256), c, &EncodingKey::from_ec_pem(ES256_KEY).unwrap()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_good_token_passes_and_is_cached() {
    let auth = es256();
    let t = es(&claims(json!({})));
    let v = rt().block_on(auth.verify(&t)).unwrap();
    assert_eq!(v.principal.as_deref(), Some("viewer-1"));
    assert_eq!(v.claims["tier"], "gold");
    assert_eq!(auth.cache.entries(), 1);
    let again = rt().block_on(auth.verify(&t)).unwrap();
    assert!(Arc::ptr_eq(&v, &again), "second check comes from the cache");
}

#[test]
fn attacks_are_refused_with_their_reason() {
    let auth = es256();
    let check = |t: &str| rt().block_on(auth.verify(t)).map(|_| ());
    // alg = none (unsigned), with and without a trailing signature.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    assert_eq!(check(&none), Err(Rejection::Algorithm));
    // HS256 "signed" with the RSA public key, against an RS256 block.
    let rs = JwtAuth::new(&settings(&format!("algorithms = [\"RS256\"]\npublic_keys = [\"file:{KEYS}/rsa.pub.pem\"]\n")));
    let confused = encode(&Header::new(Algorithm::HS256), &claims(json!({})), &EncodingKey::from_secret(RSA_PUB)).unwrap();
    assert_eq!(rt().block_on(rs.verify(&confused)).map(|_| ()), Err(Rejection::Algorithm));
    // ... and against a block that also allows HS256 with its own secret: only the secret
    // is tried for HS256, never the RSA key.
    let both = JwtAuth::new(&settings(&format!(
        "algorithms = [\"RS256\", \"HS256\"]\npublic_keys = [\"file:{KEYS}/rsa.pub.pem\"]\nsecret = \"{SECRET}\"\n"
    )));
    assert_eq!(rt().block_on(both.verify(&confused)).map(|_| ()), Err(Rejection::Signature));
    assert_eq!(check(&es(&claims(json!({"exp": now() - 120})))), Err(Rejection::Expired));
    assert_eq!(check(&es(&claims(json!({"exp": now() - 10})))), Ok(()), "within the 30s leeway");
    assert_eq!(check(&es(&claims(json!({"nbf": now() + 300})))), Err(Rejection::NotYetValid));
    assert_eq!(check(&es(&claims(json!({"iss": "https://evil/"})))), Err(Rejection::Issuer));
    assert_eq!(check(&es(&claims(json!({"iss": null})))), Err(Rejection::MissingClaim), "iss is required when configured");
    assert_eq!(check(&es(&claims(json!({"aud": "evil"})))), Err(Rejection::Audience));
    assert_eq!(check(&es(&claims(json!({"aud": ["x", "other"]})))), Ok(()));
    assert_eq!(check(&es(&claims(json!({"exp": null})))), Err(Rejection::MissingClaim), "exp is always required");
    assert_eq!(check(&es(&claims(json!({"tier": null})))), Err(Rejection::MissingClaim));
    let good = es(&claims(json!({"sub": "x"})));
    let (rest, sig) = good.rsplit_once('.').unwrap();
    let flipped = format!("{rest}.{}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
    assert_eq!(check(&flipped), Err(Rejection::Signature));
    let other_claims = es(&claims(json!({"sub": "y"})));
    let spliced = format!("{}.{}", other_claims.rsplit_once('.').unwrap().0, sig);
    assert_eq!(check(&spliced), Err(Rejection::Signature));
    for junk in ["", "a", "a.b", "a.b.c.d", "!!!.e30.x", "e30.e30.e30"] {
        assert!(matches!(check(junk), Err(Rejection::Malformed | Rejection::Algorithm)), "{junk:?}");
    }
    // ES384 is not configured: refused before any key is tried.
    let es384 = encode(
        &Header::new(Algorithm::ES384),
        &claims(json!({})),
        &EncodingKey::from_ec_pem(include_bytes!("../../../../tests/it/fixtures/keys/es384.key.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(check(&es384), Err(Rejection::Algorithm));
    assert_eq!(auth.cache.entries(), 2, "only the good tokens are cached");
}

#[test]
fn jwks_documents_keep_only_usable_signature_keys() {
    let s = settings("algorithms = [\"ES256\", \"RS256\"]\njwks_url = \"http://127.0.0.1:1/jwks\"\n");
    let jwks = Jwks::new(
        JwksSettings { url: "http://127.0.0.1:1/jwks".parse().unwrap(), refresh: Duration::from_secs(60), timeout: Duration::from_secs(1) },
        s.algorithms.clone(),
        ClaimRules::new(&s),
    );
    let doc = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec1", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
        {"kty": "EC", "crv": "P-256", "kid": "ps", "alg": "PS256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        {"kty": "weird"},
        {"kty": "RSA", "kid": "rsa1", "alg": "RS256", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw", "e": "AQAB"}
    ]});
    let keys = jwks.parse(doc.to_string().as_bytes()).unwrap();
    let kids: Vec<_> = keys.iter().map(|k| (k.kid.clone().unwrap_or_default(), k.algorithms.clone())).collect();
    assert_eq!(kids, vec![("ec1".into(), vec![Algorithm::ES256]), ("rsa1".into(), vec![Algorithm::RS256])]);
    assert!(jwks.parse(b"{\"not\": \"a set\"}").is_err());
}

/// The cost of one check, uncached and cached. Run with `--nocapture` to see it; the
/// numbers are from a debug build (aws-lc's assembly is fast either way).
#[test]
fn verification_cost() {
    let auth = es256();
    let n = 200u32;
    let tokens: Vec<String> = (0..n).map(|i| es(&claims(json!({"sub": format!("viewer-{i}")})))).collect();
    let rt = rt();
    let t0 = Instant::now();
    for t in &tokens {
        rt.block_on(auth.verify(t)).unwrap();
    }
    let uncached = t0.elapsed() / n;
    let rounds = 20_000u32;
    let t1 = Instant::now();
    for i in 0..rounds {
        let t = &tokens[(i % n) as usize];
        rt.block_on(auth.verify(t)).unwrap();
    }
    let cached = t1.elapsed() / rounds;
    println!("ES256 verification: {uncached:?} uncached, {cached:?} cached (debug build)");
    assert!(cached < uncached, "the cache must be cheaper than verifying");
}
