#!/usr/bin/env bash
# Brings up docker/docker-compose.yml for real and syncs two replicas through
# it with the least-privilege login role over the published loopback port.
# Then the phone's side: the settings and the PowerSync role and storage
# database the init scripts make, and (when ../shared/powersync and npm are
# here) the real PowerSync service, built from source as the image cannot
# be pulled, replicating from it with config/powersync/powersync.yaml.
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
project="" compose=() powersync_pid=""
test_cleanup() {
    if [ -n "$powersync_pid" ]; then
        kill "$powersync_pid" 2>/dev/null
        wait "$powersync_pid" 2>/dev/null
    fi
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
LESTASH_POWERSYNC_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
LESTASH_PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export POSTGRES_PASSWORD LESTASH_SYNC_PASSWORD LESTASH_POWERSYNC_PASSWORD LESTASH_PG_PORT
docker-compose -f "$compose_file" config -q || fail "docker-compose config rejects $compose_file"
docker-compose -f "$compose_file" --profile phone config -q ||
    fail "docker-compose config rejects $compose_file with the profile phone"

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
# The phone: logical WAL, PowerSync's role and storage database, and no
# PowerSync container unless its profile is asked for.
[ "$(sql 'SHOW wal_level')" = logical ] || fail "wal_level is $(sql 'SHOW wal_level'), not logical"
[ "$(sql "SELECT current_setting('max_replication_slots')::int >= 4 AND current_setting('max_wal_senders')::int >= 4
          AND current_setting('max_slot_wal_keep_size') <> '-1'")" = t ] ||
    fail "replication slots, WAL senders or max_slot_wal_keep_size are not set for PowerSync"
[ "$(sql "SELECT rolcanlogin AND rolreplication AND NOT rolsuper AND pg_has_role(rolname, 'lestash_powersync', 'MEMBER')
          FROM pg_roles WHERE rolname = 'lestash_powersync_service'")" = t ] ||
    fail "lestash_powersync_service is missing, cannot log in or replicate, or is not in lestash_powersync"
[ "$(sql "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'powersync_storage'")" = lestash_powersync_service ] ||
    fail "the database powersync_storage is missing or not owned by lestash_powersync_service"
[ -z "$("${compose[@]}" ps -q powersync 2>/dev/null)" ] || fail "docker-compose up started powersync without its profile"
"${compose[@]}" exec -T postgres bash /docker-entrypoint-initdb.d/30-powersync.sh >"$tmp/30-again.log" 2>&1 ||
    { cat "$tmp/30-again.log" >&2; fail "30-powersync.sh run again (as docs/mobile.md says) failed"; }
phase_done "phone: settings, role, storage database"

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

# --- 6. the real PowerSync service replicating from it -----------------------
rc=0
tools=$("$src/tests/powersync/prepare.sh" "$src" "$build/powersync" 2>&1) || rc=$?
if [ "$rc" -eq 77 ]; then
    echo "not checked: the PowerSync service against this Postgres ($tools)"
elif [ "$rc" -ne 0 ]; then
    echo "$tools" >&2
    fail "tests/powersync/prepare.sh failed"
else
    ps_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    api_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    PS_PG_HOST=127.0.0.1 PS_PG_PORT=$LESTASH_PG_PORT PS_PG_DATABASE=lestash PS_STORAGE_DATABASE=powersync_storage \
        PS_PG_USER=lestash_powersync_service PS_PG_PASSWORD=$LESTASH_POWERSYNC_PASSWORD PS_PG_SSLMODE=disable \
        PS_PORT=$ps_port PS_JWT_HS256_KEY=$("$src/scripts/powersync-token" --new-key) PS_API_TOKEN=$api_token \
        "$build/powersync/service/node/bin/node" --require "$src/tests/powersync/loopback.cjs" \
        "$build/powersync/service/service/lib/entry.js" start -r unified \
        -c "$src/config/powersync/powersync.yaml" >"$tmp/powersync.log" 2>&1 &
    powersync_pid=$!
    for _ in $(seq 1 600); do
        grep -qs "Activated new replication stream" "$tmp/powersync.log" && break
        kill -0 "$powersync_pid" 2>/dev/null || break
        sleep 0.2
    done
    grep -qs "Activated new replication stream" "$tmp/powersync.log" ||
        { tail -30 "$tmp/powersync.log" >&2; fail "the PowerSync service did not replicate from the compose Postgres"; }
    validate=$(python3 - "$src/config/powersync/sync-config.yaml" "$ps_port" "$api_token" <<'PY'
import json, sys, urllib.request
body = json.dumps({"sync_rules": open(sys.argv[1]).read()}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/api/admin/v1/validate", data=body,
                             headers={"Authorization": f"Bearer {sys.argv[3]}", "Content-Type": "application/json"})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=30))["data"]["errors"]))
PY
    ) || fail "POST /api/admin/v1/validate failed"
    [ "$validate" = "[]" ] || fail "the service finds problems with the sync config on the compose Postgres: $validate"
    phase_done "phone: PowerSync service replicating"
fi

echo "ok: docker-compose Postgres serves lestash_daemon (not a superuser) on 127.0.0.1:$LESTASH_PG_PORT; A -> Postgres -> B; PowerSync's role, storage and settings in place"
