//! [`EventStore`]: storage of webhook events (ingest, the event list and detail, reprocessing).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EventFilter, Page};
use crate::error::StoreError;
use crate::event::{EventSummary, NewEvent, WebhookEvent};
use crate::store::supersede::{PrUpdate, PrUpdateOutcome};
use crate::task::NewTask;

/// One delivery to ingest: the event, the tasks it caused, and what it asks of its pull
/// requests' open work ([`PrUpdate`], see [`crate::store::supersede`]), applied in the same
/// transaction when the delivery is newly accepted. Times the updates write (cancellations,
/// the newest head) are the event's `received_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The event row.
    pub event: NewEvent,
    /// Its tasks.
    pub tasks: Vec<NewTask>,
    /// Its pull-request updates, applied in order after the tasks are inserted.
    pub pr_updates: Vec<PrUpdate>,
}

impl NewDelivery {
    /// A delivery without pull-request updates.
    pub fn new(event: NewEvent, tasks: Vec<NewTask>) -> Self {
        Self {
            event,
            tasks,
            pr_updates: Vec::new(),
        }
    }

    /// With these pull-request updates.
    pub fn with_pr_updates(mut self, pr_updates: Vec<PrUpdate>) -> Self {
        self.pr_updates = pr_updates;
        self
    }
}

/// What [`EventStore::ingest_delivery`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The event and its tasks are committed.
    Accepted {
        /// The new event's id.
        event_id: i64,
        /// The committed tasks, in the order given.
        task_ids: Vec<Uuid>,
        /// What each of the delivery's [`NewDelivery::pr_updates`] did, in the same order.
        pr_updates: Vec<PrUpdateOutcome>,
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
    /// Commits the delivery's event and all of its tasks (linked to it) in one transaction,
    /// and in that same transaction applies its [`pr_updates`](NewDelivery::pr_updates) in
    /// order, each under a savepoint of its own (a failing one is rolled back alone and
    /// reported as [`PrUpdateOutcome::Failed`]; the delivery still commits). A delivery id that
    /// is already stored yields [`IngestOutcome::Duplicate`] and writes nothing (its updates
    /// are not applied). An event with no tasks is stored as processed.
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError>;

    /// [`ingest_delivery`](Self::ingest_delivery) of `event` and `tasks` without pull-request
    /// updates.
    async fn ingest(
        &self,
        event: NewEvent,
        tasks: Vec<NewTask>,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_delivery(NewDelivery::new(event, tasks)).await
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
