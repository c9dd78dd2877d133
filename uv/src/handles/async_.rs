//! The Async handle, generated from `spec/handles/async.toml`, and its hand-written
//! parts: the cross-thread sender, and the loop's `call_later` built on it.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::handle::HandleKind;
use crate::loop_::LoopHandle;

uv_macros::handle!("spec/handles/async.toml");

/// Loop teardown: shuts every sender of the loop (sends from now on answer
/// `ClosedHandle`) and tells whether one of the `Async` handles among `handles` has
/// a wake-up pending, which the loop then delivers before it closes its handles.
/// The cell of `later` (the loop's `call_later` state, if made) is shut last, so
/// that a thread whose job is refused finds the loop's senders shut.
pub(crate) fn shut_senders(
    table: &SenderTable,
    handles: &[crate::Handle],
    later: Option<&CallLaterState>,
) -> bool {
    let last = later.map_or(std::ptr::null_mut(), |l| l._async.raw_struct().cast());
    table.close(last);
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
/// The cell is shut: its handle is closing (or closed, or the cell free). (Bit
/// 30, below DECIDING: a positive 32-bit immediate, so that setting it is one `lock
/// or`, and testing it one `test` of the word in memory.)
const SHUT: u64 = 1 << 30;
/// The loop thread is deciding whether the handle closes (`Async::keeps_alive`):
/// sends wait until it is cleared, a few instructions later.
const DECIDING: u64 = 1 << 31;
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

/// The alignment of a chunk: that of a cell.
const CHUNK_ALIGN: usize = crate::handle::ASYNC_CELL.align();

/// A chunk of a dropped table, kept for the tables made later: a chunk's memory is
/// never freed, since senders of a dropped loop's handles may still read the state
/// words of its cells (each one shut, at its last generation; the table that takes
/// the chunk opens them at later generations, so those senders stay refused).
struct SpareChunk {
    /// Its number (it holds `chunk_len(c)` cells).
    c: usize,
    /// Its first cell.
    cells: NonNull<u8>,
    /// The cells made in it (handed out at least once, by a table): their state
    /// words are initialised; the others' never were.
    made: usize,
}

// SAFETY: a spare chunk is memory no table owns; it is moved between threads
// whole, through `SPARE_CHUNKS`'s lock, and the table that takes it writes its
// cells' bytes (the state words only atomically, as senders do).
unsafe impl Send for SpareChunk {}

/// The chunks of dropped tables (see `SpareChunk`).
static SPARE_CHUNKS: Mutex<Vec<SpareChunk>> = Mutex::new(Vec::new());

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

/// Chunk `c`'s layout (its cells); `None` where its size overflows (32-bit
/// targets: such a chunk could not be allocated anyway).
fn chunk_layout(c: usize) -> Option<std::alloc::Layout> {
    let size = chunk_len(c).checked_mul(CELL)?;
    std::alloc::Layout::from_size_align(size, CHUNK_ALIGN).ok()
}

/// The state word of the cell at `cell`.
///
/// # Safety
/// `cell` must be a cell whose state word was initialised (a cell a table handed
/// out, reached through a pointer derived from its chunk). The table may be gone:
/// a chunk's memory is never freed (see `SpareChunk`).
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

/// Retires a cell that `pop_free` just opened at the last generation (the loop
/// thread): it is shut again, at that generation, and never handed out (nor put
/// on a free list: `make_chunk` skips it too), since its generation would wrap and
/// a sender kept from 2^32 handles ago would match the next one (one cell per 4
/// billion reuses of one cell). While it was open no sender could hold it: no
/// handle ever had this generation, so no sender has it.
#[cold]
#[inline(never)]
fn retire(state: &AtomicU64) {
    // SHUT is clear (just cleared by `pop_free`, and only the loop thread sets
    // it), so adding sets it.
    state.fetch_add(SHUT, Ordering::Relaxed);
}

/// Where the loop's `Async` handles live, and where their senders find them: one
/// table per loop (so a sender is a cell of it, not an allocation of its own),
/// without a table-wide lock. Each `Async` handle allocation is a cell of the table
/// (see `crate::handle::ASYNC_CELL`), in chunks that never move and are never
/// freed (made by the loop thread; a dropped table's chunks are kept for later
/// tables, see `SpareChunk`), so that senders read them while the table grows,
/// after the handle is gone, and after the loop is gone, without counting
/// themselves anywhere. Each cell's state word, in a part of the libuv struct
/// libuv never touches, holds the generation (one per handle the cell held), the
/// shut flag, and the sends in flight; the loop thread shuts a cell before
/// `uv_close` by setting its flag and waiting until none is in flight. A cell goes
/// back to the free list only when its handle's allocation is freed (after its
/// close callback), so a sender holding an open generation always reaches a live
/// handle. A chunk's memory is left uninitialised until its cells are handed out
/// (in order, from the newest chunk's `next`): cells handed out have their state
/// word initialised, and only those ever reach a sender.
pub(crate) struct SenderTable {
    /// The first cell of each chunk, null where none was made.
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
        }
    }
}

