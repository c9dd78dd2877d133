//! One-shot work as futures: the generic adaptor [`request`] and the requests on
//! handles (connect, write, shutdown, UDP send), DNS and process exit.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{Notifier, Oneshot};
use crate::error::{Error, Result};
use crate::handles::{Pipe, Process, ProcessOptions, Tcp, Udp};
use crate::loop_::LoopHandle;
use crate::stream::{Stream, WriteData};
use crate::sys;
use crate::{AddrInfo, AddrInfoHints, NameInfo, NameInfoFlags, Request, Signum};

/// The completion callback [`request`] hands to the callback API it wraps.
/// Dropped without being called, it ends its future with `ECANCELED`.
pub type Done<T> = Box<dyn FnOnce(Result<T>)>;

/// What a callback API returns for its work in flight, and how to give up on it
/// when its future is dropped early.
pub trait Cancel {
    /// Asks the work to stop; its callback still runs (with a cancellation error,
    /// or with the result when it was too late to stop it) and its result is
    /// dropped.
    fn cancel(&self);
}

/// `uv_cancel`: work that has not started yet is dropped (its callback gets
/// `ECANCELED`, `EAI_CANCELED` for DNS); work a thread already runs completes.
impl Cancel for Request {
    fn cancel(&self) {
        let _ = Request::cancel(self);
    }
}

/// Work that cannot be cancelled: its completion is ignored.
impl Cancel for () {
    fn cancel(&self) {}
}

/// Turns a callback-style one-shot API into a future of its result.
///
/// `start` is called at once with the completion callback, [`Done<T>`], to pass
/// on; it returns what the API returns for its work in flight (a
/// [`Request`](crate::Request), or `()` for work that cannot be cancelled). If it
/// fails, the future resolves to its error (and the callback, never called, is
/// dropped). If the API lets go of the callback without calling it (a handle's
/// callback is dropped when the handle closes, say), the future resolves to
/// `ECANCELED` instead of waiting for good.
///
/// **Dropped before completion**, the future calls [`Cancel::cancel`]: for a
/// `Request`, libuv's `uv_cancel`, which drops work the thread pool has not
/// started; work already running completes. Either way the callback runs later,
/// on the loop, and its result is dropped: nothing leaks, nothing is freed while
/// libuv holds it.
///
/// ```
/// let lp = uv::Loop::new()?;
/// let dir = std::env::temp_dir();
/// let stat = lp.block_on(uv::future::request(|done| uv::Fs::stat(&lp, &dir, done)))??;
/// assert!(stat.is_dir());
/// # Ok::<(), uv::Error>(())
/// ```
pub fn request<T, R, S>(start: S) -> RequestFuture<T, R>
where
    T: 'static,
    R: Cancel,
    S: FnOnce(Done<T>) -> Result<R>,
{
    let slot = Rc::new(Oneshot::new());
    // Dropped unrun (the API let go of its callback: a handle closed, say), the
    // callback closes the slot: the future then ends instead of waiting for good.
    let s = Notifier(slot.clone());
    match start(Box::new(move |r| s.complete(r))) {
        Ok(req) => RequestFuture {
            slot,
            req: Some(req),
            err: None,
        },
        Err(e) => RequestFuture {
            slot,
            req: None,
            err: Some(e),
        },
    }
}

/// The future of [`request`]: the work's result. Dropped early, it cancels the
/// work (see [`request`]).
pub struct RequestFuture<T, R: Cancel = Request> {
    slot: Rc<Oneshot<Result<T>>>,
    /// The work in flight (`None` once it completed or when it failed to start).
    req: Option<R>,
    /// The error of a failed start, for the first poll.
    err: Option<Error>,
}

impl<T, R: Cancel> std::fmt::Debug for RequestFuture<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestFuture")
            .field("pending", &self.req.is_some())
            .finish()
    }
}

impl<T, R: Cancel> RequestFuture<T, R> {
    /// The work in flight (`None` once it completed).
    pub fn request(&self) -> Option<&R> {
        self.req.as_ref()
    }
}

impl<T, R: Cancel> Unpin for RequestFuture<T, R> {}

