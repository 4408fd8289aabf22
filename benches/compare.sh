#!/usr/bin/env bash
# Side-by-side load benchmark (issue 6): our servers against tokio-tungstenite and
# fastwebsockets, and against the floor in the echo scenarios, same load (wsload), same run,
# with ratios; with permessage-deflate (issue 19), against Node's ws. How to read it, and the
# latest tables: benches/README.md.
#
#   bash benches/compare.sh            # ROUNDS=3 rounds of DURATION=10 s runs (~35 min)
#   QUICK=1 bash benches/compare.sh    # 1 round of 2 s runs (~6 min), for a first look
#   bash benches/compare.sh tls        # only the wss:// scenarios (~6 min)
#   bash benches/compare.sh deflate    # only the permessage-deflate scenarios (~10 min)
#   bash benches/compare.sh plain      # all but the tls and deflate ones
#
# Builds everything in release, then for each scenario and round starts each server in turn
# (fresh, on a free loopback port, pinned to CPU 0) and runs wsload against it (pinned to
# CPU 1); the order of the servers rotates from round to round. Tables of medians over the
# rounds go to stdout and target/bench/table.txt, the raw JSON lines to
# target/bench/results.jsonl. Environment: ROUNDS, DURATION (s), WARMUP (s), QUICK=1,
# JOBS (cargo -j, default 1), BUILD=0 (run the binaries already in target/release),
# IDLE_CONNS (default 5000), BROADCAST_CONNS (default 10000), SENDERS (default 10; the deflate
# broadcast: DEFLATE_SENDERS, default 1),
# CONNECTORS (TLS connect rate, default 32), CONNECT_ROUNDS (rounds of the connect scenario,
# default 7, at least ROUNDS: its rate moves by up to ±30 % from round to round, for every
# server, where an echo's moves by 5 %), ONLY (run only the scenarios whose name contains
# it; `ONLY=echo` includes tls-echo-*, `ONLY=echo bash benches/compare.sh plain` does not),
# BASELINE_DEMO (another build of the demo, run beside ours as `ours-demo-base`), METRICS_AB=1
# (the demo with --metrics beside it, as `ours-demo-metrics`). The `axum-*` scenario runs the
# echo class through axum-demo (hyper's connection, upgraded) beside the demo's own listener.
#
# The TLS scenarios (`tls-*`) run the demo with --tls-cert/--tls-key against
# peer-tungstenite-tls on one certificate that gen-cert makes (ECDSA P-256); wsload's client
# offers only TLS 1.3, TLS13_AES_128_GCM_SHA256 and X25519 (so both servers use them), ALPN
# http/1.1 and no session resumption.
#
# The deflate scenarios (`deflate-*`) load with chat lines (~300 B of JSON, each different:
# wsload --payload chat) and offer permessage-deflate as Chromium does (wsload --deflate),
# against the demo as it is (no context takeover either way), the demo --deflate-takeover
# (contexts kept both ways), the demo --no-deflate (the same load uncompressed: its wsload
# accepts the refusal, --deflate-optional; every other server must agree or the run fails),
# and Node's ws (benches/node/peer-ws.js, installed with `npm ci` on first use). Their tables
# add the WebSocket bytes read per delivered message and written per sent message.
set -euo pipefail
cd "$(dirname "$0")/.."

GROUP="${1:-}"
case "$GROUP" in
  "" | tls | deflate | plain) ;;
  *) echo "usage: benches/compare.sh [tls|deflate|plain]  (no argument: every scenario)" >&2; exit 2 ;;
esac

if [ "${QUICK:-0}" = 1 ]; then
  ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" WARMUP="${WARMUP:-0.5}"
fi
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-1}"
IDLE_CONNS="${IDLE_CONNS:-5000}"
BROADCAST_CONNS="${BROADCAST_CONNS:-10000}"
SENDERS="${SENDERS:-10}"
CONNECTORS="${CONNECTORS:-32}"
# One sender per round in the deflate broadcast: a server that compresses each copy (Node's
# ws, ours with --deflate-takeover) then still ends rounds inside the window at 10,000 sockets.
DEFLATE_SENDERS="${DEFLATE_SENDERS:-1}"
ONLY="${ONLY:-}"
T=target/release
OUT=target/bench
RESULTS="$OUT/results.jsonl"
TABLE="$OUT/table.txt"
CERTS="$OUT/tls"

# Each side of a run holds one socket per connection, plus a few.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((BROADCAST_CONNS + 100)) ] || [ "$(ulimit -n)" -lt $((IDLE_CONNS + 100)) ]; then
  echo "compare.sh: open-file limit $(ulimit -n) is too low for $BROADCAST_CONNS connections" >&2
  exit 1
