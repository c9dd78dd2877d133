//! Helpers for tests of libuv's thread pool: a lock for the tests that hold its
//! threads, every thread held at once, and one job held at a gate.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};

use uv::{Loop, RunMode};

use crate::fs::pool_size;

/// Tests that hold pool threads take this lock: two of them holding the pool at
/// once would wait for each other's jobs forever.
pub fn pool_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every pool thread running a blocker (libuv's `saturate_threadpool`), so that
/// jobs queued meanwhile wait in the queue.
#[derive(Debug)]
pub struct Saturated {
    /// Waiting on it lets the blockers finish.
    pub release: Arc<Barrier>,
    /// The blockers whose `after` ran.
    pub done: Rc<Cell<usize>>,
}

/// Blocks every pool thread; returns once all of them run a blocker.
pub fn saturate(lp: &Loop) -> Saturated {
    let n = pool_size();
    let started = Arc::new(Barrier::new(n + 1));
    let release = Arc::new(Barrier::new(n + 1));
    let done = Rc::new(Cell::new(0));
    for _ in 0..n {
        let (s, r) = (started.clone(), release.clone());
        let d = done.clone();
        lp.queue_work(
            move || {
                s.wait();
                r.wait();
            },
            move |res| {
                res.unwrap();
                d.set(d.get() + 1);
            },
        )
        .unwrap();
    }
    started.wait();
    Saturated { release, done }
}

impl Saturated {
    /// Lets the blockers finish, runs the loop, and checks every `after` ran.
    pub fn release(self, lp: &Loop) {
        self.release.wait();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(self.done.get(), pool_size());
    }
}

/// A gate for one job: the job calls [`JobGate::pass`], which returns once the
/// test has seen it start ([`JobGate::started`]) and let it go ([`JobGate::open`]),
/// so that the test can check what holds while the job runs.
#[derive(Debug, Clone)]
pub struct JobGate {
    started: Arc<Barrier>,
    go: Arc<Barrier>,
}

impl Default for JobGate {
    fn default() -> Self {
        JobGate {
            started: Arc::new(Barrier::new(2)),
            go: Arc::new(Barrier::new(2)),
        }
    }
}

impl JobGate {
    /// The job's side: says it started, then waits to be let go.
    pub fn pass(&self) {
        self.started.wait();
        self.go.wait();
    }

    /// Returns once the job is running (at the gate).
    pub fn started(&self) {
        self.started.wait();
    }

    /// Lets the job go on.
    pub fn open(&self) {
        self.go.wait();
    }
}
