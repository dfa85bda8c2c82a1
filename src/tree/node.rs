//! Directory nodes and work items.
//!
//! A `DirNode` keeps the source (and, when copying, the destination) directory
//! open while anything below it is in flight. Every child item and every child
//! directory holds an `Arc` to it, so its finaliser (which sets the
//! directory's own metadata) runs exactly when the last child is done:
//! deepest first, after all children were written, as directory mtimes need.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};

use crate::manifest::Record;
use crate::sys::Meta;

pub(crate) type Finaliser = Box<dyn FnOnce(&DirNode) + Send>;

pub struct DirNode {
    /// Path relative to the walk root (`""` for the root).
    pub rel: Vec<u8>,
    pub src: OwnedFd,
    pub dst: Option<OwnedFd>,
    pub parent: Option<Arc<DirNode>>,
    finaliser: Mutex<Option<Finaliser>>,
}

impl DirNode {
    pub fn new(rel: Vec<u8>, src: OwnedFd, dst: Option<OwnedFd>, parent: Option<Arc<DirNode>>) -> DirNode {
        DirNode { rel, src, dst, parent, finaliser: Mutex::new(None) }
    }

    pub(crate) fn set_finaliser(&self, f: Finaliser) {
        *self.finaliser.lock().unwrap() = Some(f);
    }
}

impl Drop for DirNode {
    fn drop(&mut self) {
        if let Some(f) = self.finaliser.get_mut().unwrap().take() {
            f(self);
        }
    }
}

/// One entry to process. `parent` is the directory holding it; for the root
/// the node is the root itself and `name` is `.`.
pub struct Item {
    pub seq: u64,
    pub rel: Vec<u8>,
    pub name: CString,
    pub parent: Arc<DirNode>,
    /// The stat taken by the walker.
    pub meta: Meta,
    /// The walker's `O_PATH` handle, whose stat `meta` is (`sys::seen::open_entry`);
    /// `None` for the root.
    pub handle: Option<OwnedFd>,
    /// The tree is private (`WalkOptions::private`, granted): the walker only
    /// lstat'ed the entry, and it is opened by its name, directly.
    pub private: bool,
    pub link: Option<LinkRole>,
    /// The record of this path in a baseline manifest (delta copies).
    pub baseline: Option<Record>,
}

/// Where the head of a group ended up in the destination.
pub(crate) struct HeadPlace {
    pub dir: Arc<DirNode>,
    pub name: CString,
}

/// Published once by the head's worker: `Some(place)`, or `None` when the head
/// failed (its members then fail too, with a pointer to the head's error).
#[derive(Default)]
pub struct LinkSlot {
    state: Mutex<Option<Option<HeadPlace>>>,
    ready: Condvar,
}

impl LinkSlot {
    pub(crate) fn publish(&self, place: Option<HeadPlace>) {
        *self.state.lock().unwrap() = Some(place);
        self.ready.notify_all();
    }

    /// Waits for the head and calls `f` with its place.
    pub(crate) fn with_head<R>(&self, f: impl FnOnce(Option<&HeadPlace>) -> R) -> R {
        let mut g = self.state.lock().unwrap();
        while g.is_none() {
            g = self.ready.wait(g).unwrap();
        }
        f(g.as_ref().unwrap().as_ref())
    }
}

pub enum LinkRole {
    Head(Arc<LinkSlot>),
    Member { head_rel: Vec<u8>, slot: Arc<LinkSlot> },
}
