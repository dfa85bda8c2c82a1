#!/usr/bin/env python3
"""treecmp.py: compare two directory trees with full metadata fidelity.

Usage:
    treecmp.py A B [--ignore-root-mtime] [--no-blocks]
    treecmp.py --selftest

This is the independent oracle for dockroot's tests: it shares no code with
the Rust engine, uses only the Python 3 standard library, and must stay
simple enough to trust. Per entry it compares type, full mode (with
setuid/setgid/sticky), uid, gid, size (regular files), mtime_ns (every type,
directories and symlinks too), rdev (devices), symlink target, content,
all xattrs (binary values), hardlink groups, and allocated blocks.

It walks with directory file descriptors (os.open/os.lstat with dir_fd), so
paths longer than PATH_MAX work. Linux has no fd-relative l*xattr calls, so
for xattrs it fchdir()s into the directory and uses the bare name.

Content is hashed hole-agnostically: only 64 KiB chunks (at fixed offsets)
that contain a non-zero byte are hashed, with their offset. A hole and a run
of written zeros therefore compare equal as content; whether holes were
preserved is the separate "blocks" check (B may not use more than
64 KiB + 10% more or less space than A).

XFS lists POSIX ACLs a second time as trusted.SGI_ACL_FILE/DEFAULT when
root asks; those aliases are ignored (system.posix_acl_* is compared).

Output: one line per difference, `PATH: FIELD: a=.. b=..`, with PATH relative
to the tree root ("." is the root) and non-printable bytes escaped; exit 1.
With no difference: one summary line on stdout, exit 0. Exit 2 on errors.
"""

import errno
import hashlib
import os
import stat
import sys

CHUNK = 64 * 1024
ZERO_CHUNK = bytes(CHUNK)
IGNORED_XATTRS = {b"trusted.SGI_ACL_FILE", b"trusted.SGI_ACL_DEFAULT"}
BLOCKS_SLACK = 64 * 1024
BLOCKS_RATIO = 0.10

TYPES = [
    (stat.S_ISREG, "reg"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISLNK, "lnk"),
    (stat.S_ISCHR, "chr"),
    (stat.S_ISBLK, "blk"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "sock"),
]


def esc(b):
    """Printable ASCII as is, everything else (and backslash) escaped."""
    if isinstance(b, str):
        b = os.fsencode(b)
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def ftype(mode):
    for test, name in TYPES:
        if test(mode):
            return name
    return "unknown"


def content_hash(fd, size):
    """sha256 over (offset, chunk) for every chunk holding a non-zero byte."""
    h = hashlib.sha256()
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data after pos: the rest is a hole
                break
            if e.errno != errno.EINVAL:  # EINVAL: fs without SEEK_DATA
                raise
            data, hole = pos, size
        off = data - data % CHUNK
        while off < min(hole, size):
            chunk = os.pread(fd, CHUNK, off)
            if not chunk:
                break
            if chunk != ZERO_CHUNK[: len(chunk)]:
                h.update(off.to_bytes(8, "little"))
                h.update(chunk)
            off += CHUNK
        pos = max(off, hole)
    return h.hexdigest()


def read_xattrs(name):
    """All xattrs of name (in the current directory), without following links."""
    out = {}
    try:
        names = os.listxattr(name, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return out
        raise
    for n in names:
        nb = os.fsencode(n)
        if nb in IGNORED_XATTRS:
            continue
        try:
            out[nb] = os.getxattr(name, n, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.ENODATA:  # removed while we looked
                continue
            raise
    return out


class Tree:
    """All entries of one tree: rel path (bytes) -> dict of fields."""

    def __init__(self, root):
        self.root = root  # absolute: the walk fchdir()s (for the xattr calls)
        self.entries = {}
        self.inodes = {}  # (dev, ino) -> [rel paths], non-directories only

    def load(self):
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            st = os.fstat(fd)
            # The root's own xattrs: its name in its parent directory.
            parent, base = os.path.split(self.root)
            os.chdir(parent)
            self._record(b".", st, xattrs=read_xattrs(base or b"/"))
            self._walk(fd, b"")
        finally:
            os.close(fd)
        return self

    def _record(self, rel, st, xattrs, target=None, digest=None):
        e = {
            "type": ftype(st.st_mode),
            "mode": "%04o" % stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns,
            "xattrs": xattrs,
        }
        if stat.S_ISREG(st.st_mode):
            e["size"] = st.st_size
            e["content"] = digest
            e["blocks"] = st.st_blocks * 512
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            e["rdev"] = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        if target is not None:
            e["target"] = target
        self.entries[rel] = e
        if not stat.S_ISDIR(st.st_mode):
            self.inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)

    def _walk(self, dfd, rel):
        names = sorted(os.fsencode(n) for n in os.listdir(dfd))
        for name in names:
            path = rel + b"/" + name if rel else name
            st = os.lstat(name, dir_fd=dfd)
            target = digest = None
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(name, dir_fd=dfd)
            elif stat.S_ISREG(st.st_mode):
                ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOATIME, dir_fd=dfd)
                try:
                    digest = content_hash(ffd, st.st_size)
                finally:
                    os.close(ffd)
            os.fchdir(dfd)
            self._record(path, st, read_xattrs(name), target, digest)
            if stat.S_ISDIR(st.st_mode):
                cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
                try:
                    self._walk(cfd, path)
                finally:
                    os.close(cfd)


