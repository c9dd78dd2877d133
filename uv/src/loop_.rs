//! The event loop: [`Loop`] owns it, [`LoopHandle`] refers to it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::handle::Handle;
use crate::{RunMode, StatusCode};

/// A panic payload, as `catch_unwind` gives it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// A loop's panic hook.
pub type PanicHook = Box<dyn FnMut(PanicPayload)>;

static DEFAULT_IN_USE: AtomicBool = AtomicBool::new(false);

pub(crate) struct LoopShared {
    raw: Cell<*mut sys::uv_loop_t>,
    owned: bool,
    running: Cell<bool>,
    /// Set while `block_on` runs (its future is polled outside `uv_run`): `run`
    /// from that future is `EBUSY`, as from a callback.
    pub(crate) blocking_on: Cell<bool>,
    read_buffer: crate::stream::ReadBuffer,
    /// The loop while new handles and requests may be made on it: null from the
    /// start of teardown (and once closed).
    raw_for_new: Cell<*mut sys::uv_loop_t>,
    panic: Cell<Option<PanicPayload>>,
    hook: Cell<Option<PanicHook>>,
    /// Set when the teardown ended: the loop runs no more user code, and a hook
    /// is dropped rather than kept (one that holds a `LoopHandle` would keep this
    /// value alive, and the slab with it, for good).
    ended: Cell<bool>,
    /// Whether the hook is out of `hook` for its call, and what it did to the
    /// hook meanwhile.
    hook_call: Cell<HookCall>,
    pub(crate) call_later: RefCell<Option<crate::handles::async_::CallLaterState>>,
    /// Descriptors watched by handles that do not own them (`Poll`), one handle each.
    claimed_fds: RefCell<Vec<crate::RawFd>>,
    /// Memory for the loop's handles and requests; this value holds one count.
    slab: NonNull<Slab>,
    /// Set when the loop could not be closed: libuv keeps using the slab's memory,
    /// which is leaked with the loop.
    slab_leaked: Cell<bool>,
    /// The async executor (`uv::future`), made by the first `spawn_local` or
    /// `block_on`; its tasks are dropped at the start of teardown.
    pub(crate) executor: RefCell<Option<Rc<crate::future::executor::Executor>>>,
    /// The process whose kernel state the loop holds: the one that made it, or the
    /// forked child that last re-created that state (`LoopHandle::after_fork`).
    pub(crate) kernel_pid: Cell<u32>,
    /// Set when teardown shut the executor down: none is made after.
    pub(crate) executor_shut: Cell<bool>,
    /// The handle whose marked callback (`marks_delivery` in the spec) runs, or
    /// null (`handle::marking_delivery`).
    pub(crate) delivering: Cell<*mut sys::uv_handle_t>,
    /// The UDP sockets whose receiving started again with datagrams kept from a
    /// batch cut short, and the idle handle that gives them those datagrams
    /// (`handles::udp`); made by the first such start, dropped at teardown.
    pub(crate) udp_due: RefCell<Option<crate::handles::udp::Due>>,
    /// The requests libuv completes through its thread pool, in flight.
    pool_requests: crate::loop_request::PoolRequests,
    /// The [`fork_generation`] of the process that made the loop, or of the forked
    /// child that re-created it (`after_fork`): a loop is this process's when
    /// they match (`kernel_pid` without a system call).
    fork_gen: Cell<u32>,
    /// Set when the `Loop` was dropped while `after_fork` completed requests
    /// (`re_created`), which runs the teardown at its end.
    teardown_put_off: Cell<bool>,
    /// The handles whose close a forked child put off until it re-creates the loop
    /// (`handle::close_deferred`): closing them through libuv before would change
    /// the kernel state the child shares with the parent.
    pub(crate) deferred_closes: RefCell<Vec<NonNull<sys::uv_handle_t>>>,
    /// The thread that made the loop, the only one that runs it
    /// ([`thread_token`]).
    #[cfg(unix)]
    owner: usize,
}

/// How many `fork()`s led to this process (its own and its ancestors', since the
/// first loop was made): a `pthread_atfork` handler adds one in each child.
static FORK_GENERATION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[cfg(unix)]
thread_local! {
    /// The forking thread's signal mask before [`block_signals_for_fork`]
    /// blocked every signal, until the fork's parent or child handler puts it
    /// back. No destructor: the handlers may run in any thread, at any time.
    static MASK_BEFORE_FORK: Cell<Option<libc::sigset_t>> = const { Cell::new(None) };
}

/// The `pthread_atfork` handler run before each `fork()`: blocks every signal
/// on the forking thread until the child's handlers ran (or, in the parent,
/// until the fork returns).
///
/// libuv's own child handler (signal.c `uv__signal_global_reinit`, registered
/// by the first `uv_loop_init`, so before this crate's handlers and run before
/// [`count_fork`]) closes the inherited signal lock pipe, makes a new, empty
/// one and only then writes its token. A watched signal caught in between had
/// libuv's signal handler wait for good on the empty pipe (the child hung in
/// `read`), or read descriptor -1. Blocked, such a signal waits, pending, and
/// reaches a handler once the new lock holds its token.
#[cfg(unix)]
extern "C" fn block_signals_for_fork() {
    let old = crate::contracts::block_all_signals().into_mask();
    let _ = MASK_BEFORE_FORK.try_with(|m| m.set(Some(old)));
}

/// Puts back the mask [`block_signals_for_fork`] saved (the parent's
/// `pthread_atfork` handler, and the end of the child's).
#[cfg(unix)]
extern "C" fn restore_signals_after_fork() {
    if let Ok(Some(old)) = MASK_BEFORE_FORK.try_with(|m| m.take()) {
        crate::contracts::BlockedSignals::restore(old);
    }
}

/// The `pthread_atfork` handler run in each child of a `fork()`.
#[cfg(unix)]
extern "C" fn count_fork() {
    // Only atomic operations: the child runs alone, possibly in a signal
    // handler's fork.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    crate::handle::on_fork_child();
    crate::contracts::reset_pool_gate();
    crate::contracts::reset_recurring_pool_threads();
    crate::contracts::note_state_lock_at_fork();
    redirect_signal_pipes();
    // Last: libuv's child handler ran before this one.
    restore_signals_after_fork();
}

/// This process's loops (their libuv structs), from their init until just
/// before `uv_loop_close`: their signal pipes are the ones a forked child takes
/// over ([`redirect_signal_pipes`]; the pipe's write end is read from the loop
/// then, so that a pipe libuv makes after the loop's init, with its first
/// signal handle on kqueue systems, is covered too). Chunks of slots (null when
/// free) linked one after the other, never freed. Lock-free: the child handler
/// reads it alone, maybe in a signal handler's fork, and a thread of the parent
/// may have been changing it at the fork.
#[cfg(unix)]
struct LoopChunk {
    slots: [std::sync::atomic::AtomicPtr<sys::uv_loop_t>; LOOP_CHUNK],
    next: std::sync::atomic::AtomicPtr<LoopChunk>,
}

#[cfg(unix)]
const LOOP_CHUNK: usize = 32;

#[cfg(unix)]
impl LoopChunk {
    const fn new() -> LoopChunk {
        LoopChunk {
            slots: [const { std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()) }; LOOP_CHUNK],
            next: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The chunk after this one, if any.
    fn next(&self) -> Option<&'static LoopChunk> {
        // SAFETY: a chunk linked here was fully made before it was published
        // (release, read with acquire) and is never freed.
        unsafe { self.next.load(Ordering::Acquire).as_ref() }
    }
}

/// See [`LoopChunk`].
#[cfg(unix)]
static SIGNAL_LOOPS: LoopChunk = LoopChunk::new();

/// Registers the loop `raw` in [`SIGNAL_LOOPS`] (once: callers take it out
/// first where it may be there).
#[cfg(unix)]
fn note_loop(raw: *mut sys::uv_loop_t) {
    let mut chunk: &'static LoopChunk = &SIGNAL_LOOPS;
    loop {
        for slot in &chunk.slots {
            if slot
                .compare_exchange(
                    std::ptr::null_mut(),
                    raw,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return;
            }
        }
        chunk = match chunk.next() {
            Some(next) => next,
            None => {
                let new = Box::into_raw(Box::new(LoopChunk::new()));
                match chunk.next.compare_exchange(
                    std::ptr::null_mut(),
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // SAFETY: just published, never freed.
                    Ok(_) => unsafe { &*new },
                    Err(other) => {
                        // SAFETY: `new` was not published; `other` is a
                        // published chunk, never freed.
                        unsafe {
                            drop(Box::from_raw(new));
                            &*other
                        }
                    }
                }
            }
        };
    }
}

