//! Validation of `[auth.*]`: every problem with its full key path.

use super::*;
use figment::providers::Format as _;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/keys");
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn check(toml: &str) -> (BTreeMap<String, AuthSettings>, Vec<String>) {
    let raw: RawConfig = figment::Figment::from(figment::providers::Toml::string(toml)).extract().expect("raw config parses");
    let mut problems = Vec::new();
    let out = validate(&raw, &mut |k: &str, m: String| problems.push(format!("{k}: {m}")));
    (out, problems)
}

fn problems(toml: &str) -> Vec<String> {
    check(toml).1
}

fn has(problems: &[String], prefix: &str) -> bool {
    problems.iter().any(|p| p.starts_with(prefix))
}

#[test]
fn a_valid_jwt_block_has_typed_keys_and_defaults() {
    let (out, p) = check(&format!(
        "[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\", \"RS256\", \"EdDSA\"]\npublic_keys = [\"file:{KEYS}/es256.pub.pem\", \"file:{KEYS}/rsa.pub.pem\", \"file:{KEYS}/ed25519.pub.pem\"]\nissuer = \"https://idp/\"\naudience = \"sg\"\n"
    ));
    assert!(p.is_empty(), "{p:?}");
    let AuthKind::Jwt(j) = &out["v"].kind else { panic!("not jwt") };
    let algs: Vec<_> = j.keys.iter().map(|k| k.algorithms.clone()).collect();
    assert_eq!(algs, vec![vec![Algorithm::ES256], vec![Algorithm::RS256], vec![Algorithm::EdDSA]]);
    assert_eq!(j.leeway, Duration::from_secs(30));
    assert_eq!(j.sources.len(), 3);
    assert_eq!(out["v"].max_token_bytes, DEFAULT_MAX_TOKEN_BYTES);
}

#[test]
fn jwt_problems_name_the_key() {
    let p = problems("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"none\", \"ES256\"]\npublic_keys = [\"-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----\"]\ntoken_from = [\"header\", \"body\"]\nleeway = \"1h\"\n");
    assert!(has(&p, "auth.v.algorithms: \"none\" is not one of"), "{p:?}");
    assert!(has(&p, "auth.v.public_keys: entry 0 is not a PEM public key"), "{p:?}");
    assert!(has(&p, "auth.v.token_from: \"body\""), "{p:?}");
    assert!(has(&p, "auth.v.leeway"), "{p:?}");
    assert!(p.iter().all(|m| !m.contains("nope")), "key material never quoted: {p:?}");
}

#[test]
fn keys_must_fit_the_algorithms() {
    // An RSA key with only ES256 allowed; a P-384 key for ES256.
    let p = problems(&format!(
        "[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\npublic_keys = [\"file:{KEYS}/rsa.pub.pem\", \"file:{KEYS}/es384.pub.pem\"]\n"
    ));
    assert!(has(&p, "auth.v.public_keys: entry 0 is a Rsa key"), "{p:?}");
    assert!(has(&p, "auth.v.public_keys: entry 1 is a P384 key"), "{p:?}");
    // HS256 without a secret; a secret without HS*; a short secret; a private key.
    let p = problems("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"HS256\"]\n");
    assert!(has(&p, "auth.v.algorithms: lists an HMAC algorithm"), "{p:?}");
    let p = problems(&format!(
        "[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\nsecret = \"{SECRET}\"\npublic_keys = [\"file:{KEYS}/es256.pub.pem\"]\n"
    ));
    assert!(has(&p, "auth.v.secret: is only used by"), "{p:?}");
    let p = problems("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"short\"\n");
    assert!(has(&p, "auth.v.secret: is shorter than 32 bytes"), "{p:?}");
    let p = problems(&format!("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\npublic_keys = [\"file:{KEYS}/es256.key.pem\"]\n"));
    assert!(has(&p, "auth.v.public_keys: entry 0 is a private key"), "{p:?}");
    let p = problems("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\npublic_keys = [\"file:/nonexistent/k.pem\"]\n");
    assert!(has(&p, "auth.v.public_keys: entry 0: cannot read secret file"), "{p:?}");
    let p = problems("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\n");
    assert!(has(&p, "auth.v.public_keys: a jwt block needs"), "{p:?}");
}

