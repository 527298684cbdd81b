//! Origin health and failover (issue 4, points 6 and 7): active checks, passive
//! ejection, retries on 502/503 and resets within `retries` and `retry_deadline`, what
//! is never retried, and `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{eventually, get, raw_origin, send, try_send, Proxy, Resp, TestOrigin};

const LIMIT: Duration = Duration::from_secs(10);

fn config(urls: &[String], origin_extra: &str) -> String {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    // The manifest cache is off: these tests watch every request reach the origins.
    format!(
        "[origins.o]\nurls = [{}]\n{origin_extra}\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n[routes.r.manifest]\ncache = false\n",
        list.join(", ")
    )
}

async fn readyz(p: &Proxy) -> Resp {
    get(&format!("http://{}/readyz", p.admin)).await
}

async fn metrics(p: &Proxy) -> String {
    get(&format!("http://{}/metrics", p.admin)).await.text()
}

/// The state `/readyz` shows for url `i` of origin `o`.
async fn url_state(p: &Proxy, i: usize) -> String {
    readyz(p).await.json()["origins"]["o"]["urls"][i]["state"].as_str().unwrap_or("").to_owned()
}

/// A bounded loop of manifest requests on one kept-alive client; counts what failed.
fn load_loop(url: String, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>, failed: Arc<AtomicUsize>) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut problems = Vec::new();
        for _ in 0..20_000 {
            if stop.load(SeqCst) {
                break;
            }
            let outcome = match client.get(url.parse().unwrap()).await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.into_body().collect().await.map(|b| b.to_bytes()) {
                        Ok(b) if status == 200 && b.starts_with(b"#EXTM3U") => None,
                        Ok(_) => Some(format!("status {status}")),
                        Err(e) => Some(format!("body: {e}")),
                    }
                }
                Err(e) => Some(format!("request: {e:?}")),
            };
            if let Some(p) = outcome {
                failed.fetch_add(1, SeqCst);
                problems.push(p);
            }
            done.fetch_add(1, SeqCst);
        }
        problems
    })
}

#[tokio::test]
async fn killing_one_origin_under_load_fails_no_manifest_request_and_it_returns_after_healthy_after_checks() {
    let mut a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    let p = Proxy::start(&config(
        &[a.url(), b.url()],
        "retries = 1\neject_after = 0\nhealth = { path = \"/health\", interval = \"100ms\", timeout = \"500ms\", unhealthy_after = 2, healthy_after = 3 }",
    ))
    .await;
    let (stop, done, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loops: Vec<_> = (0..2).map(|_| load_loop(p.url("/live/index.m3u8"), stop.clone(), done.clone(), failed.clone())).collect();
    let progressed = |n: usize| {
        let done = done.clone();
        async move { eventually(LIMIT, || async { done.load(SeqCst) >= n }).await }
    };

    assert!(progressed(50).await, "no load");
    assert!(a.hits() > 0 && b.hits() > 0, "both urls serve: a {} b {}", a.hits(), b.hits());
    a.stop().await;
    let a_hits_at_stop = a.hits();
    assert!(eventually(LIMIT, || async { url_state(&p, 0).await == "unhealthy" }).await, "a never marked unhealthy");
    assert!(progressed(done.load(SeqCst) + 50).await, "no load while a is down");

    a.restart().await;
    assert!(eventually(LIMIT, || async { a.hits() > a_hits_at_stop }).await, "a never came back");
    stop.store(true, SeqCst);
    let mut problems = Vec::new();
    for l in loops {
        problems.extend(l.await.unwrap());
    }
    assert_eq!(failed.load(SeqCst), 0, "failed client requests: {problems:?}");
    let checks_before_traffic = a.control.health_hits_at_first_hit.load(SeqCst);
    assert!(checks_before_traffic >= 3, "a got traffic after {checks_before_traffic} passing checks, before healthy_after = 3");
    assert_eq!(url_state(&p, 0).await, "healthy");
    let m = metrics(&p).await;
    assert!(m.contains(&format!("streamgate_upstream_up{{origin=\"o\",url=\"{}\"}} 1", a.url())), "{m}");
    assert!(m.contains(&format!("streamgate_job_runs_total{{job=\"health_check:o:{}\"}}", a.url())), "{m}");
}

#[tokio::test]
async fn status_502_and_503_fail_over_to_the_other_url() {
    for code in [502u16, 503] {
        let a = TestOrigin::start("a").await;
        let b = TestOrigin::start("b").await;
        a.fail_with(code);
        let p = Proxy::start(&config(&[a.url(), b.url()], "retries = 1\neject_after = 0")).await;
        for _ in 0..6 {
            let r = get(&p.url("/x")).await;
            assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "origin b"));
        }
        assert_eq!(a.hits(), 3, "round robin tried a first every other time");
        let m = metrics(&p).await;
        assert!(m.contains("streamgate_upstream_retries_total{origin=\"o\",reason=\"status\"} 3"), "{m}");

        // Both failing: the last attempt's answer goes to the client as the origin sent it.
        b.fail_with(code);
        let r = get(&p.url("/x")).await;
        assert_eq!(r.status.as_u16(), code);
        assert!(r.text().starts_with("status from "), "{}", r.text());
        assert!(r.headers.contains_key("x-origin"));
        assert_ne!(r.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/problem+json"[..]));
    }
}

