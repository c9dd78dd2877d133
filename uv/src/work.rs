//! Work on libuv's thread pool (`uv_queue_work`) and random bytes (`uv_random`).
//!
//! `random` is built on the loop-request core (`loop_request::submit`): one
//! allocation per request, a cancellable [`Request`], the callback under the loop's
//! panic guard. Its libuv request struct is wrapped in a `#[repr(C)]` struct that
//! starts with it and adds what the core's one-argument completion callback needs.
//!
//! `queue_work` has a path of its own, as lean as the loop-request core allows: one
//! slab allocation holds a [`ReqHead`] (what its [`Request`] values use, so they
//! need no table entry), the libuv request, the job (then its outcome) and `after`,
//! and libuv's after-work callback is specialised for the job's types. It keeps
//! every rule of the core: the loop counts the request as alive until `after` ran,
//! `after` runs under the loop's panic guard, the memory goes back first (unless a
//! `Request` of it is still alive: then the last one frees it).
//!
//! Panic rule: a panic in a job (on a pool thread) is caught there, carried to the
//! loop, and resurfaces as a panic of a callback would: `run` resumes it (or the
//! loop's panic hook gets it). The job's `after` callback is then not called (it is
//! dropped).

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::{LoopHandle, LoopShared, PanicPayload, Slab};
use crate::loop_request::{no_context, submit, Done, LoopRequestKind, ReqHead, Request};
use crate::StatusCode;

/// What every `queue_work` request starts with: the head its `Request` values use,
/// libuv's struct right after it (as `ReqHead` requires), then the loop's state.
#[repr(C)]
struct WorkBase {
    head: ReqHead,
    req: sys::uv_work_t,
    /// The loop's slab, where the block came from (alive while a request of the
    /// loop is in flight: the loop's shared state holds a count of it). The shared
    /// state itself is the loop's `data` (as for handles).
    slab: NonNull<Slab>,
}

/// Where libuv's struct is in a request (libuv's callbacks get a pointer to it).
const REQ_OFFSET: usize = std::mem::offset_of!(WorkBase, req);
const _: () = assert!(REQ_OFFSET == std::mem::size_of::<ReqHead>());

/// A `queue_work` request: the base, then the job and `after`.
#[repr(C)]
struct WorkReq<F, T, A> {
    base: WorkBase,
    /// The job, then its outcome. The pool thread moves the job out and writes its
    /// outcome over it (the job's panic is caught in between, so nothing reads the
    /// moved-out job); the loop thread reads it after libuv handed the request back
    /// (libuv's queue mutex orders the two). A cancelled job is still here, unrun.
    state: UnsafeCell<Job<F, T>>,
    /// Taken once, by `after_cb` (or dropped when libuv refuses the request).
    after: ManuallyDrop<A>,
}

/// A job, or what running it gave.
enum Job<F, T> {
    Work(F),
    /// A pool thread took the job and runs it (seen only by the teardown of a
    /// loop a forked child abandons: that thread is not in the child, and what
    /// the job holds is its own).
    Running,
    Done(T),
    Panicked(PanicPayload),
}

/// The request whose libuv struct is at `req`.
///
/// # Safety
/// `req` is the libuv struct of a `WorkReq<F, T, A>` (at `REQ_OFFSET` in it).
#[inline(always)]
unsafe fn from_req<F, T, A>(req: *mut sys::uv_work_t) -> *mut WorkReq<F, T, A> {
    // SAFETY: the caller's contract: the result is the start of the same block
    // (`base` is the first field of the repr(C) `WorkReq`).
    unsafe { req.cast::<u8>().sub(REQ_OFFSET).cast() }
}

