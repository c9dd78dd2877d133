//! stat(2) through the file-system requests (libuv's `benchmark-fs-stat.c`):
//! `fs_stat_sync` stats "." 1,000,000 times with `Fs::stat_sync`
//! (`uv_fs_stat` without a callback); `fs_stat_async` keeps 8 stats of "." in
//! flight on the thread pool, each callback starting the next, 100,000 in all.
//! The C benchmark's warm-up is the first few calls of each run.
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options).

use std::cell::Cell;
use std::ffi::CStr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use uv::sys;

mod common;

use common::{since, Bench, Case, Rate, Variant};

const NUM_SYNC_REQS: u64 = 1_000_000;
const NUM_ASYNC_REQS: u64 = 100_000;
const CONCURRENT: u64 = 8;
const PATH: &CStr = c".";

fn main() -> ExitCode {
    common::main_cases(&[
        Case {
            bench: Bench {
                name: "fs_stat_sync",
                unit: "stats",
                full_count: NUM_SYNC_REQS,
                note: "Fs::stat_sync(\".\") vs uv_fs_stat(NULL callback) + uv_fs_req_cleanup",
                expected: |n| n,
                run: run_sync,
            },
            rate: Some(Rate {
                unit: "stats",
                per_count: 1.0,
                phase: "run",
            }),
        },
        Case {
            bench: Bench {
                name: "fs_stat_async",
                unit: "stats",
                full_count: NUM_ASYNC_REQS,
                note: "8 stats in flight on the thread pool, each callback starting the next",
                expected: |n| n,
                run: run_async,
            },
            rate: Some(Rate {
                unit: "stats",
                per_count: 1.0,
                phase: "run",
            }),
        },
    ])
}

fn run_sync(variant: Variant, n: u64) -> common::Outcome {
    match variant {
        Variant::Raw => raw_sync(n),
        Variant::Uv => safe_sync(n),
    }
}

fn run_async(variant: Variant, n: u64) -> common::Outcome {
    match variant {
        Variant::Raw => raw_async(n),
        Variant::Uv => safe_async(n),
    }
}

/// The safe synchronous version: the path as a `&str` (converted per call, as a
/// user's would be).
fn safe_sync(n: u64) -> common::Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let mut done = 0;
    let t = Instant::now();
    for _ in 0..n {
        // Opaque to the optimiser: the path is converted at run time, as a path a
        // program computes would be (a literal could be folded into the call).
        let st = uv::Fs::stat_sync(&lp, std::hint::black_box(".")).expect("stat");
        done += u64::from(st.is_dir());
    }
    let run = since(t);
    common::Outcome {
        count: done,
        phases: vec![("run", run)],
    }
}

fn raw_sync(n: u64) -> common::Outcome {
    let lp = common::rawnet::new_loop();
    let mut done = 0;
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: zeroed is a valid unstarted request; `lp` is an initialised loop;
        // the path is a static C string; with no callback the call completes the
        // request, which is then cleaned up once.
        unsafe {
            let mut req: sys::uv_fs_t = std::mem::zeroed();
            common::rawnet::check(
                sys::uv_fs_stat(lp, &mut req, PATH.as_ptr(), None),
                "uv_fs_stat",
            );
            done += u64::from(req.statbuf.st_mode & 0o170000 == 0o040000);
            sys::uv_fs_req_cleanup(&mut req);
        }
    }
    let run = since(t);
    // SAFETY: from `new_loop`, not running, no handles.
    unsafe { common::rawnet::close_loop(lp) };
    common::Outcome {
        count: done,
        phases: vec![("run", run)],
    }
}

/// One chain of the safe async version: stats, and from the callback the next.
fn safe_chain(lp: uv::LoopHandle, left: Rc<Cell<u64>>, done: Rc<Cell<u64>>) {
    let lp2 = lp.clone();
    uv::Fs::stat(&lp, std::hint::black_box("."), move |st| {
        done.set(done.get() + u64::from(st.expect("stat").is_dir()));
        if left.get() > 0 {
            left.set(left.get() - 1);
            safe_chain(lp2, left, done);
        }
    })
    .expect("uv::Fs::stat");
}

fn safe_async(n: u64) -> common::Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let left = Rc::new(Cell::new(n));
    let done = Rc::new(Cell::new(0));
    for _ in 0..CONCURRENT.min(n) {
        left.set(left.get() - 1);
        safe_chain(lp.handle(), left.clone(), done.clone());
    }
    let t = Instant::now();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);
    drop(lp);
    common::Outcome {
        count: done.get(),
        phases: vec![("run", run)],
    }
}

/// One request of the raw twin; `data` points at it.
#[repr(C)]
struct RawReq {
    fs: sys::uv_fs_t,
    left: *mut u64,
    done: *mut u64,
}

unsafe extern "C" fn raw_stat_cb(req: *mut sys::uv_fs_t) {
    // SAFETY: `req` is the `fs` field (first, repr(C)) of a RawReq that lives until
    // the loop run ends; its counters outlive it.
    unsafe {
        let r = req.cast::<RawReq>();
        assert!((*req).result >= 0, "stat");
        *(*r).done += u64::from((*req).statbuf.st_mode & 0o170000 == 0o040000);
        sys::uv_fs_req_cleanup(req);
        if *(*r).left > 0 {
            *(*r).left -= 1;
            let lp = (*req).loop_;
            common::rawnet::check(
                sys::uv_fs_stat(lp, req, PATH.as_ptr(), Some(raw_stat_cb)),
                "uv_fs_stat",
            );
        }
    }
}

fn raw_async(n: u64) -> common::Outcome {
    let lp = common::rawnet::new_loop();
    let mut left = n;
    let mut done = 0u64;
    let k = CONCURRENT.min(n) as usize;
    let mut reqs: Vec<RawReq> = (0..k)
        .map(|_| RawReq {
            // SAFETY: plain C data; zeroed is a valid unstarted request.
            fs: unsafe { std::mem::zeroed() },
            left: &mut left,
            done: &mut done,
        })
        .collect();
    for r in reqs.iter_mut() {
        // SAFETY: the counters live on this stack frame through the run; `left` is
        // only touched through the pointer from here on.
        unsafe {
            *r.left -= 1;
            common::rawnet::check(
                sys::uv_fs_stat(lp, &mut r.fs, PATH.as_ptr(), Some(raw_stat_cb)),
                "uv_fs_stat",
            );
        }
    }
    let t = Instant::now();
    // SAFETY: an initialised loop, not running; the requests stay put (the Vec is
    // not touched) until the run ends.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);
    drop(reqs);
    // SAFETY: from `new_loop`, not running (every request completed), no handles.
    unsafe { common::rawnet::close_loop(lp) };
    common::Outcome {
        count: done,
        phases: vec![("run", run)],
    }
}
