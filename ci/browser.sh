#!/usr/bin/env bash
# Browser test: Debian's Chromium (driven by playwright-core, which never downloads a browser)
# opens the demo's chat page (examples/static/chat.html) in two separate browser contexts and
# checks rooms, /nick renames, chat lines and the online list (ci/browser/chat.test.js, run with
# Node's built-in test runner).
#
# Installs nothing itself. Needs, from the repository root (CI installs these first):
#   apt-get install -y chromium
#   npm ci --prefix ci/browser
# and runs as: bash ci/browser.sh   (CHROMIUM=/path/to/chromium to use another binary)
# Demo output: target/browser/demo.log (stdout) and demo.err (stderr).
# Screenshot of the first page at the end: target/browser/chat.png.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/browser
DEMO=target/release/demo

cargo build --release -q -p examples --bin demo
mkdir -p "$OUT"
rm -f "$OUT"/*.png
: > "$OUT/demo.log"
"$DEMO" --addr 127.0.0.1:0 > "$OUT/demo.log" 2> "$OUT/demo.err" &
demo_pid=$!
cleanup() {
  # The demo shuts down gracefully on SIGINT (Ctrl-C); SIGKILL if it is still there after 5 s.
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
  echo "FAIL demo did not report 'demo listening on http://127.0.0.1:PORT/' within 10 s"
  cat "$OUT/demo.log" "$OUT/demo.err"
  exit 1
fi
export DEMO_URL="http://127.0.0.1:$port"
echo "== demo listening on $DEMO_URL"

rc=0
timeout 120 node --test ci/browser/chat.test.js || rc=$?
if [[ "$rc" != 0 ]]; then
  echo "FAIL browser test (exit $rc); demo output (last 40 lines of stdout, then stderr):"
  tail -n 40 "$OUT/demo.log" "$OUT/demo.err"
fi
exit "$rc"
