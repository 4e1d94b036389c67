//! Superseding stale pull-request work: the rule every store applies, written once, and the
//! [`PrUpdate`]s a delivery carries into its ingest transaction.
//!
//! # Where it runs
//! A delivery's pull-request work ([`NewDelivery::pr_updates`](super::NewDelivery::pr_updates),
//! worked out by the ingestor before the store call) is applied by the store inside the *same*
//! transaction that inserts the delivery and its tasks ([`EventStore::ingest_delivery`], and
//! each delivery of a [`BatchStore::ingest_batch`] in order), and only when the delivery is
//! newly accepted: a duplicate supersedes nothing. Each update runs under a savepoint of its
//! own: if it fails, only it is rolled back, the delivery and its tasks still commit, and the
//! failure comes back as [`PrUpdateOutcome::Failed`] (logged by the ingestor; at worst
//! stale work runs). An accepted delivery is never lost to its supersede step.
//! [`CancelStore::supersede`](super::cancel::CancelStore::supersede) applies one request in a
//! transaction of its own (the same code in each store).
//!
//! [`EventStore::ingest_delivery`]: super::EventStore::ingest_delivery
//! [`BatchStore::ingest_batch`]: super::BatchStore::ingest_batch
//!
//! # The rule
//! - **Group**: repository + pull-request number + task type. A delivery that brings a head SHA
//!   for a pull request (and created tasks for it) supersedes the open tasks of the same group
//!   at *other* SHAs: pending and retrying ones are cancelled with `superseded_by` = the new
//!   task of that type and an error naming the new SHA; running ones too when
//!   [`SupersedeRequest::running`] is set.
//! - **Agent-run children**: an open `codegen_trigger` task of the pull request at another SHA
//!   with a parent (a follow-up of a stale analysis) is cancelled too, running or not, when it
//!   has not created a run (the ledger then refuses it one). A task that already has a run (a
//!   recorded run id, or an open ledger intent) is never cancelled: it only gets
//!   `superseded_by`, and its run is followed to its end; no run is created twice.
//! - **Order**: heads are ordered by the time the payload gives them ([`PrHead::head_at`]:
//!   `pull_request.updated_at`, `check_suite.created_at`), kept per pull request as the newest
//!   head seen. A delivery whose head is another SHA, not newer than the newest seen, is late
//!   (out of order): it supersedes nothing, and its own new tasks are cancelled as superseded
//!   by the newest head's task of the same type, when there is one. Equal times count as late,
//!   so two heads of the same second never cancel each other back and forth.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::task::{TaskStatus, TaskType};

/// A pull request's head commit as a delivery shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrHead {
    /// `owner/name`.
    pub repository: String,
    /// The pull request.
    pub pr_number: i64,
    /// Its head commit.
    pub head_sha: String,
    /// When the payload says the head was set (orders heads; see the module documentation).
    pub head_at: DateTime<Utc>,
}

/// What a delivery asks to supersede.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupersedeRequest {
    /// The head the delivery brings.
    pub head: PrHead,
    /// The delivery's new tasks for that head: (task id, task type).
    pub new_tasks: Vec<(Uuid, TaskType)>,
    /// Cancel running tasks of the group too (`SUPERSEDE_RUNNING`).
    pub running: bool,
}

/// Cancel the open work of a closed pull request (see [`plan_closed`]), with
/// [`CLOSED_MESSAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// `owner/name`.
    pub repository: String,
    /// The pull request.
    pub pr_number: i64,
    /// Cancel running tasks too (`SUPERSEDE_RUNNING`).
    pub running: bool,
}

/// What a delivery asks of its pull requests' open work, applied in its ingest transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrUpdate {
    /// A head with the delivery's new tasks for it: supersede the older heads' work.
    Supersede(SupersedeRequest),
    /// The pull request was closed: cancel its open work.
    Close(CloseRequest),
}

impl PrUpdate {
    /// The pull request it is about: (`owner/name`, number).
    pub fn pull_request(&self) -> (&str, i64) {
        match self {
            PrUpdate::Supersede(r) => (&r.head.repository, r.head.pr_number),
            PrUpdate::Close(r) => (&r.repository, r.pr_number),
        }
    }
}

