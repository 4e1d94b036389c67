-- Issue 14, `redeliver` mode: the intent to ask GitHub to redeliver a delivery, recorded before
-- `POST .../attempts` is sent, so a run resumed after a crash between the request and its page
-- being saved does not ask again for the same attempt within the redelivery window. One row per
-- GUID (the latest intent). See orchestrator-core/src/store/recovery.rs.
CREATE TABLE recovery_redeliveries (
    guid         TEXT PRIMARY KEY,
    attempt_id   BIGINT NOT NULL,
    hook         TEXT NOT NULL,
    run_id       UUID NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL
);
