//! POSIX ACLs: the binary `system.posix_acl_*` xattr value converted to the
//! short text form that GNU tar stores in `SCHILY.acl.access` /
//! `SCHILY.acl.default` and feeds to `acl_from_text(3)` on extraction.
//! Ids stay numeric (`user:1000:rw-`), so no name lookup happens either way.
//!
//! Binary layout (linux/posix_acl_xattr.h): a little-endian u32 version (2),
//! then entries of {u16 tag, u16 perm, u32 id}.

pub(crate) const ACCESS: &[u8] = b"system.posix_acl_access";
pub(crate) const DEFAULT: &[u8] = b"system.posix_acl_default";

/// Converts a binary ACL xattr value to text; None if it is malformed.
pub(crate) fn to_text(v: &[u8]) -> Option<String> {
    if v.len() < 4 || !(v.len() - 4).is_multiple_of(8) || u32::from_le_bytes(v[..4].try_into().ok()?) != 2 {
        return None;
    }
    let mut parts = Vec::new();
    for e in v[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let p = format!(
            "{}{}{}",
            if perm & 4 != 0 { 'r' } else { '-' },
            if perm & 2 != 0 { 'w' } else { '-' },
            if perm & 1 != 0 { 'x' } else { '-' }
        );
        parts.push(match tag {
            0x01 => format!("user::{p}"),
            0x02 => format!("user:{id}:{p}"),
            0x04 => format!("group::{p}"),
            0x08 => format!("group:{id}:{p}"),
            0x10 => format!("mask::{p}"),
            0x20 => format!("other::{p}"),
            _ => return None,
        });
    }
    Some(parts.join(","))
}
