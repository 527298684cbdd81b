//! Listeners: several addresses, HTTP/2 prior knowledge, head limits, slowloris, drain.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{get, get_h2, raw, send, write_config, Proxy, Spawned, TestOrigin};

#[tokio::test]
async fn serves_several_addresses_and_h2c() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let addrs = p.running.as_ref().unwrap().listen.clone();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0], addrs[1]);
    for a in &addrs {
        assert_eq!(get(&format!("http://{a}/x")).await.text(), "origin o");
        let r = get_h2(&format!("http://{a}/echo/h2")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["headers"]["via"], "2 streamgate");
    }
}

#[tokio::test]
async fn oversized_request_head_is_431_problem_json() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_header_bytes = 4096\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let big = "a".repeat(6000);
    let r = send(http::Method::GET, &p.url("/x"), &[("x-big", &big)]).await;
    let v = r.assert_problem(431, "header_too_large");
    assert!(v["detail"].as_str().unwrap().contains("4096"));
    assert_eq!(o.hits(), 0);
    // Just under the limit passes.
    let ok = "a".repeat(3000);
    assert_eq!(send(http::Method::GET, &p.url("/x"), &[("x-big", &ok)]).await.status, 200);
    // Far beyond any buffer: the connection is refused with 431, never buffered whole.
    let huge = format!("GET / HTTP/1.1\r\nHost: x\r\nx-huge: {}\r\n\r\n", "b".repeat(200_000));
    let r = raw(p.addr, huge.as_bytes(), Duration::from_secs(5)).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
}

#[tokio::test]
async fn malformed_request_lines_are_400() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!("[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n", o.url())).await;
    for bad in ["GARBAGE\r\n\r\n", "GET /x HTTP/9.9\r\n\r\n", "GET  HTTP/1.1\r\n\r\n", "GET /x HTTP/1.1\r\nbad header\r\n\r\n"] {
        let r = raw(p.addr, bad.as_bytes(), Duration::from_secs(5)).await;
        assert!(r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 505"), "{bad:?}: {r:?}");
    }
    assert_eq!(o.hits(), 0);
}

#[tokio::test]
async fn slow_request_heads_are_cut_off_without_hurting_others() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nheader_read_timeout = \"500ms\"\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let mut slow = TcpStream::connect(p.addr).await.unwrap();
    slow.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    // Meanwhile another client is served normally.
    assert_eq!(get(&p.url("/x")).await.text(), "origin o");
    // The slow client trickles a header line now and then; the server cuts it off.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if slow.write_all(b"X-Drip: 1\r\n").await.is_err() {
                return;
            }
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow client was never cut off");
    assert!(started.elapsed() >= Duration::from_millis(400), "cut off too early: {:?}", started.elapsed());
    assert_eq!(o.hits(), 1, "the slow request never reached the origin");
}

#[tokio::test]
async fn connections_that_never_speak_are_closed() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nheader_read_timeout = \"300ms\"\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let mut silent = TcpStream::connect(p.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "silent connection still open: {r:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let o = TestOrigin::start("o").await;
    let cfg = write_config(
        "drain.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nshutdown_grace = \"10s\"\nworker_threads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
            o.url()
        ),
    );
    let mut sg = Spawned::start(&["serve", "-c", cfg.to_str().unwrap()], &[]);
    let url = format!("http://{}/slowhead/800/x", sg.addr);
    let in_flight = tokio::spawn(async move { get(&url).await });
    // Wait until the origin has the request, then ask the proxy to stop.
    assert!(crate::support::eventually(Duration::from_secs(5), || async { o.hits() == 1 }).await);
    sg.signal("TERM");
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow o");
    let code = tokio::task::spawn_blocking(move || {
        let c = sg.wait_exit(Duration::from_secs(10));
        (c, sg)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0));
    // Nothing listens any more.
    assert!(TcpStream::connect(code.1.addr).await.is_err());
}
