//! Requests that belong to the loop rather than to a handle (file-system operations
//! and the like), started by generated functions of request spec files
//! (`spec/requests/*.toml`): the generic core those functions call.
//!
//! Asynchronously, one allocation holds the libuv request, the data it points to
//! (converted arguments), the reader that turns the completed request into the
//! result, and the callback; the completion trampoline reads the result, runs the
//! request type's cleanup, runs the callback under the loop's panic guard and frees
//! everything. The loop counts the request as alive until then. Synchronously (no
//! C callback), the request lives on the stack for the call.

use std::alloc::Layout;
use std::cell::Cell;
use std::ffi::c_int;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::rc::Rc;

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::{LoopHandle, LoopShared, Slab};
use crate::StatusCode;

/// A request type whose functions take the loop (implemented by generated code).
///
/// # Safety
/// `Raw` must be the libuv request struct (starting with the `uv_req_t` fields), and
/// `cleanup` must be safe to call once on a request that completed (or was run
/// synchronously), whatever its result.
pub unsafe trait LoopRequestKind: 'static {
    /// The libuv struct (`uv_fs_t`).
    type Raw: 'static;
    /// Rust name, for messages.
    const NAME: &'static str;
    /// Frees what libuv allocated in a completed request (`uv_fs_req_cleanup`).
    ///
    /// # Safety
    /// `raw` is a completed request of this type, cleaned up once.
    unsafe fn cleanup(raw: *mut Self::Raw);
}

/// Reads a completed request's result: `op` names the operation in errors.
///
/// A reader is called once, before the request's cleanup, with the request as
/// libuv completed it.
pub type Reader<R, T> = unsafe fn(*mut R, &'static str) -> Result<T>;

/// The C completion callback of a request whose result is in the request
/// (`uv_fs_cb`).
pub type Done<R> = Option<unsafe extern "C" fn(*mut R)>;

/// A request in flight, from a generated asynchronous function: `cancel` asks
/// libuv to drop it before it starts (its callback then gets `ECANCELED`).
/// Dropping this value does not cancel anything; the callback runs either way.
#[derive(Clone, Debug)]
pub struct Request {
    /// The libuv request while it is in flight; null once its callback ran.
    pending: Rc<Cell<*mut sys::uv_req_t>>,
}

impl Request {
    /// A request whose libuv struct `pending` points to while it is in flight.
    pub(crate) fn from_pending(pending: Rc<Cell<*mut sys::uv_req_t>>) -> Request {
        Request { pending }
    }

    /// Whether the callback has not run yet.
    pub fn is_pending(&self) -> bool {
        !self.pending.get().is_null()
    }

    /// Cancels the request (`uv_cancel`): `EBUSY` when a thread is already on it,
    /// `EINVAL` when it is done. A cancelled request's callback gets `ECANCELED`
    /// (`EAI_CANCELED` for a DNS query).
    pub fn cancel(&self) -> Result<()> {
        let p = self.pending.get();
        if p.is_null() {
            return Err(Error::new(StatusCode::EINVAL, "uv_cancel"));
        }
        // SAFETY: the pointer is cleared before the request's memory is freed, so a
        // non-null one is a request libuv still holds.
        check(unsafe { sys::uv_cancel(p) }, "uv_cancel")
    }
}

#[repr(C)]
struct LoopReq<R, T, D, C> {
    raw: R,
    op: &'static str,
    shared: *const LoopShared,
    pending: Rc<Cell<*mut sys::uv_req_t>>,
    read: Reader<R, T>,
    /// Kept until completion: libuv may read it while the request runs.
    _data: D,
    cb: Option<C>,
}

/// Starts a request on the loop: `start` gets the loop, the request struct, the
/// data (which stays put until completion) and the completion callback to pass to
/// C. On completion `read` gives the result, `K::cleanup` runs, then `callback`.
pub fn submit<K, T, D, C>(
    loop_: &LoopHandle,
    op: &'static str,
    read: Reader<K::Raw, T>,
    data: D,
    callback: C,
    start: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw, &D, Done<K::Raw>) -> c_int,
) -> Result<Request>
where
    K: LoopRequestKind,
    T: 'static,
    D: 'static,
    C: FnOnce(Result<T>) + 'static,
{
    let shared: &LoopShared = loop_.shared();
    let l = shared.raw_for_new().ok_or(Error::closed_loop(op))?;
    let pending = Rc::new(Cell::new(std::ptr::null_mut()));
    // One allocation from the loop's slab, written in place (no copy of the request
    // struct), freed by `done`.
    let layout = Layout::new::<LoopReq<K::Raw, T, D, C>>();
    let slab = shared.slab();
    // SAFETY: the loop is open, so its slab is alive.
    let p = unsafe { slab.as_ref() }
        .alloc(layout)
        .cast::<LoopReq<K::Raw, T, D, C>>()
        .as_ptr();
    // SAFETY: `p` is fresh memory for a LoopReq; every field is written before use,
    // and the request and the data stay put until `done` frees them.
    let rc = unsafe {
        let raw = std::ptr::addr_of_mut!((*p).raw);
        // libuv request structs are plain C data; all-zero is a valid (not yet
        // started) value.
        raw.write_bytes(0, 1);
        std::ptr::addr_of_mut!((*p).op).write(op);
        std::ptr::addr_of_mut!((*p).shared).write(shared);
        std::ptr::addr_of_mut!((*p).pending).write(pending.clone());
        std::ptr::addr_of_mut!((*p).read).write(read);
        std::ptr::addr_of_mut!((*p)._data).write(data);
        std::ptr::addr_of_mut!((*p).cb).write(Some(callback));
        (*raw.cast::<sys::uv_req_t>()).data = p.cast();
        start(l, raw, &(*p)._data, Some(done::<K, T, D, C>))
    };
    if rc < 0 {
        // SAFETY: libuv did not take the request; nothing else refers to it. The
        // callback and the data are dropped here, outside any C frame.
        unsafe {
            std::ptr::drop_in_place(p);
            Slab::free(slab, NonNull::new_unchecked(p.cast()), layout);
        }
        return Err(Error::from_raw(rc, op));
    }
    // SAFETY: started: the request is libuv's until `done`.
    pending.set(unsafe { std::ptr::addr_of_mut!((*p).raw) }.cast());
    shared.request_started();
    Ok(Request { pending })
}

