//! The Async handle, generated from `spec/handles/async.toml`, and its hand-written
//! parts: the cross-thread sender, and the loop's `call_later` built on it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::LoopHandle;

uv_macros::handle!("spec/handles/async.toml");

/// Loop teardown: shuts every sender of the loop (sends from now on answer
/// `ClosedHandle`) and tells whether one of the `Async` handles among `handles` has
/// a wake-up pending, which the loop then delivers before it closes its handles.
pub(crate) fn shut_senders(table: Option<&SenderTable>, handles: &[crate::Handle]) -> bool {
    if let Some(t) = table {
        t.close();
    }
    any_wakeup_pending(handles)
}

/// Whether an open `Async` among `handles` has a wake-up pending. Those that do are
/// referenced, so that `uv_run` iterates for them even if the user unreferenced
/// them (the loop is being dropped: they are closed right after).
pub(crate) fn any_wakeup_pending(handles: &[crate::Handle]) -> bool {
    let mut any = false;
    for h in handles
        .iter()
        .filter(|h| h.handle_type() == crate::HandleType::Async)
    {
        if wakeup_pending(h.raw_struct().cast()) {
            // SAFETY: `handles` are open handles of this loop; uv_ref only sets a
            // flag (and counts the handle as keeping the loop alive).
            unsafe { sys::uv_ref(h.raw_struct()) };
            any = true;
        }
    }
    any
}

/// Whether a wake-up was sent and not yet delivered.
fn wakeup_pending(raw: *mut sys::uv_async_t) -> bool {
    // SAFETY: asked only while libuv holds the open handle; libuv reads and writes
    // `pending` with atomic operations (bit 0: a wake-up is pending), from any
    // thread, so it is read atomically here too.
    let bits = unsafe {
        std::sync::atomic::AtomicI32::from_ptr(std::ptr::addr_of_mut!((*raw).pending))
            .load(Ordering::SeqCst)
    };
    bits & 1 != 0
}

// An entry's state word: the generation in the high 32 bits, then two flags, then
// the number of sends holding the entry (in flight, or about to undo a hold taken
// on a stale view). Every change to the word after the entry's chunk is made is a
// read-modify-write, so a release sequence headed by a send's final decrement is
// never broken: a loop-thread load that reads a count of 0 acquires every finished
// send's effects.

/// The sends holding the entry.
const COUNT: u64 = (1 << 30) - 1;
/// The loop thread is deciding whether the handle closes (`Async::keeps_alive`):
/// sends wait until it is cleared, a few instructions later.
const DECIDING: u64 = 1 << 30;
/// The entry is shut: its handle is closing (or closed and the entry free).
const SHUT: u64 = 1 << 31;
/// One generation.
const GEN_ONE: u64 = 1 << 32;

/// One `Async` handle's entry in its loop's sender table (16 bytes).
struct Entry {
    state: AtomicU64,
    /// The libuv struct while the entry is open; while it is free, the index of the
    /// next free entry (as an address without provenance; `NO_ENTRY`: none). Only
    /// the loop thread writes it, only while the entry is shut and no send holds it.
    raw: AtomicPtr<sys::uv_async_t>,
}

/// The end of the free list.
const NO_ENTRY: u32 = u32::MAX;

/// The first chunk holds `1 << FIRST_BITS` entries, each next one twice as many.
const FIRST_BITS: u32 = 5;
/// One chunk slot per bit position of `i + 2^FIRST_BITS` (see `locate`); the slots
/// below `FIRST_BITS` stay empty (40 bytes, so that the lookup needs no subtraction).
const CHUNKS: usize = 32;
/// `1 << FIRST_BITS` fewer than 2^32 (so `NO_ENTRY` is never an index).
const MAX_ENTRIES: u32 = 0u32.wrapping_sub(1 << FIRST_BITS);

/// The chunk and the offset in it of entry `i` (below `MAX_ENTRIES`): with
/// `j = i + 2^F`, chunk `c` (the top bit of `j`, from `F` to 31) holds the `2^c`
/// entries whose `j` has that top bit, and the offset is `j` without it. A few
/// instructions (`bsr`, `btc`): every send and close looks its entry up.
#[inline(always)]
fn locate(i: u32) -> (usize, usize) {
    let j = i + (1 << FIRST_BITS);
    let top = 31 - j.leading_zeros();
    (top as usize, (j ^ (1 << top)) as usize)
}

