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
pub(crate) type Slot = (u32, u32);

/// A slot no request has (a request that failed to start, or a test of one).
pub(crate) const NO_SLOT: Slot = (u32::MAX, 0);

/// The requests of one loop that are in flight, for the [`Request`] values that
/// name them: an entry holds the libuv request until its callback runs. A finished
/// request's entry is reused by a later one with the next generation, so an old
/// `Request` never reaches a new request. One table per loop (a `Request` is an
/// index into it, not an allocation of its own).
#[derive(Debug, Default)]
pub(crate) struct RequestTable {
    inner: std::cell::RefCell<TableInner>,
}

#[derive(Debug)]
struct TableInner {
    /// Per entry: the request in flight (null when free) and its generation.
    entries: Vec<(*mut sys::uv_req_t, u32)>,
    /// The free entries, as a list through `next` (`u32::MAX` ends it).
    next: Vec<u32>,
    /// The first free entry (`u32::MAX`: none).
    free: u32,
}

impl Default for TableInner {
    fn default() -> Self {
        TableInner {
            entries: Vec::new(),
            next: Vec::new(),
            free: u32::MAX,
        }
    }
}

impl RequestTable {
    /// An entry for `req`, which libuv now holds.
    pub(crate) fn add(&self, req: *mut sys::uv_req_t) -> Slot {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        let i = t.free;
        if let (Some(e), Some(&n)) = (t.entries.get_mut(i as usize), t.next.get(i as usize)) {
            t.free = n;
            e.0 = req;
            e.1 = e.1.wrapping_add(1);
            return (i, e.1);
        }
        let i = u32::try_from(t.entries.len()).expect("fewer than 2^32 requests in flight");
        t.entries.push((req, 0));
        t.next.push(u32::MAX);
        (i, 0)
    }

    /// The request of `slot` finished: its entry is free again.
    pub(crate) fn finish(&self, (i, generation): Slot) {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        if let Some(e) = t.entries.get_mut(i as usize) {
            if e.1 == generation && !e.0.is_null() {
                e.0 = std::ptr::null_mut();
                t.next[i as usize] = t.free;
                t.free = i;
            }
        }
    }

    /// The libuv request of `slot` while it is in flight (null after).
    fn get(&self, (i, generation): Slot) -> *mut sys::uv_req_t {
        match self.inner.borrow().entries.get(i as usize) {
            Some(&(req, g)) if g == generation => req,
            _ => std::ptr::null_mut(),
        }
    }
}

impl Request {
    /// The request of `slot` in `table`.
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
    op: &'static str,
    shared: *const LoopShared,
    slot: Slot,
    read: Option<F>,
    context: Context<D>,
    /// Kept until after the cleanup: libuv may read it while the request runs, and
    /// the cleanup may still reach into it (a directory's entry array).
    data: D,
    cb: Option<C>,
}

