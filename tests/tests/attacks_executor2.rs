//! More attacks from safe code on the executor and `interval`: the poll flag a
//! task shares with its join state (tasks that panic, abort themselves, or are
//! woken inside the poll that panicked, with the loop's panic hook taking the
//! panic), the drop of `block_on`'s future by an unwinding (that drop running
//! the loop, `block_on` or `spawn_local`), `run` inside `block_on` across two
//! loops, and intervals whose periods the loop overran, that do not divide a
//! hold-up, or never come. Each test says which guarantee it pins; values,
//! counts, orders and error codes only.
//! `bash tests/valgrind.sh attacks_executor2` checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use uv::future::{self as uvf, JoinError};
use uv::{Loop, RunMode};
use uv_tests::provoke::panic_of;
use uv_tests::provoke::{provoke, provoked, quiet_provoked_panics, PanicOnDrop};

/// A task that wakes itself and then panics, with a panic hook that takes the
/// panic (the loop goes on). Pins: the task is polled once (its wake inside the
/// poll that panicked queues a task that is gone), its handle resolves to
/// `Panicked`, the hook saw the panic once, and `run` returns.
#[test]
fn a_task_woken_in_the_poll_that_panicked_is_never_polled_again() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let taken = Rc::new(RefCell::new(Vec::new()));
    let t = taken.clone();
    lp.set_panic_hook(move |p| t.borrow_mut().push(provoked(&*p).unwrap()));
    let polls = Rc::new(Cell::new(0));
    let p = polls.clone();
    let task = lp
        .spawn_local(std::future::poll_fn(move |cx| -> Poll<()> {
            p.set(p.get() + 1);
            cx.waker().wake_by_ref();
            provoke("task")
        }))
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(polls.get(), 1);
    assert_eq!(*taken.borrow(), ["task"]);
    assert!(task.is_finished());
    assert_eq!(lp.block_on(task).unwrap(), Err(JoinError::Panicked));
}

/// A task that aborts itself (through its own `JoinHandle`) inside its poll,
/// then returns `Pending`; a second one that aborts itself and then panics.
/// Pins: the first is `Cancelled` (its future is dropped after the poll, which
/// returned), the second `Panicked` (its poll unwound); each polled once.
#[test]
fn a_task_aborted_from_its_own_poll_is_cancelled_unless_that_poll_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let taken = Rc::new(Cell::new(0));
    let t = taken.clone();
    lp.set_panic_hook(move |_| t.set(t.get() + 1));
    let mut handles = Vec::new();
    for panics in [false, true] {
        let own: Rc<RefCell<Option<uvf::JoinHandle<()>>>> = Rc::default();
        let polls = Rc::new(Cell::new(0));
        let (o, p) = (own.clone(), polls.clone());
        let h = lp
            .spawn_local(std::future::poll_fn(move |cx| {
                p.set(p.get() + 1);
                o.borrow().as_ref().unwrap().abort();
                cx.waker().wake_by_ref();
                if panics {
                    provoke("after abort");
                }
                Poll::Pending
            }))
            .unwrap();
        *own.borrow_mut() = Some(h);
        handles.push((own, polls));
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(taken.get(), 1);
    let mut results = Vec::new();
    for (own, polls) in handles {
        assert_eq!(polls.get(), 1);
        let h = own.borrow_mut().take().unwrap();
        results.push(lp.block_on(h).unwrap());
    }
    assert_eq!(
        results,
        [Err(JoinError::Cancelled), Err(JoinError::Panicked)]
    );
}

