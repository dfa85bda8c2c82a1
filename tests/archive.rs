//! Archive round trips on a real filesystem (run as root): every entry type
//! through dockroot's writer and extractor, GNU tar interop, hostile archives,
//! and damage detection by `verify`.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use dockroot::archive::header::{self, Fields, flag};
use dockroot::archive::{self, ArchiveError, ArchiveWriter, WriterOptions};
use dockroot::manifest::format::{HEADER, TRAILER_PREFIX};
use dockroot::manifest::{Body, Field, Record};
use dockroot::sys::{self, Kind, Timespec, stat};

fn tmp() -> tempfile::TempDir {
    assert_eq!(unsafe { libc::geteuid() }, 0, "tests/archive.rs needs root (devices, chown, trusted.* xattrs)");
    tempfile::Builder::new().prefix("dockroot-archive-").tempdir_in("/var/tmp").unwrap()
}

fn c(s: &[u8]) -> CString {
    CString::new(s).unwrap()
}

fn set_time(p: &Path, sec: i64, nsec: u32) {
    let dir = sys::open_dir_path(p.parent().unwrap()).unwrap();
    let t = Timespec { sec, nsec };
    sys::set_times_at(dir.as_fd(), &c(p.file_name().unwrap().as_bytes()), t, t).unwrap();
}

fn setx(p: &Path, k: &str, v: &[u8]) {
    xattr::set(p, k, v).unwrap_or_else(|e| panic!("setxattr {k} on {}: {e}", p.display()));
}

