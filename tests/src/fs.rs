//! Helpers for the file-system request suites: result slots for callbacks, and a
//! way to keep libuv's thread pool busy so that a request stays queued (to cancel
//! it).

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;

use uv::{Fs, Loop, OpenFlags, RunMode};

use crate::net::TempDir;

/// A place a callback puts its value.
pub type Slot<T> = Rc<RefCell<Option<T>>>;

/// An empty slot.
pub fn slot<T>() -> Slot<T> {
    Rc::new(RefCell::new(None))
}

/// A callback that puts its value in `s`.
pub fn put<T: 'static>(s: &Slot<T>) -> impl FnOnce(T) + 'static {
    let s = s.clone();
    move |v| *s.borrow_mut() = Some(v)
}

/// Runs the loop until it has nothing left and takes what `slot` got.
pub fn wait<T>(lp: &Loop, slot: &Slot<T>) -> T {
    lp.run(RunMode::Default).unwrap();
    slot.borrow_mut().take().expect("the callback ran")
}

/// libuv's thread-pool size (`UV_THREADPOOL_SIZE`, default 4).
pub fn pool_size() -> usize {
    std::env::var("UV_THREADPOOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4usize)
        .clamp(1, 1024)
}

/// Every thread of libuv's pool blocked in `open(2)` of a FIFO that has no writer
/// yet: requests submitted after [`PoolBlocker::new`] stay queued until
/// [`PoolBlocker::release`]. The blocking opens complete (and count in
/// [`PoolBlocker::opened`]) once released and the loop runs.
#[derive(Debug)]
pub struct PoolBlocker {
    _dir: TempDir,
    fifo: PathBuf,
    opened: Rc<Cell<usize>>,
    n: usize,
    writer: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl PoolBlocker {
    /// Submits one blocking open per pool thread.
    pub fn new(lp: &Loop) -> PoolBlocker {
        let dir = TempDir::new("fs-pool-blocker");
        let fifo = dir.join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(st.success());
        let opened = Rc::new(Cell::new(0));
        let n = pool_size();
        for _ in 0..n {
            let o = opened.clone();
            Fs::open(lp, &fifo, OpenFlags::RDONLY, 0, move |r| {
                r.unwrap();
                o.set(o.get() + 1);
            })
            .unwrap();
        }
        PoolBlocker {
            _dir: dir,
            fifo,
            opened,
            n,
            writer: None,
        }
    }

    /// Opens the FIFO for writing (on a thread, since that blocks until a reader
    /// is there) and keeps it open until this value is dropped, so every blocked
    /// open completes.
    pub fn release(&mut self) {
        let (tx, rx) = mpsc::channel::<()>();
        let fifo = self.fifo.clone();
        let t = std::thread::spawn(move || {
            let w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let _ = rx.recv();
            drop(w);
        });
        self.writer = Some((tx, t));
    }

    /// How many of the blocking opens completed.
    pub fn opened(&self) -> usize {
        self.opened.get()
    }

    /// How many blocking opens were submitted.
    pub fn count(&self) -> usize {
        self.n
    }
}

impl Drop for PoolBlocker {
    fn drop(&mut self) {
        if let Some((tx, t)) = self.writer.take() {
            drop(tx);
            t.join().unwrap();
        }
    }
}
