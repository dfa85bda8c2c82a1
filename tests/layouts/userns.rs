//! userns-remap: the engine's state is in `<data-root>/<uid>.<gid>/`, owned
//! by the remapped range, beside a top level of its own. Both are carried;
//! a restore onto an engine without the same remap setting is refused.

use std::path::Path;

use super::*;
use crate::util::{LoopFs, Scratch, sh};

const USER: &str = "dockroot-remap";
/// The range dockerd.sh gives USER (its default DOCKROOT_SUBID).
const SUBTREE: &str = "300000.300000";

/// Owners and modes of the top level and of the subtree's first level.
fn owners(root: &Path) -> String {
    text(&sh(&format!("cd '{}' && stat -c '%n %u:%g %a' . * {SUBTREE}/* | sort", root.display())))
}

#[test]
fn userns_remap_subtree_round_trip_and_bind_move() {
    let s = Scratch::new("lay-userns");
    std::fs::write(s.join("fstab"), "").unwrap();
    let disk = LoopFs::new(&s, "ext4", "3G");
    let cfg = format!("{{\"userns-remap\": \"{USER}\"}}\n");
    let env = [("DOCKROOT_USERNS_REMAP", USER)];
    let d = Daemon::start_in(false, Some(&cfg), None, &env).populate();
    let root = d.root();
    assert!(root.join(SUBTREE).join("image").is_dir(), "dockerd did not remap into {SUBTREE}");
    let st = status(&s, &d);
    assert_eq!(st["data_root"], arg(&root), "{st}");
    assert_eq!(st["layout"]["userns_subtree"], arg(&root.join(SUBTREE)), "{st}");
    let before = (snapshot(&d), owners(&root));

    let g = d.args(&s);
    let a = arg(&s.join("a.tar.zst"));
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));
    let meta = json(&must(dockroot(["--json", "inspect", &a])));
    assert_eq!(meta["meta"]["userns"]["subtree"], SUBTREE, "{meta}");
    assert_eq!(meta["meta"]["userns"]["subuid"][0]["start"], 300000, "{meta}");

    // Wipe; an engine without the remap setting is refused with the reason.
    stop(&d);
    sh(&format!("rm -rf '{}'", root.display()));
    let json_path = d.dir.join("daemon.json");
    std::fs::write(&json_path, "{}\n").unwrap();
    let none =
        ["--service", "none", "--data-root", &arg(&root), "--state-dir", &arg(&s.join("state-r")), "--daemon-config", &arg(&json_path)];
    let o = dockroot(with(&none.map(String::from), &["restore", &a, "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(&format!("userns-remap `{USER}`, this engine has none")), "{}", text(&o));
    assert!(!root.exists(), "refused before anything was extracted");
    std::fs::write(&json_path, &cfg).unwrap();
    // A host whose /etc/subuid gives the user another range: refused, with both ranges.
    {
        let _moved = SubuidLine::moved(USER, "400000");
        let o = dockroot(with(&none.map(String::from), &["restore", &a, "--yes"]));
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("/etc/subuid gives {USER} 400000-465535 here but the archive's files belong to 300000-365535")),
            "{}",
            text(&o)
        );
    }
    must(dockroot(with(&none.map(String::from), &["-q", "restore", &a, "--yes"])));
    restart(&d, &env);
    assert_eq!((snapshot(&d), owners(&root)), before, "after the restore");
    containers_work(&d, "after the restore");

    let moved = disk.mnt.join("docker");
    must(dockroot(with(&g, &["-q", "move", "--method", "bind", "--to", &arg(&moved), "--yes"])));
    assert_eq!((snapshot(&d), owners(&moved)), before, "after the move");
    containers_work(&d, "after the move");
    must(dockroot(with(&g, &["-q", "finalize", "--yes"])));
    stop(&d);
    sh(&format!("umount -R '{}'", root.display()));
}

/// The host's /etc/subuid with USER's range moved to start elsewhere; the
/// file is put back as it was on drop (only USER's line differs meanwhile).
struct SubuidLine(String);

impl SubuidLine {
    fn moved(user: &str, start: &str) -> SubuidLine {
        let old = std::fs::read_to_string("/etc/subuid").unwrap();
        let new: Vec<String> = old
            .lines()
            .map(|l| match l.split(':').collect::<Vec<_>>().as_slice() {
                [u, _, n] if *u == user => format!("{u}:{start}:{n}"),
                _ => l.to_string(),
            })
            .collect();
        std::fs::write("/etc/subuid", new.join("\n") + "\n").unwrap();
        SubuidLine(old)
    }
}

impl Drop for SubuidLine {
    fn drop(&mut self) {
        std::fs::write("/etc/subuid", &self.0).unwrap();
    }
}
