//! Viewer access control over real sockets: the request context (trusted proxies,
//! session ids, device classes, geoip), CORS (preflight and simple requests) and Rego
//! policies (allow/deny with the reason in the 403 body). The context is observed through
//! a policy whose `reason` spells out `input.client`.

use http::Method;

use crate::support::{mmdb, run_bin, send, write_config, Proxy, TestOrigin};

/// A policy that allows `x-allow: yes` and otherwise denies with the client context as
/// its reason.
const ECHO_POLICY: &str = r#"package streamgate

default allow := false

allow if input.headers["x-allow"] == "yes"

reason := concat(" ", [
    sprintf("ip=%s", [input.client.ip]),
    sprintf("country=%s", [object.get(input.client, "country", "-")]),
    sprintf("region=%s", [object.get(input.client, "region", "-")]),
    sprintf("device=%s", [object.get(input.client, "device", "-")]),
    sprintf("session=%s", [object.get(input.client, "session", "-")]),
])
"#;

fn policy_file(src: &str) -> String {
    write_config("policy.rego", src).to_string_lossy().into_owned()
}

async fn proxy(o: &TestOrigin, server: &str, extra: &str, route: &str) -> Proxy {
    Proxy::start(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{server}\n{extra}\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n{route}\n",
        o.url()
    ))
    .await
}

