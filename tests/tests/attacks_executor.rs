//! Attacks from safe code on the executor (`Loop::block_on`,
//! `LoopHandle::spawn_local`, `JoinHandle`) and the timer futures: outputs whose
//! `Drop` panics, tasks ended while a panic unwinds, futures of `block_on` that
//! a panic resumed by the loop drops, and the loop closed or timers dropped from
//! inside the futures themselves. Each test says what used to happen, or which
//! guarantee it pins; values, counts, orders and error codes only.
//! `bash tests/valgrind.sh attacks_executor` checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::StreamExt;
use uv::future::{self as uvf, JoinError};
use uv::{Loop, RunMode, Stream as _};
use uv_tests::provoke::panic_of;
use uv_tests::provoke::{provoke, quiet_provoked_panics, PanicOnDrop};

/// A future that wakes its task in the poll that completes it, with `v`.
fn wake_then_ready<T>(v: T) -> impl Future<Output = T> {
    let mut v = Some(v);
    std::future::poll_fn(move |cx| {
        cx.waker().wake_by_ref();
        Poll::Ready(v.take().expect("polled once"))
    })
}

/// A task's output of a detached `JoinHandle` whose `Drop` panics, from a task
/// that woke itself in its last poll, polled in the loop's check phase.
///
/// Used to: the output was kept by the executor's record of the task (its panic
/// notice held the join state), and that record, queued again by the wake, was
/// dropped by the loop's teardown outside any guard: the panic unwound out of
/// `Loop::drop`, with the teardown left half done (the loop neither closed nor
/// freed; a loop dropped while a panic unwinds would have aborted the process).
/// Now the output is dropped at the end of the task's last poll, under the loop's
/// panic guard: `run` resumes its panic, and the loop's drop runs to the end.
#[test]
fn a_detached_output_whose_drop_panics_never_escapes_the_loop_s_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let spawned = Rc::new(Cell::new(false));
    let s = spawned.clone();
    let p = uv::Prepare::new(&lp).unwrap();
    p.start(move |p| {
        // After the idle phase, before the poll: the check phase polls it.
        let jh = p
            .loop_()
            .spawn_local(wake_then_ready(PanicOnDrop("output")))
            .unwrap();
        drop(jh);
        s.set(true);
        p.close();
    })
    .unwrap();
    assert_eq!(panic_of(|| lp.run(RunMode::Once)), Some("output"));
    assert!(spawned.get());
    assert_eq!(
        panic_of(move || drop(lp)),
        None,
        "the loop's drop ran to the end"
    );
}

/// Wakes both wakers, in order.
struct Both(Waker, Waker);

impl Wake for Both {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_by_ref();
        self.1.wake_by_ref();
    }
}

/// Two tasks woken by one read (in the loop's I/O phase, so the check phase that
/// follows polls them, with no idle handle started); the first ends with an
/// output whose `Drop` panics, its `JoinHandle` detached.
///
/// Used to: the output was dropped after the poll, with the executor's record of
/// the task, outside the poll's guard: the panic unwound out of the executor's
/// round (to the check handle's callback guard), and the second task, woken by
/// the same read, was left queued and unpolled with no idle handle to keep the
/// loop from blocking: the loop would block in its poll (`backend_timeout`
/// `None`) with a task ready, for good while the stream read on. Now the output is
/// dropped inside the first task's last poll, under its guard: the round goes on,
/// the second task is polled in the same iteration, then `run` resumes the panic.
#[test]
fn an_output_drop_that_panics_leaves_no_woken_task_unpolled() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp).unwrap();
    let polls = Rc::new(Cell::new(0u32));
    let second: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (p, w) = (polls.clone(), second.clone());
    let t2 = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if p.get() == 2 {
                return Poll::Ready(());
            }
            *w.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }))
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(polls.get(), 1);
    // The stream outlives the first task (its drop would close the pipe, and a
    // closing handle keeps the loop from blocking).
    let chunks = Rc::new(RefCell::new(uvf::read_chunks(b)));
    let (c, w) = (chunks.clone(), second.clone());
    let t1 = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            let t2 = w.borrow().clone().expect("the second task waits");
            let both = Waker::from(Arc::new(Both(cx.waker().clone(), t2)));
            match c
                .borrow_mut()
                .poll_next_unpin(&mut Context::from_waker(&both))
            {
                Poll::Pending => Poll::Pending,
                Poll::Ready(_) => Poll::Ready(PanicOnDrop("output")),
            }
        }))
        .unwrap();
    drop(t1);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.backend_timeout().unwrap(), None, "both tasks wait");
    a.try_write(b"x").unwrap();
    assert_eq!(panic_of(|| lp.run(RunMode::Once)), Some("output"));
    assert_eq!(
        polls.get(),
        2,
        "the second task was polled in the same round"
    );
    assert!(t2.is_finished());
    a.close();
    drop(chunks);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

