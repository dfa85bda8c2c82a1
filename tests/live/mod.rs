//! Live two-phase backups (issue 10): phase 1 while the tree changes, phase 2
//! on the stopped tree, restored by dockroot and by GNU tar plus the one
//! command that applies the deletion list (docs/archive.md).

mod docker;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use crate::util::*;
use dockroot::archive::layout::Tree;
use dockroot::archive::phase2::{DeletionList, phase1, phase2};
use dockroot::archive::records::Spool;
use dockroot::archive::{self, ArchiveWriter, TreeSource, WriterOptions};

/// The command of docs/archive.md that applies the deletion list in DIR, after GNU tar
/// extracted the archive there.
pub const APPLY_DELETIONS: &str = r#"tar --zstd -xOf "$A" .dockroot/deleted | xargs -0r sh -c 'for p; do d=${p%/*}; touch -r "$d" .dockroot/t && rm -rf -- "$p" && touch -r .dockroot/t "$d"; done' sh"#;

/// The restore by hand of docs/archive.md into `dir`: GNU tar, the deletion list, and
/// for each directory that became a non-directory between the phases (GNU tar
/// reports `Cannot open: File exists`, the list emptied it) that name and its
/// parent extracted again.
pub fn gnu_restore(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let tar = "tar --zstd --xattrs --xattrs-include='*' --acls -xpf \"$A\"";
    let run =
        |script: &str| Command::new("bash").arg("-c").arg(format!("cd \"$D\"; {script}")).env("A", archive).env("D", dir).output().unwrap();
    let o = run(tar);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut retyped = Vec::new();
    for l in err.lines() {
        if let Some(name) = l.strip_prefix("tar: ").and_then(|l| l.strip_suffix(": Cannot open: File exists")) {
            retyped.push(name.to_owned());
        } else {
            let ok = l.contains("unknown extended header keyword 'DOCKROOT.type'") || l.contains("Exiting with failure status");
            assert!(ok, "GNU tar: {l}");
        }
    }
    let o = run(APPLY_DELETIONS);
    assert!(o.status.success() && o.stderr.is_empty(), "the deletion command: {}", text(&o));
    for name in retyped {
        let parent = name.rsplit_once('/').map(|p| p.0).unwrap_or(".");
        let o = run(&format!("{tar} --no-recursion '{name}' '{parent}'"));
        assert!(o.status.success(), "extracting {name} again: {}", text(&o));
    }
}
fn bash(script: &str, root: &Path, outside: &Path) {
    let o = Command::new("bash").arg("-c").arg(format!("set -e; cd \"$R\"; {script}")).env("R", root).env("O", outside).output().unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o));
}

/// Every case phase 2 must get right, before and after.
const BEFORE: &str = r#"
mkdir -p keep/sub edit grp dr/sub/deep ds gone/a/b sym2dir
echo same > keep/sub/file; echo same > keep/file
head -c 100000 /dev/urandom > edit/inplace; head -c 100000 /dev/urandom > edit/shrink; echo small > edit/grow
echo x > edit/xattr; echo x > edit/mode; echo x > edit/touch
truncate -s 20M edit/sparse; echo tail >> edit/sparse
echo g > grp/h1; ln grp/h1 grp/h2
echo g > grp/s1; ln grp/s1 grp/s2
echo g > grp/k1; ln grp/k1 grp/k2
echo g > grp/c1; ln grp/c1 grp/c2
echo d > dr/sub/deep/f; echo d > dr/x
echo f > fd
echo d > ds/victim
echo a > gone/a/b/f; echo file > gone-file
echo $'odd\nname' > $'edit/new\nline'; echo dash > edit/-rf; echo bs > 'edit/back\slash'; echo hi > "$(printf 'edit/bin\xff')"
ln -s target sym2dir/s
mkfifo edit/fifo
echo r > zz-race
"#;

