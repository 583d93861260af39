#!/usr/bin/env bash
# The README's test command: installs what is needed, builds with warnings as
# errors, runs the whole suite with CTest, and clang-tidy on the C++ files
# changed since LESTASH_TIDY_BASE (default HEAD~1: what the last commit or
# merge brought; LESTASH_TIDY_BASE=all for every file). Then builds again with
# clang, AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer
# targets, and runs the suite once more with short fuzz runs of the control
# protocol and the phone endpoint's request checks among it (one build for
# both: they need the same instrumented libraries). Then ThreadSanitizer, with
# clang too, for the unit and integration tests (the daemon has two threads,
# a guard thread and an event loop; README.md "Development"). Set
# LESTASH_SKIP_TIDY=1, LESTASH_SKIP_SANITIZE=1, LESTASH_SKIP_FUZZ=1 or
# LESTASH_SKIP_TSAN=1 to skip those while iterating.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

jobs=$(nproc)
configure() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DLESTASH_WERROR=ON "$@" >/dev/null
}
run_suite() {
  local dir=$1; shift
  configure "$dir" "$@"
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" ${CTEST_EXCLUDE:+-LE "$CTEST_EXCLUDE"})
}
timed() {
  local start=$SECONDS
  "$@"
  echo "== $1: $((SECONDS - start)) s"
}

# clang-tidy (.clang-tidy says which checks) on the sources under src/
# changed since LESTASH_TIDY_BASE that the build compiles; their headers
# under include/ and src/ are checked through them. Any warning fails. It
# reads the commands of build/tidy, configured without precompiled headers
# (gcc's, which clang cannot read; and each file must include what it uses).
tidy() {
  local base=${LESTASH_TIDY_BASE:-HEAD~1} files
  configure build/tidy -DLESTASH_PCH=OFF
  if [ "$base" = all ]; then
    files=$(git ls-files 'src/*.cpp')
  elif git rev-parse -q --verify "$base^{commit}" >/dev/null; then
    files=$(git diff --name-only --diff-filter=d "$base" -- 'src/*.cpp')
  else
    echo "clang-tidy: $base is not a commit (a shallow clone?): checking every file"
    files=$(git ls-files 'src/*.cpp')
  fi
  files=$(for f in $files; do
    grep -q "\"file\": \"$PWD/$f\"" build/tidy/compile_commands.json && echo "$f"
  done || true)
  if [ -z "$files" ]; then
    echo "clang-tidy: no C++ source changed since $base"
    return
  fi
  echo "clang-tidy on $(echo "$files" | wc -w) files changed since $base"
  echo "$files" | xargs -P "$jobs" -n 1 clang-tidy -p build/tidy --quiet --warnings-as-errors='*'
}

# -O2 without debug info: the tests need the optimised programs, not their
# debug info, which costs a quarter of the build (and gcc 12's -O3, CMake's
# Release, warns falsely of overflows in std::string).
timed run_suite build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE='-O2 -DNDEBUG'
if [ "${LESTASH_SKIP_TIDY:-0}" != 1 ]; then
  timed tidy
fi
if [ "${LESTASH_SKIP_SANITIZE:-0}" != 1 ]; then
  # clang, so that the fuzz targets (libFuzzer needs clang) come from the same
  # build; -g1: line tables are all a sanitizer's report needs. The [chaos]
  # test checks recovery within deadlines made for an optimised build; under
  # ASan at -O0 the daemons never settle in them, so it runs in the release
  # pass only. The two fuzz runs are bounded (60 s each) and run beside the
  # other tests.
  fuzz=ON
  if [ "${LESTASH_SKIP_FUZZ:-0}" = 1 ]; then
    fuzz=OFF
  fi
  # Not here either: what the release pass already ran and a sanitizer adds
  # nothing to (the Python client and package, the docs' command lines, the
  # packaging, the include-structure probes: no C++ of ours runs in them
  # that the unit and integration tests do not run).
  CC=clang CXX=clang++ CTEST_EXCLUDE='^(chaos|python|docs|packaging|structure)$' \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    timed run_suite build/asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DLESTASH_SANITIZE=ON -DLESTASH_FUZZ=$fuzz -DLESTASH_DOCKER_TESTS=OFF
fi
# ThreadSanitizer: what the unit and integration tests run (the latter
# start the daemon, CLI and endpoint binaries: integration_tests depends on
# them), all but [chaos], whose recovery deadlines are for an optimised
# build, as in the ASan pass (under TSan it misses them with no race report).
# clang with precompiled headers: its build and run take about 10 minutes on
# 2 cores, gcc's about 18 (more than CI's 40 minutes had room for).
tsan() {
  CC=clang CXX=clang++ configure build/tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DLESTASH_TSAN=ON -DLESTASH_DOCKER_TESTS=OFF
  cmake --build build/tsan -j "$jobs" --target unit_tests integration_tests lestash-id-vectors
  (cd build/tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --output-on-failure -j "$jobs" -L '^(unit|integration)$' -LE '^chaos$')
}
if [ "${LESTASH_SKIP_TSAN:-0}" != 1 ]; then
  timed tsan
fi
