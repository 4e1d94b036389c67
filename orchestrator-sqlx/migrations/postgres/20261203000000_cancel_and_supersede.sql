-- Issue 13: cancel a task; supersede stale pull-request work. See
-- orchestrator-core/src/store/cancel.rs.

-- The newer task that made this one stale (same repository, pull request and task type, a newer
-- head SHA). Set on cancelled tasks, and on tasks whose agent run already existed (kept running,
-- followed to its end).
ALTER TABLE workflow_tasks ADD COLUMN superseded_by UUID;
CREATE INDEX workflow_tasks_superseded_idx ON workflow_tasks (superseded_by, created_at DESC, id DESC)
    WHERE superseded_by IS NOT NULL;
-- The open work of a pull request, read by every supersede (only open rows are indexed).
CREATE INDEX workflow_tasks_open_pr_idx ON workflow_tasks (repository, pr_number)
    WHERE status IN ('pending', 'retrying', 'running') AND pr_number IS NOT NULL;

-- The newest head of each pull request seen so far, and the payload time that orders heads
-- (pull_request.updated_at, check_suite.created_at): a delivery for an older head arriving late
-- never supersedes newer work.
CREATE TABLE pull_request_heads (
    repository  TEXT NOT NULL,
    pr_number   BIGINT NOT NULL,
    head_sha    TEXT NOT NULL,
    head_at     TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository, pr_number)
);
