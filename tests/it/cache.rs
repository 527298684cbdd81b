//! Manifest cache (issue 4): single flight, freshness, stale serving, purge, bounds.
//! The origin counts hits per path; expiry is awaited by polling, never by a fixed sleep.

use std::time::{Duration, Instant};

use http::Method;

use crate::support::manifest_origin::{ManifestOrigin, Reply};
use crate::support::{eventually, get, send, Proxy, Resp};

const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n\
#EXTINF:2.0,\nseg100.ts\n#EXTINF:2.0,\nseg101.ts\n";

fn live(seq: u32) -> String {
    LIVE.replace("100", &seq.to_string()).replace("101", &(seq + 1).to_string())
}

fn vod() -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    for i in 0..20 {
        s.push_str(&format!("#EXTINF:6.0,\nseg{i}.ts\n"));
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s
}

async fn proxy(o: &ManifestOrigin, manifest: &str) -> Proxy {
    Proxy::start(&format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n\
         [origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n[routes.r.manifest]\n{manifest}\n",
        o.url()
    ))
    .await
}

fn x_cache(r: &Resp) -> &str {
    r.headers.get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn max_age(r: &Resp) -> u64 {
    let cc = r.headers.get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("");
    cc.split(',').find_map(|d| d.trim().strip_prefix("max-age=")).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
}

#[tokio::test]
async fn five_hundred_viewers_of_a_cold_live_playlist_cost_one_origin_request() {
    let o = ManifestOrigin::start().await;
    o.set("/live/index.m3u8", Reply::hls(&live(100)).delay(300));
    let p = proxy(&o, "").await;
    let url = p.url("/live/index.m3u8");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let url = url.clone();
        set.spawn(async move { get(&url).await });
    }
    let mut bodies = std::collections::HashSet::new();
    let mut statuses = std::collections::HashMap::new();
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        bodies.insert(r.body.clone());
        *statuses.entry(x_cache(&r).to_owned()).or_insert(0) += 1;
    }
    assert_eq!(o.hits("/live/index.m3u8"), 1, "one origin request for 500 concurrent viewers");
    assert_eq!(bodies.len(), 1, "every viewer got the same body");
    assert_eq!(statuses.get("miss"), Some(&1), "{statuses:?}");
    assert_eq!(statuses.values().sum::<usize>(), 500);
    let m = get(&format!("http://{}/metrics", p.admin)).await.text();
    assert!(m.contains("streamgate_manifest_cache_fetches_total 1\n"), "{m}");
    assert!(m.contains("streamgate_manifest_cache_misses_total 500\n") || m.contains("streamgate_manifest_cache_hits_total"), "{m}");
}

/// The shared rendering of a cached manifest has its own strong entity tag, which changes
/// with the content; a client (a CDN revalidating) that has the current one gets a 304
/// without a body. Per-viewer renderings (here: propagated session ids) carry no tag.
#[tokio::test]
async fn cached_renderings_have_entity_tags_and_answer_if_none_match() {
    let o = ManifestOrigin::start().await;
    o.set("/live/e.m3u8", Reply::hls(&live(1)).header("etag", "\"origin-1\""));
    let p = proxy(&o, "propagate_query = [\"sid\"]").await;
    let url = p.url("/live/e.m3u8");
    let first = get(&url).await;
    let tag = first.headers.get("etag").expect("an entity tag").to_str().unwrap().to_owned();
    assert!(tag.starts_with("\"sg-") && tag != "\"origin-1\"", "{tag}");
    assert_eq!(get(&url).await.headers["etag"], tag.as_str(), "same bytes, same tag");

    let r = send(Method::GET, &url, &[("if-none-match", &format!("\"other\", W/{tag}"))]).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (304, 0), "weak comparison matches");
    assert_eq!(r.headers["etag"], tag.as_str());
    assert!(r.headers.contains_key("cache-control") && !r.headers.contains_key("content-length"));
    let r = send(Method::GET, &url, &[("if-none-match", "\"stale\"")]).await;
    assert_eq!((r.status.as_u16(), r.body, r.headers["etag"].to_str().unwrap()), (200, first.body.clone(), tag.as_str()));

    // New content, new tag; the old one no longer matches.
    o.set("/live/e.m3u8", Reply::hls(&live(2)).header("etag", "\"origin-2\""));
    let url2 = url.clone();
    let t = tag.clone();
    assert!(eventually(Duration::from_secs(10), || async { get(&url2).await.headers["etag"] != t.as_str() }).await, "tag never changed");
    let r = send(Method::GET, &url, &[("if-none-match", &tag)]).await;
    assert_eq!(r.status.as_u16(), 200);

    let viewer = get(&format!("{url}?sid=abc")).await;
    assert_eq!(viewer.status.as_u16(), 200);
    assert!(!viewer.headers.contains_key("etag"), "per-viewer renderings carry no tag");
}

