#!/usr/bin/env bash
# Runs every fuzz target for a few seconds on seeds the engine writes.
#
#   fuzz/smoke.sh [SECONDS_PER_TARGET]      (default 10)
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the pinned
# stable toolchain accept them, as rustls' CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

echo "fuzz: writing seeds to fuzz/corpus"
cargo run -q -p as2-connector --example fuzz_seeds -- fuzz/corpus

export RUSTC_BOOTSTRAP=1
for target in headers mime cms mdn receive config; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  log="fuzz/artifacts/$target.log"
  mkdir -p fuzz/artifacts
  if ! (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (log $log, inputs in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed "s/^/  $target /"
done
echo "fuzz: all targets ran clean"
