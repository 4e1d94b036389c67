//! The supersede step of ingest: right after a delivery and its tasks are committed, what the
//! delivery says about pull-request heads is applied to the stale work of those pull requests
//! (see [`crate::store::supersede`] for the rule). It runs inside [`Ingestor`], so live and
//! recovered deliveries take the same path.
//!
//! - A `pull_request` delivery (other than `closed`), a `check_suite` or a `check_run` that
//!   created tasks brings a head per pull request: its head SHA, ordered by the payload's
//!   `pull_request.updated_at` / `check_suite.created_at` (a `check_run`: its suite's
//!   `created_at`, else its `started_at`), or the receive time when the payload has none.
//! - `pull_request.closed` cancels the pull request's open work (reason `closed`).
//! - A failure here is logged and loses nothing: the delivery is stored and answered; at worst
//!   stale work runs.
//!
//! [`Ingestor`]: super::Ingestor

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::observe::Observer;
use crate::payload::{EventKind, ParsedEvent};
use crate::store::cancel::{CancelReason, CancelStore};
use crate::store::supersede::{CLOSED_MESSAGE, PrHead, SupersedeRequest};
use crate::task::{NewTask, TaskType};

/// Supersede settings (`SUPERSEDE_ENABLED`, `SUPERSEDE_RUNNING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupersedeConfig {
    /// Whether deliveries supersede stale work at all (default true).
    pub enabled: bool,
    /// Whether running tasks of a stale head are cancelled too (default false, like GitHub
    /// Actions' `cancel-in-progress: false`).
    pub running: bool,
}

impl Default for SupersedeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            running: false,
        }
    }
}

/// What one delivery says about one pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrSignal {
    /// A head of the pull request.
    Head(PrHead),
    /// The pull request was closed.
    Closed {
        /// `owner/name`.
        repository: String,
        /// The pull request.
        pr_number: i64,
    },
}

/// The pull-request heads (or the close) `event` reports; `received` stands in for a head time
/// the payload lacks.
pub(crate) fn signals(event: &ParsedEvent, received: DateTime<Utc>) -> Vec<PrSignal> {
    let Some(repository) = event.repository.as_ref().map(|r| r.full_name.clone()) else {
        return Vec::new();
    };
    let head = |number: u64, sha: Option<&String>, at: Option<DateTime<Utc>>| {
        Some(PrSignal::Head(PrHead {
            repository: repository.clone(),
            pr_number: i64::try_from(number).ok()?,
            head_sha: sha?.clone(),
            head_at: at.unwrap_or(received),
        }))
    };
    match &event.kind {
        EventKind::PullRequest(pr) if event.action.as_deref() == Some("closed") => {
            i64::try_from(pr.number)
                .ok()
                .map(|pr_number| PrSignal::Closed {
                    repository: repository.clone(),
                    pr_number,
                })
                .into_iter()
                .collect()
        }
        EventKind::PullRequest(pr) => head(pr.number, pr.head.sha.as_ref(), pr.updated_at)
            .into_iter()
            .collect(),
        EventKind::CheckSuite(suite) => suite
            .pull_requests
            .iter()
            .filter_map(|r| head(r.number, suite.head_sha.as_ref(), suite.created_at))
            .collect(),
        EventKind::CheckRun(run) => run
            .pull_requests
            .iter()
            .filter_map(|r| {
                let at = run.check_suite.created_at.or(run.started_at);
                head(r.number, run.head_sha.as_ref(), at)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A committed task, as much as supersede needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewTaskRef {
    task_id: Uuid,
    task_type: TaskType,
    repository: Option<String>,
    pr_number: Option<i64>,
    commit_sha: Option<String>,
}

impl NewTaskRef {
    pub(super) fn of(task: &NewTask) -> Self {
        Self {
            task_id: task.task_id,
            task_type: task.spec.task_type.clone(),
            repository: task.spec.repository.clone(),
            pr_number: task.spec.pr_number,
            commit_sha: task.spec.commit_sha.clone(),
        }
    }
}

/// The supersede step (configured on the [`Ingestor`](super::Ingestor)).
pub(super) struct Superseder {
    pub(super) store: Arc<dyn CancelStore>,
    pub(super) config: SupersedeConfig,
}

impl Superseder {
    /// Applies what `event` says to the stale work of its pull requests. `tasks` are the
    /// delivery's committed tasks.
    pub(super) async fn apply(
        &self,
        event: &ParsedEvent,
        tasks: &[NewTaskRef],
        now: DateTime<Utc>,
        observer: &dyn Observer,
    ) {
        if !self.config.enabled {
            return;
        }
        for signal in signals(event, now) {
            match signal {
                PrSignal::Closed {
                    repository,
                    pr_number,
                } => self.close(&repository, pr_number, now, observer).await,
                PrSignal::Head(head) => {
                    let new_tasks: Vec<(Uuid, TaskType)> = tasks
                        .iter()
                        .filter(|t| {
                            t.repository.as_deref() == Some(head.repository.as_str())
                                && t.pr_number == Some(head.pr_number)
                                && t.commit_sha.as_deref() == Some(head.head_sha.as_str())
                        })
                        .map(|t| (t.task_id, t.task_type.clone()))
                        .collect();
                    // Only work the delivery asked for can supersede (it names the new task).
                    if new_tasks.is_empty() {
                        continue;
                    }
                    let request = SupersedeRequest {
                        head,
                        new_tasks,
                        running: self.config.running,
                    };
                    self.supersede(&request, now, observer).await;
                }
            }
        }
    }

    async fn supersede(
        &self,
        request: &SupersedeRequest,
        now: DateTime<Utc>,
        observer: &dyn Observer,
    ) {
        let head = &request.head;
        match self.store.supersede(request, now).await {
            Ok(outcome) => {
                let count = outcome.cancelled.len() as u64;
                if count > 0 {
                    observer.tasks_cancelled(CancelReason::Superseded.as_str(), count);
                }
                if count > 0 || !outcome.marked.is_empty() || outcome.late {
                    tracing::info!(repository = %head.repository, pr = head.pr_number,
                        head_sha = %head.head_sha, late = outcome.late, cancelled = count,
                        kept_with_agent_run = outcome.marked.len(), "stale pull-request work superseded");
                }
            }
            Err(err) => {
                tracing::warn!(repository = %head.repository, pr = head.pr_number, error = %err,
                    "superseding stale work failed; it may still run");
            }
        }
    }

    async fn close(
        &self,
        repository: &str,
        pr_number: i64,
        now: DateTime<Utc>,
        observer: &dyn Observer,
    ) {
        match self
            .store
            .cancel_closed(
                repository,
                pr_number,
                CLOSED_MESSAGE,
                self.config.running,
                now,
            )
            .await
        {
            Ok(cancelled) if !cancelled.is_empty() => {
                observer.tasks_cancelled(CancelReason::Closed.as_str(), cancelled.len() as u64);
                tracing::info!(
                    repository,
                    pr = pr_number,
                    cancelled = cancelled.len(),
                    "pull request closed: its open work is cancelled"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(repository, pr = pr_number, error = %err,
                "cancelling a closed pull request's work failed; it may still run"),
        }
    }
}
