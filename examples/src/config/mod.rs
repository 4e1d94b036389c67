//! Configuration from the environment, validated once at start-up.
//!
//! Every variable is read through one lookup function (the process environment in `main`, a
//! map in tests). All problems are collected and reported together, one line each, so an
//! operator fixes a deployment in one round instead of one variable per restart. Which
//! variables are required depends on what the process does ([`Purpose`]): an API process needs
//! the webhook secret, a worker does not; `migrate` needs only the database.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;

mod read;
mod redis_queue;

pub use redis_queue::RedisQueueSettings;

/// The embedded default database: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://orchestrator.db?mode=rwc";
/// The default listen address.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
/// GitHub's REST API.
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
/// The Codegen API.
pub const DEFAULT_CODEGEN_API_URL: &str = "https://api.codegen.com";

/// Which parts of the service a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// HTTP API and workers in one process (the default).
    #[default]
    All,
    /// Only the HTTP API (receiver, query and admin endpoints).
    Api,
    /// Only the task workers (and the scheduled cleanup).
    Worker,
}

impl Role {
    /// Whether this role serves HTTP requests.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    /// Whether this role runs task workers.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }

    /// The role's name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

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

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for log aggregation).
    Json,
    /// Human-readable lines.
    Text,
}

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Codegen API credentials (both or neither must be set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodegenCredentials {
    /// `CODEGEN_TOKEN`.
    pub token: Secret,
    /// `CODEGEN_ORG_ID`.
    pub org_id: u64,
}

/// GitHub App credentials (both or neither must be set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubApp {
    /// `GITHUB_APP_ID`.
    pub app_id: u64,
    /// `GITHUB_APP_PRIVATE_KEY`: the PEM text (or read from the file the variable names).
    pub private_key: Secret,
}

/// A token-bucket limit; `per_period == 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub per_period: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
}

impl RateLimit {
    /// Whether the limit is enforced.
    pub fn enabled(&self) -> bool {
        self.per_period > 0
    }
}

/// The validated configuration of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `DATABASE_URL` (`sqlite:` or `postgres:`).
    pub database_url: Secret,
    /// `GITHUB_WEBHOOK_SECRET` plus `GITHUB_WEBHOOK_SECRET_PREVIOUS` during a rotation.
    pub webhook_secrets: Vec<Secret>,
    /// `CODEGEN_TOKEN` + `CODEGEN_ORG_ID`; `None` skips Codegen runs.
    pub codegen: Option<CodegenCredentials>,
    /// `SECRET_KEY`: the admin token when `ADMIN_TOKEN` is not set.
    pub secret_key: Option<Secret>,
    /// `ADMIN_TOKEN`: bearer token of the admin endpoints.
    pub admin_token: Option<Secret>,
    /// `REDIS_URL` (or `CELERY_BROKER_URL`): switches the queue to Redis Streams.
    pub redis_url: Option<Secret>,
    /// `GITHUB_TOKEN`.
    pub github_token: Option<Secret>,
    /// `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY`.
    pub github_app: Option<GitHubApp>,
    /// `GITHUB_API_URL`.
    pub github_api_url: Url,
    /// `CODEGEN_API_URL`.
    pub codegen_api_url: Url,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `JAEGER_ENDPOINT`).
    pub otlp_endpoint: Option<Url>,
    /// `LOG_LEVEL`: an `EnvFilter` directive such as `info` or `orchestrator=debug,info`.
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `ENABLE_METRICS`.
    pub enable_metrics: bool,
    /// `ENABLE_TRACING`.
    pub enable_tracing: bool,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `MAX_PAYLOAD_BYTES`.
    pub max_payload_bytes: usize,
    /// `RATE_LIMIT_WEBHOOK_PER_SECOND` / `RATE_LIMIT_WEBHOOK_BURST`.
    pub webhook_rate_limit: RateLimit,
    /// `RATE_LIMIT_API_PER_MINUTE` / `RATE_LIMIT_API_BURST`.
    pub api_rate_limit: RateLimit,
    /// `RETRY_MAX_RETRIES`.
    pub retry_max_retries: u32,
    /// `RETRY_BASE_DELAY_SECONDS`.
    pub retry_base_delay: Duration,
    /// `RETRY_MAX_DELAY_SECONDS`.
    pub retry_max_delay: Duration,
    /// `CIRCUIT_BREAKER_FAILURE_THRESHOLD`.
    pub breaker_failure_threshold: u32,
    /// `CIRCUIT_BREAKER_RECOVERY_SECONDS`.
    pub breaker_recovery: Duration,
    /// `WORKER_CONCURRENCY`.
    pub worker_concurrency: usize,
    /// `SHUTDOWN_GRACE_SECONDS`: how long running tasks and in-flight HTTP requests may finish
    /// at shutdown.
    pub shutdown_grace: Duration,
    /// `CLEANUP_INTERVAL_SECONDS` (0 turns the schedule off).
    pub cleanup_interval: Duration,
    /// `RETENTION_EVENTS_DAYS`: processed events are kept this long.
    pub retention_events: Duration,
    /// `RETENTION_TASKS_DAYS`: finished tasks are kept this long.
    pub retention_tasks: Duration,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `SQLITE_SYNCHRONOUS=normal` trades power-loss durability of the last commits for speed.
    pub sqlite_synchronous_full: bool,
    /// `WORKER_LEASE_SECONDS`: how long a claimed task stays with a worker that stops answering.
    pub worker_lease: Duration,
    /// `DUPLICATE_DELIVERY_STATUS`: 409 (the spec) or 200 (acknowledge GitHub redeliveries).
    pub duplicate_conflict: bool,
    /// `TRUSTED_PROXY_HEADER`: the client-address header a trusted reverse proxy sets.
    pub trusted_proxy_header: Option<String>,
    /// `METRICS_REQUIRE_TOKEN`: whether `/metrics` needs the admin token too.
    pub metrics_require_token: bool,
    /// `DATABASE_DURABLE_QUEUE_WRITES`: PostgreSQL claims and finishes wait for the WAL flush.
    pub durable_queue_writes: bool,
    /// `SQLITE_COMPRESS_PAYLOADS`: SQLite stores large payloads zstd-compressed.
    pub sqlite_compress_payloads: bool,
    /// `INGEST_BATCH_MAX`: most deliveries committed together (group commit; 0 or 1 turns it off).
    pub ingest_batch_max: usize,
    /// `REDIS_KEY_PREFIX`: prefix of every Redis key (several deployments can share a Redis).
    pub redis_key_prefix: String,
    /// `REDIS_SWEEP_AFTER_SECONDS`: the Redis queue's sweeper.
    pub redis_queue: RedisQueueSettings,
    /// `CODEGEN_POLL_SECONDS`: first wait before reading a Codegen run again (doubles up to 5 min).
    pub codegen_poll: Duration,
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
    /// The problems, in the order the variables are documented.
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

#[cfg(test)]
mod tests;
