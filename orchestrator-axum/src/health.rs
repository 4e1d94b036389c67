//! What `/health` checks: [`HealthCheck`] (an added dependency check), [`CachedCheck`], the
//! [`HealthStatus`] scale, and the timing and wording every check shares. The route itself, which
//! runs the database, queue, breaker and added checks against the state, is `routes/system.rs`.
//!
//! The database decides between up and down: when it fails the answer is 503 `unhealthy`.
//! Anything else that is not healthy (queue, an open breaker, an added check such as GitHub
//! reachability) makes the service `degraded`, still 200, because deliveries are still stored.
//! Whatever is not healthy says why under `reasons`, in words safe for an unauthenticated
//! endpoint (the failure's details go to the log).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::clock::{self, Clock};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use serde::Serialize;

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
pub(crate) type Verdict = (HealthStatus, Option<String>);

/// Runs the check of `what`, unhealthy when it takes longer than [`CHECK_TIMEOUT`].
pub(crate) async fn timed<F: Future<Output = Verdict>>(what: &str, check: F) -> Verdict {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            let why = format!("{what} did not answer within {} s", CHECK_TIMEOUT.as_secs());
            (HealthStatus::Unhealthy, Some(why))
        })
}

/// Why a store call failed, in words fit for an unauthenticated endpoint: the kind only (the
/// driver's message, with host names and the like, goes to the log).
pub(crate) fn store_reason(what: &str, err: &StoreError) -> String {
    match err.kind() {
        StoreErrorKind::Unavailable => {
            format!("{what} unreachable: no connection could be made or used (see the log)")
        }
        StoreErrorKind::Conflict | StoreErrorKind::Internal => {
            format!("{what} answered with an error (see the log)")
        }
    }
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
