//! The supersede step of ingest: what a delivery says about pull-request heads, turned into the
//! [`PrUpdate`]s the store applies to the stale work of those pull requests *inside the
//! transaction that commits the delivery* (see [`crate::store::supersede`] for the rule and
//! the transaction), and the metrics and log lines of what they did. It runs inside
//! [`Ingestor`], so live and recovered deliveries take the same path.
//!
//! - A `pull_request` delivery (other than `closed`), a `check_suite` or a `check_run` that
//!   created tasks brings a head per pull request: its head SHA, ordered by the payload's
//!   `pull_request.updated_at` / `check_suite.created_at` (a `check_run`: its suite's
//!   `created_at`, else its `started_at`), or the receive time when the payload has none.
//! - `pull_request.closed` cancels the pull request's open work (reason `closed`).
//! - Only a newly accepted delivery applies its updates (a duplicate supersedes nothing). A
//!   failure of an update is rolled back on its own (a savepoint), logged, and loses nothing:
//!   the delivery is stored and answered; at worst stale work runs.
//! - The updates are worked out before the store call: the new tasks' ids are chosen by the
//!   ingestor, so they are known before the commit.
//!
//! [`Ingestor`]: super::Ingestor

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::observe::Observer;
use crate::payload::{EventKind, ParsedEvent};
use crate::store::cancel::CancelReason;
use crate::store::supersede::{
    CloseRequest, PrHead, PrUpdate, PrUpdateOutcome, SupersedeOutcome, SupersedeRequest,
};
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

/// The pull-request updates of a delivery with `tasks` (its new tasks) whose typed view is
/// `event`, received at `received`; none when `config` is off.
pub(super) fn pr_updates(
    config: SupersedeConfig,
    event: &ParsedEvent,
    tasks: &[NewTask],
    received: DateTime<Utc>,
) -> Vec<PrUpdate> {
    if !config.enabled {
        return Vec::new();
    }
    signals(event, received)
        .into_iter()
        .filter_map(|signal| match signal {
            PrSignal::Closed {
                repository,
                pr_number,
            } => Some(PrUpdate::Close(CloseRequest {
                repository,
                pr_number,
                running: config.running,
            })),
            PrSignal::Head(head) => {
                let new_tasks: Vec<(Uuid, TaskType)> = tasks
                    .iter()
                    .filter(|t| {
                        t.spec.repository.as_deref() == Some(head.repository.as_str())
                            && t.spec.pr_number == Some(head.pr_number)
                            && t.spec.commit_sha.as_deref() == Some(head.head_sha.as_str())
                    })
                    .map(|t| (t.task_id, t.spec.task_type.clone()))
                    .collect();
                // Only work the delivery asked for can supersede (it names the new task).
                (!new_tasks.is_empty()).then_some(PrUpdate::Supersede(SupersedeRequest {
                    head,
                    new_tasks,
                    running: config.running,
                }))
            }
        })
        .collect()
}

/// Counts (`tasks_cancelled_total{reason}`) and logs what the store did with a delivery's
/// `updates` (`outcomes`, in the same order).
pub(super) fn report(updates: &[PrUpdate], outcomes: &[PrUpdateOutcome], observer: &dyn Observer) {
    for (update, outcome) in updates.iter().zip(outcomes) {
        match (update, outcome) {
            (PrUpdate::Supersede(request), PrUpdateOutcome::Superseded(done)) => {
                superseded(&request.head, done, observer);
            }
            (PrUpdate::Close(close), PrUpdateOutcome::Closed(cancelled)) => {
                if !cancelled.is_empty() {
                    observer.tasks_cancelled(CancelReason::Closed.as_str(), cancelled.len() as u64);
                    tracing::info!(
                        repository = %close.repository,
                        pr = close.pr_number,
                        cancelled = cancelled.len(),
                        "pull request closed: its open work is cancelled"
                    );
                }
            }
            (PrUpdate::Supersede(request), PrUpdateOutcome::Failed(error)) => {
                tracing::warn!(repository = %request.head.repository, pr = request.head.pr_number,
                    error = %error, "superseding stale work failed; it may still run");
            }
            (PrUpdate::Close(close), PrUpdateOutcome::Failed(error)) => {
                tracing::warn!(repository = %close.repository, pr = close.pr_number,
                    error = %error, "cancelling a closed pull request's work failed; it may still run");
            }
            (update, outcome) => {
                let (repository, pr) = update.pull_request();
                tracing::warn!(
                    repository,
                    pr,
                    ?outcome,
                    "the store answered a pull-request update with the outcome of another kind"
                );
            }
        }
    }
}

/// Counts and logs one applied supersede.
fn superseded(head: &PrHead, outcome: &SupersedeOutcome, observer: &dyn Observer) {
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
