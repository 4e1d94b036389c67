#!/usr/bin/env bash
# Schemathesis against the real server with the server's own OpenAPI document: every
# operation, examples + coverage + fuzzing + the stateful phase (links: list -> detail ->
# retry/reprocess), all checks, bounded examples and a fixed seed; any failure fails CI.
#   .ci/schemathesis.sh [path/to/orchestrator-server]   (default: the debug build)
# Schemathesis comes from PyPI into a venv under the cargo target dir, pinned; the venv is
# reused, so a later run needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."
CI_DIR=$(pwd)/.ci

VERSION=4.32.5
TARGET=$(mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)
BIN=${1:-$TARGET/debug/orchestrator-server}
VENV=$TARGET/schemathesis-$VERSION
ST=$VENV/bin/schemathesis

if [ ! -x "$ST" ] || [ "$("$ST" --version 2>/dev/null)" != "schemathesis, version $VERSION" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"; then
    echo "cannot install schemathesis==$VERSION from PyPI (unreachable, and no venv at $VENV to reuse)" >&2
    rm -rf "$VENV"
    exit 1
  fi
fi
if [ $# -eq 0 ]; then
  cargo build --quiet -p orchestrator-server
fi
[ -x "$BIN" ] || { echo "no server binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export GITHUB_WEBHOOK_SECRET=schemathesis-webhook-secret
export ADMIN_TOKEN=schemathesis-admin-token-0123456789
export DATABASE_URL="sqlite://$WORK/st.db?mode=rwc"
export BIND_ADDR=127.0.0.1:$PORT
export RATE_LIMIT_WEBHOOK_PER_SECOND=0 RATE_LIMIT_API_PER_MINUTE=0
export LOG_LEVEL=warn LOG_FORMAT=text
# /health probes the GitHub API: point it (and Codegen) at a closed local port.
export GITHUB_API_URL=http://127.0.0.1:9/ CODEGEN_API_URL=http://127.0.0.1:9/
# The API role runs no worker: nothing calls out (GitHub and Codegen are never reached).
"$BIN" serve --role api > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do
  curl -fs "http://$BIND_ADDR/health/live" >/dev/null 2>&1 && break
  sleep 0.2
done

# Stored events and tasks, so that the detail routes and the links have real ids.
CORPUS=${WEBHOOK_CORPUS_DIR:-../shared/corpus}/github-payloads
for f in pull_request/opened.payload.json push/payload.json ping/payload.json; do
  "$BIN" send "$CORPUS/$f" >/dev/null
done

status=0
# Left out, and said so in the issue notes:
# - POST /api/v1/admin/recover: with no GitHub credentials configured here it answers 503 to
#   every body (not_a_server_error counts that as a failure); its hook syntax is not described in
#   the document yet.
# - The use_after_free check: DELETE of an operation cancels it and it stays readable by design
#   (issue 13); the per-operation switch in schemathesis/schemathesis.toml does not reach the
#   stateful phase, so the check stays off for the whole run.
# schemathesis/st_hooks.py drops generated bulk filters whose time range is inverted (a rule JSON
# Schema cannot state; the server answers it 400).
# From the temporary directory: Schemathesis keeps a cache (.schemathesis/) in its working directory.
(cd "$WORK" && PYTHONPATH="$CI_DIR/schemathesis" SCHEMATHESIS_HOOKS=st_hooks "$ST" \
  --config-file "$CI_DIR/schemathesis/schemathesis.toml" \
  run "http://$BIND_ADDR/api/v1/openapi.json" \
  --header "Authorization: Bearer $ADMIN_TOKEN" \
  --checks all \
  --exclude-checks use_after_free \
  --exclude-path-regex '^/api/v1/admin/recover$' \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
  --seed "${SCHEMATHESIS_SEED:-20261201}" \
  --workers 1 \
  --request-timeout 10 \
  --no-color) || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 50 lines)"; tail -n 50 "$WORK/server.log"
fi
exit "$status"
