//! The walk's work queue: batches of entries for the workers, and pieces of
//! large entries. A large file would keep one worker busy while the ordered
//! collector waits for it (and the other workers run out of window), so its
//! owner splits it into tasks; idle workers take tasks before new batches,
//! and the owner works through the queue while it waits, so a task never
//! waits for a thread. Everyone sleeps on one condition variable, never in a
//! `sched_yield` loop (see `queue`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use super::node::Item;
use super::queue::{lock, wait};

/// A unit of work for any worker.
pub(crate) type Task = Box<dyn FnOnce() + Send + 'static>;

/// One job of a group handed to [`Pool::run_all`].
pub(crate) type Job<T> = Box<dyn FnOnce() -> T + Send + 'static>;

/// What a worker takes next.
pub(crate) enum Work {
    Task(Task),
    /// Entries, in walk order; the worker calls [`Pool::batch_done`] after.
    Batch(Vec<Item>),
}

#[derive(Default)]
struct State {
    tasks: VecDeque<Task>,
    batches: VecDeque<Vec<Item>>,
    /// No more batches will come.
    closed: bool,
    /// Workers on a batch (which may still split a large file).
    busy: usize,
    sleepers: usize,
}

/// The queue shared by the walk's workers.
#[derive(Default)]
pub struct Pool(Arc<Inner>);

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

impl Inner {
    fn notify(&self, st: &State) {
        if st.sleepers > 0 {
            self.wake.notify_all();
        }
    }
}

impl Pool {
    pub(crate) fn push_batch(&self, batch: Vec<Item>) {
        let mut st = lock(&self.0.state);
        st.batches.push_back(batch);
        self.0.notify(&st);
    }

    /// Queues a task for any worker (the restore's file writes).
    pub(crate) fn push_task(&self, t: Task) {
        let mut st = lock(&self.0.state);
        st.tasks.push_back(t);
        // One task, one worker: waking them all would wake the others for nothing.
        if st.sleepers > 0 {
            self.0.wake.notify_one();
        }
    }

    /// A worker that only runs tasks, until the pool is closed and drained.
    /// A task that panics is its own business (it reports its failure).
    pub(crate) fn run_tasks(&self) {
        while let Some(w) = self.next() {
            if let Work::Task(t) = w {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(t));
            }
        }
    }

    /// No more batches: workers leave once the queue is empty and no worker
    /// is still on a batch. Idempotent.
    pub(crate) fn close(&self) {
        let mut st = lock(&self.0.state);
        st.closed = true;
        self.0.notify(&st);
    }

    /// For workers: the next task, else the next batch (marked busy until
    /// [`Pool::batch_done`]), waiting for either; `None` when all is done.
    pub(crate) fn next(&self) -> Option<Work> {
        let mut st = lock(&self.0.state);
        loop {
            if let Some(t) = st.tasks.pop_front() {
                return Some(Work::Task(t));
            }
            if let Some(b) = st.batches.pop_front() {
                st.busy += 1;
                return Some(Work::Batch(b));
            }
            if st.closed && st.busy == 0 {
                return None;
            }
            st.sleepers += 1;
            st = wait(&self.0.wake, st);
            st.sleepers -= 1;
        }
    }

    /// A worker finished a batch taken from [`Pool::next`].
    pub(crate) fn batch_done(&self) {
        let mut st = lock(&self.0.state);
        st.busy -= 1;
        if st.busy == 0 && st.closed {
            self.0.notify(&st);
        }
    }

    /// Runs every job, the first on this thread, and returns their results
    /// in order. While waiting it runs queued tasks (its own or others').
    /// Panics if a job panicked (the caller's entry then fails).
    pub(crate) fn run_all<T: Send + 'static>(&self, mut jobs: Vec<Job<T>>) -> Vec<T> {
        if jobs.len() <= 1 {
            return jobs.into_iter().map(|j| j()).collect();
        }
        let n = jobs.len();
        let group = Arc::new(Group { out: Mutex::new(Slots { out: (0..n).map(|_| None).collect(), left: n - 1, panicked: false }) });
        let rest = jobs.split_off(1);
        {
            let mut st = lock(&self.0.state);
            for (i, job) in rest.into_iter().enumerate() {
                let report = Report { group: group.clone(), pool: self.0.clone(), i: i + 1 };
                st.tasks.push_back(Box::new(move || report.finish(job())));
            }
            self.0.notify(&st);
        }
        let first = jobs.pop().expect("one job left")();
        lock(&group.out).out[0] = Some(first);
        let mut st = lock(&self.0.state);
        loop {
            {
                let g = lock(&group.out);
                assert!(!g.panicked, "a pool task panicked");
                if g.left == 0 {
                    break;
                }
            }
            if let Some(t) = st.tasks.pop_front() {
                drop(st);
                t();
                st = lock(&self.0.state);
                continue;
            }
            st.sleepers += 1;
            st = wait(&self.0.wake, st);
            st.sleepers -= 1;
        }
        drop(st);
        let mut g = lock(&group.out);
        std::mem::take(&mut g.out).into_iter().map(|t| t.expect("every job reported")).collect()
    }
}

struct Slots<T> {
    out: Vec<Option<T>>,
    left: usize,
    panicked: bool,
}

struct Group<T> {
    out: Mutex<Slots<T>>,
}

/// Hands one job's result to its group and wakes the owner; dropped
/// without a result (the job panicked), it marks the group failed.
struct Report<T> {
    group: Arc<Group<T>>,
    pool: Arc<Inner>,
    i: usize,
}

impl<T> Report<T> {
    fn finish(self, v: T) {
        lock(&self.group.out).out[self.i] = Some(v);
        // Drop does the counting and the wake-up.
    }
}

impl<T> Drop for Report<T> {
    fn drop(&mut self) {
        {
            let mut g = lock(&self.group.out);
            if g.out[self.i].is_some() {
                g.left -= 1;
            } else {
                g.panicked = true;
            }
        }
        let st = lock(&self.pool.state);
        self.pool.notify(&st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(pool: &Pool) -> std::thread::JoinHandle<()> {
        let pool = Pool(pool.0.clone());
        std::thread::spawn(move || {
            while let Some(w) = pool.next() {
                if let Work::Task(t) = w {
                    t();
                }
            }
        })
    }

    #[test]
    fn results_come_back_in_order_with_helpers() {
        let pool = Pool::default();
        let h = helper(&pool);
        let jobs: Vec<Job<usize>> = (0..50usize).map(|i| Box::new(move || i * 2) as Job<usize>).collect();
        assert_eq!(pool.run_all(jobs), (0..50).map(|i| i * 2).collect::<Vec<_>>());
        pool.close();
        h.join().unwrap();
        // Alone, the owner runs everything itself.
        let pool = Pool::default();
        let jobs: Vec<Job<usize>> = (0..5usize).map(|i| Box::new(move || i) as Job<usize>).collect();
        assert_eq!(pool.run_all(jobs), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_panicking_job_fails_its_owner_not_the_helper() {
        let pool = Pool::default();
        let h = helper(&pool);
        let jobs: Vec<Job<u32>> = (0..4u32)
            .map(|i| {
                Box::new(move || {
                    assert!(i != 2, "job bomb");
                    i
                }) as Job<u32>
            })
            .collect();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.run_all(jobs)));
        assert!(r.is_err());
        pool.close();
        h.join().unwrap_or_default();
    }
}
