//! Thread-pool throughput: 200,000 trivial jobs (`uv_queue_work`), at most 1,024 in
//! flight: the first 1,024 are queued before the loop runs, and each completion
//! queues the next until all are done. A job doubles its input on a pool thread;
//! its completion, on the loop, counts it and adds the result to a checksum.
//!
//! The count is the completions; both variants must also agree on the checksum
//! (the run panics otherwise). Phases: run (from the first job queued to the
//! last completion), cleanup (closing the loop).
//!
//! Runs the safe `uv` version (`LoopHandle::queue_work`, one allocation per job
//! holding the request, the job and both closures) and a raw libuv-sys2 twin (a
//! ring of 1,024 `uv_work_t` slots reused), each in its own process (see
//! `common/mod.rs` for the options).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use uv::sys;

mod common;

use common::{since, Bench, Outcome, Variant};

const NUM_JOBS: u64 = 200_000;
/// Jobs in flight at most.
const WINDOW: u64 = 1024;

fn main() -> ExitCode {
    common::main(&Bench {
        name: "queue_work",
        unit: "jobs",
        full_count: NUM_JOBS,
        note: "pool of 4 threads (UV_THREADPOOL_SIZE), 1,024 jobs in flight",
        expected: |n| n,
        run,
    })
}

fn run(variant: Variant, jobs: u64) -> Outcome {
    let (outcome, sum) = match variant {
        Variant::Raw => raw(jobs),
        Variant::Uv => safe(jobs),
    };
    // Sum of 2*i for i in 0..jobs.
    assert_eq!(sum, jobs * jobs.saturating_sub(1), "checksum");
    outcome
}

/// The uv version's shared state.
struct State {
    lp: uv::LoopHandle,
    next: Cell<u64>,
    total: u64,
    done: Cell<u64>,
    sum: Cell<u64>,
}

fn submit(state: &Rc<State>) {
    let i = state.next.get();
    state.next.set(i + 1);
    let s = Rc::clone(state);
    state
        .lp
        .queue_work(
            move || i * 2,
            move |r| {
                s.done.set(s.done.get() + 1);
                s.sum.set(s.sum.get() + r.expect("job"));
                if s.next.get() < s.total {
                    submit(&s);
                }
            },
        )
        .expect("uv::LoopHandle::queue_work");
}

/// The safe version, written the way a user would.
fn safe(jobs: u64) -> (Outcome, u64) {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let state = Rc::new(State {
        lp: lp.handle(),
        next: Cell::new(0),
        total: jobs,
        done: Cell::new(0),
        sum: Cell::new(0),
    });
    let t = Instant::now();
    while state.next.get() < jobs.min(WINDOW) {
        submit(&state);
    }
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);
    let t = Instant::now();
    drop(lp);
    let cleanup = since(t);
    (
        Outcome {
            count: state.done.get(),
            phases: vec![("run", run), ("cleanup", cleanup)],
        },
        state.sum.get(),
    )
}

/// One slot of the raw twin's ring; `data` of its request points at the ring.
#[repr(C)]
struct RawSlot {
    req: MaybeUninit<sys::uv_work_t>,
    input: u64,
    output: u64,
}

/// The raw twin's state.
struct RawRing {
    slots: Vec<RawSlot>,
    next: u64,
    total: u64,
    done: u64,
    sum: u64,
}

unsafe extern "C" fn raw_work_cb(req: *mut sys::uv_work_t) {
    // SAFETY: `req` is the first field of a RawSlot (repr(C)); only this pool
    // thread touches the slot while the job runs.
    let slot = unsafe { &mut *req.cast::<RawSlot>() };
    slot.output = slot.input * 2;
}

unsafe extern "C" fn raw_after_cb(req: *mut sys::uv_work_t, status: i32) {
    assert_eq!(status, 0, "raw job status");
    // SAFETY: as in raw_work_cb; the job is complete.
    let output = unsafe { (*req.cast::<RawSlot>()).output };
    // SAFETY: `data` is the ring, alive until the loop is closed; the loop thread
    // is the only one touching it here (the pool is done with this slot).
    let ring = unsafe { &mut *((*req).data as *mut RawRing) };
    ring.done += 1;
    ring.sum += output;
    if ring.next < ring.total {
        // SAFETY: the slot's request is complete, so it may be reused.
        unsafe { raw_submit(ring, req) };
    }
}

/// Queues job `ring.next` in the slot of `req`.
///
/// # Safety
/// `req` is the request of a slot of `ring` that is not in flight; the ring's loop
/// is the one stored in `ring.slots`' requests by `raw`.
unsafe fn raw_submit(ring: &mut RawRing, req: *mut sys::uv_work_t) {
    let i = ring.next;
    ring.next += 1;
    // SAFETY: the caller's contract; `data` points at the ring for the callbacks.
    unsafe {
        (*req.cast::<RawSlot>()).input = i;
        let lp = (*req).loop_;
        (*req).data = (ring as *mut RawRing).cast();
        assert_eq!(
            sys::uv_queue_work(lp, req, Some(raw_work_cb), Some(raw_after_cb)),
            0,
            "uv_queue_work"
        );
    }
}

/// The raw libuv-sys2 twin.
fn raw(jobs: u64) -> (Outcome, u64) {
    let mut lp_box: Box<MaybeUninit<sys::uv_loop_t>> = Box::new(MaybeUninit::uninit());
    let lp = lp_box.as_mut_ptr();
    // SAFETY: `lp` points at a boxed uv_loop_t-sized allocation that does not move.
    assert_eq!(unsafe { sys::uv_loop_init(lp) }, 0, "uv_loop_init");
    let window = jobs.min(WINDOW) as usize;
    let mut ring = Box::new(RawRing {
        slots: (0..window)
            .map(|_| RawSlot {
                req: MaybeUninit::zeroed(),
                input: 0,
                output: 0,
            })
            .collect(),
        next: 0,
        total: jobs,
        done: 0,
        sum: 0,
    });
    let t = Instant::now();
    for k in 0..window {
        let req = ring.slots[k].req.as_mut_ptr();
        // SAFETY: a fresh slot; its `loop_` is set for raw_submit, which queues it
        // on `lp` (uv_queue_work sets it again). The ring is boxed and the slots
        // vector never grows, so the requests stay put until the loop is closed.
        unsafe {
            (*req).loop_ = lp;
            raw_submit(&mut ring, req);
        }
    }
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);
    let t = Instant::now();
    // SAFETY: no handles and no requests are left.
    assert_eq!(unsafe { sys::uv_loop_close(lp) }, 0, "uv_loop_close");
    drop(lp_box);
    let cleanup = since(t);
    (
        Outcome {
            count: ring.done,
            phases: vec![("run", run), ("cleanup", cleanup)],
        },
        ring.sum,
    )
}
