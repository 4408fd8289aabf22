#!/usr/bin/env bash
# User-space instructions per echoed message, counted by valgrind's callgrind: a figure that
# does not move with the VM's placement of its CPUs or with the load on the machine, for
# comparing the servers' own code (the kernel's TCP work, most of a loopback echo's CPU, is
# not counted; see compare.sh for that).
#
#   bash benches/instructions.sh        # ~2 min; needs valgrind (apt-get install valgrind)
#
# Each server runs under callgrind (pinned to CPU 0) twice, answering wsload's single
# connection (1 message in flight) for SHORT and then LONG seconds; the difference of the two
# runs' instruction totals over the difference of their message counts is the cost of one
# echo, free of start-up and handshake. Environment: SIZES (default "20 16384"), SHORT (2),
# LONG (5). tokio-tungstenite is left out: under valgrind it answers ~200 echoes a second, with
# most of its instructions spent between messages.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${SIZES:-20 16384}"
SHORT="${SHORT:-2}"
LONG="${LONG:-5}"
T=target/release
OUT=target/bench/callgrind
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }

echo "== building (release)" >&2
cargo build --release -j "${JOBS:-1}" -p examples -p benches --bins >&2
mkdir -p "$OUT"

# name|command|path
SERVERS=(
  "ours-demo|$T/demo --echo-timeout 100000|/csp/user/MyApp.MyWebSocketServer.cls"
  "ours-autobahn|$T/autobahn-server|/"
  "fastwebsockets|$T/peer-fastwebsockets|/"
  "floor|$T/floor|/"
)

# shellcheck source=benches/listening.sh
source "benches/listening.sh"

PID=
# (an if, not `[ ] &&`: as the EXIT trap, a false test would become the script's exit status)
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap stop EXIT

# run NAME COMMAND PATH SIZE SECONDS -> prints "messages instructions"
run() {
  local out="$OUT/$1-$4-$5.out" log="$OUT/$1.log" addr
  rm -f "$out" "$log"
  # shellcheck disable=SC2086
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" $2 --addr 127.0.0.1:0 >"$log" 2>&1 &
  PID=$!
  addr=$(listening_addr "$log" "$PID" 300) || { echo "instructions.sh: $1 did not start; its log:" >&2; cat "$log" >&2; exit 1; }
  local line
  line=$(taskset -c 1 "$T/wsload" --url "ws://$addr$3" --connections 1 --size "$4" --duration "$5" --warmup 0.2 --json)
  stop # callgrind writes its totals when the server exits
  local messages instructions
  messages=$(grep -o '"messages":[0-9]*' <<<"$line" | cut -d: -f2)
  instructions=$(grep -m1 '^summary:' "$out" | awk '{print $2}')
  [ -n "$messages" ] && [ -n "$instructions" ] || { echo "instructions.sh: no figures from $1 ($line)" >&2; exit 1; }
  echo "$messages $instructions"
}

printf '%-16s %8s %12s %10s\n' server size "instr/echo" "/ fastws"
for size in $SIZES; do
  declare -A per=()
  for spec in "${SERVERS[@]}"; do
    IFS='|' read -r name cmd path <<<"$spec"
    read -r m1 i1 < <(run "$name" "$cmd" "$path" "$size" "$SHORT")
    read -r m2 i2 < <(run "$name" "$cmd" "$path" "$size" "$LONG")
    [ "$m2" -gt "$m1" ] || { echo "instructions.sh: $name answered no more in $LONG s than in $SHORT s" >&2; exit 1; }
    per[$name]=$(( (i2 - i1) / (m2 - m1) ))
  done
  for spec in "${SERVERS[@]}"; do
    name=${spec%%|*}
    printf '%-16s %8s %12s %10s\n' "$name" "$size" "${per[$name]}" \
      "$(awk -v a="${per[$name]}" -v b="${per[fastwebsockets]}" 'BEGIN { printf "%.2f", a / b }')"
  done
  unset per
done
