//! Bulk operations: retry many tasks, or reprocess many events, chosen by a filter, in the
//! background (issue 13).
//!
//! # The request
//! [`parse_request`] reads the JSON body of `POST /api/v1/tasks/retry` and
//! `POST /api/v1/webhooks/events/reprocess` strictly: an unknown key, a wrong type (`null`
//! included: a key is given a value or left out), an invalid task status or event name, or an
//! inverted time range is an [`InvalidRequest`] (the HTTP layer
//! answers 400, nothing is done). A filter without any criterion matches everything and is only
//! accepted with `"all": true`.
//!
//! # The operation
//! An [`Operation`] is stored (`pending`) and answered at once; a runner in the worker role
//! ([`crate::engine::OperationRunner`]) claims it with a lease, works through the matching rows
//! in batches ordered by row id (the `cursor` is the last row id handled, so a restarted runner
//! goes on where the last one stopped), and records its counts after every batch.
//!
//! # Never twice
//! An operation acts only on rows as they were when it was created: a task is retried only if it
//! is still failed/cancelled and has not changed since the operation's `created_at`; an event is
//! reprocessed only if no task was added to it since then (and, as for a single reprocess, none
//! of its tasks is open). So two operations racing over the same tasks retry each task once: the
//! first one's retry changes the task, and the second skips it. The check and the retry are one
//! statement (PostgreSQL) or one write transaction (SQLite, memory).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delivery::is_event_name;
use crate::error::StoreError;
use crate::queue::TaskRef;
use crate::store::Page;
use crate::task::{Task, TaskStatus, TaskType};

/// What an operation does to the rows its filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Retry failed/cancelled tasks (as `POST /api/v1/tasks/{id}/retry` does for one).
    RetryTasks,
    /// Reprocess events (as `POST /api/v1/webhooks/events/{id}/reprocess` does for one).
    ReprocessEvents,
}

impl OperationKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationKind::RetryTasks => "retry_tasks",
            OperationKind::ReprocessEvents => "reprocess_events",
        }
    }

    /// The kind a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        [OperationKind::RetryTasks, OperationKind::ReprocessEvents]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Stored; no runner has taken it yet.
    Pending,
    /// A runner works on it (or did, until its lease runs out and another takes over).
    Running,
    /// Every matching row was handled.
    Completed,
    /// An operator cancelled it; rows already handled stay handled.
    Cancelled,
}

impl OperationStatus {
    /// Every status.
    pub const ALL: [OperationStatus; 4] = [
        OperationStatus::Pending,
        OperationStatus::Running,
        OperationStatus::Completed,
        OperationStatus::Cancelled,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Completed => "completed",
            OperationStatus::Cancelled => "cancelled",
        }
    }

    /// The status a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Completed or cancelled.
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            OperationStatus::Completed | OperationStatus::Cancelled
        )
    }
}

/// The filter of an operation (all criteria AND-ed). Which criteria a kind accepts is decided
/// by [`parse_request`]; the stores apply whatever is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFilter {
    /// Tasks: only this status (failed or cancelled; `None` = both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// Tasks: only this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<TaskType>,
    /// Only events (or tasks of events) of this `X-GitHub-Event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only events (or tasks of events) with this `action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only this `owner/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Only this pull request (events: an event with a task of that pull request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<i64>,
    /// Only rows whose `error_message` contains this text (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_contains: Option<String>,
    /// Only rows created at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<DateTime<Utc>>,
    /// Only rows created before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<DateTime<Utc>>,
    /// Tasks: only superseded ones (`true`: a newer head SHA's task replaced them, they carry
    /// `superseded_by`) or only the others (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<bool>,
}

impl OperationFilter {
    /// Whether no criterion is set (the filter matches everything).
    pub fn is_empty(&self) -> bool {
        *self == OperationFilter::default()
    }

    /// The task statuses a retry operation may act on.
    pub fn retry_statuses(&self) -> Vec<TaskStatus> {
        match self.status {
            Some(status) => vec![status],
            None => vec![TaskStatus::Failed, TaskStatus::Cancelled],
        }
    }

    /// Whether `task` matches the task criteria (the event criteria need the event: see
    /// [`OperationFilter::matches_event`]).
    pub fn matches_task(&self, task: &Task) -> bool {
        self.retry_statuses().contains(&task.status)
            && self.task_type.as_ref().is_none_or(|t| *t == task.task_type)
            && self
                .repository
                .as_ref()
                .is_none_or(|r| task.repository.as_ref() == Some(r))
            && self.pr_number.is_none_or(|n| task.pr_number == Some(n))
            && self.error_contains.as_deref().is_none_or(|needle| {
                task.error_message
                    .as_deref()
                    .is_some_and(|m| m.contains(needle))
            })
            && self.created_after.is_none_or(|t| task.created_at >= t)
            && self.created_before.is_none_or(|t| task.created_at < t)
            && self
                .superseded
                .is_none_or(|s| task.superseded_by.is_some() == s)
    }

