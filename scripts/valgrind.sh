#!/usr/bin/env bash
# valgrind memcheck, two parts:
#  1. the native core tests (own cmake dir, no sanitizer), any error or lost block fails;
#  2. a short Node run through the addon (scripts/valgrind-addon.js: TAP open/close, IoThread
#     start/stop, MainLoopContext, vnet segmentation, GC, a worker, env cleanup at exit);
#     errors and lost blocks with a frame in netplane.node fail it, node's own noise is
#     counted and shown (scripts/valgrind-report.js).
# Usage: scripts/valgrind.sh [native test filter]   VALGRIND_ITERATIONS=N for a longer Node run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

memcheck=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
          --errors-for-leak-kinds=definite,indirect,possible --num-callers=40)

# ---- 1. native core tests
dir=build-native-valgrind
cmake -S native -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j 2 --target native_tests >/dev/null
echo "valgrind: native core tests"
set +e
"${memcheck[@]}" --error-exitcode=99 -q "$dir/native_tests" "$@" | grep -v '^ok '
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 99 ]; then echo "valgrind: memcheck errors in the native tests" >&2; exit 1; fi
if [ "$status" != 0 ]; then echo "valgrind: native tests failed (exit $status)" >&2; exit 1; fi

# ---- 2. the addon from Node
node -e "require('node-gyp-build').path('.')" 2>/dev/null || npx node-gyp rebuild -j 2 >/dev/null
out=$(mktemp -d /tmp/np-valgrind.XXXXXX)
trap 'rm -rf "$out"' EXIT
echo "valgrind: node scripts/valgrind-addon.js ${VALGRIND_ITERATIONS:-5} (slow: node under valgrind)"
"${memcheck[@]}" --xml=yes --xml-file="$out/node.%p.xml" --log-file="$out/node.%p.log" \
  node --expose-gc scripts/valgrind-addon.js "${VALGRIND_ITERATIONS:-5}"
node scripts/valgrind-report.js "$out"/node.*.xml
