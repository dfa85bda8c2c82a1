//! Issue 11: the copy's threads sleep when they wait, never spin. Channels
//! that back off with `sched_yield` made 4,564 calls on a 40k-file copy on
//! two cores; the walk now hands work over on a mutex and condition variable.
//! Counted by strace (its timing changes nothing here: a spinning wait would
//! yield under any schedule).

use std::process::Command;

use crate::util::*;

#[test]
fn a_small_file_copy_never_calls_sched_yield() {
    require_root();
    let s = Scratch::new("spin");
    let (src, dst, counts) = (s.join("src"), s.join("dst"), s.join("strace.txt"));
    ok(Command::new("python3").arg(repo().join("scripts/mksmall.py")).arg(&src).arg("3000"));
    // Three workers on however many cores, where waits are most frequent.
    ok(Command::new("strace")
        .args(["-f", "-c", "-e", "trace=sched_yield,futex", "-o"])
        .arg(&counts)
        .arg(bin())
        .args(["-q", "--threads", "3", "copy"])
        .arg(&src)
        .arg(&dst)
        .arg("--manifest")
        .arg(s.join("m")));
    let table = std::fs::read_to_string(&counts).unwrap();
    assert!(table.contains("total"), "no strace summary:\n{table}");
    assert!(!table.lines().any(|l| l.trim_end().ends_with(" sched_yield")), "the copy spun:\n{table}");
    assert_same_tree(&src, &dst);
}
