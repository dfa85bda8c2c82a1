//! What the CLI prints at each verbosity: -v adds detail on stderr, -q
//! leaves only errors, --json keeps stdout one JSON document.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// The -v line of `phase`: `dockroot: PHASE: done in S s: N entries, B bytes, R MB/s`.
/// Returns (seconds, entries, bytes, MB/s).
fn phase_line(stderr: &str, phase: &str) -> (f64, u64, u64, f64) {
    let prefix = format!("dockroot: {phase}: done in ");
    let line = stderr.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no -v line for {phase} in:\n{stderr}"));
    let rest = &line[prefix.len()..];
    let parse = || -> Option<(f64, u64, u64, f64)> {
        let (secs, rest) = rest.split_once("s: ")?;
        let (entries, rest) = rest.split_once(" entries, ")?;
        let (bytes, rest) = rest.split_once(" bytes, ")?;
        let rate = rest.strip_suffix(" MB/s")?;
        Some((secs.parse().ok()?, entries.parse().ok()?, bytes.parse().ok()?, rate.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("malformed -v line: {line}"))
}

fn tree(src: &Path) {
    std::fs::create_dir_all(src.join("d/e")).unwrap();
    std::fs::write(src.join("a"), vec![7u8; 300_000]).unwrap();
    std::fs::write(src.join("d/b"), b"bee").unwrap();
    std::fs::write(src.join("d/e/c"), b"").unwrap();
}

#[test]
fn verbose_copy_prints_phase_times_and_quiet_prints_nothing() {
    require_root();
    let s = Scratch::new("verbose");
    let src = s.join("src");
    tree(&src);
    // A mount point below SRC, which the copy reports and skips.
    std::fs::create_dir(src.join("mnt")).unwrap();
    ok(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(src.join("mnt")));

    let out = dockroot(["--json".as_ref(), "copy".as_ref(), src.as_os_str(), s.join("plain").as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = &json(&out)["summary"];
    let (entries, bytes) = (summary["entries"].as_u64().unwrap(), summary["bytes"].as_u64().unwrap());

    let out = dockroot(["-v".as_ref(), "copy".as_ref(), src.as_os_str(), s.join("v").as_os_str(), "--verify".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let (secs, n, b, rate) = phase_line(&err, "copy");
    assert_eq!((n, b), (entries, bytes), "{err}");
    assert!(secs > 0.0 && rate > 0.0, "{err}");
    assert_eq!(phase_line(&err, "verify").1, entries, "{err}");
    assert!(err.contains("copy: 1 mount points skipped, 0 entries changed or vanished during the copy"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"), "{}", text(&out));

    // --json -v: the detail goes to stderr and stdout stays one JSON document.
    let out = dockroot(["--json".as_ref(), "-v".as_ref(), "copy".as_ref(), src.as_os_str(), s.join("j").as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["summary"]["entries"], entries);
    phase_line(&String::from_utf8_lossy(&out.stderr), "copy");

    // -q prints nothing on success, not even with -v. (The mount point
    // warning would be printed, so this copy has none.)
    ok(Command::new("umount").arg(src.join("mnt")));
    for (i, args) in [&["-q"][..], &["-q", "-v"]].iter().enumerate() {
        let dst = s.join(&format!("q{i}"));
        let out = dockroot(args.iter().map(OsStr::new).chain(["copy".as_ref(), src.as_os_str(), dst.as_os_str(), "--verify".as_ref()]));
        assert!(out.status.success(), "{}", text(&out));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{args:?} printed: {}", text(&out));
    }
}

#[test]
fn tty_bar_gets_its_total_from_the_background_estimate() {
    require_root();
    let s = Scratch::new("ttybar");
    let src = s.join("src");
    tree(&src);
    std::fs::write(src.join("big"), vec![1u8; 64 << 20]).unwrap();
    // script(1) gives the copy a terminal on stderr, so it draws the bar.
    let cmd = format!("{} copy {} {}", bin().display(), src.display(), s.join("dst").display());
    let out = ok(Command::new("script").args(["-qec", &cmd]).arg(s.join("typescript")));
    let screen = String::from_utf8_lossy(&std::fs::read(s.join("typescript")).unwrap()).to_string();
    // The bar got the tree's size as its total (bytes/total and an ETA)…
    let total = format!("/{}", indicatif_size(64 << 20 | 300_003));
    assert!(screen.contains(&total) && screen.contains("eta"), "no bar with a total ({total}) in:\n{screen}\n{}", text(&out));
    // …and the bar was cleared before the summary.
    assert!(screen.contains("copied 7 entries"), "{screen}");
    assert_same_tree(&src, &s.join("dst"));
}

/// Bytes as indicatif's `{total_bytes}` shows them (binary units, 2 decimals).
fn indicatif_size(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
}

/// `manifest -o /dev/null` and `backup -o /dev/null` once renamed their
/// finished temporary file over the device node: the host's /dev/null became
/// a regular file. An output that exists and is not a regular file is refused.
#[test]
fn output_onto_dev_null_replaced_the_device_node() {
    require_root();
    let s = Scratch::new("devnull");
    let src = s.join("src");
    tree(&src);
    let null = s.join("null");
    ok(Command::new("mknod").arg(&null).args(["c", "1", "3"]));
    let o = dockroot([OsStr::new("manifest"), src.as_os_str(), OsStr::new("-o"), null.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a regular file"), "{}", text(&o));
    let o = dockroot([
        OsStr::new("backup"),
        OsStr::new("--data-root"),
        src.as_os_str(),
        OsStr::new("--service"),
        OsStr::new("none"),
        OsStr::new("-o"),
        null.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a regular file"), "{}", text(&o));
    let m = std::fs::symlink_metadata(&null).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()), "the node was replaced");
}

/// The write end of a pipe whose reader is gone: every write fails with EPIPE.
pub(crate) fn closed_pipe() -> std::process::Stdio {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    std::process::Stdio::from(w)
}

/// A reader that went away (`| head -c1`, a closed pipe) is no reason to
/// panic (issue 17 item 4): println! did, with exit 101 and a backtrace.
#[test]
fn closed_stdout_and_stderr_do_not_panic() {
    require_root();
    let s = Scratch::new("epipe");
    let src = s.join("src");
    tree(&src);
    let status = format!("{} --service none --data-root {} --state-dir {} status", bin().display(), src.display(), s.join("st").display());
    let o = sh(&format!("{status} | head -c1 >/dev/null; echo \"rc=${{PIPESTATUS[0]}}\""));
    assert!(text(&o).contains("rc=0") && !text(&o).contains("panicked"), "{}", text(&o));
    // Both ends closed from the start, on commands that print a lot.
    let dst = s.join("dst");
    let runs: [Vec<&OsStr>; 3] = [
        vec!["--service".as_ref(), "none".as_ref(), "--data-root".as_ref(), src.as_os_str(), "status".as_ref()],
        vec!["completions".as_ref(), "bash".as_ref()],
        vec!["-v".as_ref(), "copy".as_ref(), src.as_os_str(), dst.as_os_str(), "--verify".as_ref()],
    ];
    for args in runs {
        let o = Command::new(bin())
            .args(&args)
            .arg("--state-dir")
            .arg(s.join("st"))
            .stdout(closed_pipe())
            .stderr(closed_pipe())
            .status()
            .unwrap();
        assert_eq!(o.code(), Some(0), "{args:?}");
    }
    assert_same_tree(&src, &dst);
}
