//! Bulk operations (`operations`, see [`orchestrator_core::store::operation`]) on both
//! databases: the statements they share, the filter's `WHERE` conditions, and
//! [`OperationStore`] for [`SqlStore`]. Each database's transactions live in its
//! `operation.rs`.
//!
//! Conditions name only the criteria that are set, with bound parameters. A batch walks rows by
//! primary key after the operation's cursor; the "unchanged since the operation was created"
//! test (`updated_at <= created_at` for tasks, "no task added since" for events) and the retry
//! itself are one transaction, so two operations never retry a task twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::Page;
use orchestrator_core::store::operation::{
    CancelOperation, Operation, OperationFilter, OperationKind, OperationStatus, OperationStore,
    Preview, Progress, RetryBatch,
};
use orchestrator_core::task::TaskStatus;
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use crate::SqlStore;
use crate::error::corrupt;
use crate::sql_store::both;

/// The columns every operation read returns, in the order each database's decoder reads them.
macro_rules! operation_columns {
    () => {
        "id, kind, CAST(criteria AS TEXT) AS criteria, forced, status, matched, done, failed, skipped, row_cursor, \
         lease_owner, lease_expires_at, created_at, started_at, finished_at, updated_at"
    };
}
pub(crate) use operation_columns;

/// One operation.
pub(crate) const GET: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations WHERE id = $1"
);

/// Operations, newest first.
pub(crate) const LIST: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
);

/// Operations after operation `$3` in the list's order (keyset paging; none when `$3` is
/// unknown): a walk of `operations_created_idx` from that row on.
pub(crate) const LIST_BEFORE: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations WHERE (created_at, id) < \
     (SELECT created_at, id FROM operations WHERE id = $3) \
     ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
);

/// [`LIST`], or [`LIST_BEFORE`] when paging after a cursor.
pub(crate) fn list_statement(before: Option<Uuid>) -> &'static str {
    if before.is_some() { LIST_BEFORE } else { LIST }
}

/// A pending or running operation becomes cancelled.
pub(crate) const CANCEL: &str = concat!(
    "UPDATE operations SET status = 'cancelled', finished_at = $2, lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = $2 WHERE id = $1 AND status IN ('pending', 'running') \
     RETURNING ",
    operation_columns!()
);

/// The oldest pending operation, or a running one whose lease ran out (`$lock`: PostgreSQL's
/// row lock clause, empty on SQLite, which has one writer).
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE operations SET status = 'running', lease_owner = $1, lease_expires_at = $2, \
             started_at = COALESCE(started_at, $3), updated_at = $3 WHERE id = (SELECT id FROM \
             operations WHERE status = 'pending' OR (status = 'running' AND \
             (lease_expires_at IS NULL OR lease_expires_at <= $3)) ORDER BY created_at, id \
             LIMIT 1",
            $lock,
            ") RETURNING ",
            crate::operation::operation_columns!()
        )
    };
}
pub(crate) use claim;

/// The running operation `$1` if `$2` holds it (and its filter), for update.
pub(crate) const HELD: &str = concat!(
    "SELECT ",
    operation_columns!(),
    " FROM operations WHERE id = $1 AND status = 'running' AND lease_owner = $2"
);

/// A batch's counts and the renewed lease (`$1` id, `$2` cursor, `$3` done, `$4` failed,
/// `$5` skipped, `$6` lease, `$7` now).
pub(crate) const ADVANCE: &str = "UPDATE operations SET \
    row_cursor = CASE WHEN $2 > row_cursor THEN $2 ELSE row_cursor END, \
    done = done + $3, failed = failed + $4, skipped = skipped + $5, lease_expires_at = $6, \
    updated_at = $7 WHERE id = $1";

/// Completes an operation: whatever matched and was neither done nor failed counts as skipped
/// (`$1` id, `$2` now).
pub(crate) const COMPLETE: &str = "UPDATE operations SET status = 'completed', finished_at = $2, \
    lease_owner = NULL, lease_expires_at = NULL, updated_at = $2, \
    skipped = CASE WHEN matched - done - failed > skipped THEN matched - done - failed \
    ELSE skipped END WHERE id = $1 AND status = 'running'";

/// The SQL function for "haystack contains needle": `strpos` (PostgreSQL), `instr` (SQLite).
pub(crate) type Contains = &'static str;

/// Appends ` AND ...` for each task criterion of `filter` (table alias `t`), times bound through
/// `time`.
pub(crate) fn task_conditions<DB, T>(
    query: &mut QueryBuilder<DB>,
    filter: &OperationFilter,
    contains: Contains,
    time: impl Fn(DateTime<Utc>) -> T,
) where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> T: Encode<'q, DB> + Type<DB>,
    T: 'static,
{
    let statuses = filter.retry_statuses();
    query.push(" AND t.status IN (");
    let mut list = query.separated(", ");
    for status in statuses {
        list.push_bind(TaskStatus::as_str(status).to_owned());
    }
    query.push(")");
    if let Some(task_type) = &filter.task_type {
        query
            .push(" AND t.task_type = ")
            .push_bind(task_type.as_str().to_owned());
    }
    if let Some(event_type) = &filter.event_type {
        query
            .push(" AND t.webhook_event_id IN (SELECT id FROM webhook_events WHERE event_type = ")
            .push_bind(event_type.clone());
        if let Some(action) = &filter.action {
            query.push(" AND action = ").push_bind(action.clone());
        }
        query.push(")");
    }
    common_conditions(query, filter, "t", contains, time);
    if let Some(pr) = filter.pr_number {
        query.push(" AND t.pr_number = ").push_bind(pr);
    }
    match filter.superseded {
        Some(true) => query.push(" AND t.superseded_by IS NOT NULL"),
        Some(false) => query.push(" AND t.superseded_by IS NULL"),
        None => query,
    };
}

