//! The fidelity tree copied onto ext4, xfs and btrfs, checked by the
//! independent comparer and by dockroot's own verify.

use std::path::Path;
use std::process::Command;

use filetime::FileTime;

use crate::util::*;

/// Builds the fidelity tree on `src_fs`, copies it onto `dst_fs` with a
/// manifest and --verify, then compares.
fn copy_between(src_fs: &str, dst_fs: &str) {
    require_root();
    let s = Scratch::new(&format!("fid-{src_fs}-{dst_fs}"));
    let src = LoopFs::new(&s, src_fs, "3G");
    let dst = LoopFs::new(&s, dst_fs, "3G");
    let (tree, copy, m) = (src.mnt.join("tree"), dst.mnt.join("copy"), s.join("m"));
    fidelity_tree(&tree);
    let out = dockroot(["copy".as_ref(), tree.as_os_str(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str(), "--verify".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_tree(&tree, &copy);
    let out = dockroot(["verify".as_ref(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    // No XFS ACL aliases may leak onto the target as ordinary xattrs.
    let leaked = run(Command::new("bash")
        .arg("-c")
        .arg(format!("getfattr -R -h -d -m '^trusted.SGI' '{}' 2>/dev/null | grep -c SGI_ACL || true", copy.display())));
    if dst_fs != "xfs" {
        assert_eq!(String::from_utf8_lossy(&leaked.stdout).trim(), "0", "XFS ACL aliases leaked onto {dst_fs}");
    }
}

#[test]
fn fidelity_ext4_to_ext4() {
    copy_between("ext4", "ext4");
}

#[test]
fn fidelity_ext4_to_xfs() {
    copy_between("ext4", "xfs");
}

#[test]
fn fidelity_ext4_to_btrfs() {
    copy_between("ext4", "btrfs");
}

#[test]
fn fidelity_xfs_to_ext4_drops_sgi_acl_aliases() {
    copy_between("xfs", "ext4");
}

#[test]
fn sparse_file_stays_sparse_and_sparsify_punches_zero_blocks() {
    require_root();
    let s = Scratch::new("sparse");
    let src = s.join("src");
    std::fs::create_dir(&src).unwrap();
    // 1 GiB with 3 MiB of data (one piece straddles a 16 MiB piece
    // boundary), 40 MiB of written zeros, and 33 MiB of data: all three are
    // copied and hashed in pieces by several workers.
    sh(&format!(
        "cd {d} && truncate -s 1G sparse && for o in 0 400 900; do dd if=/dev/urandom of=sparse bs=1M count=1 seek=$o conv=notrunc status=none; done \
         && dd if=/dev/urandom of=sparse bs=1000 count=50 seek=16777 conv=notrunc status=none \
         && dd if=/dev/zero of=zeros bs=1M count=40 status=none && head -c 34600000 /dev/urandom > data",
        d = src.display()
    ));
    let plain = s.join("plain");
    let m = s.join("m");
    let out = dockroot(["copy".as_ref(), src.as_os_str(), plain.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_tree(&src, &plain);
    // The pieces' hashes merge into the plain sequential BLAKE3 of the file.
    let manifest = std::fs::read_to_string(&m).unwrap();
    for name in ["sparse", "zeros", "data"] {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(src.join(name)).unwrap()).unwrap();
        let want = format!("blake3={}", h.finalize().to_hex());
        assert!(manifest.lines().any(|l| l.starts_with(&format!("{name} ")) && l.contains(&want)), "{name}: {want} not in\n{manifest}");
    }
    let blocks = |p: &std::path::Path| std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(p).unwrap()) * 512;
    assert!(blocks(&plain.join("sparse")) < 8 << 20, "holes were filled: {}", blocks(&plain.join("sparse")));
    assert!(blocks(&plain.join("zeros")) >= 40 << 20, "written zeros must stay allocated by default");

    let sp = s.join("sparsified");
    let out = dockroot(["--json".as_ref(), "copy".as_ref(), src.as_os_str(), sp.as_os_str(), "--sparsify".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["summary"]["sparsified"], 40 << 20);
    assert!(blocks(&sp.join("zeros")) < 64 << 10);
    assert_eq!(std::fs::read(sp.join("zeros")).unwrap(), vec![0u8; 40 << 20]);
    assert_eq!(std::fs::read(sp.join("data")).unwrap(), std::fs::read(src.join("data")).unwrap());
}

/// (atime, mtime) of `p` itself (a symlink is not followed).
fn times(p: &Path) -> (FileTime, FileTime) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (FileTime::from_last_access_time(&m), FileTime::from_last_modification_time(&m))
}

/// Distinct atimes and mtimes with odd nanoseconds survive a copy onto each
/// filesystem, on a file, a symlink, directories and the root.
/// mkfidelity.py sets atime = mtime and treecmp.py compares mtimes only;
/// this pins atimes too. The atimes are older than the mtimes, so with
/// relatime a read of the source would move them: the copy must take the
/// times it applies from before it reads.
#[test]
fn copy_keeps_ns_atimes_and_mtimes() {
    require_root();
    let s = Scratch::new("times");
    let src_fs = LoopFs::new(&s, "ext4", "256M");
    let src = src_fs.mnt.join("tree");
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::write(src.join("dir/file"), b"some bytes").unwrap();
    std::os::unix::fs::symlink("file", src.join("dir/link")).unwrap();
    // Children before parents: setting a child's times does not move its
    // parent's, but creating it did.
    let want: Vec<(&str, FileTime, FileTime)> = ["dir/file", "dir/link", "dir/sub", "dir", ""]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let i = i as i64;
            (
                *p,
                FileTime::from_unix_time(1_500_000_000 + i, 100_000_001 + 2 * i as u32),
                FileTime::from_unix_time(1_600_000_000 + i, 999_999_999 - 2 * i as u32),
            )
        })
        .collect();
    for dst_fs in ["ext4", "xfs", "btrfs"] {
        // The previous copy read the source directories and the symlink,
        // which moved their atimes (only files are read with O_NOATIME).
        for (p, atime, mtime) in &want {
            filetime::set_symlink_file_times(src.join(p), *atime, *mtime).unwrap();
        }
        let dst = LoopFs::new(&s, dst_fs, "512M");
        let copy = dst.mnt.join("copy");
        // No --verify: reading the copy's directories would move their atimes.
        let out = dockroot(["copy".as_ref(), src.as_os_str(), copy.as_os_str()]);
        assert!(out.status.success(), "{}", text(&out));
        for (p, atime, mtime) in &want {
            assert_eq!(times(&copy.join(p)), (*atime, *mtime), "{dst_fs}: {p:?} (atime, mtime)");
        }
    }
}

/// The btrfs storage driver keeps every layer in a subvolume of its own:
/// a subvolume has its own `st_dev` but is no mount, so copy, manifest and
/// backup must walk into it (they once skipped it as "another filesystem",
/// leaving every layer out), while a real mount below the tree is still skipped.
#[test]
fn btrfs_subvolumes_are_walked_and_mounts_are_not() {
    require_root();
    let s = Scratch::new("subvol");
    let src = LoopFs::new(&s, "btrfs", "1G");
    let tree = src.mnt.join("tree");
    std::fs::create_dir_all(tree.join("btrfs/subvolumes")).unwrap();
    let layer = tree.join("btrfs/subvolumes/layer1");
    ok(Command::new("btrfs").args(["-q", "subvolume", "create"]).arg(&layer));
    std::fs::create_dir(layer.join("etc")).unwrap();
    std::fs::write(layer.join("etc/os-release"), b"layer content\n").unwrap();
    let inner = tree.join("mnt");
    std::fs::create_dir(&inner).unwrap();
    ok(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&inner));
    std::fs::write(inner.join("not-ours"), b"x").unwrap();

    let (copy, m, archive) = (s.join("copy"), s.join("m"), s.join("a.tar.zst"));
    let out = dockroot(["copy".as_ref(), tree.as_os_str(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    let _ = Command::new("umount").arg(&inner).status();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(copy.join("btrfs/subvolumes/layer1/etc/os-release")).unwrap(), b"layer content\n");
    assert!(copy.join("mnt").is_dir() && !copy.join("mnt/not-ours").exists(), "the tmpfs below the tree was copied");
    let listed = std::fs::read_to_string(&m).unwrap();
    assert!(listed.contains("btrfs/subvolumes/layer1/etc/os-release"), "manifest lacks the subvolume's file:\n{listed}");

    let out = dockroot([
        "backup".as_ref(),
        "--service".as_ref(),
        "none".as_ref(),
        "--no-config".as_ref(),
        "--data-root".as_ref(),
        tree.as_os_str(),
        "-o".as_ref(),
        archive.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = run(Command::new("tar").arg("--zstd").arg("-tf").arg(&archive));
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("data/btrfs/subvolumes/layer1/etc/os-release"),
        "archive lacks the subvolume"
    );
}