impl<T, R: Cancel> Future for RequestFuture<T, R> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        if let Some(e) = this.err.take() {
            return Poll::Ready(Err(e));
        }
        if this.req.is_none() {
            // Polled again after it resolved.
            return Poll::Ready(Err(Error::new(crate::StatusCode::EINVAL, "poll")));
        }
        match this.slot.poll_or_closed(cx) {
            Poll::Ready(r) => {
                this.req = None;
                // `None`: the callback was dropped without being called.
                Poll::Ready(
                    r.unwrap_or_else(|| Err(Error::new(crate::StatusCode::ECANCELED, "request"))),
                )
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T, R: Cancel> Drop for RequestFuture<T, R> {
    fn drop(&mut self) {
        if let Some(req) = self.req.take() {
            req.cancel();
        }
        // The completion may still come (the callback holds the slot): it must
        // not wake the task of a future that is gone, nor keep its waker until
        // then. A resolved future may hold one too: a waker whose wake panicked
        // stays for the next event (see `Oneshot::close`), and this drop is its
        // last reference's. Dropping a waker is user code, guarded while a panic
        // unwinds.
        let waker = self.slot.take_waker();
        if waker.is_some() {
            super::waking_in_drop(move || drop(waker));
        }
    }
}

/// The completion of a request on a handle ([`connect`], [`write()`], [`shutdown`],
/// [`send_to`]). libuv cannot cancel these: dropped early, the future leaves the
/// request in flight and its result is ignored (close the handle to end it: its
/// callback then gets `ECANCELED`).
pub struct HandleRequest {
    slot: Option<Rc<Oneshot<Result<()>>>>,
    err: Option<Error>,
}

impl std::fmt::Debug for HandleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleRequest")
            .field("pending", &self.slot.is_some())
            .finish()
    }
}

impl HandleRequest {
    fn start(submit: impl FnOnce(Box<dyn FnOnce(Result<()>)>) -> Result<()>) -> HandleRequest {
        let slot = Rc::new(Oneshot::new());
        let s = slot.clone();
        Self::from(slot, submit(Box::new(move |r| s.complete(r))))
    }

    fn from(slot: Rc<Oneshot<Result<()>>>, submitted: Result<()>) -> HandleRequest {
        match submitted {
            Ok(()) => HandleRequest {
                slot: Some(slot),
                err: None,
            },
            Err(e) => HandleRequest {
                slot: None,
                err: Some(e),
            },
        }
    }
}

impl Drop for HandleRequest {
    fn drop(&mut self) {
        // As `RequestFuture`'s: the completion must not wake a gone future's task.
        if let Some(slot) = self.slot.take() {
            let waker = slot.take_waker();
            super::waking_in_drop(move || drop(waker));
        }
    }
}

impl Future for HandleRequest {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.err.take() {
            return Poll::Ready(Err(e));
        }
        match &this.slot {
            Some(slot) => match slot.poll(cx) {
                Poll::Ready(r) => {
                    this.slot = None;
                    Poll::Ready(r)
                }
                Poll::Pending => Poll::Pending,
            },
            None => Poll::Ready(Err(Error::new(crate::StatusCode::EINVAL, "poll"))),
        }
    }
}

/// Connects `tcp` to `addr` (`uv_tcp_connect`); resolves when libuv's connect
/// callback runs: `ECONNREFUSED` and the like as errors.
///
/// Dropped early: the attempt goes on and its result is ignored; close the handle
/// to end it.
pub fn connect(tcp: &Tcp, addr: SocketAddr) -> HandleRequest {
    let slot = Rc::new(Oneshot::new());
    let s = slot.clone();
    HandleRequest::from(slot, tcp.connect(addr, move |_, r| s.complete(r)))
}

/// Connects `pipe` to the socket at `path` (`uv_pipe_connect2`). Dropped early:
/// as [`connect`].
pub fn connect_pipe(pipe: &Pipe, path: impl AsRef<Path>) -> HandleRequest {
    HandleRequest::start(|done| pipe.connect(path, move |_, r| done(r)))
}

/// Writes all of `data` to `stream` (`uv_write`); resolves when libuv's write
/// callback runs, that is, when the bytes were handed to the kernel (or the write
/// failed). Writes go out in the order their futures were made.
///
/// Dropped early: the write stays queued and completes (libuv cannot take it
/// back); the bytes may or may not reach the peer, and nothing reports the write
/// as done.
#[inline]
pub fn write<S: Stream>(stream: &S, data: impl Into<WriteData>) -> WriteFuture {
    // Converted first: the compiler then keeps the data's kind known down to
    // the buffers (no dispatch on it per write).
    let data: WriteData = data.into();
    if let WriteData::Static(bytes) = data {
        // Nothing to drop. Only the bytes' address and length are passed on (no
        // `WriteData` value kept for them).
        std::mem::forget(data);
        return write_tracked(stream, bytes);
    }
    write_tracked(stream, data)
}

