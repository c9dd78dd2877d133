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
pub struct Request {
    /// The head of the request's block; this value holds one of its counts.
    head: NonNull<ReqHead>,
}

/// The start of a request's block, which its [`Request`] values point to (an
/// allocation of its own is not needed, nor a table of the loop's requests): the
/// libuv request follows it directly (`#[repr(C)]`, at offset
/// `size_of::<ReqHead>()`).
///
/// The block is freed by whichever goes last of its completion and its `Request`
/// values. `state` holds [`IN_FLIGHT`] while libuv holds the request (cleared when
/// its completion starts, before any user code runs: from then on `cancel` does not
/// reach libuv), [`HELD`] until the completion is done with the block, and
/// [`ONE_REQUEST`] per live `Request`. A completion that is not last leaves the
/// block (its other fields moved out or dropped) and writes in `after` how the last
/// `Request` frees it; the slab counts the block as a live allocation, so it
/// outlives the loop if it must.
///
/// Only the loop thread touches the head: `Request` is neither `Send` nor `Sync`,
/// and libuv runs the completion on the loop thread.
#[repr(C)]
pub(crate) struct ReqHead {
    state: std::cell::Cell<usize>,
    /// Written by a completion that is not last (read only then).
    after: std::cell::Cell<MaybeUninit<AfterDone>>,
    /// The request's place in its loop's list of requests in flight
    /// ([`PoolRequests`]): linked once libuv took the request, unlinked when its
    /// completion starts (or when the teardown of an abandoned loop takes it).
    link: Link,
}

/// A node of a loop's list of requests in flight: both pointers null while not
/// in a list.
pub(crate) struct Link {
    prev: std::cell::Cell<*const Link>,
    next: std::cell::Cell<*const Link>,
}

impl Link {
    const fn new() -> Link {
        Link {
            prev: std::cell::Cell::new(std::ptr::null()),
            next: std::cell::Cell::new(std::ptr::null()),
        }
    }

    /// Takes the node out of its list (nothing if it is in none).
    ///
    /// # Safety
    /// The node's neighbours, if any, are alive (a list's nodes are requests libuv
    /// holds, and its head the loop's state, alive while they are); on the loop
    /// thread.
    #[inline(always)]
    unsafe fn unlink(&self) {
        let (prev, next) = (self.prev.get(), self.next.get());
        if next.is_null() {
            return;
        }
        // SAFETY: the caller's contract.
        unsafe {
            (*prev).next.set(next);
            (*next).prev.set(prev);
        }
        self.prev.set(std::ptr::null());
        self.next.set(std::ptr::null());
    }
}

/// A loop's requests that libuv completes through its thread pool (file system,
/// `queue_work`, DNS, random bytes), from the start of each (once libuv took
/// it) to the start of its completion: the teardown of a loop a forked child
/// abandons completes them itself ([`complete_orphans`]), as no thread of the
/// child runs them and no loop of the child will hand them back. A circular
/// list through the requests' heads, whose head node is this value (linked to
/// itself once used, null before).
pub(crate) struct PoolRequests {
    head: Link,
}

impl PoolRequests {
    pub(crate) const fn new() -> PoolRequests {
        PoolRequests { head: Link::new() }
    }

    /// Links `req`, a request libuv just took, at the end of the list.
    ///
    /// # Safety
    /// `self` stays at its address while the list has nodes (it is a field of
    /// the loop's shared state, kept behind an `Rc`); `req` is not in a list; on
    /// the loop thread.
    #[inline(always)]
    unsafe fn push(&self, req: &ReqHead) {
        let head: *const Link = &self.head;
        if self.head.next.get().is_null() {
            self.head.next.set(head);
            self.head.prev.set(head);
        }
        let last = self.head.prev.get();
        req.link.prev.set(last);
        req.link.next.set(head);
        // SAFETY: `last` is the head node or a request of the list, alive (the
        // caller's contract, and `Link::unlink`'s).
        unsafe { (*last).next.set(&req.link) };
        self.head.prev.set(&req.link);
    }

