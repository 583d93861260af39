#!/usr/bin/env bash
# The Debian package, as a user installs it: `cpack -G DEB` from the build,
# then README.md's install lines run as written in a clean Debian 12 with
# systemd as PID 1 (none of our libraries in it, so apt must resolve the
# package's Depends from Debian's mirror). Then, there:
#  - `lestash-syncd --version` prints this build's version, `lestash-sync
#    --help` its subcommands;
#  - `man -w` finds lestash-syncd(8), lestash-sync(1), sync.toml(5), and man
#    renders them;
#  - bash-completion's loader finds the completion of both programs by name,
#    and it completes;
#  - the user unit in /usr/lib/systemd/user starts /usr/bin/lestash-syncd,
#    `systemctl --user enable --now` (the README's line) makes it active, and
#    `lestash-sync status` reaches it;
#  - the migrations, the example config and the docs are in place, and
#    removing the package removes its files.
# On the host: the package's fields (computed Depends, Maintainer, Section).
# Needs root (docker_lib.sh: installs docker.io and debootstrap when missing,
# starts dockerd when none is running, puts the host back). The image (Debian
# 12 + systemd + man-db + bash-completion + sudo) is cached; the container is
# removed. Exits 77 (CTest: Skipped) only when Docker or systemd-in-Docker
# cannot run here; any other problem fails.
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
image=local/lestash-deb-test:bookworm
user=tester uid=1000 home=/home/tester

source "$src/tests/scripts/docker_lib.sh"
for b in lestash-syncd lestash-sync; do [ -x "$build/$b" ] || fail "$build/$b is not built"; done
version=$("$build/lestash-syncd" --version | awk '{ print $2 }')
dl_init
cid=""
test_cleanup() {
    [ -n "$cid" ] || return 0
    if [ "$1" != 0 ] && [ "$1" != 77 ]; then
        echo "--- journal of lestash-syncd.service (last 40 lines) ---" >&2
        docker exec -u "$user" -e XDG_RUNTIME_DIR="/run/user/$uid" "$cid" \
            journalctl --user -u lestash-syncd --no-pager -q -n 40 >&2
    fi
    docker rm -f -v "$cid" >/dev/null || echo "warning: could not remove container $cid" >&2
}

