#!/usr/bin/env sh
# Runs every figure of docs/benchmarks.md "End-to-end load" in one go, baselines first, so each
# target and its baseline are measured the same minute on the same machine.
#   sh benches/load/run.sh
# Needs: a release build of the server, node, pgbench/psql and the PostgreSQL of the tests.
set -eu
cd "$(dirname "$0")/../.."
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_BASE=${PG%/*}
SECONDS_=${LOAD_SECONDS:-10}
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/release/orchestrator-server"
cargo build --release -q -p orchestrator-server  # never measure a stale binary

fresh_db() {
    psql "$PG" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
    DATABASE_URL="$PG_BASE/$1" LOG_LEVEL=warn "$BIN" migrate
}

echo "== machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"

echo "== baseline: plain Node.js receiver (verify HMAC, answer 200, store nothing)"
node benches/load/baseline.js 9077 & NODE=$!
sleep 1
LOAD_SECONDS=$SECONDS_ LOAD_TARGET_URL=http://127.0.0.1:9077/ cargo bench -q -p orchestrator-benches --bench load
kill $NODE

echo "== orchestrator-server, SQLite (embedded default)"
LOAD_SECONDS=$SECONDS_ cargo bench -q -p orchestrator-benches --bench load

echo "== orchestrator-server, SQLite with SQLITE_SYNCHRONOUS=normal (not the default: may lose the last commits on power loss)"
SERVER_SQLITE_SYNCHRONOUS=normal LOAD_SECONDS=$SECONDS_ cargo bench -q -p orchestrator-benches --bench load

echo "== baseline: pgbench, the same rows (event + task) per transaction, 32 clients"
fresh_db load_pgbench
PAYLOAD="${WEBHOOK_CORPUS_DIR:-../shared/corpus}/github-payloads/pull_request/opened.payload.json"
LITERAL="'$(sed "s/'/''/g" "$PAYLOAD")'"
pgbench -n -c 32 -j 2 -T "$SECONDS_" -D payload="$LITERAL" -f benches/load/pgbench.sql "$PG_BASE/load_pgbench" | grep -E "tps|latency"
psql "$PG" -qc "DROP DATABASE load_pgbench WITH (FORCE)"

echo "== orchestrator-server, PostgreSQL"
fresh_db load_server
SERVER_DATABASE_MAX_CONNECTIONS=32 LOAD_SECONDS=$SECONDS_ LOAD_DATABASE_URL="$PG_BASE/load_server" cargo bench -q -p orchestrator-benches --bench load
psql "$PG" -qc "DROP DATABASE load_server WITH (FORCE)"
