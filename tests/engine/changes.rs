//! The manifest detects every kind of change, each reported with its field.

use std::path::Path;

use crate::util::*;

/// A small tree with one entry of each kind that a mutation can target.
fn small_tree(root: &Path) {
    sh(&format!(
        r#"set -e; mkdir -p {r}/d/sub; cd {r}
        printf hello > d/file; printf abc > d/same; printf x > d/gone
        ln -s d/file d/link; ln d/file d/hard; mknod d/wh c 0 0; mkfifo d/fifo
        setfattr -n user.k -v v d/file; setfattr -n trusted.overlay.opaque -v y d/sub
        touch -h -d '2020-01-02 03:04:05.123456789' d/* d/sub d ."#,
        r = root.display()
    ));
}

/// Applies `mutation` (shell, run in the copy) and expects verify to report `field`.
fn detects(tag: &str, mutation: &str, field: &str) {
    require_root();
    let s = Scratch::new(tag);
    let (src, m, copy) = (s.join("src"), s.join("m"), s.join("copy"));
    small_tree(&src);
    let out = dockroot(["copy".as_ref(), src.as_os_str(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    sh(&format!("set -e; cd {}; {mutation}", copy.display()));
    let out = dockroot(["verify".as_ref(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "verify should fail after `{mutation}`:\n{t}");
    assert!(t.contains(&format!(": {field}")), "expected a `{field}` difference after `{mutation}`, got:\n{t}");
}

const KEEP_MTIME: &str = "touch -h -d '2020-01-02 03:04:05.123456789' d/file d";

#[test]
fn detects_same_size_same_mtime_content_change() {
    detects("c-content", &format!("printf jello > d/file; {KEEP_MTIME}"), "content");
}

#[test]
fn detects_mode_change() {
    detects("c-mode", "chmod 4755 d/file", "mode");
}

#[test]
fn detects_owner_change() {
    detects("c-owner", "chown -h 231072:231072 d/link", "owner");
}

#[test]
fn detects_mtime_change() {
    detects("c-mtime", "touch -h -d '2020-01-02 03:04:05.123456788' d/sub", "mtime");
}

#[test]
fn detects_xattr_change() {
    detects("c-xattr", "setfattr -n user.k -v w d/file", "xattr");
}

#[test]
fn detects_removed_xattr() {
    detects("c-xattr2", "setfattr -x trusted.overlay.opaque d/sub", "xattr");
}

#[test]
fn detects_link_target_change() {
    detects("c-target", "ln -sfn d/same d/link; touch -h -d '2020-01-02 03:04:05.123456789' d/link d", "link-target");
}

#[test]
fn detects_broken_hardlink_group() {
    detects("c-hard", "cp -a d/hard d/h2 && mv d/h2 d/hard", "type");
}

#[test]
fn detects_type_change() {
    detects("c-type", "rm d/fifo; mkdir d/fifo", "type");
}

#[test]
fn detects_rdev_change() {
    detects("c-rdev", "rm d/wh; mknod d/wh c 1 3", "rdev");
}

#[test]
fn detects_missing_entry() {
    detects("c-missing", "rm d/gone", "missing");
}

#[test]
fn detects_extra_entry() {
    detects("c-extra", "touch d/new", "extra");
}

#[test]
fn unchanged_copy_verifies_clean() {
    require_root();
    let s = Scratch::new("c-clean");
    let (src, m, copy) = (s.join("src"), s.join("m"), s.join("copy"));
    small_tree(&src);
    let out = dockroot(["copy".as_ref(), src.as_os_str(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = dockroot(["verify".as_ref(), copy.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    // The manifest of the copy equals the manifest taken while copying, apart
    // from the inode and ctime fields that belong to the source.
    let m2 = s.join("m2");
    let out = dockroot(["manifest".as_ref(), copy.as_os_str(), "-o".as_ref(), m2.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').filter(|f| !f.starts_with("ino=") && !f.starts_with("ctime=")).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(strip(&m), strip(&m2));
}
