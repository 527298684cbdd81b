//! Origins reachable only through a tunnel (`origins.NAME.proxy`): SOCKS5 and HTTP
//! CONNECT, with and without credentials, against the test proxies in
//! `support::tunnel`, and the errors when the tunnel cannot be opened.
//!
//! The origin is a second streamgate serving files, addressed as
//! `origin.tunnel.test:PORT`: only the test proxies resolve that name, so a response
//! proves the request went through the tunnel (the proxies' records prove it again).

use std::path::PathBuf;
use std::time::Duration;

use crate::support::tunnel::TunnelProxy;
use crate::support::{closed_port, get, raw_origin, Proxy};

const PLAYLIST: &str =
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg-0.ts\n#EXTINF:4.0,\nseg-1.ts\n#EXT-X-ENDLIST\n";

fn segment() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

/// A streamgate serving a playlist and a segment from files: the origin behind the tunnel.
async fn origin() -> (Proxy, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sg-tunnel-{}-{}", std::process::id(), crate::support::unique()));
    std::fs::create_dir_all(dir.join("hls")).unwrap();
    std::fs::write(dir.join("hls/index.m3u8"), PLAYLIST).unwrap();
    std::fs::write(dir.join("hls/seg-0.ts"), segment()).unwrap();
    let p = Proxy::start(&format!(
        "[origins.files]\nurls = [\"file://{}\"]\n[routes.f]\nprefix = \"/\"\norigin = \"files\"\n[routes.f.manifest]\nrewrite = \"none\"\n",
        dir.display()
    ))
    .await;
    (p, dir)
}

/// The proxy under test: route `/v/` to `origin_url` through `proxy_url`.
async fn front(origin_url: &str, proxy_url: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "[origins.o]\nurls = [\"{origin_url}\"]\nproxy = \"{proxy_url}\"\n{extra}\n[routes.r]\nprefix = \"/v/\"\norigin = \"o\"\nstrip_prefix = true\n"
    ))
    .await
}

/// The origin by a name only the tunnel proxies resolve.
fn tunnel_only(origin: &Proxy) -> (String, String) {
    let target = format!("origin.tunnel.test:{}", origin.addr.port());
    (format!("http://{target}"), target)
}

async fn assert_carries_a_manifest_and_a_segment(p: &Proxy) {
    let m = get(&p.url("/v/hls/index.m3u8")).await;
    assert_eq!(m.status, 200, "{}", m.text());
    assert_eq!(m.headers["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(m.text(), PLAYLIST);
    let s = get(&p.url("/v/hls/seg-0.ts")).await;
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.body.len(), 300_000);
    assert!(s.body[..] == segment()[..], "segment bytes changed in the tunnel");
}

#[tokio::test]
async fn socks5_without_auth_carries_a_manifest_and_a_segment() {
    let (o, _dir) = origin().await;
    let socks = TunnelProxy::socks5(None).await;
    let (url, target) = tunnel_only(&o);
    let p = front(&url, &socks.url(), "").await;
    assert_carries_a_manifest_and_a_segment(&p).await;
    let targets = socks.targets();
    assert!(!targets.is_empty() && targets.iter().all(|t| *t == target), "{targets:?}");
    assert!(socks.connections() >= 1);
}

#[tokio::test]
async fn socks5_with_username_and_password() {
    let (o, _dir) = origin().await;
    // Percent-encoded in the URL: '@', ':' and '/' in the password.
    let socks = TunnelProxy::socks5(Some(("viewer", "p@ss:w/rd"))).await.with_userinfo("viewer:p%40ss%3Aw%2Frd");
    let (url, target) = tunnel_only(&o);
    let p = front(&url, &socks.url(), "").await;
    assert_carries_a_manifest_and_a_segment(&p).await;
    assert!(socks.targets().iter().all(|t| *t == target) && !socks.targets().is_empty(), "{:?}", socks.targets());
}

#[tokio::test]
async fn socks5_sends_an_ip_origin_as_an_address() {
    let (o, _dir) = origin().await;
    let socks = TunnelProxy::socks5(None).await;
    let p = front(&format!("http://{}", o.addr), &socks.url(), "").await;
    assert_carries_a_manifest_and_a_segment(&p).await;
    assert_eq!(socks.targets()[0], o.addr.to_string(), "ATYP 1, not a name");
}

#[tokio::test]
async fn http_connect_without_auth_carries_a_manifest_and_a_segment() {
    let (o, _dir) = origin().await;
    let proxy = TunnelProxy::http_connect(None).await;
    let (url, target) = tunnel_only(&o);
    let p = front(&url, &proxy.url(), "").await;
    assert_carries_a_manifest_and_a_segment(&p).await;
    let targets = proxy.targets();
    assert!(!targets.is_empty() && targets.iter().all(|t| *t == target), "{targets:?}");
    assert!(proxy.hosts().iter().all(|h| *h == target), "{:?}", proxy.hosts());
    assert!(proxy.authorizations().iter().all(String::is_empty), "no credentials configured, none sent");
}

#[tokio::test]
async fn http_connect_with_basic_auth() {
    let (o, _dir) = origin().await;
    // base64("viewer:p:ss w0rd"), computed independently of the code under test.
    let proxy = TunnelProxy::http_connect(Some("Basic dmlld2VyOnA6c3MgdzByZA==")).await.with_userinfo("viewer:p%3Ass%20w0rd");
    let (url, target) = tunnel_only(&o);
    let p = front(&url, &proxy.url(), "").await;
    assert_carries_a_manifest_and_a_segment(&p).await;
    assert!(proxy.targets().iter().all(|t| *t == target) && !proxy.targets().is_empty(), "{:?}", proxy.targets());
}

#[tokio::test]
async fn tunnels_are_kept_alive_and_reused() {
    let (o, _dir) = origin().await;
    let socks = TunnelProxy::socks5(None).await;
    let (url, _) = tunnel_only(&o);
    let p = front(&url, &socks.url(), "").await;
    for _ in 0..6 {
        assert_eq!(get(&p.url("/v/hls/index.m3u8")).await.status, 200);
    }
    assert!(socks.connections() < 6, "every request opened a tunnel: {}", socks.connections());
}

#[tokio::test]
async fn wrong_socks5_password_is_502_naming_the_proxy() {
    let (o, _dir) = origin().await;
    let socks = TunnelProxy::socks5(Some(("viewer", "right"))).await.with_userinfo("viewer:wrong");
    let (url, _) = tunnel_only(&o);
    let p = front(&url, &socks.url(), "").await;
    let v = get(&p.url("/v/hls/index.m3u8")).await.assert_problem(502, "upstream_unavailable");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("SOCKS5 proxy {} refused the username/password", socks.addr)), "{detail}");
    assert!(!detail.contains("wrong"), "no password in errors: {detail}");
    assert!(socks.targets().is_empty(), "no tunnel was opened");
}