/// What one [`PrUpdate`] did, in the accepted delivery's
/// [`IngestOutcome`](super::IngestOutcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrUpdateOutcome {
    /// A [`PrUpdate::Supersede`] was applied.
    Superseded(SupersedeOutcome),
    /// A [`PrUpdate::Close`] was applied: the tasks it cancelled.
    Closed(Vec<Uuid>),
    /// It failed and was rolled back on its own (the delivery is committed): the store's error.
    Failed(String),
}

/// An open task of the pull request, as the store read it inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTask {
    /// The task.
    pub task_id: Uuid,
    /// Its type.
    pub task_type: TaskType,
    /// Pending, retrying or running.
    pub status: TaskStatus,
    /// The head it is for.
    pub commit_sha: Option<String>,
    /// Whether it is a follow-up.
    pub has_parent: bool,
    /// Whether it already has an agent run (a recorded run id or an open ledger intent).
    pub has_run: bool,
}

/// What happens to one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Cancelled, `superseded_by` set.
    Cancel {
        /// The superseding task.
        by: Uuid,
    },
    /// Kept (its run is followed), `superseded_by` set.
    Mark {
        /// The superseding task.
        by: Uuid,
    },
}

/// What a supersede did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupersedeOutcome {
    /// Tasks cancelled (`superseded_by` set).
    pub cancelled: Vec<Uuid>,
    /// Tasks that keep following their agent run (`superseded_by` set).
    pub marked: Vec<Uuid>,
    /// The delivery was late: a newer head of the pull request was already known.
    pub late: bool,
}

/// The newest head known for the pull request, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHead {
    /// Its SHA.
    pub head_sha: String,
    /// Its time.
    pub head_at: DateTime<Utc>,
}

/// Whether `head` is late: another SHA, not newer than the newest head known.
pub fn is_late(known: Option<&KnownHead>, head: &PrHead) -> bool {
    known.is_some_and(|k| k.head_sha != head.head_sha && k.head_at >= head.head_at)
}

/// The error message of a task superseded by `by` at `sha`.
pub fn superseded_message(by: Uuid, sha: &str) -> String {
    format!("superseded by task {by} for the newer head SHA {sha}")
}

/// The error message of a task cancelled because its pull request was closed.
pub const CLOSED_MESSAGE: &str = "cancelled: the pull request was closed";

/// What to do with each open task of the pull request when `request` is not late.
pub fn plan(request: &SupersedeRequest, open: &[OpenTask]) -> Vec<(Uuid, Action)> {
    let Some(first_new) = request.new_tasks.first().map(|(id, _)| *id) else {
        return Vec::new();
    };
    let is_new = |id: Uuid| request.new_tasks.iter().any(|(n, _)| *n == id);
    let agent_child = |t: &OpenTask| t.task_type == TaskType::CODEGEN_TRIGGER && t.has_parent;
    open.iter()
        .filter(|t| !is_new(t.task_id))
        .filter(|t| {
            t.commit_sha
                .as_deref()
                .is_some_and(|sha| sha != request.head.head_sha)
        })
        .filter_map(|t| {
            let same_type = request
                .new_tasks
                .iter()
                .find(|(_, kind)| *kind == t.task_type)
                .map(|(id, _)| *id);
            let by = same_type.or_else(|| agent_child(t).then_some(first_new))?;
            if t.has_run {
                return Some((t.task_id, Action::Mark { by }));
            }
            let stoppable = t.status != TaskStatus::Running || request.running || agent_child(t);
            stoppable.then_some((t.task_id, Action::Cancel { by }))
        })
        .collect()
}