/// The number of entries of chunk `c` (`FIRST_BITS <= c < 32`).
fn chunk_len(c: usize) -> usize {
    1 << c
}

fn chunk_layout(c: usize) -> std::alloc::Layout {
    // Chunk sizes stay below 2^32 entries of 16 bytes: no overflow on 64-bit; on
    // 32-bit the allocation of a chunk that large fails first (ENOMEM).
    std::alloc::Layout::array::<Entry>(chunk_len(c)).unwrap_or(std::alloc::Layout::new::<()>())
}

/// Backs off in a wait for another thread, which holds what we wait for for a few
/// instructions (a send, or the loop thread's decision): spins first, then yields.
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Where the senders of one loop's `Async` handles find them: one table per loop
/// (so a sender is an index into it, not an allocation of its own), without a
/// table-wide lock. Entries live in chunks that never move (made by the loop thread,
/// freed with the table), so senders read them while the table grows. A chunk's
/// memory is left uninitialised until its entries are handed out: entries below
/// `len` are initialised, and only their indexes ever reach `entry`. Each entry's
/// state word counts the sends in flight, and the loop thread shuts an entry (just
/// before `uv_close`) by setting its flag and waiting until none is in flight.
pub(crate) struct SenderTable {
    chunks: [AtomicPtr<Entry>; CHUNKS],
    /// The loop is closing: no entry is made any more (its entries are shut).
    closed: AtomicBool,
    // The loop thread's own bookkeeping (atomics only so the table is `Sync`; all
    // accesses are Relaxed and from the loop thread).
    /// Entries made so far.
    len: AtomicU32,
    /// Entries held by handles (made and not on the free list).
    live: AtomicU32,
    /// The first free entry (`NO_ENTRY`: none), linked through `raw`.
    free: AtomicU32,
}

impl Default for SenderTable {
    fn default() -> Self {
        SenderTable {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            closed: AtomicBool::new(false),
            len: AtomicU32::new(0),
            live: AtomicU32::new(0),
            free: AtomicU32::new(NO_ENTRY),
        }
    }
}

impl Drop for SenderTable {
    fn drop(&mut self) {
        for (c, p) in self.chunks.iter_mut().enumerate() {
            let p = *p.get_mut();
            if !p.is_null() {
                // SAFETY: a non-null chunk pointer came from `alloc` with
                // `chunk_layout(c)` (in `add`); nothing else can reach it now (we
                // have the table by `&mut`), and Entry needs no drop.
                unsafe { std::alloc::dealloc(p.cast(), chunk_layout(c)) };
            }
        }
    }
}

/// A send's hold on an open entry (`SenderTable::hold`), released (the count
/// decremented) on drop. While it lasts, the entry's handle is open: the loop thread
/// shuts the entry before `uv_close` and waits until no hold is left.
struct Hold<'a>(&'a Entry);

impl Hold<'_> {
    /// The held entry's handle (open while the hold lasts).
    #[inline(always)]
    fn raw(&self) -> *mut sys::uv_async_t {
        // Relaxed: the hold's Acquire increment saw the generation whose Release
        // publication came after this store (see `SenderTable::add`).
        self.0.raw.load(Ordering::Relaxed)
    }
}

impl Drop for Hold<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: what the send did (uv_async_send's write of `pending`, a queued
        // job) happens before the loop thread's Acquire load that sees the count
        // drop (in `wait_idle`, `shut`, `keeps_alive`, `close`).
        self.0.state.fetch_sub(1, Ordering::Release);
    }
}

impl SenderTable {
    /// Entry `i`, if its chunk was made. `i` must be an index `add` handed out
    /// (below `len`): the table's senders and handles only hold those.
    #[inline(always)]
    fn entry(&self, i: u32) -> Option<&Entry> {
        if i >= MAX_ENTRIES {
            return None;
        }
        let (c, off) = locate(i);
        // Acquire: pairs with the Release store that published the chunk (a sender
        // learns `i` through a value made after it, so this is belt and braces).
        let p = self.chunks[c].load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-null chunk `c` holds `chunk_len(c)` entries and
        // `off < chunk_len(c)` (see `locate`); entry `i` was initialised by `add`
        // before `i` was handed out (the caller's contract), and that write
        // happens before this read: on the loop thread by program order, on
        // another one through the hand-over of the `AsyncSender` that holds `i`.
        // Chunks are freed only with the table, which `&self` keeps alive.
        Some(unsafe { &*p.add(off) })
    }