def fmt(v):
    if isinstance(v, bytes):
        return esc(v)
    if isinstance(v, list):
        return "[" + ",".join(esc(p) for p in v) + "]"
    return str(v)


def compare(a_root, b_root, ignore_root_mtime=False, blocks=True):
    """Return the list of (path, field, a, b) differences, sorted by path."""
    # Both made absolute before the first walk changes the working directory.
    a_root, b_root = (os.path.abspath(os.fsencode(r)) for r in (a_root, b_root))
    a, b = Tree(a_root).load(), Tree(b_root).load()
    diffs = []

    def d(path, field, va, vb):
        diffs.append((path, field, va, vb))

    # Inode -> group lookups, computed once per tree.
    a_groups = {p: sorted(ps) for ps in a.inodes.values() for p in ps}
    b_groups = {p: sorted(ps) for ps in b.inodes.values() for p in ps}

    for path in sorted(set(a.entries) | set(b.entries)):
        ea, eb = a.entries.get(path), b.entries.get(path)
        if ea is None or eb is None:
            d(path, "exists", "yes" if ea else "no", "yes" if eb else "no")
            continue
        if ea["type"] != eb["type"]:
            d(path, "type", ea["type"], eb["type"])
            continue
        for field in ("mode", "uid", "gid", "size", "mtime_ns", "rdev", "target", "content"):
            if field == "mtime_ns" and path == b"." and ignore_root_mtime:
                continue
            if ea.get(field) != eb.get(field):
                d(path, field, ea.get(field), eb.get(field))
        xa, xb = ea["xattrs"], eb["xattrs"]
        for name in sorted(set(xa) | set(xb)):
            if xa.get(name) != xb.get(name):
                d(path, "xattr " + esc(name), xa.get(name, "(none)"), xb.get(name, "(none)"))
        if ea["type"] != "dir":
            ga, gb = a_groups.get(path, [path]), b_groups.get(path, [path])
            if ga != gb:
                d(path, "hardlinks", ga, gb)
        if blocks and ea["type"] == "reg":
            ba, bb = ea["blocks"], eb["blocks"]
            if abs(bb - ba) > BLOCKS_SLACK + BLOCKS_RATIO * ba:
                d(path, "blocks", ba, bb)
    return diffs, len(a.entries)


def main(argv):
    args = [x for x in argv if not x.startswith("--")]
    opts = {x for x in argv if x.startswith("--")}
    if "--selftest" in opts:
        return selftest()
    unknown = opts - {"--ignore-root-mtime", "--no-blocks"}
    if len(args) != 2 or unknown:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    sys.setrecursionlimit(100000)
    try:
        diffs, n = compare(args[0], args[1], "--ignore-root-mtime" in opts, "--no-blocks" not in opts)
    except OSError as e:
        print("treecmp.py: %s: %s" % (esc(e.filename or b"?"), e.strerror), file=sys.stderr)
        return 2
    for path, field, va, vb in diffs:
        print("%s: %s: a=%s b=%s" % (esc(path), field, fmt(va), fmt(vb)))
    if diffs:
        print("treecmp: %d difference(s) in %d entries" % (len(diffs), n), file=sys.stderr)
        return 1
    print("treecmp: %d entries compared, no differences" % n)
    return 0


