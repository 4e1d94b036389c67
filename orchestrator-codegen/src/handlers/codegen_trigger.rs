//! `codegen_trigger`: starts one agent run for the task and follows it to its end.
//!
//! Exactly one run per task: the run id is persisted with `record_external_run` (on this task
//! and its parent) before the handler returns, and every later call (a retried attempt, or the
//! next poll) finds it in `codegen_task_id` / the progress state in `output_data` and reads the
//! run instead of creating one. A creation whose answer was lost after the request went out
//! fails permanently (the client says so) instead of being retried into a second run; a poll
//! that reveals the run's `web_url` later records it too. Following the run returns
//! [`HandlerOutcome::Waiting`] with a doubling delay (`poll_initial` .. `poll_max`), so no worker
//! slot is held and no attempt is used while the agent works; after `max_wait` the task completes
//! with status `timeout`. Transient errors while polling also wait (within `max_wait`, an
//! upstream `Retry-After` included) rather than burn attempts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::agent::{AgentRun, AgentRunRequest, CodingAgent};
use orchestrator_core::clock;
use orchestrator_core::error::{ClientErrorKind, TaskError};
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::observe::Observer;
use orchestrator_core::store::ExternalRun;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::prompt::build_prompt;
use super::{CodegenTriggerInput, reason_names};
use crate::config::HandlerConfig;

const NOT_CONFIGURED: &str = "CODEGEN_TOKEN and CODEGEN_ORG_ID are not set";

/// The `codegen_trigger` handler.
#[derive(Clone)]
pub struct CodegenTrigger {
    agent: Arc<dyn CodingAgent>,
    config: Arc<HandlerConfig>,
    observer: Arc<dyn Observer>,
}

/// What `output_data` holds while the run is followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    /// Always `in_progress` while waiting.
    status: String,
    run_id: i64,
    web_url: Option<String>,
    started_at: DateTime<Utc>,
    polls: u32,
    #[serde(default)]
    poll_errors: u32,
    agent_status: Option<String>,
}

const IN_PROGRESS: &str = "in_progress";

impl CodegenTrigger {
    /// A handler starting runs on `agent`; outcomes are counted on `observer`.
    pub fn new(
        agent: Arc<dyn CodingAgent>,
        config: Arc<HandlerConfig>,
        observer: Arc<dyn Observer>,
    ) -> Self {
        Self {
            agent,
            config,
            observer,
        }
    }

    /// The run this task already started, if any.
    fn existing(ctx: &TaskContext) -> Option<Progress> {
        let from_output = ctx
            .task
            .output_data
            .clone()
            .and_then(|v| serde_json::from_value::<Progress>(v).ok())
            .filter(|p| p.status == IN_PROGRESS);
        if from_output.is_some() {
            return from_output;
        }
        let run_id = ctx
            .task
            .codegen_task_id
            .as_deref()?
            .trim()
            .parse::<i64>()
            .ok()?;
        Some(Progress {
            status: IN_PROGRESS.to_owned(),
            run_id,
            web_url: ctx.task.codegen_task_url.clone(),
            started_at: ctx.task.started_at.unwrap_or(ctx.now),
            polls: 0,
            poll_errors: 0,
            agent_status: None,
        })
    }

    fn request(ctx: &TaskContext, input: &CodegenTriggerInput) -> AgentRunRequest {
        let repository = ctx
            .task
            .repository
            .as_deref()
            .unwrap_or("unknown repository");
        let setting = |key: &str| ctx.task.config.get(key).cloned();
        AgentRunRequest {
            prompt: build_prompt(repository, ctx.task.pr_number, input),
            metadata: Some(json!({
                "source": "webhook-orchestrator",
                "task_id": ctx.task.task_id,
                "parent_task_id": ctx.task.parent_task_id,
                "repository": ctx.task.repository,
                "pr_number": ctx.task.pr_number,
                "trigger_reasons": reason_names(&input.reasons),
            })),
            repo_id: setting("repo_id").and_then(|v| v.as_i64()),
            model: setting("model").and_then(|v| v.as_str().map(str::to_owned)),
            agent_type: setting("agent_type").and_then(|v| v.as_str().map(str::to_owned)),
        }
    }

    /// Starts the run and records it before anything else can go wrong.
    async fn start(&self, ctx: &TaskContext) -> Result<(Progress, AgentRun), TaskError> {
        let input: CodegenTriggerInput = ctx.input()?;
        let run = match self.agent.create_run(&Self::request(ctx, &input)).await {
            Ok(run) => run,
            Err(err) => {
                // A run the agent refused for good (402 run limit, 403, 422, ...) is an outcome
                // worth counting; a retryable or deferred failure is tried again later.
                if !err.is_retryable() {
                    self.observer.codegen_run("rejected");
                }
                return Err(err.into());
            }
        };
        self.observer.codegen_run("created");
        let record = ExternalRun {
            id: run.id.to_string(),
            url: run.web_url.clone(),
        };
        if let Err(err) = ctx.record_external_run(&record).await {
            // The progress state returned below is a second chance to keep the id.
            tracing::error!(task_id = %ctx.task.task_id, run_id = run.id, error = %err,
                "could not record the agent run on the task");
        }
        tracing::info!(task_id = %ctx.task.task_id, run_id = run.id, "agent run started");
        let progress = Progress {
            status: IN_PROGRESS.to_owned(),
            run_id: run.id,
            web_url: run.web_url.clone(),
            started_at: ctx.now,
            polls: 0,
            poll_errors: 0,
            agent_status: run.status.clone(),
        };
        Ok((progress, run))
    }