/// Takes the loop `raw` out of [`SIGNAL_LOOPS`]; whether it was there (a
/// forked child's handler takes out the loops whose pipe it replaced).
#[cfg(unix)]
fn forget_loop(raw: *mut sys::uv_loop_t) -> bool {
    let mut chunk = Some(&SIGNAL_LOOPS);
    while let Some(c) = chunk {
        for slot in &c.slots {
            if slot
                .compare_exchange(
                    raw,
                    std::ptr::null_mut(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return true;
            }
        }
        chunk = c.next();
    }
    false
}

/// An address that tells this thread from the process's other threads (its
/// own thread-local value's), the same in a forked child's one thread as in
/// the thread that forked.
#[cfg(unix)]
fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| std::ptr::from_ref(t) as usize)
}

/// Whether the registered loop `raw` was running on this thread at the fork
/// (its `uv_run`, or its teardown, is on this thread's stack: a fork inside
/// one of its callbacks). Read in a forked child's handler, from this
/// process's copy of the loop's state (no thread of the child changes it).
///
/// # Safety
/// `raw` is a registered loop: initialised, its `data` the loop's
/// `LoopShared`, alive (it leaves the registry before either goes).
#[cfg(unix)]
unsafe fn ran_on_this_thread(raw: *mut sys::uv_loop_t) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let shared = (*raw).data as *const LoopShared;
        !shared.is_null() && (*shared).running.get() && (*shared).owner == thread_token()
    }
}

/// Fills the pipe whose write end is `w` (non-blocking): libuv's signal
/// handler, whose message then does not fit, gets `EAGAIN` and does not count
/// the signal as caught. (Counted and never read, a caught signal kept the
/// close of its handle from ever finishing: libuv puts the close off until
/// every caught signal was dispatched.) The pipe is made one page first where
/// the system allows it.
#[cfg(unix)]
fn fill_pipe(w: std::ffi::c_int) {
    static PAGE: [u8; 4096] = [0; 4096];
    // SAFETY: F_SETPIPE_SZ changes the pipe's capacity; a failure leaves it.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::fcntl(w, libc::F_SETPIPE_SZ, PAGE.len() as std::ffi::c_int)
    };
    // A pipe holds at most a few MiB: these bounds are never reached.
    for _ in 0..4096 {
        // SAFETY: writes from a static buffer of that length.
        if unsafe { libc::write(w, PAGE.as_ptr().cast(), PAGE.len()) } < 0 {
            break;
        }
    }
    for _ in 0..PAGE.len() {
        // SAFETY: as above, one byte.
        if unsafe { libc::write(w, PAGE.as_ptr().cast(), 1) } < 0 {
            break;
        }
    }
}

/// A full pipe of this process's own (see [`fill_pipe`]), close-on-exec and
/// non-blocking, made with calls every Unix has (and that are
/// async-signal-safe); `None` when it cannot be made (no descriptor left).
#[cfg(unix)]
fn full_pipe() -> Option<[std::ffi::c_int; 2]> {
    let mut pipe: [std::ffi::c_int; 2] = [-1, -1];
    // SAFETY: `pipe` is a writable array of two descriptors; the flags calls
    // change the new descriptors' flags only.
    unsafe {
        if libc::pipe(pipe.as_mut_ptr()) != 0 {
            return None;
        }
        for fd in pipe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
        }
    }
    fill_pipe(pipe[1]);
    Some(pipe)
}

