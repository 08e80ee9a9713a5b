//! Threads of a stage's pool held back until the runner grants them.
//!
//! A rayon pool has a fixed size, but the threads a stage should use change as the stages
//! beside it end: an autoencoder started beside a classifier should take both cores once the
//! classifier is done. So a stage's pool has every thread, and each one beyond the stage's
//! share is parked on a job that waits here. A parked thread takes no other work, so the stage
//! runs on its share (a join that finds no thief runs both halves itself); granting a thread
//! ends one parked job and that thread starts stealing the stage's work.
//!
//! The parked jobs are handed to the pool before the stage's own work, and a pool takes
//! outside jobs first in, first out, so no thread that runs the stage ever picks one up.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Parked threads of one stage's pool and the grants that free them.
#[derive(Default)]
pub(crate) struct ThreadGate {
    /// Grants not yet taken by a parked thread.
    granted: Mutex<usize>,
    changed: Condvar,
}

impl ThreadGate {
    /// Parks `count` threads of `pool` until they are granted.
    pub(crate) fn park(self: &Arc<Self>, pool: &rayon::ThreadPool, count: usize) {
        for _ in 0..count {
            let gate = Arc::clone(self);
            pool.spawn(move || gate.wait_for_grant());
        }
    }

    fn wait_for_grant(&self) {
        // A poisoned lock still holds a valid count: nothing panics while holding it.
        let mut granted = self.granted.lock().unwrap_or_else(PoisonError::into_inner);
        while *granted == 0 {
            granted = self
                .changed
                .wait(granted)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *granted -= 1;
    }

    /// Lets `count` parked threads go to work.
    pub(crate) fn grant(&self, count: usize) {
        let mut granted = self.granted.lock().unwrap_or_else(PoisonError::into_inner);
        *granted = granted.saturating_add(count);
        self.changed.notify_all();
    }

    /// Lets every parked thread go, so that the pool can end with the stage.
    pub(crate) fn open(&self) {
        self.grant(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    /// Threads that take part in a parallel loop of short sleeps on `pool`.
    fn working_threads(pool: &rayon::ThreadPool) -> usize {
        pool.install(|| {
            (0..200)
                .into_par_iter()
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(1));
                    rayon::current_thread_index()
                })
                .collect::<BTreeSet<_>>()
                .len()
        })
    }

    #[test]
    fn parked_threads_take_no_work_until_granted() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let gate = Arc::new(ThreadGate::default());
        gate.park(&pool, 2);
        assert_eq!(working_threads(&pool), 1);
        gate.grant(1);
        assert_eq!(working_threads(&pool), 2);
        gate.open();
        assert_eq!(working_threads(&pool), 3);
    }
}
