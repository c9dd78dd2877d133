//! The Async handle, generated from `spec/handles/async.toml`, and its hand-written
//! parts: the cross-thread sender, and the loop's `call_later` built on it.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::LoopHandle;

uv_macros::handle!("spec/handles/async.toml");

/// Loop teardown: shuts every sender of the loop (sends from now on answer
/// `ClosedHandle`) and tells whether one of the `Async` handles among `handles` has
/// a wake-up pending, which the loop then delivers before it closes its handles.
pub(crate) fn shut_senders(table: &SenderTable, handles: &[crate::Handle]) -> bool {
    table.close();
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

// A cell's state word: the generation in the high 32 bits, then two flags, then
// the number of sends holding the cell (in flight, or about to undo a hold taken
// on a stale view). Every change to the word after the cell is first made is a
// read-modify-write, so a release sequence headed by a send's final decrement is
// never broken: a loop-thread load that reads a count of 0 acquires every finished
// send's effects. The word is never written otherwise: the library writes a
// handle's other bytes, libuv none of these (see `crate::handle::ASYNC_STATE`).

/// The sends holding the cell.
const COUNT: u64 = (1 << 30) - 1;
/// The loop thread is deciding whether the handle closes (`Async::keeps_alive`):
/// sends wait until it is cleared, a few instructions later.
const DECIDING: u64 = 1 << 30;
/// The cell is shut: its handle is closing (or closed, or the cell free).
const SHUT: u64 = 1 << 31;
/// One generation.
const GEN_ONE: u64 = 1 << 32;

/// The size of a cell: one `Async` handle allocation.
const CELL: usize = crate::handle::ASYNC_CELL.size();

/// The first chunk, `FIRST_BITS`, holds `1 << FIRST_BITS` cells; chunk `c` holds
/// `1 << c` cells, so each next one twice as many.
const FIRST_BITS: u32 = 5;
/// Chunk slots, one per chunk number (the slots below `FIRST_BITS` stay empty):
/// the table holds fewer than 2^32 cells, and a cell's offset in its chunk is below
/// 2^31.
const CHUNKS: usize = 32;

/// The alignment of a chunk: that of a cell, and at least that of the table's
/// address in its head.
const CHUNK_ALIGN: usize = {
    let a = crate::handle::ASYNC_CELL.align();
    let t = std::mem::align_of::<*const SenderTable>();
    if a < t {
        t
    } else {
        a
    }
};
/// The head of a chunk, before its first cell: the address of the table (its
/// `Arc`'s, from `Arc::as_ptr`), where a sender finds the table from its cell (see
/// `AsyncSender::table`). Keeps the cells aligned.
const CHUNK_HEAD: usize = CHUNK_ALIGN;
const _: () = assert!(CHUNK_HEAD >= std::mem::size_of::<*const SenderTable>());
const _: () = assert!(CHUNK_HEAD.is_multiple_of(crate::handle::ASYNC_CELL.align()));

/// The odd factor of CELL, and its inverse modulo 2^64 (Newton's iteration: each
/// step doubles the correct low bits, from 3 for any odd number).
const CELL_ODD: u64 = (CELL >> CELL.trailing_zeros()) as u64;
const CELL_ODD_INV: u64 = {
    let mut x = CELL_ODD;
    let mut k = 0;
    while k < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(CELL_ODD.wrapping_mul(x)));
        k += 1;
    }
    x
};
const _: () = assert!(CELL_ODD.wrapping_mul(CELL_ODD_INV) == 1);

/// `off / CELL` for an `off` that is a multiple of CELL: a shift and a multiply
/// by the inverse of CELL's odd factor (exact division).
#[inline(always)]
fn exact_div_cell(off: usize) -> usize {
    ((off as u64 >> CELL.trailing_zeros()).wrapping_mul(CELL_ODD_INV)) as usize
}

/// The number of cells of chunk `c` (`FIRST_BITS <= c < 32`).
fn chunk_len(c: usize) -> usize {
    1 << c
}

/// Chunk `c`'s layout (its head, then its cells); `None` where its size overflows
/// (32-bit targets: such a chunk could not be allocated anyway).
fn chunk_layout(c: usize) -> Option<std::alloc::Layout> {
    let size = chunk_len(c).checked_mul(CELL)?.checked_add(CHUNK_HEAD)?;
    std::alloc::Layout::from_size_align(size, CHUNK_ALIGN).ok()
}

