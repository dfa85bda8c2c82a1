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
#   systemd-host.sh build-rootless        build the rootless variant once, print its path
#   systemd-host.sh copy-rootless DEST    like copy, for the rootless variant
#
# The rootless variant ($DOCKROOT_FIXTURES/bookworm-rootless) is a copy of the
# cached rootfs with rootlesskit, uidmap, slirp4netns and dbus-user-session
# installed by apt in a chroot (~30 s instead of a second debootstrap), a
# user alice (uid 1000, /etc/subuid and /etc/subgid alice:100000:65536) with
# linger, dockerd-rootless.sh on PATH (Debian ships it in
# /usr/share/docker.io/contrib/) and the system docker disabled. Building it
# boots it once to run `dockerd-rootless-setuptool.sh install` as alice
# (which needs alice's user manager) and empties her data-root again.
# Such a rootfs carries /.dockroot-boot-unified, and boot then boots it the
# way sid-host.sh does (nspawn.sh's boot_unified): with the hybrid
# --bind=/sys/fs/cgroup, user@1000.service fails to create its init.scope.
# A oneshot unit gives the guest a /dev/net/tun node of its own with mode
# 0666 (the host's is 0600, and slirp4netns, run as alice, opens it).
# alice's daemon.json: overlay2 (user.overlay.* xattrs; kernel >= 5.11) and
# bridge: none, as for the other guests; the unit the setup tool writes
# passes --iptables=false (--skip-iptables), so daemon.json must not.
# systemd-container brings systemd-machined, which `systemctl --user
# --machine=alice@` (systemd 252) needs to reach alice's manager.
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
ROOTLESS=$FIXTURES/bookworm-rootless
ROOTLESS_PACKAGES="rootlesskit uidmap slirp4netns dbus-user-session acl systemd-container"

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
    if [[ -e $root/.dockroot-boot-unified ]]; then
        boot_unified "$root" "$name" dockroot-guest
        return
    fi
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

# The rootless variant, built from the cached rootfs under its own flock.
build_rootless() {
    build
    exec 8>"$FIXTURES/.bookworm-rootless.lock"
    flock 8
    if [[ $(cat "$ROOTLESS.stamp" 2>/dev/null) != "$ROOTLESS_PACKAGES" ]]; then
        rm -rf "$ROOTLESS" "$ROOTLESS.tmp"
        cp -a --reflink=auto "$CACHE" "$ROOTLESS.tmp"
        echo "systemd-host.sh: apt-get install $ROOTLESS_PACKAGES into the rootless rootfs" >&2
        configure_rootless "$ROOTLESS.tmp" >"$FIXTURES/rootless-build.log" 2>&1 \
            || die "rootless build failed, see $FIXTURES/rootless-build.log"
        mv "$ROOTLESS.tmp" "$ROOTLESS"
        echo "$ROOTLESS_PACKAGES" >"$ROOTLESS.stamp"
    fi
    flock -u 8
    exec 8>&-
}

configure_rootless() {
    local r=$1 pid
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    # policy-rc.d 101: no service starts inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    # shellcheck disable=SC2086 # a word list
    chroot "$r" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends $ROOTLESS_PACKAGES && apt-get clean" </dev/null
    rm -f "$r/usr/sbin/policy-rc.d"
    chroot "$r" useradd -m -u 1000 -s /bin/bash alice
    echo alice:100000:65536 >"$r/etc/subuid"
    echo alice:100000:65536 >"$r/etc/subgid"
    mkdir -p "$r/var/lib/systemd/linger"
    touch "$r/var/lib/systemd/linger/alice"
    ln -sf /usr/share/docker.io/contrib/dockerd-rootless.sh "$r/usr/local/bin/dockerd-rootless.sh"
    ln -sf /usr/share/docker.io/contrib/dockerd-rootless-setuptool.sh "$r/usr/local/bin/dockerd-rootless-setuptool.sh"
    # The setup tool looks for docker beside dockerd-rootless.sh.
    ln -sf /usr/bin/docker "$r/usr/local/bin/docker"
    rm -f "$r/etc/systemd/system/multi-user.target.wants/docker.service" \
          "$r/etc/systemd/system/sockets.target.wants/docker.socket"
    cat >"$r/etc/systemd/system/dockroot-tun.service" <<'UNIT'
[Unit]
Description=/dev/net/tun of the guest's own, mode 0666 (slirp4netns runs as the user)
DefaultDependencies=no
Before=systemd-user-sessions.service user@.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'rm -f /dev/net/tun; mkdir -p /dev/net; mknod -m 0666 /dev/net/tun c 10 200'
[Install]
WantedBy=sysinit.target
UNIT
    mkdir -p "$r/etc/systemd/system/sysinit.target.wants"
    ln -sf ../dockroot-tun.service "$r/etc/systemd/system/sysinit.target.wants/dockroot-tun.service"
    install -d -o 1000 -g 1000 "$r/home/alice/.config" "$r/home/alice/.config/docker"
    cat >"$r/home/alice/.config/docker/daemon.json" <<'JSON'
{
  "bridge": "none",
  "storage-driver": "overlay2"
}
JSON
    chown 1000:1000 "$r/home/alice/.config/docker/daemon.json"
    touch "$r/.dockroot-boot-unified"
    # Boot once: the setup tool enables alice's docker.service through her
    # user manager. Her data-root is emptied afterwards.
    BINDS=()
    pid=$(boot_unified "$r" rootless-build dockroot-guest)
    as_alice "$pid" 'dockerd-rootless-setuptool.sh install --skip-iptables' \
        && as_alice "$pid" 'systemctl --user stop docker.service && rm -rf ~/.local/share/docker' \
        || { stop_unified "$pid" dockroot-guest; return 1; }
    stop_unified "$pid" dockroot-guest
    rm -f "$r.nspawn.log" "$r.nspawn.pid"
}

# as_alice PID CMD: a login-like shell of alice in the guest, with her
# user manager's bus.
as_alice() {
    nsenter -t "$1" -a -- runuser -u alice -- env -C /home/alice HOME=/home/alice \
        XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin bash -c "$2"
}

case ${1:-} in
    build) build; echo "$CACHE" ;;
    copy) [[ $# -eq 2 ]] || die "usage: copy DEST"; [[ ! -e $2 ]] || die "copy: $2 exists"
          build; cp -a --reflink=auto "$CACHE" "$2" ;;
    boot) [[ $# -ge 3 ]] || die "usage: boot ROOT NAME [--bind SRC:DST ...]"; shift; boot "$@" ;;
    exec) [[ $# -ge 3 ]] || die "usage: exec PID CMD..."; shift; exec_in "$@" ;;
    stop) [[ $# -eq 2 ]] || die "usage: stop PID"; stop_unified "$2" dockroot-guest ;;
    snap) [[ $# -eq 2 ]] || die "usage: snap ROOT"; write_snap "$2" ;;
    build-rootless) build_rootless; echo "$ROOTLESS" ;;
    copy-rootless) [[ $# -eq 2 ]] || die "usage: copy-rootless DEST"; [[ ! -e $2 ]] || die "copy-rootless: $2 exists"
          build_rootless; cp -a --reflink=auto "$ROOTLESS" "$2" ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#' >&2; exit 2 ;;
esac
