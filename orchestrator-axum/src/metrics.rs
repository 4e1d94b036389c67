//! Prometheus metrics under exactly the spec's names, fed through the core's [`Observer`].
//!
//! The server creates one [`Metrics`], hands it to the ingestor, the worker and the clients as
//! their observer, and to [`AppState`](crate::AppState) so `/metrics` can render it. Queue depth
//! and breaker states are refreshed on every scrape, so they are never stale.

use std::time::Duration;

use orchestrator_core::breaker::{BreakerSnapshot, BreakerState};
use orchestrator_core::observe::{DeliveryOutcome, Observer};
use orchestrator_core::store::QueueDepth;
use orchestrator_core::task::{TaskStatus, TaskType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for webhook receipt (milliseconds matter) and task execution (minutes matter).
const WEBHOOK_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const TASK_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// The spec's metrics in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    webhook_deliveries_recovered_total: IntCounterVec,
    webhook_recovery_runs_total: IntCounterVec,
    webhook_recovery_last_success_timestamp_seconds: IntGauge,
    registry: Registry,
    webhook_events_total: IntCounterVec,
    webhook_processing_duration_seconds: HistogramVec,
    webhook_errors_total: IntCounterVec,
    webhook_parse_failures_total: IntCounterVec,
    workflow_tasks_total: IntCounterVec,
    workflow_task_duration_seconds: HistogramVec,
    workflow_task_retries_total: IntCounterVec,
    celery_queue_size: IntGaugeVec,
    task_queue_size: IntGaugeVec,
    database_connections_active: IntGauge,
    github_api_requests_total: IntCounterVec,
    github_api_rate_limit_remaining: IntGauge,
    codegen_agent_tasks_total: IntCounterVec,
    github_reports_total: IntCounterVec,
    circuit_breaker_state: IntGaugeVec,
    redis_queue_resets_total: IntCounterVec,
    tasks_cancelled_total: IntCounterVec,
    http_connections_active: IntGauge,
    http_connection_timeouts_total: IntCounterVec,
    http_buffered_body_bytes: IntGauge,
    agent_budget: BudgetMetrics,
}

/// The agent budget's metrics: deferrals by scope, and the global rate's state at each scrape.
#[derive(Debug, Clone)]
struct BudgetMetrics {
    deferrals_total: IntCounterVec,
    remaining_slots: IntGauge,
    next_free_seconds: IntGauge,
}

impl BudgetMetrics {
    fn new(r: &Registry) -> prometheus::Result<Self> {
        let deferrals_total = counter(
            r,
            "agent_budget_deferrals_total",
            "Coding-agent run creations that waited for the agent budget, by scope (global, repository)",
            &["scope"],
        )?;
        for scope in ["global", "repository"] {
            deferrals_total.with_label_values(&[scope]);
        }
        Ok(Self {
            deferrals_total,
            remaining_slots: gauge(
                r,
                "agent_budget_remaining_slots",
                "Run creations the global agent budget allows now (-1: no global rate)",
            )?,
            next_free_seconds: gauge(
                r,
                "agent_budget_next_free_seconds",
                "Seconds until the global agent budget frees a slot (0 while one is free)",
            )?,
        })
    }
}

