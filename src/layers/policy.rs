//! Stage 5: the route's Rego policy. `input` is built per request from the head and the
//! context, but only the parts the module reads (`headers`, `query`, `claims`, `client`
//! are skipped when the module never names them); the module was compiled once at
//! validation, so a request pays for one evaluation of `allow` (and of `reason` on a
//! denial only).
//!
//! An evaluation error (a builtin failing on odd input, the interpreter's limits) fails
//! closed as `500 internal`, logged with the route: it is a policy bug for the operator,
//! not a verdict about the viewer, and must not look like one in dashboards.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regorus::rvm::vm::RegoVM;
use regorus::rvm::Program;
use regorus::Value;

use super::{Head, RequestContext};
use crate::config::access::PolicySettings;
use crate::config::rego::{CompiledPolicy, InputParts, ALLOW, REASON};
use crate::error::ProxyError;

/// A route's compiled policy.
pub struct Policy {
    compiled: CompiledPolicy,
    path: Arc<str>,
    /// Recent decisions by the parts of `input` the module reads; `None` when the module
    /// calls a builtin whose answer can change for the same input (time, randomness,
    /// network, runtime).
    decisions: Option<Mutex<HashMap<Box<[u8]>, Decision>>>,
}

/// A cached verdict.
struct Decision {
    /// `None`: allowed; `Some(reason)`: denied.
    denied: Option<String>,
    until: Instant,
    /// Keeps the claims whose address is part of the key alive, so that address cannot
    /// be reused by other claims while the entry exists.
    _claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// Decisions kept per policy (the map is emptied when full: bounded, and refilled by the
/// viewers that are active).
const DECISIONS: usize = 8192;
/// How long a decision is reused. Policies are functions of `input`; the bound is there
/// for anything a static look at the module cannot see.
const DECISION_TTL: Duration = Duration::from_secs(5);

/// Builtins whose result is not a function of `input`: a module that names one is
/// evaluated on every request.
const UNCACHEABLE: [&str; 8] = ["time.", "rand.", "uuid.", "http.send", "net.lookup", "opa.runtime", "crypto.", "trace("];

thread_local! {
    static KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Policy {
    /// Takes the policy compiled by validation.
    pub fn new(settings: &PolicySettings) -> Self {
        let cacheable = !UNCACHEABLE.iter().any(|b| settings.source.contains(b));
        Self {
            compiled: settings.compiled.clone(),
            path: settings.path.as_str().into(),
            decisions: cacheable.then(|| Mutex::new(HashMap::new())),
        }
    }

    /// Evaluates `allow` for this request: `Ok` when it is `true`; `403 forbidden` with
    /// the policy's `reason` (or "denied by policy") otherwise. A request whose relevant
    /// parts (method, path, route and whichever of query, headers, claims and client the
    /// module reads) match a recent one gets that one's verdict without an evaluation.
    pub fn check(&self, head: &Head<'_>, ctx: &RequestContext, route: &str) -> Result<(), ProxyError> {
        let Some(decisions) = &self.decisions else { return self.evaluate(head, ctx, route) };
        KEY.with(|cell| {
            let Ok(mut key) = cell.try_borrow_mut() else { return self.evaluate(head, ctx, route) };
            decision_key(&mut key, head, ctx, route, self.compiled.reads);
            let now = Instant::now();
            if let Ok(map) = decisions.lock() {
                if let Some(d) = map.get(key.as_slice()).filter(|d| d.until > now) {
                    return match &d.denied {
                        None => Ok(()),
                        Some(reason) => Err(ProxyError::Forbidden(reason.clone())),
                    };
                }
            }
            let verdict = self.evaluate(head, ctx, route);
            let denied = match &verdict {
                Ok(()) => None,
                Err(ProxyError::Forbidden(reason)) => Some(reason.clone()),
                Err(_) => return verdict,
            };
            if let Ok(mut map) = decisions.lock() {
                if map.len() >= DECISIONS {
                    map.clear();
                }
                let claims = if self.compiled.reads.claims { ctx.claims.clone() } else { None };
                map.insert(key.as_slice().into(), Decision { denied, until: now + DECISION_TTL, _claims: claims });
            }
            verdict
        })
    }

    fn evaluate(&self, head: &Head<'_>, ctx: &RequestContext, route: &str) -> Result<(), ProxyError> {
        let input = input(head, ctx, route, self.compiled.reads);
        let reason = match &self.compiled.program {
            Some(program) => {
                let run = |vm: &mut RegoVM| -> Result<Option<Option<String>>, ProxyError> {
                    vm.set_input(input);
                    let allow = vm.execute_entry_point_by_name(ALLOW).map_err(|e| self.failed(route, &e.into()))?;
                    if allow == Value::Bool(true) {
                        return Ok(None);
                    }
                    Ok(Some(match &self.compiled.reason {
                        Some(_) => reason_text(&vm.execute_entry_point_by_name(REASON).map_err(|e| self.failed(route, &e.into()))?),
                        None => None,
                    }))
                };
                match with_vm(program, run)? {
                    None => return Ok(()),
                    Some(reason) => reason,
                }
            }
            None => {
                let allow = self.compiled.allow.eval_with_input(input.clone()).map_err(|e| self.failed(route, &e))?;
                if allow == Value::Bool(true) {
                    return Ok(());
                }
                match &self.compiled.reason {
                    Some(r) => reason_text(&r.eval_with_input(input).map_err(|e| self.failed(route, &e))?),
                    None => None,
                }
            }
        };
        Err(ProxyError::Forbidden(reason.unwrap_or_else(|| "denied by policy".into())))
    }

    fn failed(&self, route: &str, e: &anyhow::Error) -> ProxyError {
        tracing::warn!(route, policy = &*self.path, error = %e, "policy evaluation failed; request refused");
        ProxyError::Internal("policy evaluation failed".into())
    }
}

/// Virtual machines kept per worker thread, a few programs each: setting one up costs
/// about as much as evaluating a small policy. Keyed by the program itself (held, so a
/// reloaded config's program can never be mistaken for an old one at the same address).
const VMS_PER_THREAD: usize = 4;

thread_local! {
    static VMS: RefCell<Vec<(Arc<Program>, RegoVM)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's VM for `program` (made on first use; most recently used
/// first, the least recently used dropped past [`VMS_PER_THREAD`]).
fn with_vm<T>(program: &Arc<Program>, f: impl FnOnce(&mut RegoVM) -> T) -> T {
    let fresh = || {
        let mut vm = RegoVM::new();
        vm.load_program(program.clone());
        vm
    };
    VMS.with(|cell| {
        let Ok(mut vms) = cell.try_borrow_mut() else {
            return f(&mut fresh());
        };
        let mut vm = match vms.iter().position(|(p, _)| Arc::ptr_eq(p, program)) {
            Some(i) => vms.remove(i).1,
            None => fresh(),
        };
        let out = f(&mut vm);
        vms.insert(0, (program.clone(), vm));
        vms.truncate(VMS_PER_THREAD);
        out
    })
}

/// `reason` as text: a string, or a set/array of strings (`reason contains "..."`)
/// joined with "; ".
fn reason_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.to_string()),
        Value::Set(_) | Value::Array(_) => {
            let items: Vec<String> = match v {
                Value::Set(s) => s.iter().filter_map(|x| x.as_string().ok().map(|s| s.to_string())).collect(),
                Value::Array(a) => a.iter().filter_map(|x| x.as_string().ok().map(|s| s.to_string())).collect(),
                _ => Vec::new(),
            };
            (!items.is_empty()).then(|| items.join("; "))
        }
        _ => None,
    }
}

