//! Byte-exact escaping of names, link targets and xattr values.
//!
//! Printable ASCII other than `\`, `=` and space stays as is; every other byte
//! becomes `\xHH`. The result has no whitespace, so a manifest line splits on
//! spaces, and every byte round-trips.

pub(crate) fn escape(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if (0x21..=0x7e).contains(&b) && b != b'\\' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
}

/// Reverses [`escape`]; `None` on a malformed escape.
pub(crate) fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) != Some(&b'x') || i + 4 > b.len() {
                return None;
            }
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(bytes: &[u8]) -> String {
        let mut s = String::with_capacity(bytes.len());
        escape(bytes, &mut s);
        s
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        let e = escaped(&all);
        assert!(!e.contains(' ') && !e.contains('\n') && !e.contains('='));
        assert_eq!(unescape(&e).unwrap(), all);
    }

    #[test]
    fn malformed_escape_is_rejected() {
        assert!(unescape("a\\x4").is_none());
        assert!(unescape("a\\y41").is_none());
        assert!(unescape("a\\xzz").is_none());
    }
}
