//! The access-log body: wraps every response body, counts the bytes that reach the
//! client, enforces the upstream idle timeout, and when the body ends (completely,
//! with an error, or because the client went away) writes the one access-log line and
//! the route's metrics. Logging at the end of the body, not at the response head, is what
//! makes `bytes`, `duration` and `outcome` true for streamed segments.

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use crate::body::{Body, BoxError};
use crate::telemetry::metrics::{OriginStats, RouteStats};

/// What the access log needs to know about a request, filled in as it goes.
pub struct RequestRecord {
    /// When the request head was read.
    pub start: Instant,
    /// The request id (echoed or made).
    pub request_id: Arc<str>,
    /// Route name, `""` when none matched.
    pub route: Arc<str>,
    /// Route counters.
    pub stats: Arc<RouteStats>,
    /// Method.
    pub method: http::Method,
    /// Path as the client sent it, without the query (queries may carry secrets).
    pub path: String,
    /// Response status.
    pub status: u16,
    /// The upstream url that answered, if any.
    pub upstream: Option<String>,
    /// The problem code, when the proxy produced the response itself.
    pub code: Option<&'static str>,
    /// Whether to write the access-log line.
    pub log: bool,
    /// Origin counters, to count bodies that fail midway.
    pub origin_stats: Option<Arc<OriginStats>>,
    /// How the manifest cache answered, when it was involved.
    pub cache: Option<&'static str>,
    /// What is known about the viewer (only kept when the access log is on).
    pub context: Option<crate::layers::RequestContext>,
}

/// How the response body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    Aborted,
    IdleTimeout,
    ClientGone,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Aborted => "upstream_aborted",
            Outcome::IdleTimeout => "upstream_idle_timeout",
            Outcome::ClientGone => "client_closed",
        }
    }
}

/// The idle body timeout fired: the origin paused longer than `idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("origin sent no body data for {0:?}")]
pub struct IdleTimeout(Duration);

/// A response body that reports itself when it ends. See the module docs.
pub struct ObservedBody {
    inner: Body,
    bytes: u64,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    /// True while the last poll returned `Pending`: we are waiting on the origin. Time in
    /// which the client does not poll (backpressure from a slow viewer) is not idle time.
    waiting: bool,
    record: Option<Box<RequestRecord>>,
}

impl ObservedBody {
    /// Wraps `inner`. With `idle`, a pause longer than that between frames aborts the body.
    pub fn new(inner: Body, record: RequestRecord, idle: Option<Duration>) -> Self {
        let idle = idle.map(|d| (d, Box::pin(tokio::time::sleep(d))));
        Self { inner, bytes: 0, idle, waiting: false, record: Some(Box::new(record)) }
    }

    fn finish(&mut self, outcome: Outcome) {
        let Some(rec) = self.record.take() else { return };
        let elapsed = rec.start.elapsed();
        rec.stats.record(rec.status, self.bytes, elapsed);
        if matches!(outcome, Outcome::Aborted | Outcome::IdleTimeout) {
            if let Some(o) = &rec.origin_stats {
                o.body_errors.fetch_add(1, Relaxed);
            }
        }
        if rec.log {
            tracing::info!(
                target: "access",
                request_id = &*rec.request_id,
                route = &*rec.route,
                method = rec.method.as_str(),
                path = rec.path.as_str(),
                status = rec.status,
                bytes = self.bytes,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                upstream = rec.upstream.as_deref().unwrap_or(""),
                code = rec.code.unwrap_or(""),
                cache = rec.cache.unwrap_or(""),
                client_ip = rec.context.as_ref().map(|c| c.client_ip.to_string()).unwrap_or_default(),
                session = rec.context.as_ref().and_then(|c| c.session_id.as_deref()).unwrap_or(""),
                device = rec.context.as_ref().and_then(|c| c.device).unwrap_or(""),
                country = rec.context.as_ref().and_then(|c| c.country.as_deref()).unwrap_or(""),
                region = rec.context.as_ref().and_then(|c| c.region.as_deref()).unwrap_or(""),
                principal = rec.context.as_ref().and_then(|c| c.principal.as_deref()).unwrap_or(""),
                outcome = outcome.as_str(),
            );
        }
    }
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_ready() {
            this.waiting = false;
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Outcome::Aborted);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(Outcome::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((d, sleep)) = &mut this.idle {
                    if !this.waiting {
                        // A new wait on the origin starts now.
                        this.waiting = true;
                        sleep.as_mut().reset(tokio::time::Instant::now() + *d);
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        let d = *d;
                        this.finish(Outcome::IdleTimeout);
                        return Poll::Ready(Some(Err(Box::new(IdleTimeout(d)))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if self.record.is_some() {
            let outcome = if self.inner.is_end_stream() { Outcome::Complete } else { Outcome::ClientGone };
            self.finish(outcome);
        }
    }
}

use std::future::Future as _;
