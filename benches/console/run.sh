#!/usr/bin/env bash
# The console and the figures routes at scale (docs/benchmarks.md "Console at scale"):
# CONSOLE_BENCH_ROWS (1,000,000) events, tasks and executions in a scratch PostgreSQL schema
# (seed.sql, bulk SQL; the schema is dropped afterwards), served by the real server binary
# (`serve --role api`, no workers, rate limits off), timed with curl (request to last byte).
#   bash benches/console/run.sh
# Needs: a build of the server (CONSOLE_BENCH_BIN, default $CARGO_TARGET_DIR/debug/...), psql,
# curl and the PostgreSQL of the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
ROWS=${CONSOLE_BENCH_ROWS:-1000000}
BIN=${CONSOLE_BENCH_BIN:-${CARGO_TARGET_DIR:-target}/debug/orchestrator-server}
SCHEMA=wo_console_bench_$$
PORT=${CONSOLE_BENCH_PORT:-18099}
BASE=http://127.0.0.1:$PORT
TOKEN=console-bench-token
JAR=$(mktemp)
SERVER=

cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
    rm -f "$JAR"
}
trap cleanup EXIT

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), $BIN"
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
export DATABASE_URL="$PG?options=-csearch_path%3D$SCHEMA"
export GITHUB_WEBHOOK_SECRET=bench ADMIN_TOKEN=$TOKEN BIND_ADDR=127.0.0.1:$PORT LOG_LEVEL=warn
export RATE_LIMIT_API_PER_MINUTE=0 RATE_LIMIT_WEBHOOK_PER_SECOND=0
"$BIN" migrate
started=$(date +%s)
PGOPTIONS="-c search_path=$SCHEMA" psql "$PG" -q -v ON_ERROR_STOP=1 -v rows="$ROWS" -f benches/console/seed.sql
for t in webhook_events workflow_tasks task_executions; do
    PGOPTIONS="-c search_path=$SCHEMA" psql "$PG" -qc "VACUUM ANALYZE $t"
done
echo "== seeded $ROWS events, tasks and executions in $(( $(date +%s) - started )) s"

"$BIN" serve --role api & SERVER=$!
until curl -fs "$BASE/health/live" >/dev/null; do sleep 0.2; done
curl -fs -c "$JAR" -o /dev/null --data-urlencode "token=$TOKEN" "$BASE/ui/login"

# get PATH: one request's time in ms (fails on a non-200 answer).
get() {
    curl -s -b "$JAR" -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{http_code} %{time_total}\n' "$BASE$1" |
        awk -v path="$1" '$1 != 200 { print "HTTP " $1 " from " path > "/dev/stderr" } { printf "%.1f\n", $2 * 1000 }'
}
# timed N PATH [SLEEP]: N sequential requests (SLEEP seconds before each): median, min, max.
timed() {
    local n=$1 path=$2 pause=${3:-0} i
    for i in $(seq "$n"); do
        [ "$pause" = 0 ] || sleep "$pause"
        get "$path"
    done | sort -n | awk '{ v[NR] = $1 } END { printf "median %s ms (min %s, max %s, n = %d)\n", v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}
# together N PATH: N requests at once; the time until the last answered.
together() {
    local n=$1 path=$2 start end
    start=$(date +%s%N)
    for i in $(seq "$n"); do get "$path" >/dev/null & done
    wait $(jobs -p | grep -v "^$SERVER$") 2>/dev/null || true
    end=$(date +%s%N)
    echo "$(( (end - start) / 1000000 )) ms until the last of $n answered"
}
sql_ms() {
    PGOPTIONS="-c search_path=$SCHEMA" psql "$PG" -qAt -c '\timing on' -c "$1" | awk '/^Time:/ { print $2 }'
}

echo "== baseline: the store's full counts (TaskStore::stats' statements), psql"
echo "totals + 24 h: $(sql_ms "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM workflow_tasks), (SELECT count(*) FROM task_executions), (SELECT avg(duration_ms) FROM task_executions), (SELECT count(*) FROM webhook_events WHERE created_at >= now() - interval '24 hours'), (SELECT count(*) FROM workflow_tasks WHERE created_at >= now() - interval '24 hours')") ms"
echo "by status: $(sql_ms "SELECT status, count(*) FROM workflow_tasks GROUP BY status") ms, by type: $(sql_ms "SELECT event_type, count(*) FROM webhook_events GROUP BY event_type") ms"

echo "== overview /ui"
echo "cold (the aggregate is recomputed: first request after > 10 s): $(timed 3 /ui 11)"
echo "cached (snapshot < 10 s old): $(timed 30 /ui)"
sleep 11
echo "20 browsers at once on a stale snapshot: $(together 20 /ui)"

echo "== figures routes (exact: counted after each request arrived; concurrent ones share a count)"
echo "/api/v1/metrics alone: $(timed 3 /api/v1/metrics)"
echo "/api/v1/admin/stats alone: $(timed 3 /api/v1/admin/stats)"
echo "/api/v1/metrics, 10 at once: $(together 10 /api/v1/metrics)"

echo "== lists (50 rows a page)"
for list in deliveries:webhook_events tasks:workflow_tasks; do
    page=${list%%:*} table=${list#*:}
    echo "/ui/$page first page: $(timed 10 "/ui/$page")"
    cursor=$(PGOPTIONS="-c search_path=$SCHEMA" psql "$PG" -qAt -c \
        "SELECT (extract(epoch FROM created_at) * 1000000)::int8 || '.' || id FROM $table ORDER BY created_at DESC, id DESC OFFSET $(( ROWS - 51 )) LIMIT 1")
    echo "/ui/$page last page by cursor (after row $(( ROWS - 51 ))): $(timed 10 "/ui/$page?after=$cursor")"
done
echo "baseline: /api/v1/webhooks/events at offset $(( ROWS - 50 )): $(timed 3 "/api/v1/webhooks/events?limit=50&offset=$(( ROWS - 50 ))")"
echo "baseline: /api/v1/tasks at offset $(( ROWS - 50 )): $(timed 3 "/api/v1/tasks?limit=50&offset=$(( ROWS - 50 ))")"
for page in operations pauses recovery; do
    echo "/ui/$page first page: $(timed 10 "/ui/$page")"
done
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
