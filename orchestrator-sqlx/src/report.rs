//! The reporter's cursor, lease and records (`report_cursors`, `github_reports`, see
//! [`orchestrator_core::store::report`]) on both databases: the statements they run alike, and
//! [`ReportStore`] for [`SqlStore`]. Each database's decoding and task reads live in its
//! `report.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::report::{ReportCursor, ReportKind, ReportRecord, ReportStore};
use orchestrator_core::task::Task;
use uuid::Uuid;

use crate::SqlStore;
use crate::error::corrupt;
use crate::sql_store::both;

/// Takes the lease when it is free, expired or already the holder's; a row back means taken.
pub(crate) const LEASE: &str = "INSERT INTO report_cursors (name, holder, lease_until) \
    VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
    lease_until = excluded.lease_until \
    WHERE report_cursors.holder = excluded.holder OR report_cursors.lease_until < $4 \
    RETURNING name";

/// The saved cursor.
pub(crate) const CURSOR: &str = "SELECT cursor_at, cursor_id FROM report_cursors WHERE name = $1";

/// Saves the cursor (the lease columns are left alone).
pub(crate) const SAVE_CURSOR: &str = "INSERT INTO report_cursors (name, cursor_at, cursor_id, \
    holder, lease_until) VALUES ($1, $2, $3, '', $4) ON CONFLICT (name) DO UPDATE SET \
    cursor_at = excluded.cursor_at, cursor_id = excluded.cursor_id";

/// The columns every record read returns.
macro_rules! report_columns {
    () => {
        "report_key, kind, task_id, external_id, fingerprint, failures, retry_at, last_error, \
         updated_at"
    };
}

/// One record.
pub(crate) const REPORT: &str = concat!(
    "SELECT ",
    report_columns!(),
    " FROM github_reports WHERE report_key = $1"
);

/// Records due for a retry.
pub(crate) const DUE: &str = concat!(
    "SELECT ",
    report_columns!(),
    " FROM github_reports WHERE retry_at IS NOT NULL AND retry_at <= $1 \
     ORDER BY retry_at, report_key LIMIT $2"
);

/// Inserts or replaces a record.
pub(crate) const SAVE: &str = "INSERT INTO github_reports (report_key, kind, task_id, \
    external_id, fingerprint, failures, retry_at, last_error, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (report_key) DO UPDATE SET \
    kind = excluded.kind, task_id = excluded.task_id, external_id = excluded.external_id, \
    fingerprint = excluded.fingerprint, failures = excluded.failures, \
    retry_at = excluded.retry_at, last_error = excluded.last_error, \
    updated_at = excluded.updated_at";

/// A stored kind name.
pub(crate) fn parse_kind(name: &str) -> Result<ReportKind, StoreError> {
    ReportKind::parse(name).ok_or_else(|| corrupt(format!("report kind {name}")))
}

/// A limit as SQL takes it.
pub(crate) fn limit(n: u32) -> i64 {
    i64::from(n)
}

#[async_trait]
impl ReportStore for SqlStore {
    async fn changed_tasks(
        &self,
        after: &ReportCursor,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        both!(self, s => s.changed_tasks(after, limit).await)
    }
    async fn child_tasks(&self, parent: Uuid) -> Result<Vec<Task>, StoreError> {
        both!(self, s => s.child_tasks(parent).await)
    }
    async fn lease_reporter(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.lease_reporter(name, holder, until, now).await)
    }
    async fn report_cursor(&self, name: &str) -> Result<Option<ReportCursor>, StoreError> {
        both!(self, s => s.report_cursor(name).await)
    }
    async fn save_report_cursor(
        &self,
        name: &str,
        cursor: &ReportCursor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        both!(self, s => s.save_report_cursor(name, cursor, now).await)
    }
    async fn report(&self, key: &str) -> Result<Option<ReportRecord>, StoreError> {
        both!(self, s => s.report(key).await)
    }
    async fn save_report(&self, record: &ReportRecord) -> Result<(), StoreError> {
        both!(self, s => s.save_report(record).await)
    }
    async fn due_reports(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ReportRecord>, StoreError> {
        both!(self, s => s.due_reports(now, limit).await)
    }
}
