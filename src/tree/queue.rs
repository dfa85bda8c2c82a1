//! Blocking hand-offs between the walk's threads, on a `Mutex` and a
//! `Condvar`: a thread with nothing to do sleeps in the kernel. Channels
//! (crossbeam's, and std's, which is built the same way) spin with
//! `sched_yield` before they block; on two cores shared by the walker, the
//! workers and the collector, a 40k-file copy made 4,564 `sched_yield` calls
//! (issue 11). A waker signals only when someone sleeps, so the common case
//! costs no system call.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the state guarded here stays consistent
/// (every critical section is a push, a pop or a count).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits on `c`, ignoring poisoning (see [`lock`]).
pub fn wait<'a, T>(c: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    c.wait(g).unwrap_or_else(|p| p.into_inner())
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    sleeping: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// The sending side of a many-to-one queue; cloned for each producer. The
/// queue closes when the last sender is dropped (also by a panic).
pub struct Sender<T>(Arc<Shared<T>>);

/// The single consumer's side.
pub struct Receiver<T>(Arc<Shared<T>>);

pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Shared { state: Mutex::new(State { items: VecDeque::new(), senders: 1, sleeping: false }), ready: Condvar::new() });
    (Sender(s.clone()), Receiver(s))
}

impl<T> Sender<T> {
    pub fn send(&self, item: T) {
        let mut st = lock(&self.0.state);
        st.items.push_back(item);
        if st.sleeping {
            st.sleeping = false;
            self.0.ready.notify_one();
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.0.state).senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.senders -= 1;
        if st.senders == 0 {
            self.0.ready.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// Everything queued, waiting for at least one item; `None` once the
    /// queue is empty and every sender is gone.
    pub fn recv_all(&self) -> Option<VecDeque<T>> {
        let mut st = lock(&self.0.state);
        loop {
            if !st.items.is_empty() {
                return Some(std::mem::take(&mut st.items));
            }
            if st.senders == 0 {
                return None;
            }
            st.sleeping = true;
            st = wait(&self.0.ready, st);
        }
    }
}

/// A counting semaphore: the entries in flight. The walker takes a place per
/// entry; the collector gives places back as it hands entries on.
pub struct Window {
    state: Mutex<(usize, bool)>,
    freed: Condvar,
}

impl Window {
    pub fn new(places: usize) -> Window {
        Window { state: Mutex::new((places, false)), freed: Condvar::new() }
    }

    /// Takes a place if one is free.
    pub fn try_take(&self) -> bool {
        let mut st = lock(&self.state);
        if st.0 == 0 {
            return false;
        }
        st.0 -= 1;
        true
    }

    /// Takes a place, waiting for one.
    pub fn take(&self) {
        let mut st = lock(&self.state);
        while st.0 == 0 {
            st.1 = true;
            st = wait(&self.freed, st);
        }
        st.0 -= 1;
    }

    /// Gives `n` places back.
    pub fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut st = lock(&self.state);
        st.0 += n;
        if st.1 {
            st.1 = false;
            self.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_closes_when_the_last_sender_goes() {
        let (tx, rx) = channel::<u32>();
        let producers: Vec<_> = (0..4u32)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || (0..1000).for_each(|i| tx.send(p * 1000 + i)))
            })
            .collect();
        drop(tx);
        let mut got = Vec::new();
        while let Some(batch) = rx.recv_all() {
            got.extend(batch);
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, (0..4000).collect::<Vec<_>>());
    }

    #[test]
    fn the_window_blocks_until_a_place_is_given_back() {
        let w = Arc::new(Window::new(2));
        assert!(w.try_take() && w.try_take() && !w.try_take());
        let taker = {
            let w = w.clone();
            std::thread::spawn(move || w.take())
        };
        w.give(1);
        taker.join().unwrap();
        assert!(!w.try_take());
    }
}