#[tokio::test]
async fn a_reset_before_the_response_head_is_retried() {
    let closer = raw_origin(b"").await;
    let b = TestOrigin::start("b").await;
    let p = Proxy::start(&config(&[format!("http://{closer}"), b.url()], "retries = 1\neject_after = 0")).await;
    for _ in 0..4 {
        let r = get(&p.url("/x")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "origin b"));
    }
    let m = metrics(&p).await;
    assert!(m.contains("streamgate_upstream_retries_total{origin=\"o\",reason=\"reset\"} 2"), "{m}");
}

#[tokio::test]
async fn the_retry_deadline_bounds_all_attempts_together() {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    // Each attempt takes 400 ms and fails with 503; ten retries would take 4.4 s.
    let p = Proxy::start(&config(&[a.url(), b.url()], "retries = 10\nretry_deadline = \"1s\"\neject_after = 0")).await;
    let start = Instant::now();
    let r = get(&p.url("/slowstatus/400/503")).await;
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "deadline ignored: {took:?}");
    assert!(took >= Duration::from_millis(750), "gave up early: {took:?}");
    let attempts = a.hits() + b.hits();
    assert!((2..=3).contains(&attempts), "{attempts} attempts");
    // The third attempt was cut off by the deadline.
    if attempts == 3 {
        let v = r.assert_problem(504, "upstream_timeout");
        assert!(v["detail"].as_str().unwrap().contains("retry deadline"), "{v}");
    } else {
        assert_eq!(r.status, 503);
    }
}

#[tokio::test]
async fn consecutive_failures_eject_a_url_until_the_cool_down_ends() {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    a.fail_with(503);
    let p = Proxy::start(&config(&[a.url(), b.url()], "retries = 1\neject_after = 2\neject_for = \"2s\"")).await;
    // Two failed requests on a eject it; every client request is still answered by b.
    for _ in 0..4 {
        assert_eq!(get(&p.url("/x")).await.text(), "origin b");
    }
    assert_eq!(a.hits(), 2);
    assert_eq!(url_state(&p, 0).await, "ejected");
    let r = readyz(&p).await;
    assert_eq!(r.status, 200, "b is healthy: {}", r.text());
    assert_eq!(r.json()["origins"]["o"]["urls"][0]["ejections"], 1);
    // While it is out, a gets nothing.
    for _ in 0..10 {
        assert_eq!(get(&p.url("/x")).await.text(), "origin b");
    }
    assert_eq!(a.hits(), 2, "an ejected url got requests");
    let m = metrics(&p).await;
    assert!(m.contains(&format!("streamgate_upstream_up{{origin=\"o\",url=\"{}\"}} 0", a.url())), "{m}");
    assert!(m.contains(&format!("streamgate_upstream_ejections_total{{origin=\"o\",url=\"{}\"}} 1", a.url())), "{m}");

    // a recovers; after the cool-down it is back (on probation) and its first success
    // makes it healthy.
    a.fail_with(0);
    assert!(eventually(LIMIT, || async { get(&p.url("/x")).await.text() == "origin a" }).await, "a never returned after eject_for");
    assert_eq!(url_state(&p, 0).await, "healthy");
}

