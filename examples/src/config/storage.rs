//! The database and Redis variables: `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`,
//! `SQLITE_SYNCHRONOUS`, `SQLITE_COMPRESS_PAYLOADS`, `DATABASE_DURABLE_QUEUE_WRITES`,
//! `INGEST_BATCH_MAX`, `REDIS_URL` / `CELERY_BROKER_URL`, `REDIS_KEY_PREFIX`,
//! `REDIS_SWEEP_AFTER_SECONDS`.

use std::time::Duration;

use orchestrator_core::secret::Secret;
use orchestrator_redis::RedisConfig;
use orchestrator_sqlx::SqliteDurability;

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    if let Some(url) = r.get("DATABASE_URL") {
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            r.problem(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        c.database_url = Secret::new(url);
    }
    let pool = &mut c.pool;
    pool.max_connections = r.parse(
        "DATABASE_MAX_CONNECTIONS",
        pool.max_connections,
        "a whole number",
    );
    if pool.max_connections == 0 {
        r.problem("DATABASE_MAX_CONNECTIONS", "must be at least 1");
    }
    pool.sqlite_durability = r.choice(
        "SQLITE_SYNCHRONOUS",
        pool.sqlite_durability,
        &[
            ("full", SqliteDurability::Full),
            ("normal", SqliteDurability::Normal),
        ],
    );
    pool.durable_queue_writes = r.bool("DATABASE_DURABLE_QUEUE_WRITES", pool.durable_queue_writes);
    pool.sqlite_compress_payloads =
        r.bool("SQLITE_COMPRESS_PAYLOADS", pool.sqlite_compress_payloads);
    c.ingest_batch_max = r.parse(
        "INGEST_BATCH_MAX",
        c.ingest_batch_max,
        "a whole number (0 turns group commit off)",
    );
    c.redis = redis(r);
    let sweep_after = r.secs("REDIS_SWEEP_AFTER_SECONDS", c.redis_queue.sweep_after);
    if sweep_after < Duration::from_secs(1) {
        r.problem("REDIS_SWEEP_AFTER_SECONDS", "must be at least 1");
    }
    // A task whose publish was lost (Redis was down and the API process that kept it in memory
    // died) is published again this long after its last change; workers look a fifth of that
    // often, between 1 s and 60 s (60 s for the default 5 minutes).
    c.redis_queue.sweep_after = sweep_after;
    c.redis_queue.sweep_interval =
        (sweep_after / 5).clamp(Duration::from_secs(1), Duration::from_secs(60));
}

/// `REDIS_URL` or its alias `CELERY_BROKER_URL`, with `REDIS_KEY_PREFIX`.
fn redis(r: &mut Reader<'_>) -> Option<RedisConfig> {
    let defaults = RedisConfig::default();
    let prefix = r.get("REDIS_KEY_PREFIX").unwrap_or(defaults.prefix);
    if prefix.contains(|c: char| c.is_whitespace() || "{}".contains(c)) {
        r.problem("REDIS_KEY_PREFIX", "must contain no spaces or braces");
    }
    let (name, url) = match (r.get("REDIS_URL"), r.get("CELERY_BROKER_URL")) {
        (Some(a), Some(b)) if a != b => {
            r.problem(
                "CELERY_BROKER_URL",
                "differs from REDIS_URL; set only one (they are aliases)",
            );
            return None;
        }
        (Some(url), _) => ("REDIS_URL", url),
        (None, Some(url)) => ("CELERY_BROKER_URL", url),
        (None, None) => return None,
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        r.problem(name, "must start with redis:// or rediss://");
    }
    Some(RedisConfig {
        prefix,
        ..RedisConfig::new(url)
    })
}