/// Starts a request on the loop: `start` gets the loop, the request struct, the
/// data (which stays put until completion) and the completion callback to pass to
/// C. On completion `read` gives the result from the request and the data (a read
/// buffer moves out of it), `K::cleanup` runs, the data is dropped, then `callback`
/// runs.
///
/// `read` is only given a completed request of type `K` (generated readers wrap
/// the unsafe readers of [`fs_results`]). `context` adds what the data says about
/// an error (the path a file-system call failed on), on the error path only.
pub fn submit<K, T, D, F, C>(
    loop_: &LoopHandle,
    op: &'static str,
    read: F,
    context: Context<D>,
    data: D,
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
    let l = shared.raw_for_new().ok_or(Error::closed_loop(op))?;
    // One allocation from the loop's slab, written in place (no copy of the request
    // struct), freed by `done`.
    let layout = Layout::new::<LoopReq<K::Raw, D, F, C>>();
    let slab = shared.slab();
    // SAFETY: the loop is open, so its slab is alive.
    let p = unsafe { slab.as_ref() }
        .alloc(layout)
        .cast::<LoopReq<K::Raw, D, F, C>>()
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
        std::ptr::addr_of_mut!((*p).slot).write(NO_SLOT);
        std::ptr::addr_of_mut!((*p).read).write(Some(read));
        std::ptr::addr_of_mut!((*p).context).write(context);
        std::ptr::addr_of_mut!((*p).data).write(data);
        std::ptr::addr_of_mut!((*p).cb).write(Some(callback));
        (*raw.cast::<sys::uv_req_t>()).data = p.cast();
        start(l, raw, &(*p).data, Some(done::<K, T, D, F, C>))
    };
    if rc < 0 {
        // SAFETY: libuv did not take the request; nothing else refers to it. The
        // callback and the data are dropped here, outside any C frame.
        let err = unsafe { ((*p).context)(&(*p).data, Error::from_raw(rc, op)) };
        // User Drop code may panic: the memory goes back first, then the panic
        // goes on to the caller (no C frame is in between).
        // SAFETY: as above; every field was written and is dropped once.
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            std::ptr::drop_in_place(p)
        }));
        // SAFETY: from this slab's `alloc(layout)` above; nothing refers to it now.
        unsafe { Slab::free(slab, NonNull::new_unchecked(p.cast()), layout) };
        if let Err(payload) = dropped {
            std::panic::resume_unwind(payload);
        }
        return Err(err);
    }
    // SAFETY: started: the request is libuv's until `done` (which libuv never calls
    // before this function returns), which finishes its entry.
    let slot = shared
        .request_table()
        .add(unsafe { std::ptr::addr_of_mut!((*p).raw) }.cast());
    // SAFETY: as above; `done` reads the slot.
    unsafe { (*p).slot = slot };
    shared.request_started();
    Ok(Request::new(shared.request_table().clone(), slot))
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
    // its slab) alive; the fields are used in place until the memory is freed below.
    let (shared, read, op, context, slot) = unsafe {
        (
            &*(*p).shared,
            (*p).read.take(),
            (*p).op,
            (*p).context,
            (*p).slot,
        )
    };
    shared.request_table().finish(slot);
    shared.request_finished();
    let read = read.expect("a request completes once");
    // A panicking reader (none panics; user types may be in the data) becomes an
    // error, and the cleanup still runs.
    let result = shared
        .guard(|| {
            // SAFETY: the data stays in place, and nothing else reaches it, until it
            // is moved out below.
            let data = unsafe { &mut (*p).data };
            read(req, data, op)
        })
        .unwrap_or_else(|| Err(Error::new(StatusCode::EINVAL, op)))
        .map_err(|e| {
            // SAFETY: as above; the context function only reads the data.
            let data = unsafe { &(*p).data };
            context(data, e)
        });
    // SAFETY: the request completed and was read; cleaned up once, while the data
    // it may point into is still here.
    unsafe { K::cleanup(req) };
    // SAFETY: the fields left are moved out once (`read` is already `None`), then
    // the memory goes back to the slab.
    let (data, cb) = unsafe {
        let parts = (
            std::ptr::addr_of!((*p).data).read(),
            std::ptr::addr_of!((*p).cb).read(),
        );
        Slab::free(
            shared.slab(),
            NonNull::new_unchecked(p.cast()),
            Layout::new::<LoopReq<K::Raw, D, F, C>>(),
        );
        parts
    };
    // The kept values go before the callback, so that it finds the file it used
    // free again (to close it). Drop code of the data may run.
    shared.guard(move || drop(data));
    if let Some(cb) = cb {
        shared.guard(|| cb(result));
    }
}

/// Runs a request synchronously (no C callback): `start` gets the loop, a request
/// on the stack and the data; the result is read (from the request and the data),
/// and the request cleaned up, before returning; the data is dropped last.
#[inline]
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
    let l = loop_.shared().raw_for_new().ok_or(Error::closed_loop(op))?;
    // SAFETY: plain C data; all-zero is a valid unstarted request.
    let mut req: K::Raw = unsafe { std::mem::zeroed() };
    let rc = start(l, &mut req, &data);
    let mut result = if rc < 0 {
        Err(Error::from_raw(rc, op))
    } else {
        // The call completed the request.
        read(&mut req, &mut data, op)
    };
    // SAFETY: completed (or failed) synchronously; cleaned up once, before the data
    // it may point into is dropped.
    unsafe { K::cleanup(&mut req) };
    // In place: a value (a whole `Stat`) is not moved through a `map_err`.
    if let Err(e) = &mut result {
        let bare = std::mem::replace(e, Error::new(StatusCode::EINVAL, op));
        *e = context(&data, bare);
    }
    drop(data);
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
    #[inline]
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

    /// The descriptor the request opened, as an owned [`crate::File`].
    ///
    /// # Safety
    /// `req` is a completed open-like `uv_fs_t` (its result is a new descriptor).
    pub unsafe fn file(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::File> {
        // SAFETY: the caller's contract.
        let r = unsafe { &*req };
        status(r, op).map(|fd| {
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
        Ok((f, c_path(unsafe { &*req }.path)))
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
        let n = status(unsafe { &*req }, op)?;
        // SAFETY: libuv read `n` bytes into the buffer.
        Ok(unsafe { buf.take(n as usize) })
    }

    /// The file system statistics in the request's `ptr`.
    ///
    /// # Safety
    /// `req` is a completed `uv_fs_statfs` request.
    pub unsafe fn statfs(req: *mut sys::uv_fs_t, op: &'static str) -> Result<crate::StatFs> {
        // SAFETY: the caller's contract.
        let r = unsafe { &*req };
        status(r, op)?;
        let p = r.ptr as *const sys::uv_statfs_t;
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
        let n = status(unsafe { &*req }, op)?;
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
        let r = unsafe { &*req };
        status(r, op)?;
        let p = r.ptr as *mut sys::uv_dir_t;
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
        let n = status(unsafe { &*req }, op)?;
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
