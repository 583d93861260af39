#!/usr/bin/env bash
# The installed user unit under a real systemd: a container with systemd as
# PID 1, a user with linger (so their user manager runs), Debian's Postgres
# as a system service, and our build installed into ~/.local as the README
# says. Checks, through `systemctl --user` as that user:
#  - `enable --now` returns once the daemon sent READY=1 (active at once), the
#    control socket answers, `status` shows the daemon's STATUS= text, and the
#    daemon syncs both ways with Postgres (unix socket, least-privilege role);
#  - `reload` keeps the same process;
#  - with WatchdogSec=4s the daemon keeps pinging (not restarted), and once
#    hung (SIGSTOP) the watchdog kills it (SIGABRT) and it is restarted;
#  - `stop` ends it cleanly (exit 0, Result=success);
#  - the sandbox (PrivateUsers=yes makes ProtectHome/ProtectSystem effective
#    in a user unit): the daemon cannot write outside ~/.config/lestash, while
#    the same command outside the unit can; ReadWritePaths= (the README's
#    advice) lets it.
# Needs root (docker_lib.sh: installs docker.io and debootstrap when missing,
# starts dockerd when none is running, puts the host back). The image (Debian
# 12 + systemd + postgresql-15 + our binaries' libraries) is cached; the
# container is removed. Exits 77 (CTest: Skipped) only when Docker or
# systemd-in-Docker cannot run here; any other problem fails.
# Usage: systemd_container_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
image=local/lestash-systemd:bookworm
user=tester uid=1000
home=/home/$user unit=lestash-syncd.service

source "$src/tests/scripts/docker_lib.sh"
for b in lestash-syncd lestash-sync; do [ -x "$build/$b" ] || fail "$build/$b is not built"; done
dl_init
cid=""
test_cleanup() {
    [ -n "$cid" ] || return 0
    if [ "$1" != 0 ] && [ "$1" != 77 ]; then
        echo "--- journal of $unit (last 60 lines) ---" >&2
        docker exec -u "$user" -e XDG_RUNTIME_DIR="/run/user/$uid" "$cid" \
            journalctl --user -u "$unit" --no-pager -q -n 60 >&2
        echo "--- failed units ---" >&2
        docker exec "$cid" systemctl --failed --no-pager >&2
    fi
    # -v: the anonymous volume the stand-in image declares.
    docker rm -f -v "$cid" >/dev/null || echo "warning: could not remove container $cid" >&2
}

# --- 1. packages, dockerd, cgroup2 ------------------------------------------
dl_install_packages docker.io debootstrap
phase_done "install packages"
cgroup2=$(dl_cgroup2)
dl_start_dockerd
phase_done "start dockerd"

# --- 2. the image (cached until its Dockerfile or the image below changes) ---
# The packages holding our binaries' shared libraries, as a user installs them.
# (dpkg knows a library by the path its package ships, /lib or /usr/lib.)
libs=$(ldd "$build/lestash-syncd" "$build/lestash-sync" | awk '/=> \// { print $3 }' | sort -u)
owners=$(for l in $libs; do echo "$l"; readlink -f "$l"; done | sort -u | xargs dpkg -S 2>/dev/null || true)
for l in $libs; do
    awk -F': ' '{ print $NF }' <<<"$owners" | grep -xF -e "$l" -e "$(readlink -f "$l")" >/dev/null ||
        fail "no Debian package holds $l (ldd $build/lestash-syncd)"
done
pkgs=$(echo "$owners" | cut -d: -f1 | sort -u | tr '\n' ' ')
mkdir "$tmp/image"
sed "s/@PACKAGES@/$pkgs/" >"$tmp/image/Dockerfile" <<'EOF'
# systemd as PID 1, Debian's Postgres as a system service, the libraries of
# lestash-syncd, and a user whose manager runs from boot (linger). FROM the
# compose test's stand-in: Debian 12 with postgresql-15 installed, no cluster.
FROM local/lestash-postgres-standin:15
ENV container=docker
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus dbus-user-session \
        libpam-systemd sqlite3 procps @PACKAGES@; \
    apt-get clean; rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \
    pg_createcluster 15 main; \
    echo "listen_addresses = ''" >/etc/postgresql/15/main/conf.d/socket-only.conf; \
    systemctl enable postgresql.service; \
    useradd --create-home --uid 1000 --shell /bin/bash tester; \
    mkdir -p /var/lib/systemd/linger; touch /var/lib/systemd/linger/tester; \
    mkdir -p /var/log/journal; \
    systemctl mask getty.target console-getty.service systemd-udevd.service \
        systemd-udev-trigger.service systemd-firstboot.service
