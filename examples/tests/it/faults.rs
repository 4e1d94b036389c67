//! Fault tests: the real binary under steady signed traffic while a dependency fails, then
//! recovers. Each checks what a user notices (answers, `/health`, metrics, log lines) and what
//! is guaranteed (every acknowledged delivery stored, every task run exactly once). The table in
//! `docs/operations.md` ("Failure modes") names the test behind each row.
//!
//! Dependencies fail for real: PostgreSQL and Redis behind a TCP proxy that refuses and resets
//! connections (the shared services are never stopped or flushed), GitHub and Codegen as
//! wiremock stand-ins that misbehave on demand, SQLite on a tmpfs that the test fills up, and
//! processes killed with SIGKILL. Windows are seconds, with margins of a second or more; where
//! the production default is long (breaker recovery, sweep delay) the test sets it through the
//! server's own configuration.

mod codegen;
mod github;
mod kill;
mod postgres;
mod redis;
mod sqlite;

use std::time::Duration;

/// Sleeps until `at` on the traffic's clock (no-op when it has passed).
async fn sleep_until(traffic: &crate::support::traffic::Traffic, at: Duration) {
    if let Some(left) = at.checked_sub(traffic.now()) {
        tokio::time::sleep(left).await;
    }
}
