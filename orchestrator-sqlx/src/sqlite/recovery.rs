//! [`RecoveryStore`] on SQLite: `recovery_runs`, the batched GUID look-up (`json_each`), hooks
//! from the stored headers, redelivery intents, and the one-runner lease as a row with an expiry
//! (several processes may share the file, and SQLite has no session locks), renewed by its holder
//! while its run proceeds.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::recovery::{
    LearnedHook, RecoveryRun, RecoveryStore, RedeliveryIntent, RenewLease, RunnerLease,
};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, time, us};
use crate::error::store_error;
use crate::recovery::{
    CLAIM_REDELIVERY, GET, INSERT, LAST_SUCCESS, OPEN, RELEASE_REDELIVERY, RunRow, RunText,
    RunTimes, SAVE, assemble, learned, list_statement,
};

const KNOWN: &str = "SELECT delivery_id FROM webhook_events \
    WHERE delivery_id IN (SELECT value FROM json_each($1))";

const HOOKS: &str = "SELECT hook_id, max(target_type) AS target_type, max(target_id) AS target_id, \
    max(repository) AS repository FROM (SELECT \
    (SELECT json_extract(h.value, '$[1]') FROM json_each(e.headers) h \
      WHERE lower(json_extract(h.value, '$[0]')) = 'x-github-hook-id' LIMIT 1) AS hook_id, \
    (SELECT json_extract(h.value, '$[1]') FROM json_each(e.headers) h \
      WHERE lower(json_extract(h.value, '$[0]')) = 'x-github-hook-installation-target-type' LIMIT 1) AS target_type, \
    (SELECT json_extract(h.value, '$[1]') FROM json_each(e.headers) h \
      WHERE lower(json_extract(h.value, '$[0]')) = 'x-github-hook-installation-target-id' LIMIT 1) AS target_id, \
    e.repository AS repository FROM webhook_events e WHERE e.created_at >= $1) \
    WHERE hook_id IS NOT NULL GROUP BY hook_id";

const LOCK: &str = "INSERT INTO recovery_runner (id, holder, expires_at) VALUES (1, $1, $2) \
    ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
    WHERE recovery_runner.expires_at <= $3 OR recovery_runner.holder = $1 RETURNING holder";

const RENEW: &str =
    "UPDATE recovery_runner SET expires_at = $2 WHERE id = 1 AND holder = $1 RETURNING holder";

const UNLOCK: &str = "DELETE FROM recovery_runner WHERE holder = $1";

/// Extends the lease row while its holder still holds it.
struct RowRenewal {
    store: SqliteStore,
    holder: String,
}

#[async_trait]
impl RenewLease for RowRenewal {
    async fn renew(&self, ttl: Duration, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let until = orchestrator_core::clock::add(now, ttl);
        let mut tx = self.store.write().await?;
        let held: Option<String> = sqlx::query_scalar(RENEW)
            .bind(&self.holder)
            .bind(us(until))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(held.is_some())
    }
}

fn run(row: &SqliteRow) -> Result<RecoveryRun, StoreError> {
    let opt_time = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        get::<Option<i64>>(row, name)?.map(time).transpose()
    };
    assemble(
        RunRow {
            run_id: get(row, "run_id")?,
            kind: get(row, "kind")?,
            mode: get(row, "mode")?,
            dry_run: get(row, "dry_run")?,
            hooks: get(row, "hooks")?,
            status: get(row, "status")?,
            hook: get(row, "hook")?,
            cursor: get(row, "page_cursor")?,
            counters: [
                get(row, "listed")?,
                get(row, "missing")?,
                get(row, "recovered")?,
                get(row, "failed")?,
                get(row, "errors")?,
            ],
            last_error: get(row, "last_error")?,
            missing_guids: get(row, "missing_guids")?,
        },
        RunTimes {
            since: time(get(row, "window_start")?)?,
            until: time(get(row, "window_end")?)?,
            created_at: time(get(row, "created_at")?)?,
            started_at: opt_time("started_at")?,
            finished_at: opt_time("finished_at")?,
            updated_at: time(get(row, "updated_at")?)?,
        },
    )
}

