//! [`RecoveryStore`] on PostgreSQL: `recovery_runs`, the batched GUID look-up (`= ANY($1)` on
//! the unique `delivery_id` index), hooks from the stored `headers` JSONB, and the one-runner
//! lease as a session advisory lock.
//!
//! The lease holds one connection taken out of the pool for as long as the run lasts, with
//! `pg_try_advisory_lock` on a key made from the schema name (so two schemas of one database,
//! such as tests, do not exclude each other). Releasing it closes that connection: the server
//! frees a session's locks when the session ends, which also happens when the process crashes,
//! so a dead runner never blocks the next one.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::recovery::{
    LearnedHook, RecoveryRun, RecoveryStore, RedeliveryIntent, RunnerLease,
};
use sqlx::postgres::PgRow;
use sqlx::{Connection, Row};
use uuid::Uuid;

use super::PgStore;
use crate::error::store_error;
use crate::recovery::{
    CLAIM_REDELIVERY, GET, INSERT, LAST_SUCCESS, OPEN, RELEASE_REDELIVERY, RunRow, RunText,
    RunTimes, SAVE, assemble, learned, list_statement,
};

const KNOWN: &str = "SELECT delivery_id FROM webhook_events WHERE delivery_id = ANY($1)";

const HOOKS: &str = "SELECT hook_id, max(target_type) AS target_type, max(target_id) AS target_id, \
    max(repository) AS repository FROM (SELECT \
    (SELECT h->>1 FROM jsonb_array_elements(e.headers) h \
      WHERE lower(h->>0) = 'x-github-hook-id' LIMIT 1) AS hook_id, \
    (SELECT h->>1 FROM jsonb_array_elements(e.headers) h \
      WHERE lower(h->>0) = 'x-github-hook-installation-target-type' LIMIT 1) AS target_type, \
    (SELECT h->>1 FROM jsonb_array_elements(e.headers) h \
      WHERE lower(h->>0) = 'x-github-hook-installation-target-id' LIMIT 1) AS target_id, \
    e.repository AS repository FROM webhook_events e WHERE e.created_at >= $1) s \
    WHERE hook_id IS NOT NULL GROUP BY hook_id";

const LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended(\
    'webhook-orchestrator:recovery:' || current_schema(), 0))";

fn run(row: &PgRow) -> Result<RecoveryRun, StoreError> {
    let g = |name: &str| row.try_get::<i64, _>(name).map_err(store_error);
    let t = |name: &str| row.try_get::<DateTime<Utc>, _>(name).map_err(store_error);
    let ot = |name: &str| {
        row.try_get::<Option<DateTime<Utc>>, _>(name)
            .map_err(store_error)
    };
    let s = |name: &str| row.try_get::<String, _>(name).map_err(store_error);
    let os = |name: &str| row.try_get::<Option<String>, _>(name).map_err(store_error);
    assemble(
        RunRow {
            run_id: row.try_get("run_id").map_err(store_error)?,
            kind: s("kind")?,
            mode: s("mode")?,
            dry_run: row.try_get("dry_run").map_err(store_error)?,
            hooks: s("hooks")?,
            status: s("status")?,
            hook: os("hook")?,
            cursor: os("page_cursor")?,
            counters: [
                g("listed")?,
                g("missing")?,
                g("recovered")?,
                g("failed")?,
                g("errors")?,
            ],
            last_error: os("last_error")?,
            missing_guids: s("missing_guids")?,
        },
        RunTimes {
            since: t("window_start")?,
            until: t("window_end")?,
            created_at: t("created_at")?,
            started_at: ot("started_at")?,
            finished_at: ot("finished_at")?,
            updated_at: t("updated_at")?,
        },
    )
}