/// Makes `fd` (the write end of a loop's signal pipe that is the parent's) a
/// copy of `w` (a full pipe's write end of this process), close-on-exec.
#[cfg(unix)]
fn take_over(fd: std::ffi::c_int, pipe: [std::ffi::c_int; 2]) {
    if fd < 0 || fd == pipe[0] || fd == pipe[1] {
        return;
    }
    // SAFETY: makes `fd` a copy of the pipe's write end (this process's copy
    // of the parent's pipe is closed), then sets its close-on-exec flag.
    unsafe {
        if libc::dup2(pipe[1], fd) == fd {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// Run in each child of a `fork()` (alone, maybe in a signal handler's fork:
/// atomic operations, thread-local reads and system calls only): every loop's
/// signal pipe is the parent's, and libuv's signal handler (inherited, with its
/// table of watched signals) writes each signal caught in the child into the
/// pipe of each watching handle's loop, naming the handle by its address. The
/// parent's loop then ran its callback for a signal only the child got, or, if
/// the parent had closed that handle since, read freed memory. The write end of
/// each pipe is replaced, in the child only, by one of a full pipe of the
/// child's own (see [`fill_pipe`]; its read end stays open: a write to a pipe
/// without one fails with `EPIPE`, which libuv's handler takes for a bug and
/// aborts); a signal caught before the child re-creates the loop
/// (`after_fork`, which makes the loop a new pipe) is dropped. The loops whose
/// pipe was replaced leave the registry: that pipe is the child's own now, and
/// the child may close its number (a file that took it was replaced in the
/// next child).
///
/// Left alone: the loops running on the forking thread (a fork inside one of
/// their callbacks), which the child goes on running, reading the pipe (the
/// parent waits for it meanwhile: two processes must not run one loop), so
/// that it hears of its signals; their pipe is replaced when that run ends
/// (`LoopShared::run_ended_in_child`).
#[cfg(unix)]
fn redirect_signal_pipes() {
    let mut pipe = None;
    let mut chunk = Some(&SIGNAL_LOOPS);
    while let Some(c) = chunk {
        for slot in &c.slots {
            let raw = slot.load(Ordering::Acquire);
            // SAFETY: a registered loop (see `SIGNAL_LOOPS`).
            if raw.is_null() || unsafe { ran_on_this_thread(raw) } {
                continue;
            }
            // SAFETY: a registered loop is initialised until it leaves the
            // registry, before its close (this process's copy of it: no thread
            // of the child changes it).
            let fd = unsafe { (*raw).signal_pipefd[1] };
            if fd >= 0 {
                if pipe.is_none() {
                    pipe = full_pipe();
                }
                let Some(p) = pipe else { return };
                take_over(fd, p);
            }
            slot.store(std::ptr::null_mut(), Ordering::Release);
        }
        chunk = c.next();
    }
    if let Some(p) = pipe {
        // SAFETY: the new pipe's own write end, copied where it is needed.
        unsafe { libc::close(p[1]) };
    }
}

/// Registers the crate's `pthread_atfork` handlers, once per process. Called
/// after a `uv_loop_init` returned (every loop's, and the crate's idle loop's),
/// so that libuv's child handler, registered by the first init, runs first in a
/// child, with every signal still blocked.
pub(crate) fn watch_forks() {
    #[cfg(unix)]
    {
        static WATCH: std::sync::Once = std::sync::Once::new();
        WATCH.call_once(|| {
            // SAFETY: registers handlers that only change the forking thread's
            // signal mask and atomics. Without them (ENOMEM) forks go
            // uncounted: loops of a parent then look like a child's own, as
            // before the count existed.
            unsafe {
                libc::pthread_atfork(
                    Some(block_signals_for_fork),
                    Some(restore_signals_after_fork),
                    Some(count_fork),
                )
            };
        });
    }
}

/// Whether this process is a forked child of one that made a loop (or a
/// descendant of one): its loops may be the parent's (`in_own_process`). One load
/// and test, for the paths every handle takes (a close).
#[inline(always)]
pub(crate) fn forked_process() -> bool {
    FORK_GENERATION.load(Ordering::Relaxed) != 0
}

/// The process's fork generation (see [`FORK_GENERATION`]), with the handler that
/// counts forks registered (by the first loop made).
fn fork_generation() -> u32 {
    watch_forks();
    FORK_GENERATION.load(Ordering::Relaxed)
}

impl Drop for LoopShared {
    fn drop(&mut self) {
        if !self.slab_leaked.get() {
            // SAFETY: this value's count.
            unsafe { Slab::release(self.slab) };
        }
    }
}

impl LoopShared {
    pub(crate) fn raw(&self) -> Option<*mut sys::uv_loop_t> {
        let p = self.raw.get();
        (!p.is_null()).then_some(p)
    }

    /// The loop's sender table (its slab's).
    #[inline]
    pub(crate) fn senders(&self) -> &crate::handles::async_::SenderTable {
        // SAFETY: the slab lives while this value does (its count).
        unsafe { self.slab.as_ref() }.senders()
    }

    /// Claims `fd` for one handle of this loop; false if another holds it.
    pub(crate) fn claim_fd(&self, fd: crate::RawFd) -> bool {
        let mut fds = self.claimed_fds.borrow_mut();
        if fds.contains(&fd) {
            return false;
        }
        fds.push(fd);
        true
    }

    /// Gives a claimed descriptor back (the handle's close callback ran).
    pub(crate) fn unclaim_fd(&self, fd: crate::RawFd) {
        self.claimed_fds.borrow_mut().retain(|&f| f != fd);
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.raw.get().is_null()
    }

    /// Whether `uv_run` is on the stack.
    pub(crate) fn is_running(&self) -> bool {
        self.running.get()
    }

    /// The loop's slab (alive while this value is, and after it while allocations
    /// of it are).
    #[inline]
    pub(crate) fn slab(&self) -> NonNull<Slab> {
        self.slab
    }

    /// The handles in libuv's queue of this loop (open, or closing and their
    /// close callback not yet run): the user's only, or also the library's own.
    /// A walk of the loop, so that making and closing a handle count nothing.
    pub(crate) fn count_handles(&self, user_only: bool) -> usize {
        let Some(raw) = self.raw() else { return 0 };
        let mut count = (0usize, user_only);
        // SAFETY: the loop is open; the callback gets `count` as its argument and
        // only reads the handles' headers.
        unsafe {
            sys::uv_walk(
                raw,
                Some(count_walk_cb),
                (&mut count as *mut (usize, bool)).cast(),
            )
        };
        count.0
    }

    /// The requests libuv holds for this loop (its own count: from the start of each
    /// request to its callback), handles' requests included.
    fn active_requests(&self) -> usize {
        match self.raw() {
            // SAFETY: the loop is open; libuv keeps the count in `active_reqs`.
            Some(raw) => (unsafe { (*raw).active_reqs.count }) as usize,
            None => 0,
        }
    }

    /// Whether the loop is this process's: not one a forked child did not
    /// re-create (`after_fork`).
    #[inline(always)]
    pub(crate) fn in_own_process(&self) -> bool {
        self.fork_gen.get() == FORK_GENERATION.load(Ordering::Relaxed)
    }

    /// `EINVAL` for `op` in a forked child that did not re-create the loop
    /// (`after_fork`): it would use the parent's kernel state (its epoll
    /// instance, its thread pool's queue, which the child does not run).
    #[inline(always)]
    pub(crate) fn check_process(&self, op: &'static str) -> Result<()> {
        if self.in_own_process() {
            Ok(())
        } else {
            Err(not_own_process(op))
        }
    }

    /// `after_fork` made the loop's kernel state anew (`usable`), or failed to
    /// (libuv closed the parent's epoll instance and could not make another): in
    /// the first case the loop is this process's from now on; in the second it
    /// never is (`run`, `block_on` and pool requests stay `EINVAL`, and its drop
    /// abandons it, as a forked child's), and `after_fork` is refused from now
    /// on either way. The requests the parent's thread pool held for it
    /// complete now (see `loop_request::complete_orphans`), marked running so
    /// that their callbacks find `run`, `block_on`, `close` and `after_fork`
    /// `EBUSY`.
    ///
    /// # Safety
    /// The loop is open, not running, and `uv_loop_fork` was just called on it
    /// in this forked child.
    pub(crate) unsafe fn re_created(&self, usable: bool) {
        // The closes the child put off are libuv's to make now, on the loop's own
        // kernel state (they run no user code: the close callbacks run in the
        // loop's next iteration).
        if usable {
            let deferred = std::mem::take(&mut *self.deferred_closes.borrow_mut());
            for h in deferred {
                // SAFETY: each was put off by `close_deferred` on this loop and is
                // still in libuv (only the close made here, or the abandonment of
                // the loop, which empties the list, takes it out).
                unsafe { crate::handle::close_put_off(h) };
            }
        }
        #[cfg(unix)]
        if let Some(raw) = self.raw() {
            self.running.set(true);
            // SAFETY: the contract: the loop's requests in flight were all started
            // before the fork (none is started in a child on a loop it did not
            // re-create: `check_process`, which still refuses until the end of
            // this, as `Request::cancel` does).
            unsafe { crate::loop_request::complete_orphans(self, raw) };
            self.running.set(false);
        }
        self.kernel_pid.set(std::process::id());
        // A loop that could not be re-created gets a generation this process
        // never has (one less than its own: its parent's), so that
        // `check_process` refuses it for good.
        let generation = fork_generation();
        self.fork_gen.set(if usable {
            generation
        } else {
            generation.wrapping_sub(1)
        });
        // The `Loop` was dropped by a callback above (through a `LoopHandle`,
        // `after_fork` does not borrow it): its teardown, put off, is now.
        if self.teardown_put_off.take() {
            self.teardown();
        }
    }

    /// The loop's requests in flight on libuv's thread pool.
    #[inline(always)]
    pub(crate) fn pool_requests(&self) -> &crate::loop_request::PoolRequests {
        &self.pool_requests
    }

    pub(crate) fn read_buffer(&self) -> &crate::stream::ReadBuffer {
        &self.read_buffer
    }

    /// The loop, for making a new handle on it: none once teardown started.
    #[inline]
    pub(crate) fn raw_for_new(&self) -> Option<*mut sys::uv_loop_t> {
        let p = self.raw_for_new.get();
        (!p.is_null()).then_some(p)
    }

    /// Runs user code; a panic goes to the hook, or is kept for `run` to resume
    /// and stops the loop.
    #[inline(always)]
    pub(crate) fn guard<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.panicked(payload);
                None
            }
        }
    }

    /// What `guard` does with a panic's payload (for callers that catch it
    /// themselves).
    #[cold]
    #[inline(never)]
    pub(crate) fn panicked(&self, payload: PanicPayload) {
        match self.hook.take() {
            Some(mut hook) => {
                let outer = self.hook_call.replace(HookCall::Running);
                let r = catch_unwind(AssertUnwindSafe(|| hook(payload)));
                let call = self.hook_call.replace(outer);
                if let Err(p) = r {
                    self.keep(p);
                }
                let replaced = self.hook.take();
                if replaced.is_none() && call == HookCall::Running && !self.ended.get() {
                    self.hook.set(Some(hook));
                    return;
                }
                // The hook replaced or removed itself (`set_panic_hook`,
                // `take_panic_hook` from inside it), or closed the loop (the
                // teardown ended: no hook is kept): what it left stays, and the
                // old hook is dropped here, maybe inside a libuv callback, where a
                // panic of its Drop must not unwind. Like a panic of the hook
                // itself, that one stops the loop for `run` to resume (given to
                // the new hook, a hook that replaces itself with such a hook on
                // each call would recurse without end).
                self.hook.set(replaced);
                if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(hook))) {
                    self.keep(p);
                }
            }
            None => self.keep(payload),
        }
    }

    /// Notes that the hook was set or taken (from inside its call, it is then not
    /// put back).
    fn hook_changed(&self) {
        if self.hook_call.get() == HookCall::Running {
            self.hook_call.set(HookCall::Changed);
        }
    }

    fn keep(&self, payload: PanicPayload) {
        // The first panic is the one `run` resumes; later ones are dropped, and their
        // payload's own Drop may panic: that must not unwind out of an FFI frame.
        match self.panic.take() {
            Some(first) => {
                self.panic.set(Some(first));
                drop_payload(payload);
            }
            None => self.panic.set(Some(payload)),
        }
        if let Some(raw) = self.raw_for_new() {
            // SAFETY: the loop is open.
            unsafe { sys::uv_stop(raw) };
        }
    }

    /// The user's open handles (not closing, not internal).
    fn user_handles(&self) -> Vec<Handle> {
        let mut out: Vec<Handle> = Vec::new();
        if let Some(raw) = self.raw() {
            // SAFETY: the loop is open; the callback gets `out` as its argument.
            unsafe {
                sys::uv_walk(
                    raw,
                    Some(collect_walk_cb),
                    (&mut out as *mut Vec<Handle>).cast(),
                )
            };
        }
        out
    }

    /// Runs the `call_later` jobs waiting in the queue.
    fn run_queued_jobs(&self) {
        let jobs = match &*self.call_later.borrow() {
            Some(state) => state.take_jobs(),
            None => return,
        };
        for job in jobs {
            self.guard(job);
        }
    }

    /// Closes every handle, runs until their close callbacks ran, closes the loop
    /// and frees it.
    fn teardown(&self) {
        let Some(raw) = self.raw() else { return };
        if self.running.get() {
            // Only while `after_fork` completes the parent's pool requests (the
            // `Loop` is borrowed while anything else runs it): done at its end.
            self.teardown_put_off.set(true);
            return;
        }
        // Marked running until the end: user code run from here (jobs, the drops of
        // tasks' futures, close callbacks; on `Loop::close`, which leaves the `Loop`
        // to them) finds `run`, `block_on`, `close` and `after_fork` `EBUSY`, as from
        // any callback. A second teardown would free the loop under this one, a
        // `run` would nest `uv_run` inside the ones below.
        self.running.set(true);
        self.teardown_marked(raw);
        self.running.set(false);
        // No panic can reach the hook from now on: it goes, with what it holds
        // (a `LoopHandle` it captured would make a cycle through this value).
        // A hook set from now on is dropped at once (`set_panic_hook`).
        self.ended.set(true);
        let hook = self.hook.take();
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(hook))) {
            eprintln!(
                "uv: the panic hook's drop panicked while the loop was closing: {}",
                panic_message(&p)
            );
            drop_payload(p);
        }
    }

    /// `teardown` of the open loop `raw`, marked running.
    fn teardown_marked(&self, raw: *mut sys::uv_loop_t) {
        // A child of `fork()` that did not re-create the loop (never on Windows):
        // another process, or another generation of forks (a descendant whose pid
        // is the maker's again, reused).
        let forked = self.kernel_pid.get() != std::process::id() || !self.in_own_process();
        let closed = if forked {
            self.abandon_forked(raw);
            false
        } else {
            self.close_all(raw)
        };
        // A loop left open (leaked, or a forked child's) watches no signal from
        // now on (see `abandon_handles`).
        #[cfg(unix)]
        forget_loop(raw);
        // SAFETY: the loop is still allocated; nothing reads `data` after this.
        unsafe { (*raw).data = std::ptr::null_mut() };
        self.raw.set(std::ptr::null_mut());
        drop(self.call_later.borrow_mut().take());
        // Every handle is closed or abandoned by now: this only lets the values go
        // (an abandoned handle's last value drops its callbacks: user code).
        let due = self.udp_due.borrow_mut().take();
        self.guard(move || drop(due));
        if let Some(p) = self.panic.take() {
            eprintln!(
                "uv: a callback panicked while the loop was closing: {}",
                panic_message(&p)
            );
            drop_payload(p);
        }
        if !closed {
            // libuv still holds the loop (it could not be closed, or it is the
            // parent's): leaking it is the only sound choice.
            keep_leaked(raw, self.slab);
            if !forked {
                eprintln!("uv: the loop could not be closed; its memory is leaked");
            }
        } else if self.owned {
            // SAFETY: the loop was allocated by Loop::new with Box and is closed.
            drop(unsafe { Box::from_raw(raw as *mut MaybeUninit<sys::uv_loop_t>) });
        } else {
            DEFAULT_IN_USE.store(false, Ordering::Release);
        }
    }

    /// The teardown of a loop in a child process that did not re-create it
    /// (`after_fork`): its epoll instance, eventfd and signal pipe are the parent's
    /// too, and closing a handle through libuv removes the parent's watch of its
    /// descriptor from that epoll instance (the parent's loop would never see that
    /// descriptor again). No libuv call is made on the loop's kernel state (the
    /// one call is `uv_signal_stop` of a watching signal handle, which changes
    /// the process's own signal table and actions only: see `handle::abandon`):
    /// the loop is closed to user code (`ClosedLoop`, no handles), every handle
    /// is marked closed (its close callback dropped unrun, as for a loop that
    /// cannot be closed, and its other callbacks dropped, as a close drops them),
    /// the senders are shut, accepted `call_later` jobs run and the executor's
    /// tasks are dropped; the loop and the memory of its handles and requests are
    /// leaked (kept reachable: `keep_leaked`).
    /// The requests in flight on its handles complete as a close of the handles
    /// would complete them (see `handle::abandon`); wake-ups sent and not
    /// delivered, and the other requests in flight (file system, thread pool,
    /// DNS), end with it.
    fn abandon_forked(&self, raw: *mut sys::uv_loop_t) {
        self.raw_for_new.set(std::ptr::null_mut());
        // Closes put off are abandoned with the other handles below.
        self.deferred_closes.borrow_mut().clear();
        self.slab_leaked.set(true);
        // The senders' cells are shut first, as in any teardown (what was sent and
        // not delivered stays so: nothing runs the loop).
        crate::handles::async_::shut_senders(
            self.senders(),
            &[],
            self.call_later.borrow().as_ref(),
        );
        self.abandon_handles(raw);
        // The requests on the thread pool: the parent's pool threads are not in
        // the child, and its queue is not the child's.
        // SAFETY: `raw` is this loop, abandoned by a forked child (which starts no
        // request on it: `check_process`); no `uv_run` of it is on the stack
        // (marked running).
        #[cfg(unix)]
        unsafe {
            crate::loop_request::complete_orphans(self, raw)
        };
        self.run_queued_jobs();
        crate::future::executor::shutdown(self);
        self.run_queued_jobs();
    }

    /// The teardown of a loop whose kernel state is this process's: closes every
    /// handle and runs the loop until libuv let them go; whether the loop closed.
    fn close_all(&self, raw: *mut sys::uv_loop_t) -> bool {
        // Jobs accepted by `call_later` run now, while the loop is still open: an
        // accepted job is never dropped unseen.
        self.run_queued_jobs();
        // The executor's tasks are dropped while the loop is still open, so that what
        // their futures hold (handles, requests) closes and cancels as on any drop.
        crate::future::executor::shutdown(self);
        // Likewise wake-ups an `Async` accepted: its senders are shut, and if one is
        // pending, the loop runs a last non-blocking iteration to deliver it. A stop
        // requested before (`stop` outside `run`, or a job above that panicked) makes
        // the first run return at once, clearing it: then a second one delivers.
        let pending = crate::handles::async_::shut_senders(
            self.senders(),
            &self.user_handles(),
            self.call_later.borrow().as_ref(),
        );
        if pending {
            for _ in 0..2 {
                // SAFETY: the loop is open and uv_run is not on the stack (marked running,
                // so user code cannot enter it).
                unsafe { sys::uv_run(raw, sys::uv_run_mode_UV_RUN_NOWAIT) };
                if !crate::handles::async_::any_wakeup_pending(&self.user_handles()) {
                    break;
                }
            }
        }
        // From here on a panic does not stop the loop (teardown runs it to the end).
        self.raw_for_new.set(std::ptr::null_mut());
        let mut closed = false;
        let (mut left, mut stalled) = (usize::MAX, 0);
        while stalled < 16 {
            close_every_handle(raw);
            // SAFETY: the loop is open and uv_run is not on the stack (marked running,
            // so user code cannot enter it).
            unsafe { sys::uv_run(raw, sys::uv_run_mode_UV_RUN_DEFAULT) };
            // Jobs that came in from other threads before the close shut the queue;
            // the loop refuses new handles now (`ClosedLoop`).
            self.run_queued_jobs();
            // Out of the loops whose signal pipe a forked child takes over
            // before libuv closes the pipe (another file may take its number
            // then) and frees the loop.
            #[cfg(unix)]
            forget_loop(raw);
            // SAFETY: as above.
            if unsafe { sys::uv_loop_close(raw) } == 0 {
                closed = true;
                break;
            }
            #[cfg(unix)]
            note_loop(raw);
            // Give up only when rounds stop making progress.
            let now = self.count_handles(false) + self.active_requests();
            stalled = if now < left { 0 } else { stalled + 1 };
            left = now;
        }
        if !closed {
            // libuv keeps the memory of the handles and requests it still holds.
            self.slab_leaked.set(true);
            // Handles libuv still holds can never be closed now: make them answer
            // ClosedHandle instead of reaching the abandoned loop.
            self.abandon_handles(raw);
            // Requests in flight on the thread pool stay so: a pool thread may
            // still run one and write into it, so its memory (in the slab, leaked
            // with the loop, or a DNS query's own) is never freed, and its
            // callback never runs. They leave the loop's list, whose head goes
            // with this value.
            drop(self.pool_requests.take_all());
        }
        closed
    }

    /// Marks every handle of `raw`, a loop that will never run again (leaked,
    /// with no libuv call made on it from now on but the stop of a signal
    /// handle's watch, see `handle::abandon`), as closed; then completes the
    /// requests in flight on them and drops their close callbacks (see
    /// `handle::abandon`).
    fn abandon_handles(&self, raw: *mut sys::uv_loop_t) {
        // The loop is closed to user code from here (its functions answer
        // `ClosedLoop`, it has no handles): the code the abandonment runs (the
        // requests' callbacks, the drops of callbacks and kept values, then jobs
        // and tasks) would otherwise walk libuv's lists of the loop (`handles`,
        // `handle_count`, `backend_timeout`), which still link the abandoned
        // handles, freed one by one with their last reference.
        self.raw.set(std::ptr::null_mut());
        let mut out = crate::handle::Abandoned::default();
        // SAFETY: the loop is allocated (it is leaked); the walk only marks the
        // handles and takes what they hold (it runs no libuv function nor user
        // code); `out` outlives it.
        unsafe { sys::uv_walk(raw, Some(abandon_walk_cb), (&raw mut out).cast::<c_void>()) };
        // libuv's own watch of `SIGCHLD` for the loop's processes (started by a
        // spawn, stopped when the last process handle closes; `uv_walk` skips
        // it, as an internal handle) is stopped as a user signal handle's is
        // (`handle::abandon`): in libuv's process-wide table, its delivery
        // writes to the loop's signal pipe (in a forked child, the parent's: the
        // parent's loop would see the child's `SIGCHLD`s as its own), and the
        // signal keeps libuv's handler when no other loop watches it.
        // SAFETY: the loop is allocated and initialised; its child watcher is a
        // signal handle libuv made, watching when `signum` is set, and closed
        // only by `uv_loop_close`, which was not called (or failed).
        #[cfg(unix)]
        unsafe {
            let w = &raw mut (*raw).child_watcher;
            if (*w).signum != 0 && sys::uv_is_closing(w.cast()) == 0 {
                crate::hooks::stop_signal(w);
            }
        }
        out.finish(self);
    }
}

