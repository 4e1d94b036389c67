//! [`AgentRunStore`] on PostgreSQL: the agent-run ledger (`agent_runs`).
//!
//! Admission is one transaction on the durable pool (the intent must be on disk before the run
//! is requested): a transaction-scoped advisory lock on the intent's pull-request head (or on
//! the task when the head is unknown) serialises every admission that could conflict, across
//! processes; under it the task's open intent and the head's open intents are read, the core's
//! [`decide`] applies the policy, and an admitted intent is inserted. Two workers racing for the
//! same head SHA therefore never both get `Admitted` when the limit is one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::ExternalRun;
use orchestrator_core::store::agent_run::{
    Admission, AgentRunPolicy, AgentRunRecord, AgentRunStore, HeadRuns, RunIntent, Verdict, decide,
};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use crate::agent_run::{
    BY_TASK, CREATED, HEAD_OPEN, INSERT, NOT_CREATED, TASK_OPEN, lock_key, parse_state,
    stale_intent,
};
use crate::error::store_error;

const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// The intent and its task's marker in one statement.
const UNRESOLVED: &str = "WITH r AS (UPDATE agent_runs SET state = 'unresolved', note = $2, \
    updated_at = $4 WHERE intent_id = $1 AND state IN ('pending', 'unresolved') RETURNING task_id), \
    t AS (UPDATE workflow_tasks w SET output_data = $3::jsonb, updated_at = $4 FROM r \
    WHERE w.task_id = r.task_id) SELECT count(*) FROM r";

/// An `agent_runs` row.
fn record(row: &PgRow) -> Result<AgentRunRecord, StoreError> {
    let get = |e| store_error(e);
    Ok(AgentRunRecord {
        intent_id: row.try_get("intent_id").map_err(get)?,
        task_id: row.try_get("task_id").map_err(get)?,
        attempt: u32::try_from(row.try_get::<i32, _>("attempt").map_err(get)?).unwrap_or(0),
        repository: row.try_get("repository").map_err(get)?,
        pr_number: row.try_get("pr_number").map_err(get)?,
        head_sha: row.try_get("head_sha").map_err(get)?,
        forced: row.try_get("forced").map_err(get)?,
        state: parse_state(&row.try_get::<String, _>("state").map_err(get)?)?,
        run_id: row.try_get("run_id").map_err(get)?,
        web_url: row.try_get("web_url").map_err(get)?,
        note: row.try_get("note").map_err(get)?,
        created_at: row.try_get("created_at").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

#[async_trait]
impl AgentRunStore for PgStore {
    async fn admit(
        &self,
        intent: &RunIntent,
        policy: &AgentRunPolicy,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(LOCK)
            .bind(lock_key(intent))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let task_open = sqlx::query(TASK_OPEN)
            .bind(intent.task_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?
            .as_ref()
            .map(record)
            .transpose()?;
        let mut head = HeadRuns::default();
        if let Some((repository, pr, sha)) = intent.head() {
            let row = sqlx::query(HEAD_OPEN)
                .bind(repository)
                .bind(pr)
                .bind(sha)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
            if let Some(row) = row {
                let open: i64 = row.try_get("open").map_err(store_error)?;
                head = HeadRuns {
                    open: u64::try_from(open).unwrap_or(0),
                    latest: Some(record(&row)?),
                };
            }
        }
        let admission = match decide(task_open, head, intent, policy) {
            Verdict::Resume(open) => Admission::Resume(open),
            Verdict::Refuse(refusal) => Admission::Refused(refusal),
            Verdict::Admit => {
                let new = AgentRunRecord::pending(intent, now);
                sqlx::query(INSERT)
                    .bind(new.intent_id)
                    .bind(new.task_id)
                    .bind(i32::try_from(new.attempt).unwrap_or(i32::MAX))
                    .bind(&new.repository)
                    .bind(new.pr_number)
                    .bind(&new.head_sha)
                    .bind(new.forced)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                Admission::Admitted(new)
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(admission)
    }

    async fn record_created(
        &self,
        intent_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(CREATED)
            .bind(intent_id)
            .bind(&run.id)
            .bind(&run.url)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(|_| ()).ok_or_else(|| stale_intent(intent_id))
    }

    async fn record_not_created(
        &self,
        intent_id: Uuid,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(NOT_CREATED)
            .bind(intent_id)
            .bind(note)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(|_| ()).ok_or_else(|| stale_intent(intent_id))
    }

    async fn mark_unresolved(
        &self,
        intent_id: Uuid,
        note: &str,
        marker: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let changed: i64 = sqlx::query_scalar(UNRESOLVED)
            .bind(intent_id)
            .bind(note)
            .bind(marker.to_string())
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        if changed == 0 {
            return Err(stale_intent(intent_id));
        }
        Ok(())
    }

    async fn agent_runs(&self, task_id: Uuid) -> Result<Vec<AgentRunRecord>, StoreError> {
        let rows = sqlx::query(BY_TASK)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(record).collect()
    }

    async fn release_ended_run(
        &self,
        task_id: Uuid,
        run_id: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(crate::agent_run::RELEASE_ENDED)
            .bind(task_id)
            .bind(run_id)
            .bind(note)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }
}
