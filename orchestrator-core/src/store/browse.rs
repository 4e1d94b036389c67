//! Keyset ("cursor") paging of the event and task lists, with the operator console's wider
//! filters ([`BrowseStore`]).
//!
//! The spec's list endpoints page by `offset`, which drifts while rows arrive (a new delivery
//! pushes every row one place down, so the next page repeats one) and costs a scan of every
//! skipped row (~0.25 s at an offset of a million). A browse instead asks for the rows strictly
//! older than the last one shown ([`Cursor`]: its `created_at` and row id, the order of the
//! lists), so a page never repeats or skips a row whatever arrives meanwhile, and each page
//! walks the newest-first index from where the previous one stopped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::EventSummary;
use crate::task::{Task, TaskStatus, TaskType};

/// Where a page ends: the `created_at` and row id of its last (oldest) row. The next page holds
/// the rows strictly before it in the lists' order (`created_at` desc, id desc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// The row's insert time.
    pub created_at: DateTime<Utc>,
    /// The row's store-assigned id.
    pub id: i64,
}

impl Cursor {
    /// The cursor after `created_at` / `id`.
    pub fn after(created_at: DateTime<Utc>, id: i64) -> Self {
        Self { created_at, id }
    }

    /// The opaque text form used in URLs: `<microseconds since the epoch>.<id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.timestamp_micros(), self.id)
    }

    /// Parses [`encode`](Self::encode)'s form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some(Self {
            created_at,
            id: id.parse().ok()?,
        })
    }

    /// Whether a row at `created_at` / `id` comes after this cursor (is older).
    pub fn precedes(&self, created_at: DateTime<Utc>, id: i64) -> bool {
        (created_at, id) < (self.created_at, self.id)
    }
}

/// A page of events: filters (all optional, combined with AND), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this `X-GitHub-Event`.
    pub event_type: Option<String>,
    /// Only this payload `action`.
    pub action: Option<String>,
    /// Only this `owner/name`.
    pub repository: Option<String>,
    /// Only processed (true) or unprocessed (false) events.
    pub processed: Option<bool>,
    /// Only the delivery with this `X-GitHub-Delivery`.
    pub delivery_id: Option<String>,
    /// Only events stored at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only events stored before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only rows after this cursor (the next page).
    pub after: Option<Cursor>,
    /// How many rows at most.
    pub limit: u32,
}

/// One row of an event page: the list summary and the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// What the spec's list shows.
    pub summary: EventSummary,
    /// `owner/name` of the payload's repository.
    pub repository: Option<String>,
}

/// A page of tasks: filters (all optional, combined with AND), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this type.
    pub task_type: Option<TaskType>,
    /// Only tasks of this `owner/name`.
    pub repository: Option<String>,
    /// Only tasks of this pull request number.
    pub pr_number: Option<i64>,
    /// Only tasks caused by this event (its derived tasks).
    pub webhook_event_id: Option<i64>,
    /// Only follow-ups of this task (its children).
    pub parent_task_id: Option<Uuid>,
    /// `Some(true)`: only tasks superseded by newer work (`superseded_by` set); `Some(false)`:
    /// only the others.
    pub superseded: Option<bool>,
    /// Only rows after this cursor (the next page).
    pub after: Option<Cursor>,
    /// How many rows at most.
    pub limit: u32,
}

/// Keyset-paged reads of events and tasks (the operator console's lists).
#[async_trait]
pub trait BrowseStore: Send + Sync + 'static {
    /// Events matching `query`, newest first, at most `query.limit`.
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError>;

    /// Tasks matching `query`, newest first, at most `query.limit`.
    async fn browse_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_text_form_and_orders_rows() {
        let at = DateTime::from_timestamp_micros(1_764_547_200_123_456).unwrap_or_default();
        let cursor = Cursor::after(at, 42);
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        for bad in ["", "1", "x.1", "1.x", "1.2.3"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
        assert!(cursor.precedes(at, 41));
        assert!(!cursor.precedes(at, 42));
        assert!(cursor.precedes(at - chrono::Duration::microseconds(1), 99));
        assert!(!cursor.precedes(at + chrono::Duration::microseconds(1), 1));
    }
}