unsafe extern "C" fn work_cb<F, T, A>(req: *mut sys::uv_work_t)
where
    F: FnOnce() -> T,
{
    // The job's code may call into the crate (its exit handler, its signal calls)
    // knowing it runs on libuv's pool.
    crate::contracts::mark_pool_thread();
    // SAFETY: libuv passes the struct `queue_work` queued, inside its WorkReq.
    let p = unsafe { from_req::<F, T, A>(req) };
    // SAFETY: `req` is the libuv struct of a `WorkReq<F, T, A>` (repr(C)) that
    // `queue_work` wrote before queueing it and that stays put until `after_cb`;
    // only this pool thread touches `state` while the job runs (libuv calls this
    // once, and hands the request back to the loop thread only after it returned).
    let state = unsafe { (*p).state.get() };
    // The job is moved out, `Running` left in its place (a forked child that
    // abandons the loop finds the job gone with this thread, not a stale copy to
    // drop), and its outcome written over that.
    // SAFETY: as above.
    let job = unsafe { std::ptr::replace(state, Job::Running) };
    let Job::Work(f) = job else {
        // Not reached: the state holds the job until here. It stays where it is.
        // SAFETY: as above.
        unsafe { std::ptr::write(state, job) };
        return;
    };
    // The panic stops here, on the pool thread; the loop resurfaces it.
    let outcome = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Job::Done(v),
        Err(payload) => Job::Panicked(payload),
    };
    // SAFETY: as above; `Running` has nothing to drop.
    unsafe { std::ptr::write(state, outcome) };
}

unsafe extern "C" fn after_cb<F, T, A>(req: *mut sys::uv_work_t, status: c_int)
where
    A: FnOnce(Result<T>),
{
    // SAFETY: libuv passes the struct `queue_work` queued, inside its WorkReq.
    let p = unsafe { from_req::<F, T, A>(req) };
    // SAFETY: a request started by `queue_work`, handed back once by libuv on the
    // loop thread: the pool is done with it, and the loop runs this callback, so its
    // owner keeps the slab alive. The loop is read now: the block may be freed
    // (and reused) before it is needed.
    let (slab, l) = unsafe { ((*p).base.slab.as_ref(), (*req).loop_) };
    let layout = Layout::new::<WorkReq<F, T, A>>();
    // SAFETY: as above: the job's state is read (moved out) once, on one path.
    let state = unsafe { &*(*p).state.get() };
    // The common case, without a call before `after`: the job ran (then libuv's
    // status is 0: it passes another only for a job it took off its queue unrun,
    // which is still `Work` here), no `Request` of it is left, and the block goes
    // back to the slab's free list. Everything else takes `after_slow`.
    let (after, result) = match (state, slab.free_list(layout)) {
        // SAFETY: as above (the head is read before anything else of the completion).
        (Job::Done(v), Some(list)) if unsafe { (*p).base.head.completes_alone() } => {
            // SAFETY: as above: the value and `after` are moved out once, then the
            // memory goes back, before any user code runs (nothing reads the block
            // after; the head's state does not matter any more: no `Request` is
            // left to read it).
            unsafe {
                (*p).base.head.unlink();
                let value = std::ptr::read(v);
                let after = ManuallyDrop::take(&mut (*p).after);
                list.push(NonNull::new_unchecked(p.cast()));
                (after, Ok(value))
            }
        }
        // SAFETY: as above; nothing was moved out of the request yet.
        _ => match unsafe { after_slow(loop_shared(l), p, status) } {
            Some(done) => done,
            None => return,
        },
    };
    // `after` is called at this one place (so that it may be inlined here), under
    // the loop's guard (the shared state is only looked up for a panic).
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || after(result))) {
        // SAFETY: the loop (read before the block was freed) runs this callback.
        unsafe { loop_shared(l) }.panicked(payload);
    }
}

/// The shared state of a loop made by this crate (its `data`, set when the loop
/// was made).
///
/// # Safety
/// `l` is the open loop of a request that libuv handed back, on the loop thread
/// (while the loop runs, its owner keeps the shared state alive).
#[inline(always)]
unsafe fn loop_shared<'a>(l: *mut sys::uv_loop_t) -> &'a LoopShared {
    // SAFETY: the caller's contract.
    unsafe { &*((*l).data as *const LoopShared) }
}

