//! [`channel`]: typed values from any thread into a callback on the loop thread,
//! over one [`Async`] handle and a mutex-protected queue.
//!
//! Delivery: a send that returned `Ok` pushed its value and sent a wake-up under
//! the queue's lock, so its wake-up is still to come or its value was taken by a
//! callback. The handle stays open until it is closed (its own callback holds a
//! reference to it), and each callback takes the whole queue; if the handle is
//! closed first (by [`Receiver::close`], `Handle::close`, or the loop's drop), the
//! values still queued are delivered from the close, when the handle's callback
//! (which owns them) is dropped. The `Async`'s own sender lock shuts every sender
//! out before `uv_close`, so nothing can be queued after that last delivery.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::handles::{Async, AsyncSender};
use crate::loop_::LoopHandle;

/// What the senders and the loop side share.
struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    /// Live `Sender` values; the last one to go wakes the loop, which closes the
    /// channel.
    senders: AtomicUsize,
}

impl<T> Shared<T> {
    fn queue(&self) -> MutexGuard<'_, VecDeque<T>> {
        // A panic while the lock is held leaves the queue itself consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a channel into the loop: values sent through the [`Sender`] (from any
/// thread) are passed to `on_message` on the loop thread, in the order they were
/// sent (values of one thread in that thread's order; values of different threads
/// in the order their sends took the queue's lock).
///
/// - **Delivery**: every value whose `send` returned `Ok` is delivered exactly
///   once: at a coming loop iteration, or, if the channel is closed first (by
///   [`Receiver::close`] or the loop's drop), during the close. After the close,
///   `send` hands the value back in a [`SendError`].
/// - **Lifetime and the loop**: the channel keeps the loop alive while at least one
///   `Sender` exists, like a worker that is still running. When the last `Sender`
///   is dropped, the values still queued are delivered and the channel closes by
///   itself, so `run` returns once every worker finished and every result was
///   handled. Why not unreferenced by default: a channel nobody waits for would let
///   `run` return while workers still compute, and their results would only arrive
///   when the loop is dropped. The risk of this choice is a `Sender` that is never
///   dropped (kept by a thread that lives forever, or captured by a callback of the
///   loop itself, `on_message` included): then the loop never runs out of work.
///   [`Receiver::unref`] is for that case. The [`Receiver`] is a handle, not a
///   guard: dropping it changes nothing.
/// - **Batches**: one wake-up delivers everything queued by then, with one lock for
///   the batch; the queue keeps its allocation between batches.
/// - **Panics** in `on_message` follow the loop's panic rule (the loop stops and
///   `run` resumes the panic, unless a panic hook takes it); the values not yet
///   delivered stay queued, in order, and are delivered at the next iteration.
///   While the channel closes, the values after a panic are delivered too, and
///   each panic goes the same way (the hook gets each one).
/// - **The handle**: the channel is one `Async` handle of the loop, listed by
///   `handles()` and counted by `handle_count()`; `Loop::close` answers `EBUSY`
///   while it is open.
///
/// Errors: `ClosedLoop` when the loop is gone (`on_message` is dropped).
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let lp = uv::Loop::new()?;
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let g = got.clone();
/// let (tx, _rx) = uv::channel(&lp, move |n: u32| g.borrow_mut().push(n))?;
/// let workers: Vec<_> = (0..3)
///     .map(|i| {
///         let tx = tx.clone();
///         std::thread::spawn(move || tx.send(i * 10).unwrap())
///     })
///     .collect();
/// drop(tx); // the workers hold the only senders now
/// lp.run(uv::RunMode::Default)?; // returns once every sender is gone
/// for w in workers {
///     w.join().unwrap();
/// }
/// got.borrow_mut().sort();
/// assert_eq!(*got.borrow(), [0, 10, 20]);
/// # Ok::<(), uv::Error>(())
/// ```
pub fn channel<T: Send + 'static>(
    loop_: &LoopHandle,
    on_message: impl FnMut(T) + 'static,
) -> Result<(Sender<T>, Receiver<T>)> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        senders: AtomicUsize::new(1),
    });
    // The callback keeps its own handle open: the channel lives until it is closed,
    // not until the Receiver is dropped. The slot is cleared when the handle closes,
    // which ends this cycle.
    let keep: Rc<std::cell::Cell<Option<Async>>> = Rc::new(std::cell::Cell::new(None));
    let mut delivery = Delivery {
        loop_: loop_.clone(),
        shared: shared.clone(),
        spare: VecDeque::new(),
        on_message: Some(on_message),
        _keep: keep.clone(),
    };
    let handle = Async::new(loop_, move |a| {
        // Read before the batch is taken: a count of zero then means that every
        // sender's values were queued before this point (see Sender::drop).
        let no_senders = delivery.shared.senders.load(Ordering::Acquire) == 0;
        /// Closes the channel once no sender is left, also when `on_message`
        /// panics (the panic unwinds through here): nothing else would close it,
        /// and its open, referenced handle would keep `run` waiting for good. The
        /// values the panic left queued are delivered by the close.
        struct CloseAfter<'a>(&'a Async, bool);
        impl Drop for CloseAfter<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.close();
                }
            }
        }
        let _close = CloseAfter(a, no_senders);
        delivery.deliver(a);
    })?;
    keep.set(Some(handle.clone()));
    let wake = match handle.sender() {
        Ok(w) => w,
        Err(e) => {
            handle.close();
            return Err(e);
        }
    };
    Ok((
        Sender { shared, wake },
        Receiver {
            handle,
            _values: PhantomData,
        },
    ))
}