/// The bytes that decide a verdict: everything `input` is built from, for the parts the
/// module reads. Claims count by identity (the verified-token cache hands out one shared
/// map per token), which [`Decision`] pins.
fn decision_key(key: &mut Vec<u8>, head: &Head<'_>, ctx: &RequestContext, route: &str, reads: InputParts) {
    key.clear();
    for part in [head.method.as_str(), head.uri.path(), route] {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    if reads.query {
        key.extend_from_slice(head.uri.query().unwrap_or("").as_bytes());
        key.push(0);
    }
    if reads.headers {
        for (name, value) in head.headers {
            key.extend_from_slice(name.as_str().as_bytes());
            key.push(b':');
            key.extend_from_slice(value.as_bytes());
            key.push(0);
        }
        key.push(0);
    }
    if reads.claims {
        let addr = ctx.claims.as_ref().map_or(0, |c| Arc::as_ptr(c) as usize);
        key.extend_from_slice(&addr.to_le_bytes());
    }
    if reads.client {
        use std::io::Write as _;
        let _ = write!(key, "{}", ctx.client_ip);
        for v in [ctx.country.as_deref(), ctx.region.as_deref(), ctx.device, ctx.session_id.as_deref()] {
            key.push(0);
            if let Some(v) = v {
                key.push(1);
                key.extend_from_slice(v.as_bytes());
            }
        }
    }
}

/// The `input` document (see docs/access-control.md).
pub fn input(head: &Head<'_>, ctx: &RequestContext, route: &str, reads: InputParts) -> Value {
    let k = &*KEYS;
    let mut doc = BTreeMap::new();
    doc.insert(k.method.clone(), s(head.method.as_str()));
    doc.insert(k.path.clone(), s(head.uri.path()));
    doc.insert(k.route.clone(), s(route));
    if reads.query {
        let mut q = BTreeMap::new();
        for pair in head.uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            q.entry(s(&decode(k))).or_insert_with(|| s(&decode(v)));
        }
        doc.insert(k.query.clone(), Value::from(q));
    }
    if reads.headers {
        let mut h: BTreeMap<Value, Value> = BTreeMap::new();
        for name in head.headers.keys() {
            let sep = if name == http::header::COOKIE { "; " } else { ", " };
            let joined = head.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes())).collect::<Vec<_>>().join(sep);
            h.insert(s(name.as_str()), Value::from(joined));
        }
        doc.insert(k.headers.clone(), Value::from(h));
    }
    if reads.claims {
        let claims = ctx.claims.as_ref().map_or_else(Value::new_object, |c| object(c));
        doc.insert(k.claims.clone(), claims);
    }
    if reads.client {
        let mut c = BTreeMap::new();
        c.insert(k.ip.clone(), Value::from(ctx.client_ip.to_string()));
        for (key, v) in [
            (&k.country, ctx.country.as_deref()),
            (&k.region, ctx.region.as_deref()),
            (&k.device, ctx.device),
            (&k.session, ctx.session_id.as_deref()),
        ] {
            if let Some(v) = v {
                c.insert(key.clone(), s(v));
            }
        }
        doc.insert(k.client.clone(), Value::from(c));
    }
    Value::from(doc)
}

