//! Blocking hand-offs between threads (the walk's, and the restore's
//! decompression pipe), on a `Mutex` and a `Condvar`: a thread with
//! nothing to do sleeps in the kernel. Channels (crossbeam's, and std's,
//! which is built the same way) spin with `sched_yield` before they block:
//! on two cores shared by the walker, the workers and the collector, a
//! 40k-file copy made 4,564 `sched_yield` calls, and a restore's pipe 439
//! (issue 11). A waker signals only when someone sleeps, so the common case
//! costs no system call.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the state guarded here stays consistent
/// (every critical section is a push, a pop or a count).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits on `c`, ignoring poisoning (see [`lock`]).
pub(crate) fn wait<'a, T>(c: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
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
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The single consumer's side.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Shared { state: Mutex::new(State { items: VecDeque::new(), senders: 1, sleeping: false }), ready: Condvar::new() });
    (Sender(s.clone()), Receiver(s))
}

impl<T> Sender<T> {
    pub(crate) fn send(&self, item: T) {
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
    pub(crate) fn recv_all(&self) -> Option<VecDeque<T>> {
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

/// A counting semaphore: the entries in flight (the walker takes a place per
/// entry; the collector gives places back as it hands entries on), or the
/// bytes an archive holds in memory ahead of its writer (see [`Permit`]).
pub(crate) struct Window {
    state: Mutex<(usize, bool)>,
    freed: Condvar,
}

impl Window {
    pub fn new(places: usize) -> Window {
        Window { state: Mutex::new((places, false)), freed: Condvar::new() }
    }

    /// Takes a place if one is free.
    pub(crate) fn try_take(&self) -> bool {
        self.try_take_n(1)
    }

    /// Takes `n` places if they are free.
    pub(crate) fn try_take_n(&self, n: usize) -> bool {
        let mut st = lock(&self.state);
        if st.0 < n {
            return false;
        }
        st.0 -= n;
        true
    }

    /// Takes a place, waiting for one.
    pub(crate) fn take(&self) {
        self.take_n(1)
    }

    /// Takes `n` places, waiting for them.
    pub(crate) fn take_n(&self, n: usize) {
        let mut st = lock(&self.state);
        while st.0 < n {
            st.1 = true;
            st = wait(&self.freed, st);
        }
        st.0 -= n;
    }

    /// Gives `n` places back.
    pub(crate) fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut st = lock(&self.state);
        st.0 += n;
        if st.1 {
            st.1 = false;
            // Waiters may want different amounts: each checks again.
            self.freed.notify_all();
        }
    }
}

/// Places taken from a shared [`Window`], given back when dropped: a byte
/// budget's bytes travel with the buffer that holds them.
pub(crate) struct Permit {
    window: Arc<Window>,
    n: usize,
}

impl Permit {
    /// `n` places if they are free now.
    pub(crate) fn try_take(window: &Arc<Window>, n: usize) -> Option<Permit> {
        window.try_take_n(n).then(|| Permit { window: window.clone(), n })
    }

    /// `n` places, waiting for them.
    pub(crate) fn take(window: &Arc<Window>, n: usize) -> Permit {
        window.take_n(n);
        Permit { window: window.clone(), n }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.window.give(self.n);
    }
}

/// Counts jobs in flight, so that a thread can wait until none is.
#[derive(Default)]
pub(crate) struct InFlight {
    /// Jobs, and whether someone waits (a notify is a system call).
    n: Mutex<(usize, bool)>,
    idle: Condvar,
}

impl InFlight {
    /// One job more, until the ticket is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> Ticket {
        lock(&self.n).0 += 1;
        Ticket(self.clone())
    }

    pub(crate) fn idle(&self) -> bool {
        lock(&self.n).0 == 0
    }

    /// Waits until every ticket is dropped.
    pub(crate) fn wait_idle(&self) {
        let mut n = lock(&self.n);
        while n.0 > 0 {
            n.1 = true;
            n = wait(&self.idle, n);
        }
    }
}

/// A job of an [`InFlight`] count; dropped when the job is done (also by a panic).
pub(crate) struct Ticket(Arc<InFlight>);

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut n = lock(&self.0.n);
        n.0 -= 1;
        if n.0 == 0 && n.1 {
            n.1 = false;
            self.0.idle.notify_all();
        }
    }
}

