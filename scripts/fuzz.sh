#!/usr/bin/env bash
# Build the libFuzzer targets in native/fuzz with clang and run each for a bounded time.
#   npm run fuzz -- --seconds 20      (CI: short run)
#   npm run fuzz -- --seconds 3600    (a long run; corpora stay in build-fuzz/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20
while [ $# -gt 0 ]; do case "$1" in --seconds) seconds=$2; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
ls native/fuzz/*.cc >/dev/null 2>&1 || { echo "fuzz: no targets in native/fuzz"; exit 0; }
CXX=clang++ CC=clang cmake -S native -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j 2 >/dev/null
for src in native/fuzz/*.cc; do
  name=$(basename "$src" .cc)
  mkdir -p "build-fuzz/corpus/$name"
  echo "fuzz: $name for ${seconds}s"
  "build-fuzz/$name" -max_total_time="$seconds" -print_final_stats=1 "build-fuzz/corpus/$name" 2>&1 | grep -E '^(stat::number_of_executed_units|==|SUMMARY|INFO: Done)' || true
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz: $name found a failure"; exit 1; }
done