/// HEAD (CDN probes, players checking a playlist) is answered from the cache with the
/// head the GET gets, including the rewritten length, and no body.
#[tokio::test]
async fn head_requests_are_answered_from_the_cache() {
    let o = ManifestOrigin::start().await;
    o.set("/vod/index.m3u8", Reply::hls(&vod()).header("cache-control", "public, max-age=3600"));
    let p = proxy(&o, "vod_ttl = \"10m\"").await;
    let head = send(Method::HEAD, &p.url("/vod/index.m3u8"), &[]).await;
    assert_eq!((head.status.as_u16(), x_cache(&head), head.body.len()), (200, "miss", 0));
    let got = get(&p.url("/vod/index.m3u8")).await;
    assert_eq!(x_cache(&got), "hit", "the HEAD's fetch filled the cache");
    assert_eq!(head.headers["content-length"], got.body.len().to_string().as_str(), "HEAD announces the rewritten length");
    let again = send(Method::HEAD, &p.url("/vod/index.m3u8"), &[]).await;
    assert_eq!((again.status.as_u16(), x_cache(&again), again.body.len()), (200, "hit", 0));
    assert_eq!(again.headers["content-length"], head.headers["content-length"]);
    assert_eq!(o.hits("/vod/index.m3u8"), 1);
}

#[tokio::test]
async fn a_vod_playlist_requested_a_hundred_times_is_fetched_once() {
    let o = ManifestOrigin::start().await;
    o.set("/vod/index.m3u8", Reply::hls(&vod()).header("cache-control", "public, max-age=3600").header("etag", "\"v1\""));
    let p = proxy(&o, "vod_ttl = \"10m\"").await;
    let first = get(&p.url("/vod/index.m3u8")).await;
    assert_eq!(x_cache(&first), "miss");
    for _ in 0..99 {
        let r = get(&p.url("/vod/index.m3u8")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, first.body);
        assert_eq!(x_cache(&r), "hit");
        assert!(max_age(&r) <= 600, "never more than vod_ttl: {:?}", r.headers.get("cache-control"));
        assert!(r.headers.get("cache-control").unwrap().to_str().unwrap().starts_with("public, "), "origin directives kept");
        assert!(r.headers.contains_key("age"));
        assert_ne!(r.headers.get("etag").map(|v| v.as_bytes()), Some(&b"\"v1\""[..]), "the rewritten body is not the origin's");
    }
    assert_eq!(o.hits("/vod/index.m3u8"), 1);
}

