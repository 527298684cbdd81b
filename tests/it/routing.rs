//! Routing: longest prefix, host-specific routes, strip_prefix, queries, 404s.

use http::Method;

use crate::support::{get, send, Proxy, TestOrigin};

/// Origins `a` and `b`, and `routes` (TOML) over them.
async fn two_origins(routes: &str) -> (TestOrigin, TestOrigin, Proxy) {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    let p = Proxy::start(&format!("[origins.a]\nurls = [\"{}\"]\n[origins.b]\nurls = [\"{}\"]\n{routes}", a.url(), b.url())).await;
    (a, b, p)
}

#[tokio::test]
async fn longest_prefix_wins_and_strip_prefix_maps_the_path() {
    let (_a, _b, p) = two_origins(
        r#"
[routes.all]
prefix = "/"
origin = "a"
[routes.vod]
prefix = "/vod/"
origin = "b"
strip_prefix = true
"#,
    )
    .await;
    let r = get(&p.url("/vod/echo/x/master.m3u8?token=abc&b=%20")).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["origin"], "b");
    assert_eq!(v["path"], "/echo/x/master.m3u8", "prefix stripped");
    assert_eq!(v["query"], "token=abc&b=%20", "query passed through untouched");
    let v = get(&p.url("/echo/other")).await.json();
    assert_eq!(v["origin"], "a");
    assert_eq!(v["path"], "/echo/other");
    // "/vodka" does not match "/vod/": falls back to "/".
    assert_eq!(get(&p.url("/vodka")).await.text(), "origin a");
}

#[tokio::test]
async fn host_specific_routes_beat_any_host() {
    let (_a, _b, p) = two_origins(
        r#"
[routes.generic]
prefix = "/v/"
origin = "a"
[routes.special]
prefix = "/v/"
host = "Video.Example.com"
origin = "b"
"#,
    )
    .await;
    let r = send(Method::GET, &p.url("/v/x"), &[("host", "video.example.com:8443")]).await;
    assert_eq!(r.text(), "origin b");
    let r = send(Method::GET, &p.url("/v/x"), &[("host", "other.example.com")]).await;
    assert_eq!(r.text(), "origin a");
}

#[tokio::test]
async fn no_route_is_a_problem_json_404() {
    let a = TestOrigin::start("a").await;
    let p = Proxy::start(&format!("[origins.a]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/only/\"\norigin = \"a\"\n", a.url())).await;
    let r = get(&p.url("/elsewhere/x.ts")).await;
    let v = r.assert_problem(404, "route_not_found");
    assert!(v["detail"].as_str().unwrap().contains("/elsewhere/x.ts"));
    assert_eq!(a.hits(), 0);
    // HEAD gets the same status and headers, no body.
    let r = send(Method::HEAD, &p.url("/elsewhere"), &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn dot_segments_never_reach_routing_or_origin() {
    let a = TestOrigin::start("a").await;
    let p = Proxy::start(&format!("[origins.a]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/public/\"\norigin = \"a\"\n", a.url())).await;
    for bad in ["/public/../private/x", "/public/%2e%2e/private/x", "/public/.%2E/x", "/public/./x"] {
        let r = crate::support::raw(
            p.addr,
            format!("GET {bad} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            std::time::Duration::from_secs(5),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{bad}: {r}");
        assert!(r.contains("\"code\":\"bad_request\""), "{bad}: {r}");
    }
    assert_eq!(a.hits(), 0);
}
