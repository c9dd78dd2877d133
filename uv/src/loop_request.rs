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
use std::ffi::c_int;
use std::mem::{ManuallyDrop, MaybeUninit};
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

/// Adds what a request's data says about its error (the path it failed on).
pub type Context<D> = fn(&D, Error) -> Error;

/// No context: the error as it is.
pub fn no_context<D>(_: &D, e: Error) -> Error {
    e
}

/// A request in flight, from a generated asynchronous function: `cancel` asks
/// libuv to drop it before it starts (its callback then gets `ECANCELED`).
/// Dropping this value does not cancel anything; the callback runs either way.
#[derive(Clone, Debug)]
pub struct Request {
    /// The loop's table of requests in flight, and this request's entry in it.
    table: Rc<RequestTable>,
    slot: Slot,
}

/// An entry of a [`RequestTable`]: its index and the generation it had when the
/// request took it.
///
/// Aligned as one word, so that it moves as one (a `Request` is returned through
/// a `Result` on every start).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Slot {
    index: u32,
    generation: u32,
}

/// A slot no request has (a request that failed to start, or a test of one).
pub(crate) const NO_SLOT: Slot = Slot {
    index: u32::MAX,
    generation: 0,
};

/// The requests of one loop that are in flight, for the [`Request`] values that
/// name them: an entry holds the libuv request until its callback runs. A finished
/// request's entry is reused by a later one with the next generation, so an old
/// `Request` never reaches a new request. One table per loop (a `Request` is an
/// index into it, not an allocation of its own).
///
/// The table is only touched by its own short methods, which run no other code
/// while they hold the entries (no user code, no libuv call), and it is not `Sync`
/// (it lives in an `Rc`): a plain cell is enough, without a borrow flag.
#[derive(Debug, Default)]
pub(crate) struct RequestTable {
    inner: std::cell::UnsafeCell<TableInner>,
}

#[derive(Debug)]
struct TableInner {
    entries: Vec<Entry>,
    /// The first free entry (`u32::MAX`: none).
    free: u32,
}

/// One entry: the request in flight (null when free), its generation, and the
/// next free entry while it is free (`u32::MAX` ends the list).
#[derive(Debug, Clone, Copy)]
struct Entry {
    req: *mut sys::uv_req_t,
    generation: u32,
    next: u32,
}

impl Default for TableInner {
    fn default() -> Self {
        TableInner {
            entries: Vec::new(),
            free: u32::MAX,
        }
    }
}

impl RequestTable {
    /// The entries, for one method's body.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    fn inner(&self) -> &mut TableInner {
        // SAFETY: single-threaded (`!Sync`), and each method below uses this
        // reference only within its own body, calling nothing that could reach the
        // table again meanwhile: no two references to the entries are ever live.
        unsafe { &mut *self.inner.get() }
    }

    /// An entry for `req`, which libuv now holds.
    #[inline]
    pub(crate) fn add(&self, req: *mut sys::uv_req_t) -> Slot {
        let t = self.inner();
        let i = t.free;
        if let Some(e) = t.entries.get_mut(i as usize) {
            t.free = e.next;
            e.req = req;
            e.generation = e.generation.wrapping_add(1);
            return Slot {
                index: i,
                generation: e.generation,
            };
        }
        self.push(req)
    }

    #[cold]
    fn push(&self, req: *mut sys::uv_req_t) -> Slot {
        let t = self.inner();
        let i = u32::try_from(t.entries.len())
            .ok()
            .filter(|&i| i != u32::MAX)
            .expect("fewer than 2^32 - 1 requests in flight");
        t.entries.push(Entry {
            req,
            generation: 0,
            next: u32::MAX,
        });
        Slot {
            index: i,
            generation: 0,
        }
    }

    /// The request of `slot` finished: its entry is free again.
    #[inline]
    pub(crate) fn finish(&self, slot: Slot) {
        let Slot {
            index: i,
            generation,
        } = slot;
        let t = self.inner();
        if let Some(e) = t.entries.get_mut(i as usize) {
            if e.generation == generation && !e.req.is_null() {
                e.req = std::ptr::null_mut();
                e.next = t.free;
                t.free = i;
            }
        }
    }

    /// The request of `slot` finished, called by that request's own completion
    /// (which took the slot from `add` and is its only finisher): its entry is free
    /// again. Without the checks of [`finish`](Self::finish), which a slot that
    /// is not live would need (they are debug assertions here); such a slot would
    /// only mislink the free list (no memory is reached through it: the entries
    /// are plain data, and a cleared entry is never used as a request).
    #[inline(always)]
    pub(crate) fn finish_own(&self, slot: Slot) {
        let Slot {
            index: i,
            generation,
        } = slot;
        let t = self.inner();
        let free = t.free;
        if let Some(e) = t.entries.get_mut(i as usize) {
            debug_assert!(e.generation == generation && !e.req.is_null());
            e.req = std::ptr::null_mut();
            e.next = free;
            t.free = i;
        }
    }

    /// The libuv request of `slot` while it is in flight (null after).
    fn get(&self, slot: Slot) -> *mut sys::uv_req_t {
        let Slot {
            index: i,
            generation,
        } = slot;
        match self.inner().entries.get(i as usize) {
            Some(e) if e.generation == generation => e.req,
            _ => std::ptr::null_mut(),
        }
    }
}

