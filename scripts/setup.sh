#!/usr/bin/env bash
# setup.sh: install what the test suite needs on Debian 12, then build.
#
# Usage:
#   scripts/setup.sh           install missing packages, keep the system
#                              dockerd off, cargo build --release
#   scripts/setup.sh --check   exit 0 if every package is installed, else 1
#
# Idempotent: apt-get runs only when a package is missing. Run as root.
#
# The suite starts its own private dockerds (scripts/lib/dockerd.sh), so the
# system docker service must not run: a system dockerd on /var/lib/docker
# would be a second, unexpected writer for the tests that relocate data-roots.
# Package installs run under a policy-rc.d that forbids service starts, and
# afterwards any system docker/containerd is stopped and disabled, with or
# without systemd as PID 1.
#
# Rust: Debian 12's rustc (1.63) is too old for edition 2024, so the toolchain
# is expected from rustup (~/.cargo/bin); if it is missing, rustup is fetched
# from sh.rustup.rs, which needs network access beyond the Debian mirror.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
    # The data-root under test and the tools the fixtures use.
    docker.io rsync xfsprogs btrfs-progs e2fsprogs debootstrap systemd-container
    busybox-static attr acl zstd python3 util-linux mount procps kmod
    # setcap is copied into the docker build context (docker-fixture.sh).
    libcap2-bin
    # scripts/bench.sh: arithmetic and peak-memory measurement.
    bc time tar
    # A C compiler: zstd-sys and blake3 compile C code.
    gcc libc6-dev
    # Packaging and its tests (scripts/package.sh): man -l, file(1);
    # off-site backups: restic (tests/ship/restic.rs).
    man-db file restic
    # restic's REST server on loopback for the off-site tests (tests/ship/offsite.rs).
    rclone
    # The Ansible role's test (tests/ship/fleet.rs): Debian's ansible with community.docker.
    ansible
    ca-certificates curl
)

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

if [[ ${1:-} == --check ]]; then
    [[ -z $(missing_packages) ]]
    exit
fi

[[ $(id -u) -eq 0 ]] || { echo "setup.sh: must run as root" >&2; exit 1; }

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]})) || return 0
    echo "setup.sh: installing ${missing[*]}" >&2
    # policy-rc.d exit 101 = "do not start services" for invoke-rc.d and
    # deb-systemd-invoke (Debian policy 9.3.3). Keep an existing one.
    local policy=/usr/sbin/policy-rc.d ours=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } </dev/null || rc=$?
    ((ours)) && rm -f "$policy"
    return "$rc"
}

# Stop and disable the system docker (and its containerd); then make sure no
# dockerd is left on /var/lib/docker, whatever started it.
disable_system_docker() {
    local units=(docker.socket docker.service containerd.service)
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
    else
        # No systemd as PID 1: sysvinit scripts, and no boot-time start either.
        service docker stop >/dev/null 2>&1 || true
        update-rc.d docker disable >/dev/null 2>&1 || true
    fi
    local pid args i
    for pid in $(pgrep -x dockerd || true); do
        # Skip dockerds in other mount namespaces (systemd-host.sh guests).
        [[ $(readlink "/proc/$pid/ns/mnt") == "$(readlink /proc/self/ns/mnt)" ]] || continue
        args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
        # Private test daemons always pass --data-root; the system one does
        # not (or points it at /var/lib/docker).
        if [[ $args != *--data-root* || $args =~ --data-root[=\ ]/var/lib/docker/?\  ]]; then
            echo "setup.sh: stopping system dockerd (pid $pid)" >&2
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
    done
}

# Kernel pieces the tests use; built in or already loaded on most kernels.
load_modules() {
    local m
    for m in loop overlay xfs btrfs; do
        grep -qw "$m" /proc/filesystems /proc/modules 2>/dev/null || modprobe "$m" 2>/dev/null || true
    done
}

ensure_rust() {
    [[ -r $HOME/.cargo/env ]] && . "$HOME/.cargo/env"
    command -v cargo >/dev/null && return 0
    echo "setup.sh: no cargo; installing rustup (needs sh.rustup.rs)" >&2
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    . "$HOME/.cargo/env"
}

install_packages
disable_system_docker
load_modules
ensure_rust
cargo build --release
