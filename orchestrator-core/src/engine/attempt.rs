//! One attempt of one claimed task: run its handler (in its own tokio task, so a panic is
//! caught), keep its lease alive, map the outcome to a [`Finish`] and record it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::clock::{self, Clock};
use crate::error::{TaskError, TaskErrorKind};
use crate::event::WebhookEvent;
use crate::handler::{HandlerOutcome, HandlerRegistry, NO_EVENT_STORE, TaskContext, TaskProgress};
use crate::observe::Observer;
use crate::queue::TaskQueue;
use crate::retry::{RetryDecision, RetryPolicy};
use crate::store::{AttemptStore, Claim, EventStore, ExternalRun, Finish};
use crate::task::{NewTask, Task, TaskSpec, TaskStatus};

/// First pause before recording an attempt's outcome again (the store was unavailable).
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between two tries to record an outcome.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(2);

/// Makes the span an execution runs in (the server links it to the task's stored trace).
pub type SpanFactory = Arc<dyn Fn(&Task) -> tracing::Span + Send + Sync>;

/// Everything an attempt needs; cheap to clone into a spawned task.
#[derive(Clone)]
pub(super) struct Runner {
    pub(super) queue: Arc<dyn TaskQueue>,
    pub(super) store: Arc<dyn AttemptStore>,
    pub(super) events: Option<Arc<dyn EventStore>>,
    pub(super) registry: Arc<HandlerRegistry>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) observer: Arc<dyn Observer>,
    pub(super) span_factory: Option<SpanFactory>,
    pub(super) retry: RetryPolicy,
    pub(super) lease: Duration,
}

/// [`TaskProgress`] backed by [`AttemptStore::record_external_run`] and, when the worker has one,
/// [`EventStore::get_event`].
struct StoreProgress {
    store: Arc<dyn AttemptStore>,
    events: Option<Arc<dyn EventStore>>,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl TaskProgress for StoreProgress {
    async fn record_external_run(&self, task_id: Uuid, run: &ExternalRun) -> Result<(), TaskError> {
        Ok(self
            .store
            .record_external_run(task_id, run, self.clock.now())
            .await?)
    }

    async fn event(&self, event_id: i64) -> Result<Option<WebhookEvent>, TaskError> {
        match &self.events {
            Some(events) => Ok(events.get_event(event_id).await?),
            None => Err(TaskError::permanent(NO_EVENT_STORE)),
        }
    }
}

/// Aborts the handler's tokio task when the attempt is dropped or given up.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How the handler's tokio task ended.
enum Ended {
    Returned(Result<HandlerOutcome, TaskError>),
    Panicked(String),
}

impl Runner {
    fn span(&self, claim: &Claim) -> tracing::Span {
        match &self.span_factory {
            Some(factory) => factory(&claim.task),
            None => tracing::info_span!(
                "task",
                task_id = %claim.task.task_id,
                task_type = %claim.task.task_type,
                attempt = claim.attempt,
                execution_id = %claim.execution_id,
            ),
        }
    }

    /// Runs one attempt to its end and records it. `cancel` (shutdown past its grace period)
    /// stops the handler and releases the task unfinished.
    pub(super) async fn execute(self, claim: Claim, cancel: CancellationToken) {
        let span = self.span(&claim);
        self.execute_in_span(claim, cancel).instrument(span).await;
    }

    async fn execute_in_span(self, claim: Claim, cancel: CancellationToken) {
        let started = Instant::now();
        let task_type = claim.task.task_type.clone();
        let Some(handler) = self.registry.get(&task_type).cloned() else {
            let error = format!("no handler for task type {task_type}");
            tracing::error!(%error, "task cannot run");
            let held_until = claim.lease_expires_at;
            self.record(&claim, Finish::Failed { error }, started, held_until)
                .await;
            return;
        };
        let progress = Arc::new(StoreProgress {
            store: self.store.clone(),
            events: self.events.clone(),
            clock: self.clock.clone(),
        });
        // Fired with `cancel` (shutdown past its grace) or when the lease is lost.
        let given_up = cancel.child_token();
        let ctx = TaskContext::new(
            claim.task.clone(),
            claim.attempt,
            claim.execution_id,
            self.clock.now(),
            progress,
        )
        .with_cancellation(given_up.clone());
        let mut handle = AbortOnDrop(tokio::spawn(
            async move { handler.handle(&ctx).await }.instrument(tracing::Span::current()),
        ));
        let period = (self.lease / 3).max(Duration::from_millis(10));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // Until when this worker holds the task for sure (the last lease it was granted).
        let mut held_until = claim.lease_expires_at;
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            tokio::select! {
                joined = &mut handle.0 => break match joined {
                    Ok(result) => Ended::Returned(result),
                    Err(err) if err.is_panic() => Ended::Panicked(panic_message(err.into_panic())),
                    Err(_) => Ended::Panicked("handler task was cancelled".to_owned()),
                },
                _ = renew.tick() => {
                    let now = self.clock.now();
                    match self.queue.extend_lease(&claim, self.lease, now).await {
                        Ok(true) => held_until = clock::add(now, self.lease),
                        Ok(false) => {
                            // The lease expired and another worker took the task, or the task
                            // was cancelled (its execution is already closed `cancelled`):
                            // either way the handler's future is dropped and nothing recorded.
                            tracing::warn!("lease lost (taken over, or the task was cancelled) while the handler ran; dropping the attempt");
                            given_up.cancel();
                            return;
                        }
                        Err(err) => tracing::warn!(error = %err, "extending the lease failed"),
                    }
                }
                () = cancel.cancelled() => {
                    tracing::info!("shutting down: releasing the task unfinished");
                    drop(handle);
                    self.record(&claim, Finish::Released, started, held_until).await;
                    return;
                }
            }
        };
        let finish = self.decide(&claim.task, ended);
        self.record(&claim, finish, started, held_until).await;
    }