/// A task whose panic unwinds through a value that aborts a second, waiting,
/// task. Pins: only the task whose poll unwound is `Panicked`; the one its
/// unwinding aborted is `Cancelled` (its own poll flag is down), with a panic
/// hook taking the panic and without one (`run` resumes it).
#[test]
fn only_the_task_whose_poll_unwound_is_panicked() {
    quiet_provoked_panics();
    for hook in [false, true] {
        let lp = Loop::new().unwrap();
        if hook {
            lp.set_panic_hook(|_| {});
        }
        let victim = lp.spawn_local(std::future::pending::<u8>()).unwrap();
        let victim = Rc::new(victim);
        struct AbortOnDrop(Rc<uvf::JoinHandle<u8>>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let guard = AbortOnDrop(victim.clone());
        let culprit = lp
            .spawn_local(async move {
                let _g = guard;
                provoke("culprit");
            })
            .unwrap();
        let r = panic_of(|| lp.run(RunMode::Default));
        assert_eq!(r, if hook { None } else { Some("culprit") });
        let victim = Rc::try_unwrap(victim).unwrap();
        assert_eq!(lp.block_on(culprit).unwrap(), Err(JoinError::Panicked));
        assert_eq!(lp.block_on(victim).unwrap(), Err(JoinError::Cancelled));
    }
}

/// `block_on`'s future whose `Drop`, run by the unwinding of a task's panic out
/// of `block_on`, runs the loop (`run(Default)`), a nested `block_on` and a
/// `spawn_local`. Pins: the future is dropped after `block_on` let the loop go
/// (its wake-up handle unreferenced, `run` and `block_on` not `EBUSY`), so the
/// `run` returns once a spawned task finished rather than waiting for wakes
/// from other threads, the nested `block_on` gives its value, and the task
/// spawned from the drop runs at the next `run`; the panic resumed is the
/// task's.
#[test]
fn block_on_s_future_dropped_by_an_unwinding_may_run_the_loop() {
    quiet_provoked_panics();
    let lp = Rc::new(Loop::new().unwrap());
    let seen = Rc::new(RefCell::new(Vec::new()));
    struct RunsOnDrop(Rc<Loop>, Rc<RefCell<Vec<String>>>);
    impl Drop for RunsOnDrop {
        fn drop(&mut self) {
            let (lp, seen) = (&self.0, &self.1);
            let s = seen.clone();
            let lh = lp.handle();
            lp.spawn_local(async move {
                uvf::sleep(&lh, Duration::from_millis(1)).await.unwrap();
                s.borrow_mut().push("slept".into());
            })
            .unwrap();
            let ran = format!("run {:?}", lp.run(RunMode::Default));
            seen.borrow_mut().push(ran);
            let blocked = format!("block_on {:?}", lp.block_on(async { 3 }));
            seen.borrow_mut().push(blocked);
            let s = seen.clone();
            lp.spawn_local(async move { s.borrow_mut().push("late".into()) })
                .unwrap();
        }
    }
    let held = RunsOnDrop(lp.clone(), seen.clone());
    let lh = lp.handle();
    let r = panic_of(|| {
        lp.block_on(async move {
            let _held = held;
            lh.spawn_local(async { provoke("task") }).unwrap();
            std::future::pending::<()>().await
        })
    });
    assert_eq!(r, Some("task"));
    assert_eq!(*seen.borrow(), ["slept", "run Ok(false)", "block_on Ok(3)"]);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(seen.borrow().last().unwrap(), "late");
    assert_eq!(lp.handle_count(), 0);
}

/// Two loops, `a.block_on` whose future runs `b.block_on` whose future asks
/// `a.run`, `a.block_on`, and `b.run`; then a panic out of `b.block_on`, caught
/// inside `a`'s future, and the same questions again. Pins: `EBUSY` for the
/// loops under a `block_on`, at every depth, and after the panic `b` is usable
/// again (its `block_on` mark went with the unwinding) while `a` stays `EBUSY`
/// until its own `block_on` returns.
#[test]
fn run_inside_block_on_across_two_loops_and_a_panic() {
    quiet_provoked_panics();
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let code = |r: uv::Result<bool>| r.map_err(|e| e.code());
    let seen = a
        .block_on(async {
            let mut seen = Vec::new();
            let inner = b
                .block_on(async {
                    (
                        code(a.run(RunMode::NoWait)),
                        a.block_on(async {}).map_err(|e| e.code()),
                        code(b.run(RunMode::NoWait)),
                    )
                })
                .unwrap();
            seen.push(format!("{inner:?}"));
            let r = panic_of(|| b.block_on(async { provoke("inner") }));
            seen.push(format!("{r:?}"));
            seen.push(format!(
                "{:?} {:?} {:?}",
                code(b.run(RunMode::NoWait)),
                b.block_on(async { 4 }).map_err(|e| e.code()),
                code(a.run(RunMode::NoWait))
            ));
            seen
        })
        .unwrap();
    assert_eq!(
        seen,
        [
            "(Err(EBUSY), Err(EBUSY), Err(EBUSY))",
            "Some(\"inner\")",
            "Ok(false) Ok(4) Err(EBUSY)",
        ]
    );
    assert_eq!(code(a.run(RunMode::NoWait)), Ok(false));
}

/// `run` and `block_on` from a task spawned before `block_on` and polled
/// during it, and from a timer's callback during it. Pins: `EBUSY` for both
/// (the loop is running them), and `block_on` then gives its value.
#[test]
fn run_from_a_task_or_a_callback_during_block_on_is_ebusy() {
    let lp = Rc::new(Loop::new().unwrap());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (l, s) = (lp.clone(), seen.clone());
    let task = lp
        .spawn_local(async move {
            s.borrow_mut().push(format!(
                "task {:?} {:?}",
                l.run(RunMode::NoWait).map_err(|e| e.code()),
                l.block_on(async {}).map_err(|e| e.code())
            ));
        })
        .unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    let (l, s) = (lp.clone(), seen.clone());
    timer
        .start(Duration::ZERO, Duration::ZERO, move |_| {
            s.borrow_mut().push(format!(
                "timer {:?} {:?}",
                l.run(RunMode::NoWait).map_err(|e| e.code()),
                l.block_on(async {}).map_err(|e| e.code())
            ));
        })
        .unwrap();
    let lh = lp.handle();
    let v = lp
        .block_on(async move {
            task.await.unwrap();
            uvf::sleep(&lh, Duration::from_millis(1)).await.unwrap();
            9
        })
        .unwrap();
    assert_eq!(v, 9);
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(
        seen,
        ["task Err(EBUSY) Err(EBUSY)", "timer Err(EBUSY) Err(EBUSY)"]
    );
    timer.close();
    assert!(!lp.run(RunMode::Default).unwrap());
}

/// `block_on` called from a `Drop` that runs while an unrelated panic unwinds,
/// with a future that completes and whose own `Drop` panics. Pins: `block_on`
/// returns its value; the drop's panic is dropped (it would otherwise have
/// escaped `block_on` into a destructor of an unwinding, which aborts the
/// process), and the unrelated panic reaches its catch.
#[test]
fn block_on_during_an_unwinding_drops_a_future_whose_drop_panics() {
    quiet_provoked_panics();
    let lp = Rc::new(Loop::new().unwrap());
    let got = Rc::new(Cell::new(None));
    struct BlocksOnDrop(Rc<Loop>, Rc<Cell<Option<u8>>>);
    impl Drop for BlocksOnDrop {
        fn drop(&mut self) {
            // Ready at once, holding the value whose `Drop` panics (an async
            // block would drop it inside its last poll, a panic of the poll).
            struct Holds(#[allow(dead_code)] PanicOnDrop);
            impl Future for Holds {
                type Output = u8;
                fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u8> {
                    Poll::Ready(5)
                }
            }
            let v = self.0.block_on(Holds(PanicOnDrop("future drop")));
            self.1.set(v.ok());
        }
    }
    let d = BlocksOnDrop(lp.clone(), got.clone());
    let r = panic_of(move || {
        let _d = d;
        provoke("outer");
    });
    assert_eq!(r, Some("outer"));
    assert_eq!(got.get(), Some(5));
    assert!(!lp.run(RunMode::Default).unwrap());
}

/// A 1 ms interval whose consumer holds the loop's thread for 200 ms between two
/// ticks, then 3 ms ticks around a 10 ms hold-up (3 does not divide 10). Pins:
/// the item after the hold-up counts the whole periods elapsed (at least 200,
/// at least 3), never more than the loop's clock allows, and the counts of the
/// ticks that follow keep the total at the periods elapsed since the interval
/// started (the next firing is one period after the late one; its count is 1).
#[test]
fn an_interval_overrun_counts_elapsed_periods_and_keeps_its_total() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    for (period_ms, hold_ms) in [(1u64, 200u64), (3, 10)] {
        let lh = lh.clone();
        let (total, elapsed_ms, after_hold) = lp
            .block_on(async move {
                let start = lh.now().unwrap();
                let mut iv = uvf::interval(&lh, Duration::from_millis(period_ms)).unwrap();
                let started = lh.now().unwrap();
                assert!(started >= start);
                let mut total = iv.tick().await.unwrap();
                std::thread::sleep(Duration::from_millis(hold_ms));
                let after_hold = iv.tick().await.unwrap();
                total += after_hold;
                for _ in 0..3 {
                    total += iv.tick().await.unwrap();
                }
                let elapsed = lh.now().unwrap() - started;
                (total, elapsed.as_millis() as u64, after_hold)
            })
            .unwrap();
        assert!(
            after_hold >= hold_ms / period_ms,
            "{after_hold} periods of {period_ms} ms counted after {hold_ms} ms"
        );
        // Each tick is read in the iteration of its firing, at the loop's time.
        assert_eq!(
            total,
            elapsed_ms / period_ms,
            "{total} periods of {period_ms} ms counted in {elapsed_ms} ms of loop time"
        );
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

/// Intervals of `Duration::MAX`, of `u64::MAX` ms and of `u64::MAX` ms less one:
/// no overflow (the due time is clamped by libuv, the count saturates), no item,
/// and the started timer keeps the loop alive until the stream is dropped.
#[test]
fn intervals_that_never_come() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    for period in [
        Duration::MAX,
        Duration::from_millis(u64::MAX),
        Duration::from_millis(u64::MAX - 1),
    ] {
        let mut iv = uvf::interval(&lh, period).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut iv).poll_next(&mut cx).is_pending());
        assert!(lp.run(RunMode::NoWait).unwrap(), "{period:?}");
        assert!(Pin::new(&mut iv).poll_next(&mut cx).is_pending());
        assert!(lp.alive());
        drop(iv);
        assert!(!lp.run(RunMode::Default).unwrap());
    }
}