#[tokio::test]
async fn live_freshness_is_half_the_target_duration() {
    let o = ManifestOrigin::start().await;
    o.set("/live/a.m3u8", Reply::hls(&live(10)));
    // Target duration 2 s: fresh for 1 s; no stale window, so expiry means a new fetch.
    let p = proxy(&o, "stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"").await;
    let start = Instant::now();
    let r = get(&p.url("/live/a.m3u8")).await;
    assert_eq!(x_cache(&r), "miss");
    assert!(max_age(&r) <= 1, "{:?}", r.headers.get("cache-control"));
    assert_eq!(x_cache(&get(&p.url("/live/a.m3u8")).await), "hit");
    o.set("/live/a.m3u8", Reply::hls(&live(20)));
    assert!(eventually(Duration::from_secs(5), || async { get(&p.url("/live/a.m3u8")).await.text().contains("seg20.ts") }).await);
    let at = start.elapsed();
    assert!(at >= Duration::from_millis(950), "served fresh for half the target duration, refreshed after {at:?}");
    assert!(at < Duration::from_millis(2500), "refreshed after {at:?}");
    assert_eq!(o.hits("/live/a.m3u8"), 2);
}

#[tokio::test]
async fn origin_cache_control_bounds_freshness_and_no_store_is_not_stored() {
    let o = ManifestOrigin::start().await;
    o.set("/nostore.m3u8", Reply::hls(&vod()).header("cache-control", "no-store"));
    o.set("/short.m3u8", Reply::hls(&vod()).header("cache-control", "max-age=1"));
    let p = proxy(&o, "stale_while_revalidate = \"0s\"").await;
    for _ in 0..3 {
        assert_eq!(get(&p.url("/nostore.m3u8")).await.status, 200);
    }
    assert_eq!(o.hits("/nostore.m3u8"), 3, "no-store: every request goes to the origin");
    let r = get(&p.url("/short.m3u8")).await;
    assert!(max_age(&r) <= 1);
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || async { get(&p.url("/short.m3u8")).await.status == 200 && o.hits("/short.m3u8") == 2 }).await
    );
    assert!(start.elapsed() < Duration::from_secs(4), "max-age=1 capped the 10 minute vod_ttl");
}

