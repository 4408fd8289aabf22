#!/usr/bin/env bash
# Runs the Autobahn|Testsuite against our server (fuzzingclient -> autobahn-server) and our
# client (autobahn-client -> fuzzingserver), and fails unless every case is OK/INFORMATIONAL
# with an OK close behavior. Sections 12 and 13 are permessage-deflate (both binaries
# negotiate it by default): each of their 12 groups sends 1000 messages per case at 18 sizes
# up to 128 KiB, which wstest (Python 2) compresses for half an hour per role. By default the
# cases up to 8 KiB and one auto-fragmented case of each group run (84 of 216);
# AUTOBAHN_FULL=1 runs all of them (give it AUTOBAHN_TIMEOUT=3600).
# Needs: wstest ($WSTEST, default $AUTOBAHN_VENV/bin/wstest) and release builds of the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOBAHN_VENV="${AUTOBAHN_VENV:-$HOME/.cache/ws-autobahn-venv}"
WSTEST="${WSTEST:-$AUTOBAHN_VENV/bin/wstest}"
LIMIT="${AUTOBAHN_TIMEOUT:-600}"
OUT="$(realpath -m "${AUTOBAHN_REPORTS:-target/autobahn}")"
BIN=target/release
which_mode="${1:-both}"
if [ "${AUTOBAHN_FULL:-0}" = 1 ]; then
  EXCLUDE='[]'
else
  # Cases 7-18 of every compression group but 11 (8 KiB auto-fragmented to 256 B).
  EXCLUDE=$(python3 -c '
import json
groups = ["12.%d" % g for g in range(1, 6)] + ["13.%d" % g for g in range(1, 8)]
print(json.dumps(["%s.%d" % (g, c) for g in groups for c in range(7, 19) if c != 11]))')
fi

cargo build --release -q -p examples --bin autobahn-server --bin autobahn-client
rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 never opened"; return 1
}

status=0
if [[ "$which_mode" == both || "$which_mode" == server ]]; then
  port=$(free_port)
  "$BIN/autobahn-server" --addr "127.0.0.1:$port" > "$OUT/server.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  cat > "$OUT/fuzzingclient.json" <<JSON
{"outdir": "$OUT/server", "servers": [{"agent": "ws-server", "url": "ws://127.0.0.1:$port"}],
 "cases": ["*"], "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
JSON
  echo "== Autobahn fuzzingclient -> autobahn-server (127.0.0.1:$port)"
  (cd "$OUT" && timeout "$LIMIT" "$WSTEST" -m fuzzingclient -s fuzzingclient.json > fuzzingclient.log 2>&1) \
    || { echo "wstest fuzzingclient failed or timed out"; tail -20 "$OUT/fuzzingclient.log"; status=1; }
  python3 ci/autobahn_summary.py "$OUT/server/index.json" || status=1
fi

if [[ "$which_mode" == both || "$which_mode" == client ]]; then
  port=$(free_port)
  cat > "$OUT/fuzzingserver.json" <<JSON
{"url": "ws://127.0.0.1:$port", "outdir": "$OUT/client",
 "cases": ["*"], "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
JSON
  (cd "$OUT" && exec "$WSTEST" -m fuzzingserver -s fuzzingserver.json > fuzzingserver.log 2>&1) &
  pids+=($!)
  wait_port "$port"
  echo "== Autobahn fuzzingserver (127.0.0.1:$port) <- autobahn-client"
  timeout "$LIMIT" "$BIN/autobahn-client" --url "ws://127.0.0.1:$port" --agent ws-client > "$OUT/client.log" 2>&1 \
    || { echo "autobahn-client failed or timed out"; tail -20 "$OUT/client.log"; status=1; }
  python3 ci/autobahn_summary.py "$OUT/client/index.json" || status=1
fi
exit $status
