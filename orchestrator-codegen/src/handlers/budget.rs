//! The agent budget in `codegen_trigger`: a slot is taken right before the agent-run ledger
//! stores an intent, so a task over budget waits (a deferral: no attempt used, the execution
//! recorded `deferred` with the reason) and never holds an intent while it waits.
//!
//! While it waits, the task's `output_data` carries [`BUDGET_OUTPUT_KEY`] (the scope, the time
//! the slot frees and the task's `retry_count` then), merged into what was there (an ended
//! run's history stays), so the report on the pull request can say "waiting for the agent
//! budget until T". A later deferral for another reason removes it; a finished attempt
//! replaces the output anyway.
//!
//! A slot taken for a creation that the ledger then refuses (the head has its run, the task was
//! cancelled, an intent was open after all) is given back. When the budget cannot be read
//! (Redis down) the task waits too: a run is never created past an unknown budget.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use orchestrator_core::budget::{BudgetDecision, BudgetPermit, BudgetScope};
use orchestrator_core::error::{TaskError, TaskErrorKind};
use orchestrator_core::handler::TaskContext;
use serde_json::{Value, json};

use super::codegen_trigger::CodegenTrigger;

/// The `output_data` key of a task waiting for the agent budget.
pub use orchestrator_core::budget::OUTPUT_KEY as BUDGET_OUTPUT_KEY;

/// How long a task waits when the budget could not be read.
const UNREADABLE_WAIT: Duration = Duration::from_secs(30);

impl CodegenTrigger {
    /// Takes a budget slot for a new run creation: `Ok(None)` when no slot is needed (no rate
    /// configured, or the task has an open intent, which is resumed, never created again),
    /// `Err` (a deferral) when the budget is used up or unreadable.
    pub(super) async fn take_budget(
        &self,
        ctx: &TaskContext,
    ) -> Result<Option<BudgetPermit>, TaskError> {
        let config = self.budget.config();
        if config.global_window().is_none() && config.repo_window().is_none() {
            return Ok(None);
        }
        let runs = self.runs.agent_runs(ctx.task.task_id).await?;
        if runs.iter().any(|r| r.state.is_open()) {
            return Ok(None);
        }
        match self
            .budget
            .acquire(ctx.task.repository.as_deref(), ctx.now)
            .await
        {
            Ok(BudgetDecision::Granted(permit)) => Ok(Some(permit)),
            Ok(wait @ BudgetDecision::Wait { scope, until }) => {
                self.observer.agent_budget_deferral(scope.as_str());
                let message = self.over_budget_message(scope, until);
                tracing::info!(task_id = %ctx.task.task_id, scope = scope.as_str(), %until,
                    "agent run waits for the agent budget");
                let after = wait.wait(ctx.now).max(Duration::from_secs(1));
                Err(TaskError::deferred(after, message).with_output(marker(ctx, scope, until)))
            }
            Err(err) => {
                tracing::warn!(task_id = %ctx.task.task_id, error = %err,
                    "the agent budget could not be read; the run creation waits");
                Err(TaskError::deferred(
                    UNREADABLE_WAIT,
                    format!("the agent budget could not be read ({err}); trying again"),
                ))
            }
        }
    }

    /// Gives back a slot whose creation asked for no run (best effort: a slot not given back
    /// frees with its window).
    pub(super) async fn give_back(&self, ctx: &TaskContext, permit: Option<BudgetPermit>) {
        let Some(permit) = permit else {
            return;
        };
        if let Err(err) = self.budget.release(&permit).await {
            tracing::warn!(task_id = %ctx.task.task_id, error = %err,
                "could not give an unused agent budget slot back; it frees with its window");
        }
    }

    fn over_budget_message(&self, scope: BudgetScope, until: DateTime<Utc>) -> String {
        let config = self.budget.config();
        let limit = match scope {
            BudgetScope::Global => format!(
                "{} run creation(s) per minute",
                config.per_minute.unwrap_or_default()
            ),
            BudgetScope::Repository => format!(
                "{} run creation(s) per repository per hour",
                config.per_repo_per_hour.unwrap_or_default()
            ),
        };
        format!(
            "waiting for the agent budget ({} limit of {limit}) until {}",
            scope.as_str(),
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// The task's output with the budget marker added.
fn marker(ctx: &TaskContext, scope: BudgetScope, until: DateTime<Utc>) -> Value {
    let mut output = match ctx.task.output_data.clone() {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    output.insert(
        BUDGET_OUTPUT_KEY.to_owned(),
        json!({
            "scope": scope.as_str(),
            "until": until,
            "retry_count": ctx.task.retry_count,
        }),
    );
    Value::Object(output)
}

/// A deferral for another reason than the budget no longer shows the budget's wait: the
/// marker is removed from the output it stores.
pub(super) fn clear_stale_marker(ctx: &TaskContext, mut err: TaskError) -> TaskError {
    let deferred = matches!(err.kind, TaskErrorKind::Deferred { .. });
    if !deferred || err.output.is_some() {
        return err;
    }
    if let Some(Value::Object(map)) = &ctx.task.output_data
        && map.contains_key(BUDGET_OUTPUT_KEY)
    {
        let mut map = map.clone();
        map.remove(BUDGET_OUTPUT_KEY);
        err.output = Some(Value::Object(map));
    }
    err
}
