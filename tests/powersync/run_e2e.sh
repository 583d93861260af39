#!/usr/bin/env bash
# CTest phone-e2e: puts the real PowerSync service and client into the build
# tree (prepare.sh; once, about 20 s), then runs the end-to-end test binary
# against them. Exits 77 ("skipped: ...") when ../shared/powersync or the npm
# registry is missing.
# Usage: run_e2e.sh SOURCE_DIR POWERSYNC_DIR TEST_BINARY [catch options]
set -euo pipefail
src=${1:?usage: run_e2e.sh SOURCE_DIR POWERSYNC_DIR TEST_BINARY} dir=${2:?} binary=${3:?}
shift 3
rc=0
out=$("$(dirname "$0")/prepare.sh" "$src" "$dir") || rc=$?
echo "$out"
[ "$rc" -eq 0 ] || exit "$rc"
LESTASH_POWERSYNC_DIR=$dir exec "$binary" --durations yes "$@"
