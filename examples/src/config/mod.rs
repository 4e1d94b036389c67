//! Configuration from the environment, validated once at start-up.
//!
//! The settings are the crates' own configuration structs, composed: [`PoolOptions`]
//! (orchestrator-sqlx), [`RedisConfig`] (orchestrator-redis), [`ApiConfig`] and its
//! [`RateLimit`](orchestrator_axum::RateLimit)s (orchestrator-axum), [`GitHubConfig`],
//! [`CodegenConfig`] and [`HandlerConfig`] (orchestrator-codegen), [`RetryPolicy`],
//! [`WorkerConfig`], [`DeliveryLimits`] and [`Secret`] (orchestrator-core). The server adds only
//! what no crate owns: where to listen, the cleanup schedule and the logs ([`TelemetryConfig`]).
//! [`Config::default`] is the configuration of an empty environment (every default in one
//! place); the readers start from it.
//!
//! Every variable is read through one lookup function (the process environment in `main`, a
//! map in tests). All problems are collected and reported together, one line each, so an
//! operator fixes a deployment in one round instead of one variable per restart. Which
//! variables are required depends on what the process does ([`Purpose`]): an API process needs
//! the webhook secret, a worker does not; `migrate` needs only the database.
//!
//! ## Layout
//! - `read.rs`: the reader (parsing, ranges, collecting problems).
//! - One reader per group of variables: `storage.rs` (database, Redis), `api.rs` (listening,
//!   the receiver, the admin API), `clients.rs` (GitHub, Codegen, breakers), `worker.rs`
//!   (retries, workers, shutdown, cleanup and retention), `telemetry.rs` (logs, metrics,
//!   traces), `http_limits.rs` (connection timeouts and cap, the body budget), `report.rs`
//!   (reporting back on the pull request), `agent_failure.rs` (which agent run statuses fail a
//!   task), `agent_budget.rs` (the agent budget of Codegen run creations), `supersede.rs`
//!   (superseding stale pull-request work), `recovery.rs` (reconciling
//!   with GitHub's delivery log).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use orchestrator_axum::{ApiConfig, ServeConfig};
use orchestrator_codegen::{CodegenConfig, GitHubConfig, HandlerConfig};
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::engine::{SupersedeConfig, WorkerConfig};
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::secret::Secret;
use orchestrator_redis::{QueueConfig, RedisConfig};
use orchestrator_sqlx::PoolOptions;

use crate::role::Role;
use crate::telemetry::TelemetryConfig;

mod agent_budget;
mod agent_failure;
mod api;
mod clients;
mod http_limits;
mod read;
mod recovery;
mod report;
mod storage;
mod supersede;
mod telemetry;
mod worker;

/// The embedded default database: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://orchestrator.db?mode=rwc";
/// The default listen address.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";

/// Every variable the server reads. Problems are reported in this order, whatever the order
/// in which the readers meet them (the order they have always been reported in: what a process
/// cannot start without first).
const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_WEBHOOK_SECRET_PREVIOUS",
    "CODEGEN_TOKEN",
    "CODEGEN_ORG_ID",
    "ADMIN_TOKEN",
    "SECRET_KEY",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "GITHUB_TOKEN",
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_API_URL",
    "CODEGEN_API_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "JAEGER_ENDPOINT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "ENABLE_METRICS",
    "ENABLE_TRACING",
    "BIND_ADDR",
    "MAX_PAYLOAD_BYTES",
    "RATE_LIMIT_WEBHOOK_PER_SECOND",
    "RATE_LIMIT_WEBHOOK_BURST",
    "RATE_LIMIT_API_PER_MINUTE",
    "RATE_LIMIT_API_BURST",
    "RETRY_MAX_RETRIES",
    "RETRY_BASE_DELAY_SECONDS",
    "RETRY_MAX_DELAY_SECONDS",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
    "CIRCUIT_BREAKER_RECOVERY_SECONDS",
    "WORKER_CONCURRENCY",
    "SHUTDOWN_GRACE_SECONDS",
    "CLEANUP_INTERVAL_SECONDS",
    "RETENTION_EVENTS_DAYS",
    "RETENTION_TASKS_DAYS",
    "DATABASE_MAX_CONNECTIONS",
    "SQLITE_SYNCHRONOUS",
    "WORKER_LEASE_SECONDS",
    "DUPLICATE_DELIVERY_STATUS",
    "TRUSTED_PROXY_HEADER",
    "METRICS_REQUIRE_TOKEN",
    "DATABASE_DURABLE_QUEUE_WRITES",
    "SQLITE_COMPRESS_PAYLOADS",
    "INGEST_BATCH_MAX",
    "REDIS_KEY_PREFIX",
    "REDIS_SWEEP_AFTER_SECONDS",
    "CODEGEN_POLL_SECONDS",
    "HTTP_HEADER_TIMEOUT_SECONDS",
    "HTTP_KEEPALIVE_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS",
    "MAX_BUFFERED_BODY_BYTES",
    "GITHUB_RECOVERY_HOOKS",
    "GITHUB_RECOVERY_INTERVAL_SECONDS",
    "GITHUB_RECOVERY_MAX_LOOKBACK_HOURS",
    "CODEGEN_FAILURE_STATUSES",
    "REPORT_TO_GITHUB",
    "REPORT_CHECK_NAME",
    "REPORT_PR_COMMENT",
    "REPORT_INTERVAL_SECONDS",
    "REPORT_RETRY_INITIAL_SECONDS",
    "REPORT_RETRY_MAX_SECONDS",
    "REPORT_RETRY_MAX_TRIES",
    "CODEGEN_MANUAL_FIX_REPOS",
    "SUPERSEDE_ENABLED",
    "SUPERSEDE_RUNNING",
    "AGENT_BUDGET_PER_MINUTE",
    "AGENT_BUDGET_PER_REPO_PER_HOUR",
    "AGENT_BUDGET_RUNS_PER_HEAD",
];

