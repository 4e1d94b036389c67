//! Observation hooks: how the engine and the clients report what metrics count.
//!
//! The core depends on no metrics library; it calls an [`Observer`]. Every method has a no-op
//! default, so an embedder implements only what it wants. The reference server's Prometheus
//! implementation (in `orchestrator-axum`) maps these onto the spec's metric names.

use std::time::Duration;

use crate::breaker::BreakerState;
use crate::store::QueueDepth;
use crate::task::{TaskStatus, TaskType};

/// How a delivery ended at the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// Stored with its tasks.
    Accepted,
    /// Already stored.
    Duplicate,
    /// Refused (size, headers, signature, payload).
    Rejected,
    /// Could not be stored.
    Failed,
}

impl DeliveryOutcome {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Accepted => "accepted",
            DeliveryOutcome::Duplicate => "duplicate",
            DeliveryOutcome::Rejected => "rejected",
            DeliveryOutcome::Failed => "failed",
        }
    }
}

/// Receives observations. Implementations must be cheap: they run on the hot path.
pub trait Observer: Send + Sync + 'static {
    /// A delivery finished at the receiver (`webhook_events_total`,
    /// `webhook_processing_duration_seconds`, `webhook_errors_total` for rejected / failed).
    fn delivery(
        &self,
        _event_type: &str,
        _outcome: DeliveryOutcome,
        _reason: Option<&str>,
        _elapsed: Duration,
    ) {
    }

    /// A genuine (signed) delivery whose typed view failed was stored unparsed
    /// (`webhook_parse_failures_total{event_type}`; the label is the verified event name).
    fn parse_failure(&self, _event_type: &str) {}

    /// Tasks were created (`workflow_tasks_total{status="created"}`).
    fn tasks_created(&self, _task_type: &TaskType, _count: u64) {}

    /// An attempt ended with the task in `status` (`workflow_tasks_total`,
    /// `workflow_task_duration_seconds`).
    fn task_attempt(&self, _task_type: &TaskType, _status: TaskStatus, _elapsed: Duration) {}

    /// A retry was scheduled (`workflow_task_retries_total`).
    fn task_retry(&self, _task_type: &TaskType) {}

    /// The queue was measured (`celery_queue_size`, `task_queue_size`).
    fn queue_depth(&self, _backend: &str, _depth: QueueDepth) {}

    /// A GitHub API request completed (`github_api_requests_total`); status 0 for no response.
    fn github_request(&self, _endpoint: &str, _status: u16) {}

    /// GitHub reported the quota left (`github_api_rate_limit_remaining`).
    fn github_rate_limit(&self, _remaining: u64) {}

    /// A coding-agent run reached `outcome` (`codegen_agent_tasks_total`): `created`,
    /// `rejected` (refused for good), `completed`, `failed`, `cancelled`, `timeout`, `skipped`,
    /// `duplicate` (the pull request's head SHA already has a run), `reconciled` (a run whose
    /// creation answer was lost was found again), `needs_attention` (it could not be found).
    fn codegen_run(&self, _outcome: &str) {}

    /// A coding-agent run creation waits for the agent budget
    /// (`agent_budget_deferrals_total{scope}`; `scope` is `global` or `repository`).
    fn agent_budget_deferral(&self, _scope: &str) {}

    /// A report to GitHub was sent or failed (`github_reports_total{kind,outcome}`): `kind` is
    /// `check_run`, `status` or `comment`; `outcome` is `ok`, `failed`, `rate_limited`,
    /// `circuit_open` or `gave_up` (retries used up until the task changes again).
    fn github_report(&self, _kind: &str, _outcome: &str) {}

    /// A circuit breaker changed state.
    fn breaker(&self, _name: &str, _state: BreakerState) {}

    /// A broker queue found that the broker lost its messages (its stream or consumer group
    /// vanished, or its stream ran empty while the store still had old runnable tasks) and
    /// re-published the store's runnable tasks at once (`redis_queue_resets_total{reason}`).
    fn queue_reset(&self, _reason: &str) {}

    /// `count` tasks were cancelled for `reason` (`tasks_cancelled_total{reason}`): `manual`,
    /// `superseded` or `closed` (see [`CancelReason`](crate::store::cancel::CancelReason)).
    fn tasks_cancelled(&self, _reason: &str, _count: u64) {}

    /// Recovery recovered a missing delivery (`webhook_deliveries_recovered_total{mode}`;
    /// `mode` is `fetch` or `redeliver`).
    fn delivery_recovered(&self, _mode: &str) {}

    /// A recovery run ended (`webhook_recovery_runs_total{status}`: `succeeded`, `failed`,
    /// `interrupted`); a success also moves `webhook_recovery_last_success_timestamp_seconds`
    /// to `finished_at_unix`.
    fn recovery_run(&self, _status: &str, _finished_at_unix: Option<i64>) {}
}

/// Observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl Observer for NoopObserver {}
