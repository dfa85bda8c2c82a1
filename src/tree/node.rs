//! Directory nodes and work items.
//!
//! A `DirNode` keeps the source (and, when copying, the destination) directory
//! open while anything below it is in flight. Every child item and every child
//! directory holds an `Arc` to it, so its finaliser (which sets the
//! directory's own metadata) runs exactly when the last child is done:
//! deepest first, after all children were written, as directory mtimes need.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use super::links::LinkRole;
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
    pub link: Option<LinkRole>,
    /// The record of this path in a baseline manifest (delta copies).
    pub baseline: Option<Record>,
}
