//! Proxy semantics: hop-by-hop headers, Via, X-Forwarded-*, Host, request ids.

use http::Method;

use crate::support::{get, send, try_send, Proxy, TestOrigin};

async fn setup() -> (TestOrigin, Proxy) {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!("[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n", o.url())).await;
    (o, p)
}

#[tokio::test]
async fn request_headers_to_the_origin() {
    let (o, p) = setup().await;
    let r = send(
        Method::GET,
        &p.url("/echo/x?a=1"),
        &[
            ("host", "video.example.com:8443"),
            ("x-request-id", "trace-me-7"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "secret"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-keep", "yes"),
        ],
    )
    .await;
    let h = &r.json()["headers"];
    for gone in ["x-drop-me", "keep-alive", "te", "proxy-connection"] {
        assert!(h.get(gone).is_none(), "{gone} reached the origin: {h}");
    }
    assert_eq!(h["x-keep"], "yes");
    assert_eq!(h["host"], o.addr.to_string(), "the origin's own Host");
    assert_eq!(h["via"], "1.1 streamgate");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "video.example.com:8443");
    assert_eq!(h["x-request-id"], "trace-me-7", "the origin sees the request id");
    assert_eq!(r.headers["x-request-id"], "trace-me-7");
}

#[tokio::test]
async fn range_and_conditional_requests_reach_http_origins() {
    let (_o, p) = setup().await;
    let r = send(
        Method::GET,
        &p.url("/echo/seg.ts"),
        &[("range", "bytes=100-199"), ("if-none-match", "\"abc\""), ("if-modified-since", "Sat, 28 Nov 2026 08:00:00 GMT")],
    )
    .await;
    let h = &r.json()["headers"];
    assert_eq!(h["range"], "bytes=100-199");
    assert_eq!(h["if-none-match"], "\"abc\"");
    assert_eq!(h["if-modified-since"], "Sat, 28 Nov 2026 08:00:00 GMT");
}

#[tokio::test]
async fn response_headers_to_the_client() {
    let (_o, p) = setup().await;
    let r = get(&p.url("/hop")).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-hop-secret").is_none(), "{:?}", r.headers);
    assert!(r.headers.get("keep-alive").is_none());
    assert_eq!(r.headers["x-end-to-end"], "kept");
    assert_eq!(r.headers["via"], "1.1 streamgate");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let (_o, p) = setup().await;
    let r = send(Method::GET, &p.url("/x"), &[("x-request-id", "client-abc-1")]).await;
    assert_eq!(r.headers["x-request-id"], "client-abc-1");
    let a = get(&p.url("/x")).await.headers["x-request-id"].clone();
    let b = get(&p.url("/x")).await.headers["x-request-id"].clone();
    assert_ne!(a, b);
    assert!(!a.is_empty());
    // An id we refuse is replaced, for the client and the origin alike.
    let r = send(Method::GET, &p.url("/echo/x"), &[("x-request-id", "bad id with spaces")]).await;
    let made = r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made, "bad id with spaces");
    assert_eq!(r.json()["headers"]["x-request-id"], made.as_str());
}

#[tokio::test]
async fn request_bodies_stream_to_the_origin() {
    let (_o, p) = setup().await;
    let body = bytes::Bytes::from(vec![7u8; 3 * 1024 * 1024]);
    let r = try_send(Method::PUT, &p.url("/echo/upload"), &[], body).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 3 * 1024 * 1024);
    assert_eq!(r.json()["method"], "PUT");
}