/// The state word of the cell at `cell`.
///
/// # Safety
/// `cell` must be a cell of a live table whose state word was initialised (a cell
/// the table handed out, reached through a pointer derived from its chunk).
#[inline(always)]
unsafe fn state_of<'a>(cell: *mut u8) -> &'a AtomicU64 {
    // SAFETY: per the contract; the word is 8-aligned (see ASYNC_STATE) and only
    // ever accessed atomically once initialised.
    unsafe { &*cell.add(crate::handle::ASYNC_STATE).cast::<AtomicU64>() }
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

/// Waits until no send holds the cell of `state`. Acquire: every finished send's
/// effects are seen (see `Hold`). Out of line: the callers' common case finds no
/// send in flight, and keeps no registers for the wait.
#[cold]
#[inline(never)]
fn wait_idle(state: &AtomicU64) {
    let mut spins = 0;
    while state.load(Ordering::Acquire) & COUNT != 0 {
        backoff(&mut spins);
    }
}

/// Shuts the cell of `state` (the loop thread) if it is open: a send's increment
/// either comes before this and is waited for, or sees SHUT and is undone without
/// touching the handle. Only the loop thread changes the flags and the generation
/// (senders only move the count, which never carries into the flags), so SHUT is
/// clear when it is added, and adding it sets it (a `lock xadd`, where a fetch_or
/// whose result is used is a compare-exchange loop). No decision is in progress
/// (`keeps_alive` runs on this thread and clears DECIDING before it returns).
/// Returns the cell's generation (which only this thread changes).
#[inline(always)]
fn shut_state(state: &AtomicU64) -> u32 {
    let s = state.load(Ordering::Relaxed);
    if s & SHUT == 0 {
        let prev = state.fetch_add(SHUT, Ordering::Acquire);
        if prev & COUNT != 0 {
            wait_idle(state);
        }
    }
    (s >> 32) as u32
}

/// Shuts the sender cell of the open `Async` handle `raw` (the loop thread, just
/// before `uv_close`): sends answer `ClosedHandle` from now on, and none is in
/// flight when this returns.
///
/// # Safety
/// `raw` must be an `Async` handle of this library (its allocation is a cell of its
/// loop's sender table), not yet freed.
#[inline(always)]
pub(crate) unsafe fn shut_cell(raw: *mut sys::uv_handle_t) {
    // SAFETY: per the contract, a cell whose state word was initialised by `alloc`.
    shut_state(unsafe { state_of(raw.cast()) });
}

/// `shut_cell` in two steps, for a caller that keeps no registers for the wait:
/// shuts the cell (as `shut_cell`) and returns true, unless sends hold it; then it
/// returns false and the caller must call `shut_cell_wait` before `uv_close`.
///
/// # Safety
/// As `shut_cell`.
#[inline(always)]
pub(crate) unsafe fn shut_cell_begin(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract, a cell whose state word was initialised by `alloc`.
    let state = unsafe { state_of(raw.cast()) };
    // As `shut_state`, without its wait, and as an `or` whose result is not used
    // (a `lock or`; the cell may be shut already, by `keeps_alive` or the table's
    // `close`: setting SHUT again changes nothing) followed by a load of the count:
    // the load reads the word at or after this RMW in its modification order, so a
    // send counted before the shut is seen (or its release is, Acquire), and one
    // counted after it sees SHUT and leaves the handle alone. (A send counted
    // after it that has not undone its count yet is waited for too: a few
    // instructions.)
    state.fetch_or(SHUT, Ordering::Acquire);
    state.load(Ordering::Acquire) & COUNT == 0
}

/// The end of a `shut_cell_begin` that returned false: waits until no send holds
/// the (shut) cell.
///
/// # Safety
/// As `shut_cell`.
pub(crate) unsafe fn shut_cell_wait(raw: *mut sys::uv_handle_t) {
    // SAFETY: per the contract.
    wait_idle(unsafe { state_of(raw.cast()) });
}

/// Where the loop's `Async` handles live, and where their senders find them: one
/// table per loop (so a sender is a cell of it, not an allocation of its own),
/// without a table-wide lock. Each `Async` handle allocation is a cell of the table
/// (see `crate::handle::ASYNC_CELL`), in chunks that never move (made by the loop
/// thread, freed with the table), so that senders read them while the table grows
/// and after the handle is gone. Each cell's state word, in a part of the libuv
/// struct libuv never touches, holds the generation (one per handle the cell held),
/// the shut flag, and the sends in flight; the loop thread shuts a cell before
/// `uv_close` by setting its flag and waiting until none is in flight. A cell goes
/// back to the free list only when its handle's allocation is freed (after its
/// close callback), so a sender holding an open generation always reaches a live
/// handle. A chunk's memory is left uninitialised until its cells are handed out
/// (in order, from the newest chunk's `next`): cells handed out have their state
/// word initialised, and only those ever reach a sender. Each chunk starts with the table's address (see `CHUNK_HEAD`),
/// which senders (which hold their cell's address) use to count themselves on the
/// table.
pub(crate) struct SenderTable {
    /// The first cell of each chunk (after its head), null where none was made.
    chunks: [AtomicPtr<u8>; CHUNKS],
    /// The loop is closing: no sender is made any more (its cells are shut).
    closed: AtomicBool,
    // The loop thread's own bookkeeping (atomics only so the table is `Sync`; all
    // accesses are Relaxed and from the loop thread).
    /// The newest chunk's number (0: none made yet; chunks `FIRST_BITS` to it are
    /// made, all but it full).
    newest: AtomicU32,
    /// The newest chunk's next cell never handed out, and its end (null, null
    /// before the first chunk); once the table is closed, `end` is kept at `next`
    /// (so that `alloc`'s common path needs no test of `closed`).
    next: AtomicPtr<u8>,
    end: AtomicPtr<u8>,
    /// Cells held by handle allocations (made and not on the free list).
    live: AtomicU32,
    /// The first free cell (null: none), linked through its first word.
    free: AtomicPtr<u8>,
    /// The last cell made and its offset in its chunk (null: none yet):
    /// `slot_of_last` answers for it without a search (a handle's sender is usually
    /// made right after the handle). A cell never moves, so the pair stays true
    /// when the cell is freed and reused. Cells are made in order, so the next
    /// cell's offset is `last_off + 1` (`u32::MAX` while the newest chunk has none
    /// made yet), and the newest chunk has `last_off + 1` cells made.
    last: AtomicPtr<u8>,
    last_off: AtomicU32,
}

impl Default for SenderTable {
    fn default() -> Self {
        SenderTable {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            closed: AtomicBool::new(false),
            newest: AtomicU32::new(0),
            next: AtomicPtr::new(std::ptr::null_mut()),
            end: AtomicPtr::new(std::ptr::null_mut()),
            live: AtomicU32::new(0),
            free: AtomicPtr::new(std::ptr::null_mut()),
            last: AtomicPtr::new(std::ptr::null_mut()),
            last_off: AtomicU32::new(0),
        }
    }
}

impl Drop for SenderTable {
    fn drop(&mut self) {
        for (c, p) in self.chunks.iter_mut().enumerate() {
            let p = *p.get_mut();
            if let (false, Some(layout)) = (p.is_null(), chunk_layout(c)) {
                // SAFETY: a non-null chunk pointer is `CHUNK_HEAD` bytes into an
                // allocation made with `chunk_layout(c)` (in `make_chunk`); nothing
                // else can reach it now (we have the table by `&mut`; its owners,
                // the loop's slab and the senders, are gone, and with the slab
                // every handle allocation in it), and a cell needs no drop.
                unsafe { std::alloc::dealloc(p.sub(CHUNK_HEAD), layout) };
            }
        }
    }
}

/// The place of a cell (`SenderTable::alloc`), handed back by the generated
/// `Async::new_placed` (through `runtime::Place`) for `Async::with_sender`: its
/// table and, for a fresh cell (never handed out before, so open at generation 0,
/// in a table that makes senders), its offset in its chunk (`NOT_FRESH` for
/// others).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CellPlace {
    /// `Arc::as_ptr` of the table's `Arc`.
    pub(crate) table: *const SenderTable,
    /// The cell's offset in its chunk, or `NOT_FRESH`.
    pub(crate) off: u32,
}

