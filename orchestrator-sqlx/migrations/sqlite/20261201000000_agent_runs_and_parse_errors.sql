-- Issue 11: nothing genuine is lost to the parser, and an agent run is created at most once.
-- (Same tables as the PostgreSQL migration; times are INTEGER microseconds, UUIDs 16-byte BLOBs.)

-- A signed JSON delivery whose typed view failed is stored unparsed: no tasks, unprocessed, the
-- parse error kept here (and shown in the event JSON) until a reprocess parses it.
ALTER TABLE webhook_events ADD COLUMN parse_error TEXT;

-- The agent-run ledger: one row per run creation attempt, committed BEFORE the request is sent.
-- See the PostgreSQL migration and orchestrator-core/src/store/agent_run.rs.
CREATE TABLE agent_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    intent_id   BLOB NOT NULL UNIQUE,
    task_id     BLOB NOT NULL,
    attempt     INTEGER NOT NULL,
    repository  TEXT,
    pr_number   INTEGER,
    head_sha    TEXT,
    forced      INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL CHECK (state IN
                    ('pending', 'created', 'not_created', 'unresolved', 'released')),
    run_id      TEXT,
    web_url     TEXT,
    note        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX agent_runs_task_idx ON agent_runs (task_id, id);
CREATE INDEX agent_runs_head_idx ON agent_runs (repository, pr_number, head_sha, id)
    WHERE state IN ('pending', 'created', 'unresolved');

-- Runs created before the ledger existed count for their head SHA too.
INSERT INTO agent_runs (intent_id, task_id, attempt, repository, pr_number, head_sha, forced,
                        state, run_id, web_url, note, created_at, updated_at)
SELECT randomblob(16), task_id, MAX(attempts, 1), repository, pr_number, commit_sha, 0,
       'created', codegen_task_id, codegen_task_url, 'recorded before the agent-run ledger existed',
       COALESCE(started_at, created_at), updated_at
FROM workflow_tasks
WHERE task_type = 'codegen_trigger' AND codegen_task_id IS NOT NULL;