/// Which tasks close the pull request's work: the open tasks without an agent run, pending and
/// retrying ones (and running ones with `running`).
pub fn plan_closed(open: &[OpenTask], running: bool) -> Vec<Uuid> {
    open.iter()
        .filter(|t| !t.has_run && (t.status != TaskStatus::Running || running))
        .map(|t| t.task_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(sha: &str, secs: i64) -> PrHead {
        PrHead {
            repository: "octo/repo".into(),
            pr_number: 7,
            head_sha: sha.into(),
            head_at: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        }
    }

    fn open(kind: TaskType, status: TaskStatus, sha: &str) -> OpenTask {
        OpenTask {
            task_id: Uuid::now_v7(),
            task_type: kind,
            status,
            commit_sha: Some(sha.into()),
            has_parent: false,
            has_run: false,
        }
    }

    #[test]
    fn older_heads_of_the_group_are_cancelled_running_only_when_asked() {
        let new = Uuid::now_v7();
        let mut request = SupersedeRequest {
            head: head("b", 20),
            new_tasks: vec![(new, TaskType::PULL_REQUEST_ANALYSIS)],
            running: false,
        };
        let pending = open(TaskType::PULL_REQUEST_ANALYSIS, TaskStatus::Pending, "a");
        let running = open(TaskType::PULL_REQUEST_ANALYSIS, TaskStatus::Running, "a");
        let same_head = open(TaskType::PULL_REQUEST_ANALYSIS, TaskStatus::Pending, "b");
        let other_type = open(TaskType::PUSH_ANALYSIS, TaskStatus::Pending, "a");
        let tasks = [pending.clone(), running.clone(), same_head, other_type];
        assert_eq!(
            plan(&request, &tasks),
            vec![(pending.task_id, Action::Cancel { by: new })]
        );
        request.running = true;
        assert_eq!(plan(&request, &tasks).len(), 2);
    }

    #[test]
    fn agent_children_are_cancelled_unless_they_have_a_run() {
        let new = Uuid::now_v7();
        let request = SupersedeRequest {
            head: head("b", 20),
            new_tasks: vec![(new, TaskType::PULL_REQUEST_ANALYSIS)],
            running: false,
        };
        let mut idle = open(TaskType::CODEGEN_TRIGGER, TaskStatus::Running, "a");
        idle.has_parent = true;
        let mut with_run = idle.clone();
        with_run.task_id = Uuid::now_v7();
        with_run.has_run = true;
        with_run.status = TaskStatus::Pending;
        assert_eq!(
            plan(&request, &[idle.clone(), with_run.clone()]),
            vec![
                (idle.task_id, Action::Cancel { by: new }),
                (with_run.task_id, Action::Mark { by: new })
            ]
        );
    }

    #[test]
    fn a_late_head_is_recognised_and_no_new_task_means_no_plan() {
        let known = KnownHead {
            head_sha: "b".into(),
            head_at: DateTime::from_timestamp(20, 0).unwrap_or_default(),
        };
        assert!(is_late(Some(&known), &head("a", 10)));
        assert!(is_late(Some(&known), &head("a", 20)));
        assert!(!is_late(Some(&known), &head("b", 10)));
        assert!(!is_late(Some(&known), &head("c", 21)));
        assert!(!is_late(None, &head("a", 10)));
        let request = SupersedeRequest {
            head: head("c", 30),
            new_tasks: vec![],
            running: true,
        };
        let stale = open(TaskType::PULL_REQUEST_ANALYSIS, TaskStatus::Pending, "a");
        assert!(plan(&request, &[stale]).is_empty());
    }

    #[test]
    fn closing_keeps_runs_and_running_tasks_by_default() {
        let pending = open(TaskType::PULL_REQUEST_ANALYSIS, TaskStatus::Retrying, "a");
        let running = open(TaskType::PULL_REQUEST_ANALYSIS, TaskStatus::Running, "a");
        let mut with_run = open(TaskType::CODEGEN_TRIGGER, TaskStatus::Pending, "a");
        with_run.has_run = true;
        let tasks = [pending.clone(), running.clone(), with_run];
        assert_eq!(plan_closed(&tasks, false), vec![pending.task_id]);
        assert_eq!(
            plan_closed(&tasks, true),
            vec![pending.task_id, running.task_id]
        );
    }
}
