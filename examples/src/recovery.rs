//! Recovery in the reference server: the [`Reconciler`] over the GitHub client's delivery log,
//! the store's recovery runs and the ingest service, and its schedule, a background service of
//! the worker role that runs once at start and then every `GITHUB_RECOVERY_INTERVAL_SECONDS`.
//! One runner works at a time across instances, so every worker process may run the schedule:
//! a Redis lock when Redis is configured (`<prefix>:lock:recovery`), else the store's lease (a
//! PostgreSQL advisory lock, a lease row on SQLite). The runner renews an expiring lease while
//! its run proceeds. `/health` shows
//! `recovery`: `degraded` when recovery is on and no run succeeded for an hour (or three
//! intervals, if longer).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_axum::{HealthCheck, HealthStatus};
use orchestrator_core::clock::Clock;
use orchestrator_core::recovery::{DeliveryLog, Reconciler, RunnerLock};
use orchestrator_core::store::recovery::RecoveryStore;
use orchestrator_redis::RedisLock;
use tokio_util::sync::CancellationToken;

use crate::background::BackgroundService;
use crate::components::Components;

/// The reconciler of `components`, locked by Redis when Redis is configured.
pub(crate) fn reconciler(components: &Components) -> Arc<Reconciler> {
    let log: Arc<dyn DeliveryLog> = components.github.clone();
    let reconciler = Reconciler::new(
        log,
        components.stores.recovery.clone(),
        components.ingestor.clone(),
        components.clock.clone(),
        components.config.recovery.clone(),
    )
    .with_observer(components.observer.clone());
    Arc::new(match components.redis() {
        Some(conn) => {
            let lock: Arc<dyn RunnerLock> = Arc::new(RedisLock::recovery(conn.clone()));
            reconciler.with_lock(lock)
        }
        None => reconciler,
    })
}

/// The schedule, unless recovery is off (interval zero, or no hook configured and none to
/// learn without credentials).
pub(crate) fn schedule(components: &Components) -> Option<RecoverySchedule> {
    let config = &components.config.recovery;
    let hooks = !config.hooks.hooks.is_empty() || config.hooks.auto;
    if config.interval.is_zero() || !hooks {
        return None;
    }
    Some(RecoverySchedule {
        interval: config.interval,
    })
}

/// Runs the reconciler at start and every `interval` (worker role).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecoverySchedule {
    interval: Duration,
}

#[async_trait]
impl BackgroundService for RecoverySchedule {
    fn name(&self) -> &str {
        "recovery"
    }

    async fn run(&self, components: Components, shutdown: CancellationToken) {
        let Some(reconciler) = components.reconciler.clone() else {
            return;
        };
        // The stale-recovery alert and health count from the start until the first success.
        components
            .metrics
            .set_recovery_last_success(components.clock.now().timestamp());
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            match shutdown.run_until_cancelled(reconciler.tick(true)).await {
                None => return,
                Some(Ok(None)) => tracing::debug!("recovery: another instance is running it"),
                Some(Ok(Some(_))) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "recovery run could not be stored"),
            }
        }
    }
}

/// `/health`'s `recovery` check, when the schedule is on.
pub(crate) fn health_check(components: &Components) -> Option<RecoveryHealth> {
    let schedule = schedule(components)?;
    let clock = components.clock.clone();
    Some(RecoveryHealth {
        store: components.stores.recovery.clone(),
        started_at: clock.now(),
        clock,
        stale_after: (schedule.interval * 3).max(Duration::from_secs(3600)),
    })
}

/// Degraded when no recovery run succeeded for `stale_after` (counted from start before the
/// first success).
pub(crate) struct RecoveryHealth {
    store: Arc<dyn RecoveryStore>,
    clock: Arc<dyn Clock>,
    started_at: DateTime<Utc>,
    stale_after: Duration,
}

#[async_trait]
impl HealthCheck for RecoveryHealth {
    fn name(&self) -> &str {
        "recovery"
    }

    async fn check(&self) -> HealthStatus {
        let last = match self.store.last_success().await {
            Ok(last) => last.unwrap_or(self.started_at).max(self.started_at),
            Err(e) => {
                tracing::warn!(error = %e, "recovery health: runs unreadable");
                return HealthStatus::Degraded;
            }
        };
        let age = (self.clock.now() - last).to_std().unwrap_or_default();
        if age > self.stale_after {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }
}
