//! Fuzzes the DASH rewriter (`streamgate_manifest::transform` with `Format::Dash`).
//!
//! The first input byte picks the plan, the rest is the MPD:
//! bits 0-1 the mode (`none`, `proxy`, `cdn`, and `proxy` again), bit 2 a rendition
//! filter (bits 4-7 pick which), bit 3 an extra query (as `propagate_query` and
//! tokenization add). The route is `/vod/` (prefix stripped) over `http://origin.test`
//! with alias `http://alias.test:8080/media`, beside a `/live/` route over
//! `http://live.test`, so absolute, relative, aliased, other-route and foreign children
//! all occur.
//!
//! Invariants: no panic (nor hang: libFuzzer's timeout), and with `none` and no filter an
//! `Ok` output equals the input. Without an extra query that is SPEC's "with rewrite =
//! none and no other transformation, output is byte-identical to input" (the identity
//! plan); with one, the rewriter takes its copying path but `none` maps no URI (and the
//! config refuses tokenizing under `none`), so every byte must still be copied as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate_manifest::Format;

#[path = "rewrite_plan.rs"]
mod rewrite_plan;

fuzz_target!(|data: &[u8]| rewrite_plan::run(Format::Dash, "http://origin.test/a/manifest.mpd", "/vod/a/manifest.mpd", data));
