//! Rate limits (issue 5, point 2): local GCRA holds over a bounded burst, budgets by IP,
//! header and query are independent, the 429 carries Retry-After and the draft's
//! RateLimit fields, two proxies on one real `redis-server` share one budget, and a Redis
//! outage follows `on_backend_error` and recovers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::redis::RedisServer;
use crate::support::{eventually, get, send, Proxy, Resp, TestOrigin};

fn config(origin: &TestOrigin, limits: &str, routes: &[(&str, &str)]) -> String {
    let mut s = format!("[origins.o]\nurls = [\"{}\"]\n{limits}\n", origin.url());
    for (prefix, limit) in routes {
        let name = prefix.trim_matches('/');
        s.push_str(&format!("[routes.{name}]\nprefix = \"{prefix}\"\norigin = \"o\"\nstrip_prefix = true\nrate_limit = \"{limit}\"\n"));
    }
    s
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    send(Method::GET, url, headers).await
}

/// A GET from a chosen loopback source address; returns the status code.
async fn get_from(source: [u8; 4], addr: SocketAddr, path: &str) -> u16 {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((source, 0))).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn assert_429(r: &Resp, name: &str) {
    r.assert_problem(429, "rate_limited");
    let h = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let retry: u64 = h("retry-after").parse().unwrap_or(0);
    assert!(retry >= 1, "Retry-After: {:?}", h("retry-after"));
    assert!(h("ratelimit-policy").starts_with(&format!("\"{name}\";q=")), "{:?}", r.headers);
    assert_eq!(h("ratelimit"), format!("\"{name}\";r=0;t={retry}"));
}

