//! Integration tests for the loop, timers, idle/prepare/check handles, the handle
//! lifecycle, panics in callbacks and `call_later`. Ported from the Python `uv`
//! package's tests and libuv's test suite.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uv::{Category, Check, HandleType, Idle, Loop, Prepare, RunMode, StatusCode, Timer};
use uv_tests::run_expecting_panic;

const MS: Duration = Duration::from_millis(1);

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Cell<usize>) -> usize {
    c.set(c.get() + 1);
    c.get()
}

fn assert_closed_handle<T: std::fmt::Debug>(r: uv::Result<T>) {
    let err = r.expect_err("expected a ClosedHandle error");
    assert_eq!(err.kind(), Category::ClosedHandle, "{err:?}");
    assert!(err.is(Category::ClosedHandle));
    assert!(err.is(Category::ClosedStructure));
    assert!(err.is(Category::UnsupportedOperation));
}

/// A second timer fires after a panic: the loop is still usable.
fn assert_loop_still_runs(lp: &Loop) {
    let fired = counter();
    let t = Timer::new(lp).unwrap();
    let f = fired.clone();
    t.start(MS, Duration::ZERO, move |_| {
        bump(&f);
    })
    .unwrap();
    // Drain whatever is left (e.g. closing handles) and the new timer.
    lp.run(RunMode::Default).unwrap();
    assert_eq!(fired.get(), 1);
}

// ---------------------------------------------------------------------------
// Loop
// ---------------------------------------------------------------------------

#[test]
fn loop_alive_before_during_after() {
    let lp = Loop::new().unwrap();
    assert!(!lp.alive());
    let idle = Idle::new(&lp).unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    idle.start(move |i| {
        s.set(Some(i.loop_().alive()));
        i.stop().unwrap();
    })
    .unwrap();
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(seen.get(), Some(true));
    assert!(!lp.alive());
}

#[test]
fn run_once_500_times_with_idle() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let idle = Idle::new(&lp).unwrap();
    let c = calls.clone();
    idle.start(move |_| {
        bump(&c);
    })
    .unwrap();
    for _ in 0..500 {
        assert!(lp.run(RunMode::Once).unwrap());
    }
    assert_eq!(calls.get(), 500);
    idle.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 500);
}

#[test]
fn run_nowait_does_not_fire_long_timer() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(Duration::from_secs(100), Duration::ZERO, move |_| {
        bump(&c);
    })
    .unwrap();
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(calls.get(), 0);
    assert!(t.is_active());
    t.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 0);
}

#[test]
fn handles_lists_then_empty_after_close() {
    let lp = Loop::new().unwrap();
    let _t = Timer::new(&lp).unwrap();
    let _i = Idle::new(&lp).unwrap();
    assert_eq!(lp.handles().len(), 2);
    assert_eq!(lp.handle_count(), 2);
    lp.close_all_handles();
    assert_eq!(lp.handles().len(), 0);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handles().len(), 0);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn stop_interrupts_run_and_later_runs_continue() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, MS, move |t| {
        let n = bump(&c);
        if n == 2 {
            t.loop_().stop();
        }
        if n == 5 {
            t.close();
        }
    })
    .unwrap();
    assert!(lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 2);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 5);
}

fn assert_ebusy(r: uv::Result<()>) {
    let err = r.expect_err("expected EBUSY");
    assert_eq!(err.code(), StatusCode::EBUSY);
    assert_eq!(err.kind(), Category::ResourceBusy);
    assert!(err.is(Category::ResourceBusy));
}

#[test]
fn loop_close_busy_then_ok_and_closed_loop_errors() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    assert_ebusy(lp.close());
    assert!(!lp.is_closed());
    t.close();
    // Still closing: the close callback has not run yet.
    assert_ebusy(lp.close());
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed());
    // Idempotent.
    lp.close().unwrap();

    let err = Timer::new(&lp).unwrap_err();
    assert_eq!(err.kind(), Category::ClosedLoop);
    assert!(err.is(Category::ClosedStructure));
    let err = lp.run(RunMode::Default).unwrap_err();
    assert_eq!(err.kind(), Category::ClosedLoop);
    assert_eq!(lp.now().unwrap_err().kind(), Category::ClosedLoop);
    assert!(!lp.alive());
}

