#!/usr/bin/env python3
"""Interop test: streamgate's Akamai EdgeAuth tokens against Akamai's reference
implementation (PyPI `akamai-edgeauth`, module `akamai.edgeauth`).

1. streamgate generates a token; the reference regenerates it from the same inputs and
   the two strings must be identical byte for byte (the reference has no verifier).
2. The reference generates a token; streamgate must accept it, and must refuse it when
   it is altered, expired, not yet valid, used for another path, or checked with
   another key.

streamgate is reached through its example binary, run with `cargo run` from the repo
root (two levels above this file):
    cargo run -q -p streamgate-manifest --example edgeauth -- generate|verify ...

Needs: python3, `pip install akamai-edgeauth`, cargo. Exits 0 only when every check
passes; prints each comparison and a closing "N passed, N failed" line.
"""

import random
import subprocess
import sys
from pathlib import Path

try:
    from akamai.edgeauth import EdgeAuth
except ImportError:
    print("edgeauth_interop: the reference package is missing: pip install akamai-edgeauth", file=sys.stderr)
    sys.exit(2)

ROOT = Path(__file__).resolve().parents[2]
CARGO = ["cargo", "run", "-q", "-p", "streamgate-manifest", "--example", "edgeauth", "--"]
LEEWAY = 30  # streamgate's DEFAULT_START_LEEWAY_SECS

KEY = "0123456789abcdef0123456789abcdef"
KEY2 = "52a152a152a152a152a152a152a152a152a152a152a152a152a152a152a152a1"
KEY_UPPER = "A1B2C3D4E5F60718293A4B5C6D7E8F90"

passed = 0
failed = 0


def check(ok, label, detail):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {label}: {detail}")
    else:
        failed += 1
        print(f"FAIL {label}: {detail}")


def streamgate(args):
    """Runs the example binary; returns (exit code, stdout stripped, stderr)."""
    proc = subprocess.run(CARGO + args, cwd=ROOT, capture_output=True, text=True, encoding="utf-8")
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def reference(case, now):
    """The reference token value for a case (see `cases` for the keys)."""
    kwargs = dict(
        key=case["key"],
        algorithm="sha256",
        ip=case.get("ip"),
        session_id=case.get("id"),
        payload=case.get("data"),
        escape_early=case.get("escape_early", False),
        field_delimiter=case.get("field_delimiter", "~"),
        acl_delimiter=case.get("acl_delimiter", "!"),
    )
    start = case.get("start")
    if start == "now":
        start = now
    if start is None:
        # The reference would read the clock here; give it the same exp instead.
        kwargs["end_time"] = now + case["window"]
    else:
        kwargs["start_time"] = start
        kwargs["window_seconds"] = case["window"]
    ea = EdgeAuth(**kwargs)
    if "url" in case:
        return ea.generate_url_token(case["url"])
    acl = case["acl"]
    if isinstance(acl, str):
        return ea.generate_acl_token(acl)
    return ea.generate_acl_token(list(acl))


def generate_args(case, now):
    args = ["generate", "--key", case["key"], "--window", str(case["window"]), "--now", str(now)]
    if "url" in case:
        args += ["--url", case["url"]]
    else:
        acl = case["acl"]
        if not isinstance(acl, str):
            acl = case.get("acl_delimiter", "!").join(acl)
        args += ["--acl", acl]
    if case.get("start") is not None:
        args += ["--start", str(case["start"])]
    for opt, field in (("--ip", "ip"), ("--id", "id"), ("--data", "data"), ("--name", "name"),
                       ("--field-delimiter", "field_delimiter"), ("--acl-delimiter", "acl_delimiter")):
        if case.get(field) is not None:
            args += [opt, case[field]]
    if case.get("escape_early"):
        args.append("--escape-early")
    return args


def verify_args(case, value, path, now, key=None):
    args = ["verify", "--key", key or case["key"], "--token", value, "--path", path, "--now", str(now)]
    if case.get("escape_early"):
        args.append("--escape-early")
    if case.get("ip") is not None:
        args += ["--client-ip", case["ip"]]
    for opt, field in (("--field-delimiter", "field_delimiter"), ("--acl-delimiter", "acl_delimiter")):
        if case.get(field) is not None:
            args += [opt, case[field]]
    return args


NOW = 1700000000

