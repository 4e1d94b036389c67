//! The pauses (`task_pauses`, see [`orchestrator_core::store::pause`]) on both databases: the
//! statements they share, and [`PauseStore`] for [`SqlStore`]. Claims, `start_attempt` and the
//! stale-task sweep skip covered tasks with the same `NOT EXISTS` test, written into their
//! statements in `postgres/attempt.rs` and `sqlite/attempt.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::pause::{Pause, PauseScope, PauseStore};
use uuid::Uuid;

use crate::SqlStore;
use crate::sql_store::both;

/// A pause of exactly this scope ($1 repository, $2 task type; NULL for "every"), unless one
/// exists.
pub(crate) const INSERT: &str = "INSERT INTO task_pauses (repository, task_type, created_at) \
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// The pause of exactly this scope.
pub(crate) const ONE: &str = "SELECT repository, task_type, created_at FROM task_pauses \
    WHERE COALESCE(repository, '') = COALESCE(CAST($1 AS TEXT), '') \
    AND COALESCE(task_type, '') = COALESCE(CAST($2 AS TEXT), '')";

/// Removes the pause of exactly this scope.
pub(crate) const DELETE: &str = "DELETE FROM task_pauses \
    WHERE COALESCE(repository, '') = COALESCE(CAST($1 AS TEXT), '') \
    AND COALESCE(task_type, '') = COALESCE(CAST($2 AS TEXT), '')";

/// Every pause, oldest first.
pub(crate) const ALL: &str =
    "SELECT repository, task_type, created_at FROM task_pauses ORDER BY id";

/// The runnable tasks of a scope that no pause covers any more, in claim order; $3 how many.
pub(crate) const RESUMED: &str = "SELECT task_id FROM workflow_tasks \
    WHERE status IN ('pending', 'retrying') \
    AND (CAST($1 AS TEXT) IS NULL OR repository = $1) \
    AND (CAST($2 AS TEXT) IS NULL OR task_type = $2) \
    AND NOT EXISTS (SELECT 1 FROM task_pauses p \
    WHERE (p.repository IS NULL OR p.repository = workflow_tasks.repository) \
    AND (p.task_type IS NULL OR p.task_type = workflow_tasks.task_type)) \
    ORDER BY priority DESC, run_at, id LIMIT $3";

/// A stored scope.
pub(crate) fn scope(
    repository: Option<String>,
    task_type: Option<String>,
) -> Result<PauseScope, StoreError> {
    let task_type = task_type
        .map(orchestrator_core::task::TaskType::new)
        .transpose()
        .map_err(crate::error::corrupt)?;
    Ok(PauseScope {
        repository,
        task_type,
    })
}

#[async_trait]
impl PauseStore for SqlStore {
    async fn pause(&self, scope: &PauseScope, now: DateTime<Utc>) -> Result<Pause, StoreError> {
        both!(self, s => s.pause(scope, now).await)
    }
    async fn resume(&self, scope: &PauseScope) -> Result<Option<Vec<Uuid>>, StoreError> {
        both!(self, s => s.resume(scope).await)
    }
    async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        both!(self, s => s.pauses().await)
    }
}