    /// Whether an event of `event_type` / `action` matches the event-type criteria.
    pub fn matches_event(&self, event_type: &str, action: Option<&str>) -> bool {
        self.event_type.as_deref().is_none_or(|t| t == event_type)
            && self.action.as_deref().is_none_or(|a| action == Some(a))
    }
}

/// The body of a bulk request, as received (strict: unknown keys are refused).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    status: Option<TaskStatus>,
    task_type: Option<TaskType>,
    event_type: Option<String>,
    action: Option<String>,
    repository: Option<String>,
    #[serde(default, deserialize_with = "integral")]
    pr_number: Option<i64>,
    error_contains: Option<String>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    superseded: Option<bool>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
    force: Option<bool>,
}

/// A JSON integer as JSON Schema counts them: `7` and `7.0` (a number whose fraction is zero),
/// not `7.5` nor `"7"`. A number written with a fraction or exponent is taken only where a
/// double holds it exactly (below 2^53), so a literal just outside `i64` cannot round into it.
/// 2^53: every integer of smaller magnitude is exactly a double.
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(d)?;
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < EXACT_IN_F64 => Ok(Some(f as i64)),
        _ => Err(D::Error::custom(format!(
            "invalid type: {number} is not an integer"
        ))),
    }
}

/// A valid bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRequest {
    /// What to do.
    pub kind: OperationKind,
    /// Which rows.
    pub filter: OperationFilter,
    /// Only count (and sample) the matching rows; change nothing.
    pub dry_run: bool,
    /// Reprocess: the new tasks may create an agent run for a head SHA that already has one.
    pub force: bool,
}

/// Why a bulk request was refused (answered 400; nothing was done).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest(message.into())
}

/// Reads a bulk request body of `kind` (see the module documentation for the rules).
pub fn parse_request(kind: OperationKind, body: &[u8]) -> Result<OperationRequest, InvalidRequest> {
    let bad = |e: serde_json::Error| invalid(format!("invalid operation request: {e}"));
    // A JSON object only (serde would also read a struct from an array).
    let body = match serde_json::from_slice(body).map_err(bad)? {
        serde_json::Value::Object(object) => object,
        _ => {
            return Err(invalid(
                "invalid operation request: invalid type, expected a JSON object",
            ));
        }
    };
    // `null` is not "no criterion": a key is either given a value or left out.
    if let Some((key, _)) = body.iter().find(|(_, v)| v.is_null()) {
        return Err(invalid(format!(
            "{key} must not be null; leave the key out instead"
        )));
    }
    let body = serde_json::Value::Object(body);
    let body: RequestBody = serde_json::from_value(body).map_err(bad)?;
    let filter = OperationFilter {
        status: body.status,
        task_type: body.task_type,
        event_type: body.event_type,
        action: body.action,
        repository: body.repository,
        pr_number: body.pr_number,
        error_contains: body.error_contains,
        created_after: body.created_after,
        created_before: body.created_before,
        superseded: body.superseded,
    };
    check_kind(kind, &filter, body.force)?;
    check_values(&filter)?;
    match (filter.is_empty(), body.all) {
        (true, false) => {
            return Err(invalid(
                "the filter has no criterion and would match everything; send \"all\": true \
                 to mean that",
            ));
        }
        (false, true) => {
            return Err(invalid(
                "\"all\": true means every row; it cannot be combined with criteria",
            ));
        }
        _ => {}
    }
    Ok(OperationRequest {
        kind,
        filter,
        dry_run: body.dry_run,
        force: body.force.unwrap_or(false),
    })
}

fn check_kind(
    kind: OperationKind,
    filter: &OperationFilter,
    force: Option<bool>,
) -> Result<(), InvalidRequest> {
    match kind {
        OperationKind::RetryTasks => {
            if force.is_some() {
                return Err(invalid("\"force\" applies to reprocess only"));
            }
            if let Some(status) = filter.status
                && !matches!(status, TaskStatus::Failed | TaskStatus::Cancelled)
            {
                return Err(invalid(format!(
                    "status {status} cannot be retried; only failed or cancelled"
                )));
            }
        }
        OperationKind::ReprocessEvents => {
            if filter.status.is_some() || filter.task_type.is_some() || filter.superseded.is_some()
            {
                return Err(invalid(
                    "\"status\", \"task_type\" and \"superseded\" filter tasks; reprocess \
                     filters events",
                ));
            }
        }
    }
    Ok(())
}

