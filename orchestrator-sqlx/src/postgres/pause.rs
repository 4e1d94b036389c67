//! [`PauseStore`] on PostgreSQL (`task_pauses`; the statements are in `../pause.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::pause::{Pause, PauseScope, PauseStore, RESUME_REPUBLISH_LIMIT};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use crate::error::store_error;
use crate::pause::{ALL, DELETE, INSERT, ONE, RESUMED, scope};

fn pause(row: &PgRow) -> Result<Pause, StoreError> {
    Ok(Pause {
        scope: scope(
            row.try_get("repository").map_err(store_error)?,
            row.try_get("task_type").map_err(store_error)?,
        )?,
        created_at: row.try_get("created_at").map_err(store_error)?,
    })
}

fn type_name(scope: &PauseScope) -> Option<&str> {
    scope.task_type.as_ref().map(|t| t.as_str())
}

#[async_trait]
impl PauseStore for PgStore {
    async fn pause(&self, scope: &PauseScope, now: DateTime<Utc>) -> Result<Pause, StoreError> {
        sqlx::query(INSERT)
            .bind(scope.repository.as_deref())
            .bind(type_name(scope))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let row = sqlx::query(ONE)
            .bind(scope.repository.as_deref())
            .bind(type_name(scope))
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        pause(&row)
    }

    async fn resume(&self, scope: &PauseScope) -> Result<Option<Vec<Uuid>>, StoreError> {
        let removed = sqlx::query(DELETE)
            .bind(scope.repository.as_deref())
            .bind(type_name(scope))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if removed.rows_affected() == 0 {
            return Ok(None);
        }
        let ids: Vec<Uuid> = sqlx::query_scalar(RESUMED)
            .bind(scope.repository.as_deref())
            .bind(type_name(scope))
            .bind(i64::from(RESUME_REPUBLISH_LIMIT))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(Some(ids))
    }

    async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        let rows = sqlx::query(ALL)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(pause).collect()
    }
}
