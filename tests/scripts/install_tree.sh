#!/usr/bin/env bash
# Installs the build into a temporary prefix and checks the installed tree:
# binaries that run, the user unit (pointing at the installed daemon and
# accepted by systemd-analyze), the example config, the migrations, the man
# pages (man finds them under the prefix) and the bash completion; not the
# benchmark, which is for developers.
# Usage: install_tree.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null

fail() { echo "FAIL: $*"; exit 1; }
for f in bin/lestash-syncd lib/systemd/user/lestash-syncd.service \
         bin/lestash-endpoint lib/systemd/system/lestash-endpoint.service \
         share/doc/lestash-sync/endpoint.toml.example \
         share/doc/lestash-sync/sync.toml.example share/doc/lestash-sync/README.md \
         share/lestash-sync/migrations/postgres/001_tables.sql \
         share/man/man8/lestash-syncd.8.gz share/man/man1/lestash-sync.1.gz \
         share/man/man5/sync.toml.5.gz share/bash-completion/completions/lestash-syncd \
         share/bash-completion/completions/lestash-sync; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
[ ! -e "$prefix/bin/lestash-bench" ] || fail "lestash-bench is installed without --component bench"
if command -v man >/dev/null; then
  for page in 8:lestash-syncd 1:lestash-sync 5:sync.toml; do
    [ "$(MANPATH="$prefix/share/man" man -w "${page#*:}")" = "$prefix/share/man/man${page%%:*}/${page#*:}.${page%%:*}.gz" ] ||
      fail "man -w ${page#*:} does not find the installed page"
  done
fi
grep -qx "ExecStart=$prefix/bin/lestash-syncd" "$prefix/lib/systemd/user/lestash-syncd.service" ||
  fail "the unit does not start the installed daemon"
"$src/tests/scripts/verify_unit.sh" "$prefix/lib/systemd/user/lestash-syncd.service"
grep -qx "ExecStart=$prefix/bin/lestash-endpoint --config /etc/lestash/endpoint.toml serve" \
  "$prefix/lib/systemd/system/lestash-endpoint.service" ||
  fail "the endpoint's unit does not start the installed endpoint"
"$prefix/bin/lestash-endpoint" --version | grep -q "lestash-endpoint" || fail "lestash-endpoint --version"

# The installed daemon runs: help, and a capture-only attach to a new database.
"$prefix/bin/lestash-syncd" --help | grep -q -- "--postgres" || fail "lestash-syncd --help"
out=$("$prefix/bin/lestash-syncd" --db "$prefix/test.db" --once) || fail "lestash-syncd --once: $out"
echo "$out" | grep -q "no Postgres configured" || fail "unexpected --once output: $out"
[ "$(sqlite3 "$prefix/test.db" 'PRAGMA user_version')" = 11 ] || fail "new database is not at v11"
# The installed example config is accepted as it stands.
"$prefix/bin/lestash-syncd" --config "$prefix/share/doc/lestash-sync/sync.toml.example" \
  --db "$prefix/test.db" --once >/dev/null || fail "the installed example config is refused"
echo "ok: installed tree at $prefix"
