//! What hostile or broken clients may cost: `HTTP_HEADER_TIMEOUT_SECONDS`,
//! `HTTP_KEEPALIVE_TIMEOUT_SECONDS`, `MAX_CONNECTIONS` (into [`Config::serve`], orchestrator-axum's
//! `ServeConfig`) and `MAX_BUFFERED_BODY_BYTES` (into [`Config::api`]).

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    for (name, timeout) in [
        (
            "HTTP_HEADER_TIMEOUT_SECONDS",
            &mut c.serve.header_read_timeout,
        ),
        (
            "HTTP_KEEPALIVE_TIMEOUT_SECONDS",
            &mut c.serve.keep_alive_timeout,
        ),
    ] {
        *timeout = r.secs(name, *timeout);
        if timeout.is_zero() {
            r.problem(name, "must be at least 1");
        }
    }
    c.serve.max_connections = r.parse("MAX_CONNECTIONS", c.serve.max_connections, "a whole number");
    if c.serve.max_connections == 0 {
        r.problem("MAX_CONNECTIONS", "must be at least 1");
    }
    let budget = &mut c.api.max_buffered_body_bytes;
    *budget = r.parse("MAX_BUFFERED_BODY_BYTES", *budget, "a size in bytes");
    let largest = c.delivery_limits.max_body_bytes;
    if *budget < largest {
        r.problem(
            "MAX_BUFFERED_BODY_BYTES",
            format!(
                "must be at least MAX_PAYLOAD_BYTES ({largest}), or the largest deliveries are never accepted"
            ),
        );
    }
}
