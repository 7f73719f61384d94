#!/usr/bin/env bash
# Install the Debian packages the tests (with --bench also the bench) call, listed in
# scripts/test-tools.list, only those missing.
# As root with apt: installs them. Otherwise: lists what is missing and the command to run,
# and exits 0 (the tests that need a missing program then skip, naming it), or 1 under
# CI=true, where nothing may skip.
#   bash scripts/install-test-deps.sh         the programs `npm test` uses
#   bash scripts/install-test-deps.sh --ci    also those of .ci/run's extra steps (fuzzers, TSan, format)
#   bash scripts/install-test-deps.sh --bench also those of `npm run bench` (trafgen, perf)
set -euo pipefail
cd "$(dirname "$0")"
groups="test"
users="the tests"
skips="the tests that need them will skip, naming them"
case "${1:-}" in
  '') ;;
  --ci) groups="test ci" ;;
  --bench) groups="test bench" users="the tests and the bench" skips="$skips; the bench names them too" ;;
  *) echo "usage: bash scripts/install-test-deps.sh [--ci | --bench]" >&2; exit 2 ;;
esac

missing_pkgs=()
missing_text=()
while read -r check pkg group _; do
  case "$check" in ''|'#'*) continue ;; esac
  case " $groups " in *" $group "*) ;; *) continue ;; esac
  if [ "${check#/}" != "$check" ]; then
    compgen -G "$check" >/dev/null && continue
  else
    command -v "$check" >/dev/null 2>&1 && continue
  fi
  missing_text+=("  $check (Debian package $pkg)")
  case " ${missing_pkgs[*]:-} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
done < test-tools.list

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  echo "install-test-deps: every program $users use is installed"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: installing ${missing_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null
  exit 0
fi
echo "install-test-deps: missing ($skips):"
printf '%s\n' "${missing_text[@]}"
echo "install them with: sudo apt-get install ${missing_pkgs[*]}"
[ "${CI:-}" = "true" ] && exit 1
exit 0