/// The error of an operation on a loop that a forked child did not re-create.
#[cold]
#[inline(never)]
fn not_own_process(op: &'static str) -> Error {
    Error::new(StatusCode::EINVAL, op)
}

/// A loop leaked on purpose (it could not be closed, or a forked child abandoned
/// it: see `LoopShared::teardown_marked`) and its slab, linked from [`LEAKED`].
struct Leaked {
    _loop: *mut sys::uv_loop_t,
    _slab: NonNull<Slab>,
    next: *mut Leaked,
}

/// The loops leaked on purpose, kept reachable (never read), so that a leak
/// checker does not report them and what they hold as lost: the memory is
/// leaked by design, with the loop. Pushed without a lock: a forked child may
/// push one while a lock was held, in the parent, by a thread the child does not
/// have.
static LEAKED: std::sync::atomic::AtomicPtr<Leaked> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Links the leaked loop `raw` and its slab from [`LEAKED`].
fn keep_leaked(raw: *mut sys::uv_loop_t, slab: NonNull<Slab>) {
    let node = Box::into_raw(Box::new(Leaked {
        _loop: raw,
        _slab: slab,
        next: std::ptr::null_mut(),
    }));
    let mut head = LEAKED.load(Ordering::Acquire);
    loop {
        // SAFETY: `node` is this call's own, not yet published.
        unsafe { (*node).next = head };
        match LEAKED.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// The panic hook's call (`LoopShared::panicked`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum HookCall {
    /// The hook is not running.
    Idle,
    /// The hook runs and has not changed the hook.
    Running,
    /// The hook runs and set or took the hook: it is not put back.
    Changed,
}

/// Drops a panic payload whose `Drop` may itself panic (see `drop_quietly`).
fn drop_payload(p: PanicPayload) {
    crate::callback::drop_quietly(p);
}

fn panic_message(p: &PanicPayload) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("(non-string payload)")
}

