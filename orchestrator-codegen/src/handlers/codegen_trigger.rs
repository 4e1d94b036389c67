//! `codegen_trigger`: starts one agent run for the task and follows it to its end.
//!
//! At most one run per creation, even when a worker dies mid-call: before the request is sent,
//! the agent-run ledger ([`AgentRunStore`]) commits an intent (task, attempt, time, repository,
//! pull request, head SHA), and the request carries the task id and the intent id in the run's
//! `metadata`; the run id is recorded in the ledger and on the task (and its parent) as soon as
//! the answer arrives. Every later call (a retried attempt, the next poll) finds the run in
//! `codegen_task_id` / the progress state in `output_data`, or the ledger hands the task's open
//! intent back: with a run id it is followed; without one (the worker died after sending, or
//! the answer was lost) the run is looked up by its metadata (`reconcile.rs`) and adopted, or,
//! if it cannot be found with certainty, the task stops for a person (`failed`, output
//! `"status": "needs_attention"`, no automatic retry). A run is never created blindly. A lost
//! creation answer is therefore no longer a permanent failure: the intent stays pending and the
//! next attempt (a deferral, no attempt used) reconciles it. One exception is certain, not
//! guessed: an intent whose admission answered this process an error (committed, but the
//! answer lost: a connection reset during the COMMIT) was never sent, so this process creates
//! its run on the next attempt instead of stopping for a person (`unsent.rs`).
//!
//! Before the ledger is asked, the agent budget gives a slot (`budget.rs`): over the global
//! rate or the repository's hourly limit the task waits (a deferral, no attempt used) and
//! stores no intent.
//!
//! The ledger also applies the per-head-SHA rule in the same transaction that stores the intent:
//! a pull request's head SHA gets at most one run (the task completes `skipped`) unless the task
//! was forced (`"force": true` in its config, from reprocess with `?force=true`).
//!
//! How the run's end ends the task (failed and stopped runs included), and how an operator's
//! retry asks again, is in `run_end.rs`.
//!
//! A poll that reveals the run's `web_url` later records it too. Following the run returns
//! [`HandlerOutcome::Waiting`] with a doubling delay (`poll_initial` .. `poll_max`), so no worker
//! slot is held and no attempt is used while the agent works; after `max_wait` the task completes
//! with status `timeout`. Transient errors while polling also wait (within `max_wait`, an
//! upstream `Retry-After` included) rather than burn attempts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::agent::{AgentRun, AgentRunRequest, CodingAgent};
use orchestrator_core::budget::{AgentBudget, MemoryAgentBudget};
use orchestrator_core::clock;
use orchestrator_core::error::{ClientErrorKind, TaskError};
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::observe::Observer;
use orchestrator_core::store::ExternalRun;
use orchestrator_core::store::agent_run::{
    Admission, AgentRunRecord, AgentRunState, AgentRunStore, Refusal, RunIntent, is_forced,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::budget;
use super::prompt::build_prompt;
use super::run_end;
use super::unsent::UnsentIntents;
use super::{CodegenTriggerInput, reason_names};
use crate::config::HandlerConfig;

const NOT_CONFIGURED: &str = "CODEGEN_TOKEN and CODEGEN_ORG_ID are not set";

/// The run `metadata` key holding the creation attempt's intent id (beside `task_id`).
pub(super) const INTENT_METADATA_KEY: &str = "agent_run_intent";

/// The `codegen_trigger` handler.
#[derive(Clone)]
pub struct CodegenTrigger {
    pub(super) agent: Arc<dyn CodingAgent>,
    pub(super) runs: Arc<dyn AgentRunStore>,
    pub(super) config: Arc<HandlerConfig>,
    pub(super) observer: Arc<dyn Observer>,
    pub(super) budget: Arc<dyn AgentBudget>,
    /// Attempts of this process whose admission failed, so that sent nothing (`unsent.rs`).
    pub(super) unsent: UnsentIntents,
}

/// What `output_data` holds while the run is followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Progress {
    /// Always `in_progress` while waiting.
    status: String,
    run_id: i64,
    web_url: Option<String>,
    started_at: DateTime<Utc>,
    polls: u32,
    #[serde(default)]
    poll_errors: u32,
    agent_status: Option<String>,
    /// The task's earlier runs (it was retried after they ended), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<Value>,
}

