//! [`AttemptStore`] on PostgreSQL: claim with `FOR UPDATE SKIP LOCKED`, finish, leases, stale
//! runnable tasks and agent runs recorded on a task. The database queue is the core's
//! `StoreQueue` over it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::store::{
    AttemptStore, Claim, ExternalRun, Finish, FinishReport, QueueDepth,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::rows::{bind_tasks, insert_tasks, task};
use crate::error::{lost_claim, store_error};
use crate::plan::{FinishPlan, claim_of, sort_claims};

const RECORD_RUN: &str = "UPDATE workflow_tasks SET codegen_task_id = $2, codegen_task_url = $3, \
    updated_at = $4 WHERE task_id = $1 \
    OR task_id = (SELECT parent_task_id FROM workflow_tasks WHERE task_id = $1) RETURNING task_id";

const STALE: &str = "SELECT task_id FROM workflow_tasks WHERE status IN ('pending', 'retrying') \
    AND run_at <= $2 AND updated_at < $1 ORDER BY updated_at, id LIMIT $3";

/// Claims the rows that `picked` selects and locks: $1 now, $3 worker, $4 lease expiry.
macro_rules! claim_sql {
    ($picked:literal) => {
        concat!(
            "WITH picked AS (", $picked, "), \
             claimed AS (UPDATE workflow_tasks t SET status = 'running', attempts = t.attempts + 1, \
             started_at = COALESCE(t.started_at, $1), lease_owner = $3, lease_expires_at = $4, \
             updated_at = $1 FROM picked WHERE t.id = picked.id RETURNING t.*), \
             execs AS (INSERT INTO task_executions (execution_id, task_id, attempt, worker_id, status, \
             started_at) SELECT gen_random_uuid(), task_id, attempts, $3, 'running', $1 FROM claimed \
             RETURNING execution_id, task_id), \
             started AS (UPDATE webhook_events SET processing_started_at = $1, updated_at = $1 \
             WHERE id IN (SELECT e.id FROM webhook_events e WHERE e.id IN \
             (SELECT webhook_event_id FROM claimed) AND e.processing_started_at IS NULL \
             FOR UPDATE SKIP LOCKED)) \
             SELECT c.*, x.execution_id AS claim_execution_id FROM claimed c JOIN execs x USING (task_id)"
        )
    };
}

/// Due runnable tasks in claim order through the partial index; $2 how many.
const CLAIM: &str = claim_sql!(
    "SELECT id FROM workflow_tasks WHERE status IN ('pending', 'retrying') AND run_at <= $1 \
     ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
);

/// One task by id ($2), if it is runnable and due.
const START: &str = claim_sql!(
    "SELECT id FROM workflow_tasks WHERE task_id = $2 AND status IN ('pending', 'retrying') \
     AND run_at <= $1 FOR UPDATE SKIP LOCKED"
);

/// Ends the attempt of claim ($14 task, $15 worker, $16 execution) in one statement; the
/// follow-up CTE (`f`) is left out when there are none.
macro_rules! finish_sql {
    ($followups:expr) => {
        concat!(
    "WITH t AS (UPDATE workflow_tasks SET status = $17, lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = $18, completed_at = CASE WHEN $19 THEN $18 ELSE completed_at END, \
     run_at = COALESCE($20, run_at), output_data = COALESCE($21::jsonb, output_data), \
     error_message = CASE WHEN $22 THEN $23 ELSE error_message END, \
     retry_count = retry_count + $24 \
     WHERE task_id = $14 AND status = 'running' AND lease_owner = $15 AND EXISTS \
     (SELECT 1 FROM task_executions x WHERE x.execution_id = $16 AND x.task_id = $14 \
     AND x.status = 'running') RETURNING id, webhook_event_id, run_at), \
     x AS (UPDATE task_executions SET status = $25, completed_at = $18, \
     duration_ms = GREATEST(0, floor(extract(epoch FROM ($18 - started_at)) * 1000))::bigint, \
     error_message = $26 WHERE execution_id = $16 AND EXISTS (SELECT 1 FROM t)), \
     ",
        $followups,
        "e AS (UPDATE webhook_events ev SET open_tasks = ev.open_tasks + $27, \
     processed = (ev.open_tasks + $27 = 0), \
     processing_completed_at = CASE WHEN ev.open_tasks + $27 = 0 THEN $18 \
     ELSE ev.processing_completed_at END, \
     error_message = CASE WHEN ev.open_tasks + $27 = 0 THEN (SELECT CASE WHEN w.id = t.id THEN $28 \
     ELSE COALESCE(w.error_message, 'task failed') END FROM workflow_tasks w \
     WHERE w.webhook_event_id = ev.id AND ((w.status = 'failed' AND w.id <> t.id) \
     OR (w.id = t.id AND $28::text IS NOT NULL)) ORDER BY w.id LIMIT 1) \
     ELSE ev.error_message END, updated_at = $18 \
     FROM t WHERE ev.id = t.webhook_event_id AND $27 <> 0) \
     SELECT run_at FROM t"

        )
    };
}

const FINISH: &str = finish_sql!("");

const FINISH_WITH_FOLLOWUPS: &str = finish_sql!(concat!(
    "f AS (",
    insert_tasks!("t.webhook_event_id", "$14::uuid", "$18", "t"),
    "), "
));

