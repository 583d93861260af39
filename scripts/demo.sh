#!/usr/bin/env bash
# A one-command demo: two replicas and a private Postgres on this machine.
# An item written into replica A with the sqlite3 shell shows up in replica
# B and is found there by `lestash-sync search`. Everything lives in a temp
# directory that is removed at the end, whatever happens.
#   scripts/demo.sh [BUILD_DIR]   (default: builds build/release first)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-}
if [ -z "$build" ]; then
  ./scripts/install-deps.sh
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLESTASH_BUILD_TESTS=OFF >/dev/null
  cmake --build build/release -j "$(nproc)" --target lestash-syncd lestash-sync
  build=build/release
fi
syncd=$(realpath "$build/lestash-syncd") cli=$(realpath "$build/lestash-sync")

work=$(mktemp -d /tmp/lestash-demo-XXXXXX)
chmod 0755 "$work"  # the private Postgres may run as another account when we are root
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_DATA_HOME=$work/data  # the demo's private Postgres, not yours

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

step "replica A, with a private Postgres (logs in $work/a.log)"
"$syncd" --db "$work/a.db" --socket "$work/a.sock" --replica demo-a --local-postgres >"$work/a.log" 2>&1 &
pids+=($!)
wait_for 60 "$cli" --socket "$work/a.sock" status || { cat "$work/a.log"; exit 1; }
pg_socket="$XDG_DATA_HOME/lestash-sync/postgres/socket"

step "replica B, syncing with the same Postgres"
"$syncd" --db "$work/b.db" --socket "$work/b.sock" --replica demo-b \
  --postgres "host=$pg_socket dbname=lestash user=postgres" >"$work/b.log" 2>&1 &
pids+=($!)
wait_for 60 "$cli" --socket "$work/b.sock" status || { cat "$work/b.log"; exit 1; }

step "write an item into A with the sqlite3 shell"
sql="INSERT INTO items (source_type, source_id, title, content) VALUES ('note', 'demo-1', 'Hello from A', 'The axolotl can regrow its limbs.')"
echo "sqlite3 a.db \"$sql\""
sqlite3 -cmd '.timeout 5000' "$work/a.db" "$sql"

step "search for it on B"
found() { "$cli" --socket "$work/b.sock" --json search axolotl | grep -q '"Hello from A"'; }
if ! wait_for 60 found; then
  echo "the item did not reach B within 60 s; logs:"; cat "$work/a.log" "$work/b.log"; exit 1
fi
echo "lestash-sync search axolotl   (on B)"
"$cli" --socket "$work/b.sock" search axolotl
echo
"$cli" --socket "$work/b.sock" status
step "done: stopping both daemons and the private Postgres, removing $work"
