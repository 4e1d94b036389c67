//! [`AttemptStore`] on SQLite: claims, finish, leases, stale runnable tasks and agent runs
//! recorded on a task, each write inside a `BEGIN IMMEDIATE` transaction. The database queue
//! is the core's `StoreQueue` over it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::store::{
    AttemptStore, Claim, ExternalRun, Finish, FinishReport, QueueDepth,
};
use orchestrator_core::task::TaskStatus;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, insert_task, task, task_columns, time, us};
use crate::error::{lost_claim, store_error};
use crate::plan::{FinishPlan, claim_of, lease_expired_message, sort_claims};

const RECORD_RUN: &str = "UPDATE workflow_tasks SET codegen_task_id = $2, codegen_task_url = $3, \
    updated_at = $4 WHERE task_id = $1 \
    OR task_id = (SELECT parent_task_id FROM workflow_tasks WHERE task_id = $1) RETURNING task_id";

const STALE: &str = "SELECT task_id FROM workflow_tasks WHERE status IN ('pending', 'retrying') \
    AND run_at <= $2 AND updated_at < $1 ORDER BY updated_at, id LIMIT $3";

macro_rules! claim_sql {
    ($picked:literal) => {
        concat!(
            "UPDATE workflow_tasks SET status = 'running', attempts = attempts + 1, \
             started_at = COALESCE(started_at, $1), lease_owner = $3, lease_expires_at = $4, \
             updated_at = $1 WHERE id IN (",
            $picked,
            ") RETURNING ",
            task_columns!()
        )
    };
}

/// `INDEXED BY`: the planner would otherwise pick the status index and sort every runnable row.
const CLAIM: &str = claim_sql!(
    "SELECT id FROM workflow_tasks INDEXED BY workflow_tasks_runnable_idx \
     WHERE status IN ('pending', 'retrying') AND run_at <= $1 \
     ORDER BY priority DESC, run_at, id LIMIT $2"
);

const START: &str = claim_sql!(
    "SELECT id FROM workflow_tasks WHERE task_id = $2 AND status IN ('pending', 'retrying') \
     AND run_at <= $1"
);

const INSERT_EXECUTION: &str = "INSERT INTO task_executions (execution_id, task_id, attempt, \
    worker_id, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5)";

const EVENT_STARTED: &str = "UPDATE webhook_events SET processing_started_at = $2, updated_at = $2 \
    WHERE id = $1 AND processing_started_at IS NULL";

const FINISH_TASK: &str = "UPDATE workflow_tasks SET status = $4, lease_owner = NULL, \
    lease_expires_at = NULL, updated_at = $5, completed_at = CASE WHEN $6 THEN $5 ELSE completed_at END, \
    run_at = COALESCE($7, run_at), output_data = COALESCE($8, output_data), \
    error_message = CASE WHEN $9 THEN $10 ELSE error_message END, retry_count = retry_count + $11 \
    WHERE task_id = $1 AND status = 'running' AND lease_owner = $2 AND EXISTS (SELECT 1 FROM \
    task_executions x WHERE x.execution_id = $3 AND x.task_id = $1 AND x.status = 'running') \
    RETURNING webhook_event_id, run_at";

const CLOSE_EXECUTION: &str = "UPDATE task_executions SET status = $2, completed_at = $3, \
    duration_ms = MAX(0, ($3 - started_at) / 1000), error_message = $4 WHERE execution_id = $1";

/// Adds `$2` to the event's open tasks; when none is left, the event is processed and carries
/// the error of its first failed task.
const SETTLE: &str = "UPDATE webhook_events SET open_tasks = open_tasks + $2, \
    processed = (open_tasks + $2 = 0), \
    processing_completed_at = CASE WHEN open_tasks + $2 = 0 THEN $3 ELSE processing_completed_at END, \
    error_message = CASE WHEN open_tasks + $2 = 0 THEN (SELECT COALESCE(w.error_message, 'task failed') \
    FROM workflow_tasks w WHERE w.webhook_event_id = $1 AND w.status = 'failed' ORDER BY w.id LIMIT 1) \
    ELSE error_message END, updated_at = $3 WHERE id = $1";

const EXTEND: &str = "UPDATE workflow_tasks SET lease_expires_at = $4 WHERE task_id = $1 \
    AND status = 'running' AND lease_owner = $2 AND EXISTS (SELECT 1 FROM task_executions x \
    WHERE x.execution_id = $3 AND x.task_id = $1 AND x.status = 'running')";

const EXPIRED: &str = "SELECT task_id, lease_owner, retry_count, max_retries, webhook_event_id \
    FROM workflow_tasks WHERE status = 'running' AND lease_expires_at <= $1 ORDER BY id";

const EXPIRE_TASK: &str = "UPDATE workflow_tasks SET status = $2, retry_count = $3, \
    run_at = CASE WHEN $2 = 'retrying' THEN $4 ELSE run_at END, \
    completed_at = CASE WHEN $2 = 'failed' THEN $4 ELSE completed_at END, error_message = $5, \
    lease_owner = NULL, lease_expires_at = NULL, updated_at = $4 WHERE task_id = $1";

const ABANDON: &str = "UPDATE task_executions SET status = 'abandoned', completed_at = $2, \
    duration_ms = MAX(0, ($2 - started_at) / 1000), error_message = $3 \
    WHERE task_id = $1 AND status = 'running'";

