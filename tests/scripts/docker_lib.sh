# Shared by the Docker tests (compose_test.sh, systemd_container_test.sh, deb_test.sh):
# sourced after `set -euo pipefail`. It installs what is missing, starts
# dockerd when none is running, builds images from Debian's packages (Docker
# Hub is unreachable on CI) and caches them by a hash of what went into them,
# and on exit puts the host back the way it was.
#
#   source docker_lib.sh
#   dl_init                          # temp dir $tmp, the EXIT trap
#   test_cleanup() { ...; }          # optional: runs first on exit, given the exit status
#   dl_install_packages docker.io …  # exits 77 when Docker cannot be had
#   dl_start_dockerd                 # exits 77 when dockerd cannot run here
#   dl_build_image IMAGE CONTEXT_DIR # cached; rebuilt when CONTEXT_DIR or its FROM image changes
#   phase_done NAME                  # timings, printed on exit (even on failure)
#   dl_cgroup2, dl_run_systemd, dl_wait_booted  # systemd as PID 1 in a container
#   wait_for SECONDS WHAT COMMAND... # until COMMAND succeeds
#
# Exit 77 (CTest: Skipped) means only "Docker cannot run here"; every other
# problem is a failure.

DL_BASE_IMAGE=local/debian:bookworm
DL_LABEL=lestash.ci-image # the label holding each cached image's input hash

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

