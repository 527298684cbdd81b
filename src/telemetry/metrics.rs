//! The metrics registry, rendered in the Prometheus text format on `GET /metrics`.
//!
//! Hand-rolled on atomics instead of a metrics facade: the label sets are fixed (route,
//! status class, origin), each route and origin resolves its counters once when a
//! snapshot is built, and the request path then touches only its own atomics, with no
//! map lookup or allocation per request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A cumulative latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }
}

/// Counters of one route.
#[derive(Default)]
pub struct RouteStats {
    /// Responses by status class: index 1..=5 for 1xx..5xx, 0 for anything else.
    by_class: [AtomicU64; 6],
    /// Time from request head to end of response body.
    pub latency: Histogram,
    /// Response body bytes sent.
    pub bytes: AtomicU64,
}

impl RouteStats {
    /// Counts one response.
    pub fn record(&self, status: u16, bytes: u64, elapsed: Duration) {
        let class = (status / 100) as usize;
        self.by_class[if (1..=5).contains(&class) { class } else { 0 }].fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.latency.observe(elapsed);
    }
}

/// Counters of one origin.
#[derive(Default)]
pub struct OriginStats {
    /// Requests sent upstream (each attempt).
    pub requests: AtomicU64,
    /// Connect failures (refused, unreachable, connect timeout).
    pub connect_errors: AtomicU64,
    /// No response head in time.
    pub timeouts: AtomicU64,
    /// Reset before head, invalid responses.
    pub protocol_errors: AtomicU64,
    /// Bodies that failed midway (reset, idle timeout).
    pub body_errors: AtomicU64,
    /// Retries after a connect failure.
    pub retries_connect: AtomicU64,
    /// Retries after a reset or close before the response head.
    pub retries_reset: AtomicU64,
    /// Retries after a 502 or 503 from the origin.
    pub retries_status: AtomicU64,
}

/// The process-wide registry. Survives config reloads: routes and origins keep their
/// counters by name.
#[derive(Default)]
pub struct Metrics {
    routes: RwLock<BTreeMap<String, Arc<RouteStats>>>,
    origins: RwLock<BTreeMap<String, Arc<OriginStats>>>,
    /// Open client connections.
    pub open_connections: AtomicI64,
    /// Accepted client connections.
    pub connections_total: AtomicU64,
    /// Successful config reloads.
    pub reloads_ok: AtomicU64,
    /// Refused config reloads.
    pub reloads_failed: AtomicU64,
    /// Health of every origin url (kept across reloads).
    pub health: crate::upstream::health::Registry,
    /// Status of the background jobs.
    pub jobs: Arc<crate::jobs::Registry>,
    /// Rate-limit budgets and decisions (kept across reloads).
    pub rate_limits: crate::layers::rate_limit::Registry,
}

impl Metrics {
    /// The counters of a route (`""` for requests that matched none).
    pub fn route(&self, name: &str) -> Arc<RouteStats> {
        get_or_insert(&self.routes, name)
    }

