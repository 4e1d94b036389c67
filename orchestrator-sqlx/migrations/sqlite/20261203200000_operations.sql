-- Issue 13: bulk retry / reprocess by filter, run in batches in the background. One row per
-- operation; it survives restarts (a runner claims it with a lease and goes on from row_cursor).
-- See orchestrator-core/src/store/operation.rs. Times are microseconds, ids 16-byte BLOBs.
CREATE TABLE operations (
    id               BLOB PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('retry_tasks', 'reprocess_events')),
    -- The filter as JSON (OperationFilter).
    criteria         TEXT NOT NULL,
    forced           INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'cancelled')),
    matched          INTEGER NOT NULL,
    done             INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    skipped          INTEGER NOT NULL DEFAULT 0,
    -- The last row id handled (workflow_tasks.id or webhook_events.id).
    row_cursor       INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX operations_created_idx ON operations (created_at DESC, id DESC);
CREATE INDEX operations_open_idx ON operations (created_at) WHERE status IN ('pending', 'running');