/// A timer callback that starts a 20 ms timer, makes an interval (which brings
/// the loop's cached time up to date), then starts a second 20 ms timer, after
/// the thread was held 30 ms in the same iteration. Pins what a user sees of
/// that update: `now` moves forward inside the callback, and the second timer
/// is due 20 ms after the updated time, so the first one fires first, in
/// order, and both fire.
#[test]
fn an_interval_made_in_a_callback_updates_the_time_timers_start_from() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let kept: Rc<RefCell<Vec<uv::Timer>>> = Rc::default();
    let iv_kept: Rc<RefCell<Option<uvf::Interval>>> = Rc::default();
    let t = uv::Timer::new(&lp).unwrap();
    let (o, k, ik) = (order.clone(), kept.clone(), iv_kept.clone());
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        let lh = t.loop_();
        let before = lh.now().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        for name in ["first", "second"] {
            if name == "second" {
                *ik.borrow_mut() = Some(uvf::interval(&lh, Duration::from_secs(3600)).unwrap());
            }
            let timer = uv::Timer::new(&lh).unwrap();
            let o2 = o.clone();
            timer
                .start(Duration::from_millis(20), Duration::ZERO, move |_| {
                    o2.borrow_mut().push(name.to_string())
                })
                .unwrap();
            k.borrow_mut().push(timer);
        }
        let after = lh.now().unwrap();
        o.borrow_mut().push(format!(
            "moved {}",
            after - before >= Duration::from_millis(30)
        ));
        let due = k.borrow()[1].due_in().unwrap();
        o.borrow_mut().push(format!("second due in {:?}", due));
    })
    .unwrap();
    let ik = iv_kept.clone();
    let k = kept.clone();
    let o = order.clone();
    let watch = uv::Timer::new(&lp).unwrap();
    watch
        .start(
            Duration::from_millis(1),
            Duration::from_millis(5),
            move |w| {
                if o.borrow().len() == 4 {
                    ik.borrow_mut().take();
                    for t in k.borrow_mut().drain(..) {
                        t.close();
                    }
                    w.close();
                }
            },
        )
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    t.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(
        *order.borrow(),
        ["moved true", "second due in 20ms", "first", "second"]
    );
}