unsafe extern "C" fn done<K, T, D, C>(req: *mut K::Raw)
where
    K: LoopRequestKind,
    C: FnOnce(Result<T>),
{
    // SAFETY: `data` is the allocation made by `submit`, handed back once.
    let p = unsafe { (*req.cast::<sys::uv_req_t>()).data as *mut LoopReq<K::Raw, T, D, C> };
    // SAFETY: the loop runs this callback, so its owner keeps the shared state (and
    // its slab) alive; the fields are read in place until the memory is freed below.
    let (shared, result) = unsafe {
        (*p).pending.set(std::ptr::null_mut());
        let shared = &*(*p).shared;
        shared.request_finished();
        // The request completed; it is read once, then cleaned up once, in place
        // (readers may look at the data beside it).
        let result = ((*p).read)(req, (*p).op);
        K::cleanup(req);
        (shared, result)
    };
    // SAFETY: the fields are moved out once, then the memory goes back to the slab.
    let (pending, data, cb) = unsafe {
        let parts = (
            std::ptr::addr_of!((*p).pending).read(),
            std::ptr::addr_of!((*p)._data).read(),
            std::ptr::addr_of!((*p).cb).read(),
        );
        Slab::free(
            shared.slab(),
            NonNull::new_unchecked(p.cast()),
            Layout::new::<LoopReq<K::Raw, T, D, C>>(),
        );
        parts
    };
    drop(pending);
    if let Some(cb) = cb {
        shared.guard(|| cb(result));
    }
    // User Drop code (in the data) may run.
    shared.guard(move || drop(data));
}

