//! Supersede and close on PostgreSQL (see `crate::supersede` for the statements and the
//! locking), on the caller's transaction: the ingest of the delivery that brings the update
//! ([`apply_pr_updates`], single and batch paths alike), or one of its own
//! ([`CancelStore`](orchestrator_core::store::cancel::CancelStore)).
//!
//! A batch (group commit, several committers at once) may touch several pull requests, so
//! before anything else its transaction takes a transaction-scoped advisory lock per pull
//! request, in one sorted order ([`lock_pull_requests`]): two batches touching the same pull
//! requests in different orders wait for each other instead of deadlocking on the head rows.
//!
//! The lock is shared or exclusive ([`PrLock`]). Most deliveries of a pull request bring the
//! head it already has, so their updates are "settled" (nothing to write). A transaction first
//! takes its locks shared and checks, once, that every update is settled ([`all_settled`]); then
//! such batches of one pull request commit side by side instead of one after the other. If one
//! is not, it rolls back and starts over with the locks exclusive: it waits for the shared
//! holders to commit (their tasks are then visible to it, so it supersedes them too) and they
//! wait for it (they then see its new head).

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::cancel::CancelOutcome;
use orchestrator_core::store::supersede::{
    Action, CLOSED_MESSAGE, KnownHead, OpenTask, PrUpdate, PrUpdateOutcome, SupersedeOutcome,
    SupersedeRequest, is_late, plan, plan_closed, superseded_message,
};
use orchestrator_core::task::NewTask;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use uuid::Uuid;

use super::PgStore;
use crate::error::store_error;
use crate::plan::{parse_status, parse_task_type};
use crate::supersede::{
    HEAD_INIT, HEAD_SET, MARK, NEWEST_OF, OPEN, RELEASE, ROLLBACK_TO, SAVEPOINT, SETTLED,
    stale_among,
};

const HEAD_LOCKED: &str = "SELECT head_sha, head_at FROM pull_request_heads \
    WHERE repository = $1 AND pr_number = $2 FOR UPDATE";

const LOCK_OPEN: &str = "SELECT id FROM workflow_tasks WHERE repository = $1 AND pr_number = $2 \
    AND status IN ('pending', 'retrying', 'running') ORDER BY id FOR UPDATE";

/// Takes the advisory locks of $1 (sorted, distinct keys), one row each, in array order.
const LOCK_KEYS: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS u(k)";

/// [`LOCK_KEYS`], shared.
const LOCK_KEYS_SHARED: &str =
    "SELECT pg_advisory_xact_lock_shared(k) FROM unnest($1::int8[]) AS u(k)";

/// How a transaction holds the advisory locks of its pull requests (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrLock {
    /// Only settled supersedes may be applied: many such transactions of one pull request run
    /// at once; an exclusive holder waits for them, and they for it.
    Shared,
    /// Any update.
    Exclusive,
}

fn open_task(row: &PgRow) -> Result<OpenTask, StoreError> {
    Ok(OpenTask {
        task_id: row.try_get("task_id").map_err(store_error)?,
        task_type: parse_task_type(row.try_get("task_type").map_err(store_error)?)?,
        status: parse_status(&row.try_get::<String, _>("status").map_err(store_error)?)?,
        commit_sha: row.try_get("commit_sha").map_err(store_error)?,
        has_parent: row.try_get("has_parent").map_err(store_error)?,
        has_run: row.try_get("has_run").map_err(store_error)?,
    })
}

/// Locks the open tasks of the pull request, then reads them.
async fn open_tasks(
    conn: &mut PgConnection,
    repository: &str,
    pr_number: i64,
) -> Result<Vec<OpenTask>, StoreError> {
    sqlx::query(LOCK_OPEN)
        .bind(repository)
        .bind(pr_number)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    let rows = sqlx::query(OPEN)
        .bind(repository)
        .bind(pr_number)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    rows.iter().map(open_task).collect()
}

/// The advisory-lock key of a pull request: FNV-1a (64 bits) of `owner/name`, then the
/// number; the same in every process (no random seed). A collision only serialises two pull
/// requests' updates.
fn lock_key(repository: &str, pr_number: i64) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in repository.bytes().chain([0]).chain(pr_number.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_le_bytes(hash.to_le_bytes())
}

