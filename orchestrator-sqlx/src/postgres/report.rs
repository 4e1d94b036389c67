//! [`ReportStore`] on PostgreSQL: single statements on the durable pool (see `crate::report` for
//! the shared statements).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::report::{ReportCursor, ReportRecord, ReportStore};
use orchestrator_core::task::Task;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::rows::{task, task_columns};
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

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(store_error)
}

/// A `github_reports` row.
fn record(row: &PgRow) -> Result<ReportRecord, StoreError> {
    Ok(ReportRecord {
        key: get(row, "report_key")?,
        kind: parse_kind(&get::<String>(row, "kind")?)?,
        task_id: get(row, "task_id")?,
        external_id: get(row, "external_id")?,
        fingerprint: get(row, "fingerprint")?,
        failures: count(i64::from(get::<i32>(row, "failures")?)),
        retry_at: get(row, "retry_at")?,
        last_error: get(row, "last_error")?,
        updated_at: get(row, "updated_at")?,
    })
}

#[async_trait]
impl ReportStore for PgStore {
    async fn changed_tasks(&self, after: &ReportCursor, n: u32) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(CHANGED)
            .bind(after.updated_at)
            .bind(after.id)
            .bind(limit(n))
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        rows.iter().map(task).collect()
    }

    async fn child_tasks(&self, parent: Uuid) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(CHILDREN)
            .bind(parent)
            .fetch_all(self.pool())
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
        let row = sqlx::query(LEASE)
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        Ok(row.is_some())
    }

    async fn report_cursor(&self, name: &str) -> Result<Option<ReportCursor>, StoreError> {
        let row = sqlx::query(CURSOR)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let at: Option<DateTime<Utc>> = get(&row, "cursor_at")?;
        let id: Option<i64> = get(&row, "cursor_id")?;
        Ok(at
            .zip(id)
            .map(|(updated_at, id)| ReportCursor { updated_at, id }))
    }

    async fn save_report_cursor(
        &self,
        name: &str,
        cursor: &ReportCursor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(SAVE_CURSOR)
            .bind(name)
            .bind(cursor.updated_at)
            .bind(cursor.id)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn report(&self, key: &str) -> Result<Option<ReportRecord>, StoreError> {
        let row = sqlx::query(REPORT)
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        row.as_ref().map(record).transpose()
    }

    async fn save_report(&self, r: &ReportRecord) -> Result<(), StoreError> {
        sqlx::query(SAVE)
            .bind(&r.key)
            .bind(r.kind.as_str())
            .bind(r.task_id)
            .bind(r.external_id)
            .bind(&r.fingerprint)
            .bind(to_i32(r.failures))
            .bind(r.retry_at)
            .bind(&r.last_error)
            .bind(r.updated_at)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn due_reports(
        &self,
        now: DateTime<Utc>,
        n: u32,
    ) -> Result<Vec<ReportRecord>, StoreError> {
        let rows = sqlx::query(DUE)
            .bind(now)
            .bind(limit(n))
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        rows.iter().map(record).collect()
    }
}
