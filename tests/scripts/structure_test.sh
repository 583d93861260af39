#!/usr/bin/env bash
# The rooms' one-way rule (CMakeLists.txt, "Rooms"), shown by the compiler:
# each probe is one file including one header, built in one room's library
# context. A header of an earlier room must compile; a header of a later
# room or of a sibling must fail on that missing header. Also refuses
# relative includes that climb out of a folder ("../"), which would go
# around the include roots, and SQL on a daemon table outside its owner.
# Usage: structure_test.sh BUILD_DIR SOURCE_DIR ok:PROBE... refused:PROBE...
set -uo pipefail
build=$1 source=$2
shift 2
failures=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for probe in "$@"; do
    expect=${probe%%:*} name=${probe#*:}
    if cmake --build "$build" --target "structure_probe_$name" >"$log" 2>&1; then
        if [ "$expect" = refused ]; then
            echo "FAIL $name: compiled, but its room must not see that header"
            failures=$((failures + 1))
        else
            echo "ok   $name: compiles"
        fi
    # gcc: "<header>: No such file or directory"; clang: "'<header>' file not found".
    elif [ "$expect" = refused ] &&
        missing=$(grep -oE "lestash_sync/[a-z_/]*\.hpp(: No such file|' file not found)" "$log" | head -1) &&
        [ -n "$missing" ]; then
        echo "ok   $name: refused ($missing)"
    else
        echo "FAIL $name: expected to $([ "$expect" = ok ] && echo compile || echo fail on a missing header):"
        sed 's/^/    /' "$log" | tail -20
        failures=$((failures + 1))
    fi
done

if climbing=$(grep -rnE '^\s*#\s*include\s*"\.\./' "$source/src" "$source/include"); then
    echo "FAIL relative includes climb out of their folder (use lestash_sync/<room>/...):"
    echo "$climbing" | sed 's/^/    /'
    failures=$((failures + 1))
fi

# One owner module per table the daemon keeps in the app's database
# (docs/architecture.md, "Where a change goes"): SQL naming the table
# anywhere else in src/ is refused (comments aside; tests may read them).
declare -A owner=(
    [outbox]=src/replica/outbox.cpp [ids]=src/replica/identity.cpp
    [meta]=src/replica/meta.cpp [dead_letters]=src/replica/dead_letters.cpp
    [deferred]=src/replica/held_back.cpp [unresolved]=src/replica/held_back.cpp
    [applying]=src/replica/apply_scope.cpp)
owner[link_revs]=src/replica/identity.cpp
owner[media]=src/media/media_queue.cpp
for table in "${!owner[@]}"; do
    if strays=$(cd "$source" && grep -rnE "_lestash_sync_${table}\b" src include |
        grep -v "^${owner[$table]}:" | grep -vE '^[^:]+:[0-9]+:\s*//'); then
        echo "FAIL _lestash_sync_$table is used outside its owner ${owner[$table]}:"
        echo "$strays" | sed 's/^/    /'
        failures=$((failures + 1))
    fi
done

[ "$failures" -eq 0 ] && echo "the rooms' includes point one way; each daemon table has one owner" &&
    exit 0
exit 1
