//! Timers as futures: [`sleep`], [`timeout`], [`interval`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;

use super::{register, wake};
use crate::error::{Error, Result};
use crate::handles::Timer;
use crate::loop_::LoopHandle;
use crate::StatusCode;

struct Ticks {
    /// Periods elapsed and not yet reported.
    count: Cell<u64>,
    waker: Cell<Option<Waker>>,
}

fn start_timer(lp: &LoopHandle, after: Duration, repeat: Duration) -> Result<(Timer, Rc<Ticks>)> {
    let ticks = Rc::new(Ticks {
        count: Cell::new(0),
        waker: Cell::new(None),
    });
    let timer = Timer::new(lp)?;
    let guard = TickWake(ticks.clone());
    timer.start(after, repeat, move |_| {
        let t = &guard.0;
        t.count.set(t.count.get() + 1);
        wake(&t.waker);
    })?;
    Ok((timer, ticks))
}

/// Held by the timer's callback: wakes the waiting task when the callback is
/// dropped, so that a timer closed through another value (`close_all_handles`)
/// ends its future instead of leaving it waiting for a tick that cannot come.
struct TickWake(Rc<Ticks>);

impl Drop for TickWake {
    fn drop(&mut self) {
        wake(&self.0.waker);
    }
}

/// Completes after `duration` of loop time (a one-shot [`Timer`], started now).
///
/// The pending sleep keeps the loop alive, like a started timer. Dropped early,
/// the timer is closed: nothing fires. Resolves to `ClosedLoop` on a loop that is
/// gone, and to `ClosedHandle` when its timer is closed through another value
/// (`close_all_handles`) before it fired.
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
            if let Some(t) = this.timer.take() {
                t.close();
            }
            this.ticks = None;
            return Poll::Ready(Ok(()));
        }
        if this.timer.as_ref().is_some_and(|t| t.is_closing()) {
            // Closed elsewhere before it fired: it never will.
            this.timer = None;
            this.ticks = None;
            return Poll::Ready(Err(Error::closed_handle("sleep")));
        }
        register(&ticks.waker, cx);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
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
/// periods elapsed since the previous one (more than 1 when the stream was not
/// polled for a while: ticks are counted, not queued). The stream never ends;
/// dropping it closes the timer. The started timer keeps the loop alive.
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
    // Whole milliseconds, rounded up.
    let period = match Duration::from_millis(crate::runtime::duration_to_ms(period)) {
        p if p < period => p.saturating_add(Duration::from_millis(1)),
        p => p,
    };
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
    /// The next tick (the periods elapsed since the previous one); 0 once the
    /// timer was closed through another value (`close_all_handles`): no tick
    /// will come.
    pub async fn tick(&mut self) -> u64 {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let n = self.ticks.count.replace(0);
        if n > 0 || self.timer.is_closing() {
            return Poll::Ready(n);
        }
        register(&self.ticks.waker, cx);
        Poll::Pending
    }
}

/// Ends (`None`) once the timer was closed through another value.
impl Stream for Interval {
    type Item = u64;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        self.get_mut().poll_tick(cx).map(|n| (n > 0).then_some(n))
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        self.timer.close();
    }
}