#[tokio::test]
async fn http_proxy_407_is_502_naming_the_proxy() {
    let (o, _dir) = origin().await;
    let proxy = TunnelProxy::http_connect(Some("Basic dmlld2VyOnA6c3MgdzByZA==")).await.with_userinfo("viewer:nope");
    let (url, _) = tunnel_only(&o);
    let p = front(&url, &proxy.url(), "").await;
    let v = get(&p.url("/v/hls/index.m3u8")).await.assert_problem(502, "upstream_unavailable");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("HTTP proxy {} answered 407 Proxy Authentication Required", proxy.addr)), "{detail}");
    assert!(proxy.targets().is_empty());
    assert!(proxy.authorizations().iter().all(|a| a == "Basic dmlld2VyOm5vcGU="), "{:?}", proxy.authorizations());
}

#[tokio::test]
async fn a_proxy_that_is_down_is_502() {
    let dead = closed_port().await;
    let p = front("http://origin.tunnel.test:80", &format!("socks5://{dead}"), "").await;
    let v = get(&p.url("/v/x.ts")).await.assert_problem(502, "upstream_unavailable");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("SOCKS5 proxy {dead} is unreachable")), "{detail}");
    let p = front("http://origin.tunnel.test:80", &format!("http://{dead}"), "").await;
    let v = get(&p.url("/v/x.ts")).await.assert_problem(502, "upstream_unavailable");
    assert!(v["detail"].as_str().unwrap().contains(&format!("HTTP proxy {dead} is unreachable")), "{v}");
}

#[tokio::test]
async fn the_proxy_cannot_reach_the_origin() {
    let dead = closed_port().await;
    let socks = TunnelProxy::socks5(None).await;
    let p = front(&format!("http://{dead}"), &socks.url(), "").await;
    let v = get(&p.url("/v/x.ts")).await.assert_problem(502, "upstream_unavailable");
    assert!(v["detail"].as_str().unwrap().contains("could not connect to the origin: connection refused (reply 5)"), "{v}");
    let proxy = TunnelProxy::http_connect(None).await;
    let p = front(&format!("http://{dead}"), &proxy.url(), "").await;
    let v = get(&p.url("/v/x.ts")).await.assert_problem(502, "upstream_unavailable");
    assert!(v["detail"].as_str().unwrap().contains(&format!("HTTP proxy {} answered 502 Bad Gateway", proxy.addr)), "{v}");
}

#[tokio::test]
async fn a_server_that_is_not_a_socks5_proxy_is_502() {
    let http = raw_origin(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
    let p = front("http://origin.tunnel.test:80", &format!("socks5://{http}"), "").await;
    let v = get(&p.url("/v/x.ts")).await.assert_problem(502, "upstream_unavailable");
    assert!(v["detail"].as_str().unwrap().contains("answered with protocol version 72, which is not SOCKS5"), "{v}");
}

#[tokio::test]
async fn a_silent_proxy_times_out_within_the_connect_timeout() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let p = front("http://origin.tunnel.test:80", &format!("http://{silent}"), "connect_timeout = \"200ms\"\nretries = 0").await;
    let started = std::time::Instant::now();
    let v = get(&p.url("/v/x.ts")).await.assert_problem(504, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(v["detail"].as_str().unwrap().contains(&format!("HTTP proxy {silent} did not open the tunnel")), "{v}");
}