impl Drop for SenderTable {
    fn drop(&mut self) {
        // The table's owner, the loop's slab, is gone, and with it every handle
        // allocation in the table: each cell made is free (shut) or retired
        // (shut). The chunks are kept for later tables, never freed (see
        // `SpareChunk`).
        debug_assert_eq!(self.live.load(Ordering::Relaxed), 0);
        let mut spare = Vec::new();
        for c in FIRST_BITS as usize..CHUNKS {
            if let Some(cells) = NonNull::new(self.chunks[c].load(Ordering::Relaxed)) {
                let made = self.made_in(c);
                spare.push(SpareChunk { c, cells, made });
            }
        }
        if !spare.is_empty() {
            SPARE_CHUNKS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&mut spare);
        }
    }
}

/// What `SenderTable::alloc` answers with a cell: the generation it was opened
/// at, if senders may be made for it (the table is not closed), in the state
/// word's place (the high 32 bits, the others clear: what a sender keeps). One
/// word, so that the answer travels in registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SenderGen(u64);

impl SenderGen {
    /// No senders may be made (its low bits are not clear: no generation reads so).
    pub(crate) const NONE: SenderGen = SenderGen(u64::MAX);

    /// `generation`, if `senders`.
    #[inline(always)]
    fn new(generation: u32, senders: bool) -> Self {
        SenderGen(if senders {
            (generation as u64) << 32
        } else {
            u64::MAX
        })
    }

