//! Fails when a module imports from a layer it may not see, or when files
//! import each other in a cycle.
//!
//! [`MAY_USE`] is the layering of lib.rs as a table: each top-level module
//! and the modules it may name (`cli` is the binary: src/cli and main.rs).
//! Every `use` and every `crate::`/`super::`/`self::` path in src (test
//! modules excepted) is an arrow from its file to the module it names; an
//! arrow between top-level modules that the table lacks fails, naming the
//! file and line. Inside a module, files must not import each other in a
//! cycle; a `mod.rs` and its own children are exempt (the children implement
//! what their parent declares).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the top-level modules it may import.
const MAY_USE: &[(&str, &[&str])] = &[
    ("cli", &["plan", "service", "docker", "copy", "archive", "audit", "tree", "manifest", "sys", "error", "util", "progress"]),
    ("plan", &["service", "docker", "copy", "archive", "audit", "tree", "manifest", "sys", "error", "util", "progress"]),
    ("service", &["docker", "sys", "error", "util", "progress"]),
    ("docker", &["tree", "manifest", "sys", "error", "util", "progress"]),
    ("copy", &["tree", "manifest", "sys", "error", "util", "progress"]),
    ("archive", &["tree", "manifest", "sys", "error", "util", "progress"]),
    ("audit", &["tree", "manifest", "sys", "error", "util", "progress"]),
    ("tree", &["manifest", "sys", "error", "util", "progress"]),
    ("manifest", &["sys", "error", "util"]),
    ("sys", &["error", "util"]),
    ("error", &["util"]),
    ("progress", &[]),
    ("util", &[]),
];

type Module = Vec<String>;

/// One arrow: the file's module imports `to`, at `line`.
#[derive(Debug, Clone)]
struct Arrow {
    to: Module,
    line: usize,
    path: String,
}

/// The module a file under src defines (`main.rs` is the binary's root, in the `cli` layer).
fn module_of(rel: &str) -> Module {
    let stem = rel.trim_end_matches(".rs");
    let mut m: Module = stem.split('/').map(String::from).collect();
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    match m.as_slice() {
        [one] if one == "lib" => Vec::new(),
        [one] if one == "main" => vec!["cli".into(), "main".into()],
        _ => m,
    }
}

/// The top-level module (layer) of a module.
fn layer(m: &[String]) -> &str {
    m.first().map_or("lib", String::as_str)
}