/// What [`write()`] writes: static bytes, or any data.
trait WriteSource {
    fn write_to<S: Stream>(self, s: &S, cb: impl FnOnce(&S, Result<()>) + 'static) -> Result<()>;
}

impl WriteSource for &'static [u8] {
    #[inline(always)]
    fn write_to<S: Stream>(self, s: &S, cb: impl FnOnce(&S, Result<()>) + 'static) -> Result<()> {
        s.write(WriteData::Static(self), cb)
    }
}

impl WriteSource for WriteData {
    #[inline(always)]
    fn write_to<S: Stream>(self, s: &S, cb: impl FnOnce(&S, Result<()>) + 'static) -> Result<()> {
        s.write(self, cb)
    }
}

/// Submits the write of `data`, whose completion is counted by the stream's
/// tracker. The caller counts it as submitted there (`for_stream`, which makes
/// the tracker for the stream's first write) as soon as this returns `Ok`,
/// before any other code runs.
#[inline(always)]
fn submit_tracked<S: Stream>(stream: &S, data: impl WriteSource) -> Result<()> {
    // The callback finds the tracker where the write future found it, in the
    // stream's slots (so that it captures nothing).
    // SAFETY: the callback runs once, when its write completes: after the caller
    // counted the write as submitted to the stream's tracker, which the cell
    // names from then on (libuv never runs a write callback from `uv_write`, it
    // queues a finished write's callback for the loop's I/O phase,
    // `uv__write_req_finish` on Unix, a pending request on Windows; the cell,
    // once set, names its tracker for good, which the handle keeps alive until
    // its close callback, after every write callback), and `s` is the
    // handle of the stream whose write completed.
    // Not submitted, the callback is dropped unrun.
    let done = |s: &S, r| unsafe {
        StreamWrites::complete(StreamWrites::of(s), r, s.typed().ptr().as_ptr())
    };
    data.write_to(stream, done)
}

/// [`write()`] of `data` once its kind is sorted out.
#[inline(always)]
fn write_tracked<S: Stream>(stream: &S, data: impl WriteSource) -> WriteFuture {
    match submit_tracked(stream, data) {
        Ok(()) => {
            let writes = StreamWrites::for_stream(stream);
            let seq = writes.submitted.get() + 1;
            writes.submitted.set(seq);
            WriteFuture { writes, seq }
        }
        Err(e) => WriteFuture::refused(e),
    }
}

/// The writes of one stream made through [`write()`] and [`write_each`]: libuv
/// completes a stream's writes in the order they were made, so a count of
/// completed writes (and the few errors) tells each write future its result,
/// with no allocation per write (the write's callback finds the tracker in the
/// stream's slots and captures nothing). Made by the stream's first such write,
/// it is then kept by the handle until its close callback ran (one count) and
/// shared by the write futures (one count each).
pub(crate) struct StreamWrites {
    /// Writes submitted through this tracker (the last one's number).
    submitted: std::cell::Cell<u64>,
    /// Writes completed (in order: the first `completed` of the submitted ones).
    completed: std::cell::Cell<u64>,
    /// The failed writes' results, until their futures take them: runs of
    /// consecutive writes that failed with the same error, by their first write
    /// (the last one, the error). Once a write fails, the ones after it usually
    /// fail too (a close cancels every queued write): a run holds them all. A
    /// map, so that futures taking their errors in any order (each splits its
    /// run) cost a search each, not a scan of the runs.
    errors: std::cell::RefCell<ErrorRuns>,
    /// `errors` is not empty (a test of a flag on each completed write's poll).
    has_errors: std::cell::Cell<bool>,
    /// The tasks waiting for a write of this stream, by the number of the write
    /// each waits for (a write future's own, a batch's last) and the order they
    /// came in for it (one, unless the future was polled by several tasks): woken
    /// when that write completed, not on every completion (thousands of write
    /// futures polled by one task, each with a waker of its own, as
    /// `FuturesUnordered` gives them, made every completion wake and re-poll them
    /// all, and every registration compare its waker with all the others).
    wakers: std::cell::RefCell<std::collections::BTreeMap<(u64, u32), std::task::Waker>>,
    /// The smallest number in `wakers` (`u64::MAX`: none), so that a completion
    /// tests one number.
    next_wake: std::cell::Cell<u64>,
}

/// The runs of failed writes of a tracker (see `StreamWrites::errors`).
type ErrorRuns = std::collections::BTreeMap<u64, (u64, Error)>;

/// Runs of failed writes kept for write futures that have not taken them. Past
/// it (writes that alternately fail and succeed, their futures never polled), the
/// two oldest runs are joined: the writes between them that succeeded then report
/// the older run's error, and no failed write is ever reported done.
const WRITE_ERRORS_MAX: usize = 1024;

