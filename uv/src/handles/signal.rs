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
    /// or to come (a signal caught and not yet delivered). libuv counts the
    /// signals a handle caught and those it delivered; a caught signal not yet
    /// delivered is in the handle's callback, or will be in this or the next
    /// iteration, and after each delivery libuv stops the handle if it is marked
    /// one-shot then, whatever it watches (libuv 1.53.1, unix/signal.c,
    /// `uv__signal_event`; for a signal the handle no longer watches, the callback
    /// is skipped but the stop is not). A one-shot watch started meanwhile was
    /// undone once `start_oneshot` had answered `Ok`, and its signal put back to
    /// its default action (for most signals, the end of the process), whether the
    /// handle was one-shot before or watched every delivery.
    fn refuse_oneshot_mid_delivery(&self) -> crate::Result<()> {
        let raw = self.inner.raw("uv_signal_start_oneshot")?;
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