#[tokio::test]
async fn stale_while_revalidate_serves_the_old_copy_and_refreshes_once() {
    let o = ManifestOrigin::start().await;
    o.set("/live/b.m3u8", Reply::hls(&live(10)));
    let p = proxy(&o, "stale_while_revalidate = \"30s\"").await;
    assert_eq!(get(&p.url("/live/b.m3u8")).await.status, 200);
    // The next version is slow to come: stale copies are served meanwhile, one refresh runs.
    o.set("/live/b.m3u8", Reply::hls(&live(20)).delay(500));
    assert!(eventually(Duration::from_secs(5), || async { x_cache(&get(&p.url("/live/b.m3u8")).await) == "stale" }).await);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let url = p.url("/live/b.m3u8");
        set.spawn(async move { get(&url).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert!(r.text().contains("seg10.ts"), "the old copy, at once");
        assert!(matches!(x_cache(&r), "stale" | "hit"), "{}", x_cache(&r));
    }
    assert!(eventually(Duration::from_secs(5), || async { get(&p.url("/live/b.m3u8")).await.text().contains("seg20.ts") }).await);
    assert_eq!(o.hits("/live/b.m3u8"), 2, "one background refresh for all of them");
}

#[tokio::test]
async fn stale_if_error_covers_an_origin_outage_up_to_its_bound() {
    let o = ManifestOrigin::start().await;
    o.set("/live/c.m3u8", Reply::hls(&live(7)));
    let p = proxy(&o, "stale_while_revalidate = \"0s\"\nstale_if_error = \"2s\"").await;
    let stored = Instant::now();
    assert_eq!(get(&p.url("/live/c.m3u8")).await.status, 200);
    o.set_down(true);
    assert!(
        eventually(Duration::from_secs(5), || async {
            let r = get(&p.url("/live/c.m3u8")).await;
            r.status == 200 && x_cache(&r) == "stale-if-error" && r.text().contains("seg7.ts") && max_age(&r) == 0
        })
        .await,
        "the stale copy is served while the origin fails"
    );
    // Fresh 1 s + stale_if_error 2 s: after that the origin's error comes through.
    assert!(eventually(Duration::from_secs(6), || async { get(&p.url("/live/c.m3u8")).await.status == 503 }).await);
    assert!(stored.elapsed() >= Duration::from_millis(2900), "stale served until the bound, stopped at {:?}", stored.elapsed());
    // A dead origin (connection refused) is an error too.
    o.set_down(false);
    assert!(eventually(Duration::from_secs(5), || async { get(&p.url("/live/c.m3u8")).await.status == 200 }).await);
    o.stop();
    assert!(
        eventually(Duration::from_secs(5), || async {
            let r = get(&p.url("/live/c.m3u8")).await;
            r.status == 200 && x_cache(&r) == "stale-if-error"
        })
        .await
    );
}

#[tokio::test]
async fn purge_empties_the_route_by_path_prefix() {
    let o = ManifestOrigin::start().await;
    o.set("/a/x.m3u8", Reply::hls(&vod()));
    o.set("/b/y.m3u8", Reply::hls(&vod()));
    let p = proxy(&o, "").await;
    get(&p.url("/a/x.m3u8")).await;
    get(&p.url("/b/y.m3u8")).await;
    let purge = |q: &str, auth: bool| {
        let url = format!("http://{}/cache/purge?{q}", p.admin);
        async move { send(Method::POST, &url, if auth { &[("authorization", "Bearer t0ken")] } else { &[] }).await }
    };
    purge("route=r&prefix=/a/", false).await.assert_problem(401, "unauthorized");
    purge("prefix=/a/", true).await.assert_problem(400, "bad_request");
    purge("route=nope", true).await.assert_problem(400, "bad_request");
    let r = purge("route=r&prefix=/a/", true).await;
    assert_eq!(r.json()["purged"], 1);
    assert_eq!(x_cache(&get(&p.url("/a/x.m3u8")).await), "miss", "purged");
    assert_eq!(x_cache(&get(&p.url("/b/y.m3u8")).await), "hit", "outside the prefix");
    assert_eq!(purge("route=r", true).await.json()["purged"], 2);
    assert_eq!(o.hits("/a/x.m3u8"), 2);
}

#[tokio::test]
async fn viewers_with_different_filters_and_session_values_share_one_entry() {
    let o = ManifestOrigin::start().await;
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nv360/i.m3u8\n\
                  #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080\nv1080/i.m3u8\n";
    o.set("/m/master.m3u8", Reply::hls(master));
    let p = proxy(&o, "allow_query_filters = true\npropagate_query = [\"session\"]").await;
    let all = get(&p.url("/m/master.m3u8?session=a")).await.text();
    assert!(all.contains("/m/v1080/i.m3u8?session=a") && all.contains("v360"), "{all}");
    let small = get(&p.url("/m/master.m3u8?session=b&sg.max_height=720")).await;
    assert_eq!(x_cache(&small), "hit");
    let small = small.text();
    assert!(!small.contains("v1080") && small.contains("/m/v360/i.m3u8?session=b"), "{small}");
    let plain = get(&p.url("/m/master.m3u8")).await.text();
    assert!(plain.contains("\nv1080/i.m3u8\n"), "{plain}");
    assert_eq!(o.total_hits(), 1);
    assert_eq!(o.hits("/m/master.m3u8"), 1, "sent upstream without the per-viewer values");
}

#[tokio::test]
async fn low_latency_blocking_reloads_are_coalesced_per_exact_query() {
    let o = ManifestOrigin::start().await;
    let ll = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24\n\
              #EXT-X-PART-INF:PART-TARGET=1.0\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n\
              #EXTINF:4.0,\nhttp://ORIGIN/ll/s13.mp4\n#EXT-X-PART:DURATION=1.0,URI=\"s14.p0.mp4\"\n\
              #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s14.p1.mp4\"\n";
    let ll = ll.replace("ORIGIN", &o.addr.to_string());
    o.set("/ll/i.m3u8?_HLS_msn=14&_HLS_part=1&_HLS_skip=YES", Reply::hls(&ll).delay(300));
    o.set("/ll/i.m3u8?_HLS_msn=14&_HLS_part=2", Reply::hls(&ll).delay(300));
    let p = proxy(&o, "").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let q = if i % 2 == 0 { "_HLS_msn=14&_HLS_part=1&_HLS_skip=YES" } else { "_HLS_msn=14&_HLS_part=2" };
        let url = p.url(&format!("/ll/i.m3u8?{q}"));
        set.spawn(async move { get(&url).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        let t = r.text();
        assert!(t.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n") && t.contains("\n/ll/s13.mp4\n"), "delta update rewritten: {t}");
    }
    assert_eq!(o.hits("/ll/i.m3u8?_HLS_msn=14&_HLS_part=1&_HLS_skip=YES"), 1);
    assert_eq!(o.hits("/ll/i.m3u8?_HLS_msn=14&_HLS_part=2"), 1);
}

#[tokio::test]
async fn errors_are_shared_by_waiters_but_not_stored() {
    let o = ManifestOrigin::start().await;
    o.set("/gone.m3u8", Reply::status(404, "gone").delay(200));
    o.set("/bad.mpd", Reply::dash("<MPD><Period></MPD>").delay(200));
    let p = proxy(&o, "").await;
    for (path, status) in [("/gone.m3u8", 404), ("/bad.mpd", 502)] {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let url = p.url(path);
            set.spawn(async move { get(&url).await.status });
        }
        while let Some(s) = set.join_next().await {
            assert_eq!(s.unwrap(), status, "{path}");
        }
        assert_eq!(o.hits(path), 1, "{path}: one fetch for all waiters");
        assert_eq!(get(&p.url(path)).await.status, status);
        assert_eq!(o.hits(path), 2, "{path}: not stored");
    }
}

#[tokio::test]
async fn the_cache_stays_within_max_bytes() {
    let o = ManifestOrigin::start().await;
    let body = vod();
    for i in 0..300 {
        o.set(&format!("/many/{i}.m3u8"), Reply::hls(&body));
    }
    let p = Proxy::start(&format!(
        "[cache]\nmax_bytes = \"64KiB\"\n[origins.o]\nurls = [\"{}\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    let metric = |text: &str, name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(u64::MAX)
    };
    for i in 0..300 {
        assert_eq!(get(&p.url(&format!("/many/{i}.m3u8"))).await.status, 200);
        if i % 50 == 49 {
            let m = get(&format!("http://{}/metrics", p.admin)).await.text();
            assert!(metric(&m, "streamgate_manifest_cache_bytes ") <= 64 * 1024, "{m}");
        }
    }
    let m = get(&format!("http://{}/metrics", p.admin)).await.text();
    assert!(metric(&m, "streamgate_manifest_cache_evictions_total ") > 200, "{m}");
    assert!(metric(&m, "streamgate_manifest_cache_entries ") >= 10, "{m}");
}

#[tokio::test]
async fn a_blocking_reload_may_wait_three_target_durations() {
    let o = ManifestOrigin::start().await;
    let ll = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXTINF:1.0,\ns1.mp4\n";
    o.set("/ll/i.m3u8", Reply::hls(ll));
    o.set("/ll/i.m3u8?_HLS_msn=2", Reply::hls(ll).delay(1500));
    o.set("/other/i.m3u8?_HLS_msn=2", Reply::hls(ll).delay(1500));
    let p = Proxy::start(&format!(
        "[origins.o]\nurls = [\"{}\"]\nresponse_timeout = \"1s\"\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n",
        o.url()
    ))
    .await;
    // No playlist of that path seen yet: the origin's response_timeout applies.
    get(&p.url("/other/i.m3u8?_HLS_msn=2")).await.assert_problem(504, "upstream_timeout");
    // Target duration 1 s known from the plain playlist: up to 3 s for the blocking reload.
    assert_eq!(get(&p.url("/ll/i.m3u8")).await.status, 200);
    let r = get(&p.url("/ll/i.m3u8?_HLS_msn=2")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
