//! Recovery runs (`recovery_runs`, see [`orchestrator_core::store::recovery`]) on both
//! databases: the statements they share, row assembly, and [`RecoveryStore`] for [`SqlStore`].
//! Each database's binding and its one-runner lease live in `postgres/recovery.rs` and
//! `sqlite/recovery.rs`.
//!
//! "Which of these GUIDs do we have" is one query per page of summaries against the unique
//! `delivery_id` index (PostgreSQL `= ANY($1)`, SQLite `IN (SELECT value FROM json_each($1))`),
//! never one query per GUID.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::recovery::{
    LearnedHook, RecoveryRun, RecoveryStore, RedeliveryIntent, RunStatus, RunnerLease,
};
use uuid::Uuid;

use crate::SqlStore;
use crate::error::corrupt;
use crate::sql_store::both;

/// The columns every run read returns.
macro_rules! run_columns {
    () => {
        "run_id, kind, mode, dry_run, hooks, window_start, window_end, status, hook, page_cursor, \
         listed, missing, recovered, failed, errors, last_error, missing_guids, created_at, \
         started_at, finished_at, updated_at"
    };
}

/// A new run (all columns, in [`run_columns!`] order).
pub(crate) const INSERT: &str = concat!(
    "INSERT INTO recovery_runs (",
    run_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21)"
);

/// A run's progress.
pub(crate) const SAVE: &str = "UPDATE recovery_runs SET status = $2, hook = $3, page_cursor = $4, \
    listed = $5, missing = $6, recovered = $7, failed = $8, errors = $9, last_error = $10, \
    missing_guids = $11, started_at = $12, finished_at = $13, updated_at = $14 WHERE run_id = $1";

/// One run.
pub(crate) const GET: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM recovery_runs WHERE run_id = $1"
);

/// Newest runs.
pub(crate) const LIST: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM recovery_runs ORDER BY id DESC LIMIT $1"
);

/// Newest runs stored before run `$2` (keyset paging by row id; none when `$2` is unknown).
pub(crate) const LIST_BEFORE: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM recovery_runs WHERE id < (SELECT id FROM recovery_runs WHERE run_id = $2) \
     ORDER BY id DESC LIMIT $1"
);

/// [`LIST`], or [`LIST_BEFORE`] when paging after a cursor.
pub(crate) fn list_statement(before: Option<Uuid>) -> &'static str {
    if before.is_some() { LIST_BEFORE } else { LIST }
}

/// The oldest open run.
pub(crate) const OPEN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM recovery_runs WHERE status IN ('pending', 'running', 'interrupted') ORDER BY id LIMIT 1"
);

/// The latest scheduled success's start.
pub(crate) const LAST_SUCCESS: &str = "SELECT started_at FROM recovery_runs \
    WHERE status = 'succeeded' AND kind = 'scheduled' AND dry_run = $1 AND started_at IS NOT NULL \
    ORDER BY started_at DESC LIMIT 1";

/// Records a redelivery intent unless the same attempt of the GUID was asked for at or after
/// `$6`; answers a row when recorded. One statement, so two runners never both record it.
pub(crate) const CLAIM_REDELIVERY: &str = "INSERT INTO recovery_redeliveries \
    (guid, attempt_id, hook, run_id, requested_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (guid) DO UPDATE SET attempt_id = excluded.attempt_id, hook = excluded.hook, \
    run_id = excluded.run_id, requested_at = excluded.requested_at \
    WHERE recovery_redeliveries.attempt_id <> excluded.attempt_id \
    OR recovery_redeliveries.requested_at < $6 RETURNING guid";

/// Forgets a run's redelivery intent (GitHub refused the request).
pub(crate) const RELEASE_REDELIVERY: &str =
    "DELETE FROM recovery_redeliveries WHERE guid = $1 AND run_id = $2";

/// The run's fields as stored in text and number columns; each database converts times, ids
/// and booleans its own way.
pub(crate) struct RunText {
    pub(crate) hooks: String,
    pub(crate) missing_guids: String,
    pub(crate) counters: [i64; 5],
}