impl StreamWrites {
    /// A tracker with `submitted` writes, `completed` of them completed, and
    /// `errors` kept.
    fn with(submitted: u64, completed: u64, errors: ErrorRuns) -> Self {
        StreamWrites {
            submitted: std::cell::Cell::new(submitted),
            completed: std::cell::Cell::new(completed),
            has_errors: std::cell::Cell::new(!errors.is_empty()),
            errors: std::cell::RefCell::new(errors),
            wakers: Default::default(),
            next_wake: std::cell::Cell::new(u64::MAX),
        }
    }

    /// The tracker `stream`'s cell names: null before the stream's first write
    /// made through one.
    #[inline(always)]
    fn of<S: Stream>(stream: &S) -> *const StreamWrites {
        S::stream_slots(stream.typed().slots()).writes().get()
    }

    /// The tracker of `stream`'s writes (from its slots), made by the first write.
    /// Called after a write on the stream was accepted (so it is open).
    #[inline(always)]
    fn for_stream<S: Stream>(stream: &S) -> Rc<StreamWrites> {
        let cell = S::stream_slots(stream.typed().slots()).writes();
        let p = cell.get();
        if !p.is_null() {
            // SAFETY: a non-null pointer in the cell is a live tracker: made by
            // `Rc::new` in `new_for`, which set the cell and gave the handle a
            // count to keep until its close callback ran (the stream is open
            // here). The new count is owned by the returned Rc.
            return unsafe {
                Rc::increment_strong_count(p);
                Rc::from_raw(p)
            };
        }
        Self::new_for(stream, cell)
    }

    /// A new tracker, which `stream`'s cell `cell` (in its slots, empty) now
    /// names, with a count the handle keeps until its close callback ran
    /// (`keep_with`), so that it is alive for every write callback of the stream
    /// (they run before the close callback).
    #[cold]
    #[inline(never)]
    fn new_for(
        stream: &crate::Handle,
        cell: &std::cell::Cell<*const StreamWrites>,
    ) -> Rc<StreamWrites> {
        let w = Rc::new(StreamWrites::with(0, 0, Default::default()));
        // The stream is open (a write was just accepted): the handle takes the
        // count. Should it refuse, the count is leaked instead (the tracker then
        // lives for good): the cell must never name a freed tracker.
        if let Err(kept) = crate::handle::keep_with(stream, None, Box::new(w.clone())) {
            debug_assert!(false, "an open stream refused to keep its write tracker");
            std::mem::forget(kept);
        }
        cell.set(Rc::as_ptr(&w));
        w
    }

    /// The oldest write in flight of the tracker at `this` completed with `r`
    /// (libuv completes a stream's writes in order): counted, and the waiting
    /// tasks woken.
    ///
    /// # Safety
    /// `this` is the tracker of this write's stream (from a write callback: the
    /// handle keeps a count of it until its close callback, which runs after),
    /// and `stream` that stream's handle.
    #[inline]
    unsafe fn complete(this: *const StreamWrites, r: Result<()>, stream: *mut sys::uv_handle_t) {
        // SAFETY: the caller's contract.
        let w = unsafe { &*this };
        let seq = w.completed.get() + 1;
        w.completed.set(seq);
        if let Err(e) = r {
            w.failed(seq, e);
        }
        if seq >= w.next_wake.get() {
            // SAFETY: the contract (`stream` is the write's handle).
            unsafe { w.wake(seq, stream) };
        }
    }

    /// Keeps write `seq`'s error for its future.
    #[cold]
    #[inline(never)]
    fn failed(&self, seq: u64, e: Error) {
        let mut errs = self.errors.borrow_mut();
        if let Some(mut run) = errs.last_entry() {
            // Writes complete in order: `seq` is after every kept one.
            let (last, err) = run.get_mut();
            if *last + 1 == seq && err.code() == e.code() && err.operation() == e.operation() {
                *last = seq;
                self.has_errors.set(true);
                return;
            }
        }
        while errs.len() >= WRITE_ERRORS_MAX {
            // Joined, not dropped: a failed write must never read as done.
            let (first, (_, older)) = errs.pop_first().expect("at the limit");
            let (_, (last, _)) = errs.pop_first().expect("at the limit");
            errs.insert(first, (last, older));
        }
        errs.insert(seq, (seq, e));
        self.has_errors.set(true);
    }

