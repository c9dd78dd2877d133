//! The Check handle, generated from `spec/handles/check.toml`, and the library's own
//! internal check handle (the async executor's, `uv::future`).

uv_macros::handle!("spec/handles/check.toml");

impl Check {
    /// A check handle of the library's own (hidden from `handles()`, not counted by
    /// `Loop::close`), not started.
    pub(crate) fn new_internal(loop_: &crate::LoopHandle) -> crate::Result<Check> {
        let init = |l, h| {
            // SAFETY: `l` is an open loop and `h` a fresh handle struct that will not move.
            unsafe { libuv_sys2::uv_check_init(l, h) }
        };
        // SAFETY: `init` calls this handle type's libuv init function with the loop and
        // struct it is given and returns its result.
        unsafe {
            crate::handle::Typed::new_inner(
                loop_,
                CheckSlots::default(),
                "uv_check_init",
                true,
                init,
            )
        }
        .map(|inner| Check { inner })
    }
}
