#!/usr/bin/env bash
# The admin page in headless Chromium: starts the demo with --metrics and --admin-token, and
# ci/browser/admin.test.js (Node's test runner, playwright-core on Debian's Chromium) puts a
# known echo load on it, checks the numbers /admin shows, its presence list and that its chart
# moves, and saves target/admin-page.png. Then /metrics is scraped (Node's fetch) and must agree.
#
# Needs (CI installs them first): apt-get install -y chromium; npm ci --prefix ci/browser.
# Run from anywhere: bash ci/admin-page.sh   (CHROMIUM=/path/to/chromium for another binary)
# Demo output: target/admin-page/demo.log and demo.err.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/admin-page
DEMO=target/release/demo
export ADMIN_TOKEN="admin-$RANDOM-$RANDOM"

cargo build --release -q -p examples --bin demo
mkdir -p "$OUT"
rm -f target/admin-page.png
# A long echo timeout: the echo class writes nothing the test did not ask for.
"$DEMO" --addr 127.0.0.1:0 --metrics --admin-token "$ADMIN_TOKEN" --echo-timeout 600 \
  > "$OUT/demo.log" 2> "$OUT/demo.err" &
demo_pid=$!
cleanup() {
  kill -INT "$demo_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$demo_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$demo_pid" 2>/dev/null || true
  wait "$demo_pid" 2>/dev/null || true
}
trap cleanup EXIT

port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's|^demo listening on http://127\.0\.0\.1:\([0-9]\{1,5\}\)/$|\1|p' "$OUT/demo.log")
  [[ -n "$port" ]] && break
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$port" ]]; then
  echo "FAIL demo did not report its address within 10 s"
  cat "$OUT/demo.log" "$OUT/demo.err"
  exit 1
fi
export DEMO_URL="http://127.0.0.1:$port"
echo "== demo listening on $DEMO_URL (metrics and admin page on)"

rc=0
timeout 120 node --test ci/browser/admin.test.js || rc=$?
if [[ "$rc" != 0 ]]; then
  echo "FAIL admin page test (exit $rc); demo stderr (last 40 lines):"
  tail -n 40 "$OUT/demo.err"
  exit "$rc"
fi

# The same load as Prometheus sees it.
node -e 'fetch(process.argv[1]).then((r) => r.ok ? r.text() : Promise.reject(r.status))
  .then((t) => process.stdout.write(t))' "$DEMO_URL/metrics" > "$OUT/metrics.txt"
for want in 'ws_messages_received_total{class="MyApp.MyWebSocketServer"} 900' \
            'ws_bytes_sent_total{class="MyApp.MyWebSocketServer"} 90000' \
            'ws_connections_closed_total{class="MyApp.MyWebSocketServer",code="4001"} 1'; do
  if ! grep -qxF "$want" "$OUT/metrics.txt"; then
    echo "FAIL /metrics lacks: $want"
    grep '^ws_' "$OUT/metrics.txt"
    exit 1
  fi
done
echo "== /metrics agrees with the page ($OUT/metrics.txt)"
echo "== screenshot: $(pwd)/target/admin-page.png"
