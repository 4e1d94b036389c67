//! The HTTP connection and memory limits: [`HttpLimits`], read from `HTTP_HEADER_TIMEOUT_SECONDS`,
//! `HTTP_KEEPALIVE_TIMEOUT_SECONDS`, `MAX_CONNECTIONS` and `MAX_BUFFERED_BODY_BYTES`.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_axum::{Metrics, ServeConfig};

use super::read::Reader;

/// How many connections, how slow a client and how much buffered upload the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// `HTTP_HEADER_TIMEOUT_SECONDS`: a request head must arrive whole within this long of its
    /// first byte (of the connection's start, for the first request).
    pub header_timeout: Duration,
    /// `HTTP_KEEPALIVE_TIMEOUT_SECONDS`: an idle keep-alive connection is closed after this long.
    pub keep_alive_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// `MAX_BUFFERED_BODY_BYTES`: request-body bytes held in memory at once over all uploads;
    /// past it, new uploads get 503 with `Retry-After` before they are read.
    pub max_buffered_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        let serve = ServeConfig::default();
        Self {
            header_timeout: serve.header_read_timeout,
            keep_alive_timeout: serve.keep_alive_timeout,
            max_connections: serve.max_connections,
            max_buffered_body_bytes: orchestrator_axum::config::DEFAULT_MAX_BUFFERED_BODY_BYTES,
        }
    }
}

impl HttpLimits {
    /// Reads the variables; `max_payload_bytes` (`MAX_PAYLOAD_BYTES`) bounds the budget from
    /// below, or the largest deliveries could never be accepted.
    pub(super) fn read(r: &mut Reader<'_>, max_payload_bytes: usize) -> Self {
        let defaults = Self::default();
        let mut positive_secs = |name: &'static str, default: Duration| {
            let value = r.secs(name, default.as_secs());
            if value.is_zero() {
                r.problem(name, "must be at least 1");
            }
            value
        };
        let header_timeout = positive_secs("HTTP_HEADER_TIMEOUT_SECONDS", defaults.header_timeout);
        let keep_alive_timeout = positive_secs(
            "HTTP_KEEPALIVE_TIMEOUT_SECONDS",
            defaults.keep_alive_timeout,
        );
        let max_connections = r.parse(
            "MAX_CONNECTIONS",
            defaults.max_connections,
            "a whole number",
        );
        if max_connections == 0 {
            r.problem("MAX_CONNECTIONS", "must be at least 1");
        }
        let max_buffered_body_bytes = r.parse(
            "MAX_BUFFERED_BODY_BYTES",
            defaults.max_buffered_body_bytes,
            "a size in bytes",
        );
        if max_buffered_body_bytes < max_payload_bytes {
            r.problem(
                "MAX_BUFFERED_BODY_BYTES",
                format!(
                    "must be at least MAX_PAYLOAD_BYTES ({max_payload_bytes}), or the largest deliveries are never accepted"
                ),
            );
        }
        Self {
            header_timeout,
            keep_alive_timeout,
            max_connections,
            max_buffered_body_bytes,
        }
    }

    /// The settings of [`orchestrator_axum::serve()`]: these limits, the shutdown grace period
    /// and where the connection metrics go.
    pub fn serve_config(
        &self,
        shutdown_grace: Duration,
        metrics: Option<Arc<Metrics>>,
    ) -> ServeConfig {
        ServeConfig {
            header_read_timeout: self.header_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            max_connections: self.max_connections,
            shutdown_grace,
            metrics,
            ..ServeConfig::default()
        }
    }
}
