//! File origins: GET/HEAD, ranges, validators, content types, and no way out of the root.

use std::time::Duration;

use http::Method;

use crate::support::{get, raw, send, Proxy};

struct Tree {
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn tree() -> Tree {
    let base = std::env::temp_dir().join(format!("sg-files-{}-{}", std::process::id(), crate::support::unique()));
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("hls")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("hls/master.m3u8"), "#EXTM3U\n#EXT-X-VERSION:3\n").unwrap();
    std::fs::write(root.join("hls/seg.ts"), (0..1000u32).map(|i| (i % 256) as u8).collect::<Vec<_>>()).unwrap();
    for ext in ["mpd", "m4s", "mp4", "aac", "vtt", "key"] {
        std::fs::write(root.join(format!("f.{ext}")), "x").unwrap();
    }
    std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("hls/seg.ts"), root.join("inside-link.ts")).unwrap();
    }
    Tree { root, outside }
}

async fn proxy(t: &Tree) -> Proxy {
    Proxy::start(&format!(
        "[origins.files]\nurls = [\"file://{}\"]\n[routes.media]\nprefix = \"/media/\"\norigin = \"files\"\nstrip_prefix = true\n[routes.media.manifest]\nrewrite = \"none\"\n",
        t.root.display()
    ))
    .await
}

#[tokio::test]
async fn get_head_and_content_types() {
    let t = tree();
    let p = proxy(&t).await;
    let r = get(&p.url("/media/hls/master.m3u8")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "#EXTM3U\n#EXT-X-VERSION:3\n");
    assert_eq!(r.headers["content-type"], "application/vnd.apple.mpegurl");
    assert!(r.headers.contains_key("etag") && r.headers.contains_key("last-modified"));
    let h = send(Method::HEAD, &p.url("/media/hls/seg.ts"), &[]).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.headers["accept-ranges"], "bytes");
    assert_eq!(h.headers["content-length"], "1000");
    assert_eq!(h.headers["content-type"], "video/mp2t");
    assert!(h.body.is_empty());
    for (ext, ct) in [
        ("mpd", "application/dash+xml"),
        ("m4s", "video/iso.segment"),
        ("mp4", "video/mp4"),
        ("aac", "audio/aac"),
        ("vtt", "text/vtt"),
        ("key", "application/octet-stream"),
    ] {
        assert_eq!(get(&p.url(&format!("/media/f.{ext}"))).await.headers["content-type"], ct, "{ext}");
    }
    get(&p.url("/media/hls/missing.ts")).await.assert_problem(404, "not_found");
    get(&p.url("/media/hls")).await.assert_problem(404, "not_found");
    let r = send(Method::POST, &p.url("/media/hls/seg.ts"), &[]).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn ranges() {
    let t = tree();
    let p = proxy(&t).await;
    let all: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("range", "bytes=10-19")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.headers["content-range"], "bytes 10-19/1000");
    assert_eq!(&r.body[..], &all[10..20]);
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("range", "bytes=-5")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &all[995..]);
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("range", "bytes=990-")]).await;
    assert_eq!(r.headers["content-range"], "bytes 990-999/1000");
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("range", "bytes=1000-2000")]).await;
    r.assert_problem(416, "range_not_satisfiable");
    assert_eq!(r.headers["content-range"], "bytes */1000");
    // A stale If-Range means the whole, current file.
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("range", "bytes=0-1"), ("if-range", "\"stale\"")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
}

#[tokio::test]
async fn conditional_requests() {
    let t = tree();
    let p = proxy(&t).await;
    let first = get(&p.url("/media/hls/seg.ts")).await;
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    let lm = first.headers["last-modified"].to_str().unwrap().to_owned();
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.headers["etag"], etag.as_str());
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status, 200);
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("if-modified-since", &lm)]).await;
    assert_eq!(r.status, 304);
    let r = send(Method::GET, &p.url("/media/hls/seg.ts"), &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn traversal_never_leaves_the_root() {
    let t = tree();
    let p = proxy(&t).await;
    let secret = t.outside.join("secret.txt");
    assert!(secret.exists());
    let attempts = [
        "/media/../outside/secret.txt",
        "/media/%2e%2e/outside/secret.txt",
        "/media/%2E%2E/%2e%2e/outside/secret.txt",
        "/media/.%2e/outside/secret.txt",
        "/media/%252e%252e/outside/secret.txt",
        "/media/..%2foutside%2fsecret.txt",
        "/media/%2e%2e%2foutside%2fsecret.txt",
        "/media/..%5coutside%5csecret.txt",
        "/media/hls%00/seg.ts",
        "/media/escape.txt",
    ];
    for a in attempts {
        let r = raw(p.addr, format!("GET {a} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
        assert!(r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 404"), "{a}: {r}");
        assert!(!r.contains("top secret"), "{a} leaked the file");
    }
    // Backslashes as raw bytes in the target.
    let r =
        raw(p.addr, b"GET /media/..\\outside\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Duration::from_secs(5)).await;
    assert!(r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 404"), "{r}");
    // A symlink that stays inside the root is fine.
    assert_eq!(get(&p.url("/media/inside-link.ts")).await.body.len(), 1000);
}
