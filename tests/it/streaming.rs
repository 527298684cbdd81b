//! Bodies stream through; a body that fails midway is aborted, never passed off as whole.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{get, origin::expected_bytes, try_send, Proxy, TestOrigin};

async fn setup(extra: &str) -> (TestOrigin, Proxy) {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!("[origins.o]\nurls = [\"{}\"]\n{extra}\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n", o.url())).await;
    (o, p)
}

#[tokio::test]
async fn large_bodies_arrive_intact() {
    let (_o, p) = setup("").await;
    let n = 24 * 1024 * 1024 + 17;
    let r = get(&p.url(&format!("/bytes/{n}"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-length"], n.to_string().as_str());
    assert!(r.body == expected_bytes(n), "body differs");
}

#[tokio::test]
async fn origin_reset_midway_aborts_the_client_response_h1() {
    let (o, p) = setup("").await;
    let r = try_send(http::Method::GET, &p.url("/reset/100000"), &[], Bytes::new()).await;
    assert!(r.is_err(), "a truncated body must not look complete");
    // On the wire: the head announces 200000 bytes, fewer arrive, then the connection closes.
    let wire = crate::support::raw_bytes(p.addr, b"GET /reset/100000 HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(10)).await;
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&wire[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200") && head.contains("content-length: 200000"), "{head}");
    let got = wire.len() - head_end;
    assert!(got < 200_000, "all bytes arrived: {got}");
    // The proxy keeps serving.
    assert_eq!(get(&p.url("/x")).await.text(), "origin o");
    assert!(o.hits() >= 2);
}

#[tokio::test]
async fn origin_reset_midway_resets_the_h2_stream() {
    let (_o, p) = setup("").await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let resp = client.get(p.url("/reset/100000").parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await;
    let err = body.expect_err("h2 body must end with RST_STREAM, not a clean end");
    assert!(format!("{err:?}").contains("Reset"), "{err:?}");
    // Same connection, next stream still works.
    let ok = client.get(p.url("/x").parse().unwrap()).await.unwrap();
    assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "origin o");
}

#[tokio::test]
async fn a_slow_client_is_not_an_idle_origin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_o, p) = setup("idle_timeout = \"300ms\"").await;
    let n = 16 * 1024 * 1024;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(format!("GET /bytes/{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut first = vec![0u8; 64 * 1024];
    s.read_exact(&mut first).await.unwrap();
    // The viewer stops reading for longer than the idle timeout (backpressure all the way
    // to the origin); this is the client's pause, not the origin's.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let wire = [first, rest].concat();
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(wire.len() - head_end, n, "the body was cut short");
}

#[tokio::test]
async fn stalled_origin_body_is_aborted_after_idle_timeout() {
    let (_o, p) = setup("idle_timeout = \"400ms\"").await;
    let start = Instant::now();
    let r = try_send(http::Method::GET, &p.url("/stall/50000"), &[], Bytes::new()).await;
    assert!(r.is_err(), "stalled body was presented as complete");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(350), "aborted before the idle timeout: {took:?}");
    assert!(took < Duration::from_secs(10), "not aborted: {took:?}");
}
