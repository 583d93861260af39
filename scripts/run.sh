#!/usr/bin/env bash
# The README's run command: installs what is needed, builds, and runs the
# daemon once against the local Le Stash database (created when missing).
# Pass --db PATH to use another database.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLESTASH_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target lestash-syncd lestash-bench

db="${HOME}/.config/lestash/lestash.db"
if [ "${1:-}" = "--db" ]; then db=$2; fi
mkdir -p "$(dirname "$db")"
echo "running: build/release/lestash-syncd --db $db --once"
exec build/release/lestash-syncd --db "$db" --once
