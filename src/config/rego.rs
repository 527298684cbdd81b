//! Rego policies compiled at validation: the module is parsed and compiled for its
//! `allow` rule (and `reason`, when it has one) once per config, so a syntax or compile
//! error is a config problem with the policy file's line, and a request only evaluates.

use std::fmt;
use std::sync::Arc;

/// The package every policy declares.
pub const PACKAGE: &str = "data.streamgate";
pub const ALLOW: &str = "data.streamgate.allow";
pub const REASON: &str = "data.streamgate.reason";

/// A policy compiled for evaluation. Cheap to clone (shared).
#[derive(Clone)]
pub struct CompiledPolicy {
    /// Compiled for `allow`.
    pub allow: regorus::CompiledPolicy,
    /// Compiled for `reason`, when the module defines it.
    pub reason: Option<regorus::CompiledPolicy>,
    /// The same rules compiled to regorus' register VM (`allow`, `reason` entry points),
    /// several times faster per evaluation than the tree-walking interpreter; `None`
    /// when the module uses something the VM compiler does not support.
    pub program: Option<Arc<regorus::rvm::Program>>,
    /// The parts of `input` the module reads (the rest is never built).
    pub reads: InputParts,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("reason", &self.reason.is_some())
            .field("vm", &self.program.is_some())
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

/// Which top-level keys of `input` a policy can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputParts {
    /// `input.headers`.
    pub headers: bool,
    /// `input.query`.
    pub query: bool,
    /// `input.claims`.
    pub claims: bool,
    /// `input.client`.
    pub client: bool,
}

impl InputParts {
    /// Every part.
    pub const ALL: Self = Self { headers: true, query: true, claims: true, client: true };
}

/// Why a policy does not compile: the file, line and column where known, and the
/// interpreter's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoError {
    /// The policy file.
    pub file: String,
    /// 1-based line, when the interpreter named one.
    pub line: Option<u32>,
    /// 1-based column, when the interpreter named one.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RegoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}: {} (column {c})", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl CompiledPolicy {
    /// Parses and compiles a module. It must be `package streamgate` and define `allow`.
    pub fn compile(file: &str, source: &str) -> Result<Self, RegoError> {
        let fail = |e: anyhow::Error| RegoError::from_regorus(file, &e);
        let mut engine = regorus::Engine::new();
        let package = engine.add_policy(file.to_owned(), source.to_owned()).map_err(fail)?;
        if package != PACKAGE {
            return Err(RegoError::plain(
                file,
                format!("the package must be `streamgate` (found `{}`)", package.trim_start_matches("data.")),
            ));
        }
        let declared = |rule: &str| source_declares(source, rule);
        if !declared("allow") {
            return Err(RegoError::plain(file, "no `allow` rule: the policy must define `allow` (e.g. `default allow := false`)".into()));
        }
        let allow = engine.compile_with_entrypoint(&Arc::<str>::from(ALLOW)).map_err(fail)?;
        let reason = if declared("reason") { Some(engine.compile_with_entrypoint(&Arc::<str>::from(REASON)).map_err(fail)?) } else { None };
        let mut entry_points = vec![ALLOW];
        if reason.is_some() {
            entry_points.push(REASON);
        }
        let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(&allow, &entry_points).ok();
        Ok(Self { allow, reason, program, reads: reads_of(source) })
    }
}

impl RegoError {
    fn plain(file: &str, message: String) -> Self {
        Self { file: file.to_owned(), line: None, column: None, message }
    }

    /// regorus renders errors as `\n--> FILE:LINE:COL\n |\nN | text\n | ^\nerror: message`;
    /// take the location and the message and drop the drawing.
    fn from_regorus(file: &str, e: &anyhow::Error) -> Self {
        let text = format!("{e:#}");
        let mut line = None;
        let mut column = None;
        let mut message = None;
        for l in text.lines() {
            if let Some(loc) = l.trim().strip_prefix("--> ") {
                let mut parts = loc.rsplitn(3, ':');
                column = parts.next().and_then(|c| c.parse().ok());
                line = parts.next().and_then(|c| c.parse().ok());
            } else if let Some(m) = l.strip_prefix("error: ") {
                message = Some(m.trim().to_owned());
            }
        }
        let message = message.unwrap_or_else(|| text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "));
        Self { file: file.to_owned(), line, column, message }
    }
}

/// Whether a module declares a rule named `rule` (at the start of a line, as Rego rule
/// heads are written: `allow if`, `default allow := false`, `reason := ...`).
fn source_declares(source: &str, rule: &str) -> bool {
    source.lines().any(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("default ").map_or(l, str::trim_start);
        l.strip_prefix(rule).is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| !(c.is_alphanumeric() || c == '_')))
    })
}

/// The parts of `input` a module can read: every `input` must be followed by
/// `.headers`, `.query`, `.claims`, `.client` (or a part needing no building); anything
/// else (`input[x]`, `x := input`) means every part.
fn reads_of(source: &str) -> InputParts {
    let mut parts = InputParts { headers: false, query: false, claims: false, client: false };
    let code: String = source.lines().map(|l| l.split('#').next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find("input").map(|i| i + from) {
        from = i + 5;
        let before = i.checked_sub(1).and_then(|j| b.get(j)).copied();
        let after = b.get(i + 5).copied();
        let ident = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
        if ident(before) || ident(after) || before == Some(b'.') {
            continue;
        }
        if after != Some(b'.') {
            return InputParts::ALL;
        }
        let rest = &code[i + 6..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        match name.as_str() {
            "headers" => parts.headers = true,
            "query" => parts.query = true,
            "claims" => parts.claims = true,
            "client" => parts.client = true,
            "method" | "path" | "route" => {}
            _ => return InputParts::ALL,
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_line() {
        let src = "package streamgate\n\nallow if {\n  input.method == \n}\n";
        let e = CompiledPolicy::compile("p.rego", src).unwrap_err();
        assert_eq!(e.line, Some(5), "{e:?}");
        assert!(e.to_string().starts_with("p.rego:5: "), "{e}");
    }

    #[test]
    fn package_and_allow_are_required() {
        let e = CompiledPolicy::compile("p.rego", "package other\nallow := true\n").unwrap_err();
        assert!(e.message.contains("package must be `streamgate`"), "{e}");
        let e = CompiledPolicy::compile("p.rego", "package streamgate\nx := true\n").unwrap_err();
        assert!(e.message.contains("no `allow` rule"), "{e}");
        let ok = CompiledPolicy::compile("p.rego", "package streamgate\ndefault allow := false\n").unwrap();
        assert!(ok.reason.is_none());
    }

    #[test]
    fn reads_only_what_is_named() {
        let r =
            reads_of("package streamgate\nallow if input.headers[\"x\"] == \"y\"\nallow if input.client.country == \"FR\" # input[x]\n");
        assert_eq!(r, InputParts { headers: true, query: false, claims: false, client: true });
        assert_eq!(reads_of("allow if { x := input; x.claims.sub }"), InputParts::ALL);
        assert_eq!(reads_of("allow if input[\"claims\"]"), InputParts::ALL);
        assert_eq!(
            reads_of("allow if input.method == \"GET\"\nmy_input := 1"),
            InputParts { headers: false, query: false, claims: false, client: false }
        );
    }
}
