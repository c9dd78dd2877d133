//! Requests: one allocation per operation (from the loop's slab), holding the libuv request struct, a
//! counted reference to the handle it works on (so the handle stays alive while the
//! request is in flight), the user's callback (inline, not boxed), the operation's
//! name (for errors; nothing when the request's type names it) and the data the
//! request points to (write buffers). The completion trampoline runs the callback
//! under a panic guard, then frees the allocation.
//! There is no user-facing request value to drop early: nothing can free a request
//! that libuv still holds.

use std::alloc::Layout;
use std::ffi::c_int;
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;

use libuv_sys2 as sys;

use crate::error::Result;
use crate::handle::HandleKind;
use crate::loop_::{LoopShared, PanicPayload, Slab};

/// The request's allocation. The libuv struct comes first (`repr(C)`), so the
/// pointer libuv hands back to the trampoline is the allocation's own; the struct's
/// `data` field (which libuv never touches) holds the slab the allocation came
/// from, so that the trampoline frees it without a look at the loop.
#[repr(C)]
struct ReqBox<R, K, C, D, N> {
    raw: R,
    /// Borrowed by the callback in place; dropped after the allocation is freed.
    handle: K,
    /// Taken (read out) exactly once, by `done`; a capture-free callback costs nothing.
    cb: ManuallyDrop<C>,
    name: N,
    data: D,
}

/// The name of a request's operation, for its errors: kept in the request (a
/// `&'static &'static str`, one word), or told by a zero-sized type, which costs the
/// request nothing (the write paths').
pub trait OpName: Copy + 'static {
    /// The operation's name (`"uv_write"`).
    fn name(self) -> &'static str;
}

impl OpName for &'static &'static str {
    #[inline(always)]
    fn name(self) -> &'static str {
        self
    }
}

/// Reads what a completed request says besides its status into the request's
/// data, before the request is freed (`uv_write_nwritten`): a type parameter of
/// [`submit_reading`], so that requests that read nothing carry no field for it.
pub trait ReadDone<R, D> {
    /// Reads the completed request `req` into `data`.
    ///
    /// # Safety
    /// `req` is a completed request; `read` may only read it.
    unsafe fn read(req: *mut R, data: &mut D);
}

/// Reads nothing.
pub struct NoRead;

impl<R, D> ReadDone<R, D> for NoRead {
    #[inline(always)]
    unsafe fn read(_: *mut R, _: &mut D) {}
}

/// The completion trampoline libuv calls (`uv_write_cb`, `uv_connect_cb`, ...).
pub type Done<R> = unsafe extern "C" fn(*mut R, c_int);

/// Starts a request on `handle`: `start` gets the request struct, the data (which
/// stays put until completion) and the trampoline to pass as the C callback.
///
/// # Safety
/// `R` is the libuv request struct (starting with the `uv_req_t` fields) of the C
/// function `start` calls; `start` calls that function once, on `handle`'s libuv
/// struct, with the request and the trampoline as its callback, and nothing that
/// reads the request before it (the struct is handed over uninitialised but for
/// its `data`); it returns the function's result, negative only when libuv did
/// not take the request (the trampoline then never runs; otherwise it runs once).
pub unsafe fn submit<R, K, C, D>(
    handle: &K,
    op: &'static &'static str,
    data: D,
    callback: C,
    start: impl FnOnce(*mut R, &mut D, Done<R>) -> i32,
) -> Result<()>
where
    R: 'static,
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    D: 'static,
{
    // SAFETY: the caller's contract.
    unsafe { submit_reading::<R, K, C, D, NoRead>(handle, op, data, callback, start) }
}

/// [`submit`], and `X::read` runs on the completed request and the data just
/// before the callback (the request struct is gone by then).
///
/// # Safety
/// As [`submit`].
#[inline]
pub unsafe fn submit_reading<R, K, C, D, X>(
    handle: &K,
    op: &'static &'static str,
    data: D,
    callback: C,
    start: impl FnOnce(*mut R, &mut D, Done<R>) -> i32,
) -> Result<()>
where
    R: 'static,
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    D: 'static,
    X: ReadDone<R, D>,
{
    let Some(raw) = handle.typed().raw_open() else {
        return closed(op);
    };
    // SAFETY: the handle is open; `R` and `start` keep the caller's contract.
    unsafe { submit_named::<R, K, C, D, X, _>(handle, raw.cast(), op, data, callback, start) }
}

