-- Events, tasks and executions. Times are INTEGER microseconds since the Unix epoch (UTC), so they
-- compare and sort as numbers; UUIDs are 16-byte BLOBs; JSON is TEXT.

CREATE TABLE webhook_events (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id             TEXT NOT NULL UNIQUE,
    event_type              TEXT NOT NULL,
    action                  TEXT,
    source                  TEXT NOT NULL,
    repository              TEXT,
    installation_id         INTEGER,
    payload                 TEXT NOT NULL,
    headers                 TEXT NOT NULL,
    processed               INTEGER NOT NULL,
    processing_started_at   INTEGER,
    processing_completed_at INTEGER,
    error_message           TEXT,
    retry_count             INTEGER NOT NULL DEFAULT 0,
    open_tasks              INTEGER NOT NULL DEFAULT 0,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

CREATE INDEX webhook_events_type_idx ON webhook_events (event_type, created_at DESC, id DESC);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at DESC, id DESC);

CREATE TABLE workflow_tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id          BLOB NOT NULL UNIQUE,
    -- No foreign keys: the store writes tasks only with their event (same transaction) and
    -- deletes children first (cleanup).
    webhook_event_id INTEGER,
    parent_task_id   BLOB,
    task_type        TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('pending', 'running', 'retrying', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    repository       TEXT,
    pr_number        INTEGER,
    branch           TEXT,
    commit_sha       TEXT,
    config           TEXT NOT NULL,
    input_data       TEXT NOT NULL,
    output_data      TEXT,
    started_at       INTEGER,
    completed_at     INTEGER,
    error_message    TEXT,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    max_retries      INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    codegen_task_id  TEXT,
    codegen_task_url TEXT,
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    trace_context    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX workflow_tasks_runnable_idx ON workflow_tasks (priority DESC, run_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX workflow_tasks_lease_idx ON workflow_tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX workflow_tasks_event_idx ON workflow_tasks (webhook_event_id);
CREATE INDEX workflow_tasks_status_idx ON workflow_tasks (status, created_at DESC, id DESC);
CREATE INDEX workflow_tasks_repository_idx ON workflow_tasks (repository, created_at DESC, id DESC);
CREATE INDEX workflow_tasks_created_idx ON workflow_tasks (created_at DESC, id DESC);

CREATE TABLE task_executions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id  BLOB NOT NULL UNIQUE,
    task_id       BLOB NOT NULL,
    attempt       INTEGER NOT NULL,
    worker_id     TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    completed_at  INTEGER,
    duration_ms   INTEGER,
    error_message TEXT
);

CREATE INDEX task_executions_task_idx ON task_executions (task_id, id);
