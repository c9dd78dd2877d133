//! [`LoopHandle::timeout`]: a function that runs after a delay unless its guard,
//! a [`Timeout`], is cancelled or dropped first.

use std::cell::Cell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::error::Result;
use crate::handles::Timer;
use crate::loop_::LoopHandle;

/// The pending function. The timer's callback holds the only strong reference, the
/// guard a weak one: a function that captures its own guard makes no cycle, and the
/// function goes when the timer closes at the latest.
type Pending = Cell<Option<Box<dyn FnOnce()>>>;

impl LoopHandle {
    /// Runs `f` on the loop thread after `after`, unless the returned [`Timeout`] is
    /// cancelled or dropped first: the guard for "give up on this if it takes too
    /// long" (a request without an answer, an idle connection, a retry).
    ///
    /// Semantics:
    /// - `f` runs at most once, after at least `after` (loop time, as for a
    ///   [`Timer`]); the timer behind it is closed just before `f` runs.
    /// - Dropping the guard, or [`Timeout::cancel`], before `f` ran means `f` never
    ///   runs, and it is dropped right there, with what it captured. After `f` ran,
    ///   dropping the guard does nothing. Keep the guard as long as the timeout
    ///   should hold (`#[must_use]`: `let _ = lp.timeout(…)` cancels at once).
    /// - A pending timeout keeps the loop alive, like a started timer: a retry
    ///   scheduled when nothing else is going on still happens. A deadline that
    ///   should not hold the loop open by itself calls [`Timeout::unref`].
    /// - When the loop is dropped first, `f` is dropped without running.
    /// - A panic in `f` follows the loop's panic rule (stops the loop and is resumed
    ///   by `run`, unless a panic hook takes it).
    ///
    /// Errors: `ClosedLoop` when the loop is gone (`f` is dropped).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    ///
    /// let lp = uv::Loop::new()?;
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// let guard = lp.timeout(Duration::from_millis(1), move || f.set(true))?;
    /// lp.run(uv::RunMode::Default)?; // the pending timeout keeps the loop alive
    /// assert!(fired.get());
    /// drop(guard); // it already ran: nothing to cancel
    ///
    /// // Dropped before it fires: it never runs.
    /// let f = fired.clone();
    /// fired.set(false);
    /// drop(lp.timeout(Duration::ZERO, move || f.set(true))?);
    /// lp.run(uv::RunMode::Default)?;
    /// assert!(!fired.get());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn timeout(&self, after: Duration, f: impl FnOnce() + 'static) -> Result<Timeout> {
        let timer = Timer::new(self)?;
        let pending: Rc<Pending> = Rc::new(Cell::new(Some(Box::new(f))));
        let weak = Rc::downgrade(&pending);
        timer.start(after, Duration::ZERO, move |t| {
            if let Some(f) = pending.take() {
                // Closed first, so that `f` sees the timeout as done and nothing of
                // it stays open (dropping `pending` with the slot) if `f` panics.
                t.close();
                f();
            }
        })?;
        Ok(Timeout {
            timer,
            pending: weak,
        })
    }
}

/// The guard of a function scheduled with [`LoopHandle::timeout`]: dropping it (or
/// [`cancel`](Timeout::cancel)) before the function ran cancels it and drops it.
///
/// ```
/// use std::time::Duration;
///
/// let lp = uv::Loop::new()?;
/// let guard: uv::Timeout = lp.timeout(Duration::from_secs(60), || unreachable!())?;
/// assert!(guard.is_pending());
/// drop(guard); // cancelled: the loop has nothing left to do
/// assert!(!lp.run(uv::RunMode::Default)?);
/// # Ok::<(), uv::Error>(())
/// ```
#[must_use = "dropping a Timeout cancels it"]
pub struct Timeout {
    timer: Timer,
    pending: Weak<Pending>,
}

impl Timeout {
    /// Cancels the timeout: the function will not run and is dropped now. Returns
    /// whether this call cancelled it: `false` when it already ran (or was dropped
    /// with its loop). The same as dropping the guard, with the answer.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = uv::Loop::new()?;
    /// let guard = lp.timeout(Duration::from_secs(60), || unreachable!())?;
    /// assert!(guard.cancel()); // it had not run yet
    ///
    /// let guard = lp.timeout(Duration::ZERO, || {})?;
    /// lp.run(uv::RunMode::Default)?;
    /// assert!(!guard.cancel()); // too late: it ran
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn cancel(self) -> bool {
        self.cancel_now()
    }

    fn cancel_now(&self) -> bool {
        // Out of the cell before it is dropped: its Drop may reach this guard again.
        let f = self.pending.upgrade().and_then(|p| p.take());
        self.timer.close();
        let cancelled = f.is_some();
        drop(f);
        cancelled
    }

    /// Whether the function is still waiting: it has not run, and was neither
    /// cancelled nor dropped with its loop.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = uv::Loop::new()?;
    /// let guard = lp.timeout(Duration::ZERO, || {})?;
    /// assert!(guard.is_pending());
    /// lp.run(uv::RunMode::Default)?;
    /// assert!(!guard.is_pending());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn is_pending(&self) -> bool {
        self.pending.upgrade().is_some_and(|p| {
            let f = p.take();
            let pending = f.is_some();
            p.set(f);
            pending
        })
    }

    /// Stops the pending timeout from keeping the loop alive (`uv_unref`): for a
    /// deadline on other work, which should not hold the loop open once that work
    /// is done. It still fires if the loop is running at that time.
    /// `ClosedHandle` once it ran or was cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = uv::Loop::new()?;
    /// let deadline = lp.timeout(Duration::from_secs(60), || panic!("too slow"))?;
    /// deadline.unref()?;
    /// // Nothing else to do: the loop does not wait for the deadline.
    /// assert!(!lp.run(uv::RunMode::Default)?);
    /// assert!(deadline.is_pending());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn unref(&self) -> Result<()> {
        self.timer.unref()
    }

    /// Makes the pending timeout keep the loop alive again (`uv_ref`), after
    /// [`unref`](Timeout::unref). `ClosedHandle` once it ran or was cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = uv::Loop::new()?;
    /// let guard = lp.timeout(Duration::from_millis(1), || {})?;
    /// guard.unref()?;
    /// guard.ref_()?;
    /// lp.run(uv::RunMode::Default)?; // waits for it again
    /// assert!(!guard.is_pending());
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn ref_(&self) -> Result<()> {
        self.timer.ref_()
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        self.cancel_now();
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("pending", &self.is_pending())
            .finish()
    }
}
