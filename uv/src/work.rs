//! Work on libuv's thread pool (`uv_queue_work`) and random bytes (`uv_random`),
//! built on the loop-request core (`loop_request::submit`): one allocation per
//! request, a cancellable [`Request`], the callback under the loop's panic guard.
//!
//! The libuv request struct of each kind is wrapped in a `#[repr(C)]` struct that
//! starts with it and adds what the core's one-argument completion callback needs:
//! the status libuv passes to its own callback, the core's completion function, and
//! a pointer to the request's data (the job and its result slot, or the buffer).
//!
//! Panic rule: a panic in a job (on a pool thread) is caught there, carried to the
//! loop, and resurfaces as a panic of a callback would: `run` resumes it (or the
//! loop's panic hook gets it). The job's `after` callback is then not called (it is
//! dropped).

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::LoopHandle;
use crate::loop_request::{no_context, submit, Done, LoopRequestKind, Request};
use crate::StatusCode;

/// `uv_work_t`, with what the completion needs.
#[repr(C)]
pub(crate) struct WorkRaw {
    req: sys::uv_work_t,
    /// The status libuv gave the after-work callback (`ECANCELED` or 0).
    status: c_int,
    /// The core's completion function (`loop_request::done`).
    done: Done<WorkRaw>,
    /// The request's `Job` (in the core's allocation, beside this struct).
    job: *const c_void,
}

pub(crate) struct WorkKind;

// SAFETY: `WorkRaw` starts with `uv_work_t`, which starts with the `uv_req_t`
// fields; there is nothing to clean up (the job is dropped with the request's data).
unsafe impl LoopRequestKind for WorkKind {
    type Raw = WorkRaw;
    const NAME: &'static str = "queue_work";
    unsafe fn cleanup(_raw: *mut WorkRaw) {}
}

/// A job and the slot its result goes to. The pool thread takes the job and fills
/// the slot; the loop thread reads the slot after libuv handed the request back
/// (libuv's queue mutex orders the two).
struct Job<F, T> {
    work: UnsafeCell<Option<F>>,
    out: UnsafeCell<Option<std::thread::Result<T>>>,
}

unsafe extern "C" fn work_cb<F, T>(req: *mut sys::uv_work_t)
where
    F: FnOnce() -> T,
{
    let raw = req.cast::<WorkRaw>();
    // SAFETY: `job` was set to this request's `Job<F, T>` before the request was
    // queued, and stays put until completion; only this pool thread touches it
    // while the job runs.
    let job = unsafe { &*((*raw).job as *const Job<F, T>) };
    // SAFETY: as above: no other reference to the cells exists meanwhile.
    if let Some(f) = unsafe { (*job.work.get()).take() } {
        // The panic stops here, on the pool thread; the loop resurfaces it.
        let r = catch_unwind(AssertUnwindSafe(f));
        // SAFETY: as above.
        unsafe { *job.out.get() = Some(r) };
    }
}

unsafe extern "C" fn work_after_cb(req: *mut sys::uv_work_t, status: c_int) {
    let raw = req.cast::<WorkRaw>();
    // SAFETY: a request started by `queue_work`, handed back once by libuv on the
    // loop thread; `done` was set before it was queued.
    unsafe {
        (*raw).status = status;
        if let Some(done) = (*raw).done {
            done(raw);
        }
    }
}

/// The job's outcome: its value, or its panic.
unsafe fn read_work<F, T>(raw: *mut WorkRaw, op: &'static str) -> Result<std::thread::Result<T>> {
    // SAFETY: the caller's contract: a completed request of `queue_work`.
    let status = unsafe { (*raw).status };
    check(status, op)?;
    // SAFETY: completed: the pool thread is done with the job.
    let job = unsafe { &*((*raw).job as *const Job<F, T>) };
    // SAFETY: as above.
    match unsafe { (*job.out.get()).take() } {
        Some(r) => Ok(r),
        // libuv ran the after callback with status 0 only after the job ran.
        None => Err(Error::new(StatusCode::ECANCELED, op)),
    }
}

