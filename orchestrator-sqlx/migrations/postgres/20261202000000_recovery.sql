-- Issue 14: reconcile with GitHub's delivery log. One row per reconciliation run: its window,
-- counters, the hook it is on and that hook's cursor (a run stopped by a crash or a rate limit
-- resumes from it), and its status. See orchestrator-core/src/store/recovery.rs.
CREATE TABLE recovery_runs (
    id            BIGSERIAL PRIMARY KEY,
    run_id        UUID NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('fetch', 'redeliver')),
    dry_run       BOOLEAN NOT NULL,
    -- Comma list of hook names (`app`, `repo:OWNER/NAME:ID`, `org:ORG:ID`), paged in order.
    hooks         TEXT NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    window_end    TIMESTAMPTZ NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                      ('pending', 'running', 'interrupted', 'succeeded', 'failed')),
    hook          TEXT,
    page_cursor   TEXT,
    listed        BIGINT NOT NULL DEFAULT 0,
    missing       BIGINT NOT NULL DEFAULT 0,
    recovered     BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    errors        BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    -- JSON array of the missing GUIDs (a dry run's answer), at most 1,000.
    missing_guids TEXT NOT NULL DEFAULT '[]',
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- The open run to resume, and the latest success.
CREATE INDEX recovery_runs_open_idx ON recovery_runs (id) WHERE status IN ('pending', 'running', 'interrupted');
CREATE INDEX recovery_runs_success_idx ON recovery_runs (started_at DESC) WHERE status = 'succeeded';

-- The one-runner lease where a session lock is not available (SQLite uses it; PostgreSQL uses an
-- advisory lock and keeps the table only so both schemas match).
CREATE TABLE recovery_runner (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
