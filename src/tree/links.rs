//! Hardlink groups. The walker sees entries in order, so the first name of an
//! inode with several links becomes the group's head and later names become
//! members that link to it. A member being copied waits until its head's file
//! exists; the head was dispatched earlier from a FIFO queue, so it is already
//! being worked on and the wait cannot deadlock.

use std::collections::HashMap;
use std::sync::Arc;

// The link types live with the work items that carry them (node.rs).
pub(crate) use super::node::HeadPlace;
pub use super::node::{LinkRole, LinkSlot};

struct Group {
    head_rel: Vec<u8>,
    slot: Arc<LinkSlot>,
    remaining: u64,
}

/// The walker's map of open groups, keyed by (device, inode). A group is
/// dropped once all its links were seen, so memory stays proportional to the
/// groups still open.
#[derive(Default)]
pub(crate) struct Groups {
    open: HashMap<(u64, u64), Group>,
}

impl Groups {
    pub(crate) fn role(&mut self, dev: u64, ino: u64, nlink: u64, rel: &[u8]) -> Option<LinkRole> {
        if nlink < 2 {
            return None;
        }
        let key = (dev, ino);
        if let Some(g) = self.open.get_mut(&key) {
            g.remaining = g.remaining.saturating_sub(1);
            let role = LinkRole::Member { head_rel: g.head_rel.clone(), slot: g.slot.clone() };
            if g.remaining == 0 {
                self.open.remove(&key);
            }
            return Some(role);
        }
        let slot = Arc::new(LinkSlot::default());
        self.open.insert(key, Group { head_rel: rel.to_vec(), slot: slot.clone(), remaining: nlink - 1 });
        Some(LinkRole::Head(slot))
    }
}
