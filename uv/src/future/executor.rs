//! The loop as a single-threaded executor: [`Loop::block_on`], [`LoopHandle::spawn_local`]
//! and the [`JoinHandle`] of a spawned task.
//!
//! Each loop gets one executor, made on first use and kept in the loop's shared
//! state. It owns three internal handles (hidden from `handles()`, not counted by
//! `Loop::close`):
//!
//! - a **check** handle, started and unreferenced, that polls the tasks woken during
//!   the iteration's I/O phase right after it (a read callback wakes a task; the task
//!   runs in the same iteration); with no task ready it returns at once;
//! - an **idle** handle, started only while a task is ready (and then keeping the
//!   loop from blocking in its poll), that polls tasks woken anywhere else (timers,
//!   close callbacks, other tasks). A wake that this module's read callbacks make
//!   in the loop's I/O phase does not start it (the check phase comes first: see
//!   `future::wake_in_io`); tasks left ready after a check phase do;
//! - an **async** handle, unreferenced (referenced while `block_on` runs), through
//!   which wakers used on other threads reach the loop.
//!
//! Tasks live in a slab keyed by index and generation; a [`Waker`] names its task by
//! that key and the executor by a number, so it is `Send + Sync` and owns nothing of
//! the loop. Woken on the loop's thread it finds the executor through a thread-local
//! registry and queues the task directly; woken on another thread (or once the
//! executor is gone from this thread) it queues the key behind a mutex and wakes the
//! loop through the async handle's sender, which answers `ClosedHandle` once the
//! loop is gone: waking a task whose loop is gone does nothing.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use crate::error::{Error, Result};
use crate::handles::{Async, AsyncSender, Check, Idle};
use crate::loop_::{Loop, LoopHandle, LoopShared};
use crate::sys;
use crate::{RunMode, StatusCode};

/// The key of `block_on`'s future (never a slab key: generations start at 1).
const MAIN: u64 = 0;

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// One spawned task.
struct Task {
    key: u64,
    /// `None` once it finished or was aborted.
    future: RefCell<Option<BoxFuture>>,
    /// In the ready queue (a second wake before the poll adds nothing).
    scheduled: Cell<bool>,
    /// Set by `abort` while the task polls itself: dropped after the poll.
    aborted: Cell<bool>,
    /// Nothing of the user's: a task that ended can be dropped anywhere (its
    /// output, if its handle is gone, was dropped inside its last poll).
    waker: Waker,
    /// Set while the future polls, shared with its join state: still set when
    /// the future is dropped, the poll unwound (see `JoinGuard`).
    polling: Rc<Cell<bool>>,
}

struct Entry {
    generation: u32,
    task: Option<Rc<Task>>,
}

/// The loop-thread side of the executor.
pub(crate) struct Local {
    id: usize,
    tasks: RefCell<Vec<Entry>>,
    free: RefCell<Vec<u32>>,
    ready: RefCell<VecDeque<Rc<Task>>>,
    idle: Idle,
    idle_on: Cell<bool>,
    main_woken: Cell<bool>,
    in_block_on: Cell<bool>,
    /// Check phases run (one per loop iteration): `block_on` counts the iterations
    /// of each `uv_run`.
    checks: Cell<u64>,
    /// The loop, for `uv_stop` when `block_on`'s future is woken; null once the
    /// executor shut down (teardown shuts it down before the loop closes, so a
    /// non-null pointer names an open loop). A plain pointer: a `LoopHandle` would
    /// make a cycle through the loop's shared state, and a weak one costs an
    /// upgrade per wake.
    raw_loop: Cell<*mut sys::uv_loop_t>,
    /// Set when the loop's teardown started: no more tasks.
    shut: Cell<bool>,
    /// The loop's shared state, as an identity (never dereferenced): see
    /// [`super::in_io_phase`].
    shared_id: *const LoopShared,
    remote: Arc<Remote>,
}

/// What wakers share with the loop, from any thread.
struct Remote {
    id: usize,
    /// Keys woken from other threads, taken by the async handle's callback.
    incoming: Mutex<Incoming>,
    sender: OnceLock<AsyncSender>,
}

