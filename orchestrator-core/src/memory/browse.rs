//! Keyset-paged lists of the in-memory store ([`BrowseStore`]).

use async_trait::async_trait;

use super::MemoryStore;
use crate::error::StoreError;
use crate::event::{EventSummary, WebhookEvent};
use crate::store::browse::{BrowseStore, EventQuery, EventRow, TaskQuery};
use crate::task::Task;

fn event_matches(q: &EventQuery, e: &WebhookEvent) -> bool {
    q.event_type.as_ref().is_none_or(|t| *t == e.event_type)
        && q.action
            .as_ref()
            .is_none_or(|a| e.action.as_ref() == Some(a))
        && q.repository
            .as_ref()
            .is_none_or(|r| e.repository.as_ref() == Some(r))
        && q.processed.is_none_or(|p| p == e.processed)
        && q.delivery_id.as_ref().is_none_or(|d| *d == e.delivery_id)
        && q.since.is_none_or(|s| e.created_at >= s)
        && q.until.is_none_or(|u| e.created_at < u)
        && q.after.is_none_or(|c| c.precedes(e.created_at, e.id))
}

fn task_matches(q: &TaskQuery, t: &Task) -> bool {
    q.status.is_none_or(|s| s == t.status)
        && q.task_type.as_ref().is_none_or(|k| *k == t.task_type)
        && q.repository
            .as_ref()
            .is_none_or(|r| t.repository.as_ref() == Some(r))
        && q.pr_number.is_none_or(|n| t.pr_number == Some(n))
        && q.webhook_event_id
            .is_none_or(|e| t.webhook_event_id == Some(e))
        && q.parent_task_id.is_none_or(|p| t.parent_task_id == Some(p))
        && q.superseded.is_none_or(|s| t.superseded_by.is_some() == s)
        && q.after.is_none_or(|c| c.precedes(t.created_at, t.id))
}

fn row(e: &WebhookEvent) -> EventRow {
    EventRow {
        summary: EventSummary {
            id: e.id,
            delivery_id: e.delivery_id.clone(),
            event_type: e.event_type.clone(),
            action: e.action.clone(),
            processed: e.processed,
            created_at: e.created_at,
            error_message: e.error_message.clone(),
        },
        repository: e.repository.clone(),
    }
}

#[async_trait]
impl BrowseStore for MemoryStore {
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
        let state = self.lock();
        let mut rows: Vec<&WebhookEvent> = state
            .events
            .values()
            .filter(|e| event_matches(query, e))
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(rows
            .into_iter()
            .take(query.limit as usize)
            .map(row)
            .collect())
    }

    async fn browse_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let state = self.lock();
        let mut rows: Vec<&Task> = state
            .tasks
            .values()
            .filter(|t| task_matches(query, t))
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(rows
            .into_iter()
            .take(query.limit as usize)
            .cloned()
            .collect())
    }
}