const CHANGES: &str = r#"
head -c 100000 /dev/urandom | dd of=edit/inplace conv=notrunc status=none
truncate -s 10 edit/shrink
# Grown in place without appending (xfs would keep speculative preallocation past the end).
truncate -s 300006 edit/grow; head -c 300000 /dev/urandom | dd of=edit/grow seek=6 oflag=seek_bytes conv=notrunc status=none
setfattr -n user.live -v changed edit/xattr; chmod 600 edit/mode; touch -d '2001-02-03 04:05:06.789' edit/touch
dd if=/dev/urandom of=edit/sparse bs=4096 count=1 seek=100 conv=notrunc status=none
ln grp/h1 grp/h3
cp -p grp/s2 grp/s2.new && mv grp/s2.new grp/s2
rm grp/k1
echo changed >> grp/c2
rm -r dr; echo now-a-file > dr
rm fd; mkdir -p fd/inner; echo new > fd/inner/f
rm -r ds; ln -s "$O" ds
rm -r sym2dir/s; mkdir sym2dir/s; echo in > sym2dir/s/f
rm -r gone gone-file
rm $'edit/new\nline' edit/-rf 'edit/back\slash' "$(printf 'edit/bin\xff')"
echo $'new\nodd' > $'edit/other\nline'
rm edit/fifo; echo was-fifo > edit/fifo
mkdir -p brand/new; echo n > brand/new/f; truncate -s 5M brand/sparse
"#;

/// A meta.json for an archive of `root`.
fn meta(root: &Path) -> Vec<u8> {
    let meta = dockroot::plan::backup::meta::BackupMeta {
        format: 1,
        tool: "dockroot".into(),
        tool_version: "0".into(),
        engine_version: None,
        storage_driver: None,
        data_root: root.to_path_buf(),
        hostname: "h".into(),
        created: "20260101T000000Z".into(),
        entries: 0,
        bytes: 0,
        allocated: None,
        docker: None,
        engine: None,
        snapshot: None,
        two_phase: true,
        rootless: None,
        containerd_tree: None,
        userns: None,
        volumes: None,
        binds: vec![],
        binds_skipped: vec![],
    };
    serde_json::to_vec(&meta).unwrap()
}

/// Writes a two-phase archive of `root`: phase 1, then `between` (the tree
/// changes), then phase 2. Returns phase 2's entries and deletions.
fn two_phase_archive(root: &Path, out: &Path, between: &mut dyn FnMut(), during: &mut dyn FnMut()) -> (u64, u64) {
    let mut w = ArchiveWriter::new(File::create(out).unwrap(), &WriterOptions::default(), &meta(root)).unwrap();
    let mut first = true;
    let src = TreeSource::dir(Tree::Data, root);
    let (one, baseline) = phase1(&mut w, &src, &mut |_| {
        if std::mem::take(&mut first) {
            during();
        }
    })
    .unwrap();
    between();
    w.begin_phase2(serde_json::json!({ "phase1": one }).to_string().as_bytes()).unwrap();
    let mut manifest = Spool::new().unwrap();
    let mut deleted = DeletionList::new().unwrap();
    let (two, _, _) = phase2(&mut w, &src, &baseline, &mut manifest, &mut deleted, &mut |_| {}).unwrap();
    deleted.finish(&mut w).unwrap();
    let (m, len) = manifest.into_file().unwrap();
    w.finish(m, len).unwrap();
    eprintln!("phase 1: {one:?}; phase 2: {two:?}");
    (two.entries, two.deleted)
}