/// Tasks whose futures are dropped while an unrelated panic unwinds: with their
/// loop (dropped by the unwinding), and by `abort` from a `Drop` the unwinding
/// runs.
///
/// Used to: the join state took any drop of a task's future while the thread
/// panicked for its poll's panic: both handles resolved to
/// `Err(JoinError::Panicked)`, though neither task's poll ever panicked. Now
/// only a poll that unwound makes `Panicked` (as a task whose poll panics still
/// shows); these are `Cancelled`, as an abort and a loop's drop document.
#[test]
fn tasks_ended_while_an_unrelated_panic_unwinds_are_cancelled() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let with_loop = lp.spawn_local(std::future::pending::<()>()).unwrap();
    let aborted = Rc::new(lp.spawn_local(std::future::pending::<u8>()).unwrap());
    let panicking = lp
        .spawn_local(async {
            provoke("task");
        })
        .unwrap();
    assert_eq!(panic_of(|| lp.run(RunMode::NoWait)), Some("task"));
    struct AbortOnDrop(Rc<uv::JoinHandle<u8>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let on_drop = AbortOnDrop(aborted.clone());
    let r = panic_of(move || {
        let _lp = lp;
        let _abort = on_drop;
        provoke("unrelated");
    });
    assert_eq!(r, Some("unrelated"));
    let mut cx = Context::from_waker(Waker::noop());
    let mut with_loop = with_loop;
    assert_eq!(
        Pin::new(&mut with_loop).poll(&mut cx),
        Poll::Ready(Err(JoinError::Cancelled))
    );
    let mut aborted = Rc::into_inner(aborted).expect("the only handle left");
    assert_eq!(
        Pin::new(&mut aborted).poll(&mut cx),
        Poll::Ready(Err(JoinError::Cancelled))
    );
    let mut panicking = panicking;
    assert_eq!(
        Pin::new(&mut panicking).poll(&mut cx),
        Poll::Ready(Err(JoinError::Panicked))
    );
}

/// `block_on` of a future whose `Drop` panics, while a spawned task panics (the
/// panic `block_on` resumes, by the loop's panic rule).
///
/// Used to: the future, on `block_on`'s stack, was dropped by the unwinding of
/// the task's panic, and its `Drop` panicked during it: the process aborted
/// ("panic in a destructor during cleanup"). Now `block_on` drops the future
/// before it resumes the task's panic, and a panic of that drop is dropped: the
/// caller catches the task's panic; the loop and its other tasks go on.
#[test]
fn block_on_drops_its_future_before_resuming_a_task_s_panic() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>, #[allow(dead_code)] PanicOnDrop);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let other = lp
        .spawn_local({
            let lh = lh.clone();
            async move {
                uvf::sleep(&lh, Duration::ZERO).await.unwrap();
                7
            }
        })
        .unwrap();
    let held = Flag(dropped.clone(), PanicOnDrop("future drop"));
    let r = panic_of(|| {
        lp.block_on(async move {
            let _held = held;
            lh.spawn_local(async { provoke("task") }).unwrap();
            std::future::pending::<()>().await
        })
    });
    assert_eq!(r, Some("task"), "the task's panic, not the drop's");
    assert!(dropped.get(), "the future was dropped");
    assert_eq!(lp.block_on(other).unwrap(), Ok(7));
    assert_eq!(lp.block_on(async { 1 }).unwrap(), 1);
}

/// An interval whose consumer holds the loop up for five periods between two
/// ticks (a slow task: the loop's thread is busy).
///
/// Used to: libuv fires a late repeating timer once and starts its next period
/// from then, and the stream counted firings: the item after the hold-up was 1,
/// though `interval` documents each item as the periods elapsed since the
/// previous one. Now the periods are counted by loop time: at least 5, and the
/// tick after that counts on from where that one ended.
#[test]
fn an_interval_held_up_by_its_consumer_counts_the_periods_elapsed() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let (first, held, next) = lp
        .block_on(async move {
            let mut iv = uvf::interval(&lh, Duration::from_millis(2)).unwrap();
            let first = iv.tick().await.unwrap();
            std::thread::sleep(Duration::from_millis(10));
            let held = iv.tick().await.unwrap();
            let next = iv.tick().await.unwrap();
            (first, held, next)
        })
        .unwrap();
    assert!(first >= 1);
    assert!(held >= 5, "five periods passed, {held} counted");
    assert!(next >= 1);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