    /// The generation in the state word's place, if senders may be made.
    #[inline(always)]
    pub(crate) fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }
}

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
    /// caller's to write (never the state word). With the memory, the generation
    /// when senders may be made for it (the table is not closed), for its first
    /// sender, made without a look at the table (`Async::with_sender`).
    #[inline(always)]
    pub(crate) fn alloc(&self) -> Option<(NonNull<u8>, SenderGen)> {
        if let Some((p, generation)) = self.pop_free() {
            return Some((p, SenderGen::new(generation, self.makes_senders())));
        }
        let cell = self.next.load(Ordering::Relaxed);
        if cell == self.end.load(Ordering::Relaxed) {
            // The newest chunk is full (or none was made yet), or the table is
            // closed (see `close`).
            return self.alloc_in_new_chunk();
        }
        // SAFETY: `cell` is below the newest chunk's end: a cell of it never
        // handed out.
        let p = unsafe { self.take_next(cell) };
        // The table is not closed: a closed one keeps `end` at `next` (see
        // `close`), so that its allocations all take the branch above, and this
        // one needs no test of `closed`.
        debug_assert!(self.makes_senders());
        Some((p, SenderGen::new(0, true)))
    }

    /// Takes the first free cell, opened at its next generation (answered), if
    /// there is one. A cell whose next generation would be the last one is
    /// retired instead (see `retire`): then `None`, as for an empty list.
    #[inline(always)]
    fn pop_free(&self) -> Option<(NonNull<u8>, u32)> {
        let p = NonNull::new(self.free.load(Ordering::Relaxed))?;
        // SAFETY: a free cell's first word holds the next free cell (written by
        // `link_free` or `make_chunk`); the cell is no handle's now, so its bytes
        // other than the state word are ours.
        let next = unsafe { p.cast::<*mut u8>().read() };
        self.free.store(next, Ordering::Relaxed);
        // Open the next generation, keeping the count (stale senders undo their
        // own bumps). A free cell is shut (see `link_free`), so subtracting SHUT
        // clears it, without a borrow from the generation, which goes up by one
        // (a free cell's generation is below the last one: no cell is handed out
        // at the last one, see below). Release: belt and braces (a sender learns
        // the generation through the `AsyncSender` made after the handle's init).
        // SAFETY: a cell of this table, handed out before (its state word is
        // initialised).
        let state = unsafe { state_of(p.as_ptr()) };
        let prev = state.fetch_add(GEN_ONE.wrapping_sub(SHUT), Ordering::Release);
        let generation = ((prev >> 32) as u32).wrapping_add(1);
        if generation == u32::MAX {
            // The caller takes a fresh cell instead (the other free cells stay
            // on the list).
            retire(state);
            return None;
        }
        self.bump_live(1);
        Some((p, generation))
    }

    /// Whether senders may be made (the loop is not closing; the loop thread).
    #[inline(always)]
    pub(crate) fn makes_senders(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    /// Hands out `cell`, the newest chunk's next cell (not handed out yet, below
    /// its end), open at generation 0.
    ///
    /// # Safety
    /// `cell` must be `next`, below the newest chunk's end (`end`, but for a
    /// closed table, whose `end` is kept at `next`).
    #[inline(always)]
    unsafe fn take_next(&self, cell: *mut u8) -> NonNull<u8> {
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
        self.bump_live(1);
        cell
    }

    /// `alloc` when the newest chunk is full (or the table is closed): makes the
    /// next chunk and hands out a cell of it; `None` once the chunks are all made
    /// (the table is full). A closed table first hands out the newest chunk's
    /// cells left, and keeps `end` at `next` (see `close`).
    #[cold]
    #[inline(never)]
    fn alloc_in_new_chunk(&self) -> Option<(NonNull<u8>, SenderGen)> {
        if self.makes_senders() {
            return self.alloc_in_next_chunk();
        }
        let newest = self.newest.load(Ordering::Relaxed) as usize;
        let cell = self.next.load(Ordering::Relaxed);
        // The newest chunk's end (chunk `newest` was made: `next` is in it).
        let chunk_end = (newest != 0).then(|| {
            self.chunks[newest & (CHUNKS - 1)]
                .load(Ordering::Relaxed)
                .wrapping_add(chunk_len(newest) * CELL)
        });
        let p = if chunk_end.is_some_and(|end| cell != end) {
            // SAFETY: `cell` is `next`, below the newest chunk's end.
            unsafe { self.take_next(cell) }
        } else {
            self.alloc_in_next_chunk()?.0
        };
        self.end
            .store(self.next.load(Ordering::Relaxed), Ordering::Relaxed);
        // The table is closed: no sender is made.
        Some((p, SenderGen::NONE))
    }

    /// Makes the next chunk (or takes a spare one) and hands out a cell of it;
    /// `None` once the chunks are all made.
    fn alloc_in_next_chunk(&self) -> Option<(NonNull<u8>, SenderGen)> {
        loop {
            let newest = self.newest.load(Ordering::Relaxed) as usize;
            let c = if newest == 0 {
                FIRST_BITS as usize
            } else {
                newest + 1
            };
            if c >= CHUNKS {
                return None;
            }
            let (p, made) = self.make_chunk(c)?;
            self.newest.store(c as u32, Ordering::Relaxed);
            // One past the chunk's cells, and its first cell never handed out (in
            // bounds of its allocation: its layout is `chunk_len(c) * CELL` bytes,
            // and `made <= chunk_len(c)`).
            let end = p.wrapping_add(chunk_len(c) * CELL);
            let next = p.wrapping_add(made * CELL);
            self.end.store(end, Ordering::Relaxed);
            self.next.store(next, Ordering::Relaxed);
            let senders = self.makes_senders();
            // A spare chunk's cells made before first (they went on the free list;
            // `pop_free` answers `None` for one it retires, and the next is tried).
            while !self.free.load(Ordering::Relaxed).is_null() {
                if let Some((p, generation)) = self.pop_free() {
                    return Some((p, SenderGen::new(generation, senders)));
                }
            }
            if next != end {
                // SAFETY: `next`, below the chunk's end.
                let p = unsafe { self.take_next(next) };
                return Some((p, SenderGen::new(0, senders)));
            }
            // A spare chunk whose cells were all made and are all retired: on to
            // the next one.
        }
    }

    /// The number of cells made in chunk `c` (`FIRST_BITS <= c <= newest`): the
    /// newest chunk's are those below `next`.
    fn made_in(&self, c: usize) -> usize {
        if c == self.newest.load(Ordering::Relaxed) as usize {
            let base = self.chunks[c & (CHUNKS - 1)].load(Ordering::Relaxed);
            let next = self.next.load(Ordering::Relaxed);
            // `next` is in chunk `c` (or one past its end), a whole number of
            // cells from its start.
            exact_div_cell(next.addr() - base.addr())
        } else {
            chunk_len(c)
        }
    }

    /// Makes chunk `c`, or takes a spare one of that size from a dropped table
    /// (its cells made before go on the free list, but for retired ones); aborts
    /// on out-of-memory like `Box`. Returns its first cell and the number of its
    /// cells made (those below it were handed out before; the next one handed out
    /// fresh is the one after them).
    #[cold]
    #[inline(never)]
    fn make_chunk(&self, c: usize) -> Option<(*mut u8, usize)> {
        let layout = chunk_layout(c)?;
        let spare = {
            let mut spares = SPARE_CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
            spares
                .iter()
                .position(|s| s.c == c)
                .map(|i| spares.swap_remove(i))
        };
        if let Some(spare) = spare {
            let cells = spare.cells.as_ptr();
            // Release: the chunk is read by this thread only (`close`); senders
            // reach their cells through the `AsyncSender` hand-over.
            self.chunks[c].store(cells, Ordering::Release);
            // From the last one down, so that the free list hands them out in
            // order, as a new chunk's.
            for k in (0..spare.made).rev() {
                // In bounds: `made <= chunk_len(c)`.
                let cell = cells.wrapping_add(k * CELL);
                // SAFETY: a cell made in the chunk (its state word initialised),
                // which holds no handle (its table was dropped with its slab, after
                // the last handle allocation in it was freed); the spare list's
                // lock ordered its last writes before this read.
                let st = unsafe { state_of(cell) }.load(Ordering::Relaxed);
                debug_assert!(st & SHUT != 0);
                if (st >> 32) as u32 != u32::MAX {
                    // SAFETY: the cell is no handle's: its first word links it in.
                    unsafe {
                        cell.cast::<*mut u8>()
                            .write(self.free.load(Ordering::Relaxed))
                    };
                    self.free.store(cell, Ordering::Relaxed);
                }
            }
            return Some((cells, spare.made));
        }
        // SAFETY: a non-zero size. The cells stay uninitialised until each one's
        // state word is written by `alloc`, before a sender of it is made.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // Release: as above.
        self.chunks[c].store(p, Ordering::Release);
        Some((p, 0))
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
        // No cell is handed out at the last generation (`pop_free` retires it
        // instead), so this one's next generation exists.
        debug_assert_ne!(generation, u32::MAX);
        // SAFETY: the cell is no handle's: its first word links it in.
        unsafe {
            cell.cast::<*mut u8>()
                .write(self.free.load(Ordering::Relaxed))
        };
        self.free.store(cell.as_ptr(), Ordering::Relaxed);
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
    /// `last` (a cell of the table, or null) is shut after every other cell.
    fn close(&self, last: *mut u8) {
        // No sender is made from now on (`slot_open`, on this thread; and
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
                let cell = unsafe { p.add(k * CELL) };
                if cell != last {
                    // SAFETY: as above.
                    shut_state(unsafe { state_of(cell) });
                }
            }
        }
        if !last.is_null() {
            // SAFETY: a cell of this table (the caller's), holding a handle.
            shut_state(unsafe { state_of(last) });
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
///
/// A sender holds no reference to its handle or loop (cloning or dropping one
/// counts nothing): it names its handle's cell in the loop's table of `Async`
/// handles, whose memory is never given back (a dropped loop's cells serve the
/// loops made later), so that a sender stays safe to use after its handle and
/// its loop are gone.
#[derive(Clone)]
pub struct AsyncSender {
    /// The handle's cell in its loop's sender table (a pointer derived from its
    /// chunk's). Its memory is never freed (see `SpareChunk`), so the sender needs
    /// no count of anything to reach it.
    cell: NonNull<u8>,
    /// The generation the cell was opened at for this sender's handle, in the
    /// state word's place (the high 32 bits; the others clear): what an open
    /// cell's state word reads but for the count.
    want: u64,
}

// SAFETY: a sender reaches its cell's state word only atomically (the cell's memory
// is never freed), and libuv's struct only through `uv_async_send` (which libuv
// allows from any thread) while its hold keeps the handle open: all of which any
// thread may do.
unsafe impl Send for AsyncSender {}
// SAFETY: as for `Send`: a shared sender allows the same (`send`, `clone`).
unsafe impl Sync for AsyncSender {}

impl AsyncSender {
    /// A sender of the cell `cell` (an open handle's allocation, from its own
    /// pointer), open at `generation` (the loop thread).
    #[inline(always)]
    fn new(cell: NonNull<u8>, generation: u32) -> Self {
        Self::with_want(cell, (generation as u64) << 32)
    }

    /// `new`, with the generation in the state word's place (`SenderGen::get`).
    #[inline(always)]
    fn with_want(cell: NonNull<u8>, want: u64) -> Self {
        debug_assert_eq!(want & (GEN_ONE - 1), 0);
        AsyncSender { cell, want }
    }

    /// Holds the cell if it is open (the handle's close waits until the hold
    /// ends), or answers `ClosedHandle`. The common case (open) is inlined; waits
    /// and refusals go out of line.
    #[inline(always)]
    fn hold(&self) -> Result<Hold<'_>> {
        // SAFETY: the cell's state word was initialised (by `alloc`) before this
        // sender's handle was made, and that write happens before this read:
        // through the hand-over of this sender. A chunk's memory is never freed
        // (a dropped table's chunks go to `SPARE_CHUNKS`), so the cell outlives
        // the sender, which counts nothing.
        let state = unsafe { state_of(self.cell.as_ptr()) };
        let want = self.want;
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
        let want = self.want;
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

impl AsyncSender {
    /// The memory kept for the `Async` handles of the loops that are gone: the
    /// number of allocations and their bytes. It is never given back, since their
    /// senders may still be used (they answer `ClosedHandle`), and the loops made
    /// later take it before they allocate (so it is at most the memory of the most
    /// `Async` handles the process had at once). For leak checks that count
    /// allocations.
    ///
    /// ```
    /// let lp = uv::Loop::new()?;
    /// let (handle, sender) = uv::Async::with_sender(&lp, |_| {})?;
    /// drop(handle);
    /// drop(lp);
    /// // The handle's memory is kept for the sender, which is refused.
    /// let (allocations, bytes) = uv::AsyncSender::kept_memory();
    /// assert!(allocations >= 1 && bytes > 0);
    /// assert!(sender.send().is_err());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn kept_memory() -> (usize, usize) {
        let spares = SPARE_CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
        let chunks = spares
            .iter()
            .filter_map(|s| chunk_layout(s.c))
            .map(|l| l.size());
        let (mut n, mut bytes) = (spares.len(), chunks.sum::<usize>());
        if spares.capacity() > 0 {
            // The list's own buffer.
            n += 1;
            bytes += spares.capacity() * std::mem::size_of::<SpareChunk>();
        }
        (n, bytes)
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
    /// loop's sender table). The common case (an open handle of a loop that is
    /// not closing) is inlined; the refusals go out of line.
    #[inline]
    pub fn sender(&self) -> Result<AsyncSender> {
        // Open and in libuv (one test of the state for both facts).
        if let Some(shared) = self.typed().shared_open() {
            // SAFETY: the handle is open and in libuv, so its loop's shared state is
            // alive (its owner keeps it) for this call, which runs no user code.
            let table = unsafe { &*shared }.senders();
            let raw = self.raw_struct().cast::<sys::uv_async_t>();
            if let Some(generation) = table.slot_open(raw) {
                // Its close shuts the cell from now on.
                self.typed().mark_senders();
                // (The handle's pointer is its allocation's: the cell's.)
                return Ok(AsyncSender::new(self.typed().ptr().cast(), generation));
            }
        }
        self.sender_slow()
    }

    /// A new async handle that calls `callback` on wake-ups (as [`Async::new`]),
    /// and a sender for it (as [`Async::sender`]), for a handle that is woken from
    /// other threads. The sender is made from what the handle's allocation
    /// answered (its cell's generation), without a look at the loop's table.
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
        if let Some(want) = place.sender_generation() {
            // The cell was opened at `generation`, in a table that makes senders,
            // and no user code ran since (the table is not closed, the cell not
            // shut); the handle is open and in libuv, and marked as having
            // senders by `new_placed` (its close shuts the cell).
            let s = AsyncSender::with_want(a.typed().ptr().cast(), want);
            return Ok((a, s));
        }
        Self::with_sender_refused(a)
    }

    /// The end of `with_sender` on a closing loop: refused (the general way), out
    /// of line.
    #[cold]
    #[inline(never)]
    fn with_sender_refused(a: Async) -> Result<(Async, AsyncSender)> {
        let s = a.sender()?;
        Ok((a, s))
    }

    /// `sender` of a handle that is not open, or of a closing loop: refused.
    #[cold]
    #[inline(never)]
    fn sender_slow(&self) -> Result<AsyncSender> {
        // Open and in libuv (one test of the state for both facts).
        let shared = self.typed().shared_ptr("uv_async_send")?;
        // Its close shuts the cell from now on. Marked first, right after the test
        // above; a handle marked by a refused call has its cell shut at close,
        // which a cell without senders also gets (when it is freed).
        self.typed().mark_senders();
        let raw = self.raw_struct().cast::<sys::uv_async_t>();
        // SAFETY: the handle is open and in libuv, so its loop's shared state is
        // alive (its owner keeps it) for this call, which runs no user code.
        let table = unsafe { &*shared }.senders();
        let generation = table.slot_open(raw).ok_or_else(closed_send)?;
        Ok(AsyncSender::new(self.typed().ptr().cast(), generation))
    }

    /// Wakes the loop from the loop thread itself.
    pub fn send(&self) -> Result<()> {
        let raw = self.typed().raw("uv_async_send")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell freed at the generation before the last one is retired when it is
    /// next taken (opened at the last generation, shut again, never handed out):
    /// the table hands out another cell instead, and the cell stays shut at the
    /// last generation.
    #[test]
    fn a_cell_at_the_last_generation_is_retired_when_taken() {
        let table = SenderTable::default();
        let (cell, generation) = table.alloc().expect("a cell");
        assert_eq!(generation.get(), Some(0));
        // SAFETY: a cell of this table, handed out (its state word initialised),
        // holding no handle; only this thread reaches it.
        let state = unsafe { state_of(cell.as_ptr()) };
        // As if the cell had been reused until the generation before the last.
        state.store(((u32::MAX - 1) as u64) << 32, Ordering::Relaxed);
        // SAFETY: from `alloc` of this table, not freed, no handle in it.
        unsafe { table.free_open(cell) };
        assert_eq!(
            state.load(Ordering::Relaxed),
            (((u32::MAX - 1) as u64) << 32) | SHUT
        );
        let (other, generation) = table.alloc().expect("another cell");
        assert_ne!(other, cell);
        assert_eq!(generation.get(), Some(0));
        assert_eq!(
            state.load(Ordering::Relaxed),
            ((u32::MAX as u64) << 32) | SHUT
        );
        assert!(table.free.load(Ordering::Relaxed).is_null());
        // The retired cell is no longer counted as held; the other one is.
        assert_eq!(table.live.load(Ordering::Relaxed), 1);
        // SAFETY: as above.
        unsafe { table.free_open(other) };
        // A cell one generation earlier is reused as usual.
        let (again, generation) = table.alloc().expect("the freed cell");
        assert_eq!(again, other);
        assert_eq!(generation.get(), Some(GEN_ONE));
        // SAFETY: as above.
        unsafe { table.free_open(again) };
    }
}
