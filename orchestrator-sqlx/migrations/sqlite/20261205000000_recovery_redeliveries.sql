-- Issue 14, `redeliver` mode: redelivery intents, as in the PostgreSQL migration; times are
-- INTEGER microseconds, UUIDs 16-byte BLOBs.
CREATE TABLE recovery_redeliveries (
    guid         TEXT PRIMARY KEY,
    attempt_id   INTEGER NOT NULL,
    hook         TEXT NOT NULL,
    run_id       BLOB NOT NULL,
    requested_at INTEGER NOT NULL
);