/// `Loop::run` from the future of a `block_on` of the same loop (the future is
/// polled outside `uv_run`, so the loop is not marked running then).
///
/// Used to: the nested `run` ran the loop with `block_on`'s own wake-up handle
/// referenced (it keeps the loop waiting for wakes from other threads): on a loop
/// with nothing else to do, `run(Default)` never returned, and `block_on` with
/// it. Now it is `EBUSY`, as from a callback or a task (the loop cannot run
/// nested); after `block_on`, `run` works again.
#[test]
fn run_inside_block_on_is_ebusy() {
    let lp = Loop::new().unwrap();
    for mode in [RunMode::Default, RunMode::Once, RunMode::NoWait] {
        let r = lp.block_on(async { lp.run(mode) }).unwrap();
        assert_eq!(r.unwrap_err().code(), uv::StatusCode::EBUSY, "{mode:?}");
    }
    assert!(!lp.run(RunMode::Default).unwrap());
}

/// `Loop::close` from the future of `block_on` (allowed: the loop is not
/// running while the future is polled, and the executor's handles are not
/// counted). Pins: the tasks are dropped (their handles resolve to `Cancelled`,
/// a pending sleep of the future to `ClosedLoop`), `spawn_local` answers
/// `ClosedLoop`, and `block_on` ends with `ClosedLoop` at its next run instead
/// of running a freed loop; valgrind sees no error nor leak.
#[test]
fn close_from_the_future_of_block_on_ends_it_with_closed_loop() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let task = lp.spawn_local(std::future::pending::<()>()).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let r = lp.block_on(async {
        let mut sleep = uvf::sleep(&lh, Duration::from_secs(3600));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        s.borrow_mut()
            .push(format!("{:?}", lp.close().map_err(|e| e.code())));
        s.borrow_mut().push(format!("{}", task.is_finished()));
        match Pin::new(&mut sleep).poll(&mut cx) {
            Poll::Ready(Err(e)) => s
                .borrow_mut()
                .push(format!("{}", e.is(uv::Category::ClosedLoop))),
            other => s.borrow_mut().push(format!("{other:?}")),
        }
        let spawned = lh.spawn_local(async {});
        s.borrow_mut().push(format!(
            "{}",
            spawned.unwrap_err().is(uv::Category::ClosedLoop)
        ));
        std::future::pending::<()>().await
    });
    assert!(r.unwrap_err().is(uv::Category::ClosedLoop));
    assert_eq!(*seen.borrow(), ["Ok(())", "true", "true", "true"]);
    assert!(lp.is_closed());
}

/// A sleep polled by an executor of the user's whose waker drops the sleep when
/// woken: the sleep is dropped (its timer closed) inside the wake its own
/// timer's callback makes. Pins: one wake, no use of the dropped state
/// (valgrind), and the loop ends with no handle.
#[test]
fn a_sleep_dropped_inside_its_own_wake() {
    thread_local! {
        /// The sleep, and the wakes that found it.
        static SLOT: RefCell<(Option<uvf::Sleep>, u32)> = const { RefCell::new((None, 0)) };
    }
    /// Drops this thread's sleep when woken.
    struct DropOnWake;
    impl Wake for DropOnWake {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let taken = SLOT.with(|s| {
                let mut s = s.borrow_mut();
                s.1 += 1;
                s.0.take()
            });
            drop(taken);
        }
    }
    let lp = Loop::new().unwrap();
    let waker = Waker::from(Arc::new(DropOnWake));
    let mut sleep = uvf::sleep(&lp, Duration::ZERO);
    assert!(Pin::new(&mut sleep)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    SLOT.with(|s| s.borrow_mut().0 = Some(sleep));
    assert!(!lp.run(RunMode::Default).unwrap());
    let (left, wakes) = SLOT.with(|s| {
        let s = s.borrow();
        (s.0.is_some(), s.1)
    });
    assert_eq!(wakes, 1);
    assert!(!left, "dropped inside the wake");
    assert_eq!(lp.handle_count(), 0);
}

/// A timeout whose inner future and deadline complete in the same loop
/// iteration: the inner future is polled first, so its value wins. Pins the
/// documented order (no `ETIMEDOUT` for work that completed in time).
#[test]
fn a_timeout_and_its_future_due_together_give_the_value() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let r = lp
        .block_on(uvf::timeout(
            &lh,
            Duration::ZERO,
            uvf::sleep(&lh, Duration::ZERO),
        ))
        .unwrap();
    assert!(matches!(r, Ok(Ok(()))), "{r:?}");
    assert!(!lp.run(RunMode::Default).unwrap());
}

