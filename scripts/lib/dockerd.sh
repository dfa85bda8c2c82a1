#!/usr/bin/env bash
# dockerd.sh: a PRIVATE dockerd for one test, never the system one.
#
# Usage:
#   dockerd.sh start DIR   start dockerd with everything under DIR, wait until
#                          it answers (60 s max); prints nothing on success
#   dockerd.sh stop DIR    SIGTERM it and wait (SIGKILL after 30 s)
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
    local dir pid i
    dir=$(realpath -m "$1")
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

case ${1:-} in
    start) [[ $# -eq 2 ]] || die "usage: dockerd.sh start DIR"; start "$2" ;;
    stop) [[ $# -eq 2 ]] || die "usage: dockerd.sh stop DIR"; stop "$2" ;;
    *) echo "usage: dockerd.sh start DIR | stop DIR" >&2; exit 2 ;;
esac
