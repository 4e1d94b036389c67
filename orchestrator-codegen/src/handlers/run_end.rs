//! How a followed agent run ends for its `codegen_trigger` task, and asking again after an
//! operator's retry.
//!
//! When a read shows the run has ended:
//! - a status in `run_failure_statuses` (`CODEGEN_FAILURE_STATUSES`; ERROR, FAILED, TIMEOUT,
//!   MAX_ITERATIONS_REACHED, OUT_OF_TOKENS by default, compared case-insensitively): the task
//!   ends `failed` with the agent's status and result in `error_message`, and no automatic
//!   retry (each run costs money);
//! - stopped by a person (CANCELLED, STOPPED): the task ends `cancelled`;
//! - any other end (COMPLETE, or a failure status left out of the list): `completed`.
//!
//! The output of every end is the same shape (`status`, `run_id`, `agent_status`, `result`, ...).
//! A manual retry (`POST /api/v1/tasks/{task_id}/retry`) of a task whose run ended `failed` or
//! `cancelled` runs the handler again with that output still in `output_data`: the run is not
//! followed again; its intent in the agent-run ledger is released
//! ([`AgentRunStore::release_ended_run`]) and exactly one new run is asked for through the
//! ledger as usual. The earlier runs are kept, oldest first, in the output's `history`.
//!
//! [`AgentRunStore::release_ended_run`]: orchestrator_core::store::agent_run::AgentRunStore::release_ended_run

use orchestrator_core::agent::{AgentRun, RunOutcome};
use orchestrator_core::error::TaskError;
use orchestrator_core::handler::{HandlerOutcome, TaskContext};
use serde_json::{Value, json};

use super::codegen_trigger::{CodegenTrigger, Progress, final_output};

/// The output `status` of a run that ended in a failure status (the task is `failed`).
pub const RUN_FAILED: &str = "failed";
/// The output `status` of a run a person stopped (the task is `cancelled`).
pub const RUN_CANCELLED: &str = "cancelled";
/// At most this many characters of the agent's result go into `error_message` (all of it is in
/// `output_data`).
const RESULT_IN_ERROR_CHARS: usize = 500;

/// The run a previous attempt of this task saw end without success (`failed` or `cancelled` in
/// its output): the task was retried by an operator, who asks for a new run.
pub(super) fn ended_run(output: Option<&Value>) -> Option<i64> {
    let output = output?;
    let status = output.get("status")?.as_str()?;
    if status != RUN_FAILED && status != RUN_CANCELLED {
        return None;
    }
    output.get("run_id")?.as_i64()
}

/// The earlier runs of the task, oldest first: the `history` of its output, plus the output's
/// own run when that run has ended.
pub(super) fn history(output: Option<&Value>) -> Vec<Value> {
    let Some(output) = output else {
        return Vec::new();
    };
    let mut history = output
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ended = output
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s != "in_progress");
    if ended && output.get("run_id").is_some_and(Value::is_i64) {
        let field = |name: &str| output.get(name).cloned().unwrap_or(Value::Null);
        history.push(json!({
            "run_id": field("run_id"),
            "web_url": field("web_url"),
            "status": field("status"),
            "agent_status": field("agent_status"),
            "result": field("result"),
            "started_at": field("started_at"),
            "finished_at": field("finished_at"),
        }));
    }
    history
}

/// `text` cut to `max` characters (on a character boundary), with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The `error_message` of a run that ended without success.
fn end_message(run: &AgentRun, stopped: bool) -> String {
    let status = run.status.as_deref().unwrap_or("?");
    let what = if stopped {
        format!("Codegen run {} was stopped ({status})", run.id)
    } else {
        format!("Codegen run {} ended with status {status}", run.id)
    };
    let said = run
        .result
        .as_deref()
        .or(run.summary.as_deref())
        .filter(|s| !s.trim().is_empty())
        .map(|s| format!(": {}", clip(s.trim(), RESULT_IN_ERROR_CHARS)))
        .unwrap_or_default();
    format!(
        "{what}{said}. Not retried automatically (each run costs); retry the task to ask for a new run."
    )
}

impl CodegenTrigger {
    /// The task ends if `run` has: completed, failed or cancelled (see the module
    /// documentation); `None` while it is still going.
    pub(super) fn conclude(
        &self,
        ctx: &TaskContext,
        progress: &Progress,
        run: &AgentRun,
    ) -> Option<HandlerOutcome> {
        let failed = self.config.is_run_failure(run.status.as_deref());
        let label = match run.outcome() {
            _ if failed => RUN_FAILED,
            RunOutcome::Cancelled => RUN_CANCELLED,
            outcome if outcome.is_terminal() => RunOutcome::Completed.as_str(),
            _ => return None,
        };
        self.observer.codegen_run(label);
        tracing::info!(task_id = %ctx.task.task_id, run_id = run.id, outcome = label,
            agent_status = run.status.as_deref().unwrap_or(""), "agent run ended");
        let output = final_output(label, progress, Some(run), ctx.now);
        Some(match label {
            RUN_FAILED => HandlerOutcome::failed(end_message(run, false), output),
            RUN_CANCELLED => HandlerOutcome::cancelled(end_message(run, true), output),
            _ => HandlerOutcome::done(output),
        })
    }

    /// On an operator's retry of a task whose run ended without success: releases that run's
    /// intent, so the ledger admits one new run for the task.
    pub(super) async fn release_ended(&self, ctx: &TaskContext) -> Result<(), TaskError> {
        let Some(run_id) = ended_run(ctx.task.output_data.as_ref()) else {
            return Ok(());
        };
        let note = format!("run {run_id} ended without success; the task was retried");
        let released = self
            .runs
            .release_ended_run(ctx.task.task_id, &run_id.to_string(), &note, ctx.now)
            .await?;
        if released {
            tracing::info!(task_id = %ctx.task.task_id, run_id,
                "retried after the agent run ended without success: asking for a new run");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_or_cancelled_output_names_an_ended_run() {
        let out = |status: &str| json!({"status": status, "run_id": 7});
        assert_eq!(ended_run(Some(&out("failed"))), Some(7));
        assert_eq!(ended_run(Some(&out("cancelled"))), Some(7));
        for status in [
            "completed",
            "in_progress",
            "timeout",
            "needs_attention",
            "skipped",
        ] {
            assert_eq!(ended_run(Some(&out(status))), None, "{status}");
        }
        assert_eq!(ended_run(Some(&json!({"status": "failed"}))), None);
        assert_eq!(ended_run(None), None);
    }

    #[test]
    fn history_appends_the_ended_run_to_the_earlier_ones() {
        let output = json!({"status": "failed", "run_id": 8, "agent_status": "ERROR",
            "history": [{"run_id": 7, "status": "cancelled"}]});
        let history = history(Some(&output));
        let ids: Vec<_> = history.iter().map(|h| h["run_id"].clone()).collect();
        assert_eq!(ids, [json!(7), json!(8)]);
        assert_eq!(history[1]["agent_status"], json!("ERROR"));
        let following = json!({"status": "in_progress", "run_id": 9, "history": [{"run_id": 7}]});
        assert_eq!(super::history(Some(&following)).len(), 1);
        assert!(super::history(Some(&json!({"status": "needs_attention"}))).is_empty());
    }

    #[test]
    fn a_long_result_is_clipped_on_a_character_boundary() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("short", 10), "short");
    }
}
