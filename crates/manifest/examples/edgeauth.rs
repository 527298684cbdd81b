//! Command-line access to `streamgate_manifest::token`, for interop tests and by hand.
//!
//! ```text
//! edgeauth generate --key HEX (--acl PATTERNS | --url PATH) --window SECS
//!                   [--start UNIX|now] [--now UNIX] [--ip IP] [--id ID] [--data DATA]
//!                   [--escape-early] [--name NAME] [--field-delimiter C] [--acl-delimiter C]
//! edgeauth verify   --key HEX --token VALUE --path PATH [--now UNIX] [--client-ip IP]
//!                   [--escape-early] [--leeway SECS] [--field-delimiter C] [--acl-delimiter C]
//! ```
//!
//! `generate` prints `NAME=VALUE` (NAME defaults to `hdnts`); `--now` defaults to the
//! system clock. `verify` takes the VALUE (without `NAME=`) and prints `ok`, or
//! `error: ...` and exits 1. Usage errors exit 2.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use streamgate_manifest::token::{self, AkamaiKey, TokenParams, VerifyOptions};

const FLAGS: &[&str] = &["--escape-early"];
const OPTIONS: &[&str] = &[
    "--key",
    "--acl",
    "--url",
    "--window",
    "--start",
    "--now",
    "--ip",
    "--id",
    "--data",
    "--name",
    "--field-delimiter",
    "--acl-delimiter",
    "--token",
    "--path",
    "--client-ip",
    "--leeway",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("edgeauth: {msg}");
            eprintln!("usage: edgeauth generate|verify --key HEX ... (see the source's header)");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let (cmd, rest) = args.split_first().ok_or("missing command")?;
    let opts = parse(rest)?;
    let key = AkamaiKey::from_hex(opts.get("--key").ok_or("--key is required")?).map_err(|e| e.to_string())?;
    let now = match opts.get("--now") {
        Some(s) => num(s, "--now")?,
        None => SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs(),
    };
    let get = |k: &str| opts.get(k).cloned();
    let ch = |k: &str, default: char| -> Result<char, String> {
        match opts.get(k) {
            None => Ok(default),
            Some(s) => {
                let mut it = s.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Ok(c),
                    _ => Err(format!("{k} takes one character")),
                }
            }
        }
    };
    let escape_early = opts.contains_key("--escape-early");
    match cmd.as_str() {
        "generate" => {
            let start = match opts.get("--start").map(String::as_str) {
                None => None,
                Some("now") => Some(now),
                Some(s) => Some(num(s, "--start")?),
            };
            let p = TokenParams {
                start,
                window: num(opts.get("--window").ok_or("--window is required")?, "--window")?,
                acl: get("--acl"),
                url: get("--url"),
                session_id: get("--id"),
                payload: get("--data"),
                ip: get("--ip"),
                field_delimiter: ch("--field-delimiter", '~')?,
                acl_delimiter: ch("--acl-delimiter", '!')?,
                escape_early,
            };
            let name = get("--name").unwrap_or_else(|| "hdnts".to_owned());
            match token::generate(&key, &name, &p, now) {
                Ok(t) => {
                    println!("{t}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        "verify" => {
            let value = opts.get("--token").ok_or("--token is required")?;
            let path = opts.get("--path").ok_or("--path is required")?;
            let vo = VerifyOptions {
                field_delimiter: ch("--field-delimiter", '~')?,
                acl_delimiter: ch("--acl-delimiter", '!')?,
                start_leeway: match opts.get("--leeway") {
                    Some(s) => num(s, "--leeway")?,
                    None => token::DEFAULT_START_LEEWAY_SECS,
                },
                escape_early,
                client_ip: opts.get("--client-ip").map(String::as_str),
            };
            match token::verify_with(&key, value, path, now, &vo) {
                Ok(_) => {
                    println!("ok");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn parse(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.as_str();
        let value = if FLAGS.contains(&a) {
            String::new()
        } else if OPTIONS.contains(&a) {
            it.next().ok_or_else(|| format!("{a} needs a value"))?.clone()
        } else {
            return Err(format!("unknown argument {a:?}"));
        };
        if out.insert(a.to_owned(), value).is_some() {
            return Err(format!("{a} given twice"));
        }
    }
    Ok(out)
}

fn num(s: &str, what: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("{what}: not a non-negative integer: {s:?}"))
}