/// Counts one open connection in `http_connections_active` until dropped.
#[derive(Debug)]
pub struct ConnectionGauge(IntGauge);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let metric = IntGauge::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// The metrics in a fresh registry.
    pub fn new() -> prometheus::Result<Self> {
        Self::with_registry(Registry::new())
    }

    /// The metrics registered in `registry` (which may hold the embedder's own metrics).
    pub fn with_registry(registry: Registry) -> prometheus::Result<Self> {
        let r = &registry;
        let (http_connections_active, http_connection_timeouts_total, http_buffered_body_bytes) =
            http_metrics(r)?;
        let (
            webhook_deliveries_recovered_total,
            webhook_recovery_runs_total,
            webhook_recovery_last_success_timestamp_seconds,
        ) = recovery_metrics(r)?;
        let (
            github_api_requests_total,
            github_api_rate_limit_remaining,
            codegen_agent_tasks_total,
            github_reports_total,
        ) = client_metrics(r)?;
        let (celery_queue_size, task_queue_size, database_connections_active) = queue_metrics(r)?;
        Ok(Self {
            webhook_events_total: counter(
                r,
                "webhook_events_total",
                "Webhook deliveries received, by event type and outcome",
                &["event_type", "status"],
            )?,
            webhook_processing_duration_seconds: histogram(
                r,
                "webhook_processing_duration_seconds",
                "Time to verify, route and store a delivery",
                &["event_type"],
                WEBHOOK_BUCKETS,
            )?,
            webhook_errors_total: counter(
                r,
                "webhook_errors_total",
                "Webhook deliveries refused or not stored, by reason",
                &["reason"],
            )?,
            webhook_parse_failures_total: counter(
                r,
                "webhook_parse_failures_total",
                "Genuine deliveries whose typed view failed, stored unparsed (no tasks), by event type",
                &["event_type"],
            )?,
            workflow_tasks_total: counter(
                r,
                "workflow_tasks_total",
                "Workflow tasks created and attempts ended, by type and status",
                &["task_type", "status"],
            )?,
            workflow_task_duration_seconds: histogram(
                r,
                "workflow_task_duration_seconds",
                "Duration of task attempts",
                &["task_type"],
                TASK_BUCKETS,
            )?,
            workflow_task_retries_total: counter(
                r,
                "workflow_task_retries_total",
                "Task retries scheduled",
                &["task_type"],
            )?,
            celery_queue_size,
            task_queue_size,
            database_connections_active,
            github_api_requests_total,
            github_api_rate_limit_remaining,
            codegen_agent_tasks_total,
            github_reports_total,
            circuit_breaker_state: gauge_vec(
                r,
                "circuit_breaker_state",
                "Circuit breaker state (0 closed, 1 half-open, 2 open)",
                &["name"],
            )?,
            redis_queue_resets_total: counter(
                r,
                "redis_queue_resets_total",
                "Times the Redis queue found its data lost and re-published the store's runnable tasks, by signal (group_missing, stream_drained)",
                &["reason"],
            )?,
            tasks_cancelled_total: cancelled_counter(r)?,
            http_connections_active,
            http_connection_timeouts_total,
            http_buffered_body_bytes,
            agent_budget: BudgetMetrics::new(r)?,
            webhook_deliveries_recovered_total,
            webhook_recovery_runs_total,
            webhook_recovery_last_success_timestamp_seconds,
            registry,
        })
    }

    /// The registry, to add metrics or gather them elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets `database_connections_active` (the server reads its pool).
    pub fn set_database_connections(&self, active: u64) {
        self.database_connections_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    /// Sets every breaker's gauge from a snapshot.
    pub fn record_breakers(&self, breakers: &[BreakerSnapshot]) {
        for b in breakers {
            self.circuit_breaker_state
                .with_label_values(&[b.name.as_str()])
                .set(b.state.as_gauge());
        }
    }

    /// Counts a refusal that never reached the ingestor (rate limit, body too large while
    /// reading, unreadable body, body budget spent).
    pub fn webhook_refused(&self, reason: &str) {
        self.webhook_errors_total.with_label_values(&[reason]).inc();
    }

    /// Counts an open connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGauge {
        self.http_connections_active.inc();
        ConnectionGauge(self.http_connections_active.clone())
    }

    /// Counts a connection closed by the `header` or `idle` timeout.
    pub fn connection_timed_out(&self, timeout: &str) {
        self.http_connection_timeouts_total
            .with_label_values(&[timeout])
            .inc();
    }

    /// Sets `http_buffered_body_bytes` (read from the body budget at each scrape).
    pub fn set_buffered_body_bytes(&self, bytes: usize) {
        self.http_buffered_body_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Sets `webhook_recovery_last_success_timestamp_seconds` (Unix seconds): the recovery
    /// schedule sets it to its start time, so the stale-recovery alert counts from there until
    /// the first success; `0` (never set) means recovery is off.
    pub fn set_recovery_last_success(&self, unix_seconds: i64) {
        self.webhook_recovery_last_success_timestamp_seconds
            .set(unix_seconds);
    }

    /// Sets the agent budget's gauges from its state at `now` (read at each scrape).
    pub fn record_agent_budget(
        &self,
        state: &orchestrator_core::budget::BudgetState,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let m = &self.agent_budget;
        m.remaining_slots.set(state.remaining.map_or(-1, i64::from));
        let wait = state
            .next_free_at
            .map_or(0, |at| ((at - now).num_milliseconds().max(0) + 999) / 1000);
        m.next_free_seconds.set(wait);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %err, "could not encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The HTTP server's metrics: open connections, connections closed by a timeout, buffered body
/// bytes.
/// The gauges of the queue and the database pool.
fn queue_metrics(r: &Registry) -> prometheus::Result<(IntGaugeVec, IntGaugeVec, IntGauge)> {
    Ok((
        gauge_vec(
            r,
            "celery_queue_size",
            "Tasks waiting in the queue (ready and scheduled), by queue backend",
            &["queue"],
        )?,
        gauge_vec(
            r,
            "task_queue_size",
            "Tasks in the queue by state (ready, scheduled, running, dead_letter)",
            &["state"],
        )?,
        gauge(
            r,
            "database_connections_active",
            "Database connections in use",
        )?,
    ))
}

/// The metrics of the outbound clients (GitHub, Codegen) and of reporting to GitHub.
fn client_metrics(
    r: &Registry,
) -> prometheus::Result<(IntCounterVec, IntGauge, IntCounterVec, IntCounterVec)> {
    Ok((
        counter(
            r,
            "github_api_requests_total",
            "GitHub API requests, by endpoint and HTTP status (0: no response)",
            &["endpoint", "status"],
        )?,
        gauge(
            r,
            "github_api_rate_limit_remaining",
            "GitHub API requests left in the current window",
        )?,
        counter(
            r,
            "codegen_agent_tasks_total",
            "Coding-agent runs by outcome",
            &["outcome"],
        )?,
        counter(
            r,
            "github_reports_total",
            "Reports sent to GitHub (check runs, statuses, comments) by kind and outcome",
            &["kind", "outcome"],
        )?,
    ))
}

/// The metrics of recovery from GitHub's delivery log.
fn recovery_metrics(r: &Registry) -> prometheus::Result<(IntCounterVec, IntCounterVec, IntGauge)> {
    Ok((
        counter(
            r,
            "webhook_deliveries_recovered_total",
            "Missing deliveries recovered from GitHub's delivery log, by mode (fetch, redeliver)",
            &["mode"],
        )?,
        counter(
            r,
            "webhook_recovery_runs_total",
            "Recovery runs ended, by status (succeeded, failed, interrupted)",
            &["status"],
        )?,
        gauge(
            r,
            "webhook_recovery_last_success_timestamp_seconds",
            "When the last recovery run succeeded (Unix seconds; 0: none since start)",
        )?,
    ))
}

fn http_metrics(r: &Registry) -> prometheus::Result<(IntGauge, IntCounterVec, IntGauge)> {
    Ok((
        gauge(
            r,
            "http_connections_active",
            "HTTP connections open (at most MAX_CONNECTIONS)",
        )?,
        counter(
            r,
            "http_connection_timeouts_total",
            "HTTP connections closed by a timeout (header: no complete request head in time; idle: keep-alive)",
            &["timeout"],
        )?,
        gauge(
            r,
            "http_buffered_body_bytes",
            "Request-body bytes held in memory (at most MAX_BUFFERED_BODY_BYTES)",
        )?,
    ))
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Observer for Metrics {
    fn delivery(
        &self,
        event_type: &str,
        outcome: DeliveryOutcome,
        reason: Option<&str>,
        elapsed: Duration,
    ) {
        self.webhook_events_total
            .with_label_values(&[event_type, outcome.as_str()])
            .inc();
        self.webhook_processing_duration_seconds
            .with_label_values(&[event_type])
            .observe(elapsed.as_secs_f64());
        if matches!(outcome, DeliveryOutcome::Rejected | DeliveryOutcome::Failed) {
            let reason = reason.unwrap_or(outcome.as_str());
            self.webhook_errors_total.with_label_values(&[reason]).inc();
        }
    }

    fn parse_failure(&self, event_type: &str) {
        self.webhook_parse_failures_total
            .with_label_values(&[event_type])
            .inc();
    }

    fn tasks_created(&self, task_type: &TaskType, count: u64) {
        self.workflow_tasks_total
            .with_label_values(&[task_type.as_str(), "created"])
            .inc_by(count);
    }

    fn task_attempt(&self, task_type: &TaskType, status: TaskStatus, elapsed: Duration) {
        self.workflow_tasks_total
            .with_label_values(&[task_type.as_str(), status.as_str()])
            .inc();
        self.workflow_task_duration_seconds
            .with_label_values(&[task_type.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    fn task_retry(&self, task_type: &TaskType) {
        self.workflow_task_retries_total
            .with_label_values(&[task_type.as_str()])
            .inc();
    }

    fn queue_depth(&self, backend: &str, depth: QueueDepth) {
        self.celery_queue_size
            .with_label_values(&[backend])
            .set(gauge_value(depth.ready.saturating_add(depth.scheduled)));
        for (state, n) in [
            ("ready", depth.ready),
            ("scheduled", depth.scheduled),
            ("running", depth.running),
            ("dead_letter", depth.dead_letter),
        ] {
            self.task_queue_size
                .with_label_values(&[state])
                .set(gauge_value(n));
        }
    }

    fn github_request(&self, endpoint: &str, status: u16) {
        self.github_api_requests_total
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
    }

    fn github_rate_limit(&self, remaining: u64) {
        self.github_api_rate_limit_remaining
            .set(gauge_value(remaining));
    }

    fn codegen_run(&self, outcome: &str) {
        self.codegen_agent_tasks_total
            .with_label_values(&[outcome])
            .inc();
    }

    fn agent_budget_deferral(&self, scope: &str) {
        self.agent_budget
            .deferrals_total
            .with_label_values(&[scope])
            .inc();
    }

    fn github_report(&self, kind: &str, outcome: &str) {
        self.github_reports_total
            .with_label_values(&[kind, outcome])
            .inc();
    }

    fn breaker(&self, name: &str, state: BreakerState) {
        self.circuit_breaker_state
            .with_label_values(&[name])
            .set(state.as_gauge());
    }

    fn queue_reset(&self, reason: &str) {
        self.redis_queue_resets_total
            .with_label_values(&[reason])
            .inc();
    }

    fn tasks_cancelled(&self, reason: &str, count: u64) {
        self.tasks_cancelled_total
            .with_label_values(&[reason])
            .inc_by(count);
    }

    fn delivery_recovered(&self, mode: &str) {
        self.webhook_deliveries_recovered_total
            .with_label_values(&[mode])
            .inc();
    }

    fn recovery_run(&self, status: &str, finished_at_unix: Option<i64>) {
        self.webhook_recovery_runs_total
            .with_label_values(&[status])
            .inc();
        if let Some(at) = finished_at_unix {
            self.webhook_recovery_last_success_timestamp_seconds.set(at);
        }
    }
}

/// `tasks_cancelled_total{reason}`, every reason shown from the start (at 0).
fn cancelled_counter(registry: &Registry) -> prometheus::Result<IntCounterVec> {
    use orchestrator_core::store::cancel::CancelReason;
    let metric = counter(
        registry,
        "tasks_cancelled_total",
        "Tasks cancelled, by reason (manual, superseded, closed)",
        &["reason"],
    )?;
    for reason in [
        CancelReason::Manual,
        CancelReason::Superseded,
        CancelReason::Closed,
    ] {
        metric.with_label_values(&[reason.as_str()]);
    }
    Ok(metric)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn observations_render_under_the_spec_names() {
        let m = Metrics::new().unwrap();
        m.delivery(
            "pull_request",
            DeliveryOutcome::Accepted,
            None,
            Duration::from_millis(3),
        );
        m.delivery(
            "push",
            DeliveryOutcome::Rejected,
            Some("signature_mismatch"),
            Duration::from_millis(1),
        );
        m.tasks_created(&TaskType::PULL_REQUEST_ANALYSIS, 2);
        m.parse_failure("pull_request");
        m.queue_depth(
            "memory",
            QueueDepth {
                ready: 3,
                scheduled: 1,
                running: 2,
                dead_letter: 0,
            },
        );
        m.set_database_connections(4);
        m.breaker("github", BreakerState::Open);
        m.queue_reset("group_missing");
        let text = m.render();
        for line in [
            r#"webhook_events_total{event_type="pull_request",status="accepted"} 1"#,
            r#"webhook_errors_total{reason="signature_mismatch"} 1"#,
            r#"webhook_parse_failures_total{event_type="pull_request"} 1"#,
            r#"workflow_tasks_total{status="created",task_type="pull_request_analysis"} 2"#,
            r#"celery_queue_size{queue="memory"} 4"#,
            r#"task_queue_size{state="running"} 2"#,
            "database_connections_active 4",
            r#"circuit_breaker_state{name="github"} 2"#,
            r#"redis_queue_resets_total{reason="group_missing"} 1"#,
            r#"webhook_processing_duration_seconds_count{event_type="pull_request"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