impl Request {
    /// The request of `slot` in `table`.
    #[inline(always)]
    pub(crate) fn new(table: Rc<RequestTable>, slot: Slot) -> Request {
        Request { table, slot }
    }

    /// Whether the callback has not run yet.
    pub fn is_pending(&self) -> bool {
        !self.table.get(self.slot).is_null()
    }

    /// Cancels the request (`uv_cancel`): `EBUSY` when a thread is already on it,
    /// `EINVAL` when it is done. A cancelled request's callback gets `ECANCELED`
    /// (`EAI_CANCELED` for a DNS query).
    pub fn cancel(&self) -> Result<()> {
        let p = self.table.get(self.slot);
        if p.is_null() {
            return Err(Error::new(StatusCode::EINVAL, "uv_cancel"));
        }
        // SAFETY: an entry is cleared before the request's memory is freed, so a
        // non-null one is a request libuv still holds.
        check(unsafe { sys::uv_cancel(p) }, "uv_cancel")
    }
}

#[repr(C)]
struct LoopReq<R, D, F, C> {
    raw: R,
    shared: *const LoopShared,
    op: &'static str,
    slot: Slot,
    context: Context<D>,
    /// Taken once, by `done` (or dropped when the request does not start).
    read: ManuallyDrop<F>,
    /// Kept until after the cleanup: libuv may read it while the request runs, and
    /// the cleanup may still reach into it (a directory's entry array).
    data: D,
    /// Taken once, as `read`.
    cb: ManuallyDrop<C>,
}

