//! [`EventStore`]: storage of webhook events (ingest, the event list and detail, reprocessing).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EventFilter, Page};
use crate::error::StoreError;
use crate::event::{EventSummary, NewEvent, WebhookEvent};
use crate::task::NewTask;

/// What [`EventStore::ingest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The event and its tasks are committed.
    Accepted {
        /// The new event's id.
        event_id: i64,
        /// The committed tasks, in the order given.
        task_ids: Vec<Uuid>,
    },
    /// An event with this delivery id already exists; nothing was written.
    Duplicate {
        /// The existing event's id.
        event_id: i64,
    },
}

/// What [`EventStore::reprocess_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReprocessOutcome {
    /// The new tasks are committed and the event is open again.
    Reprocessed {
        /// The event.
        event_id: i64,
        /// The tasks created for this run.
        task_ids: Vec<Uuid>,
    },
    /// The event still has tasks that are not terminal; nothing was written.
    Busy {
        /// The event.
        event_id: i64,
        /// Its open tasks (pending, running or retrying), by row id.
        open_tasks: Vec<Uuid>,
    },
    /// No event has that id.
    NotFound,
}

/// Storage of webhook events.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Commits `event` and all of `tasks` (linked to it) in one transaction. A delivery id that is
    /// already stored yields [`IngestOutcome::Duplicate`] and writes nothing. An event with no
    /// tasks is stored as processed.
    async fn ingest(
        &self,
        event: NewEvent,
        tasks: Vec<NewTask>,
    ) -> Result<IngestOutcome, StoreError>;

    /// Events, newest first.
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError>;

    /// One event with its payload and headers.
    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError>;

    /// Adds a fresh set of `tasks` for a stored event, marks it unprocessed, clears its error and
    /// parse error and counts one more retry, in one transaction -- only when none of its tasks
    /// is open (pending, running, retrying): otherwise nothing is written and the open tasks are
    /// named ([`ReprocessOutcome::Busy`]). The check and the write are one atomic step, so two
    /// racing reprocess requests never both add tasks.
    async fn reprocess_event(
        &self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError>;
}
