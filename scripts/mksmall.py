#!/usr/bin/env python3
"""mksmall.py: builds a tree of N small files laid out as the layers of
container images hold them, for `scripts/bench.sh --small N` and the
scale test.

Usage: mksmall.py DIR N

Layout: DIR/overlay2/layerNNN/usr/lib/pkgNNNN/fNNNN.py, 100 files a
package, 100 packages a layer. Every 25th name is a symlink to the
package's first file, every 50th a hardlink to the file before it; every
package directory and one file in a hundred carry a user xattr, every
layer's usr/lib an overlay opaque xattr (trusted.*, as root). Content is
deterministic text of 100 to 2000 bytes. Standard library only.
"""

import os
import sys

PER_PKG = 100
PKGS = 100


def content(layer, pkg, i):
    line = f"# layer {layer} package {pkg} module {i}: def f{i}(x): return x * {i}\n"
    n = 100 + (layer * 7919 + pkg * 104729 + i * 31) % 1900
    return (line * (n // len(line) + 1))[:n].encode()


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    root, n = argv[1], int(argv[2])
    made = 0
    layer = 0
    while made < n:
        lib = os.path.join(root, "overlay2", f"layer{layer:03d}", "usr", "lib")
        os.makedirs(lib)
        try:
            os.setxattr(lib, "trusted.overlay.opaque", b"y")
        except OSError:
            pass
        for pkg in range(PKGS):
            if made >= n:
                break
            d = os.path.join(lib, f"pkg{pkg:04d}")
            os.mkdir(d)
            os.setxattr(d, "user.bench.pkg", f"{layer}/{pkg}".encode())
            for i in range(min(PER_PKG, n - made)):
                p = os.path.join(d, f"f{i:04d}.py")
                if i % 25 == 24:
                    os.symlink("f0000.py", p)
                elif i % 50 == 10:
                    os.link(os.path.join(d, f"f{i - 1:04d}.py"), p)
                else:
                    with open(p, "wb") as f:
                        f.write(content(layer, pkg, i))
                    if i % 100 == 7:
                        os.setxattr(p, "user.bench.origin", f"sha256:{layer:064d}".encode())
                made += 1
        layer += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