#[test]
fn jwks_settings() {
    let (out, p) = check(
        "[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\njwks_url = \"https://idp.example.com/jwks.json\"\njwks_refresh = \"1m\"\n",
    );
    assert!(p.is_empty(), "{p:?}");
    let AuthKind::Jwt(j) = &out["v"].kind else { panic!("not jwt") };
    assert_eq!(j.jwks.as_ref().map(|j| j.refresh), Some(Duration::from_secs(60)));
    let p = problems("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"ES256\"]\njwks_url = \"ftp://x/\"\njwks_refresh = \"10ms\"\n");
    assert!(has(&p, "auth.v.jwks_url: \"ftp://x/\""), "{p:?}");
    assert!(has(&p, "auth.v.jwks_refresh: must be at least 1s"), "{p:?}");
    let p = problems(&format!("[auth.v]\ntype = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\njwks_url = \"http://x/\"\n"));
    assert!(has(&p, "auth.v.jwks_url: JWKS keys are public keys"), "{p:?}");
}

#[test]
fn keys_of_another_type_are_refused() {
    let p = problems(&format!(
        "[auth.v]\ntype = \"jwt\"\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\nendpoint = \"http://x/\"\nkeys = {{ a = \"sha256:00\" }}\n"
    ));
    assert!(has(&p, "auth.v.endpoint: does not apply to type = \"jwt\""), "{p:?}");
    assert!(has(&p, "auth.v.keys: does not apply to type = \"jwt\""), "{p:?}");
    let p = problems("[auth.k]\ntype = \"api_key\"\nfrom = \"header:x-api-key\"\nkeys = { a = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\" }\nissuer = \"x\"\n");
    assert_eq!(p, vec!["auth.k.issuer: does not apply to type = \"api_key\"".to_string()]);
    let p = problems("[auth.x]\ntype = \"oauth\"\n");
    assert!(has(&p, "auth.x.type: \"oauth\" is not one of"), "{p:?}");
    let p = problems("[auth.x]\nalgorithms = [\"HS256\"]\n");
    assert!(has(&p, "auth.x.type: is required"), "{p:?}");
}

#[test]
fn api_key_blocks() {
    let (out, p) = check("[auth.k]\ntype = \"api_key\"\nfrom = \"header:X-Api-Key\"\nkeys = { acme = \"sha256:9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\" }\n");
    assert!(p.is_empty(), "{p:?}");
    let AuthKind::ApiKey(k) = &out["k"].kind else { panic!("not api_key") };
    assert_eq!(k.source, TokenSource::NamedHeader(http::HeaderName::from_static("x-api-key")));
    assert_eq!(k.keys[0].0[0], 0x9f);
    let p = problems("[auth.k]\ntype = \"api_key\"\nfrom = \"cookie:k\"\nkeys = { acme = \"plaintext-key\", b = \"sha256:zz\" }\n");
    assert!(has(&p, "auth.k.from: \"cookie:k\""), "{p:?}");
    assert!(has(&p, "auth.k.keys.acme: must be \"sha256:<64 hex digits>\""), "{p:?}");
    assert!(has(&p, "auth.k.keys.b"), "{p:?}");
    assert!(p.iter().all(|m| !m.contains("plaintext-key")), "{p:?}");
    let p = problems("[auth.k]\ntype = \"api_key\"\n");
    assert!(has(&p, "auth.k.from: is required") && has(&p, "auth.k.keys: is required"), "{p:?}");
}

#[test]
fn introspection_blocks() {
    let (out, p) = check("[auth.i]\ntype = \"introspection\"\nendpoint = \"http://127.0.0.1:1/introspect\"\nclient_id = \"sg\"\nclient_secret = \"s3cret\"\ncache_ttl = \"30s\"\ntoken_from = [\"header\"]\nmax_token_bytes = \"4KiB\"\n");
    assert!(p.is_empty(), "{p:?}");
    let AuthKind::Introspection(i) = &out["i"].kind else { panic!("not introspection") };
    assert_eq!(i.cache_ttl, Duration::from_secs(30));
    assert_eq!(i.sources, vec![TokenSource::Header]);
    assert_eq!(out["i"].max_token_bytes, 4096);
    let p = problems("[auth.i]\ntype = \"introspection\"\nclient_secret = \"env:SG_TEST_SURELY_UNSET_SECRET\"\n");
    assert!(has(&p, "auth.i.endpoint: is required"), "{p:?}");
    assert!(has(&p, "auth.i.client_id: is required"), "{p:?}");
    assert!(has(&p, "auth.i.client_secret: environment variable SG_TEST_SURELY_UNSET_SECRET is not set"), "{p:?}");
    let p = problems("[auth.i]\ntype = \"introspection\"\nendpoint = \"http://u:p@idp/x\"\nclient_id = \"sg\"\nclient_secret = \"s\"\nmax_token_bytes = 0\n");
    assert!(has(&p, "auth.i.endpoint: must not carry credentials"), "{p:?}");
    assert!(has(&p, "auth.i.max_token_bytes"), "{p:?}");
}