unsafe extern "C" fn abandon_walk_cb(h: *mut sys::uv_handle_t, arg: *mut c_void) {
    // SAFETY: uv_walk passes handles of this loop, an abandoned one; all of them
    // are ours; `arg` is the `Abandoned` of `abandon_handles`, alive during the
    // walk.
    unsafe { crate::handle::abandon(h, &mut *arg.cast::<crate::handle::Abandoned>()) };
}

unsafe extern "C" fn close_walk_cb(h: *mut sys::uv_handle_t, _arg: *mut c_void) {
    // SAFETY: uv_walk passes live handles of this loop; all of them are ours.
    if let Some(handle) = unsafe { Handle::from_walk(h) } {
        handle.close();
    }
}

fn close_every_handle(raw: *mut sys::uv_loop_t) {
    // SAFETY: the loop is open; the callback only closes handles.
    unsafe { sys::uv_walk(raw, Some(close_walk_cb), std::ptr::null_mut()) };
}

unsafe extern "C" fn count_walk_cb(h: *mut sys::uv_handle_t, arg: *mut c_void) {
    // SAFETY: `arg` is the count passed by `count_handles`.
    let (count, user_only) = unsafe { &mut *(arg as *mut (usize, bool)) };
    // SAFETY: uv_walk passes live handles of this loop; all of them are ours.
    if !*user_only || !unsafe { crate::handle::is_internal_raw(h) } {
        *count += 1;
    }
}

unsafe extern "C" fn collect_walk_cb(h: *mut sys::uv_handle_t, arg: *mut c_void) {
    // SAFETY: `arg` is the Vec passed by `handles`.
    let out = unsafe { &mut *(arg as *mut Vec<Handle>) };
    // SAFETY: uv_walk passes live handles of this loop; all of them are ours.
    if let Some(handle) = unsafe { Handle::from_walk(h) } {
        if !handle.is_internal() && !handle.is_closing() {
            out.push(handle);
        }
    }
}

impl LoopShared {
    /// Registers the loop, whose signal pipe a forked child takes over (see
    /// [`redirect_signal_pipes`]); taken out first if it is there.
    #[cfg(unix)]
    pub(crate) fn note_signal_loop(&self) {
        if let Some(raw) = self.raw() {
            forget_loop(raw);
            note_loop(raw);
        }
    }

    /// The end of a run of the loop `raw` in a forked child: a child forked
    /// inside one of its callbacks kept its signal pipe, the parent's, for this
    /// run (see [`redirect_signal_pipes`]); the loop, which the child did not
    /// re-create, cannot run again there until `after_fork`, and its pipe is
    /// taken over now.
    #[cfg(unix)]
    #[cold]
    #[inline(never)]
    fn run_ended_in_child(&self, raw: *mut sys::uv_loop_t) {
        if self.in_own_process() {
            return;
        }
        // SAFETY: an initialised loop (it just ran); its field is read.
        let fd = unsafe { (*raw).signal_pipefd[1] };
        if forget_loop(raw) && fd >= 0 {
            if let Some(p) = full_pipe() {
                take_over(fd, p);
                // SAFETY: the new pipe's own write end, copied where it is
                // needed.
                unsafe { libc::close(p[1]) };
            }
        }
    }

    fn new(raw: *mut sys::uv_loop_t, owned: bool) -> Rc<LoopShared> {
        Rc::new(LoopShared {
            raw: Cell::new(raw),
            owned,
            running: Cell::new(false),
            blocking_on: Cell::new(false),
            read_buffer: crate::stream::ReadBuffer::new(),
            raw_for_new: Cell::new(raw),
            panic: Cell::new(None),
            hook: Cell::new(None),
            ended: Cell::new(false),
            hook_call: Cell::new(HookCall::Idle),
            call_later: RefCell::new(None),
            claimed_fds: RefCell::new(Vec::new()),
            slab: Slab::new(),
            slab_leaked: Cell::new(false),
            executor: RefCell::new(None),
            kernel_pid: Cell::new(std::process::id()),
            executor_shut: Cell::new(false),
            delivering: Cell::new(std::ptr::null_mut()),
            udp_due: RefCell::new(None),
            pool_requests: crate::loop_request::PoolRequests::new(),
            fork_gen: Cell::new(fork_generation()),
            teardown_put_off: Cell::new(false),
            deferred_closes: RefCell::new(Vec::new()),
            #[cfg(unix)]
            owner: thread_token(),
        })
    }
}

/// The owner of an event loop. Dropping it closes every handle, runs the loop until
/// their close callbacks ran, and frees the loop; handle values that outlive it
/// answer `ClosedHandle`.
///
/// ```
/// use std::time::Duration;
/// let lp = uv::Loop::new()?;
/// let timer = uv::Timer::new(&lp)?;
/// timer.start(Duration::from_millis(1), Duration::ZERO, |_t| println!("tick"))?;
/// lp.run(uv::RunMode::Default)?;
/// # Ok::<(), uv::Error>(())
/// ```
pub struct Loop {
    handle: LoopHandle,
}

/// A reference to a loop, for handles and for code that does not own it. Every
/// operation answers `ClosedLoop` once the loop is gone.
#[derive(Clone)]
pub struct LoopHandle {
    shared: Rc<LoopShared>,
}

impl Loop {
    fn from_raw(raw: *mut sys::uv_loop_t, owned: bool) -> Loop {
        let shared = LoopShared::new(raw, owned);
        // Handles reach the shared state through their libuv struct's `loop` field.
        // SAFETY: `raw` is an initialised loop that nothing else uses.
        unsafe { (*raw).data = Rc::as_ptr(&shared) as *mut c_void };
        #[cfg(unix)]
        shared.note_signal_loop();
        Loop {
            handle: LoopHandle { shared },
        }
    }