    /// Takes every request out of the list, in the order they started.
    pub(crate) fn take_all(&self) -> Vec<NonNull<ReqHead>> {
        let head: *const Link = &self.head;
        let mut out = Vec::new();
        let mut at = self.head.next.get();
        while !at.is_null() && at != head {
            // SAFETY: a node of the list other than its head is the `link` field
            // of a live request's head (taken out of the list only by `unlink`).
            unsafe {
                let next = (*at).next.get();
                (*at).prev.set(std::ptr::null());
                (*at).next.set(std::ptr::null());
                out.push(NonNull::new_unchecked(
                    at.cast::<u8>()
                        .sub(std::mem::offset_of!(ReqHead, link))
                        .cast::<ReqHead>()
                        .cast_mut(),
                ));
                at = next;
            }
        }
        self.head.next.set(std::ptr::null());
        self.head.prev.set(std::ptr::null());
        out
    }
}

/// How the last `Request` of a completed request frees its block: the block's own
/// free function (it knows the block's layout) and its slab.
#[derive(Clone, Copy)]
pub(crate) struct AfterDone {
    free: unsafe fn(NonNull<ReqHead>, NonNull<Slab>),
    slab: NonNull<Slab>,
}

/// A head's `state` bit: libuv holds the request (its completion has not started).
const IN_FLIGHT: usize = 1;
/// A head's `state` bit: the completion is not done with the block.
const HELD: usize = 2;
/// A head's `state` step per live `Request`.
const ONE_REQUEST: usize = 4;

impl ReqHead {
    /// The head of a request that libuv is about to hold, with one `Request` (the
    /// one [`Request::from_head`] makes once the request started).
    #[inline(always)]
    pub(crate) const fn started() -> ReqHead {
        ReqHead {
            state: std::cell::Cell::new(IN_FLIGHT + HELD + ONE_REQUEST),
            after: std::cell::Cell::new(MaybeUninit::uninit()),
            link: Link::new(),
        }
    }

    /// Takes the request out of its loop's list of requests in flight (the
    /// completion starts, before any user code runs; nothing if the teardown of
    /// an abandoned loop took it out already).
    ///
    /// # Safety
    /// Called by the request's completion, on the loop thread, while the loop's
    /// shared state is alive (the loop hands the request back, or its teardown
    /// completes it).
    #[inline(always)]
    pub(crate) unsafe fn unlink(&self) {
        // SAFETY: the caller's contract (the list's head is the loop's).
        unsafe { self.link.unlink() };
    }

