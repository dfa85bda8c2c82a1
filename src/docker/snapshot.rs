//! A comparable picture of what the daemon holds: images, containers and
//! volumes, sorted. Taken before and after a move, equality is the health
//! check: the same engine on the moved data-root must see the same objects.

use super::api::DockerApi;
use super::error::Result;
use serde::{Deserialize, Serialize};

/// How Docker 20.10 prints "no tag" and "no digest".
const UNTAGGED: &str = "<none>:<none>";
const UNTAGGED_DIGEST: &str = "<none>@<none>";

/// One image: id and sorted tags.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImageState {
    /// `sha256:...`
    pub id: String,
    /// Sorted `name:tag` references.
    pub tags: Vec<String>,
}

/// One container as far as a move must preserve it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerState {
    /// Full id.
    pub id: String,
    /// Sorted names.
    pub names: Vec<String>,
    /// Image reference.
    pub image: String,
    /// `created`, `running`, `exited`, ...
    pub state: String,
    /// Restart policy name.
    pub restart_policy: String,
}

impl std::fmt::Display for ImageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tags.is_empty() { write!(f, "{} (untagged)", self.id) } else { write!(f, "{} ({})", self.id, self.tags.join(", ")) }
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (names, image, state, policy) = (self.names.join(","), &self.image, &self.state, &self.restart_policy);
        write!(f, "{names} (image {image}, {state}, restart policy {policy})")
    }
}

/// Sorted images, containers and volume names of one daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerState {
    /// Images, sorted by id.
    pub images: Vec<ImageState>,
    /// Containers, sorted by id.
    pub containers: Vec<ContainerState>,
    /// Volume names, sorted.
    pub volumes: Vec<String>,
}

impl DockerState {
    /// Queries the daemon behind `api`.
    pub fn capture(api: &DockerApi) -> Result<Self> {
        let images = api.images()?.into_iter().map(|i| ImageState { id: i.id, tags: i.repo_tags });
        let containers = api.containers()?.into_iter().map(|c| ContainerState {
            id: c.id,
            names: c.names,
            image: c.image,
            state: c.state,
            restart_policy: c.restart_policy,
        });
        let volumes = api.volumes()?.into_iter().map(|v| v.name);
        Ok(Self::new(images.collect(), containers.collect(), volumes.collect()))
    }

    /// Builds a normalised state: sorted, and untagged written one way.
    /// Docker 20.10 lists an untagged image as `<none>:<none>`, Docker 25+
    /// as no tag at all; both mean the same, and a restore onto a newer
    /// engine must not fail on how a version prints it.
    pub fn new(mut images: Vec<ImageState>, mut containers: Vec<ContainerState>, mut volumes: Vec<String>) -> Self {
        for i in &mut images {
            i.tags.retain(|t| t != UNTAGGED && t != UNTAGGED_DIGEST);
            i.tags.sort();
        }
        containers.iter_mut().for_each(|c| c.names.sort());
        images.sort();
        containers.sort();
        volumes.sort();
        Self { images, containers, volumes }
    }

    /// Human-readable differences from `self` (before) to `after`; empty when equal.
    pub fn diff(&self, after: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff_list("image", &self.images, &after.images, |i| &i.id, &mut out);
        diff_list("container", &self.containers, &after.containers, |c| &c.id, &mut out);
        diff_list("volume", &self.volumes, &after.volumes, |v| v, &mut out);
        out
    }
}

fn diff_list<T: PartialEq + std::fmt::Display>(kind: &str, before: &[T], after: &[T], key: impl Fn(&T) -> &String, out: &mut Vec<String>) {
    for b in before {
        match after.iter().find(|a| key(a) == key(b)) {
            None => out.push(format!("{kind} {} missing after: {b}", key(b))),
            Some(a) if a != b => out.push(format!("{kind} {} changed: {b} -> {a}", key(b))),
            Some(_) => {}
        }
    }
    for a in after.iter().filter(|a| !before.iter().any(|b| key(b) == key(a))) {
        out.push(format!("{kind} {} new after: {a}", key(a)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, state: &str) -> ContainerState {
        ContainerState { id: id.into(), names: vec!["/x".into()], image: "i".into(), state: state.into(), restart_policy: "no".into() }
    }

    #[test]
    fn diff_reports_readably() {
        let img = |id: &str, t: &[&str]| ImageState { id: id.into(), tags: t.iter().map(|s| s.to_string()).collect() };
        let a = DockerState::new(vec![img("b", &["z:1", "a:1"]), img("a", &[])], vec![c("1", "exited")], vec!["v2".into(), "v1".into()]);
        let b = DockerState::new(vec![img("a", &[]), img("b", &["a:1", "z:1"])], vec![c("1", "running")], vec!["v1".into()]);
        assert_eq!(a.images, b.images);
        let d = a.diff(&b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("container 1 changed"));
        assert!(d[1].starts_with("volume v2 missing"));
        // Regression: the health check printed `ContainerState { id: … }`.
        assert_eq!(d[0], "container 1 changed: /x (image i, exited, restart policy no) -> /x (image i, running, restart policy no)");
        assert!(a.diff(&a.clone()).is_empty());
    }

    #[test]
    fn untagged_is_the_same_on_every_engine() {
        let img = |t: &[&str]| ImageState { id: "sha256:1".into(), tags: t.iter().map(|s| s.to_string()).collect() };
        // 20.10's `/images/json?all=1` vs 28's for the same intermediate image.
        let old = DockerState::new(vec![img(&["<none>:<none>"])], vec![], vec![]);
        let new = DockerState::new(vec![img(&[])], vec![], vec![]);
        assert!(old.diff(&new).is_empty());
        // A real tag still counts.
        let tagged = DockerState::new(vec![img(&["a:1"])], vec![], vec![]);
        assert_eq!(old.diff(&tagged).len(), 1);
    }
}