    /// A new loop (`uv_loop_init`).
    pub fn new() -> Result<Loop> {
        crate::contracts::reserve_stdio();
        let raw = Box::into_raw(Box::new(MaybeUninit::<sys::uv_loop_t>::uninit())).cast();
        // SAFETY: `raw` is a fresh allocation the size of a uv_loop_t.
        let rc = unsafe { sys::uv_loop_init(raw) };
        if rc < 0 {
            // SAFETY: allocated just above, never initialised.
            drop(unsafe { Box::from_raw(raw as *mut MaybeUninit<sys::uv_loop_t>) });
            return Err(Error::from_raw(rc, "uv_loop_init"));
        }
        Ok(Loop::from_raw(raw, true))
    }

    /// The process-wide default loop (`uv_default_loop`). Only one `Loop` value may
    /// own it at a time: `EBUSY` while another does. Dropping it closes it; a later
    /// call opens it again.
    pub fn default_loop() -> Result<Loop> {
        crate::contracts::reserve_stdio();
        if DEFAULT_IN_USE.swap(true, Ordering::AcqRel) {
            return Err(Error::new(StatusCode::EBUSY, "uv_default_loop"));
        }
        // SAFETY: uv_default_loop has no preconditions; the flag above makes us its
        // only user in this library.
        let raw = unsafe { sys::uv_default_loop() };
        if raw.is_null() {
            DEFAULT_IN_USE.store(false, Ordering::Release);
            return Err(Error::new(StatusCode::ENOMEM, "uv_default_loop"));
        }
        Ok(Loop::from_raw(raw, false))
    }

    /// A reference to the loop for handles and callbacks.
    pub fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }

    /// Runs the loop (`uv_run`). Returns whether there is still work (active,
    /// referenced handles or requests). A panic in a callback stops the loop and is
    /// resumed here (unless a panic hook takes it); the loop stays usable.
    ///
    /// `EBUSY` when called from inside a callback of this loop (or from user code
    /// its teardown runs: jobs, drops, close callbacks) or from the future of a
    /// [`block_on`](Loop::block_on) of it; `ClosedLoop` after `close`; `EINVAL`
    /// in a forked child that did not re-create the loop
    /// ([`after_fork`](LoopHandle::after_fork)): it would poll the parent's epoll
    /// instance.
    pub fn run(&self, mode: RunMode) -> Result<bool> {
        self.run_from(mode, false)
    }

    /// `run`; `for_block_on` when `block_on` runs the loop itself.
    pub(crate) fn run_from(&self, mode: RunMode, for_block_on: bool) -> Result<bool> {
        let s = &self.handle.shared;
        let raw = s.raw().ok_or_else(|| Error::closed_loop("uv_run"))?;
        if s.running.get() || (s.blocking_on.get() && !for_block_on) {
            return Err(Error::new(StatusCode::EBUSY, "uv_run"));
        }
        // A forked child that did not re-create the loop would poll the parent's
        // epoll instance (taking the parent's events) and write to its pipes.
        s.check_process("uv_run")?;
        // An unknown mode makes libuv run without ever blocking.
        if matches!(RunMode::from_raw(mode.raw()), RunMode::Other(_)) {
            return Err(Error::new(StatusCode::EINVAL, "uv_run"));
        }
        s.running.set(true);
        // SAFETY: the loop is open and not already running.
        let rc = unsafe { sys::uv_run(raw, mode.raw() as sys::uv_run_mode) };
        s.running.set(false);
        // A child forked inside a callback of this run went on running the
        // loop with the parent's signal pipe (see `redirect_signal_pipes`).
        #[cfg(unix)]
        if forked_process() {
            s.run_ended_in_child(raw);
        }
        if let Some(p) = s.panic.take() {
            resume_unwind(p);
        }
        Ok(rc != 0)
    }

    /// Closes the loop (`uv_loop_close`). `EBUSY` while handles (open or closing) or
    /// requests remain, or from inside a callback (teardown included); idempotent.
    pub fn close(&self) -> Result<()> {
        let s = &self.handle.shared;
        if !s.is_open() {
            return Ok(());
        }
        // Handles whose close a forked child put off (`after_fork` would make
        // it) are closed for the user: they do not keep the loop from closing,
        // which in such a child abandons it (see `teardown_marked`).
        let put_off = s.deferred_closes.borrow().len();
        if s.running.get() || s.active_requests() > 0 || s.count_handles(true) > put_off {
            return Err(Error::new(StatusCode::EBUSY, "uv_loop_close"));
        }
        s.teardown();
        Ok(())
    }
}

impl Deref for Loop {
    type Target = LoopHandle;
    fn deref(&self) -> &LoopHandle {
        &self.handle
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.handle.shared.teardown();
    }
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Loop")
            .field("closed", &!s.is_open())
            .field("handles", &s.count_handles(true))
            .field("requests", &s.active_requests())
            .finish()
    }
}

impl LoopHandle {
    pub(crate) fn from_shared(shared: Rc<LoopShared>) -> Self {
        LoopHandle { shared }
    }

    /// A reference to no loop: every operation answers `ClosedLoop`.
    pub(crate) fn closed() -> Self {
        LoopHandle {
            shared: LoopShared::new(std::ptr::null_mut(), false),
        }
    }

    pub(crate) fn shared(&self) -> &Rc<LoopShared> {
        &self.shared
    }

    fn raw(&self, op: &'static str) -> Result<*mut sys::uv_loop_t> {
        self.shared.raw().ok_or_else(|| Error::closed_loop(op))
    }

    /// Whether the loop was closed (or its `Loop` dropped).
    pub fn is_closed(&self) -> bool {
        !self.shared.is_open()
    }

    /// Whether the loop is running (`run` is on the stack, or the teardown of
    /// `close` or of the `Loop`'s drop).
    pub fn is_running(&self) -> bool {
        self.shared.running.get()
    }

    /// Stops the loop at the end of this iteration (`uv_stop`); a no-op once closed.
    pub fn stop(&self) {
        if let Some(raw) = self.shared.raw() {
            // SAFETY: the loop is open.
            unsafe { sys::uv_stop(raw) };
        }
    }

    /// Whether there are active, referenced handles or requests (`uv_loop_alive`).
    /// False once closed.
    pub fn alive(&self) -> bool {
        match self.shared.raw() {
            // SAFETY: the loop is open.
            Some(raw) => unsafe { sys::uv_loop_alive(raw) != 0 },
            None => false,
        }
    }

    /// The loop's cached time (`uv_now`), from an arbitrary starting point,
    /// updated at the start of each iteration.
    pub fn now(&self) -> Result<Duration> {
        let raw = self.raw("uv_now")?;
        // SAFETY: the loop is open.
        Ok(Duration::from_millis(unsafe { sys::uv_now(raw) }))
    }

    /// Refreshes the cached time (`uv_update_time`).
    pub fn update_time(&self) -> Result<()> {
        let raw = self.raw("uv_update_time")?;
        // SAFETY: the loop is open.
        unsafe { sys::uv_update_time(raw) };
        Ok(())
    }

    /// The backend file descriptor (epoll/kqueue) (`uv_backend_fd`).
    pub fn backend_fd(&self) -> Result<crate::RawFd> {
        let raw = self.raw("uv_backend_fd")?;
        // SAFETY: the loop is open.
        let fd = unsafe { sys::uv_backend_fd(raw) };
        if fd < 0 {
            return Err(Error::from_raw(fd, "uv_backend_fd"));
        }
        Ok(fd as crate::RawFd)
    }

    /// How long the next poll would block (`uv_backend_timeout`): `None` for no limit.
    pub fn backend_timeout(&self) -> Result<Option<Duration>> {
        let raw = self.raw("uv_backend_timeout")?;
        // SAFETY: the loop is open.
        let t = unsafe { sys::uv_backend_timeout(raw) };
        Ok((t >= 0).then(|| Duration::from_millis(t as u64)))
    }

    /// Blocks `signum` while polling (`uv_loop_configure` with `UV_LOOP_BLOCK_SIGNAL`).
    /// `EINVAL` for a signal this version does not know (`Signum::Other`).
    pub fn block_signal(&self, signum: crate::Signum) -> Result<()> {
        let raw = self.raw("uv_loop_configure")?;
        if let crate::Signum::Other(_) = crate::Signum::from_raw(signum.raw()) {
            return Err(Error::new(StatusCode::EINVAL, "uv_loop_configure"));
        }
        let signum = signum.raw();
        // SAFETY: the loop is open; this option takes one int argument.
        let rc = unsafe {
            sys::uv_loop_configure(raw, sys::uv_loop_option_UV_LOOP_BLOCK_SIGNAL, signum)
        };
        check(rc, "uv_loop_configure")
    }

