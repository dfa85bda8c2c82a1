#!/usr/bin/env bash
# dockerd.sh: a PRIVATE dockerd for one test, never the system one.
#
# Usage:
#   dockerd.sh start DIR   start dockerd with everything under DIR, wait until
#                          it answers (60 s max); prints nothing on success
#   dockerd.sh stop DIR    SIGTERM it and wait (SIGKILL after 30 s); then kill
#                          its containerd and shims and unmount container
#                          mounts if anything outlived it
#   dockerd.sh restart DIR stop, then start: what `systemctl restart docker`
#                          does (bench.sh --downtime's baseline)
#
# Layout: DIR/root (data-root), DIR/exec (exec-root), DIR/sock (API socket),
# DIR/pid, DIR/log, DIR/daemon.json. Clients: docker -H unix://DIR/sock.
#
# Why these flags:
# - DIR must be short: unix socket paths are limited to 108 bytes and dockerd
#   puts containerd's sockets under DIR/exec/containerd/. We refuse > 60 bytes.
# - --config-file DIR/daemon.json ({}): a host /etc/docker/daemon.json must not
#   leak in (data-root, storage-driver, hosts there would clash with flags).
# - No --containerd: dockerd 20.10 then starts its own containerd with state in
#   DIR/exec/containerd and root in DIR/root/containerd, so two private daemons
#   (and a system one) are fully independent; shim sockets under
#   /run/containerd/s/ are named by a hash of that containerd's address.
# - --iptables=false --bridge=none --ip-masq=false: no netfilter/bridge here,
#   and tests never need container networking (nothing can be pulled anyway).
# - --storage-driver=overlay2 unless DOCKROOT_STORAGE_DRIVER says otherwise
#   (vfs works on any backing fs, e.g. xfs without ftype).
# - DOCKROOT_DATA_ROOT_IN_JSON=1: no --data-root flag; a new DIR/daemon.json
#   holds {"data-root": "DIR/root"} instead (to test moving by daemon.json).
# - --userland-proxy=false: no docker-proxy processes to leak.
# Stop time: dockerd stops each running container with its own stop timeout
# (10 s default; --shutdown-timeout cannot shorten it), so fixtures run their
# containers with --stop-timeout 2.
set -euo pipefail

die() { echo "dockerd.sh: $*" >&2; exit 1; }

start() {
    local dir i
    mkdir -p "$1"
    dir=$(realpath "$1")
    ((${#dir} <= 60)) || die "DIR '$dir' too long for unix sockets (max 60 bytes)"
    if [[ -e $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        die "a dockerd already runs for $dir (pid $(cat "$dir/pid"))"
    fi
    mkdir -p "$dir/root" "$dir/exec"
    bash "$(dirname "${BASH_SOURCE[0]}")/leaks.sh" record "$dir"
    local root_flag=(--data-root "$dir/root")
    if [[ -n ${DOCKROOT_DATA_ROOT_IN_JSON:-} ]]; then
        [[ -e $dir/daemon.json ]] || printf '{"data-root": "%s"}\n' "$dir/root" >"$dir/daemon.json"
        root_flag=()
    fi
    [[ -e $dir/daemon.json ]] || echo '{}' >"$dir/daemon.json"
    rm -f "$dir/sock" "$dir/pid"
    # setsid: the daemon must outlive this script and not get the test's ^C.
    setsid dockerd \
        --config-file "$dir/daemon.json" \
        "${root_flag[@]}" \
        --exec-root "$dir/exec" \
        --pidfile "$dir/pid" \
        -H "unix://$dir/sock" \
        --storage-driver "${DOCKROOT_STORAGE_DRIVER:-overlay2}" \
        --iptables=false --ip-masq=false --bridge=none --userland-proxy=false \
        </dev/null >>"$dir/log" 2>&1 &
    local dpid=$!
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$dpid" 2>/dev/null; then
            tail -n 20 "$dir/log" >&2
            die "dockerd exited during startup, see $dir/log"
        fi
        if docker -H "unix://$dir/sock" info >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    kill -TERM "$dpid" 2>/dev/null || true
    die "dockerd did not answer within 60 s, see $dir/log"
}

stop() {
    local dir
    dir=$(realpath -m "$1")
    stop_daemon "$dir"
    reap "$dir"
    unmount_containers "$dir"
}

stop_daemon() {
    local dir=$1 pid i
    [[ -e $dir/pid ]] || return 0
    pid=$(cat "$dir/pid")
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/pid"; return 0; }
    # dockerd stops its containers (10 s each by default) and its containerd.
    kill -TERM "$pid"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$dir/pid"; return 0; }
        sleep 0.1
    done
    echo "dockerd.sh: dockerd $pid ignored SIGTERM for 30 s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
}

# This daemon's containerd and its shims: they name DIR/exec/containerd/ on
# their command line (--config, -address); no other daemon's do.
containerd_pids() {
    local p
    for p in /proc/[0-9]*; do
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$1/exec/containerd/" && echo "${p#/proc/}"
    done
    return 0
}

# Shims are re-parented to init and outlive a dockerd that died without
# stopping its containers (SIGKILL, a crash, a kill during a test): a shim
# and its `sleep 1d` were found running after scripts/test.sh. Kill each
# shim's children first (a container's init: SIGKILL ends its whole pid
# namespace), then the shim and containerd.
reap() {
    local dir=$1 pids p c i
    for ((i = 0; i < 50; i++)); do
        pids=$(containerd_pids "$dir")
        [[ -n $pids ]] || return 0
        ((i > 0)) || echo "dockerd.sh: killing what outlived the dockerd of $dir: $(echo $pids)" >&2
        for p in $pids; do
            for c in $(cat "/proc/$p"/task/*/children 2>/dev/null); do kill -KILL "$c" 2>/dev/null || true; done
            kill -KILL "$p" 2>/dev/null || true
        done
        sleep 0.1
    done
    echo "dockerd.sh: processes of $dir survive SIGKILL: $pids" >&2
    return 1
}

# Mounts a daemon that did not stop cleanly leaves below DIR: container
# overlays, shm and network namespaces, and the bind mount of the data-root
# onto itself that dockerd makes for mount propagation (same path as its
# root field). A filesystem mounted below DIR on purpose (a test's
# data-root on a loop device) is none of these.
unmount_containers() {
    local m
    awk -v d="$1/" 'index($5, d) == 1 {
        for (i = 7; $i != "-"; i++) {}
        t = $(i + 1)
        if (t == "overlay" || t == "nsfs" || (t == "tmpfs" && $5 ~ /\/containers\/[^\/]+\/mounts\//) || ($4 == $5 && $5 == d "root")) print $5
    }' /proc/self/mountinfo | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "dockerd.sh: cannot unmount $m" >&2
    done
}

case ${1:-} in
    start) [[ $# -eq 2 ]] || die "usage: dockerd.sh start DIR"; start "$2" ;;
    stop) [[ $# -eq 2 ]] || die "usage: dockerd.sh stop DIR"; stop "$2" ;;
    restart) [[ $# -eq 2 ]] || die "usage: dockerd.sh restart DIR"; stop "$2"; start "$2" ;;
    *) echo "usage: dockerd.sh start DIR | stop DIR" >&2; exit 2 ;;
esac
