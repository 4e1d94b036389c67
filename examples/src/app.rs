//! Wiring: builds the store, queue, clients, handlers, HTTP API and workers from a [`Config`]
//! and runs them until shutdown.
//!
//! Every role serves HTTP on `BIND_ADDR`: `all` and `api` the whole API, `worker` only
//! `/health` and `/metrics` (for probes and scraping). Shutdown is one cancellation token:
//! the HTTP server stops accepting and finishes in-flight requests (cut off after
//! `SHUTDOWN_GRACE_SECONDS`, so a stalled client cannot hold the process), each worker stops
//! claiming, lets running tasks finish for `SHUTDOWN_GRACE_SECONDS` and releases the rest
//! (pending, due now) so another worker takes them at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orchestrator_axum::{
    ApiConfig, AppState, CachedCheck, DuplicatePolicy, Metrics, RateLimit, RateLimits,
};
use orchestrator_codegen::{
    CodegenClient, CodegenConfig, GitHubAppConfig, GitHubClient, GitHubConfig, HandlerConfig,
};
use orchestrator_core::breaker::{BreakerConfig, BreakerSet};
use orchestrator_core::clock::{Clock, SystemClock};
use orchestrator_core::delivery::DeliveryLimits;
use orchestrator_core::engine::{GroupCommit, Ingestor, Worker, WorkerConfig};
use orchestrator_core::handler::HandlerRegistry;
use orchestrator_core::observe::{NoopObserver, Observer};
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::retry::{Backoff, RetryPolicy};
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::{EventStore, RetentionPolicy, TaskStore};
use orchestrator_sqlx::{PoolOptions, SqlStore, SqliteDurability};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Role};
use crate::error::ServerError;
use crate::health::GitHubReachable;
use crate::telemetry;

