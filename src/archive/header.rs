//! The 512-byte ustar header and PAX extended records, built and parsed by
//! hand so that every field is under our control (tar-rs rewrites names and
//! drops records on parsing, see the module docs of [`super::extract`]).
//!
//! Format: POSIX.1-2001 pax (`man 5 tar`, GNU tar manual "Basic Tar Format").

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;
/// Largest PAX extended header the reader accepts.
pub(crate) const MAX_PAX: u64 = 1 << 20;

/// Type flags used by dockroot archives.
pub mod flag {
    pub const FILE: u8 = b'0';
    pub(crate) const OLD_FILE: u8 = 0;
    pub const LINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub(crate) const CHAR: u8 = b'3';
    pub(crate) const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub(crate) const FIFO: u8 = b'6';
    pub const PAX: u8 = b'x';
    pub(crate) const GLOBAL: u8 = b'g';
}

/// The fields of a ustar header that dockroot writes and reads.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
}

/// Writes `v` as zero-padded octal with a trailing NUL; false if it does not fit.
fn put_octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

/// Largest value of an octal field of `width` bytes.
pub(crate) fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width as u32 - 1))) - 1
}

/// Builds a header block. Values that do not fit must also be carried in PAX
/// records by the caller; the header then holds a clamped value.
pub fn build(f: &Fields) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let n = f.name.len().min(100);
    b[..n].copy_from_slice(&f.name[..n]);
    put_octal(&mut b[100..108], u64::from(f.mode & 0o7777));
    put_octal(&mut b[108..116], f.uid.min(octal_max(8)));
    put_octal(&mut b[116..124], f.gid.min(octal_max(8)));
    put_octal(&mut b[124..136], f.size.min(octal_max(12)));
    put_octal(&mut b[136..148], (f.mtime.max(0) as u64).min(octal_max(12)));
    b[156] = f.typeflag;
    let n = f.linkname.len().min(100);
    b[157..157 + n].copy_from_slice(&f.linkname[..n]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_octal(&mut b[329..337], f.devmajor.min(octal_max(8)));
    put_octal(&mut b[337..345], f.devminor.min(octal_max(8)));
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

/// Parses a numeric field: octal (space/NUL padded) or GNU base-256.
fn parse_num(field: &[u8], what: &str) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err(format!("negative base-256 {what}"));
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &x in &field[1..] {
            v = v.checked_mul(256).and_then(|v| v.checked_add(u64::from(x))).ok_or(format!("{what} overflows"))?;
        }
        return Ok(v);
    }
    let s: Vec<u8> = field.iter().copied().take_while(|&c| c != 0).collect();
    let t = s.trim_ascii();
    if t.is_empty() {
        return Ok(0);
    }
    if !t.iter().all(|c| (b'0'..=b'7').contains(c)) {
        return Err(format!("bad octal number in {what}: `{}`", t.escape_ascii()));
    }
    u64::from_str_radix(std::str::from_utf8(t).unwrap_or("x"), 8).map_err(|_| format!("{what} overflows"))
}

fn cstr_field(field: &[u8]) -> Vec<u8> {
    field.iter().copied().take_while(|&c| c != 0).collect()
}

/// What one header block turned out to be.
pub enum Block {
    /// An all-zero block (end-of-archive marker).
    Zero,
    Header(Fields),
}

/// Parses and checks one header block.
pub fn parse(b: &[u8; BLOCK]) -> Result<Block, String> {
    if b.iter().all(|&x| x == 0) {
        return Ok(Block::Zero);
    }
    if &b[257..262] != b"ustar" {
        return Err("not a ustar header (bad magic)".into());
    }
    let want = parse_num(&b[148..156], "checksum")?;
    let mut sum: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        sum += if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(x) };
    }
    if sum != want {
        return Err(format!("header checksum mismatch (stored {want:o}, computed {sum:o})"));
    }
    let mut name = cstr_field(&b[0..100]);
    // POSIX ustar prefix (only with the "ustar\0" magic; GNU uses the space differently).
    if &b[257..263] == b"ustar\0" {
        let prefix = cstr_field(&b[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix;
            p.push(b'/');
            p.extend_from_slice(&name);
            name = p;
        }
    }
    Ok(Block::Header(Fields {
        name,
        mode: parse_num(&b[100..108], "mode")? as u32 & 0o7777,
        uid: parse_num(&b[108..116], "uid")?,
        gid: parse_num(&b[116..124], "gid")?,
        size: parse_num(&b[124..136], "size")?,
        mtime: parse_num(&b[136..148], "mtime")? as i64,
        typeflag: b[156],
        linkname: cstr_field(&b[157..257]),
        devmajor: parse_num(&b[329..337], "devmajor")?,
        devminor: parse_num(&b[337..345], "devminor")?,
    }))
}

/// Appends one PAX record `"<len> <key>=<value>\n"`; values are binary-safe.
pub fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// PAX keyword/value pairs in archive order.
pub(crate) type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Parses PAX records; values may contain newlines and NULs (length-delimited).
pub(crate) fn parse_pax(data: &[u8]) -> Result<Records, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let sp = rest.iter().take(21).position(|&c| c == b' ').ok_or("PAX record without a length")?;
        let digits = &rest[..sp];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(format!("bad PAX record length `{}`", digits.escape_ascii()));
        }
        let len: usize = std::str::from_utf8(digits).unwrap().parse().map_err(|_| "PAX record length overflows")?;
        if len < sp + 3 || len > rest.len() {
            return Err(format!("PAX record length {len} out of range"));
        }
        let rec = &rest[sp + 1..len];
        if rec.last() != Some(&b'\n') {
            return Err("PAX record does not end with a newline".into());
        }
        let rec = &rec[..rec.len() - 1];
        let eq = rec.iter().position(|&c| c == b'=').ok_or("PAX record without `=`")?;
        if eq == 0 {
            return Err("PAX record with an empty keyword".into());
        }
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        pos += len;
    }
    Ok(out)
}

/// Formats a time as a PAX decimal `sec.nsec` (negative times included).
pub(crate) fn pax_time(sec: i64, nsec: u32) -> String {
    if sec < 0 && nsec > 0 { format!("-{}.{:09}", -(sec + 1), 1_000_000_000 - nsec) } else { format!("{sec}.{nsec:09}") }
}

/// Parses a PAX time `[-]sec[.frac]` into (sec, nsec).
pub(crate) fn parse_pax_time(v: &[u8]) -> Result<(i64, u32), String> {
    let s = std::str::from_utf8(v).map_err(|_| "non-ASCII time")?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad PAX time `{}`", s.escape_default()));
    }
    let sec: i64 = int.parse().map_err(|_| "PAX time overflows")?;
    let mut ns: u32 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        ns += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
    }
    Ok(if !neg {
        (sec, ns)
    } else if ns == 0 {
        (-sec, 0)
    } else {
        (-sec - 1, 1_000_000_000 - ns)
    })
}

/// Parses a PAX decimal number strictly.
pub(crate) fn parse_pax_num(v: &[u8]) -> Result<u64, String> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(format!("bad PAX number `{}`", v.escape_ascii()));
    }
    std::str::from_utf8(v).unwrap().parse().map_err(|_| "PAX number overflows".to_string())
}

/// Bytes of padding after `len` bytes of data.
pub fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}
