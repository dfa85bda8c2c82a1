#!/usr/bin/env bash
# loopfs.sh: loop-mounted scratch filesystems, so the same tests run on ext4,
# xfs and btrfs (and on xfs without d_type, which overlay2 refuses).
#
# Usage:
#   loopfs.sh make TYPE SIZE MOUNTPOINT   TYPE: ext4 | xfs | btrfs | xfs-noftype | ext4-nodtype
#                                         SIZE: as for truncate(1), e.g. 2G
#   loopfs.sh drop MOUNTPOINT             umount, detach the loop device, rm the image
#
# The sparse image lives next to the mountpoint, as MOUNTPOINT.img.
# Can also be sourced: it then only defines loopfs_make and loopfs_drop.
#
# xfs-noftype: xfsprogs >= 5.x refuses `-n ftype=0` on v5 (crc=1) filesystems,
# so it uses `-m crc=0 -n ftype=0` (a v4 filesystem). Kernels may be built
# without v4 support (CONFIG_XFS_SUPPORT_V4, off in this 6.18 test kernel:
# dmesg "Deprecated V4 format (crc=0) not supported by kernel"); then `make`
# exits 3 so callers can gate the test visibly. ext4-nodtype (mkfs.ext4 -O
# ^filetype: readdir returns DT_UNKNOWN) is the portable no-d_type filesystem.
set -euo pipefail

loopfs_make() {
    local type=$1 size=$2 mnt=$3 img
    mnt=$(realpath -m "$mnt")
    img=$mnt.img
    mountpoint -q "$mnt" && { echo "loopfs.sh: $mnt is already a mountpoint" >&2; return 1; }
    mkdir -p "$mnt"
    bash "$(dirname "${BASH_SOURCE[0]}")/leaks.sh" record "$mnt"
    rm -f "$img"
    truncate -s "$size" "$img"
    case $type in
        ext4) mkfs.ext4 -q -F "$img" ;;
        # ftype=1 is the default, but say it: overlay2 needs d_type.
        xfs) mkfs.xfs -q -f -n ftype=1 "$img" ;;
        xfs-noftype) mkfs.xfs -q -f -m crc=0 -n ftype=0 "$img" >/dev/null 2>&1 ;;
        ext4-nodtype) mkfs.ext4 -q -F -O ^filetype "$img" ;;
        btrfs) mkfs.btrfs -q -f "$img" >/dev/null ;;
        *) echo "loopfs.sh: unknown type $type" >&2; rm -f "$img"; return 2 ;;
    esac
    if ! mount -o loop "$img" "$mnt" 2>/dev/null; then
        rm -f "$img"
        rmdir "$mnt" 2>/dev/null || true
        echo "loopfs.sh: this kernel cannot mount $type" >&2
        return 3
    fi
}

loopfs_drop() {
    local mnt dev
    mnt=$(realpath -m "$1")
    if mountpoint -q "$mnt"; then
        dev=$(findmnt -n -o SOURCE --target "$mnt")
        # Lazy unmount only as a fallback: a test that left a process inside
        # should not make the whole run fail here.
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
        # mount -o loop sets autoclear, but detach explicitly in case of -l.
        [[ $dev == /dev/loop* ]] && losetup -d "$dev" 2>/dev/null || true
    fi
    rm -f "$mnt.img"
    rmdir "$mnt" 2>/dev/null || true
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    case ${1:-} in
        make) [[ $# -eq 4 ]] || { echo "usage: loopfs.sh make TYPE SIZE MOUNTPOINT" >&2; exit 2; }
              loopfs_make "$2" "$3" "$4" ;;
        drop) [[ $# -eq 2 ]] || { echo "usage: loopfs.sh drop MOUNTPOINT" >&2; exit 2; }
              loopfs_drop "$2" ;;
        *) echo "usage: loopfs.sh make TYPE SIZE MOUNTPOINT | drop MOUNTPOINT" >&2; exit 2 ;;
    esac
fi