impl Progress {
    /// Following `run_id` from `started_at` on.
    fn new(run_id: i64, web_url: Option<String>, started_at: DateTime<Utc>) -> Self {
        Self {
            status: IN_PROGRESS.to_owned(),
            run_id,
            web_url,
            started_at,
            polls: 0,
            poll_errors: 0,
            agent_status: None,
            history: Vec::new(),
        }
    }

    /// With the task's earlier runs (read from its `output_data`).
    fn with_history(mut self, ctx: &TaskContext) -> Self {
        self.history = run_end::history(ctx.task.output_data.as_ref());
        self
    }
}

const IN_PROGRESS: &str = "in_progress";

impl CodegenTrigger {
    /// A handler starting runs on `agent`, each recorded in the ledger `runs` before it is
    /// asked for; outcomes are counted on `observer`. Its agent budget is an in-process one
    /// applying `config.budget` ([`with_budget`](Self::with_budget) shares one instead).
    pub fn new(
        agent: Arc<dyn CodingAgent>,
        runs: Arc<dyn AgentRunStore>,
        config: Arc<HandlerConfig>,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let budget = Arc::new(MemoryAgentBudget::new(config.budget));
        Self {
            agent,
            runs,
            config,
            observer,
            budget,
            unsent: UnsentIntents::default(),
        }
    }

    /// Takes run-creation slots from `budget` (e.g. one shared through Redis, or the instance
    /// `/health` reports).
    pub fn with_budget(mut self, budget: Arc<dyn AgentBudget>) -> Self {
        self.budget = budget;
        self
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
        if run_end::ended_run(ctx.task.output_data.as_ref()) == Some(run_id) {
            // That run ended without success and an operator retried the task: ask again.
            return None;
        }
        Some(
            Progress::new(
                run_id,
                ctx.task.codegen_task_url.clone(),
                ctx.task.started_at.unwrap_or(ctx.now),
            )
            .with_history(ctx),
        )
    }

    /// What the ledger records before the request is sent.
    fn intent(ctx: &TaskContext) -> RunIntent {
        RunIntent {
            task_id: ctx.task.task_id,
            attempt: ctx.attempt,
            repository: ctx.task.repository.clone(),
            pr_number: ctx.task.pr_number,
            head_sha: ctx.task.commit_sha.clone(),
            force: is_forced(&ctx.task.config),
        }
    }