/// The executor of one loop (in the loop's shared state).
pub(crate) struct Executor {
    local: Rc<Local>,
    wakeup: Async,
    _check: Check,
}

thread_local! {
    /// The executors of this thread's loops, by id.
    static LOCALS: RefCell<Vec<(usize, Weak<Local>)>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// The executor a waker found last on this thread: its id and a pointer to
    /// it, or `(0, null)`. Cleared when that executor shuts down or goes (so a
    /// non-null pointer names a live executor that takes tasks), it spares a wake
    /// the search of `LOCALS` and its reference counting. (Plain data: a
    /// thread-local that needs dropping would register a destructor.)
    static LAST_LOCAL: Cell<(usize, *const Local)> =
        const { Cell::new((0, std::ptr::null())) };
}

/// Forgets the cached executor `local`, if it is the cached one.
fn forget_cached(local: *const Local) {
    let _ = LAST_LOCAL.try_with(|c| {
        if c.get().1 == local {
            c.set((0, std::ptr::null()));
        }
    });
}

fn local_by_id(id: usize) -> Option<Rc<Local>> {
    LOCALS
        .try_with(|l| {
            l.borrow()
                .iter()
                .find(|(i, _)| *i == id)
                .and_then(|(_, w)| w.upgrade())
        })
        .ok()
        .flatten()
}

/// A waker's data: which task of which executor.
struct WakeKey {
    key: u64,
    remote: Arc<Remote>,
}

impl Wake for WakeKey {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let id = self.remote.id;
        let (last_id, last) = LAST_LOCAL
            .try_with(|c| c.get())
            .unwrap_or((0, std::ptr::null()));
        if last_id == id && !last.is_null() {
            // SAFETY: a non-null cached pointer names a live executor of this
            // thread that has not shut down (`shutdown` and `Local`'s Drop clear
            // the cache); scheduling runs no user code, so it stays alive meanwhile.
            let local = unsafe { &*last };
            local.schedule_key(self.key);
            return;
        }
        match local_by_id(id) {
            Some(local) => {
                let _ = LAST_LOCAL.try_with(|c| c.set((id, Rc::as_ptr(&local))));
                local.schedule_key(self.key)
            }
            None => self.remote.wake_from_afar(self.key),
        }
    }
}

/// The keys woken from other threads since the loop last took them, each once (a
/// thread that wakes one task many times while the loop is busy queues it once:
/// the queue is bounded by the number of tasks).
#[derive(Default)]
struct Incoming {
    keys: Vec<u64>,
    queued: std::collections::HashSet<u64>,
}

impl Remote {
    fn wake_from_afar(&self, key: u64) {
        let Some(sender) = self.sender.get() else {
            return;
        };
        let mut q = self.incoming.lock().unwrap_or_else(|e| e.into_inner());
        if q.queued.contains(&key) {
            // Already queued, and the loop already woken for it.
            return;
        }
        // Queued only when the wake-up was accepted: once the loop is gone the
        // sender answers `ClosedHandle` and the wake is a no-op.
        if sender.send().is_ok() {
            q.queued.insert(key);
            q.keys.push(key);
        }
    }
}

fn split(key: u64) -> (usize, u32) {
    ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
}

impl Local {
    /// Queues the task `key` names, if it is still there.
    fn schedule_key(&self, key: u64) {
        if key == MAIN {
            // Only while `block_on` runs (a stray wake of an earlier one's waker
            // changes nothing): `uv_stop` ends its `uv_run` after this iteration,
            // without blocking.
            if self.in_block_on.get() {
                self.main_woken.set(true);
                // Only from inside `uv_run`: a stop set outside it (the future
                // woke itself while polled, or a wake during the poll that
                // completes it) would stay set, and the next `uv_run` (of this
                // `block_on`, or the caller's next `run`) would return at once,
                // clearing it, without an iteration. `block_on` sees
                // `main_woken` when the poll returns.
                if self.loop_running() {
                    self.stop_loop();
                }
            }
            return;
        }
        let (index, generation) = split(key);
        let task = {
            let tasks = self.tasks.borrow();
            match tasks.get(index) {
                Some(e) if e.generation == generation => e.task.clone(),
                _ => None,
            }
        };
        if let Some(task) = task {
            self.schedule(task);
        }
    }

