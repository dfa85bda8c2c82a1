//! The tree a two-phase archive restores, as records: phase 1's members,
//! replaced by phase 2's of the same name, minus the deleted names. It is
//! what [`super::verify`] compares with the archive's manifest, and it
//! follows the extractor's rules: a phase-2 member that is not a directory
//! replaces the whole phase-1 subtree at its name, and a deleted name goes
//! with everything below it. All three inputs are in walk order and
//! streamed (spooled records, a spooled list), so memory stays flat.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

use super::error::{ArchiveError, Result};
use super::layout::Tree;
use super::read::{Member, TarReader};
use super::records::Spool;
use crate::manifest::{Body, Reader, Record, order};

fn scratch(step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Scratch { step, source }
}

/// The deleted names of one tree in a list member, checked to be in walk
/// order and spooled (NUL-ended, without the tree's prefix) to a temporary file.
pub(crate) struct DeletedNames {
    file: BufReader<std::fs::File>,
    pub count: u64,
}

/// One tree's names while the list is read.
struct Writing {
    w: std::io::BufWriter<std::fs::File>,
    last: Vec<u8>,
    count: u64,
}

impl DeletedNames {
    /// Reads the list member `m`, grouped by tree (trees in archive order).
    pub(crate) fn read<R: Read>(m: &Member, tar: &mut TarReader<R>, buf: &mut [u8]) -> Result<BTreeMap<Tree, DeletedNames>> {
        let mut trees: BTreeMap<Tree, Writing> = BTreeMap::new();
        let mut cur: Option<Tree> = None;
        super::deleted::for_each(m, tar, buf, |tree, rel| {
            let rel = super::records::components(m, rel)?.join(&b'/');
            if cur.is_some_and(|c| tree < c) {
                return Err(m.malformed("deleted names are not grouped by tree in tree order"));
            }
            cur = Some(tree);
            let t = match trees.entry(tree) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let f = tempfile::tempfile().map_err(scratch("create the deletion list"))?;
                    e.insert(Writing { w: std::io::BufWriter::new(f), last: Vec::new(), count: 0 })
                }
            };
            if t.count > 0 && order::cmp(&t.last, &rel).is_ge() {
                return Err(m.malformed("deleted names are out of walk order or repeat a name"));
            }
            t.w.write_all(&rel).and_then(|_| t.w.write_all(&[0])).map_err(scratch("write the deletion list"))?;
            t.last = rel;
            t.count += 1;
            Ok(())
        })?;
        let mut out = BTreeMap::new();
        for (tree, t) in trees {
            let mut f = t.w.into_inner().map_err(|e| scratch("write the deletion list")(e.into_error()))?;
            f.seek(SeekFrom::Start(0)).map_err(scratch("rewind the deletion list"))?;
            out.insert(tree, DeletedNames { file: BufReader::new(f), count: t.count });
        }
        Ok(out)
    }

    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let mut v = Vec::new();
        let n = self.file.read_until(0, &mut v).map_err(scratch("read the deletion list"))?;
        if n == 0 {
            return Ok(None);
        }
        v.pop();
        Ok(Some(v))
    }
}

fn below(path: &[u8], top: &[u8]) -> bool {
    path.len() > top.len() && path.starts_with(top) && path[top.len()] == b'/'
}

/// Merges the phase-1 and phase-2 records and the deleted names into the
/// records of the restored tree, in walk order.
pub(crate) fn merge(mut one: Reader, mut two: Reader, mut deleted: Option<DeletedNames>) -> Result<Reader> {
    let mut out = Spool::new()?;
    let mut del = match deleted.as_mut() {
        Some(d) => d.next()?,
        None => None,
    };
    // Phase-1 records below a phase-2 non-directory are replaced by it;
    // all records below a deleted name are deleted with it.
    let (mut replaced, mut gone): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    loop {
        let ord = match (one.peek()?, two.peek()?) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => order::cmp(&a.path, &b.path),
        };
        let rec: Record = match ord {
            Ordering::Less => {
                let a = one.next_record()?.expect("peeked");
                if replaced.as_deref().is_some_and(|c| below(&a.path, c)) {
                    continue;
                }
                a
            }
            Ordering::Equal => {
                one.next_record()?;
                two.next_record()?.expect("peeked")
            }
            Ordering::Greater => two.next_record()?.expect("peeked"),
        };
        if gone.as_deref().is_some_and(|c| below(&rec.path, c)) {
            continue;
        }
        while let (Some(d), Some(list)) = (&del, deleted.as_mut()) {
            if order::cmp(d, &rec.path).is_ge() {
                break;
            }
            del = list.next()?;
        }
        if del.as_deref() == Some(&rec.path[..]) {
            gone = Some(rec.path);
            continue;
        }
        if ord != Ordering::Less && rec.body != Body::Dir {
            replaced = Some(rec.path.clone());
        }
        out.push(&rec)?;
    }
    out.into_reader()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Body;

    fn rec(path: &str, dir: bool) -> Record {
        let body = if dir { Body::Dir } else { Body::Fifo };
        Record { path: path.as_bytes().to_vec(), body, perm: 0o755, uid: 0, gid: 0, mtime: Default::default(), xattrs: vec![] }
    }

    fn reader(recs: &[Record]) -> Reader {
        let mut s = Spool::new().unwrap();
        for r in recs {
            s.push(r).unwrap();
        }
        s.into_reader().unwrap()
    }

    fn deleted(names: &[&str]) -> DeletedNames {
        let mut f = tempfile::tempfile().unwrap();
        for n in names {
            f.write_all(n.as_bytes()).unwrap();
            f.write_all(&[0]).unwrap();
        }
        f.seek(SeekFrom::Start(0)).unwrap();
        DeletedNames { file: BufReader::new(f), count: names.len() as u64 }
    }

    #[test]
    fn phase_two_replaces_subtrees_and_deletions_remove_them() {
        let one = [rec("", true), rec("a", true), rec("a/x", false), rec("b", true), rec("b/y", false), rec("c", true), rec("c/z", false)];
        // a: a directory that became a file (its child goes with it); d: new.
        let two = [rec("", true), rec("a", false), rec("c", true), rec("d", false)];
        let mut out = merge(reader(&one), reader(&two), Some(deleted(&["a/x", "b"]))).unwrap();
        let mut got = Vec::new();
        while let Some(r) = out.next_record().unwrap() {
            got.push((String::from_utf8(r.path).unwrap(), r.body == Body::Dir));
        }
        let want: Vec<(String, bool)> =
            [("", true), ("a", false), ("c", true), ("c/z", false), ("d", false)].iter().map(|(p, d)| (p.to_string(), *d)).collect();
        assert_eq!(got, want);
    }
}