/// Starts a request on the loop: `data` builds the request's data in place (it
/// writes the slot and returns it, or gives the error of a conversion, and then
/// nothing starts), `start` gets the loop, the request struct, the data (which stays
/// put until completion) and the completion callback to pass to C. On completion `read` gives the result from the request and the data (a read
/// buffer moves out of it), `K::cleanup` runs, the data is dropped, then `callback`
/// runs.
///
/// `read` is only given a completed request of type `K` (generated readers wrap
/// the unsafe readers of [`fs_results`]). `context` adds what the data says about
/// an error (the path a file-system call failed on), on the error path only.
///
/// `start` must call the libuv function that starts the request (and nothing that
/// reads the request struct before it): the struct is handed to it uninitialised,
/// as C callers' requests are, and libuv's start functions initialise it (the
/// `INIT` of every `uv_fs_*` in libuv's `fs.c`, `uv__req_init` for the others)
/// before anything reads it. Only its `data` field is set here.
#[inline]
pub fn submit<K, T, D, F, C>(
    loop_: &LoopHandle,
    op: &'static str,
    read: F,
    context: Context<D>,
    data: impl for<'a> FnOnce(&'a mut MaybeUninit<D>) -> Result<&'a mut D>,
    callback: C,
    start: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw, &D, Done<K::Raw>) -> c_int,
) -> Result<Request>
where
    K: LoopRequestKind,
    T: 'static,
    D: 'static,
    F: FnOnce(*mut K::Raw, &mut D, &'static str) -> Result<T> + 'static,
    C: FnOnce(Result<T>) + 'static,
{
    let shared: &LoopShared = loop_.shared();
    let Some(l) = shared.raw_for_new() else {
        return Err(Error::closed_loop(op));
    };
    // One allocation from the loop's slab, written in place (no copy of the request
    // struct), freed by `done`.
    let layout = Layout::new::<LoopReq<K::Raw, D, F, C>>();
    let slab = shared.slab();
    // SAFETY: the loop is open, so its slab is alive.
    let p = unsafe { slab.as_ref() }
        .alloc(layout)
        .cast::<LoopReq<K::Raw, D, F, C>>()
        .as_ptr();
    // The data first, built where it stays (a path's C string is not moved from
    // temporary to temporary): if that fails, the memory goes back and nothing
    // else was written.
    // SAFETY: `p` is fresh memory for a LoopReq, and `data` a field of it.
    let data_slot = unsafe { &mut *std::ptr::addr_of_mut!((*p).data).cast::<MaybeUninit<D>>() };
    let data_at: *const D = data_slot.as_ptr();
    match data(data_slot) {
        // The value `data` wrote in the slot (not one from elsewhere).
        Ok(d) if std::ptr::eq(d, data_at) => {}
        other => {
            // SAFETY: from this slab's `alloc` of this layout; nothing refers to it.
            unsafe { Slab::free(slab, NonNull::new_unchecked(p.cast()), layout) };
            return Err(match other {
                Err(e) => e,
                Ok(_) => Error::new(StatusCode::EINVAL, op),
            });
        }
    }
    // SAFETY: `p` is fresh memory for a LoopReq; every field but the request struct
    // is written before use (the data just above), the request struct is
    // initialised by the libuv call in `start` (this function's contract) but for
    // `data`, written here; the request and the data stay put until `done` frees
    // them.
    let rc = unsafe {
        let raw = std::ptr::addr_of_mut!((*p).raw);
        std::ptr::addr_of_mut!((*p).shared).write(shared);
        std::ptr::addr_of_mut!((*p).op).write(op);
        std::ptr::addr_of_mut!((*p).slot).write(NO_SLOT);
        std::ptr::addr_of_mut!((*p).context).write(context);
        std::ptr::addr_of_mut!((*p).read).write(ManuallyDrop::new(read));
        std::ptr::addr_of_mut!((*p).cb).write(ManuallyDrop::new(callback));
        (*raw.cast::<sys::uv_req_t>()).data = p.cast();
        start(l, raw, &(*p).data, Some(done::<K, T, D, F, C>))
    };
    if rc < 0 {
        // SAFETY: libuv did not take the request; nothing else refers to it.
        return Err(unsafe { refused(slab, p, rc, op) });
    }
    let table = shared.request_table();
    // SAFETY: started: the request is libuv's until `done` (which libuv never calls
    // before this function returns), which finishes its entry and reads the slot.
    let slot = unsafe {
        let slot = table.add(std::ptr::addr_of_mut!((*p).raw).cast());
        (*p).slot = slot;
        slot
    };
    shared.request_started();
    Ok(Request::new(table.clone(), slot))
}

/// A request libuv refused: its error (with the data's context), the reader, data
/// and callback dropped here, outside any C frame, and the memory given back.
///
/// # Safety
/// `p` is a LoopReq of `slab` with every field but the request struct written, that
/// libuv did not take; nothing else refers to it.
#[cold]
#[inline(never)]
unsafe fn refused<R, D, F, C>(
    slab: NonNull<Slab>,
    p: *mut LoopReq<R, D, F, C>,
    rc: c_int,
    op: &'static str,
) -> Error {
    // SAFETY: the caller's contract.
    let err = unsafe { ((*p).context)(&(*p).data, Error::from_raw(rc, op)) };
    // User Drop code may panic: the memory goes back first, then the panic
    // goes on to the caller (no C frame is in between).
    // SAFETY: as above; every field but the request struct (plain C data, no
    // drop) was written and is dropped once.
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        let _read = ManuallyDrop::take(&mut (*p).read);
        let _cb = ManuallyDrop::take(&mut (*p).cb);
        std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).data));
    }));
    // SAFETY: from this slab's `alloc` of this layout; nothing refers to it now.
    unsafe {
        Slab::free(
            slab,
            NonNull::new_unchecked(p.cast()),
            Layout::new::<LoopReq<R, D, F, C>>(),
        )
    };
    if let Err(payload) = dropped {
        std::panic::resume_unwind(payload);
    }
    err
}