/// `CellPlace::off` of a cell that is not fresh (no offset is that large: a
/// chunk holds at most 2^31 cells).
pub(crate) const NOT_FRESH: u32 = u32::MAX;

/// A send's hold on an open cell (`SenderTable::hold`), released (the count
/// decremented) on drop. While it lasts, the cell's handle is open: the loop thread
/// shuts the cell before `uv_close` and waits until no hold is left.
struct Hold<'a> {
    state: &'a AtomicU64,
    cell: *mut u8,
}

impl Hold<'_> {
    /// The held cell's handle (open while the hold lasts).
    #[inline(always)]
    fn raw(&self) -> *mut sys::uv_async_t {
        self.cell.cast()
    }
}

impl Drop for Hold<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: what the send did (uv_async_send's write of `pending`, a queued
        // job) happens before the loop thread's Acquire load that sees the count
        // drop (in `wait_idle`, `shut_state`, `keeps_alive`).
        self.state.fetch_sub(1, Ordering::Release);
    }
}

impl SenderTable {
    /// Adds `d` to `live`: a plain load and store, not a locked read-modify-write
    /// (only the loop thread writes it).
    #[inline(always)]
    fn bump_live(&self, d: i32) {
        let n = self.live.load(Ordering::Relaxed).wrapping_add_signed(d);
        self.live.store(n, Ordering::Relaxed);
    }

    /// Memory for a new `Async` handle allocation (the loop thread; a layout of
    /// `crate::handle::ASYNC_CELL`), its cell open at a new generation; `None` if
    /// the table is full. Only its state word is initialised: the rest is the
    /// caller's to write (never the state word). `owner` is `Arc::as_ptr` of the
    /// `Arc` that holds this table (written in a new chunk's head, for senders).
    /// With the memory, the cell's offset in its chunk when the cell is fresh
    /// (never handed out before: open at generation 0) and the table makes
    /// senders, `NOT_FRESH` otherwise: a sender of a fresh cell is made without a
    /// look at the table (`Async::with_sender`).
    #[inline(always)]
    pub(crate) fn alloc(&self, owner: *const SenderTable) -> Option<(NonNull<u8>, u32)> {
        if let Some(p) = NonNull::new(self.free.load(Ordering::Relaxed)) {
            // SAFETY: a free cell's first word holds the next free cell (written by
            // `link_free`); the cell is no handle's now, so its bytes other than the
            // state word are ours.
            let next = unsafe { p.cast::<*mut u8>().read() };
            self.free.store(next, Ordering::Relaxed);
            // Open the next generation, keeping the count (stale senders undo their
            // own bumps). A free cell is shut (see `link_free`), so subtracting SHUT
            // clears it. Release: belt and braces (a sender learns the generation
            // through the `AsyncSender` made after the handle's init).
            // SAFETY: a cell of this table, handed out before.
            unsafe { state_of(p.as_ptr()) }
                .fetch_add(GEN_ONE.wrapping_sub(SHUT), Ordering::Release);
            self.bump_live(1);
            return Some((p, NOT_FRESH));
        }
        let cell = self.next.load(Ordering::Relaxed);
        if cell == self.end.load(Ordering::Relaxed) {
            // The newest chunk is full (or none was made yet), or the table is
            // closed (see `close`).
            return self.alloc_in_new_chunk(owner);
        }
        // SAFETY: `cell` is below the newest chunk's end: a cell of it never
        // handed out.
        let (p, off) = unsafe { self.take_next(cell) };
        // The table is not closed: a closed one keeps `end` at `next` (see
        // `close`), so that its allocations all take the branch above, and this
        // one needs no test of `closed`.
        debug_assert!(self.makes_senders());
        Some((p, off))
    }