impl RunText {
    pub(crate) fn of(run: &RecoveryRun) -> Self {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            hooks: run.hooks.join(","),
            missing_guids: serde_json::to_string(&run.missing_guids)
                .unwrap_or_else(|_| "[]".to_owned()),
            counters: [
                n(run.listed),
                n(run.missing),
                n(run.recovered),
                n(run.failed),
                n(run.errors),
            ],
        }
    }
}

/// The row's text and number columns, read back.
pub(crate) struct RunRow {
    pub(crate) run_id: Uuid,
    pub(crate) kind: String,
    pub(crate) mode: String,
    pub(crate) dry_run: bool,
    pub(crate) hooks: String,
    pub(crate) status: String,
    pub(crate) hook: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) counters: [i64; 5],
    pub(crate) last_error: Option<String>,
    pub(crate) missing_guids: String,
}

/// The row's times, read back.
pub(crate) struct RunTimes {
    pub(crate) since: DateTime<Utc>,
    pub(crate) until: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) updated_at: DateTime<Utc>,
}

/// Assembles a run from its stored parts.
pub(crate) fn assemble(row: RunRow, times: RunTimes) -> Result<RecoveryRun, StoreError> {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(RecoveryRun {
        run_id: row.run_id,
        trigger: row.kind,
        mode: row.mode.parse().map_err(corrupt)?,
        dry_run: row.dry_run,
        hooks: row
            .hooks
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        since: times.since,
        until: times.until,
        status: row.status.parse::<RunStatus>().map_err(corrupt)?,
        hook: row.hook,
        cursor: row.cursor,
        listed: n(row.counters[0]),
        missing: n(row.counters[1]),
        recovered: n(row.counters[2]),
        failed: n(row.counters[3]),
        errors: n(row.counters[4]),
        last_error: row.last_error,
        missing_guids: serde_json::from_str(&row.missing_guids)
            .map_err(|e| corrupt(format!("missing_guids: {e}")))?,
        created_at: times.created_at,
        started_at: times.started_at,
        finished_at: times.finished_at,
        updated_at: times.updated_at,
    })
}

/// A learned hook from its text columns (hook id, target type, target id, repository).
pub(crate) fn learned(
    hook_id: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    repository: Option<String>,
) -> Option<LearnedHook> {
    Some(LearnedHook {
        hook_id: hook_id?.trim().parse().ok()?,
        target_type,
        target_id: target_id.and_then(|v| v.trim().parse().ok()),
        repository,
    })
}

#[async_trait]
impl RecoveryStore for SqlStore {
    async fn create_run(&self, run: &RecoveryRun) -> Result<(), StoreError> {
        both!(self, s => s.create_run(run).await)
    }
    async fn save_run(&self, run: &RecoveryRun) -> Result<(), StoreError> {
        both!(self, s => s.save_run(run).await)
    }
    async fn get_run(&self, run_id: Uuid) -> Result<Option<RecoveryRun>, StoreError> {
        both!(self, s => s.get_run(run_id).await)
    }
    async fn list_runs(
        &self,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecoveryRun>, StoreError> {
        both!(self, s => s.list_runs(before, limit).await)
    }
    async fn open_run(&self) -> Result<Option<RecoveryRun>, StoreError> {
        both!(self, s => s.open_run().await)
    }
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        both!(self, s => s.last_success().await)
    }
    async fn known_deliveries(&self, guids: &[String]) -> Result<HashSet<String>, StoreError> {
        both!(self, s => s.known_deliveries(guids).await)
    }
    async fn learned_hooks(&self, since: DateTime<Utc>) -> Result<Vec<LearnedHook>, StoreError> {
        both!(self, s => s.learned_hooks(since).await)
    }
    async fn claim_redelivery(
        &self,
        intent: &RedeliveryIntent,
        not_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.claim_redelivery(intent, not_before).await)
    }
    async fn release_redelivery(&self, guid: &str, run_id: Uuid) -> Result<(), StoreError> {
        both!(self, s => s.release_redelivery(guid, run_id).await)
    }
    async fn try_lock_runner(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError> {
        both!(self, s => s.try_lock_runner(holder, ttl, now).await)
    }
}