fi
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1)
else
  echo "compare.sh: fewer than 2 CPUs, running unpinned (figures will be disturbed)" >&2
  SERVER_CPU=() LOAD_CPU=()
fi

if [ "${BUILD:-1}" = 1 ]; then
  echo "== building (release)" >&2
  cargo build --release -j "${JOBS:-1}" -p examples -p benches --bins >&2
fi

mkdir -p "$OUT"
: >"$RESULTS"
"$T/gen-cert" --out "$CERTS" >&2

# The servers: command line, echo path, broadcast path.
server_cmd() {
  case "$1" in
    ours-demo) echo "$T/demo --echo-timeout 100000" ;;
    ours-autobahn) echo "$T/autobahn-server" ;;
    tungstenite) echo "$T/peer-tungstenite" ;;
    fastwebsockets) echo "$T/peer-fastwebsockets" ;;
    floor) echo "$T/floor" ;;
    ours-demo-base) echo "$BASELINE_DEMO --echo-timeout 100000" ;;
    ours-axum) echo "$T/axum-demo --echo-timeout 100000" ;;
    ours-demo-metrics) echo "$T/demo --echo-timeout 100000 --metrics" ;;
    tungstenite-broadcast) echo "$T/peer-tungstenite-broadcast" ;;
    ours-demo-tls) echo "$T/demo --echo-timeout 100000 --tls-cert $CERTS/cert.pem --tls-key $CERTS/key.pem" ;;
    tungstenite-tls) echo "$T/peer-tungstenite-tls --cert $CERTS/cert.pem --key $CERTS/key.pem" ;;
    ours-demo-deflate) echo "$T/demo --echo-timeout 100000" ;;
    ours-demo-takeover) echo "$T/demo --echo-timeout 100000 --deflate-takeover" ;;
    ours-demo-plain) echo "$T/demo --echo-timeout 100000 --no-deflate" ;;
    # $mode: the scenario's (idle connections use the echo path).
    node-ws) echo "node benches/node/peer-ws.js --mode $([ "$mode" = broadcast ] && echo broadcast || echo echo)" ;;
  esac
}
# More wsload arguments for a server: the demo --no-deflate is loaded plain on purpose.
server_load_args() {
  case "$1" in
    ours-demo-plain) echo "--deflate-optional" ;;
  esac
}
# The URL and wsload's TLS option for a server: its name ends in -tls for wss://.
server_url() { # server mode address
  case "$1" in
    *-tls) echo "wss://$3$(server_path "$1" "$2") --ca $CERTS/ca.pem" ;;
    *) echo "ws://$3$(server_path "$1" "$2")" ;;
  esac
}
server_path() { # server mode
  case "$1:$2" in
    ours-demo*:broadcast) echo /csp/user/Bench.Broadcast.cls ;;
    ours-demo*:* | ours-axum:*) echo /csp/user/MyApp.MyWebSocketServer.cls ;;
    *) echo / ;;
  esac
}
ECHO_SERVERS=(ours-demo ours-autobahn tungstenite fastwebsockets)
# The echo scenarios also run the floor (benches/src/bin/floor.rs): a bare epoll loop that
# echoes in place with no runtime, about the least CPU per message an echo costs on this kernel.
FLOOR_SERVERS=(floor)
BROADCAST_SERVERS=(ours-demo tungstenite-broadcast)
# wss://: the demo's echo class against tokio-tungstenite over tokio-rustls; the idle scenario
# also runs the plain demo, for the memory TLS adds per connection.
TLS_SERVERS=(ours-demo-tls tungstenite-tls)
TLS_IDLE_SERVERS=(ours-demo ours-demo-tls tungstenite-tls)
# The demo's classes inside axum (axum-demo: hyper's connection, upgraded) against the demo's
# own listener, same echo class.
AXUM_SERVERS=(ours-demo ours-axum)
if ! "$T/demo" --help | grep -q -- --tls-cert; then
  echo "compare.sh: this demo has no --tls-cert; the TLS scenarios run tungstenite-tls alone" >&2
  TLS_SERVERS=(tungstenite-tls)
  TLS_IDLE_SERVERS=(ours-demo tungstenite-tls)
fi
# BASELINE_DEMO=path/to/an/older/demo adds it as `ours-demo-base` (A/B of a change, same run).
if [ -n "${BASELINE_DEMO:-}" ]; then
  ECHO_SERVERS+=(ours-demo-base)
  BROADCAST_SERVERS+=(ours-demo-base)