/// The error for a request on a closed handle (out of the callers' way).
#[cold]
#[inline(never)]
fn closed(op: &'static &'static str) -> Result<()> {
    Err(crate::error::Error::closed_handle(op))
}

/// [`submit_reading`] on a handle whose libuv struct the caller already has (and
/// checked), so that the handle's state is not looked at twice, with the
/// operation's name of any [`OpName`] type (a zero-sized one is kept in no field).
///
/// # Safety
/// `raw` is the libuv struct of `handle`, which is open; `R` and `start` as in
/// [`submit`].
#[inline(always)]
pub(crate) unsafe fn submit_named<R, K, C, D, X, N>(
    handle: &K,
    raw: *mut sys::uv_handle_t,
    op: N,
    data: D,
    callback: C,
    start: impl FnOnce(*mut R, &mut D, Done<R>) -> i32,
) -> Result<()>
where
    R: 'static,
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    D: 'static,
    X: ReadDone<R, D>,
    N: OpName,
{
    // SAFETY: an open handle is in libuv (a handle leaves libuv only after it
    // stopped being open), so its `loop` is the open loop, whose `data` is the
    // loop's shared state, kept alive by the loop's owner.
    let shared: &LoopShared = unsafe { &*((*(*raw).loop_).data as *const LoopShared) };
    let layout = Layout::new::<ReqBox<R, K, C, D, N>>();
    let slab = shared.slab();
    // SAFETY: the loop's slab lives while its shared state does. No count of the
    // slab is taken for the request: the handle reference it holds (written
    // below, dropped only after the memory went back: `finish`, `refused`) keeps
    // the handle's allocation, which is from the same slab (the loop's) and holds
    // a count of it until the handle's memory is freed.
    let p = unsafe { slab.as_ref() }
        .alloc_uncounted(layout)
        .cast::<ReqBox<R, K, C, D, N>>()
        .as_ptr();
    // SAFETY: `p` is fresh memory for a ReqBox, whose fields are written in place (no
    // copy of the request struct); the request struct and the data are used in place
    // and do not move until the trampoline frees them.
    unsafe {
        // The request struct is left as it is: libuv's function that starts a
        // request initialises the struct (as C callers' `malloc`ed ones), and the
        // only field read before that is `data`, written here.
        let req = std::ptr::addr_of_mut!((*p).raw);
        std::ptr::addr_of_mut!((*p).handle).write(handle.clone());
        std::ptr::addr_of_mut!((*p).cb).write(ManuallyDrop::new(callback));
        std::ptr::addr_of_mut!((*p).name).write(op);
        std::ptr::addr_of_mut!((*p).data).write(data);
        // The handle reference keeps one of the slab's counts (see above), so the
        // pointer stays valid until `finish` gives the memory back.
        (*req.cast::<sys::uv_req_t>()).data = slab.as_ptr().cast();
        let rc = start(req, &mut (*p).data, done::<R, K, C, D, X, N>);
        if rc < 0 {
            return Err(refused(p, slab, rc, op.name()));
        }
    }
    // No count of requests in flight: the loop's count of open handles covers
    // this one (a handle's requests complete before its close callback, which
    // is where its count goes), and so does the handle reference it holds.
    Ok(())
}

