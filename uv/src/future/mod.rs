//! async/await on the loop: the loop as a
//! single-threaded executor, futures for one-shot requests, streams for repeated
//! events and `futures-io` for TCP, pipes and TTYs. The guide's
//! [`async`](crate::guide::async_await) chapter explains the model and what
//! dropping each future does.
//!
//! - **Executor**: [`Loop::block_on`](crate::Loop::block_on),
//!   [`LoopHandle::spawn_local`](crate::LoopHandle::spawn_local), [`JoinHandle`].
//! - **Any callback API as a future**: [`request`] (cancels through
//!   [`Request::cancel`](crate::Request::cancel) when dropped early).
//! - **Requests**: [`connect`], [`connect_pipe`], [`write()`], [`write_each`], [`shutdown`],
//!   [`send_to`], [`getaddrinfo`], [`getnameinfo`], [`queue_work`], [`random`],
//!   [`spawn`] (a process and its exit); every file-system operation as
//!   `Fs::<name>_async` ([`Fs::stat_async`](crate::Fs::stat_async), …), generated
//!   from the spec over [`request`].
//! - **Time**: [`sleep`], [`timeout`], [`interval`].
//! - **Streams** (`futures_core::Stream`): [`read_chunks`], [`incoming`],
//!   [`recv_from`], [`signals`], [`fs_events`], [`fs_poll`]; and
//!   [`AsyncStream`], `AsyncRead`/`AsyncBufRead`/`AsyncWrite` over any
//!   [`Stream`](crate::Stream).
//!
//! Every operation **starts when it is called**, as its callback form does, and the
//! future is its completion: writes go out in the order their futures were made,
//! and a batch of writes needs no join to be queued. A submission error (a closed
//! handle, a bad argument) comes out of the future.

use std::cell::Cell;
use std::task::{Context, Poll, Waker};

pub(crate) mod executor;
mod io;
mod requests;
mod streams;
mod time;

pub use executor::{JoinError, JoinHandle};
pub use io::{read_chunks, AsyncStream, ReadChunk, ReadChunks, ReadParts};
pub(crate) use requests::StreamWrites;
pub use requests::{
    connect, connect_pipe, getaddrinfo, getnameinfo, request, send_to, shutdown, spawn, write,
    write_each, Cancel, Done, Exit, HandleRequest, RequestFuture, WriteEach, WriteFuture,
};
pub use streams::{
    fs_events, fs_poll, incoming, recv_from, signals, FsEventItem, FsEvents, FsPolls, Incoming,
    RecvFrom, Signals,
};
pub use time::{interval, sleep, timeout, Interval, Sleep, Timeout};

/// [`LoopHandle::queue_work`](crate::LoopHandle::queue_work) as a future: `work`
/// runs on libuv's thread pool and the future gives its value. Dropped before the
/// work starts, the future cancels it (`work` never runs); dropped later, the work
/// completes and its value is dropped on the loop. A panic in `work` resurfaces from
/// the loop (`run` or `block_on`), as a callback's does; the future then never
/// completes.
///
/// ```
/// let lp = uv::Loop::new()?;
/// let sum = lp.block_on(uv::future::queue_work(&lp, || (1..=10u64).sum::<u64>()))??;
/// assert_eq!(sum, 55);
/// # Ok::<(), uv::Error>(())
/// ```
pub fn queue_work<T, F>(lp: &crate::LoopHandle, work: F) -> RequestFuture<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    request(|done| lp.queue_work(work, done))
}

/// [`LoopHandle::random`](crate::LoopHandle::random) as a future: `buf` filled with
/// random bytes on the thread pool (`flags` must be 0). Dropped early, the request
/// is cancelled if it has not started.
pub fn random(lp: &crate::LoopHandle, buf: Vec<u8>, flags: u32) -> RequestFuture<Vec<u8>> {
    request(|done| lp.random(buf, flags, done))
}

/// Stores the task's waker in `slot` (keeping the stored one when it wakes the same
/// task).
#[inline]
pub(crate) fn register(slot: &Cell<Option<Waker>>, cx: &Context<'_>) {
    let w = match slot.take() {
        Some(w) if w.will_wake(cx.waker()) => w,
        _ => cx.waker().clone(),
    };
    slot.set(Some(w));
}

/// Wakes the waker stored in `slot`, if any, and lets it go; a wake that
/// panics keeps it (see [`wake_taken`]).
pub(crate) fn wake(slot: &Cell<Option<Waker>>) {
    if let Some(w) = slot.take() {
        drop(wake_taken(slot, w, None));
    }
}