    /// Wakes the tasks waiting for writes up to `done` (completed).
    ///
    /// # Safety
    /// `stream` is the handle of the stream whose write completed (`complete`).
    #[inline(never)]
    unsafe fn wake(&self, done: u64, stream: *mut sys::uv_handle_t) {
        let mut ready = Vec::new();
        {
            let mut wakers = self.wakers.borrow_mut();
            while let Some(e) = wakers.first_entry() {
                if e.key().0 > done {
                    break;
                }
                ready.push(e.remove());
            }
            self.next_wake
                .set(wakers.first_key_value().map_or(u64::MAX, |(k, _)| k.0));
        }
        // The borrow is over: a waker may poll a write future of this stream.
        // A wake is user code (the waker of whoever polled): one that panics must
        // not keep the wakers after it from their wake (their tasks would wait
        // for good). Each is woken, and each panic goes to the loop's panic
        // rule (the hook, or the first kept for `run`), in the order they came.
        // By reference, and each waker dropped after its wake: a wake by value
        // drops the waker inside a wake that panics, while its panic unwinds,
        // where a waker whose drop panics too aborts the process.
        let report = |p: crate::loop_::PanicPayload| {
            if std::thread::panicking() {
                // A drop of an unwinding panic completes the write: that panic
                // is the one that counts.
                crate::callback::drop_quietly(p);
            } else {
                // SAFETY: the contract: from the completion of a write request
                // of `stream` (`shared_for_request`'s contract), which gives the
                // loop's shared state, alive for this call.
                unsafe { &*crate::handle::shared_for_request(stream) }.panicked(p);
            }
        };
        for w in ready {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| w.wake_by_ref())) {
                report(p);
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(w))) {
                report(p);
            }
        }
    }

    /// Write `seq`'s result, once it completed: its error if one is kept.
    fn take_error(&self, seq: u64) -> Result<()> {
        match self.take_range_error(seq, seq) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The first error of the writes `first..=last` (completed), if any; the
    /// range's errors are no longer kept (the runs that reach past it keep the
    /// rest of their writes).
    fn take_range_error(&self, first: u64, last: u64) -> Option<Error> {
        if !self.has_errors.get() {
            return None;
        }
        let mut errs = self.errors.borrow_mut();
        let mut found = None;
        // The run that starts before the range and reaches into it: cut at the
        // range (the writes after the range, if it reaches past it, kept as a
        // run of their own). It is the range's first error.
        let before = errs.range_mut(..first).next_back();
        if let Some((_, (end, e))) = before.filter(|(_, (end, _))| *end >= first) {
            let (end_was, e) = (*end, e.clone());
            *end = first - 1;
            if end_was > last {
                errs.insert(last + 1, (end_was, e.clone()));
            }
            found = Some(e);
        }
        // The runs that start in the range (in order).
        while let Some(start) = errs.range(first..=last).next().map(|(s, _)| *s) {
            let (end, e) = errs.remove(&start).expect("found");
            if end > last {
                errs.insert(last + 1, (end, e.clone()));
            }
            found.get_or_insert(e);
        }
        self.has_errors.set(!errs.is_empty());
        found
    }

    /// Wakes this task when write `seq` of this stream completed (once: a poll
    /// again for the same write by the same task adds nothing).
    #[inline(never)]
    fn register(&self, seq: u64, cx: &Context<'_>) {
        let mut wakers = self.wakers.borrow_mut();
        let mut n = 0;
        for w in wakers.range((seq, 0)..=(seq, u32::MAX)).map(|(_, w)| w) {
            if w.will_wake(cx.waker()) {
                return;
            }
            n += 1;
        }
        wakers.insert((seq, n), cx.waker().clone());
        if seq < self.next_wake.get() {
            self.next_wake.set(seq);
        }
    }

    /// The future waiting for write `seq` is dropped before it completed: its
    /// wakers are let go (the completion must not wake a gone future's task, nor
    /// keep its waker until then).
    #[inline]
    fn forget(&self, seq: u64) {
        // No waker is kept for a write before the first one waited for.
        if seq >= self.next_wake.get() && seq != WRITE_OVER {
            self.forget_slow(seq);
        }
    }

    #[cold]
    #[inline(never)]
    fn forget_slow(&self, seq: u64) {
        let gone = {
            let mut wakers = self.wakers.borrow_mut();
            let mut later = wakers.split_off(&(seq, 0));
            let mut after = later.split_off(&(seq + 1, 0));
            wakers.append(&mut after);
            self.next_wake
                .set(wakers.first_key_value().map_or(u64::MAX, |(k, _)| k.0));
            later
        };
        // Dropping a waker is user code: outside the borrow, guarded while a
        // panic unwinds.
        super::waking_in_drop(move || drop(gone));
    }
}

