//! Telemetry: log setup, the metrics registry, and the access-log body that records a
//! request when its response body ends.

pub mod access_log;
pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::schema::{LogConfig, LogFormat};

/// Installs the global tracing subscriber (JSON or text, to stderr for logs; the access
/// log goes through the same subscriber with target `access`). Safe to call twice: the
/// second call is a no-op.
pub fn init_logging(log: &LogConfig) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
