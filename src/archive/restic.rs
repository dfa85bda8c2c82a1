//! A restic repository as a store of archives: the `restic` binary as the
//! user has it (Debian 12's 0.14 and newer), its password and options from
//! restic's own environment (`RESTIC_PASSWORD_FILE`, `RESTIC_REPOSITORY`, …).
//!
//! The archive goes uncompressed into `restic backup --stdin`, so restic's
//! content-defined chunks find last night's unchanged members. restic saves
//! a snapshot whenever its stdin reaches EOF, complete or not, so an upload
//! that dockroot did not finish is killed before its stdin is closed, and
//! any snapshot carrying the upload's own run tag is forgotten afterwards:
//! a failed backup never leaves a snapshot that looks like a good one.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use serde::Deserialize;

/// The tag every finished dockroot snapshot carries; retention, `latest`
/// and restores look only at these.
pub const TAG: &str = "dockroot";
/// The tag of a snapshot still being written or read back: nothing uses it,
/// and the next backup of the same host forgets it.
pub const PARTIAL_TAG: &str = "dockroot-partial";
/// How long a call waits for another host's lock on a shared repository.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
/// How much of restic's stderr an error quotes.
const STDERR_TAIL: usize = 4096;

/// A failed restic call.
#[derive(Debug, thiserror::Error)]
pub enum ResticError {
    /// `restic` could not be started.
    #[error("cannot run {bin} ({source}); install restic (Debian: apt-get install restic) or put it on PATH")]
    Spawn { bin: String, source: io::Error },
    /// restic ran and failed.
    #[error("`restic {args}` failed ({status}): {stderr}")]
    Failed { args: String, status: ExitStatus, stderr: String },
    /// restic's output was not what this version of dockroot understands.
    #[error("`restic {args}` printed output dockroot cannot read ({why}); check the restic version (0.14 or newer)")]
    Output { args: String, why: String },
    /// No snapshot matched.
    #[error("no dockroot snapshot {what} in the restic repository{repo}; list them with `restic snapshots --tag dockroot`")]
    NoSnapshot { what: String, repo: String },
    /// Writing to or reading from restic.
    #[error("{step} restic's stream: {source}")]
    Stream { step: &'static str, source: io::Error },
}

pub type Result<T> = std::result::Result<T, ResticError>;

/// A repository: `None` takes restic's own `RESTIC_REPOSITORY`/`RESTIC_REPOSITORY_FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restic {
    pub bin: PathBuf,
    pub repo: Option<String>,
}

/// `restic:REPO[:SNAPSHOT]` parsed. REPO may itself hold colons
/// (`sftp:host:/path`, `rest:http://…`), so the last part is a snapshot only
/// when it looks like one: `latest` or 8 to 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResticSource {
    pub repo: Option<String>,
    pub snapshot: String,
}

impl ResticSource {
    /// Parses a restore source; `None` when `s` does not start with `restic:`.
    pub fn parse(s: &str) -> Option<ResticSource> {
        let rest = s.strip_prefix("restic:")?;
        let (repo, snapshot) = match rest.rsplit_once(':') {
            Some((r, snap)) if is_snapshot_id(snap) => (r, snap.to_string()),
            _ => (rest, "latest".to_string()),
        };
        Some(ResticSource { repo: (!repo.is_empty()).then(|| repo.to_string()), snapshot })
    }
}