/// How often `database_connections_active` is refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the service in `role` on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    role: Role,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics =
        Arc::new(Metrics::new().map_err(|e| ServerError::Usage(format!("metrics: {e}")))?);
    let observer: Arc<dyn Observer> = if config.enable_metrics {
        metrics.clone()
    } else {
        Arc::new(NoopObserver)
    };

    let store = Arc::new(connect(&config, true).await?);
    tracing::info!(
        database = store.database(),
        role = role.as_str(),
        "store ready"
    );
    let (queue, redis) = build_queue(&config, store.clone(), clock.clone()).await?;

    let breaker = BreakerConfig {
        failure_threshold: config.breaker_failure_threshold,
        recovery: config.breaker_recovery,
    };
    let github = Arc::new(
        GitHubClient::new(
            github_config(&config, breaker),
            clock.clone(),
            observer.clone(),
        )
        .map_err(|e| ServerError::Usage(format!("GitHub client: {e}")))?,
    );
    let codegen = Arc::new(
        CodegenClient::new(
            codegen_config(&config, breaker),
            clock.clone(),
            observer.clone(),
        )
        .map_err(|e| ServerError::Usage(format!("Codegen client: {e}")))?,
    );
    if config.codegen.is_none() {
        tracing::warn!(
            "CODEGEN_TOKEN and CODEGEN_ORG_ID are not set: Codegen runs are skipped (codegen_trigger tasks complete with status \"skipped\")"
        );
    }
    let breakers = BreakerSet::new();
    breakers.add(github.breaker());
    breakers.add(codegen.breaker());

    let retry = RetryPolicy {
        max_retries: config.retry_max_retries,
        backoff: Backoff {
            base: config.retry_base_delay,
            max: config.retry_max_delay,
            ..Backoff::default()
        },
        ..RetryPolicy::default()
    };
    let verifier = SignatureVerifier::new(
        config
            .webhook_secrets
            .iter()
            .map(|s| WebhookSecret::new(s.expose().as_bytes().to_vec())),
    );
    // Group commit: concurrent deliveries share one transaction (one disk flush); each is
    // answered only after the commit that holds it. One committer for SQLite (one writer
    // anyway) on its own thread, one per pooled connection for PostgreSQL.
    let events: Arc<dyn EventStore> = if config.ingest_batch_max > 1 && config.is_sqlite() {
        Arc::new(GroupCommit::on_own_thread(
            store.clone(),
            config.ingest_batch_max,
        ))
    } else if config.ingest_batch_max > 1 {
        Arc::new(GroupCommit::new(
            store.clone(),
            config.database_max_connections as usize,
            config.ingest_batch_max,
        ))
    } else {
        store.clone()
    };
    let ingestor = Ingestor::new(
        verifier,
        Router::with_default_rules(),
        events,
        queue.clone(),
        clock.clone(),
    )
    .with_limits(DeliveryLimits {
        max_body_bytes: config.max_payload_bytes,
    })
    .with_retry_policy(retry)
    .with_observer(observer.clone());
    // With Redis, every API instance shares one replay guard (in front of the database's unique
    // constraint) and one rate limiter; without it, the database and governor do both jobs.
    let ingestor = match &redis {
        Some(conn) => ingestor
            .with_delivery_guard(Arc::new(orchestrator_redis::ReplayGuard::new(conn.clone()))),
        None => ingestor,
    };

    let github_check = GitHubReachable::new(config.github_api_url.clone(), Duration::from_secs(5));
    let mut state = AppState::builder(
        Arc::new(ingestor),
        store.clone(),
        store.clone(),
        queue.clone(),
        clock.clone(),
    )
    .config(api_config(&config))
    .metrics(metrics.clone())
    .breakers(breakers)
    .health_check(Arc::new(CachedCheck::new(
        github_check,
        Duration::from_secs(60),
        clock.clone(),
    )));
    if let Some(conn) = &redis {
        state = state.shared_rate_limiter(Arc::new(orchestrator_redis::RedisRateLimiter::new(
            conn.clone(),
        )));
    }
    let state = state.build();

    let cancel = CancellationToken::new();
    let mut background = tokio::task::JoinSet::new();
    {
        let cancel = cancel.clone();
        background.spawn(async move {
            shutdown.await;
            cancel.cancel();
        });
    }
    {
        let (store, metrics, cancel) = (store.clone(), metrics.clone(), cancel.clone());
        background.spawn(async move {
            let mut tick = tokio::time::interval(GAUGE_INTERVAL);
            while cancel.run_until_cancelled(tick.tick()).await.is_some() {
                metrics.set_database_connections(u64::from(store.connections_active()));
            }
        });
    }

    let mut workers = tokio::task::JoinSet::new();
    if role.runs_workers() {
        let mut registry = HandlerRegistry::new();
        orchestrator_codegen::register_handlers(
            &mut registry,
            github.clone(),
            codegen.clone(),
            HandlerConfig {
                poll_initial: config.codegen_poll,
                ..HandlerConfig::default()
            },
            observer.clone(),
        );
        let worker_config = WorkerConfig {
            concurrency: config.worker_concurrency,
            lease: config.worker_lease,
            shutdown_grace: config.shutdown_grace,
            ..WorkerConfig::default()
        };
        tracing::info!(worker_id = %worker_config.worker_id, concurrency = config.worker_concurrency, queue = queue.backend(), "starting workers");
        let worker = Worker::new(
            queue.clone(),
            store.clone(),
            registry,
            clock.clone(),
            worker_config,
        )
        .with_retry_policy(retry)
        .with_observer(observer.clone())
        .with_span_factory(Arc::new(telemetry::task_span));
        let stop = cancel.clone();
        workers.spawn(async move { worker.run(stop.cancelled_owned()).await });
        if !config.cleanup_interval.is_zero() {
            background.spawn(cleanup_schedule(
                store.clone(),
                clock.clone(),
                retention(&config),
                config.cleanup_interval,
                cancel.clone(),
            ));
        }
    }

    let exporting = config.enable_tracing && config.otlp_endpoint.is_some();
    let app = if role.serves_api() && exporting {
        orchestrator_axum::router(state).layer(axum::middleware::from_fn(trace_context))
    } else if role.serves_api() {
        orchestrator_axum::router(state)
    } else {
        orchestrator_axum::router(state).layer(axum::middleware::from_fn(probes_only))
    };
    // Liveness: the process answers, whatever its dependencies say (readiness is `/health`).
    let app = app.route("/health/live", axum::routing::get(|| async { "ok" }));
    tracing::info!(addr = %listener.local_addr()?, role = role.as_str(), "listening");
    let stop = cancel.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await });
    // In-flight requests get `SHUTDOWN_GRACE_SECONDS` to finish; a client that never completes
    // its request (a stalled upload) must not keep the process from stopping.
    let drain = {
        let (stop, grace) = (cancel.clone(), config.shutdown_grace);
        async move {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
        }
    };
    let served = tokio::select! {
        served = std::future::IntoFuture::into_future(server) => served,
        () = drain => {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period; closing them");
            Ok(())
        }
    };
    // The HTTP server only ends on shutdown (or an accept error): stop everything else too.
    cancel.cancel();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Err(e)) => tracing::error!(error = %e, "worker stopped with an error"),
            Err(e) => tracing::error!(error = %e, "worker panicked"),
            Ok(Ok(())) => {}
        }
    }
    background.abort_all();
    // A request cut off above may still hold a connection; do not wait for it forever.
    if tokio::time::timeout(config.shutdown_grace, store.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still in use at shutdown; not waiting for them");
    }
    tracing::info!("shutdown complete");
    served.map_err(ServerError::Io)
}

