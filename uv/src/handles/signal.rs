//! The Signal handle, generated from `spec/handles/signal.toml`, and the hook its
//! methods run after libuv (`after = "restore_ignored_signals"` in the spec).

uv_macros::handle!("../spec/handles/signal.toml");

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
    /// `stop`, on a `start` with another signal, on a one-shot delivery, on close).
    /// A signal the process ignored when its first loop was made (SIGPIPE in every
    /// Rust program) is ignored again, so that a write to a closed peer stays an
    /// `EPIPE` error instead of killing the process.
    fn restore_ignored_signals(&self) {
        #[cfg(unix)]
        crate::contracts::restore_ignored_signals();
    }
}
