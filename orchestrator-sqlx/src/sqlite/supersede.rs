//! Supersede and close on SQLite (see `crate::supersede` for the statements), on the caller's
//! `BEGIN IMMEDIATE` write transaction, so nothing interleaves with it: the ingest of the
//! delivery that brings the update ([`apply_pr_updates`], single and batch paths alike), or a
//! transaction of its own ([`CancelStore`](orchestrator_core::store::cancel::CancelStore)).

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::cancel::CancelOutcome;
use orchestrator_core::store::supersede::{
    Action, CLOSED_MESSAGE, KnownHead, OpenTask, PrUpdate, PrUpdateOutcome, SupersedeOutcome,
    SupersedeRequest, is_late, plan, plan_closed, superseded_message,
};
use orchestrator_core::task::NewTask;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, time, us};
use crate::error::store_error;
use crate::plan::{parse_status, parse_task_type};
use crate::supersede::{
    HEAD, HEAD_INIT, HEAD_SET, MARK, NEWEST_OF, OPEN, RELEASE, ROLLBACK_TO, SAVEPOINT, SETTLED,
    stale_among,
};

fn open_task(row: &SqliteRow) -> Result<OpenTask, StoreError> {
    Ok(OpenTask {
        task_id: get(row, "task_id")?,
        task_type: parse_task_type(get(row, "task_type")?)?,
        status: parse_status(&get::<String>(row, "status")?)?,
        commit_sha: get(row, "commit_sha")?,
        has_parent: get(row, "has_parent")?,
        has_run: get(row, "has_run")?,
    })
}

async fn open_tasks(
    conn: &mut SqliteConnection,
    repository: &str,
    pr_number: i64,
) -> Result<Vec<OpenTask>, StoreError> {
    let rows = sqlx::query(OPEN)
        .bind(repository)
        .bind(pr_number)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    rows.iter().map(open_task).collect()
}

/// The newest known head, creating the row with `request`'s head when there is none (`None`).
async fn known_head(
    conn: &mut SqliteConnection,
    request: &SupersedeRequest,
    now: DateTime<Utc>,
) -> Result<Option<KnownHead>, StoreError> {
    let head = &request.head;
    let inserted = sqlx::query(HEAD_INIT)
        .bind(&head.repository)
        .bind(head.pr_number)
        .bind(&head.head_sha)
        .bind(us(head.head_at))
        .bind(us(now))
        .execute(&mut *conn)
        .await
        .map_err(store_error)?
        .rows_affected()
        == 1;
    if inserted {
        return Ok(None);
    }
    let row = sqlx::query(HEAD)
        .bind(&head.repository)
        .bind(head.pr_number)
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(Some(KnownHead {
        head_sha: get(&row, "head_sha")?,
        head_at: time(get(&row, "head_at")?)?,
    }))
}

/// Cancels the delivery's own new tasks of a late head (superseded by the newest head's task
/// of each type, when there is one).
async fn cancel_late(
    conn: &mut SqliteConnection,
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
            SqliteStore::cancel_in(conn, *new_id, &message, Some(by), now).await?
        {
            cancelled.push(*new_id);
        }
    }
    Ok(cancelled)
}

/// One supersede on `conn`, inside the caller's write transaction.
pub(super) async fn supersede_on(
    conn: &mut SqliteConnection,
    request: &SupersedeRequest,
    now: DateTime<Utc>,
) -> Result<SupersedeOutcome, StoreError> {
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
            .bind(us(head_at))
            .bind(us(now))
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
                    SqliteStore::cancel_in(conn, task_id, &message, Some(by), now).await?
                {
                    outcome.cancelled.push(task_id);
                }
            }
            Action::Mark { by } => {
                sqlx::query(MARK)
                    .bind(task_id)
                    .bind(by)
                    .bind(us(now))
                    .execute(&mut *conn)
                    .await
                    .map_err(store_error)?;
                outcome.marked.push(task_id);
            }
        }
    }
    Ok(outcome)
}

/// Cancels a closed pull request's open work on `conn`, inside the caller's write transaction.
pub(super) async fn close_on(
    conn: &mut SqliteConnection,
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
            SqliteStore::cancel_in(conn, task_id, message, None, now).await?
        {
            cancelled.push(task_id);
        }
    }
    Ok(cancelled)
}

/// Applies a newly accepted delivery's pull-request updates on `conn`, inside its ingest
/// transaction, each under a savepoint: a failing update is rolled back alone and reported as
/// [`PrUpdateOutcome::Failed`], the delivery still commits. Only a failure of the savepoint
/// statements themselves (the transaction is gone) is an error. A supersede with nothing to do
/// ([`SETTLED`]: the current head again, nothing open at another SHA) is one read, without a
/// savepoint (a failed read changes nothing in a SQLite transaction).
pub(super) async fn apply_pr_updates(
    conn: &mut SqliteConnection,
    updates: &[PrUpdate],
    now: DateTime<Utc>,
) -> Result<Vec<PrUpdateOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(updates.len());
    for update in updates {
        if let PrUpdate::Supersede(request) = update {
            match settled(conn, request).await {
                Ok(true) => {
                    outcomes.push(PrUpdateOutcome::Superseded(SupersedeOutcome::default()));
                    continue;
                }
                Ok(false) => {}
                // Nothing was written: there is nothing to roll back.
                Err(err) => {
                    outcomes.push(PrUpdateOutcome::Failed(err.to_string()));
                    continue;
                }
            }
        }
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
    Ok(outcomes)
}

/// Whether every update of a batch's delivery has nothing to do, checked *before* the tasks
/// waiting in `unwritten` (the batch's tasks not inserted yet, the delivery's own excluded) are
/// written: true only when each update is a supersede that [`SETTLED`] finds settled and none
/// of `unwritten` is a task of its pull request at another SHA (which the check would have
/// seen had it been written). Then the batch need not write its tasks before it, so they stay
/// one multi-row insert; any failure answers false (the full path then runs and reports it).
pub(super) async fn all_settled(
    conn: &mut SqliteConnection,
    updates: &[PrUpdate],
    unwritten: &[&NewTask],
) -> bool {
    for update in updates {
        let PrUpdate::Supersede(request) = update else {
            return false;
        };
        if stale_among(&request.head, unwritten)
            || !matches!(settled(conn, request).await, Ok(true))
        {
            return false;
        }
    }
    true
}

/// Whether `request` has nothing to do ([`SETTLED`]).
async fn settled(
    conn: &mut SqliteConnection,
    request: &SupersedeRequest,
) -> Result<bool, StoreError> {
    let row = sqlx::query(SETTLED)
        .bind(&request.head.repository)
        .bind(request.head.pr_number)
        .bind(&request.head.head_sha)
        .bind(us(request.head.head_at))
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(row.is_some())
}

async fn run(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

impl SqliteStore {
    /// One supersede in a write transaction of its own.
    pub(super) async fn supersede_tx(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
    ) -> Result<SupersedeOutcome, StoreError> {
        let mut tx = self.write().await?;
        let outcome = supersede_on(&mut tx, request, now).await?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(outcome)
    }

    /// Cancels a closed pull request's open work in a write transaction of its own.
    pub(super) async fn close_tx(
        &self,
        repository: &str,
        pr_number: i64,
        message: &str,
        running: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let cancelled = close_on(&mut tx, repository, pr_number, message, running, now).await?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(cancelled)
    }
}