    fn request(
        ctx: &TaskContext,
        input: &CodegenTriggerInput,
        intent: &AgentRunRecord,
    ) -> AgentRunRequest {
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
                INTENT_METADATA_KEY: intent.intent_id,
                "parent_task_id": ctx.task.parent_task_id,
                "repository": ctx.task.repository,
                "pr_number": ctx.task.pr_number,
                "head_sha": ctx.task.commit_sha,
                "trigger_reasons": reason_names(&input.reasons),
            })),
            repo_id: setting("repo_id").and_then(|v| v.as_i64()),
            model: setting("model").and_then(|v| v.as_str().map(str::to_owned)),
            agent_type: setting("agent_type").and_then(|v| v.as_str().map(str::to_owned)),
        }
    }

    /// Asks for the run of the admitted `intent` and records its answer.
    async fn create(
        &self,
        ctx: &TaskContext,
        input: &CodegenTriggerInput,
        intent: &AgentRunRecord,
    ) -> Result<HandlerOutcome, TaskError> {
        let request = Self::request(ctx, input, intent);
        match self.agent.create_run(&request).await {
            Ok(run) => {
                crate::failpoint::crash_point("codegen_trigger::after_create");
                self.observer.codegen_run("created");
                tracing::info!(task_id = %ctx.task.task_id, run_id = run.id, intent_id = %intent.intent_id, "agent run started");
                Ok(self.adopt(ctx, intent, run).await)
            }
            Err(err) if err.is_outcome_unknown() => {
                // The run may exist: the intent stays pending, and the next call looks it up by
                // its metadata instead of asking again.
                tracing::warn!(task_id = %ctx.task.task_id, intent_id = %intent.intent_id, error = %err,
                    "the answer to the run creation was lost; the run will be looked up");
                Err(TaskError::deferred(
                    self.config.poll_initial,
                    format!("{err}; looking the run up by its metadata next"),
                ))
            }
            Err(err) => {
                // The agent answered: nothing was created, so the intent is closed and a later
                // attempt may ask again.
                if let Err(store) = self
                    .runs
                    .record_not_created(intent.intent_id, &err.to_string(), ctx.now)
                    .await
                {
                    tracing::warn!(task_id = %ctx.task.task_id, error = %store,
                        "could not close the intent of a refused run creation; the next attempt will look the run up");
                }
                // A run the agent refused for good (402 run limit, 403, 422, ...) is an outcome
                // worth counting; a retryable or deferred failure is tried again later.
                if !err.is_retryable() {
                    self.observer.codegen_run("rejected");
                }
                Err(err.into())
            }
        }
    }

    /// Records `run` as the run of `intent` (ledger, then task and parent) and evaluates it.
    /// Recording is best effort here: the ledger keeps the run for the next call, and the
    /// progress state returned is a further copy of its id.
    pub(super) async fn adopt(
        &self,
        ctx: &TaskContext,
        intent: &AgentRunRecord,
        run: AgentRun,
    ) -> HandlerOutcome {
        let record = ExternalRun {
            id: run.id.to_string(),
            url: run.web_url.clone(),
        };
        if let Err(err) = self
            .runs
            .record_created(intent.intent_id, &record, ctx.now)
            .await
        {
            tracing::error!(task_id = %ctx.task.task_id, run_id = run.id, error = %err,
                "could not record the agent run in the ledger");
        }
        if let Err(err) = ctx.record_external_run(&record).await {
            tracing::error!(task_id = %ctx.task.task_id, run_id = run.id, error = %err,
                "could not record the agent run on the task");
        }
        let mut progress = Progress::new(run.id, run.web_url.clone(), ctx.now).with_history(ctx);
        progress.agent_status = run.status.clone();
        self.evaluate(ctx, progress, run)
    }

    /// The task already has this open intent: follow its run, or find it.
    async fn resume(
        &self,
        ctx: &TaskContext,
        intent: AgentRunRecord,
    ) -> Result<HandlerOutcome, TaskError> {
        let run_id = intent
            .run_id
            .as_deref()
            .and_then(|id| id.trim().parse::<i64>().ok());
        match (intent.state, run_id) {
            (AgentRunState::Created, Some(run_id)) => {
                // Recorded in the ledger, not on the task: the worker stopped in between.
                let record = ExternalRun {
                    id: run_id.to_string(),
                    url: intent.web_url.clone(),
                };
                if let Err(err) = ctx.record_external_run(&record).await {
                    tracing::warn!(task_id = %ctx.task.task_id, run_id, error = %err,
                        "could not record the agent run on the task");
                }
                let progress =
                    Progress::new(run_id, intent.web_url.clone(), ctx.now).with_history(ctx);
                self.follow(ctx, progress).await
            }
            _ => self.reconcile(ctx, intent).await,
        }
    }

    /// The policy refused a run: the task completes `skipped`, saying why.
    fn refused(&self, ctx: &TaskContext, refusal: Refusal) -> HandlerOutcome {
        self.observer.codegen_run("duplicate");
        let output = match refusal {
            Refusal::HeadHasRun { limit, existing } => {
                tracing::info!(task_id = %ctx.task.task_id, existing_task = %existing.task_id,
                    "agent run skipped: this pull request head SHA already has one");
                json!({
                    "status": "skipped",
                    "reason": format!(
                        "pull request head SHA {} already has {limit} agent run(s) (the most \
                         recent by task {}); reprocess the event with ?force=true to ask for another",
                        existing.head_sha.as_deref().unwrap_or("?"),
                        existing.task_id
                    ),
                    "existing_task_id": existing.task_id,
                    "existing_run_id": existing.run_id,
                    "existing_run_url": existing.web_url,
                    "existing_state": existing.state,
                })
            }
            other => json!({ "status": "skipped", "reason": format!("{other:?}") }),
        };
        HandlerOutcome::done(output)
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

    /// Decides from a fresh read of the run: ended (`run_end.rs`), timed out, or wait again.
    fn evaluate(&self, ctx: &TaskContext, mut progress: Progress, run: AgentRun) -> HandlerOutcome {
        progress.agent_status = run.status.clone();
        progress.web_url = run.web_url.clone().or(progress.web_url);
        if let Some(ended) = self.conclude(ctx, &progress, &run) {
            return ended;
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

/// The output of a followed run that ended (or was given up): `status` is the task's view.
pub(super) fn final_output(
    status: &str,
    progress: &Progress,
    run: Option<&AgentRun>,
    now: DateTime<Utc>,
) -> Value {
    let mut output = json!({
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
    });
    if !progress.history.is_empty() {
        output["history"] = Value::Array(progress.history.clone());
    }
    output
}

#[async_trait]
impl TaskHandler for CodegenTrigger {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        if let Some(progress) = Self::existing(ctx) {
            return self.follow(ctx, progress).await;
        }
        if !self.agent.is_configured() {
            tracing::warn!(task_id = %ctx.task.task_id, "agent run skipped: {NOT_CONFIGURED}");
            self.observer.codegen_run("skipped");
            return Ok(HandlerOutcome::done(
                json!({ "status": "skipped", "reason": NOT_CONFIGURED }),
            ));
        }
        let input: CodegenTriggerInput = ctx.input()?;
        self.release_ended(ctx).await?;
        self.start(ctx, &input)
            .await
            .map_err(|err| budget::clear_stale_marker(ctx, err))
    }
}

impl CodegenTrigger {
    /// A slot of the agent budget, then the ledger's admission, then the creation.
    async fn start(
        &self,
        ctx: &TaskContext,
        input: &CodegenTriggerInput,
    ) -> Result<HandlerOutcome, TaskError> {
        let permit = self.take_budget(ctx).await?;
        let policy = self.config.budget.run_policy();
        let admission = match self.runs.admit(&Self::intent(ctx), &policy, ctx.now).await {
            Err(err) => {
                // Nothing is sent after this error, but the intent may have been committed.
                self.unsent.remember(ctx.task.task_id, ctx.attempt);
                Err(err)
            }
            // An intent of an attempt of this process that is known to have sent nothing: its
            // run is created now, as if it had just been admitted.
            Ok(Admission::Resume(intent)) if self.unsent.take(&intent) => {
                tracing::info!(task_id = %ctx.task.task_id, intent_id = %intent.intent_id,
                    "the intent's admission answered an error and nothing was sent; creating its run now");
                Ok(Admission::Admitted(intent))
            }
            other => other,
        };
        if !matches!(admission, Ok(Admission::Admitted(_))) {
            self.give_back(ctx, permit).await;
        }
        match admission? {
            Admission::Admitted(intent) => self.create(ctx, input, &intent).await,
            Admission::Resume(intent) => self.resume(ctx, intent).await,
            Admission::Refused(Refusal::TaskCancelled) => {
                // The cancel won the race with this attempt: no run is created, and the
                // worker's record of this attempt will not overwrite `cancelled`.
                tracing::info!(task_id = %ctx.task.task_id, "agent run not created: the task was cancelled");
                Err(TaskError::permanent(
                    "the task was cancelled; no agent run was created",
                ))
            }
            Admission::Refused(refusal) => Ok(self.refused(ctx, refusal)),
            other => Err(TaskError::permanent(format!(
                "unexpected answer of the agent-run ledger: {other:?}"
            ))),
        }
    }
}

impl CodegenTrigger {
    /// Reads the run and decides: done, or wait (transient read errors wait too).
    async fn follow(
        &self,
        ctx: &TaskContext,
        progress: Progress,
    ) -> Result<HandlerOutcome, TaskError> {
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
