-- Issue 17: report task state back on the pull request. Same tables as the PostgreSQL
-- migration; times are INTEGER microseconds, UUIDs 16-byte BLOBs.

CREATE INDEX workflow_tasks_updated_idx ON workflow_tasks (updated_at, id);
CREATE INDEX workflow_tasks_parent_idx ON workflow_tasks (parent_task_id)
    WHERE parent_task_id IS NOT NULL;

CREATE TABLE report_cursors (
    name         TEXT PRIMARY KEY,
    cursor_at    INTEGER,
    cursor_id    INTEGER,
    holder       TEXT NOT NULL,
    lease_until  INTEGER NOT NULL
);

CREATE TABLE github_reports (
    report_key   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('check_run', 'status', 'comment')),
    task_id      BLOB,
    external_id  INTEGER,
    fingerprint  TEXT,
    failures     INTEGER NOT NULL DEFAULT 0,
    retry_at     INTEGER,
    last_error   TEXT,
    updated_at   INTEGER NOT NULL
);

CREATE INDEX github_reports_retry_idx ON github_reports (retry_at) WHERE retry_at IS NOT NULL;