#[test]
fn loop_close_busy_with_inactive_open_handle() {
    let lp = Loop::new().unwrap();
    let i = Idle::new(&lp).unwrap();
    assert_ebusy(lp.close());
    i.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn now_is_cached_until_update_time() {
    let lp = Loop::new().unwrap();
    let now1 = lp.now().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(lp.now().unwrap(), now1);
    lp.update_time().unwrap();
    let now2 = lp.now().unwrap();
    assert!(now2 >= now1);
    assert_eq!(lp.now().unwrap(), now2);
}

#[test]
fn backend_timeout_zero_with_active_idle() {
    let lp = Loop::new().unwrap();
    let idle = Idle::new(&lp).unwrap();
    idle.start(|_| {}).unwrap();
    assert_eq!(lp.backend_timeout().unwrap(), Some(Duration::ZERO));
    idle.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn backend_timeout_bounded_by_timer() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    let timeout = lp
        .backend_timeout()
        .unwrap()
        .expect("a timer bounds the wait");
    assert!(timeout <= Duration::from_secs(100));
    t.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn backend_fd_is_valid() {
    let lp = Loop::new().unwrap();
    assert!(lp.backend_fd().unwrap() >= 0);
}

// ---------------------------------------------------------------------------
// call_later
// ---------------------------------------------------------------------------

/// A 1 ms repeating timer that closes itself once `done` is non-zero.
fn keep_alive_until(lp: &Loop, done: Arc<AtomicUsize>) -> Timer {
    let t = Timer::new(lp).unwrap();
    t.start(MS, MS, move |t| {
        if done.load(Ordering::SeqCst) > 0 {
            t.close();
        }
    })
    .unwrap();
    t
}

#[test]
fn call_later_from_loop_thread() {
    let lp = Loop::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let _t = keep_alive_until(&lp, ran.clone());
    let r = ran.clone();
    lp.call_later(move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn call_later_from_another_thread() {
    let lp = Loop::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let _t = keep_alive_until(&lp, ran.clone());
    let sender = lp.call_later_sender().unwrap();
    let r = ran.clone();
    let th = std::thread::spawn(move || {
        let main = std::thread::current().id();
        sender
            .call(move || {
                assert_ne!(std::thread::current().id(), main);
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    th.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn call_later_does_not_keep_loop_alive() {
    let lp = Loop::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    lp.call_later(move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    // The job is still queued: it runs once something keeps the loop going.
    let _t = keep_alive_until(&lp, ran.clone());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn call_later_sender_after_loop_dropped() {
    let lp = Loop::new().unwrap();
    let sender = lp.call_later_sender().unwrap();
    drop(lp);
    let err = sender.call(|| {}).unwrap_err();
    assert_eq!(err.kind(), Category::ClosedHandle);
}

// ---------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------

#[test]
fn timer_one_shot_fires_once() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, Duration::ZERO, move |_| {
        bump(&c);
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert!(!t.is_active());
    assert!(!t.is_closing());
}

#[test]
fn timer_repeat_closed_on_third_tick() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, MS, move |t| {
        if bump(&c) == 3 {
            t.close();
        }
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 3);
    assert!(t.is_closed());
}

#[test]
fn dropped_repeating_timer_closes_itself_from_callback() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, MS, move |t| {
        if bump(&c) == 3 {
            t.close();
        }
    })
    .unwrap();
    drop(t);
    assert_eq!(lp.handle_count(), 1);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 3);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn timer_closed_before_run_never_fires() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, Duration::ZERO, move |_| {
        bump(&c);
    })
    .unwrap();
    t.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 0);
}

#[test]
fn timer_unref_then_ref() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, Duration::ZERO, move |_| {
        bump(&c);
    })
    .unwrap();
    t.unref().unwrap();
    assert!(!t.has_ref());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 0);
    t.ref_().unwrap();
    assert!(t.has_ref());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
}

#[test]
fn timers_fire_in_due_order() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut timers = Vec::new();
    for ms in [3u64, 1, 2] {
        let t = Timer::new(&lp).unwrap();
        let o = order.clone();
        t.start(Duration::from_millis(ms), Duration::ZERO, move |_| {
            o.borrow_mut().push(ms);
        })
        .unwrap();
        timers.push(t);
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*order.borrow(), vec![1, 2, 3]);
}

#[test]
fn timer_again_never_started_is_einval() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    let err = t.again().unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(err.is(Category::Argument));
}

#[test]
fn timer_repeat_round_trip() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::ZERO);
    t.set_repeat(Duration::from_millis(42)).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(42));
    t.set_repeat(Duration::ZERO).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::ZERO);
    assert_eq!(t.due_in().unwrap(), Duration::ZERO);
}

#[test]
fn timer_stop_inside_repeating_callback() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, MS, move |t| {
        bump(&c);
        t.stop().unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert!(!t.is_active());
    // The callback was kept for again().
    t.again().unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 2);
}

