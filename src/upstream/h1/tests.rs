//! The manifest client against scripted origins on loopback sockets: framing, reuse,
//! stale connections, interim responses, limits and malformed replies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What a scripted origin does on one connection, one step per request it reads.
enum Step {
    /// Answers and keeps the connection.
    Reply(Vec<u8>),
    /// Answers and closes.
    ReplyClose(Vec<u8>),
    /// Closes without answering.
    Close,
}
use Step::*;

type Conn = Vec<Step>;

struct Origin {
    addr: String,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Serves `conns` in order of connection; connections beyond them are closed at once.
/// After its last scripted reply a connection stays open (idle keep-alive) until the
/// peer closes it.
async fn origin(conns: Vec<Conn>) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        let mut conns = conns.into_iter();
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            a.fetch_add(1, Ordering::SeqCst);
            let Some(script) = conns.next() else { continue };
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for reply in script {
                    // Read one request head.
                    loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            r.lock().unwrap().push(String::from_utf8_lossy(&buf[..end]).into_owned());
                            buf.drain(..end + 4);
                            break;
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    match reply {
                        Reply(bytes) => {
                            if s.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        ReplyClose(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            return;
                        }
                        Close => return,
                    }
                }
                let mut rest = [0u8; 64];
                while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
            });
        }
    });
    Origin { addr, accepted, requests }
}

fn head(path: &str) -> Vec<u8> {
    let mut h = HeaderMap::new();
    h.insert("x-request-id", HeaderValue::from_static("abc"));
    request_head(&Method::GET, "", path, &HeaderValue::from_static("origin.test"), &h).unwrap()
}

async fn get(pool: &H1Pool, path: &str, limit: u64) -> Result<Whole, H1Error> {
    let p = pool.send("http://origin.test", &head(path), &Method::GET).await?;
    pool.finish(p, limit).await
}

fn ok(body: &str) -> Step {
    Reply(
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            .into_bytes(),
    )
}

fn pool_for(addr: &str) -> H1Pool {
    H1Pool::new(&addr.parse().unwrap(), Duration::from_secs(2))
}

#[tokio::test]
async fn content_length_bodies_reuse_one_connection() {
    let o = origin(vec![vec![ok("#EXTM3U\n"), ok("#EXTM3U\n#2\n"), ok("")]]).await;
    let pool = pool_for(&o.addr);
    let a = get(&pool, "/a.m3u8", 1024).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], b"#EXTM3U\n");
    assert_eq!(a.headers.get(header::CONTENT_TYPE).unwrap(), "application/vnd.apple.mpegurl");
    assert_eq!(&get(&pool, "/b.m3u8", 1024).await.unwrap().body[..], b"#EXTM3U\n#2\n");
    assert!(get(&pool, "/c.m3u8", 1024).await.unwrap().body.is_empty());
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
    let reqs = o.requests.lock().unwrap().clone();
    assert_eq!(reqs[0], "GET /a.m3u8 HTTP/1.1\r\nhost: origin.test\r\nx-request-id: abc");
    assert!(reqs[2].starts_with("GET /c.m3u8 HTTP/1.1\r\n"));
}