    /// The wait before poll number `polls + 1`, never past the deadline.
    fn delay(&self, polls: u32, deadline: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
        let factor = 2u32.saturating_pow(polls.min(16));
        let backoff = self
            .config
            .poll_initial
            .saturating_mul(factor)
            .min(self.config.poll_max);
        let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
        backoff.min(left).max(Duration::from_secs(1))
    }

    /// Decides from a fresh read of the run: done, timed out, or wait again.
    fn evaluate(&self, ctx: &TaskContext, mut progress: Progress, run: AgentRun) -> HandlerOutcome {
        let outcome = run.outcome();
        progress.agent_status = run.status.clone();
        progress.web_url = run.web_url.clone().or(progress.web_url);
        if outcome.is_terminal() {
            self.observer.codegen_run(outcome.as_str());
            tracing::info!(task_id = %ctx.task.task_id, run_id = run.id, outcome = outcome.as_str(), "agent run ended");
            return HandlerOutcome::done(final_output(
                outcome.as_str(),
                &progress,
                Some(&run),
                ctx.now,
            ));
        }
        self.wait_or_time_out(ctx, progress)
    }

    fn wait_or_time_out(&self, ctx: &TaskContext, mut progress: Progress) -> HandlerOutcome {
        let deadline = clock::add(progress.started_at, self.config.max_wait);
        if ctx.now >= deadline {
            self.observer.codegen_run("timeout");
            tracing::warn!(task_id = %ctx.task.task_id, run_id = progress.run_id, "gave up following the agent run");
            return HandlerOutcome::done(final_output("timeout", &progress, None, ctx.now));
        }
        let after = self.delay(progress.polls, deadline, ctx.now);
        progress.polls = progress.polls.saturating_add(1);
        HandlerOutcome::Waiting {
            after,
            output: serde_json::to_value(&progress).ok(),
        }
    }
}

fn final_output(
    status: &str,
    progress: &Progress,
    run: Option<&AgentRun>,
    now: DateTime<Utc>,
) -> Value {
    json!({
        "status": status,
        "run_id": progress.run_id,
        "web_url": progress.web_url,
        "agent_status": progress.agent_status,
        "result": run.and_then(|r| r.result.clone()),
        "summary": run.and_then(|r| r.summary.clone()),
        "pull_requests": run.map(|r| r.github_pull_requests.clone()).unwrap_or_default(),
        "polls": progress.polls,
        "started_at": progress.started_at,
        "finished_at": now,
    })
}

#[async_trait]
impl TaskHandler for CodegenTrigger {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let Some(progress) = Self::existing(ctx) else {
            if !self.agent.is_configured() {
                tracing::warn!(task_id = %ctx.task.task_id, "agent run skipped: {NOT_CONFIGURED}");
                self.observer.codegen_run("skipped");
                return Ok(HandlerOutcome::done(
                    json!({ "status": "skipped", "reason": NOT_CONFIGURED }),
                ));
            }
            let (progress, run) = self.start(ctx).await?;
            return Ok(self.evaluate(ctx, progress, run));
        };
        match self.agent.get_run(progress.run_id).await {
            Ok(run) => {
                Self::record_new_url(ctx, &run).await;
                Ok(self.evaluate(ctx, progress, run))
            }
            Err(err) => match err.kind() {
                ClientErrorKind::Retryable { retry_after }
                | ClientErrorKind::RateLimited { retry_after } => {
                    Ok(self.wait_after_error(ctx, progress, retry_after, &err.to_string()))
                }
                ClientErrorKind::CircuitOpen { retry_after } => {
                    Ok(self.wait_after_error(ctx, progress, Some(retry_after), &err.to_string()))
                }
                ClientErrorKind::Permanent | ClientErrorKind::NotConfigured => {
                    self.observer.codegen_run("failed");
                    Err(TaskError::permanent(format!(
                        "reading agent run {}: {err}",
                        progress.run_id
                    )))
                }
            },
        }
    }
}

impl CodegenTrigger {
    /// The create answer may have had no `web_url`; once a read shows one the task does not know
    /// yet, it is recorded (on the task and its parent) like the run id. Best effort: the URL is
    /// also kept in the progress state and the final output.
    async fn record_new_url(ctx: &TaskContext, run: &AgentRun) {
        let Some(url) = run.web_url.as_deref() else {
            return;
        };
        if ctx.task.codegen_task_url.as_deref() == Some(url) {
            return;
        }
        let record = ExternalRun {
            id: run.id.to_string(),
            url: Some(url.to_owned()),
        };
        if let Err(err) = ctx.record_external_run(&record).await {
            tracing::warn!(task_id = %ctx.task.task_id, run_id = run.id, error = %err,
                "could not record the agent run's page");
        }
    }

    fn wait_after_error(
        &self,
        ctx: &TaskContext,
        mut progress: Progress,
        retry_after: Option<Duration>,
        error: &str,
    ) -> HandlerOutcome {
        tracing::warn!(task_id = %ctx.task.task_id, run_id = progress.run_id, error, "reading the agent run failed; will try again");
        progress.poll_errors = progress.poll_errors.saturating_add(1);
        // The upstream's wish is honoured, but never past the deadline (an absurd Retry-After
        // must not park the task for ever); the read at the deadline then decides.
        let deadline = clock::add(progress.started_at, self.config.max_wait);
        let left = (deadline - ctx.now).to_std().unwrap_or(Duration::ZERO);
        match self.wait_or_time_out(ctx, progress) {
            HandlerOutcome::Waiting { after, output } => HandlerOutcome::Waiting {
                after: after.max(retry_after.unwrap_or_default().min(left)),
                output,
            },
            done => done,
        }
    }
}
