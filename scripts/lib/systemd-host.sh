#!/usr/bin/env bash
# systemd-host.sh: a throwaway Debian 12 "host" with a real systemd (PID 1 in
# its own namespaces) and docker.io, for testing dockroot's service handling.
#
# Usage:
#   systemd-host.sh build                 build the cached rootfs once, print its path
#   systemd-host.sh copy DEST             build if needed, then cp -a --reflink=auto to
#                                         DEST (which must not exist)
#   systemd-host.sh boot ROOT NAME [--bind SRC:DST ...]
#                                         boot ROOT with systemd-nspawn in the background,
#                                         wait for systemd, print the container's PID 1 (host pid)
#   systemd-host.sh exec PID CMD...       run CMD inside (all namespaces of PID)
#   systemd-host.sh stop PID              power off the container and wait for nspawn to exit
#   systemd-host.sh snap ROOT             before boot: the snap's layout (see write_snap)
#
# The rootfs is cached in $DOCKROOT_FIXTURES/bookworm-rootfs (a directory plus a
# .stamp file written last); building is serialised with flock so concurrent
# test runs do not race. The mirror is the one apt on this machine uses
# (deb.debian.org), since CI can only reach the Debian registry.
#
# Measured here (2 cores, deb.debian.org): debootstrap 2 min 19 s (570 MB),
# cp -a of the cached rootfs 1.6 s, boot to "running" 1.7-2.3 s (docker.service
# is enabled and already up by then), `systemctl start docker` < 1 s, stop 2 s.
# Inside, `docker info` works, and after `systemctl stop docker.service`
# alone docker.socket re-activates docker on the next `docker info`.
set -euo pipefail

FIXTURES=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
CACHE=$FIXTURES/bookworm-rootfs
MIRROR=${DOCKROOT_MIRROR:-http://deb.debian.org/debian}
INCLUDE=systemd,systemd-sysv,dbus,docker.io,busybox-static,attr,iproute2

die() { echo "systemd-host.sh: $*" >&2; exit 1; }
# shellcheck source=nspawn.sh
. "$(dirname "${BASH_SOURCE[0]}")/nspawn.sh"

build() {
    mkdir -p "$FIXTURES"
    # flock: a second test run waits for the first build instead of racing it.
    exec 9>"$FIXTURES/.bookworm-rootfs.lock"
    flock 9
    if [[ ! -e $CACHE.stamp ]]; then
        rm -rf "$CACHE" "$CACHE.tmp"
        echo "systemd-host.sh: debootstrap bookworm from $MIRROR (a few minutes)" >&2
        debootstrap --variant=minbase --include="$INCLUDE" bookworm "$CACHE.tmp" "$MIRROR" \
            >"$FIXTURES/debootstrap.log" 2>&1 \
            || die "debootstrap failed, see $FIXTURES/debootstrap.log"
        configure "$CACHE.tmp"
        mv "$CACHE.tmp" "$CACHE"
        touch "$CACHE.stamp"
    fi
    flock -u 9
    exec 9>&-
}

# Make the guest boot fast and quiet, and make docker usable without a network.
configure() {
    local r=$1
    echo dockroot-host >"$r/etc/hostname"
    # nspawn refuses to boot without a machine-id-capable /etc/machine-id.
    : >"$r/etc/machine-id"
    # Units that hang or fail without real hardware/network.
    for u in systemd-networkd-wait-online.service systemd-timesyncd.service \
             apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
             fstrim.timer e2scrub_reap.service; do
        ln -sf /dev/null "$r/etc/systemd/system/$u"
    done
    # Same reasons as the private test daemons (no iptables/bridge in a
    # nested netns without modules); overlay2 works on the host's backing fs.
    mkdir -p "$r/etc/docker"
    cat >"$r/etc/docker/daemon.json" <<'EOF'
{
  "iptables": false,
  "bridge": "none",
  "storage-driver": "overlay2"
}
EOF
    # Debian enables docker.service at install time; keep that (a real host
    # looks like this), but drop any leftover data so every copy starts clean.
    rm -rf "$r/var/lib/docker" "$r/var/lib/containerd"
}

# The snap's layout, simulated (there is no snapd here): Debian's dockerd run
# by snap.docker.dockerd.service with the snap's paths, the data-root in
# $SNAP_COMMON and daemon.json in $SNAP_DATA (current -> a revision), and no
# docker.io units (a snap host has none).
write_snap() {
    local r=$1 rev=2915
    rm -f "$r"/lib/systemd/system/docker.{service,socket} \
        "$r/etc/systemd/system/multi-user.target.wants/docker.service" \
        "$r/etc/systemd/system/sockets.target.wants/docker.socket"
    mkdir -p "$r/var/snap/docker/$rev/config" "$r/var/snap/docker/common/var-lib-docker"
    ln -sfn "$rev" "$r/var/snap/docker/current"
    mv "$r/etc/docker/daemon.json" "$r/var/snap/docker/$rev/config/daemon.json"
    cat >"$r/etc/systemd/system/snap.docker.dockerd.service" <<'EOF'
[Unit]
Description=Service for snap application docker.dockerd (simulated by dockroot's tests: Debian's dockerd with the snap's paths)
After=containerd.service

[Service]
ExecStart=/usr/sbin/dockerd --data-root /var/snap/docker/common/var-lib-docker --config-file /var/snap/docker/current/config/daemon.json -H unix:///run/docker.sock --pidfile /run/snap.docker/docker.pid --exec-root /run/snap.docker
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/snap.docker.dockerd.service "$r/etc/systemd/system/multi-user.target.wants/snap.docker.dockerd.service"
}

boot() {
    local root=$1 name=$2; shift 2
    bind_args "$@"
    [[ -x $root/lib/systemd/systemd ]] || die "boot: $root is not a rootfs"
    local log=$root.nspawn.log
    # --keep-unit/--register=no: no machined/systemd on the outer host (PID 1
    # is not systemd here). The syscall filter adds the keyring calls that
    # docker/runc use and nspawn denies by default.
    with_dev_null setsid systemd-nspawn -b -D "$root" -M "$name" --register=no --keep-unit \
        --capability=all --bind=/sys/fs/cgroup \
        --system-call-filter='add_key keyctl request_key' \
        "${BINDS[@]}" </dev/null >"$log" 2>&1 &
    local nspid=$!
    echo "$nspid" >"$root.nspawn.pid"
    wait_systemd "$nspid" "$log" 600
}

case ${1:-} in
    build) build; echo "$CACHE" ;;
    copy) [[ $# -eq 2 ]] || die "usage: copy DEST"; [[ ! -e $2 ]] || die "copy: $2 exists"
          build; cp -a --reflink=auto "$CACHE" "$2" ;;
    boot) [[ $# -ge 3 ]] || die "usage: boot ROOT NAME [--bind SRC:DST ...]"; shift; boot "$@" ;;
    exec) [[ $# -ge 3 ]] || die "usage: exec PID CMD..."; shift; exec_in "$@" ;;
    stop) [[ $# -eq 2 ]] || die "usage: stop PID"; poweroff "$2" ;;
    snap) [[ $# -eq 2 ]] || die "usage: snap ROOT"; write_snap "$2" ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#' >&2; exit 2 ;;
esac