ENTRYPOINT []
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
dl_build_image local/lestash-postgres-standin:15 "$src/docker/standin"
dl_build_image "$image" "$tmp/image"

# --- 3. boot it --------------------------------------------------------------
# The flags systemd needs as PID 1 here (TESTING-NOTES.md); no network: the
# daemon reaches Postgres over its unix socket.
cid=$(dl_run_systemd "$cgroup2" none systemd "$image")
dl_wait_booted "$cid"

# As the user, with the environment of their session (ux_in: with stdin).
ux() { docker exec -u "$user" -e HOME="$home" -e XDG_RUNTIME_DIR="/run/user/$uid" -w "$home" "$cid" "$@"; }
ux_in() { docker exec -i -u "$user" -e HOME="$home" -e XDG_RUNTIME_DIR="/run/user/$uid" -w "$home" "$cid" "$@"; }
uctl() { ux systemctl --user "$@"; }
prop() { uctl show -p "$1" --value "$unit"; }
# The unit's log as its user reads it (the manager's lines and the daemon's,
# "lestash-syncd[PID]: " before each of the daemon's).
journal() { ux journalctl --user -u "$unit" --no-pager -q -o short; }
# logged TEXT: the journal has a line containing TEXT. (Not `journal | grep
# -q`: grep's early exit would fail the pipeline under pipefail.)
logged() { grep -qF -- "$1" <<<"$(journal)"; }
pgsql() { docker exec -u postgres "$cid" psql -X -v ON_ERROR_STOP=1 -q -tA -d "${PGDB:-lestash}" "$@"; }
pgsql_in() { docker exec -i -u postgres "$cid" psql -X -v ON_ERROR_STOP=1 -q -tA -d lestash; }
wait_for 60 "the user manager of $user (linger) runs" docker exec "$cid" systemctl is-active "user@$uid.service"
wait_for 60 "Postgres in the container accepts connections" docker exec "$cid" pg_isready -q
phase_done "boot systemd in a container"

# --- 4. install as a user would: ~/.local, the unit, a config -----------------
HOME=$home DESTDIR=$tmp/stage cmake --install "$build" --prefix "$home/.local" >"$tmp/install.log" ||
    { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
[ -f "$tmp/stage$home/.local/share/systemd/user/$unit" ] ||
    fail "cmake --install with prefix ~/.local put no unit in ~/.local/share/systemd/user"
mkdir -p "$tmp/stage$home/.config/lestash"
cat >"$tmp/stage$home/.config/lestash/sync.toml" <<'EOF'
[postgres]
# Debian's cluster, over its unix socket, as this user's role (peer auth).
conninfo = "host=/run/postgresql dbname=lestash"

[replica]
name = "in-container"
EOF
chown -R "$uid:$uid" "$tmp/stage$home"
docker cp -a "$tmp/stage$home/." "$cid:$home/" || fail "docker cp of the installed tree failed"

# Postgres: the schema applied by its owner, the way docker/initdb does, and a
# login role for the user in the least-privilege group.
PGDB=postgres pgsql -c 'CREATE DATABASE lestash' || fail "CREATE DATABASE"
cat "$tmp/stage$home/.local/share/lestash-sync/migrations/postgres/"*.sql | pgsql_in >/dev/null ||
    fail "the installed migrations do not apply"
pgsql -c "CREATE ROLE $user LOGIN IN ROLE lestash_sync" || fail "CREATE ROLE $user"
phase_done "install, Postgres schema and role"

# --- 5. enable --now: returns once READY=1 was sent ---------------------------
uctl daemon-reload
uctl enable --now lestash-syncd || fail "systemctl --user enable --now lestash-syncd failed"
# Type=notify: the start job ends at READY=1, so it is active right away.
[ "$(prop ActiveState)/$(prop SubState)" = active/running ] ||
    fail "right after start returned: $(prop ActiveState)/$(prop SubState), not active/running"
ux test -L "$home/.config/systemd/user/default.target.wants/$unit" || fail "enable made no default.target.wants link"
pid=$(prop MainPID)
[ "$pid" -gt 0 ] || fail "no MainPID"
out=$(ux "$home/.local/bin/lestash-sync" status 2>&1) || fail "lestash-sync status: $out"
grep -q "in-container" <<<"$out" || fail "lestash-sync status does not name the replica: $out"
# STATUS=: the daemon's one-line summary, in systemctl status.
text=$(prop StatusText)
case "$text" in idle,* | syncing,*) ;; *) fail "StatusText is '$text', not idle/syncing (offline? see the journal)" ;; esac
out=$(uctl status --no-pager "$unit" 2>&1) || fail "systemctl --user status exits non-zero: $out"
grep -qF "Status: \"$(prop StatusText)\"" <<<"$out" || fail "systemctl --user status shows no Status line: $out"
logged "lestash-syncd[$pid]: info: attached to $home/.config/lestash/lestash.db" ||
    fail "journalctl --user -u $unit does not show the daemon's start line"
