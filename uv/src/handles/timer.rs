//! The Timer handle, generated from `spec/handles/timer.toml`, and its hand-written
//! helper: the one-shot [`Timer::once`].

use std::time::Duration;

use crate::error::Result;
use crate::loop_::LoopHandle;

uv_macros::handle!("spec/handles/timer.toml");

impl Timer {
    /// A new timer that calls `callback` once, after `timeout`, then stops.
    ///
    /// The callback is an `FnOnce`: what it captures is dropped as soon as it has
    /// run (moved values need no `Rc<Cell<Option<…>>>`). Like every started timer,
    /// it stays alive without references and keeps the loop alive until it fires
    /// (`unref` to stop that). Once it fired it is a stopped timer: it closes when
    /// no reference to it is left, and a reference you kept may `start` it again.
    ///
    /// Cancelling: `stop` (or `close`) before it fires means the callback never
    /// runs. The callback is then dropped when the timer closes: when the last
    /// reference goes (a stopped timer is not active, so it closes), at `close`, or
    /// when the loop is dropped; a new `start` replaces (drops) it at once. For a
    /// guard that drops its function as soon as it is cancelled, see
    /// [`LoopHandle::timeout`].
    ///
    /// A panic in the callback follows the loop's panic rule (it stops the loop and
    /// `run` resumes it, unless a panic hook takes it); the callback is gone then.
    ///
    /// Errors: those of [`Timer::new`] (`ClosedLoop` on a loop that is gone); the
    /// callback is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = uv::Loop::new()?;
    /// let greeting = String::from("hello"); // moved in, dropped after the call
    /// uv::Timer::once(&lp, Duration::from_millis(1), move |_timer| {
    ///     assert_eq!(greeting, "hello");
    /// })?;
    /// lp.run(uv::RunMode::Default)?; // returns once the timer fired
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn once(
        loop_: &LoopHandle,
        timeout: Duration,
        callback: impl FnOnce(&Timer) + 'static,
    ) -> Result<Timer> {
        let timer = Timer::new(loop_)?;
        let mut callback = Some(callback);
        timer.start(timeout, Duration::ZERO, move |t| {
            // Taken out before the call, so that it runs at most once even if the
            // timer is restarted with `set_repeat` and `again`.
            if let Some(f) = callback.take() {
                f(t);
            }
        })?;
        Ok(timer)
    }
}
