//! The command line: `check` reports every problem with file, key and line; exit codes.

use crate::support::{repo, run_bin, run_bin_stdin, write_config};

#[test]
fn version_and_help() {
    let (code, out, _) = run_bin(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("streamgate "), "{out}");
    let (code, out, _) = run_bin(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("check") && out.contains("serve"), "{out}");
    let (code, _, err) = run_bin(&["--no-such-flag"], &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn check_accepts_a_valid_config() {
    let cfg = write_config("ok.toml", "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n");
    let (code, out, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("config ok"), "{out}");
}

#[test]
fn check_reports_every_problem_with_file_key_and_line() {
    let text = r#"[server]
listen = ["not-an-address"]

[origins.empty]
urls = []

[origins.ftp]
urls = ["ftp://example.com/"]

[routes.a]
prefix = "/vod/"
origin = "missing"

[routes.b]
prefix = "/vod/"
origin = "ftp"
"#;
    let cfg = write_config("bad.toml", text);
    let path = cfg.to_str().unwrap();
    let (code, _, err) = run_bin(&["check", "-c", path], &[]);
    assert_eq!(code, 2, "{err}");
    for (line, key, what) in [
        (2, "server.listen", "invalid listen address"),
        (5, "origins.empty.urls", "at least one url"),
        (8, "origins.ftp.urls", "unsupported scheme"),
        (12, "routes.a.origin", "no origin named \"missing\""),
        (15, "routes.b.prefix", "also the prefix of routes.a"),
    ] {
        let want = format!("{path}:{line}: {key}: ");
        let hit = err.lines().find(|l| l.contains(&want));
        assert!(hit.is_some_and(|l| l.contains(what)), "missing {want}...{what} in:\n{err}");
    }
    assert!(err.contains("5 problem(s) found"), "{err}");
}

#[test]
fn unknown_keys_are_errors_in_every_section() {
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\nlisten_typo = 1\n\n[origins.o]\nurls = [\"http://127.0.0.1:1\"]\nretires = 2\n\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n[routes.r.manifest]\nrewrite = \"sideways\"\n\n[nonsense]\nx = 1\n";
    let cfg = write_config("typo.toml", text);
    let path = cfg.to_str().unwrap();
    let (code, _, err) = run_bin(&["check", "-c", path], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("server: unknown key \"listen_typo\"") || err.contains("server.listen_typo"), "{err}");
    assert!(err.contains("unknown key \"retires\""), "{err}");
    assert!(err.contains("sideways"), "{err}");
    assert!(err.contains(&format!("{path}:15: nonsense: unknown section")), "{err}");
}

#[test]
fn yaml_files_merge_and_report_lines() {
    let base = write_config("base.toml", "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n");
    let over = write_config("over.yaml", "routes:\n  r:\n    origin: gone\n");
    let (code, _, err) = run_bin(&["check", "-c", base.to_str().unwrap(), "-c", over.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    let want = format!("{}:3: routes.r.origin: no origin named \"gone\"", over.display());
    assert!(err.contains(&want), "want {want} in:\n{err}");
}

#[test]
fn environment_overrides_files() {
    let base = write_config("env.toml", "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n");
    let p = base.to_str().unwrap();
    let (code, _, err) = run_bin(&["check", "-c", p], &[("STREAMGATE_ROUTES__R__ORIGIN", "elsewhere")]);
    assert_eq!(code, 2);
    assert!(err.contains("routes.r.origin: no origin named \"elsewhere\""), "{err}");
    // Single-level names belong to tools, not to config.
    let (code, _, err) = run_bin(&["check", "-c", p], &[("STREAMGATE_CORPUS", "/x")]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn signing_needs_manifests_to_be_rewritten() {
    let cfg = write_config(
        "signnone.toml",
        "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\n[routes.r]\nprefix = \"/\"\norigin = \"o\"\n[routes.r.manifest]\nrewrite = \"none\"\n[routes.r.tokenize]\nkey = \"zz\"\n",
    );
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("routes.r.tokenize: signing child URLs needs manifest.rewrite"), "{err}");
    assert!(err.contains("routes.r.tokenize.key: not a usable hex key"), "{err}");
}

#[test]
fn overlapping_listen_addresses() {
    let cfg = write_config(
        "overlap.toml",
        "[server]\nlisten = [\"0.0.0.0:18999\", \"127.0.0.1:18999\"]\n[admin]\nlisten = \"127.0.0.1:18999\"\n",
    );
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("server.listen: 127.0.0.1:18999 overlaps 0.0.0.0:18999"), "{err}");
    assert!(err.contains("admin.listen: 127.0.0.1:18999 overlaps server.listen"), "{err}");
}

#[test]
fn missing_file_and_bad_extension() {
    let (code, _, err) = run_bin(&["check", "-c", "/nonexistent/streamgate.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/streamgate.toml: config file not found"), "{err}");
    let ini = write_config("x.ini", "a=1");
    let (code, _, err) = run_bin(&["check", "-c", ini.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown config format"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    let text =
        "[server]\nshutdown_grace = \"30 parsecs\"\nmax_header_bytes = \"lots\"\n\n[admin]\ntoken = \"env:SG_TEST_UNSET_TOKEN_VAR\"\n";
    let cfg = write_config("units.toml", text);
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    // Deserialization stops at the first bad value of a section; the key is named.
    assert!(
        err.contains(":3: server.max_header_bytes: invalid size \"lots\"")
            || err.contains(":2: server.shutdown_grace: invalid duration \"30 parsecs\""),
        "{err}"
    );
    let text = "[admin]\ntoken = \"env:SG_TEST_UNSET_TOKEN_VAR\"\n";
    let cfg = write_config("token.toml", text);
    let (code, _, err) = run_bin(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains(":2: admin.token: environment variable SG_TEST_UNSET_TOKEN_VAR is not set"), "{err}");
}

#[test]
fn every_example_config_is_valid() {
    let dir = repo().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let ext = p.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        if !matches!(ext.as_str(), "toml" | "yaml" | "yml") || name == "demo.toml" {
            continue;
        }
        let (code, out, err) = run_bin(
            &["check", "-c", p.to_str().unwrap()],
            &[("STREAMGATE_ADMIN_TOKEN", "example-token"), ("TOKEN_KEY", "00112233445566778899aabbccddeeff")],
        );
        assert_eq!(code, 0, "{name}: {out}{err}");
        checked += 1;
    }
    // The embedded default is an example too.
    let (code, _, err) = run_bin(&["check"], &[]);
    assert_eq!(code, 0, "embedded default: {err}");
    assert!(checked >= 1, "no example configs found in {}", dir.display());
}

#[test]
fn rewrite_runs_one_manifest_through_a_route() {
    let cfg = write_config(
        "rw.toml",
        "[origins.o]\nurls = [\"http://127.0.0.1:1\"]\naliases = [\"http://origin.example.com\"]\n[routes.vod]\nprefix = \"/vod/\"\norigin = \"o\"\nstrip_prefix = true\n[routes.vod.manifest]\nrewrite = \"cdn\"\ncdn_base = \"https://cdn.example.com/v/\"\n",
    );
    let c = cfg.to_str().unwrap();
    let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttp://origin.example.com/a/s1.ts\n#EXTINF:4,\ns2.ts\n";
    let (code, out, err) =
        run_bin_stdin(&["rewrite", "--route", "vod", "--url", "http://origin.example.com/a/index.m3u8", "-c", c], playlist);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttps://cdn.example.com/v/a/s1.ts\n#EXTINF:4,\nhttps://cdn.example.com/v/a/s2.ts\n"
    );
    let (code, _, err) = run_bin_stdin(&["rewrite", "--route", "nope", "--url", "http://origin.example.com/a/i.m3u8", "-c", c], playlist);
    assert_eq!(code, 2);
    assert!(err.contains("no route named"), "{err}");
    let (code, out, err) =
        run_bin_stdin(&["rewrite", "--route", "vod", "--url", "http://origin.example.com/a/m.mpd", "-c", c], b"<MPD><Period>");
    assert_eq!(code, 1);
    assert!(out.is_empty(), "nothing half-written");
    assert!(err.contains("manifest_invalid"), "{err}");
}

/// SPEC: `streamgate` and `streamgate serve [-c FILE]...` both run the proxy; the config
/// is loaded (and refused) the same way without the subcommand.
#[test]
fn serve_is_the_default_subcommand_also_with_config_files() {
    let bad = write_config("default-subcommand.toml", "[server]\nlisten = \"nope\"\n");
    let path = bad.to_str().unwrap();
    for args in [vec!["-c", path], vec!["serve", "-c", path]] {
        let (code, _, err) = run_bin(&args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("server.listen"), "{args:?}: {err}");
    }
}
