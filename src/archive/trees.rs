//! A backup is a list of trees (issue 20 item 1): containerd's root, the
//! bind sources, the data-root last, each archived under its own prefix
//! with its own manifest (see [`super::layout`]). One mechanism writes them
//! all, in one pass ([`write_trees`]) or in two phases ([`Phase1`] with
//! Docker running, then [`Phase1::finish`] with it stopped): no tree is a
//! special case.

use std::io::Write;

use super::error::{ArchiveError, Result};
use super::phase2::{DeletionList, PhaseStats, complete, phase1, phase2};
use super::records::Spool;
use super::walk::{TreeSource, walk_live};
use super::{ArchiveWriter, Tree};
use crate::sys::Kind;

/// Entries and file bytes (hardlinks counted once) of one tree as archived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TreeCount {
    pub entries: u64,
    pub bytes: u64,
}

/// What an archive of several trees held, tree by tree, in archive order.
#[derive(Debug, Clone, Default)]
pub struct Counts(pub Vec<(Tree, TreeCount)>);

impl Counts {
    pub fn total(&self) -> TreeCount {
        self.0.iter().fold(TreeCount::default(), |a, (_, c)| TreeCount { entries: a.entries + c.entries, bytes: a.bytes + c.bytes })
    }

    pub fn of(&self, tree: Tree) -> TreeCount {
        self.0.iter().find(|(t, _)| *t == tree).map(|(_, c)| *c).unwrap_or_default()
    }
}

/// Checks that `srcs` are in archive order, each once, the data-root last.
fn check_order(srcs: &[TreeSource]) -> Result<()> {
    let ordered = srcs.windows(2).all(|w| w[0].tree < w[1].tree);
    if !ordered || srcs.last().map(|s| s.tree) != Some(Tree::Data) {
        return Err(ArchiveError::Layout { what: "trees must come in archive order, once each, the data-root last".into() });
    }
    Ok(())
}

/// A tree written into an archive in one pass: its spooled manifest and what it held.
pub struct Written {
    pub manifest: std::fs::File,
    pub manifest_len: u64,
    pub entries: u64,
    /// File bytes (hardlinks counted once).
    pub bytes: u64,
}

/// Writes the entries of `src` into `w` and spools their manifest; the
/// caller appends it ([`ArchiveWriter::end_tree`], or
/// [`ArchiveWriter::finish`] for the data-root, whose manifest is last).
pub fn write_tree<W: Write + Send + 'static>(w: &mut ArchiveWriter<W>, src: &TreeSource, advance: &mut dyn FnMut(u64)) -> Result<Written> {
    // Spooled to a temporary file, not kept in memory: it grows with the entry count.
    let mut manifest = Spool::new()?;
    let (mut entries, mut bytes) = (0, 0);
    walk_live(src, false, &mut |walked, e| {
        let rec = w.add_tree_entry(src.tree, e)?;
        manifest.push(&complete(walked, &rec))?;
        let b = if rec.hardlink_to.is_none() && rec.kind == Kind::File { rec.size } else { 0 };
        entries += 1;
        bytes += b;
        advance(b);
        Ok(())
    })?;
    let (manifest, manifest_len) = manifest.into_file()?;
    Ok(Written { manifest, manifest_len, entries, bytes })
}

/// Writes every tree of `srcs` in one pass (each tree's members, then its
/// manifest) and finishes the archive. `advance` gets each entry's file bytes.
pub fn write_trees<W: Write + Send + 'static>(
    mut w: ArchiveWriter<W>,
    srcs: &[TreeSource],
    advance: &mut dyn FnMut(u64),
) -> Result<(W, Counts)> {
    check_order(srcs)?;
    let mut counts = Counts::default();
    let mut data = None;
    for src in srcs {
        let t = write_tree(&mut w, src, advance)?;
        counts.0.push((src.tree, TreeCount { entries: t.entries, bytes: t.bytes }));
        if src.tree == Tree::Data {
            data = Some(t);
        } else {
            w.end_tree(src.tree, t.manifest, t.manifest_len)?;
        }
    }
    let d = data.expect("check_order: the data-root is last");
    Ok((w.finish(d.manifest, d.manifest_len)?, counts))
}