const EXTEND: &str = "UPDATE workflow_tasks SET lease_expires_at = $4 WHERE task_id = $1 \
    AND status = 'running' AND lease_owner = $2 AND EXISTS (SELECT 1 FROM task_executions x \
    WHERE x.execution_id = $3 AND x.task_id = $1 AND x.status = 'running')";

const EXPIRE: &str = "WITH exp AS (SELECT id FROM workflow_tasks WHERE status = 'running' \
     AND lease_expires_at <= $1 ORDER BY id FOR UPDATE SKIP LOCKED), \
     t AS (UPDATE workflow_tasks w SET \
     status = CASE WHEN w.retry_count < w.max_retries THEN 'retrying' ELSE 'failed' END, \
     retry_count = CASE WHEN w.retry_count < w.max_retries THEN w.retry_count + 1 \
     ELSE w.retry_count END, \
     run_at = CASE WHEN w.retry_count < w.max_retries THEN $1 ELSE w.run_at END, \
     completed_at = CASE WHEN w.retry_count < w.max_retries THEN w.completed_at ELSE $1 END, \
     error_message = 'lease of worker ' || COALESCE(w.lease_owner, '') \
     || ' expired before it reported back', \
     lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
     FROM exp WHERE w.id = exp.id \
     RETURNING w.id, w.task_id, w.status, w.webhook_event_id, w.error_message), \
     x AS (UPDATE task_executions e SET status = 'abandoned', completed_at = $1, \
     duration_ms = GREATEST(0, floor(extract(epoch FROM ($1 - e.started_at)) * 1000))::bigint, \
     error_message = t.error_message FROM t WHERE e.task_id = t.task_id AND e.status = 'running'), \
     closed AS (SELECT webhook_event_id, count(*)::int4 AS n, min(id) AS first_failed FROM t \
     WHERE status = 'failed' AND webhook_event_id IS NOT NULL GROUP BY webhook_event_id), \
     settle AS (UPDATE webhook_events ev SET open_tasks = ev.open_tasks - c.n, \
     processed = (ev.open_tasks - c.n = 0), \
     processing_completed_at = CASE WHEN ev.open_tasks - c.n = 0 THEN $1 \
     ELSE ev.processing_completed_at END, \
     error_message = CASE WHEN ev.open_tasks - c.n = 0 THEN COALESCE((SELECT w.error_message \
     FROM workflow_tasks w WHERE w.webhook_event_id = ev.id AND w.status = 'failed' \
     AND w.id < c.first_failed ORDER BY w.id LIMIT 1), \
     (SELECT t.error_message FROM t WHERE t.id = c.first_failed)) ELSE ev.error_message END, \
     updated_at = $1 FROM closed c WHERE ev.id = c.webhook_event_id) \
     SELECT task_id FROM t WHERE status = 'retrying' ORDER BY id";

fn claims(rows: &[PgRow], worker: &str, until: DateTime<Utc>) -> Result<Vec<Claim>, StoreError> {
    let mut claims = rows
        .iter()
        .map(|row| {
            let execution_id: Uuid = row.try_get("claim_execution_id").map_err(store_error)?;
            Ok(claim_of(task(row)?, execution_id, worker, until))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    sort_claims(&mut claims);
    Ok(claims)
}

impl PgStore {
    pub(super) async fn start(
        &self,
        task_id: Uuid,
        worker: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, StoreError> {
        let rows = sqlx::query(START)
            .bind(now)
            .bind(task_id)
            .bind(worker)
            .bind(until)
            .fetch_all(self.queue())
            .await
            .map_err(store_error)?;
        Ok(claims(&rows, worker, until)?.pop())
    }

    pub(super) async fn finish_claim(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        let plan = FinishPlan::new(finish, now);
        let sql = if plan.followups.is_empty() {
            FINISH
        } else {
            FINISH_WITH_FOLLOWUPS
        };
        let row = bind_tasks(sqlx::query(sql), &plan.followups)
            .bind(claim.task.task_id)
            .bind(&claim.worker_id)
            .bind(claim.execution_id)
            .bind(plan.status.as_str())
            .bind(now)
            .bind(plan.completed)
            .bind(plan.run_at)
            .bind(&plan.output)
            .bind(plan.set_error)
            .bind(&plan.error)
            .bind(plan.retry_inc)
            .bind(plan.execution.as_str())
            .bind(&plan.execution_error)
            .bind(plan.open_delta())
            .bind(plan.failed_error())
            .fetch_optional(self.queue())
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Err(lost_claim(claim));
        };
        let run_at: DateTime<Utc> = row.try_get(0).map_err(store_error)?;
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
        let done = sqlx::query(EXTEND)
            .bind(claim.task.task_id)
            .bind(&claim.worker_id)
            .bind(claim.execution_id)
            .bind(until)
            .execute(self.queue())
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn expire(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(EXPIRE)
            .bind(now)
            .fetch_all(self.queue())
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(store_error))
            .collect()
    }
}

#[async_trait]
impl AttemptStore for PgStore {
    async fn record_external_run(
        &self,
        task_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rows = sqlx::query(RECORD_RUN)
            .bind(task_id)
            .bind(&run.id)
            .bind(&run.url)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Internal,
                format!("no task {task_id}"),
            ));
        }
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
        let rows = sqlx::query(CLAIM)
            .bind(now)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(worker)
            .bind(lease_until)
            .fetch_all(self.queue())
            .await
            .map_err(store_error)?;
        claims(&rows, worker, lease_until)
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
            .bind(stale_before)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
