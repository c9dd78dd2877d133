//! One async handle pummelled from other threads: each thread calls send in a tight
//! loop; the loop counts the callbacks (sends that arrive before a callback runs are
//! coalesced into it), and the 1,000,000th callback tells the threads to stop,
//! waits until they did, and closes the handle (libuv's
//! `benchmark-async-pummel.c`, cases `async_pummel_1` and `async_pummel_2`).
//!
//! The count is the callbacks, which the stop rule makes exact. CPU time includes
//! the pummelling threads, which spin until the loop has made its callbacks: a
//! cheaper callback path also shortens their spinning. The instruction script
//! counts the loop thread only: under callgrind the threads are serialised, and
//! how much the senders spin depends on its scheduling.
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process
//! (see `common/mod.rs` for the options; `--case NAME` runs one case).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uv::sys;

mod common;

use common::{since, Bench, Case, Outcome, Rate, Variant};

const NUM_PINGS: u64 = 1_000_000;

fn main() -> ExitCode {
    let case = |name: &'static str, run: fn(Variant, u64) -> Outcome| Case {
        bench: Bench {
            name,
            unit: "callbacks",
            full_count: NUM_PINGS,
            note: "count = async callbacks; CPU time includes the sending threads' spinning.",
            expected: |n| n,
            run,
        },
        rate: Some(Rate {
            unit: "callbacks",
            per_count: 1.0,
            phase: "run",
        }),
    };
    common::main_cases(&[
        case("async_pummel_1", |v, n| run(v, n, 1)),
        case("async_pummel_2", |v, n| run(v, n, 2)),
    ])
}

/// What the loop and the pummelling threads share.
struct Shared {
    /// Set by the last callback: the threads stop sending.
    stop: AtomicBool,
    /// Threads that saw `stop` and stopped.
    stopped: AtomicUsize,
}

fn run(variant: Variant, n: u64, threads: usize) -> Outcome {
    common::watchdog("async_pummel", Duration::from_secs(120));
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        stopped: AtomicUsize::new(0),
    });
    let (count, run) = match variant {
        Variant::Raw => raw(n, threads, &shared),
        Variant::Uv => safe(n, threads, &shared),
    };
    Outcome {
        count,
        phases: vec![("run", run)],
    }
}

/// The last callback's part: stop the threads and wait until they stopped.
fn stop_threads(shared: &Shared, threads: usize) {
    shared.stop.store(true, Ordering::SeqCst);
    while shared.stopped.load(Ordering::SeqCst) < threads {
        std::thread::yield_now();
    }
}

/// The safe version, written the way a user would.
fn safe(n: u64, threads: usize, shared: &Arc<Shared>) -> (u64, f64) {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let calls = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counter = calls.clone();
    let stopper = shared.clone();
    let a = uv::Async::new(&lp, move |a| {
        let c = counter.get() + 1;
        counter.set(c);
        if c == n {
            stop_threads(&stopper, threads);
            a.close();
        }
    })
    .expect("uv::Async::new");
    let t = Instant::now();
    let joins: Vec<_> = (0..threads)
        .map(|_| {
            let sender = a.sender().expect("uv::Async::sender");
            let shared = shared.clone();
            std::thread::spawn(move || {
                while !shared.stop.load(Ordering::SeqCst) {
                    sender.send().expect("uv::AsyncSender::send");
                }
                shared.stopped.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);
    for j in joins {
        j.join().expect("a pummel thread");
    }
    drop(a);
    drop(lp);
    (calls.get(), run)
}

/// The raw twin's state (the handle's `data`): its callback count.
struct RawState {
    calls: AtomicU64,
    threads: usize,
    limit: u64,
    shared: Arc<Shared>,
}

unsafe extern "C" fn raw_async_cb(handle: *mut sys::uv_async_t) {
    // SAFETY: `data` is the RawState, which outlives the loop.
    let st = unsafe { &*((*handle).data as *const RawState) };
    let c = st.calls.load(Ordering::Relaxed) + 1;
    st.calls.store(c, Ordering::Relaxed);
    if c == st.limit {
        stop_threads(&st.shared, st.threads);
        // SAFETY: the handle is open; no thread sends any more.
        unsafe { sys::uv_close(handle.cast(), None) };
    }
}

/// The handle's address, for the pummelling threads.
struct SendPtr(*mut sys::uv_async_t);

// SAFETY: the threads only call uv_async_send, which libuv allows from any thread,
// and stop before the handle is closed (the last callback waits for them).
unsafe impl Send for SendPtr {}

/// The raw libuv-sys2 twin, mirroring the C benchmark.
fn raw(n: u64, threads: usize, shared: &Arc<Shared>) -> (u64, f64) {
    let lp = common::rawnet::new_loop();
    let st = Box::new(RawState {
        calls: AtomicU64::new(0),
        threads,
        limit: n,
        shared: shared.clone(),
    });
    let h: *mut sys::uv_async_t = Box::into_raw(Box::<sys::uv_async_t>::new_uninit()).cast();
    // SAFETY: `h` is a fresh allocation that does not move until it is freed below.
    unsafe {
        common::rawnet::check(
            sys::uv_async_init(lp, h, Some(raw_async_cb)),
            "uv_async_init",
        );
        (*h).data = (&raw const *st).cast_mut().cast();
    }
    let t = Instant::now();
    let joins: Vec<_> = (0..threads)
        .map(|_| {
            let ptr = SendPtr(h);
            let shared = shared.clone();
            std::thread::spawn(move || {
                let ptr = ptr;
                while !shared.stop.load(Ordering::SeqCst) {
                    // SAFETY: see SendPtr.
                    common::rawnet::check(unsafe { sys::uv_async_send(ptr.0) }, "uv_async_send");
                }
                shared.stopped.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);
    for j in joins {
        j.join().expect("a pummel thread");
    }
    // SAFETY: the handle was closed and the loop ran its close: neither is used
    // any more.
    unsafe {
        common::rawnet::close_loop(lp);
        drop(Box::from_raw(
            h.cast::<std::mem::MaybeUninit<sys::uv_async_t>>(),
        ));
    }
    let calls = st.calls.load(Ordering::Relaxed);
    drop(st);
    (calls, run)
}
