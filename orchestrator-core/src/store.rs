//! The persistence contracts: events, tasks, attempts, statistics and retention.
//!
//! A store is the source of truth. [`EventStore::ingest_delivery`] commits a delivery and all
//! the tasks it caused in one transaction (with what it asks of its pull requests' stale work,
//! [`supersede`]), so an acknowledged delivery is never without its tasks, and a duplicate
//! delivery id changes nothing. Time is always passed in (`now`) so that adapters and
//! the in-memory store agree with the injected [`Clock`](crate::clock::Clock).
//!
//! The contracts are small traits, one per concern, each in its own file and re-exported here:
//! - `event.rs`: [`EventStore`] — ingest, the event list and detail, reprocessing;
//! - `batch.rs`: [`BatchStore`] — many deliveries in one commit (group commit), with the
//!   store's own per-delivery preparation;
//! - `task.rs`: [`TaskStore`] — what the API reads and what operators do (list, detail,
//!   manual retry, statistics, retention, ping);
//! - `attempt.rs`: [`AttemptStore`] — what queues and workers drive (claim, finish, leases,
//!   lease expiry, stale runnable tasks, agent runs recorded on a task), with its vocabulary
//!   ([`Claim`], [`Finish`], [`FinishReport`], [`QueueDepth`]);
//! - [`agent_run`]: the ledger that keeps coding-agent runs at most once;
//! - [`browse`]: keyset-paged lists of events and tasks (the operator console);
//! - [`report`]: the reporter's cursor and what it last sent to GitHub;
//! - `submit.rs`: [`SubmitStore`] — tasks that come from no delivery (the `cleanup` task);
//! - [`pause`]: [`PauseStore`] — operators' pauses, which claims skip;
//! - [`operation`]: bulk retry / reprocess by filter, run in batches in the background;
//! - [`cancel`]: cancelling tasks; [`supersede`]: the rule that cancels stale pull-request work.
//! - [`recovery`]: reconciliation runs with GitHub's delivery log.
//!
//! This file keeps the types several of them share (pages, filters, [`ExternalRun`]).

pub mod agent_run;
mod attempt;
mod batch;
pub mod browse;
pub mod cancel;
mod event;
pub mod operation;
pub mod pause;
pub mod recovery;
pub mod report;
mod submit;
pub mod supersede;
mod task;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::task::{TaskStatus, TaskType};

pub use attempt::{AttemptStore, Claim, Finish, FinishReport, QueueDepth, TaskEnd};
pub use batch::{BatchDelivery, BatchStore};
pub use event::{EventStore, IngestOutcome, NewDelivery, ReprocessOutcome};
pub use pause::PauseStore;
pub use submit::SubmitStore;
pub use task::{CleanupReport, RetentionPolicy, RetryOutcome, Stats, TaskStore};

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
    /// Only tasks superseded by this task.
    pub superseded_by: Option<Uuid>,
    /// Only superseded (true) or not superseded (false) tasks.
    pub superseded: Option<bool>,
}

/// A coding-agent run started for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRun {
    /// The agent's run id.
    pub id: String,
    /// The agent's page for the run (`web_url`).
    pub url: Option<String>,
}
