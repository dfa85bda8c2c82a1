//! Just enough HTTP/1.1 to talk to dockerd over its unix socket: one GET per
//! connection (`Connection: close`; also POST and DELETE with a JSON body), bodies framed by `Content-Length`,
//! `Transfer-Encoding: chunked` or connection close. A full HTTP stack (and an
//! async runtime) would be a large dependency for a handful of small requests.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lower-case) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `METHOD path` (with a JSON body) to the unix socket and reads the
/// whole response. `timeout` bounds each read and each write on the socket.
pub(crate) fn request(socket: &Path, method: &str, path: &str, json: Option<&[u8]>, timeout: Duration) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = match json {
        Some(b) => format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()),
        None if method == "GET" => String::new(),
        None => "Content-Length: 0\r\n".into(),
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockroot\r\n{body}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = json {
        s.write_all(b)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Parses a complete raw HTTP/1.1 response.
pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("response has no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line `{}`", status_line.escape_debug()))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let mut resp = Response { status, headers, body: Vec::new() };
    let rest = &raw[end + 4..];
    resp.body = if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = resp.header("content-length") {
        let n: usize = len.parse().map_err(|_| format!("bad Content-Length `{}`", len.escape_debug()))?;
        rest.get(..n).ok_or("body shorter than Content-Length")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

/// Decodes a chunked body (RFC 9112 §7.1); chunk extensions and trailers are ignored.
pub(crate) fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("truncated chunk size line")?;
        let line = std::str::from_utf8(&data[..eol]).map_err(|_| "chunk size is not UTF-8")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size `{}`", hex.escape_debug()))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size..).ok_or("truncated chunk")?;
        data = data.strip_prefix(b"\r\n").ok_or("chunk not followed by CRLF")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{\"a\":1}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[test]
    fn content_length_and_errors() {
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nOKxx").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"OK"[..]));
        assert!(decode_chunked(b"5\r\nab").is_err());
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    fn serve_once(reply: &'static [u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"GET /info HTTP/1.1\r\n"));
            if !reply.is_empty() {
                c.write_all(reply).unwrap();
            } else {
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        (dir, sock)
    }

    #[test]
    fn chunked_over_a_real_socket() {
        let (_d, sock) = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n");
        assert_eq!(request(&sock, "GET", "/info", None, Duration::from_secs(5)).unwrap().body, b"OK");
    }

    #[test]
    fn silent_server_times_out() {
        let (_d, sock) = serve_once(b"");
        let t = std::time::Instant::now();
        assert!(request(&sock, "GET", "/info", None, Duration::from_millis(200)).is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
