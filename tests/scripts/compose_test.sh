#!/usr/bin/env bash
# Brings up docker/docker-compose.yml for real and syncs two replicas through
# it with the least-privilege login role over the published loopback port.
# Docker Hub is unreachable on CI, so the compose file runs a stand-in image
# built here from Debian's packages (docker/standin; cached between runs).
# Needs root: installs docker.io, docker-compose and debootstrap when missing
# and starts dockerd when none is running. Everything it starts or changes
# (the compose project and its volume, dockerd, ip_forward, iptables, docker0)
# is put back on exit. Exits 77 (CTest: Skipped) when Docker cannot run here.
# Usage: compose_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
syncd=$build/lestash-syncd
compose_file=$src/docker/docker-compose.yml
base_image=local/debian:bookworm
image=local/lestash-postgres-standin:15

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
[ -x "$syncd" ] || fail "$syncd is not built"

# Phase timings, printed at the end (and on failure).
timings=()
phase_start=$(date +%s.%N)
phase_done() {
    local now
    now=$(date +%s.%N)
    timings+=("$(awk -v a="$phase_start" -v b="$now" -v n="$1" 'BEGIN { printf "%-28s %6.1f s", n, b - a }')")
    phase_start=$now
}
print_timings() {
    [ ${#timings[@]} -gt 0 ] || return 0
    echo "timings:"
    printf '  %s\n' "${timings[@]}"
}

tmp=$(mktemp -d)
started_dockerd=0 dockerd_pid="" made_docker0=0 saved_ip_forward="" saved_iptables=""
have_iptables=0 project="" compose=()

# Puts back what this script changed on the host. Runs on every exit.
restore_iptables() {
    local now restore
    now=$(iptables-save 2>/dev/null | grep -v '^#') || return 0
    [ "$now" = "$saved_iptables" ] && return 0
    # iptables-restore flushes each table it is given: the saved tables as
    # they were, and any table dockerd added, emptied with ACCEPT policies.
    restore=$(
        printf '%s\n' "$saved_iptables"
        printf '%s\n' "$now" | awk -v saved="$(printf '%s\n' "$saved_iptables" | grep '^\*' | tr '\n' ' ')" '
            /^\*/ { t = $0; keep = index(saved, t " ") == 0; if (keep) print; next }
            keep && /^:/ && $2 != "-" { print $1 " ACCEPT [0:0]" }
            keep && /^COMMIT/ { print }'
    )
    printf '%s\n' "$restore" | iptables-restore || echo "warning: could not restore iptables" >&2
}
cleanup() {
    local rc=$?
    set +e
    phase_start=$(date +%s.%N)
    if [ ${#compose[@]} -gt 0 ]; then
        "${compose[@]}" down -v --remove-orphans -t 10 >/dev/null 2>&1 ||
            echo "warning: docker-compose down failed for project $project" >&2
    fi
    if [ "$started_dockerd" = 1 ] && [ -n "$dockerd_pid" ]; then
        kill -TERM "$dockerd_pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$dockerd_pid" 2>/dev/null; then
            echo "warning: dockerd ($dockerd_pid) did not stop; killing it" >&2
            kill -KILL "$dockerd_pid" 2>/dev/null
        fi
        wait "$dockerd_pid" 2>/dev/null
    fi
    if [ "$made_docker0" = 1 ] && ip link show docker0 >/dev/null 2>&1; then
        ip link delete docker0
    fi
    if [ -n "$saved_ip_forward" ] &&
        [ "$(sysctl -n net.ipv4.ip_forward 2>/dev/null)" != "$saved_ip_forward" ]; then
        sysctl -qw net.ipv4.ip_forward="$saved_ip_forward"
    fi
    [ "$have_iptables" = 1 ] && restore_iptables
    rm -rf "$tmp"
    [ -n "$project" ] && phase_done "teardown"
    print_timings
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. packages -----------------------------------------------------------
missing=()
for p in docker.io docker-compose debootstrap sqlite3 postgresql-client-15 python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || skip "not root, and these are missing: ${missing[*]}"
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log" >&2; skip "apt-get could not install ${missing[*]}"; }
fi
# docker.io's own client talks to its daemon's API version; prefer it.
docker_cli=docker
[ -x /usr/bin/docker ] && docker_cli=/usr/bin/docker
docker() { command "$docker_cli" "$@"; }
export DOCKER_BUILDKIT=0 # the legacy builder: no buildx on Debian 12
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
if docker info >/dev/null 2>&1; then
    echo "using the running Docker daemon"
else
    [ "$(id -u)" -eq 0 ] || skip "no Docker daemon is running and only root can start one"
    command -v dockerd >/dev/null || skip "dockerd is not installed"
    saved_ip_forward=$(sysctl -n net.ipv4.ip_forward)
    if command -v iptables-save >/dev/null; then
        saved_iptables=$(iptables-save 2>/dev/null | grep -v '^#') && have_iptables=1
    fi
    ip link show docker0 >/dev/null 2>&1 || made_docker0=1
    # No iptables rules, no forwarding and no docker0 bridge: the published
    # port is served by docker-proxy on loopback, and the image build uses the
    # host's network, so the host is changed as little as possible.
    dockerd --iptables=false --ip-forward=false --bridge=none >"$tmp/dockerd.log" 2>&1 &
    dockerd_pid=$! started_dockerd=1
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.2
    done
    if ! docker info >/dev/null 2>&1; then
        tail -20 "$tmp/dockerd.log" >&2
        skip "dockerd does not start here (log above)"
    fi
    echo "started dockerd (pid $dockerd_pid)"
fi
phase_done "start dockerd"

# --- 3. the stand-in image (cached: rebuilt only when docker/standin changes)
standin_hash=$(cat "$src/docker/standin/Dockerfile" "$src/docker/standin/docker-entrypoint.sh" |
    sha256sum | cut -c1-16)
have_hash=$(docker image inspect --format '{{index .Config.Labels "lestash.standin"}}' "$image" 2>/dev/null || true)
if [ "$have_hash" = "$standin_hash" ]; then
    echo "stand-in image $image is up to date"
    phase_done "stand-in image (cached)"
else
    if ! docker image inspect "$base_image" >/dev/null 2>&1; then
        # Debian's own mirrors, as apt on this host uses them: one-line
        # sources.list entries and deb822 .sources files.
        debian_sources() {
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                                   print $i, $(i + 1) }'
            local f
            for f in /etc/apt/sources.list.d/*.sources; do
                [ -e "$f" ] || continue
                awk 'function flush(  n, m, i, j, U, S) {
                         if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                             n = split(uris, U, " "); m = split(suites, S, " ")
                             for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print U[i], S[j]
                         }
                         types = uris = suites = enabled = ""
                     }
                     /^[ \t]*#/ { next }
                     /^[ \t]*$/ { flush(); next }
                     /^[^ \t]/ { k = tolower($1); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
                                 if (k == "types:") types = v; else if (k == "uris:") uris = v
                                 else if (k == "suites:") suites = v; else if (k == "enabled:") enabled = tolower(v) }
                     END { flush() }' "$f"
            done
        }
        sources=$(debian_sources | awk '$1 ~ /^https?:\/\// && $2 ~ /^bookworm(-updates|-security)?$/' | sort -u)
        mirror=$(echo "$sources" | awk '$2 == "bookworm" { print $1; exit }')
        [ -n "$mirror" ] || skip "apt on this host has no Debian bookworm mirror to build the stand-in image from"
        echo "debootstrap bookworm from $mirror"
        rootfs=$tmp/rootfs
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
            { tail -20 "$tmp/debootstrap.log" >&2; fail "debootstrap failed"; }
        # The image's apt uses this host's mirrors, updates and security included.
        echo "$sources" | awk '{ print "deb", $1, $2, "main" }' >"$rootfs/etc/apt/sources.list"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
        rm -rf "$rootfs"
        phase_done "debootstrap + import"
    fi
    docker build -q --network host --label "lestash.standin=$standin_hash" -t "$image" \
        "$src/docker/standin" >"$tmp/build.log" 2>&1 ||
        { tail -30 "$tmp/build.log" >&2; fail "docker build of the stand-in image failed"; }
    docker image prune -f --filter "label=lestash.standin" >/dev/null 2>&1 || true
    phase_done "stand-in image build"
fi

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
echo "$out" | grep -q "password" || fail "unexpected error without a password: $out"
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
