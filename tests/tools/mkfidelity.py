#!/usr/bin/env python3
"""mkfidelity.py: build the "fidelity tree", every kind of filesystem object
a Docker data-root can hold, for backup/restore/relocate round-trip tests.

Usage:
    mkfidelity.py ROOT [--seed N]

ROOT must not exist or be an empty directory. Run as root (devices, chown,
trusted.* and security.* xattrs). The tree is deterministic for a seed:
same names, bytes, modes, owners, xattrs and nanosecond mtimes every time
(inode numbers and ctimes of course differ). Compare copies with treecmp.py.

What it holds, top-level directory by directory:
    files/     small, empty, 5 MiB seeded random
    sparse/    1 GiB file with 3 MiB of data in 3 extents; 8 MiB of written
               (allocated) zeros, which a copier must not turn into a hole
    links/     symlinks: dangling, absolute, relative; one with a trusted.* xattr
    hardlinks/ one inode linked from a/, b/ and c/ (group of 3)
    special/   char 0:0 (overlay whiteout), char 1:3, block 7:0, fifo, socket
    xattrs/    trusted.overlay.opaque=y dir, trusted.overlay.redirect dir,
               security.capability (v2, cap_net_raw+ep), POSIX access and
               default ACLs, user.* with binary values (NUL, newline)
    modes/     setuid, setgid file and dir, sticky dir, 0000, 0600
    owners/    uid/gid 231072 (userns-remap range) and 65534 (nobody)
    names/     b"\\xff\\xfe", a name with a newline, a 255-byte name
    deep/      40 nested 200-byte directory names: a path of ~8 KB, beyond
               PATH_MAX (4096), so it is built with directory fds

Order per entry follows what a faithful copier must do: chown first (it
clears setuid bits and security.capability), then chmod, then xattrs/ACLs,
and mtimes last, children before parents, on every entry including
directories, symlinks and ROOT itself (odd nanoseconds, so truncation to
microseconds or seconds shows).
"""

import os
import random
import socket
import stat
import subprocess
import sys

SEED = 20251123
UID_REMAP = 231072
NOBODY = 65534
ROOT_MODE = 0o750
DEEP_LEVELS = 40
DEEP_NAME_LEN = 200

# struct vfs_cap_data, revision 2, little endian (linux/capability.h):
# magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, then
# {permitted, inheritable} for capability words 0 and 1. CAP_NET_RAW = 13.
CAP_NET_RAW_V2 = b"".join(x.to_bytes(4, "little") for x in (0x02000001, 1 << 13, 0, 0, 0))


