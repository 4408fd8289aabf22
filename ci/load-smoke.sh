#!/usr/bin/env bash
# Load smoke test: autobahn-server under wsload (50 connections echoing 64-byte messages for
# 10 s, every echoed byte checked). Fails unless wsload counts some echoes and no error.
# JOBS sets cargo's -j (default: cargo's own).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release ${JOBS:+-j "$JOBS"} -p examples --bin autobahn-server -p benches --bin wsload

log=$(mktemp)
target/release/autobahn-server --addr 127.0.0.1:0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/^listening on //p' "$log" | head -n1)
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "autobahn-server did not start:" >&2
  cat "$log" >&2
  exit 1
fi

result=$(target/release/wsload --url "ws://$addr/" --mode echo --connections 50 --size 64 --duration 10 \
  --server-pid "$server" --json)
echo "$result"
messages=$(grep -o '"messages":[0-9]*' <<<"$result" | cut -d: -f2)
errors=$(grep -o '"errors":[0-9]*' <<<"$result" | cut -d: -f2)
close_errors=$(grep -o '"close_errors":[0-9]*' <<<"$result" | cut -d: -f2)
if [ "${messages:-0}" -gt 0 ] && [ "${errors:-1}" -eq 0 ] && [ "${close_errors:-1}" -eq 0 ]; then
  echo "load smoke: $messages echoes verified, no errors"
else
  echo "load smoke FAILED: messages=${messages:-?} errors=${errors:-?} close_errors=${close_errors:-?}" >&2
  exit 1
fi
