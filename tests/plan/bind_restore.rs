//! Restore onto a data-root that is a mount point (issue 8), with a private
//! dockerd: after `move --method bind` (killed at every rename, mkdir, mount
//! and umount2 of the restore, then rolled back; a failed health check is
//! undone), and with a whole filesystem mounted at the data-root (contents
//! swapped, mount kept; killed at every point too).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::crash::Harness;
use super::{Daemon, with};
use crate::util::{LoopFs, Scratch, dockroot, json, ok, run, script, text};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn crash_points_restore_onto_a_bind_mounted_data_root() {
    let (s, d, disk) = super::faults::fixture("crash-bindrs", false);
    let g = d.args(&s);
    let a = s.join("a.tar.zst").display().to_string();
    let root = d.root().display().to_string();
    let o = dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config", "--data-root", &root]));
    assert!(o.status.success(), "{}", text(&o));
    let src = disk.mnt.join("docker");
    let o = dockroot(with(&g, &["-q", "move", "--method", "bind", "--to", &src.display().to_string(), "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    let o = dockroot(with(&g, &["-q", "finalize", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    // finalize keeps the move's fstab backup; the crash checks look for such names.
    for n in names(s.path()).iter().filter(|n| n.contains("dockroot-bak")) {
        std::fs::remove_file(s.join(n)).unwrap();
    }
    // Old data differs from the archive's, so a half-done swap cannot pass.
    d.docker(&["volume", "create", "only-in-old-data"]);

    // Given the bind's source as the data-root, the plan is the same bind case.
    let o = dockroot(with(&g, &["--json", "restore", &a, "--dry-run", "--force", "--yes", "--data-root", &src.display().to_string()]));
    assert!(o.status.success(), "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["place"]["case"], "bind", "{j}");
    assert_eq!(j["place"]["data_root"], root, "{j}");
    assert_eq!(j["place"]["source"], src.display().to_string(), "{j}");
    assert!(j["warnings"][0].as_str().unwrap().contains("is bind-mounted on"), "{j}");

    let mut g2 = g.clone();
    g2.extend(["--data-root".into(), root.clone()]);
    let h = Harness { d: &d, s: &s, g: g2, bound: Some(src.clone()), supervised: false };
    let n = h.every_point("restore onto a bind", &["-q", "restore", &a, "--yes", "--force"], &|| {});
    assert!(n > 10, "{n}");
    // A failed health check undoes it all: old tree, old bind.
    let o =
        run(Command::new(crate::util::bin()).args(with(&h.g, &["restore", &a, "--yes", "--force"])).env("DOCKROOT_TEST_FAIL_AT", "health"));
    assert_eq!(o.status.code(), Some(3), "a failed health check must undo the restore: {}", text(&o));
    assert!(text(&d.docker(&["volume", "ls", "-q"])).contains("only-in-old-data"));
    let (x, y) = (std::fs::metadata(d.root()).unwrap(), std::fs::metadata(&src).unwrap());
    assert_eq!((x.dev(), x.ino()), (y.dev(), y.ino()), "the data-root shows the old source again");
    assert_eq!(names(&disk.mnt), ["docker"]);
    // And once to the end: the archive's data shows through the bind.
    let o = dockroot(with(&h.g, &["restore", &a, "--yes", "--force"]));
    assert!(o.status.success(), "{}", text(&o));
    let vols = text(&d.docker(&["volume", "ls", "-q"]));
    assert!(!vols.contains("only-in-old-data"), "{vols}");
    d.check_fixture();
    assert!(names(&disk.mnt).iter().any(|n| n.starts_with("docker.dockroot-old-")), "{:?}", names(&disk.mnt));
}

#[test]
fn plan_restore_onto_a_whole_filesystem_at_the_data_root() {
    let s = Scratch::new("fs-restore");
    let d = Daemon::start(false);
    let g = d.args(&s);
    std::fs::write(s.join("fstab"), "# scratch fstab\n").unwrap();
    let root = d.root().display().to_string();
    let a = s.join("a.tar.zst").display().to_string();
    let o = dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config", "--data-root", &root]));
    assert!(o.status.success(), "{}", text(&o));
    let before = d.state();

    // A dedicated disk at the data-root: dockerd starts on it empty.
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&d.dir));
    std::fs::rename(d.root(), d.dir.join("root.orig")).unwrap();
    std::fs::create_dir(d.root()).unwrap();
    let disk = LoopFs::new(&s, "ext4", "2G");
    let dev = String::from_utf8(ok(Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(&disk.mnt)).stdout).unwrap();
    ok(Command::new("mount").arg(dev.trim()).arg(d.root()));
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("start").arg(&d.dir));
    d.docker(&["volume", "create", "only-on-disk"]);
    let empty = d.state();

    let o = dockroot(with(&g, &["--json", "restore", &a, "--dry-run", "--force", "--yes", "--data-root", &root]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json(&o)["place"]["case"], "filesystem", "{}", text(&o));
    let o = dockroot(with(&g, &["--json", "restore", &a, "--force", "--yes", "--data-root", &root]));
    assert!(o.status.success(), "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["summary"]["place"]["fstype"], "ext4", "{j}");
    let old = std::path::PathBuf::from(j["summary"]["old"].as_str().unwrap());
    assert_eq!(old.parent(), Some(d.root().as_path()), "the old entries stay on the disk: {j}");
    assert_eq!(d.state(), before);
    d.check_fixture();
    // The mount is untouched; the disk's old entries are kept aside.
    let fs = String::from_utf8(ok(Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(d.root())).stdout).unwrap();
    assert_eq!(fs.trim(), dev.trim());
    assert!(old.join("lost+found").is_dir() && old.join("volumes/only-on-disk").is_dir());

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.state(), empty);
    let left: Vec<String> = names(&d.root()).into_iter().filter(|n| n.contains("dockroot")).collect();
    assert!(left.is_empty() && d.root().join("lost+found").is_dir(), "{left:?}");

    // Crash points of the contents swap: the disk holds the fixture, then
    // differs from the archive by one volume.
    let o = dockroot(with(&g, &["-q", "restore", &a, "--force", "--yes", "--data-root", &root]));
    assert!(o.status.success(), "{}", text(&o));
    for n in names(&d.root()).iter().filter(|n| n.starts_with(".dockroot-")) {
        std::fs::remove_dir_all(d.root().join(n)).unwrap();
    }
    d.docker(&["volume", "create", "only-in-old-data"]);
    let mut g2 = g.clone();
    g2.extend(["--data-root".into(), root.clone()]);
    let h = Harness { d: &d, s: &s, g: g2, bound: None, supervised: false };
    let n = h.every_point("restore onto a whole filesystem", &["-q", "restore", &a, "--yes", "--force"], &|| {});
    assert!(n > 10, "{n}");
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&d.dir));
    ok(Command::new("umount").arg(d.root()));
}
