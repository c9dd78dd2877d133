//! Callback slots: where a handle keeps its user callbacks.
//!
//! A callback is stored once (one allocation per `start`, none per call; a closure
//! that captures nothing allocates nothing). While it runs it is out of its slot, so
//! it may replace itself, stop or close its handle: afterwards it goes back only if
//! the slot was not given a new callback in the meantime.

use std::cell::Cell;
use std::fmt;

/// One callback slot.
pub struct Slot<F: ?Sized> {
    cb: Cell<Option<Box<F>>>,
    generation: Cell<u64>,
}

impl<F: ?Sized> Default for Slot<F> {
    fn default() -> Self {
        Slot {
            cb: Cell::new(None),
            generation: Cell::new(0),
        }
    }
}

impl<F: ?Sized> Slot<F> {
    /// Stores `cb`, dropping the previous callback (after the slot is updated).
    pub fn set(&self, cb: Box<F>) {
        self.generation.set(self.generation.get() + 1);
        drop(self.cb.replace(Some(cb)));
    }

    /// Drops the stored callback.
    pub fn clear(&self) {
        self.generation.set(self.generation.get() + 1);
        drop(self.cb.take());
    }

    /// Whether a callback is stored (false while it runs).
    pub fn is_set(&self) -> bool {
        let cb = self.cb.take();
        let set = cb.is_some();
        self.cb.set(cb);
        set
    }

    /// Calls the stored callback, if any, and puts it back unless it was replaced.
    pub fn call(&self, f: impl FnOnce(&mut F)) {
        let Some(cb) = self.cb.take() else { return };
        let generation = self.generation.get();
        // Put the callback back even if `f` unwinds, unless it was replaced.
        struct Restore<'a, F: ?Sized> {
            slot: &'a Slot<F>,
            cb: Option<Box<F>>,
            generation: u64,
        }
        impl<F: ?Sized> Drop for Restore<'_, F> {
            fn drop(&mut self) {
                if self.slot.generation.get() == self.generation {
                    self.slot.cb.set(self.cb.take());
                }
            }
        }
        let mut guard = Restore {
            slot: self,
            cb: Some(cb),
            generation,
        };
        if let Some(cb) = guard.cb.as_mut() {
            f(cb);
        }
    }
}

impl<F: ?Sized> fmt::Debug for Slot<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("set", &self.is_set()).finish()
    }
}