fn is_snapshot_id(s: &str) -> bool {
    s == "latest" || ((8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One snapshot as `restic snapshots --json` lists it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub short_id: String,
    pub time: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `--keep-*` for `restic forget`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Keep {
    pub last: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
}

impl Keep {
    pub fn any(&self) -> bool {
        self.last.is_some() || self.daily.is_some() || self.weekly.is_some() || self.monthly.is_some()
    }

    fn args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (flag, n) in
            [("--keep-last", self.last), ("--keep-daily", self.daily), ("--keep-weekly", self.weekly), ("--keep-monthly", self.monthly)]
        {
            if let Some(n) = n {
                v.push(flag.to_string());
                v.push(n.to_string());
            }
        }
        v
    }
}

impl Restic {
    pub fn new(repo: Option<String>) -> Restic {
        Restic { bin: "restic".into(), repo }
    }

    fn describe_repo(&self) -> String {
        self.repo.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
    }

    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(&self.bin);
        if let Some(r) = &self.repo {
            c.arg("--repo").arg(r);
        }
        // --no-lock is not used: restic's own locks keep a concurrent prune away.
        c.args(args);
        c
    }

    /// Runs restic to completion; returns its stdout. Hosts that share a
    /// repository take turns: while another one holds its exclusive lock (a
    /// prune), the call is retried for up to [`LOCK_WAIT`] (restic 0.14 has
    /// no `--retry-lock`).
    fn output(&self, args: &[String]) -> Result<Vec<u8>> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_secs(1);
        loop {
            let out = self
                .command(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| ResticError::Spawn { bin: self.bin.display().to_string(), source })?;
            if out.status.success() {
                return Ok(out.stdout);
            }
            if is_locked(&out.stderr) && start.elapsed() + pause < LOCK_WAIT {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(15));
                continue;
            }
            return Err(ResticError::Failed { args: args.join(" "), status: out.status, stderr: tail(&out.stderr) });
        }
    }

    /// `restic version`, e.g. `(0, 14, 0)`.
    pub fn version(&self) -> Result<(u32, u32, u32)> {
        let args = vec!["version".to_string()];
        let out = self.output(&args)?;
        let text = String::from_utf8_lossy(&out);
        parse_version(&text).ok_or_else(|| ResticError::Output { args: "version".into(), why: format!("no version in {text:?}") })
    }

    /// Starts `restic backup --stdin`; the archive is written into the
    /// returned upload. The snapshot is tagged [`PARTIAL_TAG`] until
    /// [`Restic::finalize`] gives it its tags; partial snapshots that an
    /// earlier, killed upload of this host left are forgotten first.
    pub fn upload(&self, filename: &str, host: &str) -> Result<Upload> {
        let stale: Vec<String> = self.snapshots(Some(host), &[PARTIAL_TAG.to_string()])?.into_iter().map(|s| s.id).collect();
        self.forget_ids(&stale)?;
        let run_tag = format!("dockroot-run={}", run_id());
        let all = [PARTIAL_TAG.to_string(), run_tag.clone()];
        let args = vec![
            "backup".to_string(),
            "--json".into(),
            "--stdin".into(),
            "--stdin-filename".into(),
            filename.into(),
            "--host".into(),
            host.into(),
            "--tag".into(),
            all.join(","),
        ];
        let mut cmd = self.command(&args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        crate::sys::process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| ResticError::Spawn { bin: self.bin.display().to_string(), source })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(|o| std::thread::spawn(move || read_all(o)));
        let stderr = child.stderr.take().map(|e| std::thread::spawn(move || read_all(e)));
        Ok(Upload { restic: self.clone(), child: Some(child), stdin, stdout, stderr, run_tag, args: args.join(" "), written: 0 })
    }

    /// dockroot's snapshots, oldest first, optionally of one host.
    pub fn snapshots(&self, host: Option<&str>, tags: &[String]) -> Result<Vec<Snapshot>> {
        let mut args = vec!["snapshots".to_string(), "--json".into(), "--tag".into(), tags.join(",")];
        if let Some(h) = host {
            args.push("--host".into());
            args.push(h.into());
        }
        let out = self.output(&args)?;
        let mut v: Vec<Snapshot> = serde_json::from_slice::<Option<Vec<Snapshot>>>(&out)
            .map_err(|e| ResticError::Output { args: args.join(" "), why: e.to_string() })?
            .unwrap_or_default();
        v.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(v)
    }

    /// The snapshot that `id` (`latest`, a short or a full id) names among dockroot's.
    pub fn resolve(&self, id: &str, host: Option<&str>) -> Result<Snapshot> {
        self.resolve_tagged(id, host, TAG)
    }

    /// [`Restic::resolve`] among the snapshots tagged `tag`.
    pub fn resolve_tagged(&self, id: &str, host: Option<&str>, tag: &str) -> Result<Snapshot> {
        let all = self.snapshots(host, &[tag.to_string()])?;
        let found = if id == "latest" { all.last().cloned() } else { all.into_iter().find(|s| s.id.starts_with(id)) };
        found.ok_or_else(|| ResticError::NoSnapshot {
            what: match (id, host) {
                ("latest", Some(h)) => format!("of this host ({h}); give another host's snapshot by its id"),
                ("latest", None) => "at all".into(),
                _ => format!("with id {id}"),
            },
            repo: self.describe_repo(),
        })
    }

    /// The archive of snapshot `snap`, streamed by `restic dump`.
    pub fn dump(&self, snap: &Snapshot) -> Result<Download> {
        let file = snap.paths.iter().find(|p| p.ends_with(".tar") || p.ends_with(".tar.zst")).cloned().ok_or_else(|| {
            ResticError::Output { args: format!("snapshots {}", snap.id), why: format!("no archive among its paths {:?}", snap.paths) }
        })?;
        let args = vec!["dump".to_string(), snap.id.clone(), file];
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ResticError::Spawn { bin: self.bin.display().to_string(), source })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().map(|e| std::thread::spawn(move || read_all(e)));
        Ok(Download { child, stdout, stderr, args: args.join(" "), checked: false })
    }

    /// Gives a verified snapshot its final tags (restic rewrites it under a
    /// new id, same time); returns the rewritten snapshot.
    pub fn finalize(&self, snap: &Snapshot, tags: &[String]) -> Result<Snapshot> {
        let args = vec!["tag".to_string(), "--set".into(), tags.join(","), snap.id.clone()];
        self.output(&args)?;
        let host = (!snap.hostname.is_empty()).then_some(snap.hostname.as_str());
        self.snapshots(host, &[TAG.to_string()])?.into_iter().find(|s| s.time == snap.time && s.paths == snap.paths).ok_or_else(|| {
            ResticError::Output { args: args.join(" "), why: format!("the retagged snapshot of {} is not listed", snap.time) }
        })
    }

    /// Forgets the snapshots with these ids.
    pub fn forget_ids(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["forget".to_string()];
        args.extend(ids.iter().cloned());
        self.output(&args).map(|_| ())
    }

    /// `restic forget --prune` with `keep`, over dockroot's snapshots of `host`;
    /// returns the ids it removed.
    pub fn forget_policy(&self, keep: &Keep, host: &str) -> Result<Vec<String>> {
        let before: Vec<String> = self.snapshots(Some(host), &[TAG.to_string()])?.into_iter().map(|s| s.id).collect();
        let mut args = vec!["forget".to_string(), "--tag".into(), TAG.into(), "--host".into(), host.into()];
        args.extend(keep.args());
        args.push("--prune".into());
        self.output(&args)?;
        let after: Vec<String> = self.snapshots(Some(host), &[TAG.to_string()])?.into_iter().map(|s| s.id).collect();
        Ok(before.into_iter().filter(|id| !after.contains(id)).collect())
    }
}

