#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Every step must pass.
# First installs what the tests need, skipping what is there (ci/setup.sh): rustfmt/clippy,
# the nightly toolchain with cargo-fuzz, Autobahn's wstest ($AUTOBAHN_VENV), Python with
# `websockets` ($INTEROP_PYTHON), Node with `ws` (ci/interop/node_modules), Chromium and
# playwright-core (ci/browser), openssl (throwaway test CAs, ci/test-cert.sh), redis-server
# (the ws-cluster tests start their own on a free loopback port). SKIP_SETUP=1 skips that.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  # shellcheck source=ci/setup.sh
  source ci/setup.sh
fi

# CI checks behaviour, not speed: release builds here skip the fat LTO and single codegen
# unit of the release profile (benchmarks, benches/compare.sh, build with them), which cost
# about as much again as the compile itself, once per binary.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-false}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-16}"

steps=0
started=$(date +%s)
step() {
  steps=$((steps + 1))
  printf '\n==== %s  (at %d s)\n' "$*" "$(( $(date +%s) - started ))"
}

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace (with axum-demo on one port and demo over https/wss: examples/tests/axum_demo.rs, demo_tls.rs)"
cargo test --workspace

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "ws-proto builds as no_std (+alloc)"
cargo build -p ws-proto --no-default-features

step "benches build (criterion benches, wsload and the peers; clippy has checked them)"
cargo build --workspace --benches --bins

step "Autobahn|Testsuite: server and client"
bash ci/autobahn.sh both

step "Interop: Python websockets and Node ws against autobahn-server (ws://), demo --tls-cert (wss://, a test CA; another CA refused) and axum-demo (ws://)"
bash ci/interop.sh

step "Load smoke: wsload against the demo's echo and broadcast classes (1000 conns on one core: no echo over 0.5 s), zero errors"
bash ci/load-smoke.sh

step "Hostile clients against the demo (ping flood, slow consumers, slow-loris, SIGTERM/SIGINT, cross-site Origin, late handshake), with the server's RSS"
cargo clippy -p examples --test hostile -- -D warnings
cargo test --release -p examples --test hostile -- --test-threads=1 --nocapture 2>&1 | tee target/hostile.log
grep 'hostile: ' target/hostile.log > target/hostile-figures.txt || true

step "Browser: the chat page in headless Chromium from demo (http), demo --tls-cert (https, wss:// socket) and axum-demo (http)"
bash ci/browser.sh

step "Browser: the admin page under a known load in headless Chromium (screenshot: target/admin-page.png)"
bash ci/admin-page.sh

step "Fuzz smoke (${FUZZ_SECONDS:-30} s per target)"
bash ci/fuzz-smoke.sh

printf '\nall test steps passed in %d s\n' "$(( $(date +%s) - started ))"
echo "steps: $steps passed, 0 failed"