    /// Adds `d` to `live`: a plain load and store, not a locked read-modify-write
    /// (only the loop thread writes it).
    #[inline(always)]
    fn bump_live(&self, d: i32) {
        let n = self.live.load(Ordering::Relaxed).wrapping_add_signed(d);
        self.live.store(n, Ordering::Relaxed);
    }

    /// A new open entry for `raw` (the loop thread). Inlined into
    /// `Async::sender`; making a chunk and the errors go out of line.
    #[inline(always)]
    fn add(&self, raw: *mut sys::uv_async_t) -> Result<(u32, u32)> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(closed_send());
        }
        let free = self.free.load(Ordering::Relaxed);
        if free != NO_ENTRY {
            let Some(e) = self.entry(free) else {
                return Err(closed_send());
            };
            // A free entry is shut and no send holds it for its generation; stale
            // senders only read its state (or bump and undo its count).
            self.free.store(
                e.raw.load(Ordering::Relaxed).addr() as u32,
                Ordering::Relaxed,
            );
            e.raw.store(raw, Ordering::Relaxed);
            // Publish the next generation, open, keeping the count (stale senders
            // undo their own bumps). Release: a sender whose Acquire read sees this
            // generation sees `raw` above. SHUT is set, so subtracting it clears it.
            let prev = e
                .state
                .fetch_add(GEN_ONE.wrapping_sub(SHUT), Ordering::Release);
            self.bump_live(1);
            return Ok((free, ((prev >> 32) as u32).wrapping_add(1)));
        }
        let i = self.len.load(Ordering::Relaxed);
        if i >= MAX_ENTRIES {
            return Err(enomem_send());
        }
        let (c, off) = locate(i);
        let p = if off == 0 {
            self.make_chunk(c)?
        } else {
            self.chunks[c].load(Ordering::Relaxed)
        };
        if p.is_null() {
            return Err(enomem_send());
        }
        // SAFETY: chunk `c` holds `chunk_len(c)` entries, `off` is below that; the
        // entry is not initialised yet and nothing refers to it (its index was never
        // handed out). A fresh entry: generation 0, open; no sender knows its index
        // until the `AsyncSender` made after this returns, which reaches other
        // threads only through a synchronising hand-over.
        unsafe {
            p.add(off).write(Entry {
                state: AtomicU64::new(0),
                raw: AtomicPtr::new(raw),
            })
        };
        self.len.store(i + 1, Ordering::Relaxed);
        self.bump_live(1);
        Ok((i, 0))
    }

    /// Makes chunk `c` (its first entry is the next one handed out).
    #[cold]
    #[inline(never)]
    fn make_chunk(&self, c: usize) -> Result<*mut Entry> {
        let layout = chunk_layout(c);
        if layout.size() == 0 {
            return Err(enomem_send());
        }
        // SAFETY: a non-zero size. The memory stays uninitialised until each entry
        // is written by `add`, before its index is handed out.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return Err(enomem_send());
        }
        // Release: pairs with `entry`'s Acquire load.
        self.chunks[c].store(p.cast(), Ordering::Release);
        Ok(p.cast())
    }

    /// Waits until no send holds `e`. Acquire: every finished send's effects are
    /// seen (see `Hold`).
    fn wait_idle(e: &Entry, order: Ordering) {
        let mut spins = 0;
        while e.state.load(order) & COUNT != 0 {
            backoff(&mut spins);
        }
    }

    /// Shuts entry `slot` (sends answer `ClosedHandle`), waits until no send is in
    /// flight on it, and frees it for reuse. The loop thread, just before
    /// `uv_close`, once per slot (the handle gives its slot up).
    pub(crate) fn shut(&self, (i, generation): (u32, u32)) {
        let Some(e) = self.entry(i) else { return };
        let s = e.state.load(Ordering::Relaxed);
        if s >> 32 != generation as u64 {
            return;
        }
        if s & SHUT == 0 {
            // After this RMW every send's increment either came before it (and is
            // waited for) or sees SHUT and is undone without touching the handle.
            // Only this thread changes the flags and the generation (senders only
            // move the count, which never carries into the flags), so SHUT is still
            // clear and adding it sets it (a `lock xadd`, where a fetch_or whose
            // result is used is a compare-exchange loop).
            let prev = e.state.fetch_add(SHUT, Ordering::Acquire);
            if prev & COUNT != 0 {
                Self::wait_idle(e, Ordering::Acquire);
            }
        }
        // (Else `keeps_alive` shut it, and waited.)
        // An entry whose generation is the last one is retired, not reused: its
        // generation would wrap, and a sender kept from 2^32 handles ago would match
        // the next one (16 bytes per 4 billion reuses of one entry).
        if generation != u32::MAX {
            e.raw.store(
                std::ptr::without_provenance_mut(self.free.load(Ordering::Relaxed) as usize),
                Ordering::Relaxed,
            );
            self.free.store(i, Ordering::Relaxed);
        }
        self.bump_live(-1);
    }

    /// `Async::keeps_alive` for a handle with senders (the loop thread): whether a
    /// wake-up is pending; if not, the entry is shut before this returns, so that
    /// no send is accepted between the answer and the close.
    fn keeps_alive(&self, (i, generation): (u32, u32), raw: *mut sys::uv_async_t) -> bool {
        let Some(e) = self.entry(i) else {
            return wakeup_pending(raw);
        };
        if e.state.load(Ordering::Relaxed) & !COUNT != (generation as u64) << 32 {
            // Already shut.
            return wakeup_pending(raw);
        }
        // From this RMW on, sends wait; those that came before finish, and their
        // wake-ups are then seen (Acquire, see `Hold`).
        // DECIDING is clear (the check above), so adding sets it (see `shut`).
        let prev = e.state.fetch_add(DECIDING, Ordering::Acquire);
        if prev & COUNT != 0 {
            Self::wait_idle(e, Ordering::Acquire);
        }
        let pending = wakeup_pending(raw);
        let clear = if pending { DECIDING } else { DECIDING | SHUT };
        // DECIDING is set and SHUT clear, so xor clears the one and may set the
        // other, keeping the count. The waiting sends go on (or see SHUT).
        e.state.fetch_xor(clear, Ordering::Release);
        pending
    }

    /// Loop teardown (the loop thread): shuts every entry, so that no send starts
    /// from now on (each answers `ClosedHandle`), and none is in flight when this
    /// returns. Sends test no table-wide flag: the entry's own state says it.
    fn close(&self) {
        // No entry is made from now on (`add`, on this thread).
        self.closed.store(true, Ordering::Relaxed);
        if self.live.load(Ordering::Relaxed) == 0 {
            // Every entry is shut, and was waited for when it was shut: a send
            // that holds one now sees SHUT and does not touch a handle.
            return;
        }
        let len = self.len.load(Ordering::Relaxed) as usize;
        for c in FIRST_BITS as usize..CHUNKS {
            let start = chunk_len(c) - (1 << FIRST_BITS);
            if start >= len {
                break;
            }
            let p = self.chunks[c].load(Ordering::Relaxed);
            let n = chunk_len(c).min(len - start);
            // SAFETY: the chunks holding entries below `len` were made (by this
            // thread), and those entries initialised (see `add`); `&self` keeps them
            // alive.
            let entries = unsafe { std::slice::from_raw_parts(p, n) };
            for e in entries {
                // As in `shut` (the flags are this thread's, and no decision is in
                // progress: `keeps_alive` runs on this thread too): a send's
                // increment either comes before this RMW and is waited for, or
                // sees SHUT and is undone without touching the handle. An entry
                // shut before was waited for then. The entry stays where it is (a
                // live one goes to the free list when its handle closes).
                if e.state.load(Ordering::Relaxed) & SHUT == 0 {
                    let prev = e.state.fetch_add(SHUT, Ordering::Acquire);
                    if prev & COUNT != 0 {
                        Self::wait_idle(e, Ordering::Acquire);
                    }
                }
            }
        }
    }

    /// Holds the entry of `slot` if it is open (the handle's close waits until the
    /// hold ends), or answers `ClosedHandle`. The common case (open) is inlined;
    /// waits and refusals go out of line.
    #[inline(always)]
    fn hold(&self, (i, generation): (u32, u32)) -> Result<Hold<'_>> {
        if let Some(e) = self.entry(i) {
            let want = (generation as u64) << 32;
            // A plain load first: a sender of a shut entry does not touch the count
            // (so the loop thread's waits are bounded by the sends in flight).
            if e.state.load(Ordering::Relaxed) & !COUNT == want {
                // Acquire: pairs with the Release that published this generation
                // (so the `raw` the hold reads is this handle's). Whether the
                // entry is still open is read from this RMW's result: shutting
                // (`shut`, `keeps_alive`, the loop's `close`) is an RMW of the
                // same word, so each increment comes before it (and is waited
                // for) or after it (and sees the flag).
                let prev = e.state.fetch_add(1, Ordering::Acquire);
                let hold = Hold(e);
                if prev & !COUNT == want {
                    return Ok(hold);
                }
                // Undone when `hold` drops.
            }
        }
        self.hold_slow((i, generation))
    }

    /// `hold`, the long way: waits while the loop thread decides whether the handle
    /// closes, retries when the state changed under it, refuses once it is shut.
    #[cold]
    #[inline(never)]
    fn hold_slow(&self, (i, generation): (u32, u32)) -> Result<Hold<'_>> {
        let e = self.entry(i).ok_or_else(closed_send)?;
        let want = (generation as u64) << 32;
        let mut spins = 0;
        loop {
            let s = e.state.load(Ordering::Relaxed);
            if s & !COUNT == want {
                // As in `hold`.
                let prev = e.state.fetch_add(1, Ordering::Acquire);
                let hold = Hold(e);
                if prev & !COUNT == want {
                    return Ok(hold);
                }
                // The state changed in between: undo (drop), and look again.
            } else if s & !(COUNT | DECIDING) == want {
                // The loop thread is deciding whether the handle closes.
                backoff(&mut spins);
            } else {
                return Err(closed_send());
            }
        }
    }
}

