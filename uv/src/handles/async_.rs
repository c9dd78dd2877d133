//! The Async handle, generated from `spec/handles/async.toml`, and its hand-written
//! parts: the cross-thread sender, and the loop's `call_later` built on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::LoopHandle;

uv_macros::handle!("spec/handles/async.toml");

/// Loop teardown: shuts the senders of every `Async` among `handles` (sends from now
/// on answer `ClosedHandle`) and tells whether one of them has a wake-up pending,
/// which the loop then delivers before it closes its handles.
pub(crate) fn shut_senders(handles: &[crate::Handle]) -> bool {
    let mut pending = false;
    for h in handles {
        if h.handle_type() != crate::HandleType::Async {
            continue;
        }
        if let Some(shared) = h.ext_cloned::<Arc<SenderShared>>() {
            *shared.lock() = None;
        }
        pending |= wakeup_pending(h.raw_struct().cast());
    }
    pending
}

/// Whether a wake-up was sent and not yet delivered.
fn wakeup_pending(raw: *mut sys::uv_async_t) -> bool {
    // SAFETY: asked only while libuv holds the open handle; libuv reads and writes
    // `pending` with atomic operations (bit 0: a wake-up is pending), from any
    // thread, so it is read atomically here too.
    let bits = unsafe {
        std::sync::atomic::AtomicI32::from_ptr(std::ptr::addr_of_mut!((*raw).pending))
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    bits & 1 != 0
}

struct SendPtr(*mut sys::uv_async_t);

// SAFETY: the pointer is only used for uv_async_send, which libuv allows from any
// thread, and only while the mutex around it says the handle is open.
unsafe impl Send for SendPtr {}

struct SenderShared {
    raw: Mutex<Option<SendPtr>>,
}

impl SenderShared {
    fn lock(&self) -> MutexGuard<'_, Option<SendPtr>> {
        self.raw.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Wakes an [`Async`] handle from any thread. `send` returns `ClosedHandle` once
/// the handle is closing.
#[derive(Clone)]
pub struct AsyncSender {
    shared: Arc<SenderShared>,
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender")
            .field("open", &self.shared.lock().is_some())
            .finish()
    }
}

impl AsyncSender {
    /// Wakes the loop (`uv_async_send`); several sends before the callback runs
    /// give one call.
    pub fn send(&self) -> Result<()> {
        let guard = self.shared.lock();
        match &*guard {
            // SAFETY: the handle is open: the loop thread clears the pointer under this
            // lock before it calls uv_close, so the memory outlives this call.
            Some(p) => check(unsafe { sys::uv_async_send(p.0) }, "uv_async_send"),
            None => Err(Error::closed_handle("uv_async_send")),
        }
    }
}

impl Async {
    /// The lifetime rule (spec: `keep_alive = "custom"`), asked when the last `Async`
    /// value is gone and after each callback: the handle stays open while a wake-up
    /// is pending, so that a send that returned `Ok` is always delivered. When it
    /// answers no, it also shuts the senders out (under their lock), so that no send
    /// can slip in between this answer and the close.
    fn keeps_alive(h: &crate::Handle) -> bool {
        let raw = h.raw_struct().cast::<sys::uv_async_t>();
        let shared = h.ext_cloned::<Arc<SenderShared>>();
        let mut guard = shared.as_ref().map(|s| s.lock());
        let pending = wakeup_pending(raw);
        if !pending {
            if let Some(g) = guard.as_mut() {
                **g = None;
            }
        }
        pending
    }

    /// A sender for other threads (all senders of a handle share one state).
    pub fn sender(&self) -> Result<AsyncSender> {
        let raw = self.inner.raw("uv_async_send")?;
        let existing = self
            .inner
            .with_ext(|ext| {
                ext.as_ref()
                    .and_then(|b| b.downcast_ref::<Arc<SenderShared>>())
                    .cloned()
            })
            .flatten();
        if let Some(shared) = existing {
            return Ok(AsyncSender { shared });
        }
        let shared = Arc::new(SenderShared {
            raw: Mutex::new(Some(SendPtr(raw))),
        });
        let stored = shared.clone();
        self.inner
            .with_ext(move |ext| *ext = Some(Box::new(stored)));
        let hook = shared.clone();
        self.inner.set_before_close(Box::new(move || {
            *hook.lock() = None;
        }));
        Ok(AsyncSender { shared })
    }

    /// Wakes the loop from the loop thread itself.
    pub fn send(&self) -> Result<()> {
        let raw = self.inner.raw("uv_async_send")?;
        // SAFETY: the handle is open.
        check(unsafe { sys::uv_async_send(raw) }, "uv_async_send")
    }

    pub(crate) fn new_internal(
        loop_: &LoopHandle,
        callback: impl FnMut(&Async) + 'static,
    ) -> Result<Async> {
        let slots = AsyncSlots::default();
        slots.on_wakeup.set(Box::new(callback));
        let inner =
            crate::handle::Typed::new_inner(loop_, slots, "uv_async_init", true, |l, h| {
                // SAFETY: `l` is an open loop and `h` a fresh handle struct that will not move.
                unsafe { sys::uv_async_init(l, h, Some(__uv_async_on_wakeup)) }
            })?;
        let a = Async { inner };
        a.unref()?;
        Ok(a)
    }
}

pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

struct Queue {
    jobs: Mutex<VecDeque<Job>>,
}

/// The loop's `call_later` machinery: an internal, unreferenced async handle and a
/// queue of jobs.
pub(crate) struct CallLaterState {
    _async: Async,
    sender: AsyncSender,
    queue: Arc<Queue>,
}

impl CallLaterState {
    /// The jobs waiting, taken out of the queue.
    pub(crate) fn take_jobs(&self) -> VecDeque<Job> {
        std::mem::take(&mut *self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Runs functions on a loop's thread from any thread (`LoopHandle::call_later_sender`).
/// Calling it after the loop is gone returns `ClosedHandle`.
#[derive(Clone, Debug)]
pub struct CallLater {
    sender: AsyncSender,
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue")
    }
}

impl CallLater {
    /// Queues `f` to run on the loop thread during a coming iteration. It does not
    /// keep the loop alive. A job accepted with `Ok` always runs: if the loop is
    /// dropped first, it runs during the drop (where the loop refuses new handles
    /// once its handles are closing). `ClosedHandle` once the loop is gone.
    pub fn call(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        // Hold the sender's lock while queueing, so a closing loop cannot miss the job
        // and leave it queued without an error.
        let guard = self.sender.shared.lock();
        let Some(p) = &*guard else {
            return Err(Error::closed_handle("uv_async_send"));
        };
        self.queue
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Box::new(f));
        // SAFETY: the handle is open (checked under the lock that close takes).
        check(unsafe { sys::uv_async_send(p.0) }, "uv_async_send")
    }
}

impl LoopHandle {
    fn call_later_state(&self) -> Result<CallLater> {
        let shared = self.shared();
        if let Some(s) = &*shared.call_later.borrow() {
            return Ok(CallLater {
                sender: s.sender.clone(),
                queue: s.queue.clone(),
            });
        }
        let queue = Arc::new(Queue {
            jobs: Mutex::new(VecDeque::new()),
        });
        let q = queue.clone();
        let a = Async::new_internal(self, move |h| {
            let jobs = std::mem::take(&mut *q.jobs.lock().unwrap_or_else(|e| e.into_inner()));
            let lp = h.loop_();
            for job in jobs {
                lp.shared().guard(job);
            }
        })?;
        let sender = a.sender()?;
        let cl = CallLater {
            sender: sender.clone(),
            queue: queue.clone(),
        };
        *shared.call_later.borrow_mut() = Some(CallLaterState {
            _async: a,
            sender,
            queue,
        });
        Ok(cl)
    }

    /// Runs `f` on the loop thread during a coming iteration (thread-safe version:
    /// [`LoopHandle::call_later_sender`]). Does not keep the loop alive.
    pub fn call_later(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.call_later_state()?.call(f)
    }

    /// A `Send + Sync` value that queues functions onto this loop from any thread.
    pub fn call_later_sender(&self) -> Result<CallLater> {
        self.call_later_state()
    }
}