#[tokio::test]
async fn when_every_url_is_unhealthy_they_are_tried_anyway_and_readyz_says_why() {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    a.set_healthy(false);
    b.set_healthy(false);
    let p = Proxy::start(&config(
        &[a.url(), b.url()],
        "health = { path = \"/health\", interval = \"100ms\", timeout = \"500ms\", unhealthy_after = 1, healthy_after = 2 }",
    ))
    .await;
    assert!(eventually(LIMIT, || async { readyz(&p).await.status == 503 }).await, "readyz stayed 200");
    let v = readyz(&p).await.json();
    assert_eq!(v["ready"], false);
    assert_eq!(v["routes"]["r"]["ready"], false);
    assert_eq!(v["origins"]["o"]["urls"][0]["state"], "unhealthy");
    assert_eq!(v["origins"]["o"]["urls"][1]["checks"], "failing");
    let job = &v["jobs"][format!("health_check:o:{}", a.url())];
    assert!(job["failures"].as_u64().unwrap() >= 1, "{v}");
    assert!(job["last_error"].as_str().unwrap().contains("503"), "{v}");

    // No healthy url: the proxy does not fail closed.
    for _ in 0..4 {
        assert_eq!(get(&p.url("/x")).await.status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (2, 2));

    // One url recovers: ready again.
    b.set_healthy(true);
    assert!(eventually(LIMIT, || async { readyz(&p).await.status == 200 }).await, "readyz stayed 503");
    let v = readyz(&p).await.json();
    assert_eq!(v["ready"], true);
    assert_eq!(v["origins"]["o"]["urls"][1]["state"], "healthy");
    assert_eq!(v["origins"]["o"]["urls"][0]["state"], "unhealthy");
    for _ in 0..4 {
        assert_eq!(get(&p.url("/x")).await.text(), "origin b", "the unhealthy url left the balancer");
    }
}

#[tokio::test]
async fn non_idempotent_requests_are_never_retried() {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    a.fail_with(503);
    let p = Proxy::start(&config(&[a.url(), b.url()], "retries = 3\neject_after = 0")).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = try_send(Method::POST, &p.url("/echo/x"), &[], Bytes::from_static(b"payload")).await.unwrap();
        statuses.push(r.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 503, 503]);
    assert_eq!((a.hits(), b.hits()), (2, 2), "a POST was sent twice");
    // A GET on the same pool is retried.
    assert_eq!(send(Method::GET, &p.url("/x"), &[]).await.status, 200);
}

#[tokio::test]
async fn a_segment_body_that_fails_midway_is_not_retried() {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    let p = Proxy::start(&config(&[a.url(), b.url()], "retries = 3")).await;
    let r = try_send(Method::GET, &p.url("/reset/100000"), &[], Bytes::new()).await;
    assert!(r.is_err(), "a truncated body must reach the client as a failure");
    assert_eq!(a.hits() + b.hits(), 1, "the segment was fetched again");
}

#[tokio::test]
async fn reloads_replace_the_checkers_instead_of_adding_to_them() {
    let a = TestOrigin::start("a").await;
    let p = Proxy::start(&config(
        &[a.url()],
        "health = { path = \"/health\", interval = \"50ms\", timeout = \"500ms\", unhealthy_after = 1, healthy_after = 1 }",
    ))
    .await;
    let app = p.running.as_ref().unwrap().app.clone();
    for _ in 0..3 {
        app.reload().unwrap();
    }
    let one_checker = || async {
        let v = readyz(&p).await.json();
        let jobs = v["jobs"].as_object().unwrap().clone();
        jobs.len() == 1 && jobs.values().all(|j| j["running"] == 1)
    };
    assert!(eventually(LIMIT, one_checker).await, "old checkers kept running: {}", readyz(&p).await.text());
    let before = a.health_hits();
    assert!(eventually(LIMIT, || async { a.health_hits() >= before + 3 }).await, "the new checker does not run");
}
