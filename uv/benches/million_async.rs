//! Many async handles: 1,048,576 async handles are initialised, a second thread
//! wakes each of them once, the loop runs their callbacks, and the last callback
//! closes them all (libuv's `benchmark-million-async.c`, whose thread wakes random
//! handles for 5 seconds and counts the events and the handles seen).
//!
//! Here every handle is woken exactly once (in order), so that the number of
//! callbacks is the same in both variants (one wake-up gives one callback); the
//! count is the callbacks. The thread sends all its wake-ups before the loop runs:
//! libuv scans every async handle of the loop on each wake-up of the loop, so with
//! both running at once the work would depend on how the two threads interleave
//! (and the instruction count would not be reproducible). Phases: init (the handles
//! and, for the uv version, one `AsyncSender` per handle, which is how a thread
//! wakes a `uv::Async`: both made by `Async::with_sender`), send (the thread's wake-ups), run (the callbacks and the
//! closes), cleanup.
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process
//! (see `common/mod.rs` for the options).

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uv::sys;

mod common;

use common::{since, Bench, Outcome, Variant};

const NUM_HANDLES: u64 = 1024 * 1024;

/// Callbacks made (the loop thread only).
static EVENTS: AtomicU64 = AtomicU64::new(0);
/// The number of handles, for the last callback to see.
static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The uv version's handles, for the last callback to close (like the C
    /// benchmark's static container).
    static HANDLES: RefCell<Vec<uv::Async>> = const { RefCell::new(Vec::new()) };
}

/// The raw twin's handles (the loop thread only).
static RAW_HANDLES: AtomicU64 = AtomicU64::new(0);

/// One more callback; true for the last one. Plain load and store: only the loop
/// thread counts.
fn event() -> bool {
    let n = EVENTS.load(Ordering::Relaxed) + 1;
    EVENTS.store(n, Ordering::Relaxed);
    n == TOTAL.load(Ordering::Relaxed)
}

fn main() -> ExitCode {
    common::main(&Bench {
        name: "million_async",
        unit: "async handles",
        full_count: NUM_HANDLES,
        note: "count = async callbacks (each handle is woken once, from another thread).",
        expected: |n| n,
        run,
    })
}

fn run(variant: Variant, n: u64) -> Outcome {
    common::watchdog("million_async", Duration::from_secs(120));
    TOTAL.store(n, Ordering::Relaxed);
    let phases = match variant {
        Variant::Raw => raw(n),
        Variant::Uv => safe(n),
    };
    Outcome {
        count: EVENTS.load(Ordering::Relaxed),
        phases,
    }
}

/// The safe version, written the way a user would: the callbacks capture nothing;
/// the last one closes every handle.
fn safe(n: u64) -> Vec<(&'static str, f64)> {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let t0 = Instant::now();
    let mut senders = Vec::with_capacity(n as usize);
    HANDLES.with(|hs| {
        let mut hs = hs.borrow_mut();
        hs.reserve_exact(n as usize);
        for _ in 0..n {
            let (a, s) = uv::Async::with_sender(&lp, |_| {
                if event() {
                    HANDLES.with(|hs| {
                        for a in hs.borrow().iter() {
                            a.close();
                        }
                    });
                }
            })
            .expect("uv::Async::with_sender");
            senders.push(s);
            hs.push(a);
        }
    });
    let init = since(t0);

    let t1 = Instant::now();
    let thread = std::thread::spawn(move || {
        for s in &senders {
            s.send().expect("uv::AsyncSender::send");
        }
    });
    thread.join().expect("the sender thread");
    let send = since(t1);
    let t1 = Instant::now();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t1);

    let t2 = Instant::now();
    HANDLES.with(|hs| hs.borrow_mut().clear());
    drop(lp);
    vec![
        ("init", init),
        ("send", send),
        ("run", run),
        ("cleanup", since(t2)),
    ]
}

unsafe extern "C" fn raw_async_cb(_handle: *mut sys::uv_async_t) {
    if event() {
        let base = RAW_HANDLES.load(Ordering::Relaxed) as usize as *mut sys::uv_async_t;
        for i in 0..TOTAL.load(Ordering::Relaxed) as usize {
            // SAFETY: `base` is the array of `TOTAL` initialised handles, alive until
            // the loop has run their closes; each is closed once, here.
            unsafe { sys::uv_close(base.add(i).cast(), None) };
        }
    }
}

/// The handles' address, for the sender thread.
struct SendPtr(*mut sys::uv_async_t);

// SAFETY: the thread only calls uv_async_send, which libuv allows from any thread,
// on handles that stay initialised until the thread is joined (their close waits
// for a send in progress).
unsafe impl Send for SendPtr {}

/// The raw libuv-sys2 twin, mirroring the C benchmark: one array of handles.
fn raw(n: u64) -> Vec<(&'static str, f64)> {
    let lp = common::rawnet::new_loop();
    let t0 = Instant::now();
    // Allocated once and never resized, so the handles never move.
    let mut storage: Box<[MaybeUninit<sys::uv_async_t>]> = Box::new_uninit_slice(n as usize);
    let handles = storage.as_mut_ptr().cast::<sys::uv_async_t>();
    RAW_HANDLES.store(handles as usize as u64, Ordering::Relaxed);
    for i in 0..n as usize {
        // SAFETY: `i < n`, inside `storage`, which outlives the loop's use of it.
        let rc = unsafe { sys::uv_async_init(lp, handles.add(i), Some(raw_async_cb)) };
        common::rawnet::check(rc, "uv_async_init");
    }
    let init = since(t0);

    let t1 = Instant::now();
    let ptr = SendPtr(handles);
    let thread = std::thread::spawn(move || {
        let ptr = ptr;
        for i in 0..n as usize {
            // SAFETY: see SendPtr.
            let rc = unsafe { sys::uv_async_send(ptr.0.add(i)) };
            common::rawnet::check(rc, "uv_async_send");
        }
    });
    thread.join().expect("the sender thread");
    let send = since(t1);
    let t1 = Instant::now();
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t1);

    let t2 = Instant::now();
    // SAFETY: every handle was closed by the last callback and the loop ran the
    // closes, so the loop has none left.
    unsafe { common::rawnet::close_loop(lp) };
    drop(storage);
    vec![
        ("init", init),
        ("send", send),
        ("run", run),
        ("cleanup", since(t2)),
    ]
}