/// Runs a request synchronously (no C callback): `start` gets the loop and a request
/// on the stack; the result is read, and the request cleaned up, before returning.
pub fn run_sync<K, T>(
    loop_: &LoopHandle,
    op: &'static str,
    read: Reader<K::Raw, T>,
    start: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> c_int,
) -> Result<T>
where
    K: LoopRequestKind,
{
    let l = loop_.shared().raw_for_new().ok_or(Error::closed_loop(op))?;
    // SAFETY: plain C data; all-zero is a valid unstarted request.
    let mut req: K::Raw = unsafe { std::mem::zeroed() };
    let rc = start(l, &mut req);
    let result = if rc < 0 {
        Err(Error::from_raw(rc, op))
    } else {
        // SAFETY: the call completed the request.
        unsafe { read(&mut req, op) }
    };
    // SAFETY: completed (or failed) synchronously; cleaned up once.
    unsafe { K::cleanup(&mut req) };
    result
}

/// The readers of `uv_fs_t` results (`result = "…"` in `spec/requests/fs.toml`).
pub mod fs_results {
    use super::*;

    fn status(req: &sys::uv_fs_t, op: &'static str) -> Result<isize> {
        // `ssize_t`: negative is a libuv error code, which fits an `int`.
        let r: isize = req.result;
        if r < 0 {
            Err(Error::from_raw(i32::try_from(r).unwrap_or(i32::MIN), op))
        } else {
            Ok(r)
        }
    }

    fn c_path(p: *const std::ffi::c_char) -> PathBuf {
        if p.is_null() {
            return PathBuf::new();
        }
        // SAFETY: libuv gives a NUL-terminated string that lives until cleanup.
        let bytes = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
        #[cfg(unix)]
        return PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes));
        #[cfg(not(unix))]
        return PathBuf::from(String::from_utf8_lossy(bytes).into_owned());
    }

    /// Success or the error.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t`.
    pub unsafe fn unit(req: *mut sys::uv_fs_t, op: &'static str) -> Result<()> {
        // SAFETY: the caller's contract.
        status(unsafe { &*req }, op).map(drop)
    }

    /// The result as a count.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t`.
    pub unsafe fn count(req: *mut sys::uv_fs_t, op: &'static str) -> Result<usize> {
        // SAFETY: the caller's contract.
        status(unsafe { &*req }, op).map(|n| n as usize)
    }

    /// The stat the request filled in.
    ///
    /// # Safety
    /// `req` is a completed stat-like `uv_fs_t`.
    pub unsafe fn stat(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::Stat> {
        // SAFETY: the caller's contract.
        let r = unsafe { &*req };
        status(r, op).map(|_| crate::Stat::from_raw(&r.statbuf))
    }

    /// The request's path (what `mkdtemp` made of its template).
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t`.
    pub unsafe fn path(req: *mut sys::uv_fs_t, op: &'static str) -> Result<PathBuf> {
        // SAFETY: the caller's contract.
        let r = unsafe { &*req };
        status(r, op).map(|_| c_path(r.path))
    }

    /// The path the request's `ptr` holds (`realpath`, `readlink`).
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t` whose `ptr` is a C string or NULL.
    pub unsafe fn ptr_path(req: *mut sys::uv_fs_t, op: &'static str) -> Result<PathBuf> {
        // SAFETY: the caller's contract.
        let r = unsafe { &*req };
        status(r, op).map(|_| c_path(r.ptr as *const std::ffi::c_char))
    }
}

// ---------------------------------------------------------------------------
// Added for thread-pool work (uv/src/work.rs): the request type of a pending request.
impl Request {
    /// The libuv type of the request while it is pending (`uv_req_get_type`):
    /// `Work`, `Random`, `Fs`, `Getaddrinfo`, ...; `None` once its callback ran.
    pub fn request_type(&self) -> Option<crate::RequestType> {
        let p = self.pending.get();
        // SAFETY: a non-null pointer is a request libuv still holds (see `cancel`).
        (!p.is_null())
            .then(|| crate::RequestType::from_raw(unsafe { sys::uv_req_get_type(p) } as i32))
    }
}