# --- 1. the package --------------------------------------------------------------
# The README's way, in a scratch directory: cpack over this build tree.
(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1) ||
    { tail -30 "$tmp/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$(ls "$tmp"/lestash-sync_"$version"_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "cpack made no lestash-sync_${version}_*.deb: $(ls "$tmp")"
field() { dpkg-deb -f "$deb" "$1"; }
depends=$(field Depends)
echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"
echo "Depends: $depends"
echo "Suggests: $(field Suggests)"
# Computed by dpkg-shlibdeps from the binaries, with versions; not typed in.
for lib in libc6 libstdc++6 libpq5 libsqlite3-0 libpqxx procps; do
    [[ ", $depends" == *", $lib"* ]] || fail "Depends lacks $lib: $depends"
done
grep -Eq 'libpq5 \(>= [0-9]' <<<"$depends" || fail "Depends has no computed version for libpq5: $depends"
grep -q -- '-dev' <<<"$depends" && fail "Depends names a -dev package: $depends"
[ "$(field Package)" = lestash-sync ] && [ "$(field Version)" = "$version" ] ||
    fail "Package/Version are $(field Package)/$(field Version), not lestash-sync/$version"
[ "$(field Section)" = utils ] || fail "Section is '$(field Section)'"
grep -q '@' <<<"$(field Maintainer)" || fail "Maintainer is '$(field Maintainer)'"
[ "$(field Description | wc -l)" -gt 3 ] || fail "no long Description: $(field Description)"
contents=$(dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|')
for f in /usr/bin/lestash-syncd /usr/bin/lestash-sync /usr/lib/systemd/user/lestash-syncd.service \
    /usr/share/man/man8/lestash-syncd.8.gz /usr/share/man/man1/lestash-sync.1.gz \
    /usr/share/man/man5/sync.toml.5.gz /usr/share/bash-completion/completions/lestash-syncd \
    /usr/share/bash-completion/completions/lestash-sync /usr/share/doc/lestash-sync/README.md \
    /usr/share/doc/lestash-sync/sync.toml.example /usr/share/doc/lestash-sync/protocol.md \
    /usr/share/lestash-sync/migrations/postgres/001_tables.sql; do
    grep -qx -- "$f" <<<"$contents" || fail "the package lacks $f"
done
grep -q 'lestash-bench\|/man/[^/]*\.h2m' <<<"$contents" && fail "the package holds build-only files: $(grep 'lestash-bench\|h2m' <<<"$contents")"
phase_done "cpack -G DEB, fields and contents"

# The README's three install lines, as written.
readme_block=$(awk '/^## Install the Debian package/ { on = 1; next } on && /^```sh/ { inb = 1; next }
                    inb && /^```/ { exit } inb { print }' "$src/README.md" | sed 's/[[:space:]]*#.*$//' | grep -v '^$')
[ "$(wc -l <<<"$readme_block")" = 3 ] || fail "README.md, \"Install the Debian package\": not three lines: $readme_block"
install_line=$(sed -n 2p <<<"$readme_block") enable_line=$(sed -n 3p <<<"$readme_block")
grep -q 'apt install ./build/pkg/lestash-sync_\*\.deb' <<<"$install_line" ||
    fail "README's install line is not the apt install of build/pkg's package: $install_line"

# --- 2. docker, the image -----------------------------------------------------------
dl_install_packages docker.io debootstrap
cgroup2=$(dl_cgroup2)
dl_start_dockerd
phase_done "install packages, start dockerd"
mkdir "$tmp/image"
cat >"$tmp/image/Dockerfile" <<EOF
# A desktop-like Debian 12 with none of lestash-sync's libraries: systemd as
# PID 1, a user whose manager runs from boot (linger), man, bash-completion
# and sudo, as a user has them. apt answers yes (no terminal in docker exec).
FROM $DL_BASE_IMAGE
ENV container=docker
RUN set -eux; \\
    printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \\
    apt-get update -qq; \\
    apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus dbus-user-session \\
        libpam-systemd man-db bash-completion sudo; \\
    apt-get clean; rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \\
    echo 'APT::Get::Assume-Yes "true";' >/etc/apt/apt.conf.d/90assume-yes; \\
    useradd --create-home --uid $uid --shell /bin/bash $user; \\
    mkdir -p /var/lib/systemd/linger; touch /var/lib/systemd/linger/$user; \\
    systemctl mask getty.target console-getty.service systemd-udevd.service \\
        systemd-udev-trigger.service systemd-firstboot.service
ENTRYPOINT []
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
dl_build_image "$image" "$tmp/image"

# --- 3. boot it; the host's network, for Debian's mirror ------------------------------
cid=$(dl_run_systemd "$cgroup2" host deb "$image")
dl_wait_booted "$cid"
wait_for 60 "the user manager of $user (linger) runs" docker exec "$cid" systemctl is-active "user@$uid.service"
root() { docker exec -w /root/lestash-sync "$cid" bash -c "$1"; }
ux() { docker exec -u "$user" -e HOME="$home" -e XDG_RUNTIME_DIR="/run/user/$uid" -w "$home" "$cid" bash -c "$1"; }
phase_done "boot the container"

# --- 4. install: README's line as root, in a checkout with build/pkg ------------------
docker exec "$cid" mkdir -p /root/lestash-sync/build/pkg
docker cp "$deb" "$cid:/root/lestash-sync/build/pkg/" || fail "docker cp of the package failed"
root 'apt-get update -qq' >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log" >&2; fail "apt-get update in the container failed"; }
root "$install_line" >"$tmp/apt.log" 2>&1 || { tail -30 "$tmp/apt.log" >&2; fail "README's \`$install_line\` failed"; }
echo "apt set up $(grep -c '^Setting up' "$tmp/apt.log" || true) packages"
phase_done "apt install the package (Depends from the mirror)"

# --- 5. what it installed ---------------------------------------------------------------
out=$(root 'lestash-syncd --version') || fail "lestash-syncd --version: $out"
[ "$out" = "lestash-syncd $version" ] || fail "lestash-syncd --version says '$out', not 'lestash-syncd $version'"
out=$(root 'lestash-sync --version') || fail "lestash-sync --version: $out"
[ "$out" = "lestash-sync $version" ] || fail "lestash-sync --version says '$out'"
out=$(root 'lestash-sync --help') || fail "lestash-sync --help: $out"
for sub in status now search conflicts verify; do grep -q "^  $sub " <<<"$out" || fail "lestash-sync --help lacks $sub: $out"; done
for page in lestash-syncd:8 lestash-sync:1 sync.toml:5; do
    name=${page%:*} section=${page#*:}
    where=$(root "man -w $name") || fail "man -w $name finds nothing"
    [ "$where" = "/usr/share/man/man$section/$name.$section.gz" ] || fail "man -w $name: $where"
    text=$(root "MANWIDTH=100 man -P cat $section $name 2>&1") || fail "man $section $name: $text"
    grep -q "EXIT STATUS\|KEYS" <<<"$text" || fail "man $name does not render its sections: $(head -20 <<<"$text")"
done
for program in lestash-syncd lestash-sync; do
    # As bash loads it on the first Tab: bash-completion's loader, by name.
    out=$(ux "source /usr/share/bash-completion/bash_completion; _completion_loader $program; complete -p $program") ||
        fail "bash-completion does not load the completion of $program: $out"
    grep -q -- "-F _${program//-/_} $program" <<<"$out" || fail "the completion of $program is not its function: $out"
done
out=$(ux 'source /usr/share/bash-completion/bash_completion; _completion_loader lestash-sync
          COMP_WORDS=(lestash-sync status --js); COMP_CWORD=2; _lestash_sync; echo "${COMPREPLY[*]}"') ||
    fail "completing lestash-sync status --js: $out"
[ "$out" = "--json" ] || fail "lestash-sync status --js<Tab> offers '$out', not --json"
unit=/usr/lib/systemd/user/lestash-syncd.service
root "grep -qx 'ExecStart=/usr/bin/lestash-syncd' $unit" || fail "$unit does not start /usr/bin/lestash-syncd"
root "grep -q 'Documentation=.*man:lestash-syncd(8)' $unit" || fail "$unit does not point at its man page"
# systemd's own check, man page of Documentation= included; any output fails.
out=$(ux "systemd-analyze --user verify $unit 2>&1") && [ -z "$out" ] || fail "systemd-analyze --user verify $unit: $out"
root "test -s /usr/share/lestash-sync/migrations/postgres/001_tables.sql && test -s /usr/share/doc/lestash-sync/sync.toml.example" ||
    fail "the migrations or the example config are missing"
# The installed example config is accepted as it stands.
root 'lestash-syncd --config /usr/share/doc/lestash-sync/sync.toml.example --db /tmp/t.db --once' >/dev/null ||
    fail "the installed daemon refuses the installed example config"
phase_done "version, help, man, completion, files"

# --- 6. README's enable line, as the user ------------------------------------------------
ux "$enable_line" >"$tmp/enable.log" 2>&1 || { cat "$tmp/enable.log" >&2; fail "README's \`$enable_line\` failed"; }
state=$(ux 'systemctl --user is-active lestash-syncd') || fail "the unit is not active after enable --now: $state"
out=$(ux 'lestash-sync status') || fail "lestash-sync status against the packaged unit: $out"
grep -q "not configured (capturing locally only)" <<<"$out" || fail "unexpected status: $out"
out=$(ux 'lestash-sync status --json') || fail "lestash-sync status --json: $out"
grep -q "\"version\": \"$version\"" <<<"$out" || fail "the daemon does not report version $version: $out"
# README's next step: the example config in place, then a reload, which
# the daemon takes (the example has no conninfo: still capturing only).
ux 'cp /usr/share/doc/lestash-sync/sync.toml.example ~/.config/lestash/sync.toml && systemctl --user reload lestash-syncd' ||
    fail "README's cp of the example config and systemctl --user reload failed"
wait_for 30 "the daemon answers after the reload" ux 'lestash-sync status'
state=$(ux 'systemctl --user is-active lestash-syncd') || fail "the unit is not active after the reload: $state"
ux 'systemctl --user disable --now lestash-syncd' >/dev/null 2>&1 || fail "disable --now failed"
phase_done "systemctl --user enable --now, lestash-sync status"

# --- 7. removal ----------------------------------------------------------------------
root 'sudo apt remove lestash-sync' >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; fail "README's sudo apt remove lestash-sync failed"; }
left=$(root 'ls /usr/bin/lestash-sync* /usr/lib/systemd/user/lestash-syncd.service /usr/share/man/man1/lestash-sync.1.gz 2>/dev/null' || true)
[ -z "$left" ] || fail "apt remove left: $left"
phase_done "sudo apt remove lestash-sync"
echo "ok: $(basename "$deb") installs into a clean Debian 12 with its Depends, and runs"