/// Phase 1 of a two-phase archive, done: every tree's members (read while
/// Docker ran) and each tree's records, the baseline of phase 2.
pub struct Phase1 {
    srcs: Vec<TreeSource>,
    baselines: Vec<tempfile::TempPath>,
    pub stats: PhaseStats,
}

/// Phase 1: archives every tree of `srcs` while it may change.
pub fn phase1_trees<W: Write + Send + 'static>(
    w: &mut ArchiveWriter<W>,
    srcs: &[TreeSource],
    advance: &mut dyn FnMut(u64),
) -> Result<Phase1> {
    check_order(srcs)?;
    let (mut stats, mut baselines) = (PhaseStats::default(), Vec::new());
    for src in srcs {
        let (s, baseline) = phase1(w, src, advance)?;
        stats.add(&s);
        baselines.push(baseline);
    }
    Ok(Phase1 { srcs: srcs.to_vec(), baselines, stats })
}

impl Phase1 {
    /// Phase 2 (Docker stopped): the marker, what changed in each tree,
    /// the deletion list, every tree's manifest, and the end of the archive.
    /// Returns the archive's output, phase 2's stats and the stopped trees' counts.
    pub fn finish<W: Write + Send + 'static>(
        self,
        mut w: ArchiveWriter<W>,
        marker: &[u8],
        advance: &mut dyn FnMut(u64),
    ) -> Result<(W, PhaseStats, Counts)> {
        w.begin_phase2(marker)?;
        let mut deleted = DeletionList::new()?;
        let (mut stats, mut counts, mut manifests) = (PhaseStats::default(), Counts::default(), Vec::new());
        for (src, baseline) in self.srcs.iter().zip(&self.baselines) {
            let mut manifest = Spool::new()?;
            let (s, entries, bytes) = phase2(&mut w, src, baseline, &mut manifest, &mut deleted, advance)?;
            stats.add(&s);
            counts.0.push((src.tree, TreeCount { entries, bytes }));
            manifests.push((src.tree, manifest.into_file()?));
        }
        deleted.finish(&mut w)?;
        let (_, (data, len)) = manifests.pop().expect("check_order: the data-root is last");
        for (tree, (file, len)) in manifests {
            w.end_tree(tree, file, len)?;
        }
        Ok((w.finish(data, len)?, stats, counts))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::fd::AsFd;
    use std::path::Path;

    use super::*;
    use crate::archive::{Target, Targets, WriterOptions, extract_trees, open_reader, verify};

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (name, body) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    }

    fn sources(d: &Path) -> Vec<TreeSource> {
        tree(&d.join("ctd"), &[("content/blob", "c")]);
        tree(&d.join("app"), &[("data/a", "1"), ("data/b", "2")]);
        tree(&d.join("etc"), &[("app.conf", "conf"), ("other", "not carried")]);
        tree(&d.join("docker"), &[("image/x", "d")]);
        vec![
            TreeSource::dir(Tree::Containerd, &d.join("ctd")),
            TreeSource::dir(Tree::Bind(0), &d.join("app")),
            TreeSource::file(Tree::Bind(1), &d.join("etc/app.conf")),
            TreeSource::dir(Tree::Data, &d.join("docker")),
        ]
    }

    fn writer() -> ArchiveWriter<Vec<u8>> {
        ArchiveWriter::new(Vec::new(), &WriterOptions { level: None, threads: 0 }, b"{}").unwrap()
    }

    /// Extracts every tree into `out/<n>` and returns their file names.
    fn extract_all(bytes: Vec<u8>, out: &Path) -> BTreeMap<Tree, Vec<String>> {
        let trees = [Tree::Containerd, Tree::Bind(0), Tree::Bind(1), Tree::Data];
        let fds: Vec<_> = trees
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let p = out.join(i.to_string());
                std::fs::create_dir_all(&p).unwrap();
                crate::sys::open_dir_path(&p).unwrap()
            })
            .collect();
        let mut sinks: Vec<Vec<u8>> = vec![Vec::new(); trees.len()];
        let mut targets = Targets { trees: BTreeMap::new(), skip_others: false };
        for ((t, fd), m) in trees.iter().zip(&fds).zip(sinks.iter_mut()) {
            targets.trees.insert(*t, Target { staging: fd.as_fd(), manifest: m });
        }
        let mut r = open_reader(std::io::Cursor::new(bytes)).unwrap();
        extract_trees(&mut r, targets).unwrap();
        trees
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let root = out.join(i.to_string());
                let mut names: Vec<String> = walkdir::WalkDir::new(&root)
                    .min_depth(1)
                    .into_iter()
                    .map(|e| e.unwrap())
                    .filter(|e| e.file_type().is_file())
                    .map(|e| format!("{}={}", e.path().strip_prefix(&root).unwrap().display(), std::fs::read_to_string(e.path()).unwrap()))
                    .collect();
                names.sort();
                (*t, names)
            })
            .collect()
    }

    #[test]
    fn one_pass_over_every_tree_verifies_and_extracts() {
        let d = tempfile::tempdir().unwrap();
        let srcs = sources(d.path());
        let (bytes, counts) = write_trees(writer(), &srcs, &mut |_| {}).unwrap();
        assert_eq!(counts.of(Tree::Bind(1)).entries, 2, "the parent and the one file");
        let rep = verify(open_reader(std::io::Cursor::new(bytes.clone())).unwrap()).unwrap();
        assert!(rep.ok(), "{rep:?}");
        assert_eq!(rep.trees.iter().map(|t| t.tree).collect::<Vec<_>>(), [Tree::Containerd, Tree::Bind(0), Tree::Bind(1)]);
        let got = extract_all(bytes, &d.path().join("out"));
        assert_eq!(got[&Tree::Bind(1)], ["app.conf=conf"]);
        assert_eq!(got[&Tree::Bind(0)], ["data/a=1", "data/b=2"]);
        // Trees out of order are refused before anything is written.
        let mut bad = srcs.clone();
        bad.swap(0, 1);
        assert!(write_trees(writer(), &bad, &mut |_| {}).is_err());
    }

    /// Changes between the phases land in every tree: the archive restores
    /// the trees as they were at phase 2, and verifies.
    #[test]
    fn two_phases_over_every_tree_hold_the_stopped_state() {
        let d = tempfile::tempdir().unwrap();
        let srcs = sources(d.path());
        let mut w = writer();
        let one = phase1_trees(&mut w, &srcs, &mut |_| {}).unwrap();
        std::fs::write(d.path().join("app/data/a"), "changed").unwrap();
        std::fs::remove_file(d.path().join("app/data/b")).unwrap();
        std::fs::write(d.path().join("app/data/c"), "new").unwrap();
        std::fs::write(d.path().join("etc/app.conf"), "conf2").unwrap();
        std::fs::write(d.path().join("etc/other"), "still not carried").unwrap();
        std::fs::remove_file(d.path().join("ctd/content/blob")).unwrap();
        let (bytes, two, counts) = one.finish(w, b"{}", &mut |_| {}).unwrap();
        assert_eq!(two.deleted, 2, "{two:?}");
        assert_eq!(counts.of(Tree::Bind(0)).entries, 4);
        let rep = verify(open_reader(std::io::Cursor::new(bytes.clone())).unwrap()).unwrap();
        assert!(rep.ok(), "{rep:?}");
        assert_eq!(rep.two_phase.map(|t| t.deleted), Some(2));
        let got = extract_all(bytes, &d.path().join("out"));
        assert_eq!(got[&Tree::Bind(0)], ["data/a=changed", "data/c=new"]);
        assert_eq!(got[&Tree::Bind(1)], ["app.conf=conf2"]);
        assert!(got[&Tree::Containerd].is_empty());
        assert_eq!(got[&Tree::Data], ["image/x=d"]);
    }
}
