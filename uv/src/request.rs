//! Requests: one allocation per operation (from the loop's slab), holding the libuv request struct, a
//! counted reference to the handle it works on (so the handle stays alive while the
//! request is in flight), the user's callback (inline, not boxed) and the data the
//! request points to (write buffers). The completion trampoline takes the allocation
//! back, frees it, and runs the callback under the loop's panic guard.
//! There is no user-facing request value to drop early: nothing can free a request
//! that libuv still holds.

use std::alloc::Layout;
use std::ffi::c_int;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use libuv_sys2 as sys;

use crate::error::{check, Result};
use crate::handle::HandleKind;
use crate::loop_::{LoopShared, Slab};

/// The request's allocation. The libuv struct comes first (`repr(C)`), so the
/// pointer libuv hands back to the trampoline is the allocation's own; the struct's
/// `data` field (which libuv never touches) holds a thin pointer to the operation's
/// name, for errors.
#[repr(C)]
struct ReqBox<R, K, C, D> {
    raw: R,
    handle: K,
    /// Taken (read out) exactly once, by `done`; a capture-free callback costs nothing.
    cb: ManuallyDrop<C>,
    data: D,
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
/// `R` must be a libuv request struct (starting with the `uv_req_t` fields).
pub fn submit<R, K, C, D>(
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
    submit_reading::<R, K, C, D, NoRead>(handle, op, data, callback, start)
}

/// [`submit`], and `X::read` runs on the completed request and the data just
/// before the callback (the request struct is gone by then).
#[inline]
pub fn submit_reading<R, K, C, D, X>(
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
    // SAFETY: the handle is open.
    unsafe { submit_open::<R, K, C, D, X>(handle, raw.cast(), op, data, callback, start) }
}

/// The error for a request on a closed handle (out of the callers' way).
#[cold]
#[inline(never)]
fn closed(op: &'static &'static str) -> Result<()> {
    Err(crate::error::Error::closed_handle(op))
}

/// [`submit_reading`] on a handle whose libuv struct the caller already has (and
/// checked), so that the handle's state is not looked at twice.
///
/// # Safety
/// `raw` is the libuv struct of `handle`, which is open.
#[inline(always)]
pub(crate) unsafe fn submit_open<R, K, C, D, X>(
    handle: &K,
    raw: *mut sys::uv_handle_t,
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
    // SAFETY: an open handle is in libuv (a handle leaves libuv only after it
    // stopped being open), so its `loop` is the open loop, whose `data` is the
    // loop's shared state, kept alive by the loop's owner.
    let shared: &LoopShared = unsafe { &*((*(*raw).loop_).data as *const LoopShared) };
    let layout = Layout::new::<ReqBox<R, K, C, D>>();
    let slab = shared.slab();
    // SAFETY: the loop's slab lives while its shared state does.
    let p = unsafe { slab.as_ref() }
        .alloc(layout)
        .cast::<ReqBox<R, K, C, D>>()
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
        std::ptr::addr_of_mut!((*p).data).write(data);
        (*req.cast::<sys::uv_req_t>()).data = (op as *const &'static str).cast_mut().cast();
        let rc = start(req, &mut (*p).data, done::<R, K, C, D, X>);
        if rc < 0 {
            return refused(p, slab, rc, op);
        }
    }
    // No count of requests in flight: the loop's count of open handles covers
    // this one (a handle's requests complete before its close callback, which
    // is where its count goes), and so does the handle reference it holds.
    Ok(())
}

/// A request libuv refused: its callback will never run; drops it, then the rest,
/// and gives the memory back.
///
/// # Safety
/// `p` is a ReqBox written by `submit_open` that libuv does not hold.
#[cold]
#[inline(never)]
unsafe fn refused<R, K, C, D>(
    p: *mut ReqBox<R, K, C, D>,
    slab: NonNull<Slab>,
    rc: i32,
    op: &'static &'static str,
) -> Result<()> {
    // SAFETY: per the contract; each field is dropped once.
    unsafe {
        ManuallyDrop::drop(&mut (*p).cb);
        std::ptr::drop_in_place(p);
        Slab::free(
            slab,
            NonNull::new_unchecked(p.cast()),
            Layout::new::<ReqBox<R, K, C, D>>(),
        );
    }
    check(rc, op)
}

unsafe extern "C" fn done<R, K, C, D, X>(req: *mut R, status: c_int)
where
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
    X: ReadDone<R, D>,
{
    // The libuv struct is the first field of the ReqBox made by `submit_open`
    // (`repr(C)`), handed back exactly once: the same address, with the
    // allocation's provenance (libuv got a pointer derived from the allocation's).
    let p = req.cast::<ReqBox<R, K, C, D>>();
    // SAFETY: requests complete while their loop runs or closes their handle, before
    // the handle's close callback: the handle is still in libuv, its loop open, and
    // the loop's shared state kept alive by the loop's owner.
    let shared: &LoopShared = unsafe { &*(*p).handle.typed().shared_raw() };
    let slab = shared.slab();
    // One guard: the handle reference, the name and the callback are taken out of
    // the request inside it (so that only two pointers and the status go into it),
    // then the callback runs; the data stays in place and is dropped after it, with
    // the memory going back to the slab, then the handle reference (which may
    // close an unreachable handle) is dropped. If the callback panics, `Finish`
    // and the handle reference are dropped by the unwinding; their Drop runs no
    // user code (the data is the library's: buffers, addresses, handles), so it
    // cannot panic there.
    shared.guard(move || {
        /// Drops the data in place and gives the memory back to the slab.
        struct Finish<R, K, C, D> {
            p: *mut ReqBox<R, K, C, D>,
            slab: NonNull<Slab>,
        }
        impl<R, K, C, D> Drop for Finish<R, K, C, D> {
            #[inline(always)]
            fn drop(&mut self) {
                // SAFETY: the data was written by `submit` and is dropped once,
                // here; the other fields were moved out (or are `ManuallyDrop`);
                // then the memory goes back to the slab (the loop holds a count
                // of it, so it stays).
                unsafe {
                    std::ptr::drop_in_place(std::ptr::addr_of_mut!((*self.p).data));
                    Slab::free(
                        self.slab,
                        NonNull::new_unchecked(self.p.cast()),
                        Layout::new::<ReqBox<R, K, C, D>>(),
                    );
                }
            }
        }
        // SAFETY: the fields are moved out once, here; nothing before the moves
        // can unwind.
        let (op, handle, cb) = unsafe {
            // The request completed: `read` may look at it (its contract).
            X::read(req, &mut (*p).data);
            (
                // `submit_open` stored the name's thin pointer in `data`.
                &*((*req.cast::<sys::uv_req_t>()).data as *const &'static str),
                std::ptr::addr_of!((*p).handle).read(),
                ManuallyDrop::into_inner(std::ptr::addr_of!((*p).cb).read()),
            )
        };
        let finish = Finish { p, slab };
        cb(&handle, check(status, op));
        drop(finish);
        drop(handle);
    });
}