/// Records the executions and event start of freshly claimed rows.
async fn start_rows(
    conn: &mut SqliteConnection,
    rows: &[SqliteRow],
    worker: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Claim>, StoreError> {
    let mut claims = Vec::with_capacity(rows.len());
    let mut events = Vec::new();
    for row in rows {
        let task = task(row)?;
        let execution_id = Uuid::now_v7();
        sqlx::query(INSERT_EXECUTION)
            .bind(execution_id)
            .bind(task.task_id)
            .bind(crate::plan::to_i32(task.attempts))
            .bind(worker)
            .bind(us(now))
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
        if let Some(event) = task.webhook_event_id.filter(|e| !events.contains(e)) {
            events.push(event);
        }
        claims.push(claim_of(task, execution_id, worker, until));
    }
    for event in events {
        sqlx::query(EVENT_STARTED)
            .bind(event)
            .bind(us(now))
            .execute(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    sort_claims(&mut claims);
    Ok(claims)
}

/// Adds `delta` open tasks to `event` and settles it when none is left.
pub(super) async fn settle(
    conn: &mut SqliteConnection,
    event: Option<i64>,
    delta: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(event) = event.filter(|_| delta != 0) else {
        return Ok(());
    };
    sqlx::query(SETTLE)
        .bind(event)
        .bind(delta)
        .bind(us(now))
        .execute(conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

impl SqliteStore {
    async fn claim_with(
        &self,
        sql: &'static str,
        second: Result<i64, Uuid>,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut tx = self.write().await?;
        let query = sqlx::query(sql).bind(us(now));
        let query = match second {
            Ok(limit) => query.bind(limit),
            Err(task_id) => query.bind(task_id),
        };
        let rows = query
            .bind(worker)
            .bind(us(until))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let claims = start_rows(&mut tx, &rows, worker, until, now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(claims)
    }

    pub(super) async fn start(
        &self,
        task_id: Uuid,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(self
            .claim_with(START, Err(task_id), worker, until, now)
            .await?
            .pop())
    }

    pub(super) async fn finish_claim(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        let plan = FinishPlan::new(finish, now);
        let mut tx = self.write().await?;
        let row = sqlx::query(FINISH_TASK)
            .bind(claim.task.task_id)
            .bind(&claim.worker_id)
            .bind(claim.execution_id)
            .bind(plan.status.as_str())
            .bind(us(now))
            .bind(plan.completed)
            .bind(plan.run_at.map(us))
            .bind(&plan.output)
            .bind(plan.set_error)
            .bind(&plan.error)
            .bind(plan.retry_inc)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Err(lost_claim(claim));
        };
        let event: Option<i64> = get(&row, "webhook_event_id")?;
        let run_at = time(get(&row, "run_at")?)?;
        sqlx::query(CLOSE_EXECUTION)
            .bind(claim.execution_id)
            .bind(plan.execution.as_str())
            .bind(us(now))
            .bind(&plan.execution_error)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        for followup in &plan.followups {
            insert_task(&mut tx, followup, event, Some(claim.task.task_id), now).await?;
        }
        settle(&mut tx, event, i64::from(plan.open_delta()), now).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(FinishReport {
            status: plan.status,
            run_at: plan.status.is_runnable().then_some(run_at),
            followups: plan.followups.iter().map(|t| t.task_id).collect(),
        })
    }

    pub(super) async fn extend(
        &self,
        claim: &Claim,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(EXTEND)
            .bind(claim.task.task_id)
            .bind(&claim.worker_id)
            .bind(claim.execution_id)
            .bind(us(until))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn expire(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(EXPIRED)
            .bind(us(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let mut runnable = Vec::new();
        for row in &rows {
            let task_id: Uuid = row.try_get(0).map_err(store_error)?;
            let owner: Option<String> = row.try_get(1).map_err(store_error)?;
            let retries: i64 = row.try_get(2).map_err(store_error)?;
            let max: i64 = row.try_get(3).map_err(store_error)?;
            let event: Option<i64> = row.try_get(4).map_err(store_error)?;
            let message = lease_expired_message(owner.as_deref().unwrap_or_default());
            let (status, retries) = if retries < max {
                (TaskStatus::Retrying, retries + 1)
            } else {
                (TaskStatus::Failed, retries)
            };
            sqlx::query(EXPIRE_TASK)
                .bind(task_id)
                .bind(status.as_str())
                .bind(retries)
                .bind(us(now))
                .bind(&message)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            sqlx::query(ABANDON)
                .bind(task_id)
                .bind(us(now))
                .bind(&message)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            if status == TaskStatus::Retrying {
                runnable.push(task_id);
            } else {
                settle(&mut tx, event, -1, now).await?;
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(runnable)
    }
}

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(RECORD_RUN)
            .bind(task_id)
            .bind(&run.id)
            .bind(&run.url)
            .bind(us(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Internal,
                format!("no task {task_id}"),
            ));
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    async fn claim_due(
        &self,
        worker: &str,
        max: usize,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.claim_with(CLAIM, Ok(limit), worker, lease_until, now)
            .await
    }

    async fn start_attempt(
        &self,
        task_id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        self.start(task_id, worker, lease_until, now).await
    }

    async fn finish_attempt(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        self.finish_claim(claim, finish, now).await
    }

    async fn extend_lease(
        &self,
        claim: &Claim,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.extend(claim, lease_until).await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        self.expire(now).await
    }

    async fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(STALE)
            .bind(us(stale_before))
            .bind(us(now))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(store_error))
            .collect()
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        self.count_depth(now).await
    }
}