/// Takes, in one sorted order, the transaction-scoped advisory lock of every pull request of
/// `pull_requests` (`owner/name`, number; nothing when there is none), held as `mode` says.
/// Called at the start of a transaction, before its inserts, so a transaction never waits for
/// one of these locks while holding another lock a holder of it may wait for.
pub(super) async fn lock_pull_requests<'a>(
    conn: &mut PgConnection,
    pull_requests: impl Iterator<Item = (&'a str, i64)>,
    mode: PrLock,
) -> Result<(), StoreError> {
    let mut keys: Vec<i64> = pull_requests
        .map(|(repository, pr_number)| lock_key(repository, pr_number))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    let sql = match mode {
        PrLock::Shared => LOCK_KEYS_SHARED,
        PrLock::Exclusive => LOCK_KEYS,
    };
    sqlx::query(sql)
        .bind(keys)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Whether every update of `updates` is a supersede with nothing to do ([`SETTLED`]), read
/// under the shared locks and before any of the batch's `tasks` is written (none of them may be
/// a task of an update's pull request at another SHA). True: the batch may commit under the
/// shared locks, its updates applied as settled without reading again (no exclusive holder can
/// move a head until it commits).
pub(super) async fn all_settled(
    conn: &mut PgConnection,
    updates: &[&PrUpdate],
    tasks: &[&NewTask],
) -> Result<bool, StoreError> {
    for update in updates {
        let PrUpdate::Supersede(request) = update else {
            return Ok(false);
        };
        if stale_among(&request.head, tasks) || !settled(conn, request).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The newest known head (locked), creating the row with `request`'s head when there is none
/// (`None`).
async fn known_head(
    conn: &mut PgConnection,
    request: &SupersedeRequest,
    now: DateTime<Utc>,
) -> Result<Option<KnownHead>, StoreError> {
    let head = &request.head;
    let inserted = sqlx::query(HEAD_INIT)
        .bind(&head.repository)
        .bind(head.pr_number)
        .bind(&head.head_sha)
        .bind(head.head_at)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?
        .rows_affected()
        == 1;
    if inserted {
        return Ok(None);
    }
    let row = sqlx::query(HEAD_LOCKED)
        .bind(&head.repository)
        .bind(head.pr_number)
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(Some(KnownHead {
        head_sha: row.try_get("head_sha").map_err(store_error)?,
        head_at: row.try_get("head_at").map_err(store_error)?,
    }))
}

/// Cancels the delivery's own new tasks of a late head (superseded by the newest head's task
/// of each type, when there is one).
async fn cancel_late(
    conn: &mut PgConnection,
    request: &SupersedeRequest,
    known: &KnownHead,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let head = &request.head;
    let mut cancelled = Vec::new();
    for (new_id, kind) in &request.new_tasks {
        let by: Option<Uuid> = sqlx::query_scalar(NEWEST_OF)
            .bind(&head.repository)
            .bind(head.pr_number)
            .bind(kind.as_str())
            .bind(&known.head_sha)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
        let Some(by) = by else { continue };
        let message = superseded_message(by, &known.head_sha);
        if let CancelOutcome::Cancelled(_) =
            PgStore::cancel_in(conn, *new_id, &message, Some(by), now).await?
        {
            cancelled.push(*new_id);
        }
    }
    Ok(cancelled)
}

/// One supersede on `conn`, inside the caller's transaction: one read when there is nothing
/// to do ([`SETTLED`]: the current head again, nothing open at another SHA).
pub(super) async fn supersede_on(
    conn: &mut PgConnection,
    request: &SupersedeRequest,
    now: DateTime<Utc>,
) -> Result<SupersedeOutcome, StoreError> {
    if settled(conn, request).await? {
        return Ok(SupersedeOutcome::default());
    }
    let head = &request.head;
    let known = known_head(conn, request, now).await?;
    let mut outcome = SupersedeOutcome::default();
    if let Some(known) = known.as_ref().filter(|k| is_late(Some(k), head)) {
        outcome.late = true;
        outcome.cancelled = cancel_late(conn, request, known, now).await?;
        return Ok(outcome);
    }
    if let Some(known) = &known {
        let head_at = if known.head_sha == head.head_sha {
            known.head_at.max(head.head_at)
        } else {
            head.head_at
        };
        sqlx::query(HEAD_SET)
            .bind(&head.repository)
            .bind(head.pr_number)
            .bind(&head.head_sha)
            .bind(head_at)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    let open = open_tasks(conn, &head.repository, head.pr_number).await?;
    for (task_id, action) in plan(request, &open) {
        match action {
            Action::Cancel { by } => {
                let message = superseded_message(by, &head.head_sha);
                if let CancelOutcome::Cancelled(_) =
                    PgStore::cancel_in(conn, task_id, &message, Some(by), now).await?
                {
                    outcome.cancelled.push(task_id);
                }
            }
            Action::Mark { by } => {
                sqlx::query(MARK)
                    .bind(task_id)
                    .bind(by)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(store_error)?;
                outcome.marked.push(task_id);
            }
        }
    }
    Ok(outcome)
}

/// Cancels a closed pull request's open work on `conn`, inside the caller's transaction.
pub(super) async fn close_on(
    conn: &mut PgConnection,
    repository: &str,
    pr_number: i64,
    message: &str,
    running: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let open = open_tasks(conn, repository, pr_number).await?;
    let mut cancelled = Vec::new();
    for task_id in plan_closed(&open, running) {
        if let CancelOutcome::Cancelled(_) =
            PgStore::cancel_in(conn, task_id, message, None, now).await?
        {
            cancelled.push(task_id);
        }
    }
    Ok(cancelled)
}

/// Applies a newly accepted delivery's pull-request updates on `conn`, inside its ingest
/// transaction (whose advisory locks [`lock_pull_requests`] took, as `mode`), each under a
/// savepoint: a failing update is rolled back alone and reported as
/// [`PrUpdateOutcome::Failed`], the delivery still commits. Only a failure of the savepoint
/// statements themselves (the transaction is gone) is an error. Under [`PrLock::Shared`] the
/// caller has found every update settled ([`all_settled`], under the lock): they are applied
/// as such, nothing read or written; `None` for an update that is not a supersede (the caller
/// then rolls back and starts over exclusively).
pub(super) async fn apply_pr_updates(
    conn: &mut PgConnection,
    updates: &[PrUpdate],
    now: DateTime<Utc>,
    mode: PrLock,
) -> Result<Option<Vec<PrUpdateOutcome>>, StoreError> {
    let mut outcomes = Vec::with_capacity(updates.len());
    for update in updates {
        if mode == PrLock::Shared {
            let PrUpdate::Supersede(_) = update else {
                return Ok(None);
            };
            outcomes.push(PrUpdateOutcome::Superseded(SupersedeOutcome::default()));
            continue;
        }
        // Inside the savepoint even when it only reads: a failed statement aborts a
        // PostgreSQL transaction until it is rolled back to a savepoint.
        run(conn, SAVEPOINT).await?;
        let applied = match update {
            PrUpdate::Supersede(request) => supersede_on(conn, request, now)
                .await
                .map(PrUpdateOutcome::Superseded),
            PrUpdate::Close(close) => close_on(
                conn,
                &close.repository,
                close.pr_number,
                CLOSED_MESSAGE,
                close.running,
                now,
            )
            .await
            .map(PrUpdateOutcome::Closed),
        };
        let outcome = match applied {
            Ok(outcome) => outcome,
            Err(err) => {
                run(conn, ROLLBACK_TO).await?;
                PrUpdateOutcome::Failed(err.to_string())
            }
        };
        run(conn, RELEASE).await?;
        outcomes.push(outcome);
    }
    Ok(Some(outcomes))
}

/// Whether `request` has nothing to do ([`SETTLED`]).
async fn settled(conn: &mut PgConnection, request: &SupersedeRequest) -> Result<bool, StoreError> {
    let row = sqlx::query(SETTLED)
        .bind(&request.head.repository)
        .bind(request.head.pr_number)
        .bind(&request.head.head_sha)
        .bind(request.head.head_at)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(row.is_some())
}

async fn run(conn: &mut PgConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

impl PgStore {
    /// One supersede in a transaction of its own.
    pub(super) async fn supersede_tx(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let pull_request = (request.head.repository.as_str(), request.head.pr_number);
        lock_pull_requests(&mut tx, std::iter::once(pull_request), PrLock::Exclusive).await?;
        let outcome = supersede_on(&mut tx, request, now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }

    /// Cancels a closed pull request's open work in a transaction of its own.
    pub(super) async fn close_tx(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        lock_pull_requests(
            &mut tx,
            std::iter::once((repository, pr_number)),
            PrLock::Exclusive,
        )
        .await?;
        let cancelled = close_on(&mut tx, repository, pr_number, message, running, now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(cancelled)
    }
}
