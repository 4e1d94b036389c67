-- Issue 13: operators' pauses. A pause covers every task (both columns NULL), the tasks of one
-- repository, of one task type, or of both. Claims and start_attempt skip the runnable tasks a
-- pause covers (orchestrator-core/src/store/pause.rs); the rows survive restarts.
CREATE TABLE task_pauses (
    id          BIGSERIAL PRIMARY KEY,
    repository  TEXT,
    task_type   TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

-- One pause per scope (NULL counts as "every").
CREATE UNIQUE INDEX task_pauses_scope_idx
    ON task_pauses ((COALESCE(repository, '')), (COALESCE(task_type, '')));
