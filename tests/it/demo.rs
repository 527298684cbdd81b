//! The embedded default: `streamgate` with no arguments serves the bundled media, and
//! real players (ffmpeg) play it through the proxy. Also the access log, written by the
//! real binary.

use std::io::{BufRead, BufReader};
use std::process::Command;

use crate::support::{get, Spawned};

const EPHEMERAL: [(&str, &str); 2] = [("STREAMGATE_SERVER__LISTEN", "[\"127.0.0.1:0\"]"), ("STREAMGATE_ADMIN__LISTEN", "127.0.0.1:0")];

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success())
}

fn ffmpeg_plays(url: &str) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i", url, "-t", "2", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {url}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn demo_plays_in_ffmpeg_through_the_proxy() {
    assert!(ffmpeg_available(), "ffmpeg is required for this test; scripts/test installs it");
    let sg = Spawned::start(&[], &EPHEMERAL);
    let base = format!("http://{}", sg.addr);
    let master = get(&format!("{base}/demo/hls/master.m3u8")).await;
    assert_eq!(master.status, 200);
    assert!(master.text().starts_with("#EXTM3U"));
    let hls = format!("{base}/demo/hls/master.m3u8");
    let dash = format!("{base}/demo/dash/manifest.mpd");
    tokio::task::spawn_blocking(move || {
        ffmpeg_plays(&hls);
        ffmpeg_plays(&dash);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn access_log_line_is_written_when_the_body_ends() {
    let mut sg = Spawned::start(&[], &EPHEMERAL);
    let url = format!("http://{}/demo/hls/360p/seg_000.m4s?secret=do-not-log", sg.addr);
    let r = crate::support::send(http::Method::GET, &url, &[("x-request-id", "log-test-42")]).await;
    assert_eq!(r.status, 200);
    let len = r.body.len();
    let stderr = sg.stderr.take().unwrap();
    let line =
        tokio::task::spawn_blocking(move || BufReader::new(stderr).lines().map_while(Result::ok).find(|l| l.contains("log-test-42")));
    sg.signal("TERM");
    let line = line.await.unwrap().expect("an access log line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    assert_eq!(v["target"], "access");
    assert_eq!(v["route"], "demo");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/demo/hls/360p/seg_000.m4s");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], len as u64);
    assert_eq!(v["outcome"], "complete");
    assert!(v["duration_ms"].as_f64().is_some());
    assert!(v["upstream"].as_str().unwrap().starts_with("file://"));
    assert!(!line.contains("do-not-log"), "query strings may carry secrets: {line}");
}

#[tokio::test]
async fn ffmpeg_plays_with_signed_urls_required() {
    assert!(ffmpeg_available(), "ffmpeg is required for this test; scripts/test installs it");
    let key = "00112233445566778899aabbccddeeff";
    let cfg = crate::support::write_config(
        "signed.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = false\n[origins.demo]\nurls = [\"file://{}/examples/media\"]\n[routes.demo]\nprefix = \"/demo/\"\norigin = \"demo\"\nstrip_prefix = true\n[routes.demo.tokenize]\nkey = \"{key}\"\nttl = \"10m\"\nverify = true\n",
            crate::support::repo().display()
        ),
    );
    let sg = Spawned::start(&["serve", "-c", cfg.to_str().unwrap()], &[]);
    let base = format!("http://{}", sg.addr);
    assert_eq!(get(&format!("{base}/demo/hls/master.m3u8")).await.status, 403);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let k = streamgate_manifest::token::AkamaiKey::from_hex(key).unwrap();
    let tok =
        streamgate_manifest::token::generate(&k, "hdnts", &streamgate_manifest::token::TokenParams::acl("/demo/*", 600), now).unwrap();
    let hls = format!("{base}/demo/hls/master.m3u8?{tok}");
    let dash = format!("{base}/demo/dash/manifest.mpd?{tok}");
    tokio::task::spawn_blocking(move || {
        ffmpeg_plays(&hls);
        ffmpeg_plays(&dash);
    })
    .await
    .unwrap();
}