    /// The completion started: libuv is done with the request, which `cancel` no
    /// longer reaches. Called before any user code of the completion runs.
    ///
    /// # Safety
    /// Called once per request, by its completion, on the loop thread.
    #[inline(always)]
    pub(crate) unsafe fn completing(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.unlink() };
        self.state.set(self.state.get() - IN_FLIGHT);
    }

    /// The completion is done with the block: true when it is to be freed now (no
    /// `Request` is left; a slab block from `Slab::alloc_uncounted` goes back with
    /// `Slab::free_uncounted`). Otherwise the block takes a count of `slab` (the
    /// loop's slab), and the last `Request` frees it with `free` (given the block's
    /// head and `slab`), which gives the memory and that count back.
    ///
    /// # Safety
    /// Called once per request, by its completion, on the loop thread, after
    /// `completing` (or instead of it, with `also_completing`: then before any user
    /// code of the completion runs).
    #[inline(always)]
    pub(crate) unsafe fn completed(
        &self,
        also_completing: bool,
        free: unsafe fn(NonNull<ReqHead>, NonNull<Slab>),
        slab: NonNull<Slab>,
    ) -> bool {
        let step = if also_completing {
            // SAFETY: the caller's contract (as `completing`'s).
            unsafe { self.unlink() };
            IN_FLIGHT + HELD
        } else {
            HELD
        };
        let st = self.state.get() - step;
        self.state.set(st);
        if st == 0 {
            return true;
        }
        self.outlived(free, slab);
        false
    }

    /// Whether the completion about to start will be last (no `Request` is left):
    /// then its block is freed without reading or writing the head again (the
    /// head's state does not matter in freed memory).
    ///
    /// # Safety
    /// Called by the request's completion, on the loop thread, before
    /// `completing` or `completed`.
    #[inline(always)]
    pub(crate) unsafe fn completes_alone(&self) -> bool {
        self.state.get() == IN_FLIGHT + HELD
    }

    #[cold]
    #[inline(never)]
    fn outlived(&self, free: unsafe fn(NonNull<ReqHead>, NonNull<Slab>), slab: NonNull<Slab>) {
        // SAFETY: the completion runs while the loop's shared state holds its count
        // of the slab, so the slab is alive here; from now on the block holds a
        // count of its own (it may outlive the loop).
        unsafe { slab.as_ref() }.retain();
        self.after.set(MaybeUninit::new(AfterDone { free, slab }));
    }

    /// The libuv request that follows the head.
    fn req(head: NonNull<ReqHead>) -> *mut sys::uv_req_t {
        // SAFETY: the block continues past the head with the libuv request (the
        // type's contract); the pointer stays inside the block.
        unsafe {
            head.as_ptr()
                .cast::<u8>()
                .add(std::mem::size_of::<ReqHead>())
                .cast()
        }
    }
}

impl Clone for Request {
    fn clone(&self) -> Request {
        // SAFETY: this value's count keeps the block alive.
        let head = unsafe { self.head.as_ref() };
        let st = head
            .state
            .get()
            .checked_add(ONE_REQUEST)
            .expect("fewer than usize::MAX / 4 clones of a Request");
        head.state.set(st);
        Request { head: self.head }
    }
}

impl Drop for Request {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this value's count keeps the block alive until here.
        let head = unsafe { self.head.as_ref() };
        let st = head.state.get() - ONE_REQUEST;
        head.state.set(st);
        if st == 0 {
            // SAFETY: the last count: the completion is done with the block (and
            // set `after`) and no other `Request` is left.
            unsafe { free_outlived(self.head) };
        }
    }
}

/// Frees a block whose completion ran before its last `Request` went.
///
/// # Safety
/// `h` is such a block's head, its last count just dropped.
#[cold]
#[inline(never)]
unsafe fn free_outlived(h: NonNull<ReqHead>) {
    // SAFETY: the caller's contract; the completion wrote `after` before dropping
    // its count, since a `Request` was still live then (and took a count of the
    // slab for the block, which `free` gives back).
    unsafe {
        let a = h.as_ref().after.get().assume_init();
        (a.free)(h, a.slab);
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("pending", &self.is_pending())
            .finish()
    }
}

impl Request {
    /// The `Request` of a block whose head was written as [`ReqHead::started()`]
    /// (which counts this value), made once per request.
    ///
    /// The request is linked into `shared`'s list of requests in flight.
    ///
    /// # Safety
    /// `head` is such a block's head, and libuv holds the request that follows it,
    /// a request of `shared`'s loop completed through its thread pool (its
    /// completion calls `ReqHead::completing`, or `ReqHead::unlink`, first).
    #[inline(always)]
    pub(crate) unsafe fn from_head(head: NonNull<ReqHead>, shared: &LoopShared) -> Request {
        // SAFETY: the caller's contract; the list is the loop's, alive while its
        // requests are in flight, or until its teardown takes them out.
        unsafe { shared.pool_requests().push(head.as_ref()) };
        Request { head }
    }

