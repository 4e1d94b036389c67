//! [`EventStore`]: storage of webhook events (ingest, the event list and detail, reprocessing).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EventFilter, Page};
use crate::error::StoreError;
use crate::event::{EventSummary, NewEvent, Prepared, WebhookEvent};
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

    /// Commits several deliveries with as few commits as the store can manage (group commit).
    /// Each delivery stays atomic on its own and gets exactly the outcome [`ingest`] would have
    /// given it; one delivery's failure never loses another's. The default ingests them one by
    /// one; SQL stores override it with one transaction for the whole batch.
    ///
    /// [`ingest`]: EventStore::ingest
    async fn ingest_batch(
        &self,
        batch: Vec<(NewEvent, Vec<NewTask>)>,
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        ingest_each(self, batch).await
    }

    /// Per-delivery work that does not need the store's serial section, such as encoding the
    /// payload the way the store keeps it. Batching front ends ([`GroupCommit`]) call it in the
    /// caller's task before the delivery waits for a commit, so the work runs in parallel
    /// across requests instead of inside the one writer; the result travels in
    /// [`NewEvent::prepared`]. A store must still accept events that were never prepared.
    /// The default prepares nothing.
    ///
    /// [`GroupCommit`]: crate::engine::GroupCommit
    fn prepare(&self, event: &NewEvent) -> Prepared {
        let _ = event;
        Prepared::default()
    }

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

/// Ingests `batch` one delivery at a time, each with its own [`EventStore::ingest`]: the default
/// [`EventStore::ingest_batch`], and the fallback of stores whose one-transaction batch failed.
pub async fn ingest_each<S: EventStore + ?Sized>(
    store: &S,
    batch: Vec<(NewEvent, Vec<NewTask>)>,
) -> Vec<Result<IngestOutcome, StoreError>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for (event, tasks) in batch {
        outcomes.push(store.ingest(event, tasks).await);
    }
    outcomes
}
