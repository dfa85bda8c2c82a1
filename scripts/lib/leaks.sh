#!/usr/bin/env bash
# leaks.sh: what one test run left behind, and nothing of any other run.
#
# Usage:
#   leaks.sh record DIR      (from the fixture scripts) note that this run
#                            made DIR (a dockerd's directory, a loop mount
#                            point); a no-op outside scripts/test.sh
#   leaks.sh check PID       (from scripts/test.sh, pid PID, at the end)
#                            list this run's processes and mounts that are
#                            still there; exit 1 if there are any
#
# Other test runs may share the machine (never in CI, but helpers work side
# by side), so nothing is judged by global process or mount lists:
# - processes: scripts/test.sh exports DOCKROOT_RUN_ID, a value unique to the
#   run, and every process the tests start inherits it (dockerd, its
#   containerd and shims, systemd-nspawn), even once they are re-parented to
#   init by setsid. A live process carrying it, outside test.sh's own process
#   tree, is a leak; so are its children (a shim's container processes).
# - mounts: the fixture scripts record each directory they make in the run's
#   ledger ($DOCKROOT_LEDGER); a mount at or below one of them is a leak.
set -euo pipefail

record() {
    [[ -n ${DOCKROOT_LEDGER:-} ]] || return 0
    # One short line per append: O_APPEND keeps concurrent writers whole.
    echo "$1" >>"$DOCKROOT_LEDGER"
}

# True when pid $1 has pid $2 among its ancestors (or is it).
descends_from() {
    local p=$1 top=$2 stat
    while ((p > 1)); do
        ((p == top)) && return 0
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        read -r _ p _ <<<"$stat"
    done
    return 1
}

run_processes() {
    local top=$1 p pid c
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "DOCKROOT_RUN_ID=$DOCKROOT_RUN_ID" || continue
        descends_from "$pid" "$top" && continue
        echo "$pid"
        for c in $(cat "$p"/task/*/children 2>/dev/null); do echo "$c"; done
    done | sort -un
}

run_mounts() {
    local d m
    [[ -s ${DOCKROOT_LEDGER:-} ]] || return 0
    sort -u "$DOCKROOT_LEDGER" | while read -r d; do
        [[ -n $d ]] || continue
        # Field 5 of mountinfo is the mount point (no spaces in our paths).
        awk -v d="$d" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
    done | sort -u
}

check() {
    local top=$1 procs mounts p
    [[ -n ${DOCKROOT_RUN_ID:-} ]] || { echo "leaks.sh: DOCKROOT_RUN_ID is not set" >&2; return 2; }
    procs=$(run_processes "$top")
    mounts=$(run_mounts)
    # Once, `-o /dev/null` renamed a regular file over the host's device node.
    if [[ ! -c /dev/null ]]; then
        echo "leaks.sh: /dev/null is no longer a character device: a test or command replaced it" >&2
        return 1
    fi
    if [[ -z $procs && -z $mounts ]]; then
        echo "leaks.sh: this run left no process and no mount behind ($(sort -u "${DOCKROOT_LEDGER:-/dev/null}" | wc -l) directories recorded)"
        return 0
    fi
    echo "leaks.sh: this run left things behind:" >&2
    for p in $procs; do
        echo "  process $p: $({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | cut -c1-200)" >&2
    done
    for p in $mounts; do echo "  mount $p" >&2; done
    return 1
}

case ${1:-} in
    record) [[ $# -eq 2 ]] || { echo "usage: leaks.sh record DIR" >&2; exit 2; }; record "$2" ;;
    check) [[ $# -eq 2 ]] || { echo "usage: leaks.sh check PID" >&2; exit 2; }; check "$2" ;;
    *) echo "usage: leaks.sh record DIR | check PID" >&2; exit 2 ;;
esac