/// The loop side's state, owned by the `Async` callback; dropped when the handle
/// closes, and then it delivers what is still queued.
struct Delivery<T, F: FnMut(T)> {
    /// Where the panics of the close's deliveries go, each (see the drop).
    loop_: LoopHandle,
    shared: Arc<Shared<T>>,
    /// The batch being delivered; swapped with the queue so that both keep their
    /// allocations.
    spare: VecDeque<T>,
    /// `None` only inside the drop (taken out to be dropped under a guard).
    on_message: Option<F>,
    _keep: Rc<std::cell::Cell<Option<Async>>>,
}

impl<T, F: FnMut(T)> Delivery<T, F> {
    fn deliver(&mut self, a: &Async) {
        std::mem::swap(&mut *self.shared.queue(), &mut self.spare);
        /// Puts back what a panicking `on_message` left undelivered, in front of the
        /// queue, and wakes the loop for it.
        struct Rest<'a, T> {
            batch: &'a mut VecDeque<T>,
            shared: &'a Shared<T>,
            handle: &'a Async,
        }
        impl<T> Drop for Rest<'_, T> {
            fn drop(&mut self) {
                if self.batch.is_empty() {
                    return;
                }
                let mut q = self.shared.queue();
                while let Some(v) = self.batch.pop_back() {
                    q.push_front(v);
                }
                drop(q);
                // On a closing handle this fails; the close delivers the rest.
                let _ = self.handle.send();
            }
        }
        let rest = Rest {
            batch: &mut self.spare,
            shared: &self.shared,
            handle: a,
        };
        let Some(on_message) = self.on_message.as_mut() else {
            return;
        };
        while let Some(v) = rest.batch.pop_front() {
            on_message(v);
        }
    }
}

impl<T, F: FnMut(T)> Drop for Delivery<T, F> {
    fn drop(&mut self) {
        // Runs in the handle's close callback, under the loop's panic guard (also
        // when the loop is dropped while its thread unwinds: a panic caught there
        // does not abort). The handle is closed: its senders were shut out before
        // uv_close, so the queue gets nothing new.
        //
        // Every value still gets its call after a panic in an earlier one (each
        // accepted value is delivered once), and each panic goes where a
        // callback's goes (the panic hook gets each one; `run` resumes the
        // first), as in deliveries before the close. `on_message` is dropped here
        // too, under the same guard: dropped by an unwinding (as a field), a panic
        // of its captures' Drop would abort the process.
        let shared = self.loop_.shared();
        let mut batch = std::mem::take(&mut *self.shared.queue());
        if let Some(on_message) = self.on_message.as_mut() {
            while let Some(v) = batch.pop_front() {
                shared.guard(|| on_message(v));
            }
        }
        let on_message = self.on_message.take();
        shared.guard(move || drop(on_message));
    }
}

/// The sending side of a [`channel`]: `Send + Sync + Clone`, usable from any thread.
/// The channel stays open (and keeps its loop alive) while a `Sender` exists.
///
/// ```
/// let lp = uv::Loop::new()?;
/// let (tx, _rx) = uv::channel(&lp, |s: String| println!("{s}"))?;
/// let tx2 = tx.clone();
/// std::thread::spawn(move || tx2.send("from a thread".to_string()).unwrap())
///     .join()
///     .unwrap();
/// tx.send("from the loop thread".to_string()).unwrap();
/// drop(tx);
/// lp.run(uv::RunMode::Default)?;
/// # Ok::<(), uv::Error>(())
/// ```
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
    wake: AsyncSender,
}

