//! The Signal handle, generated from `spec/handles/signal.toml`, and the hook its
//! methods run after libuv (`after = "restore_ignored_signals"` in the spec).

uv_macros::handle!("spec/handles/signal.toml");

impl Signal {
    /// The signal the handle watches: `None` when it is not started (or was
    /// stopped, or a one-shot watcher already fired). `ClosedHandle` when closed.
    pub fn signum(&self) -> crate::Result<Option<crate::Signum>> {
        let raw = self.inner.raw("uv_signal_t.signum")?;
        // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`.
        let s = unsafe { (*raw).signum };
        Ok((s > 0).then(|| crate::Signum::from_raw(s)))
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
