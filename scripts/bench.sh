#!/usr/bin/env bash
# bench.sh: dockroot against the standard tools, on the same docker-like tree,
# interleaved in one run, warm cache. Prints medians and ratios.
#
# Usage: scripts/bench.sh [--rounds N] [--dir DIR] [--out DIR] [--small N]
#                         [--disk DIR [--fresh] [--ab BIN] [--tools LIST]]
#                         [--downtime [--snapshot | --containerd] [--size MIB]]
#                         [--archive [--smoke] [--fresh]]
#   --dir (default /var/tmp/dockroot-bench) holds the generated tree, kept and
#   reused between runs.
#   --out (default /dev/shm/dockroot-bench-out) receives the copies, removed
#   after each run. On tmpfs the timings show the tools' own cost; on a disk
#   they mostly show the disk's write-back speed, which is the same for all.
#
# The tree imitates /var/lib/docker/overlay2: four layers made from a real
# Debian rootfs (the debootstrap cache of the tests, or /usr if absent), with
# whiteouts, opaque directories and capabilities, plus large image blobs,
# sparse container files and fully-allocated zero files.
#
# Compared: rsync -aHAXS --numeric-ids, cp -a, dockroot copy --manifest;
# for archives: tar --xattrs -S | zstd -T0 -3 against dockroot backup, and
# GNU tar's extraction of a dockroot archive against dockroot restore. Not run in CI: timings are machine-dependent.
#
# --small N instead builds N small files laid out as image layers hold them
# (scripts/mksmall.py: layerNNN/usr/lib/pkgNNNN/fNNNN.py, hardlinks,
# symlinks, xattrs; kept in DIR, default /var/tmp/dockroot-bench-small),
# runs each command once and reports its time and peak RSS: copy, backup,
# verify FILE and restore against rsync -aHAXS, cp -a, tar | zstd -T0 and
# tar -x, then compares the restored tree with the source (treecmp.py). Its
# outputs go to /dev/shm/dockroot-bench-small-out as the default bench's do
# (one tree at a time: about 4 KiB of RAM a file, 4.5 GiB at 1.2 million);
# deleting a million files on a disk mounted with `discard` takes longer
# than the commands measured.
#
# --disk DIR instead writes every copy to DIR, which must be on a real block
# device (the source's disk, or a loop-mounted image on it, for the
# same-disk case): each run starts with the page cache dropped (sync; echo 3
# > /proc/sys/vm/drop_caches) and its time includes a final sync of DIR's
# filesystem (sync -f). Rounds of
# dockroot copy --manifest, rsync -aHAXS, cp -a and tar | zstd -T0 are
# interleaved; with --small N the tree is the small-file one. The same run
# measures the device's limits in DIR: sequential write and read with direct
# I/O (dd, 1 GiB), and a metadata rate (creating and syncing empty files),
# and prints how far dockroot's copy is from the floor they imply.
# With --disk, --ab BIN adds a second dockroot binary (dockroot_b, say the
# build before a change) to the interleaved rounds, and --tools LIST picks
# the runs (default "dockroot rsync cp tar_zstd"). Each run's 1-minute load
# average and peak RSS are printed beside its time: the machine may be shared.
# --fresh (with --disk, or with --archive for the restores) writes each run to a new ext4 (with its journal, as installed
# systems have it) in an image file in DIR, attached with direct I/O so the
# writes reach DIR's disk without a second page cache: on a filesystem
# without a journal (this machine's root), ext4 skips inodes freed in the
# last 5 to 300 s when it allocates (fs/ext4/ialloc.c, recently_deleted), so
# a run right after `rm -rf` of the previous 1.2M-file copy spent most of
# its CPU scanning them; a new filesystem gives every tool the same start
# (and saves deleting a million files between runs).
# --downtime [--size MIB] measures Docker's downtime from outside: a real
# private dockerd (scripts/lib/dockerd.sh, the test fixture's images and
# running container) whose data-root holds a volume of about MIB (default
# 4096) filled with /usr/share and random 256 MiB files (kept in DIR), moved
# onto a loop-mounted xfs with the data-root's pages dropped from the cache
# (posix_fadvise DONTNEED per file: no global drop_caches on a shared
# machine). A poller opens the API socket every 0.1 s (GET /_ping) and
# reports the longest gap. Runs: move (pre-copy passes), rollback, move
# --no-precopy, rollback, backup --stop-the-world, backup (live, two
# phases). Prints the table and the ratios (pre-copy against --no-precopy,
# live backup against --stop-the-world) and the live backup's phases.
# --downtime also runs the floor first: a plain restart of the same private
# dockerd (scripts/lib/dockerd.sh restart, what `systemctl restart docker`
# does), with a container that ignores SIGTERM (busybox `sleep` as PID 1
# without --init: Docker waits its full 10 s stop timeout, as for many real
# images), and prints every run's downtime against it. A fill too large to
# keep beside the copy, the move's target and the archive (--size 16384 on a
# 48 GiB disk) is made in the volume itself. Each row also prints how long
# the command took and, for a move, how much of it came before the stop.
# --downtime --small N puts the --small tree in the volume instead, drops
# the whole page cache before every row (a dedicated machine), and adds a
# row: rsync -aHAXS of the data-root onto the same target, against which the
# move's time before the stop (its pre-copy) is compared.
# --downtime --containerd runs the same rows (restart, move with pre-copy,
# live backup) in the Debian sid guest (scripts/lib/sid-host.sh) with the
# containerd image store under systemd: the restart is `systemctl restart
# docker`, the poller reaches the guest's API socket through
# /proc/PID/root, and the target is a loop-mounted xfs bound on /data.
# --archive compares archives cold: every run starts with the page cache
# dropped and ends with its output synced; dockroot backup against
# tar --xattrs -S | zstd -T0 -3, dockroot restore against GNU tar's
# extraction of the same archive, interleaved, --rounds N rounds, on the
# bench tree (or with --small N the small-file tree). Prints the load at the
# start and with every run, the medians and ratios side by side, the archive
# sizes and every run's peak RSS. --archive --smoke runs one round on a tiny
# generated tree without dropping caches (for a test: it only checks that
# the rows run).
# --downtime --snapshot instead puts the data-root on a loop-mounted xfs
# (reflink=1) and compares backup --snapshot reflink with --stop-the-world
# (DOCKROOT_BENCH_FS=btrfs: a btrfs subvolume and --snapshot btrfs).
set -euo pipefail

