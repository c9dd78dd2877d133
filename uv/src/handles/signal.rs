//! The Signal handle, generated from `spec/handles/signal.toml`, and the hook its
//! methods run after libuv (`after = "restore_ignored_signals"` in the spec).

uv_macros::handle!("spec/handles/signal.toml");

/// libuv's `UV_SIGNAL_ONE_SHOT` handle flag (uv-common.h, libuv 1.x), set by
/// `uv_signal_start_oneshot`.
const UV_SIGNAL_ONE_SHOT: u32 = 0x0200_0000;

impl Signal {
    /// The signal the handle watches: `None` when it is not started (or was
    /// stopped, or a one-shot watcher already fired). `ClosedHandle` when closed.
    pub fn signum(&self) -> crate::Result<Option<crate::Signum>> {
        let raw = self.inner.raw("uv_signal_t.signum")?;
        // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`.
        let s = unsafe { (*raw).signum };
        Ok((s > 0).then(|| crate::Signum::from_raw(s)))
    }

    /// Before `start`: the handle loses the one-shot mark of an earlier
    /// `start_oneshot`. libuv sets `UV_SIGNAL_ONE_SHOT` there and never clears it
    /// (libuv 1.53.1, unix/signal.c), so a later `start` watched one-shot: libuv
    /// stopped the watcher after its first delivery, from inside `Loop::run`, and for
    /// a signal the process ignores (SIGPIPE) put the default action back where the
    /// crate cannot ignore it again; the next write to a closed peer killed the
    /// process. (While such a handle was the first watcher of its signal, libuv also
    /// installed the handler with `SA_RESETHAND`, with the same end.) A handle that
    /// watches is in libuv's tree of watchers, ordered by the mark, so it is stopped
    /// first (and a `start` of the signal it watches one-shot starts it afresh).
    fn forget_oneshot(&self) -> crate::Result<()> {
        let raw = self.inner.raw("uv_signal_start")?;
        // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`; the
        // fields are only read.
        let (marked, watching) =
            unsafe { ((*raw).flags & UV_SIGNAL_ONE_SHOT != 0, (*raw).signum != 0) };
        if !marked {
            return Ok(());
        }
        if watching {
            // Out of the tree (and its signal's action restored if ignored).
            self.stop()?;
        }
        // SAFETY: as above; the handle is stopped, so it is in no tree the mark
        // orders, and libuv reads the mark only when it starts, delivers or stops.
        unsafe { (*raw).flags &= !UV_SIGNAL_ONE_SHOT };
        Ok(())
    }

    /// Before `start_oneshot`: `EBUSY` while a delivery of the handle is under way
    /// or to come (a signal caught and not yet delivered). After each delivery
    /// libuv stops the handle if it is marked one-shot then, whatever it watches
    /// (libuv 1.53.1, unix/signal.c, `uv__signal_event`; for a signal the handle no
    /// longer watches, the callback is skipped but the stop is not). A one-shot
    /// watch started meanwhile was undone once `start_oneshot` had answered `Ok`,
    /// and its signal put back to its default action (for most signals, the end of
    /// the process), whether the handle was one-shot before or watched every
    /// delivery.
    ///
    /// A delivery is under way while the handle's callback runs: the generated
    /// trampoline marks it (`marks_delivery` in the spec), and the mark is what is
    /// asked first. libuv's counts cannot tell it alone: its signal handler writes
    /// the signal to the loop's pipe before it counts it as caught, so with the
    /// signal handled on another thread the loop can read the message and run the
    /// callback before the count is raised, and the caught and delivered counts
    /// are then equal inside the callback. The counts tell the rest: a caught
    /// signal not yet delivered will be in this or the next iteration.
    fn refuse_oneshot_mid_delivery(&self) -> crate::Result<()> {
        let raw = self.inner.raw("uv_signal_start_oneshot")?;
        if self.inner.is_delivering() {
            return Err(crate::Error::new(
                crate::StatusCode::EBUSY,
                "uv_signal_start_oneshot",
            ));
        }
        // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`; the
        // fields are only read. The delivered count is written on the loop's
        // thread, which this is (handles are not `Send`). The caught count is
        // written by libuv's signal handler, which may run on any thread: it is read
        // as one aligned 32-bit load (as libuv reads it itself, in
        // `uv__finish_close`). (A signal of the watched one caught on another
        // thread between this load and libuv's stop of the old watch, a few
        // instructions later, is not seen.)
        let (caught, delivered) = unsafe {
            let caught = std::sync::atomic::AtomicU32::from_ptr(
                std::ptr::addr_of_mut!((*raw).caught_signals).cast::<u32>(),
            );
            (
                caught.load(std::sync::atomic::Ordering::Relaxed),
                (*raw).dispatched_signals,
            )
        };
        if caught != delivered {
            return Err(crate::Error::new(
                crate::StatusCode::EBUSY,
                "uv_signal_start_oneshot",
            ));
        }
        Ok(())
    }

