-- Issue 11: nothing genuine is lost to the parser, and an agent run is created at most once.

-- A signed JSON delivery whose typed view failed is stored unparsed: no tasks, unprocessed, the
-- parse error kept here (and shown in the event JSON) until a reprocess parses it.
ALTER TABLE webhook_events ADD COLUMN parse_error TEXT;

-- The agent-run ledger: one row per run creation attempt, committed BEFORE the request is sent
-- (state 'pending'), then 'created' with the run's id and page, 'not_created' when the agent
-- refused, 'unresolved' when a pending intent's run could not be found (the task waits for a
-- person), 'released' when an operator retried such a task. See
-- orchestrator-core/src/store/agent_run.rs. Issues 13 (budgets) and 17 (reporting) read it.
CREATE TABLE agent_runs (
    id          BIGSERIAL PRIMARY KEY,
    -- Sent in the run's metadata (agent_run_intent), so a lost answer can be matched later.
    intent_id   UUID NOT NULL UNIQUE,
    task_id     UUID NOT NULL,
    attempt     INTEGER NOT NULL,
    repository  TEXT,
    pr_number   BIGINT,
    head_sha    TEXT,
    forced      BOOLEAN NOT NULL DEFAULT FALSE,
    state       TEXT NOT NULL CHECK (state IN
                    ('pending', 'created', 'not_created', 'unresolved', 'released')),
    run_id      TEXT,
    web_url     TEXT,
    note        TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX agent_runs_task_idx ON agent_runs (task_id, id);
-- "Does this pull request head SHA already have a run?": only open intents are indexed.
CREATE INDEX agent_runs_head_idx ON agent_runs (repository, pr_number, head_sha, id)
    WHERE state IN ('pending', 'created', 'unresolved');

-- Runs created before the ledger existed count for their head SHA too.
INSERT INTO agent_runs (intent_id, task_id, attempt, repository, pr_number, head_sha, forced,
                        state, run_id, web_url, note, created_at, updated_at)
SELECT gen_random_uuid(), task_id, GREATEST(attempts, 1), repository, pr_number, commit_sha, FALSE,
       'created', codegen_task_id, codegen_task_url, 'recorded before the agent-run ledger existed',
       COALESCE(started_at, created_at), updated_at
FROM workflow_tasks
WHERE task_type = 'codegen_trigger' AND codegen_task_id IS NOT NULL;