    /// Whether senders may be made (the loop is not closing; the loop thread).
    #[inline(always)]
    pub(crate) fn makes_senders(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    /// Hands out `cell`, the newest chunk's next cell (not handed out yet, below
    /// its end), open at generation 0, with its offset in its chunk.
    ///
    /// # Safety
    /// `cell` must be `next`, below the newest chunk's end (`end`, but for a
    /// closed table, whose `end` is kept at `next`).
    #[inline(always)]
    unsafe fn take_next(&self, cell: *mut u8) -> (NonNull<u8>, u32) {
        // In bounds or one past the chunk's end (`cell` is below it).
        self.next.store(cell.wrapping_add(CELL), Ordering::Relaxed);
        // SAFETY: per the contract the cell is in a live chunk, not initialised yet
        // and nothing refers to it (it was never handed out). A fresh cell:
        // generation 0, open; no sender knows it until an `AsyncSender` is made for
        // its handle, which reaches other threads only through a synchronising
        // hand-over.
        let cell = unsafe {
            cell.add(crate::handle::ASYNC_STATE)
                .cast::<AtomicU64>()
                .write(AtomicU64::new(0));
            NonNull::new_unchecked(cell)
        };
        // Its offset: the last one's plus one (cells are made in order; `u32::MAX`
        // for none in this chunk yet), below `chunk_len` (at most 2^31).
        let off = self.last_off.load(Ordering::Relaxed).wrapping_add(1);
        self.last_off.store(off, Ordering::Relaxed);
        self.last.store(cell.as_ptr(), Ordering::Relaxed);
        self.bump_live(1);
        (cell, off)
    }

    /// `alloc` when the newest chunk is full (or the table is closed): makes the
    /// next chunk and hands out its first cell; `None` once the chunks are all
    /// made (the table is full). A closed table first hands out the newest chunk's
    /// cells left, and keeps `end` at `next` (see `close`).
    #[cold]
    #[inline(never)]
    fn alloc_in_new_chunk(&self, owner: *const SenderTable) -> Option<(NonNull<u8>, u32)> {
        if self.makes_senders() {
            return self.alloc_in_next_chunk(owner);
        }
        let newest = self.newest.load(Ordering::Relaxed) as usize;
        let cell = self.next.load(Ordering::Relaxed);
        // The newest chunk's end (chunk `newest` was made: `next` is in it).
        let chunk_end = (newest != 0).then(|| {
            self.chunks[newest & (CHUNKS - 1)]
                .load(Ordering::Relaxed)
                .wrapping_add(chunk_len(newest) * CELL)
        });
        let r = if chunk_end.is_some_and(|end| cell != end) {
            // SAFETY: `cell` is `next`, below the newest chunk's end.
            unsafe { self.take_next(cell) }
        } else {
            self.alloc_in_next_chunk(owner)?
        };
        self.end
            .store(self.next.load(Ordering::Relaxed), Ordering::Relaxed);
        // The table is closed: no sender is made.
        Some((r.0, NOT_FRESH))
    }

    /// Makes the next chunk and hands out its first cell; `None` once the chunks
    /// are all made.
    fn alloc_in_next_chunk(&self, owner: *const SenderTable) -> Option<(NonNull<u8>, u32)> {
        let newest = self.newest.load(Ordering::Relaxed) as usize;
        let c = if newest == 0 {
            FIRST_BITS as usize
        } else {
            newest + 1
        };
        if c >= CHUNKS {
            return None;
        }
        let p = self.make_chunk(c, owner)?;
        self.newest.store(c as u32, Ordering::Relaxed);
        // One past the chunk's cells (in bounds of its allocation: its layout is
        // `CHUNK_HEAD + chunk_len(c) * CELL` bytes).
        self.end
            .store(p.wrapping_add(chunk_len(c) * CELL), Ordering::Relaxed);
        self.last_off.store(u32::MAX, Ordering::Relaxed);
        // SAFETY: the chunk's first cell, below its end (a chunk holds at least
        // 2^FIRST_BITS cells).
        Some(unsafe { self.take_next(p) })
    }

    /// The number of cells made in chunk `c` (`FIRST_BITS <= c <= newest`).
    fn made_in(&self, c: usize) -> usize {
        if c == self.newest.load(Ordering::Relaxed) as usize {
            // At least one (its first is handed out when it is made).
            self.last_off.load(Ordering::Relaxed) as usize + 1
        } else {
            chunk_len(c)
        }
    }

    /// Makes chunk `c` (its first cell is the next one handed out), its head
    /// naming `owner` (this table's `Arc`); aborts on out-of-memory like `Box`.
    /// Returns its first cell.
    #[cold]
    #[inline(never)]
    fn make_chunk(&self, c: usize, owner: *const SenderTable) -> Option<*mut u8> {
        debug_assert!(std::ptr::eq(owner, self));
        let layout = chunk_layout(c)?;
        // SAFETY: a non-zero size. The cells stay uninitialised until each one's
        // state word is written by `alloc`, before a sender of it is made; the head
        // is written here, before any cell is handed out, and never again.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: the head is the first CHUNK_HEAD bytes of the fresh allocation,
        // aligned for the pointer (CHUNK_ALIGN); the cells follow it.
        let cells = unsafe {
            p.cast::<*const SenderTable>().write(owner);
            p.add(CHUNK_HEAD)
        };
        // Release: the chunk is read by this thread only (`close`, `search_offset`);
        // senders reach their cells through the `AsyncSender` hand-over.
        self.chunks[c].store(cells, Ordering::Release);
        Some(cells)
    }

    /// Gives back a cell from `alloc` (the loop thread, once the handle allocation
    /// in it is freed: libuv is done with it and no user reference is left) if it
    /// is shut (its handle had senders: it was shut before its close), answering
    /// true; for a cell that is still open it does nothing and answers false: the
    /// caller then gives it back with `free_open` (which shuts it first: a handle
    /// that had no sender, which no send can hold at its generation, but a stale
    /// sender's increment may be undone meanwhile). Two calls, so that a caller
    /// can make `free_open` its last and keep no registers across it on the common
    /// path.
    ///
    /// # Safety
    /// `cell` must come from `alloc` of this table, not freed yet, and hold no live
    /// handle.
    #[inline(always)]
    pub(crate) unsafe fn free_if_shut(&self, cell: NonNull<u8>) -> bool {
        // SAFETY: per the contract.
        let s = unsafe { state_of(cell.as_ptr()) }.load(Ordering::Relaxed);
        if s & SHUT == 0 {
            return false;
        }
        // Shut already (a handle with senders was shut before its close; a freed
        // cell never comes back here): `shut_state` would return this generation
        // and change nothing. Only this thread changes the generation.
        // SAFETY: per the contract.
        unsafe { self.link_free(cell, (s >> 32) as u32) };
        true
    }

    /// Gives back a cell that is still open (its handle had no sender; see
    /// `free_if_shut`): shuts it first. Out of line, so that the common case saves
    /// no registers for the wait.
    ///
    /// # Safety
    /// As `free_if_shut`, and the cell is open.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_open(&self, cell: NonNull<u8>) {
        // SAFETY: per the contract.
        let generation = shut_state(unsafe { state_of(cell.as_ptr()) });
        // SAFETY: per the contract; the cell is shut now.
        unsafe { self.link_free(cell, generation) }
    }