/// The future of [`write()`].
///
/// Two words: the tracker of its stream's writes and the write's number. A write
/// libuv refused has a tracker of its own, which holds the error as its one
/// completed write's. Resolved, the number is `WRITE_OVER`: the future then
/// holds nothing but the reference, so that dropping it is one count.
pub struct WriteFuture {
    writes: Rc<StreamWrites>,
    seq: u64,
}

/// The number of a resolved write future: above any count of completed writes,
/// so that the ready test of `poll` fails for it (the slow path answers).
const WRITE_OVER: u64 = u64::MAX;

// A batch of writes keeps one future per write alive: they stay two words.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<WriteFuture>() == 16);

impl std::fmt::Debug for WriteFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFuture")
            .field("pending", &(self.seq != WRITE_OVER))
            .finish()
    }
}

impl Future for WriteFuture {
    type Output = Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        // The common case alone: a completed write, no failed write kept. (One
        // path that builds `Ok(())` where the caller tests it; the others' result
        // comes from a call.)
        if this.seq <= this.writes.completed.get() && !this.writes.has_errors.get() {
            this.seq = WRITE_OVER;
            return Poll::Ready(Ok(()));
        }
        this.poll_slow(cx)
    }
}

impl Drop for WriteFuture {
    #[inline]
    fn drop(&mut self) {
        self.writes.forget(self.seq);
    }
}

impl WriteFuture {
    /// The future of a write libuv refused with `e`: a tracker of its own, with
    /// one write, completed with `e` (no stream, nothing in flight).
    #[cold]
    #[inline(never)]
    fn refused(e: Error) -> WriteFuture {
        let writes = Rc::new(StreamWrites::with(1, 1, [(1, (1, e))].into()));
        WriteFuture { writes, seq: 1 }
    }

    /// `poll` but for a completed write with no failed write kept: the write in
    /// flight (the task waits), a completed write's result when some failed, or
    /// `EINVAL` once resolved.
    #[cold]
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let seq = self.seq;
        if seq == WRITE_OVER {
            return Poll::Ready(Err(Error::new(crate::StatusCode::EINVAL, "poll")));
        }
        if seq > self.writes.completed.get() {
            self.writes.register(seq, cx);
            return Poll::Pending;
        }
        self.seq = WRITE_OVER;
        Poll::Ready(self.writes.take_error(seq))
    }
}

/// Writes each item of `items` to `stream` as a write of its own (`uv_write`,
/// as [`write()`] does, in order, all submitted now), with one future for them
/// all: it resolves when the last one completed, to the number of writes, or to
/// the error of the first one that failed.
///
/// For a batch of messages to send (static strings, shared buffers, `Bytes`:
/// no copy of them is made) where only the end of the batch matters: no future
/// per write is kept or polled. If a write is refused (the stream closed
/// meanwhile, say), the items after it are not taken, and the future resolves
/// to that error once the writes before it completed (or to an earlier write's
/// error). Writes the iterator makes on the stream itself go out between the
/// batch's and keep their own results.
///
/// Dropped early: as for [`write()`], the writes complete and nothing reports
/// them.
///
/// ```
/// use futures::io::AsyncReadExt;
/// use uv::future::{self as uvf, AsyncStream};
///
/// let lp = uv::Loop::new()?;
/// let (a, b) = uv::Pipe::pair(&lp)?;
/// let lines = ["one\n", "two\n", "three\n"];
/// let (written, got) = lp.block_on(async {
///     let n = uvf::write_each(&a, lines.map(|l| uv::WriteData::Static(l.as_bytes())));
///     let shut = uvf::shutdown(&a);
///     let n = n.await?;
///     shut.await?;
///     let mut got = Vec::new();
///     AsyncStream::new(b.clone()).read_to_end(&mut got).await?;
///     Ok::<_, Box<dyn std::error::Error>>((n, got))
/// })??;
/// assert_eq!(written, 3);
/// assert_eq!(got, b"one\ntwo\nthree\n");
/// a.close();
/// b.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_each<S, I>(stream: &S, items: I) -> WriteEach
where
    S: Stream,
    I: IntoIterator,
    I::Item: Into<WriteData>,
{
    let mut batch = WriteEach {
        writes: None,
        first: 0,
        last: 0,
        segments: Vec::new(),
        refused: None,
        done: false,
    };
    // The count of submitted writes of the tracker `batch.writes` holds (before
    // the first write, one that never equals `last`), and the batch's last write,
    // kept here while the writes are made (stored in the batch at the end).
    let before_first = std::cell::Cell::new(u64::MAX);
    let mut submitted: *const std::cell::Cell<u64> = &before_first;
    let mut last = 0;
    for item in items {
        // As in `write`: the kind known down to the buffers, static bytes
        // passed on alone.
        let data: WriteData = item.into();
        let r = if let WriteData::Static(bytes) = data {
            std::mem::forget(data);
            submit_tracked(stream, bytes)
        } else {
            submit_tracked(stream, data)
        };
        if let Err(e) = r {
            batch.refused = Some(e);
            break;
        }
        // The write just submitted (no other code ran since) is counted in the
        // stream's tracker, which its callback finds in the stream's cell. The
        // common case: the batch's tracker, which is the cell's (a stream keeps
        // its tracker until it closes), with the batch's last write as its last.
        // SAFETY: `submitted` is `before_first` or the count of the tracker
        // `batch.writes` holds: alive either way.
        let count = unsafe { &*submitted };
        if count.get() == last {
            last += 1;
            count.set(last);
            continue;
        }
        (submitted, last) = batch.count_slow(stream, last);
    }
    batch.last = last;
    batch
}