    /// The libuv request while it is in flight (null after its callback ran).
    fn pending_req(&self) -> *mut sys::uv_req_t {
        // SAFETY: this value's count keeps the block alive.
        if unsafe { self.head.as_ref() }.state.get() & IN_FLIGHT != 0 {
            ReqHead::req(self.head)
        } else {
            std::ptr::null_mut()
        }
    }

    /// Whether the callback has not run yet.
    pub fn is_pending(&self) -> bool {
        !self.pending_req().is_null()
    }

    /// Cancels the request (`uv_cancel`): `EBUSY` when a thread is already on it,
    /// `EINVAL` when it is done. A cancelled request's callback gets `ECANCELED`
    /// (`EAI_CANCELED` for a DNS query). `EBUSY` too in a forked child for a
    /// request of the parent's thread pool (on a loop the child did not
    /// re-create: see [`LoopHandle::after_fork`], which completes them), and for
    /// one of a loop whose teardown could not close it.
    pub fn cancel(&self) -> Result<()> {
        let p = self.pending_req();
        if p.is_null() {
            return Err(Error::new(StatusCode::EINVAL, "uv_cancel"));
        }
        // SAFETY: as below.
        if unsafe { cancel_refused(p) } {
            return Err(Error::new(StatusCode::EBUSY, "uv_cancel"));
        }
        // Once the process is exiting, the pool is being torn down
        // (`contracts::pool_call`): the request can no longer be taken back.
        let rc = crate::contracts::pool_call(|| {
            // SAFETY: the head's in-flight bit is dropped when the request's
            // completion starts (before its memory is freed or reused), so a
            // request that has it is one libuv still holds.
            unsafe { sys::uv_cancel(p) }
        });
        check(rc.unwrap_or(sys::uv_errno_t_UV_EBUSY), "uv_cancel")
    }
}

/// The thread-pool part of a request libuv completes through its pool (`struct
/// uv__work`, `work_req` in each of those request types), by the request's type;
/// none for another type.
///
/// # Safety
/// `req` is a request libuv took (its type is set).
#[cfg(unix)]
unsafe fn work_of(req: *mut sys::uv_req_t) -> Option<*mut sys::uv__work> {
    use std::ptr::addr_of_mut;
    // SAFETY: per the contract the type is set, and the request is of the
    // struct its type names.
    unsafe {
        Some(match (*req).type_ {
            sys::uv_req_type_UV_FS => addr_of_mut!((*req.cast::<sys::uv_fs_t>()).work_req),
            sys::uv_req_type_UV_WORK => addr_of_mut!((*req.cast::<sys::uv_work_t>()).work_req),
            sys::uv_req_type_UV_GETADDRINFO => {
                addr_of_mut!((*req.cast::<sys::uv_getaddrinfo_t>()).work_req)
            }
            sys::uv_req_type_UV_GETNAMEINFO => {
                addr_of_mut!((*req.cast::<sys::uv_getnameinfo_t>()).work_req)
            }
            sys::uv_req_type_UV_RANDOM => {
                addr_of_mut!((*req.cast::<sys::uv_random_t>()).work_req)
            }
            _ => return None,
        })
    }
}

