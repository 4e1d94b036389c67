//! [`PauseStore`] on SQLite (`task_pauses`; the statements are in `../pause.rs`). Writes are
//! write transactions on the writer, like every SQLite write here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::pause::{Pause, PauseScope, PauseStore, RESUME_REPUBLISH_LIMIT};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, time, us};
use crate::error::store_error;
use crate::pause::{ALL, DELETE, INSERT, ONE, RESUMED, scope};

fn pause(row: &SqliteRow) -> Result<Pause, StoreError> {
    Ok(Pause {
        scope: scope(get(row, "repository")?, get(row, "task_type")?)?,
        created_at: time(get(row, "created_at")?)?,
    })
}

fn type_name(scope: &PauseScope) -> Option<String> {
    scope.task_type.as_ref().map(|t| t.as_str().to_owned())
}

#[async_trait]
impl PauseStore for SqliteStore {
    async fn pause(&self, scope: &PauseScope, now: DateTime<Utc>) -> Result<Pause, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(INSERT)
            .bind(scope.repository.clone())
            .bind(type_name(scope))
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let row = sqlx::query(ONE)
            .bind(scope.repository.clone())
            .bind(type_name(scope))
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        pause(&row)
    }

    async fn resume(&self, scope: &PauseScope) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut tx = self.write().await?;
        let removed = sqlx::query(DELETE)
            .bind(scope.repository.clone())
            .bind(type_name(scope))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if removed.rows_affected() == 0 {
            return Ok(None);
        }
        let ids: Vec<Uuid> = sqlx::query_scalar(RESUMED)
            .bind(scope.repository.clone())
            .bind(type_name(scope))
            .bind(i64::from(RESUME_REPUBLISH_LIMIT))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(Some(ids))
    }

    async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        let rows = sqlx::query(ALL)
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.iter().map(pause).collect()
    }
}
