//! [`ReportStore`]: what the reporter (issue 17, [`crate::report`]) needs to keep durable.
//!
//! - A **cursor** over changed tasks: the reporter reads tasks in `(updated_at, id)` order after
//!   its cursor ([`ReportStore::changed_tasks`]) and saves how far it got
//!   ([`ReportStore::save_report_cursor`]), so a restart or another worker process continues
//!   where the last one stopped. The same row is a **lease** ([`ReportStore::lease_reporter`]):
//!   one reporter at a time, however many worker processes run.
//! - A **record per report** ([`ReportRecord`], keyed by [`ReportRecord::key`]): what was last
//!   sent successfully (a fingerprint of the body), the GitHub id it created (check run or
//!   comment), and when a failed send is retried. Comparing the fingerprint makes reporting
//!   idempotent: a task seen twice is sent once. Retention
//!   ([`TaskStore::cleanup`](super::TaskStore::cleanup)) removes a record older than the
//!   finished-task retention whose task is gone (`CleanupReport::reports_deleted`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::task::Task;

/// A position in the `(updated_at, id)` order of tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReportCursor {
    /// The task's last change.
    pub updated_at: DateTime<Utc>,
    /// The task's row id (ties on `updated_at`).
    pub id: i64,
}

impl ReportCursor {
    /// Before every task (the Unix epoch, row id 0).
    pub fn start() -> Self {
        Self {
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            id: 0,
        }
    }

    /// The position of `task`.
    pub fn of(task: &Task) -> Self {
        Self {
            updated_at: task.updated_at,
            id: task.id,
        }
    }
}

/// Where a report goes on GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A check run (GitHub App).
    CheckRun,
    /// A commit status (personal token).
    Status,
    /// The single pull-request comment.
    Comment,
}

impl ReportKind {
    /// Every kind.
    pub const ALL: [ReportKind; 3] = [
        ReportKind::CheckRun,
        ReportKind::Status,
        ReportKind::Comment,
    ];

    /// The stored name (also the `kind` label of `github_reports_total`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ReportKind::CheckRun => "check_run",
            ReportKind::Status => "status",
            ReportKind::Comment => "comment",
        }
    }

    /// The kind a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// What was last reported for one key (a task's check run or status, or a pull request's
/// comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// `task:<uuid>` for a task's check run / status, `comment:<owner/name>#<number>` for a
    /// pull request's comment.
    pub key: String,
    /// Where it goes.
    pub kind: ReportKind,
    /// The task reported last (for a retry: which task to render again).
    pub task_id: Option<Uuid>,
    /// GitHub's id of what was created (check run id, comment id); `None` before the first
    /// successful create and for statuses.
    pub external_id: Option<i64>,
    /// Fingerprint of the last body GitHub accepted; `None` before the first success.
    pub fingerprint: Option<String>,
    /// Failed sends since the last success.
    pub failures: u32,
    /// When a failed send is tried again; `None` when nothing is owed (or retries gave up).
    pub retry_at: Option<DateTime<Utc>>,
    /// The last failure, for operators.
    pub last_error: Option<String>,
    /// Last change of this record.
    pub updated_at: DateTime<Utc>,
}

impl ReportRecord {
    /// The key of `task_id`'s check run or status.
    pub fn task_key(task_id: Uuid) -> String {
        format!("task:{task_id}")
    }

    /// The key of a pull request's comment.
    pub fn comment_key(repository: &str, pr_number: i64) -> String {
        format!("comment:{repository}#{pr_number}")
    }

    /// A record with nothing sent yet.
    pub fn new(key: String, kind: ReportKind, task_id: Option<Uuid>, now: DateTime<Utc>) -> Self {
        Self {
            key,
            kind,
            task_id,
            external_id: None,
            fingerprint: None,
            failures: 0,
            retry_at: None,
            last_error: None,
            updated_at: now,
        }
    }
}

/// Storage of the reporter's cursor, lease and records.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// At most `limit` tasks whose `(updated_at, id)` is after `after`, in that order.
    async fn changed_tasks(
        &self,
        after: &ReportCursor,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError>;

    /// The tasks whose parent is `parent`, oldest first (row id order).
    async fn child_tasks(&self, parent: Uuid) -> Result<Vec<Task>, StoreError>;

    /// Takes or renews the lease of the reporter named `name` for `holder` until `until`: true
    /// when `holder` now holds it (it was free, expired at `now`, or already `holder`'s).
    async fn lease_reporter(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The saved cursor of the reporter named `name` (`None` before the first save).
    async fn report_cursor(&self, name: &str) -> Result<Option<ReportCursor>, StoreError>;

    /// Saves the cursor of the reporter named `name`.
    async fn save_report_cursor(
        &self,
        name: &str,
        cursor: &ReportCursor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The records of `key` (`None` when nothing was reported for it yet).
    async fn report(&self, key: &str) -> Result<Option<ReportRecord>, StoreError>;

    /// Inserts or replaces the record of `record.key`.
    async fn save_report(&self, record: &ReportRecord) -> Result<(), StoreError>;

    /// Records whose failed send is due again at `now`, oldest `retry_at` first, at most `limit`.
    async fn due_reports(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ReportRecord>, StoreError>;
}