/// The task queue, and the Redis connection when the queue is on Redis.
type QueueParts = (
    Arc<dyn TaskQueue>,
    Option<orchestrator_redis::RedisConnection>,
);

/// Applies the migrations and exits.
pub async fn migrate(config: &Config) -> Result<(), ServerError> {
    let store = connect(config, false).await?;
    store
        .migrate()
        .await
        .map_err(|e| ServerError::Usage(format!("migration failed: {e}")))?;
    tracing::info!(database = store.database(), "migrations applied");
    store.close().await;
    Ok(())
}

async fn connect(config: &Config, run_migrations: bool) -> Result<SqlStore, ServerError> {
    let options = PoolOptions {
        max_connections: config.database_max_connections,
        sqlite_durability: if config.sqlite_synchronous_full {
            SqliteDurability::Full
        } else {
            SqliteDurability::Normal
        },
        run_migrations,
        durable_queue_writes: config.durable_queue_writes,
        sqlite_compress_payloads: config.sqlite_compress_payloads,
        ..PoolOptions::default()
    };
    SqlStore::connect(config.database_url.expose(), options)
        .await
        .map_err(|e| ServerError::Usage(format!("cannot open the database (DATABASE_URL): {e}")))
}

async fn build_queue(
    config: &Config,
    store: Arc<SqlStore>,
    clock: Arc<dyn Clock>,
) -> Result<QueueParts, ServerError> {
    let Some(url) = &config.redis_url else {
        return Ok((store, None));
    };
    let redis = |e: orchestrator_redis::Error| ServerError::Usage(format!("REDIS_URL: {e}"));
    let redis_config = orchestrator_redis::RedisConfig {
        prefix: config.redis_key_prefix.clone(),
        ..orchestrator_redis::RedisConfig::new(url.expose())
    };
    redis_config.validate().map_err(redis)?;
    let conn = orchestrator_redis::RedisConnection::new(redis_config).map_err(redis)?;
    let tasks: Arc<dyn TaskStore> = store;
    let queue =
        orchestrator_redis::RedisQueue::new(conn.clone(), queue_config(config), tasks, clock)
            .map_err(redis)?;
    tracing::info!("task queue: Redis Streams");
    Ok((Arc::new(queue), Some(conn)))
}

/// The Redis queue's settings. A busy worker refreshes its message only when it renews its
/// lease (every `lease / 3`), so the visibility timeout must be well above that or the messages
/// of live workers are taken over and, after a few scans, dead-lettered.
fn queue_config(config: &Config) -> orchestrator_redis::QueueConfig {
    let defaults = orchestrator_redis::QueueConfig::default();
    orchestrator_redis::QueueConfig {
        visibility_timeout: defaults.visibility_timeout.max(config.worker_lease),
        sweep_after: config.redis_queue.sweep_after,
        sweep_interval: config.redis_queue.sweep_interval(),
        ..defaults
    }
}

fn github_config(config: &Config, breaker: BreakerConfig) -> GitHubConfig {
    GitHubConfig {
        base_url: config.github_api_url.clone(),
        token: config
            .github_token
            .as_ref()
            .map(|t| orchestrator_codegen::Secret::new(t.expose())),
        app: config.github_app.as_ref().map(|a| GitHubAppConfig {
            app_id: a.app_id,
            private_key_pem: orchestrator_codegen::Secret::new(a.private_key.expose()),
        }),
        breaker,
        ..GitHubConfig::default()
    }
}