    /// Sets an option that takes no argument (`uv_loop_configure`):
    /// `MetricsIdleTime` or `UseIoUringSqpoll`. `EINVAL` for `BlockSignal`, also
    /// spelled `Other` with its value (use [`LoopHandle::block_signal`]); `ENOSYS`
    /// for a value libuv does not know.
    pub fn configure(&self, option: crate::LoopOption) -> Result<()> {
        let raw = self.raw("uv_loop_configure")?;
        // By its C value: `LoopOption::Other(n)` with the value of `BlockSignal`
        // would otherwise reach libuv, which reads the missing signal argument
        // (`va_arg` past the arguments given: undefined behaviour in C).
        if crate::LoopOption::from_raw(option.raw()) == crate::LoopOption::BlockSignal {
            return Err(Error::new(StatusCode::EINVAL, "uv_loop_configure"));
        }
        // SAFETY: the loop is open; these options take no further argument.
        let rc = unsafe { sys::uv_loop_configure(raw, option.raw() as sys::uv_loop_option) };
        check(rc, "uv_loop_configure")
    }

    /// Time spent idle in the kernel's event provider (`uv_metrics_idle_time`);
    /// zero unless `MetricsIdleTime` was configured.
    pub fn metrics_idle_time(&self) -> Result<Duration> {
        let raw = self.raw("uv_metrics_idle_time")?;
        // SAFETY: the loop is open.
        Ok(Duration::from_nanos(unsafe {
            sys::uv_metrics_idle_time(raw)
        }))
    }

    /// The user's open handles (`uv_walk`), without closing ones and internal ones.
    pub fn handles(&self) -> Vec<Handle> {
        self.shared.user_handles()
    }

    /// Closes every user handle; their close callbacks run on the next iteration.
    pub fn close_all_handles(&self) {
        for h in self.handles() {
            h.close();
        }
    }

    /// Replaces the panic hook: from now on a panic in a callback calls `hook` with
    /// the payload instead of stopping the loop and resuming the panic from `run`.
    ///
    /// From inside the hook, `hook` takes its place once it returns (the running
    /// hook is then dropped). The loop's drop (or `close`) drops the hook at its
    /// end, so a hook may hold a [`LoopHandle`]; on a closed loop `hook` is
    /// dropped at once.
    pub fn set_panic_hook(&self, hook: impl FnMut(PanicPayload) + 'static) {
        self.shared.hook_changed();
        if self.shared.ended.get() {
            // The loop is closed: no panic will reach it (see `teardown`).
            drop(hook);
            return;
        }
        self.shared.hook.set(Some(Box::new(hook)));
    }

    /// Restores the default: a panic stops the loop and `run` resumes it. Returns
    /// the hook; from inside the hook, `None` (the running hook is dropped once it
    /// returns) or the hook it set meanwhile.
    pub fn take_panic_hook(&self) -> Option<PanicHook> {
        self.shared.hook_changed();
        self.shared.hook.take()
    }

    /// Number of open or closing user handles (a walk of the loop's handles).
    pub fn handle_count(&self) -> usize {
        self.shared.count_handles(true)
    }
}

/// Per-loop memory for handle and request allocations: one free list per size class
/// (8-byte steps up to [`SLAB_MAX`] bytes), refilled from chunks that grow from 4 KiB
/// to 256 KiB, so that allocating and freeing a handle or a request costs a few
/// instructions instead of a trip through the global allocator, whose fast caches do
/// not hold 100k live chunks. Larger (or more aligned) layouts go to the global
/// allocator.
///
/// Lifetime: the slab is counted: one count for the loop's shared state, one per
/// live allocation. A handle may outlive its loop (a user reference kept after the
/// `Loop` is dropped), so the memory goes back to the system only when the last of
/// them is freed. A loop that could not be closed leaks its slab with it.
///
/// Under valgrind's memcheck (detected by its preloaded library) or with
/// `UV_SLAB=off`, every allocation goes to the global allocator instead, so that
/// memcheck sees each handle and request as a block of its own (a use after free
/// stays visible); `UV_SLAB=on` forces the slab.
pub(crate) struct Slab {
    /// The loop's count plus one per live allocation (but for a loop request's
    /// block while its request is in flight: see `alloc_uncounted`).
    refs: Cell<usize>,
    /// Every allocation goes to the global allocator (see above).
    bypass: bool,
    classes: [SizeClass; SLAB_CLASSES],
    /// The chunks, freed with the slab.
    chunks: RefCell<Vec<(NonNull<u8>, std::alloc::Layout)>>,
    /// Where the loop's `Async` handles live and their `AsyncSender`s find them
    /// (made with the slab, empty: its chunks are made on first use): each `Async`
    /// allocation is a cell of it, counted like a slab allocation (so the table
    /// outlives every handle in it, as the slab's chunks do; its chunks outlive it,
    /// for the senders: see `SenderTable`).
    senders: crate::handles::async_::SenderTable,
}

/// Allocation granule: sizes are rounded up to it, and every slot is aligned to it.
const SLAB_GRAIN: usize = 8;
/// The largest layout the slab serves.
pub(crate) const SLAB_MAX: usize = 1024;
const SLAB_CLASSES: usize = SLAB_MAX / SLAB_GRAIN;
const FIRST_CHUNK: usize = 4 << 10;
const LAST_CHUNK: usize = 256 << 10;

/// The free list of a size class of a slab (see `Slab::free_list`).
pub(crate) struct FreeList<'a>(&'a SizeClass);

impl FreeList<'_> {
    /// Gives back a block without dropping a count (as `Slab::free_uncounted`).
    ///
    /// # Safety
    /// `p` must come from `alloc` or `alloc_uncounted` of this list's slab, with the
    /// layout given to `free_list`, and not be freed yet.
    #[inline(always)]
    pub(crate) unsafe fn push(self, p: NonNull<u8>) {
        // SAFETY: the slot is ours again: its first word links it in.
        unsafe { p.cast::<Option<NonNull<u8>>>().write(self.0.free.get()) };
        self.0.free.set(Some(p));
    }
}

#[derive(Default)]
struct SizeClass {
    /// Freed slots, linked through their first word.
    free: Cell<Option<NonNull<u8>>>,
    /// The unused rest of the newest chunk.
    bump: Cell<usize>,
    end: Cell<usize>,
    /// Size of the next chunk.
    next_chunk: Cell<usize>,
}

/// Whether allocations bypass the slab (memcheck, `UV_SLAB`), decided once.
fn slab_bypass() -> bool {
    use std::sync::atomic::AtomicU8;
    static MODE: AtomicU8 = AtomicU8::new(0);
    match MODE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let bypass = match std::env::var("UV_SLAB").as_deref() {
                Ok("off") | Ok("0") => true,
                Ok("on") | Ok("1") => false,
                _ => std::env::var_os("LD_PRELOAD")
                    .is_some_and(|p| p.to_string_lossy().contains("vgpreload_memcheck")),
            };
            MODE.store(if bypass { 2 } else { 1 }, Ordering::Relaxed);
            bypass
        }
    }
}

impl Slab {
    fn new() -> NonNull<Slab> {
        let slab = Box::new(Slab {
            refs: Cell::new(1),
            bypass: slab_bypass(),
            classes: std::array::from_fn(|_| SizeClass::default()),
            chunks: RefCell::new(Vec::new()),
            senders: crate::handles::async_::SenderTable::default(),
        });
        NonNull::from(Box::leak(slab))
    }

    fn class(&self, layout: std::alloc::Layout) -> Option<&SizeClass> {
        if self.bypass {
            return None;
        }
        self.class_of(layout)
    }

    /// The size class of `layout`, bypass or not.
    #[inline(always)]
    fn class_of(&self, layout: std::alloc::Layout) -> Option<&SizeClass> {
        if layout.size() > SLAB_MAX || layout.align() > SLAB_GRAIN {
            return None;
        }
        // Zero-sized layouts get the smallest class (the slab never hands out a
        // dangling pointer).
        let i = layout.size().saturating_sub(1) / SLAB_GRAIN;
        Some(&self.classes[i])
    }

    /// Memory for `layout` (never null; aborts on out-of-memory like `Box`).
    #[inline]
    pub(crate) fn alloc(&self, layout: std::alloc::Layout) -> NonNull<u8> {
        self.refs.set(self.refs.get() + 1);
        self.alloc_uncounted(layout)
    }

    /// The sender table.
    #[inline]
    pub(crate) fn senders(&self) -> &crate::handles::async_::SenderTable {
        &self.senders
    }

    /// Memory for an `Async` handle (`crate::handle::ASYNC_CELL`): a cell of the
    /// sender table, with its generation if senders may be made for it (see
    /// `SenderTable::alloc`);
    /// `None` if the table is full. Counted like `alloc`.
    #[inline]
    pub(crate) fn alloc_async(&self) -> Option<(NonNull<u8>, crate::handles::async_::SenderGen)> {
        let p = self.senders.alloc()?;
        self.refs.set(self.refs.get() + 1);
        Some(p)
    }

