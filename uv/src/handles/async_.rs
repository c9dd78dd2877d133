//! The Async handle, generated from `spec/handles/async.toml`, and its hand-written
//! parts: the cross-thread sender, and the loop's `call_later` built on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::LoopHandle;

uv_macros::handle!("spec/handles/async.toml");

/// Loop teardown: shuts every sender of the loop (sends from now on answer
/// `ClosedHandle`) and tells whether one of the `Async` handles among `handles` has
/// a wake-up pending, which the loop then delivers before it closes its handles.
pub(crate) fn shut_senders(table: Option<&SenderTable>, handles: &[crate::Handle]) -> bool {
    // Under the write lock: no send is in flight, and none starts after it.
    let _guard = table.map(|t| {
        let mut g = t.write();
        g.closed = true;
        g
    });
    handles
        .iter()
        .filter(|h| h.handle_type() == crate::HandleType::Async)
        .any(|h| wakeup_pending(h.raw_struct().cast()))
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

/// One `Async` handle's entry: its libuv struct while it is open (null once shut),
/// and a generation, so that a sender of a closed handle never reaches the handle
/// that reuses the entry. A shut entry links the next free one (16 bytes in all).
struct Entry {
    raw: *mut sys::uv_async_t,
    generation: u32,
    /// While shut: the next free entry (`NO_ENTRY`: none).
    next_free: u32,
}

/// The end of the free list.
const NO_ENTRY: u32 = u32::MAX;

struct Entries {
    entries: Vec<Entry>,
    /// The first free entry (`NO_ENTRY`: none), linked through `next_free`.
    free: u32,
    /// The loop is closing: every send answers `ClosedHandle`.
    closed: bool,
}

impl Default for Entries {
    fn default() -> Self {
        Entries {
            entries: Vec::new(),
            free: NO_ENTRY,
            closed: false,
        }
    }
}

impl Entries {
    /// Shuts entry `slot` if it is still that handle's and open, and frees it for
    /// reuse.
    fn shut(&mut self, (i, generation): (u32, u32)) {
        if let Some(e) = self.entries.get_mut(i as usize) {
            if e.generation == generation && !e.raw.is_null() {
                e.raw = std::ptr::null_mut();
                e.next_free = self.free;
                self.free = i;
            }
        }
    }
}

/// Where the senders of one loop's `Async` handles find them: one table per loop
/// (so a sender is an index into it, not an allocation of its own). Sends take the
/// read lock; shutting an entry (just before `uv_close`) takes the write lock, so no
/// send is in flight on a handle that is closing.
#[derive(Default)]
pub(crate) struct SenderTable {
    inner: RwLock<Entries>,
}

// SAFETY: the raw pointers are only used for uv_async_send, which libuv allows from
// any thread, and only under the read lock while the entry is open (the loop thread
// shuts it under the write lock before it calls uv_close).
unsafe impl Send for SenderTable {}
// SAFETY: as above; all access goes through the lock.
unsafe impl Sync for SenderTable {}

impl SenderTable {
    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A new open entry for `raw`.
    fn add(&self, raw: *mut sys::uv_async_t) -> Result<(u32, u32)> {
        let mut guard = self.write();
        let g = &mut *guard;
        if g.closed {
            return Err(Error::closed_handle("uv_async_send"));
        }
        let i = g.free;
        if i != NO_ENTRY {
            let e = &mut g.entries[i as usize];
            g.free = e.next_free;
            e.raw = raw;
            e.generation = e.generation.wrapping_add(1);
            return Ok((i, e.generation));
        }
        let i = u32::try_from(g.entries.len())
            .ok()
            .filter(|&i| i != NO_ENTRY)
            .ok_or_else(|| Error::from_raw(sys::uv_errno_t_UV_ENOMEM, "uv_async_send"))?;
        g.entries.push(Entry {
            raw,
            generation: 0,
            next_free: NO_ENTRY,
        });
        Ok((i, 0))
    }

    /// Shuts entry `slot` (sends answer `ClosedHandle`) and frees it for reuse.
    pub(crate) fn shut(&self, slot: (u32, u32)) {
        self.write().shut(slot);
    }

    /// Runs `f` on the open handle of `slot`, under the read lock.
    fn with_open<R>(
        &self,
        (i, generation): (u32, u32),
        f: impl FnOnce(*mut sys::uv_async_t) -> R,
    ) -> Result<R> {
        let g = self.read();
        match g.entries.get(i as usize) {
            Some(e) if !g.closed && e.generation == generation && !e.raw.is_null() => Ok(f(e.raw)),
            _ => Err(Error::closed_handle("uv_async_send")),
        }
    }
}

/// Wakes an [`Async`] handle from any thread. `send` returns `ClosedHandle` once
/// the handle is closing.
#[derive(Clone)]
pub struct AsyncSender {
    table: Arc<SenderTable>,
    slot: (u32, u32),
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender")
            .field("open", &self.table.with_open(self.slot, |_| ()).is_ok())
            .finish()
    }
}

impl AsyncSender {
    /// Wakes the loop (`uv_async_send`); several sends before the callback runs
    /// give one call.
    pub fn send(&self) -> Result<()> {
        self.table.with_open(self.slot, |raw| {
            // SAFETY: `with_open` runs this only while the entry is open, under the
            // read lock that the loop thread's shut (before uv_close) waits for, so
            // the handle's memory outlives the call.
            check(unsafe { sys::uv_async_send(raw) }, "uv_async_send")
        })?
    }
}

impl Async {
    /// The lifetime rule (spec: `keep_alive = "custom"`), asked when the last `Async`
    /// value is gone and after each callback: the handle stays open while a wake-up
    /// is pending, so that a send that returned `Ok` is always delivered. When it
    /// answers no, it also shuts the handle's senders out (under the table's lock),
    /// so that no send can slip in between this answer and the close.
    fn keeps_alive(h: &crate::Handle) -> bool {
        let raw = h.raw_struct().cast::<sys::uv_async_t>();
        let Some(slot) = h.sender_slot() else {
            return wakeup_pending(raw);
        };
        let lp = h.loop_();
        let table = lp.shared().senders();
        let mut g = table.write();
        let pending = wakeup_pending(raw);
        if !pending {
            g.shut(slot);
        }
        pending
    }

    /// A sender for other threads (all senders of a handle share one entry of the
    /// loop's sender table).
    pub fn sender(&self) -> Result<AsyncSender> {
        let raw = self.inner.raw("uv_async_send")?;
        let shared = self.inner.shared_ptr("uv_async_send")?;
        // SAFETY: the handle is open and in libuv, so its loop's shared state is
        // alive (its owner keeps it) for this call, which runs no user code.
        let table = unsafe { &*shared }.senders();
        let slot = match self.sender_slot() {
            Some(slot) => slot,
            None => {
                let slot = table.add(raw)?;
                self.inner.set_sender_slot(slot);
                slot
            }
        };
        Ok(AsyncSender {
            table: table.clone(),
            slot,
        })
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
        // Queue under the sender's read lock, so a closing loop cannot miss the job
        // and leave it queued without an error.
        let s = &self.sender;
        s.table.with_open(s.slot, |raw| {
            self.queue
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(Box::new(f));
            // SAFETY: the handle is open (checked under the lock that close takes).
            check(unsafe { sys::uv_async_send(raw) }, "uv_async_send")
        })?
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
