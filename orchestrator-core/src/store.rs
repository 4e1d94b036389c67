//! The persistence contracts: events, tasks, executions, statistics and retention.
//!
//! A store is the source of truth. [`EventStore::ingest`] commits a delivery and all the tasks it
//! caused in one transaction, so an acknowledged delivery is never without its tasks, and a
//! duplicate delivery id changes nothing. Time is always passed in (`now`) so that adapters and
//! the in-memory store agree with the injected [`Clock`](crate::clock::Clock).
//!
//! Optional abilities are small traits of their own in `store/`: [`agent_run`] (the ledger that
//! keeps coding-agent runs at most once), [`recovery`] (reconciliation runs with GitHub's delivery
//! log).

pub mod agent_run;
pub mod recovery;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{EventSummary, NewEvent, Prepared, WebhookEvent};
use crate::queue::{Claim, Finish};
use crate::task::{NewTask, Task, TaskDetail, TaskStatus, TaskType};

/// `limit` / `offset` of a list request (validated by the HTTP layer: limit 1..=1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many rows at most.
    pub limit: u32,
    /// How many rows to skip.
    pub offset: u64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}

/// Filters of the event list (all optional, combined with AND). Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this `X-GitHub-Event`.
    pub event_type: Option<String>,
    /// Only processed (true) or unprocessed (false) events.
    pub processed: Option<bool>,
}

/// Filters of the task list (all optional, combined with AND). Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this type.
    pub task_type: Option<TaskType>,
    /// Only tasks of this `owner/name`.
    pub repository: Option<String>,
}

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

/// What [`TaskStore::retry_task`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// The task is pending again (due now); its retry budget is reset.
    Scheduled(Box<Task>),
    /// No task has that id.
    NotFound,
    /// The task is in a status that cannot be retried (only failed and cancelled can).
    NotRetryable(TaskStatus),
}

/// A coding-agent run started for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRun {
    /// The agent's run id.
    pub id: String,
    /// The agent's page for the run (`web_url`).
    pub url: Option<String>,
}

/// The figures behind `/api/v1/metrics` and `/api/v1/admin/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// All stored events.
    pub webhook_events_total: u64,
    /// All stored tasks.
    pub workflow_tasks_total: u64,
    /// All stored executions.
    pub task_executions_total: u64,
    /// Task count per status name (every status present, zero included).
    pub tasks_by_status: BTreeMap<String, u64>,
    /// Event count per event type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Mean duration of finished executions, in milliseconds (`None` when there are none).
    pub avg_processing_time_ms: Option<f64>,
    /// Events received in the 24 hours before `now`.
    pub webhooks_24h: u64,
    /// Tasks created in the 24 hours before `now`.
    pub tasks_24h: u64,
    /// Events of the last 24 hours with an error.
    pub failed_webhooks_24h: u64,
    /// Tasks of the last 24 hours that failed.
    pub failed_tasks_24h: u64,
}

/// How long finished data is kept. Unprocessed events and tasks that can still run are never
/// removed, whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Processed events older than this are removed (with their finished tasks).
    pub processed_events: Duration,
    /// Completed / failed / cancelled tasks (and their executions) older than this are removed.
    pub finished_tasks: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        let week = Duration::from_secs(7 * 24 * 3600);
        Self {
            processed_events: week,
            finished_tasks: week,
        }
    }
}

/// What a cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Events removed.
    pub events_deleted: u64,
    /// Tasks removed.
    pub tasks_deleted: u64,
    /// Executions removed.
    pub executions_deleted: u64,
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

/// Storage of tasks and their executions, including the state changes that queues drive.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Tasks, newest first.
    async fn list_tasks(&self, filter: &TaskFilter, page: Page) -> Result<Vec<Task>, StoreError>;

    /// One task with its executions.
    async fn get_task(&self, task_id: Uuid) -> Result<Option<TaskDetail>, StoreError>;

    /// An operator's retry: a failed or cancelled task becomes pending, due at `now`, with its
    /// retry count reset; its event becomes unprocessed again. Its unresolved agent-run intents
    /// are released in the same transaction (see [`agent_run`]), so the retried task creates
    /// exactly one new run.
    async fn retry_task(
        &self,
        task_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<RetryOutcome, StoreError>;

    /// Records the agent run started by `task_id` on the task and on its parent task, at once, so a
    /// retried attempt finds it and never starts a second run.
    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Takes one task for `worker` if it is runnable and due: status -> running, lease until
    /// `lease_until`, a new execution row. `None` when it is not runnable (already taken,
    /// finished, unknown or not yet due). Queues that deliver ids (Redis) call this; a database
    /// queue may claim in one statement instead.
    async fn start_attempt(
        &self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError>;

    /// Records how the attempt of `claim` ended, in one transaction: the task's new status, the
    /// execution row, follow-up tasks (linked to the same event, parented to this task), and the
    /// event's processed flag when its last task finished. Fails with
    /// [`StoreErrorKind::Conflict`](crate::error::StoreErrorKind::Conflict) when the claim no
    /// longer holds the task (its lease expired and another worker took it).
    async fn finish_attempt(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError>;

    /// Moves the lease of a running claim to `lease_until`; false when the claim lost the task.
    async fn extend_lease(
        &self,
        claim: &Claim,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Running tasks whose lease ran out: the execution becomes abandoned and the task retrying
    /// (due now) or failed when its retries are used up. Returns the tasks made runnable again.
    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;

    /// Runnable tasks that are due and were last changed before `stale_before` (for a queue
    /// that must re-publish what it may have lost), oldest first, at most `limit`.
    async fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// The figures of the metrics and stats endpoints.
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, StoreError>;

    /// Removes finished data older than the policy allows.
    async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<CleanupReport, StoreError>;

    /// A round trip to the store, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What [`TaskStore::finish_attempt`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishReport {
    /// The task's status afterwards.
    pub status: TaskStatus,
    /// When it is due again (retrying / pending), if it is.
    pub run_at: Option<DateTime<Utc>>,
    /// Follow-up tasks inserted.
    pub followups: Vec<Uuid>,
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

/// Convenience: everything a server needs from one backend.
pub trait Store: EventStore + TaskStore {}
impl<T: EventStore + TaskStore> Store for T {}

/// JSON object helper for adapters: `{}` when `value` is null.
pub fn object_or_empty(value: Value) -> Value {
    if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    }
}