#[test]
fn timer_callback_replaces_itself() {
    let lp = Loop::new().unwrap();
    let old = counter();
    let new = counter();
    let t = Timer::new(&lp).unwrap();
    let (o, n) = (old.clone(), new.clone());
    t.start(MS, MS, move |t| {
        bump(&o);
        let n = n.clone();
        t.start(MS, MS, move |t| {
            if bump(&n) == 2 {
                t.close();
            }
        })
        .unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(old.get(), 1);
    assert_eq!(new.get(), 2);
}

#[test]
fn unstarted_dropped_timer_is_closed() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    assert_eq!(lp.handle_count(), 1);
    drop(t);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.handle_count(), 0);
    assert!(lp.handles().is_empty());
}

#[test]
fn started_dropped_timer_still_fires() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, Duration::ZERO, move |_| {
        bump(&c);
    })
    .unwrap();
    drop(t);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Idle, prepare, check
// ---------------------------------------------------------------------------

#[test]
fn idle_stops_after_six_calls() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let idle = Idle::new(&lp).unwrap();
    let c = calls.clone();
    idle.start(move |i| {
        if bump(&c) == 6 {
            i.stop().unwrap();
        }
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 6);
    assert!(!idle.is_active());
}

#[test]
fn prepare_stops_itself() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let p = Prepare::new(&lp).unwrap();
    let c = calls.clone();
    p.start(move |p| {
        bump(&c);
        p.stop().unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
}

#[test]
fn check_runs_alongside_timer() {
    let lp = Loop::new().unwrap();
    let checks = counter();
    let ticks = counter();
    let check = Check::new(&lp).unwrap();
    let c = checks.clone();
    check
        .start(move |_| {
            bump(&c);
        })
        .unwrap();
    let t = Timer::new(&lp).unwrap();
    let (k, chk) = (ticks.clone(), check.clone());
    t.start(MS, MS, move |t| {
        if bump(&k) == 3 {
            t.close();
            chk.close();
        }
    })
    .unwrap();
    // RunMode::Default also runs due timers once before the first iteration,
    // so a timer can fire once before any check; one iteration at a time (Once),
    // each iteration runs the check phase before the timers.
    while lp.run(RunMode::Once).unwrap() {}
    assert_eq!(ticks.get(), 3);
    assert!(checks.get() >= 1);
    assert!(
        ticks.get() <= checks.get(),
        "{} > {}",
        ticks.get(),
        checks.get()
    );
}

// ---------------------------------------------------------------------------
// Closed-handle rules
// ---------------------------------------------------------------------------

#[test]
fn closed_handle_rules() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    t.close();
    assert!(t.is_closing());
    assert!(!t.is_closed());
    assert!(!t.is_active());
    assert_closed_handle(t.start(MS, MS, |_| {}));
    assert_closed_handle(t.again());
    assert_closed_handle(t.repeat());
    assert_closed_handle(t.set_repeat(MS));
    assert_closed_handle(t.due_in());
    t.stop().unwrap();
    t.close(); // double close is fine
    lp.run(RunMode::Default).unwrap();
    assert!(t.is_closing());
    assert!(t.is_closed());
    assert!(!t.is_active());
    assert!(!t.has_ref());
    assert_closed_handle(t.ref_());
    assert_closed_handle(t.unref());
    assert_closed_handle(t.start(MS, MS, |_| {}));
    t.stop().unwrap();
    t.close();
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn close_with_runs_once() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.close_with(move |h| {
        assert!(h.is_closed());
        assert_eq!(h.handle_type(), HandleType::Timer);
        bump(&c);
    });
    t.close();
    lp.run(RunMode::Default).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 1);
}

