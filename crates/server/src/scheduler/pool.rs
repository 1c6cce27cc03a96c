//! [`ComputePool`]: the threads that run model calls, shared by every model version.
//!
//! One pool per process, sized to the cores by default, so any number of models, each with its
//! `instances`, never runs more computations at once than there are cores (Triton gives every
//! instance a thread of its own, and a repository of many models oversubscribes the CPU). A
//! version's `instances` caps how many of its batches are in the pool at once; the pool runs
//! jobs in the order they come, across versions.
//!
//! Model calls block for their whole duration, so they run on plain threads, never on the
//! async runtime's.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// A model call, with everything it needs to answer its requests.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Threads that run model calls.
#[derive(Debug)]
pub struct ComputePool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

static GLOBAL: OnceLock<Arc<ComputePool>> = OnceLock::new();

impl ComputePool {
    /// Starts `threads` threads (at least one). They exit when the pool is dropped.
    pub fn new(threads: usize) -> std::io::Result<ComputePool> {
        let threads = threads.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>();
        // The threads share one receiver; a std Mutex: only these plain threads lock it.
        let receiver = Arc::new(Mutex::new(receiver));
        for ix in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("fs-compute-{ix}"))
                .spawn(move || {
                    loop {
                        let job = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { return };
                        job();
                    }
                })?;
        }
        Ok(ComputePool { jobs, threads })
    }

    /// The process's pool, started on first use with `threads` (one per core when `None`);
    /// later calls get the same pool whatever they ask.
    pub fn global(threads: Option<usize>) -> std::io::Result<Arc<ComputePool>> {
        if let Some(pool) = GLOBAL.get() {
            return Ok(Arc::clone(pool));
        }
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let pool = Arc::new(ComputePool::new(threads)?);
        // Two first callers at once: one pool wins, the other's threads exit when it drops.
        Ok(Arc::clone(GLOBAL.get_or_init(|| pool)))
    }

    /// How many calls run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job` for the next free thread. Jobs catch their own panics (the workers'
    /// `run` does), so a thread never dies of one.
    pub(crate) fn execute(&self, job: Job) {
        // The threads only exit once this sender is dropped, so sending cannot fail.
        let _ = self.jobs.send(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_job_and_never_more_at_once_than_its_threads() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = ComputePool::new(2).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (done, finished) = mpsc::channel();
        for _ in 0..8 {
            let (running, most, done) = (Arc::clone(&running), Arc::clone(&most), done.clone());
            pool.execute(Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                done.send(()).unwrap();
            }));
        }
        for _ in 0..8 {
            finished
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(pool.threads(), 2);
    }
}
