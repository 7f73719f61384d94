#!/usr/bin/env bash
# A forwarding load (scripts/sanitize-load.ts: two TAPs and a JavaScript port on a hub,
# TCP + UDP + ping floods, set_link flapping, netdev_del/netdev_add, a stalling consumer)
# run against the native addon under AddressSanitizer + UndefinedBehaviorSanitizer, then a
# shorter run under valgrind memcheck.
#
#   scripts/sanitize-load.sh [--seconds N] [--valgrind-seconds M]   (defaults 120 and 30;
#                                                                  M = 0 skips valgrind)
#
# The sanitized addon is built from a copy of the sources in build-sanitize/ with its own
# node-gyp build dir, so the shared build/ (the normal addon) is never touched; node loads
# it through node-gyp-build's NETPLANE_PREBUILD override. Node itself is not instrumented:
# libasan is preloaded (the addon needs its runtime first in the process) and leak detection
# is off under ASan because Node and V8 keep memory at exit by design; leaks are what the
# valgrind run looks for, in frames of the addon only. Any ASan/UBSan report, any valgrind
# error or definite leak in the addon, or a failing load fails the script (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=120
vg_seconds=30
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2;;
    --valgrind-seconds) vg_seconds=$2; shift 2;;
    *) echo "sanitize-load: unknown option $1" >&2; exit 2;;
  esac
done
for n in "$seconds" "$vg_seconds"; do
  case "$n" in ''|*[!0-9]*) echo "sanitize-load: durations must be whole seconds" >&2; exit 2;; esac
done

root=$PWD
dir=$root/build-sanitize
log=$dir/logs
mkdir -p "$log"

# ---- build: a private copy of binding.gyp + native/, built with -Dsanitize=1 ------------
src=$dir/src
rm -rf "$src"
mkdir -p "$src"
cp -r binding.gyp native "$src/"
echo "sanitize-load: building the addon with ASan + UBSan in ${src#$root/}"
if ! (cd "$src" && npx --no-install node-gyp rebuild -j 2 -- -Dsanitize=1 >"$log/build.log" 2>&1); then
  tail -n 30 "$log/build.log"
  echo "sanitize-load: build failed"
  exit 1
fi
addon=$src/build/Release/netplane.node
# Refuse to report "clean" for an addon that is not instrumented.
# (grep -c reads all of nm's output: grep -q would close the pipe early under pipefail.)
if [ "$(nm -D "$addon" | grep -c '__asan_report')" -eq 0 ]; then
  echo "sanitize-load: $addon has no ASan instrumentation"
  exit 1
fi
export NETPLANE_PREBUILD=$src

status=0

# ---- ASan + UBSan ------------------------------------------------------------------------
echo "sanitize-load: ${seconds}s forwarding load under ASan + UBSan"
asan_log=$log/asan
rm -f "$asan_log".*
libasan=$(gcc -print-file-name=libasan.so)
if ! LD_PRELOAD=$libasan \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$asan_log:handle_segv=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$asan_log" \
  timeout --kill-after=10 $((seconds + 120)) node --import tsx scripts/sanitize-load.ts --seconds "$seconds" >"$log/asan-load.log" 2>&1; then
  echo "sanitize-load: the load failed under ASan + UBSan:"
  tail -n 20 "$log/asan-load.log"
  status=1
fi
grep -h 'sanitize-load:' "$log/asan-load.log" || true
if ls "$asan_log".* >/dev/null 2>&1; then
  echo "sanitize-load: sanitizer reports:"
  head -n 60 "$asan_log".*
  status=1
else
  echo "sanitize-load: ASan + UBSan: no report"
fi

# ---- valgrind memcheck -------------------------------------------------------------------
if [ "$vg_seconds" -gt 0 ]; then
  # The normal (uninstrumented) addon, built the same way in its own copy.
  vsrc=$dir/src-plain
  rm -rf "$vsrc"
  mkdir -p "$vsrc"
  cp -r binding.gyp native "$vsrc/"
  if ! (cd "$vsrc" && npx --no-install node-gyp rebuild -j 2 >"$log/build-plain.log" 2>&1); then
    tail -n 30 "$log/build-plain.log"
    echo "sanitize-load: plain build failed"
    exit 1
  fi
  export NETPLANE_PREBUILD=$vsrc
  echo "sanitize-load: ${vg_seconds}s forwarding load under valgrind memcheck"
  vg_xml=$log/valgrind.xml
  # Node's own start-up is slow under valgrind; the load's clock starts once it runs.
  timeout --kill-after=10 $((vg_seconds + 600)) valgrind --tool=memcheck --xml=yes --xml-file="$vg_xml" \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --trace-children=no \
    --num-callers=30 node --import tsx scripts/sanitize-load.ts --seconds "$vg_seconds" >"$log/valgrind-load.log" 2>&1 || {
      echo "sanitize-load: the load failed under valgrind:"
      tail -n 20 "$log/valgrind-load.log"
      status=1
    }
  grep -h 'sanitize-load:' "$log/valgrind-load.log" || true
  # Errors (invalid reads/writes, uninitialised values, definite leaks) whose stack passes
  # through the addon are ours; Node's and V8's own are listed as a count only.
  if ! node -e '
    const xml = require("fs").readFileSync(process.argv[1], "utf8");
    const errors = xml.split("<error>").slice(1).map((e) => e.split("</error>")[0]);
    const ours = errors.filter((e) => /netplane\.node|native\/core\/|native\/binding\//.test(e));
    const kind = (e) => (/<kind>([^<]+)<\/kind>/.exec(e) || [])[1];
    console.log(`sanitize-load: valgrind: ${errors.length} error record(s) in all, ${ours.length} in the addon`);
    for (const e of ours.slice(0, 10)) {
      const what = (/<text>([^<]+)<\/text>/.exec(e) || /<what>([^<]+)<\/what>/.exec(e) || [])[1];
      const fns = [...e.matchAll(/<fn>([^<]+)<\/fn>/g)].slice(0, 6).map((m) => m[1]).join(" < ");
      console.log(`  ${kind(e)}: ${what}\n    ${fns}`);
    }
    process.exit(ours.length === 0 ? 0 : 1);
  ' "$vg_xml"; then
    status=1
  fi
fi

if [ "$status" -eq 0 ]; then
  echo "sanitize-load: clean"
else
  echo "sanitize-load: FAILED (logs in ${log#$root/})"
fi
exit "$status"