def selftest():
    """Build small trees and check each kind of difference is detected."""
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="treecmp-selftest.")
    failures = []

    def build(root):
        os.mkdir(root)
        os.mkdir(root + "/d")
        with open(root + "/d/f", "wb") as f:
            f.write(b"hello\n")
        with open(root + "/sparse", "wb") as f:
            f.truncate(4 << 20)
            f.seek(1 << 20)
            f.write(b"x" * 4096)
        os.link(root + "/d/f", root + "/link1")
        with open(root + "/other", "wb") as f:
            f.write(b"other\n")
        os.symlink("d/f", root + "/sym")
        os.mkfifo(root + "/fifo")
        os.mknod(root + "/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.setxattr(root + "/d/f", "user.k", b"v\x00\n")
        os.setxattr(root + "/d/f", "trusted.SGI_ACL_FILE", b"alias")
        # A path longer than PATH_MAX (4096): 25 nested 200-byte names.
        fd = os.open(root, os.O_RDONLY)
        for i in range(25):
            name = b"%03d" % i + b"L" * 197
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open(b"deep", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"deep\n")
        os.close(wfd)
        os.close(fd)
        # Fixed times on everything, parents after children.
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for n in filenames + dirnames:
                try:
                    os.utime(os.path.join(dirpath, n), ns=(1, 123456789), follow_symlinks=False)
                except OSError:
                    pass  # the long path: times set via dir fds below
        os.utime(root, ns=(1, 123456789))

    def fresh(name):
        p = os.path.join(tmp, name)
        build(p)
        return p

    a = fresh("a")
    # Deep entries and their parents need fd-relative utime (path too long).
    def fix_deep_times(root):
        fds = [os.open(root, os.O_RDONLY)]
        names = []
        for i in range(25):
            name = b"%03d" % i + b"L" * 197
            names.append(name)
            fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        os.utime(b"deep", ns=(1, 123456789), dir_fd=fds[-1])
        for i in range(25, 0, -1):
            os.utime(names[i - 1], ns=(1, 123456789), dir_fd=fds[i - 1])
        os.utime(root, ns=(1, 123456789))
        for f in fds:
            os.close(f)
    fix_deep_times(a)

    def fill_holes(path):
        """Same bytes and mtime, but every block allocated."""
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(0)
            f.write(data)
        os.utime(path, ns=(1, 123456789))

    # (name, mutation of tree B, expected (path, field) in the output)
    cases = [
        ("identical", lambda b: None, None),
        ("missing", lambda b: os.unlink(b + "/other"), (b"other", "exists")),
        ("type", lambda b: (os.unlink(b + "/fifo"), open(b + "/fifo", "w").close()), (b"fifo", "type")),
        ("mode", lambda b: os.chmod(b + "/other", 0o4755), (b"other", "mode")),
        ("sticky", lambda b: os.chmod(b + "/d", 0o1755), (b"d", "mode")),
        ("uid", lambda b: os.chown(b + "/other", 231072, -1), (b"other", "uid")),
        ("gid", lambda b: os.lchown(b + "/sym", -1, 65534), (b"sym", "gid")),
        ("size", lambda b: open(b + "/other", "ab").write(b"+"), (b"other", "size")),
        ("content", lambda b: open(b + "/other", "r+b").write(b"OTHER"), (b"other", "content")),
        ("mtime", lambda b: os.utime(b + "/other", ns=(1, 123456788)), (b"other", "mtime_ns")),
        ("dir mtime", lambda b: os.utime(b + "/d", ns=(1, 5)), (b"d", "mtime_ns")),
        ("link mtime", lambda b: os.utime(b + "/sym", ns=(1, 5), follow_symlinks=False), (b"sym", "mtime_ns")),
        ("root mtime", lambda b: os.utime(b, ns=(1, 5)), (b".", "mtime_ns")),
        ("rdev", lambda b: (os.unlink(b + "/null"), os.mknod(b + "/null", stat.S_IFCHR | 0o666, os.makedev(1, 5))), (b"null", "rdev")),
        ("target", lambda b: (os.unlink(b + "/sym"), os.symlink("d/g", b + "/sym")), (b"sym", "target")),
        ("xattr value", lambda b: os.setxattr(b + "/d/f", "user.k", b"v\x00\r"), (b"d/f", "xattr user.k")),
        ("xattr extra", lambda b: os.setxattr(b + "/d", "trusted.overlay.opaque", b"y"), (b"d", "xattr trusted.overlay.opaque")),
        ("SGI alias ignored", lambda b: os.removexattr(b + "/d/f", "trusted.SGI_ACL_FILE"), None),
        ("hardlink broken", lambda b: (os.unlink(b + "/link1"), shutil.copy2(b + "/d/f", b + "/link1")), (b"link1", "hardlinks")),
        ("hardlink regrouped", lambda b: (os.unlink(b + "/other"), os.link(b + "/d/f", b + "/other")), (b"other", "hardlinks")),
        ("holes filled", lambda b: fill_holes(b + "/sparse"), (b"sparse", "blocks")),
    ]

    def deep_change(b):
        fd = os.open(b, os.O_RDONLY)
        for i in range(25):
            nfd = os.open(b"%03d" % i + b"L" * 197, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open(b"deep", os.O_WRONLY | os.O_APPEND, dir_fd=fd)
        os.write(wfd, b"more")
        os.close(wfd)
        os.close(fd)
    cases.append(("long path", deep_change, (b"deep", "size")))

    for i, (name, mutate, expect) in enumerate(cases):
        b = fresh("b%d" % i)
        fix_deep_times(b)
        mutate(b)
        # Mutations bump parents' mtimes; restore them unless it is the point.
        if expect is None or expect[1] != "mtime_ns":
            for p in (b, b + "/d"):
                os.utime(p, ns=(1, 123456789))
        got, _ = compare(a, b)
        got_keys = [(p.rsplit(b"/", 1)[-1] if expect and expect[0] == b"deep" else p, f) for p, f, _, _ in got]
        ok = (not got) if expect is None else (expect in got_keys)
        if not ok:
            failures.append("%s: expected %s, got %s" % (name, expect, got_keys))
        shutil.rmtree(b)

    # The CLI must ignore blocks with --no-blocks and root mtime on request.
    b = fresh("bopts")
    fix_deep_times(b)
    fill_holes(b + "/sparse")
    os.utime(b, ns=(1, 7))
    got, _ = compare(a, b, ignore_root_mtime=True, blocks=False)
    if got:
        failures.append("options: expected no differences, got %s" % got)
    shutil.rmtree(tmp)

    for f in failures:
        print("selftest FAILED: " + f)
    if failures:
        return 1
    print("treecmp selftest: %d cases passed" % (len(cases) + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
