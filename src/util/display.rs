//! Untrusted names (from containers) made safe to print.

/// A name made safe to print on a terminal: control, non-UTF-8 and bidi
/// characters are escaped, because names under a data-root come from
/// containers and are untrusted.
pub fn display(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
            if c.is_control() || bidi || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_neutralises_control_and_bidi() {
        assert_eq!(display(b"a\nb"), "a\\nb");
        assert_eq!(display("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(display(b"\xff"), "\\xff");
    }
}