phase_done "enable --now, status"

# --- 6. syncs both ways with Postgres from inside the sandbox -----------------
db=$home/.config/lestash/lestash.db
ux sqlite3 -cmd '.timeout 5000' "$db" "INSERT INTO items (source_type, source_id, title, content)
    VALUES ('note', 'unit-1', 'From the app', 'written under systemd')"
in_postgres() { [ "$(pgsql -c "SELECT count(*) FROM lestash.items WHERE source_id = '$1'")" = 1 ]; }
wait_for 60 "the app's write reaches Postgres" in_postgres unit-1
pgsql -c "INSERT INTO lestash.items (id, source_type, source_id, title, content)
          VALUES (gen_random_uuid(), 'note', 'psql-1', 'From psql', 'the pangolin rolls up')"
found() { grep -qF "$2" <<<"$(ux "$home/.local/bin/lestash-sync" search "$1")"; }
wait_for 60 "a psql insert reaches the replica and its FTS index" found pangolin "From psql"
phase_done "sync both ways"

# --- 7. reload: same process, still active ------------------------------------
uctl reload lestash-syncd || fail "systemctl --user reload failed"
[ "$(prop MainPID)" = "$pid" ] || fail "reload replaced the process ($pid -> $(prop MainPID))"
[ "$(prop ActiveState)" = active ] || fail "not active after reload: $(prop ActiveState)"
wait_for 30 "the daemon logs the reload" logged "configuration reloaded"

# --- 8. watchdog: pinged while healthy, a hung daemon is killed and restarted --
# Hung two ways: the whole process stopped (SIGSTOP), and its sync worker
# blocked on a lock in Postgres while the event loop runs on (the daemon
# stops pinging once a cycle is stuck longer than WatchdogSec).
dropins=$home/.config/systemd/user/$unit.d
ux mkdir -p "$dropins"
# (RestartSec=1s: the restart comes sooner, nothing else changes.)
printf '[Service]\nWatchdogSec=4s\nRestartSec=1s\n' | ux_in sh -c "cat >$dropins/50-test-watchdog.conf"
uctl daemon-reload
uctl restart lestash-syncd || fail "restart with WatchdogSec=4s failed"
pid=$(prop MainPID) restarts=$(prop NRestarts)
[ "$(prop WatchdogUSec)" = 4s ] || fail "the drop-in did not set WatchdogSec: $(prop WatchdogUSec)"
# Two and a half watchdog periods without a restart: the daemon pings in time.
sleep 10
[ "$(prop MainPID)" = "$pid" ] && [ "$(prop NRestarts)" = "$restarts" ] ||
    fail "the watchdog restarted a healthy daemon (pid $pid -> $(prop MainPID), restarts $restarts -> $(prop NRestarts))"
# restarted STATE: a new main process is in STATE after an automatic restart.
restarted() {
    [ "$(prop NRestarts)" -gt "$restarts" ] && [ "$(prop ActiveState)" = "$1" ] &&
        [ "$(prop MainPID)" != "$pid" ] && [ "$(prop MainPID)" != 0 ]
}
killed_by_watchdog() {
    wait_for 90 "the hung daemon (pid $pid) is killed by the watchdog and restarted" restarted "$1"
    docker exec "$cid" kill -0 "$pid" 2>/dev/null && fail "the hung daemon (pid $pid) is still there"
    logged "Watchdog timeout" || fail "no watchdog timeout in the journal"
    logged "Killing process $pid (lestash-syncd) with signal SIGABRT" ||
        fail "the journal does not show pid $pid killed with SIGABRT"
    [ "$(prop NRestarts)" = $((restarts + 1)) ] || fail "restarted $(prop NRestarts) times, not once more"
    pid=$(prop MainPID) restarts=$(prop NRestarts)
}
docker exec "$cid" kill -STOP "$pid"
killed_by_watchdog active
phase_done "watchdog: SIGSTOP"

