//! Fuzzes viewer authentication with whatever a client can send: the `Authorization`
//! header, the `token` query parameter and cookie of a JWT block (HS256 secret + an ES256
//! public key, issuer and audience checked), and the header of an API-key block.
//!
//! Input: bytes up to the first NUL go into the header / cookie, the rest into the query.
//! Invariants: no panic, and nothing the fuzzer makes is accepted (it cannot sign: the
//! secret and the private key are not in the input).
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use streamgate::config::{load_and_validate, ConfigSource};
use streamgate::layers::auth::Authenticator;
use streamgate::layers::{Head, RequestContext};

/// The test-only public key of tests/it/fixtures/keys (its private key is not an input).
const ES256_PUB: &str = include_str!("../../tests/it/fixtures/keys/es256.pub.pem");

struct Fixture {
    rt: tokio::runtime::Runtime,
    jwt: Authenticator,
    api_key: Authenticator,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let toml = format!(
            "[origins.o]\nurls = [\"http://127.0.0.1:9\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\nauth = \"v\"\n\
             [auth.v]\ntype = \"jwt\"\nalgorithms = [\"HS256\", \"ES256\"]\nsecret = \"fuzz-secret-that-is-in-no-input-0123456789\"\n\
             public_keys = [\"\"\"{ES256_PUB}\"\"\"]\nissuer = \"i\"\naudience = \"a\"\n\
             [auth.k]\ntype = \"api_key\"\nfrom = \"header:x-api-key\"\n\
             keys = {{ acme = \"sha256:120d6ec789168a1b1ee98e6db9b6107c61e17396817f6500804ba33539ff0214\" }}\n"
        );
        let cfg = load_and_validate(&ConfigSource::Embedded(toml)).unwrap_or_else(|e| panic!("fuzz fixture config: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Fixture { jwt: Authenticator::new(&cfg.auth["v"]), api_key: Authenticator::new(&cfg.auth["k"]), rt }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (head_part, query_part) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let mut headers = HeaderMap::new();
    let mut bearer = b"Bearer ".to_vec();
    bearer.extend_from_slice(head_part);
    for (name, value) in [("authorization", bearer.as_slice()), ("cookie", head_part), ("x-api-key", head_part)] {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let query: String = query_part.iter().map(|&b| if b.is_ascii_alphanumeric() || b"-._~=&%".contains(&b) { b as char } else { '_' }).collect();
    let uri: Uri = format!("/x?token={query}").parse().unwrap_or_else(|_| Uri::from_static("/x"));
    let head = Head { method: &Method::GET, uri: &uri, headers: &headers };
    for auth in [&f.jwt, &f.api_key] {
        let mut ctx = RequestContext::new([127, 0, 0, 1].into());
        let r = f.rt.block_on(auth.check(&head, &mut ctx));
        assert!(r.is_err(), "the fuzzer made a credential the block accepts");
    }
});
