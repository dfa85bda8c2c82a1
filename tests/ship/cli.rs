//! Exit codes 0, 1 and 2 (3 and 4 are the plan's failure tests), errors
//! that state their cause once, `--help`, and the checks `backup -o` and
//! `restore --dry-run` make before anything changes.

use std::path::Path;
use std::process::Command;

use crate::util::*;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or_else(|| panic!("killed by a signal: {}", text(o)))
}

fn small_tree(root: &Path) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("d/f"), b"one").unwrap();
    std::fs::write(root.join("g"), vec![5u8; 10_000]).unwrap();
}

#[test]
fn exit_0_on_success_1_on_differences_2_on_bad_input() {
    require_root();
    let s = Scratch::new("exit-codes");
    let src = s.join("src");
    small_tree(&src);
    let (dst, m) = (s.join("dst"), s.join("src.manifest"));
    let out = dockroot(["copy".as_ref(), src.as_os_str(), dst.as_os_str(), "--manifest".as_ref(), m.as_os_str(), "--verify".as_ref()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let verify = || dockroot(["verify".as_ref(), dst.as_os_str(), "--manifest".as_ref(), m.as_os_str()]);
    assert_eq!(code(&verify()), 0);

    // 1: a difference, printed with its path.
    std::fs::write(dst.join("d/f"), b"two").unwrap();
    let out = verify();
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("differs: d/f: content"), "{}", text(&out));

    // 2: bad input of every kind, nothing written.
    let missing = s.join("nonexistent");
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["copy".into(), missing.clone().into(), s.join("c2").into()],
        vec!["verify".into(), dst.clone().into(), "--manifest".into(), missing.clone().into()],
        vec!["--service".into(), "systemdd".into(), "status".into()],
        vec!["backup".into(), "--level".into(), "42".into(), "-o".into(), "-".into()],
        vec!["no-such-command".into()],
        vec![
            "--service".into(),
            "none".into(),
            "--data-root".into(),
            src.clone().into(),
            "backup".into(),
            "-o".into(),
            missing.join("x.tar.zst").into(),
        ],
        // Without a terminal a restore needs --yes.
        vec![
            "--service".into(),
            "none".into(),
            "--data-root".into(),
            s.join("dr").into(),
            "--state-dir".into(),
            s.join("st").into(),
            "restore".into(),
            m.clone().into(),
        ],
    ];
    for args in cases {
        let out = dockroot(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        assert!(!text(&out).trim().is_empty(), "{args:?} said nothing");
    }
    assert!(!s.join("c2").exists() && !missing.exists() && !s.join("dr").exists());
    // --help and --version are successes.
    assert_eq!(code(&dockroot(["--help"])), 0);
    assert_eq!(code(&dockroot(["--version"])), 0);
}

/// Regression: `open source /nonexistent: No such file or directory (os
/// error 2): No such file or directory (os error 2)`.
#[test]
fn errors_state_their_cause_once() {
    let out = dockroot(["copy", "/nonexistent-dockroot-src", "/var/tmp/dockroot-never-created"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("/nonexistent-dockroot-src"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    // A missing archive is named as such, not as a damaged one.
    for cmd in ["inspect", "restore"] {
        let out = dockroot([cmd, "/nonexistent-dockroot.tar.zst"]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(code(&out), 2, "{err}");
        assert!(err.contains("archive /nonexistent-dockroot.tar.zst: check the path: No such file") && !err.contains("corrupted"), "{err}");
    }
    let out = dockroot(["--json", "copy", "/nonexistent-dockroot-src", "/var/tmp/dockroot-never-created"]);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"].as_str().unwrap().matches("No such file or directory").count(), 1, "{v}");
}

#[test]
fn help_lists_exit_codes_and_service_values() {
    let help = String::from_utf8(ok(Command::new(bin()).arg("--help")).stdout).unwrap();
    for line in
        ["0  success", "1  differences found", "2  refused or bad input", "3  failed and undone", "4  failed, and undoing failed too"]
    {
        assert!(help.contains(line), "no `{line}` in:\n{help}");
    }
    assert!(help.contains("pidfile:PATH") && help.contains("openrc"), "{help}");
    let err = text(&dockroot(["--service", "systemdd", "status"]));
    assert!(
        err.contains("invalid value 'systemdd'")
            && err.contains("[possible values: auto, systemd, sysv, openrc, pidfile:PATH, snap, user:NAME, none]"),
        "{err}"
    );
}

/// Regression: `backup -o /nonexistent/dir/x.tar.zst` created the missing
/// directories and wrote the archive there.
#[test]
fn backup_output_needs_an_existing_directory_and_warns_on_the_same_disk() {
    require_root();
    let s = Scratch::new("bk-output");
    let src = s.join("src");
    small_tree(&src);
    let base = |out: &Path, extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> = vec!["--service".into(), "none".into(), "--data-root".into(), src.clone().into()];
        a.extend(["backup".into(), "--no-config".into(), "-o".into(), out.into()]);
        a.extend(extra.iter().map(Into::into));
        dockroot(&a)
    };
    let typo = s.join("backpu/x.tar.zst");
    let out = base(&typo, &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains(&format!("the directory of the archive {}", s.join("backpu").display())), "{}", text(&out));
    assert!(!s.join("backpu").exists(), "the missing directory was created");
    let dir = s.join("nodir/");
    let out = base(&dir, &["--keep", "2"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("the output directory"), "{}", text(&out));
    assert!(!s.join("nodir").exists());

    // On the data-root's filesystem: written, with a warning (also in the dry run).
    let same = "on the same filesystem as the data-root";
    let out = base(&s.join("a.tar.zst"), &["--dry-run"]);
    assert!(out.status.success() && text(&out).contains(same), "{}", text(&out));
    let out = base(&s.join("a.tar.zst"), &[]);
    assert!(out.status.success() && text(&out).contains(same), "{}", text(&out));
    assert!(s.join("a.tar.zst").is_file());
    // On another filesystem: no warning.
    let other = LoopFs::new(&s, "ext4", "64M");
    let out = base(&other.mnt.join("b.tar.zst"), &[]);
    assert!(out.status.success() && !text(&out).contains(same), "{}", text(&out));
    std::fs::create_dir(other.mnt.join("night")).unwrap();
    let out = base(&other.mnt.join("night/"), &["--keep", "1", "--compress", "none"]);
    assert!(out.status.success(), "{}", text(&out));
    let names: Vec<String> =
        std::fs::read_dir(other.mnt.join("night")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.len() == 1 && names[0].ends_with(".tar") && names[0].starts_with("dockroot-"), "{names:?}");
    let out = dockroot(["verify".as_ref(), other.mnt.join("night").join(&names[0]).as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Regression: `restore --dry-run` printed "the discovered data-root".
#[test]
fn restore_dry_run_prints_real_paths() {
    require_root();
    let s = Scratch::new("rs-dry");
    let src = s.join("src");
    small_tree(&src);
    let archive = s.join("a.tar.zst");
    let out = dockroot([
        "--service".as_ref(),
        "none".as_ref(),
        "--data-root".as_ref(),
        src.as_os_str(),
        "backup".as_ref(),
        "--no-config".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dr = s.join("restored");
    let out = dockroot([
        "--service".as_ref(),
        "none".as_ref(),
        "--data-root".as_ref(),
        dr.as_os_str(),
        "restore".as_ref(),
        "--dry-run".as_ref(),
        archive.as_os_str(),
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("discovered"), "{t}");
    assert!(t.contains(&format!("rename {} to {}.dockroot-old-", dr.display(), dr.display())), "{t}");
    assert!(t.contains("stop Docker (none)"), "{t}");
    assert!(!dr.exists(), "a dry run created {}", dr.display());
}