rounds=3 dir=/var/tmp/dockroot-bench outdir=/dev/shm/dockroot-bench-out small=0 dir_set= out_set= disk= downtime= snapshot= size_mib=4096 bin_b= tools="dockroot rsync cp tar_zstd" fresh= archive= smoke= containerd=
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --dir) dir=$2; dir_set=1; shift 2 ;;
        --out) outdir=$2; out_set=1; shift 2 ;;
        --small) small=$2; shift 2 ;;
        --disk) disk=$2; shift 2 ;;
        --downtime) downtime=1; shift ;;
        --snapshot) snapshot=1; shift ;;
        --size) size_mib=$2; shift 2 ;;
        --ab) bin_b=$2; shift 2 ;;
        --fresh) fresh=1; shift ;;
        --tools) tools=$2; shift 2 ;;
        --archive) archive=1; shift ;;
        --smoke) smoke=1; shift ;;
        --containerd) containerd=1; shift ;;
        *) echo "usage: $0 [--rounds N] [--dir DIR] [--out DIR] [--small N] [--disk DIR [--fresh] [--ab BIN] [--tools LIST]] [--downtime [--snapshot | --containerd] [--size MIB]] [--archive [--smoke] [--fresh]]" >&2; exit 2 ;;
    esac
done
[[ -n $downtime && -z $dir_set ]] && dir=/var/tmp/dockroot-bench-downtime
if ((small)); then
    [[ -n $dir_set ]] || dir=/var/tmp/dockroot-bench-small
    [[ -n $out_set ]] || outdir=/dev/shm/dockroot-bench-small-out
fi

cd "$(dirname "$0")/.."
bin=${DOCKROOT_BIN:-$(pwd)/target/release/dockroot}
[[ -x $bin ]] || cargo build --release
command -v rsync >/dev/null || { echo "bench.sh: rsync is missing: run scripts/setup.sh" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { apt-get install -y time >/dev/null 2>&1 || true; }

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "scale=3; $1 / $2" | bc; }

# The --small tree, generated once in DIR.
small_tree() {
    local n=$small
    src=$dir/tree-$n/docker
    if [[ ! -d $src ]]; then
        echo "bench.sh: generating $n small files in $src (once)" >&2
        rm -rf "$dir/tree-$n.tmp"
        python3 scripts/mksmall.py "$dir/tree-$n.tmp/docker" "$n"
        sync
        mv "$dir/tree-$n.tmp" "$dir/tree-$n"
    fi
    data_root_mode "$src"
}

# data_root_mode DIR: the mode dockerd gives a data-root, 0710 root:root
# (a restore's staging tree with it is verified as private, see
# tree::WalkOptions::private).
data_root_mode() { chown root:root "$1" && chmod 0710 "$1"; }

# --small N: see the header. One run of each command, timed by /usr/bin/time.
bench_small() {
    local src
    small_tree
    local entries
    read -r entries < <(find "$src" | wc -l)
    echo "tree: $src: $entries entries, $(du -sh "$src" | cut -f1) allocated"
    rm -rf "$outdir"
    mkdir -p "$outdir"
    local out=$outdir/copy arc=$outdir/small.tar.zst
    # No daemon owns this tree: a private state dir, and a socket nobody listens on.
    local -a dr=("$bin" -q --service none --state-dir "$outdir/state" --docker-socket "$outdir/none.sock")
    declare -gA secs=() rss=()
    measure() { # NAME CMD...: one timed run; NAME's seconds and peak RSS (KiB)
        local name=$1
        shift
        sync
        /usr/bin/time -f '%e %M' -o "$outdir/time.$name" "$@" >/dev/null 2>"$outdir/err.$name" || {
            echo "bench.sh: $name failed:" >&2
            tail -n 20 "$outdir/err.$name" >&2
            exit 1
        }
        read -r "secs[$name]" "rss[$name]" < <(tail -n1 "$outdir/time.$name")
        printf '%-16s %9.1f s %8d MiB peak RSS\n' "$name" "${secs[$name]}" "$((rss[$name] / 1024))"
    }
    find "$src" >/dev/null
    # dockroot first: its numbers (the memory goal) come before the long runs of the others.
    measure copy "${dr[@]}" copy "$src" "$out" --manifest "$outdir/copy.manifest"
    rm -rf "$out" "$outdir/copy.manifest"
    measure backup "${dr[@]}" --data-root "$src" backup -o "$arc" --no-config
    echo "archive: $(du -h "$arc" | cut -f1)"
    measure verify "${dr[@]}" verify "$arc"
    measure restore "${dr[@]}" --data-root "$out" restore "$arc" --yes --force
    # The independent listing: the restored tree against the source.
    measure treecmp python3 tests/tools/treecmp.py "$src" "$out"
    echo "treecmp: the restored tree equals the source (every entry, type, mode, owner, mtime, xattr, content, hardlink)"
    rm -rf "$out"
    measure rsync rsync -aHAXS --numeric-ids "$src/" "$out/"
    rm -rf "$out"
    measure cp cp -a "$src" "$out"
    rm -rf "$out"
    measure tar_zstd bash -c "tar --xattrs --xattrs-include='*' --acls -S -C '$src' -cf - . | zstd -q -T0 -3 -o '$outdir/tar.tar.zst'"
    rm -f "$outdir/tar.tar.zst"
    mkdir -p "$out"
    measure tar_extract tar --zstd --xattrs --xattrs-include='*' --acls -xpf "$arc" -C "$out"
    rm -rf "$out"
    echo
    echo "dockroot copy / rsync -aHAXS      : $(ratio "${secs[copy]}" "${secs[rsync]}")"
    echo "dockroot copy / cp -a             : $(ratio "${secs[copy]}" "${secs[cp]}")"
    echo "dockroot backup / tar | zstd -T0  : $(ratio "${secs[backup]}" "${secs[tar_zstd]}")"
    echo "dockroot restore / tar --zstd -x  : $(ratio "${secs[restore]}" "${secs[tar_extract]}")  (restore also verifies the archive and the tree)"
    local worst=0 k
    for k in copy backup verify restore; do ((rss[$k] > worst)) && worst=${rss[$k]}; done
    echo "dockroot peak RSS, worst of copy/backup/verify/restore: $((worst / 1024)) MiB (goal <= 200 MiB)"
    rm -rf "$outdir"
}