/// A request libuv refused: its callback will never run; drops it, then the rest,
/// and gives the memory back. Returns the error (not a `Result`, so that the
/// caller's `Ok` is a constant, not a value read back from where this wrote).
///
/// The callback's captures and the data may run user Drop code that panics: each
/// is dropped under a guard of its own, the memory and the handle reference go
/// back all the same, then the first panic goes on to the caller (no C frame is in
/// between: this runs in the call that started the request).
///
/// # Safety
/// `p` is a ReqBox written by `submit_named` that libuv does not hold.
#[cold]
#[inline(never)]
unsafe fn refused<R, K, C, D, N>(
    p: *mut ReqBox<R, K, C, D, N>,
    slab: NonNull<Slab>,
    rc: i32,
    op: &'static str,
) -> crate::error::Error {
    // SAFETY: per the contract; each field is dropped once (a drop that unwinds
    // is not retried: the value is gone either way); the handle reference, which
    // keeps the slab's count that covers the memory, goes last, after the memory
    // went back.
    let (cb_panic, data_panic) = unsafe {
        let cb_panic =
            std::panic::catch_unwind(AssertUnwindSafe(|| ManuallyDrop::drop(&mut (*p).cb))).err();
        std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).name));
        let data_panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).data))
        }))
        .err();
        let handle = std::ptr::addr_of!((*p).handle).read();
        slab.as_ref().free_uncounted(
            NonNull::new_unchecked(p.cast()),
            Layout::new::<ReqBox<R, K, C, D, N>>(),
        );
        drop(handle);
        (cb_panic, data_panic)
    };
    match (cb_panic, data_panic) {
        (None, None) => crate::error::Error::from_raw(rc, op),
        (Some(first), second) => {
            // A second payload is dropped here (its own Drop may panic too).
            if let Some(second) = second {
                crate::callback::drop_quietly(second);
            }
            std::panic::resume_unwind(first)
        }
        (None, Some(only)) => std::panic::resume_unwind(only),
    }
}

/// The most a callback captures for [`done`] to keep a failed request's call of
/// it out of line; a callback that captures more is called from one place.
const SPLIT_CAPTURES: usize = 2 * std::mem::size_of::<usize>();

/// The trampoline. Its common path keeps one value across the callback (the
/// request's address: the handle is borrowed in place, the slab is in the
/// request struct) and builds no error, so that it saves and restores little; a
/// panic goes to [`unwound`], out of the way.
///
/// A callback that captures little (the compiler inlines its code wherever it is
/// called) has the failed request's call out of line, in [`failed`], so that the
/// common path has no room for an error. One that captures more is called from
/// one place (the error of a failed request made out of line, by
/// [`failed_error`]), so that its code is inlined here however large it is:
/// no copy of its captures is made for a call, and it sees the kind of result.
unsafe extern "C" fn done<R, K, C, D, X, N>(req: *mut R, status: c_int)
where
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    X: ReadDone<R, D>,
    N: OpName,
{
    // The libuv struct is the first field of the ReqBox made by `submit_named`
    // (`repr(C)`), handed back exactly once: the same address, with the
    // allocation's provenance (libuv got a pointer derived from the allocation's).
    let p = req.cast::<ReqBox<R, K, C, D, N>>();
    if std::mem::size_of::<C>() > SPLIT_CAPTURES {
        let result = if status < 0 {
            // SAFETY: the name was written by `submit_named` (`Copy`: read, not
            // moved).
            Err(failed_error(unsafe { (*p).name }, status))
        } else {
            Ok(())
        };
        // SAFETY: `p` is the completed request, handed back once.
        return unsafe { complete::<R, K, C, D, X, N>(p, move || result) };
    }
    if status < 0 {
        // SAFETY: as below.
        unsafe { failed::<R, K, C, D, X, N>(p, status) };
        return;
    }
    // SAFETY: `p` is the completed request, handed back once.
    unsafe { complete::<R, K, C, D, X, N>(p, || Ok(())) }
}

/// [`done`] for a request that failed (`status` < 0), whose callback captures
/// little.
///
/// # Safety
/// As [`complete`].
#[cold]
#[inline(never)]
unsafe fn failed<R, K, C, D, X, N>(p: *mut ReqBox<R, K, C, D, N>, status: c_int)
where
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    X: ReadDone<R, D>,
    N: OpName,
{
    // SAFETY: the name was written by `submit_named` (`Copy`: read, not moved);
    // the rest per the contract.
    unsafe {
        let op = (*p).name;
        complete::<R, K, C, D, X, N>(p, move || Err(failed_error(op, status)));
    }
}

