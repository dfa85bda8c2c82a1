//! Id maps of user namespaces (rootless Docker, issue 19): which host ids
//! stand for which in-namespace ids. Below every layer, because the docker
//! layer reads them from /etc/subuid and the tree layer shifts files by them.

use serde::{Deserialize, Serialize};

/// A range of subordinate ids: `start`, `start + 1`, … (`count` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.start, self.count)
    }
}

/// How the ids of one kind (uids or gids) of a rootless daemon map between
/// the host and its user namespace: inside id 0 is the user's own `owner`
/// id, inside ids 1 and up are the `ranges` one after the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub owner: u32,
    pub ranges: Vec<IdRange>,
}

impl IdMap {
    /// The in-namespace id of host id `host` (`None`: not mapped).
    pub fn inside(&self, host: u32) -> Option<u32> {
        if host == self.owner {
            return Some(0);
        }
        let mut base = 1u32;
        for r in &self.ranges {
            if host >= r.start && host - r.start < r.count {
                return base.checked_add(host - r.start);
            }
            base = base.checked_add(r.count)?;
        }
        None
    }

    /// The host id of in-namespace id `inside` (`None`: not mapped).
    pub fn host(&self, inside: u32) -> Option<u32> {
        if inside == 0 {
            return Some(self.owner);
        }
        let mut base = 1u32;
        for r in &self.ranges {
            if inside >= base && inside - base < r.count {
                return r.start.checked_add(inside - base);
            }
            base = base.checked_add(r.count)?;
        }
        None
    }

    /// How many in-namespace ids are mapped (the owner's included).
    pub fn size(&self) -> u64 {
        1 + self.ranges.iter().map(|r| u64::from(r.count)).sum::<u64>()
    }
}

impl std::fmt::Display for IdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges = self.ranges.iter().map(IdRange::to_string).collect::<Vec<_>>().join(",");
        write!(f, "{} + [{}]", self.owner, if ranges.is_empty() { "none" } else { &ranges })
    }
}
