#!/usr/bin/env bash
# Interop: WebSocket clients nobody here wrote -- Python `websockets` and Node `ws` -- against our
# servers on 127.0.0.1:
# 1. autobahn-server's echo over ws://: text, binary, 1 MiB messages, fragmented messages,
#    ping/pong and a Close with code 4001 and a reason the server must echo back; then checks the
#    server's log shows each client's Close code and reason arrived intact.
# 2. demo --tls-cert/--tls-key (a throwaway CA from ci/test-cert.sh): the echo class over wss://
#    with each client trusting only that CA (text, binary, 20000-byte messages, fragments,
#    ping/pong, Close), and each client trusting another CA refusing the certificate.
# 3. axum-demo: the echo class served through axum, over ws://, from both clients.
# 4. demo over ws://: the echo class, with and without permessage-deflate offered.
# Every client offers permessage-deflate (both libraries' default) unless --no-deflate, and checks
# the 101 agreed to it (or, with --no-deflate, carries no Sec-WebSocket-Extensions) and that text,
# binary and 100 KB compressible messages (JSON text, binary) echo intact; Node also checks that
# the server's replies came compressed (bytes read on its socket).
#
# Installs nothing itself. Needs openssl and, from the repository root (ci/setup.sh does this):
#   python3 -m venv "$VENV" && "$VENV/bin/pip" install -r ci/interop/requirements.txt
#   npm ci --prefix ci/interop
# and runs as: INTEROP_PYTHON="$VENV/bin/python" bash ci/interop.sh
# Server logs: target/interop/{server,demo-tls,axum-demo,demo}.{log,err} (stdout, stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${INTEROP_PYTHON:-python3}"
OUT=target/interop
ECHO_CLASS=/csp/user/MyApp.MyWebSocketServer.cls
export PYTHONUTF8=1

cargo build --release -q -p examples --bin autobahn-server --bin demo --bin axum-demo
mkdir -p "$OUT"
bash ci/test-cert.sh "$OUT/tls"

pids=()
names=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME 'SED-EXPRESSION printing the port' COMMAND...: starts COMMAND with its output in
# $OUT/NAME.log and .err, waits (at most 10 s) for the port in its log, and sets $port.
start() {
  local name="$1" pattern="$2"
  shift 2
  : > "$OUT/$name.log"
  "$@" > "$OUT/$name.log" 2> "$OUT/$name.err" &
  local pid=$!
  pids+=("$pid")
  names+=("$name")
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n "$pattern" "$OUT/$name.log")
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$port" ]]; then
    echo "FAIL $name did not report its port within 10 s: $*"
    cat "$OUT/$name.log" "$OUT/$name.err"
    exit 1
  fi
  echo "== $name listening on 127.0.0.1:$port"
}

start server 's/^listening on 127\.0\.0\.1:\([0-9]\{1,5\}\)$/\1/p' \
  target/release/autobahn-server --addr 127.0.0.1:0
url="ws://127.0.0.1:$port/"
start demo-tls 's|^demo listening on https://127\.0\.0\.1:\([0-9]\{1,5\}\)/$|\1|p' \
  target/release/demo --addr 127.0.0.1:0 --tls-cert "$OUT/tls/cert.pem" --tls-key "$OUT/tls/key.pem"
wss_url="wss://127.0.0.1:$port$ECHO_CLASS"
start axum-demo 's|^axum-demo listening on http://127\.0\.0\.1:\([0-9]\{1,5\}\)/$|\1|p' \
  target/release/axum-demo --addr 127.0.0.1:0
axum_url="ws://127.0.0.1:$port$ECHO_CLASS"
start demo 's|^demo listening on http://127\.0\.0\.1:\([0-9]\{1,5\}\)/$|\1|p' \
  target/release/demo --addr 127.0.0.1:0
ws_url="ws://127.0.0.1:$port$ECHO_CLASS"

passed=0
failed=0
result() { # name status
  if [[ "$2" == 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}
# check NAME COMMAND...: runs a client (at most 60 s) and counts its exit status.
check() {
  local name="$1"
  shift
  echo "== $name"
  local rc=0
  timeout 60 "$@" || rc=$?
  result "$name (exit $rc)" "$rc"
}

check "Python websockets: autobahn-server over ws://" \
  "$PYTHON" ci/interop/python_client.py --url "$url"
check "Node ws: autobahn-server over ws://" \
  node ci/interop/node_client.js --url "$url"

echo "== Close frames as autobahn-server received them"
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

check "Python websockets: demo's echo class over wss:// (trusting the test CA)" \
  "$PYTHON" ci/interop/python_client.py --url "$wss_url" --profile echo-class --ca "$OUT/tls/ca.pem"
check "Node ws: demo's echo class over wss:// (trusting the test CA)" \
  node ci/interop/node_client.js --url "$wss_url" --profile echo-class --ca "$OUT/tls/ca.pem"
check "Python websockets: trusting another CA, refuses the demo's certificate" \
  "$PYTHON" ci/interop/python_client.py --url "$wss_url" --ca "$OUT/tls/other-ca.pem" --expect-refused
check "Node ws: trusting another CA, refuses the demo's certificate" \
  node ci/interop/node_client.js --url "$wss_url" --ca "$OUT/tls/other-ca.pem" --expect-refused

check "Python websockets: axum-demo's echo class over ws://" \
  "$PYTHON" ci/interop/python_client.py --url "$axum_url" --profile echo-class
check "Node ws: axum-demo's echo class over ws://" \
  node ci/interop/node_client.js --url "$axum_url" --profile echo-class

check "Python websockets: demo's echo class over ws:// (permessage-deflate)" \
  "$PYTHON" ci/interop/python_client.py --url "$ws_url" --profile echo-class
check "Node ws: demo's echo class over ws:// (permessage-deflate)" \
  node ci/interop/node_client.js --url "$ws_url" --profile echo-class
check "Python websockets: demo's echo class over ws://, offering no extension" \
  "$PYTHON" ci/interop/python_client.py --url "$ws_url" --profile echo-class --no-deflate
check "Node ws: demo's echo class over ws://, offering no extension" \
  node ci/interop/node_client.js --url "$ws_url" --profile echo-class --no-deflate

for i in "${!pids[@]}"; do
  if kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "ok   ${names[$i]} still running"; result "${names[$i]}" 0
  else
    result "${names[$i]} exited during the run" 1
  fi
done

if [[ $failed != 0 ]]; then
  for name in "${names[@]}"; do
    echo "-- $name.log (last 40 lines):"; tail -n 40 "$OUT/$name.log"
    echo "-- $name.err (last 40 lines):"; tail -n 40 "$OUT/$name.err"
  done
fi
echo "interop: $passed passed, $failed failed"
[[ $failed == 0 ]]
