#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 30) each, starting from the
# committed seeds in fuzz/seeds/<target>, and stops at the first crash (libFuzzer leaves the
# input in fuzz/artifacts/<target>/). Needs the nightly toolchain and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${FUZZ_SECONDS:-30}"

cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  seeds=()
  if [ -d "seeds/$target" ]; then seeds=("seeds/$target"); fi
  echo "== fuzz $target for ${SECONDS_EACH}s"
  # New inputs go to the first corpus directory; the seeds are only read.
  if ! cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>"corpus/$target.log"; then
    tail -n 60 "corpus/$target.log"
    echo "fuzz target $target crashed; input in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units)' "corpus/$target.log" || true
done
echo "all fuzz targets ran ${SECONDS_EACH}s without a crash"