/// Appends ` AND ...` for each event criterion of `filter` (table alias `e`), and "no task was
/// added since `as_of`".
pub(crate) fn event_conditions<DB, T>(
    query: &mut QueryBuilder<DB>,
    filter: &OperationFilter,
    as_of: DateTime<Utc>,
    contains: Contains,
    time: impl Fn(DateTime<Utc>) -> T,
) where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> T: Encode<'q, DB> + Type<DB>,
    T: 'static,
{
    if let Some(event_type) = &filter.event_type {
        query
            .push(" AND e.event_type = ")
            .push_bind(event_type.clone());
    }
    if let Some(action) = &filter.action {
        query.push(" AND e.action = ").push_bind(action.clone());
    }
    common_conditions(query, filter, "e", contains, &time);
    if let Some(pr) = filter.pr_number {
        query
            .push(" AND EXISTS (SELECT 1 FROM workflow_tasks w WHERE w.webhook_event_id = e.id AND w.pr_number = ")
            .push_bind(pr)
            .push(")");
    }
    query.push(" AND e.created_at <= ").push_bind(time(as_of));
    query
        .push(" AND NOT EXISTS (SELECT 1 FROM workflow_tasks w WHERE w.webhook_event_id = e.id AND w.created_at > ")
        .push_bind(time(as_of))
        .push(")");
}

/// Repository, error text and creation range, on `alias`.
fn common_conditions<DB, T>(
    query: &mut QueryBuilder<DB>,
    filter: &OperationFilter,
    alias: &str,
    contains: Contains,
    time: impl Fn(DateTime<Utc>) -> T,
) where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> T: Encode<'q, DB> + Type<DB>,
    T: 'static,
{
    if let Some(repository) = &filter.repository {
        query
            .push(format!(" AND {alias}.repository = "))
            .push_bind(repository.clone());
    }
    if let Some(needle) = &filter.error_contains {
        query
            .push(format!(" AND {contains}({alias}.error_message, "))
            .push_bind(needle.clone())
            .push(") > 0");
    }
    if let Some(after) = filter.created_after {
        query
            .push(format!(" AND {alias}.created_at >= "))
            .push_bind(time(after));
    }
    if let Some(before) = filter.created_before {
        query
            .push(format!(" AND {alias}.created_at < "))
            .push_bind(time(before));
    }
}

/// A stored operation kind.
pub(crate) fn parse_kind(text: &str) -> Result<OperationKind, StoreError> {
    OperationKind::parse(text).ok_or_else(|| corrupt(format!("operation kind {text:?}")))
}

/// A stored operation status.
pub(crate) fn parse_status(text: &str) -> Result<OperationStatus, StoreError> {
    OperationStatus::parse(text).ok_or_else(|| corrupt(format!("operation status {text:?}")))
}

/// A stored filter.
pub(crate) fn parse_filter(text: &str) -> Result<OperationFilter, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("operation filter: {e}")))
}

/// A filter to store.
pub(crate) fn filter_text(filter: &OperationFilter) -> Result<String, StoreError> {
    serde_json::to_string(filter).map_err(|e| corrupt(format!("operation filter: {e}")))
}

/// A stored counter.
pub(crate) fn counter(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A counter to store.
pub(crate) fn stored(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The page as `LIMIT` / `OFFSET` values.
pub(crate) fn limits(page: Page) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

#[async_trait]
impl OperationStore for SqlStore {
    async fn preview(
        &self,
        kind: OperationKind,
        filter: &OperationFilter,
        sample: u32,
        now: DateTime<Utc>,
    ) -> Result<Preview, StoreError> {
        both!(self, s => s.preview(kind, filter, sample, now).await)
    }
    async fn create_operation(&self, operation: &Operation) -> Result<(), StoreError> {
        both!(self, s => s.create_operation(operation).await)
    }
    async fn get_operation(&self, id: Uuid) -> Result<Option<Operation>, StoreError> {
        both!(self, s => s.get_operation(id).await)
    }
    async fn list_operations(
        &self,
        before: Option<Uuid>,
        page: Page,
    ) -> Result<Vec<Operation>, StoreError> {
        both!(self, s => s.list_operations(before, page).await)
    }
    async fn cancel_operation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOperation, StoreError> {
        both!(self, s => s.cancel_operation(id, now).await)
    }
    async fn claim_operation(
        &self,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Operation>, StoreError> {
        both!(self, s => s.claim_operation(worker, lease_until, now).await)
    }
    async fn retry_batch(
        &self,
        id: Uuid,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RetryBatch, StoreError> {
        both!(self, s => s.retry_batch(id, worker, limit, lease_until, now).await)
    }
    async fn next_events(&self, operation: &Operation, limit: u32) -> Result<Vec<i64>, StoreError> {
        both!(self, s => s.next_events(operation, limit).await)
    }
    async fn record_progress(
        &self,
        id: Uuid,
        worker: &str,
        progress: Progress,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.record_progress(id, worker, progress, lease_until, now).await)
    }
}
