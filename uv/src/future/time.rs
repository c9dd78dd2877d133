//! Timers as futures: [`sleep`], [`timeout`], [`interval`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;

use super::{let_go, register, wake, Closes, Notifier};
use crate::error::{Error, Result};
use crate::handles::Timer;
use crate::loop_::LoopHandle;
use crate::StatusCode;

struct Ticks {
    /// Periods elapsed and not yet reported.
    count: Cell<u64>,
    /// An interval's period in milliseconds (0 for a sleep).
    period: u64,
    /// An interval's last period boundary counted, in loop time (ms).
    counted_to: Cell<u64>,
    waker: Cell<Option<Waker>>,
    /// The timer's callback is gone: the timer was closed with its loop.
    closed: Cell<bool>,
}

impl Closes for Ticks {
    fn close(&self) {
        self.closed.set(true);
        wake(&self.waker);
    }
}

/// The timer of a future: the library's own (not among `handles()`, so no
/// `close_all_handles`, `stop` or `close` through an adopted handle leaves the
/// future waiting for good); only the loop's teardown closes it under the future.
///
/// A repeating timer counts the periods elapsed by loop time, not its firings:
/// libuv fires a late repeating timer once and starts its next period then, so a
/// loop held up for several periods (a slow callback or task) sees one firing.
fn start_timer(lp: &LoopHandle, after: Duration, repeat: Duration) -> Result<(Timer, Rc<Ticks>)> {
    let period = crate::runtime::duration_to_ms(repeat);
    let ticks = Rc::new(Ticks {
        count: Cell::new(0),
        period,
        // The time libuv starts the timer from (its cached loop time), brought
        // up to date first: counted from a stale time, the first item would
        // count the periods before the interval was made.
        counted_to: Cell::new(if period > 0 {
            lp.update_time()?;
            crate::runtime::duration_to_ms(lp.now()?)
        } else {
            0
        }),
        waker: Cell::new(None),
        closed: Cell::new(false),
    });
    let timer = Timer::new_internal(lp)?;
    let t = Notifier(ticks.clone());
    timer.start(after, repeat, move |timer| {
        let t: &Ticks = &t;
        let n = match timer.loop_().now() {
            Ok(now) if t.period > 0 => {
                // Due at `counted_to + period` or later: at least one period.
                let now = crate::runtime::duration_to_ms(now);
                let n = (now.saturating_sub(t.counted_to.get()) / t.period).max(1);
                t.counted_to.set(
                    t.counted_to
                        .get()
                        .saturating_add(n.saturating_mul(t.period)),
                );
                n
            }
            _ => 1,
        };
        t.count.set(t.count.get().saturating_add(n));
        wake(&t.waker);
    })?;
    Ok((timer, ticks))
}

/// Completes after `duration` of loop time (a one-shot [`Timer`], started now).
///
/// The pending sleep keeps the loop alive, like a started timer; its timer is the
/// library's own (not among `handles()`, not counted by `Loop::close`). Dropped
/// early, the timer is closed: nothing fires. Resolves to `ClosedLoop` on a loop
/// that is gone, or that goes while it waits.
pub fn sleep(lp: &LoopHandle, duration: Duration) -> Sleep {
    match start_timer(lp, duration, Duration::ZERO) {
        Ok((timer, ticks)) => Sleep {
            timer: Some(timer),
            ticks: Some(ticks),
            err: None,
        },
        Err(e) => Sleep {
            timer: None,
            ticks: None,
            err: Some(e),
        },
    }
}

/// The future of [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    timer: Option<Timer>,
    ticks: Option<Rc<Ticks>>,
    err: Option<Error>,
}

impl std::fmt::Debug for Ticks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticks")
            .field("count", &self.count.get())
            .finish()
    }
}

impl Future for Sleep {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.err.take() {
            return Poll::Ready(Err(e));
        }
        let Some(ticks) = &this.ticks else {
            return Poll::Ready(Ok(()));
        };
        if ticks.count.get() > 0 {
            // (A waker left by a wake that panicked is let go: the timer's close
            // must not wake it.)
            let_go(&ticks.waker);
            if let Some(t) = this.timer.take() {
                t.close();
            }
            this.ticks = None;
            return Poll::Ready(Ok(()));
        }
        if ticks.closed.get() {
            // The loop is gone (its teardown closed the timer).
            let_go(&ticks.waker);
            this.timer = None;
            this.ticks = None;
            return Poll::Ready(Err(Error::closed_loop("sleep")));
        }
        register(&ticks.waker, cx);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(ticks) = &self.ticks {
            // The timer's close callback must not wake the gone future's task.
            let_go(&ticks.waker);
        }
        if let Some(t) = self.timer.take() {
            t.close();
        }
    }
}

/// Runs `future` with a deadline: its output, or `ETIMEDOUT` when `duration` of
/// loop time passes first. On time-out the inner future is dropped (which cancels
/// it as its own drop says) when the `Timeout` is dropped.
pub fn timeout<F: Future>(lp: &LoopHandle, duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: sleep(lp, duration),
    }
}

/// The future of [`timeout`].
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("sleep", &self.sleep)
            .finish()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(v) = this.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Err(Error::new(StatusCode::ETIMEDOUT, "timeout"))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A stream that yields every `period` of loop time (a repeating [`Timer`],
/// started now; the first item after one period). Each item is the number of
/// periods of loop time elapsed since the previous one (more than 1 when the
/// stream was not polled for a while, or the loop was held up, by a slow task or
/// callback, for more than a period: ticks are counted, not queued, and missed
/// ones are not made up by extra items). The stream ends only when
/// the loop goes; dropping it closes the timer. The started timer (the library's
/// own, as [`sleep`]'s) keeps the loop alive.
///
/// The interval starts from the current time: making one brings the loop's
/// cached time up to date ([`LoopHandle::update_time`]). Inside a callback or a
/// task that shows: [`LoopHandle::now`] moves forward, and a timer or [`sleep`]
/// started after the interval counts from the updated time (one started before
/// it, from the time the loop's iteration began).
///
/// The loop's clock counts whole milliseconds: a period with a fraction of a
/// millisecond is rounded up (at least 1 ms; a 0 ms repeat would mean no repeat
/// to libuv, and the stream would stop after one item).
///
/// Errors: `EINVAL` for a zero period; those of [`Timer::new`] (`ClosedLoop`).
pub fn interval(lp: &LoopHandle, period: Duration) -> Result<Interval> {
    if period.is_zero() {
        return Err(Error::new(StatusCode::EINVAL, "interval"));
    }
    // Whole milliseconds, rounded up (as every duration given to libuv).
    let period = Duration::from_millis(crate::runtime::duration_to_ms(period));
    let (timer, ticks) = start_timer(lp, period, period)?;
    Ok(Interval { timer, ticks })
}

/// The stream of [`interval`].
#[derive(Debug)]
pub struct Interval {
    timer: Timer,
    ticks: Rc<Ticks>,
}

impl Interval {
    /// The next tick (the periods elapsed since the previous one); `None` once the
    /// loop is gone.
    pub async fn tick(&mut self) -> Option<u64> {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        let n = self.ticks.count.replace(0);
        if n > 0 {
            return Poll::Ready(Some(n));
        }
        if self.ticks.closed.get() {
            return Poll::Ready(None);
        }
        register(&self.ticks.waker, cx);
        Poll::Pending
    }
}

impl Stream for Interval {
    type Item = u64;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        self.get_mut().poll_tick(cx)
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        // As `Sleep`'s: the close must not wake the gone stream's task.
        let_go(&self.ticks.waker);
        self.timer.close();
    }
}