unsafe extern "C" fn done<K, T, D, F, C>(req: *mut K::Raw)
where
    K: LoopRequestKind,
    F: FnOnce(*mut K::Raw, &mut D, &'static str) -> Result<T>,
    C: FnOnce(Result<T>),
{
    // SAFETY: `data` is the allocation made by `submit`, handed back once.
    let p = unsafe { (*req.cast::<sys::uv_req_t>()).data as *mut LoopReq<K::Raw, D, F, C> };
    // SAFETY: the loop runs this callback, so its owner keeps the shared state (and
    // its slab) alive; the fields are used in place until the memory is freed below,
    // and the reader is taken once (libuv completes a request once).
    let (shared, read, op, context, slot) = unsafe {
        (
            &*(*p).shared,
            ManuallyDrop::take(&mut (*p).read),
            (*p).op,
            (*p).context,
            (*p).slot,
        )
    };
    // The entry `submit` took for this request (set before libuv could call this).
    shared.request_table().finish_own(slot);
    shared.request_finished();
    // A panicking reader (none panics; user types may be in the data) becomes an
    // error, and the cleanup still runs. The result is written where it stays until
    // the callback gets it (a `Stat` is not copied from one temporary to the next).
    let mut result = MaybeUninit::<Result<T>>::uninit();
    let read_ok = shared
        .guard(|| {
            // SAFETY: the data stays in place, and nothing else reaches it, until it
            // is dropped below.
            let data = unsafe { &mut (*p).data };
            result.write(read(req, data, op));
        })
        .is_some();
    if !read_ok {
        result.write(Err(Error::new(StatusCode::EINVAL, op)));
    }
    // SAFETY: written just above, on both paths.
    if unsafe { result.assume_init_ref() }.is_err() {
        // The error is moved out and back (a reference to the result, given to a
        // function that is not inlined, would make every store to it live: a
        // callback that reads one field of a `Stat` would still have it all
        // written).
        // SAFETY: as above (read once, written back at once); the context
        // function only reads the data.
        unsafe {
            let moved = match result.assume_init_read() {
                Err(e) => Err(with_context(e, &(*p).data, context, op)),
                ok => ok,
            };
            result.write(moved);
        }
    }
    // SAFETY: the request completed and was read; cleaned up once, while the data
    // it may point into is still here.
    unsafe { K::cleanup(req) };
    // The data goes before the callback, so that it finds the file it used free
    // again (to close it). It is dropped in place (its Drop code may run, under the
    // guard: a panic there does not stop the rest), then the memory goes back.
    if std::mem::needs_drop::<D>() {
        // SAFETY: dropped once; nothing reads the data afterwards.
        shared.guard(|| unsafe { std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).data)) });
    }
    // SAFETY: the callback is moved out once (the reader is already taken, the data
    // dropped), then the memory goes back to the slab.
    let cb = unsafe {
        let cb = ManuallyDrop::into_inner(std::ptr::addr_of!((*p).cb).read());
        Slab::free(
            shared.slab(),
            NonNull::new_unchecked(p.cast()),
            Layout::new::<LoopReq<K::Raw, D, F, C>>(),
        );
        cb
    };
    // The callback reads the result where it is (capturing it would copy it).
    let result = result.as_mut_ptr();
    // SAFETY: initialised above; moved out once, here.
    shared.guard(move || cb(unsafe { result.read() }));
}

/// An error with the data's context.
#[cold]
#[inline(never)]
fn with_context<D>(e: Error, data: &D, context: Context<D>, op: &'static str) -> Error {
    let mut e = e;
    add_context(&mut e, data, context, op);
    e
}