/// What the configuration is loaded for; decides which variables are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `serve --role ...`.
    Serve(Role),
    /// `migrate`: only the database is needed.
    Migrate,
    /// `send`: only the webhook secret is needed.
    Send,
    /// `probe`: only `BIND_ADDR` is read.
    Probe,
}

/// The validated configuration of the server: the crates' settings, composed.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL` (`sqlite:` or `postgres:`).
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`, `SQLITE_SYNCHRONOUS`, `SQLITE_COMPRESS_PAYLOADS`,
    /// `DATABASE_DURABLE_QUEUE_WRITES`.
    pub pool: PoolOptions,
    /// `INGEST_BATCH_MAX`: most deliveries committed together (group commit; 0 or 1 turns it off).
    pub ingest_batch_max: usize,
    /// `REDIS_URL` (or `CELERY_BROKER_URL`) and `REDIS_KEY_PREFIX`: the Redis Streams queue and
    /// the shared guards; `None` keeps the queue in the database.
    pub redis: Option<RedisConfig>,
    /// `REDIS_SWEEP_AFTER_SECONDS`: the Redis queue's sweeper (its visibility timeout follows
    /// `WORKER_LEASE_SECONDS` when the queue is built).
    pub redis_queue: QueueConfig,
    /// `GITHUB_WEBHOOK_SECRET` plus `GITHUB_WEBHOOK_SECRET_PREVIOUS` during a rotation.
    pub webhook_secrets: Vec<Secret>,
    /// `MAX_PAYLOAD_BYTES`.
    pub delivery_limits: DeliveryLimits,
    /// `ADMIN_TOKEN` (else `SECRET_KEY`), `DUPLICATE_DELIVERY_STATUS`, `RATE_LIMIT_*`,
    /// `TRUSTED_PROXY_HEADER`, `METRICS_REQUIRE_TOKEN`, `RETENTION_*_DAYS`.
    pub api: ApiConfig,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `GITHUB_TOKEN`, `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY`, `GITHUB_API_URL`,
    /// `CIRCUIT_BREAKER_*`.
    pub github: GitHubConfig,
    /// `CODEGEN_TOKEN` + `CODEGEN_ORG_ID` (neither: Codegen runs are skipped),
    /// `CODEGEN_API_URL`, `CIRCUIT_BREAKER_*`.
    pub codegen: CodegenConfig,
    /// `CODEGEN_POLL_SECONDS`, `CODEGEN_FAILURE_STATUSES`, `CODEGEN_MANUAL_FIX_REPOS`.
    pub handlers: HandlerConfig,
    /// `RETRY_MAX_RETRIES`, `RETRY_BASE_DELAY_SECONDS`, `RETRY_MAX_DELAY_SECONDS`.
    pub retry: RetryPolicy,
    /// `WORKER_CONCURRENCY`, `WORKER_LEASE_SECONDS`, `SHUTDOWN_GRACE_SECONDS` (also how long
    /// in-flight HTTP requests may finish at shutdown).
    pub worker: WorkerConfig,
    /// `CLEANUP_INTERVAL_SECONDS` (zero turns the schedule off).
    pub cleanup_interval: Duration,
    /// `ENABLE_METRICS`.
    pub enable_metrics: bool,
    /// `LOG_LEVEL`, `LOG_FORMAT`, `ENABLE_TRACING`, `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub telemetry: TelemetryConfig,
    /// `HTTP_HEADER_TIMEOUT_SECONDS`, `HTTP_KEEPALIVE_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`: what
    /// slow or idle clients may hold (its `shutdown_grace` and `metrics` are set when serving,
    /// from `SHUTDOWN_GRACE_SECONDS` and `ENABLE_METRICS`). `MAX_BUFFERED_BODY_BYTES` is
    /// [`ApiConfig::max_buffered_body_bytes`] in `api`.
    pub serve: ServeConfig,
    /// `GITHUB_RECOVERY_HOOKS`, `GITHUB_RECOVERY_INTERVAL_SECONDS` (zero turns the schedule
    /// off), `GITHUB_RECOVERY_MAX_LOOKBACK_HOURS`: reconciling with GitHub's delivery log.
    pub recovery: orchestrator_core::recovery::RecoveryConfig,
    /// `REPORT_CHECK_NAME`, `REPORT_PR_COMMENT`, `REPORT_INTERVAL_SECONDS`,
    /// `REPORT_RETRY_INITIAL_SECONDS`, `REPORT_RETRY_MAX_SECONDS`, `REPORT_RETRY_MAX_TRIES`: the
    /// reporter's settings (its `mode` is [`Config::report_mode`]).
    pub report: orchestrator_core::report::ReportConfig,
    /// `REPORT_TO_GITHUB`; `None` picks by the credentials ([`Config::report_mode`]).
    pub report_to: Option<orchestrator_core::report::ReportMode>,
    /// `SUPERSEDE_ENABLED`, `SUPERSEDE_RUNNING`: stale pull-request work is cancelled when a
    /// newer head arrives (given to the ingestor).
    pub supersede: SupersedeConfig,
}