    /// Whether the executor's loop is running (`uv_run` on the stack).
    #[inline]
    fn loop_running(&self) -> bool {
        let raw = self.raw_loop.get();
        // SAFETY: a non-null pointer names the executor's loop, open until
        // teardown, which clears the pointer (`shutdown`) before it closes the
        // loop; an open loop's `data` is its shared state's (`Rc::as_ptr`, kept
        // alive by the loop's owner).
        !raw.is_null() && unsafe { (*(*raw).data.cast::<crate::loop_::LoopShared>()).is_running() }
    }

    /// `uv_stop` on the loop (a no-op once the executor shut down).
    #[inline]
    fn stop_loop(&self) {
        let raw = self.raw_loop.get();
        if !raw.is_null() {
            // SAFETY: a non-null pointer names the executor's loop, open until
            // teardown, which clears the pointer (`shutdown`) before it closes the
            // loop; `uv_stop` only sets a flag.
            unsafe { sys::uv_stop(raw) };
        }
    }

    fn schedule(&self, task: Rc<Task>) {
        if task.scheduled.replace(true) {
            return;
        }
        self.ready.borrow_mut().push_back(task);
        self.keep_polling();
    }

    /// Starts the idle handle: the loop does not block while a task is ready.
    /// Not for a wake in the loop's I/O phase: the check phase that follows it
    /// polls the task (and starts the idle handle if tasks are left ready).
    #[inline]
    fn keep_polling(&self) {
        if !self.idle_on.get() && !super::in_io_phase(self.shared_id) {
            self.start_idle();
        }
    }

    fn start_idle(&self) {
        // The callback captures nothing (it finds the executor through the loop):
        // storing it allocates nothing.
        if !self.idle_on.get() && self.idle.start(on_idle).is_ok() {
            self.idle_on.set(true);
        }
    }

    /// Polls the tasks that are ready now (those woken meanwhile wait for the next
    /// round, so a task that always wakes itself cannot starve the loop).
    fn run_ready(&self, shared: &LoopShared) {
        let n = self.ready.borrow().len();
        for _ in 0..n {
            let Some(task) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            task.scheduled.set(false);
            self.poll_task(&task, shared);
        }
        if self.ready.borrow().is_empty() {
            if self.idle_on.get() {
                self.idle_on.set(false);
                let _ = self.idle.stop();
            }
        } else {
            // Tasks woken during this round (or before it, in the I/O phase, and
            // left by an earlier stop) are polled in the next one.
            self.start_idle();
        }
    }

    fn poll_task(&self, task: &Rc<Task>, shared: &LoopShared) {
        let done = {
            let Ok(mut slot) = task.future.try_borrow_mut() else {
                return;
            };
            let Some(fut) = slot.as_mut() else { return };
            let mut cx = Context::from_waker(&task.waker);
            task.polling.set(true);
            match shared.guard(|| fut.as_mut().poll(&mut cx)) {
                Some(Poll::Pending) => {
                    task.polling.set(false);
                    task.aborted.get()
                }
                Some(Poll::Ready(())) => {
                    task.polling.set(false);
                    true
                }
                // A poll that panicked (`polling` stays set): the join handle
                // learns it from the drop of the task's state (by the
                // unwinding, or below).
                None => true,
            }
        };
        if done {
            self.remove(task.key);
            let fut = task.future.borrow_mut().take();
            // User Drop code (what the future held).
            shared.guard(move || drop(fut));
        }
    }

