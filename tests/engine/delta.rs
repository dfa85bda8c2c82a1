//! Delta mode: an earlier copy is updated in place; changed entries are
//! rewritten, vanished ones removed, and a same-size same-mtime rewrite is
//! caught through ctime (with a baseline) or content (without).

use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::util::*;

fn mutate(src: &Path) {
    sh(&format!(
        r#"set -e; cd {s}
        m=$(stat -c %y files/small.txt 2>/dev/null || true)
        f=$(find files -type f -size -64k -size +0 | head -n1)
        t=$(stat -c '%y' "$f"); s=$(stat -c %s "$f")
        head -c "$s" /dev/urandom > "$f.new"; cat "$f.new" > "$f"; rm "$f.new"; touch -d "$t" "$f"
        echo "$f" > /tmp/.dockroot-delta-changed
        rm -rf hardlinks/c special/fifo
        mkdir -p newdir/inner && echo new > newdir/inner/file
        rm -f links/relative && ln -s files links/relative
        setfattr -n user.delta -v 1 files
        chmod 0700 modes"#,
        s = src.display()
    ));
}

fn delta_round(tag: &str, with_baseline: bool) {
    require_root();
    let s = Scratch::new(tag);
    let (src, copy, m1, m2) = (s.join("src"), s.join("copy"), s.join("m1"), s.join("m2"));
    fidelity_tree(&src);
    let out = dockroot(["copy".as_ref(), src.as_os_str(), copy.as_os_str(), "--manifest".as_ref(), m1.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    mutate(&src);
    let mut args: Vec<std::ffi::OsString> = vec![
        "--json".into(),
        "copy".into(),
        src.clone().into(),
        copy.clone().into(),
        "--delete".into(),
        "--manifest".into(),
        m2.clone().into(),
        "--verify".into(),
    ];
    if with_baseline {
        args.extend(["--baseline".into(), m1.clone().into_os_string()]);
    }
    let out = dockroot(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_tree(&src, &copy);
    let j = json(&out);
    let (rewritten, entries) = (j["summary"]["rewritten"].as_u64().unwrap(), j["summary"]["entries"].as_u64().unwrap());
    assert!(rewritten > 0 && rewritten * 4 < entries, "delta rewrote {rewritten} of {entries} entries");
}

#[test]
fn delta_with_baseline_catches_same_size_same_mtime_rewrite() {
    delta_round("delta-base", true);
}

#[test]
fn delta_without_baseline_compares_content() {
    delta_round("delta-nobase", false);
}

#[test]
fn delta_replaces_type_changes_both_ways() {
    require_root();
    let s = Scratch::new("delta-types");
    let (src, copy) = (s.join("src"), s.join("copy"));
    sh(&format!("set -e; mkdir -p {s}/a/deep/er {s}/b; echo 1 > {s}/a/deep/er/f; echo 2 > {s}/b/f; ln -s b {s}/c", s = src.display()));
    let out = dockroot(["copy".as_ref(), src.as_os_str(), copy.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    sh(&format!("set -e; cd {s}; rm -rf a && echo file > a; rm -rf b && ln -s a b; rm c && mkdir c && echo 3 > c/f", s = src.display()));
    let out = dockroot(["copy".as_ref(), src.as_os_str(), copy.as_os_str(), "--delete".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_tree(&src, &copy);
}

#[test]
fn live_copy_counts_races_and_a_delta_pass_converges() {
    require_root();
    let s = Scratch::new("live");
    let (src, copy, m1) = (s.join("src"), s.join("copy"), s.join("m1"));
    sh(&format!(
        "set -e; mkdir -p {s}/churn; for i in $(seq 1 3000); do echo $i > {s}/f$i; done; for i in 1 2 3 4 5 6; do head -c 24M /dev/urandom > {s}/big$i; done",
        s = src.display()
    ));
    // A writer that keeps creating, rewriting and deleting files during the
    // copy, and shrinks large files under the copy's mappings (SIGBUS there
    // must become a counted race, not a crash).
    let mut writer = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "cd {s}; for r in $(seq 1 100000); do echo $r > churn/x$((r % 50)); rm -f churn/x$(((r + 25) % 50)); echo $r >> f$((r % 3000 + 1)); \
             truncate -s 4096 big$((r % 6 + 1)); truncate -s 24M big$((r % 6 + 1)); done",
            s = src.display()
        ))
        // Its own process group, so that killing it also kills a `truncate`
        // child still running: a straggler that changed the source after
        // the delta pass made the final comparison flaky under load.
        .process_group(0)
        .spawn()
        .unwrap();
    let out = dockroot([
        "--json".as_ref(),
        "copy".as_ref(),
        src.as_os_str(),
        copy.as_os_str(),
        "--live".as_ref(),
        "--manifest".as_ref(),
        m1.as_os_str(),
    ]);
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", writer.id())]).status();
    let _ = writer.wait();
    assert!(out.status.success(), "a live copy must not fail on races: {}", text(&out));
    let out = dockroot([
        "copy".as_ref(),
        src.as_os_str(),
        copy.as_os_str(),
        "--delete".as_ref(),
        "--baseline".as_ref(),
        m1.as_os_str(),
        "--verify".as_ref(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_tree(&src, &copy);
}