impl LoopHandle {
    /// Runs `work` on libuv's thread pool (`uv_queue_work`), then `after` on the loop
    /// thread with its value. The returned [`Request`] cancels the job while it
    /// waits in the pool's queue: `after` then gets `ECANCELED` and `work` is
    /// dropped unrun (on the loop thread).
    ///
    /// A panic in `work` is caught on the pool thread and resurfaces on the loop as
    /// a panic of a callback does (see [`guide::panics`](crate::guide::panics)):
    /// `run` resumes it, or the panic hook gets it; `after` is not called. A pending
    /// job keeps the loop alive; dropping the `Loop` waits for the jobs in flight
    /// and runs their `after` callbacks.
    ///
    /// The pool is process-wide (4 threads unless `UV_THREADPOOL_SIZE` says otherwise
    /// when it first starts); a job that blocks forever holds one of its threads.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let lp = uv::Loop::new()?;
    /// let got = Rc::new(Cell::new(0u64));
    /// let g = got.clone();
    /// lp.queue_work(|| (1..=10u64).product::<u64>(), move |r| g.set(r.unwrap()))?;
    /// lp.run(uv::RunMode::Default)?;
    /// assert_eq!(got.get(), 3_628_800);
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn queue_work<T, F, A>(&self, work: F, after: A) -> Result<Request>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        A: FnOnce(Result<T>) + 'static,
    {
        let job = Job::<F, T> {
            work: UnsafeCell::new(Some(work)),
            out: UnsafeCell::new(None),
        };
        let callback = move |r: Result<std::thread::Result<T>>| match r {
            Ok(Ok(value)) => after(Ok(value)),
            Err(e) => after(Err(e)),
            Ok(Err(payload)) => {
                // `after` is dropped first, its own panic dropped quietly; then the
                // job's panic unwinds into the core's guard.
                if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(after))) {
                    crate::callback::drop_quietly(p);
                }
                resume_unwind(payload)
            }
        };
        submit::<WorkKind, _, _, _, _>(
            self,
            "uv_queue_work",
            |raw, _, op| {
                // SAFETY: the core passes the completed request of this call.
                unsafe { read_work::<F, T>(raw, op) }
            },
            no_context,
            job,
            callback,
            |l, raw, job, done| {
                // SAFETY: `raw` is the core's request (its libuv part initialised by
                // uv_queue_work) and `job` its data, both put until completion; the
                // job's pointer and the completion are set before libuv can use them.
                unsafe {
                    (*raw).done = done;
                    (*raw).job = (job as *const Job<F, T>).cast();
                    sys::uv_queue_work(
                        l,
                        std::ptr::addr_of_mut!((*raw).req),
                        Some(work_cb::<F, T>),
                        Some(work_after_cb),
                    )
                }
            },
        )
    }

    /// Fills `buf` with random bytes from the system's source on the thread pool
    /// (`uv_random`), then calls `callback` with it on the loop thread. `flags`
    /// must be 0 (libuv defines none): `EINVAL` otherwise; `E2BIG` past
    /// 2^31 - 1 bytes. Cancellable like every thread-pool request (`ECANCELED`).
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// lp.random(vec![0u8; 32], 0, |r| assert_eq!(r.unwrap().len(), 32))?;
    /// lp.run(uv::RunMode::Default)?;
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn random(
        &self,
        buf: Vec<u8>,
        flags: u32,
        callback: impl FnOnce(Result<Vec<u8>>) + 'static,
    ) -> Result<Request> {
        submit::<RandomKind, _, _, _, _>(
            self,
            "uv_random",
            |raw, _, op| {
                // SAFETY: the core passes the completed request of this call.
                unsafe { read_random(raw, op) }
            },
            no_context,
            UnsafeCell::new(buf),
            callback,
            |l, raw, buf, done| {
                // SAFETY: `raw` is the core's request (its libuv part initialised by
                // uv_random) and `buf` its data, both
                // put until completion (the vector's bytes do not move: nothing
                // touches it until the reader takes it); a refused request
                // (`EINVAL`, `E2BIG`) is never used by libuv.
                unsafe {
                    (*raw).done = done;
                    (*raw).buf = buf.get();
                    let v = &mut *buf.get();
                    sys::uv_random(
                        l,
                        std::ptr::addr_of_mut!((*raw).req),
                        v.as_mut_ptr().cast(),
                        v.len(),
                        flags,
                        Some(random_cb),
                    )
                }
            },
        )
    }
}

/// `uv_random_t`, with what the completion needs.
#[repr(C)]
pub(crate) struct RandomRaw {
    req: sys::uv_random_t,
    status: c_int,
    done: Done<RandomRaw>,
    /// The request's buffer (its data, in the core's allocation).
    buf: *mut Vec<u8>,
}

pub(crate) struct RandomKind;

// SAFETY: `RandomRaw` starts with `uv_random_t` (which starts with the `uv_req_t`
// fields); nothing to clean up.
unsafe impl LoopRequestKind for RandomKind {
    type Raw = RandomRaw;
    const NAME: &'static str = "random";
    unsafe fn cleanup(_raw: *mut RandomRaw) {}
}

unsafe extern "C" fn random_cb(
    req: *mut sys::uv_random_t,
    status: c_int,
    _buf: *mut c_void,
    _len: usize,
) {
    let raw = req.cast::<RandomRaw>();
    // SAFETY: a request started by `random`, handed back once on the loop thread;
    // `done` was set before it started.
    unsafe {
        (*raw).status = status;
        if let Some(done) = (*raw).done {
            done(raw);
        }
    }
}

unsafe fn read_random(raw: *mut RandomRaw, op: &'static str) -> Result<Vec<u8>> {
    // SAFETY: the caller's contract: a completed request of `random`; the pool
    // thread is done with the buffer.
    unsafe {
        check((*raw).status, op)?;
        Ok(std::mem::take(&mut *(*raw).buf))
    }
}

/// Fills `buf` with random bytes from the system's source, blocking (`uv_random`
/// without a loop). `flags` must be 0 (libuv defines none): `EINVAL` otherwise;
/// `E2BIG` past 2^31 - 1 bytes.
///
/// ```
/// let mut a = [0u8; 64];
/// uv::random_sync(&mut a, 0)?;
/// assert!(a.iter().any(|&b| b != 0)); // 2^-512 chance of a false failure
/// assert_eq!(uv::random_sync(&mut a, 1).unwrap_err().code(), uv::StatusCode::EINVAL);
/// # Ok::<(), uv::Error>(())
/// ```
pub fn random_sync(buf: &mut [u8], flags: u32) -> Result<()> {
    // SAFETY: without a callback uv_random neither uses the loop nor the request
    // (both NULL) and fills `buf` (valid for `len` bytes) before returning.
    let rc = unsafe {
        sys::uv_random(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            None,
        )
    };
    check(rc, "uv_random")
}