fn check_values(filter: &OperationFilter) -> Result<(), InvalidRequest> {
    if let Some(name) = filter.event_type.as_deref().filter(|n| !is_event_name(n)) {
        return Err(invalid(format!(
            "event_type {name:?} is not an event name (1-64 characters of a-z, 0-9, _)"
        )));
    }
    if filter.action.is_some() && filter.event_type.is_none() {
        return Err(invalid("\"action\" needs \"event_type\""));
    }
    for (key, value) in [
        ("action", &filter.action),
        ("repository", &filter.repository),
        ("error_contains", &filter.error_contains),
    ] {
        if value.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(format!("{key} must not be empty")));
        }
    }
    if let (Some(after), Some(before)) = (filter.created_after, filter.created_before)
        && after >= before
    {
        return Err(invalid(format!(
            "created_after ({after}) must be before created_before ({before})"
        )));
    }
    Ok(())
}

/// A stored operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Its id.
    pub id: Uuid,
    /// What it does.
    pub kind: OperationKind,
    /// Which rows.
    pub filter: OperationFilter,
    /// Reprocess with `force`.
    pub force: bool,
    /// Where it stands.
    pub status: OperationStatus,
    /// Rows that matched when it was created.
    pub matched: u64,
    /// Rows handled (tasks retried, events reprocessed).
    pub done: u64,
    /// Rows that failed (an event whose payload still does not parse).
    pub failed: u64,
    /// Rows left alone because they changed or had open tasks.
    pub skipped: u64,
    /// The last row id handled (tasks: `workflow_tasks.id`; events: `webhook_events.id`).
    pub cursor: i64,
    /// The runner holding it.
    pub lease_owner: Option<String>,
    /// When that runner's hold runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When it was asked for; it acts on rows as they were then.
    pub created_at: DateTime<Utc>,
    /// When a runner first took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Operation {
    /// A new pending operation for `request` that matched `matched` rows at `now`.
    pub fn new(request: &OperationRequest, matched: u64, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: request.kind,
            filter: request.filter.clone(),
            force: request.force,
            status: OperationStatus::Pending,
            matched,
            done: 0,
            failed: 0,
            skipped: 0,
            cursor: 0,
            lease_owner: None,
            lease_expires_at: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        }
    }
}

/// What a dry run found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preview {
    /// How many rows match now.
    pub matched: u64,
    /// The first matching task ids (retry), oldest first.
    pub task_ids: Vec<Uuid>,
    /// The first matching event ids (reprocess), oldest first.
    pub event_ids: Vec<i64>,
}

/// What one retry batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryBatch {
    /// The tasks made pending (to publish to the queue).
    pub retried: Vec<TaskRef>,
    /// False when no matching row is left after this batch (the operation is completed), or the
    /// operation is no longer running (cancelled, or taken over).
    pub more: bool,
}

/// Progress of a reprocess batch, recorded by [`OperationStore::record_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The last event id handled.
    pub cursor: i64,
    /// Events reprocessed in this batch.
    pub done: u64,
    /// Events that failed in this batch.
    pub failed: u64,
    /// Events skipped in this batch (open tasks, changed since the operation was created).
    pub skipped: u64,
    /// No matching event is left: the operation is completed.
    pub finished: bool,
}

/// What [`OperationStore::cancel_operation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOperation {
    /// The operation is cancelled now.
    Cancelled(Box<Operation>),
    /// It had already finished (completed or cancelled); nothing changed.
    Finished(Box<Operation>),
    /// No operation has that id.
    NotFound,
}

