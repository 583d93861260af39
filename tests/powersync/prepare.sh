#!/usr/bin/env bash
# Puts the real PowerSync service and client core into the build tree, for
# the phone tests and `lestash-bench phone`:
#   DIR/service   the PowerSync service (Open Edition 1.25.0) built by
#                 ../shared/powersync/build.sh, with the Node 24 it runs on
#   DIR/client    npm ci of tests/powersync/package.json (+ lockfile):
#                 @powersync/node 1.1.0 and better-sqlite3 13.2.0
# Both steps are skipped when already done. Exits 77 with "skipped: ..." when
# ../shared/powersync (beside the clone) or the npm registry is missing.
# Usage: prepare.sh SOURCE_DIR DIR
set -euo pipefail
src=$(cd "${1:?usage: prepare.sh SOURCE_DIR DIR}" && pwd)
dir=${2:?usage: prepare.sh SOURCE_DIR DIR}
shared=$src/../shared/powersync
skip() { echo "skipped: $*"; exit 77; }

[ -x "$shared/build.sh" ] ||
    skip "no PowerSync service sources at $shared (../shared/powersync beside the clone)"
command -v npm >/dev/null || skip "npm is not installed (scripts/install-deps.sh installs it)"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Only a first build or a changed lockfile needs the registry. build.sh's own
# check cannot see the error (its npm runs --silent): ask npm first.
if [ ! -f "$dir/service/service/lib/entry.js" ] ||
    ! cmp -s "$src/tests/powersync/package-lock.json" "$dir/client/package-lock.json"; then
    if ! out=$(npm ping --fetch-retries=0 --fetch-timeout=20000 --loglevel=error 2>&1); then
        skip "the npm registry is not reachable ($(echo "$out" | grep -m1 -E 'npm error (code|FetchError)' || echo "$out" | tail -n 1))"
    fi
fi

rc=0
"$shared/build.sh" "$dir/service" >"$dir/build.out" 2>"$dir/build.err" || rc=$?
if [ "$rc" -eq 77 ]; then
    skip "the npm registry is not reachable ($(tail -n 1 "$dir/build.err"))"
elif [ "$rc" -ne 0 ]; then
    cat "$dir/build.err" >&2
    echo "building the PowerSync service with $shared/build.sh failed ($rc)" >&2
    exit 1
fi

client=$dir/client
mkdir -p "$client"
if ! cmp -s "$src/tests/powersync/package-lock.json" "$client/package-lock.json" ||
    [ ! -d "$client/node_modules/@powersync/node" ]; then
    cp "$src/tests/powersync/package.json" "$src/tests/powersync/package-lock.json" "$client/"
    # Both packages ship prebuilt native code: no install scripts, nothing compiles.
    if ! (cd "$client" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
        >"$dir/npm.log" 2>&1; then
        rm -f "$client/package-lock.json" # not installed: try again next time
        if grep -qiE "ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|network" "$dir/npm.log"; then
            skip "the npm registry is not reachable ($(grep -m1 -iE 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|network' "$dir/npm.log"))"
        fi
        cat "$dir/npm.log" >&2
        echo "npm ci of tests/powersync/package.json failed" >&2
        exit 1
    fi
fi
echo "NODE=$dir/service/node/bin/node"
echo "SERVICE=$dir/service"
echo "CLIENT=$client"
