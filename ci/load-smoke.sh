#!/usr/bin/env bash
# Load smoke test: autobahn-server under wsload, every echoed byte checked.
#   1. 50 connections echoing 64-byte messages for 10 s.
#   2. 1000 connections echoing 20-byte messages for 5 s, the server on one core (CPU 0,
#      wsload on CPU 1, as in benches/compare.sh), and no echo may take longer than 0.5 s:
#      a starved socket (the scheduler leaving some sockets unserved while it serves the
#      others) is an error. Typical worst case here: 20-50 ms.
#   3. The benchmark's floor servers for 3 s each, so benches/compare.sh keeps working
#      references: floor (benches/src/bin/floor.rs) at 100 x 20 B with 10 in flight and at
#      100 x 16 KiB; floor-uring (floor-uring.rs) at 100 x 20 B with 10 in flight and at
#      100 x 16 KiB with 10 in flight (frames split across receives, answers packed in place).
# Each run fails unless wsload counts some echoes and no error.
# JOBS sets cargo's -j (default: cargo's own).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release ${JOBS:+-j "$JOBS"} -p examples --bin autobahn-server -p benches --bin wsload --bin floor --bin floor-uring

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
else
  SERVER_CPU=() LOAD_CPU=()
fi

# smoke LABEL SERVER SERVER_PIN(0|1) WSLOAD_ARGS...
smoke() {
  local label=$1 binary=$2 pin=$3
  shift 3
  local log server addr result messages errors close_errors
  local server_cpu=() load_cpu=()
  if [ "$pin" = 1 ]; then server_cpu=("${SERVER_CPU[@]}") load_cpu=("${LOAD_CPU[@]}"); fi
  log=$(mktemp)
  "${server_cpu[@]}" "target/release/$binary" --addr 127.0.0.1:0 >"$log" 2>&1 &
  server=$!
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$log" | head -n1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    echo "$binary did not start:" >&2
    cat "$log" >&2
    kill "$server" 2>/dev/null || true
    return 1
  fi
  result=$("${load_cpu[@]}" target/release/wsload --url "ws://$addr/" --server-pid "$server" --json "$@") || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
  echo "$result"
  messages=$(grep -o '"messages":[0-9]*' <<<"$result" | cut -d: -f2)
  errors=$(grep -o '"errors":[0-9]*' <<<"$result" | cut -d: -f2)
  close_errors=$(grep -o '"close_errors":[0-9]*' <<<"$result" | cut -d: -f2)
  if [ "${messages:-0}" -gt 0 ] && [ "${errors:-1}" -eq 0 ] && [ "${close_errors:-1}" -eq 0 ]; then
    echo "load smoke ($label): $messages echoes verified, no errors"
  else
    echo "load smoke ($label) FAILED: messages=${messages:-?} errors=${errors:-?} close_errors=${close_errors:-?}" >&2
    return 1
  fi
}

smoke "50 x 64 B, 10 s" autobahn-server 0 --mode echo --connections 50 --size 64 --duration 10
smoke "1000 x 20 B on one core, 5 s, max wait 0.5 s" autobahn-server 1 --mode echo --connections 1000 --size 20 \
  --duration 5 --warmup 0.5 --max-wait 0.5
smoke "floor, 100 x 20 B, 10 in flight, 3 s" floor 1 --mode echo --connections 100 --size 20 --inflight 10 \
  --duration 3 --warmup 0.5
smoke "floor, 100 x 16 KiB, 3 s" floor 1 --mode echo --connections 100 --size 16384 --duration 3 --warmup 0.5
smoke "floor-uring, 100 x 20 B, 10 in flight, 3 s" floor-uring 1 --mode echo --connections 100 --size 20 \
  --inflight 10 --duration 3 --warmup 0.5
smoke "floor-uring, 100 x 16 KiB, 10 in flight, 3 s" floor-uring 1 --mode echo --connections 100 --size 16384 \
  --inflight 10 --duration 3 --warmup 0.5
