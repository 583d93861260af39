#!/usr/bin/env bash
# The README's run command: installs what is needed, builds, and runs the
# sync daemon in the foreground against your Le Stash database
# (~/.config/lestash/lestash.db, created when missing).
#
# Postgres: the one in ~/.config/lestash/sync.toml ([postgres] conninfo) when
# you configured one; otherwise a private Postgres the daemon starts itself
# (data in ~/.local/share/lestash-sync/postgres, unix socket only) and stops
# when it stops. Ctrl-C stops both.
#
#   scripts/run.sh [--db PATH] [--once]
#     --db PATH  another database
#     --once     sync once and exit instead of running as a daemon
set -euo pipefail
cd "$(dirname "$0")/.."

db="${XDG_CONFIG_HOME:-$HOME/.config}/lestash/lestash.db"
once=()
while [ $# -gt 0 ]; do
  case "$1" in
    --db) db=$2; shift 2 ;;
    --once) once=(--once); shift ;;
    *) echo "usage: scripts/run.sh [--db PATH] [--once]" >&2; exit 2 ;;
  esac
done

./scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLESTASH_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target lestash-syncd lestash-sync

mkdir -p "$(dirname "$db")"
if [ -e "$db" ]; then
  echo "using your Le Stash database: $db"
else
  echo "no database at $db: a new one with Le Stash's schema will be created"
fi
config="${XDG_CONFIG_HOME:-$HOME/.config}/lestash/sync.toml"
if [ -e "$config" ] && grep -Eq '^[[:space:]]*conninfo[[:space:]]*=[[:space:]]*"[^"]+"' "$config"; then
  echo "syncing with the Postgres configured in $config"
else
  echo "no Postgres configured ($config): starting a private one in ${XDG_DATA_HOME:-$HOME/.local/share}/lestash-sync/postgres"
  if command -v docker >/dev/null 2>&1; then
    echo "  (or run Postgres in Docker: see docker/README.md, then set [postgres] conninfo)"
  fi
fi
if [ ${#once[@]} -eq 0 ]; then
  echo "in another terminal: build/release/lestash-sync status | search WORDS | log --follow"
  echo "stop with Ctrl-C (the private Postgres stops with the daemon)"
fi
echo "running: build/release/lestash-syncd --db $db --local-postgres ${once[*]:-}"
exec build/release/lestash-syncd --db "$db" --local-postgres "${once[@]}"
