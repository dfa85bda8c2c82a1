//! The btrfs storage driver keeps every layer in a subvolume and snapshots
//! it for the next layer. A restore or move that made them plain directories
//! left Docker unable to create or start a container: they must come back as
//! subvolumes, a read-only one read-only.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::util::{LoopFs, Scratch, sh};

/// Every subvolume below `root` (relative path) with its read-only flag.
fn subvolumes(root: &Path) -> Vec<String> {
    let o = ok(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . -mindepth 1 -type d -inum 256 | sort | while read -r p; do echo \"$p $(btrfs property get -t subvol \"$p\" ro)\"; done",
        root.display()
    )));
    text(&o).lines().map(String::from).collect()
}

#[test]
fn btrfs_driver_subvolumes_survive_restore_and_bind_move() {
    let s = Scratch::new("lay-btrfs");
    std::fs::write(s.join("fstab"), "").unwrap();
    let disk = LoopFs::new(&s, "btrfs", "4G");
    let root = disk.mnt.join("docker");
    let env = [("DOCKROOT_STORAGE_DRIVER", "btrfs")];
    let d = Daemon::start_in(false, None, Some(&root), &env).populate();
    // A read-only subvolume: its flag comes back, set after its contents.
    sh(&format!("btrfs -q subvolume create {r}/ro && echo kept >{r}/ro/f && btrfs property set -t subvol {r}/ro ro true", r = arg(&root)));
    let st = status(&s, &d);
    assert_eq!(st["storage_driver"], "btrfs", "{st}");
    assert_eq!(st["layout"]["storage_driver"], "btrfs", "{st}");
    let before = snapshot(&d);
    let subvols = subvolumes(&root);
    assert!(subvols.len() > 5 && subvols.contains(&"./ro ro=true".to_string()), "{subvols:?}");

    let g = d.args(&s);
    let a = arg(&s.join("a.tar.zst"));
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));

    // Wipe, restore into the empty place with Docker down, start Docker.
    stop(&d);
    sh(&format!("btrfs property set -t subvol {r}/ro ro false && rm -rf {r}", r = arg(&root)));
    let none = ["--service", "none", "--data-root", &arg(&root), "--state-dir", &arg(&s.join("state-r"))];
    must(dockroot(with(&none.map(String::from), &["-q", "restore", &a, "--yes"])));
    assert_eq!(subvolumes(&root), subvols, "after the restore");
    restart(&d, &env);
    assert_eq!(snapshot(&d), before, "after the restore");
    containers_work(&d, "after the restore");

    // The live backup (two phases, Docker stopped only for the second) carries them too.
    let b = arg(&s.join("b.tar.zst"));
    must(dockroot(with(&g, &["-q", "backup", "-o", &b, "--no-config", "--snapshot", "none"])));
    assert_eq!(json(&must(dockroot(["--json", "inspect", &b])))["meta"]["two_phase"], true);
    let check = disk.mnt.join("check");
    let none = ["--service", "none", "--data-root", &arg(&check), "--state-dir", &arg(&s.join("state-c"))];
    must(dockroot(with(&none.map(String::from), &["-q", "restore", &b, "--yes"])));
    assert_eq!(subvolumes(&check), subvols, "restored from the live backup");
    sh(&format!("btrfs property set -t subvol {c}/ro ro false && rm -rf {c}", c = arg(&check)));

    // Off btrfs the driver cannot run: refused before anything happens.
    let plain = s.join("plain");
    let o = dockroot(with(&g, &["move", "--method", "bind", "--to", &arg(&plain), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("btrfs storage driver"), "{}", text(&o));
    assert!(!plain.exists());

    let moved = disk.mnt.join("moved");
    must(dockroot(with(&g, &["-q", "move", "--method", "bind", "--to", &arg(&moved), "--yes"])));
    assert_eq!(subvolumes(&moved), subvols, "after the move");
    assert_eq!(snapshot(&d), before, "after the move");
    containers_work(&d, "after the move");
    must(dockroot(with(&g, &["-q", "finalize", "--yes"])));
    stop(&d);
    sh(&format!("umount -R {}", arg(&root)));
}