/// The future of [`write_each`]: the number of writes once the last completed,
/// or the first failed one's error.
///
/// Its writes are numbered in the tracker of their stream's writes (the one
/// [`WriteFuture`]s share, which the stream keeps until it closes): the ranges
/// `segments` and `first..=last` (one range unless the batch's iterator made
/// writes of its own on the stream).
pub struct WriteEach {
    /// The tracker of the stream (`None`: no write made).
    writes: Option<Rc<StreamWrites>>,
    first: u64,
    last: u64,
    /// Earlier ranges of the batch's writes (other writes were made on the
    /// stream between them).
    segments: Vec<(u64, u64)>,
    /// The error of the write libuv refused (the batch stopped there).
    refused: Option<Error>,
    done: bool,
}

impl std::fmt::Debug for WriteEach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteEach")
            .field("pending", &!self.done)
            .finish()
    }
}

impl WriteEach {
    /// Counts the write just submitted (no other code ran since), the batch's
    /// writes so far ending at `last`, when the common case does not apply: the
    /// batch's first write, or one after other writes were made on the stream
    /// (a new range). Returns the tracker's count of submitted writes and the
    /// write's number.
    #[cold]
    #[inline(never)]
    fn count_slow<S: Stream>(
        &mut self,
        stream: &S,
        last: u64,
    ) -> (*const std::cell::Cell<u64>, u64) {
        let w = match &self.writes {
            Some(w) => {
                // The stream's cell names the tracker it was first given for
                // good (set once, in `new_for`).
                debug_assert!(std::ptr::eq(Rc::as_ptr(w), StreamWrites::of(stream)));
                self.segments.push((self.first, last));
                w
            }
            None => self.writes.insert(StreamWrites::for_stream(stream)),
        };
        let seq = w.submitted.get() + 1;
        w.submitted.set(seq);
        self.first = seq;
        (&w.submitted, seq)
    }
}

impl Drop for WriteEach {
    fn drop(&mut self) {
        if let Some(w) = &self.writes {
            if !self.done {
                w.forget(self.last);
            }
        }
    }
}

impl Future for WriteEach {
    type Output = Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(Error::new(crate::StatusCode::EINVAL, "poll")));
        }
        let mut written = 0;
        let mut err = None;
        if let Some(w) = this.writes.take() {
            if this.last > w.completed.get() {
                w.register(this.last, cx);
                this.writes = Some(w);
                return Poll::Pending;
            }
            // All completed: their errors are taken (the first kept).
            this.segments.push((this.first, this.last));
            for (first, last) in this.segments.drain(..) {
                let e = w.take_range_error(first, last);
                if err.is_none() {
                    err = e;
                }
                written += last + 1 - first;
            }
        }
        this.done = true;
        Poll::Ready(match err.or_else(|| this.refused.take()) {
            Some(e) => Err(e),
            None => Ok(written as usize),
        })
    }
}

/// Shuts the write side of `stream` down once the queued writes are done
/// (`uv_shutdown`). Dropped early: the shutdown still happens.
pub fn shutdown<S: Stream>(stream: &S) -> HandleRequest {
    let slot = Rc::new(Oneshot::new());
    let s = slot.clone();
    HandleRequest::from(slot, stream.shutdown(move |_, r| s.complete(r)))
}

/// Sends one datagram (`uv_udp_send`; `addr` `None` for a connected socket's
/// peer); resolves when libuv's send callback runs. Dropped early: the datagram is
/// still sent.
pub fn send_to(udp: &Udp, data: impl Into<WriteData>, addr: Option<SocketAddr>) -> HandleRequest {
    let slot = Rc::new(Oneshot::new());
    let s = slot.clone();
    HandleRequest::from(slot, udp.send(data, addr, move |_, r| s.complete(r)))
}

