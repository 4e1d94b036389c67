-- Issue 13: cancel a task; supersede stale pull-request work. Same schema as the PostgreSQL
-- migration (times are INTEGER microseconds, UUIDs 16-byte BLOBs); see
-- orchestrator-core/src/store/cancel.rs.

ALTER TABLE workflow_tasks ADD COLUMN superseded_by BLOB;
CREATE INDEX workflow_tasks_superseded_idx ON workflow_tasks (superseded_by, created_at DESC, id DESC)
    WHERE superseded_by IS NOT NULL;
CREATE INDEX workflow_tasks_open_pr_idx ON workflow_tasks (repository, pr_number)
    WHERE status IN ('pending', 'retrying', 'running') AND pr_number IS NOT NULL;

CREATE TABLE pull_request_heads (
    repository  TEXT NOT NULL,
    pr_number   INTEGER NOT NULL,
    head_sha    TEXT NOT NULL,
    head_at     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, pr_number)
);