/// `src` without comments (blanked, so offsets keep their lines) and without its test module.
fn code_of(src: &str) -> String {
    let cut = src.find("#[cfg(test)]\nmod ").unwrap_or(src.len());
    src[..cut]
        .lines()
        .map(|l| l.find("//").map_or(l.to_string(), |i| format!("{}{}", &l[..i], " ".repeat(l.len() - i))))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e` (`as` renames dropped).
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_string()];
    };
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let (prefix, body) = (&tree[..open], &tree[open + 1..close]);
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).flat_map(|p| expand(p).into_iter().map(|q| format!("{prefix}{q}"))).collect()
}

/// The longest known module that `path`, written in module `from`, names.
fn resolve(from: &[String], path: &str, modules: &BTreeSet<Module>) -> Option<Module> {
    let segs: Vec<&str> = path.split("::").map(|s| s.trim().trim_start_matches("r#")).filter(|s| !s.is_empty()).collect();
    let (mut full, rest): (Module, &[&str]) = match segs.first().copied() {
        Some("crate") if layer(from) == "cli" && segs.get(1).is_some_and(|s| *s != "cli") => {
            (vec!["cli".into(), "main".into()], &segs[1..])
        }
        Some("crate" | "dockroot") => (Vec::new(), &segs[1..]),
        Some("super" | "self") => {
            let n = segs.iter().take_while(|s| matches!(**s, "super" | "self")).count();
            let ups = segs[..n].iter().filter(|s| **s == "super").count();
            (from[..from.len().saturating_sub(ups)].to_vec(), &segs[n..])
        }
        _ => return None,
    };
    full.extend(rest.iter().map(|s| s.to_string()));
    (0..=full.len()).rev().map(|k| full[..k].to_vec()).find(|m| modules.contains(m))
}

/// Whether `text[at..]` starts a path (not the tail of `a::b` or of an identifier).
fn starts_path(text: &str, at: usize) -> bool {
    text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '#'))
}

/// Every arrow out of one file whose module is `from`.
fn arrows(from: &[String], src: &str, modules: &BTreeSet<Module>) -> Vec<Arrow> {
    let code = code_of(src);
    let line = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut add = |at: usize, path: &str| {
        // The crate root only declares modules; an arrow to it says nothing.
        if let Some(to) = resolve(from, path, modules).filter(|t| t != from && !t.is_empty()) {
            out.push(Arrow { to, line: line(at), path: path.to_string() });
        }
    };
    let mut i = 0;
    while let Some(p) = code[i..].find("use ") {
        let at = i + p;
        i = at + 4;
        let lead = code[..at].rsplit('\n').next().unwrap_or("").trim();
        if matches!(lead, "" | "pub" | "pub(crate)" | "pub(super)") {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            expand(&code[i..end].replace('\n', " ")).iter().for_each(|q| add(at, q));
        }
    }
    // Child modules named without `self::` count too (`live::run()` in backup/mod.rs).
    let children: Vec<String> =
        code.lines().filter_map(|l| l.trim().strip_suffix(';')?.rsplit_once("mod ").map(|(_, n)| n.to_string())).collect();
    let roots = ["crate::", "super::", "self::", "dockroot::"];
    for (at, _) in code.match_indices("::") {
        let start = code[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '#')).map_or(0, |s| s + 1);
        let head = &code[start..at];
        let child = children.iter().find(|c| c.trim_start_matches("r#") == head.trim_start_matches("r#"));
        if starts_path(&code, start) && (roots.iter().any(|r| r.trim_end_matches("::") == head) || child.is_some()) {
            let end = code[at..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '#')).map_or(code.len(), |e| at + e);
            let path = code[start..end].trim_end_matches(':');
            add(start, &if child.is_some() { format!("self::{path}") } else { path.to_string() });
        }
    }
    // A `use` line is seen by both scans.
    let mut seen = BTreeSet::new();
    out.retain(|a| seen.insert((a.to.clone(), a.line)));
    out
}

/// The arrows the table forbids, as `file:line: from → to (path)`.
fn forbidden(files: &BTreeMap<String, (Module, Vec<Arrow>)>) -> Vec<String> {
    let may = |a: &str, b: &str| MAY_USE.iter().any(|(m, ok)| *m == a && ok.contains(&b));
    let mut bad = Vec::new();
    for (file, (from, arrows)) in files {
        for a in arrows.iter().filter(|a| layer(from) != layer(&a.to) && !may(layer(from), layer(&a.to))) {
            bad.push(format!("{file}:{}: {} → {} ({})", a.line, layer(from), layer(&a.to), a.path));
        }
    }
    bad
}

/// Files that import each other in a cycle (a parent and its own children exempt), each with one arrow of the cycle.
fn cycles(files: &BTreeMap<String, (Module, Vec<Arrow>)>) -> Vec<String> {
    let file_of: BTreeMap<&Module, &String> = files.iter().map(|(f, (m, _))| (m, f)).collect();
    let family = |a: &[String], b: &[String]| a.len() + 1 == b.len() && b.starts_with(a) || b.len() + 1 == a.len() && a.starts_with(b);
    let next = |m: &Module| -> Vec<(&Module, usize)> {
        let (_, arrows) = &files[file_of[m]];
        arrows.iter().filter(|a| !family(m, &a.to)).filter_map(|a| file_of.get_key_value(&a.to).map(|(k, _)| (*k, a.line))).collect()
    };
    let mut bad = Vec::new();
    for start in file_of.keys() {
        // Reachable from each successor back to `start`: the first arrow of a cycle through it.
        for (first, line) in next(start) {
            let (mut seen, mut todo) = (BTreeSet::new(), vec![first]);
            while let Some(m) = todo.pop() {
                if m == *start {
                    bad.push(format!("{}:{line}: {} → {} is part of an import cycle", file_of[start], start.join("::"), first.join("::")));
                    break;
                }
                if seen.insert(m) {
                    todo.extend(next(m).into_iter().map(|(n, _)| n));
                }
            }
        }
    }
    bad
}

/// Every file under `src` with its module and arrows.
fn read_tree(src: &Path) -> BTreeMap<String, (Module, Vec<Arrow>)> {
    let texts: BTreeMap<String, String> = walkdir::WalkDir::new(src)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs") && !e.path().ends_with("layers.rs"))
        .map(|e| (e.path().strip_prefix(src).unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
        .collect();
    analyse(&texts)
}

fn analyse(texts: &BTreeMap<String, String>) -> BTreeMap<String, (Module, Vec<Arrow>)> {
    let modules: BTreeSet<Module> = texts.keys().map(|f| module_of(f)).collect();
    texts.iter().map(|(f, t)| (f.clone(), (module_of(f), arrows(&module_of(f), t, &modules)))).collect()
}

#[test]
fn every_import_follows_the_layers_and_no_files_import_each_other_in_a_cycle() {
    let files = read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let n: usize = files.values().map(|(_, a)| a.len()).sum();
    assert!(n > 500, "the checker found only {n} imports; is it still parsing src?");
    let bad = forbidden(&files);
    assert!(bad.is_empty(), "imports against the layers (see MAY_USE in src/layers.rs):\n{}", bad.join("\n"));
    let bad = cycles(&files);
    assert!(bad.is_empty(), "files that import each other in a cycle:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_catches_an_upward_import_and_a_cycle() {
    let texts: BTreeMap<String, String> = [
        ("lib.rs", "pub mod plan;\npub mod sys;\npub mod tree;\n"),
        ("plan/mod.rs", "pub struct Env;\n"),
        ("sys/mod.rs", "pub mod fs;\npub mod seen;\n"),
        ("sys/fs.rs", "// use crate::plan::Env; in a comment is no import\nuse super::seen::same;\n"),
        ("sys/seen.rs", "pub fn same() {}\nfn f() { super::fs::g(); }\n"),
        ("tree/mod.rs", "use crate::{sys, plan::Env};\n#[cfg(test)]\nmod tests {\n    use crate::plan::Env;\n}\n"),
    ]
    .into_iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    let files = analyse(&texts);
    assert_eq!(forbidden(&files), ["tree/mod.rs:1: tree → plan (crate::plan::Env)"]);
    let c = cycles(&files);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[0].starts_with("sys/fs.rs:2: sys::fs → sys::seen"), "{c:?}");
}