/// Lets the waker in `slot` go: its future or stream is gone or has ended, and
/// the event it waited for (which may still come: a close callback, a completion)
/// must not wake a task that no longer waits for it, nor keep its waker until
/// then. Dropping a waker is user code, guarded while a panic unwinds.
pub(crate) fn let_go(slot: &Cell<Option<Waker>>) {
    let w = slot.take();
    if w.is_some() {
        waking_in_drop(move || drop(w));
    }
}

/// Wakes `w`, just taken out of `slot`, and gives it back. The wake is user code
/// (the waker of whoever polled): one that panics is not taken as delivered
/// (its task may never have been told), so `w` goes back into `slot` (and
/// `armed`, if given, is set again), unless the wake registered a newer waker,
/// and the panic goes on (to the caller's guard: the loop's panic rule). The
/// next event then wakes the task again instead of finding no waker: the wake-up
/// is not lost. Nor is `w` dropped while the panic unwinds in this frame (a
/// waker whose drop panics too would abort the process).
#[inline]
fn wake_taken(slot: &Cell<Option<Waker>>, w: Waker, armed: Option<&Cell<bool>>) -> Waker {
    /// Puts the waker back if the wake unwinds.
    struct Back<'a> {
        slot: &'a Cell<Option<Waker>>,
        armed: Option<&'a Cell<bool>>,
        waker: Option<Waker>,
    }
    impl Drop for Back<'_> {
        #[inline]
        fn drop(&mut self) {
            if let Some(w) = self.waker.take() {
                put_back(self.slot, self.armed, w);
            }
        }
    }
    let mut back = Back {
        slot,
        armed,
        waker: Some(w),
    };
    if let Some(w) = &back.waker {
        w.wake_by_ref();
    }
    back.waker.take().expect("kept through the wake")
}

/// The unwinding side of [`wake_taken`]: `w`, whose wake panicked, back into
/// `slot` (a newer waker the wake registered stays; `w` is then dropped, the
/// drop's own panic caught: the thread unwinds).
#[cold]
#[inline(never)]
fn put_back(slot: &Cell<Option<Waker>>, armed: Option<&Cell<bool>>, w: Waker) {
    if let Some(a) = armed {
        a.set(true);
    }
    match slot.take() {
        None => slot.set(Some(w)),
        newer => {
            slot.set(newer);
            waking_in_drop(move || drop(w));
        }
    }
}

/// A task's waker kept for repeated waits: after a wake it stays (disarmed), so
/// that the task waiting again registers without cloning it, and the wake itself
/// needs no waker of its own (`wake_by_ref`). Wakes only while armed: as a slot
/// that gives its waker away, it wakes once per registration.
#[derive(Default)]
pub(crate) struct WakerSlot {
    waker: Cell<Option<Waker>>,
    armed: Cell<bool>,
}

impl WakerSlot {
    /// Arms the slot with the task's waker (keeping the stored one when it wakes
    /// the same task).
    #[inline]
    pub(crate) fn register(&self, cx: &Context<'_>) {
        register(&self.waker, cx);
        self.armed.set(true);
    }

    /// Disarms the slot and lets its waker go (see [`let_go`]).
    pub(crate) fn let_go(&self) {
        self.armed.set(false);
        let_go(&self.waker);
    }

    /// Wakes the registered task, if the slot is armed, and disarms it. A wake
    /// that panics leaves the slot armed (see [`wake_taken`]): the next event
    /// wakes the task again.
    #[inline]
    pub(crate) fn wake(&self) {
        if self.armed.replace(false) {
            if let Some(w) = self.waker.take() {
                let w = wake_taken(&self.waker, w, Some(&self.armed));
                // A waker registered by the wake (user code may poll) stays.
                let newer = self.waker.replace(Some(w));
                if newer.is_some() {
                    self.waker.set(newer);
                }
            }
        }
    }
}

thread_local! {
    /// The loop (its shared state's address, an identity never dereferenced)
    /// whose I/O phase is running a callback of this module that wakes a task, or
    /// null. A task of that loop woken then needs no idle handle to keep the loop
    /// from blocking: the loop's check phase, which polls the woken tasks, comes
    /// right after the I/O phase, before the loop can block again. (Plain data: a
    /// thread-local that needs dropping would register a destructor.)
    static IO_PHASE: Cell<*const crate::loop_::LoopShared> =
        const { Cell::new(std::ptr::null()) };
}