    fn insert(&self, make: impl FnOnce(u64) -> Task) -> Rc<Task> {
        let mut tasks = self.tasks.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i as usize,
            None => {
                tasks.push(Entry {
                    generation: 0,
                    task: None,
                });
                tasks.len() - 1
            }
        };
        let e = &mut tasks[index];
        // Generations start at 1, so that no key is MAIN.
        e.generation = e.generation.wrapping_add(1).max(1);
        let key = (u64::from(e.generation) << 32) | index as u64;
        let task = Rc::new(make(key));
        e.task = Some(task.clone());
        task
    }

    fn remove(&self, key: u64) -> Option<Rc<Task>> {
        let (index, generation) = split(key);
        let mut tasks = self.tasks.borrow_mut();
        let e = tasks.get_mut(index)?;
        if e.generation != generation {
            return None;
        }
        let t = e.task.take();
        if t.is_some() {
            self.free.borrow_mut().push(index as u32);
        }
        t
    }

    /// Takes the keys woken from other threads.
    fn take_incoming(&self) {
        let keys = {
            let mut q = self
                .remote
                .incoming
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // A key woken again from now on is queued again (this round takes it).
            q.queued.clear();
            std::mem::take(&mut q.keys)
        };
        for k in keys {
            self.schedule_key(k);
        }
    }

    /// Drops a task's future now (or, while it polls itself, after the poll).
    fn abort(&self, key: u64) {
        let (index, generation) = split(key);
        let task = {
            let tasks = self.tasks.borrow();
            match tasks.get(index) {
                Some(e) if e.generation == generation => e.task.clone(),
                _ => None,
            }
        };
        let Some(task) = task else { return };
        let taken = match task.future.try_borrow_mut() {
            Ok(mut slot) => Some(slot.take()),
            Err(_) => None,
        };
        match taken {
            Some(fut) => {
                self.remove(key);
                // Dropped in the caller's context (user code: a panic in a Drop
                // reaches the caller, not libuv).
                drop(fut);
            }
            None => task.aborted.set(true),
        }
    }
}

/// The idle handle's callback (started while a task is ready): polls the ready
/// tasks of the loop's executor.
fn on_idle(i: &Idle) {
    let lp = i.loop_();
    let shared = lp.shared();
    let local = shared.executor.borrow().as_ref().map(|e| e.local.clone());
    if let Some(l) = local {
        l.run_ready(shared);
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        forget_cached(self);
    }
}

/// The executor of `lp`, made on first use. `ClosedLoop` once the loop is gone or
/// tearing down.
pub(crate) fn executor(lp: &LoopHandle) -> Result<Rc<Executor>> {
    let shared = lp.shared();
    if let Some(e) = &*shared.executor.borrow() {
        if e.local.shut.get() {
            return Err(Error::closed_loop("spawn_local"));
        }
        return Ok(e.clone());
    }
    // Teardown shut this loop's executor (or the loop had none then): no second one
    // (nothing would shut it down; a callback of the teardown's last run may ask).
    let raw_loop = match shared.raw_for_new() {
        Some(raw) if !shared.executor_shut.get() => raw,
        _ => return Err(Error::closed_loop("spawn_local")),
    };
    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let remote = Arc::new(Remote {
        id,
        incoming: Mutex::new(Incoming::default()),
        sender: OnceLock::new(),
    });
    let idle = Idle::new_internal(lp)?;
    let local = Rc::new(Local {
        id,
        tasks: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        ready: RefCell::new(VecDeque::new()),
        idle,
        idle_on: Cell::new(false),
        main_woken: Cell::new(false),
        in_block_on: Cell::new(false),
        checks: Cell::new(0),
        raw_loop: Cell::new(raw_loop),
        shut: Cell::new(false),
        shared_id: Rc::as_ptr(shared),
        remote: remote.clone(),
    });
    let w = Rc::downgrade(&local);
    let check = Check::new_internal(lp)?;
    // A strong reference (the check handle belongs to the `Executor`, not to
    // `Local`: no cycle): no upgrade per iteration. The callback is taken out of
    // its slot while it runs, so `Local` outlives the call.
    let check_local = local.clone();
    check.start(move |c| {
        let l = &check_local;
        l.checks.set(l.checks.get().wrapping_add(1));
        // Most iterations find nothing to do: no loop reference is made for them.
        if l.idle_on.get() || !l.ready.borrow().is_empty() {
            l.run_ready(c.loop_().shared());
        }
    })?;
    check.unref()?;
    let async_weak = w.clone();
    let wakeup = Async::new_internal(lp, move |_| {
        if let Some(l) = async_weak.upgrade() {
            l.take_incoming();
        }
    })?;
    // The executor's own handle does not keep the loop alive.
    wakeup.unref()?;
    let _ = remote.sender.set(wakeup.sender()?);
    let _ = LOCALS.try_with(|l| l.borrow_mut().push((id, w)));
    let exec = Rc::new(Executor {
        local,
        wakeup,
        _check: check,
    });
    *shared.executor.borrow_mut() = Some(exec.clone());
    Ok(exec)
}

