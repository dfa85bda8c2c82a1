#!/usr/bin/env bash
# sandbox.sh: a private dockerd with sample data to try `dockroot status`,
# `move`, `rollback` and `finalize` on, without touching the host's Docker.
#
# Usage:
#   scripts/sandbox.sh [start]   start dockerd in /tmp/dockroot-sandbox, fill it
#                                (scripts/lib/docker-fixture.sh), make a 3G xfs
#                                loop disk at /var/tmp/dockroot-sandbox-disk and
#                                print the commands to try
#   scripts/sandbox.sh stop      stop the daemon, unmount everything, remove it all
#
# Needs root, dockerd + docker CLI, xfsprogs, getcap (libcap2-bin).
# The daemon runs in pidfile mode; dockroot is pointed at it with global
# options, and at a scratch fstab and state dir, so /etc is never changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=/tmp/dockroot-sandbox
disk=/var/tmp/dockroot-sandbox-disk
state=/var/tmp/dockroot-sandbox-state
bin=${DOCKROOT:-$here/../target/release/dockroot}

start() {
    [[ $(id -u) == 0 ]] || { echo "sandbox.sh: run as root" >&2; exit 1; }
    bash "$here/lib/dockerd.sh" start "$dir"
    bash "$here/lib/docker-fixture.sh" populate "$dir/sock"
    mountpoint -q "$disk" || bash "$here/lib/loopfs.sh" make xfs 3G "$disk"
    mkdir -p "$state"
    [[ -e $state/fstab ]] || echo "# sandbox fstab (a copy would be /etc/fstab)" >"$state/fstab"
    local g="--service pidfile:$dir/pid --docker-socket $dir/sock --daemon-config $dir/daemon.json --fstab $state/fstab --state-dir $state"
    cat <<EOT

Sandbox ready: dockerd on $dir/sock, data-root $dir/root, target disk $disk (xfs).
Try (as root):

  G="$g"
  $bin status \$G --to $disk/docker
  $bin move   \$G --to $disk/docker --dry-run
  $bin move   \$G --to $disk/docker            # asks y/N; --yes to skip
  docker -H unix://$dir/sock ps; findmnt $dir/root; cat $state/fstab
  $bin rollback \$G                             # back to $dir/root
  $bin finalize \$G                             # or: keep the move, delete the old tree
  $bin move   \$G --to $disk/docker2 --method data-root   # needs a daemon started
                                                # without --data-root (DOCKROOT_DATA_ROOT_IN_JSON=1)

Stop everything with: $0 stop
EOT
}

stop() {
    bash "$here/lib/dockerd.sh" stop "$dir" || true
    grep -o " $dir[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l || true
    bash "$here/lib/loopfs.sh" drop "$disk" || true
    rm -rf "$dir" "$dir".dockroot-old-* "$state"
}

case ${1:-start} in
    start) start ;;
    stop) stop ;;
    *) echo "usage: sandbox.sh [start|stop]" >&2; exit 2 ;;
esac
