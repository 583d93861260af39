#!/usr/bin/env bash
# Brings up docker/docker-compose.yml for real and syncs two replicas through
# it with the least-privilege login role over the published loopback port.
# Docker Hub is unreachable on CI, so the compose file runs a stand-in image
# built here from Debian's packages (docker/standin; cached between runs).
# Needs root: installs docker.io, docker-compose and debootstrap when missing
# and starts dockerd when none is running (docker_lib.sh). Everything it
# starts or changes (the compose project and its volume, dockerd, ip_forward,
# iptables, docker0, Docker's cgroups) is put back on exit. Exits 77 (CTest:
# Skipped) only when Docker cannot run here; any other problem fails.
# Usage: compose_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
syncd=$build/lestash-syncd
compose_file=$src/docker/docker-compose.yml
image=local/lestash-postgres-standin:15

source "$src/tests/scripts/docker_lib.sh"
[ -x "$syncd" ] || fail "$syncd is not built"
dl_init
project="" compose=()
test_cleanup() {
    if [ ${#compose[@]} -gt 0 ]; then
        "${compose[@]}" down -v --remove-orphans -t 10 >/dev/null 2>&1 ||
            echo "warning: docker-compose down failed for project $project" >&2
    fi
}

# --- 1. packages -----------------------------------------------------------
dl_install_packages docker.io docker-compose debootstrap sqlite3 postgresql-client-15 python3
phase_done "install packages"

# The compose file is valid for docker-compose 1.29 (no daemon needed).
export LESTASH_POSTGRES_IMAGE=$image POSTGRES_USER=postgres POSTGRES_DB=lestash \
    LESTASH_SYNC_USER=lestash_daemon LESTASH_PG_BIND=127.0.0.1
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
LESTASH_SYNC_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
LESTASH_PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export POSTGRES_PASSWORD LESTASH_SYNC_PASSWORD LESTASH_PG_PORT
docker-compose -f "$compose_file" config -q || fail "docker-compose config rejects $compose_file"

# --- 2. dockerd ------------------------------------------------------------
dl_start_dockerd
phase_done "start dockerd"

# --- 3. the stand-in image (cached: rebuilt only when docker/standin changes)
dl_build_image "$image" "$src/docker/standin"

# --- 4. compose up, wait for healthy ---------------------------------------
project=lestash-ci-$$
compose=(docker-compose -p "$project" -f "$compose_file")
"${compose[@]}" up -d >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; fail "docker-compose up failed"; }
cid=$("${compose[@]}" ps -q postgres)
[ -n "$cid" ] || fail "docker-compose up started no postgres container"
status=""
for _ in $(seq 1 240); do
    status=$(docker inspect --format '{{.State.Health.Status}}' "$cid" 2>/dev/null || echo gone)
    [ "$status" = healthy ] && break
    state=$(docker inspect --format '{{.State.Status}}' "$cid" 2>/dev/null || echo gone)
    [ "$state" = running ] || [ "$state" = restarting ] || break
    sleep 0.5
done
if [ "$status" != healthy ]; then
    "${compose[@]}" logs --no-color --tail 60 >&2 || true
    fail "postgres is not healthy within 120 s (health: $status)"
fi
phase_done "compose up until healthy"

sql() { "${compose[@]}" exec -T postgres psql -v ON_ERROR_STOP=1 -X -q -tA -U postgres -d lestash -c "$1"; }
[ "$(docker port "$cid" 5432/tcp)" = "127.0.0.1:$LESTASH_PG_PORT" ] ||
    fail "the port is not published on loopback only: $(docker port "$cid" 5432/tcp)"
migrations=$(find "$src/migrations/postgres" -name '*.sql' | wc -l)
[ "$(sql 'SELECT count(*) FROM lestash.schema_migrations')" = "$migrations" ] ||
    fail "not every migration is applied: $(sql 'SELECT version FROM lestash.schema_migrations' | tr '\n' ' ')"
[ "$(sql "SELECT rolsuper FROM pg_roles WHERE rolname = 'lestash_daemon'")" = f ] ||
    fail "lestash_daemon is missing or a superuser"
[ "$(sql "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'lestash_daemon'")" = t ] ||
    fail "lestash_daemon cannot log in"
[ "$(sql "SELECT pg_has_role('lestash_daemon', 'lestash_sync', 'MEMBER')")" = t ] ||
    fail "lestash_daemon is not a member of lestash_sync"

# --- 5. two replicas through it, as lestash_daemon with a pgpass file -------
conninfo="host=127.0.0.1 port=$LESTASH_PG_PORT dbname=lestash user=lestash_daemon"
mkdir -m 0700 "$tmp/home"
export HOME=$tmp/home
: >"$tmp/sync.toml"
(umask 077 && printf '127.0.0.1:%s:lestash:lestash_daemon:%s\n' "$LESTASH_PG_PORT" "$LESTASH_SYNC_PASSWORD" \
    >"$tmp/pgpass")
: >"$tmp/empty-pgpass"
chmod 0600 "$tmp/empty-pgpass"
# Without the password the published port refuses the role (scram, not trust).
if out=$(PGPASSFILE=$tmp/empty-pgpass psql -X -w "$conninfo" -c 'SELECT 1' 2>&1); then
    fail "lestash_daemon logged in over TCP without a password"
fi
grep -q "password" <<<"$out" || fail "unexpected error without a password: $out"
export PGPASSFILE=$tmp/pgpass
syncd_run() { "$syncd" --config "$tmp/sync.toml" "$@"; }

out=$(syncd_run --db "$tmp/A.db" --replica ci-a --once 2>&1) || fail "creating replica A: $out"
sqlite3 "$tmp/A.db" "INSERT INTO items (source_type, source_id, title, content)
                     VALUES ('note', 'compose-1', 'Hello', 'from compose test')"
out=$(syncd_run --db "$tmp/A.db" --replica ci-a --postgres "$conninfo" --once 2>&1) ||
    fail "pushing from A as lestash_daemon: $out"
echo "A: $out"
got=$(sql "SELECT title || '|' || content FROM lestash.items WHERE source_type = 'note' AND source_id = 'compose-1'")
[ "$got" = "Hello|from compose test" ] || fail "lestash.items after A's push: '$got'"
out=$(syncd_run --db "$tmp/B.db" --replica ci-b --postgres "$conninfo" --once 2>&1) ||
    fail "pulling into B as lestash_daemon: $out"
echo "B: $out"
got=$(sqlite3 "$tmp/B.db" "SELECT title || '|' || content FROM items WHERE source_type = 'note' AND source_id = 'compose-1'")
[ "$got" = "Hello|from compose test" ] || fail "B.db after its pull: '$got'"
phase_done "daemon: push A, pull B"

echo "ok: docker-compose Postgres serves lestash_daemon (not a superuser) on 127.0.0.1:$LESTASH_PG_PORT; A -> Postgres -> B"