/// Completes the requests in flight on the thread pool of `raw`, a loop a forked
/// child abandons (its teardown, or `after_fork`), as the loop would have: no
/// thread of the child runs them (the parent's pool threads are not in the
/// child, and libuv's pool starts afresh in the child, without the parent's
/// queue) and the loop never hands them back. A request the parent's pool
/// finished before the fork (in the loop's queue of finished requests) gets its
/// result; another gets `ECANCELED` (`EAI_CANCELED` for a DNS query), unless what
/// it left shows that its work was done (a file-system result other than 0, a
/// DNS error or list, a `queue_work` job's value), which it then gets. Each
/// completes through libuv's own completion function (as `uv__work_done` calls
/// it: memory only, no call on the loop's kernel state), which frees what libuv
/// allocated for it and calls the request's trampoline: the callback runs under
/// the loop's guard, and the request's memory goes back.
///
/// # Safety
/// `raw` is `shared`'s loop, in a forked child that did not re-create it, and
/// every request of `shared`'s list was started before the fork (the process
/// makes none on a loop it did not re-create: `LoopShared::check_process`); on
/// the loop thread, with no `uv_run` of the loop on the stack.
#[cfg(unix)]
pub(crate) unsafe fn complete_orphans(shared: &LoopShared, raw: *mut sys::uv_loop_t) {
    let reqs = shared.pool_requests().take_all();
    if reqs.is_empty() {
        return;
    }
    // The loop's queue of requests its pool finished, which `uv__work_done` would
    // have taken at the loop's next iteration: read without its lock (a thread of
    // the parent may have held it at the fork), as no thread of the child
    // writes to it (none runs a request of this loop), then left empty.
    let mut finished: Vec<*mut sys::uv__work> = Vec::new();
    // SAFETY: the loop is allocated (leaked); its queue links the `wq` fields of
    // the `uv__work`s of requests of this loop, all alive (in flight).
    unsafe {
        let head = std::ptr::addr_of_mut!((*raw).wq);
        let mut q = (*head).next;
        while !q.is_null() && q != head {
            let next = (*q).next;
            finished.push(
                q.cast::<u8>()
                    .sub(std::mem::offset_of!(sys::uv__work, wq))
                    .cast(),
            );
            q = next;
        }
        (*head).next = head;
        (*head).prev = head;
    }
    // The finished ones first (the loop would have completed them first), in the
    // order the pool finished them; then the rest, in the order they started.
    let mut order: Vec<(*mut sys::uv_req_t, *mut sys::uv__work, bool)> = Vec::new();
    for &w in &finished {
        if let Some(&h) = reqs.iter().find(|&&h| {
            // SAFETY: a request of the list: libuv took it, its type is set.
            let own = unsafe { work_of(ReqHead::req(h)) };
            own == Some(w)
        }) {
            order.push((ReqHead::req(h), w, true));
        }
    }
    for &h in &reqs {
        let req = ReqHead::req(h);
        // SAFETY: as above.
        if let Some(w) = unsafe { work_of(req) } {
            if !finished.contains(&w) {
                order.push((req, w, false));
            }
        }
        // A request of another type (none of this crate's) stays in flight: its
        // memory is the loop's, leaked with it.
    }
    for (req, w, done) in order {
        // SAFETY: each request of the list is in flight and completed once here:
        // the trampolines see the completion libuv would have made (the one
        // field libuv asserts on for a cancelled request, a file-system result
        // or a DNS return code, is 0 as for a request never run), and nothing
        // else completes it (no thread of the child runs it, the loop never
        // runs again, and `Request::cancel` does not reach libuv for it:
        // `cancel_refused`).
        unsafe { complete_orphan(req, w, done) };
    }
}

