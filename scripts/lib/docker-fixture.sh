#!/usr/bin/env bash
# docker-fixture.sh: fill a private dockerd with the objects a data-root
# backup must carry, entirely offline (nothing can be pulled in CI).
#
# Usage:
#   docker-fixture.sh populate SOCK   SOCK: the daemon's unix socket path
#   docker-fixture.sh base-tar OUT    only write the busybox rootfs tarball
#
# populate creates:
#   dockroot-test/base:1  `docker import` of a busybox-static rootfs (fixed
#                         mtimes/owners, sorted: the tarball is byte-identical)
#   dockroot-test/app:1   classic-builder image whose layers hold
#                         - whiteouts (char 0:0) for files deleted from base,
#                         - an opaque dir (trusted.overlay.opaque=y): /opt/data
#                           removed and recreated in one RUN,
#                         - security.capability (cap_net_raw+ep) on /bin/netcap
#   volume dockroot-vol   hello.txt ("dockroot volume\n") and seq.txt with its
#                         sha256 in SHA256SUMS
#   dockroot-stopped      exited container with changes in its writable layer
#   dockroot-runner       running `sleep 1d`, --restart unless-stopped
# then checks the layer dirs with getfattr/find and prints a short summary.
# File contents are deterministic; image IDs are not (they embed build times).
#
# setcap: busybox has none, so the host's /usr/sbin/setcap (libcap2-bin) and
# the libraries ldd lists are copied into the build context and run through
# the copied dynamic loader (`ld.so --library-path /tools /tools/setcap`).
# Needs DOCKER_BUILDKIT=0 and --network none (the daemon has no bridge).
#
# Measured here: populate 7.5-9 s on overlay2; dockerd.sh stop afterwards ~5 s.
set -euo pipefail

die() { echo "docker-fixture.sh: $*" >&2; exit 1; }

# A reproducible busybox rootfs tarball: the base layer.
base_tar() {
    local out=$1 tmp applet
    tmp=$(mktemp -d)
    local r=$tmp/rootfs
    mkdir -p "$r"/{bin,sbin,etc,tmp,root,proc,sys,dev,usr/bin,usr/share/doc/base,opt/data,var/log}
    cp /bin/busybox "$r/bin/busybox"
    # busybox --install needs to run inside the rootfs; symlinks are the same.
    for applet in $(/bin/busybox --list); do
        [[ $applet == busybox ]] || ln -s busybox "$r/bin/$applet"
    done
    chmod 1777 "$r/tmp"
    chmod 700 "$r/root"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
    printf 'welcome to the dockroot base image\n' >"$r/etc/motd"
    printf 'this file is deleted in the app image\n' >"$r/usr/share/doc/base/README"
    printf 'old a\n' >"$r/opt/data/a.txt"
    printf 'old b\n' >"$r/opt/data/b.txt"
    printf 'log line\n' >"$r/var/log/base.log"
    tar -C "$r" --sort=name --mtime='2020-01-01 00:00:00Z' --owner=0 --group=0 \
        --numeric-owner -cf "$out" .
    rm -rf "$tmp"
}

# The build context: Dockerfile plus setcap and its libraries in tools/.
make_context() {
    local ctx=$1 lib loader=""
    mkdir -p "$ctx/tools"
    local setcap
    setcap=$(command -v setcap || echo /usr/sbin/setcap)
    [[ -x $setcap ]] || die "setcap not found (apt-get install libcap2-bin)"
    cp "$setcap" "$ctx/tools/setcap"
    for lib in $(ldd "$setcap" | grep -o '/[^ ]*'); do
        cp -L "$lib" "$ctx/tools/"
        [[ $lib == */ld-linux* ]] && loader=$(basename "$lib")
    done
    [[ -n $loader ]] || die "no dynamic loader in ldd $setcap"
    cat >"$ctx/Dockerfile" <<EOF
FROM dockroot-test/base:1
COPY tools /tools
# (a) whiteouts: files of the base layer deleted here.
RUN rm /etc/motd /usr/share/doc/base/README /var/log/base.log
# (b) opaque dir: the whole directory replaced in one layer.
RUN rm -rf /opt/data && mkdir /opt/data && echo 'new c' >/opt/data/c.txt
# (c) file capability, then drop the tools again (one more whiteout).
RUN cp /bin/busybox /bin/netcap \\
 && /tools/$loader --library-path /tools /tools/setcap cap_net_raw+ep /bin/netcap \\
 && rm -rf /tools
LABEL org.dockroot.fixture=app
EOF
}

