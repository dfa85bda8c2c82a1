//! Helping hands for one large entry. The walk's workers take whole entries;
//! a large file would keep one worker busy while the ordered collector waits
//! for it (and the other workers run out of window). Its owner splits it into
//! tasks on this pool; idle workers take them before new entries, and the
//! owner works through the queue while it waits, so a task never waits for a
//! thread.

use crossbeam_channel::{Receiver, Sender, select, unbounded};

/// A unit of work for any worker.
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// One job of a group handed to [`Pool::run_all`].
pub type Job<T> = Box<dyn FnOnce() -> T + Send + 'static>;

/// The task queue shared by the walk's workers.
#[derive(Clone)]
pub struct Pool {
    tx: Sender<Task>,
    rx: Receiver<Task>,
}

impl Default for Pool {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        Pool { tx, rx }
    }
}

impl Pool {
    /// The queue, for workers that wait on it together with their own work.
    pub fn tasks(&self) -> &Receiver<Task> {
        &self.rx
    }

    /// Runs every job, the first on this thread, and returns their results
    /// in order. While waiting it runs queued tasks (its own or others').
    pub fn run_all<T: Send + 'static>(&self, mut jobs: Vec<Job<T>>) -> Vec<T> {
        if jobs.len() <= 1 {
            return jobs.into_iter().map(|j| j()).collect();
        }
        let n = jobs.len();
        let (done_tx, done_rx) = unbounded::<(usize, T)>();
        let rest = jobs.split_off(1);
        for (i, job) in rest.into_iter().enumerate() {
            let tx = done_tx.clone();
            let _ = self.tx.send(Box::new(move || {
                let _ = tx.send((i + 1, job()));
            }));
        }
        // Only the queued tasks hold senders now: if one panics, the
        // channel disconnects instead of hanging this thread.
        drop(done_tx);
        let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
        out[0] = Some(jobs.pop().expect("one job left")());
        let mut left = n - 1;
        while left > 0 {
            let got = match done_rx.try_recv() {
                Ok(m) => Some(m),
                Err(_) => select! {
                    recv(done_rx) -> m => Some(m.expect("a pool task panicked")),
                    recv(self.rx) -> t => {
                        if let Ok(t) = t {
                            t();
                        }
                        None
                    }
                },
            };
            if let Some((i, t)) = got {
                out[i] = Some(t);
                left -= 1;
            }
        }
        out.into_iter().map(|t| t.expect("every job reported")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_with_helpers() {
        let pool = Pool::default();
        let helper = {
            let rx = pool.tasks().clone();
            std::thread::spawn(move || {
                while let Ok(t) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    t();
                }
            })
        };
        let jobs: Vec<Job<usize>> = (0..50usize).map(|i| Box::new(move || i * 2) as Job<usize>).collect();
        assert_eq!(pool.run_all(jobs), (0..50).map(|i| i * 2).collect::<Vec<_>>());
        // Alone, the owner runs everything itself.
        let jobs: Vec<Job<usize>> = (0..5usize).map(|i| Box::new(move || i) as Job<usize>).collect();
        assert_eq!(pool.run_all(jobs), vec![0, 1, 2, 3, 4]);
        helper.join().unwrap();
    }
}
