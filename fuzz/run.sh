#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) and prints executions and crashes per target.
# Not part of CI: fuzzing needs the nightly toolchain and minutes of CPU. Usage: fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
for target in key_parse stored_response_decode sql_literal; do
  log="$(mktemp)"
  set +e
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1
  status=$?
  set -e
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo "?")
  crashes=$(ls "artifacts/$target" 2>/dev/null | grep -c '^crash-' || true)
  echo "$target: ${runs} executions in ${seconds} s, exit ${status}, crash artifacts: ${crashes}"
  [ "$status" -eq 0 ] || { tail -n 40 "$log"; exit "$status"; }
done