#[async_trait]
impl RecoveryStore for PgStore {
    async fn create_run(&self, r: &RecoveryRun) -> Result<(), StoreError> {
        let text = RunText::of(r);
        let [listed, missing, recovered, failed, errors] = text.counters;
        sqlx::query(INSERT)
            .bind(r.run_id)
            .bind(&r.trigger)
            .bind(r.mode.as_str())
            .bind(r.dry_run)
            .bind(&text.hooks)
            .bind(r.since)
            .bind(r.until)
            .bind(r.status.as_str())
            .bind(&r.hook)
            .bind(&r.cursor)
            .bind(listed)
            .bind(missing)
            .bind(recovered)
            .bind(failed)
            .bind(errors)
            .bind(&r.last_error)
            .bind(&text.missing_guids)
            .bind(r.created_at)
            .bind(r.started_at)
            .bind(r.finished_at)
            .bind(r.updated_at)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn save_run(&self, r: &RecoveryRun) -> Result<(), StoreError> {
        let text = RunText::of(r);
        let [listed, missing, recovered, failed, errors] = text.counters;
        sqlx::query(SAVE)
            .bind(r.run_id)
            .bind(r.status.as_str())
            .bind(&r.hook)
            .bind(&r.cursor)
            .bind(listed)
            .bind(missing)
            .bind(recovered)
            .bind(failed)
            .bind(errors)
            .bind(&r.last_error)
            .bind(&text.missing_guids)
            .bind(r.started_at)
            .bind(r.finished_at)
            .bind(r.updated_at)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn get_run(&self, run_id: Uuid) -> Result<Option<RecoveryRun>, StoreError> {
        let row = sqlx::query(GET)
            .bind(run_id)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        row.as_ref().map(run).transpose()
    }

    async fn list_runs(
        &self,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecoveryRun>, StoreError> {
        let mut query = sqlx::query(list_statement(before)).bind(i64::from(limit));
        if let Some(before) = before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(self.pool()).await.map_err(store_error)?;
        rows.iter().map(run).collect()
    }

    async fn open_run(&self) -> Result<Option<RecoveryRun>, StoreError> {
        let row = sqlx::query(OPEN)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        row.as_ref().map(run).transpose()
    }

    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query_scalar(LAST_SUCCESS)
            .bind(false)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)
    }

    async fn known_deliveries(&self, guids: &[String]) -> Result<HashSet<String>, StoreError> {
        if guids.is_empty() {
            return Ok(HashSet::new());
        }
        let found: Vec<String> = sqlx::query_scalar(KNOWN)
            .bind(guids)
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        Ok(found.into_iter().collect())
    }

    async fn learned_hooks(&self, since: DateTime<Utc>) -> Result<Vec<LearnedHook>, StoreError> {
        let rows = sqlx::query(HOOKS)
            .bind(since)
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        let mut hooks = Vec::new();
        for row in &rows {
            let text = |name: &str| row.try_get::<Option<String>, _>(name).map_err(store_error);
            if let Some(hook) = learned(
                text("hook_id")?,
                text("target_type")?,
                text("target_id")?,
                text("repository")?,
            ) {
                hooks.push(hook);
            }
        }
        hooks.sort_by_key(|h| h.hook_id);
        Ok(hooks)
    }

    async fn claim_redelivery(
        &self,
        intent: &RedeliveryIntent,
        not_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed: Option<String> = sqlx::query_scalar(CLAIM_REDELIVERY)
            .bind(&intent.guid)
            .bind(intent.attempt_id)
            .bind(&intent.hook)
            .bind(intent.run_id)
            .bind(intent.requested_at)
            .bind(not_before)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        Ok(claimed.is_some())
    }

    async fn release_redelivery(&self, guid: &str, run_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(RELEASE_REDELIVERY)
            .bind(guid)
            .bind(run_id)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn try_lock_runner(
        &self,
        _holder: &str,
        _ttl: Duration,
        _now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(store_error)?.detach();
        let locked: bool = sqlx::query_scalar(LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(store_error)?;
        if !locked {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(RunnerLease::new(move || {
            // Closing the session frees its advisory locks; a plain drop of the socket does too.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        let _ = conn.close().await;
                    });
                }
                Err(_) => drop(conn),
            }
        })))
    }
}
