#!/usr/bin/env bash
# restic-dedup.sh: how much a second nightly `dockroot backup --restic` adds
# to the repository after a small change (issue 21). Sizes, not times: the
# machine's load does not matter.
#
# Usage: scripts/restic-dedup.sh [--size MIB] [--change MIB] [--dir DIR]
#   Builds DIR/tree (default /var/tmp/dockroot-dedup, kept and reused): the
#   bookworm rootfs of the test fixtures three times over as image layers,
#   plus 64 MiB random blobs up to --size (default 4096), then backs it up
#   into a fresh local restic repository (DIR/repo) twice with
#   `dockroot --service none backup --restic`, with a change of --change
#   MiB (default 50) in between: half of it rewritten inside an existing
#   blob, half a new container log, and a few small config files edited.
#   Prints the repository's size after each night and the growth ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
size=4096 change=50 dir=/var/tmp/dockroot-dedup
while (($#)); do
    case $1 in
        --size) size=$2; shift 2 ;;
        --change) change=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--size MIB] [--change MIB] [--dir DIR]" >&2; exit 2 ;;
    esac
done
bin=$PWD/target/release/dockroot
[[ -x $bin ]] || cargo build --release >&2
fixtures=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
tree=$dir/tree repo=$dir/repo
export RESTIC_PASSWORD=dedup RESTIC_CACHE_DIR=$dir/cache

if [[ ! -e $dir/tree.stamp ]]; then
    rm -rf "$tree"; mkdir -p "$tree/overlay2" "$tree/containers/c1" "$tree/volumes/v1/_data"
    bash scripts/lib/systemd-host.sh build >/dev/null
    for l in l1 l2 l3; do cp -a "$fixtures/bookworm-rootfs" "$tree/overlay2/$l"; done
    have=$(du -sm "$tree" | cut -f1)
    i=0
    while ((have < size)); do
        head -c 64M /dev/urandom >"$tree/volumes/v1/_data/blob$i"
        i=$((i + 1)) have=$((have + 64))
    done
    touch "$dir/tree.stamp"
fi
rm -rf "$repo" "$dir/cache"
restic init --repo "$repo" -q
backup() { "$bin" -q --service none --data-root "$tree" --state-dir "$dir/state" backup --restic "$repo" --no-config; }
repo_bytes() { du -sb "$repo" | cut -f1; }
echo "tree: $(du -sh "$tree" | cut -f1), $(find "$tree" | wc -l) entries; load $(cut -d' ' -f1-3 /proc/loadavg)"
t=$(date +%s.%N); backup; t1=$(echo "$(date +%s.%N) - $t" | bc)
n1=$(repo_bytes)
half=$((change / 2))
dd if=/dev/urandom of="$tree/volumes/v1/_data/blob0" bs=1M seek=8 count="$half" conv=notrunc status=none
head -c "${half}M" /dev/urandom >"$tree/containers/c1/c1-json.log.$(date +%s)"
for f in "$tree"/overlay2/l2/etc/{hostname,issue,motd}; do [[ -f $f ]] && echo "edited $(date)" >>"$f"; done
t=$(date +%s.%N); backup; t2=$(echo "$(date +%s.%N) - $t" | bc)
n2=$(repo_bytes)
grow=$((n2 - n1))
printf 'night 1: repository %s bytes (%.1f s)\nnight 2 after a %s MiB change: +%s bytes (%.1f s)\ngrowth: %.2f%% of night 1\n' \
    "$n1" "$t1" "$change" "$grow" "$t2" "$(echo "$grow * 100 / $n1" | bc -l)"
