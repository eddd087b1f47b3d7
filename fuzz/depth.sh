#!/usr/bin/env bash
# Runs fuzz targets at depth: each until RUNS executions or SECONDS seconds,
# whichever comes first, on the corpus kept from earlier runs, and prints
# one line per target for docs/fuzzing.md (executions, time, coverage).
#
#   fuzz/depth.sh [RUNS] [SECONDS] [TARGET...]   (default 10000000 1800, all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10000000}"
seconds="${2:-1800}"
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(headers mime mime_differential cms mdn receive config)

cargo run -q -p as2-connector --example fuzz_seeds -- fuzz/corpus
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/artifacts
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log="fuzz/artifacts/$target.depth.log"
  start=$(date +%s)
  if ! (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- \
        -runs="$runs" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (log $log, inputs in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  took=$(( $(date +%s) - start ))
  executions=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  coverage=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log" | tail -n 1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
  features=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log" | tail -n 1 | sed -E 's/.*ft: ([0-9]+).*/\1/')
  rss=$(grep -E '^stat::peak_rss_mb' "$log" | awk '{print $2}')
  echo "| $target | $executions | ${took} s | $coverage | $features | $rss MB | none |"
done
