//! The `streamgate` command: `serve` (default), `check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use streamgate::config::{self, ConfigSource};

/// mimalloc: small per-request allocations (header maps, bodies, futures) are a few
/// percent of a short manifest request's CPU with glibc malloc; see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Edge proxy for HTTP video streaming that understands HLS and DASH.
#[derive(Parser)]
#[command(name = "streamgate", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config files for `streamgate -c FILE...` without a subcommand (same as `serve`).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default). Without -c: the embedded demo config.
    Serve {
        /// Config files (TOML or YAML), merged in order; STREAMGATE_* env vars on top.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Vec<PathBuf>,
    },
    /// Run one manifest (stdin) through a route's transformation and print the result.
    Rewrite {
        /// The route whose rules apply.
        #[arg(long)]
        route: String,
        /// The manifest's origin URL (the base of its relative children; its query is
        /// read like a client's: filters, propagated values).
        #[arg(long)]
        url: String,
        /// Config files (TOML or YAML), merged in order; STREAMGATE_* env vars on top.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Vec<PathBuf>,
    },
    /// Load, merge and validate config; print every problem; exit 0 valid, 2 invalid.
    Check {
        /// Config files (TOML or YAML), merged in order; STREAMGATE_* env vars on top.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Vec<PathBuf>,
    },
}

fn source(files: Vec<PathBuf>) -> ConfigSource {
    if files.is_empty() {
        config::embedded_default()
    } else {
        ConfigSource::Files(files)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command.unwrap_or(Command::Serve { config: cli.config }) {
        Command::Check { config: files } => {
            let src = source(files);
            match config::load_and_validate(&src) {
                Ok(cfg) => {
                    println!("config ok: {} route(s), {} origin(s)", cfg.routes.len(), cfg.origins.len());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for p in &errors.0 {
                        eprintln!("error: {p}");
                    }
                    eprintln!("{} problem(s) found", errors.0.len());
                    ExitCode::from(2)
                }
            }
        }
        Command::Rewrite { route, url, config: files } => {
            let cfg = match config::load_and_validate(&source(files)) {
                Ok(c) => c,
                Err(errors) => {
                    for p in &errors.0 {
                        eprintln!("error: {p}");
                    }
                    return ExitCode::from(2);
                }
            };
            let mut input = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut input) {
                eprintln!("error: cannot read stdin: {e}");
                return ExitCode::from(1);
            }
            match streamgate::rewrite_once(cfg, &route, &url, &input) {
                Ok(out) => {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), &out);
                    ExitCode::SUCCESS
                }
                Err(streamgate::RewriteError::Usage(msg)) => {
                    eprintln!("error: {msg}");
                    ExitCode::from(2)
                }
                Err(streamgate::RewriteError::Manifest(e)) => {
                    eprintln!("error: {} ({}): {e}", e.code(), e.status());
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve { config: files } => {
            let demo = files.is_empty();
            let src = source(files);
            let cfg = match config::load_and_validate(&src) {
                Ok(c) => c,
                Err(errors) => {
                    for p in &errors.0 {
                        eprintln!("error: {p}");
                    }
                    return ExitCode::from(2);
                }
            };
            match streamgate::run(cfg, src, demo) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
