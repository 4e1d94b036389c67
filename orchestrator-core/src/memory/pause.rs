//! [`PauseStore`] for [`MemoryStore`]: the pauses in the one locked state; claims skip the tasks
//! they cover (`lease.rs`, `report.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::pause::{Pause, PauseScope, PauseStore, RESUME_REPUBLISH_LIMIT, is_paused};

#[async_trait]
impl PauseStore for MemoryStore {
    async fn pause(&self, scope: &PauseScope, now: DateTime<Utc>) -> Result<Pause, StoreError> {
        let mut state = self.lock();
        if let Some(existing) = state.pauses.iter().find(|p| p.scope == *scope) {
            return Ok(existing.clone());
        }
        let pause = Pause {
            scope: scope.clone(),
            created_at: now,
        };
        state.pauses.push(pause.clone());
        Ok(pause)
    }

    async fn resume(&self, scope: &PauseScope) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut state = self.lock();
        let before = state.pauses.len();
        state.pauses.retain(|p| p.scope != *scope);
        if state.pauses.len() == before {
            return Ok(None);
        }
        let mut runnable: Vec<_> = state
            .tasks
            .values()
            .filter(|t| {
                t.status.is_runnable()
                    && scope.covers(t.repository.as_deref(), &t.task_type)
                    && !is_paused(&state.pauses, t.repository.as_deref(), &t.task_type)
            })
            .collect();
        runnable.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.run_at.cmp(&b.run_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(Some(
            runnable
                .into_iter()
                .take(RESUME_REPUBLISH_LIMIT as usize)
                .map(|t| t.task_id)
                .collect(),
        ))
    }

    async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        Ok(self.lock().pauses.clone())
    }
}