/// The configuration of an empty environment: the embedded SQLite file, the database queue, no
/// webhook secret (every delivery is refused until one is set), the admin API locked.
impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: Secret::new(DEFAULT_DATABASE_URL),
            pool: PoolOptions::default(),
            ingest_batch_max: 64,
            redis: None,
            redis_queue: QueueConfig::default(),
            webhook_secrets: Vec::new(),
            delivery_limits: DeliveryLimits::default(),
            api: ApiConfig::default(),
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            github: GitHubConfig::default(),
            codegen: CodegenConfig::default(),
            handlers: HandlerConfig::default(),
            retry: RetryPolicy::default(),
            worker: WorkerConfig::default(),
            cleanup_interval: Duration::from_secs(3600),
            enable_metrics: true,
            telemetry: TelemetryConfig::default(),
            serve: ServeConfig::default(),
            supersede: SupersedeConfig::default(),
            recovery: orchestrator_core::recovery::RecoveryConfig::default(),
            report: orchestrator_core::report::ReportConfig::default(),
            report_to: None,
        }
    }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// All problems found at start-up; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, required and connection settings first (a fixed order of the variables,
    /// whatever order they were read in).
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(purpose: Purpose) -> Result<Self, ConfigError> {
        Self::from_lookup(purpose, &|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` and validates them for `purpose`: [`Config::default`]
    /// with every variable that is set applied to it.
    pub fn from_lookup(
        purpose: Purpose,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut r = read::Reader::new(lookup);
        let mut config = Config::default();
        storage::read(&mut r, &mut config);
        api::read(&mut r, purpose, &mut config);
        clients::read(&mut r, &mut config);
        worker::read(&mut r, purpose, &mut config);
        telemetry::read(&mut r, &mut config);
        http_limits::read(&mut r, &mut config);
        recovery::read(&mut r, &mut config);
        agent_failure::read(&mut r, &mut config);
        agent_budget::read(&mut r, &mut config);
        report::read(&mut r, &mut config);
        supersede::read(&mut r, &mut config);
        r.finish(config)
    }

    /// Whether the database is SQLite (the embedded default).
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }

    /// How long in-flight requests and running tasks may finish at shutdown
    /// (`SHUTDOWN_GRACE_SECONDS`).
    pub fn shutdown_grace(&self) -> Duration {
        self.worker.shutdown_grace
    }
}

#[cfg(test)]
mod tests;
