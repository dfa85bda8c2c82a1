//! Off-site backups through restic: `backup -o - --compress none` piped into
//! `restic backup --stdin` on two nights with a small change in between,
//! then `restic dump … | dockroot restore -`, compared with the independent
//! comparer. Prints what each night added to the repository, the figure the
//! docs/restic.md quotes.

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// A seeded pseudo-random fill, so failures reproduce.
fn fill(path: &Path, len: usize, seed: u64) {
    let mut x = seed;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, v).unwrap();
}

/// Runs `pipeline` in bash with pipefail; returns stdout.
fn pipe(s: &Scratch, pipeline: &str) -> String {
    let out = run(Command::new("bash")
        .args(["-c", &format!("set -euo pipefail; {pipeline}")])
        .env("RESTIC_PASSWORD", "dockroot-test")
        .env("RESTIC_REPOSITORY", s.join("repo"))
        .env("RESTIC_CACHE_DIR", s.join("cache")));
    assert!(out.status.success(), "`{pipeline}` failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `data_added` of the summary line of `restic backup --json`.
fn data_added(json_lines: &str) -> u64 {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .and_then(|v| v["data_added"].as_u64())
        .unwrap_or_else(|| panic!("no summary in restic's output:\n{json_lines}"))
}

#[test]
fn restic_two_nights_dedup_and_restore() {
    require_root();
    assert!(Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success()), "restic is missing: run scripts/setup.sh");
    let s = Scratch::new("restic");
    let src = s.join("src");
    fidelity_tree(&src);
    // Image-layer-like content: 48 MiB in 24 files of 2 MiB, and some small files.
    for i in 0..24u64 {
        fill(&src.join(format!("overlay2/l{}/diff/blob{i}", i % 4)), 2 << 20, i + 1);
    }
    for i in 0..200u64 {
        fill(&src.join(format!("containers/c{}/config{i}.json", i % 10)), 700, 1000 + i);
    }
    let d = bin().display().to_string();
    let g = format!("{d} -q --service none --data-root {}", src.display());
    let night = |tag: &str| {
        data_added(&pipe(
            &s,
            &format!(
                "{g} backup -o - --compress none --no-config | restic backup --json --stdin --stdin-filename docker-data-root.tar --tag {tag}"
            ),
        ))
    };
    pipe(&s, "restic init");
    let first = night("n1");
    // The day in between: a container writes a little, one file is replaced.
    fill(&src.join("containers/c3/new-log"), 256 << 10, 77);
    fill(&src.join("overlay2/l1/diff/blob5"), 2 << 20, 555);
    std::fs::write(src.join("containers/c1/config11.json"), b"{\"changed\": true}").unwrap();
    let second = night("n2");
    let total = allocated_bytes(&src);
    eprintln!(
        "restic: tree of {total} allocated bytes; night 1 added {first} bytes, night 2 added {second} bytes ({:.1}% of night 1)",
        second as f64 * 100.0 / first as f64
    );
    // Night 2 changed ~2.3 MiB of ~50 MiB: far less than a full copy is stored.
    assert!(first > 40 << 20, "night 1 added only {first} bytes");
    assert!(second < first / 5, "no deduplication: night 1 {first}, night 2 {second}");

    // The off-site copy checks out without extracting it.
    let v = pipe(&s, &format!("restic dump latest docker-data-root.tar | {d} verify -"));
    assert!(v.contains("OK: - is a complete dockroot archive"), "{v}");

    // Restore the second night onto a fresh data-root and compare.
    let dst = s.join("restored");
    pipe(
        &s,
        &format!(
            "restic dump latest docker-data-root.tar | {d} -q --service none --data-root {} --state-dir {} restore - --yes",
            dst.display(),
            s.join("st").display()
        ),
    );
    assert_same_tree(&src, &dst);
}

/// Allocated bytes of the regular files below `root` (the tree has a large sparse file).
fn allocated_bytes(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let files = walkdir::WalkDir::new(root).into_iter().filter_map(|e| e.ok()).filter(|e| e.file_type().is_file());
    files.map(|e| e.metadata().unwrap().blocks() * 512).sum()
}
