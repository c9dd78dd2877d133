//! Work on libuv's thread pool: `queue_work` jobs whose results come back to the
//! loop thread, a job cancelled while it still waits in the pool's queue, and
//! random bytes (`LoopHandle::random` on the pool, `uv::random_sync` at once).
//!
//! Eight jobs each sum a range of numbers on a pool thread; their `after`
//! callbacks, on the loop thread, add the sums up in an `Rc<Cell>` (no lock). The
//! first jobs fill the pool's threads (4 unless `UV_THREADPOOL_SIZE` says
//! otherwise); each of those waits until a gate opens, so the last job queued is
//! still waiting when the program cancels it: its callback gets `ECANCELED` and
//! the job is dropped unrun. Then the gate opens.
//!
//! Checked: the total of the jobs that ran, the cancelled job's error and that it
//! never ran, the random buffers' lengths. Any failure panics (exit status 101),
//! and a 10-second watchdog fails a run whose pool threads do not start.
//!
//! Run with `cargo run -p libuv-safe --example thread_pool`.
//!
//! It prints each job's result as it reaches the loop (in the order the pool
//! finishes them), the cancelled job's `ECANCELED`, the total, the random bytes
//! (different at each run), then `done: ...`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A gate the blocking jobs wait at until the loop thread opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// The number of threads libuv's pool starts with: `UV_THREADPOOL_SIZE` read as
/// libuv reads it (`atoi`, 0 meaning 1, at most 1024), 4 without it.
fn pool_size() -> usize {
    let Ok(v) = std::env::var("UV_THREADPOOL_SIZE") else {
        return 4;
    };
    if v.len() >= 16 {
        return 4; // libuv's buffer for the value is 16 bytes; a longer one is ignored
    }
    let v = v.trim_start();
    let (negative, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let n: i64 = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0, |n, d| (n * 10 + i64::from(d - b'0')).min(1 << 40));
    match (negative && n != 0, n) {
        (true, _) => 1024, // a negative count, as an unsigned one, is over the limit
        (false, 0) => 1,
        (false, n) => n.min(1024) as usize,
    }
}

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let pool_size = pool_size();

    let gate = Arc::new(Gate::default());
    let started = Arc::new(AtomicUsize::new(0));
    let total = Rc::new(Cell::new(0u64));
    let ran = Rc::new(Cell::new(0usize));

    // As many jobs as the pool has threads, each blocked at the gate, then more.
    let jobs = pool_size + 4;
    for i in 0..jobs as u64 {
        let (gate, started) = (gate.clone(), started.clone());
        let blocks = (i as usize) < pool_size;
        let (t, r) = (total.clone(), ran.clone());
        lp.queue_work(
            move || {
                started.fetch_add(1, Ordering::SeqCst);
                if blocks {
                    gate.wait();
                }
                (i * 1000..(i + 1) * 1000).sum::<u64>()
            },
            move |result| {
                let sum = result.expect("a job that was not cancelled");
                println!("job {i}: sum {sum}");
                t.set(t.get() + sum);
                r.set(r.get() + 1);
            },
        )?;
    }

    // One more job, queued behind the others: every pool thread is held at the
    // gate (once they all started), so it still waits in the queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while started.load(Ordering::SeqCst) < pool_size {
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: the pool did not start {pool_size} jobs"
        );
        std::thread::yield_now();
    }
    let cancelled_ran = Arc::new(AtomicBool::new(false));
    let c = cancelled_ran.clone();
    let cancelled = Rc::new(Cell::new(None));
    let got = cancelled.clone();
    let req = lp.queue_work(
        move || c.store(true, Ordering::SeqCst),
        move |result| got.set(Some(result.map_err(|e| e.code()))),
    )?;
    req.cancel()?;
    gate.open();

    // Random bytes: on the pool, and at once.
    let random = Rc::new(Cell::new(None));
    let r = random.clone();
    lp.random(vec![0; 16], 0, move |bytes| r.set(Some(bytes)))?;
    let mut key = [0u8; 8];
    uv::random_sync(&mut key, 0)?;

    lp.run(uv::RunMode::Default)?;

    let outcome = cancelled.take().expect("the cancelled job's callback ran");
    println!("cancelled job: {outcome:?}");
    assert_eq!(outcome, Err(uv::StatusCode::ECANCELED));
    assert!(
        !cancelled_ran.load(Ordering::SeqCst),
        "a cancelled job never runs"
    );

    let expected: u64 = (0..jobs as u64 * 1000).sum();
    println!("{} jobs, total {}", ran.get(), total.get());
    assert_eq!(ran.get(), jobs);
    assert_eq!(total.get(), expected);

    let bytes = random.take().expect("the random callback ran")?;
    println!("random bytes from the pool: {bytes:02x?}");
    println!("random bytes at once: {key:02x?}");
    assert_eq!(bytes.len(), 16);
    println!("done: {jobs} jobs summed, one cancelled before it ran, random bytes received");
    Ok(())
}