impl<T: Send> Sender<T> {
    /// Queues `value` for the loop and wakes it. `Ok` means the value will be
    /// delivered (see [`channel`]); once the channel is closed (by
    /// [`Receiver::close`] or the loop's drop), the value is handed back in a
    /// [`SendError`]. Never blocks on the loop, only on the queue's lock.
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (tx, rx) = uv::channel(&lp, |n: i32| assert_eq!(n, 7))?;
    /// tx.send(7).unwrap();
    /// rx.close(); // the 7 is delivered during the close
    /// let err = tx.send(8).unwrap_err();
    /// assert_eq!(err.into_inner(), 8);
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        let mut q = self.shared.queue();
        q.push_back(value);
        // Under the queue's lock: the value and its wake-up go together, so a
        // failed wake-up takes back this value and no other.
        match self.wake.send() {
            Ok(()) => Ok(()),
            Err(_) => match q.pop_back() {
                Some(v) => Err(SendError(v)),
                None => unreachable!("the value pushed under this lock"),
            },
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // Release: this sender's values were queued before the count drops; the loop
        // reads the count (Acquire) before it takes the queue.
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: wake the loop to close the channel (an error means it is
            // closed already).
            let _ = self.wake.send();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("senders", &self.shared.senders.load(Ordering::Relaxed))
            .field("wake", &self.wake)
            .finish()
    }
}

/// The loop side of a [`channel`]: a handle to close it or to choose whether it
/// keeps the loop alive. Dropping it changes nothing: the channel goes on until
/// its last [`Sender`] is dropped, [`close`](Receiver::close) is called, or the loop
/// is dropped.
///
/// ```
/// let lp = uv::Loop::new()?;
/// let (tx, rx) = uv::channel(&lp, |_: ()| {})?;
/// assert!(!rx.is_closed());
/// drop(tx);
/// lp.run(uv::RunMode::Default)?; // the last sender is gone: the channel closes
/// assert!(rx.is_closed());
/// # Ok::<(), uv::Error>(())
/// ```
pub struct Receiver<T> {
    handle: Async,
    _values: PhantomData<fn(T)>,
}

impl<T> Receiver<T> {
    /// Closes the channel: from now on every `send` fails with a [`SendError`];
    /// values accepted before are delivered during the close (at the next loop
    /// iteration, or when the loop is dropped). Idempotent.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let lp = uv::Loop::new()?;
    /// let sum = Rc::new(Cell::new(0));
    /// let s = sum.clone();
    /// let (tx, rx) = uv::channel(&lp, move |n: u64| s.set(s.get() + n))?;
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// rx.close();
    /// assert!(tx.send(3).is_err());
    /// lp.run(uv::RunMode::Default)?; // runs the close: 1 and 2 are delivered
    /// assert_eq!(sum.get(), 3);
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn close(&self) {
        self.handle.close();
    }

    /// Whether the channel is closed or closing (closed by [`close`](Receiver::close),
    /// by the drop of its last sender, or by the loop's drop).
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (_tx, rx) = uv::channel(&lp, |_: u8| {})?;
    /// assert!(!rx.is_closed());
    /// rx.close();
    /// assert!(rx.is_closed());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.handle.is_closing()
    }

    /// Stops the channel from keeping the loop alive (`uv_unref`), for senders that
    /// may never be dropped: `run` then returns when nothing else keeps the loop
    /// busy, and values keep arriving while the loop runs. `ClosedHandle` once
    /// closed.
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (tx, rx) = uv::channel(&lp, |_: u8| {})?;
    /// rx.unref()?;
    /// // A sender still exists, but the loop does not wait for it.
    /// assert!(!lp.run(uv::RunMode::Default)?);
    /// # drop(tx);
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn unref(&self) -> Result<()> {
        self.handle.unref()
    }

    /// Makes the channel keep the loop alive again (`uv_ref`), after
    /// [`unref`](Receiver::unref). `ClosedHandle` once closed.
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (tx, rx) = uv::channel(&lp, |_: u8| {})?;
    /// rx.unref()?;
    /// rx.ref_()?;
    /// assert!(lp.alive());
    /// drop(tx);
    /// lp.run(uv::RunMode::Default)?;
    /// assert!(!lp.alive());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn ref_(&self) -> Result<()> {
        self.handle.ref_()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A value that [`Sender::send`] could not queue because the channel is closed,
/// handed back. Converts into a `ClosedHandle` [`Error`] for `?`.
///
/// ```
/// let lp = uv::Loop::new()?;
/// let (tx, _rx) = uv::channel(&lp, |_: Vec<u8>| {})?;
/// drop(lp); // the loop is gone: so is the channel
/// let err: uv::SendError<Vec<u8>> = tx.send(vec![1, 2, 3]).unwrap_err();
/// assert_eq!(err.0, [1, 2, 3]);
/// let e: uv::Error = err.into();
/// assert!(e.is(uv::Category::ClosedHandle));
/// # Ok::<(), uv::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (tx, rx) = uv::channel(&lp, |_: &'static str| {})?;
    /// rx.close();
    /// assert_eq!(tx.send("hi").unwrap_err().into_inner(), "hi");
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> From<SendError<T>> for Error {
    fn from(_: SendError<T>) -> Error {
        Error::closed_handle("uv_async_send")
    }
}
