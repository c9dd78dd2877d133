//! A global allocator that counts, per thread, the live allocations a thread made
//! (freed ones count on the thread that frees them) and the reallocations, so that
//! a test can tell that a thread's loops gave back everything they took. A test
//! binary installs it with
//! `#[global_allocator] static A: PerThread = PerThread;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator (the system's, with per-thread counts on the side).
#[derive(Debug, Clone, Copy)]
pub struct PerThread;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static REALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// How many times this thread grew or shrank an allocation.
pub fn reallocs_here() -> usize {
    REALLOCS.with(Cell::get)
}

/// Allocations made on this thread minus those freed on it.
pub fn live_here() -> isize {
    LIVE.with(Cell::get)
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments
// and only adds bookkeeping (a const-initialised thread-local without destructor)
// on the side.
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) };
        count(-1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = REALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