async fn metrics(p: &Proxy) -> String {
    get(&format!("http://{}/metrics", p.admin)).await.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_limit_holds_over_a_bounded_burst() {
    let origin = TestOrigin::start("o").await;
    let (rate, burst) = (50.0, 10.0);
    let p = Proxy::start(&config(&origin, "[rate_limits.l]\nkey = \"ip\"\nrate = \"50/s\"\nburst = 10\n", &[("/v/", "l")])).await;
    let url = p.url("/v/bytes/10");
    let attempts = 300;
    let start = Instant::now();
    let mut allowed = 0.0;
    for _ in 0..attempts {
        let r = get(&url).await;
        match r.status.as_u16() {
            200 => allowed += 1.0,
            429 => {}
            s => panic!("unexpected status {s}: {}", r.text()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let bound = burst + rate * elapsed;
    // The budget is never exceeded (one request of slack for the clock granularity)...
    assert!(allowed <= bound + 1.0, "{allowed} allowed in {elapsed:.3}s, limit {bound:.1}");
    // ...and a client sending faster than the rate gets close to all of it (loose: a slow
    // machine sends fewer attempts).
    let expected = bound.min(f64::from(attempts));
    assert!(allowed >= 0.8 * expected, "{allowed} allowed in {elapsed:.3}s, expected about {expected:.1}");
    let text = metrics(&p).await;
    assert!(text.contains(&format!("streamgate_rate_limit_decisions_total{{limit=\"l\",result=\"allowed\"}} {allowed}")), "{text}");
    assert!(text.contains("streamgate_rate_limit_keys{limit=\"l\"} 1"), "{text}");
}

#[tokio::test]
async fn budgets_by_ip_header_and_query_are_independent() {
    let origin = TestOrigin::start("o").await;
    let limits = "[rate_limits.by_ip]\nkey = \"ip\"\nrate = \"1/m\"\nburst = 2\n\
                  [rate_limits.by_header]\nkey = \"header:x-viewer\"\nrate = \"1/m\"\nburst = 2\n\
                  [rate_limits.by_query]\nkey = \"query:session\"\nrate = \"1/m\"\nburst = 2\n";
    let p = Proxy::start(&config(&origin, limits, &[("/ip/", "by_ip"), ("/h/", "by_header"), ("/q/", "by_query")])).await;

    // By IP: each loopback source address has its own budget.
    for src in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        for _ in 0..2 {
            assert_eq!(get_from(src, p.addr, "/ip/bytes/1").await, 200);
        }
        assert_eq!(get_from(src, p.addr, "/ip/bytes/1").await, 429);
    }

    // By header; a request without the header falls back to its IP's budget.
    let h = p.url("/h/bytes/1");
    for _ in 0..2 {
        assert_eq!(get_with(&h, &[("x-viewer", "alice")]).await.status, 200);
    }
    assert_429(&get_with(&h, &[("x-viewer", "alice")]).await, "by_header");
    assert_eq!(get_with(&h, &[("x-viewer", "bob")]).await.status, 200);
    for _ in 0..2 {
        assert_eq!(get(&h).await.status, 200);
    }
    assert_429(&get(&h).await, "by_header");
    assert_eq!(get_with(&h, &[("x-viewer", "carol")]).await.status, 200, "the fallback budget is not shared with values");

    // By query parameter (percent-decoded: a%6Cice is alice).
    for _ in 0..2 {
        assert_eq!(get(&p.url("/q/bytes/1?session=alice")).await.status, 200);
    }
    let r = get(&p.url("/q/bytes/1?x=1&session=a%6Cice")).await;
    assert_429(&r, "by_query");
    assert_eq!(r.headers["ratelimit-policy"], "\"by_query\";q=2;w=120");
    assert_eq!(get(&p.url("/q/bytes/1?session=bob")).await.status, 200);
}

/// Two proxies, one block on one Redis: `burst` requests in all, whichever proxy gets them.
#[tokio::test]
async fn two_proxies_on_one_redis_share_one_budget() {
    let redis = RedisServer::start();
    let origin = TestOrigin::start("o").await;
    let limits = format!(
        "[rate_limits.shared]\nkey = \"header:x-viewer\"\nrate = \"1/m\"\nburst = 6\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    let cfg = config(&origin, &limits, &[("/v/", "shared")]);
    let a = Proxy::start(&cfg).await;
    let b = Proxy::start(&cfg).await;
    let mut allowed = 0;
    for i in 0..20 {
        let p = if i % 2 == 0 { &a } else { &b };
        let r = get_with(&p.url("/v/bytes/1"), &[("x-viewer", "alice")]).await;
        match r.status.as_u16() {
            200 => allowed += 1,
            429 => assert_429(&r, "shared"),
            s => panic!("unexpected status {s}: {}", r.text()),
        }
    }
    assert_eq!(allowed, 6, "the two proxies together allow the burst once");
    assert_eq!(get_with(&b.url("/v/bytes/1"), &[("x-viewer", "bob")]).await.status, 200, "another viewer has a budget");
    assert!(metrics(&a).await.contains("streamgate_rate_limit_decisions_total{limit=\"shared\",result=\"limited\"} "));
}

/// Concurrent decisions go to Redis in batches (several keys, repeated keys, in one
/// script call): every one is still counted once, in order.
#[tokio::test]
async fn concurrent_redis_decisions_are_batched_and_exact() {
    let redis = RedisServer::start();
    let origin = TestOrigin::start("o").await;
    let limits = format!(
        "[rate_limits.shared]\nkey = \"header:x-viewer\"\nrate = \"1/h\"\nburst = 25\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    let p = Proxy::start(&config(&origin, &limits, &[("/v/", "shared")])).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..300 {
        let url = p.url("/v/bytes/1");
        let viewer = ["alice", "bob", "carol"][i % 3];
        set.spawn(async move { (viewer, get_with(&url, &[("x-viewer", viewer)]).await.status.as_u16()) });
    }
    let mut allowed = std::collections::HashMap::new();
    while let Some(r) = set.join_next().await {
        let (viewer, status) = r.unwrap();
        assert!(status == 200 || status == 429, "{status}");
        *allowed.entry(viewer).or_insert(0) += usize::from(status == 200);
    }
    for viewer in ["alice", "bob", "carol"] {
        assert_eq!(allowed.get(viewer), Some(&25), "{viewer}: exactly the burst of 100 concurrent requests");
    }
}

#[tokio::test]
async fn a_redis_outage_follows_on_backend_error_and_recovers() {
    let mut redis = RedisServer::start();
    let origin = TestOrigin::start("o").await;
    let block = |name: &str, on_error: &str, burst: u32| {
        format!(
            "[rate_limits.{name}]\nkey = \"ip\"\nrate = \"1/m\"\nburst = {burst}\nbackend = \"redis\"\nredis_url = \"{}\"\non_backend_error = \"{on_error}\"\n",
            redis.url()
        )
    };
    let limits = format!("{}{}{}", block("open", "allow", 1000), block("closed", "deny", 1000), block("tight", "allow", 1));
    let p = Proxy::start(&config(&origin, &limits, &[("/open/", "open"), ("/closed/", "closed"), ("/tight/", "tight")])).await;
    assert_eq!(get(&p.url("/open/bytes/1")).await.status, 200);
    assert_eq!(get(&p.url("/closed/bytes/1")).await.status, 200);
    assert_eq!(get(&p.url("/tight/bytes/1")).await.status, 200);
    assert_eq!(get(&p.url("/tight/bytes/1")).await.status, 429);

    redis.stop();
    for _ in 0..5 {
        assert_eq!(get(&p.url("/open/bytes/1")).await.status, 200, "allow: requests pass while Redis is down");
        get(&p.url("/closed/bytes/1")).await.assert_problem(503, "backend_unavailable");
        assert_eq!(get(&p.url("/tight/bytes/1")).await.status, 200, "allow passes even an exhausted budget");
    }
    assert!(metrics(&p).await.contains("streamgate_rate_limit_decisions_total{limit=\"closed\",result=\"backend_error\"} "));

    // Back (empty: a restarted Redis lost its budgets and its scripts).
    redis.restart();
    let back = eventually(Duration::from_secs(10), || async { get(&p.url("/closed/bytes/1")).await.status == 200 }).await;
    assert!(back, "deny still refuses after Redis came back");
    // Each block notices on its own (its first call after the restart fails, and
    // `allow` passes it): limits apply again once it has.
    let limited = eventually(Duration::from_secs(10), || async { get(&p.url("/tight/bytes/1")).await.status == 429 }).await;
    assert!(limited, "the tight budget is not enforced after Redis came back");
}
