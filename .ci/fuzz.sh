#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each, starting from its seed
# corpus kept in the repo (fuzz/corpus/<target>/); a crash fails the run (libFuzzer exits
# non-zero and writes the input to fuzz/artifacts/<target>/). New inputs found go to a
# temporary directory, so the repo's corpus only grows on purpose (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGET=$(mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# A stable toolchain accepts the sanitizer flags cargo-fuzz passes with this (see fuzz/README.md).
export RUSTC_BOOTSTRAP=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cd fuzz
for target in $(cargo fuzz list); do
  [ -d "corpus/$target" ] || { echo "no seed corpus at fuzz/corpus/$target (run fuzz/seed_corpus.py)" >&2; exit 1; }
  mkdir -p "$WORK/$target"
  echo "--- $target: ${SECONDS_EACH}s from $(ls "corpus/$target" | wc -l) seeds"
  if ! cargo fuzz run -O --target-dir "$TARGET/fuzz" "$target" "$WORK/$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 > "$WORK/$target.log" 2>&1; then
    tail -n 80 "$WORK/$target.log"
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/ (see fuzz/README.md)" >&2
    exit 1
  fi
  grep -E "^(INFO: Seed|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)" "$WORK/$target.log" || true
done
