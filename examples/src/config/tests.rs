#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use orchestrator_axum::AdminToken;
use orchestrator_axum::{DuplicatePolicy, RateLimit};
use orchestrator_core::breaker::BreakerConfig;
use orchestrator_sqlx::SqliteDurability;

use super::*;

fn load(purpose: Purpose, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(purpose, &move |k| map.get(k).cloned())
}

fn variables(err: &ConfigError) -> Vec<&'static str> {
    err.problems.iter().map(|p| p.variable).collect()
}

#[test]
fn only_the_webhook_secret_gives_the_embedded_default() {
    let c = load(
        Purpose::Serve(Role::All),
        &[("GITHUB_WEBHOOK_SECRET", "s3cret")],
    )
    .unwrap();
    assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
    assert!(c.is_sqlite());
    assert!(c.redis.is_none());
    assert!(c.codegen.token.is_none() && c.codegen.org_id.is_none());
    assert_eq!(c.bind_addr.to_string(), DEFAULT_BIND_ADDR);
    assert_eq!(c.delivery_limits.max_body_bytes, 1024 * 1024);
    assert_eq!(c.api.rate_limits.webhook, RateLimit::per_second(10, 20));
    assert_eq!(c.api.rate_limits.api, RateLimit::per_minute(100, 50));
    assert_eq!(c.retry.max_retries, 3);
    assert_eq!(c.retry.backoff.base, Duration::from_secs(1));
    assert_eq!(c.retry.backoff.max, Duration::from_secs(300));
    let breaker = BreakerConfig {
        failure_threshold: 5,
        recovery: Duration::from_secs(30),
    };
    assert_eq!((c.github.breaker, c.codegen.breaker), (breaker, breaker));
    assert_eq!(c.github.base_url.as_str(), "https://api.github.com/");
    assert!(c.enable_metrics && c.telemetry.enable_tracing);
    assert_eq!(c.worker.lease, Duration::from_secs(60));
    assert_eq!(c.ingest_batch_max, 64);
    assert_eq!(c.pool.sqlite_durability, SqliteDurability::Full);
    assert_eq!(c.api.duplicate_policy, DuplicatePolicy::Conflict);
    assert!(!c.pool.durable_queue_writes);
    assert!(c.pool.sqlite_compress_payloads);
}

#[test]
fn choices_outside_their_set_are_refused() {
    let err = load(
        Purpose::Serve(Role::Worker),
        &[
            ("SQLITE_SYNCHRONOUS", "off"),
            ("WORKER_LEASE_SECONDS", "0"),
            ("DUPLICATE_DELIVERY_STATUS", "202"),
            ("TRUSTED_PROXY_HEADER", "bad header"),
            ("CODEGEN_POLL_SECONDS", "0"),
            ("WORKER_CONCURRENCY", "0"),
        ],
    )
    .unwrap_err();
    let mut got = variables(&err);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "CODEGEN_POLL_SECONDS",
            "DUPLICATE_DELIVERY_STATUS",
            "SQLITE_SYNCHRONOUS",
            "TRUSTED_PROXY_HEADER",
            "WORKER_CONCURRENCY",
            "WORKER_LEASE_SECONDS",
        ]
    );
    let c = load(
        Purpose::Serve(Role::Worker),
        &[
            ("SQLITE_SYNCHRONOUS", "NORMAL"),
            ("DUPLICATE_DELIVERY_STATUS", "200"),
            ("INGEST_BATCH_MAX", "0"),
        ],
    )
    .unwrap();
    assert_eq!(c.pool.sqlite_durability, SqliteDurability::Normal);
    assert_eq!(c.api.duplicate_policy, DuplicatePolicy::Acknowledge);
    assert_eq!(c.ingest_batch_max, 0);
}

#[test]
fn the_secret_is_required_only_where_deliveries_are_verified() {
    for purpose in [
        Purpose::Serve(Role::All),
        Purpose::Serve(Role::Api),
        Purpose::Send,
    ] {
        let err = load(purpose, &[]).unwrap_err();
        assert_eq!(
            variables(&err),
            vec!["GITHUB_WEBHOOK_SECRET"],
            "{purpose:?}"
        );
    }
    assert!(load(Purpose::Serve(Role::Worker), &[]).is_ok());
    assert!(load(Purpose::Migrate, &[]).is_ok());
}

