#!/usr/bin/env bash
# Interop: WebSocket clients nobody here wrote -- Python `websockets` and Node `ws` -- against our
# echo server (autobahn-server) on 127.0.0.1: text, binary, 1 MiB messages, fragmented messages,
# ping/pong and a Close with code 4001 and a reason the server must echo back. Then checks the
# server's log shows each client's Close code and reason arrived intact.
#
# Installs nothing itself. Needs, from the repository root (CI's .ci/run does this):
#   python3 -m venv "$VENV" && "$VENV/bin/pip" install -r ci/interop/requirements.txt
#   npm ci --prefix ci/interop
# and runs as: INTEROP_PYTHON="$VENV/bin/python" bash ci/interop.sh
# Server log: target/interop/server.log (stdout) and server.err (stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${INTEROP_PYTHON:-python3}"
OUT=target/interop
SERVER=target/release/autobahn-server
export PYTHONUTF8=1

cargo build --release -q -p examples --bin autobahn-server
mkdir -p "$OUT"
: > "$OUT/server.log"
"$SERVER" --addr 127.0.0.1:0 > "$OUT/server.log" 2> "$OUT/server.err" &
server_pid=$!
cleanup() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]\{1,5\}\)$/\1/p' "$OUT/server.log")
  [[ -n "$port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "FAIL autobahn-server did not report 'listening on 127.0.0.1:PORT' within 10 s"
  cat "$OUT/server.log" "$OUT/server.err"
  exit 1
fi
url="ws://127.0.0.1:$port/"
echo "== autobahn-server listening on 127.0.0.1:$port"

passed=0
failed=0
result() { # name status
  if [[ "$2" == 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}

echo "== Python websockets client"
rc=0; timeout 60 "$PYTHON" ci/interop/python_client.py --url "$url" || rc=$?
result "python client (exit $rc)" "$rc"

echo "== Node ws client"
rc=0; timeout 60 node ci/interop/node_client.js --url "$url" || rc=$?
result "node client (exit $rc)" "$rc"

echo "== Close frames as the server received them"
# The server prints the reason with Rust's {:?}: quoted, printable non-ASCII kept as is.
for line in 'closed by peer: code=4001 reason="bye from python ✓"' \
            'closed by peer: code=4001 reason="bye from node ✓"'; do
  found=1
  for _ in $(seq 1 50); do  # the server may print just after the client saw the TCP close
    if grep -qxF -- "$line" "$OUT/server.log"; then found=0; break; fi
    sleep 0.1
  done
  if [[ $found == 0 ]]; then echo "ok   server log: $line"; fi
  result "server log lacks: $line" "$found"
done

if kill -0 "$server_pid" 2>/dev/null; then
  echo "ok   server still running"; result "server" 0
else
  result "server exited during the run" 1
fi

if [[ $failed != 0 ]]; then
  echo "-- server.log:"; cat "$OUT/server.log"
  echo "-- server.err:"; cat "$OUT/server.err"
fi
echo "interop: $passed passed, $failed failed"
[[ $failed == 0 ]]
