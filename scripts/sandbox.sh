#!/usr/bin/env bash
# sandbox.sh: try dockroot end to end on a private dockerd, without touching
# the host's Docker or /etc.
#
# Usage (as root):
#   scripts/sandbox.sh [run]   install what is missing and build (setup.sh),
#                              start a private dockerd in /tmp/dockroot-sandbox
#                              with sample images, containers and a volume, make
#                              a 3G xfs loop disk at /var/tmp/dockroot-sandbox-disk,
#                              then run and show: status, move, rollback, backup,
#                              inspect, restore, status
#   scripts/sandbox.sh stop    stop the daemon, unmount and remove everything
#
# The daemon runs in pidfile mode. dockroot is pointed at it with global
# options (the socket is found from the daemon's own -H flag), at a scratch
# fstab and daemon.json and at a scratch state dir, so /etc is never changed.
# Measured here (2 cores): setup already done, the whole run takes ~40 s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
dir=/tmp/dockroot-sandbox
disk=/var/tmp/dockroot-sandbox-disk
state=/var/tmp/dockroot-sandbox-state
# An app's data outside the data-root, bind-mounted into a container.
app=/tmp/dockroot-sandbox-app
bin=${DOCKROOT:-$repo/target/release/dockroot}
G=(--service "pidfile:$dir/pid" --data-root "$dir/root" --daemon-config "$dir/daemon.json" --fstab "$state/fstab" --state-dir "$state")

# Shows a command the way docs/sandbox.md does, then runs it.
step() {
    echo
    echo "# dockroot ${*//$'\n'/ }" | sed "s|${G[*]}|\$G|"
    "$bin" "$@"
}

prepare() {
    [[ $(id -u) == 0 ]] || { echo "sandbox.sh: run as root" >&2; exit 1; }
    [[ -r $HOME/.cargo/env ]] && . "$HOME/.cargo/env"
    if ! bash "$here/setup.sh" --check || ! command -v cargo >/dev/null; then
        bash "$here/setup.sh"
        [[ -r $HOME/.cargo/env ]] && . "$HOME/.cargo/env"
    fi
    (cd "$repo" && cargo build --release)
    if [[ -e $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "sandbox.sh: a sandbox is running; starting afresh" >&2
        stop
    fi
    bash "$here/lib/dockerd.sh" start "$dir"
    bash "$here/lib/docker-fixture.sh" populate "$dir/sock"
    mkdir -p "$app/data"
    echo "<h1>hello</h1>" >"$app/data/index.html"
    docker -H "unix://$dir/sock" run -d --name web --network none --restart unless-stopped --stop-timeout 2 \
        -v "$app/data:/data" dockroot-test/app:1 sleep 1d >/dev/null
    mountpoint -q "$disk" || bash "$here/lib/loopfs.sh" make xfs 3G "$disk"
    mkdir -p "$state" "$disk/backups"
    [[ -e $state/fstab ]] || echo "# sandbox fstab (a copy would be /etc/fstab)" >"$state/fstab"
}

run() {
    prepare
    echo
    echo "Sandbox ready: dockerd on $dir/sock, data-root $dir/root, target disk $disk (xfs)."
    echo "G=\"${G[*]}\""
    step status "${G[@]}" --to "$disk/docker"
    step move "${G[@]}" --to "$disk/docker" --dry-run
    step move "${G[@]}" --to "$disk/docker" --yes
    echo
    echo "# docker -H unix://$dir/sock ps --format '{{.Names}} {{.Status}}'"
    docker -H "unix://$dir/sock" ps --format '{{.Names}} {{.Status}}'
    step rollback "${G[@]}" --yes
    step backup "${G[@]}" -o "$disk/backups/" --keep 2
    local archive
    archive=$(ls -1 "$disk"/backups/dockroot-*.tar.zst | tail -n1)
    step inspect "$archive"
    step restore "${G[@]}" "$archive" --force --yes
    echo
    echo "# echo oops > $app/data/index.html   # the app's data goes wrong"
    echo oops >"$app/data/index.html"
    step restore "${G[@]}" "$archive" --bind "$app/data" --stop-containers --yes
    echo
    echo "# cat $app/data/index.html"
    cat "$app/data/index.html"
    step restore "${G[@]}" "$archive" --volume dockroot-vol --stop-containers --yes
    step status "${G[@]}"
    cat <<EOT

Done. Everything above ran on the sandbox only. Try more with G as printed
above, e.g. \`$bin move \$G --to $disk/docker2 --method data-root\` (needs a
daemon started without --data-root: DOCKROOT_DATA_ROOT_IN_JSON=1), or
\`$bin backup \$G -o - --compress none | restic backup --stdin\`.
Remove it all with: $0 stop
EOT
}

stop() {
    bash "$here/lib/dockerd.sh" stop "$dir" || true
    grep -o " $dir[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l || true
    bash "$here/lib/loopfs.sh" drop "$disk" || true
    rm -rf "$dir" "$dir".dockroot-* "$state" "$app"
}

case ${1:-run} in
    run | start) run ;;
    stop) stop ;;
    *) echo "usage: sandbox.sh [run|stop]" >&2; exit 2 ;;
esac