/// Resolves `host` and/or `service` on the thread pool (`uv_getaddrinfo`).
///
/// Dropped early: the query is cancelled (`uv_cancel`) if no thread has taken it
/// yet, else it completes and its result is dropped.
pub fn getaddrinfo(
    lp: &LoopHandle,
    host: Option<&str>,
    service: Option<&str>,
    hints: &AddrInfoHints,
) -> RequestFuture<Vec<AddrInfo>> {
    request(|done| lp.getaddrinfo_with(host, service, hints, done))
}

/// The host and service names of `addr`, on the thread pool (`uv_getnameinfo`).
/// Dropped early: as [`getaddrinfo`].
pub fn getnameinfo(
    lp: &LoopHandle,
    addr: SocketAddr,
    flags: NameInfoFlags,
) -> RequestFuture<NameInfo> {
    request(|done| lp.getnameinfo_with(addr, flags, done))
}

/// Starts a child process ([`Process::spawn`]) and gives its handle and the
/// future of its exit: the exit status and the signal that ended it.
///
/// Dropping the [`Exit`] future changes nothing: the child runs on, and its handle
/// stays open until it exited (as with a callback). Closing the handle before the
/// child exited stops watching it (the exit callback never runs): the future then
/// resolves to `ClosedHandle` when the close completes, instead of never.
pub fn spawn(lp: &LoopHandle, options: &ProcessOptions<'_>) -> Result<(Process, Exit)> {
    let slot = Rc::new(Oneshot::new());
    let s = Notifier(slot.clone());
    let process = Process::spawn(lp, options, move |_, status, signal| {
        let s: &Oneshot<_> = &s;
        s.complete((status, signal))
    })?;
    Ok((process, Exit { slot, done: false }))
}

/// The exit of a process started by [`spawn`]: `Ok((exit status, terminating
/// signal))`, or `ClosedHandle` when the process handle was closed before the
/// child exited (by [`Handle::close`](crate::Handle::close), or with its loop).
/// Polled again after it resolved, it answers `EINVAL` (it does not wait).
pub struct Exit {
    slot: Rc<Oneshot<(i64, Option<Signum>)>>,
    done: bool,
}

impl std::fmt::Debug for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exit")
    }
}

impl Drop for Exit {
    fn drop(&mut self) {
        // As `RequestFuture`'s: the exit must not wake a gone future's task.
        let waker = self.slot.take_waker();
        super::waking_in_drop(move || drop(waker));
    }
}

impl Future for Exit {
    type Output = Result<(i64, Option<Signum>)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(Error::new(crate::StatusCode::EINVAL, "poll")));
        }
        let r = this
            .slot
            .poll_or_closed(cx)
            .map(|v| v.ok_or_else(|| Error::closed_handle("exit")));
        if r.is_ready() {
            this.done = true;
            // A waker left by an exit wake that panicked is let go: the handle's
            // close (its exit callback dropped) must not wake it.
            drop(this.slot.take_waker());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancelled() -> Error {
        Error::new(crate::StatusCode::ECANCELED, "uv_write")
    }

    /// Writes that alternately fail and succeed, more runs of failures than are
    /// kept: every failed write still reads as failed (runs are joined, not
    /// dropped), and a run of failures is one entry.
    #[test]
    fn failed_writes_are_never_reported_done_past_the_limit() {
        let w = StreamWrites::with(0, 0, Default::default());
        let n = 2 * WRITE_ERRORS_MAX as u64 + 10;
        for seq in 1..=n {
            if seq % 2 == 1 {
                w.failed(seq, cancelled());
            }
        }
        assert!(w.errors.borrow().len() <= WRITE_ERRORS_MAX);
        for seq in (1..=n).rev().filter(|s| s % 2 == 1) {
            assert!(w.take_error(seq).is_err(), "write {seq}");
        }
        let w = StreamWrites::with(0, 0, Default::default());
        for seq in 1..=10_000 {
            w.failed(seq, cancelled());
        }
        assert_eq!(w.errors.borrow().len(), 1);
        assert!(w.take_error(5000).is_err());
        assert_eq!(w.errors.borrow().len(), 2);
        assert!(w.take_range_error(1, 4999).is_some());
        assert!(w.take_range_error(5001, 10_000).is_some());
        assert!(!w.has_errors.get());
        assert!(w.take_error(7).is_ok());
    }
}