cases = [
    dict(label="acl basic", key=KEY, acl="/vod/*", start=NOW, window=300, path="/vod/a/b.ts"),
    dict(label="acl list", key=KEY, acl=["/vod/a/*", "/vod/b/*.m3u8"], start=NOW, window=3600,
         path="/vod/b/x/index.m3u8", outside="/vod/b/x/seg.ts"),
    dict(label="acl no start", key=KEY, acl="/live/*", start=None, window=21600, path="/live/ch1/seg-9.ts"),
    dict(label="acl start=now", key=KEY, acl="/live/*", start="now", window=60, path="/live/ch1/seg-9.ts"),
    dict(label="acl uppercase key", key=KEY_UPPER, acl="/*", start=NOW, window=10, path="/anything", outside=None),
    dict(label="acl long key", key=KEY2, acl="/vod/a/*", start=NOW, window=7200, path="/vod/a/1080p/seg-00001.m4s"),
    dict(label="acl id+data", key=KEY, acl="/vod/*", start=NOW, window=300, id="session-42", data="plan=gold",
         path="/vod/x.ts"),
    dict(label="acl ip", key=KEY, acl="/vod/*", start=NOW, window=300, ip="192.0.2.7", path="/vod/x.ts"),
    dict(label="acl escape_early", key=KEY, acl="/vod/a b/*", start=NOW, window=300, escape_early=True,
         ip="2001:db8::1", id="user 42/x", data="a=b&c=d é", path="/vod/a b/c.ts"),
    dict(label="acl custom delimiters", key=KEY, acl=["/a/*", "/b/*"], start=NOW, window=300,
         field_delimiter=",", acl_delimiter="|", id="s1", path="/b/c/d.ts"),
    dict(label="acl name __token__", key=KEY, acl="/vod/*", start=NOW, window=300, name="__token__",
         path="/vod/x.ts"),
    dict(label="url basic", key=KEY, url="/vod/a/seg-1.ts", start=NOW, window=300, path="/vod/a/seg-1.ts",
         outside="/vod/a/seg-2.ts"),
    dict(label="url no start", key=KEY, url="/vod/a/seg-1.ts", start=None, window=300, path="/vod/a/seg-1.ts",
         outside="/vod/a/seg-2.ts"),
    dict(label="url escape_early", key=KEY, url="/vod/a b.ts?x=1&y=2", start=NOW, window=300, escape_early=True,
         id="abc def", path="/vod/a b.ts?x=1&y=2", outside="/vod/a b.ts?x=1"),
    dict(label="url with query, no escaping", key=KEY2, url="/q_ignore?hello=world", start=NOW, window=500,
         data="SOME_PAYLOAD_DATA", path="/q_ignore?hello=world", outside="/q_ignore"),
]

# Deterministic random cases: paths and values from characters that need no escaping in
# either implementation, plus some that do (escape_early on).
rng = random.Random(20240601)
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
for i in range(12):
    seg = lambda n: "".join(rng.choice(SAFE) for _ in range(n))
    base = "/" + "/".join(seg(rng.randint(1, 8)) for _ in range(rng.randint(1, 3)))
    esc = rng.random() < 0.5
    case = dict(label=f"random {i}", key="".join(rng.choice("0123456789abcdef") for _ in range(2 * rng.randint(1, 40))),
                start=rng.choice([None, rng.randint(1, 2_000_000_000)]), window=rng.randint(1, 86400 * 30),
                escape_early=esc)
    if rng.random() < 0.5:
        case["acl"] = base + "/*"
        case["path"] = base + "/" + seg(rng.randint(1, 10)) + ".ts"
    else:
        case["url"] = base + ".m3u8"
        case["path"] = case["url"]
    if rng.random() < 0.5:
        case["id"] = seg(rng.randint(1, 12)) + (" /&é" if esc else "")
    if rng.random() < 0.5:
        case["data"] = seg(rng.randint(1, 12)) + ("=?%" if esc else "")
    if rng.random() < 0.3:
        case["ip"] = rng.choice(["203.0.113.9", "2001:db8::5" if esc else "198.51.100.1"])
    cases.append(case)


def run_case(case):
    label = case["label"]
    start = case.get("start")
    # A time inside the window for each case.
    now = NOW if start in (None, "now") else start + case["window"] // 2
    name = case.get("name", "hdnts")

    # 1. streamgate generates, the reference regenerates: byte-identical.
    rc, out, err = streamgate(generate_args(case, now))
    expected = reference(case, now)
    prefix = name + "="
    if rc != 0 or not out.startswith(prefix):
        check(False, f"{label} / generate", f"streamgate exit {rc}: {out} {err}")
        return
    ours = out[len(prefix):]
    check(ours == expected, f"{label} / generate", f"streamgate={ours!r} reference={expected!r}")

    # 2. the reference generates, streamgate verifies.
    value = expected
    path = case["path"]
    rc, out, err = streamgate(verify_args(case, value, path, now))
    check(rc == 0 and out == "ok", f"{label} / verify reference token", f"path={path!r} -> {out or err!r}")

    def refuse(what, args, want):
        rc, out, err = streamgate(args)
        check(rc == 1 and out.startswith("error:") and want in out, f"{label} / refuse {what}",
              f"expected error containing {want!r}, got exit {rc}: {out or err!r}")

    fd = case.get("field_delimiter", "~")
    head, tag = value.rsplit(fd + "hmac=", 1)
    flipped = tag[:-1] + ("0" if tag[-1] != "0" else "1")
    refuse("altered hmac", verify_args(case, head + fd + "hmac=" + flipped, path, now), "signature")
    exp = int(value.split("exp=", 1)[1].split(fd, 1)[0])
    refuse("expired", verify_args(case, value, path, exp), "expired")
    st = case.get("start")
    if st == "now":
        st = now
    if st is not None and st > LEEWAY:
        refuse("not yet valid", verify_args(case, value, path, st - LEEWAY - 1), "not valid before")
    other_key = "ff" + case["key"][2:] if not case["key"].lower().startswith("ff") else "00" + case["key"][2:]
    refuse("other key", verify_args(case, value, path, now, key=other_key), "signature")
    outside = case.get("outside", "/elsewhere/x.ts")
    if outside is not None:
        want = "signature" if "url" in case else "acl"
        refuse("other path", verify_args(case, value, outside, now), want)


def main():
    # Build once up front so a compile error is reported once, clearly.
    build = subprocess.run(["cargo", "build", "-q", "-p", "streamgate-manifest", "--example", "edgeauth"],
                           cwd=ROOT, capture_output=True, text=True)
    if build.returncode != 0:
        print(build.stderr, file=sys.stderr)
        print("edgeauth_interop: cannot build the edgeauth example", file=sys.stderr)
        return 1
    for case in cases:
        run_case(case)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
