#!/usr/bin/env bash
# Browser test: Debian's Chromium (driven by playwright-core, which never downloads a browser)
# opens the chat page (examples/static/chat.html) in two separate browser contexts and checks
# rooms, /nick renames, chat lines, the online list and the socket URL the page opened
# (ci/browser/chat.test.js, run with Node's built-in test runner). Three servers, in turn:
# 1. demo over http (ws:// sockets);
# 2. demo --tls-cert/--tls-key over https with a throwaway CA (ci/test-cert.sh): the page's
#    socket must be wss://; Chromium trusts only that server's key (DEMO_SPKI), nothing else;
# 3. axum-demo over http: the page and the chat class served through an axum Router.
#
# Installs nothing itself. Needs, from the repository root (CI installs these first):
#   apt-get install -y chromium openssl
#   npm ci --prefix ci/browser
# and runs as: bash ci/browser.sh   (CHROMIUM=/path/to/chromium to use another binary)
# Server output: target/browser/{demo,demo-tls,axum-demo}.{log,err} (stdout, stderr).
# Screenshots of the first page at the end: target/browser/{chat,chat-https,chat-axum}.png.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/browser

cargo build --release -q -p examples --bin demo --bin axum-demo
mkdir -p "$OUT"
rm -f "$OUT"/*.png
bash ci/test-cert.sh "$OUT/tls"
# The server key's SPKI hash, for Chromium's --ignore-certificate-errors-spki-list.
spki=$(openssl x509 -in "$OUT/tls/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)

server_pid=""
stop_server() {
  [[ -n "$server_pid" ]] || return 0
  # The servers shut down gracefully on SIGTERM (SIGINT may be ignored by a background job of
  # a non-interactive shell); SIGKILL if still there after 5 s.
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap stop_server EXIT

# chat NAME SHOT 'LISTENING-PREFIX' [SPKI] -- COMMAND...: starts COMMAND (output in
# $OUT/NAME.log/.err), waits at most 10 s for 'PREFIX127.0.0.1:PORT/' in its log, runs the
# browser test against that URL (at most 120 s), stops the server; the test's status counts.
failed=0
chat() {
  local name="$1" shot="$2" prefix="$3" key="$4"
  shift 5
  : > "$OUT/$name.log"
  "$@" > "$OUT/$name.log" 2> "$OUT/$name.err" &
  server_pid=$!
  local addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n "s|^${prefix}\(127\.0\.0\.1:[0-9]\{1,5\}\)/\$|\1|p" "$OUT/$name.log")
    [[ -n "$addr" ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$addr" ]]; then
    echo "FAIL $name did not report '${prefix}127.0.0.1:PORT/' within 10 s"
    cat "$OUT/$name.log" "$OUT/$name.err"
    stop_server
    failed=$((failed + 1))
    return
  fi
  local url="${prefix##* }$addr"   # the scheme ends the prefix: http(s)://127.0.0.1:PORT
  echo "== $name: chat page at $url/"
  local rc=0
  DEMO_URL="$url" DEMO_SPKI="$key" SHOT="$shot" timeout 120 node --test ci/browser/chat.test.js || rc=$?
  if [[ "$rc" != 0 ]]; then
    echo "FAIL browser test against $name (exit $rc); its output (last 40 lines of stdout, then stderr):"
    tail -n 40 "$OUT/$name.log" "$OUT/$name.err"
    failed=$((failed + 1))
  fi
  stop_server
}

chat demo chat 'demo listening on http://' '' -- \
  target/release/demo --addr 127.0.0.1:0
chat demo-tls chat-https 'demo listening on https://' "$spki" -- \
  target/release/demo --addr 127.0.0.1:0 --tls-cert "$OUT/tls/cert.pem" --tls-key "$OUT/tls/key.pem"
chat axum-demo chat-axum 'axum-demo listening on http://' '' -- \
  target/release/axum-demo --addr 127.0.0.1:0

echo "browser: $((3 - failed)) of 3 servers passed"
[[ $failed == 0 ]]
