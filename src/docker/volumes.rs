//! Volumes and the containers that mount them, through the API: what
//! `backup` records in meta.json (driver, options, labels, users), and the
//! few calls `restore --volume` makes while Docker runs: create a volume as
//! the archive describes it, stop and start the containers that use it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::DockerApi;
use super::error::{DockerError, Result};

/// A volume as the API described it at backup time (meta.json's `volumes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    /// Normally `local`.
    pub driver: String,
    /// The driver's options (`type`, `device`, `o` of the local driver).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Names of the containers, in any state, that mount it.
    #[serde(default)]
    pub users: Vec<String>,
}

impl VolumeSpec {
    /// Why the volume's files are not in the data-root (a driver other than
    /// `local`, or a local volume that mounts a device or a network share),
    /// or None when they are.
    pub fn data_elsewhere(&self) -> Option<String> {
        if self.driver != "local" {
            return Some(format!("its driver is `{}`, which keeps the data itself", self.driver));
        }
        let mounted = self.options.contains_key("device") || self.options.contains_key("type");
        mounted.then(|| {
            let o = |k: &str| self.options.get(k).map(String::as_str).unwrap_or("");
            format!("it mounts `{}` (type `{}`) when used; its data is there, not in the data-root", o("device"), o("type"))
        })
    }
}

/// A volume on the running engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeNow {
    pub spec: VolumeSpec,
    /// Where its files are (`<data-root>/volumes/NAME/_data` for `local`).
    pub mountpoint: PathBuf,
    /// The engine's creation time: with the name, what identifies this volume.
    pub created_at: String,
}

/// A container that mounts a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// `running`, `exited`, ...
    pub state: String,
}

