//! The admin listener: health, readiness, metrics, effective config, reload.

use http::Method;

use crate::support::{get, send, write_config, Proxy, Spawned, TestOrigin};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!("[origins.o]\nurls = [\"{}\"]\n[routes.vod]\nprefix = \"/vod/\"\norigin = \"o\"\n", o.url())).await;
    let admin = |path: &str| format!("http://{}{path}", p.admin);
    assert_eq!(get(&admin("/healthz")).await.status, 200);
    let r = get(&admin("/readyz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
    for _ in 0..3 {
        get(&p.url("/vod/x")).await;
    }
    get(&p.url("/nowhere")).await;
    let m = get(&admin("/metrics")).await;
    assert_eq!(m.status, 200);
    let text = m.text();
    for want in [
        "streamgate_requests_total{route=\"vod\",class=\"2xx\"} 3",
        "streamgate_requests_total{route=\"\",class=\"4xx\"} 1",
        "streamgate_request_duration_seconds_count{route=\"vod\"} 3",
        "streamgate_upstream_requests_total{origin=\"o\"} 3",
        "streamgate_response_bytes_total{route=\"vod\"} 24",
        "streamgate_open_connections ",
        "streamgate_connections_total ",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    get(&admin("/nope")).await.assert_problem(404, "route_not_found");
    let r = get(&admin("/reload")).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "POST");
}

#[tokio::test]
async fn config_is_shown_with_secrets_redacted() {
    let o = TestOrigin::start("o").await;
    let p = Proxy::start(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"literal-admin-secret\"\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let r = get(&format!("http://{}/config", p.admin)).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("literal-admin-secret"), "{}", r.text());
    let v = r.json();
    assert_eq!(v["admin"]["token"], "[redacted]");
    assert_eq!(v["routes"]["r"]["prefix"], "/");
    assert_eq!(v["origins"]["o"]["urls"][0], o.url());
}

#[tokio::test]
async fn reload_needs_the_token_and_keeps_old_config_on_error() {
    let a = TestOrigin::start("a").await;
    let b = TestOrigin::start("b").await;
    let body = |origin: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"env:SG_IT_ADMIN_TOKEN\"\n[log]\naccess = false\n[origins.o]\nurls = [\"{origin}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n"
        )
    };
    let cfg = write_config("reload.toml", &body(&a.url()));
    let sg = Spawned::start(&["serve", "-c", cfg.to_str().unwrap()], &[("SG_IT_ADMIN_TOKEN", "s3cret")]);
    let admin = sg.admin.unwrap();
    let url = format!("http://{}/x", sg.addr);
    assert_eq!(get(&url).await.text(), "origin a");

    std::fs::write(&cfg, body(&b.url())).unwrap();
    let r = send(Method::POST, &format!("http://{admin}/reload"), &[]).await;
    r.assert_problem(401, "unauthorized");
    let r = send(Method::POST, &format!("http://{admin}/reload"), &[("authorization", "Bearer wrong")]).await;
    assert_eq!(r.status, 401);
    let r = send(Method::POST, &format!("http://{admin}/reload"), &[("authorization", "bearer s3cret")]).await;
    assert_eq!(r.status, 200, "the auth scheme is case-insensitive: {}", r.text());
    assert_eq!(get(&url).await.text(), "origin b");

    // A broken file is refused; the running config stays.
    std::fs::write(&cfg, "[routes.r]\nprefix = \"/\"\norigin = \"gone\"\n").unwrap();
    let r = send(Method::POST, &format!("http://{admin}/reload"), &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("no origin named"), "{}", r.text());
    assert_eq!(get(&url).await.text(), "origin b");

    // SIGHUP reloads too.
    std::fs::write(&cfg, body(&a.url())).unwrap();
    sg.signal("HUP");
    assert!(crate::support::eventually(std::time::Duration::from_secs(5), || async { get(&url).await.text() == "origin a" }).await);
    let m = get(&format!("http://{admin}/metrics")).await.text();
    assert!(m.contains("streamgate_config_reloads_total{result=\"ok\"} 2"), "{m}");
    assert!(m.contains("streamgate_config_reloads_total{result=\"error\"} 1"), "{m}");
}