/// Loop teardown: refuses new tasks and drops every task's future (under the loop's
/// panic guard), while the loop is still open.
pub(crate) fn shutdown(shared: &LoopShared) {
    shared.executor_shut.set(true);
    let Some(exec) = shared.executor.borrow().clone() else {
        return;
    };
    let local = &exec.local;
    local.shut.set(true);
    local.raw_loop.set(std::ptr::null_mut());
    forget_cached(Rc::as_ptr(local));
    let _ = LOCALS.try_with(|l| {
        let mut l = l.borrow_mut();
        l.retain(|(i, _)| *i != local.id);
        // The thread's last executor: its table keeps no memory (a thread that
        // made loops once holds nothing of them after).
        if l.is_empty() {
            *l = Vec::new();
        }
    });
    // Dropping a future may wake or abort others; each round takes what is left.
    loop {
        let tasks: Vec<Rc<Task>> = local
            .tasks
            .borrow_mut()
            .iter_mut()
            .filter_map(|e| e.task.take())
            .collect();
        if tasks.is_empty() {
            break;
        }
        for t in tasks {
            let fut = t.future.try_borrow_mut().ok().and_then(|mut f| f.take());
            shared.guard(move || drop(fut));
        }
    }
    local.ready.borrow_mut().clear();
    drop(shared.executor.borrow_mut().take());
}

/// How a task ended without a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// Aborted ([`JoinHandle::abort`]), or dropped with its loop.
    Cancelled,
    /// Its poll panicked (the panic itself went to the loop's panic rule).
    Panicked,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("the task was cancelled"),
            JoinError::Panicked => f.write_str("the task panicked"),
        }
    }
}

impl std::error::Error for JoinError {}

struct JoinState<T> {
    result: Cell<Option<std::result::Result<T, JoinError>>>,
    finished: Cell<bool>,
    waker: Cell<Option<Waker>>,
    /// Set by the executor while the task's future polls (`Task::polling`):
    /// still set when its state is dropped, that poll unwound (the task
    /// panicked). A drop at any other time, while the thread unwinds or not, is
    /// a cancellation.
    polling: Rc<Cell<bool>>,
}

impl<T> JoinState<T> {
    fn finish(&self, r: std::result::Result<T, JoinError>) {
        if self.finished.replace(true) {
            return;
        }
        self.result.set(Some(r));
        // From the drop of a task's future too (`JoinGuard`), while its panic
        // unwinds; the waker is the handle's poller's, maybe one of the user's
        // own. One whose wake panics stays (see `super::wake`): it is not
        // dropped while that panic unwinds, and the handle lets it go.
        super::waking_in_drop(|| super::wake(&self.waker));
    }
}

/// Ends the join state when the task's future is dropped unfinished.
struct JoinGuard<T> {
    state: Rc<JoinState<T>>,
}

impl<T> Drop for JoinGuard<T> {
    fn drop(&mut self) {
        // Unwinding out of the task's poll drops the future's state on the way
        // (or the executor drops it after that poll): the poll never returned.
        // Any other drop (`abort`, the loop's teardown, also while an unrelated
        // panic unwinds) cancels the task.
        let e = if self.state.polling.get() {
            JoinError::Panicked
        } else {
            JoinError::Cancelled
        };
        self.state.finish(Err(e));
    }
}

/// A spawned task: a future of its output. Dropping it **detaches** the task (it
/// runs on; its output is dropped); [`abort`](JoinHandle::abort) cancels it.
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
    key: u64,
    local: Weak<Local>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.state.finished.get())
            .finish()
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task has ended (finished, panicked or cancelled).
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }

    /// Cancels the task: its future is dropped now (after its current poll, if it
    /// aborts itself), and this handle resolves to `Err(JoinError::Cancelled)`. A
    /// no-op on a task that has ended.
    pub fn abort(&self) {
        if self.state.finished.get() {
            return;
        }
        if let Some(local) = self.local.upgrade() {
            local.abort(self.key);
        }
    }
}