/// Builds a tree with every entry type and tricky metadata. Returns the
/// relative path of the > PATH_MAX file.
fn build_tree(root: &Path) -> Vec<u8> {
    let d = |p: &str| fs::create_dir_all(root.join(p)).unwrap();
    d("image/overlay2/l");
    d("overlay2/abc/diff/etc");
    d("overlay2/abc/work");
    d("volumes/v1/_data");
    fs::write(root.join("overlay2/abc/diff/etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("overlay2/abc/diff/empty"), b"").unwrap();
    let mut big = Vec::new();
    for i in 0..300_000u32 {
        big.extend_from_slice(&i.to_le_bytes());
    }
    fs::write(root.join("volumes/v1/_data/big.bin"), &big).unwrap();
    // Sparse: 1 GiB with 3 MiB of data in three places.
    let f = File::create(root.join("volumes/v1/_data/sparse.img")).unwrap();
    f.set_len(1 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    for (i, off) in [0u64, 300 << 20, 700 << 20].iter().enumerate() {
        f.write_all_at(&vec![i as u8 + 1; 1 << 20], *off).unwrap();
    }
    drop(f);
    // Hardlinks across directories.
    fs::hard_link(root.join("overlay2/abc/diff/etc/hosts"), root.join("volumes/v1/_data/hosts.link")).unwrap();
    symlink("../diff", root.join("overlay2/abc/work/rel")).unwrap();
    symlink("/nonexistent/abs", root.join("image/overlay2/l/ABS")).unwrap();
    let mk = |p: &str, mode: u32, dev: u64| {
        let cp = c(root.join(p).as_os_str().as_bytes());
        assert_eq!(unsafe { libc::mknod(cp.as_ptr(), mode | 0o640, dev) }, 0, "mknod {p}");
    };
    mk("overlay2/abc/diff/whiteout", libc::S_IFCHR, 0);
    mk("overlay2/abc/diff/loop", libc::S_IFBLK, libc::makedev(7, 200));
    mk("overlay2/abc/diff/fifo", libc::S_IFIFO, 0);
    let _sock = std::os::unix::net::UnixListener::bind(root.join("overlay2/abc/diff/sock")).unwrap();
    // xattrs.
    setx(&root.join("overlay2/abc/diff/etc"), "trusted.overlay.opaque", b"y");
    let cap = [0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    fs::write(root.join("overlay2/abc/diff/ping"), b"\x7fELF fake").unwrap();
    setx(&root.join("overlay2/abc/diff/ping"), "security.capability", &cap);
    setx(&root.join("overlay2/abc/diff/etc/hosts"), "user.multi", b"line1\nline2\0nul\n");
    setx(&root.join("volumes/v1/_data"), "user.dir", b"d\nx");
    setx(&root.join("image/overlay2/l/ABS"), "trusted.sym", b"on a symlink");
    let st =
        Command::new("setfacl").args(["-m", "u:1000:rw,g:2000:r", "-d", "-m", "u:1000:rwx"]).arg(root.join("volumes/v1")).status().unwrap();
    assert!(st.success());
    let st = Command::new("setfacl").args(["-m", "u:1001:r"]).arg(root.join("volumes/v1/_data/big.bin")).status().unwrap();
    assert!(st.success());
    // Modes and owners.
    fs::set_permissions(root.join("overlay2/abc/diff/ping"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("overlay2/abc/work"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::lchown(root.join("overlay2/abc/diff/etc/hosts"), Some(231072), Some(231072)).unwrap();
    std::os::unix::fs::lchown(root.join("image/overlay2/l/ABS"), Some(231073), Some(231074)).unwrap();
    // An id too large for the octal header field travels as PAX uid/gid.
    fs::write(root.join("overlay2/abc/diff/bigid"), b"x").unwrap();
    std::os::unix::fs::lchown(root.join("overlay2/abc/diff/bigid"), Some(4_000_000_000), Some(3_000_000)).unwrap();
    // chown clears the capability: set it again.
    std::os::unix::fs::lchown(root.join("overlay2/abc/diff/ping"), Some(0), Some(0)).unwrap();
    // Non-UTF-8 name.
    fs::write(root.join(OsStr::from_bytes(b"overlay2/abc/diff/caf\xe9\xff")), b"latin1").unwrap();
    // Path longer than PATH_MAX, created fd by fd.
    let mut fd = sys::open_dir_path(&root.join("overlay2")).unwrap();
    let mut rel = b"overlay2".to_vec();
    let comp = vec![b'd'; 200];
    for _ in 0..25 {
        sys::mkdir_at(fd.as_fd(), &c(&comp), 0o755).unwrap();
        fd = sys::open_dir_at(fd.as_fd(), &c(&comp)).unwrap();
        rel.push(b'/');
        rel.extend_from_slice(&comp);
    }
    let f = sys::create_file_at(fd.as_fd(), c"deep").unwrap();
    (&f).write_all(b"deep file").unwrap();
    sys::fchmod(f.as_fd(), 0o644).unwrap();
    rel.extend_from_slice(b"/deep");
    // ns mtimes last (files, symlinks, dirs), deepest first.
    set_time(&root.join("overlay2/abc/diff/etc/hosts"), 1_600_000_000, 123_456_789);
    set_time(&root.join("image/overlay2/l/ABS"), 1_500_000_000, 987_654_321);
    set_time(&root.join("overlay2/abc/work/rel"), 1_400_000_000, 1);
    for (i, p) in ["overlay2/abc/diff/etc", "overlay2/abc/diff", "overlay2/abc/work", "volumes/v1/_data", "volumes/v1", "image/overlay2/l"]
        .iter()
        .enumerate()
    {
        set_time(&root.join(p), 1_700_000_000 + i as i64, 111_111_111 * (i as u32 + 1));
    }
    rel
}

#[derive(Debug, PartialEq)]
struct Snap {
    kind: Kind,
    perm: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: Timespec,
    rdev: u64,
    target: Option<Vec<u8>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    hash: Option<[u8; 32]>,
    /// The first path (in walk order) with the same inode.
    link: Option<Vec<u8>>,
}

/// Snapshots a tree fd by fd (so > PATH_MAX works). Blocks of big sparse files are checked separately.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Snap> {
    fn rec(dir: BorrowedFd<'_>, rel: Vec<u8>, out: &mut BTreeMap<Vec<u8>, Snap>, inos: &mut BTreeMap<u64, Vec<u8>>) {
        for name in sys::list_dir(dir).unwrap() {
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(name.as_bytes());
            let m = stat::lstat_at(dir, &name).unwrap();
            let mut s = Snap {
                kind: m.kind,
                perm: if m.kind == Kind::Symlink { 0 } else { m.perm },
                uid: m.uid,
                gid: m.gid,
                size: if m.kind == Kind::File { m.size } else { 0 },
                mtime: m.mtime,
                rdev: m.rdev,
                target: None,
                xattrs: sys::xattr::read_path_fd(sys::seen::open_seen(dir, &name, &m).unwrap().0.as_fd()).unwrap(),
                hash: None,
                link: None,
            };
            if m.kind != Kind::Dir && m.nlink > 1 {
                s.link = Some(inos.entry(m.ino).or_insert_with(|| r.clone()).clone());
            }
            match m.kind {
                Kind::Symlink => s.target = Some(sys::readlink_at(dir, &name).unwrap()),
                Kind::File => {
                    let f = sys::seen::open_file_seen(dir, &name, &m).unwrap().0;
                    let mut h = blake3::Hasher::new();
                    h.update_reader(&f).unwrap();
                    s.hash = Some(*h.finalize().as_bytes());
                }
                Kind::Dir => {
                    let sub = sys::open_dir_at(dir, &name).unwrap();
                    rec(sub.as_fd(), r.clone(), out, inos);
                }
                _ => {}
            }
            out.insert(r, s);
        }
    }
    let fd = sys::open_dir_path(root).unwrap();
    let mut out = BTreeMap::new();
    rec(fd.as_fd(), Vec::new(), &mut out, &mut BTreeMap::new());
    out
}

fn compare(a: &BTreeMap<Vec<u8>, Snap>, b: &BTreeMap<Vec<u8>, Snap>, skip: &dyn Fn(&[u8]) -> bool) {
    let keys: std::collections::BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).filter(|k| !skip(k)).collect();
    let mut bad = Vec::new();
    for k in keys {
        if a.get(k) != b.get(k) {
            bad.push(format!("{}:\n  src: {:?}\n  dst: {:?}", k.escape_ascii(), a.get(k), b.get(k)));
        }
    }
    assert!(bad.is_empty(), "trees differ:\n{}", bad.join("\n"));
}

fn write_archive(src: &Path, out: &Path, host_cfg: &Path) -> (Vec<archive::EntryRecord>, Vec<u8>) {
    write_archive_with(src, out, br#"{"version":1}"#, &[(b"daemon.json", host_cfg)], &mut |r| vec![r])
}

/// Writes `src` as an archive whose manifest is made the way `backup` makes
/// it, except that `alter` replaces each record by what it returns (none:
/// the member is extra; more: entries that are missing). Returns the
/// writer's records and the manifest.
pub(crate) fn write_archive_with(
    src: &Path,
    out: &Path,
    meta_json: &[u8],
    config: &[(&[u8], &Path)],
    alter: &mut dyn FnMut(Record) -> Vec<Record>,
) -> (Vec<archive::EntryRecord>, Vec<u8>) {
    let f = File::create(out).unwrap();
    let mut w = ArchiveWriter::new(f, &WriterOptions::default(), meta_json).unwrap();
    for (name, host) in config {
        w.add_config(name, host).unwrap();
    }
    let mut recs = Vec::new();
    let mut manifest = Vec::new();
    let mut n = 0;
    archive::walk(src, &mut |walked, e| {
        let r = w.add_entry(e)?;
        for m in alter(dockroot::plan::backup::complete(walked, &r)) {
            manifest.extend_from_slice(format!("{}\n", m.to_line()).as_bytes());
            n += 1;
        }
        recs.push(r);
        Ok(())
    })
    .unwrap();
    let manifest = format!("{HEADER}\n{}{TRAILER_PREFIX}{n}\n", String::from_utf8(manifest).unwrap()).into_bytes();
    let mut spool = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut spool, &manifest).unwrap();
    std::io::Seek::rewind(&mut spool).unwrap();
    w.finish(spool, manifest.len() as u64).unwrap();
    (recs, manifest)
}

struct Fixture {
    _t: tempfile::TempDir,
    base: PathBuf,
    deep: Vec<u8>,
    records: Vec<archive::EntryRecord>,
    manifest: Vec<u8>,
}

fn fixture() -> Fixture {
    let t = tmp();
    let base = t.path().to_path_buf();
    fs::create_dir(base.join("src")).unwrap();
    fs::write(base.join("daemon.json"), b"{\"data-root\":\"/x\"}").unwrap();
    let deep = build_tree(&base.join("src"));
    let (records, manifest) = write_archive(&base.join("src"), &base.join("a.tar.zst"), &base.join("daemon.json"));
    Fixture { _t: t, base, deep, records, manifest }
}

#[test]
fn round_trip_every_type() {
    let fx = fixture();
    let base = &fx.base;
    fs::create_dir(base.join("dst")).unwrap();
    let mut a = archive::open(&base.join("a.tar.zst")).unwrap();
    assert_eq!(a.meta, br#"{"version":1}"#);
    let dst = sys::open_dir_path(&base.join("dst")).unwrap();
    let mut manifest = Vec::new();
    let ex = archive::extract(&mut a, dst.as_fd(), &mut manifest).unwrap();
    assert_eq!(manifest, fx.manifest);
    assert_eq!(ex.manifest_bytes, fx.manifest.len() as u64);
    assert_eq!(ex.config, vec![(b"daemon.json".to_vec(), b"{\"data-root\":\"/x\"}".to_vec())]);
    assert_eq!(ex.entries, fx.records.len() as u64);
    let s = snapshot(&base.join("src"));
    let d = snapshot(&base.join("dst"));
    assert!(s.contains_key(&fx.deep), "deep path present in the source");
    assert_eq!(s.get(b"overlay2/abc/diff/sock".as_slice()).unwrap().kind, Kind::Socket);
    compare(&s, &d, &|_| false);
    // The root's own metadata.
    let (rs, rd) = (fs::metadata(base.join("src")).unwrap(), fs::metadata(base.join("dst")).unwrap());
    assert_eq!(rs.permissions().mode(), rd.permissions().mode());
    // Holes survived: 1 GiB logical, about 3 MiB allocated.
    let m = fs::metadata(base.join("dst/volumes/v1/_data/sparse.img")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m.size(), 1 << 30);
    assert!(m.blocks() * 512 < 8 << 20, "sparse file allocated {} bytes", m.blocks() * 512);
}

#[test]
fn gnu_tar_restores_the_same_tree() {
    let fx = fixture();
    let base = &fx.base;
    fs::create_dir(base.join("gnu")).unwrap();
    let out = Command::new("tar")
        .args(["--zstd", "--xattrs", "--xattrs-include=*", "--acls", "-xpf"])
        .arg(base.join("a.tar.zst"))
        .arg("-C")
        .arg(base.join("gnu"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // GNU tar cannot create the > PATH_MAX path; nothing else may fail.
    for line in err.lines() {
        let ok = line.contains("too long")
            || line.contains("Exiting with failure")
            || line.contains("unknown extended header keyword 'DOCKROOT.type'");
        assert!(ok, "GNU tar: {line}");
    }
    assert_eq!(fs::read(base.join("gnu/.dockroot/meta.json")).unwrap(), br#"{"version":1}"#);
    let s = snapshot(&base.join("src"));
    let g = snapshot(&base.join("gnu/data"));
    let deep = fx.deep.clone();
    compare(&s, &g, &|k: &[u8]| k == b"overlay2/abc/diff/sock" || k.starts_with(&deep[..209]));
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(base.join("gnu/data/volumes/v1/_data/sparse.img")).unwrap();
    assert!(m.blocks() * 512 < 8 << 20, "GNU tar kept holes: {} bytes allocated", m.blocks() * 512);
}

/// The PAX records of a member as the tar crate parses them, by key, and
/// how many records it could not parse.
fn pax_records<R: std::io::Read>(e: &mut tar::Entry<'_, R>) -> (BTreeMap<Vec<u8>, Vec<u8>>, usize) {
    let (mut ok, mut bad) = (BTreeMap::new(), 0);
    for x in e.pax_extensions().unwrap().into_iter().flatten() {
        match x {
            Ok(x) => drop(ok.insert(x.key_bytes().to_vec(), x.value_bytes().to_vec())),
            Err(_) => bad += 1,
        }
    }
    (ok, bad)
}

/// The tar crate, a reader that shares no code with dockroot, parses every
/// member and finds the paths, types, link targets, devices, contents, ns
/// mtimes and xattrs (exact binary values in `SCHILY.xattr.*`) that
/// dockroot's records and the source tree say.
///
/// Its known limits (tar 0.4.46):
/// - PAX sparse 1.0 (GNU tar's `--sparse --format=posix`, the map at the
///   start of the data) is not understood: a sparse file is a regular member
///   named `GNUSparseFile.0/<base>` holding the map and the data extents. For
///   those only the PAX `GNU.sparse.*` records are checked.
/// - PAX records are split at newlines before their length is read
///   (composefs/tar-rs#452, #428), so a value holding `\n` comes back as
///   malformed records, and a value ending in `\n` hides every record after
///   it. For such members only the records it did parse are checked. GNU tar
///   restores those values exactly in `gnu_tar_restores_the_same_tree`.
#[test]
fn tar_crate_reads_every_member() {
    let fx = fixture();
    let src = snapshot(&fx.base.join("src"));
    let root_xattrs = sys::xattr::read_fd(sys::open_dir_path(&fx.base.join("src")).unwrap().as_fd()).unwrap();
    let z = zstd::stream::read::Decoder::new(File::open(fx.base.join("a.tar.zst")).unwrap()).unwrap();
    let mut ar = tar::Archive::new(z);
    let mut records = fx.records.iter();
    let (mut others, mut sparse, mut newline_members) = (Vec::new(), 0, 0);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap_or_else(|err| panic!("tar crate cannot parse a member: {err}"));
        let (pax, bad) = pax_records(&mut e);
        let ty = e.header().entry_type();
        let mut path = e.path_bytes().into_owned();
        let is_sparse = path.starts_with(b"GNUSparseFile.0/");
        if is_sparse {
            assert_eq!((&pax[&b"GNU.sparse.major"[..]][..], &pax[&b"GNU.sparse.minor"[..]][..]), (&b"1"[..], &b"0"[..]));
            path = pax[&b"GNU.sparse.name"[..]].clone();
            sparse += 1;
        }
        let Some(rel) = path.strip_prefix(b"data/") else {
            others.push(path);
            continue;
        };
        let rec = records.next().unwrap_or_else(|| panic!("member {} has no record", path.escape_ascii()));
        let at = rec.path.escape_ascii().to_string();
        let want = if rec.kind == Kind::Dir && !rec.path.is_empty() { [&rec.path[..], b"/"].concat() } else { rec.path.clone() };
        assert_eq!(rel, &want[..], "member path");
        let want_ty = match (rec.kind, &rec.hardlink_to) {
            (_, Some(_)) => tar::EntryType::Link,
            (Kind::Dir, _) => tar::EntryType::Directory,
            (Kind::Symlink, _) => tar::EntryType::Symlink,
            (Kind::Char, _) => tar::EntryType::Char,
            (Kind::Block, _) => tar::EntryType::Block,
            (Kind::Fifo, _) => tar::EntryType::Fifo,
            (Kind::File | Kind::Socket, _) => tar::EntryType::Regular,
        };
        assert_eq!(ty, want_ty, "{at}: type");
        let snap = src.get(&rec.path);
        // A hardlink member carries no xattrs: they travel with its first name.
        let want_x: BTreeMap<Vec<u8>, Vec<u8>> = match &rec.hardlink_to {
            Some(_) => BTreeMap::new(),
            None => snap.map_or(root_xattrs.clone(), |s| s.xattrs.clone()).into_iter().collect(),
        };
        let xattrs: BTreeMap<Vec<u8>, Vec<u8>> =
            pax.iter().filter_map(|(k, v)| Some((k.strip_prefix(b"SCHILY.xattr.")?.to_vec(), v.clone()))).collect();
        // tar-rs#452: a newline in a value is the only reason for a bad record.
        let newline = want_x.values().any(|v| v.contains(&b'\n'));
        assert_eq!(bad > 0, newline, "{at}: {bad} PAX records the tar crate cannot parse");
        if newline {
            newline_members += 1;
            for (k, v) in &xattrs {
                assert_eq!(want_x.get(k), Some(v), "{at}: xattr {}", k.escape_ascii());
            }
        } else {
            assert_eq!(xattrs, want_x, "{at}: xattrs");
        }
        let Some(snap) = snap else { continue }; // The root: nothing more to compare.
        // Whole seconds in the header; nanoseconds in PAX `mtime`, which a
        // newline record before it can hide (see above).
        assert_eq!(e.header().mtime().unwrap(), snap.mtime.sec as u64, "{at}: mtime");
        if !newline && snap.mtime.nsec != 0 {
            let want = format!("{}.{:09}", snap.mtime.sec, snap.mtime.nsec).into_bytes();
            assert_eq!(pax.get(&b"mtime"[..]), Some(&want), "{at}: PAX mtime");
        }
        if let Some(first) = &rec.hardlink_to {
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), [&b"data/"[..], first].concat(), "{at}: hardlink");
            continue;
        }
        match rec.kind {
            Kind::Symlink => assert_eq!(e.link_name_bytes().as_deref(), snap.target.as_deref(), "{at}: target"),
            Kind::Char | Kind::Block => {
                let dev = (e.header().device_major().unwrap(), e.header().device_minor().unwrap());
                assert_eq!(dev, (Some(libc::major(snap.rdev)), Some(libc::minor(snap.rdev))), "{at}: device");
            }
            Kind::Socket => assert_eq!(pax.get(&b"DOCKROOT.type"[..]).map(Vec::as_slice), Some(&b"socket"[..]), "{at}"),
            Kind::File if is_sparse => {
                assert_eq!(pax[&b"GNU.sparse.realsize"[..]], rec.size.to_string().into_bytes(), "{at}: realsize");
            }
            Kind::File => {
                let mut h = blake3::Hasher::new();
                let n = std::io::copy(&mut e, &mut h).unwrap();
                assert_eq!((n, Some(*h.finalize().as_bytes())), (rec.size, rec.hash), "{at}: content");
            }
            _ => {}
        }
    }
    assert!(records.next().is_none(), "records without a member");
    assert_eq!(sparse, 1, "the sparse file is one PAX sparse member");
    // hosts and volumes/v1/_data carry xattr values with newlines (the
    // hardlink to hosts carries none: xattrs belong to the inode).
    assert_eq!(newline_members, 2);
    assert_eq!(others, [&b".dockroot/meta.json"[..], b".dockroot/config/daemon.json", b".dockroot/manifest"]);
}

// ---- hostile archives ----

fn member(out: &mut Vec<u8>, pax: &[(&[u8], &[u8])], f: Fields, data: &[u8]) {
    if !pax.is_empty() {
        let mut p = Vec::new();
        for (k, v) in pax {
            header::pax_record(&mut p, k, v);
        }
        raw_member(out, Fields { name: b"PaxHeaders/x".to_vec(), typeflag: flag::PAX, size: p.len() as u64, ..Default::default() }, &p);
    }
    raw_member(out, Fields { size: data.len() as u64, ..f }, data);
}

fn raw_member(out: &mut Vec<u8>, f: Fields, data: &[u8]) {
    out.extend_from_slice(&header::build(&f));
    out.extend_from_slice(data);
    out.resize(out.len() + header::padding(data.len() as u64) as usize, 0);
}

fn file(name: &[u8]) -> Fields {
    Fields { name: name.to_vec(), mode: 0o644, typeflag: flag::FILE, ..Default::default() }
}

fn with_meta(body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut t = Vec::new();
    member(&mut t, &[], file(b".dockroot/meta.json"), b"{}");
    member(&mut t, &[], Fields { name: b"data/".to_vec(), mode: 0o755, typeflag: flag::DIR, ..Default::default() }, b"");
    body(&mut t);
    member(&mut t, &[], file(b".dockroot/manifest"), b"m");
    t.extend_from_slice(&[0u8; 1024]);
    zstd::encode_all(&t[..], 3).unwrap()
}

/// Extracts `bytes` into base/out/staging and returns the error; asserts
/// that nothing appeared in base/out besides the staging directory.
fn extract_err(bytes: &[u8]) -> ArchiveError {
    let t = tmp();
    fs::create_dir_all(t.path().join("out/staging")).unwrap();
    let p = t.path().join("evil.tar.zst");
    fs::write(&p, bytes).unwrap();
    let r = archive::open(&p).and_then(|mut a| {
        let fd = sys::open_dir_path(&t.path().join("out/staging")).unwrap();
        archive::extract(&mut a, fd.as_fd(), &mut std::io::sink())
    });
    let names: Vec<_> = fs::read_dir(t.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsStr::new("staging")], "something was written outside staging");
    assert!(!Path::new("/tmp/dockroot-pwned").exists());
    r.expect_err("hostile archive was accepted")
}

fn expect(e: ArchiveError, what: &str) {
    let s = e.to_string();
    assert!(s.contains(what), "error `{s}` does not mention `{what}`");
}

#[test]
fn rejects_dotdot_and_absolute_paths() {
    expect(extract_err(&with_meta(|t| member(t, &[], file(b"data/../pwned"), b"x"))), "`..`");
    expect(extract_err(&with_meta(|t| member(t, &[(b"path", b"data/a/../../../pwned")], file(b"x"), b"x"))), "`..`");
    expect(extract_err(&with_meta(|t| member(t, &[], file(b"/tmp/dockroot-pwned"), b"x"))), "outside data/");
    expect(extract_err(&with_meta(|t| member(t, &[], file(b"data//tmp/x"), b"x"))), "absolute path");
    expect(extract_err(&with_meta(|t| member(t, &[], file(b"data/a//x"), b"x"))), "empty path component");
}

#[test]
fn rejects_paths_through_symlinks() {
    let e = extract_err(&with_meta(|t| {
        member(
            t,
            &[],
            Fields { name: b"data/l".to_vec(), typeflag: flag::SYMLINK, linkname: b"../..".to_vec(), ..Default::default() },
            b"",
        );
        member(t, &[], file(b"data/l/pwned"), b"x");
    }));
    expect(e, "not a directory");
    let e = extract_err(&with_meta(|t| {
        member(
            t,
            &[],
            Fields { name: b"data/l".to_vec(), typeflag: flag::SYMLINK, linkname: b"/tmp/dockroot-pwned".to_vec(), ..Default::default() },
            b"",
        );
        member(t, &[], file(b"data/l"), b"x");
    }));
    expect(e, "repeat a path");
}

#[test]
fn rejects_bad_hardlinks() {
    let link = |target: &[u8]| Fields { name: b"data/h".to_vec(), typeflag: flag::LINK, linkname: target.to_vec(), ..Default::default() };
    expect(extract_err(&with_meta(|t| member(t, &[], link(b"/etc/passwd"), b""))), "outside data/");
    expect(extract_err(&with_meta(|t| member(t, &[], link(b"data/../../etc/passwd"), b""))), "`..`");
    expect(extract_err(&with_meta(|t| member(t, &[], link(b"data/later"), b""))), "not an earlier member");
    // Earlier in walk order but never extracted: no set of seen paths is needed to refuse it.
    expect(extract_err(&with_meta(|t| member(t, &[], link(b"data/a"), b""))), "not an earlier member");
    let dir = |name: &[u8]| Fields { name: name.to_vec(), mode: 0o755, typeflag: flag::DIR, ..Default::default() };
    let e = extract_err(&with_meta(|t| {
        member(t, &[], dir(b"data/d/"), b"");
        member(t, &[], link(b"data/d"), b"");
    }));
    expect(e, "hardlink to a directory");
}

/// The extractor keeps no per-entry state, so it needs the writer's order:
/// members out of walk order, or a path twice, are refused.
#[test]
fn extract_rejects_members_out_of_walk_order() {
    expect(
        extract_err(&with_meta(|t| {
            member(t, &[], file(b"data/b"), b"x");
            member(t, &[], file(b"data/a"), b"x");
        })),
        "out of walk order",
    );
    expect(
        extract_err(&with_meta(|t| {
            member(t, &[], file(b"data/a.b"), b"x");
            member(t, &[], file(b"data/a/b"), b"x");
        })),
        "out of walk order",
    );
    let dir = Fields { name: b"data/d/".to_vec(), mode: 0o755, typeflag: flag::DIR, ..Default::default() };
    expect(
        extract_err(&with_meta(|t| {
            member(t, &[], dir.clone(), b"");
            member(t, &[], dir.clone(), b"");
        })),
        "repeat a path",
    );
}

#[test]
fn rejects_huge_and_malformed_pax() {
    let huge = vec![b'a'; 2 << 20];
    expect(extract_err(&with_meta(|t| member(t, &[(b"comment", &huge)], file(b"data/x"), b""))), "limit");
    // A record whose length points into the next record.
    let e = extract_err(&with_meta(|t| {
        let p = b"9 path=data/x\nsecret=1\n".to_vec();
        raw_member(t, Fields { name: b"P".to_vec(), typeflag: flag::PAX, size: p.len() as u64, ..Default::default() }, &p);
        raw_member(t, file(b"data/y"), b"");
    }));
    expect(e, "malformed");
    // Newlines in values are fine for xattrs, but a bad number is not.
    expect(extract_err(&with_meta(|t| member(t, &[(b"uid", b"12\n34")], file(b"data/x"), b""))), "bad PAX number");
    expect(extract_err(&with_meta(|t| member(t, &[(b"path", b"data/a\n/../../pwned")], file(b"x"), b""))), "`..`");
    // A header with a bad octal field.
    let e = extract_err(&with_meta(|t| {
        let mut h = header::build(&file(b"data/x"));
        h[100..108].copy_from_slice(b"9999999\0");
        let sum: u32 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        t.extend_from_slice(&h);
    }));
    expect(e, "bad octal");
}

#[test]
fn newline_xattr_values_are_kept() {
    let t = tmp();
    let bytes = with_meta(|t| member(t, &[(b"SCHILY.xattr.user.a", b"x\ny\0z"), (b"SCHILY.xattr.user.b", b"2")], file(b"data/f"), b"hi"));
    let p = t.path().join("ok.tar.zst");
    fs::write(&p, bytes).unwrap();
    fs::create_dir(t.path().join("s")).unwrap();
    let fd = sys::open_dir_path(&t.path().join("s")).unwrap();
    archive::extract(&mut archive::open(&p).unwrap(), fd.as_fd(), &mut std::io::sink()).unwrap();
    assert_eq!(xattr::get(t.path().join("s/f"), "user.a").unwrap().unwrap(), b"x\ny\0z");
    assert_eq!(xattr::get(t.path().join("s/f"), "user.b").unwrap().unwrap(), b"2");
}

#[test]
fn rejects_non_dockroot_inputs() {
    let mut gz = Vec::new();
    gz.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    expect(extract_err(&gz), "not a dockroot archive (gzip data)");
    expect(extract_err(b""), "empty input");
    let mut plain = Vec::new();
    member(&mut plain, &[], file(b"etc/passwd"), b"root");
    plain.extend_from_slice(&[0; 1024]);
    expect(extract_err(&zstd::encode_all(&plain[..], 3).unwrap()), "not .dockroot/meta.json");
    expect(extract_err(&plain), "first member is `etc/passwd`, not .dockroot/meta.json");
    expect(extract_err(b"garbage garbage"), "not a dockroot archive");
}

#[test]
fn verify_detects_truncation_and_bit_flips() {
    let t = tmp();
    fs::create_dir(t.path().join("src")).unwrap();
    fs::write(t.path().join("cfg"), b"{}").unwrap();
    let mut data = Vec::new();
    let mut x: u64 = 42;
    for _ in 0..2_000_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        data.push((x >> 56) as u8 & 0x0f);
    }
    fs::write(t.path().join("src/f"), &data).unwrap();
    let a = t.path().join("a.tar.zst");
    write_archive(&t.path().join("src"), &a, &t.path().join("cfg"));
    archive::verify(archive::open(&a).unwrap()).unwrap();
    let good = fs::read(&a).unwrap();
    let cut = t.path().join("cut.tar.zst");
    fs::write(&cut, &good[..good.len() / 2]).unwrap();
    assert!(archive::open(&cut).and_then(archive::verify).is_err(), "truncated archive passed verify");
    let cut = t.path().join("cut2.tar.zst");
    fs::write(&cut, &good[..good.len() - 3]).unwrap();
    assert!(archive::open(&cut).and_then(archive::verify).is_err(), "archive missing its last bytes passed verify");
    for pos in [good.len() / 3, good.len() / 2, good.len() - 40] {
        let mut bad = good.clone();
        bad[pos] ^= 0x10;
        let p = t.path().join("flip.tar.zst");
        fs::write(&p, &bad).unwrap();
        assert!(archive::open(&p).and_then(archive::verify).is_err(), "bit flip at {pos} passed verify");
    }
}

// ---- members against the manifest ----

/// Every entry type (files, a 1 GiB sparse file, hardlinks, symlinks,
/// devices, a fifo, a socket, xattrs and ACLs, big ids, a non-UTF-8 name, a
/// path beyond PATH_MAX): the members match the manifest, ino and ctime
/// (not in archives) aside.
#[test]
fn verify_matches_every_member_with_the_manifest() {
    let fx = fixture();
    let rep = archive::verify(archive::open(&fx.base.join("a.tar.zst")).unwrap()).unwrap();
    assert!(rep.report.differences.is_empty(), "{:#?}", rep.report.differences);
    assert!(rep.ok());
    assert_eq!(rep.entries, fx.records.len() as u64);
    assert_eq!(rep.report.entries, fx.records.len() as u64);
    let files: u64 = fx.records.iter().filter(|r| r.kind == Kind::File && r.hardlink_to.is_none()).map(|r| r.size).sum();
    assert_eq!(rep.report.bytes, files);
    assert!(files > 1 << 30, "the sparse file's logical size counts");
}

/// A manifest that disagrees with the members: each kind of difference is
/// reported once, with its path and field.
#[test]
fn verify_reports_members_that_differ_from_the_manifest() {
    let t = tmp();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let a = t.path().join("lying.tar.zst");
    let ghost = |path: &[u8]| Record {
        path: path.to_vec(),
        body: Body::Fifo,
        perm: 0o600,
        uid: 0,
        gid: 0,
        mtime: Timespec::default(),
        xattrs: vec![],
    };
    write_archive_with(&src, &a, b"{}", &[], &mut |mut r| {
        match r.path.as_slice() {
            b"overlay2/abc/diff/etc/hosts" | b"volumes/v1/_data/sparse.img" => {
                if let Body::File { blake3, .. } = &mut r.body {
                    blake3[0] ^= 1;
                }
            }
            b"overlay2/abc/diff/ping" => r.perm = 0o700,
            b"overlay2/abc/diff/etc" => r.xattrs.clear(),
            b"overlay2/abc/diff/loop" => r.body = Body::Block { rdev: libc::makedev(7, 201) },
            b"volumes/v1/_data/hosts.link" => r.body = Body::Hardlink { target: b"overlay2/abc/diff/empty".to_vec() },
            b"overlay2/abc/diff/fifo" => return vec![],
            b"overlay2/abc/diff/whiteout" => return vec![r, ghost(b"overlay2/abc/diff/zz-ghost")],
            _ => {}
        }
        vec![r]
    });
    let rep = archive::verify(archive::open(&a).unwrap()).unwrap();
    assert!(!rep.ok());
    let mut got: Vec<(String, Field)> = rep.report.differences.iter().map(|d| (d.path.clone(), d.field)).collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    let want = vec![
        ("overlay2/abc/diff/etc".to_string(), Field::Xattr),
        ("overlay2/abc/diff/etc/hosts".into(), Field::Content),
        ("overlay2/abc/diff/fifo".into(), Field::Extra),
        ("overlay2/abc/diff/loop".into(), Field::Rdev),
        ("overlay2/abc/diff/ping".into(), Field::Mode),
        ("overlay2/abc/diff/zz-ghost".into(), Field::Missing),
        ("volumes/v1/_data/hosts.link".into(), Field::HardlinkGroup),
        ("volumes/v1/_data/sparse.img".into(), Field::Content),
    ];
    assert_eq!(got, want, "{:#?}", rep.report.differences);
    let hosts = rep.report.differences.iter().find(|d| d.path.ends_with("etc/hosts")).unwrap();
    assert!(hosts.to_string().starts_with("overlay2/abc/diff/etc/hosts: content: expected "), "{hosts}");
    assert!(hosts.detail.contains(", found "), "{hosts}");
}

/// A manifest that is not one is damage, not a difference.
#[test]
fn verify_rejects_an_archive_whose_manifest_is_not_a_manifest() {
    let t = tmp();
    let p = t.path().join("m.tar.zst");
    fs::write(&p, with_meta(|t| member(t, &[], file(b"data/f"), b"hi"))).unwrap();
    expect(archive::open(&p).and_then(archive::verify).unwrap_err(), ".dockroot/manifest in the archive, line 1");
    // Data members out of walk order are malformed.
    let bytes = with_meta(|t| {
        member(t, &[], file(b"data/b"), b"");
        member(t, &[], file(b"data/a"), b"");
    });
    fs::write(&p, bytes).unwrap();
    expect(archive::open(&p).and_then(archive::verify).unwrap_err(), "out of walk order");
}

/// The containerd image store's second tree (issue 8): `containerd/` with
/// its own manifest before the data-root. `verify` checks both trees, the
/// single-tree extract refuses to drop it, and `extract_trees` gives back
/// both trees bit for bit (hardlinks stay inside their own tree).
#[test]
fn two_trees_round_trip_through_verify_and_extract() {
    use dockroot::archive::layout::Tree;
    use dockroot::plan::backup::stores::write_tree;
    let t = tmp();
    let base = t.path();
    for d in ["data", "ctd", "out-data", "out-ctd"] {
        fs::create_dir(base.join(d)).unwrap();
    }
    build_tree(&base.join("data"));
    build_tree(&base.join("ctd"));
    let path = base.join("two.tar.zst");
    let mut w = ArchiveWriter::new(File::create(&path).unwrap(), &WriterOptions::default(), b"{}").unwrap();
    let p = dockroot::progress::Silent;
    let c = write_tree(&mut w, Tree::Containerd, &base.join("ctd"), &p).unwrap();
    w.end_tree(Tree::Containerd, c.manifest, c.manifest_len).unwrap();
    let d = write_tree(&mut w, Tree::Data, &base.join("data"), &p).unwrap();
    // The layout is enforced while writing: no containerd entry after the data-root.
    let e = archive::walk(&base.join("ctd"), &mut |_, e| w.add_tree_entry(Tree::Containerd, e).map(|_| ())).unwrap_err();
    assert!(e.to_string().contains("out of place"), "{e}");
    w.finish(d.manifest, d.manifest_len).unwrap();

    let rep = archive::verify(archive::open(&path).unwrap()).unwrap();
    assert!(rep.ok(), "{:?}", rep.report.differences);
    let ctd = rep.containerd.as_ref().expect("the containerd tree is verified");
    assert_eq!((ctd.entries, rep.entries), (c.entries, d.entries));

    let dropped = {
        let fd = sys::open_dir_path(&base.join("out-data")).unwrap();
        archive::extract(&mut archive::open(&path).unwrap(), fd.as_fd(), &mut std::io::sink()).unwrap_err()
    };
    expect(dropped, "no place for");
    fs::remove_dir_all(base.join("out-data")).unwrap();
    fs::create_dir(base.join("out-data")).unwrap();

    let (fd, fc) = (sys::open_dir_path(&base.join("out-data")).unwrap(), sys::open_dir_path(&base.join("out-ctd")).unwrap());
    let (mut md, mut mc) = (Vec::new(), Vec::new());
    let ex = archive::extract_trees(
        &mut archive::open(&path).unwrap(),
        archive::Target { staging: fd.as_fd(), manifest: &mut md },
        Some(archive::Target { staging: fc.as_fd(), manifest: &mut mc }),
    )
    .unwrap();
    assert_eq!((ex.entries, ex.containerd_entries), (d.entries, c.entries));
    assert!(!md.is_empty() && !mc.is_empty() && md != mc);
    compare(&snapshot(&base.join("data")), &snapshot(&base.join("out-data")), &|_| false);
    compare(&snapshot(&base.join("ctd")), &snapshot(&base.join("out-ctd")), &|_| false);
}