    /// The end of `free_if_shut` and `free_open`: the cell, shut at `generation`,
    /// goes on the free list (or is retired).
    ///
    /// # Safety
    /// As `free_if_shut`, and the cell is shut.
    #[inline(always)]
    unsafe fn link_free(&self, cell: NonNull<u8>, generation: u32) {
        self.bump_live(-1);
        // A cell whose generation is the last one is retired, not reused: its
        // generation would wrap, and a sender kept from 2^32 handles ago would
        // match the next one (one cell per 4 billion reuses of one cell).
        if generation == u32::MAX {
            return;
        }
        // SAFETY: the cell is no handle's: its first word links it in.
        unsafe {
            cell.cast::<*mut u8>()
                .write(self.free.load(Ordering::Relaxed))
        };
        self.free.store(cell.as_ptr(), Ordering::Relaxed);
    }

    /// The offset in its chunk of the cell at `cell` (the loop thread; a cell from
    /// `alloc`), searching the chunks (`slot_of_last` answers for the last cell
    /// made).
    #[inline(never)]
    fn search_offset(&self, cell: *mut u8) -> Option<u32> {
        let mut c = self.newest.load(Ordering::Relaxed) as usize;
        if c == 0 {
            return None;
        }
        // From the largest chunk down: it holds half of the cells. (`c & 31`: the
        // chunk slots are 32, so the index needs no bounds check.)
        loop {
            let base = self.chunks[c & (CHUNKS - 1)].load(Ordering::Relaxed);
            let off = cell.addr().wrapping_sub(base.addr());
            if off < CELL << c {
                // `off` is a multiple of CELL (`cell` is a cell of this chunk), and
                // the offset in cells is below `chunk_len(c)`, at most 2^31.
                debug_assert!(off.is_multiple_of(CELL));
                return Some(exact_div_cell(off) as u32);
            }
            if c <= FIRST_BITS as usize {
                return None;
            }
            c -= 1;
        }
    }

    /// The slot (offset in its chunk, generation) for senders of the open `Async`
    /// handle `raw` (the loop thread); `ClosedHandle` once the loop is closing.
    fn slot_of(&self, raw: *mut sys::uv_async_t) -> Result<(u32, u32)> {
        self.slot_of_last(raw)
            .or_else(|| {
                self.slot_open(raw)
                    .and_then(|g| Some((self.search_offset(raw.cast())?, g)))
            })
            .ok_or_else(closed_send)
    }

