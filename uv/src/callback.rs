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
    ///
    /// If `start` itself stored another callback here (user code it ran started the
    /// same operation), that one stays: it belongs to a start that succeeded.
    #[inline]
    pub fn set_then<T, E>(&self, cb: Box<F>, start: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        // Identity by address and vtable (capture-free closures share an address).
        let ours: *const F = &*cb;
        let old = self.cb.replace(Some(cb));
        match start() {
            Ok(v) => {
                drop(old);
                Ok(v)
            }
            Err(e) => {
                let now = self.cb.take();
                #[allow(ambiguous_wide_pointer_comparisons)]
                let still_ours = now.as_ref().is_some_and(|c| std::ptr::eq(&**c, ours));
                if still_ours {
                    self.cb.set(old);
                    drop(now);
                } else {
                    self.cb.set(now);
                    drop(old);
                }
                Err(e)
            }
        }
    }

    /// Takes the stored callback out.
    pub fn take(&self) -> Option<Box<F>> {
        self.cb.take()
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
            #[inline]
            fn drop(&mut self) {
                // SAFETY: a look at the Cell's value through its pointer, with no
                // reference into the Cell alive and no code run meanwhile (the Cell
                // is not Sync, so no other thread reaches it).
                let empty = unsafe { (*self.slot.cb.as_ptr()).is_none() };
                if empty {
                    self.slot.cb.set(self.cb.take());
                } else if let Some(new) = self.slot.cb.take() {
                    replaced(self.slot, new, self.cb.take());
                }
            }
        }
        /// The callback replaced itself: the new one stays.
        #[cold]
        #[inline(never)]
        fn replaced<F: ?Sized>(slot: &Slot<F>, new: Box<F>, old: Option<Box<F>>) {
            slot.cb.set(Some(new));
            // The old callback is dropped here, after it returned. While the
            // callback's own panic unwinds, a panicking Drop of what it captured
            // would abort the process: catch that one.
            if std::thread::panicking() {
                let dropped =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(old)));
                if let Err(p) = dropped {
                    drop_quietly(p);
                }
            } else {
                drop(old);
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

/// Drops a panic payload, catching a panic of its own Drop a few rounds deep; what
/// still panics after that is forgotten.
pub(crate) fn drop_quietly(p: Box<dyn std::any::Any + Send>) {
    let mut p = p;
    for _ in 0..8 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(again) => p = again,
        }
    }
    std::mem::forget(p);
}