fi
# permessage-deflate: the demo in its three modes and Node's ws, on one load (see the header).
DEFLATE_SERVERS=(ours-demo-deflate ours-demo-takeover ours-demo-plain node-ws)
if ! "$T/demo" --help | grep -q -- --deflate-takeover; then
  echo "compare.sh: this demo has no --deflate-takeover; the deflate scenarios run without it" >&2
  DEFLATE_SERVERS=(ours-demo-deflate ours-demo-plain node-ws)
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "compare.sh: node or npm missing; the deflate scenarios run without Node's ws" >&2
  unset 'DEFLATE_SERVERS[-1]' # node-ws, last
fi
# METRICS_AB=1 adds the demo with --metrics as `ours-demo-metrics` (what counting costs).
if [ "${METRICS_AB:-0}" = 1 ]; then
  ECHO_SERVERS+=(ours-demo-metrics)
fi

# name|wsload arguments|label — the servers follow from --mode.
SCENARIOS=(
  "echo-100x20|--mode echo --connections 100 --size 20|echo 100 connections x 20 B, 1 in flight"
  "echo-1000x20|--mode echo --connections 1000 --size 20|echo 1000 connections x 20 B, 1 in flight"
  "echo-100x16k|--mode echo --connections 100 --size 16384|echo 100 connections x 16 KiB, 1 in flight"
  "echo-100x20-k10|--mode echo --connections 100 --size 20 --inflight 10|echo 100 connections x 20 B, 10 in flight"
  "idle-$IDLE_CONNS|--mode idle --connections $IDLE_CONNS|idle: $IDLE_CONNS open connections, server memory"
  "broadcast-${BROADCAST_CONNS}x20-s$SENDERS|--mode broadcast --connections $BROADCAST_CONNS --size 20 --senders $SENDERS|broadcast to $BROADCAST_CONNS connections x 20 B, $SENDERS senders per round"
  "axum-echo-100x20|--mode echo --connections 100 --size 20|echo 100 connections x 20 B through axum (axum-demo) and through the demo's listener"
  "tls-echo-100x20|--mode echo --connections 100 --size 20|wss echo 100 connections x 20 B, 1 in flight"
  "tls-echo-100x16k|--mode echo --connections 100 --size 16384|wss echo 100 connections x 16 KiB, 1 in flight"
  "tls-connect-c$CONNECTORS|--mode connect --connections $CONNECTORS|new wss connections (TCP, TLS 1.3 full handshake, upgrade, closing handshake), $CONNECTORS connectors"
  "tls-idle-$IDLE_CONNS|--mode idle --connections $IDLE_CONNS|idle: $IDLE_CONNS open connections (wss, and ours over ws beside), server memory"
  "deflate-echo-100|--mode echo --connections 100 --payload chat --deflate|permessage-deflate offered, echo 100 connections x chat lines (~300 B JSON), 1 in flight"
  "deflate-broadcast-$BROADCAST_CONNS|--mode broadcast --connections $BROADCAST_CONNS --senders $DEFLATE_SENDERS --payload chat --deflate|permessage-deflate offered, broadcast to $BROADCAST_CONNS connections x chat lines (~300 B JSON), $DEFLATE_SENDERS sender(s) per round"
  "deflate-idle-$IDLE_CONNS|--mode idle --connections $IDLE_CONNS --payload chat --deflate --idle-echo|permessage-deflate offered, idle: $IDLE_CONNS open connections after one chat line echoed on each, server memory"
)

# shellcheck source=benches/listening.sh
source "benches/listening.sh"

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT

