# nspawn.sh: helpers shared by systemd-host.sh and sid-host.sh (sourced).
# They wait for a booted guest's systemd, run commands in it and power it off.

# The systemd PID 1 of the container is the only child of systemd-nspawn.
child_of() {
    local ppid=$1 c
    c=$(cat "/proc/$ppid/task/$ppid/children" 2>/dev/null || true)
    echo "${c%% *}"
}

# wait_systemd NSPID LOG TENTHS: print the guest's PID 1 once systemd is
# running (or degraded); die if nspawn exits or TENTHS × 0.1 s pass.
wait_systemd() {
    local nspid=$1 log=$2 tenths=$3 pid="" state="" i
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$nspid" 2>/dev/null || die "boot: systemd-nspawn exited, see $log"
        # Re-read every time: nspawn's first child is a short-lived helper
        # that forks the container's PID 1 and exits.
        pid=$(child_of "$nspid")
        if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == systemd ]]; then
            state=$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)
            case $state in running|degraded) echo "$pid"; return 0 ;; esac
        fi
        sleep 0.1
    done
    die "boot: systemd not up after $((tenths / 10))s (state '$state'), see $log"
}

exec_in() {
    local pid=$1; shift
    exec nsenter -t "$pid" -a -- "$@"
}

# poweroff PID: a clean poweroff of the guest whose PID 1 is PID, then wait
# for its nspawn to exit (SIGKILL after 30 s).
poweroff() {
    local pid=$1 nspid i
    nspid=$(ps -o ppid= -p "$pid" | tr -d ' ') || return 0
    # SIGRTMIN+4 asks systemd for a clean poweroff (systemd(1)); nspawn then exits.
    kill -s SIGRTMIN+4 "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$nspid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$nspid" 2>/dev/null || true
}

# bind_args ARGS...: `--bind SRC:DST` pairs into nspawn options, in BINDS.
bind_args() {
    BINDS=()
    while (($#)); do
        case $1 in
            --bind) BINDS+=("--bind=$2"); shift 2 ;;
            *) die "boot: unknown argument $1" ;;
        esac
    done
}

# with_dev_null CMD...: exec CMD in a private mount namespace whose /dev/null
# is a real 0666 char device. nspawn copies the host's /dev/null into the
# guest and refuses to boot when it is not a device; on this machine it is
# sometimes a regular file (something replaces it), and the host's own is
# not ours to fix.
with_dev_null() {
    local null=$FIXTURES/dev-null
    [[ -c $null ]] || { rm -f "$null"; mknod -m 0666 "$null" c 1 3; }
    exec unshare -m --propagation private \
        sh -c 'mount --bind "$1" /dev/null && shift && exec "$@"' sh "$null" "$@"
}

CGROUP_UNIFIED=${DOCKROOT_CGROUP_UNIFIED:-/sys/fs/cgroup/unified}
CGROUP_NAMED=/sys/fs/cgroup/systemd

# boot_unified ROOT NAME PREFIX: boot ROOT on the unified cgroup hierarchy
# (BINDS from bind_args), print the guest's PID 1. The host here is cgroup
# v1 (hybrid); sid's systemd (258+) needs the unified hierarchy, and so does
# a user manager (user@.service) of any version: with the hybrid
# --bind=/sys/fs/cgroup it cannot create its init.scope. So:
#   - SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 and no bind of /sys/fs/cgroup;
#   - nspawn starts in a cgroup of its own, PREFIX-NAME, on the unified
#     mount (nspawn delegates the cgroup it runs in to the guest);
#   - bpf joins the syscall filter (runc loads a device-cgroup BPF program
#     on cgroup v2), with the keyring calls docker uses;
#   - --private-network.
# nspawn copies the host's /dev/null; where that is not a 0666 char device,
# with_dev_null binds a real one over it in nspawn's own mount namespace.
boot_unified() {
    local root=$1 name=$2 prefix=$3
    [[ -x $root/lib/systemd/systemd || -x $root/usr/lib/systemd/systemd ]] \
        || die "boot: $root is not a rootfs"
    local log=$root.nspawn.log
    local cg=$CGROUP_UNIFIED/$prefix-$name
    mkdir -p "$cg"
    # A subshell moves itself into the new cgroup, then becomes nspawn: the
    # guest's systemd gets a delegated v2 subtree and nothing else moves.
    (
        echo $BASHPID >"$cg/cgroup.procs"
        export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
        with_dev_null \
            setsid systemd-nspawn -b -D "$root" -M "$name" --register=no --keep-unit \
            --capability=all --private-network \
            --system-call-filter='add_key keyctl request_key bpf' \
            "${BINDS[@]}" </dev/null >"$log" 2>&1
    ) &
    local nspid=$!
    echo "$nspid" >"$root.nspawn.pid"
    wait_systemd "$nspid" "$log" 900
}

# stop_unified PID PREFIX: poweroff, then remove the guest's cgroups if they
# are ours (PREFIX-*).
stop_unified() {
    local pid=$1 prefix=$2 i top cg
    # The guest's cgroup as the host sees it: /PREFIX-NAME/... (ours).
    top=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null || true)
    top=${top#/}; top=${top%%/*}
    poweroff "$pid"
    [[ $top == "$prefix"-* ]] || return 0
    # Our cgroups: the unified one we made, and the name=systemd one nspawn
    # mirrors it into on a hybrid host. Removed (deepest first) once empty.
    for cg in "$CGROUP_UNIFIED/$top" "$CGROUP_NAMED/$top"; do
        for ((i = 0; i < 50; i++)); do
            [[ -d $cg ]] || break
            find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $cg ]] && sleep 0.1
        done
    done
}