# --- timings -----------------------------------------------------------------
dl_timings=()
dl_phase_start=$(date +%s.%N)
phase_done() {
    local now
    now=$(date +%s.%N)
    dl_timings+=("$(awk -v a="$dl_phase_start" -v b="$now" -v n="$1" 'BEGIN { printf "%-44s %6.1f s", n, b - a }')")
    dl_phase_start=$now
}
print_timings() {
    [ ${#dl_timings[@]} -gt 0 ] || return 0
    echo "timings:"
    printf '  %s\n' "${dl_timings[@]}"
}

# --- the host as it was ------------------------------------------------------
dl_started_dockerd=0 dl_dockerd_pid="" dl_made_docker0=0 dl_saved_ip_forward=""
dl_saved_iptables="" dl_have_iptables=0 dl_saved_cgroups=""

dl_restore_iptables() {
    local now restore
    now=$(iptables-save 2>/dev/null | grep -v '^#') || return 0
    [ "$now" = "$dl_saved_iptables" ] && return 0
    # iptables-restore flushes each table it is given: the saved tables as
    # they were, and any table dockerd added, emptied with ACCEPT policies.
    restore=$(
        printf '%s\n' "$dl_saved_iptables"
        printf '%s\n' "$now" | awk -v saved="$(printf '%s\n' "$dl_saved_iptables" | grep '^\*' | tr '\n' ' ')" '
            /^\*/ { t = $0; keep = index(saved, t " ") == 0; if (keep) print; next }
            keep && /^:/ && $2 != "-" { print $1 " ACCEPT [0:0]" }
            keep && /^COMMIT/ { print }'
    )
    printf '%s\n' "$restore" | iptables-restore || echo "warning: could not restore iptables" >&2
}

# Docker's cgroup directories (…/docker, …/docker/ID/…) that were not there
# before dockerd started; rmdir leaves any that is still in use.
dl_docker_cgroups() { find /sys/fs/cgroup -type d \( -name docker -o -path '*/docker/*' \) 2>/dev/null | LC_ALL=C sort; }
dl_restore_cgroups() {
    local d
    dl_docker_cgroups | LC_ALL=C comm -13 <(printf '%s\n' "$dl_saved_cgroups") - |
        awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
        while read -r d; do rmdir "$d" 2>/dev/null || echo "warning: cgroup $d is left (in use)" >&2; done
}

dl_stop_dockerd() {
    kill -TERM "$dl_dockerd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$dl_dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$dl_dockerd_pid" 2>/dev/null; then
        echo "warning: dockerd ($dl_dockerd_pid) did not stop; killing it" >&2
        kill -KILL "$dl_dockerd_pid" 2>/dev/null
    fi
    wait "$dl_dockerd_pid" 2>/dev/null
}

dl_cleanup() {
    local rc=$?
    set +e
    dl_phase_start=$(date +%s.%N)
    declare -F test_cleanup >/dev/null && test_cleanup "$rc"
    if [ "$dl_started_dockerd" = 1 ] && [ -n "$dl_dockerd_pid" ]; then
        dl_stop_dockerd
        dl_restore_cgroups
    fi
    if [ "$dl_made_docker0" = 1 ] && ip link show docker0 >/dev/null 2>&1; then
        ip link delete docker0
    fi
    if [ -n "$dl_saved_ip_forward" ] &&
        [ "$(sysctl -n net.ipv4.ip_forward 2>/dev/null)" != "$dl_saved_ip_forward" ]; then
        sysctl -qw net.ipv4.ip_forward="$dl_saved_ip_forward"
    fi
    [ "$dl_have_iptables" = 1 ] && dl_restore_iptables
    [ -n "${tmp:-}" ] && rm -rf "$tmp"
    [ ${#dl_timings[@]} -gt 0 ] && phase_done "teardown"
    print_timings
    exit "$rc"
}

dl_init() {
    tmp=$(mktemp -d)
    trap dl_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# --- packages ----------------------------------------------------------------
# dl_install_packages PKG...: apt-installs those not installed (root only).
# Docker's own packages missing and not installable: skip; anything else: fail.
dl_install_packages() {
    local missing=() p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || skip "not root, and these are missing: ${missing[*]}"
        echo "installing: ${missing[*]}"
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
            >"$tmp/apt.log" 2>&1; then
            tail -20 "$tmp/apt.log" >&2
            [ -x /usr/sbin/dockerd ] || skip "Docker cannot be installed here (apt-get failed, above)"
            fail "apt-get could not install ${missing[*]} (above)"
        fi
    fi
}

# docker.io's own client speaks its daemon's API version; prefer it over any
# other docker on PATH (e.g. a newer client in /usr/local/bin).
docker() {
    if [ -x /usr/bin/docker ]; then command /usr/bin/docker "$@"; else command docker "$@"; fi
}
export DOCKER_BUILDKIT=0 # the legacy builder: Debian 12 has no buildx

# --- dockerd -----------------------------------------------------------------
dl_start_dockerd() {
    if docker info >/dev/null 2>&1; then
        echo "using the running Docker daemon"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || skip "no Docker daemon is running and only root can start one"
    command -v dockerd >/dev/null || skip "dockerd is not installed"
    dl_saved_ip_forward=$(sysctl -n net.ipv4.ip_forward)
    if command -v iptables-save >/dev/null; then
        dl_saved_iptables=$(iptables-save 2>/dev/null | grep -v '^#') && dl_have_iptables=1
    fi
    ip link show docker0 >/dev/null 2>&1 || dl_made_docker0=1
    dl_saved_cgroups=$(dl_docker_cgroups)
    # No iptables rules, no forwarding and no docker0 bridge: published ports
    # are served by docker-proxy on loopback, image builds use the host's
    # network, so the host is changed as little as possible.
    dockerd --iptables=false --ip-forward=false --bridge=none >"$tmp/dockerd.log" 2>&1 &
    dl_dockerd_pid=$! dl_started_dockerd=1
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dl_dockerd_pid" 2>/dev/null || break
        sleep 0.2
    done
    if ! docker info >/dev/null 2>&1; then
        tail -20 "$tmp/dockerd.log" >&2
        skip "dockerd does not start here (log above)"
    fi
    echo "started dockerd (pid $dl_dockerd_pid)"
}

# --- images ------------------------------------------------------------------
# Debian's own mirrors, as apt on this host uses them ("URI SUITE" lines):
# one-line sources.list entries and deb822 .sources files.
dl_debian_sources() {
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

# $DL_BASE_IMAGE: a minimal Debian 12 made by debootstrap from this host's
# mirror, its apt pointed at the same mirrors. Built once, then kept.
dl_base_image() {
    docker image inspect "$DL_BASE_IMAGE" >/dev/null 2>&1 && return 0
    local sources mirror rootfs=$tmp/rootfs
    sources=$(dl_debian_sources | awk '$1 ~ /^https?:\/\// && $2 ~ /^bookworm(-updates|-security)?$/' | sort -u)
    mirror=$(echo "$sources" | awk '$2 == "bookworm" { print $1; exit }')
    [ -n "$mirror" ] || skip "apt on this host has no Debian bookworm mirror to build images from"
    echo "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
        { tail -20 "$tmp/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
    echo "$sources" | awk '{ print "deb", $1, $2, "main" }' >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$DL_BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    phase_done "debootstrap + import base"
}

# dl_build_image IMAGE CONTEXT_DIR: builds CONTEXT_DIR (its Dockerfile FROM
# $DL_BASE_IMAGE or an image built before by dl_build_image) as IMAGE unless
# IMAGE already carries the hash of that directory's files and of the image
# it is FROM; the replaced image is removed.
dl_build_image() {
    local image=$1 context=$2 from hash have
    from=$(awk 'toupper($1) == "FROM" { print $2; exit }' "$context/Dockerfile")
    [ "$from" = "$DL_BASE_IMAGE" ] && dl_base_image
    docker image inspect "$from" >/dev/null 2>&1 || fail "$context/Dockerfile is FROM $from, which is not built"
    hash=$({
        docker image inspect --format '{{.Id}}' "$from"
        (cd "$context" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-16)
    have=$(docker image inspect --format "{{index .Config.Labels \"$DL_LABEL\"}}" "$image" 2>/dev/null || true)
    if [ "$have" = "$hash" ]; then
        echo "image $image is up to date"
        phase_done "image $image (cached)"
        return 0
    fi
    docker build -q --network host --label "$DL_LABEL=$hash" -t "$image" "$context" \
        >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log" >&2; fail "docker build of $image failed (log above)"; }
    # The previous build of this tag, now untagged.
    docker image prune -f --filter "label=$DL_LABEL" >/dev/null 2>&1 || true
    phase_done "image $image (built)"
}

# --- systemd as PID 1 in a container ------------------------------------------
# dl_cgroup2: the host's cgroup2 hierarchy, which systemd in a container
# manages (unified or hybrid host); skips (77) when there is none.
dl_cgroup2() {
    if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        echo /sys/fs/cgroup/unified
    elif [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
        echo /sys/fs/cgroup
    else
        skip "this host has no cgroup2 hierarchy for systemd in a container"
    fi
}

# dl_run_systemd CGROUP2 NETWORK LABEL IMAGE: starts IMAGE with systemd as
# PID 1 (the flags it needs here, TESTING-NOTES.md), network NETWORK (none,
# host), label lestash.ci-test=LABEL; prints the container's id.
dl_run_systemd() {
    docker run -d --network "$2" --cap-add=ALL --cap-drop=SYS_RESOURCE \
        --security-opt seccomp=unconfined --cgroupns=host -v "$1:/sys/fs/cgroup:rw" \
        --tmpfs /run --tmpfs /run/lock --label "lestash.ci-test=$3" "$4" ||
        fail "docker run of $4 failed"
}

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds (quietly); fails
# naming WHAT when it does not within SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "not within $1 s: $what"
        sleep 0.2
    done
}

# dl_wait_booted CID: until the container's systemd has finished booting;
# notes a degraded one, fails (with its log) when it does not finish in 120 s.
dl_wait_booted() {
    local cid=$1 state deadline=$((SECONDS + 120))
    while :; do
        # Fails to connect until systemd has its bus socket up.
        state=$(timeout 120 docker exec "$cid" systemctl is-system-running --wait 2>&1) || true
        case "$state" in *"Failed to connect"*) ;; *) break ;; esac
        [ $SECONDS -lt $deadline ] || break
        sleep 0.2
    done
    case "$state" in
    running) ;;
    degraded) echo "note: the container's systemd is degraded: $(docker exec "$cid" systemctl --failed --plain --no-legend | awk '{ print $1 }' | tr '\n' ' ')" ;;
    *) docker logs "$cid" 2>&1 | tail -30 >&2; fail "systemd in the container did not finish booting: '$state'" ;;
    esac
}