# Starts server $1 on a free port; sets SERVER_PID and SERVER_ADDR.
start_server() {
  local log="$OUT/server-$1.log"
  if [ "$1" = node-ws ] && [ ! -d benches/node/node_modules/ws ]; then
    echo "== installing Node's ws (npm ci in benches/node)" >&2
    (cd benches/node && npm ci --silent) >&2
  fi
  # The previous run's log goes first: the server's shell truncates it only once it runs, and
  # until then the loop below would read the old server's address (every connection refused).
  rm -f "$log"
  # taskset and env exec the server, so $! is the server's own PID.
  # shellcheck disable=SC2046
  "${SERVER_CPU[@]}" env RUST_LOG=warn $(server_cmd "$1") --addr 127.0.0.1:0 >"$log" 2>&1 &
  SERVER_PID=$!
  SERVER_ADDR=$(listening_addr "$log" "$SERVER_PID" 100) && return 0
  echo "compare.sh: $1 did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

for scenario in "${SCENARIOS[@]}"; do
  IFS='|' read -r name args _ <<<"$scenario"
  if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then continue; fi
  case "$GROUP:$name" in
    tls:tls-* | deflate:deflate-*) ;;
    tls:* | deflate:* | plain:tls-* | plain:deflate-*) continue ;;
  esac
  mode=$(sed 's/.*--mode \([a-z]*\).*/\1/' <<<"$args")
  case "$name:$mode" in
    deflate-*) servers=("${DEFLATE_SERVERS[@]}") ;;
    tls-idle*) servers=("${TLS_IDLE_SERVERS[@]}") ;;
    tls-*) servers=("${TLS_SERVERS[@]}") ;;
    axum-*) servers=("${AXUM_SERVERS[@]}") ;;
    *:broadcast) servers=("${BROADCAST_SERVERS[@]}") ;;
    *:echo) servers=("${ECHO_SERVERS[@]}" "${FLOOR_SERVERS[@]}") ;;
    *) servers=("${ECHO_SERVERS[@]}") ;;
  esac
  rounds=$ROUNDS
  case "$name" in *connect*) rounds=$((${CONNECT_ROUNDS:-7} > ROUNDS ? ${CONNECT_ROUNDS:-7} : ROUNDS)) ;; esac
  for round in $(seq "$rounds"); do
    n=${#servers[@]}
    for i in $(seq 0 $((n - 1))); do
      server=${servers[$(((i + round - 1) % n))]}
      start_server "$server"
      # shellcheck disable=SC2046,SC2086
      if ! line=$("${LOAD_CPU[@]}" "$T/wsload" --url $(server_url "$server" "$mode" "$SERVER_ADDR") $args \
          $(server_load_args "$server") --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --json) || [ -z "$line" ]; then
        line='{"failed":true}'
      fi
      stop_server
      printf '{"scenario":"%s","server":"%s","round":%d,%s\n' "$name" "$server" "$round" "${line#\{}" >>"$RESULTS"
      printf '%-28s round %d  %-22s %s\n' "$name" "$round" "$server" \
        "$(grep -o '"msgs_per_s":[1-9][0-9.]*\|"bytes_per_conn":[0-9.-]\+\|"wire_in_per_msg":[0-9.]\+\|"errors":[0-9]\+\|"failed":true' <<<"$line" | tr '\n' ' ')" >&2
      # A run with errors says what they were (wsload's first few notes), and keeps its server's log.
      if ! grep -q '"errors":0,' <<<"$line"; then
        grep -o '"notes":\[[^]]*\]' <<<"$line" | sed 's/^/    /' >&2 || true
        cp "$OUT/server-$server.log" "$OUT/server-$server-$name-round$round.log"
      fi
    done
  done
done

LABELS=$(printf '%s\n' "${SCENARIOS[@]}")
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$LABELS" <<'PY' | tee "$TABLE"
import json, statistics, sys

results, rounds, duration, labels = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
label = {l.split("|")[0]: l.split("|")[2] for l in labels.splitlines() if l}
runs = [json.loads(l) for l in open(results) if l.strip()]

def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None

def num(x, fmt):
    return "-" if x is None else format(x, fmt)

def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}x"

order = []
for r in runs:
    if r["scenario"] not in order:
        order.append(r["scenario"])
print(f"WebSocket servers side by side: median of {rounds} round(s) (connect scenarios: of all their rounds), {duration} s windows; "
      "server on CPU 0, wsload on CPU 1")