/// `Loop::close` from `block_on`'s future, which then panics; and a future whose
/// `Drop`, run by the unwinding of a task's panic out of `block_on`, closes the
/// loop. Pins: the panic resumed is the first one; `block_on` lets go of the
/// executor's handles after the loop closed them (valgrind sees no error nor
/// leak); the loop is closed and `run` says so.
#[test]
fn a_loop_closed_by_block_on_s_future_before_a_panic_or_in_its_drop() {
    quiet_provoked_panics();
    let lp = Rc::new(Loop::new().unwrap());
    let r = panic_of(|| {
        lp.block_on(async {
            assert_eq!(lp.close().map_err(|e| e.code()), Ok(()));
            provoke("after close")
        })
    });
    assert_eq!(r, Some("after close"));
    assert!(lp.is_closed());
    assert!(lp
        .run(RunMode::Default)
        .unwrap_err()
        .is(uv::Category::ClosedLoop));

    let lp = Rc::new(Loop::new().unwrap());
    struct ClosesOnDrop(Rc<Loop>, Rc<Cell<bool>>);
    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            self.1.set(self.0.close().is_ok());
        }
    }
    let closed = Rc::new(Cell::new(false));
    let held = ClosesOnDrop(lp.clone(), closed.clone());
    let lh = lp.handle();
    let r = panic_of(|| {
        lp.block_on(async move {
            let _held = held;
            lh.spawn_local(async { provoke("task") }).unwrap();
            std::future::pending::<()>().await
        })
    });
    assert_eq!(r, Some("task"));
    assert!(closed.get());
    assert!(lp.is_closed());
}

