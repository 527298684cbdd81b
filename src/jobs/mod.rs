//! Background jobs: a small scheduler of named periodic tasks and the registry of their
//! status, read by `/readyz` (detail) and `/metrics`.
//!
//! A job is a tokio task that runs a closure every `interval` plus a random jitter (so
//! that many jobs started together do not fire together). It stops when the
//! [`JobGuard`] returned by [`spawn_periodic`] is dropped, or when a run reports
//! [`Run::Stop`] (its owner went away): a config reload drops the old snapshot, and with
//! it the checkers of its pools, instead of leaking them. Jobs of the same name (the old
//! and the new snapshot's checker of one url) share one status, so counters survive
//! reloads the way the other metrics do.
//!
//! One job a file: [`health_check`], [`rate_limit_gc`], [`jwks_refresh`]; cert reload
//! follows.

pub mod health_check;
pub mod jwks_refresh;
pub mod rate_limit_gc;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tokio::sync::oneshot;

/// What one run of a job came to.
#[derive(Debug)]
pub enum Run {
    /// The run did its work.
    Ok,
    /// The run failed; the text is shown in `/readyz` detail.
    Failed(String),
    /// The job has nothing left to do (its owner went away): stop it.
    Stop,
}

/// The status of one job (or of the jobs of one name across reloads).
#[derive(Debug)]
pub struct JobStatus {
    name: String,
    interval: Duration,
    runs: AtomicU64,
    failures: AtomicU64,
    /// Unix time in ms of the last good run (0: none yet).
    last_ok_ms: AtomicU64,
    /// Unix time in ms of the last failed run (0: none yet).
    last_error_ms: AtomicU64,
    last_error: ArcSwapOption<String>,
    /// Running jobs that report here.
    owners: AtomicUsize,
}

impl JobStatus {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Relaxed)
    }

    /// Failed runs so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    fn record(&self, run: &Run) {
        match run {
            Run::Ok => {
                self.runs.fetch_add(1, Relaxed);
                self.last_ok_ms.store(unix_ms(), Relaxed);
            }
            Run::Failed(e) => {
                self.runs.fetch_add(1, Relaxed);
                self.failures.fetch_add(1, Relaxed);
                self.last_error_ms.store(unix_ms(), Relaxed);
                self.last_error.store(Some(Arc::new(e.clone())));
            }
            Run::Stop => {}
        }
    }

    /// The status as JSON, for `/readyz` detail.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |v: &AtomicU64| match v.load(Relaxed) {
            0 => serde_json::Value::Null,
            n => n.into(),
        };
        serde_json::json!({
            "running": self.owners.load(Relaxed),
            "interval_ms": u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            "runs": self.runs(),
            "failures": self.failures(),
            "last_ok_unix_ms": ms(&self.last_ok_ms),
            "last_error_unix_ms": ms(&self.last_error_ms),
            "last_error": self.last_error.load().as_deref().map(String::as_str),
        })
    }
}

/// Every running job's status, by name. Process-wide, like the metrics.
#[derive(Debug, Default)]
pub struct Registry {
    jobs: RwLock<BTreeMap<String, Arc<JobStatus>>>,
}

impl Registry {
    /// The statuses of the running jobs, by name.
    pub fn statuses(&self) -> Vec<Arc<JobStatus>> {
        match self.jobs.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Appends the job counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let jobs = self.statuses();
        out.push_str(
            "# HELP streamgate_job_runs_total Runs of background jobs (health checks, ...).\n# TYPE streamgate_job_runs_total counter\n",
        );
        for j in &jobs {
            let _ = writeln!(out, "streamgate_job_runs_total{{job=\"{}\"}} {}", crate::telemetry::metrics::esc(&j.name), j.runs());
        }
        out.push_str(
            "# HELP streamgate_job_failures_total Failed runs of background jobs.\n# TYPE streamgate_job_failures_total counter\n",
        );
        for j in &jobs {
            let _ = writeln!(out, "streamgate_job_failures_total{{job=\"{}\"}} {}", crate::telemetry::metrics::esc(&j.name), j.failures());
        }
    }

    /// Registers a job of this name (sharing the status of a running job of the same name).
    fn enter(&self, name: &str, interval: Duration) -> Arc<JobStatus> {
        let fresh = || {
            Arc::new(JobStatus {
                name: name.to_owned(),
                interval,
                runs: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                last_ok_ms: AtomicU64::new(0),
                last_error_ms: AtomicU64::new(0),
                last_error: ArcSwapOption::empty(),
                owners: AtomicUsize::new(0),
            })
        };
        // Counted under the lock, so that `leave` never removes an entry being entered.
        let status = match self.jobs.write() {
            Ok(mut m) => {
                let s = m.entry(name.to_owned()).or_insert_with(fresh).clone();
                s.owners.fetch_add(1, Relaxed);
                s
            }
            Err(_) => fresh(),
        };
        status
    }