/// Completes one request for [`complete_orphans`]: `done` when the parent's pool
/// finished it (its `uv__work` in the loop's queue of finished requests).
///
/// # Safety
/// As [`complete_orphans`]: `req` is a request of the abandoned loop in flight
/// and `w` its `uv__work`; called once for it.
#[cfg(unix)]
unsafe fn complete_orphan(req: *mut sys::uv_req_t, w: *mut sys::uv__work, done: bool) {
    const CANCELED: c_int = sys::uv_errno_t_UV_ECANCELED;
    // SAFETY: per the contract.
    unsafe {
        let ty = (*req).type_;
        if ty == sys::uv_req_type_UV_FS && (*w).done.is_none() {
            // An io_uring request (`uv__iou_get_sqe` leaves `done` null), whose
            // completion went to the parent's ring: as `uv__poll_io_uring`
            // completes one, the loop's count of requests goes down (after
            // `after_fork` the loop runs on, and would wait for it for good), the
            // result is set and the callback called directly.
            let fs = req.cast::<sys::uv_fs_t>();
            let l = (*fs).loop_;
            if (*l).active_reqs.count > 0 {
                (*l).active_reqs.count -= 1;
            }
            (*fs).result = CANCELED as isize;
            if let Some(cb) = (*fs).cb {
                cb(fs);
            }
            return;
        }
        let Some(libuv_done) = (*w).done else { return };
        let status = if done {
            // `uv__work_done`: a request the pool finished has its work function
            // cleared; one `uv_cancel` took off the queue keeps it (its result
            // fields are still 0).
            if (*w).work.is_none() {
                0
            } else {
                CANCELED
            }
        } else {
            match ty {
                sys::uv_req_type_UV_FS => {
                    let fs = req.cast::<sys::uv_fs_t>();
                    // `uv__fs_work` writes the result once the call returned; 0
                    // is also what a request not yet run holds.
                    if (*fs).result != 0 {
                        0
                    } else {
                        CANCELED
                    }
                }
                sys::uv_req_type_UV_GETADDRINFO => {
                    let q = req.cast::<sys::uv_getaddrinfo_t>();
                    if (*q).retcode != 0 || !(*q).addrinfo.is_null() {
                        0
                    } else {
                        CANCELED
                    }
                }
                sys::uv_req_type_UV_GETNAMEINFO => {
                    let q = req.cast::<sys::uv_getnameinfo_t>();
                    if (*q).retcode != 0 {
                        0
                    } else {
                        CANCELED
                    }
                }
                // `queue_work`'s trampoline gives a job that ran its value
                // whatever the status; random bytes not known to be written are
                // cancelled.
                _ => CANCELED,
            }
        };
        // libuv's completion of the request (`uv__fs_done`, `uv__queue_done`,
        // `uv__getaddrinfo_done`, ...), which calls the trampoline.
        libuv_done(w, status);
    }
}

/// Whether `uv_cancel` must not reach the thread-pool request `req`: its loop
/// was torn down (a loop that could not be closed leaves its requests in flight
/// for good), or it is a forked child's copy of a request of the parent's pool
/// (a loop the child did not re-create): libuv's pool starts afresh in the
/// child, and the cancel would unlink the request from the parent's queue as
/// the child copied it, writing through stale links into the child's new
/// queue.
///
/// # Safety
/// `req` is a request libuv holds.
unsafe fn cancel_refused(req: *mut sys::uv_req_t) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: per the contract; a pool request's `uv__work` names its loop
        // (set when it started), allocated while it is in flight (an open loop,
        // or one leaked by its teardown, whose `data` is null then).
        unsafe {
            let Some(w) = work_of(req) else { return false };
            let data = (*(*w).loop_).data.cast::<LoopShared>();
            data.is_null() || !(*data).in_own_process()
        }
    }
    #[cfg(not(unix))]
    {
        let _ = req;
        false
    }
}

