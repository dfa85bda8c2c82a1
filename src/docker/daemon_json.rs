//! Reading and editing `/etc/docker/daemon.json` without losing anything the
//! administrator put there. The file is strict JSON (dockerd rejects comments),
//! key order is preserved (`serde_json/preserve_order`) so diffs stay small,
//! and every write goes through [`super::atomic`] with a timestamped backup.

use super::error::{DockerError, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The daemon.json key that sets the data-root.
pub(crate) const DATA_ROOT_KEY: &str = "data-root";
/// The pre-17.05 spelling of [`DATA_ROOT_KEY`], still accepted by dockerd.
pub(crate) const LEGACY_GRAPH_KEY: &str = "graph";

/// A parsed daemon.json. A missing file is an empty object.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonJson {
    path: PathBuf,
    exists: bool,
    map: Map<String, Value>,
}

impl DaemonJson {
    /// Loads `path`; a missing file yields an empty configuration.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self { path: path.into(), exists: false, map: Map::new() }),
            Err(source) => Err(DockerError::Read { path: path.into(), source }),
        }
    }

    /// Parses daemon.json text; `path` is only used in errors and for saving.
    /// An empty (whitespace-only) file is treated as `{}` like dockerd does.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let map = if bytes.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            let v: Value = serde_json::from_slice(bytes).map_err(|source| DockerError::Json { path: path.into(), source })?;
            match v {
                Value::Object(m) => m,
                _ => return Err(DockerError::NotObject { path: path.into() }),
            }
        };
        Ok(Self { path: path.into(), exists: true, map })
    }

    /// The file this configuration was loaded from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The whole top-level object.
    pub(crate) fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The configured data-root and the key it came from (`data-root`
    /// wins over the legacy `graph`).
    pub(crate) fn data_root(&self) -> Option<(PathBuf, &'static str)> {
        [DATA_ROOT_KEY, LEGACY_GRAPH_KEY]
            .into_iter()
            .find_map(|k| self.str_value(k).filter(|s| !s.is_empty()).map(|s| (PathBuf::from(s), k)))
    }

    /// Sets `data-root` (dropping a legacy `graph` key, since dockerd refuses both).
    pub(crate) fn set_data_root(&mut self, root: &Path) {
        self.map.shift_remove(LEGACY_GRAPH_KEY);
        let v = Value::String(root.to_string_lossy().into_owned());
        self.map.insert(DATA_ROOT_KEY.to_string(), v);
    }

    /// `live-restore`, if set.
    pub(crate) fn live_restore(&self) -> Option<bool> {
        self.map.get("live-restore").and_then(Value::as_bool)
    }

    /// `userns-remap`, if set and non-empty.
    pub(crate) fn userns_remap(&self) -> Option<&str> {
        self.str_value("userns-remap").filter(|s| !s.is_empty())
    }

    /// `storage-driver`, if set and non-empty.
    pub(crate) fn storage_driver(&self) -> Option<&str> {
        self.str_value("storage-driver").filter(|s| !s.is_empty())
    }

    /// Sets `features.containerd-snapshotter` (the image store Docker uses),
    /// keeping any other feature.
    pub(crate) fn set_containerd_snapshotter(&mut self, on: bool) {
        let f = self.map.entry("features").or_insert_with(|| Value::Object(Map::new()));
        if !f.is_object() {
            *f = Value::Object(Map::new());
        }
        if let Value::Object(m) = f {
            m.insert("containerd-snapshotter".into(), Value::Bool(on));
        }
    }

    /// A string value of a top-level key.
    pub(crate) fn str_value(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Value::as_str)
    }

    /// Renders the file as dockerd-compatible pretty JSON with a final newline.
    pub(crate) fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(&Value::Object(self.map.clone())).expect("a JSON map always serialises");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DaemonJson> {
        DaemonJson::parse(Path::new("/x/daemon.json"), s.as_bytes())
    }

    #[test]
    fn keeps_key_order_and_other_keys() {
        let mut d = parse(r#"{"z":1,"graph":"/old","log-driver":"journald","a":{"b":[1,2]}}"#).unwrap();
        assert_eq!(d.data_root().unwrap(), (PathBuf::from("/old"), "graph"));
        d.set_data_root(Path::new("/srv/docker"));
        let keys: Vec<_> = d.map().keys().cloned().collect();
        assert_eq!(keys, ["z", "log-driver", "a", "data-root"]);
    }

    #[test]
    fn comments_are_rejected_with_the_path() {
        let e = parse("{ // no\n \"a\": 1 }").unwrap_err().to_string();
        assert!(e.contains("/x/daemon.json") && e.contains("comments"), "{e}");
        assert!(matches!(parse("[1]"), Err(DockerError::NotObject { .. })));
        assert!(parse("  \n").unwrap().map().is_empty());
    }

    #[test]
    fn reads_flags() {
        let d = parse(r#"{"live-restore":true,"userns-remap":"default","features":{"containerd-snapshotter":true}}"#).unwrap();
        assert_eq!(d.live_restore(), Some(true));
        assert_eq!(d.userns_remap(), Some("default"));
    }

    #[test]
    fn set_data_root_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.json");
        std::fs::write(&p, "{\"debug\":true}").unwrap();
        let mut d = DaemonJson::load(&p).unwrap();
        d.set_data_root(Path::new("/new"));
        std::fs::write(&p, d.to_text()).unwrap();
        let again = DaemonJson::load(&p).unwrap();
        assert_eq!(again.data_root().unwrap().0, PathBuf::from("/new"));
        assert_eq!(again.str_value("debug"), None);
        assert_eq!(again.map()["debug"], Value::Bool(true));
    }
}