/// Wakers of a task, cloned to threads that wake them while the loop is
/// dropped. Pins: wakes before the drop reach the task, wakes after it do
/// nothing (the executor is gone: no use of freed memory under valgrind), and
/// every thread's wakes return.
#[test]
fn wakers_woken_from_threads_while_the_loop_drops() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let lp = Loop::new().unwrap();
    let stored: Rc<RefCell<Option<Waker>>> = Rc::default();
    let polls = Rc::new(Cell::new(0u32));
    let main: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (w, p, m) = (stored.clone(), polls.clone(), main.clone());
    let _task = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            *w.borrow_mut() = Some(cx.waker().clone());
            if let Some(m) = m.borrow_mut().take() {
                m.wake();
            }
            Poll::<()>::Pending
        }))
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let waker = stored.borrow_mut().take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (waker, stop, started) = (waker.clone(), stop.clone(), started.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                started.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) || n < 10 {
                    waker.wake_by_ref();
                    n += 1;
                }
                drop(waker);
                n
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < 4 {
        std::thread::yield_now();
    }
    // Wakes from the threads reach the task (`block_on` waits for wakes from
    // other threads; a plain `run` would not, as documented).
    let before = polls.get();
    lp.block_on(std::future::poll_fn(|cx| {
        if polls.get() > before {
            return Poll::Ready(());
        }
        *main.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }))
    .unwrap();
    drop(lp);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        assert!(t.join().unwrap() >= 10);
    }
    waker.wake();
}

/// An interval made when the loop's cached time is stale (the loop has not run
/// for 40 ms: 20 periods).
///
/// Counted from libuv's cached time, the first item would have counted the
/// periods before the interval was made (20 or more, at once). Now the loop's
/// time is brought up to date when an interval starts: its first item counts
/// no more periods than passed since it was made (by the monotonic clock).
#[test]
fn an_interval_made_on_a_stale_loop_time_counts_from_its_start() {
    let lp = Loop::new().unwrap();
    lp.run(RunMode::NoWait).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    let lh = lp.handle();
    let (first, elapsed) = lp
        .block_on(async move {
            let made = std::time::Instant::now();
            let mut iv = uvf::interval(&lh, Duration::from_millis(2)).unwrap();
            let first = iv.tick().await.unwrap();
            (first, made.elapsed())
        })
        .unwrap();
    // The loop's clock may lag the monotonic one by its 1 ms resolution.
    let bound = elapsed.as_millis().div_ceil(2) + 1;
    assert!(
        (1..=bound).contains(&u128::from(first)),
        "{first} periods counted in {elapsed:?}"
    );
}

/// A task that wakes itself 10,000 times in every poll, beside a timer due now;
/// the task stops the loop once the timer fired. Pins: the task is queued once
/// per poll however often it wakes, each round polls it once (what woke during
/// a round waits for the next; an iteration has two rounds, in its idle and its
/// check phase), and the loop's other handles keep their
/// turn: the timer fires within the first iterations, and `run(Default)` returns.
#[test]
fn a_task_waking_itself_without_end_leaves_the_loop_its_handles() {
    let lp = Loop::new().unwrap();
    let polls = Rc::new(Cell::new(0u32));
    let fired_at = Rc::new(Cell::new(None::<u32>));
    let (p, fa, lh) = (polls.clone(), fired_at.clone(), lp.handle());
    let task = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if fa.get().is_some() {
                lh.stop();
            }
            for _ in 0..10_000 {
                cx.waker().wake_by_ref();
            }
            Poll::<()>::Pending
        }))
        .unwrap();
    let (p, fa) = (polls.clone(), fired_at.clone());
    let t = uv::Timer::new(&lp).unwrap();
    t.start(Duration::ZERO, Duration::ZERO, move |_| {
        fa.set(Some(p.get()))
    })
    .unwrap();
    assert!(lp.run(RunMode::Default).unwrap(), "the task is still ready");
    let at = fired_at.get().expect("the timer fired");
    assert!(at <= 2, "the timer fired after {at} polls of the task");
    // The stop ends the iteration it is made in: its idle phase and check
    // phase each poll the task once.
    assert!(polls.get() <= at + 2, "{} polls", polls.get());
    task.abort();
    t.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

/// `block_on` whose future panics in its second poll, after the loop ran for it,
/// beside a spawned task that waits on a timer. Pins: the panic unwinds out of
/// `block_on` with its payload; the loop is left usable (`run` is not `EBUSY`,
/// its wake-up handle no longer keeps it alive: `run(Default)` returns once the
/// task is done); the task is kept and completes with its value.
#[test]
fn a_panic_in_block_on_s_future_keeps_the_loop_and_its_tasks() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let task = lp
        .spawn_local({
            let lh = lh.clone();
            async move {
                uvf::sleep(&lh, Duration::from_millis(1)).await.unwrap();
                d.set(true);
                5
            }
        })
        .unwrap();
    let r = panic_of(|| {
        lp.block_on(async {
            uvf::sleep(&lh, Duration::ZERO).await.unwrap();
            provoke("main");
        })
    });
    assert_eq!(r, Some("main"));
    assert!(
        !lp.run(RunMode::Default).unwrap(),
        "the task ran to its end"
    );
    assert!(done.get());
    assert_eq!(lp.block_on(task).unwrap(), Ok(5));
    assert_eq!(lp.handle_count(), 0);
}