/// `block_on` awaiting a task that panics, with a panic hook that takes the
/// panic. Pins: `block_on` goes on and gives the task's `Panicked`, the hook saw
/// the panic once.
#[test]
fn block_on_awaiting_a_task_whose_panic_a_hook_takes() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let taken = Rc::new(Cell::new(0));
    let t = taken.clone();
    lp.set_panic_hook(move |_| t.set(t.get() + 1));
    let task = lp.spawn_local(async { provoke("task") }).unwrap();
    let r: Result<(), JoinError> = lp.block_on(task).unwrap();
    assert_eq!(r, Err(JoinError::Panicked));
    assert_eq!(taken.get(), 1);
}

/// A panic hook that, while it takes a task's panic (the task's poll flag still
/// up, its future not yet dropped), aborts that task and spawns a new one.
/// Pins: the abort is a no-op on the
/// ended task (its handle resolves to `Panicked`, not `Cancelled`), the new
/// task gets its own flag and completes with its value.
#[test]
fn a_panic_hook_aborting_the_task_whose_panic_it_takes() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let handle: Rc<RefCell<Option<uvf::JoinHandle<()>>>> = Rc::default();
    let spawned: Rc<RefCell<Option<uvf::JoinHandle<u8>>>> = Rc::default();
    let (h, s, lh) = (handle.clone(), spawned.clone(), lp.handle());
    lp.set_panic_hook(move |_| {
        if let Some(h) = h.borrow().as_ref() {
            h.abort();
        }
        *s.borrow_mut() = Some(lh.spawn_local(async { 8 }).unwrap());
    });
    *handle.borrow_mut() = Some(lp.spawn_local(async { provoke("task") }).unwrap());
    assert!(!lp.run(RunMode::Default).unwrap());
    let h = handle.borrow_mut().take().unwrap();
    assert_eq!(lp.block_on(h).unwrap(), Err(JoinError::Panicked));
    let s = spawned.borrow_mut().take().unwrap();
    assert_eq!(lp.block_on(s).unwrap(), Ok(8));
}

/// A panic hook that holds a `LoopHandle` of its loop (to spawn a task, or
/// stop the loop), with the loop then dropped; one set on a loop already closed;
/// one set from a close callback that the loop's drop runs.
///
/// Used to: the loop's teardown kept the hook, so a hook holding a handle of
/// its loop made a cycle through the loop's shared state: that state and its
/// slab were never freed (valgrind: 9,168 bytes definitely lost from
/// `LoopShared::new`, per loop). Now the teardown drops the hook at its end,
/// and a hook set after that is dropped at once: each hook's captures are
/// dropped (counted), and valgrind sees no leak.
#[test]
fn a_panic_hook_holding_its_loop_s_handle_is_dropped_with_the_loop() {
    quiet_provoked_panics();
    struct Counted(Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let dropped = Rc::new(Cell::new(0));

    let lp = Loop::new().unwrap();
    let (lh, c) = (lp.handle(), Counted(dropped.clone()));
    lp.set_panic_hook(move |_| {
        let _ = &c;
        lh.stop();
    });
    drop(lp);
    assert_eq!(dropped.get(), 1);

    let lp = Loop::new().unwrap();
    lp.close().unwrap();
    let (lh, c) = (lp.handle(), Counted(dropped.clone()));
    lp.set_panic_hook(move |_| {
        let _ = &c;
        lh.stop();
    });
    assert_eq!(dropped.get(), 2);
    drop(lp);

    let lp = Loop::new().unwrap();
    let t = uv::Timer::new(&lp).unwrap();
    let (lh, d) = (lp.handle(), dropped.clone());
    t.close_with(move |_| {
        let (lh2, c) = (lh.clone(), Counted(d));
        lh.set_panic_hook(move |_| {
            let _ = &c;
            lh2.stop();
        });
    });
    drop(lp);
    assert_eq!(dropped.get(), 3);
}