/// The error of a request that failed (`status` < 0).
#[cold]
#[inline(never)]
fn failed_error<N: OpName>(op: N, status: c_int) -> crate::error::Error {
    crate::error::Error::from_raw(status, op.name())
}

/// Runs the callback of the completed request `p` with `result()` under a panic
/// guard, then frees the request. (`result` is a closure so that each caller has
/// a guarded call of its own, which the compiler inlines, instead of sharing one
/// it keeps out of line.)
///
/// # Safety
/// `p` is a ReqBox made by `submit_named` whose request libuv completed and
/// handed back; called once for it.
#[inline(always)]
unsafe fn complete<R, K, C, D, X, N>(
    p: *mut ReqBox<R, K, C, D, N>,
    result: impl FnOnce() -> Result<()>,
) where
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    X: ReadDone<R, D>,
    N: OpName,
{
    // Set just before the data's drop starts: a panic caught after it came from
    // the drop (the data is not touched again), one caught before it from the
    // callback (the data is dropped then, under a guard of its own: never while a
    // panic unwinds, where a second panic would abort).
    let dropping = std::cell::Cell::new(false);
    let run = AssertUnwindSafe(|| {
        // SAFETY: the request completed (`read` may look at it, its contract); the
        // callback is moved out once, here; the handle stays in place, borrowed by
        // the callback, until `finish` (nothing frees the request meanwhile: libuv
        // is done with it and no value of the user's names it). The data was
        // written by `submit_named` and is dropped once: here, or by `unwound`.
        // Inside the guard: the data may run user code when dropped (a
        // `bytes::Bytes` owner, the last reference to a handle sent with `write2`,
        // which drops its callbacks).
        unsafe {
            X::read(p.cast::<R>(), &mut (*p).data);
            let cb = ManuallyDrop::into_inner(std::ptr::addr_of!((*p).cb).read());
            cb(&(*p).handle, result());
            dropping.set(true);
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).data));
        }
    });
    match std::panic::catch_unwind(run) {
        // SAFETY: the callback ran (and consumed itself), the data was dropped; the
        // rest is dropped once.
        Ok(()) => unsafe { finish(p) },
        // SAFETY: as above; the data is dropped by `unwound` if its drop did not
        // start (the callback panicked).
        Err(payload) => unsafe { unwound(p, payload, !dropping.get()) },
    }
}

/// Gives the memory back to the slab, then drops the handle reference (which may
/// close an unreachable handle: the handle is in libuv, so that runs no user code,
/// as the handle callbacks' own `close_if_unreachable` after their guard).
///
/// # Safety
/// `p` is a completed ReqBox whose callback was taken and whose data was dropped
/// (or is not to be touched); called once.
#[inline(always)]
unsafe fn finish<R, K, C, D, N>(p: *mut ReqBox<R, K, C, D, N>) {
    // SAFETY: per the contract: the handle is dropped once, here (the callback was
    // moved out, `ManuallyDrop`, the name has no drop glue: `Copy`, the data is
    // the caller's); `data` of the request struct is the slab `submit_named`
    // wrote, alive while the handle reference (read out, dropped after the memory
    // went back) keeps the handle's count of it.
    unsafe {
        let handle = std::ptr::addr_of!((*p).handle).read();
        let slab = NonNull::new_unchecked((*p.cast::<sys::uv_req_t>()).data.cast::<Slab>());
        slab.as_ref().free_uncounted(
            NonNull::new_unchecked(p.cast()),
            Layout::new::<ReqBox<R, K, C, D, N>>(),
        );
        drop(handle);
    }
}