/// Extracts `archive` with dockroot's extractor into `dir` and checks the
/// tree against the manifest it streamed out.
pub fn dockroot_restore(archive: &Path, dir: &Path) -> archive::Extracted {
    std::fs::create_dir_all(dir).unwrap();
    let fd = dockroot::sys::open_dir_path(dir).unwrap();
    let m = dir.with_extension("manifest");
    let mut out = File::create(&m).unwrap();
    let ex = archive::extract(&mut archive::open(archive).unwrap(), fd.as_fd(), &mut out).unwrap();
    let o = dockroot(["verify".as_ref(), dir.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert!(o.status.success(), "the extracted tree differs from the final manifest: {}", text(&o));
    ex
}

/// Phase 1 while the tree changes, every kind of change between the phases:
/// dockroot's extractor and GNU tar (plus the deletion command) both give
/// the stopped tree, and `verify FILE` passes.
fn restores_the_stopped_tree_on(fstype: &str) {
    require_root();
    let s = Scratch::new(&format!("live-{fstype}"));
    let fs = LoopFs::new(&s, fstype, "1G");
    let (root, outside) = (fs.mnt.join("root"), s.join("outside"));
    std::fs::create_dir_all(&root).unwrap();
    // A symlink of the stopped tree points here: no deletion may go through it.
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "canary").unwrap();
    bash(BEFORE, &root, &outside);
    let a = s.join("a.tar.zst");
    let (entries, deleted) = two_phase_archive(
        &root,
        &a,
        &mut || bash(CHANGES, &root, &outside),
        // A file rewritten while phase 1 runs (raced, or read whole if not yet opened).
        &mut || bash("echo rewritten-during-phase-1 > zz-race", &root, &outside),
    );
    // Deleted: gone/, gone-file, grp/k1, the four odd names and the children of
    // dr/ and ds/ (directories that became a file and a symlink), not deeper.
    assert!(entries > 20 && deleted == 10, "phase 2: {entries} entries, {deleted} deleted");

    let o = dockroot(["verify".as_ref(), a.as_os_str()]);
    assert!(o.status.success(), "verify FILE: {}", text(&o));
    let j = json(&dockroot(["--json".as_ref(), "verify".as_ref(), a.as_os_str()]));
    assert_eq!(j["ok"], true, "{j}");

    let ex = dockroot_restore(&a, &s.join("dockroot"));
    assert_eq!((ex.deleted, ex.phase2_entries), (deleted, entries));
    assert_same_tree(&root, &s.join("dockroot"));

    // Pieces (`extract --path`): phase 2's replacements and the deletions
    // below each, one only phase 2 has; one the deletion list removed is
    // not in the archive.
    for piece in ["edit", "grp", "sym2dir", "keep", "brand"] {
        let out = s.join(&format!("piece-{piece}"));
        let o = dockroot(["extract".as_ref(), a.as_os_str(), "--path".as_ref(), piece.as_ref(), "-o".as_ref(), out.as_os_str()]);
        assert!(o.status.success(), "extract --path {piece}: {}", text(&o));
        assert_same_tree(&root.join(piece), &out);
    }
    let o =
        dockroot(["extract".as_ref(), a.as_os_str(), "--path".as_ref(), "gone".as_ref(), "-o".as_ref(), s.join("piece-gone").as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "a piece deleted before phase 2: {}", text(&o));

    gnu_restore(&a, &s.join("gnu"));
    assert_same_tree(&root, &s.join("gnu/data"));
    assert_eq!(std::fs::read_to_string(outside.join("victim")).unwrap(), "canary");
}

#[test]
fn two_phase_archive_restores_the_stopped_tree_on_ext4() {
    restores_the_stopped_tree_on("ext4");
}

#[test]
fn two_phase_archive_restores_the_stopped_tree_on_xfs() {
    restores_the_stopped_tree_on("xfs");
}

#[test]
fn two_phase_archive_restores_the_stopped_tree_on_btrfs() {
    restores_the_stopped_tree_on("btrfs");
}

/// A phase-2 member that replaces a whole tree, and deletions, must never
/// follow a symlink phase 1 left at a parent's name: the extractor refuses
/// the member rather than write through it.
#[test]
fn phase_two_never_writes_through_a_phase_one_symlink() {
    require_root();
    let s = Scratch::new("live-symlink");
    let (root, outside) = (s.join("root"), s.join("outside"));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    bash("ln -s \"$O\" link; echo x > f", &root, &outside);
    let a = s.join("a.tar.zst");
    // Phase 2 of a hostile archive: `link` stays the phase-1 symlink, yet a member goes below it.
    let mut w = ArchiveWriter::new(File::create(&a).unwrap(), &WriterOptions::default(), &meta(&root)).unwrap();
    let (_, _baseline) = phase1(&mut w, &TreeSource::dir(Tree::Data, &root), &mut |_| {}).unwrap();
    w.begin_phase2(b"{}").unwrap();
    bash("rm link; mkdir link; echo evil > link/planted", &root, &outside);
    let mut e = Vec::new();
    archive::walk(&root, &mut |_, x| {
        if x.rel_path.starts_with(b"link/") {
            e.push(w.add_entry(x)?);
        }
        Ok(())
    })
    .unwrap();
    let mut m = Spool::new().unwrap();
    m.push(&dockroot::manifest::Record::hardlink(b"x".to_vec(), b"y".to_vec())).unwrap();
    // The writer keeps the layout: phase 2 ends with a (here empty) deletion list.
    w.add_deleted(File::create(s.join("deleted")).unwrap(), 0).unwrap();
    let (m, len) = m.into_file().unwrap();
    w.finish(m, len).unwrap();
    std::fs::create_dir_all(s.join("x")).unwrap();
    let fd = dockroot::sys::open_dir_path(&s.join("x")).unwrap();
    let err = archive::extract(&mut archive::open(&a).unwrap(), fd.as_fd(), &mut std::io::sink()).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(!outside.join("planted").exists(), "phase 2 wrote through the symlink");
}

/// Two-phase covers the data-root only, after containerd's tree and its
/// manifest (branch store's layout): `verify FILE` checks both trees,
/// `inspect` reads the phases, and `extract_trees` gives back containerd's
/// tree as archived and the data-root as phase 2 and the deletions left it.
#[test]
fn two_phase_data_root_after_a_containerd_tree_verifies_and_extracts() {
    use dockroot::archive::trees::write_tree;
    require_root();
    let s = Scratch::new("live-containerd");
    let (root, ctd, outside) = (s.join("root"), s.join("ctd"), s.join("outside"));
    for d in [&root, &ctd, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    bash(
        "mkdir -p io.containerd.content.v1.content/blobs; echo blob > io.containerd.content.v1.content/blobs/b; ln io.containerd.content.v1.content/blobs/b io.containerd.content.v1.content/blobs/b2",
        &ctd,
        &outside,
    );
    bash("mkdir -p a/b gone; echo one > a/b/f; echo keep > k; echo bye > gone/x", &root, &outside);
    let a = s.join("a.tar.zst");
    let mut w = ArchiveWriter::new(File::create(&a).unwrap(), &WriterOptions::default(), &meta(&root)).unwrap();
    let c = write_tree(&mut w, &TreeSource::dir(Tree::Containerd, &ctd), &mut |_| {}).unwrap();
    w.end_tree(Tree::Containerd, c.manifest, c.manifest_len).unwrap();
    let src = TreeSource::dir(Tree::Data, &root);
    let (one, baseline) = phase1(&mut w, &src, &mut |_| {}).unwrap();
    bash("echo two > a/b/f; rm -r gone; echo new > a/n", &root, &outside);
    w.begin_phase2(serde_json::json!({ "phase1": one }).to_string().as_bytes()).unwrap();
    let mut manifest = Spool::new().unwrap();
    let mut deleted = DeletionList::new().unwrap();
    let (two, _, _) = phase2(&mut w, &src, &baseline, &mut manifest, &mut deleted, &mut |_| {}).unwrap();
    deleted.finish(&mut w).unwrap();
    let (m, len) = manifest.into_file().unwrap();
    w.finish(m, len).unwrap();
    // `gone/` only, not the names below it.
    assert_eq!(two.deleted, 1, "{two:?}");

    let rep = archive::verify(archive::open(&a).unwrap()).unwrap();
    assert!(rep.ok(), "{:?}", rep.report.differences);
    assert_eq!(rep.containerd().map(|t| t.entries), Some(c.entries));
    assert_eq!(rep.two_phase.map(|t| (t.phase2_members, t.deleted)), Some((two.entries, two.deleted)));
    let o = dockroot(["verify".as_ref(), a.as_os_str()]);
    assert!(o.status.success(), "verify FILE: {}", text(&o));
    let o = dockroot(["inspect".as_ref(), a.as_os_str()]);
    assert!(o.status.success(), "inspect: {}", text(&o));

    let (od, oc) = (s.join("out-data"), s.join("out-ctd"));
    std::fs::create_dir_all(&od).unwrap();
    std::fs::create_dir_all(&oc).unwrap();
    let (fd, fc) = (dockroot::sys::open_dir_path(&od).unwrap(), dockroot::sys::open_dir_path(&oc).unwrap());
    let (mut md, mut mc) = (Vec::new(), Vec::new());
    let targets = archive::Targets {
        trees: [
            (Tree::Data, archive::Target { staging: fd.as_fd(), manifest: &mut md }),
            (Tree::Containerd, archive::Target { staging: fc.as_fd(), manifest: &mut mc }),
        ]
        .into(),
        skip_others: false,
    };
    let ex = archive::extract_trees(&mut archive::open(&a).unwrap(), targets).unwrap();
    assert_eq!((ex.containerd_entries(), ex.phase2_entries, ex.deleted), (c.entries, two.entries, two.deleted));
    assert_same_tree(&root, &od);
    assert_same_tree(&ctd, &oc);
}
