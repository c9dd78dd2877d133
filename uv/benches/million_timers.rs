//! Timer cost: 1,000,000 one-shot timers are initialised and started (the timeout
//! grows by 1 ms every 1000 timers, so 1..=1000 ms), the loop dispatches them all,
//! then every timer is closed and the loop runs the closes (libuv's
//! `benchmark-million-timers.c`, which uses 10M timers; its phases: init, dispatch,
//! cleanup, total).
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options).
//!
//! Both variants count their timer and close callbacks in the same plain statics, as
//! the C benchmark does; the checksum is the sum of the two (2 per timer).

use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uv::sys;

mod common;

use common::{Bench, Outcome, Variant};

const NUM_TIMERS: u64 = 1_000_000;

static TIMER_CB_CALLED: AtomicU64 = AtomicU64::new(0);
static CLOSE_CB_CALLED: AtomicU64 = AtomicU64::new(0);

/// A plain (non-atomic read-modify-write) increment: the benchmark is single-threaded,
/// and the C benchmark uses a plain `int`.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn main() -> ExitCode {
    common::main(&Bench {
        name: "million_timers",
        unit: "timers",
        full_count: NUM_TIMERS,
        note: "count = timer callbacks + close callbacks. The dispatch phase's wall time \
               mostly waits for the last timeout (1 ms per 1000 timers after the first start), so it \
               shrinks when init is slower; compare CPU time.",
        expected: |n| 2 * n,
        run,
    })
}

fn run(variant: Variant, timers: u64) -> Outcome {
    let phases = match variant {
        Variant::Raw => raw(timers),
        Variant::Uv => safe(timers),
    };
    let fired = TIMER_CB_CALLED.load(Ordering::Relaxed);
    let closed = CLOSE_CB_CALLED.load(Ordering::Relaxed);
    assert_eq!(fired, timers, "timer callbacks");
    assert_eq!(closed, timers, "close callbacks");
    Outcome {
        count: fired + closed,
        phases,
    }
}

/// The phases as the C benchmark reports them.
fn phases(
    before_all: Instant,
    before_run: Instant,
    after_run: Instant,
    after_all: Instant,
) -> Vec<(&'static str, f64)> {
    let secs = |a: Instant, b: Instant| (b - a).as_secs_f64();
    vec![
        ("init", secs(before_all, before_run)),
        ("dispatch", secs(before_run, after_run)),
        ("cleanup", secs(after_run, after_all)),
        ("total", secs(before_all, after_all)),
    ]
}

/// The safe version, written the way a user would. The timers stay in a Vec and are
/// closed explicitly after they fired (`close_with`, whose callback counts the
/// closes), then the loop runs the closes: this mirrors the C benchmark, which
/// `uv_close`s every timer and runs the loop again. (Dropping the fired one-shot
/// timers would close them too, but without a close callback to count.) The
/// callbacks capture nothing, so storing them allocates nothing.
fn safe(n: u64) -> Vec<(&'static str, f64)> {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let mut timers = Vec::with_capacity(n as usize);
    let mut timeout = 0;

    let before_all = Instant::now();
    for i in 0..n {
        if i % 1000 == 0 {
            timeout += 1;
        }
        let t = uv::Timer::new(&lp).expect("uv::Timer::new");
        t.start(Duration::from_millis(timeout), Duration::ZERO, |_| {
            bump(&TIMER_CB_CALLED)
        })
        .expect("uv::Timer::start");
        timers.push(t);
    }

    let before_run = Instant::now();
    let alive = lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    assert!(!alive, "the loop still has work after the timers fired");
    let after_run = Instant::now();

    for t in &timers {
        t.close_with(|_| bump(&CLOSE_CB_CALLED));
    }
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let after_all = Instant::now();

    // Frees the handles (the C benchmark frees its array after taking its times too).
    drop(timers);
    drop(lp);
    phases(before_all, before_run, after_run, after_all)
}

unsafe extern "C" fn raw_timer_cb(_handle: *mut sys::uv_timer_t) {
    bump(&TIMER_CB_CALLED);
}

unsafe extern "C" fn raw_close_cb(_handle: *mut sys::uv_handle_t) {
    bump(&CLOSE_CB_CALLED);
}

/// The raw libuv-sys2 twin, mirroring the C benchmark: one array of timers.
fn raw(n: u64) -> Vec<(&'static str, f64)> {
    let mut lp_box: Box<MaybeUninit<sys::uv_loop_t>> = Box::new(MaybeUninit::uninit());
    let lp = lp_box.as_mut_ptr();
    // SAFETY: `lp` points at a boxed uv_loop_t-sized allocation that does not move
    // (the box lives until the end of this function).
    assert_eq!(unsafe { sys::uv_loop_init(lp) }, 0, "uv_loop_init");

    // Allocated once and never resized, so the handles never move (like malloc in
    // the C benchmark: the pages are touched by init, not here).
    let mut storage: Box<[MaybeUninit<sys::uv_timer_t>]> = Box::new_uninit_slice(n as usize);
    let timers = storage.as_mut_ptr().cast::<sys::uv_timer_t>();
    let mut timeout = 0;

    let before_all = Instant::now();
    for i in 0..n {
        if i % 1000 == 0 {
            timeout += 1;
        }
        // SAFETY: `i < n`, so the handle is inside `storage`, which stays put until
        // the end of this function; `lp` is an initialised loop.
        unsafe {
            let t = timers.add(i as usize);
            assert_eq!(sys::uv_timer_init(lp, t), 0, "uv_timer_init");
            assert_eq!(
                sys::uv_timer_start(t, Some(raw_timer_cb), timeout, 0),
                0,
                "uv_timer_start"
            );
        }
    }

    let before_run = Instant::now();
    // SAFETY: `lp` is an initialised loop, not running.
    let alive = unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    assert_eq!(alive, 0, "the loop still has work after the timers fired");
    let after_run = Instant::now();

    for i in 0..n {
        // SAFETY: every handle in `storage` was initialised above and is not closing.
        unsafe { sys::uv_close(timers.add(i as usize).cast(), Some(raw_close_cb)) };
    }
    // SAFETY: as above; this runs the close callbacks.
    let alive = unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    assert_eq!(alive, 0, "the loop still has work after the closes");
    let after_all = Instant::now();

    // SAFETY: every handle is closed, so the loop has none left and can close.
    assert_eq!(unsafe { sys::uv_loop_close(lp) }, 0, "uv_loop_close");
    // libuv no longer refers to the timers or the loop: both can be freed.
    drop(storage);
    drop(lp_box);
    phases(before_all, before_run, after_run, after_all)
}
