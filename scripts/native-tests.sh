#!/usr/bin/env bash
# Build and run the native core tests with cmake (no Node headers involved).
# SANITIZE=1 builds and runs them under ASan + UBSan, TSAN=1 under ThreadSanitizer (each in
# its own build directory; any report fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SANITIZE:-0}" = 1 ]; then dir=build-native-asan; flags=-DSANITIZE=ON
elif [ "${TSAN:-0}" = 1 ]; then dir=build-native-tsan; flags=-DTSAN=ON
else dir=build-native; flags=; fi
cmake -S native -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo $flags >/dev/null
cmake --build "$dir" -j 2 --target native_tests >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
"$dir/native_tests" "$@"
