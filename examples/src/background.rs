//! Background services: work that runs beside the workers until shutdown, such as the
//! scheduled retention cleanup. Features register their own with
//! [`OrchestratorBuilder::background`](crate::OrchestratorBuilder::background) (a recovery
//! schedule, an operations runner, a reporter); each gets the built [`Components`] and a
//! shutdown token, and runs in the roles it chooses (by default where the workers run).
//!
//! At shutdown every service is told through its token at the same moment as the workers, and
//! is given until the end of the shutdown grace period to return; one still running then is
//! stopped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::cleanup::{CleanupTrigger, cleanup_task};
use orchestrator_core::queue::TaskRef;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::components::Components;
use crate::role::Role;

/// A long-running service of the orchestrator.
#[async_trait]
pub trait BackgroundService: Send + Sync + 'static {
    /// A short name for logs (`cleanup`, `recovery`, ...).
    fn name(&self) -> &str;

    /// Whether a process of `role` runs it; by default where the workers run (`all`, `worker`,
    /// and [`Orchestrator::run_workers`](crate::Orchestrator::run_workers)).
    fn runs_in(&self, role: Role) -> bool {
        role.runs_workers()
    }

    /// Runs until `shutdown` is cancelled (then returns promptly). Failures are the service's
    /// to log and retry; it never takes the process down.
    async fn run(&self, components: Components, shutdown: CancellationToken);
}

/// The running services of one process.
pub(crate) struct Running {
    set: JoinSet<()>,
}

/// Starts every service of `services` that runs in `role`.
pub(crate) fn spawn(
    services: &[Arc<dyn BackgroundService>],
    role: Role,
    components: &Components,
    shutdown: &CancellationToken,
) -> Running {
    let mut set = JoinSet::new();
    for service in services.iter().filter(|s| s.runs_in(role)) {
        let (service, components, shutdown) =
            (service.clone(), components.clone(), shutdown.clone());
        tracing::info!(service = service.name(), "background service starting");
        set.spawn(async move { service.run(components, shutdown).await });
    }
    Running { set }
}

impl Running {
    /// Waits for the services (already told to stop) until `deadline`, then stops the rest.
    pub(crate) async fn stop(mut self, deadline: Instant) {
        let joined = tokio::time::timeout_at(deadline, async {
            while let Some(joined) = self.set.join_next().await {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "background service panicked");
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::warn!(
                running = self.set.len(),
                "background services did not stop within the shutdown grace period; stopping them"
            );
            self.set.abort_all();
        }
    }
}

/// The retention cleanup every `interval` (the first run one interval after start), in the
/// worker role (`CLEANUP_INTERVAL_SECONDS`): submits a `cleanup` task, which a worker runs with
/// the configured retention (`RETENTION_*_DAYS`), like `POST /api/v1/admin/cleanup`.
#[derive(Debug, Clone)]
pub(crate) struct CleanupSchedule {
    pub(crate) interval: Duration,
}

#[async_trait]
impl BackgroundService for CleanupSchedule {
    fn name(&self) -> &str {
        "cleanup"
    }

    async fn run(&self, components: Components, shutdown: CancellationToken) {
        let interval = self.interval;
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            let now = components.clock().now();
            let task = cleanup_task(CleanupTrigger::Schedule, now);
            let task_ref = TaskRef {
                task_id: task.task_id,
                run_at: task.run_at,
            };
            match components.stores.submit.submit_task(task, now).await {
                Ok(()) => {
                    if let Err(e) = components.queue().publish(&[task_ref]).await {
                        tracing::warn!(error = %e, task_id = %task_ref.task_id,
                            "scheduled cleanup task committed but not published yet");
                    }
                    tracing::info!(task_id = %task_ref.task_id, "scheduled cleanup task submitted");
                }
                Err(e) => tracing::warn!(error = %e, "scheduled cleanup could not be submitted"),
            }
        }
    }
}

/// Refreshes `database_connections_active` every five seconds, in every role (SQL stores).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionGauge;

#[async_trait]
impl BackgroundService for ConnectionGauge {
    fn name(&self) -> &str {
        "connection_gauge"
    }

    fn runs_in(&self, _role: Role) -> bool {
        true
    }

    async fn run(&self, components: Components, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            if let Some(active) = components.stores.connections_active() {
                components
                    .metrics()
                    .set_database_connections(u64::from(active));
            }
        }
    }
}

/// The built-in services for `components`' configuration.
pub(crate) fn builtin(components: &Components) -> Vec<Arc<dyn BackgroundService>> {
    let mut services: Vec<Arc<dyn BackgroundService>> = Vec::new();
    if components.stores.sql.is_some() {
        services.push(Arc::new(ConnectionGauge));
    }
    let config = components.config();
    if !config.cleanup_interval.is_zero() {
        services.push(Arc::new(CleanupSchedule {
            interval: config.cleanup_interval,
        }));
    }
    if let Some(reporter) = crate::report::ReportService::configured(config) {
        services.push(Arc::new(reporter));
    }
    services
}