    /// The generation of the cell of the open `Async` handle `raw` (the loop
    /// thread), if senders may be made for it: the loop is not closing and the cell
    /// is not shut.
    #[inline(always)]
    fn slot_open(&self, raw: *mut sys::uv_async_t) -> Option<u32> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: the caller's handle is an open `Async`, whose allocation is a cell
        // of this table.
        let s = unsafe { state_of(raw.cast()) }.load(Ordering::Relaxed);
        if s & SHUT != 0 {
            return None;
        }
        Some((s >> 32) as u32)
    }

    /// `slot_of` of the last cell made (the common case, inlined: a sender made
    /// right after its handle), or `None` (for any other cell too).
    #[inline(always)]
    fn slot_of_last(&self, raw: *mut sys::uv_async_t) -> Option<(u32, u32)> {
        let g = self.slot_open(raw)?;
        if raw.cast::<u8>() != self.last.load(Ordering::Relaxed) {
            return None;
        }
        Some((self.last_off.load(Ordering::Relaxed), g))
    }

    /// `Async::keeps_alive` for a handle with senders (the loop thread): whether a
    /// wake-up is pending; if not, the cell is shut before this returns, so that
    /// no send is accepted between the answer and the close.
    ///
    /// # Safety
    /// `raw` must be an open `Async` handle of this library.
    unsafe fn keeps_alive(raw: *mut sys::uv_async_t) -> bool {
        // SAFETY: per the contract, its allocation is a cell.
        let state = unsafe { state_of(raw.cast()) };
        if state.load(Ordering::Relaxed) & SHUT != 0 {
            // Already shut.
            return wakeup_pending(raw);
        }
        // From this RMW on, sends wait; those that came before finish, and their
        // wake-ups are then seen (Acquire, see `Hold`).
        // DECIDING is clear (only this thread sets it, and clears it below), so
        // adding sets it (see `shut_state`).
        let prev = state.fetch_add(DECIDING, Ordering::Acquire);
        if prev & COUNT != 0 {
            wait_idle(state);
        }
        let pending = wakeup_pending(raw);
        let clear = if pending { DECIDING } else { DECIDING | SHUT };
        // DECIDING is set and SHUT clear, so xor clears the one and may set the
        // other, keeping the count. The waiting sends go on (or see SHUT).
        state.fetch_xor(clear, Ordering::Release);
        pending
    }

    /// Loop teardown (the loop thread): shuts every cell, so that no send starts
    /// from now on (each answers `ClosedHandle`), and none is in flight when this
    /// returns. Sends test no table-wide flag: the cell's own state says it.
    fn close(&self) {
        // No sender is made from now on (`slot_of`, on this thread; and
        // `Async::with_sender`: from now on every allocation of a fresh cell takes
        // `alloc_in_new_chunk`, which tests `closed`).
        self.closed.store(true, Ordering::Relaxed);
        self.end
            .store(self.next.load(Ordering::Relaxed), Ordering::Relaxed);
        if self.live.load(Ordering::Relaxed) == 0 {
            // Every cell is free, so shut, and was waited for when it was shut: a
            // send that holds one now sees SHUT and does not touch a handle.
            return;
        }
        // `live` is not 0, so a chunk was made.
        let newest = self.newest.load(Ordering::Relaxed) as usize;
        for c in FIRST_BITS as usize..=newest.min(CHUNKS - 1) {
            let p = self.chunks[c].load(Ordering::Relaxed);
            for k in 0..self.made_in(c) {
                // SAFETY: chunks `FIRST_BITS` to `newest` were made (by this
                // thread), and the cells made in them have their state words
                // initialised (see `take_next`); `&self` keeps them alive. A cell
                // shut before was waited for then.
                shut_state(unsafe { state_of(p.add(k * CELL)) });
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

/// A failed `uv_async_send` (libuv 1.53's returns 0 always; kept for the contract).
#[cold]
#[inline(never)]
fn send_failed(rc: i32) -> Error {
    Error::from_raw(rc, "uv_async_send")
}

/// Wakes an [`Async`] handle from any thread. `send` returns `ClosedHandle` once
/// the handle is closing.
pub struct AsyncSender {
    /// The handle's cell in its loop's sender table (a pointer derived from its
    /// chunk's, so that it reaches the chunk's head). Each sender holds one count
    /// of the table's `Arc`, so the cell outlives it.
    cell: NonNull<u8>,
    /// The generation the cell was opened at for this sender's handle.
    generation: u32,
    /// The cell's offset in its chunk, in cells: the chunk's head, which names the
    /// table, is found from it.
    off: u32,
}

// SAFETY: a sender reaches its cell's state word only atomically, libuv's struct
// only through `uv_async_send` (which libuv allows from any thread) while its hold
// keeps the handle open, and its table only through the `Arc`'s atomic count: all
// of which any thread may do (a `SenderTable` is `Send + Sync`).
unsafe impl Send for AsyncSender {}
// SAFETY: as for `Send`: a shared sender allows the same (`send`, `clone`).
unsafe impl Sync for AsyncSender {}

impl AsyncSender {
    /// A sender of the cell `cell` of `table`, at offset `off` of its chunk, open
    /// at `generation` (the loop thread, for an open handle).
    #[inline(always)]
    fn new(table: &Arc<SenderTable>, cell: NonNull<u8>, generation: u32, off: u32) -> Self {
        // The count this sender holds; its drop gives it back through the chunk's
        // head, which names this `Arc` (`Slab::alloc_async` passes its pointer).
        std::mem::forget(Arc::clone(table));
        let s = AsyncSender {
            cell,
            generation,
            off,
        };
        debug_assert!(std::ptr::eq(s.table(), Arc::as_ptr(table)));
        s
    }

    /// A sender of the fresh cell `cell` at `fresh` (generation 0).
    ///
    /// # Safety
    /// `cell` must be the cell `fresh` describes (from `SenderTable::alloc`), of a
    /// live table, holding an open handle; `fresh.table` is `Arc::as_ptr` of the
    /// table's `Arc`.
    #[inline(always)]
    unsafe fn of_fresh(fresh: CellPlace, cell: NonNull<u8>) -> Self {
        // SAFETY: per the contract, the table's `Arc` is alive; the new count is
        // this sender's (given back by its drop, through the chunk's head).
        unsafe { Arc::increment_strong_count(fresh.table) };
        let s = AsyncSender {
            cell,
            generation: 0,
            off: fresh.off,
        };
        debug_assert!(std::ptr::eq(s.table(), fresh.table));
        s
    }

    /// The table of this sender's cell: its `Arc`'s pointer (`Arc::as_ptr`), read
    /// from the head of the cell's chunk.
    #[inline(always)]
    fn table(&self) -> *const SenderTable {
        // SAFETY: the cell is `off` cells into its chunk, whose head is the
        // CHUNK_HEAD bytes before its first cell, written when the chunk was made
        // (before any of its cells was handed out) and never again; `cell` derives
        // from the chunk's pointer, so it reaches the head; the chunk lives while
        // the table does, which this sender's count keeps alive.
        unsafe {
            self.cell
                .as_ptr()
                .sub(self.off as usize * CELL + CHUNK_HEAD)
                .cast::<*const SenderTable>()
                .read()
        }
    }

    /// Holds the cell if it is open (the handle's close waits until the hold
    /// ends), or answers `ClosedHandle`. The common case (open) is inlined; waits
    /// and refusals go out of line.
    #[inline(always)]
    fn hold(&self) -> Result<Hold<'_>> {
        // SAFETY: the cell's state word was initialised (by `alloc`) before this
        // sender's handle was made, and that write happens before this read:
        // through the hand-over of this sender. Chunks are freed only with the
        // table, which this sender's count keeps alive.
        let state = unsafe { state_of(self.cell.as_ptr()) };
        let want = (self.generation as u64) << 32;
        // A plain load first: a sender of a shut cell does not touch the count (so
        // the loop thread's waits are bounded by the sends in flight).
        if state.load(Ordering::Relaxed) & !COUNT == want {
            if let Some(hold) = self.try_hold(state, want) {
                return Ok(hold);
            }
        }
        self.hold_slow()
    }

    /// Counts a send in flight on the cell's state word and keeps it if the cell
    /// is still open at `want` (its generation, not shut); otherwise undoes the
    /// count (the `Hold` drops) and answers `None`.
    #[inline(always)]
    fn try_hold<'a>(&'a self, state: &'a AtomicU64, want: u64) -> Option<Hold<'a>> {
        // Acquire: pairs with the Release that published this generation. Whether
        // the cell is still open is read from this RMW's result: shutting
        // (`shut_state`, `keeps_alive`) is an RMW of the same word, so each
        // increment comes before it (and is waited for) or after it (and sees the
        // flag).
        let prev = state.fetch_add(1, Ordering::Acquire);
        let hold = Hold {
            state,
            cell: self.cell.as_ptr(),
        };
        // Otherwise undone when `hold` drops.
        (prev & !COUNT == want).then_some(hold)
    }

    /// `hold`, the long way: waits while the loop thread decides whether the handle
    /// closes, retries when the state changed under it, refuses once it is shut.
    #[cold]
    #[inline(never)]
    fn hold_slow(&self) -> Result<Hold<'_>> {
        // SAFETY: as in `hold`.
        let state = unsafe { state_of(self.cell.as_ptr()) };
        let want = (self.generation as u64) << 32;
        let mut spins = 0;
        loop {
            let s = state.load(Ordering::Relaxed);
            if s & !COUNT == want {
                if let Some(hold) = self.try_hold(state, want) {
                    return Ok(hold);
                }
                // The state changed in between: undone; look again.
            } else if s & !(COUNT | DECIDING) == want {
                // The loop thread is deciding whether the handle closes.
                backoff(&mut spins);
            } else {
                return Err(closed_send());
            }
        }
    }

    /// Wakes the loop (`uv_async_send`); several sends before the callback runs
    /// give one call. (Inlined: a few instructions around libuv's call, the
    /// refusals out of line.)
    #[inline]
    pub fn send(&self) -> Result<()> {
        let hold = self.hold()?;
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

impl Clone for AsyncSender {
    fn clone(&self) -> Self {
        // SAFETY: `table()` is `Arc::as_ptr` of the table's `Arc`, alive: this
        // sender holds one of its counts. The new one is the clone's.
        unsafe { Arc::increment_strong_count(self.table()) };
        AsyncSender {
            cell: self.cell,
            generation: self.generation,
            off: self.off,
        }
    }
}

impl Drop for AsyncSender {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `table()` is `Arc::as_ptr` of the table's `Arc`; this sender's
        // count, given back once, here (the table, and the cell with it, may be
        // freed by this call; nothing reads them after it).
        unsafe { Arc::decrement_strong_count(self.table()) };
    }
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hold ends here, before the writer runs: a writer that waits for the
        // loop thread, or drops the handle, must not find the cell held.
        let open = self.hold().is_ok();
        f.debug_struct("AsyncSender").field("open", &open).finish()
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
        if h.has_senders() {
            // SAFETY: the lifetime rule is asked of an open handle, an `Async`.
            unsafe { SenderTable::keeps_alive(raw) }
        } else {
            // No sender was made: no send can come in.
            wakeup_pending(raw)
        }
    }

    /// A sender for other threads (all senders of a handle share its cell in the
    /// loop's sender table). The common case (an open handle, the last one made
    /// on its loop) is inlined; the others go out of line.
    #[inline]
    pub fn sender(&self) -> Result<AsyncSender> {
        // Open and in libuv (one test of the state for both facts).
        if let Some(shared) = self.inner.shared_open() {
            // SAFETY: the handle is open and in libuv, so its loop's shared state is
            // alive (its owner keeps it) for this call, which runs no user code.
            let table = unsafe { &*shared }.senders();
            let raw = self.raw_struct().cast::<sys::uv_async_t>();
            if let Some((off, generation)) = table.slot_of_last(raw) {
                // Its close shuts the cell from now on.
                self.inner.mark_senders();
                // (The handle's pointer is its allocation's: the cell's.)
                let cell = self.inner.ptr().cast::<u8>();
                return Ok(AsyncSender::new(table, cell, generation, off));
            }
        }
        self.sender_slow()
    }

    /// A new async handle that calls `callback` on wake-ups (as [`Async::new`]),
    /// and a sender for it (as [`Async::sender`]), for a handle that is woken from
    /// other threads. Made right after the handle, the sender takes the short way
    /// (the loop's newest handle needs no search of its cell).
    ///
    /// Errors as [`Async::new`]'s, and `ClosedHandle` when the loop is being
    /// dropped (its handles closing), where [`Async::sender`] refuses too.
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (handle, sender) = uv::Async::with_sender(&lp, |h| h.close())?;
    /// let thread = std::thread::spawn(move || sender.send());
    /// thread.join().unwrap()?;
    /// lp.run(uv::RunMode::Default)?;
    /// assert!(handle.is_closed());
    /// # Ok::<(), uv::Error>(())
    /// ```
    #[inline]
    pub fn with_sender(
        loop_: &LoopHandle,
        callback: impl FnMut(&Async) + 'static,
    ) -> Result<(Async, AsyncSender)> {
        let (a, place) = Async::new_placed(loop_, callback)?;
        if let Some(fresh) = place.fresh_cell() {
            // A fresh cell, open at generation 0, of a table that makes senders (no
            // user code ran since it was handed out: the table is not closed); the
            // handle is open and in libuv. Its close shuts the cell from now on.
            a.inner.mark_senders_new();
            // SAFETY: `fresh` is the place of this handle's cell (its allocation's
            // pointer), in the table of `fresh.table`, alive: the loop's slab holds
            // it, and the handle's allocation counts on the slab.
            let s = unsafe { AsyncSender::of_fresh(fresh, a.inner.ptr().cast::<u8>()) };
            return Ok((a, s));
        }
        // A reused cell (or a closing loop's): the general way.
        let s = a.sender()?;
        Ok((a, s))
    }

    /// `sender` of a handle that is not open, or not the last one made.
    #[cold]
    #[inline(never)]
    fn sender_slow(&self) -> Result<AsyncSender> {
        // Open and in libuv (one test of the state for both facts).
        let shared = self.inner.shared_ptr("uv_async_send")?;
        // Its close shuts the cell from now on. Marked first, right after the test
        // above; a handle marked by a refused call has its cell shut at close,
        // which a cell without senders also gets (when it is freed).
        self.inner.mark_senders();
        let raw = self.raw_struct().cast::<sys::uv_async_t>();
        // SAFETY: the handle is open and in libuv, so its loop's shared state is
        // alive (its owner keeps it) for this call, which runs no user code.
        let table = unsafe { &*shared }.senders();
        let (off, generation) = table.slot_of(raw)?;
        let cell = self.inner.ptr().cast::<u8>();
        Ok(AsyncSender::new(table, cell, generation, off))
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
        // Queue while holding the sender's cell, so a closing loop (which waits for
        // the hold in `shut_senders`) cannot miss the job and leave it queued
        // without an error.
        let hold = self.sender.hold()?;
        self.queue
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Box::new(f));
        // SAFETY: the handle is open while the cell is held (see `SenderTable::hold`).
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
