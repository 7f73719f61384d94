#!/usr/bin/env bash
# Format the tree: Prettier for TypeScript/JavaScript/JSON/Markdown (.prettierrc), clang-format
# for C++ (.clang-format). With --check, change nothing and fail when a file is not formatted.
#   bash scripts/format.sh            rewrite files in place
#   bash scripts/format.sh --check    what CI runs
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format: clang-format is missing (Debian package clang-format)" >&2; exit 1; }
mapfile -t cxx < <(git ls-files 'native/*.cc' 'native/*.h')
if [ "${1:-}" = "--check" ]; then
  npx prettier --check . --log-level warn
  clang-format --dry-run --Werror "${cxx[@]}"
  echo "format: every file is formatted"
else
  npx prettier --write . --log-level warn
  clang-format -i "${cxx[@]}"
fi
