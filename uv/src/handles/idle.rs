//! The Idle handle, generated from `spec/handles/idle.toml`, and the library's own
//! internal idle handle (the async executor's, `uv::future`).

uv_macros::handle!("spec/handles/idle.toml");

impl Idle {
    /// An idle handle of the library's own (hidden from `handles()`, not counted by
    /// `Loop::close`), with `callback` stored but not started: [`Idle::resume`]
    /// starts it without allocating.
    pub(crate) fn new_internal(
        loop_: &crate::LoopHandle,
        callback: impl FnMut(&Idle) + 'static,
    ) -> crate::Result<Idle> {
        let slots = IdleSlots::default();
        // SAFETY: `|p| p` is the unsizing coercion to the slot's callback type.
        slots
            .on_idle
            .set(unsafe { slots.on_idle.callback(callback, |p| p) });
        let init = |l, h| {
            // SAFETY: `l` is an open loop and `h` a fresh handle struct that will not move.
            unsafe { libuv_sys2::uv_idle_init(l, h) }
        };
        // SAFETY: `init` calls this handle type's libuv init function with the loop and
        // struct it is given and returns its result.
        unsafe { crate::handle::Typed::new_inner(loop_, slots, "uv_idle_init", true, init) }
            .map(|inner| Idle { inner })
    }

    /// Starts the handle with the callback already stored (`uv_idle_start`; a no-op
    /// on a started one).
    pub(crate) fn resume(&self) -> crate::Result<()> {
        let raw = self.inner.raw("uv_idle_start")?;
        // SAFETY: the handle is open; the trampoline finds the stored callback.
        let rc = unsafe { libuv_sys2::uv_idle_start(raw, Some(__uv_idle_on_idle)) };
        crate::error::check(rc, "uv_idle_start")
    }
}
