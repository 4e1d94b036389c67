//! [`AgentRunStore`] on SQLite: the agent-run ledger (`agent_runs`).
//!
//! Every write is one `BEGIN IMMEDIATE` transaction on the writer, so an admission's read of the
//! task's and the head's open intents and its insert cannot interleave with another writer's,
//! in this process or another.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::ExternalRun;
use orchestrator_core::store::agent_run::{
    Admission, AgentRunPolicy, AgentRunRecord, AgentRunStore, HeadRuns, RunIntent, Verdict, decide,
};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::rows::{get, time, us};
use crate::agent_run::{
    BY_TASK, CREATED, HEAD_OPEN, INSERT, NOT_CREATED, TASK_OPEN, parse_state, stale_intent,
};
use crate::error::store_error;
use crate::plan::{count, to_i32};

const UNRESOLVED: &str = "UPDATE agent_runs SET state = 'unresolved', note = $2, updated_at = $3 \
    WHERE intent_id = $1 AND state IN ('pending', 'unresolved') RETURNING task_id";

const MARKER: &str =
    "UPDATE workflow_tasks SET output_data = $2, updated_at = $3 WHERE task_id = $1";

/// An `agent_runs` row.
fn record(row: &SqliteRow) -> Result<AgentRunRecord, StoreError> {
    Ok(AgentRunRecord {
        intent_id: get(row, "intent_id")?,
        task_id: get(row, "task_id")?,
        attempt: count(get(row, "attempt")?),
        repository: get(row, "repository")?,
        pr_number: get(row, "pr_number")?,
        head_sha: get(row, "head_sha")?,
        forced: get(row, "forced")?,
        state: parse_state(&get::<String>(row, "state")?)?,
        run_id: get(row, "run_id")?,
        web_url: get(row, "web_url")?,
        note: get(row, "note")?,
        created_at: time(get(row, "created_at")?)?,
        updated_at: time(get(row, "updated_at")?)?,
    })
}

impl SqliteStore {
    /// Runs one ledger update in its own write transaction; a `Conflict` when it changed no row.
    async fn update_intent(
        &self,
        intent_id: Uuid,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let row = query.fetch_optional(&mut *tx).await.map_err(store_error)?;
        if row.is_none() {
            return Err(stale_intent(intent_id));
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl AgentRunStore for SqliteStore {
    async fn admit(
        &self,
        intent: &RunIntent,
        policy: &AgentRunPolicy,
        now: DateTime<Utc>,
    ) -> Result<Admission, StoreError> {
        let mut tx = self.write().await?;
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
                head = HeadRuns {
                    open: u64::try_from(get::<i64>(&row, "open")?).unwrap_or(0),
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
                    .bind(to_i32(new.attempt))
                    .bind(&new.repository)
                    .bind(new.pr_number)
                    .bind(&new.head_sha)
                    .bind(new.forced)
                    .bind(us(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                Admission::Admitted(new)
            }
        };
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(admission)
    }

    async fn record_created(
        &self,
        intent_id: Uuid,
        run: &ExternalRun,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(CREATED)
            .bind(intent_id)
            .bind(run.id.clone())
            .bind(run.url.clone())
            .bind(us(now));
        self.update_intent(intent_id, query).await
    }

    async fn record_not_created(
        &self,
        intent_id: Uuid,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(NOT_CREATED)
            .bind(intent_id)
            .bind(note.to_owned())
            .bind(us(now));
        self.update_intent(intent_id, query).await
    }

    async fn mark_unresolved(
        &self,
        intent_id: Uuid,
        note: &str,
        marker: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let task_id: Option<Uuid> = sqlx::query_scalar(UNRESOLVED)
            .bind(intent_id)
            .bind(note)
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(task_id) = task_id else {
            return Err(stale_intent(intent_id));
        };
        sqlx::query(MARKER)
            .bind(task_id)
            .bind(marker.to_string())
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    async fn agent_runs(&self, task_id: Uuid) -> Result<Vec<AgentRunRecord>, StoreError> {
        let rows = sqlx::query(BY_TASK)
            .bind(task_id)
            .fetch_all(&self.reader)
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
        let mut tx = self.write().await?;
        let done = sqlx::query(crate::agent_run::RELEASE_ENDED)
            .bind(task_id)
            .bind(run_id.to_owned())
            .bind(note.to_owned())
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.committed();
        Ok(done.rows_affected() > 0)
    }
}
