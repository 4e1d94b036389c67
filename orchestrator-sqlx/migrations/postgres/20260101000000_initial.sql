-- Events, tasks and executions. Times are always written by the application (`now` arguments),
-- never by NOW(), so that tests can run on fake time.

CREATE TABLE webhook_events (
    id                      BIGSERIAL PRIMARY KEY,
    delivery_id             TEXT NOT NULL UNIQUE,
    event_type              TEXT NOT NULL,
    action                  TEXT,
    source                  TEXT NOT NULL,
    repository              TEXT,
    installation_id         BIGINT,
    -- The payload exactly as received (json keeps the text, unlike jsonb).
    payload                 JSON NOT NULL,
    -- [[name, value], ...] in the order received.
    headers                 JSONB NOT NULL,
    processed               BOOLEAN NOT NULL,
    processing_started_at   TIMESTAMPTZ,
    processing_completed_at TIMESTAMPTZ,
    error_message           TEXT,
    retry_count             INTEGER NOT NULL DEFAULT 0,
    -- Tasks of this event that are not terminal; the event is processed when it reaches 0.
    -- Maintained in the same statement as every task status change, so it never needs a lock
    -- across statements.
    open_tasks              INTEGER NOT NULL DEFAULT 0,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_events_type_idx ON webhook_events (event_type, created_at DESC, id DESC);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at DESC, id DESC);

CREATE TABLE workflow_tasks (
    id               BIGSERIAL PRIMARY KEY,
    task_id          UUID NOT NULL UNIQUE,
    -- No foreign keys: their per-row checks cost ingest and claim time; the store writes
    -- tasks only with their event (same statement) and deletes children first (cleanup).
    webhook_event_id BIGINT,
    parent_task_id   UUID,
    task_type        TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('pending', 'running', 'retrying', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    repository       TEXT,
    pr_number        BIGINT,
    branch           TEXT,
    commit_sha       TEXT,
    config           JSONB NOT NULL,
    input_data       JSONB NOT NULL,
    output_data      JSONB,
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    error_message    TEXT,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    max_retries      INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    codegen_task_id  TEXT,
    codegen_task_url TEXT,
    run_at           TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    trace_context    TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- The claim query: only runnable rows are indexed, so finished rows cost nothing.
CREATE INDEX workflow_tasks_runnable_idx ON workflow_tasks (priority DESC, run_at, id)
    WHERE status IN ('pending', 'retrying');
-- Lease expiry sweeps.
CREATE INDEX workflow_tasks_lease_idx ON workflow_tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX workflow_tasks_event_idx ON workflow_tasks (webhook_event_id);
-- Lists: newest first (created_at desc, id desc); also the 24-hour figures. The processed and
-- task_type filters have no index of their own (few distinct values; every index costs ingest).
CREATE INDEX workflow_tasks_status_idx ON workflow_tasks (status, created_at DESC, id DESC);
CREATE INDEX workflow_tasks_repository_idx ON workflow_tasks (repository, created_at DESC, id DESC);
CREATE INDEX workflow_tasks_created_idx ON workflow_tasks (created_at DESC, id DESC);

CREATE TABLE task_executions (
    id            BIGSERIAL PRIMARY KEY,
    execution_id  UUID NOT NULL UNIQUE,
    task_id       UUID NOT NULL,
    attempt       INTEGER NOT NULL,
    worker_id     TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    duration_ms   BIGINT,
    error_message TEXT
) WITH (fillfactor = 80);

-- No index on status: closing an execution is then a HOT update.
CREATE INDEX task_executions_task_idx ON task_executions (task_id, id);

-- A queue table: claimed and finished rows leave dead entries at the front of the runnable
-- index until vacuum removes them, so vacuum it early.
ALTER TABLE workflow_tasks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02);