/// The completion of a request that is not the common case (see `after_cb`): the
/// memory goes back (or is left to the last `Request`) before any user code runs.
/// Then a job that panicked has its panic go where a callback's would, then its
/// `after` dropped (a panic of that drop goes the same way, after it), and this
/// gives `None`; a job that did not run is dropped (on the loop thread, under the
/// guard) and `after` is given back with the error (`ECANCELED`); a job that ran
/// gives `after` and its value.
///
/// # Safety
/// `p` is a request of `shared`'s loop that libuv handed back, nothing moved out of
/// it yet; called once, on the loop thread.
#[cold]
#[inline(never)]
unsafe fn after_slow<F, T, A>(
    shared: &LoopShared,
    p: *mut WorkReq<F, T, A>,
    status: c_int,
) -> Option<(A, Result<T>)> {
    let slab = shared.slab();
    // SAFETY: the caller's contract: the job's state and `after` are moved out
    // once, then the memory goes back (or to the last `Request`), before any user
    // code runs; nothing reads the block after.
    let (job, after) = unsafe {
        let job = std::ptr::read((*p).state.get());
        let after = ManuallyDrop::take(&mut (*p).after);
        if (*p).base.head.completed(true, free_block::<F, T, A>, slab) {
            slab.as_ref().free_uncounted(
                NonNull::new_unchecked(p.cast()),
                Layout::new::<WorkReq<F, T, A>>(),
            );
        }
        (job, after)
    };
    match job {
        // libuv passes a status other than 0 only for a job it took off its queue
        // unrun; a job that ran is given its value (the teardown of an abandoned
        // loop completes a job that ran with `ECANCELED`, not knowing whether it
        // did).
        Job::Done(v) => Some((after, Ok(v))),
        Job::Panicked(payload) => {
            // The job's panic first (the one `run` resumes), then a panic of
            // `after`'s drop the same way (a panic hook gets both).
            shared.panicked(payload);
            shared.guard(move || drop(after));
            None
        }
        // A job that did not run (or whose thread is not in this process: a
        // forked child's abandoned loop, `Running`) is dropped.
        unrun => {
            shared.guard(move || drop(unrun));
            // libuv calls the after-work callback with status 0 only after the job
            // ran.
            let err = if status < 0 {
                Error::from_raw(status, "uv_queue_work")
            } else {
                Error::new(StatusCode::ECANCELED, "uv_queue_work")
            };
            Some((after, Err(err)))
        }
    }
}

/// Gives the memory of a request that outlived its completion back to its slab,
/// with the count the block took then.
///
/// # Safety
/// `head` is the head of a `WorkReq<F, T, A>` from `slab`'s `alloc_uncounted` that
/// took a count when its completion ended, whose fields were all moved out or never
/// written; nothing refers to it after.
unsafe fn free_block<F, T, A>(head: NonNull<ReqHead>, slab: NonNull<Slab>) {
    // SAFETY: the caller's contract (the head is the block's start).
    unsafe { Slab::free(slab, head.cast(), Layout::new::<WorkReq<F, T, A>>()) }
}

/// A request libuv refused: the memory goes back first, then the job and `after` are
/// dropped (their Drop code may panic: no C frame is in between).
///
/// # Safety
/// `p` is a `WorkReq` from `alloc_uncounted` of its loop's slab, with every field but
/// the request written, that libuv did not take; nothing else refers to it.
#[cold]
#[inline(never)]
unsafe fn refused<F, T, A>(p: *mut WorkReq<F, T, A>, rc: c_int) -> Error {
    // SAFETY: the caller's contract: written once, moved out once; the slab is
    // alive (the caller holds a handle of the loop, whose shared state holds it).
    let parts = unsafe {
        let slab = (*p).base.slab;
        let parts = (
            std::ptr::read((*p).state.get()),
            ManuallyDrop::take(&mut (*p).after),
        );
        slab.as_ref().free_uncounted(
            NonNull::new_unchecked(p.cast()),
            Layout::new::<WorkReq<F, T, A>>(),
        );
        parts
    };
    drop(parts);
    Error::from_raw(rc, "uv_queue_work")
}