/// The callback (or the data's drop) panicked: the data is dropped if `drop_data`
/// (the callback panicked before its drop started), under a guard of its own; the
/// request is finished as usual; then the panics go to the loop (its hook, or the
/// first one kept for `run` to resume).
///
/// # Safety
/// As [`finish`], except that the data is still to be dropped if `drop_data`.
#[cold]
#[inline(never)]
unsafe fn unwound<R, K, C, D, N>(
    p: *mut ReqBox<R, K, C, D, N>,
    payload: PanicPayload,
    drop_data: bool,
) where
    K: HandleKind,
{
    // SAFETY: requests complete while their loop runs or closes their handle, before
    // the handle's close callback (the handle is still in libuv, its loop open), or
    // while the teardown of their abandoned loop completes them (`Orphan`); either
    // way the loop's shared state is kept alive by the loop's owner (also once the
    // handle reference is dropped: the state is the loop's, not the handle's).
    let shared: *const LoopShared = unsafe { (*p).handle.typed().shared_for_request() };
    let data_panic = if drop_data {
        // SAFETY: the data was written by `submit_named` and not dropped (its drop
        // did not start); dropped once, here, before the memory goes back.
        std::panic::catch_unwind(AssertUnwindSafe(|| unsafe {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).data))
        }))
        .err()
    } else {
        None
    };
    // SAFETY: per the contract (the data is dropped now).
    unsafe { finish(p) };
    // SAFETY: as above.
    unsafe { (*shared).panicked(payload) };
    if let Some(second) = data_panic {
        // SAFETY: as above.
        unsafe { (*shared).panicked(second) };
    }
}

/// A request on a handle of a loop that will never run again (a forked child's
/// loop it did not re-create, or a loop that could not be closed: see
/// `LoopShared::abandon_forked`), taken off its handle with the status its
/// callback gets, as libuv's close of the handle would give it
/// (`uv__stream_destroy`, `uv__udp_finish_close`): a connect, a write not
/// finished and a shutdown are cancelled; a write or a send libuv finished keeps
/// its result. Until [`Orphan::complete`], the request is in flight: its
/// allocation, the handle reference it holds, its callback and its data stay.
#[cfg(unix)]
pub(crate) enum Orphan {
    Connect(*mut sys::uv_connect_t),
    Write(*mut sys::uv_write_t, c_int),
    Shutdown(*mut sys::uv_shutdown_t),
    Send(*mut sys::uv_udp_send_t, c_int),
}

/// The requests libuv holds in `head`, a queue of requests of type `R` linked by
/// their field at `offset`, in order; the queue is left empty.
///
/// # Safety
/// `head` is a live queue of live requests of type `R`.
#[cfg(unix)]
unsafe fn take_queue<R>(head: *mut sys::uv__queue, offset: usize, out: &mut Vec<*mut R>) {
    // SAFETY: per the contract, every node but the head is the field at `offset`
    // of a live `R`; the head is put back empty (linked to itself), as
    // `uv__queue_init` does.
    unsafe {
        let mut q = (*head).next;
        while q != head {
            let next = (*q).next;
            out.push(q.cast::<u8>().sub(offset).cast::<R>());
            q = next;
        }
        (*head).next = head;
        (*head).prev = head;
    }
}

/// Frees libuv's copy of a request's buffer array, as libuv's completion of the
/// request does: `*bufs`, unless null (freed already) or `inline` (the request's
/// own array, `bufsml`); `*bufs` is left null.
///
/// # Safety
/// `bufs` is the `bufs` field of a live write or send request that libuv will
/// not complete, `inline` its `bufsml` field.
#[cfg(unix)]
unsafe fn free_bufs(bufs: *mut *mut sys::uv_buf_t, inline: *mut sys::uv_buf_t) {
    // SAFETY: per the contract; libuv allocated an array it did not keep inline
    // with `uv__malloc`, which is `malloc`: this library never replaces libuv's
    // allocator (`uv_replace_allocator`), and nothing else frees the array now.
    unsafe {
        let p = std::mem::replace(&mut *bufs, std::ptr::null_mut());
        if !p.is_null() && p != inline {
            libc::free(p.cast());
        }
    }
}

