#!/usr/bin/env bash
# Build the libFuzzer targets in native/fuzz with clang and run each for a bounded time.
#   npm run fuzz -- --seconds 20      (CI: short run)
#   npm run fuzz -- --seconds 3600    (a long run; corpora stay in build-fuzz/corpus)
# A crash, sanitizer report, leak, timeout or out-of-memory fails the script (exit 1); the
# reproducer is left in build-fuzz/artifacts/ and the fuzzer's log in build-fuzz/<name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20
while [ $# -gt 0 ]; do case "$1" in --seconds) seconds=$2; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
case "$seconds" in ''|*[!0-9]*) echo "fuzz: --seconds needs a whole number" >&2; exit 2;; esac
ls native/fuzz/*.cc >/dev/null 2>&1 || { echo "fuzz: no targets in native/fuzz"; exit 0; }
CXX=clang++ CC=clang cmake -S native -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j 2 >/dev/null
mkdir -p build-fuzz/artifacts
for src in native/fuzz/*.cc; do
  name=$(basename "$src" .cc)
  mkdir -p "build-fuzz/corpus/$name"
  # A target may come with a seed generator (native/fuzz/<name>_seeds.py) for an empty corpus.
  if [ -f "native/fuzz/${name}_seeds.py" ] && [ -z "$(ls -A "build-fuzz/corpus/$name")" ]; then
    python3 "native/fuzz/${name}_seeds.py" "build-fuzz/corpus/$name"
  fi
  log="build-fuzz/$name.log"
  echo "fuzz: $name for ${seconds}s"
  status=0
  # -timeout: one input may take at most 10 s; the outer timeout bounds the whole run even
  # if the fuzzer itself hangs.
  timeout --kill-after=10 $((seconds + 120)) "build-fuzz/$name" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$name-" \
    "build-fuzz/corpus/$name" >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|SUMMARY|Done )|^==[0-9]+==' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $name failed (exit $status); last lines of $log:"
    tail -n 40 "$log"
    ls build-fuzz/artifacts/"$name"-* 2>/dev/null || true
    exit 1
  fi
done
echo "fuzz: all targets ran ${seconds}s without a failure"
