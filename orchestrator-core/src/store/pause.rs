//! [`PauseStore`]: operators pause work without stopping the receiver (issue 13).
//!
//! A pause covers every task, the tasks of one repository, of one task type, or of both
//! ([`PauseScope`]). Deliveries are still received and stored and their tasks created; a
//! covered task stays `pending` (or `retrying`), its status unchanged, and no claim or
//! [`AttemptStore::start_attempt`](crate::store::AttemptStore::start_attempt) takes it until the
//! pause is removed; then the usual claim order (priority, due time) applies. Pauses are rows
//! of the store, so they survive restarts and hold for every worker process. A task already
//! running when the pause starts finishes its attempt.
//!
//! With a queue that delivers ids (Redis), a covered task delivered by the stream is refused by
//! `start_attempt` and dropped from the stream; the resume publishes the covered runnable tasks
//! again ([`PauseStore::resume`] returns them), and the queue's sweeper re-publishes any it
//! missed, so none is lost.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::task::TaskType;

/// What a pause covers: `None` fields match every value (both `None`: everything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PauseScope {
    /// Only the tasks of this `owner/name`.
    pub repository: Option<String>,
    /// Only the tasks of this type.
    pub task_type: Option<TaskType>,
}

impl PauseScope {
    /// Whether a task of `repository` and `task_type` is covered.
    pub fn covers(&self, repository: Option<&str>, task_type: &TaskType) -> bool {
        self.repository
            .as_deref()
            .is_none_or(|r| repository == Some(r))
            && self.task_type.as_ref().is_none_or(|t| t == task_type)
    }
}

/// A stored pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// What it covers.
    pub scope: PauseScope,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// Whether any of `pauses` covers a task of `repository` and `task_type`.
pub fn is_paused(pauses: &[Pause], repository: Option<&str>, task_type: &TaskType) -> bool {
    pauses.iter().any(|p| p.scope.covers(repository, task_type))
}

/// Most runnable task ids [`PauseStore::resume`] hands back for re-publishing in one call (the
/// queue's sweeper publishes any beyond).
pub const RESUME_REPUBLISH_LIMIT: u32 = 10_000;

/// The pauses.
#[async_trait]
pub trait PauseStore: Send + Sync + 'static {
    /// Stores a pause of exactly `scope` since `now`; an existing pause of the same scope is
    /// kept (its time unchanged). The stored pause.
    async fn pause(&self, scope: &PauseScope, now: DateTime<Utc>) -> Result<Pause, StoreError>;

    /// Removes the pause of exactly `scope` (a pause of another scope stays). `None` when
    /// there was none; otherwise the runnable tasks it covered that no remaining pause covers
    /// (at most [`RESUME_REPUBLISH_LIMIT`], claim order), for a queue that must publish them
    /// again.
    async fn resume(&self, scope: &PauseScope) -> Result<Option<Vec<Uuid>>, StoreError>;

    /// Every pause, oldest first.
    async fn pauses(&self) -> Result<Vec<Pause>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(repository: Option<&str>, task_type: Option<&str>) -> PauseScope {
        PauseScope {
            repository: repository.map(str::to_owned),
            task_type: task_type.map(|t| TaskType::new(t).unwrap_or(TaskType::PUSH_ANALYSIS)),
        }
    }

    #[test]
    fn a_scope_covers_what_its_fields_name() {
        let push = TaskType::PUSH_ANALYSIS;
        let pr = TaskType::PULL_REQUEST_ANALYSIS;
        assert!(scope(None, None).covers(None, &push));
        assert!(scope(Some("o/r"), None).covers(Some("o/r"), &pr));
        assert!(!scope(Some("o/r"), None).covers(Some("o/x"), &pr));
        assert!(!scope(Some("o/r"), None).covers(None, &pr));
        assert!(scope(None, Some("push_analysis")).covers(Some("o/x"), &push));
        assert!(!scope(None, Some("push_analysis")).covers(Some("o/x"), &pr));
        assert!(scope(Some("o/r"), Some("push_analysis")).covers(Some("o/r"), &push));
        assert!(!scope(Some("o/r"), Some("push_analysis")).covers(Some("o/x"), &push));
    }
}
