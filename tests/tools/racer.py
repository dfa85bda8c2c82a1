#!/usr/bin/env python3
"""A hostile container for the race tests (issue 13).

    racer.py make TREE OUTSIDE   build the tree (and a sentinel dir outside it)
    racer.py race TREE N         swap names in TREE with renameat2(RENAME_EXCHANGE),
                                 N rounds at most (the test kills it sooner)
    racer.py check-tree DIR REF  every regular file below DIR holds the content of
                                 one of REF's regular files, and every path is one
                                 the tree can have
    racer.py check-manifest M REF-MANIFEST
                                 the same for a dockroot manifest: every file
                                 record's blake3 is one of REF-MANIFEST's
    racer.py stamp OUTSIDE       print the sentinel's (atime, mtime, ctime) state

The swapped pairs: a 64 KiB file with a /dev/urandom node (c 1 9), another with
a /dev/null node (c 1 3), a sparse file with a second /dev/null node (a seek
loop once), a directory with a symlink to /, a directory with a symlink to the
sentinel directory OUTSIDE, and a symlink with a regular file (EINVAL from
readlink, ELOOP on open), and the first name of a hardlink group with a
/dev/null node. Nothing in the tree ever changes content; only names
move. So any byte in a copy that is not one of the tree's own contents came
from somewhere else.
"""

import ctypes
import hashlib
import os
import random
import sys

RENAME_EXCHANGE = 2
PAIRS = [("f", "urandom"), ("g", "null"), ("sparse", "null2"), ("d", "root"), ("e", "out"), ("sl", "h"), ("hl1", "null3")]
TOP = {n for p in PAIRS for n in p} | {"hl2"}
DIRS_INNER = {"inner", "inner2"}


def make(tree, outside):
    rnd = random.Random(13)
    os.makedirs(tree)
    with open(os.path.join(tree, "f"), "wb") as w:
        w.write(rnd.randbytes(64 << 10))
    with open(os.path.join(tree, "g"), "wb") as w:
        w.write(rnd.randbytes(64 << 10))
    with open(os.path.join(tree, "sparse"), "wb") as w:
        w.truncate(16 << 20)
        w.seek(8 << 20)
        w.write(rnd.randbytes(64 << 10))
    with open(os.path.join(tree, "h"), "wb") as w:
        w.write(b"h, a plain file\n")
    os.mknod(os.path.join(tree, "urandom"), 0o644 | 0o020000, os.makedev(1, 9))
    os.mknod(os.path.join(tree, "null"), 0o644 | 0o020000, os.makedev(1, 3))
    os.mknod(os.path.join(tree, "null2"), 0o644 | 0o020000, os.makedev(1, 3))
    os.mknod(os.path.join(tree, "null3"), 0o644 | 0o020000, os.makedev(1, 3))
    # A hardlink group whose first name (the one copied) is swapped.
    with open(os.path.join(tree, "hl1"), "wb") as w:
        w.write(b"a hardlinked file\n")
    os.link(os.path.join(tree, "hl1"), os.path.join(tree, "hl2"))
    for d, inner in (("d", "inner"), ("e", "inner2")):
        os.mkdir(os.path.join(tree, d))
        with open(os.path.join(tree, d, inner), "wb") as w:
            w.write(f"{d}/{inner}\n".encode())
    os.symlink("/", os.path.join(tree, "root"))
    os.symlink(outside, os.path.join(tree, "out"))
    os.symlink("sl-target", os.path.join(tree, "sl"))
    os.makedirs(outside)
    with open(os.path.join(outside, "secret"), "wb") as w:
        w.write(b"outside the tree\n")
    # An old atime: any read of the sentinel moves it (relatime included).
    os.utime(os.path.join(outside, "secret"), (946684800, 946684800))


def race(tree, rounds):
    libc = ctypes.CDLL(None, use_errno=True)
    # Die with the test that started us, even if it is killed outright.
    parent = os.getppid()
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if os.getppid() != parent:
        sys.exit("racer: the test is gone")
    # Absolute paths, no fd kept in the tree: a container's processes do not
    # hold the host's data-root open either (backup's stop guard refuses a
    # data-root that some process still uses).
    at_fdcwd = -100
    top = os.path.abspath(tree)
    pairs = [(os.path.join(top, a).encode(), os.path.join(top, b).encode()) for a, b in PAIRS]
    swaps = 0
    for _ in range(rounds):
        for a, b in pairs:
            if libc.renameat2(at_fdcwd, a, at_fdcwd, b, RENAME_EXCHANGE) != 0:
                sys.exit(f"renameat2 {a} {b}: {os.strerror(ctypes.get_errno())}")
            swaps += 1
    print(f"racer: {swaps} swaps")


def contents(ref):
    """sha256 of every regular file below ref."""
    out = set()
    for dirpath, _, files in os.walk(ref):
        for n in files:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out.add(hashlib.sha256(open(p, "rb").read()).hexdigest())
    return out


def allowed(rel):
    parts = rel.split("/")
    if len(parts) == 1:
        return parts[0] in TOP
    # A directory's child may appear under any name the directory took.
    return len(parts) == 2 and parts[0] in TOP and parts[1] in DIRS_INNER


def check_tree(top, ref):
    known = contents(ref)
    bad = []
    files = 0
    for dirpath, dirs, names in os.walk(top):
        for n in dirs + names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            if not allowed(rel):
                bad.append(f"{rel}: not a path of the tree (read from outside it?)")
                continue
            if os.path.isfile(p) and not os.path.islink(p):
                files += 1
                h = hashlib.sha256(open(p, "rb").read()).hexdigest()
                if h not in known:
                    bad.append(f"{rel}: {os.path.getsize(p)} bytes that no file of the tree holds")
    if bad:
        sys.exit("\n".join(bad))
    print(f"check-tree: {files} files, all with the tree's own content")


def manifest_files(path):
    """(path, blake3) of every file record of a dockroot manifest."""
    out = []
    for line in open(path, encoding="utf-8", errors="surrogateescape"):
        if line.startswith("#"):
            continue
        fields = line.rstrip("\n").split(" ")
        if "type=file" in fields:
            h = next(f[len("blake3="):] for f in fields if f.startswith("blake3="))
            out.append((fields[0], h))
        elif fields[0] != "." and not allowed(fields[0]):
            out.append((fields[0], None))
    return out


def check_manifest(m, ref):
    known = {h for _, h in manifest_files(ref)}
    bad = []
    recs = manifest_files(m)
    for rel, h in recs:
        if not allowed(rel):
            bad.append(f"{rel}: not a path of the tree")
        elif h is not None and h not in known:
            bad.append(f"{rel}: blake3 {h} of no file of the tree")
    if bad:
        sys.exit("\n".join(bad))
    print(f"check-manifest: {len(recs)} records, all of the tree's own content")


def stamp(outside):
    for dirpath, dirs, names in os.walk(outside):
        for n in sorted(dirs + names):
            st = os.lstat(os.path.join(dirpath, n))
            print(n, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
    st = os.lstat(outside)
    print(".", st.st_mtime_ns, st.st_ctime_ns)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        make(*args)
    elif cmd == "race":
        race(args[0], int(args[1]))
    elif cmd == "check-tree":
        check_tree(*args)
    elif cmd == "check-manifest":
        check_manifest(*args)
    elif cmd == "stamp":
        stamp(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