#[test]
fn close_with_on_closing_handle_ignores_second_callback() {
    let lp = Loop::new().unwrap();
    let first = counter();
    let second = counter();
    let t = Timer::new(&lp).unwrap();
    let (f, s) = (first.clone(), second.clone());
    t.close_with(move |_| {
        bump(&f);
    });
    t.close_with(move |_| {
        bump(&s);
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(first.get(), 1);
    assert_eq!(second.get(), 0);
    // And on a closed one.
    let third = counter();
    let th = third.clone();
    t.close_with(move |_| {
        bump(&th);
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(third.get(), 0);
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

#[test]
fn panic_in_timer_callback_propagates() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(MS, Duration::ZERO, |_| panic!("timer boom"))
        .unwrap();
    assert_eq!(run_expecting_panic(&lp), "timer boom");
    assert!(!lp.is_closed());
    assert!(!lp.is_running());
    assert_loop_still_runs(&lp);
}

#[test]
fn panic_in_idle_callback_propagates() {
    let lp = Loop::new().unwrap();
    let idle = Idle::new(&lp).unwrap();
    idle.start(|i| {
        i.stop().unwrap();
        panic!("idle boom")
    })
    .unwrap();
    assert_eq!(run_expecting_panic(&lp), "idle boom");
    assert_loop_still_runs(&lp);
}

#[test]
fn panic_in_prepare_callback_propagates() {
    let lp = Loop::new().unwrap();
    let p = Prepare::new(&lp).unwrap();
    p.start(|p| {
        p.stop().unwrap();
        panic!("prepare boom")
    })
    .unwrap();
    assert_eq!(run_expecting_panic(&lp), "prepare boom");
    assert_loop_still_runs(&lp);
}

#[test]
fn panic_in_check_callback_propagates() {
    let lp = Loop::new().unwrap();
    // A repeating timer bounds the poll phase so that the loop reaches the check
    // phase; the check closes it (a check alone lets the poll block forever).
    let t = Timer::new(&lp).unwrap();
    t.start(MS, MS, |_| {}).unwrap();
    let c = Check::new(&lp).unwrap();
    let timer = t.clone();
    c.start(move |c| {
        c.stop().unwrap();
        timer.close();
        panic!("check boom")
    })
    .unwrap();
    assert_eq!(run_expecting_panic(&lp), "check boom");
    assert_loop_still_runs(&lp);
}

#[test]
fn panic_in_close_callback_propagates() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.close_with(|_| panic!("close boom"));
    assert_eq!(run_expecting_panic(&lp), "close boom");
    assert!(t.is_closed());
    assert_eq!(lp.handle_count(), 0);
    assert_loop_still_runs(&lp);
}

#[test]
fn panic_in_async_callback_propagates() {
    let lp = Loop::new().unwrap();
    let a = uv::Async::new(&lp, |a| {
        a.close();
        panic!("async boom")
    })
    .unwrap();
    a.send().unwrap();
    assert_eq!(run_expecting_panic(&lp), "async boom");
    assert_loop_still_runs(&lp);
    assert!(a.is_closed());
}

#[test]
fn panic_in_call_later_propagates() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    lp.call_later(|| panic!("later boom")).unwrap();
    assert_eq!(run_expecting_panic(&lp), "later boom");
    t.close();
    assert_loop_still_runs(&lp);
}

#[test]
fn panic_hook_receives_payload() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::<String>::new()));
    let g = got.clone();
    lp.set_panic_hook(move |p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into());
        g.borrow_mut().push(msg);
    });
    let calls = counter();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(MS, MS, move |t| {
        if bump(&c) == 2 {
            t.close();
        }
        panic!("hooked boom")
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 2);
    assert_eq!(*got.borrow(), vec!["hooked boom", "hooked boom"]);
    assert!(lp.take_panic_hook().is_some());
    assert!(lp.take_panic_hook().is_none());
}

// ---------------------------------------------------------------------------
// Handles outliving their loop, downcast
// ---------------------------------------------------------------------------

#[test]
fn handle_outlives_loop() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    drop(lp);
    assert!(t.is_closed());
    assert!(!t.is_active());
    assert_closed_handle(t.start(MS, Duration::ZERO, |_| {}));
    assert!(t.loop_().is_closed());
    t.stop().unwrap();
    t.close();
}

#[test]
fn downcast_from_handles() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    let handles = lp.handles();
    assert_eq!(handles.len(), 1);
    let h = &handles[0];
    assert_eq!(h.handle_type(), HandleType::Timer);
    assert!(h.downcast::<Idle>().is_none());
    let t2 = h.downcast::<Timer>().expect("a Timer");
    t2.set_repeat(Duration::from_millis(7)).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(7));
    assert!(*h == *t);
}

/// Close callbacks run while a dropped loop tears down; a handle they try to make
/// on that loop is refused instead of being left on a freed loop.
#[test]
fn handles_cannot_be_made_on_a_loop_being_torn_down() {
    let lp = Loop::new().unwrap();
    let handle = lp.handle();
    let outcome: Rc<Cell<Option<Category>>> = Rc::new(Cell::new(None));
    let o = outcome.clone();
    let t = Timer::new(&lp).unwrap();
    t.close_with(move |_| {
        o.set(Timer::new(&handle).err().map(|e| e.kind()));
    });
    drop(t);
    drop(lp);
    assert_eq!(outcome.get(), Some(Category::ClosedLoop));
}