    /// The counters of an origin.
    pub fn origin(&self, name: &str) -> Arc<OriginStats> {
        get_or_insert(&self.origins, name)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let routes: Vec<(String, Arc<RouteStats>)> = match self.routes.read() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        let origins: Vec<(String, Arc<OriginStats>)> = match self.origins.read() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        let classes = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];
        out.push_str(
            "# HELP streamgate_requests_total Responses sent, by route and status class.\n# TYPE streamgate_requests_total counter\n",
        );
        for (name, s) in &routes {
            for (i, c) in classes.iter().enumerate() {
                let n = s.by_class[i].load(Relaxed);
                if n > 0 || (1..=5).contains(&i) {
                    let _ = writeln!(out, "streamgate_requests_total{{route=\"{}\",class=\"{c}\"}} {n}", esc(name));
                }
            }
        }
        out.push_str("# HELP streamgate_request_duration_seconds Time from request head to end of response body.\n# TYPE streamgate_request_duration_seconds histogram\n");
        for (name, s) in &routes {
            let h = &s.latency;
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.buckets[i].load(Relaxed);
                let _ = writeln!(out, "streamgate_request_duration_seconds_bucket{{route=\"{}\",le=\"{b}\"}} {cum}", esc(name));
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(out, "streamgate_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {count}", esc(name));
            let _ =
                writeln!(out, "streamgate_request_duration_seconds_sum{{route=\"{}\"}} {}", esc(name), h.sum_us.load(Relaxed) as f64 / 1e6);
            let _ = writeln!(out, "streamgate_request_duration_seconds_count{{route=\"{}\"}} {count}", esc(name));
        }
        out.push_str(
            "# HELP streamgate_response_bytes_total Response body bytes sent, by route.\n# TYPE streamgate_response_bytes_total counter\n",
        );
        for (name, s) in &routes {
            let _ = writeln!(out, "streamgate_response_bytes_total{{route=\"{}\"}} {}", esc(name), s.bytes.load(Relaxed));
        }
        out.push_str("# HELP streamgate_upstream_requests_total Requests sent to origins (each attempt).\n# TYPE streamgate_upstream_requests_total counter\n");
        for (name, s) in &origins {
            let _ = writeln!(out, "streamgate_upstream_requests_total{{origin=\"{}\"}} {}", esc(name), s.requests.load(Relaxed));
        }
        out.push_str("# HELP streamgate_upstream_errors_total Failed upstream requests, by origin and kind.\n# TYPE streamgate_upstream_errors_total counter\n");
        for (name, s) in &origins {
            for (kind, v) in
                [("connect", &s.connect_errors), ("timeout", &s.timeouts), ("protocol", &s.protocol_errors), ("body", &s.body_errors)]
            {
                let _ = writeln!(out, "streamgate_upstream_errors_total{{origin=\"{}\",kind=\"{kind}\"}} {}", esc(name), v.load(Relaxed));
            }
        }
        out.push_str("# HELP streamgate_upstream_retries_total Requests sent again to an origin, by reason.\n# TYPE streamgate_upstream_retries_total counter\n");
        for (name, s) in &origins {
            for (reason, v) in [("connect", &s.retries_connect), ("reset", &s.retries_reset), ("status", &s.retries_status)] {
                let _ =
                    writeln!(out, "streamgate_upstream_retries_total{{origin=\"{}\",reason=\"{reason}\"}} {}", esc(name), v.load(Relaxed));
            }
        }
        self.health.render(&mut out);
        self.jobs.render(&mut out);
        self.rate_limits.render(&mut out);
        let _ = writeln!(out, "# HELP streamgate_open_connections Client connections open now.\n# TYPE streamgate_open_connections gauge\nstreamgate_open_connections {}", self.open_connections.load(Relaxed));
        let _ = writeln!(out, "# HELP streamgate_connections_total Client connections accepted.\n# TYPE streamgate_connections_total counter\nstreamgate_connections_total {}", self.connections_total.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP streamgate_config_reloads_total Config reloads, by result.\n# TYPE streamgate_config_reloads_total counter\nstreamgate_config_reloads_total{{result=\"ok\"}} {}\nstreamgate_config_reloads_total{{result=\"error\"}} {}",
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed)
        );
        out
    }
}

fn get_or_insert<T: Default>(map: &RwLock<BTreeMap<String, Arc<T>>>, name: &str) -> Arc<T> {
    if let Ok(m) = map.read() {
        if let Some(v) = m.get(name) {
            return v.clone();
        }
    }
    match map.write() {
        Ok(mut m) => m.entry(name.to_owned()).or_default().clone(),
        Err(_) => Arc::new(T::default()),
    }
}

/// Escapes a label value.
pub fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        let r = m.route("vod");
        r.record(200, 10, Duration::from_millis(3));
        r.record(503, 5, Duration::from_millis(300));
        m.origin("o").requests.fetch_add(2, Relaxed);
        let text = m.render();
        assert!(text.contains("streamgate_requests_total{route=\"vod\",class=\"2xx\"} 1"));
        assert!(text.contains("streamgate_requests_total{route=\"vod\",class=\"5xx\"} 1"));
        assert!(text.contains("streamgate_request_duration_seconds_bucket{route=\"vod\",le=\"0.005\"} 1"));
        assert!(text.contains("streamgate_request_duration_seconds_bucket{route=\"vod\",le=\"0.5\"} 2"));
        assert!(text.contains("streamgate_response_bytes_total{route=\"vod\"} 15"));
        assert!(text.contains("streamgate_upstream_requests_total{origin=\"o\"} 2"));
    }
}