# Assert that the daemon's layer dirs hold what the Dockerfile promises.
verify_layers() {
    local dr=$1 caps opq wh
    [[ -d $dr/overlay2 ]] || { echo "  layer check skipped (storage driver is not overlay2)"; return 0; }
    caps=$(getfattr -R -h -d -m '^security\.capability$' --absolute-names "$dr"/overlay2/*/diff 2>/dev/null \
        | grep -c '^security.capability=' || true)
    opq=$(getfattr -R -h -d -m '^trusted\.overlay\.opaque$' --absolute-names "$dr"/overlay2/*/diff 2>/dev/null \
        | grep -c '^trusted.overlay.opaque="y"' || true)
    wh=$(find "$dr"/overlay2/*/diff -type c 2>/dev/null | wc -l)
    ((caps >= 1)) || die "no security.capability xattr in any layer under $dr"
    ((opq >= 1)) || die "no trusted.overlay.opaque dir in any layer under $dr"
    ((wh >= 4)) || die "expected >= 4 whiteouts (char 0:0) under $dr, found $wh"
    echo "  layers: $caps security.capability, $opq opaque dir(s), $wh whiteout(s)"
}

populate() {
    local sock=$1 tmp dr
    [[ -S $sock ]] || die "$sock is not a socket"
    export DOCKER_HOST=unix://$sock DOCKER_BUILDKIT=0
    # Own CLI config dir: no host credentials or context leak into the test.
    DOCKER_CONFIG=$(mktemp -d); export DOCKER_CONFIG
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp" "$DOCKER_CONFIG"' RETURN

    base_tar "$tmp/base.tar"
    docker import -c 'CMD ["/bin/sh"]' "$tmp/base.tar" dockroot-test/base:1 >/dev/null
    make_context "$tmp/ctx"
    # The classic builder warns that it is deprecated on stderr: keep the log
    # and show it only on failure.
    docker build --network none -t dockroot-test/app:1 "$tmp/ctx" >"$tmp/build.log" 2>&1 \
        || { cat "$tmp/build.log" >&2; die "docker build failed"; }

    docker volume create dockroot-vol >/dev/null
    docker run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c '
        printf "dockroot volume\n" >/vol/hello.txt
        seq 1 100000 >/vol/seq.txt
        cd /vol && sha256sum seq.txt >SHA256SUMS'
    docker run --name dockroot-stopped --network none dockroot-test/app:1 sh -c '
        printf "written in the container\n" >/root/changed.txt
        mkdir -p /srv/state && seq 1 1000 >/srv/state/numbers
        rm /opt/data/c.txt && rm -rf /var/log
        ln -s /srv/state/numbers /root/numbers'
    # sleep as PID 1 ignores SIGTERM: --stop-timeout 2 keeps daemon stops short.
    docker run -d --name dockroot-runner --network none --restart unless-stopped --stop-timeout 2 \
        dockroot-test/app:1 sleep 1d >/dev/null

    dr=$(docker info -f '{{.DockerRootDir}}')
    echo "docker fixture in $dr:"
    echo "  images: $(docker images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' ')"
    echo "  containers: $(docker ps -a --format '{{.Names}}={{.State}}' | sort | tr '\n' ' ')"
    echo "  volume dockroot-vol: $(docker run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 cat /vol/SHA256SUMS)"
    verify_layers "$dr"
}

case ${1:-} in
    populate) [[ $# -eq 2 ]] || die "usage: populate SOCK"; populate "$2" ;;
    base-tar) [[ $# -eq 2 ]] || die "usage: base-tar OUT"; base_tar "$2" ;;
    *) echo "usage: docker-fixture.sh populate SOCK | base-tar OUT" >&2; exit 2 ;;
esac
