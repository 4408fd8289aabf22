#!/usr/bin/env bash
# Installs what the tests need, skipping what is already there (safe to run again): Debian's
# redis-server (ws-cluster tests), chromium (browser tests) and openssl (the test CA of the wss
# interop and https browser checks, ci/test-cert.sh), rustfmt/clippy, the nightly
# toolchain's cargo-fuzz, Autobahn|Testsuite in a Python 2.7 virtualenv, Python `websockets`
# and Node `ws`/playwright-core for the interop and browser tests.
# Sourced by ci/test.sh (it exports AUTOBAHN_VENV and INTEROP_PYTHON for the steps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache="$HOME/.cache/ws-ci"
mkdir -p "$cache"

echo "== system packages (redis-server for ws-cluster tests, Chromium for the browser tests, openssl for test certificates)"
if ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null || ! command -v openssl >/dev/null; then
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq redis-server chromium openssl >/dev/null
fi

echo "== toolchains"
rustup show active-toolchain
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo +nightly --version
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

echo "== Autobahn|Testsuite (Python 2.7)"
export AUTOBAHN_VENV="$cache/autobahn-venv"
if [ ! -x "$AUTOBAHN_VENV/bin/wstest" ]; then
  PY2="$(pyenv root)/versions/2.7.18/bin/python"
  "$PY2" -m pip install --user -q virtualenv
  "$PY2" -m virtualenv -q "$AUTOBAHN_VENV"
  "$AUTOBAHN_VENV/bin/pip" install -q autobahntestsuite
fi

echo "== interop clients (Python websockets, Node ws, playwright-core)"
if [ ! -x "$cache/interop-venv/bin/python" ]; then
  python3 -m venv "$cache/interop-venv"
fi
"$cache/interop-venv/bin/pip" install -q -r ci/interop/requirements.txt
export INTEROP_PYTHON="$cache/interop-venv/bin/python"
npm ci --prefix ci/interop --no-audit --no-fund --silent
npm ci --prefix ci/browser --no-audit --no-fund --silent
