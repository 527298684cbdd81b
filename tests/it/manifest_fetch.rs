//! How the proxy fetches manifests from HTTP origins (its own HTTP/1.1 client, see
//! src/upstream/h1.rs): framing the hyper client used to handle for it, keep-alive
//! connections the origin closes while idle, and the errors of a bad origin, all through
//! the real proxy with rewriting on.

use crate::support::{get, raw_origin, Proxy};

fn config(origin: std::net::SocketAddr, manifest: &str) -> String {
    format!(
        "[origins.o]\nurls = [\"http://{origin}\"]\naliases = [\"http://origin.example.com\"]\n\
         [routes.r]\nprefix = \"/\"\norigin = \"o\"\n[routes.r.manifest]\nrewrite = \"cdn\"\ncdn_base = \"https://cdn.example.com/\"\ncache = false\n{manifest}"
    )
}

#[tokio::test]
async fn a_chunked_manifest_after_an_interim_response_is_rewritten() {
    let o = raw_origin(
        b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n\
          HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ntransfer-encoding: chunked\r\n\r\n\
          19;ext=1\r\n#EXTM3U\n#EXT-X-VERSION:3\n\r\n\
          2c\r\n#EXTINF:4,\nhttp://origin.example.com/a/1.ts\n\r\n\
          0\r\nx-checksum: 1\r\n\r\n",
    )
    .await;
    let p = Proxy::start(&config(o, "")).await;
    let r = get(&p.url("/a/live.m3u8")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:4,\nhttps://cdn.example.com/a/1.ts\n");
    assert_eq!(r.headers["content-length"], r.text().len().to_string().as_str());
    assert!(r.headers.get("transfer-encoding").is_none());
    assert!(r.headers.get("link").is_none(), "an interim response's fields are not the final response's");
}

#[tokio::test]
async fn an_origin_closing_every_idle_connection_costs_no_failed_request() {
    // raw_origin answers once per connection and then closes it, without saying so: each
    // pooled connection is found closed on its next use and the request goes again on a
    // new one.
    let o = raw_origin(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ncontent-length: 52\r\n\r\n#EXTM3U\n#EXTINF:4,\nhttp://origin.example.com/a/1.ts\n")
        .await;
    let p = Proxy::start(&config(o, "")).await;
    for i in 0..5 {
        let r = get(&p.url("/a/live.m3u8")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.text(), "#EXTM3U\n#EXTINF:4,\nhttps://cdn.example.com/a/1.ts\n");
    }
}

#[tokio::test]
async fn a_manifest_body_cut_short_is_502_and_says_so() {
    let o = raw_origin(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ncontent-length: 500\r\n\r\n#EXTM3U\n").await;
    let p = Proxy::start(&config(o, "")).await;
    let v = get(&p.url("/a/live.m3u8")).await.assert_problem(502, "upstream_unavailable");
    assert!(v["detail"].as_str().unwrap().contains("failed midway"), "{v}");
}

#[tokio::test]
async fn a_chunked_manifest_past_max_bytes_is_manifest_too_large() {
    let o = raw_origin(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ntransfer-encoding: chunked\r\n\r\n\
          23\r\n#EXTM3U\n#EXTINF:4,\naaaaaaaaaaaa.ts\n\r\n23\r\n#EXTINF:4,\nbbbbbbbbbbbbbbbbbbbb.ts\n\r\n0\r\n\r\n",
    )
    .await;
    let p = Proxy::start(&config(o, "max_bytes = \"40B\"")).await;
    get(&p.url("/a/live.m3u8")).await.assert_problem(502, "manifest_too_large");
}

#[tokio::test]
async fn a_manifest_origin_speaking_garbage_is_502() {
    let o = raw_origin(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
    let p = Proxy::start(&config(o, "")).await;
    let v = get(&p.url("/a/live.m3u8")).await.assert_problem(502, "upstream_unavailable");
    assert!(v["detail"].as_str().unwrap().contains("invalid HTTP response"), "{v}");
}
