//! Callback slots: where a handle keeps its user callbacks.
//!
//! A callback is stored once (one allocation per `start`, none per call; a closure
//! that captures nothing allocates nothing). While it runs it is out of its slot, so
//! it may replace itself, stop or close its handle: afterwards it goes back only if
//! the slot is still empty, that is, if it was not replaced meanwhile. (A slot is
//! emptied by `clear` only from a close callback, which never runs during another
//! callback of the same handle.)

use std::cell::Cell;
use std::fmt;

/// One callback slot: 16 bytes, the boxed callback itself.
pub struct Slot<F: ?Sized> {
    cb: Cell<Option<Box<F>>>,
}

impl<F: ?Sized> Default for Slot<F> {
    fn default() -> Self {
        Slot {
            cb: Cell::new(None),
        }
    }
}

impl<F: ?Sized> Slot<F> {
    /// Stores `cb`, dropping the previous callback (after the slot is updated).
    pub fn set(&self, cb: Box<F>) {
        drop(self.cb.replace(Some(cb)));
    }

    /// Stores `cb` for `start` (the C call that will use it): if `start` fails, the
    /// previous callback is put back and `cb` dropped, as if nothing happened.
    pub fn set_then<T, E>(&self, cb: Box<F>, start: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let old = self.cb.replace(Some(cb));
        match start() {
            Ok(v) => {
                drop(old);
                Ok(v)
            }
            Err(e) => {
                drop(self.cb.replace(old));
                Err(e)
            }
        }
    }

    /// Drops the stored callback.
    pub fn clear(&self) {
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
    #[inline]
    pub fn call(&self, f: impl FnOnce(&mut F)) {
        let Some(cb) = self.cb.take() else { return };
        // Put the callback back even if `f` unwinds, unless the slot was refilled.
        struct Restore<'a, F: ?Sized> {
            slot: &'a Slot<F>,
            cb: Option<Box<F>>,
        }
        impl<F: ?Sized> Drop for Restore<'_, F> {
            fn drop(&mut self) {
                let replaced = self.slot.cb.take();
                match replaced {
                    Some(new) => {
                        self.slot.cb.set(Some(new));
                        // The old callback is dropped here, after it returned.
                    }
                    None => self.slot.cb.set(self.cb.take()),
                }
            }
        }
        let mut guard = Restore {
            slot: self,
            cb: Some(cb),
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