#[async_trait]
impl RecoveryStore for SqliteStore {
    async fn create_run(&self, r: &RecoveryRun) -> Result<(), StoreError> {
        let text = RunText::of(r);
        let mut tx = self.write().await?;
        let [listed, missing, recovered, failed, errors] = text.counters;
        sqlx::query(INSERT)
            .bind(r.run_id)
            .bind(&r.trigger)
            .bind(r.mode.as_str())
            .bind(r.dry_run)
            .bind(&text.hooks)
            .bind(us(r.since))
            .bind(us(r.until))
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
            .bind(us(r.created_at))
            .bind(r.started_at.map(us))
            .bind(r.finished_at.map(us))
            .bind(us(r.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn save_run(&self, r: &RecoveryRun) -> Result<(), StoreError> {
        let text = RunText::of(r);
        let [listed, missing, recovered, failed, errors] = text.counters;
        let mut tx = self.write().await?;
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
            .bind(r.started_at.map(us))
            .bind(r.finished_at.map(us))
            .bind(us(r.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn get_run(&self, run_id: Uuid) -> Result<Option<RecoveryRun>, StoreError> {
        let row = sqlx::query(GET)
            .bind(run_id)
            .fetch_optional(self.reader())
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
        let rows = query.fetch_all(self.reader()).await.map_err(store_error)?;
        rows.iter().map(run).collect()
    }

    async fn open_run(&self) -> Result<Option<RecoveryRun>, StoreError> {
        let row = sqlx::query(OPEN)
            .fetch_optional(self.reader())
            .await
            .map_err(store_error)?;
        row.as_ref().map(run).transpose()
    }

    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(LAST_SUCCESS)
            .bind(false)
            .fetch_optional(self.reader())
            .await
            .map_err(store_error)?;
        at.map(time).transpose()
    }

    async fn known_deliveries(&self, guids: &[String]) -> Result<HashSet<String>, StoreError> {
        if guids.is_empty() {
            return Ok(HashSet::new());
        }
        let list = serde_json::to_string(guids).unwrap_or_else(|_| "[]".to_owned());
        let found: Vec<String> = sqlx::query_scalar(KNOWN)
            .bind(list)
            .fetch_all(self.reader())
            .await
            .map_err(store_error)?;
        Ok(found.into_iter().collect())
    }

    async fn learned_hooks(&self, since: DateTime<Utc>) -> Result<Vec<LearnedHook>, StoreError> {
        let rows = sqlx::query(HOOKS)
            .bind(us(since))
            .fetch_all(self.reader())
            .await
            .map_err(store_error)?;
        let mut hooks = Vec::new();
        for row in &rows {
            // json_extract answers numbers for numeric strings only when stored as numbers;
            // headers are strings, so every column is text.
            if let Some(hook) = learned(
                get(row, "hook_id")?,
                get(row, "target_type")?,
                get(row, "target_id")?,
                get(row, "repository")?,
            ) {
                hooks.push(hook);
            }
        }
        hooks.sort_by_key(|h| h.hook_id);
        Ok(hooks)
    }

    async fn try_lock_runner(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError> {
        let until = orchestrator_core::clock::add(now, ttl);
        let mut tx = self.write().await?;
        let got: Option<String> = sqlx::query_scalar(LOCK)
            .bind(holder)
            .bind(us(until))
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        if got.is_none() {
            return Ok(None);
        }
        let renewal = RowRenewal {
            store: self.clone(),
            holder: holder.to_owned(),
        };
        let store = self.clone();
        let holder = holder.to_owned();
        let lease = RunnerLease::new(move || {
            // Released in the background; if that fails the row expires on its own.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Ok(mut tx) = store.write().await {
                        let _ = sqlx::query(UNLOCK).bind(&holder).execute(&mut *tx).await;
                        let _ = tx.commit().await;
                    }
                });
            }
        });
        Ok(Some(lease.with_renewal(renewal)))
    }

    async fn claim_redelivery(
        &self,
        intent: &RedeliveryIntent,
        not_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let claimed: Option<String> = sqlx::query_scalar(CLAIM_REDELIVERY)
            .bind(&intent.guid)
            .bind(intent.attempt_id)
            .bind(&intent.hook)
            .bind(intent.run_id)
            .bind(us(intent.requested_at))
            .bind(us(not_before))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(claimed.is_some())
    }

    async fn release_redelivery(&self, guid: &str, run_id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(RELEASE_REDELIVERY)
            .bind(guid)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }
}