/// An archive on its way into `restic backup --stdin`. Dropping it without
/// [`Upload::finish`] kills restic first, so no partial snapshot is saved.
pub struct Upload {
    restic: Restic,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    run_tag: String,
    args: String,
    written: u64,
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stdin.as_mut().ok_or_else(|| io::Error::other("restic's stdin is closed"))?.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), |s| s.flush())
    }
}

impl Upload {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Closes the stream and waits: the id of the snapshot restic saved.
    pub fn finish(mut self) -> Result<String> {
        drop(self.stdin.take());
        let mut child = self.child.take().expect("finish runs once");
        let status = child.wait().map_err(|source| ResticError::Stream { step: "wait for", source })?;
        let out = self.stdout.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let err = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if !status.success() {
            self.forget_partial();
            return Err(ResticError::Failed { args: self.args.clone(), status, stderr: tail(&err) });
        }
        let id = summary_snapshot_id(&out);
        match id {
            Some(id) => Ok(id),
            None => {
                self.forget_partial();
                Err(ResticError::Output { args: self.args.clone(), why: "no snapshot_id in its summary".into() })
            }
        }
    }

    /// Kills restic before its stdin reaches EOF, then forgets whatever it
    /// might still have saved under this upload's run tag.
    pub fn abort(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(self.stdin.take());
            self.forget_partial();
        }
    }

    fn forget_partial(&self) {
        if let Ok(snaps) = self.restic.snapshots(None, std::slice::from_ref(&self.run_tag)) {
            let ids: Vec<String> = snaps.into_iter().map(|s| s.id).collect();
            let _ = self.restic.forget_ids(&ids);
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A snapshot's archive as it comes out of `restic dump`. A failed dump is a
/// read error at the end, never a clean EOF.
pub struct Download {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<Vec<u8>>>,
    args: String,
    checked: bool,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let status = self.child.wait()?;
            if !status.success() {
                let err = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
                return Err(io::Error::other(format!("`restic {}` failed ({status}): {}", self.args, tail(&err))));
            }
        }
        Ok(n)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if !self.checked {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// restic's refusal while another process holds the repository's lock.
fn is_locked(stderr: &[u8]) -> bool {
    String::from_utf8_lossy(stderr).contains("repository is already locked")
}

fn read_all<R: Read>(mut r: R) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// The end of restic's stderr, as text.
fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim();
    let start = s.len().saturating_sub(STDERR_TAIL);
    let start = (start..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    s[start..].to_string()
}

/// `snapshot_id` of the summary line of `restic backup --json`.
fn summary_snapshot_id(stdout: &[u8]) -> Option<String> {
    BufReader::new(stdout)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|v| v["message_type"] == "summary")
        .and_then(|v| v["snapshot_id"].as_str().map(str::to_string))
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().nth(1)?;
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// A tag unique to one upload: its partial snapshot, if any, can be found and forgotten.
fn run_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}", now.as_nanos(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_keep_colons_in_the_repository() {
        let p = |s: &str| ResticSource::parse(s).unwrap();
        assert_eq!(p("restic:/srv/repo"), ResticSource { repo: Some("/srv/repo".into()), snapshot: "latest".into() });
        assert_eq!(p("restic:/srv/repo:latest").snapshot, "latest");
        assert_eq!(p("restic:/srv/repo:1a2b3c4d"), ResticSource { repo: Some("/srv/repo".into()), snapshot: "1a2b3c4d".into() });
        assert_eq!(p("restic:sftp:host:/srv/repo"), ResticSource { repo: Some("sftp:host:/srv/repo".into()), snapshot: "latest".into() });
        assert_eq!(
            p("restic:rest:http://127.0.0.1:8000/:deadbeef"),
            ResticSource { repo: Some("rest:http://127.0.0.1:8000/".into()), snapshot: "deadbeef".into() }
        );
        assert_eq!(p("restic:"), ResticSource { repo: None, snapshot: "latest".into() });
        assert_eq!(p("restic::latest"), ResticSource { repo: None, snapshot: "latest".into() });
        assert_eq!(ResticSource::parse("/tmp/a.tar"), None);
    }

    #[test]
    fn versions_and_summaries_parse() {
        assert_eq!(parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64"), Some((0, 14, 0)));
        assert_eq!(parse_version("restic 0.17.3 compiled with go1.23 on linux/amd64"), Some((0, 17, 3)));
        let out = b"{\"message_type\":\"status\"}\n{\"message_type\":\"summary\",\"snapshot_id\":\"abc123\"}\n";
        assert_eq!(summary_snapshot_id(out).as_deref(), Some("abc123"));
        assert_eq!(summary_snapshot_id(b"garbage\n"), None);
        let locked = b"unable to create lock in backend: repository is already locked exclusively by PID 663 on fleet-b by root";
        assert!(is_locked(locked) && !is_locked(b"Fatal: wrong password or no key found"));
    }

    #[test]
    fn keep_flags() {
        let k = Keep { last: Some(3), weekly: Some(2), ..Keep::default() };
        assert!(k.any());
        assert_eq!(k.args(), ["--keep-last", "3", "--keep-weekly", "2"]);
        assert!(!Keep::default().any());
    }
}
