#!/usr/bin/env bash
# sid-host.sh: a throwaway Debian sid "host" with a modern engine (docker.io
# 28.x, containerd 2.x) under a real systemd, for testing dockroot against
# both image stores: the graph driver (overlay2) and the containerd store.
#
# Usage:
#   sid-host.sh build                 build the cached rootfs once, print its path
#   sid-host.sh copy DEST             build if needed, then cp -a --reflink=auto to
#                                     DEST (which must not exist)
#   sid-host.sh boot ROOT NAME [--bind SRC:DST ...]
#                                     boot ROOT with systemd-nspawn in the background,
#                                     wait for systemd, print the container's PID 1 (host pid)
#   sid-host.sh exec PID CMD...       run CMD inside (all namespaces of PID)
#   sid-host.sh stop PID              power off the container and wait for nspawn to exit
#   sid-host.sh store ROOT MODE       write the guest's daemon.json for MODE
#                                     (overlay2 | containerd) before boot
#   sid-host.sh populate PID          offline images, a volume and containers, inside
#   sid-host.sh ce ROOT               before boot: Docker CE's configuration (docker-ce,
#                                     containerd.io): /etc/containerd/config.toml with
#                                     disabled_plugins = ["cri"] and no version line, and
#                                     dockerd started with -H fd:// --containerd=SOCK
#
# The rootfs is cached in $DOCKROOT_FIXTURES/sid-rootfs (a directory plus a
# .stamp file written last), built under flock like systemd-host.sh's.
# sid splits the CLI out of docker.io (docker-cli); ctr comes with containerd.
#
# The host here is cgroup v1 (hybrid) while sid's systemd (258+) needs the
# unified hierarchy: boot uses nspawn.sh's boot_unified (a cgroup of its own
# on the unified mount, --private-network; see there). daemon.json has
# iptables: false, bridge: none.
set -euo pipefail

FIXTURES=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
CACHE=$FIXTURES/sid-rootfs
MIRROR=${DOCKROOT_MIRROR:-http://deb.debian.org/debian}
INCLUDE=systemd,systemd-sysv,dbus,docker.io,docker-cli,containerd,busybox-static,attr,libcap2-bin,ca-certificates

die() { echo "sid-host.sh: $*" >&2; exit 1; }
# shellcheck source=nspawn.sh
. "$(dirname "${BASH_SOURCE[0]}")/nspawn.sh"

build() {
    mkdir -p "$FIXTURES"
    exec 9>"$FIXTURES/.sid-rootfs.lock"
    flock 9
    # The stamp holds the package list: a changed list rebuilds the cache.
    if [[ $(cat "$CACHE.stamp" 2>/dev/null) != "$INCLUDE" ]]; then
        rm -rf "$CACHE" "$CACHE.tmp"
        echo "sid-host.sh: debootstrap sid from $MIRROR (a few minutes)" >&2
        debootstrap --variant=minbase --include="$INCLUDE" sid "$CACHE.tmp" "$MIRROR" \
            >"$FIXTURES/debootstrap-sid.log" 2>&1 \
            || die "debootstrap failed, see $FIXTURES/debootstrap-sid.log"
        configure "$CACHE.tmp"
        mv "$CACHE.tmp" "$CACHE"
        echo "$INCLUDE" >"$CACHE.stamp"
    fi
    flock -u 9
    exec 9>&-
}

configure() {
    local r=$1 u
    echo dockroot-sid >"$r/etc/hostname"
    : >"$r/etc/machine-id"
    for u in systemd-networkd-wait-online.service systemd-timesyncd.service \
             apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
             fstrim.timer e2scrub_reap.service dpkg-db-backup.timer; do
        ln -sf /dev/null "$r/etc/systemd/system/$u"
    done
    # The busybox base tarball and the build context's setcap come from the
    # host at populate time; the guest only needs the engine.
    write_store "$r" overlay2
    rm -rf "$r/var/lib/docker" "$r/var/lib/containerd"
    dpkg-query --admindir="$r/var/lib/dpkg" -W docker.io containerd >"$r/.dockroot-versions"
}

# daemon.json for one image store. containerd: the containerd snapshotter
# (Docker's "containerd image store"); overlay2: the classic graph driver.
write_store() {
    local r=$1 mode=$2
    mkdir -p "$r/etc/docker"
    case $mode in
        overlay2) cat >"$r/etc/docker/daemon.json" <<'EOF'
{
  "iptables": false,
  "bridge": "none",
  "storage-driver": "overlay2",
  "features": {"containerd-snapshotter": false}
}
EOF
        ;;
        containerd) cat >"$r/etc/docker/daemon.json" <<'EOF'
{
  "iptables": false,
  "bridge": "none",
  "features": {"containerd-snapshotter": true}
}
EOF
        ;;
        *) die "store: mode must be overlay2 or containerd" ;;
    esac
}

# Docker CE's packaging on Debian's binaries: containerd.io's config.toml
# (version 1 by omission, the CRI plugin off) and docker-ce's ExecStart,
# which hands dockerd the system containerd instead of letting it find one.
write_ce() {
    local r=$1
    mkdir -p "$r/etc/containerd" "$r/etc/systemd/system/docker.service.d"
    cat >"$r/etc/containerd/config.toml" <<'EOF'
#   Copyright 2018-2022 Docker Inc.
#   (the config.toml of the containerd.io package)

disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = "/run/containerd/containerd.sock"
#  uid = 0
#  gid = 0
EOF
    cat >"$r/etc/systemd/system/docker.service.d/docker-ce.conf" <<'EOF'
[Unit]
After=containerd.service
Wants=containerd.service

[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
EOF
}

boot() {
    local root=$1 name=$2; shift 2
    bind_args "$@"
    boot_unified "$root" "$name" dockroot-sid
}

stop() { stop_unified "$1" dockroot-sid; }

case ${1:-} in
    build) build; echo "$CACHE" ;;
    copy) [[ $# -eq 2 ]] || die "usage: copy DEST"; [[ ! -e $2 ]] || die "copy: $2 exists"
          build; cp -a --reflink=auto "$CACHE" "$2" ;;
    store) [[ $# -eq 3 ]] || die "usage: store ROOT MODE"; write_store "$2" "$3" ;;
    ce) [[ $# -eq 2 ]] || die "usage: ce ROOT"; write_ce "$2" ;;
    boot) [[ $# -ge 3 ]] || die "usage: boot ROOT NAME [--bind SRC:DST ...]"; shift; boot "$@" ;;
    exec) [[ $# -ge 3 ]] || die "usage: exec PID CMD..."; shift; exec_in "$@" ;;
    stop) [[ $# -eq 2 ]] || die "usage: stop PID"; stop "$2" ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#' >&2; exit 2 ;;
esac
