//! The order of entries in a walk and in a manifest: depth-first, children
//! sorted bytewise, a directory before its contents. Comparing paths component
//! by component gives exactly that order ("a/b" < "a.b" here, unlike a plain
//! bytewise comparison of the whole paths).

use std::cmp::Ordering;

/// Compares two relative paths (`""` is the root) in walk order.
pub(crate) fn cmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut ia = a.split(|&c| c == b'/').filter(|c| !c.is_empty());
    let mut ib = b.split(|&c| c == b'/').filter(|c| !c.is_empty());
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => continue,
                o => return o,
            },
        }
    }
}

/// Joins a parent path and a child name.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_contents_come_before_siblings_with_higher_bytes() {
        assert_eq!(cmp(b"a/b", b"a.b"), Ordering::Less);
        assert_eq!(cmp(b"", b"a"), Ordering::Less);
        assert_eq!(cmp(b"a", b"a/b"), Ordering::Less);
        assert_eq!(cmp(b"a/z", b"b"), Ordering::Less);
    }
}