class Builder:
    def __init__(self, root, seed):
        self.root = os.path.abspath(os.fsencode(root))
        self.rng = random.Random(seed)

    def p(self, rel):
        return os.path.join(self.root, os.fsencode(rel))

    def mkdir(self, rel, mode=0o755):
        os.makedirs(self.p(rel), exist_ok=True)
        os.chmod(self.p(rel), mode)

    def write(self, rel, data, mode=0o644):
        with open(self.p(rel), "wb") as f:
            f.write(data)
        os.chmod(self.p(rel), mode)

    def build(self):
        if os.path.exists(self.root):
            if os.listdir(self.root):
                raise SystemExit("mkfidelity.py: %s is not empty" % self.root.decode(errors="replace"))
        else:
            os.mkdir(self.root)
        self.files()
        self.sparse()
        self.links()
        self.hardlinks()
        self.special()
        self.xattrs()
        self.modes()
        self.owners()
        self.names()
        self.deep()
        os.chown(self.root, 0, 0)
        os.chmod(self.root, ROOT_MODE)
        self.set_times()

    def files(self):
        self.mkdir("files")
        self.write("files/small.txt", b"dockroot fidelity tree\n")
        self.write("files/empty", b"")
        self.write("files/random-5M", self.rng.randbytes(5 << 20))

    def sparse(self):
        self.mkdir("sparse")
        with open(self.p("sparse/sparse-1G"), "wb") as f:
            f.truncate(1 << 30)
            # 3 MiB of data in 3 extents: start, middle, and the very end.
            for off in (0, 500 << 20, (1 << 30) - (1 << 20)):
                f.seek(off)
                f.write(self.rng.randbytes(1 << 20))
        with open(self.p("sparse/zeros-8M"), "wb") as f:
            f.write(bytes(8 << 20))
            f.flush()
            os.fsync(f.fileno())

    def links(self):
        self.mkdir("links")
        os.symlink(b"does/not/exist", self.p("links/dangling"))
        os.symlink(b"/etc/hostname", self.p("links/absolute"))
        os.symlink(b"../files/small.txt", self.p("links/relative"))
        os.symlink(b"../files", self.p("links/to-dir"))
        # user.* is not allowed on symlinks (xattr(7)); trusted.* is.
        os.setxattr(self.p("links/relative"), b"trusted.dockroot.on-symlink", b"link\x00xattr",
                    follow_symlinks=False)

    def hardlinks(self):
        for d in ("a", "b", "c"):
            self.mkdir("hardlinks/" + d)
        self.write("hardlinks/a/one", b"one inode, three names\n")
        os.link(self.p("hardlinks/a/one"), self.p("hardlinks/b/two"))
        os.link(self.p("hardlinks/a/one"), self.p("hardlinks/c/three"))

    def special(self):
        self.mkdir("special")
        os.mknod(self.p("special/whiteout"), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        os.mknod(self.p("special/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(self.p("special/loop0"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
        os.mkfifo(self.p("special/fifo"), 0o640)
        os.chmod(self.p("special/fifo"), 0o640)
        # A socket node: bind, then close; the node stays. Bind by a relative
        # name because sun_path is limited to 108 bytes.
        cwd = os.open(".", os.O_RDONLY)
        try:
            os.chdir(self.p("special"))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(b"socket")
            s.close()
        finally:
            os.fchdir(cwd)
            os.close(cwd)
        os.chmod(self.p("special/socket"), 0o755)

    def xattrs(self):
        self.mkdir("xattrs/opaque")
        self.write("xattrs/opaque/inside", b"opaque dir content\n")
        os.setxattr(self.p("xattrs/opaque"), b"trusted.overlay.opaque", b"y")
        self.mkdir("xattrs/redirect")
        os.setxattr(self.p("xattrs/redirect"), b"trusted.overlay.redirect", b"/old/location")
        self.write("xattrs/netraw", b"\x7fELF pretend binary\n", 0o755)
        os.setxattr(self.p("xattrs/netraw"), b"security.capability", CAP_NET_RAW_V2)
        self.write("xattrs/user", b"user xattrs\n")
        os.setxattr(self.p("xattrs/user"), b"user.binary", b"\x00\x01\n\xff\xfe\x00")
        os.setxattr(self.p("xattrs/user"), b"user.text", b"line one\nline two\n")
        os.setxattr(self.p("xattrs/user"), b"user.empty", b"")
        self.write("xattrs/acl-file", b"acl\n", 0o640)
        self.mkdir("xattrs/acl-dir", 0o750)
        # setfacl writes system.posix_acl_access/_default in the kernel format.
        subprocess.run(["setfacl", "-m", "u:%d:rw-,g:%d:r--" % (UID_REMAP, NOBODY),
                        self.p("xattrs/acl-file")], check=True)
        subprocess.run(["setfacl", "-m", "u:%d:rwx" % UID_REMAP, "-d", "-m",
                        "u:%d:rwx,g:%d:r-x" % (UID_REMAP, NOBODY), self.p("xattrs/acl-dir")], check=True)

    def modes(self):
        self.mkdir("modes")
        self.write("modes/setuid", b"setuid\n", 0o4755)
        self.write("modes/setgid", b"setgid\n", 0o2755)
        self.write("modes/none", b"no permissions\n", 0o000)
        self.write("modes/private", b"private\n", 0o600)
        self.mkdir("modes/setgid-dir", 0o2775)
        self.mkdir("modes/sticky-dir", 0o1777)

    def owners(self):
        self.mkdir("owners")
        for name, uid, gid in (("remapped", UID_REMAP, UID_REMAP), ("nobody", NOBODY, NOBODY),
                               ("mixed", UID_REMAP, NOBODY)):
            self.write("owners/" + name, name.encode() + b"\n")
            os.chown(self.p("owners/" + name), uid, gid)
        # chown clears setuid: set the mode again afterwards.
        self.write("owners/remapped-setuid", b"setuid after chown\n")
        os.chown(self.p("owners/remapped-setuid"), UID_REMAP, UID_REMAP)
        os.chmod(self.p("owners/remapped-setuid"), 0o4750)
        self.mkdir("owners/remapped-dir", 0o700)
        os.chown(self.p("owners/remapped-dir"), UID_REMAP, UID_REMAP)
        os.symlink(b"remapped", self.p("owners/remapped-link"))
        os.lchown(self.p("owners/remapped-link"), UID_REMAP, NOBODY)

    def names(self):
        self.mkdir("names")
        for name in (b"\xff\xfe", b"new\nline", b"x" * 255, b"-dash", b"back\\slash",
                     b"sp ace", "ünïcødé".encode()):
            self.write(b"names/" + name, b"name: " + name + b"\n")

    def deep(self):
        """40 nested 200-byte names (beyond PATH_MAX): only fd-relative calls."""
        self.mkdir("deep")
        fd = os.open(self.p("deep"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(DEEP_LEVELS):
                name = b"%02d-" % i + b"d" * (DEEP_NAME_LEN - 3)
                os.mkdir(name, 0o755, dir_fd=fd)
                nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = nfd
            wfd = os.open(b"bottom.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            os.write(wfd, b"deeper than PATH_MAX\n")
            os.setxattr(wfd, b"user.deep", b"yes")
            os.close(wfd)
        finally:
            os.close(fd)

    def set_times(self):
        """Post-order over the tree with dir fds: children before parents."""
        counter = [0]

        def stamp():
            # Distinct, deterministic, odd nanoseconds (2020-09-13 + i s).
            i = counter[0]
            counter[0] += 1
            return (1600000000 + i, (100000001 + 2 * i) % 1000000000)

        def walk(dfd):
            for name in sorted(os.fsencode(n) for n in os.listdir(dfd)):
                st = os.lstat(name, dir_fd=dfd)
                if stat.S_ISDIR(st.st_mode):
                    cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
                    try:
                        walk(cfd)
                    finally:
                        os.close(cfd)
                sec, ns = stamp()
                t = sec * 10**9 + ns
                os.utime(name, ns=(t, t), dir_fd=dfd, follow_symlinks=False)

        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            walk(fd)
            sec, ns = stamp()
            os.utime(fd, ns=(sec * 10**9 + ns,) * 2)
        finally:
            os.close(fd)


def main(argv):
    seed = SEED
    args = list(argv)
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: mkfidelity.py ROOT [--seed N]", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("mkfidelity.py: must run as root", file=sys.stderr)
        return 2
    os.umask(0)
    Builder(args[0], seed).build()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
