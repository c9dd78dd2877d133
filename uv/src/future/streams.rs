//! Repeated events as `futures_core::Stream`s: connections ([`incoming`]),
//! datagrams ([`recv_from`]), signals ([`signals`]), file-system events
//! ([`fs_events`]) and stat polls ([`fs_poll`]).
//!
//! Each stream ends (`None`) once its handle is closed, also when it is closed
//! through another value (a clone, `close_all_handles`, the loop's teardown) while
//! a task waits on it: the handle's callback wakes the task as it is dropped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream as FuturesStream;

use super::{let_go, register, wake, Closes, Notifier};
use crate::error::{Error, Result};
use crate::handles::{FsEvent, FsPoll, Signal, Udp};
use crate::loop_::LoopHandle;
use crate::stream::Stream;
use crate::{FsEventFlags, FsEventKind, Signum, Stat, StatusCode};

/// Events a callback queued for a stream to take.
struct Queue<T> {
    items: RefCell<VecDeque<T>>,
    waker: Cell<Option<Waker>>,
    /// The handle's callback is gone (the handle closed, with its loop): nothing
    /// more comes after the queued items.
    closed: Cell<bool>,
}

impl<T> Closes for Queue<T> {
    fn close(&self) {
        self.closed.set(true);
        wake(&self.waker);
    }
}

impl<T> Queue<T> {
    fn new() -> Rc<Queue<T>> {
        Rc::new(Queue {
            items: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
            closed: Cell::new(false),
        })
    }

    fn push(&self, v: T) {
        self.items.borrow_mut().push_back(v);
        wake(&self.waker);
    }

    /// The next item; `None` once the queue is empty and closed.
    fn poll(&self, cx: &Context<'_>) -> Poll<Option<T>> {
        match self.items.borrow_mut().pop_front() {
            Some(v) => Poll::Ready(Some(v)),
            None if self.closed.get() => Poll::Ready(None),
            None => {
                register(&self.waker, cx);
                Poll::Pending
            }
        }
    }

    fn len(&self) -> usize {
        self.items.borrow().len()
    }
}

/// Held by a [`recv_from`] stream's receive callback: when the callback is
/// dropped (the handle closed, through any value or with its loop; receiving
/// stopped, by the stream's pause or through a clone; another callback started
/// through a clone), the callback no longer receives for the stream: it is marked
/// so, unless a newer callback of the stream receives already, and the stream's
/// task is woken. Its next poll then ends the stream (the handle is closing) or
/// starts receiving again, instead of waiting for datagrams nobody receives.
struct RecvGuard {
    queue: Rc<Queue<DatagramItem>>,
    /// The stream's mark: which of its callbacks receives (see `RecvFrom`).
    receiving: Rc<Cell<u64>>,
    /// This callback's number.
    number: u64,
}

impl Drop for RecvGuard {
    fn drop(&mut self) {
        if self.receiving.get() == self.number {
            self.receiving.set(0);
        }
        super::waking_in_drop(|| wake(&self.queue.waker));
    }
}

struct ListenState {
    error: Cell<Option<Error>>,
    waker: Cell<Option<Waker>>,
}

/// The server closed (its listen callback is gone): wake the task, whose next poll
/// ends the stream.
impl Closes for ListenState {
    fn close(&self) {
        wake(&self.waker);
    }
}

/// Listens on `server` (`uv_listen`) and gives its connections as a stream: each
/// item is an accepted connection (a new handle of the server's type), or the
/// error libuv reported for one. libuv stops taking connections from the kernel
/// while one is waiting to be accepted, so connections queue in the kernel's
/// backlog, not in memory, when the stream is not polled.
///
/// Dropping the stream **closes the server** (it stops listening); the
/// connections already accepted are not affected. The stream ends (`None`) when
/// the server is closed.
///
/// Errors: those of [`Stream::listen`] (`EINVAL` when already listening).
pub fn incoming<S: Stream>(server: S, backlog: i32) -> Result<Incoming<S>> {
    let st = Rc::new(ListenState {
        error: Cell::new(None),
        waker: Cell::new(None),
    });
    let s = Notifier(st.clone());
    server.listen(backlog, move |_, r| {
        if let Err(e) = r {
            s.error.set(Some(e));
        }
        wake(&s.waker);
    })?;
    Ok(Incoming { server, st })
}

/// The stream of [`incoming`].
pub struct Incoming<S: Stream> {
    server: S,
    st: Rc<ListenState>,
}