    /// Maps how the handler ended to what the store records.
    fn decide(&self, task: &Task, ended: Ended) -> Finish {
        let now = self.clock.now();
        let error = match ended {
            Ended::Returned(Ok(HandlerOutcome::Completed { output, followups })) => {
                let followups = followups
                    .into_iter()
                    .map(|spec| self.followup(task, spec, now))
                    .collect();
                return Finish::Completed { output, followups };
            }
            Ended::Returned(Ok(HandlerOutcome::Waiting { after, output })) => {
                return Finish::Deferred {
                    at: clock::add(now, after),
                    reason: "waiting".to_owned(),
                    output,
                };
            }
            Ended::Returned(Ok(HandlerOutcome::Ended { end, error, output })) => {
                return Finish::Ended { end, error, output };
            }
            Ended::Returned(Err(error)) => error,
            Ended::Panicked(message) => {
                TaskError::retryable(format!("handler panicked: {message}"))
            }
        };
        match self.retry.decide(
            &error,
            task.retry_count,
            task.max_retries,
            now,
            rand::random::<f64>(),
        ) {
            RetryDecision::RetryAt(at) => Finish::Retry {
                error: error.message,
                at,
            },
            RetryDecision::DeferUntil(at) => Finish::Deferred {
                at,
                reason: error.message,
                output: error.output,
            },
            RetryDecision::GiveUp => {
                let error = match error.kind {
                    TaskErrorKind::Retryable { .. } => {
                        format!("{} (retries exhausted)", error.message)
                    }
                    _ => error.message,
                };
                Finish::Failed { error }
            }
        }
    }

    /// A follow-up of `parent`: its repository facts by default, its trace, the policy's retries.
    fn followup(&self, parent: &Task, mut spec: TaskSpec, now: DateTime<Utc>) -> NewTask {
        spec.repository = spec.repository.or_else(|| parent.repository.clone());
        spec.pr_number = spec.pr_number.or(parent.pr_number);
        spec.branch = spec.branch.or_else(|| parent.branch.clone());
        spec.commit_sha = spec.commit_sha.or_else(|| parent.commit_sha.clone());
        NewTask {
            parent_task_id: Some(parent.task_id),
            trace_context: parent.trace_context.clone(),
            ..NewTask::new(spec, self.retry.max_retries, now)
        }
    }

    /// Records how the attempt ended. The handler's work is done (a comment posted, a run
    /// started), so while the store is only unavailable (a failover, a network cut) the record
    /// is tried again, with a growing pause, for as long as this worker still holds the lease
    /// (`held_until`): giving up at once would let the lease expire and the task run again.
    async fn record(
        &self,
        claim: &Claim,
        finish: Finish,
        started: Instant,
        held_until: DateTime<Utc>,
    ) {
        let kind = match &finish {
            Finish::Completed { .. } => "completed",
            Finish::Retry { .. } => "retry",
            Finish::Failed { .. } => "failed",
            Finish::Deferred { .. } => "deferred",
            Finish::Released => "released",
            Finish::Ended { end, .. } => end.status().as_str(),
        };
        // The real-time bound keeps a test's stopped clock from retrying for ever.
        let give_up = Instant::now() + self.lease;
        let mut pause = RECORD_RETRY_FIRST;
        let report = loop {
            match self
                .queue
                .finish(claim, finish.clone(), self.clock.now())
                .await
            {
                Ok(report) => break report,
                Err(err)
                    if err.is_retryable()
                        && clock::add(self.clock.now(), pause) < held_until
                        && Instant::now() + pause < give_up =>
                {
                    if pause == RECORD_RETRY_FIRST {
                        tracing::warn!(outcome = kind, error = %err, "attempt could not be recorded yet; trying again while the lease holds");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECORD_RETRY_MAX);
                }
                Err(err) => {
                    tracing::warn!(outcome = kind, error = %err, "attempt could not be recorded; the lease will expire");
                    return;
                }
            }
        };
        let task_type = &claim.task.task_type;
        self.observer
            .task_attempt(task_type, report.status, started.elapsed());
        if report.status == TaskStatus::Retrying {
            self.observer.task_retry(task_type);
        }
        tracing::info!(outcome = kind, status = %report.status, run_at = ?report.run_at, followups = report.followups.len(), "attempt recorded");
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