/// Runs a request synchronously (no C callback): `start` gets the loop, a request
/// on the stack and the data; the result is read (from the request and the data),
/// and the request cleaned up, before returning; the data is dropped last.
///
/// As for [`submit`], `start` must call the libuv function that starts the request:
/// the struct is handed to it uninitialised, and libuv's start function initialises
/// it (the `uv_fs_*` functions do before any check that fails, so the cleanup
/// always finds an initialised request).
#[inline(always)]
pub fn run_sync<K, T, D, F>(
    loop_: &LoopHandle,
    op: &'static str,
    read: F,
    context: Context<D>,
    mut data: D,
    start: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw, &D) -> c_int,
) -> Result<T>
where
    K: LoopRequestKind,
    F: FnOnce(*mut K::Raw, &mut D, &'static str) -> Result<T>,
{
    let Some(l) = loop_.shared().raw_for_new() else {
        return Err(Error::closed_loop(op));
    };
    let mut req = MaybeUninit::<K::Raw>::uninit();
    let raw = req.as_mut_ptr();
    let rc = start(l, raw, &data);
    if rc < 0 {
        // SAFETY: as below: libuv's start function initialised the request.
        return Err(unsafe { sync_refused::<K, D>(raw, data, context, rc, op) });
    }
    // The call completed the request.
    let result = read(raw, &mut data, op);
    // SAFETY: initialised by libuv's start function and completed synchronously;
    // cleaned up once, before the data it may point into is dropped.
    unsafe { K::cleanup(raw) };
    // The value is moved into a new `Ok` (not the `Result` returned as it is):
    // built this way, once inlined into a caller that reads part of a `Stat`, the
    // rest of it is never copied out of the request.
    match result {
        Err(e) => Err(sync_failed(e, data, context, op)),
        Ok(v) => {
            drop(data);
            Ok(v)
        }
    }
}

/// A synchronous request libuv's start function failed: cleaned up, with the data's
/// context.
///
/// # Safety
/// `raw` is a request libuv's start function initialised (and failed).
#[cold]
#[inline(never)]
unsafe fn sync_refused<K: LoopRequestKind, D>(
    raw: *mut K::Raw,
    data: D,
    context: Context<D>,
    rc: c_int,
    op: &'static str,
) -> Error {
    // SAFETY: the caller's contract; cleaned up once, before the data is dropped.
    unsafe { K::cleanup(raw) };
    sync_failed(Error::from_raw(rc, op), data, context, op)
}

/// The error of a synchronous request, with the data's context; the data is dropped
/// after.
#[cold]
#[inline(never)]
fn sync_failed<D>(e: Error, data: D, context: Context<D>, op: &'static str) -> Error {
    let mut e = e;
    add_context(&mut e, &data, context, op);
    drop(data);
    e
}

#[cold]
#[inline(never)]
fn add_context<D>(e: &mut Error, data: &D, context: Context<D>, op: &'static str) {
    let bare = std::mem::replace(e, Error::new(StatusCode::EINVAL, op));
    *e = context(data, bare);
}

/// The readers of `uv_fs_t` results (`result = "…"` in `spec/requests/fs.toml`).
pub mod fs_results {
    use super::*;

    /// The request's result (`ssize_t`): negative is a libuv error code.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t` (its `result` set; other fields may be
    /// uninitialised, so only this one is read).
    #[inline(always)]
    unsafe fn status(req: *const sys::uv_fs_t, op: &'static str) -> Result<isize> {
        // SAFETY: the caller's contract.
        let r: isize = unsafe { std::ptr::addr_of!((*req).result).read() };
        if r < 0 {
            Err(status_error(r, op))
        } else {
            Ok(r)
        }
    }

    #[cold]
    #[inline(never)]
    fn status_error(r: isize, op: &'static str) -> Error {
        // A libuv error code fits an `int`.
        Error::from_raw(i32::try_from(r).unwrap_or(i32::MIN), op)
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
    #[inline]
    pub unsafe fn unit(req: *mut sys::uv_fs_t, op: &'static str) -> Result<()> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }.map(drop)
    }

    /// The result as a count.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t`.
    pub unsafe fn count(req: *mut sys::uv_fs_t, op: &'static str) -> Result<usize> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }.map(|n| n as usize)
    }

    /// The stat the request filled in.
    ///
    /// # Safety
    /// `req` is a completed stat-like `uv_fs_t`.
    #[inline(always)]
    pub unsafe fn stat(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::Stat> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }?;
        // SAFETY: a successful stat-like request filled in the whole `statbuf`.
        Ok(crate::Stat::from_raw(unsafe {
            &*std::ptr::addr_of!((*req).statbuf)
        }))
    }

    /// The request's path (what `mkdtemp` made of its template).
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t`.
    pub unsafe fn path(req: *mut sys::uv_fs_t, op: &'static str) -> Result<PathBuf> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }?;
        // SAFETY: as above (libuv's start function set `path`).
        Ok(c_path(unsafe { (*req).path }))
    }

    /// The path the request's `ptr` holds (`realpath`, `readlink`).
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_t` whose `ptr` is a C string or NULL.
    pub unsafe fn ptr_path(req: *mut sys::uv_fs_t, op: &'static str) -> Result<PathBuf> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }?;
        // SAFETY: as above (libuv's start function set `ptr`).
        Ok(c_path(unsafe { (*req).ptr } as *const std::ffi::c_char))
    }

    /// The descriptor the request opened, as an owned [`crate::File`].
    ///
    /// # Safety
    /// `req` is a completed open-like `uv_fs_t` (its result is a new descriptor).
    pub unsafe fn file(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::File> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }.map(|fd| {
            // SAFETY: a successful open gives a new descriptor that nothing owns.
            unsafe { crate::File::from_raw(fd as crate::RawFd) }
        })
    }

    /// The file `mkstemp` made, and its path.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_mkstemp` request.
    pub unsafe fn file_path(
        req: *mut sys::uv_fs_t,
        op: &'static str,
    ) -> Result<(crate::File, PathBuf)> {
        // SAFETY: the caller's contract.
        let f = unsafe { file(req, op) }?;
        // SAFETY: as above.
        Ok((f, c_path(unsafe { (*req).path })))
    }

    /// The bytes a read gave, appended to its buffer.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_read` request into `buf`.
    pub unsafe fn bytes(
        req: *mut sys::uv_fs_t,
        buf: &mut crate::file::ReadBuf,
        op: &'static str,
    ) -> Result<Vec<u8>> {
        // SAFETY: the caller's contract.
        let n = unsafe { status(req, op) }?;
        // SAFETY: libuv read `n` bytes into the buffer.
        Ok(unsafe { buf.take(n as usize) })
    }

    /// The file system statistics in the request's `ptr`.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_statfs` request.
    pub unsafe fn statfs(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::StatFs> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }?;
        // SAFETY: as above (libuv's start function set `ptr`).
        let p = unsafe { (*req).ptr } as *const sys::uv_statfs_t;
        if p.is_null() {
            return Err(Error::new(StatusCode::EINVAL, op));
        }
        // SAFETY: a successful statfs points `ptr` to a filled-in struct.
        Ok(crate::StatFs::from_raw(unsafe { &*p }))
    }

    /// The entries a scandir listed (`uv_fs_scandir_next` until `UV_EOF`).
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_scandir` request, not cleaned up.
    pub unsafe fn dirents(
        req: *mut sys::uv_fs_t,
        op: &'static str,
    ) -> Result<Vec<crate::DirEntry>> {
        // SAFETY: the caller's contract.
        let n = unsafe { status(req, op) }?;
        let mut out = Vec::with_capacity(n as usize);
        loop {
            let mut ent = sys::uv_dirent_t {
                name: std::ptr::null(),
                type_: 0,
            };
            // SAFETY: a completed scandir; the entry's name lives until cleanup.
            let rc = unsafe { sys::uv_fs_scandir_next(req, &mut ent) };
            if rc == sys::uv_errno_t_UV_EOF {
                break;
            }
            if rc < 0 {
                return Err(Error::from_raw(rc, "uv_fs_scandir_next"));
            }
            // SAFETY: libuv's entry, valid until cleanup.
            out.push(unsafe { crate::DirEntry::from_raw(&ent) });
        }
        Ok(out)
    }

    /// The directory stream opendir gave, as an owned [`crate::Dir`].
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_opendir` request.
    pub unsafe fn dir(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::Dir> {
        // SAFETY: the caller's contract.
        unsafe { status(req, op) }?;
        // SAFETY: as above (libuv's start function set `ptr`).
        let p = unsafe { (*req).ptr } as *mut sys::uv_dir_t;
        if p.is_null() {
            return Err(Error::new(StatusCode::EINVAL, op));
        }
        // SAFETY: a successful opendir gives a stream nothing else owns (the
        // cleanup of an opendir request leaves it alone).
        Ok(unsafe { crate::Dir::from_raw(p) })
    }

    /// The entries a readdir gave (empty at the end of the directory).
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_readdir` request of `dir`, not cleaned up.
    pub unsafe fn dir_entries(
        req: *mut sys::uv_fs_t,
        dir: &mut crate::file::DirUse,
        op: &'static str,
    ) -> Result<Vec<crate::DirEntry>> {
        // SAFETY: the caller's contract.
        let n = unsafe { status(req, op) }?;
        // SAFETY: `n` entries were filled in; their names live until cleanup.
        Ok(unsafe { dir.entries(n as usize) })
    }
}

// ---------------------------------------------------------------------------
// Added for thread-pool work (uv/src/work.rs): the request type of a pending request.
impl Request {
    /// The libuv type of the request while it is pending (`uv_req_get_type`):
    /// `Work`, `Random`, `Fs`, `Getaddrinfo`, ...; `None` once its callback ran.
    pub fn request_type(&self) -> Option<crate::RequestType> {
        let p = self.table.get(self.slot);
        // SAFETY: a non-null pointer is a request libuv still holds (see `cancel`).
        (!p.is_null())
            .then(|| crate::RequestType::from_raw(unsafe { sys::uv_req_get_type(p) } as i32))
    }
}
