#!/usr/bin/env bash
# test.sh: the one command that runs every test.
#
# Usage: scripts/test.sh [ARGS...]    ARGS go to cargo nextest run (or cargo test)
#
# 1. Runs setup.sh if packages or the release binary are missing.
# 2. Builds the fixture caches in $DOCKROOT_FIXTURES (default
#    /var/tmp/dockroot-fixtures; reused across runs, flock-guarded):
#    the debootstrap rootfs for systemd-host.sh (~2.5 min the first time)
#    and its rootless variant (apt in a chroot and one boot, ~50 s),
#    the Debian sid one for sid-host.sh (docker.io 28, containerd 2)
#    and the busybox base-image tarball.
# 3. Runs the tools' own selftest, then the Rust tests, which read:
#      DOCKROOT_FIXTURES  the cache directory above
#      DOCKROOT_BIN       absolute path of target/release/dockroot (built with test-hooks)
#      DOCKROOT_SCRIPTS   absolute path of scripts/lib (loopfs, dockerd, ...)
#      DOCKROOT_TOOLS     absolute path of tests/tools (treecmp.py, mkfidelity.py)
# 4. Checks that the run left no process and no mount behind
#    (scripts/lib/leaks.sh: only this run's, found by DOCKROOT_RUN_ID and the
#    run's ledger of fixture directories, never by global lists); a leak
#    fails the run.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

[[ -r $HOME/.cargo/env ]] && . "$HOME/.cargo/env"
if ! bash scripts/setup.sh --check || [[ ! -x target/release/dockroot ]] || ! command -v cargo >/dev/null; then
    bash scripts/setup.sh
    [[ -r $HOME/.cargo/env ]] && . "$HOME/.cargo/env"
fi
# Cheap when up to date; never test a stale binary. The tests inject faults
# (DOCKROOT_TEST_CRASH_AT/FAIL_AT), which only a test-hooks build obeys; the
# same features go to nextest below, so it does not rebuild the binary without
# them. A plain `cargo build --release` (package.sh) rebuilds it without.
features=(--features test-hooks)
# The packaging tests must ship a binary without the hooks: one is built and
# kept aside first, for scripts/package.sh (DOCKROOT_PKG_BIN).
cargo build --release
mkdir -p target/pkg-bin
cp target/release/dockroot target/pkg-bin/dockroot
export DOCKROOT_PKG_BIN=$root/target/pkg-bin/dockroot
cargo build --release "${features[@]}"

export DOCKROOT_FIXTURES=${DOCKROOT_FIXTURES:-/var/tmp/dockroot-fixtures}
export DOCKROOT_BIN=$root/target/release/dockroot
export DOCKROOT_SCRIPTS=$root/scripts/lib
export DOCKROOT_TOOLS=$root/tests/tools
mkdir -p "$DOCKROOT_FIXTURES"

bash scripts/lib/systemd-host.sh build >/dev/null
bash scripts/lib/systemd-host.sh build-rootless >/dev/null
bash scripts/lib/sid-host.sh build >/dev/null
if [[ ! -e $DOCKROOT_FIXTURES/busybox-base.tar ]]; then
    # Write-then-rename so a concurrent run never sees half a tarball.
    bash scripts/lib/docker-fixture.sh base-tar "$DOCKROOT_FIXTURES/busybox-base.tar.$$"
    mv "$DOCKROOT_FIXTURES/busybox-base.tar.$$" "$DOCKROOT_FIXTURES/busybox-base.tar"
fi

python3 tests/tools/treecmp.py --selftest

# Everything the tests start inherits these (see scripts/lib/leaks.sh).
export DOCKROOT_RUN_ID=run-$$-$(date +%s%N)
DOCKROOT_LEDGER=$(mktemp /tmp/dockroot-ledger.XXXXXX)
export DOCKROOT_LEDGER
trap 'rm -f "$DOCKROOT_LEDGER"' EXIT

rc=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release "${features[@]}" --no-fail-fast "$@" || rc=$?
else
    cargo test --release "${features[@]}" --no-fail-fast "$@" || rc=$?
fi
if ! bash scripts/lib/leaks.sh check $$; then
    ((rc)) || rc=1
fi
exit "$rc"