impl User {
    /// Whether its processes may have the volume's files open.
    pub fn active(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused" | "restarting")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    name: String,
    driver: String,
    mountpoint: PathBuf,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    created_at: Option<String>,
}

impl Inspect {
    fn into_now(self) -> VolumeNow {
        VolumeNow {
            spec: VolumeSpec {
                name: self.name,
                driver: self.driver,
                options: self.options.unwrap_or_default(),
                labels: self.labels.unwrap_or_default(),
                users: Vec::new(),
            },
            mountpoint: self.mountpoint,
            created_at: self.created_at.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct List {
    #[serde(rename = "Volumes", default)]
    volumes: Option<Vec<Inspect>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    id: String,
    #[serde(default)]
    names: Option<Vec<String>>,
    state: String,
    #[serde(default)]
    mounts: Option<Vec<Mount>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Mount {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<PathBuf>,
}

/// How long a container may take to stop (its own stop timeout, 10 s by
/// default, then SIGKILL), with room to spare.
const STOP_WAIT: Duration = Duration::from_secs(300);

impl DockerApi {
    /// Every volume with its driver, options, labels and users (`backup`).
    pub fn volume_specs(&self) -> Result<Vec<VolumeSpec>> {
        let list: List = self.get_json("/volumes")?;
        let users = self.mounts()?;
        let mut out: Vec<VolumeSpec> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let mut spec = v.into_now().spec;
                spec.users = users.iter().filter(|(vol, _)| *vol == spec.name).map(|(_, u)| u.name.clone()).collect();
                spec.users.sort();
                spec
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `(volume name, container)` for every volume mount of every container.
    fn mounts(&self) -> Result<Vec<(String, User)>> {
        let mut out = Vec::new();
        self.each_mount(|m, u| {
            if let (true, Some(v)) = (m.kind == "volume", &m.name) {
                out.push((v.clone(), u.clone()));
            }
        })?;
        Ok(out)
    }

    /// Calls `f` with every mount of every container, in any state.
    fn each_mount(&self, mut f: impl FnMut(&Mount, &User)) -> Result<()> {
        let list: Vec<Listed> = self.get_json("/containers/json?all=1")?;
        for c in list {
            let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
            let user = User { id: c.id.clone(), name, state: c.state.clone() };
            c.mounts.unwrap_or_default().iter().for_each(|m| f(m, &user));
        }
        Ok(())
    }

    /// The containers, in any state, that mount volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<User>> {
        Ok(self.mounts()?.into_iter().filter(|(v, _)| v == name).map(|(_, u)| u).collect())
    }

    /// The containers, in any state, with a bind mount whose source is
    /// `path`, inside it or around it: they see its files.
    pub fn bind_users(&self, path: &Path) -> Result<Vec<User>> {
        let mut out: Vec<User> = Vec::new();
        self.each_mount(|m, u| {
            let overlaps = m.source.as_deref().is_some_and(|s| s.starts_with(path) || path.starts_with(s));
            if m.kind == "bind" && overlaps && !out.iter().any(|o| o.id == u.id) {
                out.push(u.clone());
            }
        })?;
        Ok(out)
    }

    /// `GET /volumes/NAME`; None when there is no such volume.
    pub fn volume(&self, name: &str) -> Result<Option<VolumeNow>> {
        match self.get_json::<Inspect>(&format!("/volumes/{name}")) {
            Ok(v) => Ok(Some(v.into_now())),
            Err(DockerError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates volume `name` with `spec`'s driver, options and labels.
    pub fn create_volume(&self, name: &str, spec: &VolumeSpec) -> Result<VolumeNow> {
        let body = serde_json::json!({"Name": name, "Driver": spec.driver, "DriverOpts": spec.options, "Labels": spec.labels});
        let endpoint = "/volumes/create";
        let answer = self.send("POST", endpoint, Some(body.to_string().as_bytes()), self.timeout)?;
        let v: Inspect = serde_json::from_slice(&answer).map_err(|source| DockerError::Decode { endpoint: endpoint.into(), source })?;
        Ok(v.into_now())
    }

    /// Removes volume `name` (refused by the engine while a container uses it).
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        self.send("DELETE", &format!("/volumes/{name}"), None, self.timeout).map(drop)
    }

    /// Stops container `id` (its own stop timeout, then SIGKILL); a
    /// container that is not running is left as it is.
    pub fn stop_container(&self, id: &str) -> Result<()> {
        not_modified(self.send("POST", &format!("/containers/{id}/stop"), None, STOP_WAIT))
    }

    /// Starts container `id`; one that runs already is left as it is.
    pub fn start_container(&self, id: &str) -> Result<()> {
        not_modified(self.send("POST", &format!("/containers/{id}/start"), None, STOP_WAIT))
    }

    /// Container `id`'s state (`running`, `exited`, ...) and start time; None when it is gone.
    pub fn container_state(&self, id: &str) -> Result<Option<(String, String)>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct State {
            status: String,
            started_at: String,
        }
        #[derive(Deserialize)]
        struct C {
            #[serde(rename = "State")]
            state: State,
        }
        match self.get_json::<C>(&format!("/containers/{id}/json")) {
            Ok(c) => Ok(Some((c.state.status, c.state.started_at))),
            Err(DockerError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// 304 Not Modified: the container was already in the state asked for.
fn not_modified(r: Result<Vec<u8>>) -> Result<()> {
    match r {
        Ok(_) | Err(DockerError::Status { status: 304, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_elsewhere_names_drivers_and_mounting_options() {
        let mut s =
            VolumeSpec { name: "v".into(), driver: "local".into(), options: BTreeMap::new(), labels: BTreeMap::new(), users: vec![] };
        assert_eq!(s.data_elsewhere(), None);
        s.options.insert("type".into(), "nfs".into());
        s.options.insert("device".into(), ":/export".into());
        assert!(s.data_elsewhere().unwrap().contains(":/export"));
        s.options.clear();
        s.driver = "rexray".into();
        assert!(s.data_elsewhere().unwrap().contains("rexray"));
    }

    #[test]
    fn decodes_null_maps_and_mounts() {
        let v: Inspect = serde_json::from_str(
            r#"{"Name":"v","Driver":"local","Mountpoint":"/d/volumes/v/_data","Options":null,"Labels":null,"Scope":"local"}"#,
        )
        .unwrap();
        let n = v.into_now();
        assert!(n.spec.options.is_empty() && n.spec.labels.is_empty() && n.created_at.is_empty());
        let l: Vec<Listed> = serde_json::from_str(
            r#"[{"Id":"1","Names":["/a"],"State":"running","Mounts":[{"Type":"volume","Name":"v","Source":"/x"},{"Type":"bind","Source":"/y"}]}]"#,
        )
        .unwrap();
        assert_eq!(l[0].mounts.as_ref().unwrap().len(), 2);
    }
}
