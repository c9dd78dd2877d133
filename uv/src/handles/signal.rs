//! The Signal handle, generated from `spec/handles/signal.toml` (its hooks, such
//! as `after = "restore_ignored_signals"`, are the runtime's: uv/src/hooks.rs), and
//! the watched signal.

uv_macros::handle!("spec/handles/signal.toml");

use crate::handle::HandleKind;

impl Signal {
    /// The signal the handle watches: `None` when it is not started (or was
    /// stopped, or a one-shot watcher already fired). `ClosedHandle` when closed.
    pub fn signum(&self) -> crate::Result<Option<crate::Signum>> {
        let raw = self.typed().raw("uv_signal_t.signum")?;
        // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`.
        let s = unsafe { (*raw).signum };
        Ok((s > 0).then(|| crate::Signum::from_raw(s)))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::{Loop, RunMode, Signum, StatusCode};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Sends SIGUSR2 to this thread (the loop's): its handler (libuv's, installed
    /// by the test's handle) has written its message and counted the signal as
    /// caught when `raise` returns.
    fn raise_usr2() {
        // SAFETY: `raise` sends a signal to the calling thread; the test's handle
        // watches SIGUSR2, so libuv's handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    }

    /// The callback of a delivery whose caught and delivered counts are equal (as
    /// when the signal is handled on another thread, whose handler writes the
    /// message before it counts the signal, and the loop runs the callback in
    /// between): `start_oneshot` is still refused, for the mark of the delivery.
    /// libuv would stop the handle after this callback, undoing the watch.
    #[test]
    fn a_one_shot_start_in_a_delivery_with_equal_counts_is_refused() {
        let lp = Loop::new().unwrap();
        let sig = Signal::new(&lp).unwrap();
        assert!(!sig.typed().is_delivering());
        let answers = Rc::new(RefCell::new(Vec::new()));
        let a = answers.clone();
        sig.start_oneshot(Signum::User2, move |h, _| {
            let raw = h.typed().raw("test").unwrap();
            // SAFETY: the handle is open (its callback runs), so `raw` is an
            // initialised `uv_signal_t`; the signal was raised on this thread and
            // counted before `raise` returned, and no other thread raises it, so
            // no handler writes the count meanwhile. It is put back below.
            let caught = unsafe {
                let caught = (*raw).caught_signals;
                (*raw).caught_signals = (*raw).dispatched_signals;
                caught
            };
            let mut a = a.borrow_mut();
            a.push(h.typed().is_delivering());
            a.push(
                h.start_oneshot(Signum::User1, |_, _| {})
                    .is_err_and(|e| e.code() == StatusCode::EBUSY),
            );
            a.push(
                h.start_oneshot(Signum::User2, |_, _| {})
                    .is_err_and(|e| e.code() == StatusCode::EBUSY),
            );
            // SAFETY: as above.
            unsafe { (*raw).caught_signals = caught };
        })
        .unwrap();
        raise_usr2();
        while answers.borrow().is_empty() {
            lp.run(RunMode::Once).unwrap();
        }
        assert_eq!(*answers.borrow(), vec![true, true, true]);
        // The delivery is over: the mark is gone, and libuv stopped the one-shot
        // watch as it does after each delivery.
        assert!(!sig.typed().is_delivering());
        assert_eq!(sig.signum().unwrap(), None);
        // A one-shot watch started now lasts until its signal.
        sig.start_oneshot(Signum::User2, |_, _| {}).unwrap();
        assert_eq!(sig.signum().unwrap(), Some(Signum::User2));
        sig.close();
        lp.run(RunMode::Default).unwrap();
    }

    /// The mark is the handle's only while its marked delivery runs: put back when
    /// the delivery unwinds, and the outer one's again after a nested delivery of
    /// another handle.
    #[test]
    fn the_delivery_mark_is_put_back_after_a_panic_and_after_nesting() {
        let lp = Loop::new().unwrap();
        let outer = Signal::new(&lp).unwrap();
        let inner = Signal::new(&lp).unwrap();
        let (ro, ri) = (
            outer.typed().raw("test").unwrap(),
            inner.typed().raw("test").unwrap(),
        );
        // SAFETY: both are handles of this library's `Signal`, open and in libuv;
        // the closures call no callback of theirs.
        unsafe {
            marking_delivery_for_test(ro, || {
                assert!(outer.typed().is_delivering());
                marking_delivery_for_test(ri, || {
                    assert!(inner.typed().is_delivering());
                    assert!(!outer.typed().is_delivering());
                });
                assert!(outer.typed().is_delivering());
                assert!(!inner.typed().is_delivering());
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    marking_delivery_for_test(ri, || panic!("in a delivery"));
                }));
                assert!(r.is_err());
                assert!(outer.typed().is_delivering());
                assert!(!inner.typed().is_delivering());
            });
        }
        assert!(!outer.typed().is_delivering());
        assert!(!inner.typed().is_delivering());
        outer.close();
        inner.close();
        lp.run(RunMode::Default).unwrap();
    }

    /// `runtime::marking_delivery` for a `Signal`.
    ///
    /// # Safety
    /// As `marking_delivery`.
    unsafe fn marking_delivery_for_test(raw: *mut crate::sys::uv_signal_t, f: impl FnOnce()) {
        // SAFETY: per the contract.
        unsafe { crate::runtime::marking_delivery::<Signal>(raw, f) }
    }
}
