-- Issue 17: report task state back on the pull request. The reporter reads tasks in
-- (updated_at, id) order after its cursor, and keeps per report what GitHub last accepted.
-- See orchestrator-core/src/store/report.rs.

-- The reporter's read of changed tasks, and of a task's follow-ups.
CREATE INDEX workflow_tasks_updated_idx ON workflow_tasks (updated_at, id);
CREATE INDEX workflow_tasks_parent_idx ON workflow_tasks (parent_task_id)
    WHERE parent_task_id IS NOT NULL;

-- One row per reporter: how far it read (cursor) and who may report now (lease).
CREATE TABLE report_cursors (
    name         TEXT PRIMARY KEY,
    cursor_at    TIMESTAMPTZ,
    cursor_id    BIGINT,
    holder       TEXT NOT NULL,
    lease_until  TIMESTAMPTZ NOT NULL
);

-- One row per report: a task's check run / status (`task:<uuid>`) or a pull request's comment
-- (`comment:<owner/name>#<number>`).
CREATE TABLE github_reports (
    report_key   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('check_run', 'status', 'comment')),
    task_id      UUID,
    external_id  BIGINT,
    fingerprint  TEXT,
    failures     INTEGER NOT NULL DEFAULT 0,
    retry_at     TIMESTAMPTZ,
    last_error   TEXT,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX github_reports_retry_idx ON github_reports (retry_at) WHERE retry_at IS NOT NULL;
