//! [`ReportStore`] on SQLite: reads on the reader pool, writes in `BEGIN IMMEDIATE`
//! transactions on the writer (see `crate::report` for the statements).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::report::{ReportCursor, ReportRecord, ReportStore};
use orchestrator_core::task::Task;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, task, task_columns, time, us};
use crate::error::store_error;
use crate::plan::{count, to_i32};
use crate::report::{CURSOR, DUE, LEASE, REPORT, SAVE, SAVE_CURSOR, limit, parse_kind};

const CHANGED: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM workflow_tasks WHERE (updated_at, id) > ($1, $2) ORDER BY updated_at, id LIMIT $3"
);

const CHILDREN: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM workflow_tasks WHERE parent_task_id = $1 ORDER BY id"
);

/// A `github_reports` row.
fn record(row: &SqliteRow) -> Result<ReportRecord, StoreError> {
    Ok(ReportRecord {
        key: get(row, "report_key")?,
        kind: parse_kind(&get::<String>(row, "kind")?)?,
        task_id: get(row, "task_id")?,
        external_id: get(row, "external_id")?,
        fingerprint: get(row, "fingerprint")?,
        failures: count(get(row, "failures")?),
        retry_at: get::<Option<i64>>(row, "retry_at")?.map(time).transpose()?,
        last_error: get(row, "last_error")?,
        updated_at: time(get(row, "updated_at")?)?,
    })
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn changed_tasks(&self, after: &ReportCursor, n: u32) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(CHANGED)
            .bind(us(after.updated_at))
            .bind(after.id)
            .bind(limit(n))
            .fetch_all(self.reader())
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }

    async fn child_tasks(&self, parent: Uuid) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(CHILDREN)
            .bind(parent)
            .fetch_all(self.reader())
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }

    async fn lease_reporter(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(LEASE)
            .bind(name)
            .bind(holder)
            .bind(us(until))
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(row.is_some())
    }

    async fn report_cursor(&self, name: &str) -> Result<Option<ReportCursor>, StoreError> {
        let row = sqlx::query(CURSOR)
            .bind(name)
            .fetch_optional(self.reader())
            .await
            .map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let at: Option<i64> = get(&row, "cursor_at")?;
        let id: Option<i64> = get(&row, "cursor_id")?;
        match (at, id) {
            (Some(at), Some(id)) => Ok(Some(ReportCursor {
                updated_at: time(at)?,
                id,
            })),
            _ => Ok(None),
        }
    }

    async fn save_report_cursor(
        &self,
        name: &str,
        cursor: &ReportCursor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(SAVE_CURSOR)
            .bind(name)
            .bind(us(cursor.updated_at))
            .bind(cursor.id)
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn report(&self, key: &str) -> Result<Option<ReportRecord>, StoreError> {
        let row = sqlx::query(REPORT)
            .bind(key)
            .fetch_optional(self.reader())
            .await
            .map_err(store_error)?;
        row.as_ref().map(record).transpose()
    }

    async fn save_report(&self, r: &ReportRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(SAVE)
            .bind(&r.key)
            .bind(r.kind.as_str())
            .bind(r.task_id)
            .bind(r.external_id)
            .bind(&r.fingerprint)
            .bind(to_i32(r.failures))
            .bind(r.retry_at.map(us))
            .bind(&r.last_error)
            .bind(us(r.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn due_reports(
        &self,
        now: DateTime<Utc>,
        n: u32,
    ) -> Result<Vec<ReportRecord>, StoreError> {
        let rows = sqlx::query(DUE)
            .bind(us(now))
            .bind(limit(n))
            .fetch_all(self.reader())
            .await
            .map_err(store_error)?;
        rows.iter().map(record).collect()
    }
}
