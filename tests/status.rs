//! `dockroot status` without a daemon: the disks it lists for a user looking
//! for room to move the data-root to.

use std::path::Path;

use crate::util::*;

/// Status of `data_root` with scratch config files and no daemon.
fn status(s: &Scratch, data_root: &Path, json: bool) -> std::process::Output {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if json {
        args.push("--json".into());
    }
    args.extend(["status", "--service", "none", "--data-root"].map(Into::into));
    args.push(data_root.into());
    for (flag, name) in
        [("--docker-socket", "none.sock"), ("--daemon-config", "daemon.json"), ("--state-dir", "state"), ("--fstab", "fstab")]
    {
        args.push(flag.into());
        args.push(s.join(name).into());
    }
    let out = dockroot(&args);
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// df's "Avail" of the filesystem at `mnt`.
fn available(mnt: &Path) -> u64 {
    let v = nix::sys::statvfs::statvfs(mnt).unwrap();
    v.blocks_available() * v.fragment_size()
}

#[test]
fn status_lists_the_disks_and_marks_the_data_roots() {
    require_root();
    let s = Scratch::new("status-disks");
    let ext4 = LoopFs::new(&s, "ext4", "300M");
    let dr = ext4.mnt.join("docker");
    std::fs::create_dir(&dr).unwrap();

    let v = json(&status(&s, &dr, true));
    let disks = v["disks"].as_array().unwrap_or_else(|| panic!("no disks in {v}"));
    let mine: Vec<_> = disks.iter().filter(|d| d["mount_point"] == ext4.mnt.to_str().unwrap()).collect();
    assert_eq!(mine.len(), 1, "{v}");
    let d = mine[0];
    assert_eq!((&d["fs_type"], &d["data_root"]), (&"ext4".into(), &true.into()), "{d}");
    let (avail, total) = (d["available_bytes"].as_u64().unwrap(), d["total_bytes"].as_u64().unwrap());
    assert_eq!(avail, available(&ext4.mnt), "{d}");
    assert!(avail > 200 << 20 && avail < total && total <= 300 << 20, "{d}");
    assert_eq!(disks.iter().filter(|d| d["data_root"] == true).count(), 1, "{v}");
    // Pseudo filesystems are not places to move to.
    assert!(disks.iter().all(|d| !["proc", "sysfs", "overlay", "cgroup2"].contains(&d["fs_type"].as_str().unwrap())), "{v}");

    // The human output names it with its available space.
    let out = String::from_utf8(status(&s, &dr, false).stdout).unwrap();
    let line = format!("* {} (ext4, {} available of ", ext4.mnt.display(), indicatif::HumanBytes(avail));
    assert!(out.contains(&line), "no `{line}` in:\n{out}");

    // The loop disk is still listed when the data-root is elsewhere; a
    // data-root on tmpfs (which sysinfo leaves out) is listed all the same.
    let tmp = s.join("tmpfs");
    std::fs::create_dir(&tmp).unwrap();
    ok(std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(&tmp));
    let v = json(&status(&s, &tmp.join("docker"), true));
    let find = |mp: &Path| v["disks"].as_array().unwrap().iter().find(|d| d["mount_point"] == mp.to_str().unwrap()).cloned();
    assert_eq!(find(&ext4.mnt).map(|d| d["data_root"].clone()), Some(false.into()), "{v}");
    let t = find(&tmp).unwrap_or_else(|| panic!("the tmpfs data-root is not listed: {v}"));
    assert_eq!((&t["fs_type"], &t["data_root"], &t["total_bytes"]), (&"tmpfs".into(), &true.into(), &(64u64 << 20).into()), "{t}");
    ok(std::process::Command::new("umount").arg(&tmp));
}
