//! Recovery's database cost: reconciling 10,000 delivery summaries (100 pages of 100, half of
//! the GUIDs stored, half missing) against 1,000,000 stored events, on PostgreSQL (a scratch
//! schema, dropped afterwards) and SQLite (a temporary file). The run is the real reconciler in
//! dry-run mode over an in-memory delivery log, so what is timed is its database work: the
//! runner lease, the run row, one batched "which of these GUIDs do we have" query and one run
//! save per page. The baseline, measured in the same run on the same data, asks one query per
//! GUID (what batching avoids).
//!
//! `cargo bench -p orchestrator-benches --bench recovery`. Environment: `BENCH_DATABASE_URL`
//! (default `TEST_DATABASE_URL`, then `postgres://postgres@127.0.0.1:5432/test`),
//! `RECOVERY_BENCH_EVENTS` (1000000), `RECOVERY_BENCH_SUMMARIES` (10000), `RECOVERY_BENCH_DB`
//! (`all`, `postgres`, `sqlite`). Figures in docs/benchmarks.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::Ingestor;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::recovery::memory::FakeDeliveryLog;
use orchestrator_core::recovery::{
    DeliverySummary, HookRef, Reconciler, RecoveryConfig, RunRequest,
};
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_sqlx::{PgStore, PoolOptions, SqlStore, SqliteStore};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const PG_FILL: &str = "INSERT INTO webhook_events (delivery_id, event_type, source, payload, \
    headers, processed, created_at, updated_at) SELECT 'guid-' || g, 'push', 'github', '{}', '[]', \
    true, now(), now() FROM generate_series(1, $1) g";

const SQLITE_FILL: &str = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s \
    WHERE g < $1) INSERT INTO webhook_events (delivery_id, event_type, source, payload, headers, \
    processed, created_at, updated_at) SELECT 'guid-' || g, 'push', 'github', '{}', '[]', 1, 0, 0 \
    FROM s";

/// `n` summaries, newest first; even ones name stored GUIDs, odd ones missing GUIDs.
fn log(n: usize, events: i64) -> (Arc<FakeDeliveryLog>, Vec<String>) {
    let log = Arc::new(FakeDeliveryLog::new(100));
    let hook: HookRef = "repo:octo/repo:42".parse().unwrap();
    let now = Utc::now();
    let mut guids = Vec::with_capacity(n);
    for i in (0..n).rev() {
        let stored = i % 2 == 0;
        let guid = if stored {
            // Spread over the whole table.
            format!("guid-{}", 1 + (i as i64 * 7919) % events.max(1))
        } else {
            format!("missing-{i}")
        };
        guids.push(guid.clone());
        let summary = DeliverySummary {
            id: i as i64 + 1,
            guid,
            delivered_at: now - chrono::Duration::seconds(i as i64),
            redelivery: false,
            status: "OK".into(),
            status_code: 200,
            event: "push".into(),
            action: None,
            installation_id: None,
            repository_id: None,
            throttled_at: None,
        };
        log.push(&hook, summary, Vec::new(), serde_json::Value::Null);
    }
    (log, guids)
}

async fn reconcile(name: &str, store: &SqlStore, events: i64, summaries: usize) {
    let (log, guids) = log(summaries, events);
    let store = Arc::new(store.clone());
    let clock = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::seconds(1)));
    let ingestor = Arc::new(Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new("bench")]),
        Router::empty(),
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    ));
    let config = RecoveryConfig {
        hooks: "repo:octo/repo:42".parse().unwrap(),
        relevant_only: false,
        ..RecoveryConfig::default()
    };
    let reconciler = Reconciler::new(log, store.clone(), ingestor, clock.clone(), config);
    let request = RunRequest {
        since: Some(clock.now() - chrono::Duration::hours(24)),
        dry_run: true,
        ..RunRequest::default()
    };
    let started = Instant::now();
    reconciler.request_run(request).await.expect("run");
    let runs = reconciler.tick(false).await.expect("tick").expect("lease");
    let batched = started.elapsed();
    let run = &runs[0];
    assert_eq!(run.listed, summaries as u64);
    assert_eq!(run.missing, (summaries / 2) as u64);

    // Baseline: one look-up per GUID.
    let started = Instant::now();
    let mut found = 0;
    for guid in &guids {
        found += orchestrator_core::store::recovery::RecoveryStore::known_deliveries(
            store.as_ref(),
            std::slice::from_ref(guid),
        )
        .await
        .expect("known")
        .len();
    }
    let per_guid = started.elapsed();
    assert_eq!(found, summaries / 2);
    println!(
        "{name}: reconciling {summaries} summaries against {events} events: {:.3} s batched \
         (100 per query, {} pages), {:.3} s with one query per GUID (baseline)",
        batched.as_secs_f64(),
        summaries.div_ceil(100),
        per_guid.as_secs_f64()
    );
}

async fn postgres(events: i64, summaries: usize) {
    let url = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("wo_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("PostgreSQL is unreachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("schema");
    let connect: PgConnectOptions = url.parse().expect("url");
    let pg = PgStore::connect_with(
        connect.options([("search_path", schema.as_str())]),
        &PoolOptions::default(),
    )
    .await
    .expect("pg");
    let started = Instant::now();
    sqlx::query(PG_FILL)
        .bind(events)
        .execute(pg.pool())
        .await
        .expect("fill");
    sqlx::query("ANALYZE webhook_events")
        .execute(pg.pool())
        .await
        .expect("analyze");
    println!(
        "postgres: {events} events stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = SqlStore::from(pg);
    reconcile("postgres", &store, events, summaries).await;
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop schema");
}

async fn sqlite(events: i64, summaries: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = SqliteStore::connect(&url, &PoolOptions::default())
        .await
        .expect("sqlite");
    let started = Instant::now();
    sqlx::query(SQLITE_FILL)
        .bind(events)
        .execute(sqlite.writer())
        .await
        .expect("fill");
    println!(
        "sqlite: {events} events stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = SqlStore::from(sqlite);
    reconcile("sqlite", &store, events, summaries).await;
    store.close().await;
}

fn main() {
    let events: i64 = env("RECOVERY_BENCH_EVENTS", 1_000_000);
    let summaries: usize = env("RECOVERY_BENCH_SUMMARIES", 10_000);
    let which: String = env("RECOVERY_BENCH_DB", "all".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if which == "all" || which == "postgres" {
            postgres(events, summaries).await;
        }
        if which == "all" || which == "sqlite" {
            sqlite(events, summaries).await;
        }
    });
}