/// Storage and batched execution of bulk operations.
#[async_trait]
pub trait OperationStore: Send + Sync + 'static {
    /// How many rows `kind` with `filter` matches now, and the first `sample` ids.
    async fn preview(
        &self,
        kind: OperationKind,
        filter: &OperationFilter,
        sample: u32,
        now: DateTime<Utc>,
    ) -> Result<Preview, StoreError>;

    /// Stores `operation` (pending).
    async fn create_operation(&self, operation: &Operation) -> Result<(), StoreError>;

    /// One operation.
    async fn get_operation(&self, id: Uuid) -> Result<Option<Operation>, StoreError>;

    /// Operations, newest first (`created_at`, then id, descending), `page` applied. With
    /// `before` (keyset paging: the last operation of the previous page), only the operations
    /// after that one in this order; none when it is unknown.
    async fn list_operations(
        &self,
        before: Option<Uuid>,
        page: Page,
    ) -> Result<Vec<Operation>, StoreError>;

    /// Cancels a pending or running operation (`finished_at = now`); its runner stops before its
    /// next batch.
    async fn cancel_operation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOperation, StoreError>;

    /// Takes the oldest pending operation, or a running one whose lease ran out, for `worker`
    /// until `lease_until`: running, `started_at` set the first time.
    async fn claim_operation(
        &self,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Operation>, StoreError>;

    /// Retry operations: in one step, retries the next `limit` matching tasks after the cursor
    /// (still failed/cancelled, unchanged since the operation's creation), as a manual retry
    /// does, moves the cursor, counts them as done, and renews the lease to `lease_until`; when
    /// none is left, the operation is completed (the rest of `matched` counted as skipped).
    /// Nothing happens unless `worker` still holds the running operation.
    async fn retry_batch(
        &self,
        id: Uuid,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RetryBatch, StoreError>;

    /// Reprocess operations: the next `limit` matching event ids after the cursor that got no
    /// task since the operation was created, oldest first.
    async fn next_events(&self, operation: &Operation, limit: u32) -> Result<Vec<i64>, StoreError>;

    /// Records a reprocess batch and renews the lease; false (nothing written) when `worker`
    /// no longer holds the running operation.
    async fn record_progress(
        &self,
        id: Uuid,
        worker: &str,
        progress: Progress,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: OperationKind, body: &str) -> Result<OperationRequest, InvalidRequest> {
        parse_request(kind, body.as_bytes())
    }

    #[test]
    fn a_valid_retry_request_parses() {
        let request = parse(
            OperationKind::RetryTasks,
            r#"{"status":"failed","repository":"octo/repo","pr_number":7,
               "created_after":"2026-01-01T00:00:00Z","dry_run":true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(request.dry_run);
        assert_eq!(request.filter.status, Some(TaskStatus::Failed));
        assert_eq!(request.filter.pr_number, Some(7));
        // JSON Schema's integer: a number whose fraction is zero.
        let request = parse(
            OperationKind::RetryTasks,
            r#"{"status":"failed","pr_number":1329.0}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.filter.pr_number, Some(1329));
        // A literal just below i64::MIN is a double equal to i64::MIN: refused, not rounded.
        assert!(
            parse(
                OperationKind::RetryTasks,
                r#"{"status":"failed","pr_number":-9223372036854775809}"#
            )
            .is_err()
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let cases = [
            (
                OperationKind::RetryTasks,
                r#"{"statsu":"failed"}"#,
                "unknown field",
            ),
            (
                OperationKind::RetryTasks,
                r#"{"pr_number":"7"}"#,
                "invalid type",
            ),
            (
                OperationKind::RetryTasks,
                r#"{"pr_number":7.5}"#,
                "not an integer",
            ),
            (
                OperationKind::ReprocessEvents,
                r#"{"superseded":true}"#,
                "filter tasks",
            ),
            (
                OperationKind::RetryTasks,
                r#"{"status":"running"}"#,
                "cannot be retried",
            ),
            (
                OperationKind::RetryTasks,
                r#"{"status":"nope"}"#,
                "unknown variant",
            ),
            (OperationKind::RetryTasks, "{}", "\"all\": true"),
            (
                OperationKind::RetryTasks,
                r#"{"all":true,"pr_number":1}"#,
                "cannot be combined",
            ),
            (
                OperationKind::RetryTasks,
                r#"{"all":true,"force":true}"#,
                "reprocess only",
            ),
            (
                OperationKind::RetryTasks,
                r#"{"created_after":"2026-02-01T00:00:00Z","created_before":"2026-01-01T00:00:00Z"}"#,
                "must be before",
            ),
            (
                OperationKind::ReprocessEvents,
                r#"{"status":"failed"}"#,
                "filter tasks",
            ),
            (
                OperationKind::ReprocessEvents,
                r#"{"event_type":"Push!"}"#,
                "event name",
            ),
            (
                OperationKind::ReprocessEvents,
                r#"{"action":"opened"}"#,
                "needs",
            ),
            (
                OperationKind::ReprocessEvents,
                r#"{"repository":""}"#,
                "empty",
            ),
            (OperationKind::ReprocessEvents, "[]", "invalid type"),
            (OperationKind::ReprocessEvents, "", "EOF"),
        ];
        for (kind, body, reason) in cases {
            match parse(kind, body) {
                Err(InvalidRequest(message)) => {
                    assert!(message.contains(reason), "{body}: {message}");
                }
                Ok(request) => panic!("{body} was accepted: {request:?}"),
            }
        }
    }

    #[test]
    fn all_true_alone_matches_everything() {
        let request = parse(
            OperationKind::ReprocessEvents,
            r#"{"all":true,"force":true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(request.filter.is_empty());
        assert!(request.force);
    }

    #[test]
    fn names_round_trip() {
        for status in OperationStatus::ALL {
            assert_eq!(OperationStatus::parse(status.as_str()), Some(status));
        }
        for kind in [OperationKind::RetryTasks, OperationKind::ReprocessEvents] {
            assert_eq!(OperationKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(OperationStatus::parse("done"), None);
    }
}