    /// A job of this status ended; the last one out removes the entry.
    fn leave(&self, status: &Arc<JobStatus>) {
        if let Ok(mut m) = self.jobs.write() {
            if status.owners.fetch_sub(1, Relaxed) == 1 && m.get(&status.name).is_some_and(|s| Arc::ptr_eq(s, status)) {
                m.remove(&status.name);
            }
        }
    }
}

/// Keeps a job running; dropping it stops the job (at once, even mid-sleep).
#[derive(Debug)]
pub struct JobGuard {
    _stop: oneshot::Sender<()>,
    status: Arc<JobStatus>,
}

impl JobGuard {
    /// The job's status.
    pub fn status(&self) -> &Arc<JobStatus> {
        &self.status
    }
}

/// Removes a job from the registry when its task ends, however it ends (stopped, or
/// dropped with the runtime).
struct Leave {
    registry: Arc<Registry>,
    status: Arc<JobStatus>,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.registry.leave(&self.status);
    }
}

/// Spawns a periodic job on the current tokio runtime: `job` runs after a first random
/// delay below `jitter`, then every `interval` plus a random delay below `jitter`. Each
/// run is recorded under `name` in `registry`. Outside a tokio runtime nothing starts
/// (and an error is logged).
pub fn spawn_periodic<F, Fut>(registry: &Arc<Registry>, name: String, interval: Duration, jitter: Duration, mut job: F) -> JobGuard
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Run> + Send + 'static,
{
    let status = registry.enter(&name, interval);
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let leave = Leave { registry: registry.clone(), status: status.clone() };
    let task = async move {
        let leave = leave;
        let mut wait = random_below(jitter);
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tokio::time::sleep(wait) => {}
            }
            let run = tokio::select! {
                _ = &mut stop_rx => break,
                run = job() => run,
            };
            if let Run::Stop = run {
                break;
            }
            leave.status.record(&run);
            wait = interval.saturating_add(random_below(jitter));
        }
        drop(leave);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn(task)),
        // Dropping the task removes it from the registry again.
        Err(_) => tracing::error!(job = %name, "no tokio runtime: background job not started"),
    }
    JobGuard { _stop: stop_tx, status }
}

/// A random duration in `[0, max)` (zero when `max` is zero). Not for cryptography.
fn random_below(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_ms());
    Duration::from_nanos(h.finish() % nanos)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn eventually(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    #[tokio::test]
    async fn runs_records_and_stops_when_the_guard_drops() {
        let reg = Arc::new(Registry::default());
        let n = Arc::new(AtomicU64::new(0));
        let counter = n.clone();
        let guard = spawn_periodic(&reg, "tick".into(), Duration::from_millis(5), Duration::from_millis(2), move || {
            let k = counter.fetch_add(1, Relaxed);
            async move {
                if k % 2 == 0 {
                    Run::Ok
                } else {
                    Run::Failed(format!("odd {k}"))
                }
            }
        });
        assert!(eventually(|| guard.status().runs() >= 4).await);
        assert!(guard.status().failures() >= 1);
        let json = guard.status().to_json();
        assert!(json["last_error"].as_str().is_some_and(|e| e.starts_with("odd")), "{json}");
        let mut text = String::new();
        reg.render(&mut text);
        assert!(text.contains("streamgate_job_runs_total{job=\"tick\"}"), "{text}");
        drop(guard);
        assert!(eventually(|| reg.statuses().is_empty()).await, "job left in the registry");
        let after = n.load(Relaxed);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(n.load(Relaxed) <= after + 1, "job kept running after its guard was dropped");
    }

    #[tokio::test]
    async fn a_job_can_stop_itself_and_jobs_of_one_name_share_a_status() {
        let reg = Arc::new(Registry::default());
        let a = spawn_periodic(&reg, "same".into(), Duration::from_millis(5), Duration::ZERO, || async { Run::Ok });
        let b = spawn_periodic(&reg, "same".into(), Duration::from_millis(5), Duration::ZERO, || async { Run::Stop });
        assert!(Arc::ptr_eq(a.status(), b.status()));
        // b stopped itself; a keeps the entry alive.
        assert!(eventually(|| a.status().owners.load(Relaxed) == 1).await);
        assert_eq!(reg.statuses().len(), 1);
        drop(b);
        drop(a);
        assert!(eventually(|| reg.statuses().is_empty()).await);
    }
}