impl<S: Stream> std::fmt::Debug for Incoming<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish()
    }
}

impl<S: Stream> Incoming<S> {
    /// The listening handle.
    pub fn get_ref(&self) -> &S {
        &self.server
    }

    /// The next connection (`None` once the server is closed).
    pub async fn accept(&mut self) -> Option<Result<S>> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<S>>> {
        if self.server.is_closing() {
            return Poll::Ready(None);
        }
        if let Some(e) = self.st.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match self.server.accept() {
            Ok(c) => Poll::Ready(Some(Ok(c))),
            Err(e) if e.code() == StatusCode::EAGAIN => {
                register(&self.st.waker, cx);
                Poll::Pending
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

impl<S: Stream> Unpin for Incoming<S> {}

impl<S: Stream> FuturesStream for Incoming<S> {
    type Item = Result<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<S>>> {
        self.get_mut().poll_accept(cx)
    }
}

impl<S: Stream> Drop for Incoming<S> {
    fn drop(&mut self) {
        // The close must not wake the gone stream's task.
        let_go(&self.st.waker);
        self.server.close();
    }
}

/// Datagrams queued before receiving pauses (until they are taken).
const UDP_QUEUE: usize = 1024;

type DatagramItem = Result<(Vec<u8>, SocketAddr)>;

/// Receives datagrams on `udp` as a stream: each item is a datagram's bytes and its
/// sender (a copy out of the loop's buffer; a datagram larger than the buffer
/// comes truncated), or a receive error. Receiving starts at the first poll and
/// pauses while 1,024 datagrams wait to be taken (on a `RECVMMSG` socket, the
/// rest of the batch that reached them waits with the handle, and comes first
/// when receiving starts again); the kernel then drops what does not fit its
/// buffer, as UDP does. libuv's "drained" events are not items. Receiving
/// stopped through another value of the socket (`recv_stop`) starts again at the
/// stream's next poll, which that stop wakes; while another receive callback was
/// started through one, the poll gives `EALREADY`.
///
/// Dropping the stream stops receiving (`uv_udp_recv_stop`); the handle is not
/// closed.
pub fn recv_from(udp: &Udp) -> RecvFrom {
    RecvFrom {
        udp: udp.clone(),
        queue: Queue::new(),
        receiving: Rc::new(Cell::new(0)),
        started: Cell::new(0),
    }
}

/// The stream of [`recv_from`].
pub struct RecvFrom {
    udp: Udp,
    queue: Rc<Queue<DatagramItem>>,
    /// The number of the stream's receive callback that receives, 0 when none
    /// does (it paused, or its callback was dropped: see `RecvGuard`).
    receiving: Rc<Cell<u64>>,
    /// Callbacks started so far (the last one's number).
    started: Cell<u64>,
}

impl std::fmt::Debug for RecvFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvFrom")
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl RecvFrom {
    fn start(&self) -> Result<()> {
        if self.receiving.get() != 0 {
            return Ok(());
        }
        let number = self.started.get() + 1;
        self.started.set(number);
        let guard = RecvGuard {
            queue: self.queue.clone(),
            receiving: self.receiving.clone(),
            number,
        };
        let receiving = self.receiving.clone();
        self.udp.recv_start(move |udp, r| {
            let q = &guard.queue;
            match r {
                Ok(d) if d.is_drained() => {}
                Ok(d) => {
                    if let Some(addr) = d.addr {
                        q.push(Ok((d.data.to_vec(), addr)));
                    }
                    if q.len() >= UDP_QUEUE {
                        // In a batch (`RECVMMSG`) too: its other datagrams wait
                        // with the handle for the restart (`Udp::recv_stop`).
                        receiving.set(0);
                        let _ = udp.recv_stop();
                    }
                }
                Err(e) => q.push(Err(e)),
            }
        })?;
        self.receiving.set(number);
        Ok(())
    }
}

impl FuturesStream for RecvFrom {
    type Item = DatagramItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DatagramItem>> {
        let this = self.get_mut();
        // What was received comes first, also once the handle is closing or
        // receiving cannot start again.
        let queued = this.queue.items.borrow_mut().pop_front();
        if let Some(item) = queued {
            if this.receiving.get() == 0 && !this.udp.is_closing() {
                // Receiving paused at the limit: there is room again. (A failure
                // to restart is reported once the queue is empty, by the start
                // below.)
                let _ = this.start();
            }
            return Poll::Ready(Some(item));
        }
        if this.udp.is_closing() {
            return Poll::Ready(None);
        }
        if let Err(e) = this.start() {
            return Poll::Ready(Some(Err(e)));
        }
        this.queue.poll(cx)
    }
}

impl Drop for RecvFrom {
    fn drop(&mut self) {
        // Stopping must not wake the gone stream's task.
        let_go(&self.queue.waker);
        if self.receiving.get() != 0 {
            let _ = self.udp.recv_stop();
        }
    }
}

/// Watches `signum` (a new [`Signal`] handle, started now) as a stream: one item
/// per delivery libuv reports (deliveries that come faster than the loop runs may
/// be merged, as for the callback). The started handle keeps the loop alive.
/// Dropping the stream closes the handle; the stream ends when the loop goes. For
/// one signal, `.next().await`.
pub fn signals(lp: &LoopHandle, signum: Signum) -> Result<Signals> {
    let signal = Signal::new(lp)?;
    let queue = Queue::new();
    let q = Notifier(queue.clone());
    signal.start(signum, move |_, s| q.push(s))?;
    Ok(Signals { signal, queue })
}

/// The stream of [`signals`].
pub struct Signals {
    signal: Signal,
    queue: Rc<Queue<Signum>>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Signals {
    /// The next delivery; `None` once the loop is gone.
    pub async fn recv(&mut self) -> Option<Signum> {
        std::future::poll_fn(|cx| self.queue.poll(cx)).await
    }
}

impl FuturesStream for Signals {
    type Item = Signum;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Signum>> {
        self.queue.poll(cx)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // The close must not wake the gone stream's task.
        let_go(&self.queue.waker);
        self.signal.close();
    }
}

/// One event of [`fs_events`]: the file it names (relative to a watched
/// directory; `None` when libuv gives none) and what happened.
pub type FsEventItem = Result<(Option<PathBuf>, FsEventKind)>;

/// Watches `path` (a new [`FsEvent`] handle, started now) as a stream of its
/// events. Dropping the stream closes the handle; the stream ends (after the
/// events already queued) when the loop goes. Events wait in memory until taken.
pub fn fs_events(lp: &LoopHandle, path: impl AsRef<Path>, flags: FsEventFlags) -> Result<FsEvents> {
    let watcher = FsEvent::new(lp)?;
    let queue = Queue::new();
    let q = Notifier(queue.clone());
    watcher.start(path, flags, move |_, name, kind, status| {
        q.push(status.map(|()| (name.map(Path::to_path_buf), kind)));
    })?;
    Ok(FsEvents { watcher, queue })
}

/// The stream of [`fs_events`].
pub struct FsEvents {
    watcher: FsEvent,
    queue: Rc<Queue<FsEventItem>>,
}

impl std::fmt::Debug for FsEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsEvents")
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl FuturesStream for FsEvents {
    type Item = FsEventItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FsEventItem>> {
        self.queue.poll(cx)
    }
}

impl Drop for FsEvents {
    fn drop(&mut self) {
        // The close must not wake the gone stream's task.
        let_go(&self.queue.waker);
        self.watcher.close();
    }
}

/// Polls the metadata of `path` every `interval` (a new [`FsPoll`] handle, started
/// now) as a stream of changes: each item is the previous and the current
/// [`Stat`], or the error libuv reported (`ENOENT` once the file is gone).
/// Dropping the stream closes the handle; the stream ends when the loop goes.
pub fn fs_poll(lp: &LoopHandle, path: impl AsRef<Path>, interval: Duration) -> Result<FsPolls> {
    let poller = FsPoll::new(lp)?;
    let queue = Queue::new();
    let q = Notifier(queue.clone());
    poller.start(path, interval, move |_, change| q.push(change))?;
    Ok(FsPolls { poller, queue })
}

/// The stream of [`fs_poll`].
pub struct FsPolls {
    poller: FsPoll,
    queue: Rc<Queue<Result<(Stat, Stat)>>>,
}

impl std::fmt::Debug for FsPolls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsPolls")
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl FuturesStream for FsPolls {
    type Item = Result<(Stat, Stat)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.queue.poll(cx)
    }
}

impl Drop for FsPolls {
    fn drop(&mut self) {
        // The close must not wake the gone stream's task.
        let_go(&self.queue.waker);
        self.poller.close();
    }
}