/// `ClosedHandle` for a send (or a sender) of a closed handle or loop.
#[cold]
#[inline(never)]
fn closed_send() -> Error {
    Error::closed_handle("uv_async_send")
}

/// `ENOMEM` for a sender that found no room in its loop's table.
#[cold]
#[inline(never)]
fn enomem_send() -> Error {
    Error::from_raw(sys::uv_errno_t_UV_ENOMEM, "uv_async_send")
}

/// A failed `uv_async_send` (libuv 1.53's returns 0 always; kept for the contract).
#[cold]
#[inline(never)]
fn send_failed(rc: i32) -> Error {
    Error::from_raw(rc, "uv_async_send")
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
        // The hold ends here, before the writer runs: a writer that waits for the
        // loop thread, or drops the handle, must not find the entry held.
        let open = self.table.hold(self.slot).is_ok();
        f.debug_struct("AsyncSender").field("open", &open).finish()
    }
}

impl AsyncSender {
    /// Wakes the loop (`uv_async_send`); several sends before the callback runs
    /// give one call. (Inlined: a few instructions around libuv's call, the
    /// refusals out of line.)
    #[inline]
    pub fn send(&self) -> Result<()> {
        let hold = self.table.hold(self.slot)?;
        // SAFETY: the hold keeps the handle open for the call: the loop thread's
        // shut (before uv_close) waits until no hold is left.
        let rc = unsafe { sys::uv_async_send(hold.raw()) };
        drop(hold);
        if rc < 0 {
            return Err(send_failed(rc));
        }
        Ok(())
    }
}

