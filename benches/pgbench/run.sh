#!/bin/sh
# Baseline for the store benchmark: how many single-row inserts of the same ~28 KiB delivery
# PostgreSQL commits per second with 8 clients. Run it the same minute as
# `cargo bench -p orchestrator-benches --bench store`.
#   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), CORPUS (default ../shared/corpus
#   next to the workspace), SECS (10).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
corpus=${CORPUS:-$here/../../../shared/corpus}
secs=${SECS:-10}
payload=$(cat "$corpus/github-payloads/pull_request/closed.payload.json")
psql -q -v ON_ERROR_STOP=1 -v payload="$payload" "$url" <<'SQL'
DROP TABLE IF EXISTS pgbench_scratch, pgbench_payload;
CREATE TABLE pgbench_payload (payload text NOT NULL);
INSERT INTO pgbench_payload VALUES (:'payload');
CREATE TABLE pgbench_scratch (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    action TEXT,
    source TEXT NOT NULL,
    payload JSON NOT NULL,
    headers JSONB NOT NULL,
    processed BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
SQL
pgbench -n -c 8 -j 2 -T "$secs" -f "$here/insert.sql" "$url"
psql -q "$url" -c 'DROP TABLE pgbench_scratch, pgbench_payload'