# A push that waits on a lock another session holds in Postgres.
docker exec -d -u postgres -e PGAPPNAME=lestash-test-lock "$cid" psql -X -d lestash \
    -c 'BEGIN; LOCK TABLE lestash.items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)'
locked() { [ "$(pgsql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lestash-test-lock' AND wait_event = 'PgSleep'")" = 1 ]; }
wait_for 30 "a session holds a lock on lestash.items" locked
ux sqlite3 -cmd '.timeout 5000' "$db" "INSERT INTO items (source_type, source_id, title, content)
    VALUES ('note', 'hang-1', 'Stuck', 'pushed while Postgres holds a lock')"
# The new process blocks on the same lock in its first cycle: not ready yet.
killed_by_watchdog activating
pgsql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lestash-test-lock'" >/dev/null
is_active() { [ "$(prop ActiveState)" = active ]; }
wait_for 60 "the restarted daemon is ready once the lock is gone" is_active
wait_for 60 "the change made while the daemon hung reaches Postgres" in_postgres hang-1
ux rm "$dropins/50-test-watchdog.conf"
uctl daemon-reload
phase_done "watchdog: worker stuck on a lock"

# --- 9. stop: a clean exit -----------------------------------------------------
pid=$(prop MainPID)
uctl stop lestash-syncd || fail "systemctl --user stop failed"
result="$(prop ActiveState) $(prop Result) $(prop ExecMainCode) $(prop ExecMainStatus)"
# ExecMainCode 1: CLD_EXITED (not killed by a signal).
[ "$result" = "inactive success 1 0" ] ||
    fail "after stop: ActiveState Result ExecMainCode ExecMainStatus = $result, want inactive success 1 0"
logged "lestash-syncd[$pid]: info: stopped" || fail "the daemon (pid $pid) did not log its clean stop"
phase_done "stop"

# --- 10. the sandbox: nothing writable outside ~/.config/lestash ---------------
docker exec "$cid" sh -c "install -d -o $user -g $user $home/Documents && install -d -m 1777 /srv/drop"
for dir in "$home/Documents" /srv/drop; do
    # Outside the unit the same user can write there...
    out=$(ux "$home/.local/bin/lestash-syncd" --db "$dir/outside.db" --once 2>&1) ||
        fail "$user cannot write $dir even outside the unit: $out"
    ux sh -c "rm -f $dir/outside.db*"
    # ...inside it, not: a read-only error that says how to allow it, and exit
    # status 2 (a setting to change), so Restart=on-failure does not retry.
    printf '[Service]\nExecStart=\nExecStart=%s --db %s/sandboxed.db\n' \
        "$home/.local/bin/lestash-syncd" "$dir" | ux_in sh -c "cat >$dropins/60-test-db.conf"
    uctl daemon-reload
    uctl start lestash-syncd 2>/dev/null && fail "the unit started with its database in $dir"
    result="$(prop ActiveState) $(prop ExecMainStatus)"
    [ "$result" = "failed 2" ] || fail "after the refused start: ActiveState ExecMainStatus = $result, want failed 2"
    grep -F "$dir/sandboxed.db" <<<"$(journal)" | grep -F "Read-only file system" |
        grep -F "ReadWritePaths=$dir" >/dev/null ||
        fail "the journal shows no read-only error for $dir/sandboxed.db naming ReadWritePaths=$dir"
    ux sh -c "ls $dir/sandboxed.db* 2>/dev/null" && fail "the sandboxed daemon left files in $dir"
    uctl reset-failed lestash-syncd
done
# The README's way to allow another directory: ReadWritePaths= in a drop-in.
printf '[Service]\nExecStart=\nExecStart=%s --db %%h/Documents/allowed.db\nReadWritePaths=%%h/Documents\n' \
    "$home/.local/bin/lestash-syncd" | ux_in sh -c "cat >$dropins/60-test-db.conf"
uctl daemon-reload
uctl start lestash-syncd || fail "the unit does not start with ReadWritePaths=%h/Documents"
[ "$(prop ActiveState)" = active ] || fail "not active with ReadWritePaths=%h/Documents: $(prop ActiveState)"
ux test -s "$home/Documents/allowed.db" || fail "no database in ~/Documents with ReadWritePaths="
uctl stop lestash-syncd
ux rm "$dropins/60-test-db.conf"
uctl daemon-reload
phase_done "sandbox"

echo "ok: the user unit under systemd as PID 1: ready on start, STATUS=, sync, reload, watchdog restart, clean stop, sandbox"