impl Async {
    /// The lifetime rule (spec: `keep_alive = "custom"`), asked when the last `Async`
    /// value is gone and after each callback: the handle stays open while a wake-up
    /// is pending, so that a send that returned `Ok` is always delivered. When it
    /// answers no, it also shuts the handle's senders out (sends wait while it
    /// decides; see `SenderTable::keeps_alive`), so that no send can slip in between
    /// this answer and the close.
    fn keeps_alive(h: &crate::Handle) -> bool {
        let raw = h.raw_struct().cast::<sys::uv_async_t>();
        match h.sender_slot() {
            Some(slot) => h.loop_().shared().senders().keeps_alive(slot, raw),
            None => wakeup_pending(raw),
        }
    }

    /// A sender for other threads (all senders of a handle share one entry of the
    /// loop's sender table).
    pub fn sender(&self) -> Result<AsyncSender> {
        // Open and in libuv (one test of the state for both facts).
        let shared = self.inner.shared_ptr("uv_async_send")?;
        let raw = self.raw_struct().cast::<sys::uv_async_t>();
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
        // Queue while holding the sender's entry, so a closing loop (which waits for
        // the hold in `shut_senders`) cannot miss the job and leave it queued
        // without an error.
        let s = &self.sender;
        let hold = s.table.hold(s.slot)?;
        self.queue
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Box::new(f));
        // SAFETY: the handle is open while the entry is held (see `SenderTable::hold`).
        let rc = unsafe { sys::uv_async_send(hold.raw()) };
        drop(hold);
        check(rc, "uv_async_send")
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
        // It does not keep the loop alive.
        a.unref()?;
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