# fresh_ext4 MNT BYTES ENTRIES: --fresh, a new journaled ext4 of BYTES with
# room for twice ENTRIES inodes, in $fresh_img, attached with direct I/O and
# mounted on MNT (see the header). fresh_down removes it.
fresh_img= fresh_mnt= fresh_loop=
fresh_ext4() {
    fresh_mnt=$1
    rm -f "$fresh_img"
    fallocate -l "$2" "$fresh_img"
    mkfs.ext4 -q -F -N "$(($3 * 2 + 100000))" -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$fresh_img"
    fresh_loop=$(losetup -f --show --direct-io=on "$fresh_img")
    mkdir -p "$fresh_mnt"
    mount "$fresh_loop" "$fresh_mnt"
}
fresh_down() {
    [[ -n $fresh_loop ]] || return 0
    umount "$fresh_mnt"
    losetup -d "$fresh_loop"
    fresh_loop=
    rm -f "$fresh_img"
}

# archive_cleanup: --archive's exit trap, for the --fresh restore target and
# the --smoke tree.
smoke_dir=
archive_cleanup() {
    fresh_down
    [[ -z $smoke_dir ]] || rm -rf "$smoke_dir"
}

# --disk DIR: see the header. SRC is the tree to copy.
bench_disk() {
    local src=$1 out=$disk/dockroot-bench-disk/copy arc=$disk/dockroot-bench-disk/tar.tar.zst work=$disk/dockroot-bench-disk
    [[ $(id -u) == 0 ]] || { echo "bench.sh: --disk drops the page cache: run as root" >&2; exit 2; }
    rm -rf "$work"
    mkdir -p "$work"
    local entries alloc
    read -r entries < <(find "$src" | wc -l)
    read -r alloc _ < <(du -s --block-size=1 "$src")
    echo "tree: $src: $entries entries, $((alloc / 1048576)) MiB allocated"
    echo "destination: $work on $(df --output=source,fstype "$disk" | tail -n1) (source on $(df --output=source "$src" | tail -n1))"
    declare -A t=() rss=()
    fresh_img=$work/fresh.img fs=$work/fs
    fresh_up() { fresh_ext4 "$fs" "$((alloc * 2 + (2 << 30)))" "$entries"; out=$fs/copy arc=$fs/tar.tar.zst; }
    [[ -z $fresh ]] || trap 'fresh_down' EXIT
    [[ -z $fresh ]] || echo "destination: a new ext4 for each run, in $img (loop, direct I/O)"
    cold_run() { # NAME CMD...: cold cache, CMD, sync; appends the seconds to t[NAME]
        local name=$1 t0 t1 load
        shift
        rm -rf "$out" "$arc" "$work/m"
        [[ -z $fresh ]] || fresh_up
        sync
        echo 3 >/proc/sys/vm/drop_caches
        t0=$(date +%s.%N)
        /usr/bin/time -f %M -o "$work/rss.$name" "$@" >/dev/null 2>"$work/err.$name" || { echo "bench.sh: $name failed:" >&2; tail -n 20 "$work/err.$name" >&2; exit 1; }
        # The destination's filesystem only: a global sync would also wait
        # for whatever else the machine is writing.
        if [[ -n $fresh ]]; then sync -f "$fs"; else sync -f "$work"; fi
        t1=$(date +%s.%N)
        read -r load _ </proc/loadavg
        t[$name]+="$(echo "$t1 - $t0" | bc) "
        rss[$name]=$(tail -n1 "$work/rss.$name")
        printf '  %-12s %8.2f s  load %5s  peak RSS %6d KiB\n' "$name" "$(echo "$t1 - $t0" | bc)" "$load" "${rss[$name]}" >&2
        [[ -z $fresh ]] || fresh_down
    }
    local k
    for ((r = 1; r <= rounds; r++)); do
        echo "round $r/$rounds" >&2
        for k in $tools ${bin_b:+dockroot_b}; do
            case $k in
                dockroot) cold_run dockroot "$bin" -q copy "$src" "$out" --manifest "$work/m" ;;
                dockroot_b) cold_run dockroot_b "$bin_b" -q copy "$src" "$out" --manifest "$work/m" ;;
                rsync) cold_run rsync rsync -aHAXS --numeric-ids "$src/" "$out/" ;;
                cp) cold_run cp cp -a "$src" "$out" ;;
                tar_zstd) cold_run tar_zstd bash -c "tar --xattrs --xattrs-include='*' --acls -S -C '$src' -cf - . | zstd -q -T0 -3 -o '$arc'" ;;
            esac
        done
    done
    rm -rf "$out" "$arc" "$work/m"
    # The device: 1 GiB written and read back with direct I/O, then empty
    # files created and synced (what a tree of small files costs at least).
    local gib=$((1 << 30)) w0 w1 r0 r1 m0 m1 nmeta=20000 dev=$work
    if [[ -n $fresh ]]; then fresh_up; dev=$fs; fi
    sync
    w0=$(date +%s.%N)
    dd if=/dev/zero of="$dev/dd" bs=4M count=256 oflag=direct status=none
    w1=$(date +%s.%N)
    echo 3 >/proc/sys/vm/drop_caches
    r0=$(date +%s.%N)
    dd if="$dev/dd" of=/dev/null bs=4M iflag=direct status=none
    r1=$(date +%s.%N)
    rm -f "$dev/dd"
    sync
    m0=$(date +%s.%N)
    python3 -c 'import os,sys; d=sys.argv[1]; os.mkdir(d); [os.close(os.open(f"{d}/{i}", os.O_CREAT | os.O_WRONLY, 0o644)) for i in range(int(sys.argv[2]))]' "$dev/meta" "$nmeta"
    sync -f "$dev"
    m1=$(date +%s.%N)
    rm -rf "$dev/meta"
    fresh_down
    local wbps rbps mps
    wbps=$(echo "$gib / ($w1 - $w0)" | bc)
    rbps=$(echo "$gib / ($r1 - $r0)" | bc)
    mps=$(echo "$nmeta / ($m1 - $m0)" | bc)
    declare -A med
    printf '\n%-16s %10s   %s\n' "tool (cold)" "median s" "all runs"
    for k in $tools ${bin_b:+dockroot_b}; do
        med[$k]=$(echo "${t[$k]}" | median)
        printf '%-16s %10.2f   %s  (peak RSS %d KiB)\n' "$k" "${med[$k]}" "${t[$k]}" "${rss[$k]}"
    done
    echo
    for k in rsync cp tar_zstd dockroot_b; do
        [[ -n ${med[$k]:-} && -n ${med[dockroot]:-} ]] || continue
        printf 'dockroot copy --manifest / %-12s: %s\n' "$k" "$(ratio "${med[dockroot]}" "${med[$k]}")"
    done
    echo
    echo "device: sequential write $((wbps / 1048576)) MiB/s, read $((rbps / 1048576)) MiB/s (direct I/O); $mps empty files/s created and synced"
    # Floors: the data read once and written once at the sequential rates
    # (one disk does both), and one create per entry at the metadata rate.
    local data_floor meta_floor
    data_floor=$(echo "scale=2; $alloc / $rbps + $alloc / $wbps" | bc)
    meta_floor=$(echo "scale=2; $entries / $mps" | bc)
    echo "floor: data read + write $data_floor s, entries created $meta_floor s"
    echo "dockroot copy / data floor    : $(ratio "${med[dockroot]}" "$data_floor")"
    echo "dockroot copy / metadata floor: $(ratio "${med[dockroot]}" "$meta_floor")"
    rm -rf "$work"
}