impl<T> Unpin for JoinHandle<T> {}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // The task's end must not wake the task of a handle that is gone, nor
        // keep its waker until then (nor a waker left by a wake that panicked).
        super::let_go(&self.state.waker);
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = std::result::Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.state.result.take() {
            return Poll::Ready(r);
        }
        if self.state.finished.get() {
            // Taken by an earlier poll: a finished handle polled again stays so.
            return Poll::Ready(Err(JoinError::Cancelled));
        }
        super::register(&self.state.waker, cx);
        Poll::Pending
    }
}

impl LoopHandle {
    /// Spawns `future` as a task of the loop's executor: it runs on this thread,
    /// polled by the loop whenever it is woken, while the loop runs (through
    /// [`Loop::run`] or [`Loop::block_on`]), interleaved with the loop's callbacks.
    ///
    /// - A new task is polled in the loop's next iteration; a ready task keeps the
    ///   loop from blocking. A task waiting for something keeps the loop alive only
    ///   through what it waits for (a timer, a read, a request): a task waiting for
    ///   a wake from another thread does not by itself keep [`Loop::run`] from
    ///   returning ([`Loop::block_on`] waits for such wakes).
    /// - The [`JoinHandle`] is a future of the output. Dropping it detaches the
    ///   task (its output is dropped at the end of its last poll: a panic of that
    ///   drop is the task's, under the rule below); [`JoinHandle::abort`] cancels
    ///   it (drops its future).
    /// - A panic in the task's poll follows the loop's panic rule (stops the loop,
    ///   resumed by `run`/`block_on`, unless a panic hook takes it); the task is
    ///   dropped and its handle resolves to `Err(JoinError::Panicked)`.
    /// - Dropping the loop drops every task's future (their handles resolve to
    ///   `Err(JoinError::Cancelled)`), before the loop closes its handles.
    ///
    /// Errors: `ClosedLoop` when the loop is gone or tearing down (the future is
    /// dropped).
    pub fn spawn_local<F>(&self, future: F) -> Result<JoinHandle<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let exec = executor(self)?;
        let local = &exec.local;
        let polling = Rc::new(Cell::new(false));
        let state = Rc::new(JoinState {
            result: Cell::new(None),
            finished: Cell::new(false),
            waker: Cell::new(None),
            polling: polling.clone(),
        });
        let guard = JoinGuard {
            state: state.clone(),
        };
        // The join state's only other owner is the handle: once the handle is
        // gone, the output is dropped where `guard` goes, at the end of the
        // task's last poll (under the loop's panic guard, as the poll), never
        // by the executor's bookkeeping afterwards.
        let fut: BoxFuture = Box::pin(async move {
            let guard = guard;
            let v = future.await;
            guard.state.finish(Ok(v));
        });
        let remote = local.remote.clone();
        let task = local.insert(move |key| Task {
            key,
            future: RefCell::new(Some(fut)),
            scheduled: Cell::new(false),
            aborted: Cell::new(false),
            waker: Waker::from(Arc::new(WakeKey { key, remote })),
            polling,
        });
        let key = task.key;
        local.schedule(task);
        Ok(JoinHandle {
            state,
            key,
            local: Rc::downgrade(local),
        })
    }
}

