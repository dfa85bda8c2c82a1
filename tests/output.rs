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
