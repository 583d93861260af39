#!/usr/bin/env bash
# The README's test command: installs what is needed, builds with warnings as
# errors, runs the whole suite with CTest, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite once more.
# Then short libFuzzer runs of the control protocol and the phone endpoint's
# request checks (clang). Set
# LESTASH_SKIP_SANITIZE=1 or LESTASH_SKIP_FUZZ=1 to skip those while iterating.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DLESTASH_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

run_suite build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${LESTASH_SKIP_SANITIZE:-0}" != 1 ]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    run_suite build/sanitize -DCMAKE_BUILD_TYPE=Debug -DLESTASH_SANITIZE=ON -DLESTASH_DOCKER_TESTS=OFF
fi
# The fuzz targets (libFuzzer needs clang): bounded runs.
if [ "${LESTASH_SKIP_FUZZ:-0}" != 1 ]; then
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DLESTASH_WERROR=ON -DLESTASH_FUZZ=ON \
    -DLESTASH_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build/fuzz -j "$jobs" --target rpc_fuzz upload_fuzz
  (cd build/fuzz && ctest --output-on-failure)
fi