    /// libuv puts a signal nobody watches any more back to its default action (on
    /// `stop`, on a `start` with another signal, on close).
    /// A signal the process ignored when its first loop was made (SIGPIPE in every
    /// Rust program) is ignored again, so that a write to a closed peer stays an
    /// `EPIPE` error instead of killing the process.
    fn restore_ignored_signals(&self) -> crate::Result<()> {
        #[cfg(unix)]
        crate::contracts::restore_ignored_signals();
        Ok(())
    }

    /// After `start_oneshot`: a one-shot watcher of a signal the process ignores is
    /// refused (`EINVAL`, the watcher stopped). libuv installs a one-shot handler that
    /// the kernel resets to the default action on delivery, and stops the watcher
    /// only after its callback: in between, the next occurrence (SIGPIPE from any
    /// write to a closed peer) would kill the process.
    ///
    /// First, as after `start`: a handle that watched another signal stopped
    /// watching it (whether the new start succeeded or not), and libuv put that one
    /// back to its default action; an ignored one is ignored again.
    fn refuse_oneshot_on_ignored(&self) -> crate::Result<()> {
        #[cfg(unix)]
        crate::contracts::restore_ignored_signals();
        #[cfg(unix)]
        if let Some(signum) = self.signum()? {
            if crate::contracts::is_ignored_signal(signum.raw()) {
                self.stop()?;
                return Err(crate::Error::new(
                    crate::StatusCode::EINVAL,
                    "uv_signal_start_oneshot",
                ));
            }
        }
        Ok(())
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
        assert!(!sig.inner.is_delivering());
        let answers = Rc::new(RefCell::new(Vec::new()));
        let a = answers.clone();
        sig.start_oneshot(Signum::User2, move |h, _| {
            let raw = h.inner.raw("test").unwrap();
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
            a.push(h.inner.is_delivering());
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
        assert!(!sig.inner.is_delivering());
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
            outer.inner.raw("test").unwrap(),
            inner.inner.raw("test").unwrap(),
        );
        // SAFETY: both are handles of this library's `Signal`, open and in libuv;
        // the closures call no callback of theirs.
        unsafe {
            marking_delivery_for_test(ro, || {
                assert!(outer.inner.is_delivering());
                marking_delivery_for_test(ri, || {
                    assert!(inner.inner.is_delivering());
                    assert!(!outer.inner.is_delivering());
                });
                assert!(outer.inner.is_delivering());
                assert!(!inner.inner.is_delivering());
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    marking_delivery_for_test(ri, || panic!("in a delivery"));
                }));
                assert!(r.is_err());
                assert!(outer.inner.is_delivering());
                assert!(!inner.inner.is_delivering());
            });
        }
        assert!(!outer.inner.is_delivering());
        assert!(!inner.inner.is_delivering());
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
