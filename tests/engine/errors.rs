//! Bad input and failures: a clear message naming the path, a non-zero exit,
//! never a panic.

use crate::util::*;

#[test]
fn refuses_non_empty_destination() {
    require_root();
    let s = Scratch::new("err-nonempty");
    let (src, dst) = (s.join("src"), s.join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(dst.join("x")).unwrap();
    let out = dockroot(["copy".as_ref(), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains(&dst.display().to_string()) && t.contains("not empty") && t.contains("--delete"), "{t}");
}

#[test]
fn refuses_destination_inside_source() {
    require_root();
    let s = Scratch::new("err-inside");
    let src = s.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let out = dockroot(["copy".as_ref(), src.as_os_str(), src.join("sub").as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("overlap"), "{}", text(&out));
}

#[test]
fn missing_source_and_bad_manifest_are_clear_errors() {
    require_root();
    let s = Scratch::new("err-missing");
    let out = dockroot(["copy".as_ref(), s.join("nope").as_os_str(), s.join("dst").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("nope"), "{}", text(&out));
    std::fs::write(s.join("m"), "#dockroot-manifest 1\n. type=dir mode=0755 uid=0 gid=0 mtime=1.000000000\n").unwrap();
    let out = dockroot(["verify".as_ref(), s.path().as_os_str(), "--manifest".as_ref(), s.join("m").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
}

#[test]
fn full_target_disk_names_the_path_and_says_what_to_do() {
    require_root();
    let s = Scratch::new("err-full");
    let src = s.join("src");
    std::fs::create_dir_all(&src).unwrap();
    sh(&format!("head -c 64M /dev/urandom > {}/big", src.display()));
    let tiny = LoopFs::new(&s, "ext4", "16M");
    let dst = tiny.mnt.join("copy");
    let out = dockroot(["copy".as_ref(), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("/copy/big") && t.contains("No space left") && t.contains("free space"), "{t}");
}

#[test]
fn mount_points_inside_the_source_are_reported_not_crossed() {
    require_root();
    let s = Scratch::new("mounts");
    let src = s.join("src");
    std::fs::create_dir_all(src.join("mnt")).unwrap();
    std::fs::write(src.join("file"), b"x").unwrap();
    sh(&format!("mount -t tmpfs none {m} && echo hidden > {m}/inside", m = src.join("mnt").display()));
    let dst = s.join("dst");
    let out = dockroot(["--json".as_ref(), "copy".as_ref(), src.as_os_str(), dst.as_os_str()]);
    sh(&format!("umount {}", src.join("mnt").display()));
    assert!(out.status.success(), "{}", text(&out));
    let j = json(&out);
    assert!(j["summary"]["mount_points"][0].as_str().unwrap().ends_with("/mnt"), "{j}");
    assert!(!dst.join("mnt/inside").exists());
    assert!(dst.join("file").exists());
}