    /// Gives back memory from `alloc_async` of this slab (in bypass mode too: a
    /// cell's state word must outlive the handle for its senders).
    ///
    /// # Safety
    /// `p` must come from `alloc_async` of the slab at `slab`, not freed yet, and
    /// hold no live handle; the slab may be freed by this call.
    #[inline]
    pub(crate) unsafe fn free_async(slab: NonNull<Slab>, p: NonNull<u8>) {
        {
            // SAFETY: the slab lives while an allocation of it does (its count).
            let s = unsafe { slab.as_ref() };
            // SAFETY: per the contract (a cell of this slab's table).
            if !unsafe { s.senders.free_if_shut(p) } {
                // SAFETY: as above; the cell is open.
                return unsafe { Slab::free_async_open(slab, p) };
            }
        }
        // SAFETY: this allocation's count.
        unsafe { Slab::release(slab) };
    }

    /// `free_async` of a cell that is still open (its handle had no sender), out
    /// of line: the common path then keeps no registers for a call.
    ///
    /// # Safety
    /// As `free_async`, and the cell is open.
    #[cold]
    #[inline(never)]
    unsafe fn free_async_open(slab: NonNull<Slab>, p: NonNull<u8>) {
        {
            // SAFETY: as in `free_async`.
            let s = unsafe { slab.as_ref() };
            // SAFETY: per the contract.
            unsafe { s.senders.free_open(p) };
        }
        // SAFETY: this allocation's count.
        unsafe { Slab::release(slab) };
    }

    #[cold]
    fn refill(&self, class: &SizeClass, size: usize, layout: std::alloc::Layout) -> NonNull<u8> {
        if self.bypass {
            return global_alloc(layout);
        }
        let chunk = class.next_chunk.get().max(FIRST_CHUNK);
        class.next_chunk.set((chunk * 2).min(LAST_CHUNK));
        let layout = std::alloc::Layout::from_size_align(chunk, 16).expect("a valid chunk layout");
        let p = global_alloc(layout);
        self.chunks.borrow_mut().push((p, layout));
        // The chunk is at least 4 KiB and a slot at most SLAB_MAX bytes.
        class.bump.set(p.as_ptr() as usize + size);
        class.end.set(p.as_ptr() as usize + chunk);
        p
    }

    /// Gives back memory from `alloc` of this slab.
    ///
    /// # Safety
    /// `p` must come from `alloc(layout)` of the slab at `slab`, not freed yet; the
    /// slab may be freed by this call (when it was its last count).
    #[inline]
    pub(crate) unsafe fn free(slab: NonNull<Slab>, p: NonNull<u8>, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract; the slab lives while an allocation of it
        // does (its count, dropped just below).
        unsafe {
            Slab::free_uncounted(slab.as_ref(), p, layout);
            Slab::release(slab);
        }
    }

    /// Memory for a loop request's block, without a count of its own: the request's
    /// completion runs while the loop's shared state (which holds the slab's first
    /// count) is alive, and gives the block back with `free_uncounted`, or, when a
    /// `Request` of it is still alive, takes a count with `retain` for the block
    /// (freed with `free` by the last `Request`). A handle's request (stream
    /// writes, UDP sends, connects) takes none either: the handle reference it
    /// holds until its memory went back keeps the handle's allocation, which holds
    /// a count of the same slab. This saves the count's update on each of the two
    /// sides of every request.
    #[inline(always)]
    pub(crate) fn alloc_uncounted(&self, layout: std::alloc::Layout) -> NonNull<u8> {
        // With the slab bypassed a class is never used: no slot is ever freed into
        // it and it has no chunk, so allocations reach `refill`, which checks.
        let Some(class) = self.class_of(layout) else {
            return global_alloc(layout);
        };
        if let Some(p) = class.free.get() {
            // SAFETY: a freed slot holds the next free slot in its first word
            // (written by `free`; slots are at least 8 bytes and 8-aligned).
            class
                .free
                .set(unsafe { p.cast::<Option<NonNull<u8>>>().read() });
            return p;
        }
        let size = slot_size(layout);
        let bump = class.bump.get();
        // Before the first chunk both `bump` and `end` are 0 (no room); after it
        // `bump <= end`, and `bump` is inside the chunk while there is room.
        if class.end.get() - bump >= size {
            class.bump.set(bump + size);
            // SAFETY: there is room, so `bump` is inside a live chunk (non-zero).
            return unsafe { NonNull::new_unchecked(bump as *mut u8) };
        }
        self.refill(class, size, layout)
    }

    /// A freed block for `layout` from its size class's free list, without a
    /// count (as `alloc_uncounted`): `None` when the list is empty (always when
    /// the slab is bypassed, or for a layout the slab does not serve).
    #[inline(always)]
    pub(crate) fn pop_free(&self, layout: std::alloc::Layout) -> Option<NonNull<u8>> {
        let class = self.class_of(layout)?;
        let p = class.free.get()?;
        // SAFETY: a freed slot holds the next free slot in its first word (written
        // by `free`; slots are at least 8 bytes and 8-aligned).
        class
            .free
            .set(unsafe { p.cast::<Option<NonNull<u8>>>().read() });
        Some(p)
    }

    /// Adds a count (for a block from `alloc_uncounted` that outlives its
    /// request's completion: it is then freed with `free`).
    #[inline]
    pub(crate) fn retain(&self) {
        self.refs.set(self.refs.get() + 1);
    }

    /// The free list that a block of `layout` goes back to (`None` when such
    /// blocks go to the global allocator): for a caller that picks its fast path
    /// before it frees.
    #[inline(always)]
    pub(crate) fn free_list(&self, layout: std::alloc::Layout) -> Option<FreeList<'_>> {
        self.class(layout).map(FreeList)
    }

    /// Gives back memory without dropping a count: a block from `alloc_uncounted`,
    /// or the memory part of `free`.
    ///
    /// # Safety
    /// `p` must come from `alloc(layout)` or `alloc_uncounted(layout)` of `self`,
    /// not freed yet.
    #[inline(always)]
    pub(crate) unsafe fn free_uncounted(&self, p: NonNull<u8>, layout: std::alloc::Layout) {
        match self.class(layout) {
            Some(class) => {
                // SAFETY: the slot is ours again: its first word links it in.
                unsafe { p.cast::<Option<NonNull<u8>>>().write(class.free.get()) };
                class.free.set(Some(p));
            }
            // SAFETY: allocated by `global_alloc` with this layout.
            None => unsafe { std::alloc::dealloc(p.as_ptr(), nonzero(layout)) },
        }
    }

    /// Drops one count; the last one frees the chunks and the slab.
    ///
    /// # Safety
    /// The caller must own one of the slab's counts.
    #[inline]
    pub(crate) unsafe fn release(slab: NonNull<Slab>) {
        // SAFETY: the caller's count keeps the slab alive until here.
        let s = unsafe { slab.as_ref() };
        let refs = s.refs.get() - 1;
        s.refs.set(refs);
        if refs == 0 {
            // SAFETY: that was the last count.
            unsafe { Slab::destroy(slab) };
        }
    }

    /// Frees the chunks and the slab.
    ///
    /// # Safety
    /// No count may be left.
    #[cold]
    unsafe fn destroy(slab: NonNull<Slab>) {
        {
            // SAFETY: the slab is still allocated.
            let s = unsafe { slab.as_ref() };
            for (p, layout) in s.chunks.take() {
                // SAFETY: allocated by `refill` with this layout; no slot of it is
                // in use any more (no count is left).
                unsafe { std::alloc::dealloc(p.as_ptr(), layout) };
            }
        }
        // SAFETY: made by Box::leak in `new`; no count is left.
        drop(unsafe { Box::from_raw(slab.as_ptr()) });
    }
}

#[inline]
fn slot_size(layout: std::alloc::Layout) -> usize {
    layout.size().max(1).next_multiple_of(SLAB_GRAIN)
}

/// Zero-sized layouts never come from handles or requests (they hold a libuv
/// struct); one byte keeps the global allocator's contract for them anyway.
fn nonzero(layout: std::alloc::Layout) -> std::alloc::Layout {
    if layout.size() == 0 {
        std::alloc::Layout::from_size_align(1, layout.align()).expect("a valid layout")
    } else {
        layout
    }
}

fn global_alloc(layout: std::alloc::Layout) -> NonNull<u8> {
    let layout = nonzero(layout);
    // SAFETY: the layout is not zero-sized.
    let p = unsafe { std::alloc::alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}