/// The context fields, as the echo policy reports them.
async fn context_of(p: &Proxy, path: &str, headers: &[(&str, &str)]) -> String {
    let r = send(Method::GET, &p.url(path), headers).await;
    let v = r.assert_problem(403, "forbidden");
    v["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn forwarding_headers_are_believed_only_from_trusted_peers() {
    let o = TestOrigin::start("o").await;
    let route = format!("policy = \"file:{}\"", policy_file(ECHO_POLICY));
    let trusted = proxy(&o, "trusted_proxies = [\"127.0.0.0/8\"]", "", &route).await;
    let untrusted = proxy(&o, "trusted_proxies = [\"10.0.0.0/8\"]", "", &route).await;

    let xff = [("x-forwarded-for", "198.51.100.1, 203.0.113.7, 127.0.0.5")];
    assert!(context_of(&trusted, "/a", &xff).await.starts_with("ip=203.0.113.7 "));
    assert!(context_of(&untrusted, "/a", &xff).await.starts_with("ip=127.0.0.1 "));

    // Forwarded wins over X-Forwarded-For; IPv6 in quotes and brackets.
    let both = [("forwarded", "for=\"[2001:db8::7]:4711\";proto=https, for=127.0.0.9"), ("x-forwarded-for", "203.0.113.7")];
    assert!(context_of(&trusted, "/a", &both).await.starts_with("ip=2001:db8::7 "));
    assert!(context_of(&untrusted, "/a", &both).await.starts_with("ip=127.0.0.1 "));

    // Malformed: ignored, the peer is the client.
    assert!(context_of(&trusted, "/a", &[("x-forwarded-for", "203.0.113.7, <script>")]).await.starts_with("ip=127.0.0.1 "));
    assert!(context_of(&trusted, "/a", &[("forwarded", "for=unknown")]).await.starts_with("ip=127.0.0.1 "));

    // Allowed requests reach the origin.
    let r = send(Method::GET, &trusted.url("/echo/a"), &[("x-allow", "yes")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn session_ids_from_header_query_or_cookie_in_order() {
    let o = TestOrigin::start("o").await;
    let route = format!("policy = \"file:{}\"", policy_file(ECHO_POLICY));
    let p = proxy(&o, "session_from = [\"header:x-session\", \"query:sid\", \"cookie:sg_s\"]", "", &route).await;
    let session = |d: String| d.split(' ').find_map(|f| f.strip_prefix("session=").map(str::to_owned)).unwrap_or_default();
    assert_eq!(session(context_of(&p, "/a?sid=q1", &[("x-session", "h1")]).await), "h1");
    assert_eq!(session(context_of(&p, "/a?x=1&sid=q1", &[("cookie", "sg_s=c1")]).await), "q1");
    assert_eq!(session(context_of(&p, "/a", &[("cookie", "other=1; sg_s=c1")]).await), "c1");
    assert_eq!(session(context_of(&p, "/a", &[]).await), "-");
}

#[tokio::test]
async fn device_classes_from_real_user_agents() {
    let o = TestOrigin::start("o").await;
    let route = format!("policy = \"file:{}\"", policy_file(ECHO_POLICY));
    let p = proxy(&o, "", "", &route).await;
    for (ua, want) in [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "desktop"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "tablet"),
        ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 94.0.4606.31/7.0 TV Safari/537.36", "tv"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("VLC/3.0.20 LibVLC/3.0.20", "other"),
    ] {
        let d = context_of(&p, "/a", &[("user-agent", ua)]).await;
        assert!(d.contains(&format!("device={want} ")), "{ua}: {d}");
    }
    assert!(context_of(&p, "/a", &[]).await.contains("device=- "), "no User-Agent, no device");
}

#[tokio::test]
async fn country_and_region_from_a_maxmind_database() {
    let db = mmdb::build(&[
        mmdb::Network { addr: "203.0.113.0".parse().unwrap(), prefix: 24, country: "FR", subdivision: Some("IDF") },
        mmdb::Network { addr: "198.51.100.0".parse().unwrap(), prefix: 25, country: "US", subdivision: Some("CA") },
        mmdb::Network { addr: "192.0.2.0".parse().unwrap(), prefix: 24, country: "DE", subdivision: None },
    ]);
    let path = write_config("test.mmdb", "");
    std::fs::write(&path, db).unwrap();
    let o = TestOrigin::start("o").await;
    let route = format!("policy = \"file:{}\"", policy_file(ECHO_POLICY));
    let p = proxy(&o, "trusted_proxies = [\"127.0.0.1\"]", &format!("[geoip]\ndatabase = \"{}\"", path.display()), &route).await;
    let geo = |ip: &'static str| {
        let p = &p;
        async move {
            let d = context_of(p, "/a", &[("x-forwarded-for", ip)]).await;
            d.split(' ').filter(|f| f.starts_with("country=") || f.starts_with("region=")).collect::<Vec<_>>().join(" ")
        }
    };
    assert_eq!(geo("203.0.113.77").await, "country=FR region=FR-IDF");
    assert_eq!(geo("198.51.100.5").await, "country=US region=US-CA");
    assert_eq!(geo("198.51.100.200").await, "country=- region=-", "outside the /25");
    assert_eq!(geo("192.0.2.1").await, "country=DE region=-");
    assert_eq!(geo("2001:db8::1").await, "country=- region=-", "IPv6 in an IPv4 database");
}

#[tokio::test]
async fn geoip_database_must_open_at_check() {
    let bad = write_config("not.mmdb", "not a database");
    let cfg = write_config(
        "geo.toml",
        &format!(
            "[geoip]\ndatabase = \"{}\"\n[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
            bad.display()
        ),
    );
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("geoip.database") && err.contains("MaxMind"), "{err}");
}

#[tokio::test]
async fn policies_allow_and_deny_by_path_country_and_device_with_the_reason() {
    let db = mmdb::build(&[mmdb::Network { addr: "203.0.113.0".parse().unwrap(), prefix: 24, country: "KP", subdivision: None }]);
    let path = write_config("geo.mmdb", "");
    std::fs::write(&path, db).unwrap();
    let policy = r#"package streamgate

default allow := false

blocked_countries := {"KP", "IR"}

allow if {
    not blocked_countries[input.client.country]
    not input.client.device == "bot"
    startswith(input.path, "/echo/")
}

reason := sprintf("not available in %s", [input.client.country]) if blocked_countries[input.client.country]
else := "bots may not watch" if input.client.device == "bot"
else := sprintf("no such path %s", [input.path])
"#;
    let o = TestOrigin::start("o").await;
    let p = proxy(
        &o,
        "trusted_proxies = [\"127.0.0.1\"]",
        &format!("[geoip]\ndatabase = \"{}\"", path.display()),
        &format!("policy = \"file:{}\"", policy_file(policy)),
    )
    .await;
    let ok = send(Method::GET, &p.url("/echo/v"), &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let geo = send(Method::GET, &p.url("/echo/v"), &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(geo.assert_problem(403, "forbidden")["detail"], "not available in KP");
    let bot = send(Method::GET, &p.url("/echo/v"), &[("user-agent", "curl/8.5.0")]).await;
    assert_eq!(bot.assert_problem(403, "forbidden")["detail"], "bots may not watch");
    let path = send(Method::GET, &p.url("/other"), &[]).await;
    assert_eq!(path.assert_problem(403, "forbidden")["detail"], "no such path /other");
    assert_eq!(o.hits.load(std::sync::atomic::Ordering::SeqCst), 1, "denied requests never reach the origin");
}

#[tokio::test]
async fn a_policy_without_reason_says_denied_by_policy() {
    let o = TestOrigin::start("o").await;
    let policy = "package streamgate\n\nallow if input.method == \"HEAD\"\n";
    let p = proxy(&o, "", "", &format!("policy = \"file:{}\"", policy_file(policy))).await;
    let r = send(Method::GET, &p.url("/echo/x"), &[]).await;
    assert_eq!(r.assert_problem(403, "forbidden")["detail"], "denied by policy");
}

#[test]
fn check_reports_rego_errors_with_file_and_line() {
    let policy = write_config("vod.rego", "package streamgate\n\ndefault allow := false\n\nallow if {\n    input.path ==\n}\n");
    let cfg = write_config(
        "p.toml",
        &format!(
            "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.vod]\nprefix = \"/\"\norigin = \"o\"\npolicy = \"file:{}\"\n",
            policy.display()
        ),
    );
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    let want = format!("{}:7: ", policy.display());
    let line = err.lines().find(|l| l.contains("routes.vod.policy")).unwrap_or_default();
    assert!(line.contains(&want), "want {want} in:\n{err}");

    // A relative path is resolved against the config file's directory.
    let dir = cfg.parent().unwrap();
    std::fs::write(dir.join("ok.rego"), "package streamgate\n\ndefault allow := false\n").unwrap();
    let rel = dir.join("rel.toml");
    std::fs::write(
        &rel,
        "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.vod]\nprefix = \"/\"\norigin = \"o\"\npolicy = \"file:ok.rego\"\n",
    )
    .unwrap();
    let (code, _, err) = run_bin(&["check", "-c", rel.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
}

const CORS_ROUTE: &str =
    "cors = { origins = [\"https://player.example.com\"], expose_headers = [\"x-custom\"], max_age = \"5m\", credentials = true }";

#[tokio::test]
async fn cors_preflight_is_answered_at_the_edge() {
    let o = TestOrigin::start("o").await;
    let p = proxy(&o, "", "", CORS_ROUTE).await;
    let pre = |origin: &'static str| {
        let url = p.url("/vod/a.m3u8");
        async move {
            send(
                Method::OPTIONS,
                &url,
                &[("origin", origin), ("access-control-request-method", "GET"), ("access-control-request-headers", "range")],
            )
            .await
        }
    };
    let r = pre("https://player.example.com").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["access-control-allow-origin"], "https://player.example.com");
    assert_eq!(r.headers["access-control-allow-methods"], "GET, HEAD, OPTIONS");
    assert_eq!(r.headers["access-control-allow-headers"], "range");
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    assert_eq!(r.headers["access-control-max-age"], "300");
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));

    let r = pre("https://evil.example.net").await;
    assert_eq!(r.status, 204);
    assert!(r.headers.get("access-control-allow-origin").is_none());
    assert!(r.headers.get("access-control-allow-methods").is_none());
    assert_eq!(o.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "preflights never reach the origin");

    // OPTIONS without a CORS request method is not a preflight: forwarded.
    let r = send(Method::OPTIONS, &p.url("/echo/x"), &[("origin", "https://player.example.com")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(o.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cors_headers_on_success_and_on_errors() {
    let o = TestOrigin::start("o").await;
    let policy = "package streamgate\n\ndefault allow := false\nallow if not startswith(input.path, \"/denied\")\n";
    let p = proxy(&o, "", "", &format!("{CORS_ROUTE}\npolicy = \"file:{}\"", policy_file(policy))).await;
    let origin = [("origin", "https://player.example.com")];
    for (path, status) in [("/echo/x", 200), ("/status/404", 404), ("/denied/x", 403)] {
        let r = send(Method::GET, &p.url(path), &origin).await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.headers["access-control-allow-origin"], "https://player.example.com", "{path}");
        assert_eq!(r.headers["access-control-allow-credentials"], "true", "{path}");
        let expose = r.headers["access-control-expose-headers"].to_str().unwrap();
        for name in ["content-length", "content-range", "x-request-id", "retry-after", "ratelimit", "www-authenticate", "x-custom"] {
            assert!(expose.split(", ").any(|e| e == name), "{path}: {name} in {expose}");
        }
        assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"), "{path}");
    }
    let r = send(Method::GET, &p.url("/echo/x"), &[("origin", "https://evil.example.net")]).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_star_allows_every_origin_without_vary() {
    let o = TestOrigin::start("o").await;
    let p = proxy(&o, "", "", "cors = { origins = [\"*\"] }").await;
    let r = send(Method::GET, &p.url("/echo/x"), &[("origin", "https://anyone.example")]).await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert!(r.headers.get("access-control-allow-credentials").is_none());
    assert!(r.headers.get("vary").is_none_or(|v| !v.to_str().unwrap().contains("Origin")));
    let r = send(Method::OPTIONS, &p.url("/x"), &[("origin", "https://anyone.example"), ("access-control-request-method", "HEAD")]).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}

#[test]
fn cors_config_is_checked() {
    let cfg = write_config(
        "cors.toml",
        "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n\
         [routes.a]\nprefix = \"/a/\"\norigin = \"o\"\ncors = { origins = [\"*\"], credentials = true }\n\
         [routes.b]\nprefix = \"/b/\"\norigin = \"o\"\ncors = { origins = [\"*\", \"https://x.example\"] }\n\
         [routes.c]\nprefix = \"/c/\"\norigin = \"o\"\ncors = { origins = [\"https://x.example/path\"] }\n",
    );
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    for want in ["routes.a.cors.credentials", "routes.b.cors.origins", "routes.c.cors.origins"] {
        assert!(err.contains(want), "{want} in:\n{err}");
    }
}

#[test]
fn trusted_proxies_and_session_sources_are_checked() {
    let cfg = write_config(
        "ctx.toml",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.1.0.0/8\", \"nope\"]\nsession_from = [\"form:x\"]\n\
         [origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
    );
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    for want in ["host bits set", "not an IP address", "server.session_from"] {
        assert!(err.contains(want), "{want} in:\n{err}");
    }
}