#[repr(C)]
struct LoopReq<R, D, F, C> {
    /// What the request's `Request` values use; the libuv request follows it.
    head: ReqHead,
    raw: R,
    shared: *const LoopShared,
    op: &'static str,
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
/// The struct is handed to `start` uninitialised, as C callers' requests are, and
/// libuv's start functions initialise it (the `INIT` of every `uv_fs_*` in libuv's
/// `fs.c`, `uv__req_init` for the others) before anything reads it. Only its
/// `data` field is set here.
///
/// # Safety
/// `start` calls the libuv function that starts a request of `K` once, with the
/// loop, the request and `done` as its callback, and nothing that reads the
/// request before it; it returns that function's result (negative only when libuv
/// did not take the request). `read` is given the completed request.
#[inline]
pub unsafe fn submit<K, T, D, F, C>(
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
    // Not in a forked child on the parent's loop: the child's thread pool would
    // run the request and wake the parent's loop, and the child's teardown of
    // the loop could not tell it from the parent's requests (`complete_orphans`).
    shared.check_process(op)?;
    // One allocation from the loop's slab, written in place (no copy of the request
    // struct), freed by `done`.
    let layout = Layout::new::<LoopReq<K::Raw, D, F, C>>();
    // The libuv request follows the head directly (a `ReqHead` has no padding
    // after it for a request aligned as a word at most).
    const { assert!(std::mem::align_of::<K::Raw>() <= std::mem::align_of::<ReqHead>()) };
    let slab = shared.slab();
    // SAFETY: the loop is open, so its slab is alive.
    let p = unsafe { slab.as_ref() }
        .alloc_uncounted(layout)
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
            // SAFETY: from this slab's `alloc_uncounted` of this layout; nothing
            // refers to it.
            unsafe {
                slab.as_ref()
                    .free_uncounted(NonNull::new_unchecked(p.cast()), layout)
            };
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
    // them. The head counts the `Request` returned below.
    let rc = unsafe {
        let raw = std::ptr::addr_of_mut!((*p).raw);
        std::ptr::addr_of_mut!((*p).head).write(ReqHead::started());
        std::ptr::addr_of_mut!((*p).shared).write(shared);
        std::ptr::addr_of_mut!((*p).op).write(op);
        std::ptr::addr_of_mut!((*p).context).write(context);
        std::ptr::addr_of_mut!((*p).read).write(ManuallyDrop::new(read));
        std::ptr::addr_of_mut!((*p).cb).write(ManuallyDrop::new(callback));
        (*raw.cast::<sys::uv_req_t>()).data = p.cast();
        // Not once the process is exiting: libuv's destructor is about to tear
        // the pool down (`contracts::pool_call`).
        crate::contracts::pool_call(|| start(l, raw, &(*p).data, Some(done::<K, T, D, F, C>)))
            .unwrap_or(sys::uv_errno_t_UV_ECANCELED)
    };
    if rc < 0 {
        // SAFETY: libuv did not take the request; nothing else refers to it.
        return Err(unsafe { refused(slab, p, rc, op) });
    }
    // SAFETY: the head was written by `ReqHead::started`, and libuv holds the request (until
    // `done`, which libuv never calls before this function returns).
    Ok(unsafe { Request::from_head(NonNull::new_unchecked(p.cast()), shared) })
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
    // User Drop code may panic. The data, the callback and the reader (in the
    // order `done` drops them) are each dropped under its own
    // `catch_unwind` (one that unwinds is not retried: the value is gone either
    // way, and a second panic while the first unwinds would abort), the memory
    // goes back, then the first panic goes on to the caller (no C frame is in
    // between); a later one is dropped quietly.
    // SAFETY: as above; every field but the request struct (plain C data, no
    // drop) was written and is dropped once.
    let panics = unsafe {
        [
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).data))
            }))
            .err(),
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ManuallyDrop::drop(&mut (*p).cb)
            }))
            .err(),
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ManuallyDrop::drop(&mut (*p).read)
            }))
            .err(),
        ]
    };
    // SAFETY: from this slab's `alloc_uncounted` of this layout; nothing refers
    // to it now.
    unsafe {
        slab.as_ref().free_uncounted(
            NonNull::new_unchecked(p.cast()),
            Layout::new::<LoopReq<R, D, F, C>>(),
        )
    };
    let mut first = None;
    for payload in panics.into_iter().flatten() {
        if first.is_none() {
            first = Some(payload);
        } else {
            crate::callback::drop_quietly(payload);
        }
    }
    if let Some(payload) = first {
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
    // The operation's name and the context function are read where they are used
    // (on error paths), from the block, which is alive until it is freed below.
    let (shared, read) = unsafe { (&*(*p).shared, ManuallyDrop::take(&mut (*p).read)) };
    // SAFETY: this request's completion, once, before any user code runs.
    unsafe { (*p).head.completing() };
    // A panicking reader (none panics; user types may be in the data) becomes an
    // error, and the cleanup still runs. The result is written where it stays until
    // the callback gets it (a `Stat` is not copied from one temporary to the next).
    let mut result = MaybeUninit::<Result<T>>::uninit();
    let read_ok = shared
        .guard(|| {
            // SAFETY: the data stays in place, and nothing else reaches it, until it
            // is dropped below.
            let (data, op) = unsafe { (&mut (*p).data, (*p).op) };
            result.write(read(req, data, op));
        })
        .is_some();
    if !read_ok {
        // SAFETY: as above.
        result.write(Err(Error::new(StatusCode::EINVAL, unsafe { (*p).op })));
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
                Err(e) => Err(with_context(e, &(*p).data, (*p).context, (*p).op)),
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
    // dropped), then the memory goes back to the slab (or to the last `Request` of
    // it, if one is still alive: nothing else in the block is used after).
    let cb = unsafe {
        let cb = ManuallyDrop::into_inner(std::ptr::addr_of!((*p).cb).read());
        let slab = shared.slab();
        if (*p)
            .head
            .completed(false, free_block::<K::Raw, D, F, C>, slab)
        {
            slab.as_ref().free_uncounted(
                NonNull::new_unchecked(p.cast()),
                Layout::new::<LoopReq<K::Raw, D, F, C>>(),
            );
        }
        cb
    };
    // The callback reads the result where it is (capturing it would copy it).
    let result = result.as_mut_ptr();
    // SAFETY: initialised above; moved out once, here.
    shared.guard(move || cb(unsafe { result.read() }));
}

/// Gives the memory of a request that outlived its completion back to its slab,
/// with the count the block took then.
///
/// # Safety
/// `head` is the head of a `LoopReq<R, D, F, C>` from `slab`'s `alloc_uncounted`
/// that took a count when its completion ended, whose fields were all moved out or
/// dropped; nothing refers to it after.
unsafe fn free_block<R, D, F, C>(head: NonNull<ReqHead>, slab: NonNull<Slab>) {
    // SAFETY: the caller's contract (the head is the block's start).
    unsafe { Slab::free(slab, head.cast(), Layout::new::<LoopReq<R, D, F, C>>()) }
}

/// An error with the data's context.
#[cold]
#[inline(never)]
fn with_context<D>(e: Error, data: &D, context: Context<D>, op: &'static str) -> Error {
    let mut e = e;
    add_context(&mut e, data, context, op);
    e
}

/// The closure that builds a request's data in place ([`submit`]'s `data`), as it
/// is: this only gives it its signature, the lifetime of its result tied to that
/// of its argument, which a closure bound to a `let` cannot state. Generated code
/// makes a closure with an `unsafe` block of its own this way before the `unsafe`
/// block of the `submit` call, which then holds that call only.
#[inline(always)]
pub fn data_init<D, I>(init: I) -> I
where
    I: for<'a> FnOnce(&'a mut MaybeUninit<D>) -> Result<&'a mut D>,
{
    init
}

/// Runs a request synchronously (no C callback): `start` gets the loop, a request
/// on the stack and the data; the result is read (from the request and the data),
/// and the request cleaned up, before returning; the data is dropped last.
///
/// The struct is handed to `start` uninitialised, and libuv's start function
/// initialises it (the `uv_fs_*` functions do before any check that fails, so the
/// cleanup always finds an initialised request).
///
/// # Safety
/// As for [`submit`], without a callback: `start` calls the libuv function that
/// starts a request of `K` once, with the loop, the request and no callback (libuv
/// then completes it before returning), and returns that function's result.
#[inline(always)]
pub unsafe fn run_sync<K, T, D, F>(
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
        let p = self.pending_req();
        // SAFETY: a non-null pointer is a request libuv still holds (see `cancel`).
        (!p.is_null())
            .then(|| crate::RequestType::from_raw(unsafe { sys::uv_req_get_type(p) } as i32))
    }
}
