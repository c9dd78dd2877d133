//! Requests: one allocation per operation, holding the libuv request struct, a
//! counted reference to the handle it works on (so the handle stays alive while the
//! request is in flight), the user's callback (inline, not boxed) and the data the
//! request points to (write buffers). The completion trampoline takes the allocation
//! back, runs the callback under the loop's panic guard and frees everything.
//! There is no user-facing request value to drop early: nothing can free a request
//! that libuv still holds.

use std::ffi::c_int;
use std::mem::ManuallyDrop;

use libuv_sys2 as sys;

use crate::error::{check, Result};
use crate::handle::HandleKind;
use crate::loop_::LoopShared;

#[repr(C)]
struct ReqBox<R, K, C, D> {
    raw: R,
    /// A thin pointer to the operation's name, for errors.
    op: &'static &'static str,
    handle: K,
    /// Taken (read out) exactly once, by `done`; a capture-free callback costs nothing.
    cb: ManuallyDrop<C>,
    data: D,
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
    let shared = handle.typed().shared_ptr(op)?;
    let b = Box::new(ReqBox {
        // SAFETY: libuv request structs are plain C data; all-zero is a valid
        // (not yet started) value.
        raw: unsafe { std::mem::zeroed::<R>() },
        op,
        handle: handle.clone(),
        cb: ManuallyDrop::new(callback),
        data,
    });
    let p = Box::into_raw(b);
    // SAFETY: `p` is a fresh allocation; the request struct and the data are used in
    // place and do not move until the trampoline frees them.
    unsafe {
        let raw = std::ptr::addr_of_mut!((*p).raw);
        (*raw.cast::<sys::uv_req_t>()).data = p.cast();
        let rc = start(raw, &mut (*p).data, done::<R, K, C, D>);
        if rc < 0 {
            let mut b = Box::from_raw(p);
            // The callback will never run: drop it here, then the rest.
            ManuallyDrop::drop(&mut b.cb);
            drop(b);
            return check(rc, op);
        }
        (*shared).request_started();
    }
    Ok(())
}

unsafe extern "C" fn done<R, K, C, D>(req: *mut R, status: c_int)
where
    K: HandleKind + Clone,
    C: FnOnce(&K, Result<()>) + 'static,
{
    // SAFETY: `data` is the ReqBox made by `submit`, handed back exactly once.
    let mut b =
        unsafe { Box::from_raw((*req.cast::<sys::uv_req_t>()).data as *mut ReqBox<R, K, C, D>) };
    // SAFETY: requests complete while their loop runs or closes their handle, before
    // the handle's close callback: the handle is still in libuv, its loop open, and
    // the loop's shared state kept alive by the loop's owner.
    let shared: &LoopShared = unsafe { &*b.handle.typed().shared_raw() };
    shared.request_finished();
    let result = check(status, b.op);
    // SAFETY: the callback is taken once, here; the field is not used again.
    let cb = unsafe { ManuallyDrop::take(&mut b.cb) };
    let handle = &b.handle;
    shared.guard(|| cb(handle, result));
    // Dropping releases the handle reference (which may close an unreachable handle)
    // and the data; user Drop code may run.
    shared.guard(move || drop(b));
}
