//! Loop iteration cost: an idle handle's callback counts 2,000,000 ticks, then
//! stops the handle (libuv's `benchmark-loop-count.c`, `loop_count`).
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use uv::sys;

mod common;

use common::{since, Bench, Outcome, Variant};

const NUM_TICKS: u64 = 2_000_000;

fn main() -> ExitCode {
    common::main(&Bench {
        name: "loop_count",
        unit: "idle ticks",
        full_count: NUM_TICKS,
        note: "",
        expected: |n| n,
        run,
    })
}

fn run(variant: Variant, ticks: u64) -> Outcome {
    match variant {
        Variant::Raw => raw(ticks),
        Variant::Uv => safe(ticks),
    }
}

/// The safe version, written the way a user would.
fn safe(limit: u64) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let idle = uv::Idle::new(&lp).expect("uv::Idle::new");
    let ticks = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&ticks);
    idle.start(move |h| {
        let n = counter.get() + 1;
        counter.set(n);
        if n == limit {
            h.stop().expect("uv::Idle::stop");
        }
    })
    .expect("uv::Idle::start");

    let t = Instant::now();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    // The loop's drop closes the idle handle, runs the loop and closes it, as the C
    // benchmark's MAKE_VALGRIND_HAPPY does.
    drop(idle);
    drop(lp);
    Outcome {
        count: ticks.get(),
        phases: vec![("run", run)],
    }
}

/// The idle handle of the raw twin and its counter; `data` points at it.
struct RawIdle {
    handle: MaybeUninit<sys::uv_idle_t>,
    ticks: u64,
    limit: u64,
}

unsafe extern "C" fn raw_idle_cb(handle: *mut sys::uv_idle_t) {
    // SAFETY: `handle` is the `handle` field of the boxed RawIdle whose address
    // `raw` stored in `data`; the box outlives the loop run, and nothing else
    // refers to it while the callback runs.
    let state = unsafe { &mut *((*handle).data as *mut RawIdle) };
    state.ticks += 1;
    if state.ticks == state.limit {
        // SAFETY: `handle` is an initialised, started idle handle.
        unsafe { sys::uv_idle_stop(handle) };
    }
}

/// The raw libuv-sys2 twin, mirroring the C benchmark.
fn raw(limit: u64) -> Outcome {
    let mut lp_box: Box<MaybeUninit<sys::uv_loop_t>> = Box::new(MaybeUninit::uninit());
    let lp = lp_box.as_mut_ptr();
    // SAFETY: `lp` points at a boxed uv_loop_t-sized allocation that does not move
    // (the box lives until the end of this function).
    assert_eq!(unsafe { sys::uv_loop_init(lp) }, 0, "uv_loop_init");

    let state = Box::into_raw(Box::new(RawIdle {
        handle: MaybeUninit::uninit(),
        ticks: 0,
        limit,
    }));
    // SAFETY: `state` is a fresh, valid allocation (freed at the end of this
    // function); the handle field is addressed in place so it never moves.
    let idle = unsafe { std::ptr::addr_of_mut!((*state).handle) }.cast::<sys::uv_idle_t>();
    // SAFETY: `lp` is an initialised loop and `idle` a stable handle struct; `data`
    // is set after init (which clears it) and before the callback can run.
    unsafe {
        assert_eq!(sys::uv_idle_init(lp, idle), 0, "uv_idle_init");
        (*idle).data = state.cast();
        assert_eq!(
            sys::uv_idle_start(idle, Some(raw_idle_cb)),
            0,
            "uv_idle_start"
        );
    }

    let t = Instant::now();
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);

    // SAFETY: the idle handle is initialised and not closing; running the loop once
    // more completes the close, after which the loop has no handles and closes.
    unsafe {
        sys::uv_close(idle.cast(), None);
        sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT);
        assert_eq!(sys::uv_loop_close(lp), 0, "uv_loop_close");
    }
    // SAFETY: made by Box::into_raw above; libuv no longer refers to the handle
    // (it is closed and the loop is closed).
    let state = unsafe { Box::from_raw(state) };
    drop(lp_box);
    Outcome {
        count: state.ticks,
        phases: vec![("run", run)],
    }
}
