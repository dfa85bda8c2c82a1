//! Fails when an fd-relative call in `src/sys` could follow a symlink.
//!
//! Every `libc::*at(` call and every `openat_raw(` call must carry a
//! NOFOLLOW flag or `O_PATH`, address the directory itself (`DOT`), or be in
//! [`ALLOWED`] with the reason it cannot follow a symlink; none may pass
//! `AT_SYMLINK_FOLLOW`. Every `xattr::*_deref` call must go through an fd's
//! /proc magic link (a variable `magic` bound to `fs::fd_path`); the
//! crate's other calls are the `l*xattr` ones, which never follow. A new call
//! that fits none of these fails here until it is made safe or its reason
//! written down.

/// Calls that never follow a symlink in the last component, by their man page.
const ALLOWED: &[(&str, &str)] = &[
    ("libc::mkdirat", "creates the name; an existing symlink there is EEXIST"),
    ("libc::mknodat", "creates the name; an existing symlink there is EEXIST"),
    ("libc::symlinkat", "creates the name; an existing symlink there is EEXIST"),
    ("libc::readlinkat", "reads the symlink itself; EINVAL on anything else"),
    ("libc::linkat", "follows only with AT_SYMLINK_FOLLOW, which is never passed"),
    ("libc::unlinkat", "removes the name itself"),
    ("libc::renameat", "renames the name itself"),
    ("libc::fstat", "takes an fd, no name"),
];

/// The text of each call to a function whose name ends in `at` (plus
/// `openat_raw`), with its arguments, in one source file.
fn calls(src: &str) -> Vec<(String, String)> {
    let code = src.split("#[cfg(test)]").next().unwrap_or(src);
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = code[i..].find('(') {
        let open = i + p;
        let start = code[..open].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |s| s + 1);
        let name = &code[start..open];
        let before = code[..start].trim_end();
        let is_def = before.ends_with("fn");
        let fd_relative = name.starts_with("libc::") && (name.ends_with("at") || name.ends_with("statx"));
        if !is_def && (fd_relative || name.starts_with("xattr::") && name.ends_with("_deref") || name == "openat_raw") {
            let mut depth = 0;
            let mut j = open;
            while j < bytes.len() {
                match bytes[j] {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            out.push((name.to_string(), code[open..=j.min(bytes.len() - 1)].to_string()));
        }
        i = open + 1;
    }
    out
}

/// Why `call(args)` cannot follow a symlink, or `None`.
fn safe(name: &str, args: &str) -> Option<&'static str> {
    if args.contains("AT_SYMLINK_FOLLOW") {
        return None;
    }
    if name.ends_with("_deref") {
        // `magic` is only ever bound to `fs::fd_path(fd)`: see the test below.
        return args.contains("&magic").then_some("through an fd's /proc magic link");
    }
    if args.contains("NOFOLLOW") || args.contains("O_PATH") {
        return Some("NOFOLLOW or O_PATH");
    }
    if args.contains("DOT") {
        return Some("addresses the directory itself");
    }
    // Reopening an fd through its /proc magic link must follow that link,
    // which leads only to the inode the fd holds.
    if name == "libc::openat" && args.starts_with("(fd_dir.as_raw_fd(), n.as_ptr()") {
        return Some("reopens a checked fd through /proc/PID/fd");
    }
    // openat_raw passes its caller's flags through; each caller is checked.
    if name == "libc::openat" && args.contains("flags | libc::O_CLOEXEC") {
        return Some("openat_raw's own call");
    }
    ALLOWED.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

#[test]
fn no_fd_relative_call_in_sys_can_follow_a_symlink() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sys");
    let mut seen = 0;
    let mut bad = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "rs") || p.ends_with("nofollow_audit.rs") {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap();
        for (n, l) in src.lines().enumerate().filter(|(_, l)| l.contains("let magic ")) {
            assert!(l.contains("fs::fd_path("), "{}:{}: `magic` must name an fd's /proc magic link", p.display(), n + 1);
        }
        for (name, args) in calls(&src) {
            seen += 1;
            if safe(&name, &args).is_none() {
                bad.push(format!("{}: {name}{args}", p.display()));
            }
        }
    }
    assert!(seen >= 15, "the audit found only {seen} calls; is it still parsing src/sys?");
    assert!(bad.is_empty(), "these calls may follow a symlink; add a NOFOLLOW flag or a reason to ALLOWED:\n{}", bad.join("\n"));
}

#[test]
fn the_audit_catches_a_following_call() {
    let src = "fn f() { unsafe { libc::fchmodat(d, n, 0o644, 0) }; openat_raw(d, n, libc::O_RDONLY, 0); \
               libc::linkat(a, b, c, d, libc::AT_SYMLINK_FOLLOW); xattr::get_deref(&path, n); }";
    let found = calls(src);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.iter().all(|(n, a)| safe(n, a).is_none()), "{found:?}");
    let ok = "fn g() { libc::fchownat(d, n, u, g, libc::AT_SYMLINK_NOFOLLOW); xattr::get_deref(&magic, n); }";
    assert!(calls(ok).iter().all(|(n, a)| safe(n, a).is_some()), "{:?}", calls(ok));
}