struct Bounded<T> {
    items: VecDeque<T>,
    cap: usize,
    sender: bool,
    receiver: bool,
}

struct BoundedShared<T> {
    state: Mutex<Bounded<T>>,
    filled: Condvar,
    drained: Condvar,
}

/// The producer of a one-to-one queue of at most `cap` items.
pub(crate) struct BoundedSender<T>(Arc<BoundedShared<T>>);

/// The consumer of a one-to-one bounded queue.
pub(crate) struct BoundedReceiver<T>(Arc<BoundedShared<T>>);

/// A queue from one thread to another that holds at most `cap` items: the
/// producer sleeps while it is full, the consumer while it is empty.
pub(crate) fn bounded<T>(cap: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    let state = Mutex::new(Bounded { items: VecDeque::with_capacity(cap), cap: cap.max(1), sender: true, receiver: true });
    let s = Arc::new(BoundedShared { state, filled: Condvar::new(), drained: Condvar::new() });
    (BoundedSender(s.clone()), BoundedReceiver(s))
}

impl<T> BoundedSender<T> {
    /// Queues `item`, waiting for room; gives it back once the receiver is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut st = lock(&self.0.state);
        while st.receiver && st.items.len() >= st.cap {
            st = wait(&self.0.drained, st);
        }
        if !st.receiver {
            return Err(item);
        }
        st.items.push_back(item);
        self.0.filled.notify_one();
        Ok(())
    }
}

impl<T> Drop for BoundedSender<T> {
    fn drop(&mut self) {
        lock(&self.0.state).sender = false;
        self.0.filled.notify_one();
    }
}

impl<T> BoundedReceiver<T> {
    /// The next item, waiting for one; `None` once the queue is empty and the
    /// sender is gone.
    pub(crate) fn recv(&self) -> Option<T> {
        let mut st = lock(&self.0.state);
        loop {
            if let Some(item) = st.items.pop_front() {
                self.0.drained.notify_one();
                return Some(item);
            }
            if !st.sender {
                return None;
            }
            st = wait(&self.0.filled, st);
        }
    }
}

impl<T> Drop for BoundedReceiver<T> {
    fn drop(&mut self) {
        lock(&self.0.state).receiver = false;
        self.0.drained.notify_one();
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

    #[test]
    fn a_permit_gives_its_places_back_when_dropped() {
        let w = Arc::new(Window::new(10));
        let p = Permit::try_take(&w, 8).unwrap();
        assert!(Permit::try_take(&w, 3).is_none());
        let waiter = {
            let w = w.clone();
            std::thread::spawn(move || drop(Permit::take(&w, 5)))
        };
        drop(p);
        waiter.join().unwrap();
        assert!(w.try_take_n(10));
    }

    #[test]
    fn in_flight_waits_for_every_ticket() {
        let f = Arc::new(InFlight::default());
        assert!(f.idle());
        let (a, b) = (f.enter(), f.enter());
        let job = std::thread::spawn(move || drop((a, b)));
        f.wait_idle();
        job.join().unwrap();
        assert!(f.idle());
    }

    #[test]
    fn the_bounded_queue_keeps_order_and_ends_with_its_sender() {
        let (tx, rx) = bounded::<u32>(2);
        let producer = std::thread::spawn(move || (0..1000).for_each(|i| tx.send(i).unwrap()));
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_bounded_queue_lets_its_sender_go_when_the_receiver_does() {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).unwrap();
        let blocked = std::thread::spawn(move || tx.send(2));
        drop(rx);
        assert_eq!(blocked.join().unwrap(), Err(2));
    }
}