if [[ -n $disk ]]; then
    if ((small)); then
        small_tree
        bench_disk "$src"
        exit 0
    fi
fi
# measure NAME CMD...: the data-root's pages dropped, the poller on, CMD run.
# Uses the caller's d (daemon dir), log, dir and the arrays polled and own;
# sock and dataroot (default d/sock, d/root) name the API socket and the
# data-root. A command that prints no JSON (the plain restart) has no own figure.
measure() {
    local name=$1 sock=${sock:-$d/sock} dataroot=${dataroot:-$d/root}
    shift
    sync
    python3 -c 'import os,sys
for top, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(top, f)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try: os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally: os.close(fd)' "$dataroot"
    python3 -c 'import socket,sys,time
stop = sys.argv[2]; down = None; worst = 0.0
import os
while not os.path.exists(stop):
    t = time.monotonic()
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(0.5); s.connect(sys.argv[1])
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); up = b" 200 " in s.recv(64)
        s.close()
    except OSError:
        up = False
    if up and down is not None: worst = max(worst, t - down); down = None
    if not up and down is None: down = t
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
print(f"{worst:.1f}")' "$sock" "$d/poll.stop" > "$d/poll.out" &
    local poller=$! t0 t1
    sleep 0.5
    # --small: a million entries, cold for every tool (a dedicated machine).
    if ((small)); then sync; echo 3 >/proc/sys/vm/drop_caches; fi
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$d/rss" "$@" > "$d/out.json" 2>> "$log" || { echo "bench.sh: $name failed (see $log)" >&2; kill "$poller"; exit 1; }
    t1=$(date +%s.%N)
    took[$name]=$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")
    before[$name]=$(python3 -c 'import json,sys
try:
    v = json.load(open(sys.argv[1]))
    print("%.1f" % (v["result"]["stopped_at_unix"] - float(sys.argv[2])))
except (ValueError, KeyError, TypeError):
    print("-")' "$d/out.json" "$t0")
    touch "$d/poll.stop"
    wait "$poller"
    rm -f "$d/poll.stop"
    polled[$name]=$(cat "$d/poll.out")
    own[$name]=$(python3 -c 'import json,sys
try:
    v = json.load(open(sys.argv[1]))
except ValueError:
    print("-"); sys.exit()
v = v.get("result") or v.get("summary")
print("%.1f" % v["downtime_seconds"])' "$d/out.json")
    echo "$name: ${took[$name]} s, API down ${polled[$name]} s (dockroot reports ${own[$name]} s; load $(cut -d' ' -f1-3 /proc/loadavg); peak RSS $(($(tail -n1 "$d/rss") / 1024)) MiB)" >&2
    cp "$d/out.json" "$dir/downtime-$name.json"
}

# --downtime: see the header. Each measured command runs once; the table
# shows the gap the outside poller saw and dockroot's own downtime figure.
bench_downtime() {
    local lib=scripts/lib fill=$dir/fill-$size_mib d mnt log i
    export DOCKROOT_FIXTURES=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
    d=$(mktemp -d /tmp/dtb.XXXX) mnt=$dir/mnt log=$dir/downtime.log
    # shellcheck disable=SC2064 # expanded now: the names are local.
    trap "set +e; bash $lib/dockerd.sh stop $d; grep -o ' $d[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l; bash $lib/loopfs.sh drop $mnt; rm -rf $d" EXIT
    bash "$lib/dockerd.sh" start "$d"
    bash "$lib/docker-fixture.sh" populate "$d/sock"
    docker -H "unix://$d/sock" volume create bench >/dev/null
    stubborn "$d/sock"
    if ((small)); then
        local src
        small_tree
        echo "bench.sh: copying $src into the volume" >&2
        cp -a "$src/." "$d/root/volumes/bench/_data/"
        sync
    else
        fill_volume "$fill" "$d/root/volumes/bench/_data"
    fi
    bash "$lib/loopfs.sh" make xfs "$((size_mib * 5 / 2 + 3072))M" "$mnt"
    local -a g=("$bin" --json --service "pidfile:$d/pid" --docker-socket "$d/sock" --state-dir "$d/state"
        --fstab "$d/fstab" --daemon-config "$d/daemon.json")
    : > "$d/fstab"
    echo "data-root: $(du -sh "$d/root" | cut -f1), $(find "$d/root" | wc -l) entries; target: xfs on a loop device" >&2
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    declare -A polled own took before
    measure restart bash "$lib/dockerd.sh" restart "$d"
    if ((small)); then
        # The copy a user would make instead, onto the same target, cold.
        measure rsync bash -c "rsync -aHAXS --numeric-ids '$d/root/' '$mnt/rsync/' && sync -f '$mnt'"
        rm -rf "$mnt/rsync" && fstrim "$mnt"
    fi
    measure move_precopy "${g[@]}" move --to "$mnt/docker" --yes
    "${g[@]}" rollback --yes >> "$log" 2>&1
    rm -rf "$mnt/docker" && fstrim "$mnt"
    measure move_no_precopy "${g[@]}" move --to "$mnt/docker" --yes --no-precopy
    "${g[@]}" rollback --yes >> "$log" 2>&1
    rm -rf "$mnt/docker" && fstrim "$mnt"
    measure backup_stop_the_world "${g[@]}" backup -o "$mnt/backup.tar.zst" --no-config --stop-the-world
    rm -f "$mnt/backup.tar.zst" && fstrim "$mnt"
    measure backup_live "${g[@]}" backup -o "$mnt/backup.tar.zst" --no-config
    echo
    echo "| run | API down (polled) | dockroot's downtime |"
    echo "|---|---|---|"
    for i in restart move_precopy move_no_precopy backup_stop_the_world backup_live; do echo "| $i | ${polled[$i]} s | ${own[$i]} s |"; done
    echo
    against_restart move_precopy move_no_precopy backup_stop_the_world backup_live
    echo "move with pre-copy: ${took[move_precopy]} s in all, ${before[move_precopy]} s of it before the stop (pre-copy, its read-back and delta passes, and the checks before them)"
    ((small)) && echo "move's time before the stop / rsync -aHAXS of the same data-root (${took[rsync]} s): $(ratio "${before[move_precopy]}" "${took[rsync]}")"
    echo "move with pre-copy / --no-precopy: $(echo "scale=3; ${polled[move_precopy]} / ${polled[move_no_precopy]}" | bc)  (goal <= 0.10)"
    echo "live backup / --stop-the-world: $(echo "scale=3; ${polled[backup_live]} / ${polled[backup_stop_the_world]}" | bc)  (goal <= 0.10)"
    echo "live backup, per phase:"
    python3 -c 'import json,sys
p = json.load(open(sys.argv[1]))["summary"]["phases"]
for k in ("phase1", "phase2"):
    print("  %s: %d entries, %.1f MiB, %d raced, %d deleted" % (k, p[k]["entries"], p[k]["bytes"] / 2**20, p[k]["raced"], p[k]["deleted"]))' "$dir/downtime-backup_live.json"
    echo "move with pre-copy, seconds per step with Docker down:"
    python3 -c 'import json,sys
print("  " + ", ".join("%s %.2f" % (k, t) for k, t in json.load(open(sys.argv[1]))["result"]["downtime_steps"]))' "$dir/downtime-move_precopy.json"
}

# make_fill DIR: about $size_mib MiB, /usr/share and random 256 MiB files.
make_fill() {
    local i
    mkdir -p "$1"
    cp -a /usr/share "$1/share"
    for ((i = 0; (i + 1) * 256 + 700 <= size_mib; i++)); do head -c 256M /dev/urandom > "$1/blob$i"; done
}

# fill_volume FILL DEST: the fill, made once in FILL and copied into the
# volume DEST; or, when the disk has no room for FILL beside the copy, the
# move's target and the archive (16 GiB on a 48 GiB disk), made in DEST
# alone (a bind mount: no hardlink can reach it).
fill_volume() {
    local avail
    if [[ ! -d $1 ]]; then
        avail=$(df -k --output=avail "$2" | tail -1)
        if ((avail < size_mib * 1024 * 4 + 4 * 1048576)); then
            echo "bench.sh: filling $2 with about $size_mib MiB (no room to keep a copy)" >&2
            make_fill "$2"
            sync
            return
        fi
        echo "bench.sh: filling $1 with about $size_mib MiB (once)" >&2
        rm -rf "$1.tmp"
        make_fill "$1.tmp"
        mv "$1.tmp" "$1"
    fi
    cp -a "$1/." "$2/"
    sync
}

# stubborn SOCK: a container that ignores SIGTERM (PID 1 without a
# handler, no --init), restarted with the engine: every stop waits its 10 s.
stubborn() {
    docker -H "unix://$1" run -d --name dockroot-stubborn --network none --init=false --restart unless-stopped \
        dockroot-test/base:1 sleep 2147483647 >/dev/null
}

# against_restart NAME...: each run's polled downtime over the plain restart's.
against_restart() {
    local i
    echo "downtime / plain restart (${polled[restart]} s), goal <= 1.3:"
    for i in "$@"; do printf '  %-24s %s\n' "$i" "$(ratio "${polled[$i]}" "${polled[restart]}")"; done
}

# --downtime --containerd: see the header.
bench_downtime_containerd() {
    local lib=scripts/lib fill=$dir/fill-$size_mib d log pid root disk
    export DOCKROOT_FIXTURES=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
    [[ -d $fill ]] || { echo "bench.sh: run --downtime once first to fill $fill" >&2; exit 2; }
    d=$(mktemp -d /var/tmp/dtc.XXXX) log=$dir/downtime-containerd.log
    root=$d/guest disk=$d/data
    bash "$lib/sid-host.sh" copy "$root" >/dev/null
    bash "$lib/sid-host.sh" store "$root" containerd
    cp "$lib/docker-fixture.sh" "$bin" "$root/usr/local/bin/"
    bash "$lib/loopfs.sh" make xfs "$((size_mib * 5 / 2 + 3072))M" "$disk"
    pid=$(bash "$lib/sid-host.sh" boot "$root" dockroot-bench --bind "$disk:/data")
    # shellcheck disable=SC2064 # expanded now: the names are local.
    trap "set +e; bash $lib/sid-host.sh stop $pid; bash $lib/loopfs.sh drop $disk; rm -rf $d" EXIT
    in_guest() { bash "$lib/sid-host.sh" exec "$pid" "$@"; }
    in_guest bash /usr/local/bin/docker-fixture.sh populate /run/docker.sock >/dev/null
    in_guest docker volume create bench >/dev/null
    in_guest docker run -d --name dockroot-stubborn --network none --init=false --restart unless-stopped dockroot-test/base:1 sleep 2147483647 >/dev/null
    cp -a "$fill/." "$root/var/lib/docker/volumes/bench/_data/"
    sync
    local sock=/proc/$pid/root/run/docker.sock dataroot=$root/var/lib/docker
    local -a g=(bash "$lib/sid-host.sh" exec "$pid" dockroot --json)
    echo "containerd image store in the sid guest; data-root: $(du -sh "$dataroot" | cut -f1), containerd: $(du -sh "$root/var/lib/containerd" | cut -f1); target: xfs on /data" >&2
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    declare -A polled own took before
    measure restart bash "$lib/sid-host.sh" exec "$pid" systemctl restart docker
    measure move_precopy "${g[@]}" move --to /data/docker --yes
    "${g[@]}" rollback --yes >> "$log" 2>&1
    in_guest rm -rf /data/docker /data/containerd
    measure backup_live "${g[@]}" backup -o /data/backup.tar.zst --no-config
    echo
    echo "| run (containerd store) | API down (polled) | dockroot's downtime |"
    echo "|---|---|---|"
    for i in restart move_precopy backup_live; do echo "| $i | ${polled[$i]} s | ${own[$i]} s |"; done
    echo
    against_restart move_precopy backup_live
}

# --archive: see the header. Rounds of backup and restore against tar,
# cold, interleaved; SRC is the tree.
bench_archive() {
    local src=$1 work=${out_set:+$outdir}
    work=${work:-/var/tmp/dockroot-bench-archive-out}
    [[ -n $smoke || $(id -u) == 0 ]] || { echo "bench.sh: --archive drops the page cache: run as root" >&2; exit 2; }
    rm -rf "$work"
    mkdir -p "$work"
    local entries alloc
    read -r entries < <(find "$src" | wc -l)
    read -r alloc _ < <(du -s --block-size=1 "$src")
    echo "tree: $src: $entries entries, $(du -sh "$src" | cut -f1) allocated; outputs in $work"
    # --fresh: each restore and extraction writes onto a new ext4, so neither
    # starts right after the other's tree was deleted (see the header).
    fresh_img=$work/fresh.img
    local restored=$work/restored
    [[ -z $fresh ]] || { trap archive_cleanup EXIT; restored=$work/fs/restored; echo "restores onto a new ext4 for each run, in $fresh_img (loop, direct I/O)"; }
    restore_target() { if [[ -n $fresh ]]; then fresh_down; fresh_ext4 "$work/fs" "$((alloc * 2 + (2 << 30)))" "$entries"; else rm -rf "$restored"; fi; }
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    local -a dr=("$bin" -q --service none --state-dir "$work/state" --docker-socket "$work/none.sock")
    declare -A t=() rss=() size=()
    cold() { # NAME CMD...: caches dropped, CMD, its output synced
        local name=$1 t0 t1 load
        shift
        sync
        [[ -n $smoke ]] || echo 3 >/proc/sys/vm/drop_caches
        read -r load _ </proc/loadavg
        t0=$(date +%s.%N)
        /usr/bin/time -f %M -o "$work/rss.$name" "$@" >/dev/null 2>"$work/err.$name" || { echo "bench.sh: $name failed:" >&2; tail -n 20 "$work/err.$name" >&2; exit 1; }
        sync -f "$work"
        [[ -z $fresh_loop ]] || sync -f "$fresh_mnt"
        t1=$(date +%s.%N)
        t[$name]+="$(echo "$t1 - $t0" | bc) "
        rss[$name]=$(tail -n1 "$work/rss.$name")
        printf '  %-18s %8.2f s  load %5s  peak RSS %6d MiB\n' "$name" "$(echo "$t1 - $t0" | bc)" "$load" "$((rss[$name] / 1024))" >&2
    }
    local r k
    for ((r = 1; r <= rounds; r++)); do
        echo "round $r/$rounds" >&2
        rm -f "$work/dockroot.tar.zst"
        cold backup "${dr[@]}" --data-root "$src" backup -o "$work/dockroot.tar.zst" --no-config
        size[backup]=$(stat -c %s "$work/dockroot.tar.zst")
        rm -f "$work/tar.tar.zst"
        cold tar_zstd bash -c "tar --xattrs --xattrs-include='*' --acls -S -C '$src' -cf - . | zstd -q -T0 -3 -o '$work/tar.tar.zst'"
        size[tar_zstd]=$(stat -c %s "$work/tar.tar.zst")
        rm -f "$work/tar.tar.zst"
        restore_target
        cold restore "${dr[@]}" --data-root "$restored" restore "$work/dockroot.tar.zst" --yes --force
        restore_target
        mkdir -p "$restored"
        cold tar_extract tar --zstd --xattrs --xattrs-include='*' --acls -xpf "$work/dockroot.tar.zst" -C "$restored"
    done
    rm -rf "$restored"
    fresh_down
    declare -A med
    printf '\n%-12s %10s %10s   %s\n' "run (cold)" "median s" "peak RSS" "all runs"
    for k in backup tar_zstd restore tar_extract; do
        med[$k]=$(echo "${t[$k]}" | median)
        printf '%-12s %10.2f %7d MiB   %s\n' "$k" "${med[$k]}" "$((rss[$k] / 1024))" "${t[$k]}"
    done
    echo
    printf '%-40s %-40s\n' "dockroot backup / tar -S | zstd -T0 -3: $(ratio "${med[backup]}" "${med[tar_zstd]}") (goal <= 0.8)" \
        "dockroot restore / tar -x: $(ratio "${med[restore]}" "${med[tar_extract]}") (goal <= 0.7)"
    echo "archive size: dockroot $((size[backup] / 1048576)) MiB, tar | zstd $((size[tar_zstd] / 1048576)) MiB ($(ratio "${size[backup]}" "${size[tar_zstd]}"))"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    rm -rf "$work"
}

# --downtime --snapshot: backup's downtime with the data-root on a
# loop-mounted xfs (reflink=1): `--snapshot reflink` (stop, clone, start,
# archive from the clone) against `--stop-the-world` (archive with Docker
# stopped). Same daemon, fixture and volume fill as --downtime.
bench_snapshot_downtime() {
    local lib=scripts/lib fill=$dir/fill-$size_mib d mnt log i fs=${DOCKROOT_BENCH_FS:-xfs} method=reflink
    export DOCKROOT_FIXTURES=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
    [[ -d $fill ]] || { echo "bench.sh: run --downtime once first to fill $fill" >&2; exit 2; }
    d=$(mktemp -d /tmp/dts.XXXX) mnt=$dir/snapmnt-$$ log=$dir/snapshot-downtime.log
    # shellcheck disable=SC2064 # expanded now: the names are local.
    trap "set +e; bash $lib/dockerd.sh stop $d; grep -o ' $d[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l; bash $lib/loopfs.sh drop $mnt; rm -rf $d" EXIT
    bash "$lib/loopfs.sh" make "$fs" "$((size_mib * 3 / 2 + 3072))M" "$mnt"
    if [[ $fs == btrfs ]]; then
        method=btrfs
        btrfs -q subvolume create "$mnt/docker"
    else
        mkdir "$mnt/docker"
    fi
    ln -s "$mnt/docker" "$d/root"
    bash "$lib/dockerd.sh" start "$d"
    bash "$lib/docker-fixture.sh" populate "$d/sock"
    docker -H "unix://$d/sock" volume create bench >/dev/null
    cp -a "$fill/." "$d/root/volumes/bench/_data/"
    sync
    # -v: each step's time goes to the log.
    local -a g=("$bin" --json -v --service "pidfile:$d/pid" --docker-socket "$d/sock" --state-dir "$d/state"
        --fstab "$d/fstab" --daemon-config "$d/daemon.json")
    echo "data-root: $(du -sh "$mnt/docker" | cut -f1), $(find "$mnt/docker" | wc -l) entries, on $fs on a loop device" >&2
    declare -A polled own took before
    measure "${fs}_backup_stop_the_world" "${g[@]}" backup -o "$d/a.tar.zst" --no-config --stop-the-world
    rm -f "$d/a.tar.zst"
    measure "${fs}_backup_snapshot_$method" "${g[@]}" backup -o "$d/a.tar.zst" --no-config --snapshot "$method"
    echo
    echo "| run | API down (polled) | dockroot's downtime | whole backup |"
    echo "|---|---|---|---|"
    for i in "${fs}_backup_stop_the_world" "${fs}_backup_snapshot_$method"; do
        echo "| $i | ${polled[$i]} s | ${own[$i]} s | $(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["summary"]["seconds"])' "$dir/downtime-$i.json") s |"
    done
    echo
    echo "backup --snapshot $method / --stop-the-world: $(ratio "${polled[${fs}_backup_snapshot_$method]}" "${polled[${fs}_backup_stop_the_world]}")  (goal <= 0.10)"
}

if [[ -n $downtime && -n $containerd ]]; then
    bench_downtime_containerd
    exit 0
fi
if [[ -n $archive ]]; then
    [[ -x /usr/bin/time ]] || { echo "bench.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
    if [[ -n $smoke ]]; then
        rounds=1 small=300
        dir=$(mktemp -d /var/tmp/dockroot-bench-smoke.XXXX)
        [[ -n $out_set ]] || { outdir=$dir/out; out_set=1; }
        smoke_dir=$dir
        trap archive_cleanup EXIT
    fi
    if ((small)); then
        small_tree
        bench_archive "$src"
        exit 0
    fi
fi
if [[ -n $downtime && -n $snapshot ]]; then
    bench_snapshot_downtime
    exit 0
fi
if [[ -n $downtime ]]; then
    bench_downtime
    exit 0
fi

if ((small)); then
    [[ -x /usr/bin/time ]] || { echo "bench.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
    bench_small
    exit 0
fi

fixtures=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
rootfs=$fixtures/bookworm-rootfs
[[ -d $rootfs ]] || rootfs=/usr
tree=$dir/tree/docker
mkdir -p "$dir"

make_tree() {
    echo "bench.sh: generating the tree in $tree (once)" >&2
    rm -rf "$dir/tree"
    local o=$tree/overlay2 i
    mkdir -p "$o"
    # A fifth, larger layer (/usr/share) brings the tree to ~100k entries.
    mkdir -p "$o/layer5"
    cp -a /usr/share "$o/layer5/diff"
    for i in 1 2 3 4; do
        mkdir -p "$o/layer$i"
        cp -a "$rootfs/." "$o/layer$i/diff"
        echo "l$i" > "$o/layer$i/link"
        # Layer 2+ delete and replace things, as image builds do.
        if ((i > 1)); then
            mkdir -p "$o/layer$i/diff/etc" "$o/layer$i/diff/usr/share/doc"
            for w in a b c d e f g h; do mknod "$o/layer$i/diff/etc/wh-$w" c 0 0; done
            setfattr -n trusted.overlay.opaque -v y "$o/layer$i/diff/usr/share/doc"
            cp /bin/ping "$o/layer$i/diff/ping" 2>/dev/null || cp /bin/ls "$o/layer$i/diff/ping"
            setcap cap_net_raw+ep "$o/layer$i/diff/ping" 2>/dev/null || setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$o/layer$i/diff/ping"
        fi
    done
    # Image blobs and container data: large random files, sparse files, and
    # fully-allocated zeros (layers store sparse files that way).
    mkdir -p "$tree/image/blobs" "$tree/volumes/db/_data" "$tree/containers/c1"
    head -c 700M /dev/urandom > "$tree/image/blobs/big1"
    head -c 300M /dev/urandom > "$tree/volumes/db/_data/table.ibd"
    truncate -s 4G "$tree/containers/c1/sparse.img"
    for off in 0 1000 3000; do dd if=/dev/urandom of="$tree/containers/c1/sparse.img" bs=1M count=4 seek=$off conv=notrunc status=none; done
    head -c 256M /dev/zero > "$tree/volumes/db/_data/prealloc"
    sync
}

[[ -d $tree ]] || make_tree
data_root_mode "$tree"
if [[ -n $archive ]]; then
    bench_archive "$tree"
    exit 0
fi
if [[ -n $disk ]]; then
    bench_disk "$tree"
    exit 0
fi
read -r entries < <(find "$tree" | wc -l)
read -r size _ < <(du -sb "$tree")
echo "tree: $tree: $entries entries, $((size / 1048576)) MiB apparent, $(du -sh "$tree" | cut -f1) allocated"

declare -A times
mkdir -p "$outdir"
out=$outdir/copy
arc=$outdir/archive.tar.zst
run() { # NAME CMD...: times CMD into a fresh destination, records seconds
    local name=$1 t0 t1
    shift
    rm -rf "$out" "$dir/out.manifest" "$arc"
    sync
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$dir/err.$name" || { echo "bench.sh: $name failed:" >&2; cat "$dir/err.$name" >&2; exit 1; }
    t1=$(date +%s.%N)
    times[$name]+="$(echo "$t1 - $t0" | bc) "
}

# One warm-up pass to fill the page cache.
cat "$tree"/image/blobs/big1 "$tree"/volumes/db/_data/* >/dev/null
find "$tree" >/dev/null

for ((r = 1; r <= rounds; r++)); do
    echo "round $r/$rounds" >&2
    run rsync rsync -aHAXS --numeric-ids "$tree/" "$out/"
    run cp cp -a "$tree" "$out"
    run dockroot "$bin" -q copy "$tree" "$out" --manifest "$dir/out.manifest"
    run tar_zstd bash -c "tar --xattrs --xattrs-include='*' --acls -S -C '$tree' -cf - . | zstd -q -T0 -3 -o '$arc'"
    run dockroot_backup "$bin" -q --service none --data-root "$tree" backup -o "$arc" --no-config
    # Extraction of the same dockroot archive: GNU tar, then dockroot restore
    # (which also verifies the archive first and the restored tree after).
    "$bin" -q --service none --data-root "$tree" backup -o "$outdir/keep.tar.zst" --no-config
    run tar_extract bash -c "mkdir -p '$out' && tar --zstd --xattrs --xattrs-include='*' --acls -xpf '$outdir/keep.tar.zst' -C '$out'"
    run dockroot_restore "$bin" -q --service none --data-root "$out" restore "$outdir/keep.tar.zst" --yes --force
    rm -f "$outdir/keep.tar.zst"
done

declare -A med
printf '\n%-16s %10s   %s\n' tool "median s" "all runs"
for k in rsync cp dockroot tar_zstd dockroot_backup tar_extract dockroot_restore; do
    [[ -n ${times[$k]:-} ]] || continue
    med[$k]=$(echo "${times[$k]}" | median)
    printf '%-16s %10.2f   %s\n' "$k" "${med[$k]}" "${times[$k]}"
done
echo
echo "dockroot copy --manifest / rsync -aHAXS : $(ratio "${med[dockroot]}" "${med[rsync]}")  (target <= 0.5)"
echo "dockroot copy --manifest / cp -a        : $(ratio "${med[dockroot]}" "${med[cp]}")  (target <= 0.75)"
echo "dockroot backup / tar | zstd -T0         : $(ratio "${med[dockroot_backup]}" "${med[tar_zstd]}")  (target <= 1.0)"
echo "dockroot restore / tar --zstd -x         : $(ratio "${med[dockroot_restore]}" "${med[tar_extract]}")  (target <= 1.0)"

# Peak memory of one dockroot copy.
rm -rf "$out"
if [[ -x /usr/bin/time ]]; then
    rss=$(/usr/bin/time -f %M "$bin" -q copy "$tree" "$out" --manifest "$dir/out.manifest" 2>&1 >/dev/null | tail -n1)
    echo "dockroot copy peak RSS: $((rss / 1024)) MiB"
fi
rm -rf "$outdir" "$dir/out.manifest"
