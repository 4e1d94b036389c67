-- Issue 13: bulk retry / reprocess by filter, run in batches in the background. One row per
-- operation; it survives restarts (a runner claims it with a lease and goes on from row_cursor).
-- See orchestrator-core/src/store/operation.rs.
CREATE TABLE operations (
    id               UUID PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('retry_tasks', 'reprocess_events')),
    -- The filter as JSON (OperationFilter).
    criteria         JSONB NOT NULL,
    forced           BOOLEAN NOT NULL DEFAULT FALSE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'cancelled')),
    matched          BIGINT NOT NULL,
    done             BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    skipped          BIGINT NOT NULL DEFAULT 0,
    -- The last row id handled (workflow_tasks.id or webhook_events.id).
    row_cursor       BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX operations_created_idx ON operations (created_at DESC, id DESC);
-- Runners look for work here.
CREATE INDEX operations_open_idx ON operations (created_at) WHERE status IN ('pending', 'running');
