//! Move's downtime grows with the change, not the size (issue 10): the
//! pre-copy is read back and verified with Docker running, and the verify
//! with Docker stopped reads only what the sync rewrote.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dockroot::audit::{verify_tree_since, write_manifest_since};
use dockroot::manifest::Field;
use dockroot::progress::Silent;

use super::{Daemon, with};
use crate::util::{LoopFs, Scratch, dockroot, json, text};

const BIG: u64 = 48 << 20;

fn write_big(p: &Path, byte: u8) {
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(&vec![byte; BIG as usize]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn plan_move_precopy_verified_before_stop_reads_only_the_delta_while_stopped() {
    let s = Scratch::new("plan-precopy");
    let d = Daemon::start(false);
    let disk = LoopFs::new(&s, "xfs", "3G");
    std::fs::write(s.join("fstab"), "# scratch fstab\n").unwrap();
    let vol = d.root().join("volumes/dockroot-vol/_data");
    write_big(&vol.join("big"), 7);
    let before = d.state();
    let target = disk.mnt.join("docker");
    let t = target.display().to_string();
    let g = d.args(&s);

    let o = dockroot(with(&g, &["--json", "move", "--to", &t, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    let r = &json(&o)["result"];
    eprintln!("{r:#}");
    let p = &r["precopy"];
    let written: Vec<u64> = p["written"].as_array().unwrap().iter().map(|w| w.as_u64().unwrap()).collect();
    assert!(!written.is_empty() && written.len() <= 5, "{written:?}");
    // Passes continue only while the delta shrinks: each but the last wrote less than the one before.
    assert!(written[..written.len() - 1].windows(2).all(|w| w[1] < w[0]), "{written:?}");
    // The big file was read back from the target before the stop ...
    assert!(p["verified_bytes"].as_u64().unwrap() >= BIG, "{p}");
    // ... and not again while Docker was stopped.
    assert!(r["verified_bytes_stopped"].as_u64().unwrap() < BIG, "{r}");
    assert!(r["downtime_seconds"].as_f64().unwrap() > 0.0);
    let journal: serde_json::Value = serde_json::from_slice(&std::fs::read(s.join("state/journal.json")).unwrap()).unwrap();
    assert_eq!(journal["downtime_seconds"], r["downtime_seconds"]);
    assert_eq!(d.state(), before);
    d.check_fixture();
    assert_eq!(std::fs::metadata(target.join("volumes/dockroot-vol/_data/big")).unwrap().size(), BIG);

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
}

/// The trust rule behind the verify with Docker stopped, on a real xfs: a
/// file rewritten with the same size and mtime since the trusted manifest is
/// read again (its ctime moved) and its new content is caught; an untouched
/// file is not read.
#[test]
fn verify_since_rereads_a_file_rewritten_with_same_size_and_mtime() {
    crate::util::require_root();
    let s = Scratch::new("verify-since");
    let disk = LoopFs::new(&s, "xfs", "1G");
    let root = disk.mnt.join("t");
    std::fs::create_dir(&root).unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    write_big(&a, 1);
    write_big(&b, 2);
    let trusted = s.join("t.manifest");
    let scan = write_manifest_since(&root, &trusted, None, 2, &Silent).unwrap();
    assert_eq!(scan.bytes, 2 * BIG);

    let rep = verify_tree_since(&root, &trusted, Some(&trusted), 2, &Silent).unwrap();
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.bytes, 0, "nothing changed: nothing is read");

    // Same size, same mtime, other content: only ctime tells.
    let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
    write_big(&b, 3);
    std::fs::File::options().write(true).open(&b).unwrap().set_modified(mtime).unwrap();
    let rep = verify_tree_since(&root, &trusted, Some(&trusted), 2, &Silent).unwrap();
    assert_eq!(rep.bytes, BIG, "only the rewritten file is read");
    let found: Vec<(&str, Field)> = rep.differences.iter().map(|d| (d.path.as_str(), d.field)).collect();
    assert_eq!(found, [("b", Field::Content)]);
}

/// A delta pass over an unchanged copy writes nothing on the destination:
/// no inode's ctime moves (files, directories, symlinks, device nodes,
/// xattrs, hardlinks of the fidelity tree), so the move's verify while
/// stopped has nothing to read again.
#[test]
fn delta_over_an_unchanged_copy_moves_no_ctime() {
    crate::util::require_root();
    let s = Scratch::new("delta-ctime");
    let disk = LoopFs::new(&s, "xfs", "1G");
    let (src, dst) = (disk.mnt.join("src"), disk.mnt.join("dst"));
    crate::util::fidelity_tree(&src);
    let (m1, m2) = (s.join("m1"), s.join("m2"));
    let copy = |more: &[&str]| {
        let mut a = vec!["--json".to_string(), "copy".into(), src.display().to_string(), dst.display().to_string()];
        a.extend(more.iter().map(|m| m.to_string()));
        let o = dockroot(a);
        assert!(o.status.success(), "{}", text(&o));
        json(&o)
    };
    copy(&["--live", "--manifest", m1.to_str().unwrap()]);
    let ctimes = || {
        let out = crate::util::ok(std::process::Command::new("find").arg(&dst).args(["-printf", "%p %i %C@\n"]));
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    let before = ctimes();
    let v = copy(&["--delete", "--baseline", m1.to_str().unwrap(), "--manifest", m2.to_str().unwrap()]);
    assert_eq!(v["summary"]["rewritten"], 0, "{v}");
    assert_eq!(ctimes(), before);
    crate::util::assert_same_tree(&src, &dst);
}
