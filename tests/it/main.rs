//! Integration tests: one binary, real sockets on ephemeral loopback ports, a test origin
//! and the proxy (in-process, or the real binary where process behaviour matters).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod admin;
mod auth;
mod cache;
mod cli;
mod demo;
mod file_origin;
mod health;
mod listeners;
mod manifest_fetch;
mod manifests;
mod proxying;
mod rate_limit;
mod routing;
mod streaming;
mod support;
mod tunnel;
mod upstream;