/// `queue_work` when the slab has no freed block of the request's size.
#[cold]
#[inline(never)]
fn queue_work_fresh<T, F, A>(
    slab: NonNull<Slab>,
    l: *mut sys::uv_loop_t,
    work: F,
    after: A,
) -> Result<Request>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    A: FnOnce(Result<T>) + 'static,
{
    // SAFETY: the loop is open, so its slab is alive.
    let p = unsafe { slab.as_ref() }.alloc_uncounted(Layout::new::<WorkReq<F, T, A>>());
    // SAFETY: fresh memory of the loop's slab for a WorkReq, from `alloc_uncounted`.
    unsafe { start_work(slab, l, p.cast().as_ptr(), work, after) }
}

/// Writes a `queue_work` request in `p` and queues it on `l`.
///
/// # Safety
/// `l` is an open loop of this crate, `slab` its slab, and `p` fresh memory for a
/// `WorkReq` from `alloc_uncounted` of that slab.
#[inline(always)]
unsafe fn start_work<T, F, A>(
    slab: NonNull<Slab>,
    l: *mut sys::uv_loop_t,
    p: *mut WorkReq<F, T, A>,
    work: F,
    after: A,
) -> Result<Request>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    A: FnOnce(Result<T>) + 'static,
{
    // SAFETY: `p` is fresh memory for a WorkReq (the contract): every field but
    // libuv's struct is written here, and uv_queue_work initialises libuv's struct
    // (`uv__req_init`) before anything reads it. The request stays put until
    // `after_cb` frees it (or leaves it to the last `Request`), which libuv calls
    // once, on this thread, after this function returned. The head counts the
    // `Request` returned below.
    let rc = unsafe {
        std::ptr::addr_of_mut!((*p).base.head).write(ReqHead::started());
        std::ptr::addr_of_mut!((*p).base.slab).write(slab);
        std::ptr::addr_of_mut!((*p).state).write(UnsafeCell::new(Job::Work(work)));
        std::ptr::addr_of_mut!((*p).after).write(ManuallyDrop::new(after));
        // Not once the process is exiting (`contracts::pool_call`).
        crate::contracts::pool_call(|| {
            sys::uv_queue_work(
                l,
                std::ptr::addr_of_mut!((*p).base.req),
                Some(work_cb::<F, T, A>),
                Some(after_cb::<F, T, A>),
            )
        })
        .unwrap_or(sys::uv_errno_t_UV_ECANCELED)
    };
    if rc < 0 {
        // SAFETY: libuv did not take the request; nothing else refers to it.
        return Err(unsafe { refused(p, rc) });
    }
    // SAFETY: the head was written by `ReqHead::started`, and libuv holds the request,
    // of the loop `l` (open: its shared state is its `data`), completed through
    // its thread pool by `after_cb`, which unlinks it first.
    Ok(unsafe { Request::from_head(NonNull::new_unchecked(p.cast()), loop_shared(l)) })
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
    /// `EINVAL` in a forked child on a loop it did not re-create (see
    /// [`LoopHandle::after_fork`], which also says what becomes of the jobs the
    /// parent's pool held at the fork).
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
    #[inline]
    pub fn queue_work<T, F, A>(&self, work: F, after: A) -> Result<Request>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        A: FnOnce(Result<T>) + 'static,
    {
        let shared: &LoopShared = self.shared();
        let Some(l) = shared.raw_for_new() else {
            return Err(Error::closed_loop("uv_queue_work"));
        };
        // Not in a forked child on the parent's loop (see `loop_request::submit`).
        shared.check_process("uv_queue_work")?;
        // A freed block of the slab, or (out of line, so that the common path keeps
        // few values across calls) a fresh one.
        // SAFETY: the loop is open, so its slab is alive.
        let slab = shared.slab();
        // SAFETY: as above.
        let Some(p) = unsafe { slab.as_ref() }.pop_free(Layout::new::<WorkReq<F, T, A>>()) else {
            return queue_work_fresh(slab, l, work, after);
        };
        // SAFETY: fresh memory of the loop's slab for a WorkReq, from
        // `alloc_uncounted`.
        unsafe { start_work(slab, l, p.cast().as_ptr(), work, after) }
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
        let read = |raw, _: &mut UnsafeCell<Vec<u8>>, op| {
            // SAFETY: the core passes the completed request of this call.
            unsafe { read_random(raw, op) }
        };
        let start = |l, raw: *mut RandomRaw, buf: &UnsafeCell<Vec<u8>>, done| {
            // SAFETY: `raw` is the core's request (its libuv part initialised by
            // uv_random) and `buf` its data, both put until completion (the
            // vector's bytes do not move: nothing touches it until the reader
            // takes it); a refused request (`EINVAL`, `E2BIG`) is never used by
            // libuv.
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
        };
        // SAFETY: `start` starts the `uv_random_t` once with `uv_random`, with `done` as its callback, and returns its result; `read` gets the completed request.
        unsafe {
            submit::<RandomKind, _, _, _, _>(
                self,
                "uv_random",
                read,
                no_context,
                |slot| Ok(slot.write(UnsafeCell::new(buf))),
                callback,
                start,
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A value whose Drop panics with a `&str` payload naming it.
    struct Boom(&'static str);

    impl Drop for Boom {
        fn drop(&mut self) {
            std::panic::panic_any(self.0);
        }
    }

    /// A request libuv refuses whose data, callback and reader all panic when
    /// dropped: each is dropped once, the first panic (the data's) reaches the
    /// caller, the others are dropped quietly (a second panic while one unwinds
    /// would abort the process), and the loop is unharmed.
    #[test]
    fn a_refused_request_whose_parts_all_panic_on_drop_gives_the_first_panic() {
        let lp = crate::Loop::new().unwrap();
        let (in_read, in_cb, in_data) = (Boom("read"), Boom("callback"), Boom("data"));
        let r = catch_unwind(AssertUnwindSafe(|| {
            let read = move |raw, _: &mut (UnsafeCell<Vec<u8>>, Boom), op| {
                let _keep = &in_read;
                // SAFETY: the core passes the completed request of this call.
                unsafe { read_random(raw, op) }
            };
            let start = |l, raw: *mut RandomRaw, data: &(UnsafeCell<Vec<u8>>, Boom), done| {
                // SAFETY: as in `Loop::random`; flags 1 are refused (`EINVAL`)
                // before libuv keeps anything.
                unsafe {
                    (*raw).done = done;
                    (*raw).buf = data.0.get();
                    let v = &mut *data.0.get();
                    sys::uv_random(
                        l,
                        std::ptr::addr_of_mut!((*raw).req),
                        v.as_mut_ptr().cast(),
                        v.len(),
                        1,
                        Some(random_cb),
                    )
                }
            };
            // SAFETY: `start` starts the `uv_random_t` once with `uv_random`, with `done` as its callback, and returns its result; `read` gets the completed request.
            unsafe {
                submit::<RandomKind, _, _, _, _>(
                    &lp,
                    "uv_random",
                    read,
                    no_context,
                    |slot| Ok(slot.write((UnsafeCell::new(vec![0u8; 4]), in_data))),
                    move |_| {
                        let _keep = &in_cb;
                    },
                    start,
                )
            }
        }));
        let payload = r.expect_err("the drops' panic reaches the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"data"));
        // The loop is unharmed: a request runs to its end.
        let got = std::rc::Rc::new(std::cell::Cell::new(0));
        let g = got.clone();
        lp.random(vec![0; 8], 0, move |r| g.set(r.unwrap().len()))
            .unwrap();
        lp.run(crate::RunMode::Default).unwrap();
        assert_eq!(got.get(), 8);
    }
}