for name in order:
    rows = [r for r in runs if r["scenario"] == name]
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    by = {s: [r for r in rows if r["server"] == s and not r.get("failed")] for s in servers}
    failed = {s: sum(1 for r in rows if r["server"] == s and r.get("failed")) for s in servers}
    errors = {s: sum(r.get("errors", 0) + r.get("close_errors", 0) for r in by[s]) for s in servers}
    print(f"\n== {name}: {label.get(name, '')}")
    ours = [s for s in servers if s.startswith("ours-")]
    peers = [s for s in servers if not s.startswith("ours-")]
    # A server over TLS (name ending in -tls) is compared with peers over TLS only.
    def same_transport(a, b):
        return a.endswith("-tls") == b.endswith("-tls")
    modes = {r.get("mode") for r in rows}
    deflate = name.startswith("deflate-")
    def deflate_pairs():
        # Each compressing server of ours against the same load uncompressed, then against
        # the peers (Node's ws).
        plain = "ours-demo-plain"
        compressing = [o for o in ours if o != plain]
        return [(o, plain) for o in compressing if plain in servers] + [(o, p) for o in compressing for p in peers]
    def negotiated():
        print("negotiated (first connection; connections that agreed / opened):")
        for s in servers:
            r = next(iter(by[s]), {})
            print(f"  {s:<22}{r.get('deflate') or 'nothing'}  ({r.get('deflate_connections', 0)}/{r.get('connected', 0)})")
    if "idle" in modes:
        print(f"{'server':<24}{'bytes/conn':>12}{'RSS after MiB':>15}{'errors':>8}")
        for s in servers:
            after = med(by[s], "rss_after")
            print(f"{s:<24}{num(med(by[s], 'bytes_per_conn'), ',.0f'):>12}"
                  f"{num(after / 2**20 if after else None, '.1f'):>15}{errors[s]:>8}"
                  + (f"  ({failed[s]} failed)" if failed[s] else ""))
        print(f"{'ours / peer':<40}{'bytes/conn':>12}")
        pairs = [(o, p) for o in ours for p in peers if same_transport(o, p)]
        # What TLS adds: a server over wss against itself over ws, in the same run.
        pairs += [(s, s[:-4]) for s in servers if s.endswith("-tls") and s[:-4] in servers]
        if deflate:
            pairs = deflate_pairs()
        for a, b in pairs:
            print(f"{a + ' / ' + b:<40}{ratio(med(by[a], 'bytes_per_conn'), med(by[b], 'bytes_per_conn')):>12}")
        if deflate:
            negotiated()
        continue
    connect = "connect" in modes
    lat = "round" if "broadcast" in modes else "new connection, to the 101" if connect else "echo"
    rate, cpu = ("conns/s", "CPU µs/conn") if connect else ("msgs/s", "CPU µs/msg")
    # Deflate scenarios: WebSocket bytes (frames with headers) read per delivered message and
    # written per sent message, on the load generator's sockets.
    wire = f"{'wire in B/msg':>15}{'wire out B/msg':>16}" if deflate else ""
    print(f"{'server':<24}{rate:>12}{'p50 µs':>10}{'p99 µs':>10}{cpu:>12}{wire}{'wsload CPU':>12}{'errors':>8}"
          f"   (latency per {lat})")
    for s in servers:
        share = med(by[s], "wsload_cpu_share")
        wire = (f"{num(med(by[s], 'wire_in_per_msg'), '.1f'):>15}{num(med(by[s], 'wire_out_per_msg'), '.1f'):>16}"
                if deflate else "")
        print(f"{s:<24}{num(med(by[s], 'msgs_per_s'), ',.0f'):>12}{num(med(by[s], 'p50_us'), ',.0f'):>10}"
              f"{num(med(by[s], 'p99_us'), ',.0f'):>10}{num(med(by[s], 'server_cpu_us_per_msg'), '.3f'):>12}{wire}"
              f"{num(share * 100 if share is not None else None, '.0f') + ' %':>12}{errors[s]:>8}"
              + (f"  ({failed[s]} failed)" if failed[s] else ""))
    rate, cpu = ("conns/s", "CPU/conn") if connect else ("msgs/s", "CPU/msg")
    wire = f"{'wire in':>10}{'wire out':>10}" if deflate else ""
    print(f"{'ours / peer':<40}{rate:>10}{cpu:>10}{wire}   ({rate} > 1: ours faster; {cpu} < 1: ours cheaper)")
    # Ours against every peer and the floor, then the floor against the peers: how far below
    # them any server could go here.
    pairs = [(o, p) for o in ours for p in peers if same_transport(o, p)]
    pairs += [("floor", p) for p in peers if "floor" in peers and p != "floor"]
    # Another build or entry of ours against the demo: an A/B in the same run.
    pairs += [(s, "ours-demo") for s in ("ours-axum", "ours-demo-base", "ours-demo-metrics")
              if s in servers and "ours-demo" in servers]
    if deflate:
        pairs = deflate_pairs()
    for a, b in pairs:
        wire = (f"{ratio(med(by[a], 'wire_in_per_msg'), med(by[b], 'wire_in_per_msg')):>10}"
                f"{ratio(med(by[a], 'wire_out_per_msg'), med(by[b], 'wire_out_per_msg')):>10}" if deflate else "")
        print(f"{a + ' / ' + b:<40}{ratio(med(by[a], 'msgs_per_s'), med(by[b], 'msgs_per_s')):>10}"
              f"{ratio(med(by[a], 'server_cpu_us_per_msg'), med(by[b], 'server_cpu_us_per_msg')):>10}{wire}")
    if deflate:
        negotiated()
PY
echo "raw results: $RESULTS; table: $TABLE" >&2
