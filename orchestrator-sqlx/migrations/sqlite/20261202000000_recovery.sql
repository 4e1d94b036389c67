-- Issue 14: reconcile with GitHub's delivery log. Same tables as the PostgreSQL migration; times
-- are INTEGER microseconds, UUIDs 16-byte BLOBs, booleans INTEGER.
CREATE TABLE recovery_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        BLOB NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('fetch', 'redeliver')),
    dry_run       INTEGER NOT NULL,
    hooks         TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    window_end    INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                      ('pending', 'running', 'interrupted', 'succeeded', 'failed')),
    hook          TEXT,
    page_cursor   TEXT,
    listed        INTEGER NOT NULL DEFAULT 0,
    missing       INTEGER NOT NULL DEFAULT 0,
    recovered     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    missing_guids TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    updated_at    INTEGER NOT NULL
);

CREATE INDEX recovery_runs_open_idx ON recovery_runs (id) WHERE status IN ('pending', 'running', 'interrupted');
CREATE INDEX recovery_runs_success_idx ON recovery_runs (started_at DESC) WHERE status = 'succeeded';

-- The one-runner lease (one row): SQLite has no session locks, and several processes may share
-- the file.
CREATE TABLE recovery_runner (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
