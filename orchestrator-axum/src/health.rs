//! `/health`: the database, the task queue, circuit breakers and any added checks.
//!
//! The database decides between up and down: when it fails the answer is 503 `unhealthy`.
//! Anything else that is not healthy (queue, an open breaker, an added check such as GitHub
//! reachability) makes the service `degraded`, still 200, because deliveries are still stored.
//! Whatever is not healthy says why under `reasons`, in words safe for an unauthenticated
//! endpoint (the failure's details go to the log).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use http::StatusCode;
use orchestrator_core::breaker::BreakerState;
use orchestrator_core::clock::{self, Clock};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use serde::Serialize;

use crate::dto::HealthResponse;
use crate::state::AppState;

/// How long one check may take before it counts as unhealthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The status of one check, and of the whole service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working with reduced function.
    Degraded,
    /// Not working.
    Unhealthy,
}

impl HealthStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// An extra dependency check shown under `checks` (e.g. `github_api`).
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// The key under `checks`.
    fn name(&self) -> &str;
    /// Probes the dependency.
    async fn check(&self) -> HealthStatus;
}

/// A check whose result is reused for `ttl` (so `/health` never hammers a remote API).
pub struct CachedCheck<C> {
    inner: C,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    last: Mutex<Option<(DateTime<Utc>, HealthStatus)>>,
}

impl<C: HealthCheck> CachedCheck<C> {
    /// Caches `inner`'s answers for `ttl`, timed by `clock`.
    pub fn new(inner: C, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            ttl,
            clock,
            last: Mutex::new(None),
        }
    }
}

impl<C> std::fmt::Debug for CachedCheck<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCheck")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<C: HealthCheck> HealthCheck for CachedCheck<C> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn check(&self) -> HealthStatus {
        let now = self.clock.now();
        let cached = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, status)) = cached
            && now < clock::add(at, self.ttl)
        {
            return status;
        }
        let status = self.inner.check().await;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, status));
        status
    }
}

/// A check's status and, when it is not healthy, why (one short sentence for operators).
type Verdict = (HealthStatus, Option<String>);

/// Runs the check of `what`, unhealthy when it takes longer than [`CHECK_TIMEOUT`].
async fn timed<F: Future<Output = Verdict>>(what: &str, check: F) -> Verdict {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            let why = format!("{what} did not answer within {} s", CHECK_TIMEOUT.as_secs());
            (HealthStatus::Unhealthy, Some(why))
        })
}

/// Why a store call failed, in words fit for an unauthenticated endpoint: the kind only (the
/// driver's message, with host names and the like, goes to the log).
fn store_reason(what: &str, err: &StoreError) -> String {
    match err.kind() {
        StoreErrorKind::Unavailable => {
            format!("{what} unreachable: no connection could be made or used (see the log)")
        }
        StoreErrorKind::Conflict | StoreErrorKind::Internal => {
            format!("{what} answered with an error (see the log)")
        }
    }
}

/// Runs every check at once: the database's, the queue's and the added ones, by name.
async fn run_checks(state: &AppState, now: DateTime<Utc>) -> Vec<(String, Verdict)> {
    let database = timed("database", async {
        match state.tasks().ping().await {
            Ok(()) => (HealthStatus::Healthy, None),
            Err(err) => {
                tracing::error!(error = %err, "health: database ping failed");
                (
                    HealthStatus::Unhealthy,
                    Some(store_reason("database", &err)),
                )
            }
        }
    });
    let queue_name = format!("task queue ({})", state.queue().backend());
    let queue = timed(&queue_name, async {
        match state.queue().depth(now).await {
            Ok(depth) => {
                if let Some(metrics) = state.metrics() {
                    use orchestrator_core::observe::Observer;
                    metrics.queue_depth(state.queue().backend(), depth);
                }
                (HealthStatus::Healthy, None)
            }
            Err(err) => {
                tracing::warn!(error = %err, "health: queue depth failed");
                (
                    HealthStatus::Unhealthy,
                    Some(store_reason(&queue_name, &err)),
                )
            }
        }
    });
    let extras = join_all(state.health_checks().iter().map(|c| async move {
        let verdict = timed(c.name(), async {
            match c.check().await {
                HealthStatus::Healthy => (HealthStatus::Healthy, None),
                other => {
                    let why = format!("{} {} (see the log)", c.name(), other.as_str());
                    (other, Some(why))
                }
            }
        })
        .await;
        (c.name().to_owned(), verdict)
    }));
    let (database, queue, extras) = futures::join!(database, queue, extras);
    [
        ("database".to_owned(), database),
        ("celery".to_owned(), queue),
    ]
    .into_iter()
    .chain(extras)
    .collect()
}

/// Runs every check and says what `/health` answers.
pub(crate) async fn report(state: &AppState) -> (StatusCode, HealthResponse) {
    let now = state.clock().now();
    let verdicts = run_checks(state, now).await;

    let mut checks = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    // Only the database decides between up and down; anything else not healthy is degraded.
    let mut overall = HealthStatus::Healthy;
    for (name, (status, why)) in verdicts {
        if name == "database" && status == HealthStatus::Unhealthy {
            overall = HealthStatus::Unhealthy;
        } else if status != HealthStatus::Healthy {
            overall = overall.max(HealthStatus::Degraded);
        }
        if let Some(why) = why {
            reasons.insert(name.clone(), why);
        }
        checks.insert(name, status.as_str().to_owned());
    }
    let mut breakers = BTreeMap::new();
    let snapshot = state.breakers().snapshot();
    if let Some(metrics) = state.metrics() {
        metrics.record_breakers(&snapshot);
    }
    for b in snapshot {
        if b.state != BreakerState::Closed {
            overall = overall.max(HealthStatus::Degraded);
            reasons.insert(
                format!("breaker:{}", b.name),
                format!(
                    "{} circuit breaker {}: calls to it wait (tasks are deferred, no attempt used)",
                    b.name,
                    b.state.as_str()
                ),
            );
        }
        breakers.insert(b.name, b.state.as_str().to_owned());
    }
    let uptime = (now - state.started_at()).num_milliseconds().max(0) as f64 / 1000.0;
    let status = if overall == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = HealthResponse {
        status: overall.as_str().to_owned(),
        timestamp: now,
        checks,
        reasons,
        breakers,
        queue_backend: state.queue().backend().to_owned(),
        uptime,
    };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(Arc<AtomicU32>);

    #[async_trait]
    impl HealthCheck for Counting {
        fn name(&self) -> &str {
            "github_api"
        }
        async fn check(&self) -> HealthStatus {
            self.0.fetch_add(1, Ordering::SeqCst);
            HealthStatus::Degraded
        }
    }

    #[tokio::test]
    async fn a_cached_check_probes_once_per_ttl() {
        let calls = Arc::new(AtomicU32::new(0));
        let clock = Arc::new(ManualClock::default());
        let check = CachedCheck::new(
            Counting(calls.clone()),
            Duration::from_secs(60),
            clock.clone(),
        );
        assert_eq!(check.check().await, HealthStatus::Degraded);
        clock.advance(Duration::from_secs(59));
        assert_eq!(check.check().await, HealthStatus::Degraded);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        check.check().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