/// Takes the requests in flight off the handle `raw` (a stream's connect, writes
/// and shutdown, a UDP socket's sends; other handle types have none libuv keeps),
/// in the order libuv's close would complete them, into `out`.
///
/// # Safety
/// `raw` is a handle of this library whose loop will never run again and on
/// which no libuv function is called again: nothing else reads or completes its
/// requests. Every request in its queues was started by [`submit`] (the only way
/// this library starts one), with [`done`] as its callback.
#[cfg(unix)]
pub(crate) unsafe fn take_orphans(raw: *mut sys::uv_handle_t, out: &mut Vec<Orphan>) {
    use std::mem::offset_of;
    // SAFETY: per the contract the handle is live and of the type its `type_`
    // says; its queues hold live requests of the types read here (libuv's
    // layouts: `uv_write_t` and `uv_udp_send_t` linked by `queue`).
    unsafe {
        let ty = (*raw).type_;
        if ty == sys::uv_handle_type_UV_TCP
            || ty == sys::uv_handle_type_UV_NAMED_PIPE
            || ty == sys::uv_handle_type_UV_TTY
        {
            let s = raw.cast::<sys::uv_stream_t>();
            let connect = std::mem::replace(&mut (*s).connect_req, std::ptr::null_mut());
            if !connect.is_null() {
                out.push(Orphan::Connect(connect));
            }
            // Finished writes first (their callbacks were due), with their
            // results; then the ones not finished, cancelled.
            let mut writes = Vec::new();
            let off = offset_of!(sys::uv_write_t, queue);
            take_queue::<sys::uv_write_t>(&raw mut (*s).write_completed_queue, off, &mut writes);
            let finished = writes.len();
            take_queue::<sys::uv_write_t>(&raw mut (*s).write_queue, off, &mut writes);
            for (i, w) in writes.into_iter().enumerate() {
                let status = if i < finished {
                    (*w).error
                } else {
                    sys::uv_errno_t_UV_ECANCELED
                };
                // libuv's write callback path frees its copy of the buffer array
                // (`uv__write_callbacks`), a finished write's once it is done.
                free_bufs(&raw mut (*w).bufs, (&raw mut (*w).bufsml).cast());
                out.push(Orphan::Write(w, status));
            }
            let shutdown = std::mem::replace(&mut (*s).shutdown_req, std::ptr::null_mut());
            if !shutdown.is_null() {
                out.push(Orphan::Shutdown(shutdown));
            }
        } else if ty == sys::uv_handle_type_UV_UDP {
            let u = raw.cast::<sys::uv_udp_t>();
            let mut sends = Vec::new();
            let off = offset_of!(sys::uv_udp_send_t, queue);
            take_queue::<sys::uv_udp_send_t>(&raw mut (*u).write_completed_queue, off, &mut sends);
            let finished = sends.len();
            take_queue::<sys::uv_udp_send_t>(&raw mut (*u).write_queue, off, &mut sends);
            for (i, r) in sends.into_iter().enumerate() {
                // libuv's: a count of bytes sent, or an error.
                let status = match (*r).status {
                    n if i < finished && n >= 0 => 0,
                    n if i < finished => n as c_int,
                    _ => sys::uv_errno_t_UV_ECANCELED,
                };
                // As libuv's completion does (`uv__udp_run_completed`).
                free_bufs(&raw mut (*r).bufs, (&raw mut (*r).bufsml).cast());
                out.push(Orphan::Send(r, status));
            }
        }
    }
}

#[cfg(unix)]
impl Orphan {
    /// Runs the request's callback with its status (through its trampoline,
    /// under its panic guard, as libuv would), which frees the request.
    ///
    /// # Safety
    /// Taken by [`take_orphans`], completed once.
    pub(crate) unsafe fn complete(self) {
        // SAFETY: per the contract the request is in flight, with the trampoline
        // `submit` gave it as its callback (libuv keeps a send's in `send_cb`),
        // which takes any status libuv may pass.
        unsafe {
            match self {
                Orphan::Connect(r) => {
                    if let Some(cb) = (*r).cb {
                        cb(r, sys::uv_errno_t_UV_ECANCELED)
                    }
                }
                Orphan::Write(r, status) => {
                    if let Some(cb) = (*r).cb {
                        cb(r, status)
                    }
                }
                Orphan::Shutdown(r) => {
                    if let Some(cb) = (*r).cb {
                        cb(r, sys::uv_errno_t_UV_ECANCELED)
                    }
                }
                Orphan::Send(r, status) => {
                    if let Some(cb) = (*r).send_cb {
                        cb(r, status)
                    }
                }
            }
        }
    }
}