#[test]
fn every_problem_is_reported_at_once_one_line_each() {
    let err = load(
        Purpose::Serve(Role::All),
        &[
            ("DATABASE_URL", "mysql://x"),
            ("CODEGEN_TOKEN", "t"),
            ("BIND_ADDR", "localhost"),
            ("RATE_LIMIT_API_PER_MINUTE", "-1"),
            ("LOG_FORMAT", "xml"),
            ("ENABLE_METRICS", "maybe"),
            ("GITHUB_API_URL", "ftp://example.com"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        variables(&err),
        vec![
            "DATABASE_URL",
            "GITHUB_WEBHOOK_SECRET",
            "CODEGEN_ORG_ID",
            "GITHUB_API_URL",
            "LOG_FORMAT",
            "ENABLE_METRICS",
            "BIND_ADDR",
            "RATE_LIMIT_API_PER_MINUTE",
        ]
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 1 + err.problems.len());
    assert!(text.contains("BIND_ADDR: \"localhost\" is not a socket address"));
}

#[test]
fn codegen_needs_both_values_and_a_numeric_org() {
    let c = load(
        Purpose::Serve(Role::Worker),
        &[("CODEGEN_TOKEN", "tok"), ("CODEGEN_ORG_ID", "42")],
    )
    .unwrap();
    assert_eq!(c.codegen.org_id, Some(42));
    assert_eq!(c.codegen.token.unwrap().expose(), "tok");
    let err = load(Purpose::Serve(Role::Worker), &[("CODEGEN_ORG_ID", "42")]).unwrap_err();
    assert_eq!(variables(&err), vec!["CODEGEN_TOKEN"]);
    let err = load(
        Purpose::Serve(Role::Worker),
        &[("CODEGEN_TOKEN", "t"), ("CODEGEN_ORG_ID", "acme")],
    )
    .unwrap_err();
    assert_eq!(variables(&err), vec!["CODEGEN_ORG_ID"]);
}

#[test]
fn redis_url_and_its_celery_alias_select_the_redis_queue() {
    let c = load(
        Purpose::Serve(Role::Worker),
        &[("CELERY_BROKER_URL", "redis://r:6379/1")],
    )
    .unwrap();
    assert_eq!(c.redis.unwrap().url, "redis://r:6379/1");
    let err = load(
        Purpose::Serve(Role::Worker),
        &[
            ("REDIS_URL", "redis://a"),
            ("CELERY_BROKER_URL", "redis://b"),
        ],
    )
    .unwrap_err();
    assert_eq!(variables(&err), vec!["CELERY_BROKER_URL"]);
}

#[test]
fn jaeger_endpoint_is_an_alias_of_the_otlp_endpoint() {
    let c = load(
        Purpose::Serve(Role::Worker),
        &[("JAEGER_ENDPOINT", "http://jaeger:4318")],
    )
    .unwrap();
    assert_eq!(
        c.telemetry.otlp_endpoint.unwrap().as_str(),
        "http://jaeger:4318/"
    );
    let c = load(
        Purpose::Serve(Role::Worker),
        &[
            ("JAEGER_ENDPOINT", "http://j:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://o:4318"),
        ],
    )
    .unwrap();
    assert_eq!(c.telemetry.otlp_endpoint.unwrap().host_str(), Some("o"));
}

#[test]
fn zero_turns_a_rate_limit_off() {
    let c = load(
        Purpose::Serve(Role::All),
        &[
            ("GITHUB_WEBHOOK_SECRET", "s"),
            ("RATE_LIMIT_WEBHOOK_PER_SECOND", "0"),
            ("RATE_LIMIT_WEBHOOK_BURST", "0"),
        ],
    )
    .unwrap();
    assert!(!c.api.rate_limits.webhook.is_enabled());
    let err = load(
        Purpose::Serve(Role::All),
        &[
            ("GITHUB_WEBHOOK_SECRET", "s"),
            ("RATE_LIMIT_WEBHOOK_BURST", "0"),
        ],
    )
    .unwrap_err();
    assert_eq!(variables(&err), vec!["RATE_LIMIT_WEBHOOK_BURST"]);
}

#[test]
fn github_app_key_is_read_inline_or_from_a_file() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n";
    let c = load(
        Purpose::Serve(Role::Worker),
        &[("GITHUB_APP_ID", "7"), ("GITHUB_APP_PRIVATE_KEY", pem)],
    )
    .unwrap();
    assert_eq!(c.github.app.as_ref().unwrap().app_id, 7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, pem).unwrap();
    let c = load(
        Purpose::Serve(Role::Worker),
        &[
            ("GITHUB_APP_ID", "7"),
            ("GITHUB_APP_PRIVATE_KEY", path.to_str().unwrap()),
        ],
    )
    .unwrap();
    assert_eq!(c.github.app.unwrap().private_key_pem.expose(), pem);
    let err = load(
        Purpose::Serve(Role::Worker),
        &[("GITHUB_APP_ID", "7"), ("GITHUB_APP_PRIVATE_KEY", "/nope")],
    )
    .unwrap_err();
    assert_eq!(variables(&err), vec!["GITHUB_APP_PRIVATE_KEY"]);
}

#[test]
fn debug_output_never_shows_a_secret() {
    let c = load(
        Purpose::Serve(Role::All),
        &[
            ("GITHUB_WEBHOOK_SECRET", "hook-secret-value"),
            ("CODEGEN_TOKEN", "codegen-token-value"),
            ("CODEGEN_ORG_ID", "1"),
            ("GITHUB_TOKEN", "ghp_token_value"),
            ("ADMIN_TOKEN", "admin-token-value-long"),
            ("DATABASE_URL", "postgres://user:dbpassword@db/x"),
            ("REDIS_URL", "redis://:redispassword@r"),
        ],
    )
    .unwrap();
    let debug = format!("{c:?}");
    for secret in [
        "hook-secret-value",
        "codegen-token-value",
        "ghp_token_value",
        "admin-token",
        "dbpassword",
        "redispassword",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
}

#[test]
fn short_admin_tokens_are_refused_and_secret_key_is_the_fallback() {
    let err = load(
        Purpose::Serve(Role::Api),
        &[("GITHUB_WEBHOOK_SECRET", "s"), ("ADMIN_TOKEN", "short")],
    )
    .unwrap_err();
    assert_eq!(variables(&err), vec!["ADMIN_TOKEN"]);
    let c = load(
        Purpose::Serve(Role::Api),
        &[
            ("GITHUB_WEBHOOK_SECRET", "s"),
            ("SECRET_KEY", "0123456789abcdef"),
        ],
    )
    .unwrap();
    assert_eq!(c.api.admin_token, AdminToken::new("0123456789abcdef"));
}

#[test]
fn durations_too_large_for_timers_are_refused_instead_of_panicking_later() {
    let huge = u64::MAX.to_string();
    let err = load(
        Purpose::Serve(Role::Worker),
        &[
            ("RETENTION_EVENTS_DAYS", huge.as_str()),
            ("RETENTION_TASKS_DAYS", "400000000000000"),
            ("CLEANUP_INTERVAL_SECONDS", huge.as_str()),
            ("SHUTDOWN_GRACE_SECONDS", huge.as_str()),
        ],
    )
    .unwrap_err();
    let mut got = variables(&err);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "CLEANUP_INTERVAL_SECONDS",
            "RETENTION_EVENTS_DAYS",
            "RETENTION_TASKS_DAYS",
            "SHUTDOWN_GRACE_SECONDS",
        ]
    );
    let ok = load(
        Purpose::Serve(Role::Worker),
        &[
            ("RETENTION_EVENTS_DAYS", "30"),
            ("CLEANUP_INTERVAL_SECONDS", "0"),
        ],
    )
    .unwrap();
    assert_eq!(
        ok.api.retention.processed_events,
        Duration::from_secs(30 * 24 * 3600)
    );
    assert!(ok.cleanup_interval.is_zero());
}

