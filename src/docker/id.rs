//! Short forms of ids that come from outside (the daemon's API, an archive's
//! meta.json). They are untrusted text: cut by characters, never by bytes,
//! so a crafted multibyte id cannot panic a slice.

/// The first 12 characters of an id, without a `sha256:` prefix, as
/// `docker ps` shows it.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn inspect_panicked_on_a_multibyte_container_id() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        // Byte 12 falls inside a character here: a byte slice panicked.
        assert_eq!(short("ééééééééééééé"), "éééééééééééé");
        assert_eq!(short("aaaaaaaaaaa€b"), "aaaaaaaaaaa€");
    }
}