/// The key strings of `input`, made once (a clone is a reference count).
struct Keys {
    method: Value,
    path: Value,
    route: Value,
    query: Value,
    headers: Value,
    claims: Value,
    client: Value,
    ip: Value,
    country: Value,
    region: Value,
    device: Value,
    session: Value,
}

static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(|| Keys {
    method: s("method"),
    path: s("path"),
    route: s("route"),
    query: s("query"),
    headers: s("headers"),
    claims: s("claims"),
    client: s("client"),
    ip: s("ip"),
    country: s("country"),
    region: s("region"),
    device: s("device"),
    session: s("session"),
});

fn s(v: &str) -> Value {
    Value::from(v)
}

fn decode(v: &str) -> String {
    let plus = v.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

/// JSON claims as a Rego object, converted directly (no serde round trip).
fn object(map: &serde_json::Map<String, serde_json::Value>) -> Value {
    Value::from(map.iter().map(|(k, v)| (s(k), json(v))).collect::<BTreeMap<_, _>>())
}

fn json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(x) => s(x),
        serde_json::Value::Array(a) => Value::from(a.iter().map(json).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => object(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method, Uri};

    fn policy(src: &str) -> Policy {
        let compiled = CompiledPolicy::compile("test.rego", src).unwrap();
        Policy::new(&PolicySettings { path: "test.rego".into(), source: src.into(), compiled })
    }

    fn check(p: &Policy, path: &str, ctx: &RequestContext) -> Result<(), ProxyError> {
        let uri: Uri = path.parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-tier", HeaderValue::from_static("gold"));
        p.check(&Head { method: &Method::GET, uri: &uri, headers: &h }, ctx, "vod")
    }

    fn ctx_with_claims(claims: serde_json::Value) -> RequestContext {
        let mut ctx = RequestContext::new("203.0.113.7".parse().unwrap());
        if let serde_json::Value::Object(m) = claims {
            ctx.claims = Some(Arc::new(m));
        }
        ctx
    }

    const ENTITLEMENT: &str = r#"package streamgate

default allow := false

allow if {
    some prefix in input.claims.entitlements
    startswith(input.path, prefix)
}

reason := sprintf("not entitled to %s", [input.path]) if not allow
"#;

    #[test]
    fn a_claim_entitles_to_a_path_prefix() {
        let p = policy(ENTITLEMENT);
        let gold = ctx_with_claims(serde_json::json!({"sub": "v1", "entitlements": ["/vod/premium/", "/vod/free/"]}));
        assert!(check(&p, "/vod/premium/a/master.m3u8", &gold).is_ok());
        let free = ctx_with_claims(serde_json::json!({"sub": "v2", "entitlements": ["/vod/free/"]}));
        match check(&p, "/vod/premium/a/master.m3u8", &free) {
            Err(ProxyError::Forbidden(r)) => assert_eq!(r, "not entitled to /vod/premium/a/master.m3u8"),
            other => panic!("{other:?}"),
        }
        // No claims at all: `{}`, denied.
        assert!(matches!(check(&p, "/vod/free/x", &RequestContext::new("1.1.1.1".parse().unwrap())), Err(ProxyError::Forbidden(_))));
    }

    /// Verdicts are reused only for the same relevant input: the same claims (by
    /// identity) and path; other claims, another path or a changed query are evaluated.
    #[test]
    fn cached_verdicts_follow_the_input() {
        let p = policy(ENTITLEMENT);
        assert!(p.decisions.is_some());
        let gold = ctx_with_claims(serde_json::json!({"entitlements": ["/vod/premium/"]}));
        let free = ctx_with_claims(serde_json::json!({"entitlements": ["/vod/free/"]}));
        for _ in 0..3 {
            assert!(check(&p, "/vod/premium/a.m3u8", &gold).is_ok());
            assert!(check(&p, "/vod/premium/a.m3u8", &free).is_err(), "other claims, same path");
            assert!(check(&p, "/vod/free/a.m3u8", &gold).is_err(), "same claims, other path");
            assert!(check(&p, "/vod/free/a.m3u8", &free).is_ok());
        }
        assert_eq!(p.decisions.as_ref().unwrap().lock().unwrap().len(), 4);
        let q = policy("package streamgate\nallow if input.query.k == \"1\"\n");
        assert!(check(&q, "/x?k=1", &free).is_ok());
        assert!(check(&q, "/x?k=2", &free).is_err(), "the query is part of the key when the module reads it");
        let timed = policy("package streamgate\nallow if time.now_ns() > 0\n");
        assert!(timed.decisions.is_none(), "a module using time is evaluated every time");
    }

    #[test]
    fn input_has_every_documented_part() {
        let p = policy(
            r#"package streamgate
allow if {
    input.method == "GET"
    input.path == "/vod/a.m3u8"
    input.query.session == "a b"
    input.headers["x-tier"] == "gold"
    input.client.ip == "203.0.113.7"
    input.client.country == "FR"
    input.client.region == "FR-IDF"
    input.client.device == "tv"
    input.client.session == "s1"
    input.claims.n == 3
    input.route == "vod"
}
"#,
        );
        let mut ctx = ctx_with_claims(serde_json::json!({"n": 3}));
        ctx.country = Some("FR".into());
        ctx.region = Some("FR-IDF".into());
        ctx.device = Some("tv");
        ctx.session_id = Some("s1".into());
        assert!(check(&p, "/vod/a.m3u8?session=a+b", &ctx).is_ok());
        assert!(matches!(check(&p, "/vod/a.m3u8?session=other", &ctx), Err(ProxyError::Forbidden(r)) if r == "denied by policy"));
    }

    #[test]
    fn reason_sets_are_joined_and_errors_fail_closed() {
        let p = policy("package streamgate\ndefault allow := false\nreason contains \"a\"\nreason contains \"b\"\n");
        assert!(matches!(check(&p, "/", &RequestContext::new("1.1.1.1".parse().unwrap())), Err(ProxyError::Forbidden(r)) if r == "a; b"));
        let p = policy("package streamgate\nallow if to_number(input.path) > 1\n");
        let r = check(&p, "/x", &RequestContext::new("1.1.1.1".parse().unwrap()));
        assert!(matches!(r, Err(ProxyError::Internal(_)) | Err(ProxyError::Forbidden(_))), "{r:?}");
    }

    fn example(name: &str) -> Policy {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies").join(name);
        policy(&std::fs::read_to_string(path).unwrap())
    }

    fn denied(r: Result<(), ProxyError>) -> String {
        match r {
            Err(ProxyError::Forbidden(reason)) => reason,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn example_policies_do_what_they_say() {
        let anon = || RequestContext::new("203.0.113.7".parse().unwrap());
        let geo = example("geo-block.rego");
        let mut kp = anon();
        kp.country = Some("KP".into());
        assert_eq!(denied(check(&geo, "/vod/a.m3u8", &kp)), "this content is not available in your country (KP)");
        let mut fr = anon();
        fr.country = Some("FR".into());
        assert!(check(&geo, "/vod/a.m3u8", &fr).is_ok());
        assert!(check(&geo, "/vod/a.m3u8", &anon()).is_ok(), "unknown country passes");

        let dev = example("device-limit.rego");
        let with = |d: Option<&'static str>| {
            let mut c = anon();
            c.device = d;
            c
        };
        assert!(check(&dev, "/live/1080p/i.m3u8", &with(None)).is_ok());
        assert!(check(&dev, "/live/1080p/i.m3u8", &with(Some("mobile"))).is_ok());
        assert!(check(&dev, "/live/2160p/i.m3u8", &with(Some("tv"))).is_ok());
        assert_eq!(denied(check(&dev, "/live/2160p/i.m3u8", &with(Some("mobile")))), "4K renditions are for TVs and desktops, not mobile");
        assert_eq!(denied(check(&dev, "/live/1080p/i.m3u8", &with(Some("bot")))), "automated clients may not stream");

        let ent = example("entitlement.rego");
        assert!(check(&ent, "/vod/free/a.m3u8", &anon()).is_ok());
        let sports = ctx_with_claims(serde_json::json!({"sub": "v", "entitlements": ["/vod/sports/", 7]}));
        assert!(check(&ent, "/vod/sports/final/master.m3u8", &sports).is_ok());
        assert_eq!(denied(check(&ent, "/vod/news/a.m3u8", &sports)), "/vod/news/a.m3u8 is not part of your subscription");
        assert_eq!(denied(check(&ent, "/vod/news/a.m3u8", &anon())), "/vod/news/a.m3u8 is not part of your subscription");
    }

    /// Per-evaluation cost, printed (run with `--nocapture`); debug builds are ~10x
    /// slower than release.
    #[test]
    fn evaluation_cost() {
        let p = policy(crate::layers::policy::tests::ENTITLEMENT);
        let ctx = ctx_with_claims(serde_json::json!({"sub": "v1", "entitlements": ["/vod/premium/"]}));
        let n = 2000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert!(check(&p, "/vod/premium/a/master.m3u8", &ctx).is_ok());
        }
        eprintln!("policy evaluation (vm: {}): {:?} per request", p.compiled.program.is_some(), t.elapsed() / n);
        let uri: Uri = "/vod/premium/a/master.m3u8".parse().unwrap();
        let h = HeaderMap::new();
        let head = Head { method: &Method::GET, uri: &uri, headers: &h };
        let t = std::time::Instant::now();
        for _ in 0..n {
            let i = input(&head, &ctx, "vod", p.compiled.reads);
            assert_eq!(p.compiled.allow.eval_with_input(i).unwrap(), Value::Bool(true));
        }
        eprintln!("policy evaluation (interpreter): {:?} per request", t.elapsed() / n);
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(input(&head, &ctx, "vod", p.compiled.reads));
        }
        eprintln!("policy input (claims only): {:?} per request", t.elapsed() / n);
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(input(&head, &ctx, "vod", InputParts::ALL));
        }
        eprintln!("policy input (all parts): {:?} per request", t.elapsed() / n);
        if let Some(program) = &p.compiled.program {
            let t = std::time::Instant::now();
            for _ in 0..n {
                let mut vm = regorus::rvm::vm::RegoVM::new();
                vm.load_program(program.clone());
                std::hint::black_box(vm);
            }
            eprintln!("vm setup: {:?} per request", t.elapsed() / n);
            let mut vm = regorus::rvm::vm::RegoVM::new();
            vm.load_program(program.clone());
            let t = std::time::Instant::now();
            for _ in 0..n {
                vm.set_input(input(&head, &ctx, "vod", p.compiled.reads));
                assert_eq!(vm.execute_entry_point_by_name(ALLOW).unwrap(), Value::Bool(true));
            }
            eprintln!("vm reused (input + eval): {:?} per request", t.elapsed() / n);
        }
        // The alternative: clone a prepared engine per request.
        let mut engine = regorus::Engine::new();
        engine.add_policy("e.rego".into(), ENTITLEMENT.into()).unwrap();
        engine.set_input(input(&head, &ctx, "vod", InputParts::ALL));
        engine.eval_rule("data.streamgate.allow".into()).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            let mut e = engine.clone();
            e.set_input(input(&head, &ctx, "vod", p.compiled.reads));
            assert_eq!(e.eval_rule("data.streamgate.allow".into()).unwrap(), Value::Bool(true));
        }
        eprintln!("policy evaluation (engine clone): {:?} per request", t.elapsed() / n);
    }
}
