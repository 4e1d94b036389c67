//! Finding the run of an intent that has no run id, or stopping the task for a person.
//!
//! An intent is left without a run id when the worker died after sending the creation, or the
//! answer was lost. The run, if it exists, carries the task id and the intent id in its
//! `metadata`, so the agent's run list is searched for them among the runs created since the
//! intent ([`CodingAgent::find_run_by_metadata`]):
//! - found: the run is recorded and followed, as if the answer had arrived;
//! - not found while the intent is younger than `reconcile_grace`: looked for again later (the
//!   list may lag behind a creation);
//! - the list cannot be read now (5xx, rate limit, open breaker): looked for again later, until
//!   the intent is `reconcile_max_wait` old;
//! - otherwise (not found, inconclusive, not supported, refused): the intent becomes
//!   `unresolved` and the task fails with `"status": "needs_attention"` in its output and an
//!   `error_message` saying what happened, when, what to check, and that a manual retry creates
//!   a new run. No attempt is retried automatically; a run is never created blindly.
//!
//! [`CodingAgent::find_run_by_metadata`]: orchestrator_core::agent::CodingAgent::find_run_by_metadata

use std::time::Duration;

use orchestrator_core::agent::RunSearch;
use orchestrator_core::error::{ClientError, ClientErrorKind, TaskError};
use orchestrator_core::handler::{HandlerOutcome, TaskContext};
use orchestrator_core::store::agent_run::AgentRunRecord;
use serde_json::{Map, Value, json};

use super::codegen_trigger::{CodegenTrigger, INTENT_METADATA_KEY};

/// The `output_data` status of a task stopped for a person.
pub const NEEDS_ATTENTION: &str = "needs_attention";

impl CodegenTrigger {
    /// Looks for the run of `intent` (which has no run id) and adopts it, waits to look again,
    /// or stops the task for a person.
    pub(super) async fn reconcile(
        &self,
        ctx: &TaskContext,
        intent: AgentRunRecord,
    ) -> Result<HandlerOutcome, TaskError> {
        let mut metadata = Map::new();
        metadata.insert("task_id".into(), json!(ctx.task.task_id));
        metadata.insert(INTENT_METADATA_KEY.into(), json!(intent.intent_id));
        let age = (ctx.now - intent.created_at).to_std().unwrap_or_default();
        let found = self
            .agent
            .find_run_by_metadata(&metadata, intent.created_at)
            .await;
        let reason = match found {
            Ok(RunSearch::Found(run)) => {
                tracing::info!(task_id = %ctx.task.task_id, intent_id = %intent.intent_id, run_id = run.id,
                    "found the agent run whose creation answer was lost");
                self.observer.codegen_run("reconciled");
                return Ok(self.adopt(ctx, &intent, run).await);
            }
            Ok(RunSearch::NotFound) if age < self.config.reconcile_grace => {
                let after = (self.config.reconcile_grace - age).max(Duration::from_secs(1));
                return Err(TaskError::deferred(
                    after,
                    format!(
                        "no agent run carries intent {} yet; looking again",
                        intent.intent_id
                    ),
                ));
            }
            Ok(RunSearch::NotFound) => "no run created since then carries its metadata (the \
                request probably never reached Codegen, but that cannot be known for sure)"
                .to_owned(),
            Ok(RunSearch::Inconclusive(why)) => {
                format!("the search of Codegen's runs was inconclusive: {why}")
            }
            Ok(_) => "this coding agent cannot list its runs, so it cannot be looked up".to_owned(),
            Err(err) if err.is_retryable() && age < self.config.reconcile_max_wait => {
                return Err(TaskError::deferred(
                    self.lookup_delay(&err),
                    format!(
                        "looking up the agent run of intent {}: {err}; trying again",
                        intent.intent_id
                    ),
                ));
            }
            Err(err) => format!("Codegen's run list could not be read ({err})"),
        };
        self.needs_attention(ctx, &intent, &reason).await
    }

    /// How long to wait before reading the run list again after `err`.
    fn lookup_delay(&self, err: &ClientError) -> Duration {
        let wished = match err.kind() {
            ClientErrorKind::Retryable { retry_after }
            | ClientErrorKind::RateLimited { retry_after } => retry_after,
            ClientErrorKind::CircuitOpen { retry_after } => Some(retry_after),
            ClientErrorKind::Permanent | ClientErrorKind::NotConfigured => None,
        };
        wished
            .unwrap_or(self.config.poll_initial)
            .clamp(Duration::from_secs(1), self.config.poll_max)
    }

    /// Marks `intent` unresolved with the task's marker, and fails the task for good.
    async fn needs_attention(
        &self,
        ctx: &TaskContext,
        intent: &AgentRunRecord,
        reason: &str,
    ) -> Result<HandlerOutcome, TaskError> {
        let task_id = ctx.task.task_id;
        let at = intent.created_at.to_rfc3339();
        let message = format!(
            "needs attention: attempt {attempt} stored an intent to create a Codegen agent run at \
             {at} (intent {intent_id}), but no run id was recorded for it (the worker stopped, or \
             the answer was lost, after the request may have been sent); {reason}. Check the \
             Codegen organisation's agent runs created around {at} for one whose metadata has \
             task_id {task_id} (and agent_run_intent {intent_id}). If it exists, follow it in \
             Codegen and do not retry this task. If it does not, retry this task \
             (POST /api/v1/tasks/{task_id}/retry): that creates a new run, exactly one. \
             Nothing is retried automatically.",
            attempt = intent.attempt,
            intent_id = intent.intent_id,
        );
        let marker = json!({
            "status": NEEDS_ATTENTION,
            "reason": reason,
            "message": message,
            "intent_id": intent.intent_id,
            "intent_created_at": intent.created_at,
            "attempt": intent.attempt,
            "repository": intent.repository,
            "pr_number": intent.pr_number,
            "head_sha": intent.head_sha,
            "metadata": { "task_id": task_id, INTENT_METADATA_KEY: intent.intent_id },
        });
        // If this cannot be written, the error is retryable and the intent stays pending: the
        // next attempt looks again. Either way nothing is created.
        self.runs
            .mark_unresolved(intent.intent_id, reason, &marker, ctx.now)
            .await?;
        self.observer.codegen_run(NEEDS_ATTENTION);
        tracing::error!(task_id = %task_id, intent_id = %intent.intent_id, reason,
            "agent run creation unresolved; the task needs a person");
        Err(TaskError::permanent(message))
    }
}

/// Whether a task's `output_data` marks it as stopped for a person.
pub fn needs_attention(output: Option<&Value>) -> bool {
    output.and_then(|o| o.get("status")).and_then(Value::as_str) == Some(NEEDS_ATTENTION)
}