fn codegen_config(config: &Config, breaker: BreakerConfig) -> CodegenConfig {
    CodegenConfig {
        base_url: config.codegen_api_url.clone(),
        token: config
            .codegen
            .as_ref()
            .map(|c| orchestrator_codegen::Secret::new(c.token.expose())),
        org_id: config
            .codegen
            .as_ref()
            .and_then(|c| i64::try_from(c.org_id).ok()),
        breaker,
        ..CodegenConfig::default()
    }
}

fn retention(config: &Config) -> RetentionPolicy {
    RetentionPolicy {
        processed_events: config.retention_events,
        finished_tasks: config.retention_tasks,
    }
}

fn api_config(config: &Config) -> ApiConfig {
    let limit = |l: crate::config::RateLimit, per_minute: bool| match (l.enabled(), per_minute) {
        (false, _) => RateLimit::OFF,
        (true, false) => RateLimit::per_second(l.per_period, l.burst),
        (true, true) => RateLimit::per_minute(l.per_period, l.burst),
    };
    ApiConfig {
        admin_token: config
            .effective_admin_token()
            .and_then(|t| orchestrator_axum::config::AdminToken::new(t.expose())),
        duplicate_policy: if config.duplicate_conflict {
            DuplicatePolicy::Conflict
        } else {
            DuplicatePolicy::Acknowledge
        },
        rate_limits: RateLimits {
            webhook: limit(config.webhook_rate_limit, false),
            api: limit(config.api_rate_limit, true),
        },
        trusted_proxy_header: config
            .trusted_proxy_header
            .as_deref()
            .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok()),
        metrics_require_token: config.metrics_require_token,
        retention: retention(config),
        ..ApiConfig::default()
    }
}

/// Runs the retention cleanup every `interval` (the first run one interval after start).
async fn cleanup_schedule(
    store: Arc<SqlStore>,
    clock: Arc<dyn Clock>,
    policy: RetentionPolicy,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    while cancel.run_until_cancelled(tick.tick()).await.is_some() {
        match store.cleanup(&policy, clock.now()).await {
            Ok(report) => tracing::info!(
                events_deleted = report.events_deleted,
                tasks_deleted = report.tasks_deleted,
                executions_deleted = report.executions_deleted,
                "scheduled cleanup done"
            ),
            Err(e) => tracing::warn!(error = %e, "scheduled cleanup failed"),
        }
    }
}

/// When traces are exported: runs each request in a span of its own and, when the caller sent
/// no `traceparent`, gives the request that span's one, so the tasks it creates continue
/// this trace (the receiver stores the request's `traceparent` with them).
async fn trace_context(mut req: Request, next: Next) -> Response {
    let span =
        tracing::info_span!("http.request", method = %req.method(), path = %req.uri().path());
    if !req.headers().contains_key("traceparent")
        && let Some(parent) = telemetry::traceparent_of(&span)
        && let Ok(value) = http::HeaderValue::from_str(&parent)
    {
        req.headers_mut().insert("traceparent", value);
    }
    tracing::Instrument::instrument(next.run(req), span).await
}

/// A worker process answers probes and scrapes only.
async fn probes_only(req: Request, next: Next) -> Response {
    match req.uri().path() {
        "/health" | "/health/live" | "/metrics" => next.run(req).await,
        _ => (
            http::StatusCode::NOT_FOUND,
            "worker process: only /health and /metrics",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::Purpose;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(Purpose::Serve(Role::Worker), &move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn a_long_worker_lease_keeps_live_workers_messages_from_being_taken_over() {
        let long = queue_config(&config(&[("WORKER_LEASE_SECONDS", "900")]));
        // The worker refreshes its message every lease / 3 = 300 s.
        assert!(long.visibility_timeout >= Duration::from_secs(900));
        let short = queue_config(&config(&[("WORKER_LEASE_SECONDS", "30")]));
        assert_eq!(short.visibility_timeout, Duration::from_secs(120));
    }
}
