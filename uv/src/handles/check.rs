//! The Check handle, generated from `spec/handles/check.toml`, and the library's own
//! internal check handle (the async executor's, `uv::future`).

uv_macros::handle!("spec/handles/check.toml");

impl Check {
    /// A check handle of the library's own (hidden from `handles()`, not counted by
    /// `Loop::close`), not started.
    pub(crate) fn new_internal(loop_: &crate::LoopHandle) -> crate::Result<Check> {
        crate::handle::Typed::new_inner(
            loop_,
            CheckSlots::default(),
            "uv_check_init",
            true,
            |l, h| {
                // SAFETY: `l` is an open loop and `h` a fresh handle struct that will not move.
                unsafe { libuv_sys2::uv_check_init(l, h) }
            },
        )
        .map(|inner| Check { inner })
    }
}