#[test]
fn an_empty_environment_is_the_default_configuration() {
    let read = load(Purpose::Serve(Role::Worker), &[]).unwrap();
    let default = Config::default();
    // Everything but the generated worker id.
    let shown = |c: &Config| {
        let mut c = c.clone();
        c.worker.worker_id.clear();
        format!("{c:?}")
    };
    assert_eq!(shown(&read), shown(&default));
}

#[test]
fn the_readme_documents_every_variable_and_problems_name_only_known_ones() {
    let readme = include_str!("../../../README.md");
    for variable in VARIABLES {
        assert!(
            readme.contains(&format!("`{variable}`")),
            "{variable} is missing from the README's table"
        );
    }
    let err = load(
        Purpose::Serve(Role::All),
        &[
            ("LOG_LEVEL", "=="),
            ("REDIS_KEY_PREFIX", "a b"),
            ("ADMIN_TOKEN", "x"),
        ],
    )
    .unwrap_err();
    for p in &err.problems {
        assert!(VARIABLES.contains(&p.variable), "{}", p.variable);
    }
}

#[test]
fn http_limits_have_defaults_and_refuse_zero_and_a_budget_below_the_payload_limit() {
    let secret = ("GITHUB_WEBHOOK_SECRET", "s3cret");
    let c = load(Purpose::Serve(Role::All), &[secret]).unwrap();
    assert_eq!(c.serve.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.serve.keep_alive_timeout, Duration::from_secs(75));
    assert_eq!(c.serve.max_connections, 1024);
    assert_eq!(c.api.max_buffered_body_bytes, 64 * 1024 * 1024);
    let c = load(
        Purpose::Serve(Role::Api),
        &[
            secret,
            ("HTTP_HEADER_TIMEOUT_SECONDS", "3"),
            ("HTTP_KEEPALIVE_TIMEOUT_SECONDS", "120"),
            ("MAX_CONNECTIONS", "50"),
            ("MAX_BUFFERED_BODY_BYTES", "2097152"),
        ],
    )
    .unwrap();
    assert_eq!(c.serve.header_read_timeout, Duration::from_secs(3));
    assert_eq!(c.serve.keep_alive_timeout, Duration::from_secs(120));
    assert_eq!(c.serve.max_connections, 50);
    assert_eq!(c.api.max_buffered_body_bytes, 2 * 1024 * 1024);

    let err = load(
        Purpose::Serve(Role::All),
        &[
            secret,
            ("HTTP_HEADER_TIMEOUT_SECONDS", "0"),
            ("HTTP_KEEPALIVE_TIMEOUT_SECONDS", "soon"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_BUFFERED_BODY_BYTES", "1000"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        variables(&err),
        [
            "HTTP_HEADER_TIMEOUT_SECONDS",
            "HTTP_KEEPALIVE_TIMEOUT_SECONDS",
            "MAX_CONNECTIONS",
            "MAX_BUFFERED_BODY_BYTES"
        ]
    );
    assert!(
        err.to_string()
            .contains("at least MAX_PAYLOAD_BYTES (1048576)"),
        "{err}"
    );
}

#[test]
fn the_redis_sweep_is_tunable_and_its_interval_follows() {
    let secret = ("GITHUB_WEBHOOK_SECRET", "s3cret");
    let c = load(Purpose::Serve(Role::All), &[secret]).unwrap();
    assert_eq!(c.redis_queue.sweep_after, Duration::from_secs(300));
    assert_eq!(c.redis_queue.sweep_interval, Duration::from_secs(60));
    let c = load(
        Purpose::Serve(Role::All),
        &[secret, ("REDIS_SWEEP_AFTER_SECONDS", "5")],
    )
    .unwrap();
    assert_eq!(c.redis_queue.sweep_after, Duration::from_secs(5));
    assert_eq!(c.redis_queue.sweep_interval, Duration::from_secs(1));
    let err = load(
        Purpose::Serve(Role::All),
        &[secret, ("REDIS_SWEEP_AFTER_SECONDS", "0")],
    )
    .unwrap_err();
    assert_eq!(variables(&err), ["REDIS_SWEEP_AFTER_SECONDS"]);
}

#[test]
fn reporting_follows_the_credentials_unless_set() {
    use orchestrator_core::report::ReportMode;
    let secret = ("GITHUB_WEBHOOK_SECRET", "s3cret");
    let none = load(Purpose::Serve(Role::All), &[secret]).unwrap();
    assert_eq!(none.report_mode(), ReportMode::Off);
    let token = load(
        Purpose::Serve(Role::All),
        &[secret, ("GITHUB_TOKEN", "ghp_x")],
    )
    .unwrap();
    assert_eq!(token.report_mode(), ReportMode::Statuses);
    assert_eq!(token.report.check_name, "webhook-orchestrator");
    assert!(!token.report.pr_comment);
    let set = load(
        Purpose::Serve(Role::All),
        &[
            secret,
            ("GITHUB_TOKEN", "ghp_x"),
            ("REPORT_TO_GITHUB", "OFF"),
            ("REPORT_CHECK_NAME", "orchestrator"),
            ("REPORT_PR_COMMENT", "true"),
        ],
    )
    .unwrap();
    assert_eq!(set.report_mode(), ReportMode::Off);
    assert_eq!(set.report.check_name, "orchestrator");
    assert!(set.report.pr_comment);

    // Check runs need an App; statuses need some credential; names are bounded.
    let err = load(
        Purpose::Serve(Role::All),
        &[
            secret,
            ("GITHUB_TOKEN", "ghp_x"),
            ("REPORT_TO_GITHUB", "checks"),
        ],
    )
    .unwrap_err();
    assert_eq!(variables(&err), ["REPORT_TO_GITHUB"]);
    let err = load(
        Purpose::Serve(Role::All),
        &[secret, ("REPORT_TO_GITHUB", "statuses")],
    )
    .unwrap_err();
    assert_eq!(variables(&err), ["REPORT_TO_GITHUB"]);
    let err = load(
        Purpose::Serve(Role::All),
        &[secret, ("REPORT_TO_GITHUB", "comments")],
    )
    .unwrap_err();
    assert_eq!(variables(&err), ["REPORT_TO_GITHUB"]);
    let long = "x".repeat(101);
    let err = load(
        Purpose::Serve(Role::All),
        &[secret, ("REPORT_CHECK_NAME", &long)],
    )
    .unwrap_err();
    assert_eq!(variables(&err), ["REPORT_CHECK_NAME"]);
}

#[test]
fn the_reporter_pace_and_manual_fix_repositories_are_read_and_checked() {
    let secret = ("GITHUB_WEBHOOK_SECRET", "s3cret");
    let token = ("GITHUB_TOKEN", "ghp_x");
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n";
    let (app, key) = (("GITHUB_APP_ID", "7"), ("GITHUB_APP_PRIVATE_KEY", pem));
    let c = load(Purpose::Serve(Role::All), &[secret, token]).unwrap();
    assert_eq!(c.report.interval, Duration::from_secs(1));
    assert_eq!(c.report.retry_initial, Duration::from_secs(5));
    assert_eq!(c.report.retry_max, Duration::from_secs(600));
    assert_eq!(c.report.max_failures, 10);
    assert!(c.handlers.manual_fix_repos.is_empty());
    let c = load(
        Purpose::Serve(Role::All),
        &[
            secret,
            app,
            key,
            ("REPORT_INTERVAL_SECONDS", "3"),
            ("REPORT_RETRY_INITIAL_SECONDS", "2"),
            ("REPORT_RETRY_MAX_SECONDS", "60"),
            ("REPORT_RETRY_MAX_TRIES", "4"),
            ("CODEGEN_MANUAL_FIX_REPOS", " octo/repo , Other/Thing,"),
        ],
    )
    .unwrap();
    assert_eq!(c.report.interval, Duration::from_secs(3));
    assert_eq!(c.report.retry_initial, Duration::from_secs(2));
    assert_eq!(c.report.retry_max, Duration::from_secs(60));
    assert_eq!(c.report.max_failures, 4);
    assert_eq!(c.handlers.manual_fix_repos, ["octo/repo", "Other/Thing"]);
    assert!(c.handlers.fixes_on_request(Some("other/thing")));
    assert!(!c.handlers.fixes_on_request(Some("octo/else")));
    let all = load(
        Purpose::Serve(Role::All),
        &[secret, app, key, ("CODEGEN_MANUAL_FIX_REPOS", "*")],
    )
    .unwrap();
    assert!(all.handlers.fixes_on_request(Some("any/repo")));
    // Only a check run has the button: with statuses (or nothing reported) nobody could ask.
    for env in [
        vec![secret, token],
        vec![secret, app, key, ("REPORT_TO_GITHUB", "off")],
    ] {
        let mut env = env;
        env.push(("CODEGEN_MANUAL_FIX_REPOS", "octo/repo"));
        let err = load(Purpose::Serve(Role::All), &env).unwrap_err();
        assert_eq!(variables(&err), ["CODEGEN_MANUAL_FIX_REPOS"], "{env:?}");
    }

    let err = load(
        Purpose::Serve(Role::All),
        &[
            secret,
            token,
            ("REPORT_INTERVAL_SECONDS", "0"),
            ("REPORT_RETRY_INITIAL_SECONDS", "30"),
            ("REPORT_RETRY_MAX_SECONDS", "10"),
            ("REPORT_RETRY_MAX_TRIES", "0"),
            ("CODEGEN_MANUAL_FIX_REPOS", "octo/repo,not-a-repo"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        variables(&err),
        [
            "REPORT_INTERVAL_SECONDS",
            "REPORT_RETRY_MAX_SECONDS",
            "REPORT_RETRY_MAX_TRIES",
            "CODEGEN_MANUAL_FIX_REPOS"
        ]
    );
}