impl Loop {
    /// Runs the loop until `future` completes, and returns its output.
    ///
    /// - The future is polled on this thread, outside any libuv callback (a panic
    ///   in it unwinds out of `block_on` directly). Between polls the loop runs as
    ///   in [`Loop::run`] (callbacks, spawned tasks and other handles), until the
    ///   future is woken: the iteration in progress then completes and the future
    ///   is polled.
    /// - When the future completes, `block_on` returns at once: other handles and
    ///   tasks are left as they are (a started timer stays started, a pending task
    ///   stays pending) and go on at the next `run` or `block_on`.
    /// - While it runs, the loop waits for wakes from other threads even when
    ///   nothing else keeps it alive: a future that nothing will ever wake blocks
    ///   forever, as on any executor.
    /// - A panic in a callback or a spawned task follows the loop's panic rule: it
    ///   is resumed from here (unless a panic hook takes it); the future is dropped
    ///   before it is (a panic of that drop is dropped: the one resumed is the
    ///   first).
    ///
    /// Errors: `EBUSY` when called from inside the loop (a callback, a task, or the
    /// future of another `block_on`: the loop cannot run nested; `.await`
    /// instead); `ClosedLoop` after `close`. Likewise [`Loop::run`] from the
    /// future is `EBUSY`.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output> {
        if self.is_running() {
            return Err(Error::new(StatusCode::EBUSY, "block_on"));
        }
        if self.is_closed() {
            return Err(Error::closed_loop("block_on"));
        }
        let exec = executor(self)?;
        let local = exec.local.clone();
        if local.in_block_on.get() {
            // Called from the future of another `block_on` of this loop.
            return Err(Error::new(StatusCode::EBUSY, "block_on"));
        }
        let waker = Waker::from(Arc::new(WakeKey {
            key: MAIN,
            remote: local.remote.clone(),
        }));
        let mut cx = Context::from_waker(&waker);
        // In an `Option`, so that it can be dropped in place under a guard when
        // a panic unwinds out of here (see `CaughtDrop`).
        let mut slot = std::pin::pin!(Some(future));
        let mut future = CaughtDrop(slot.as_mut());
        // Referenced while we wait: the loop blocks for wakes from other threads.
        struct Unref<'a>(&'a Async);
        impl Drop for Unref<'_> {
            fn drop(&mut self) {
                let _ = self.0.unref();
            }
        }
        struct Leave<'a>(&'a Local, &'a LoopShared);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.in_block_on.set(false);
                self.0.main_woken.set(false);
                self.1.blocking_on.set(false);
            }
        }
        exec.wakeup.ref_()?;
        let _unref = Unref(&exec.wakeup);
        local.in_block_on.set(true);
        self.shared().blocking_on.set(true);
        let _leave = Leave(&local, self.shared());
        local.main_woken.set(true);
        let mut polled_at = local.checks.get();
        // Loop iterations between the last two polls.
        let mut gap = 0;
        loop {
            if local.main_woken.replace(false) {
                let Some(f) = future.0.as_mut().as_pin_mut() else {
                    unreachable!("the future is dropped only on the way out");
                };
                if let Poll::Ready(v) = f.poll(&mut cx) {
                    return Ok(v);
                }
                let now = local.checks.get();
                gap = now.wrapping_sub(polled_at);
                polled_at = now;
                if local.main_woken.get() {
                    // The future woke itself while polled (`yield_now`): one
                    // iteration that does not block (due callbacks, no wait for
                    // I/O) before the next poll, so that the loop's callbacks run
                    // between such polls instead of never.
                    self.run_from(RunMode::NoWait, true)?;
                    continue;
                }
            }
            // A wake of the future stops the loop (`uv_stop`: the iteration in
            // progress completes, then `uv_run` returns without blocking). A future
            // woken in each iteration gets one iteration per run (`Once`); one woken
            // every few iterations gets a run until its wake (`Default`, dearer to
            // enter as it runs due timers first, but entered once for several
            // iterations). The referenced async handle keeps the loop alive.
            let mode = if gap <= 1 {
                RunMode::Once
            } else {
                RunMode::Default
            };
            self.run_from(mode, true)?;
        }
    }
}

/// `block_on`'s future, which a panic unwinding out of `block_on` (one that `run`
/// resumes, a callback's or a task's, or the future's own) drops with a panic of
/// that drop caught and dropped: dropped by the unwinding itself, a future whose
/// `Drop` panics would abort the process (a panic while another unwinds). Costs
/// nothing until then.
struct CaughtDrop<'a, F>(Pin<&'a mut Option<F>>);

impl<F> Drop for CaughtDrop<'_, F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let future = &mut self.0;
            if let Err(q) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                future.set(None);
            })) {
                crate::callback::drop_quietly(q);
            }
        }
    }
}
