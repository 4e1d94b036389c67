//! Superseding stale pull-request work (see [`orchestrator_core::store::supersede`]) on both
//! databases: the statements they share. Each database's steps are in its `supersede.rs`,
//! run on the transaction that ingests the delivery (single or batch: one function per
//! database for both) or on one of their own (`CancelStore::supersede`); the
//! [`SqlStore`](crate::SqlStore) dispatch is in `cancel.rs`.
//!
//! Each update runs under a savepoint ([`SAVEPOINT`]): a failing one is rolled back alone and
//! the delivery still commits. The pull request's newest-head row is locked (or created)
//! first, so two deliveries of one pull request supersede one after the other; then the open
//! tasks of the pull request are locked (PostgreSQL `FOR UPDATE`; SQLite holds the one write
//! lock) before whether they have an agent run is read, so an admission of the ledger (which
//! locks its task row) is either visible or comes after the cancel and refuses.

use orchestrator_core::store::supersede::PrHead;
use orchestrator_core::task::NewTask;

/// Whether one of `tasks` (a batch's tasks not written yet) belongs to `head`'s pull request
/// at another SHA: [`SETTLED`] would have seen it, had it been written, and answered "not
/// settled".
pub(crate) fn stale_among(head: &PrHead, tasks: &[&NewTask]) -> bool {
    tasks.iter().any(|t| {
        t.spec.repository.as_deref() == Some(head.repository.as_str())
            && t.spec.pr_number == Some(head.pr_number)
            && t.spec.commit_sha.as_deref() != Some(head.head_sha.as_str())
    })
}

/// Creates the pull request's head row when it has none ($1 repository, $2 number, $3 SHA,
/// $4 head time, $5 now); changes nothing when it exists.
pub(crate) const HEAD_INIT: &str = "INSERT INTO pull_request_heads (repository, pr_number, \
    head_sha, head_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (repository, pr_number) DO NOTHING";

/// The newest head known.
pub(crate) const HEAD: &str =
    "SELECT head_sha, head_at FROM pull_request_heads WHERE repository = $1 AND pr_number = $2";

/// Records a newer head.
pub(crate) const HEAD_SET: &str = "UPDATE pull_request_heads SET head_sha = $3, head_at = $4, \
    updated_at = $5 WHERE repository = $1 AND pr_number = $2";

/// The open tasks of a pull request, with whether each already has an agent run.
pub(crate) const OPEN: &str = "SELECT t.task_id, t.task_type, t.status, t.commit_sha, \
    t.parent_task_id IS NOT NULL AS has_parent, \
    (t.codegen_task_id IS NOT NULL OR EXISTS (SELECT 1 FROM agent_runs a \
    WHERE a.task_id = t.task_id AND a.state IN ('pending', 'created', 'unresolved'))) AS has_run \
    FROM workflow_tasks t WHERE t.repository = $1 AND t.pr_number = $2 \
    AND t.status IN ('pending', 'retrying', 'running') ORDER BY t.id";

/// The newest task of a group at a head SHA ($3 task type, $4 SHA), any status.
pub(crate) const NEWEST_OF: &str = "SELECT task_id FROM workflow_tasks WHERE repository = $1 \
    AND pr_number = $2 AND task_type = $3 AND commit_sha = $4 ORDER BY id DESC LIMIT 1";

/// A task that keeps its agent run but is superseded.
pub(crate) const MARK: &str =
    "UPDATE workflow_tasks SET superseded_by = $2, updated_at = $3 WHERE task_id = $1";

/// Opens the savepoint of one pull-request update inside an ingest transaction.
pub(crate) const SAVEPOINT: &str = "SAVEPOINT pr_update";

/// Keeps what the update did (the savepoint is gone, its changes stay in the transaction).
pub(crate) const RELEASE: &str = "RELEASE SAVEPOINT pr_update";

/// Undoes a failed update (its savepoint is then released with [`RELEASE`]).
pub(crate) const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT pr_update";

/// A row when a supersede ($1 repository, $2 number, $3 SHA, $4 head time) has nothing to do:
/// the newest head is this SHA, at this time or later, and no open task of the pull request is
/// at another SHA. The common case (another delivery for the current head) then costs this one
/// read, with no savepoint and no write. "Another SHA" is written as two subqueries, one range
/// of `workflow_tasks_open_pr_idx` each (below the SHA, above it): written as one `<` OR `>`
/// predicate, SQLite searched the index by pull request only and walked every open task of it
/// at the current head, once per delivery (measured: SQLite ingest at 1,454/s instead of
/// ~7,800/s under the load benchmark, every delivery of one pull request).
pub(crate) const SETTLED: &str = "SELECT 1 FROM pull_request_heads h WHERE h.repository = $1 \
    AND h.pr_number = $2 AND h.head_sha = $3 AND h.head_at >= $4 \
    AND NOT EXISTS (SELECT 1 FROM workflow_tasks t WHERE t.repository = $1 \
    AND t.pr_number = $2 AND t.status IN ('pending', 'retrying', 'running') \
    AND t.commit_sha < $3) \
    AND NOT EXISTS (SELECT 1 FROM workflow_tasks t WHERE t.repository = $1 \
    AND t.pr_number = $2 AND t.status IN ('pending', 'retrying', 'running') \
    AND t.commit_sha > $3)";
