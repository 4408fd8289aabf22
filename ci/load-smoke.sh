#!/usr/bin/env bash
# Load smoke test: the demo binary under wsload, every echoed or broadcast byte checked.
#   1. Echo class, 50 connections echoing 64-byte messages for 10 s.
#   2. Echo class, 1000 connections echoing 20-byte messages for 5 s, the demo on one core
#      (CPU 0, wsload on CPU 1, as in benches/compare.sh), and no echo may take longer than
#      0.5 s: a starved socket (the scheduler leaving some sockets unserved while it serves
#      the others) is an error. Typical worst case here: 20-50 ms.
#   3. Echo class, 100 connections x 16 KiB with 10 in flight for 3 s (frames split across
#      reads, replies queued behind each other).
#   4. Broadcast class (Bench.Broadcast), 1000 connections in one room, 10 senders a round,
#      20-byte messages for 5 s: every connection must receive every message of every round.
# Each run starts a fresh demo and fails unless wsload counts some messages and no error.
# JOBS sets cargo's -j (default: cargo's own).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release ${JOBS:+-j "$JOBS"} -p examples --bin demo -p benches --bin wsload

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
else
  SERVER_CPU=() LOAD_CPU=()
fi
ECHO=/csp/user/MyApp.MyWebSocketServer.cls
BROADCAST=/csp/user/Bench.Broadcast.cls

# shellcheck source=benches/listening.sh
source benches/listening.sh

# smoke LABEL PIN(0|1) PATH WSLOAD_ARGS...
smoke() {
  local label=$1 pin=$2 path=$3
  shift 3
  local log server addr result messages errors close_errors
  local server_cpu=() load_cpu=()
  if [ "$pin" = 1 ]; then server_cpu=("${SERVER_CPU[@]}") load_cpu=("${LOAD_CPU[@]}"); fi
  log=$(mktemp)
  # The echo class must not time out on a connection waiting for its turn.
  "${server_cpu[@]}" target/release/demo --addr 127.0.0.1:0 --echo-timeout 100000 >"$log" 2>&1 &
  server=$!
  if ! addr=$(listening_addr "$log" "$server" 100); then
    echo "demo did not start:" >&2
    cat "$log" >&2
    kill "$server" 2>/dev/null || true
    return 1
  fi
  result=$("${load_cpu[@]}" target/release/wsload --url "ws://$addr$path" --server-pid "$server" --json "$@") || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
  echo "$result"
  messages=$(grep -o '"messages":[0-9]*' <<<"$result" | cut -d: -f2)
  errors=$(grep -o '"errors":[0-9]*' <<<"$result" | cut -d: -f2)
  close_errors=$(grep -o '"close_errors":[0-9]*' <<<"$result" | cut -d: -f2)
  if [ "${messages:-0}" -gt 0 ] && [ "${errors:-1}" -eq 0 ] && [ "${close_errors:-1}" -eq 0 ]; then
    echo "load smoke ($label): $messages messages verified, no errors"
  else
    echo "load smoke ($label) FAILED: messages=${messages:-?} errors=${errors:-?} close_errors=${close_errors:-?}" >&2
    return 1
  fi
}

smoke "echo, 50 x 64 B, 10 s" 0 "$ECHO" --mode echo --connections 50 --size 64 --duration 10
smoke "echo, 1000 x 20 B on one core, 5 s, max wait 0.5 s" 1 "$ECHO" --mode echo --connections 1000 --size 20 \
  --duration 5 --warmup 0.5 --max-wait 0.5
smoke "echo, 100 x 16 KiB, 10 in flight, 3 s" 1 "$ECHO" --mode echo --connections 100 --size 16384 --inflight 10 \
  --duration 3 --warmup 0.5
smoke "broadcast, 1000 connections x 20 B, 10 senders, 5 s" 1 "$BROADCAST" --mode broadcast --connections 1000 \
  --size 20 --senders 10 --duration 5 --warmup 0.5