#[tokio::test]
async fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
    let reply =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8;name=value\r\n#EXTM3U\n\r\n3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n".to_vec();
    let o = origin(vec![vec![Reply(reply), ok("again")]]).await;
    let pool = pool_for(&o.addr);
    assert_eq!(&get(&pool, "/a", 1024).await.unwrap().body[..], b"#EXTM3U\nabc");
    // The trailer was consumed exactly: the connection carries the next request.
    assert_eq!(&get(&pool, "/b", 1024).await.unwrap().body[..], b"again");
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connection_close_and_http_1_0_are_not_reused() {
    let close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_vec();
    let old = b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec();
    let o = origin(vec![vec![ReplyClose(close)], vec![ReplyClose(old)], vec![ok("third")]]).await;
    let pool = pool_for(&o.addr);
    assert_eq!(&get(&pool, "/a", 1024).await.unwrap().body[..], b"ok");
    let old = get(&pool, "/b", 1024).await.unwrap();
    assert_eq!((old.version, &old.body[..]), (Version::HTTP_10, &b"until the end"[..]));
    assert_eq!(&get(&pool, "/c", 1024).await.unwrap().body[..], b"third");
    assert_eq!(o.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_framed_by_the_close_is_read_to_the_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 1024];
        let _ = s.read(&mut b).await;
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\n#EXTM3U\n").await.unwrap();
        s.write_all(b"#EXT-X-ENDLIST\n").await.unwrap();
        // Dropping the socket ends the body.
    });
    let pool = pool_for(&addr);
    let p = pool.send("http://origin.test", &head("/a"), &Method::GET).await.unwrap();
    assert_eq!(&pool.finish(p, 1024).await.unwrap().body[..], b"#EXTM3U\n#EXT-X-ENDLIST\n");
    assert!(pool.checkout().is_none(), "a close-framed connection is never reused");
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let reply =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nyes"
            .to_vec();
    let o = origin(vec![vec![Reply(reply)]]).await;
    let w = get(&pool_for(&o.addr), "/a", 1024).await.unwrap();
    assert_eq!((w.status, &w.body[..]), (StatusCode::OK, &b"yes"[..]));
    assert!(w.headers.get("link").is_none());
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_once() {
    // First connection answers once, then closes when asked again (as an origin whose
    // keep-alive timeout passed); the request goes again on a second connection.
    let o = origin(vec![vec![ok("one"), Close], vec![ok("two")]]).await;
    let pool = pool_for(&o.addr);
    assert_eq!(&get(&pool, "/a", 1024).await.unwrap().body[..], b"one");
    assert_eq!(&get(&pool, "/b", 1024).await.unwrap().body[..], b"two");
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_new_connection_closed_before_the_head_is_a_reset() {
    let o = origin(vec![vec![Close]]).await;
    match get(&pool_for(&o.addr), "/a", 1024).await {
        Err(H1Error::Head(ProxyError::UpstreamUnavailable(d), Failure::Reset)) => {
            assert!(d.contains("before a complete response head"), "{d}")
        }
        other => panic!("{:?}", other.map(|w| w.status)),
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let pool = pool_for(&addr);
    match pool.send("http://gone.test", &head("/a"), &Method::GET).await {
        Err(H1Error::Head(ProxyError::UpstreamUnavailable(d), Failure::Connect)) => {
            assert!(d.starts_with("cannot connect to http://gone.test: "), "{d}")
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[tokio::test]
async fn malformed_heads_are_invalid_responses_not_retried() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
    ] {
        let o = origin(vec![vec![ReplyClose(reply.to_vec())]]).await;
        match get(&pool_for(&o.addr), "/a", 1024).await {
            Err(H1Error::Head(ProxyError::UpstreamUnavailable(d), Failure::Other)) => assert!(d.contains("invalid HTTP response"), "{d}"),
            other => panic!("{:?}: {:?}", String::from_utf8_lossy(reply), other.map(|w| w.status)),
        }
    }
}

#[tokio::test]
async fn an_endless_head_is_refused() {
    let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
    while reply.len() <= MAX_HEAD + 1024 {
        reply.extend_from_slice(b"x-filler: 0123456789012345678901234567890123456789\r\n");
    }
    let o = origin(vec![vec![ReplyClose(reply)]]).await;
    assert!(matches!(get(&pool_for(&o.addr), "/a", 1024).await, Err(H1Error::Head(_, Failure::Other))));
}

#[tokio::test]
async fn bodies_past_the_limit_are_manifest_too_large() {
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n".to_vec();
    let close = b"HTTP/1.1 200 OK\r\n\r\n0123456789".to_vec();
    for reply in [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789".to_vec(), chunked, close] {
        let o = origin(vec![vec![ReplyClose(reply)]]).await;
        match get(&pool_for(&o.addr), "/a", 6).await {
            Err(H1Error::Body(ProxyError::ManifestTooLarge(6))) => {}
            other => panic!("{:?}", other.map(|w| w.body)),
        }
    }
}

#[tokio::test]
async fn a_body_cut_short_fails_midway() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nabc",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
    ] {
        let o = origin(vec![vec![ReplyClose(reply.to_vec())]]).await;
        match get(&pool_for(&o.addr), "/a", 1024).await {
            Err(H1Error::Body(ProxyError::UpstreamUnavailable(d))) => assert!(d.starts_with("the manifest body failed midway"), "{d}"),
            other => panic!("{:?}: {:?}", String::from_utf8_lossy(reply), other.map(|w| w.body)),
        }
    }
}

#[tokio::test]
async fn head_responses_and_304_have_no_body() {
    let head_reply = b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n".to_vec();
    let not_modified = b"HTTP/1.1 304 Not Modified\r\ncontent-length: 500\r\n\r\n".to_vec();
    let o = origin(vec![vec![Reply(head_reply), Reply(not_modified), ok("after")]]).await;
    let pool = pool_for(&o.addr);
    let req = request_head(&Method::HEAD, "", "/a", &HeaderValue::from_static("o"), &HeaderMap::new()).unwrap();
    let p = pool.send("u", &req, &Method::HEAD).await.unwrap();
    let w = pool.finish(p, 10).await.unwrap();
    assert_eq!((w.status, w.body.len()), (StatusCode::OK, 0));
    let w = get(&pool, "/b", 10).await.unwrap();
    assert_eq!((w.status, w.body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!(&get(&pool, "/c", 10).await.unwrap().body[..], b"after");
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn request_targets_with_controls_or_spaces_are_refused() {
    let h = HeaderValue::from_static("o");
    for bad in ["/a b", "/a\r\nx: y", "/a\u{7f}"] {
        assert!(request_head(&Method::GET, "", bad, &h, &HeaderMap::new()).is_none(), "{bad:?}");
    }
    assert!(request_head(&Method::GET, "/base", "/a?b=c%20d", &h, &HeaderMap::new()).is_some());
}

/// A body in chunks of any sizes, delivered in writes of any sizes, decodes to itself.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn chunked_bodies_decode_whatever_the_split(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        sizes in proptest::collection::vec(1usize..700, 1..6),
        writes in proptest::collection::vec(1usize..900, 1..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let reply = chunked(&body, &sizes);
            let writes = writes.clone();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await;
                let mut rest = &reply[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = writes[i % writes.len()].min(rest.len());
                    s.write_all(&rest[..n]).await.unwrap();
                    s.flush().await.unwrap();
                    rest = &rest[n..];
                    i += 1;
                }
                let _ = s.read(&mut b).await;
            });
            let pool = pool_for(&addr);
            let p = pool.send("u", &head("/a"), &Method::GET).await.unwrap();
            pool.finish(p, 1 << 20).await.map(|w| w.body.to_vec())
        });
        prop_assert_eq!(got.ok(), Some(body));
    }
}