/// Whether `shared`'s loop is in its I/O phase, in a callback that [`wake_in_io`]
/// runs.
#[inline]
pub(crate) fn in_io_phase(shared: *const crate::loop_::LoopShared) -> bool {
    IO_PHASE.try_with(|c| c.get() == shared).unwrap_or(false)
}

/// Wakes `slot`'s task from a callback that libuv runs only in the I/O phase of
/// `shared`'s loop (uv__io_poll: a read, a new connection, a datagram), telling
/// the executor so (see `IO_PHASE`).
#[inline]
pub(crate) fn wake_in_io(shared: *const crate::loop_::LoopShared, slot: &WakerSlot) {
    /// Puts the previous value back, also when the wake unwinds (a waker of
    /// another executor runs its code).
    struct Restore(*const crate::loop_::LoopShared);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            let _ = IO_PHASE.try_with(|c| c.set(self.0));
        }
    }
    let Ok(prev) = IO_PHASE.try_with(|c| c.replace(shared)) else {
        slot.wake();
        return;
    };
    let _restore = Restore(prev);
    slot.wake();
}

/// A value that one callback delivers and one future takes.
pub(crate) struct Oneshot<T> {
    value: Cell<Option<T>>,
    waker: Cell<Option<Waker>>,
    /// The callback that was to deliver the value is gone (see [`Notifier`]).
    closed: Cell<bool>,
}

impl<T> Oneshot<T> {
    pub(crate) fn new() -> Self {
        Oneshot {
            value: Cell::new(None),
            waker: Cell::new(None),
            closed: Cell::new(false),
        }
    }

    pub(crate) fn complete(&self, v: T) {
        self.value.set(Some(v));
        wake(&self.waker);
    }

    /// Takes the waker of the last poll out (its future is gone).
    pub(crate) fn take_waker(&self) -> Option<Waker> {
        self.waker.take()
    }

    pub(crate) fn poll(&self, cx: &Context<'_>) -> Poll<T> {
        match self.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                register(&self.waker, cx);
                Poll::Pending
            }
        }
    }

    /// As `poll`, and `None` once the value can no longer come.
    pub(crate) fn poll_or_closed(&self, cx: &Context<'_>) -> Poll<Option<T>> {
        match self.value.take() {
            Some(v) => Poll::Ready(Some(v)),
            None if self.closed.get() => Poll::Ready(None),
            None => {
                register(&self.waker, cx);
                Poll::Pending
            }
        }
    }
}

impl<T> Closes for Oneshot<T> {
    fn close(&self) {
        self.closed.set(true);
        // A value's wake takes the waker: one still here beside a value is one
        // whose wake panicked (see `wake_taken`), and the close is the next and
        // last event that can tell its task. Woken again, as any waker a
        // panicking wake left (a resolved future let its waker go: none is
        // woken for it).
        wake(&self.waker);
    }
}

/// State that a handle's callback fills and a future or stream waits on, and that
/// learns when that callback is gone.
pub(crate) trait Closes {
    /// The callback is gone: mark the state and wake the waiting task.
    fn close(&self);
}

/// The callback's share of a [`Closes`] state. A handle drops its callback when it
/// closes (by its owner's hand, or with its loop), and this value with it: the
/// state is then closed and the waiting task woken, so that no future or stream
/// waits for a callback that can no longer come (an executor other than the
/// loop's would otherwise wait forever).
pub(crate) struct Notifier<T: Closes>(pub(crate) std::rc::Rc<T>);

impl<T: Closes> std::ops::Deref for Notifier<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Closes> Drop for Notifier<T> {
    fn drop(&mut self) {
        waking_in_drop(|| self.0.close());
    }
}

/// Runs `wake`, a drop's wake of a task (user code: the waker of whoever polled).
/// While the thread unwinds (the drop of what a panicking task or callback held),
/// under `catch_unwind`, its panic dropped: unwinding out of a drop during a panic
/// aborts the process ("panic in a destructor during cleanup"), and the panic
/// already unwinding is the one that counts.
#[inline]
pub(crate) fn waking_in_drop(wake: impl FnOnce()) {
    if std::thread::panicking() {
        waking_while_unwinding(wake);
    } else {
        wake();
    }
}

#[cold]
#[inline(never)]
fn waking_while_unwinding(wake: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(wake)) {
        crate::callback::drop_quietly(p);
    }
}

/// Yields once to the executor: the task is woken at once and polled again in a
/// coming round, after the other ready tasks and the loop's pending callbacks.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
