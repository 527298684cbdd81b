//! Conformance of the RFC 8216 validator against the external corpus (`features.tsv` of
//! /work/shared/corpus, or `$STREAMGATE_CORPUS`): every HLS file marked `valid` must pass,
//! every one marked `invalid` must be rejected, and nothing may panic. The corpus is read
//! in place, never copied into the repository; without it the test says so and passes.
//!
//! A few files cannot be classified the way the corpus says without rejecting files of the
//! opposite set that have the same shape; they are listed in [`KNOWN_CONFLICTS`] with the
//! reason, and the test fails if one of them starts to agree with the corpus (so the list
//! cannot go stale).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use streamgate_manifest::hls::validate::Validator;
use streamgate_manifest::ManifestError;

#[path = "support/conflicts.rs"]
mod conflicts;
use conflicts::KNOWN_CONFLICTS;

fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("STREAMGATE_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    dir.join("features.tsv").is_file().then_some(dir)
}

/// Feeds `input` to a validator the way the rewriter does: BOM removed from line 1, lines
/// split on `\n`, a trailing `\r` removed, `finish` at the end.
fn validate(input: &[u8]) -> Result<(), ManifestError> {
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut v = Validator::new();
    let mut n = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        n += 1;
        v.line(n, line.strip_suffix(b"\r").unwrap_or(line))?;
    }
    v.finish(n)
}

struct Row {
    path: String,
    valid: bool,
    note: String,
}

fn hls_rows(dir: &Path) -> Result<Vec<Row>, String> {
    let tsv = std::fs::read_to_string(dir.join("features.tsv")).map_err(|e| format!("features.tsv: {e}"))?;
    let mut rows = Vec::new();
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 || !cols[1].starts_with("hls-") {
            continue;
        }
        let valid = match cols[2] {
            "valid" => true,
            "invalid" => false,
            other => return Err(format!("{}: unknown validity {other:?}", cols[0])),
        };
        rows.push(Row { path: cols[0].to_owned(), valid, note: cols.get(6).copied().unwrap_or("").to_owned() });
    }
    Ok(rows)
}

#[test]
fn corpus_hls_validate() {
    let Some(dir) = corpus_dir() else {
        eprintln!(
            "corpus_hls_validate: SKIPPED - no corpus found (set STREAMGATE_CORPUS to the corpus directory, \
             or place it at CARGO_MANIFEST_DIR/../../../shared/corpus)"
        );
        return;
    };
    let rows = hls_rows(&dir).unwrap();
    assert!(!rows.is_empty(), "no HLS rows in {}", dir.display());

    let (mut valid_total, mut valid_ok, mut invalid_total, mut invalid_ok) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    let mut stale = Vec::new();
    for row in &rows {
        let bytes = std::fs::read(dir.join(&row.path)).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        let outcome = catch_unwind(AssertUnwindSafe(|| validate(&bytes)));
        let Ok(result) = outcome else {
            wrong.push(format!("PANIC {}", row.path));
            continue;
        };
        let agrees = result.is_ok() == row.valid;
        if row.valid {
            valid_total += 1;
            valid_ok += usize::from(agrees);
        } else {
            invalid_total += 1;
            invalid_ok += usize::from(agrees);
        }
        let known = KNOWN_CONFLICTS.iter().any(|(p, _)| *p == row.path);
        match (agrees, known) {
            (true, true) => stale.push(row.path.clone()),
            (false, false) => wrong.push(match result {
                Ok(()) => format!("ACCEPTED invalid {} ({})", row.path, row.note),
                Err(e) => format!("REJECTED valid {}: {e}", row.path),
            }),
            _ => {}
        }
    }
    eprintln!(
        "corpus_hls_validate: valid accepted {valid_ok}/{valid_total}, invalid rejected {invalid_ok}/{invalid_total}, \
         {} known conflicts",
        KNOWN_CONFLICTS.len()
    );
    for (p, why) in KNOWN_CONFLICTS {
        eprintln!("  known conflict: {p}: {why}");
    }
    assert!(wrong.is_empty(), "{} misclassified:\n{}", wrong.len(), wrong.join("\n"));
    assert!(stale.is_empty(), "now classified as the corpus says; remove from KNOWN_CONFLICTS:\n{}", stale.join("\n"));
    assert_eq!(valid_total + invalid_total, rows.len());
}
